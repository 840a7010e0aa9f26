"""End to end: a two-point aws campaign through the DAG's `dag.test()` against the
tests' moto server.

Real here: the DAG and every step of it, Terraform with its S3 backend (one
state key per point, use_lockfile), ECS run_task / describe_tasks /
stop_task, the deferrable watch trigger, S3 results, CloudWatch
GetMetricData, the report. Stood in, and why:
- the Terraform module is include/terraform/aws-standin (same variables and
  outputs, built-in resources that create the group and secret in moto):
  the AWS provider plugin cannot be downloaded here;
- the load tasks are started by the provider's EcsRunTaskOperator (deferrable,
  reattach, awslogs), whose TaskDoneTrigger runs inline under dag.test();
- ECS tasks in moto never run a container: FakeLoadTasks (aws_fakes.py)
  puts the memtier result files into S3 as the container would, publishes
  the nodes' CloudWatch datapoints as ElastiCache would, and marks each task
  STOPPED with an exit code, and writes the task's awslogs stream.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from airflow.dag_processing.dagbag import DagBag
from aws_fakes import (
    CLUSTER,
    IMAGE_VERSION,
    MEMTIER_JSON,
    STATE_BUCKET,
    TOKEN,
    FakeLoadTasks,
    campaign,
)

from cachebench.loadgen.memtier import parse_memtier_json
from cachebench.models import Point
from cachebench.targets import aws as target
from cachebench.workspace import RunDir

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def run_campaign(fields: dict, fail: tuple[str, ...] = ()):
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc_aws"]
    agent = FakeLoadTasks(CLUSTER, fail=fail)
    agent.start()
    try:
        dag_run = dag.test(run_conf=fields)
    finally:
        agent.stop()
    return dag_run, RunDir.for_run(fields["name"], dag_run.run_id), agent


def assert_destroyed(aws, run: RunDir, run_id: str) -> None:
    """Every point: its state object is empty, its group deleting, its tasks stopped."""
    s3, ec, ecs = aws.client("s3"), aws.client("elasticache"), aws.client("ecs")
    settings = target.resolve(None)
    found = run.path.glob("points/*/point.json")
    points = [Point.model_validate_json(p.read_text()) for p in found]
    assert len(points) == 2
    for point in points:
        key = target.state_key(settings, point, run_id)
        state = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=key)["Body"].read())
        assert state["resources"] == [], f"{key} not empty"
        rg = target.replication_group_id(point, run_id)
        group = ec.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"][0]
        assert group["Status"] == "deleting", point.id
        cleanup = json.loads((run.point(point.id).path / "cleanup.json").read_text())
        assert cleanup["status"] == "clean", cleanup
    assert ecs.list_tasks(cluster=CLUSTER, desiredStatus="RUNNING")["taskArns"] == []
    for f in run.path.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".csv", ".md", ".html", ".txt", ".log"):
            assert TOKEN not in f.read_text(errors="replace"), f"{f} holds the token"


def load_states(dag_run) -> dict[str, list[str]]:
    """State of every load generator task (point.load_gN) over the mapped points."""
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        out: dict[str, list[str]] = {}
        for ti in tis:
            if ti.task_id.startswith("point.load_g"):
                out.setdefault(ti.task_id.removeprefix("point."), []).append(str(ti.state))
    return {k: sorted(v) for k, v in out.items()}


def deferred(dag_run, classpath: str = "cachebench.triggers.aws.EcsElastiCacheWatchTrigger") -> int:
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(Trigger)
            .where(
                Trigger.classpath == classpath,
                Trigger.created_date >= dag_run.start_date,
            )
        )


def test_aws_campaign_end_to_end(airflow_db, results_dir, standin) -> None:
    fields = campaign("e2e-aws", generators=2)
    dag_run, run, agent = run_campaign(fields)
    try:
        assert str(dag_run.state) == "success"
        assert sorted(agent.done.values()) == [0, 0, 0, 0]  # 2 points x 2 load tasks
        single = parse_memtier_json(MEMTIER_JSON, started_at=0.0)
        for pdir in sorted((run.path / "points").iterdir()):
            load = json.loads((pdir / "load.json").read_text())
            assert load["generators"] == 2 and load["requests"] == 2 * single.requests
            assert load["tool_version"] == IMAGE_VERSION  # the container's version line
            assert load["latency"]["p99"] == pytest.approx(single.latency.p99, rel=1e-3)
            assert (pdir / "warmup.json").exists()
            metrics = pd.read_parquet(pdir / "metrics.parquet")
            assert metrics["node_id"].nunique() == 2  # primary + replica
            assert (metrics["period_s"] == 60).all()
            assert {"CPUUtilization", "NetworkBytesOut", "Evictions"} <= set(
                metrics["metric"].astype(str)
            )
        summary = pd.read_csv(run.path / "summary.csv")
        assert len(summary) == 2 and (summary["status"] == "ok").all()
        assert summary["net_out_gbps_peak"].tolist() == pytest.approx([1.2, 1.2])
        assert summary["allowance_first_exceeded_s"].notna().all()
        assert "burst allowance ran out" in (run.path / "report.md").read_text()
        assert deferred(dag_run) == 2  # each watch handed its wait to the triggerer
        # The load ran through the provider's EcsRunTaskOperator, one task per generator,
        # deferred to its TaskDoneTrigger; the DAG's 3 other generator tasks skipped.
        states = load_states(dag_run)
        assert states["load_g0"] == states["load_g1"] == ["success", "success"]
        assert all(states[f"load_g{g}"] == ["skipped", "skipped"] for g in (2, 3, 4))
        assert deferred(dag_run, "airflow.providers.amazon.aws.triggers.ecs.TaskDoneTrigger") == 4
        ecs = standin.client("ecs")
        arns = ecs.list_tasks(cluster=CLUSTER, desiredStatus="STOPPED")["taskArns"]
        tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
        ours = [t for t in tasks if t["taskArn"] in agent.done]
        assert len({t["startedBy"] for t in ours}) == 4  # reattach: one startedBy per generator
    finally:
        assert_destroyed(standin, run, dag_run.run_id)


def test_failed_load_task_fails_the_point_and_still_destroys(
    airflow_db, results_dir, standin
) -> None:
    fields = campaign("e2e-aws-fail", generators=2)
    dag_run, run, agent = run_campaign(fields, fail=("valkey-*",))
    assert 1 in agent.done.values()
    try:
        assert str(dag_run.state) == "failed"
        ok = run.point("redis-7.1-single-r1-cache.r7g.large-mixed").path
        bad = run.point("valkey-8.0-single-r1-cache.r7g.large-mixed").path
        assert (ok / "metrics.parquet").exists() and not (bad / "load.json").exists()
        error = (bad / "error.txt").read_text()
        assert "watch" in error and "exit code 1" in error
        assert "Connection error: TLS" in error  # the dead task's awslogs tail
        # the valkey point's generators failed (and their retry refused to start anew)
        states = load_states(dag_run)
        assert sorted(states["load_g0"]) == ["failed", "success"]
        summary = pd.read_csv(run.path / "summary.csv")
        status = dict(zip(summary["point_id"], summary["status"], strict=True))
        assert status[ok.name] == "ok" and status[bad.name] != "ok"
    finally:
        assert_destroyed(standin, run, dag_run.run_id)
