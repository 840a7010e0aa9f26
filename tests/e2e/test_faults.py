"""Fault matrix, end to end: the ad-hoc DAG through `dag.test()` on real servers.

Each test breaks one thing in a run of one or two deployments (one run each),
for real (a SIGKILL, an rm -rf from another thread while the load runs) or
through the `faults` fixture (tests/faults.py), then checks the same things:
nothing the run created is left (the tests' own psutil view, leftovers.py: no
process in the run's folders, no port, no password file, empty Terraform
state, and, as the deployments are miniatures, no network namespace, link,
qdisc, cgroup or subnet claim of theirs), results of finished runs are kept,
and the run's state and files say what happened.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psutil
import pytest
from airflow.dag_processing.dagbag import DagBag
from leftovers import assert_nothing_left, assert_nothing_running, processes_in

from cachebench import steps
from cachebench.models import DeploymentPlan
from cachebench.workspace import RunDir

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

NODE = "local.t4g.micro"  # a miniature: namespaces, links, qdiscs and cgroups to leave none of
WORKLOAD = {
    "name": "w",
    "ratio": "1:4",
    "value_size": 64,
    "key_space": 1000,
    "pipeline": 2,
    "clients": 2,
    "threads": 1,
    "warmup_seconds": 1,
    "duration_seconds": 3,
}


def campaign(name: str, *, engines=None, topology=None, duration: int = 3) -> dict:
    return {
        "name": name,
        "target": "local",
        "engines": engines or [{"engine": "redis", "versions": ["7.0"]}],
        "topologies": [topology or {"cluster_mode": False}],
        "node_types": [NODE],
        "workloads": [{**WORKLOAD, "duration_seconds": duration}],
        "repetitions": 1,
        "budget_usd": 0,
        "max_points": 2,
    }


REDIS_DEP = f"redis-7.0-single-{NODE}"
REDIS = f"{REDIS_DEP}-w"


@pytest.fixture(autouse=True)
def short_retries(monkeypatch) -> None:
    """Retries keep their number, only the wait between tries shrinks (read at DAG parse)."""
    monkeypatch.setenv("CACHEBENCH_RETRY_DELAY_S", "1")


VALKEY = f"valkey-9.1-single-{NODE}-w"


def rep1(run: RunDir, point: str) -> Path:
    return run.point(point).rep(1).path


def run_campaign(fields: dict):
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]
    dag_run = dag.test(run_conf=fields)
    return dag_run, RunDir.for_run(fields["name"], dag_run.run_id)


class Actor(threading.Thread):
    """Does `action` from outside the run once `ready()` returns something (or gives up)."""

    def __init__(self, ready: Callable[[], object], action: Callable[[object], object]):
        super().__init__(daemon=True)
        self.ready, self.action = ready, action
        self.result: object = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                found = self.ready()
                if found:
                    self.result = self.action(found)
                    return
                time.sleep(0.05)
            raise TimeoutError("the run never got to the point of the fault")
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def check(self) -> object:
        self.join(5)
        assert self.done.is_set() and self.error is None, self.error
        return self.result


def loading(results: Path, name: str) -> Callable[[], Path | None]:
    """The run's load folder once its measured load has started (handles.json exists)."""

    def ready() -> Path | None:
        hits = list(results.glob(f"{name}/*/deployments/*/load/*/rep1/handles.json"))
        return hits[0].parent if hits else None

    return ready


def deployment_of(load_dir: Path) -> Path:
    """deployments/<instance>/load/<point>/rep<k> -> deployments/<instance>."""
    return load_dir.parents[2]


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_load_generator_killed_mid_load_is_measured_again(airflow_db, results_dir: Path) -> None:
    """SIGKILL the real load generator processes while they load: the run was lost through
    no fault of the server, so it is measured again once (attempt 2), which succeeds."""

    def kill_load(load_dir: Path) -> list[int]:
        time.sleep(0.5)
        pids = [h["pid"] for h in json.loads((load_dir / "handles.json").read_text())]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    actor = Actor(loading(results_dir, "f-loadkill"), kill_load)
    actor.start()
    dag_run, run = run_campaign(campaign("f-loadkill", duration=4))
    try:
        killed = actor.check()
        assert str(dag_run.state) == "success"
        rdir = rep1(run, REDIS)
        assert (rdir / "load.json").exists() and (rdir / "metrics.parquet").exists()
        (error,) = (rdir / "error.txt").read_text().splitlines()  # attempt 1's, kept
        assert error.startswith("collect: LoadError: its load failed: generator 0 (redis-"), error
        assert "gave no result" in error and "it was killed by signal 9 (SIGKILL)" in error
        assert error.endswith("(attempt 1, measured again)")
        ddir = run.deployment(REDIS_DEP)
        record = json.loads(ddir.record(REDIS, 1).read_text())
        assert (record["status"], record["attempt"]) == ("done", 2)
        second = json.loads((ddir.load(REDIS, 1) / "handles.json").read_text())
        assert not set(killed) & {h["pid"] for h in second}  # attempt 2 ran its own load
        row = pd.read_csv(run.path / "runs.csv").iloc[0]
        assert (row["status"], row["attempt"]) == ("ok", 2)
        assert row["earlier_attempts"].startswith("attempt 1: collect: LoadError: its load failed:")
        assert "measured again after attempt 1: collect:" in (run.path / "report.md").read_text()
        st = states(dag_run)
        assert st["deployment.measure"] == "success" and st["deployment.destroy"] == "success"
    finally:
        assert_nothing_left(run.path)


def test_server_killed_mid_load_fails_the_watch_early(airflow_db, results_dir: Path) -> None:
    """SIGKILL a real server (pid from the registry) under load: the watch fails at once."""

    def kill_server(load_dir: Path) -> dict:
        time.sleep(0.5)
        reg = json.loads((deployment_of(load_dir) / "server" / "registry.json").read_text())
        pid = reg["nodes"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        return {"pid": pid, "at": time.time()}

    actor = Actor(loading(results_dir, "f-srvkill"), kill_server)
    actor.start()
    dag_run, run = run_campaign(campaign("f-srvkill", duration=30))
    try:
        killed = actor.check()
        assert str(dag_run.state) == "failed"
        measure = next(
            ti for ti in dag_run.get_task_instances() if ti.task_id == "deployment.measure"
        )
        assert str(measure.state) == "failed"
        # failed early: well before the 30 s load would have ended
        assert measure.end_date.timestamp() - killed["at"] < 10
        error = (rep1(run, REDIS) / "error.txt").read_text()
        assert f"load: watch: server process(es) [{killed['pid']}] died under load" in error
        assert states(dag_run)["deployment.destroy"] == "success"
    finally:
        assert_nothing_left(run.path)


def test_watch_error(airflow_db, results_dir: Path, faults) -> None:
    faults("watch@*")
    dag_run, run = run_campaign(campaign("f-watch"))
    try:
        assert str(dag_run.state) == "failed"
        st = states(dag_run)
        assert st["deployment.measure"] == "failed" and st["deployment.destroy"] == "success"
        error = (rep1(run, REDIS) / "error.txt").read_text()
        assert "watch: InjectedFault: injected fault in watch" in error
    finally:
        assert_nothing_left(run.path)


def test_apply_dies_half_way(airflow_db, results_dir: Path, faults) -> None:
    """`up` dies after starting the first of two nodes, on every try: destroy still cleans."""
    faults("up@*")
    fields = campaign("f-halfway", topology={"cluster_mode": False, "replicas": 1})
    dag_run, run = run_campaign(fields)
    try:
        assert str(dag_run.state) == "failed"
        st = states(dag_run)
        assert st["deployment.apply"] == "failed" and st["deployment.destroy"] == "success"
        assert st["deployment.measure"] == "upstream_failed"
        ddir = run.deployment(f"redis-7.0-single-r1-{NODE}").path
        error = (ddir / "error.txt").read_text()
        assert "apply: TerraformError" in error and "injected crash after node 0001-001" in error
        log = (ddir / "terraform" / "terraform.log").read_text()
        assert log.count("$ terraform apply") == 3  # apply was retried twice
        assert "destroy" in log
        assert not (ddir / "server" / "registry.json").exists()  # up never got that far
        # the report says why the run has no result: its deployment's error
        assert "injected crash after node 0001-001" in (run.path / "report.md").read_text()
    finally:
        assert_nothing_left(run.path)


def server_count(root: Path) -> int:
    """Servers running under root; a server's own fork (daemonizing, or the RDB it sends a
    replica) is not another server."""

    def forked(pid: int) -> bool:
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(pid).parent()
            return parent is not None and parent.name() == "redis-server"
        return False

    return sum(
        1 for p in processes_in(root) if p["name"] == "redis-server" and not forked(p["pid"])
    )


def test_apply_retry_is_idempotent(airflow_db, results_dir: Path, faults) -> None:
    """apply provisions, then its task fails once; the retry must not start a second server."""
    faults("after_apply@*#once")
    seen: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.append(server_count(results_dir))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    fields = campaign("f-idem", topology={"cluster_mode": False, "replicas": 1})
    try:
        dag_run, run = run_campaign(fields)
    finally:
        stop.set()
        sampler.join(5)
    try:
        assert str(dag_run.state) == "success"
        ddir = run.deployment(f"redis-7.0-single-r1-{NODE}").path
        assert (
            "apply: InjectedFault: injected fault in after_apply"
            in (ddir / "error.txt").read_text()
        )
        log = (ddir / "terraform" / "terraform.log").read_text()
        assert log.count("$ terraform apply") == 2
        assert "No changes." in log.split("$ terraform apply")[2]  # the retry changed nothing
        assert max(seen) == 2, f"server processes seen: {sorted(set(seen))}"  # 2 nodes, never 3+
        assert run.point(f"redis-7.0-single-r1-{NODE}-w").rep(1).has_result
    finally:
        assert_nothing_left(run.path)


def test_export_fails_keeps_the_other_runs(airflow_db, results_dir: Path, faults) -> None:
    faults("export@valkey-*")
    engines = [
        {"engine": "redis", "versions": ["7.0"]},
        {"engine": "valkey", "versions": ["9.1"]},
    ]
    dag_run, run = run_campaign(campaign("f-export", engines=engines))
    try:
        assert str(dag_run.state) == "failed"
        ok, bad = rep1(run, REDIS), rep1(run, VALKEY)
        assert (ok / "metrics.parquet").exists() and (ok / "load.json").exists()
        assert (bad / "load.json").exists() and not (bad / "metrics.parquet").exists()
        assert "export: InjectedFault" in (bad / "error.txt").read_text()
        summary = (run.path / "summary.csv").read_text()
        assert f"{REDIS}," in summary and "export: InjectedFault" in summary
    finally:
        assert_nothing_left(run.path)


def test_deployment_folder_removed_mid_load(airflow_db, results_dir: Path) -> None:
    """rm -rf of the deployment's folder while it loads: registry, state, pidfiles and run
    records are gone, destroy still stops every server, the agent and the load (found by
    their cwd)."""

    def remove(load_dir: Path) -> dict:
        time.sleep(0.3)
        ddir = deployment_of(load_dir)
        reg = json.loads((ddir / "server" / "registry.json").read_text())
        running = processes_in(ddir)
        shutil.rmtree(ddir)
        return {"reg": reg, "running": running, "secrets": Path(reg["runtime_dir"])}

    actor = Actor(loading(results_dir, "f-rmrf"), remove)
    actor.start()
    dag_run, run = run_campaign(campaign("f-rmrf"))
    try:
        seen = actor.check()
        names = {p["name"] for p in seen["running"]}
        assert {"redis-server", "redis-benchmark"} <= names, seen["running"]
        assert any(n.startswith("python") for n in names)  # the agent and the run's runner
        assert str(dag_run.state) == "failed"
        assert states(dag_run)["deployment.destroy"] == "success"
        ddir = run.deployment(REDIS_DEP).path
        cleanup = json.loads((ddir / "cleanup.json").read_text())
        assert cleanup["status"] == "clean"
        assert any("was removed during the run" in n for n in cleanup["notes"])
        # only the folder knew the servers: destroy found them by their cwd and stopped them
        stopped = " ".join(cleanup["notes"])
        for p in seen["running"]:
            if p["name"] == "redis-server":
                assert f"stopped server pid {p['pid']}" in stopped, (p, cleanup["notes"])
        assert "was removed during the run" in (ddir / "error.txt").read_text()
        # the password's private folder, outside the removed one, went with the servers
        assert seen["secrets"].name.startswith(REDIS_DEP) and not seen["secrets"].exists()
    finally:
        ports = {n["port"] for n in seen["reg"]["nodes"]} if actor.result else set()
        for p in (actor.result or {}).get("running", []):
            assert not psutil.pid_exists(p["pid"]) or psutil.Process(p["pid"]).status() == "zombie"
        assert_nothing_left(run.path, ports)


def test_destroy_fails_says_cleanup_failed_and_keeps_state(
    airflow_db, results_dir: Path, monkeypatch, faults
) -> None:
    faults("destroy@*")
    dag_run, run = run_campaign(campaign("f-destroy"))
    ddir = run.deployment(REDIS_DEP).path
    plan = DeploymentPlan.model_validate_json((ddir / "deployment.json").read_text())
    destroyed = False
    try:
        try:
            assert str(dag_run.state) == "failed"
            st = states(dag_run)
            assert st["deployment.destroy"] == "failed" and st["report"] == "failed"
            cleanup = json.loads((ddir / "cleanup.json").read_text())
            assert cleanup["status"] == "CLEANUP FAILED"
            assert "still in state: terraform_data.servers" in cleanup["problems"]
            assert "CLEANUP FAILED for " + REDIS_DEP in (ddir / "error.txt").read_text()
            for report in ("report.md", "report.html"):
                text = (run.path / report).read_text()
                assert "CLEANUP FAILED" in text and REDIS_DEP in text, report
            assert rep1(run, REDIS).joinpath("metrics.parquet").exists()  # the result is kept
        finally:
            # down still ran although destroy failed: no process, no node port, checked
            # (even when an assertion above failed) before our own second destroy
            assert_nothing_running(run.path)
        # the state needed for a retry is kept; the retry (fault gone) cleans up
        state = json.loads((ddir / "terraform" / "terraform.tfstate").read_text())
        assert state["resources"], "state was lost: nothing to retry with"
        monkeypatch.delenv("CACHEBENCH_FAULTS")
        assert steps.destroy(plan).destroyed is True
        destroyed = True
    finally:
        monkeypatch.delenv("CACHEBENCH_FAULTS", raising=False)
        if not destroyed:  # a check failed: still leave nothing behind for the next test
            with contextlib.suppress(Exception):
                steps.destroy(plan)
        assert_nothing_left(run.path)
