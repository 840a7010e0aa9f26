"""Fault matrix, end to end: the ad-hoc DAG through `dag.test()` on real servers.

Each test breaks one thing in a one- or two-point run, for real (a SIGKILL, an
rm -rf from another thread while the load runs) or through CACHEBENCH_FAULTS,
then checks the same things: nothing the run created is left (no process of
the run's folders, no port, no password file, empty Terraform state), results
of finished points are kept, and the run's state and files say what happened.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from cachebench import steps
from cachebench.local import procs
from cachebench.workspace import RunDir

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

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
        "node_types": ["local.micro"],
        "workloads": [{**WORKLOAD, "duration_seconds": duration}],
        "budget_usd": 0,
        "max_points": 2,
    }


REDIS = "redis-7.0-single-local.micro-w"


@pytest.fixture(autouse=True)
def short_retries(monkeypatch) -> None:
    """Retries keep their number, only the wait between tries shrinks (read at DAG parse)."""
    monkeypatch.setenv("CACHEBENCH_RETRY_DELAY_S", "1")


VALKEY = "valkey-9.1-single-local.micro-w"


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
    """The point folder whose measured load has started (handles.json exists)."""

    def ready() -> Path | None:
        hits = list(results.glob(f"{name}/*/points/*/handles.json"))
        return hits[0].parent if hits else None

    return ready


def states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def assert_nothing_left(run: RunDir, known_ports: list[int] = ()) -> None:
    """No process of the run's folders, no port, no secret, empty state."""
    left = procs.processes_under(run.path)
    assert left == [], f"processes left: {left}"
    ports = set(known_ports)
    for reg_file in run.path.glob("points/*/server/registry.json"):
        reg = json.loads(reg_file.read_text())
        for node in reg["nodes"]:
            assert not procs.pid_alive(node["pid"]), f"server {node} still running"
            ports.add(node["port"])
        assert not procs.pid_alive(reg.get("agent_pid")), "metrics agent still running"
    for port in ports:
        assert procs.port_free(port), f"port {port} still held"
    assert not list(run.path.glob("points/*/server/auth")), "a password file outlived destroy"
    for state in run.path.glob("points/*/terraform/terraform.tfstate"):
        assert json.loads(state.read_text()).get("resources") == [], f"{state} not empty"
    for cleanup in run.path.glob("points/*/cleanup.json"):
        assert json.loads(cleanup.read_text())["status"] == "clean", cleanup


def test_load_generator_killed_mid_load(airflow_db, results_dir: Path) -> None:
    """SIGKILL the real load generator processes while they load."""

    def kill_load(pdir: Path) -> list[int]:
        time.sleep(0.5)
        pids = [h["pid"] for h in json.loads((pdir / "handles.json").read_text())]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    actor = Actor(loading(results_dir, "f-loadkill"), kill_load)
    actor.start()
    dag_run, run = run_campaign(campaign("f-loadkill", duration=4))
    try:
        killed = actor.check()
        assert killed
        assert str(dag_run.state) == "failed"
        pdir = run.point(REDIS).path
        error = (pdir / "error.txt").read_text()
        assert "collect" in error and "gave no result" in error, error
        assert (pdir / "warmup.json").exists()  # what finished before the crash is kept
        assert not (pdir / "load.json").exists()
        assert states(dag_run)["point.destroy"] == "success"
        assert REDIS in (run.path / "report.md").read_text()
    finally:
        assert_nothing_left(run)


def test_server_killed_mid_load_fails_the_watch_early(airflow_db, results_dir: Path) -> None:
    """SIGKILL a real server (pid from the registry) under load: the watch fails at once."""

    def kill_server(pdir: Path) -> dict:
        time.sleep(0.5)
        reg = json.loads((pdir / "server" / "registry.json").read_text())
        pid = reg["nodes"][0]["pid"]
        os.kill(pid, signal.SIGKILL)
        return {"pid": pid, "at": time.time(), "port": reg["nodes"][0]["port"]}

    actor = Actor(loading(results_dir, "f-srvkill"), kill_server)
    actor.start()
    dag_run, run = run_campaign(campaign("f-srvkill", duration=30))
    try:
        killed = actor.check()
        assert str(dag_run.state) == "failed"
        watch = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "point.watch")
        assert str(watch.state) == "failed"
        # failed early: well before the 30 s load would have ended
        assert watch.end_date.timestamp() - killed["at"] < 10
        error = (run.point(REDIS).path / "error.txt").read_text()
        assert f"watch: PointFailed: watch: server process(es) [{killed['pid']}] died" in error
        assert states(dag_run)["point.destroy"] == "success"
    finally:
        assert_nothing_left(run)


def test_sensor_error(airflow_db, results_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CACHEBENCH_FAULTS", "watch@*")
    dag_run, run = run_campaign(campaign("f-sensor"))
    try:
        assert str(dag_run.state) == "failed"
        st = states(dag_run)
        assert st["point.watch"] == "failed" and st["point.destroy"] == "success"
        assert st["point.collect"] == "upstream_failed"
        error = (run.point(REDIS).path / "error.txt").read_text()
        assert "watch: InjectedFault: injected fault in watch" in error
    finally:
        assert_nothing_left(run)


def test_apply_dies_half_way(airflow_db, results_dir: Path, monkeypatch) -> None:
    """`up` dies after starting the first of two nodes, on every try: destroy still cleans."""
    monkeypatch.setenv("CACHEBENCH_FAULTS", "up@*")
    fields = campaign("f-halfway", topology={"cluster_mode": False, "replicas": 1})
    dag_run, run = run_campaign(fields)
    try:
        assert str(dag_run.state) == "failed"
        st = states(dag_run)
        assert st["point.apply"] == "failed" and st["point.destroy"] == "success"
        pdir = run.point("redis-7.0-single-r1-local.micro-w").path
        error = (pdir / "error.txt").read_text()
        assert "apply: TerraformError" in error and "injected crash after node 0001-001" in error
        log = (pdir / "terraform" / "terraform.log").read_text()
        assert log.count("$ terraform apply") == 3  # apply was retried twice
        assert "destroy" in log
        assert not (pdir / "server" / "registry.json").exists()  # up never got that far
    finally:
        assert_nothing_left(run, known_ports=ports_of(run))


def ports_of(run: RunDir) -> list[int]:
    """Ports the run's tfvars gave its nodes (also when no registry was written)."""
    out = []
    for tfvars in run.path.glob("points/*/terraform/terraform.tfvars.json"):
        v = json.loads(tfvars.read_text())
        nodes = v["shards"] * (v["replicas"] + 1)
        out += list(range(v["base_port"], v["base_port"] + nodes))
    return out


def server_count(root: Path) -> int:
    return sum(1 for p in procs.processes_under(root) if p["kind"] == "server")


def test_apply_retry_is_idempotent(airflow_db, results_dir: Path, monkeypatch) -> None:
    """apply provisions, then its task fails once; the retry must not start a second server."""
    monkeypatch.setenv("CACHEBENCH_FAULTS", "after_apply@*#once")
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
        pdir = run.point("redis-7.0-single-r1-local.micro-w").path
        assert (
            "apply: InjectedFault: injected fault in after_apply"
            in (pdir / "error.txt").read_text()
        )
        log = (pdir / "terraform" / "terraform.log").read_text()
        assert log.count("$ terraform apply") == 2
        assert "No changes." in log.split("$ terraform apply")[2]  # the retry changed nothing
        assert max(seen) == 2, f"server processes seen: {sorted(set(seen))}"  # 2 nodes, never 3+
        assert (pdir / "metrics.parquet").exists()
    finally:
        assert_nothing_left(run)


def test_export_fails_keeps_the_other_points(airflow_db, results_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CACHEBENCH_FAULTS", "export@valkey-*")
    engines = [
        {"engine": "redis", "versions": ["7.0"]},
        {"engine": "valkey", "versions": ["9.1"]},
    ]
    dag_run, run = run_campaign(campaign("f-export", engines=engines))
    try:
        assert str(dag_run.state) == "failed"
        ok, bad = run.point(REDIS).path, run.point(VALKEY).path
        assert (ok / "metrics.parquet").exists() and (ok / "load.json").exists()
        assert (bad / "load.json").exists() and not (bad / "metrics.parquet").exists()
        assert "export: InjectedFault" in (bad / "error.txt").read_text()
        summary = (run.path / "summary.csv").read_text()
        assert f"{REDIS}," in summary and "export: InjectedFault" in summary
    finally:
        assert_nothing_left(run)


def test_point_folder_removed_mid_load(airflow_db, results_dir: Path) -> None:
    """rm -rf of the point's folder while it loads: registry, state and pidfiles are gone,
    destroy still stops every server, the agent and the load (found by their cwd)."""

    def remove(pdir: Path) -> dict:
        time.sleep(0.3)
        reg = json.loads((pdir / "server" / "registry.json").read_text())
        running = procs.processes_under(pdir)
        shutil.rmtree(pdir)
        return {"reg": reg, "running": running}

    actor = Actor(loading(results_dir, "f-rmrf"), remove)
    actor.start()
    dag_run, run = run_campaign(campaign("f-rmrf"))
    try:
        seen = actor.check()
        kinds = {p["kind"] for p in seen["running"]}
        assert {"server", "agent", "load"} <= kinds, seen["running"]
        assert str(dag_run.state) == "failed"
        assert states(dag_run)["point.destroy"] == "success"
        pdir = run.point(REDIS).path
        cleanup = json.loads((pdir / "cleanup.json").read_text())
        assert cleanup["status"] == "clean"
        assert any("was removed during the run" in n for n in cleanup["notes"])
        # only the folder knew the servers: destroy found them by their cwd and stopped them
        stopped = " ".join(cleanup["notes"])
        for p in seen["running"]:
            if p["kind"] == "server":
                assert f"stopped server pid {p['pid']}" in stopped, (p, cleanup["notes"])
        assert "was removed during the run" in (pdir / "error.txt").read_text()
    finally:
        ports = [n["port"] for n in seen["reg"]["nodes"]] if actor.result else []
        for p in (actor.result or {}).get("running", []):
            assert not procs.pid_alive(p["pid"]), f"{p} still running"
        assert_nothing_left(run, known_ports=ports)


def test_destroy_fails_says_cleanup_failed_and_keeps_state(
    airflow_db, results_dir: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CACHEBENCH_FAULTS", "destroy@*")
    dag_run, run = run_campaign(campaign("f-destroy"))
    pdir = run.point(REDIS).path
    assert str(dag_run.state) == "failed"
    st = states(dag_run)
    assert st["point.destroy"] == "failed" and st["report"] == "failed"
    cleanup = json.loads((pdir / "cleanup.json").read_text())
    assert cleanup["status"] == "CLEANUP FAILED"
    assert "still in state: terraform_data.servers" in cleanup["problems"]
    assert "CLEANUP FAILED for " + REDIS in (pdir / "error.txt").read_text()
    for report in ("report.md", "report.html"):
        text = (run.path / report).read_text()
        assert "CLEANUP FAILED" in text and REDIS in text, report
    assert (pdir / "metrics.parquet").exists()  # the point itself finished: result kept
    # the state needed for a retry is kept; the retry (fault gone) cleans up
    state = json.loads((pdir / "terraform" / "terraform.tfstate").read_text())
    assert state["resources"], "state was lost: nothing to retry with"
    monkeypatch.delenv("CACHEBENCH_FAULTS")
    item = {
        "point": json.loads((pdir / "point.json").read_text()),
        "point_dir": str(pdir),
        "run_id": dag_run.run_id,
        "points": 1,
        "state_dir": str(pdir / "server"),
    }
    assert steps.destroy(item)["destroyed"] is True
    assert_nothing_left(run)
