"""Trigger that watches one run's ECS load tasks and its ElastiCache group on the triggerer.

The load tasks are found by the startedBy they share (one per run, attempt and
phase), and by the ARNs they were started with (`task_arns`: one that ECS answers
MISSING for vanished); a reattached watch finds the same set. Done when all
`expected` load tasks stopped with exit code 0. Failed early when a load task
stopped otherwise (its WatchEvent says whether the run was lost: ecs.TaskEnd), or
vanished, when they did not all start within
START_GRACE_S, the replication group is not `available`, the engine evicts
although the workload's data set fits (evictions_allowed=False), or the load
overruns its deadline. AWS is asked at most every `min_poll` seconds
(CloudWatch has one-minute datapoints).
The boto3 calls (and the Airflow connection lookup behind them) run through
asgiref's sync_to_async, as the Amazon provider's own triggers fetch
connections, so the event loop never blocks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from cachebench.models import Strict

if TYPE_CHECKING:
    from cachebench.targets.aws.ecs import TaskEnd

START_GRACE_S = 600  # how long the load operators may take to start every task
MAX_ERRORS = 5  # consecutive failed polls before the run is failed
CLASSPATH = "cachebench.targets.aws.trigger.EcsElastiCacheWatchTrigger"


class WatchEvent(Strict):
    """The watch's end (its TriggerEvent's payload): done, or failed and why; `lost`: a
    load task was ended by something other than its own tool (measured again once)."""

    status: Literal["done", "failed"]
    message: str = ""
    lost: bool = False


class EcsElastiCacheWatchTrigger(BaseTrigger):
    def __init__(
        self,
        *,
        region: str,
        cluster: str,
        started_by: str,
        expected: int,
        container: str,
        replication_group_id: str,
        started_at: float,
        deadline: float,
        evictions_allowed: bool = False,
        aws_conn_id: str | None = "aws_default",
        awslogs: dict[str, str] | None = None,
        task_arns: list[str] | None = None,
        min_poll: float = 60.0,
        poll: float = 1.0,
    ):
        super().__init__()
        self.region, self.cluster = region, cluster
        self.started_by, self.expected = started_by, expected
        self.container, self.replication_group_id = container, replication_group_id
        self.started_at, self.deadline = started_at, deadline
        self.evictions_allowed, self.aws_conn_id = evictions_allowed, aws_conn_id
        self.awslogs, self.task_arns = awslogs, list(task_arns or [])
        self.min_poll, self.poll = min_poll, poll
        # one client per service for the whole watch: a new one is a new boto3 session
        # (its endpoint data parsed again, the connection looked up again) on every poll
        self._clients: dict[str, Any] = {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "region": self.region,
                "cluster": self.cluster,
                "started_by": self.started_by,
                "expected": self.expected,
                "container": self.container,
                "replication_group_id": self.replication_group_id,
                "started_at": self.started_at,
                "deadline": self.deadline,
                "evictions_allowed": self.evictions_allowed,
                "aws_conn_id": self.aws_conn_id,
                "awslogs": self.awslogs,
                "task_arns": self.task_arns,
                "min_poll": self.min_poll,
                "poll": self.poll,
            },
        )

    def _client(self, service: str) -> Any:
        from cachebench.targets.aws.clients import client

        if service not in self._clients:
            self._clients[service] = client(service, self.region, self.aws_conn_id)
        return self._clients[service]

    def _tasks(self) -> list[dict]:
        """The run's load tasks (running or stopped), found by their shared startedBy."""
        from cachebench.targets.aws import ecs

        return ecs.started_tasks(self._client("ecs"), self.cluster, self.started_by)

    def _vanished(self, tasks: list[dict]) -> list[TaskEnd]:
        """The tasks of task_arns not among `tasks` that ECS answers MISSING for."""
        from cachebench.targets.aws import ecs

        seen = {t["taskArn"] for t in tasks}
        unseen = [a for a in self.task_arns if a not in seen]
        return ecs.missing_tasks(self._client("ecs"), self.cluster, unseen) if unseen else []

    def _problems(self, tasks: list[dict], gone: list[TaskEnd]) -> WatchEvent | None:
        """The failed event when a load task ended otherwise than exit 0, or vanished: each
        named with its end and its awslogs tail (what memtier said before it died). Lost
        when every one of them was (a tool's own error among them fails the run as is)."""
        from cachebench.targets.aws import ecs

        ends, problems = list(gone), [f"load {end.describe()}" for end in gone]
        for task in tasks:
            end = ecs.task_end(task, self.container)
            if end is None or end.ok:
                continue
            ends.append(end)
            problem = f"load {end.describe()}"
            if self.awslogs:
                where = ecs.AwsLogs.model_validate(self.awslogs)
                tail = ecs.log_tail(self._client("logs"), where, self.container, task["taskArn"])
                problem += f"; its log ends:\n{tail}"
            problems.append(problem)
        if not problems:
            return None
        theirs = [e for e in ends if not e.ours]  # ours: stopped by a failed or interrupted run
        lost = bool(theirs) and all(e.lost for e in theirs)
        return WatchEvent(status="failed", message="; ".join(problems), lost=lost)

    def check_once(self) -> WatchEvent | None:
        """None while the load runs and the group is healthy; else the event ending the watch."""
        from cachebench.targets.aws import cloudwatch

        tasks = self._tasks()
        if failed := self._problems(tasks, self._vanished(tasks)):
            return failed
        if len(tasks) >= self.expected and all(t.get("lastStatus") == "STOPPED" for t in tasks):
            return WatchEvent(status="done", message=f"{len(tasks)} load tasks finished (exit 0)")
        if len(tasks) < self.expected and time.time() - self.started_at > START_GRACE_S:
            return WatchEvent(
                status="failed",
                message=f"only {len(tasks)} of {self.expected} load tasks started "
                f"within {START_GRACE_S} s (see the measure task's log)",
            )
        try:
            status, nodes = cloudwatch.member_clusters(
                self._client("elasticache"), self.replication_group_id
            )
        except Exception as exc:  # ReplicationGroupNotFound and the like
            return WatchEvent(status="failed", message=f"replication group: {exc}")
        if status != "available":
            return WatchEvent(
                status="failed",
                message=f"replication group {self.replication_group_id} is {status!r}, "
                "not available, under load",
            )
        now = time.time()
        if not self.evictions_allowed and nodes:
            evicted = cloudwatch.evictions_since(
                self._client("cloudwatch"), nodes, self.started_at, now
            )
            if evicted > 0:
                return WatchEvent(
                    status="failed",
                    message=f"the engine evicted {evicted:.0f} keys although the workload's "
                    "data set fits in memory",
                )
        if now > self.deadline:
            return WatchEvent(status="failed", message="load tasks overran their deadline")
        return None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        interval = max(self.poll, self.min_poll)
        errors = 0
        while True:
            try:
                event = await sync_to_async(self.check_once)()
                errors = 0
            except Exception as exc:  # throttling is retried; a broken API fails the run
                errors += 1
                self.log.warning("watch: AWS call failed (%d in a row): %s", errors, exc)
                event = None
                if errors >= MAX_ERRORS:
                    event = WatchEvent(status="failed", message=f"watch could not ask AWS: {exc}")
            if event is not None:
                yield TriggerEvent(event.model_dump())
                return
            await asyncio.sleep(interval)
