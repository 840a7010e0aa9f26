"""End to end: the campaign DAG through `dag.test()` on real servers with real Terraform.

Both engines, single node and cluster, a few seconds of load each. Afterwards
no server process may be left and no port held, whatever happened.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from airflow.dag_processing.dagbag import DagBag

from cachebench.local import procs
from cachebench.workspace import RunDir

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

CAMPAIGN = {
    "name": "e2e",
    "target": "local",
    "engines": [
        {"engine": "redis", "versions": ["7.0"]},
        {"engine": "valkey", "versions": ["9.1"]},
    ],
    "topologies": [
        {"cluster_mode": False},
        {"cluster_mode": True, "shards": 3, "replicas": 0},
    ],
    "node_types": ["local.micro"],
    "workloads": [
        {
            "name": "mixed",
            "ratio": "1:4",
            "value_size": 128,
            "key_space": 5000,
            "pipeline": 2,
            "clients": 4,
            "threads": 1,
            "warmup_seconds": 1,
            "duration_seconds": 3,
        }
    ],
    "budget_usd": 0,
}


def run_campaign(fields: dict):
    """Trigger the ad-hoc DAG with the campaign as params, as the UI trigger form does."""
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]
    dag_run = dag.test(run_conf=fields)
    return dag_run, RunDir.for_run(fields["name"], dag_run.run_id)


def deferred_watches(dag_run) -> int:
    """LoadWatchTriggers created while the run ran: each watch handed its wait to one."""
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count())
            .select_from(Trigger)
            .where(
                Trigger.classpath == "cachebench.triggers.watch.LoadWatchTrigger",
                Trigger.created_date >= dag_run.start_date,
                Trigger.created_date <= dag_run.end_date,
            )
        )


def registries(run: RunDir) -> list[dict]:
    return [json.loads(p.read_text()) for p in run.path.glob("points/*/server/registry.json")]


def assert_nothing_left(run: RunDir) -> None:
    regs = registries(run)
    assert regs, "no point ever registered servers"
    for reg in regs:
        for node in reg["nodes"]:
            assert not procs.pid_alive(node["pid"]), f"server {node} still running"
            assert procs.port_free(node["port"]), f"port {node['port']} still held"
            if reg.get("cluster_mode"):
                assert procs.port_free(node["port"] + 10000)
        assert not procs.pid_alive(reg.get("agent_pid")), "metrics agent still running"
    assert not list(run.path.glob("points/*/server/auth")), "a password file outlived destroy"
    for state in run.path.glob("points/*/terraform/terraform.tfstate"):
        assert json.loads(state.read_text()).get("resources") == [], f"{state} not empty"


def test_campaign_end_to_end(airflow_db, results_dir: Path) -> None:
    dag_run, run = run_campaign(CAMPAIGN)
    try:
        assert str(dag_run.state) == "success"
        point_dirs = sorted((run.path / "points").iterdir())
        assert len(point_dirs) == 4
        for pdir in point_dirs:
            load = json.loads((pdir / "load.json").read_text())
            assert load["ops_per_sec"] > 0 and load["requests"] > 0, pdir.name
            assert 0 < load["latency"]["p50"] <= load["latency"]["p99"] <= load["latency"]["max"]
            metrics = pd.read_parquet(pdir / "metrics.parquet")
            assert {"CPUUtilization", "NetworkBytesIn", "BytesUsedForCache"} <= set(
                metrics["metric"].astype(str)
            )
            nodes = metrics["node_id"].nunique()
            assert nodes == (3 if "-c3r0-" in pdir.name else 1), pdir.name
            assert (pdir / "metrics.csv").exists()
            assert list((pdir / "figures").glob("*.png")) and list((pdir / "figures").glob("*.pdf"))
        summary = pd.read_csv(run.path / "summary.csv")
        assert len(summary) == 4 and (summary["status"] == "ok").all()
        # mapped instances carry their point id as label; watch went through the triggerer path
        labels = {
            ti.rendered_map_index
            for ti in dag_run.get_task_instances()
            if ti.task_id == "point.watch"
        }
        assert labels == {p.name for p in point_dirs}
        assert deferred_watches(dag_run) == 4
        report = (run.path / "report.md").read_text()
        assert "redis" in report and "valkey" in report
        assert (run.path / "report.html").exists()
        assert list((run.path / "figures").glob("*.pdf"))
    finally:
        assert_nothing_left(run)


def test_load_failure_still_destroys_and_keeps_finished_points(
    airflow_db, results_dir: Path, monkeypatch
) -> None:
    fields = {**CAMPAIGN, "name": "e2e-fail", "topologies": [{"cluster_mode": False}]}
    monkeypatch.setenv("CACHEBENCH_FAULTS", "run_load@valkey-*")
    dag_run, run = run_campaign(fields)
    try:
        assert str(dag_run.state) == "failed"
        ok = run.point("redis-7.0-single-local.micro-mixed").path
        bad = run.point("valkey-9.1-single-local.micro-mixed").path
        assert (ok / "load.json").exists() and (ok / "metrics.parquet").exists()
        assert not (bad / "load.json").exists()
        assert "run_load" in (bad / "error.txt").read_text()
        summary = pd.read_csv(run.path / "summary.csv")
        status = dict(zip(summary["point_id"], summary["status"], strict=True))
        assert status[ok.name] == "ok" and status[bad.name] != "ok"
        assert re.search(r"valkey-9\.1-single", (run.path / "report.md").read_text())
    finally:
        assert_nothing_left(run)
    assert os.environ["CACHEBENCH_FAULTS"]  # the fault was really armed
