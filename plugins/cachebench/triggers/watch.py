"""Trigger that watches a point's load on the triggerer, holding no worker slot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from cachebench.watch import check


class LoadWatchTrigger(BaseTrigger):
    def __init__(
        self, load_pids: list[int], server_pids: list[int], deadline: float, poll: float = 1.0
    ):
        super().__init__()
        self.load_pids, self.server_pids = load_pids, server_pids
        self.deadline, self.poll = deadline, poll

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "cachebench.triggers.watch.LoadWatchTrigger",
            {
                "load_pids": self.load_pids,
                "server_pids": self.server_pids,
                "deadline": self.deadline,
                "poll": self.poll,
            },
        )

    def check_once(self) -> dict[str, Any] | None:
        return check(self.load_pids, self.server_pids, self.deadline)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            event = self.check_once()
            if event is not None:
                yield TriggerEvent(event)
                return
            await asyncio.sleep(self.poll)
