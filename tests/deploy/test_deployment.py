"""Campaigns in a real Airflow deployment: CeleryExecutor, Postgres, Redis, every component.

Triggered through the REST API with the params the UI trigger form sends. A
deployment is provisioned once and one `measure` task measures every run on
it, deferring to the triggerer while each run loads. Faults a `dag.test()`
cannot have (a run marked failed, a worker SIGKILLed while measure runs and
while it is deferred, a scheduler restarted mid-run, a failed task cleared
through the API) must each end with every deployment destroyed and nothing
left (tests/e2e/leftovers.py); a scheduled campaign runs on its schedule and
backfills.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psutil
import pytest
from form_params import ADHOC, LIGHT_NODE, one_deployment, workload
from leftovers import assert_nothing_left

from cachebench.workspace import run_slug

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

EXAMPLE = "cachebench__redis-vs-valkey-local"
TINY = "cachebench__tiny-hourly"
MEASURE, DESTROY = "deployment.measure", "deployment.destroy"
REDIS = "redis-7.0-single-local.micro"  # README: engine-version-topology-node_type
LIGHT = f"redis-7.0-single-{LIGHT_NODE}"  # the deployment of a light load
TRIGGER = "cachebench.targets.local.trigger.LoadWatchTrigger"
RUNNER = "cachebench.targets.local.runner"  # `python -m` module of a run's detached runner


def run_dir(dep, campaign: str, run_id: str) -> Path:
    return dep.results / campaign / run_slug(run_id)


def run_files(run: Path, deployment: str, point: str, rep: int) -> tuple[Path, Path]:
    """A run's load folder (record.json, job.json, runner files) and its results folder."""
    load = run / "deployments" / deployment / "load" / point / f"rep{rep}"
    return load, run / "points" / point / f"rep{rep}"


def has_result(results: Path) -> bool:
    return (results / "load.json").is_file() and (results / "metrics.parquet").is_file()


def record(load: Path) -> dict:
    return json.loads((load / "record.json").read_text())


def nothing_left(run: Path, deployments: int) -> None:
    """Every deployment destroyed ("clean" cleanup) and nothing of the run left."""
    cleanups = sorted(run.glob("deployments/*/cleanup.json"))
    assert len(cleanups) == deployments, f"{len(cleanups)} destroyed, expected {deployments}"
    assert_nothing_left(run)


def by_label(dep, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
    """A mapped task's state by its label (the deployment id)."""
    return {
        ti["rendered_map_index"]: ti["state"]
        for ti in dep.tis(dag_id, run_id)
        if ti["task_id"] == task_id
    }


def task_process(ti_id: str) -> psutil.Process | None:
    """The process running a task instance on the worker (Airflow titles it with the id)."""
    for proc in psutil.process_iter(["cmdline"]):
        if " ".join(proc.info["cmdline"] or []).startswith(f"airflow worker -- {ti_id}"):
            return proc
    return None


def gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def task_states(dep, dag_id: str, run_id: str) -> dict[str, str]:
    """Task id -> state, for a run of one deployment (mapped tasks by their instance)."""
    return {
        t["task_id"]: t["state"]
        for t in dep.tis(dag_id, run_id)
        if t["map_index"] >= 0 or not t["task_id"].startswith("deployment.")
    }


def runners(load: Path) -> list[int]:
    """Pids of every runner process of one run (its job file is in its argv)."""
    job = str(load / "job.json")
    return [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if RUNNER in (p.info["cmdline"] or []) and job in (p.info["cmdline"] or [])
    ]


def phase(load: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return json.loads((load / "status.json").read_text())["phase"]
    return ""


def utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_invalid_params_are_refused_before_any_task_runs(deployment) -> None:
    dep = deployment
    dep.wait_dag(ADHOC)
    before = dep.ok("GET", f"/dags/{ADHOC}/dagRuns")["total_entries"]
    for bad, field in (
        ({"load_generators": 0, "node_types": "local.micro"}, "node_types"),
        ({"repetitions": 0}, "repetitions"),
        ({"repetitions": 21}, "repetitions"),
        ({"redeploy_per_repetition": "yes"}, "redeploy_per_repetition"),
    ):
        r = dep.trigger(ADHOC, dep.ui_conf(ADHOC, **bad))
        assert r.status_code == 400, (bad, r.text)
        assert f"Invalid input for param {field}" in r.text, r.text
    assert dep.ok("GET", f"/dags/{ADHOC}/dagRuns")["total_entries"] == before


def test_scheduled_campaign_runs_on_schedule_survives_a_scheduler_restart_and_backfills(
    deployment,
) -> None:
    """An hourly campaign, due about a minute after start-up, runs on its schedule.

    Airflow 3 runs a cron at its ticks (not at the end of a past interval), so the
    fixture writes it due soon. The scheduler is restarted while that run's measure
    task is deferred on its load; the run must still succeed. Then a backfill of 2
    logical dates.
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

    dep.wait_ti(TINY, run_id, MEASURE, {"deferred"})
    dep.stop("scheduler")  # SIGTERM, as a rolling restart does
    dep.start("scheduler", ["scheduler"])
    state, _ = dep.wait_run(TINY, run_id, timeout=240)
    assert state == "success", dep.tis(TINY, run_id)
    tiny = "redis-7.0-single-local.micro"
    assert by_label(dep, TINY, run_id, DESTROY) == {tiny: "success"}
    run = run_dir(dep, "tiny-hourly", run_id)
    assert has_result(run / "points" / f"{tiny}-tiny" / "rep1")
    nothing_left(run, 1)
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
        nothing_left(run_dir(dep, "tiny-hourly", r["dag_run_id"]), 1)


def test_example_campaign_through_the_rest_api(deployment) -> None:
    """The example campaign as the form sends it (a short workload, one repetition): every
    deployment measured by one task deferred to the triggerer, every task on the worker."""
    dep = deployment
    dep.wait_dag(EXAMPLE)
    conf = dep.ui_conf(EXAMPLE, workloads=[workload(1, 3, "mixed-1to4")], repetitions=1)
    r = dep.trigger(EXAMPLE, conf)
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    # include/campaigns/redis-vs-valkey-local.yaml, named as the README says
    deployments = {
        f"{engine}-single-{node_type}"
        for engine in ("redis-7.0", "valkey-9.1")
        for node_type in ("local.t4g.micro", "local.t4g.medium")
    }
    # label shown while deferred -> trigger id -> (classpath, triggerer ids seen)
    deferred: dict[str, dict[int, tuple[str, set[int | None]]]] = {}
    held: list[str] = []

    def watch_deferrals(tis: list[dict]) -> None:
        now = datetime.now(UTC)
        for t in tis:
            if t["task_id"] != MEASURE or t["state"] != "deferred" or not t["trigger"]:
                continue
            trig = t["trigger"]
            triggers = deferred.setdefault(t["rendered_map_index"], {})
            triggers.setdefault(trig["id"], (trig["classpath"], set()))[1].add(trig["triggerer_id"])
            # a deferred task holds no worker slot: its task process is gone
            if (now - utc(trig["created_date"])).total_seconds() > 3 and task_process(t["id"]):
                held.append(f"{t['rendered_map_index']} deferred but its process runs")

    started = time.monotonic()
    state, seen = dep.wait_run(EXAMPLE, run_id, timeout=420, each=watch_deferrals)
    print(f"example campaign: {state} in {time.monotonic() - started:.0f}s")
    run = run_dir(dep, "redis-vs-valkey-local", run_id)
    try:
        assert state == "success", (seen, dep.log_tail("scheduler"))
        runs = pd.read_csv(run / "runs.csv")
        assert len(runs) == 4 and (runs["status"] == "ok").all(), runs
        summary = pd.read_csv(run / "summary.csv")
        assert len(summary) == 4 and (summary["runs_ok"] == 1).all(), summary
        for d in deployments:
            rdir = run / "points" / f"{d}-mixed-1to4" / "rep1"
            load = json.loads((rdir / "load.json").read_text())
            assert load["ops_per_sec"] > 0, d
            assert (rdir / "metrics.parquet").exists(), d
        report = (run / "report.md").read_text()
        assert "redis" in report and "valkey" in report
        assert (run / "report.html").exists()

        tis = dep.tis(EXAMPLE, run_id)
        measures = [t for t in tis if t["task_id"] == MEASURE]
        assert {t["rendered_map_index"] for t in measures} == deployments
        # Each measure was handed to the triggerer (a Trigger row the triggerer picked up,
        # one per run: one here), showed its deployment's label meanwhile and held no
        # worker process.
        assert set(deferred) == deployments, deferred
        for label, triggers in deferred.items():
            assert len(triggers) == 1, (label, triggers)
            ((classpath, triggerers),) = triggers.values()
            assert classpath == TRIGGER and triggerers - {None}, (label, triggers)
        assert held == []
        worker = dep.log_text("worker")
        for t in measures:
            events = dep.log_events(EXAMPLE, run_id, MEASURE, t["map_index"])
            assert events.count("Pausing task as DEFERRED. ") == 1, t["rendered_map_index"]
            trigger_log = dep.task_log(EXAMPLE, run_id, MEASURE, t["map_index"], "*.trigger.*")
            assert "Trigger fired event" in trigger_log and "'status': 'done'" in trigger_log
            # started, then resumed after the load: both on the Celery worker
            executions = len(re.findall(rf"Executing workload in Celery: .*{t['id']}", worker))
            assert executions == 2, (t["rendered_map_index"], executions)
        for t in tis:  # every task ran on the Celery worker's queue
            assert t["queue"] == "default" and t["hostname"], t
            assert re.search(rf"Executing workload in Celery: .*{t['id']}", worker), t["task_id"]
    finally:
        nothing_left(run, 4)


def test_run_marked_failed_while_loading_still_destroys(deployment) -> None:
    dep = deployment
    dep.wait_dag(ADHOC)
    r = dep.trigger(
        ADHOC,
        one_deployment(dep, "deploy-markfailed", warmup=1, duration=40, repetitions=2, light=True),
    )
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = run_dir(dep, "deploy-markfailed", run_id)
    first, _ = run_files(run, LIGHT, f"{LIGHT}-short", 1)
    second, _ = run_files(run, LIGHT, f"{LIGHT}-short", 2)
    dep.wait_ti(ADHOC, run_id, MEASURE, {"deferred"})
    dep.wait(lambda: phase(first) == "measured", "the first run's measured window", 60, 0.2)
    dep.ok("PATCH", f"/dags/{ADHOC}/dagRuns/{run_id}", json={"state": "failed"})
    ended = {"success", "failed"}
    dep.wait(
        lambda: {(s := task_states(dep, ADHOC, run_id)).get(DESTROY), s.get("report")} <= ended,
        "destroy and report to end",
        180,
    )
    time.sleep(5)  # the scheduler had its chance to recompute the run's state
    states = task_states(dep, ADHOC, run_id)
    # Airflow 3.3 fails the deferred measure, skips what is pending and keeps the run
    # going until its teardowns are done: destroy stops the run's load and the servers.
    assert states[MEASURE] == "failed", states
    assert states[DESTROY] == "success", states
    assert not (second / "record.json").exists(), "the second run started after the mark"
    nothing_left(run, 1)
    # The report is a teardown too: it runs, lists the runs without a result and fails,
    # so the run the user marked failed stays failed (with on_failure_fail_dagrun).
    assert states["report"] == "failed", states
    assert dep.run(ADHOC, run_id)["state"] == "failed"
    assert (run / "report.md").exists()


def test_worker_killed_while_measure_runs_and_while_deferred(deployment) -> None:
    """One deployment, two runs: a short one, then a long one. The worker is SIGKILLed
    while measure runs between them (run 1 collected, run 2's runner started, the
    deferral not yet sent): the scheduler fails the try after the heartbeat timeout and
    the retry reattaches to run 2, still loading, without starting it again. Then the
    worker is killed while measure is deferred: nothing is lost, no try is added. The
    run succeeds, its deployment is destroyed once, nothing is left."""
    dep = deployment
    dep.wait_dag(ADHOC)
    # run 2 loads long enough to outlive the heartbeat timeout (30 s) and the retry
    fields = dep.ui_conf(
        ADHOC,
        name="deploy-workerkill",
        engines=[{"engine": "redis", "versions": ["7.0"]}],
        topologies=[{"cluster_mode": False}],
        node_types=[LIGHT_NODE],
        workloads=[workload(1, 2), workload(1, 90, name="long", light=True)],
        repetitions=1,
    )
    r = dep.trigger(ADHOC, fields)
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = run_dir(dep, "deploy-workerkill", run_id)
    load1, result1 = run_files(run, LIGHT, f"{LIGHT}-short", 1)
    load2, result2 = run_files(run, LIGHT, f"{LIGHT}-long", 1)
    try:
        dep.wait(lambda: phase(load1) not in ("", "waiting"), "run 1 to load", 180, 0.05)
        # measure resumes after run 1: stop its supervisor once the task process runs
        # cachebench (its Pre Execute ended), so what it does next never reaches the API
        ti = dep.ti(ADHOC, run_id, MEASURE)

        def resumed_past_pre_execute() -> bool:
            events = dep.log_events(ADHOC, run_id, MEASURE, 0)
            starts = [i for i, e in enumerate(events) if e == "::group::Pre Execute"]
            return len(starts) >= 2 and "::endgroup::" in events[starts[1] :]

        dep.wait(resumed_past_pre_execute, "measure to resume after run 1", 120, 0.05)
        task = task_process(ti["id"])
        assert task is not None, "measure's task process is not on this machine"
        supervisor = task.parent()
        supervisor.suspend()
        dep.wait(
            lambda: has_result(result1) and (load2 / "record.json").exists(),
            "run 1 collected and run 2 started",
            90,
            0.05,
        )
        dep.wait(lambda: phase(load2) == "measured", "run 2 to load", 60, 0.1)
        time.sleep(1)  # the task process got as far as it can without its supervisor
        assert record(load2)["status"] == "started"
        ti = dep.ti(ADHOC, run_id, MEASURE)
        assert (ti["state"], ti["try_number"]) == ("running", 1), ti  # never deferred
        runner = record(load2)["detail"]["pid"]
        collected = (result1 / "load.json").stat().st_mtime_ns
        dep.kill("worker")
        dep.wait(lambda: gone(task), "the task process to die with its worker", 10, 0.1)
        dep.start_worker()

        # The retry reattaches to run 2, still loading.
        dep.wait(
            lambda: (lambda t: (t["try_number"], t["state"]) == (2, "deferred"))(
                dep.ti(ADHOC, run_id, MEASURE)
            ),
            "the retry of measure to defer",
            180,
        )
        assert phase(load2) == "measured", "run 2 ended before the retry: nothing to reattach to"
        assert record(load2)["attempt"] == 1 and record(load2)["detail"]["pid"] == runner
        assert runners(load2) == [runner], "run 2 was started again"
        assert dep.ti(ADHOC, run_id, MEASURE)["trigger"]["classpath"] == TRIGGER
        said = [e for e in dep.log_events(ADHOC, run_id, MEASURE, 0, 2) if "long, rep 1)" in e]
        assert said and said[0].endswith("reattached (attempt 1) [1 of 2 runs have results]")

        # Killed while measure is deferred: the triggerer holds the wait, not the worker.
        ready = dep.log_text("worker").count(" ready.")
        dep.kill("worker")
        dep.start_worker()
        dep.wait(lambda: dep.log_text("worker").count(" ready.") > ready, "worker", 120)
        ti = dep.ti(ADHOC, run_id, MEASURE)
        assert (ti["state"], ti["try_number"]) == ("deferred", 2), ti
        state, _ = dep.wait_run(ADHOC, run_id, timeout=300)
        assert state == "success", dep.tis(ADHOC, run_id)
        assert dep.tries(ADHOC, run_id, MEASURE) == [(1, "failed"), (2, "success")]
        assert dep.tries(ADHOC, run_id, DESTROY) == [(1, "success")]
        assert has_result(result1) and has_result(result2)
        assert (result1 / "load.json").stat().st_mtime_ns == collected, "run 1 measured again"
        assert record(load1)["attempt"] == 1 and record(load2)["attempt"] == 1
        tf_log = (run / "deployments" / LIGHT / "terraform" / "terraform.log").read_text()
        assert tf_log.count("$ terraform apply") == 1 and tf_log.count("$ terraform destroy") == 1
    finally:
        with contextlib.suppress(AssertionError):  # destroy has run before anything is judged
            dep.wait_run(ADHOC, run_id, timeout=300)
        nothing_left(run, 1)


def test_clearing_a_failed_measure_measures_only_the_failed_run(deployment) -> None:
    """The load generators of run 1 of 2 are SIGKILLed, and again when it is measured again
    (attempt 2): run 2 is still measured, then measure and the run fail. Clearing the failed
    measure through the REST API (Airflow clears its setups and teardowns with it: the
    deployment is provisioned again) measures run 1 alone (attempt 3); run 2's result is
    not rewritten."""
    dep = deployment
    dep.wait_dag(ADHOC)
    r = dep.trigger(ADHOC, one_deployment(dep, "deploy-clear", warmup=1, duration=2, repetitions=2))
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = run_dir(dep, "deploy-clear", run_id)
    (load1, result1), (load2, result2) = (
        run_files(run, REDIS, f"{REDIS}-short", k) for k in (1, 2)
    )
    try:
        handles = load1 / "handles.json"
        killed: list[list[int]] = []
        for attempt in (1, 2):  # each attempt writes its own handles.json

            def loading() -> bool:
                try:
                    pids = [h["pid"] for h in json.loads(handles.read_text())]
                except (OSError, ValueError):
                    return False
                return pids not in killed

            dep.wait(loading, f"run 1's measured load, attempt {attempt}", 240, 0.05)
            time.sleep(0.5)
            killed.append([h["pid"] for h in json.loads(handles.read_text())])
            for pid in killed[-1]:
                os.kill(pid, signal.SIGKILL)
        state, _ = dep.wait_run(ADHOC, run_id, timeout=240)
        assert state == "failed"
        assert dep.tries(ADHOC, run_id, MEASURE) == [(1, "failed")]  # failed runs: no retry
        assert by_label(dep, ADHOC, run_id, DESTROY) == {REDIS: "success"}
        assert has_result(result2) and not has_result(result1)
        errors = (result1 / "error.txt").read_text().splitlines()
        assert len(errors) == 2 and all("gave no result" in e for e in errors), errors
        assert "killed by signal 9 (SIGKILL)" in errors[1] and record(load1)["attempt"] == 2
        kept = (result2 / "load.json").stat().st_mtime_ns
        nothing_left(run, 1)

        body = {
            "dag_run_id": run_id,
            "task_ids": [[MEASURE, 0]],
            "include_upstream": False,
            "include_downstream": False,
        }
        clear = f"/dags/{ADHOC}/clearTaskInstances"

        def cleared(**kw) -> set[str]:
            return {
                t["task_id"] for t in dep.ok("POST", clear, json={**body, **kw})["task_instances"]
            }

        # "Only failed" leaves the succeeded setups (the deployment's apply) alone
        assert cleared(dry_run=True, only_failed=True) == {MEASURE, "report"}
        setups = {"plan", "deployment.render_tfvars", "deployment.apply"}
        assert cleared(dry_run=True, only_failed=False) == {*setups, MEASURE, DESTROY, "report"}
        cleared(dry_run=False, only_failed=False)
        state, _ = dep.wait_run(ADHOC, run_id, timeout=240)
        assert state == "success", dep.tis(ADHOC, run_id)
        assert dep.tries(ADHOC, run_id, MEASURE) == [(1, "failed"), (2, "success")]
        assert has_result(result1)
        assert (result2 / "load.json").stat().st_mtime_ns == kept, "run 2 was measured again"
        assert (record(load1)["attempt"], record(load2)["attempt"]) == (3, 1)
        events = dep.log_events(ADHOC, run_id, MEASURE, 0, attempt=2)
        started = [e for e in events if "started" in e]
        assert len(started) == 1 and "rep 1): started (attempt 3)" in started[0], started
        tf_log = (run / "deployments" / REDIS / "terraform" / "terraform.log").read_text()
        assert tf_log.count("$ terraform apply") == 2 and tf_log.count("$ terraform destroy") == 2
        runs = pd.read_csv(run / "runs.csv")
        assert len(runs) == 2 and (runs["status"] == "ok").all(), runs
    finally:
        nothing_left(run, 1)
