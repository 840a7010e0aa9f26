"""Measure every run of one deployment, deferring while each run's load goes on.

One operator per deployment, not one task per run: Airflow cannot map inside a
mapped group, and a fixed number of run tasks would put the matrix into the
DAG's shape. So the operator loops over the deployment's runs and defers once
per wait (local: each run's load; aws: each run's prefill task, then its load
tasks; and CloudWatch's publishing delay), holding no worker slot meanwhile.
Where every run stands is kept on disk by `steps.measure_step`, not in the
task: a retry after a lost worker reattaches to the load under way, and a
cleared task measures only the runs without a result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.module_loading import import_string

if TYPE_CHECKING:
    import jinja2


class MeasureOperator(BaseOperator):
    template_fields: Sequence[str] = ("provisioned",)

    def __init__(self, *, provisioned: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.provisioned = provisioned

    def render_template_fields(
        self, context: Context, jinja_env: jinja2.Environment | None = None
    ) -> None:
        super().render_template_fields(context, jinja_env)
        # The label (the map index template's deployment_label) is known once `provisioned`
        # is: Airflow renders it right after this, before execute, and the task keeps it
        # while deferred. Set in execute, the UI would show a bare index until the end.
        context["deployment_label"] = self._prov().plan.instance

    def execute(self, context: Context) -> dict[str, Any]:
        from cachebench import steps  # lazy: keeps pandas out of DAG parsing

        return self._advance(context, None, steps.begin_try(self._prov()))

    def resume(self, context: Context, event: Any = None) -> dict[str, Any]:
        from cachebench import steps

        event = event if isinstance(event, dict) else {"status": "done"}  # a timer's event
        return self._advance(context, event, steps.current_try(self._prov()))

    def _prov(self) -> Any:
        from cachebench.models import Provisioned

        return Provisioned.model_validate(self.provisioned)

    def _advance(self, context: Context, event: dict[str, Any] | None, try_id: str) -> dict:
        from cachebench import steps

        prov = self._prov()
        watch = steps.measure_step(prov, try_id, event)
        if watch is not None:
            self.defer(trigger=import_string(watch.classpath)(**watch.kwargs), method_name="resume")
        measured = steps.measured(prov)
        if measured.failed:
            # Not retried: a retry would measure the failed runs again at once; clearing
            # the task does that on purpose (only the runs without a result).
            raise AirflowFailException(
                f"{len(measured.failed)} of {len(measured.outcomes)} runs of "
                f"{prov.plan.instance} failed: "
                + "; ".join(f"{o.key}: {o.error}" for o in measured.failed)
            )
        return measured.model_dump(mode="json")
