"""Sensor over a point's test duration: done when the load ends, failed early when it breaks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator, Context

from cachebench.triggers.watch import LoadWatchTrigger
from cachebench.watch import check


class WatchLoadSensor(BaseSensorOperator):
    """Deferrable by default: the wait runs on the triggerer, not in a worker slot."""

    template_fields: Sequence[str] = ("loaded",)

    def __init__(self, *, loaded: Any, deferrable: bool = True, **kwargs: Any):
        kwargs.setdefault("poke_interval", 1.0)
        super().__init__(**kwargs)
        self.loaded = loaded
        self.deferrable = deferrable

    def execute(self, context: Context) -> None:
        context["point_label"] = self.loaded["point"]["id"]
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            trigger=LoadWatchTrigger(
                self.loaded["load_pids"],
                self.loaded["server_pids"],
                self.loaded["deadline"],
                poll=float(self.poke_interval),
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool:
        event = check(self.loaded["load_pids"], self.loaded["server_pids"], self.loaded["deadline"])
        if event is None:
            return False
        from cachebench import steps  # lazy: keeps pandas out of DAG parsing

        steps.watch_failed(self.loaded, event)
        return True

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        context["point_label"] = self.loaded["point"]["id"]
        from cachebench import steps  # lazy: keeps pandas out of DAG parsing

        steps.watch_failed(self.loaded, event)
