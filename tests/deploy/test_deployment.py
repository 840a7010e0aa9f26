"""Campaigns in a real Airflow deployment: CeleryExecutor, Postgres, Redis, every component.

Triggered through the REST API with the params the UI trigger form sends;
faults a `dag.test()` cannot have (a run marked failed, a worker SIGKILLed, a
scheduler restarted mid-run) must each end with every point destroyed and
nothing left; a scheduled campaign runs on its schedule and backfills.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cachebench.local import procs
from cachebench.workspace import run_slug

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

EXAMPLE = "cachebench__redis-vs-valkey-local"
ADHOC = "cachebench_adhoc"
TINY = "cachebench__tiny-hourly"


def workload(warmup: int, duration: int, name: str = "short") -> dict:
    return {
        "name": name,
        "ratio": "1:4",
        "value_size": 128,
        "key_space": 5000,
        "key_pattern": "R:R",
        "pipeline": 2,
        "clients": 4,
        "threads": 1,
        "warmup_seconds": warmup,
        "duration_seconds": duration,
        "rate_limit": None,
    }


def one_point(dep, name: str, warmup: int, duration: int) -> dict:
    return dep.ui_conf(
        ADHOC,
        name=name,
        engines=[{"engine": "redis", "versions": ["7.0"]}],
        topologies=[{"cluster_mode": False}],
        node_types=["local.micro"],
        workloads=[workload(warmup, duration)],
    )


def run_dir(dep, campaign: str, run_id: str) -> Path:
    return dep.results / campaign / run_slug(run_id)


def assert_nothing_left(run: Path, points: int) -> None:
    regs = [json.loads(p.read_text()) for p in run.glob("points/*/server/registry.json")]
    assert len(regs) == points, f"{len(regs)} registries in {run}, expected {points}"
    for reg in regs:
        for node in reg["nodes"]:
            assert not procs.pid_alive(node["pid"]), f"server {node} still running"
            assert procs.port_free(node["port"]), f"port {node['port']} still held"
            if reg.get("cluster_mode"):
                assert procs.port_free(node["port"] + 10000)
        assert not procs.pid_alive(reg.get("agent_pid")), "metrics agent still running"
    for handles in run.glob("points/*/handles.json"):
        for h in json.loads(handles.read_text()):
            assert not procs.pid_alive(int(h["pid"])), f"load generator {h} still running"
    assert not list(run.glob("points/*/server/auth")), "a password file outlived destroy"
    for state in run.glob("points/*/terraform/terraform.tfstate"):
        assert json.loads(state.read_text()).get("resources") == [], f"{state} not empty"


def destroys(dep, dag_id: str, run_id: str) -> dict[int, str]:
    return {
        ti["map_index"]: ti["state"]
        for ti in dep.tis(dag_id, run_id)
        if ti["task_id"] == "point.destroy"
    }


def test_invalid_params_are_refused_before_any_task_runs(deployment) -> None:
    dep = deployment
    dep.wait_dag(ADHOC)
    before = dep.ok("GET", f"/dags/{ADHOC}/dagRuns")["total_entries"]
    bad = dep.ui_conf(ADHOC, load_generators=0, node_types="local.micro")
    r = dep.trigger(ADHOC, bad)
    assert r.status_code == 400, r.text
    assert "load_generators" in r.text or "node_types" in r.text, r.text
    assert dep.ok("GET", f"/dags/{ADHOC}/dagRuns")["total_entries"] == before


def test_scheduled_campaign_runs_on_schedule_survives_a_scheduler_restart_and_backfills(
    deployment,
) -> None:
    """An hourly campaign, due about a minute after start-up, runs on its schedule.

    Airflow 3 runs a cron at its ticks (not at the end of a past interval), so the
    fixture writes it due soon. The scheduler is restarted while that run's point is
    under load; the run must still succeed. Then a backfill of 2 logical dates.
    """
    dep = deployment
    due = dep.ensure_tiny_due()
    dag = dep.ok("GET", f"/dags/{TINY}")
    assert dag["timetable_summary"] == f"{due.minute} * * * *", dag

    def runs(run_type: str) -> list[dict]:
        return dep.ok("GET", f"/dags/{TINY}/dagRuns", params={"run_type": run_type})["dag_runs"]

    dep.wait(lambda: runs("scheduled"), f"the run scheduled at {due:%H:%M}", 180)
    scheduled = runs("scheduled")[0]
    run_id = scheduled["dag_run_id"]
    assert scheduled["run_after"].startswith(due.strftime("%Y-%m-%dT%H:%M")), scheduled

    dep.wait_ti(TINY, run_id, "point.watch", {"deferred"})
    dep.stop("scheduler")  # SIGTERM, as a rolling restart does
    dep.start("scheduler", ["scheduler"])
    state, _ = dep.wait_run(TINY, run_id, timeout=240)
    assert state == "success", dep.tis(TINY, run_id)
    assert destroys(dep, TINY, run_id) == {0: "success"}
    run = run_dir(dep, "tiny-hourly", run_id)
    assert (next((run / "points").iterdir()) / "metrics.parquet").exists()
    assert_nothing_left(run, 1)
    assert dep.log_text("scheduler").count("Starting the scheduler") >= 2

    out = subprocess.run(
        [
            sys.executable, "-m", "airflow", "backfill", "create", "--dag-id", TINY,
            "--from-date", "2026-01-01T00:00:00+00:00", "--to-date", "2026-01-01T01:59:00+00:00",
            "--max-active-runs", "1",
        ],
        env=dep.env(), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    dep.wait(lambda: len(runs("backfill")) == 2, "two backfill runs", 120)
    backfill = sorted(runs("backfill"), key=lambda r: r["logical_date"])
    dates = [r["logical_date"][:16] for r in backfill]
    assert dates == [f"2026-01-01T00:{due.minute:02d}", f"2026-01-01T01:{due.minute:02d}"]
    for r in backfill:
        state, _ = dep.wait_run(TINY, r["dag_run_id"], timeout=240)
        assert state == "success", r
        assert_nothing_left(run_dir(dep, "tiny-hourly", r["dag_run_id"]), 1)


def test_example_campaign_through_the_rest_api(deployment) -> None:
    dep = deployment
    dep.wait_dag(EXAMPLE)
    conf = dep.ui_conf(EXAMPLE, workloads=[workload(1, 3, "mixed-1to4")])
    r = dep.trigger(EXAMPLE, conf)
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    started = time.monotonic()
    state, seen = dep.wait_run(EXAMPLE, run_id, timeout=420)
    print(f"example campaign: {state} in {time.monotonic() - started:.0f}s")
    run = run_dir(dep, "redis-vs-valkey-local", run_id)
    try:
        assert state == "success", (seen, dep.log_tail("scheduler"))
        summary = pd.read_csv(run / "summary.csv")
        assert len(summary) == 4 and (summary["status"] == "ok").all(), summary
        for pdir in sorted((run / "points").iterdir()):
            load = json.loads((pdir / "load.json").read_text())
            assert load["ops_per_sec"] > 0, pdir.name
            assert (pdir / "metrics.parquet").exists()
        report = (run / "report.md").read_text()
        assert "redis" in report and "valkey" in report
        assert (run / "report.html").exists()

        tis = dep.tis(EXAMPLE, run_id)
        watches = [t for t in tis if t["task_id"] == "point.watch"]
        assert len(watches) == 4
        # the watch was handed to the triggerer: seen deferred, and the triggerer ran it
        assert all("deferred" in seen[("point.watch", t["map_index"])] for t in watches), seen
        for t in watches:  # the triggerer writes its part of the task log next to the worker's
            trigger_log = dep.task_log(
                EXAMPLE, run_id, "point.watch", t["map_index"], "*.trigger.*"
            )
            assert "Trigger fired event" in trigger_log and "'status': 'done'" in trigger_log
        # mapped points ran on the Celery worker: its queue, its log names each of them
        worker = dep.log_text("worker")
        for t in tis:
            if t["task_id"].startswith("point.") and t["task_id"] != "point.watch":
                assert t["queue"] == "default", t
                assert t["hostname"], t
        for t in (t for t in tis if t["task_id"] == "point.run_load"):
            pat = (
                rf"Executing workload in Celery: .*task_id='point\.run_load'.*"
                rf"run_id='{re.escape(run_id)}'.*map_index={t['map_index']},"
            )
            assert re.search(pat, worker), f"{t['rendered_map_index']} not in the worker log"
    finally:
        assert_nothing_left(run, 4)


def test_run_marked_failed_while_loading_still_destroys(deployment) -> None:
    dep = deployment
    dep.wait_dag(ADHOC)
    r = dep.trigger(ADHOC, one_point(dep, "deploy-markfailed", warmup=1, duration=40))
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    dep.wait_ti(ADHOC, run_id, "point.watch", {"deferred"})
    dep.ok("PATCH", f"/dags/{ADHOC}/dagRuns/{run_id}", json={"state": "failed"})
    state, _ = dep.wait_run(ADHOC, run_id, timeout=180)
    run = run_dir(dep, "deploy-markfailed", run_id)
    states = {t["task_id"]: t["state"] for t in dep.tis(ADHOC, run_id)}
    # Airflow 3.3 kills the running watch, skips the pending non-teardown tasks, and keeps
    # the run going until its teardowns are done: destroy runs.
    assert states["point.watch"] == "failed", states
    assert states["point.collect"] == states["point.export"] == "skipped", states
    assert destroys(dep, ADHOC, run_id) == {0: "success"}, states
    assert_nothing_left(run, 1)
    # The report is a teardown too: it runs, lists the point without a result and fails,
    # so the run the user marked failed stays failed (with on_failure_fail_dagrun).
    assert states["report"] == "failed", states
    assert state == "failed"
    assert (run / "report.md").exists()


def test_worker_killed_mid_load_still_destroys(deployment) -> None:
    dep = deployment
    dep.wait_dag(ADHOC)
    r = dep.trigger(ADHOC, one_point(dep, "deploy-workerkill", warmup=12, duration=2))
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    dep.wait_ti(ADHOC, run_id, "point.run_load", {"running"})
    run = run_dir(dep, "deploy-workerkill", run_id)
    point = next((run / "points").iterdir())
    dep.wait(lambda: (point / "load" / "warmup").exists(), "the warm-up to start", 60, 0.2)
    dep.kill("worker")  # SIGKILL to the worker's whole process group, task process included
    dep.start_worker()
    state, _ = dep.wait_run(ADHOC, run_id, timeout=240)
    assert state == "failed"
    assert dep.ti(ADHOC, run_id, "point.run_load")["state"] == "failed"
    assert destroys(dep, ADHOC, run_id) == {0: "success"}, dep.tis(ADHOC, run_id)
    assert_nothing_left(run, 1)
