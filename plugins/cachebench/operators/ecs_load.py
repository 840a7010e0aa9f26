"""One memtier load generator of a point: the provider's EcsRunTaskOperator.

A point's group holds one of these per generator. They take the run_task
arguments `prepare_load` built at run time (task definition revision with the
AUTH secret, cluster, awsvpc network, container overrides, tags, awslogs), so
the arguments are computed per point while the task shape is fixed when the
DAG is parsed. Everything else is the provider's: run_task, deferral to its
TaskDoneTrigger (no worker slot while memtier runs), awslogs streaming,
`reattach` after a lost worker, the exit-code check.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


class EcsLoadGeneratorOperator(EcsRunTaskOperator):
    """Generator `generator` of the point whose `prepare_load` output is `prepared`.

    Skips itself when the run asked for fewer generators than the DAG has
    tasks for. A retry only reattaches to the generator's running task: a
    fresh start would measure a different window than the other generators.
    """

    template_fields = (*EcsRunTaskOperator.template_fields, "prepared")

    def __init__(self, *, prepared: Any, generator: int, **kwargs: Any) -> None:
        kwargs.setdefault("deferrable", True)
        kwargs.setdefault("reattach", True)
        # The real values come from `prepared` at run time (see _take_prepared).
        super().__init__(task_definition="", cluster="", overrides={}, **kwargs)
        self.prepared = prepared
        self.generator = generator
        self._first_try = True

    def _take_prepared(self, context: Context) -> None:
        run = self.prepared["ecs_run"]
        self.aws_conn_id, self.region_name = run["aws_conn_id"], run["region"]
        self.cluster, self.task_definition = run["cluster"], run["task_definition"]
        self.launch_type = run["launch_type"]
        self.network_configuration = run["network_configuration"]
        self.tags = run["tags"]
        self.container_name = run["container_name"]
        self.awslogs_group = run["awslogs_group"]
        self.awslogs_stream_prefix = run["awslogs_stream_prefix"]
        self.awslogs_region = run["region"]
        self.overrides = run["overrides"][self.generator]
        self.waiter_delay = run["waiter_delay"]
        self.waiter_max_attempts = max(1, run["wait_seconds"] // run["waiter_delay"])

    def execute(self, context: Context) -> Any:
        context["point_label"] = self.prepared["point"]["id"]
        wanted = len(self.prepared["ecs_run"]["overrides"])
        if self.generator >= wanted:
            raise AirflowSkipException(f"this run uses {wanted} load generators")
        self._take_prepared(context)
        self._first_try = context["ti"].try_number <= 1
        return super().execute(context)

    def _start_task(self) -> None:
        if not self._first_try:
            raise AirflowFailException(
                f"load generator {self.generator} has no running task to reattach to; "
                "starting it again would measure a different window than the others"
            )
        super()._start_task()

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        context["point_label"] = self.prepared["point"]["id"]
        self._take_prepared(context)  # a resumed task is a fresh instance: set the values again
        return super().execute_complete(context, event)
