"""Trigger that watches a local run's load on the triggerer, holding no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from cachebench.targets.local.liveness import check

POLL_S = 0.25  # a /proc check is cheap: the end of a load is seen within a quarter second


class LoadWatchTrigger(BaseTrigger):
    def __init__(
        self,
        load_pids: list[int],
        server_pids: list[int],
        status_file: str | None = None,
        poll: float = POLL_S,
    ):
        super().__init__()
        self.load_pids, self.server_pids = load_pids, server_pids
        self.status_file, self.poll = status_file, poll

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "cachebench.targets.local.trigger.LoadWatchTrigger",
            {
                "load_pids": self.load_pids,
                "server_pids": self.server_pids,
                "status_file": self.status_file,
                "poll": self.poll,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            event = check(self.load_pids, self.server_pids, self.status_file)
            if event is not None:
                yield TriggerEvent(event)
                return
            await asyncio.sleep(self.poll)
