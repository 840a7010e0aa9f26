"""One DAG shape for every campaign: a mapped task group per deployment, destroy as its teardown.

    plan -> deployment[<id>]: render_tfvars -> apply -> measure -> destroy -> report

A deployment (engine x version x topology x node type) is provisioned once and
measures every run (workload x repetition) on it: `measure` defers once per
wait (see cachebench.operators.measure). `destroy` is the teardown of
render_tfvars + apply, so it runs whatever failed; `report` is the teardown of
plan, so it runs after every destroy and its failure fails the run.

Tasks are thin: each calls the step of the same name in `cachebench.steps`,
imported inside the task so that parsing a DAG file costs no pandas or boto3.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, chain, get_current_context, task, task_group

from cachebench.operators.measure import MeasureOperator
from cachebench.operators.report import ReportOperator, report_asset
from cachebench.params import campaign_params

LABEL = "{{ deployment_label }}"  # each mapped instance is shown by its deployment id


def _label(item: dict[str, Any]) -> None:
    get_current_context()["deployment_label"] = item["instance"]


@contextlib.contextmanager
def _skip_when_interrupted() -> Iterator[None]:
    """A deployment not provisioned yet when the campaign run is interrupted is skipped."""
    from cachebench.steps import Interrupted

    try:
        yield
    except Interrupted as exc:
        from airflow.sdk.exceptions import AirflowSkipException

        raise AirflowSkipException(str(exc)) from None


def build_dag(
    dag_id: str, defaults: dict[str, Any], *, doc_md: str | None = None, tags: list[str] = ()
) -> DAG:
    """The campaign DAG for `defaults` (a campaign file's fields, overridable at trigger)."""
    target = defaults.get("target", "local")
    # Seconds between tries; the failure tests shorten it (CACHEBENCH_RETRY_DELAY_S=1).
    retry_s = float(os.environ.get("CACHEBENCH_RETRY_DELAY_S", "10"))
    with DAG(
        dag_id=dag_id,
        schedule=defaults.get("schedule"),
        catchup=False,
        max_active_runs=1,
        # Local deployments share two cores: one task at a time, and one load at a time
        # (the runner's lock), keep their numbers clean.
        max_active_tasks=1 if target == "local" else 16,
        params=campaign_params(defaults),
        doc_md=doc_md,
        tags=["cachebench", f"target:{target}", *tags],
        # "upstream" weights favour the later steps of a started deployment over the
        # next one's apply, so a scheduler finishes deployments rather than piling them up.
        default_args={
            "retries": 1,
            "retry_delay": timedelta(seconds=retry_s),
            "weight_rule": "upstream",
        },
        render_template_as_native_obj=True,
    ) as dag:
        teardowns: list[Any] = []  # report waits for every destroy: a group's leaves skip teardowns
        planned = _plan(target)()
        deployments = _deployment(target, retry_s, teardowns).expand(item=planned)
        # The report is a teardown too: it runs after every destroy even when the run is
        # marked failed from the UI/API, and its failure (runs without a result) fails
        # the run; otherwise Airflow would recompute such a run as a success.
        reported = ReportOperator(
            task_id="report",
            campaign=defaults.get("name", dag_id),
            outlets=[report_asset(dag_id)],
            retries=0,
        ).as_teardown(setups=planned, on_failure_fail_dagrun=True)
        chain(deployments, reported)
        chain(teardowns, reported)
    return dag


def _plan(target: str) -> Any:
    """The plan task: the campaign's deployments, or the run refused with why."""

    @task(retries=0)
    def plan() -> list[dict[str, Any]]:
        from cachebench import steps
        from cachebench.campaign import CampaignError

        ctx = get_current_context()
        try:
            plans = steps.plan(dict(ctx["params"]), ctx["run_id"], target, dag_id=ctx["dag"].dag_id)
        except CampaignError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            steps.refused(dict(ctx["params"]), ctx["run_id"], exc)  # notify: failure
            raise AirflowFailException(str(exc)) from None
        return [p.model_dump(mode="json") for p in plans]

    return plan


def _deployment(target: str, retry_s: float, teardowns: list[Any]) -> Any:
    """The mapped group of one deployment: render_tfvars -> apply -> measure -> destroy,
    destroy the teardown of the first two (each destroy is added to ``teardowns``)."""

    @task_group(group_id="deployment")
    def deployment(item: dict[str, Any]) -> None:
        rendered = render_tfvars(item)
        applied = apply(rendered)
        measured = MeasureOperator(
            task_id="measure",
            provisioned=applied,
            map_index_template=LABEL,
            # a retry (after a lost worker) reattaches to the run under way
            retries=1,
            # Local: one deployment measures at a time, deferred ones included (the
            # DAG's max_active_tasks counts none that is deferred): the next waits in
            # the scheduler, not in timers polling the load lock its neighbour holds.
            max_active_tis_per_dagrun=1 if target == "local" else None,
        )
        destroyed = destroy.override(retry_delay=timedelta(seconds=retry_s / 2))(rendered)
        chain(rendered, applied, measured, destroyed)
        destroyed.as_teardown(setups=[rendered, applied], on_failure_fail_dagrun=True)
        teardowns.append(destroyed)

    return deployment


@task(map_index_template=LABEL)
def render_tfvars(item: dict[str, Any]) -> dict[str, Any]:
    from cachebench import steps
    from cachebench.models import DeploymentPlan

    _label(item)
    with _skip_when_interrupted():
        plan = steps.render_tfvars(DeploymentPlan.model_validate(item))
    return plan.model_dump(mode="json")


@task(map_index_template=LABEL, retries=2)
def apply(item: dict[str, Any]) -> dict[str, Any]:
    from cachebench import steps
    from cachebench.models import DeploymentPlan

    _label(item)
    with _skip_when_interrupted():
        return steps.apply(DeploymentPlan.model_validate(item)).model_dump(mode="json")


@task(map_index_template=LABEL, retries=3)  # retry_delay: half the DAG's (build_dag)
def destroy(item: dict[str, Any]) -> dict[str, Any]:
    from cachebench import steps
    from cachebench.models import DeploymentPlan

    _label(item)
    return steps.destroy(DeploymentPlan.model_validate(item)).model_dump(mode="json")
