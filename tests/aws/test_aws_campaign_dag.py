"""End to end: aws campaigns through the DAG's `dag.test()` against the tests' moto server.

Real here: the DAG and every step of it, include/terraform/aws applied and destroyed
by the real AWS provider with its S3 backend (one state key per deployment,
use_lockfile), the MeasureOperator deferring once per wait: each run's prefill task
on the provider's TaskDoneTrigger, its load tasks on our EcsElastiCacheWatchTrigger
(dag.test runs triggers inline), ECS run_task through the provider's EcsHook, S3
results, CloudWatch GetMetricData, the report. Stood in, and why:
- what moto lacks for the module: tests/aws/moto_gaps.py (cache parameter groups,
  DeleteCacheSubnetGroup, NumCacheClusters with cluster mode off, the member
  clusters, the reader endpoint, a deleted group's disappearance, parameter
  group tags);
- moto's ECS runs no container: aws_fakes.FakeEcs runs each task's own command
  under sh (stand-in memtier and redis-cli, the real AWS CLI against moto's S3,
  the AUTH token read from moto's Secrets Manager), and publishes the nodes'
  CloudWatch datapoints as ElastiCache would.
Counts of moto objects are this run's own (its tags, its startedBy values).
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import moto_gaps
import pandas as pd
import pytest
from airflow.dag_processing.dagbag import DagBag
from aws_fakes import (
    CLUSTER,
    IMAGE_VERSION,
    STATE_BUCKET,
    FakeEcs,
    campaign,
    left_in_moto,
    window_requests,
)

from cachebench.models import DeploymentPlan, RunRecord
from cachebench.operators.measure import MeasureOperator
from cachebench.targets.aws import ecs, target
from cachebench.targets.aws.trigger import EcsElastiCacheWatchTrigger
from cachebench.workspace import RunDir
from dag_runs import task_tries

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
MEASURED = {
    5: window_requests("memtier_real_rate800_t5"),  # what the stand-in writes for 5 s
}
WORKLOADS = [
    campaign("x")["workloads"][0],
    {
        "name": "reads",
        "ratio": "1:9",
        "value_size": 64,
        "key_space": 5000,
        "pipeline": 1,
        "clients": 10,
        "threads": 2,
        "warmup_seconds": 2,
        "duration_seconds": 5,
    },
]


def run_campaign(fields: dict, root: Path, **fake):
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc_aws"]
    with FakeEcs(root, fields["name"], **fake) as agent:
        dag_run = dag.test(run_conf=fields)
    return dag_run, RunDir.for_run(fields["name"], dag_run.run_id), agent


def plans_of(run: RunDir) -> list[DeploymentPlan]:
    return [
        DeploymentPlan.model_validate(d)
        for d in json.loads((run.path / "campaign.json").read_text())["deployments"]
    ]


def assert_destroyed(run: RunDir, run_id: str, tokens: set[str], deployments: int = 2) -> None:
    """Every deployment: its state object is empty, nothing of it left in moto, its tasks
    stopped, and no file of the run holds a token."""
    s3, ecs_client = boto3.client("s3"), boto3.client("ecs")
    settings = target.resolve(None)
    plans = plans_of(run)
    assert len(plans) == deployments
    for plan in plans:
        key = target.state_key(settings, plan)
        state = json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=key)["Body"].read())
        assert state["resources"] == [], f"{key} not empty"
        rg = target.replication_group_id(plan)
        assert left_in_moto(rg, settings.vpc_id) == [], plan.instance
        cleanup = json.loads((run.deployment(plan.instance).path / "cleanup.json").read_text())
        assert cleanup["status"] == "clean", cleanup
        family = ecs.family(plan)
        assert ecs.family_tasks(ecs_client, CLUSTER, family) == [], plan.instance
    assert tokens, "no token was ever read for a task"
    for f in run.path.rglob("*"):
        if f.is_file():
            for token in tokens:
                assert token.encode() not in f.read_bytes(), f"{f} holds the token"


def assert_secret_nowhere_in_airflow(dag_run, airflow_db: Path, tokens: set[str]) -> None:
    """The AUTH tokens the tasks got from Secrets Manager: not in XCom, rendered fields,
    trigger kwargs or the metadata DB's file."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id == dag_run.run_id)).all()
        rtifs = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.run_id == dag_run.run_id
            )
        ).all()
        triggers = session.scalars(
            select(Trigger).where(Trigger.created_date >= dag_run.start_date)
        ).all()
        assert xcoms and rtifs, "nothing to search: the run stored no XCom or rendered fields"
        assert any(t.classpath == target.LOAD_TRIGGER for t in triggers), "no load watch to search"
        assert any(t.classpath == target.TASK_DONE for t in triggers), "no prefill wait"
        for token in tokens:
            for x in xcoms:
                assert token not in json.dumps(x.value, default=str), (x.task_id, x.key)
            for r in rtifs:
                assert token not in json.dumps(r.rendered_fields, default=str), r.task_id
            for t in triggers:
                assert token not in json.dumps(t.kwargs, default=str), t.classpath
    db_files = [p for p in airflow_db.glob("*.db*") if p.is_file()]
    assert db_files, "no sqlite metadata DB found"
    for db in db_files:
        for token in tokens:
            assert token.encode() not in db.read_bytes(), db


def test_one_group_per_deployment_measures_every_run_with_n_tasks_and_a_retry_reattaches(
    airflow_db, results_dir, real_module, on_time, monkeypatch, tmp_path
) -> None:
    name = "e2e-aws"
    fields = {**campaign(name, generators=2), "workloads": WORKLOADS}
    monkeypatch.setenv("CACHEBENCH_RETRY_DELAY_S", "1")
    # The worker is lost once, right after the first load tasks of the run were started and
    # the run's record says "started" in phase load: the try ends, Airflow retries measure.
    lost: list[dict] = []
    defer = MeasureOperator.defer

    def lose_the_worker_once(self, *, trigger, **kwargs):
        if isinstance(trigger, EcsElastiCacheWatchTrigger) and not lost:
            lost.append({"started_by": trigger.started_by, "tasks": tasks_now(trigger)})
            raise RuntimeError("worker lost (test)")
        return defer(self, trigger=trigger, **kwargs)

    def tasks_now(trigger) -> list[str]:
        return [t["taskArn"] for t in trigger._tasks()]

    monkeypatch.setattr(MeasureOperator, "defer", lose_the_worker_once)
    first_call = len(moto_gaps.CALLS)
    dag_run, run, agent = run_campaign(fields, tmp_path / "ecs", time_scale=0.4)
    tokens = set(agent.secrets)
    try:
        assert not agent.errors, agent.errors
        assert str(dag_run.state) == "success"
        plans = plans_of(run)
        assert [len(p.runs) for p in plans] == [2, 2]
        # one replication group per deployment, made once and measured on for both workloads
        calls = [a for svc, a, _ in moto_gaps.CALLS[first_call:] if svc == "elasticache"]
        assert calls.count("create_replication_group") == len(plans)
        for plan in plans:
            log = (run.deployment(plan.instance).terraform / "terraform.log").read_text()
            assert log.count("$ terraform apply") == 1, plan.instance
            servers = json.loads((run.deployment(plan.instance).path / "servers.json").read_text())
            rg = target.replication_group_id(plan)
            assert servers["reported"] == {
                f"{rg}-00{i}": f"{plan.deployment.engine} {plan.deployment.version}" for i in (1, 2)
            }
        # per run: one prefill task and N=2 load tasks, each phase under its own startedBy
        by = agent.started_by()
        assert len(by) == 4 * 2 and sum(map(len, by.values())) == 4 * (1 + 2)
        for plan in plans:
            for r in plan.runs:
                path = run.deployment(plan.instance).load(r.point.id, r.repetition)
                record = RunRecord.model_validate_json((path / "record.json").read_text())
                assert record.status == "done" and record.attempt == 1, r.key
                sbs = record.detail.started_by
                assert len(by[sbs.prefill]) == 1, r.key
                assert len(by[sbs.load]) == 2, r.key
                names = sorted(ecs.task_name(agent.tasks[a]) for a in by[sbs.load])
                assert names == ["g0", "g1"], r.key
                assert all(agent.done[a] == 0 for a in by[sbs.load] + by[sbs.prefill])
        # the retried measure reattached: the lost try's tasks are the run's only ones
        (gone,) = lost
        assert sorted(by[gone["started_by"]]) == sorted(gone["tasks"]) and len(gone["tasks"]) == 2
        measure = task_tries(dag_run, "deployment.measure")
        assert sorted(measure.values()) == [[("success", 1)], [("success", 2)]], measure
        # results: N x the capture's window, from the measured files
        for plan in plans:
            for r in plan.runs:
                rdir = run.point(r.point.id).rep(r.repetition).path
                load = json.loads((rdir / "load.json").read_text())
                assert load["generators"] == 2 and load["requests"] == 2 * MEASURED[5]
                assert load["tool_version"] == IMAGE_VERSION
                assert (rdir / "warmup.json").is_file() and (rdir / "prefill.json").is_file()
                prefill = json.loads((rdir / "prefill.json").read_text())
                assert prefill["keys"] == r.point.workload.key_space
                metrics = pd.read_parquet(rdir / "metrics.parquet")
                assert metrics["node_id"].nunique() == 2  # primary + replica
                assert (metrics["period_s"] == 60).all()
                assert len(json.loads((rdir / "cpu.json").read_text())["generators"]) == 2
        runs = pd.read_csv(run.path / "runs.csv")
        assert len(runs) == 4 and (runs["status"] == "ok").all()
        summary = pd.read_csv(run.path / "summary.csv")
        assert len(summary) == 4
        assert summary["net_out_gbps_peak"].tolist() == pytest.approx([1.2] * 4)
        assert_secret_nowhere_in_airflow(dag_run, airflow_db, tokens)
    finally:
        assert_destroyed(run, dag_run.run_id, tokens)


def test_failed_load_task_fails_the_run_and_still_destroys(
    airflow_db, results_dir, real_module, tmp_path
) -> None:
    """One deployment, two workloads: the second's load tasks fail (memtier exits 1). Its
    run fails with what the dead task said, the first run's result is kept, the DAG run
    fails, and the deployment is destroyed all the same."""
    fields = {
        **campaign("e2e-aws-fail", generators=2),
        "engines": [{"engine": "redis", "versions": ["7.1"]}],
        "workloads": WORKLOADS,
    }
    dag_run, run, agent = run_campaign(
        fields, tmp_path / "ecs", fail=("*-reads/*",), time_scale=0.4
    )
    tokens = set(agent.secrets)
    try:
        assert 1 in agent.done.values()
        assert str(dag_run.state) == "failed"
        ok = run.point("redis-7.1-single-r1-cache.r7g.large-mixed").rep(1).path
        bad = run.point("redis-7.1-single-r1-cache.r7g.large-reads").rep(1).path
        assert (ok / "metrics.parquet").exists() and not (bad / "load.json").exists()
        error = (bad / "error.txt").read_text()
        assert "watch" in error and "exit code 1" in error
        assert "Connection error: TLS handshake failed" in error  # the dead task's awslogs
        measure = task_tries(dag_run, "deployment.measure")
        assert measure == {"redis-7.1-single-r1-cache.r7g.large": [("failed", 1)]}, measure
        runs = pd.read_csv(run.path / "runs.csv")
        status = dict(zip(runs["point_id"], runs["status"], strict=True))
        assert status[ok.parent.name] == "ok" and status[bad.parent.name] != "ok"
    finally:
        assert_destroyed(run, dag_run.run_id, tokens, deployments=1)
