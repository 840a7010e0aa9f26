"""Sensor over a point's test duration: done when the load ends, failed early when it breaks.

The target says how to watch (`item["watch"]`: a trigger class and its
arguments), so one sensor serves every target.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.sdk.exceptions import AirflowRescheduleException
from airflow.sdk.module_loading import import_string


class WatchLoadSensor(BaseSensorOperator):
    """Deferrable by default: the wait runs on the triggerer, not in a worker slot."""

    template_fields: Sequence[str] = ("loaded",)

    def __init__(self, *, loaded: Any, deferrable: bool = True, **kwargs: Any):
        kwargs.setdefault("poke_interval", 1.0)
        super().__init__(**kwargs)
        self.loaded = loaded
        self.deferrable = deferrable

    def _trigger(self):
        spec = self.loaded["watch"]
        return import_string(spec["classpath"])(**spec["kwargs"], poll=float(self.poke_interval))

    def execute(self, context: Context) -> None:
        context["point_label"] = self.loaded["point"]["id"]
        if not self.deferrable:
            return super().execute(context)
        trigger = self._trigger()
        # aws: the load tasks start beside the watch; until they all exist the watch
        # gives its slot back and looks again (deferring now would follow nothing).
        if not getattr(trigger, "load_started", lambda: True)():
            every = min(float(getattr(trigger, "min_poll", 1.0)), 10.0)
            wait = timedelta(seconds=max(float(self.poke_interval), every, 1.0))
            raise AirflowRescheduleException(datetime.now(UTC) + wait)
        self.defer(trigger=trigger, method_name="execute_complete")

    def poke(self, context: Context) -> bool:
        event = self._trigger().check_once()
        if event is None:
            return False
        self.execute_complete(context, event)
        return True

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        from cachebench import steps  # lazy: keeps pandas out of DAG parsing

        context["point_label"] = self.loaded["point"]["id"]
        steps.watch_failed(self.loaded, event)
