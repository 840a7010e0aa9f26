"""A real Airflow deployment on this machine, for tests/deploy.

PostgreSQL (a private cluster made with initdb, in a temp dir, on a free port)
as the metadata DB, redis-server (on a free port) as the Celery broker, and
Airflow's components as separate processes, each in its own process group:
api-server, scheduler, dag-processor, triggerer and a Celery worker
(CeleryExecutor). Campaigns are triggered through the REST API with a JWT from
/auth/token, as the UI does. Every process the fixture starts is stopped by its
finalizer; any server or run a failed test left behind is taken down there too.
"Nothing left" is judged by tests/e2e/leftovers.py (the tests' own psutil view).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from skips_in_ci import opted_out

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))  # leftovers.py, shared with the e2e tests
PORT_FIRST = os.environ.get("CACHEBENCH_DEPLOY_PORT_FIRST", "15000")
ADMIN_PASSWORD = "cachebench-deploy-test"
# A signed-in user who may read no DAG: SimpleAuthManager gives a user without a role
# no permission (the users' list is "name:role"; this one's role is empty).
OUTSIDER, OUTSIDER_PASSWORD = "outsider", "cachebench-deploy-outsider"
TINY = "cachebench__tiny-hourly"
# Each component is a separate `airflow` process; their start-up dominates a 2-core machine.
START_TIMEOUT_S = 240


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "deploy: a real Airflow deployment (Postgres, Redis, CeleryExecutor)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name)]
    if not found[-1]:
        pytest.fail(f"{name} not found: run scripts/setup.sh (apt-get install postgresql)")
    return found[-1]


def _as_pg_user(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


class Postgres:
    def __init__(self, base: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="cachebench-pg-"))  # postgres must reach it
        self.data = self.dir / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        self.log = base / "postgres.log"

    def start(self) -> None:
        run = lambda argv: subprocess.run(  # noqa: E731
            _as_pg_user(argv), check=True, capture_output=True, text=True, cwd=self.dir
        )
        run([_pg_bin("initdb"), "-D", str(self.data), "-U", "airflow", "-A", "trust", "-E", "UTF8"])
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        pg_log = self.dir / "server.log"
        run([_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(pg_log), "-w", "start"])
        run(
            [
                _pg_bin("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "airflow",
                "airflow",
            ]
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://airflow@127.0.0.1:{self.port}/airflow"

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            subprocess.run(
                _as_pg_user([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
                cwd=self.dir,
            )
        with contextlib.suppress(Exception):
            shutil.copy(self.dir / "server.log", self.log)
        shutil.rmtree(self.dir, ignore_errors=True)


class Deployment:
    """The components as process groups, their logs, and the REST API."""

    def __init__(self, base: Path):
        self.base = base
        self.logs = base / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.results = base / "results"
        self.dags = base / "dags"
        self.procs: dict[str, subprocess.Popen] = {}
        self.pg = Postgres(base)
        self.redis_port = free_port()
        self.api_port = free_port()
        self.worker_hostname = f"cachebench-worker-{os.getpid()}@%h"
        self.token: str | None = None

    # -- set-up ---------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        home = self.base / "airflow"
        base_url = f"http://127.0.0.1:{self.api_port}"
        broker = f"redis://127.0.0.1:{self.redis_port}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.pop("PYTHONPATH", None)  # cachebench must come from the plugins folder, as in compose
        env.pop("CACHEBENCH_FAULTS", None)
        env.update(
            AIRFLOW_HOME=str(home),
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base_url}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"admin:admin,{OUTSIDER}:",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.base / "passwords.json"),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.pg.url,
            AIRFLOW__CELERY__BROKER_URL=broker,
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+{self.pg.url}",
            AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
            AIRFLOW__API__BASE_URL=base_url,
            AIRFLOW__API__SECRET_KEY="cachebench-deploy-test-secret",
            AIRFLOW__API__WORKERS="1",
            AIRFLOW__API_AUTH__JWT_SECRET="cachebench-deploy-test-jwt-secret-0123456789",
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
            # A killed worker's task is failed by the scheduler after this (default 300 s).
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT="30",
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL="5",
            AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL="15",
            AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD="20",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="10",
            # An unchanged DAG file is parsed again every 2 minutes, not every 15 s: at 15 s
            # the idle DAG processor took 13% of a core (a parse about 0.4 CPU-s, most of it
            # serializing the params; less since they declare draft 7, params.py). A file
            # that changed is parsed at the next refresh anyway.
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="120",
            AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
            CACHEBENCH_RESULTS=str(self.results),
            CACHEBENCH_RUNTIME=str(self.base / "runtime"),
            CACHEBENCH_PORT_FIRST=PORT_FIRST,
            # Its own machine-wide claims, as a deployment on a host of its own: under
            # xdist the tests/e2e campaigns run on the other worker, and a measure waiting
            # for their load lock would defer on a timer these tests do not expect (one
            # LoadWatchTrigger per run; a task process between two runs). Its ports come
            # from its own range (CACHEBENCH_DEPLOY_PORT_FIRST), so they never meet.
            CACHEBENCH_MACHINE_DIR=str(self.base / "machine"),
            # Retries keep their number, only the wait between tries shrinks (read at parse).
            CACHEBENCH_RETRY_DELAY_S="2",
            PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        )
        return env

    def write_dags(self, extra: dict[str, str]) -> None:
        """The project's DAG files (symlinked: they find include/ through their real path)."""
        self.dags.mkdir(parents=True, exist_ok=True)
        for f in (ROOT / "dags").glob("*.py"):
            (self.dags / f.name).symlink_to(f)
        for name, text in extra.items():
            (self.dags / name).write_text(text)

    def schedule_tiny(self, min_lead_s: float) -> datetime:
        """(Re)write the tiny hourly campaign, due at the first minute `min_lead_s` from now."""
        due = datetime.now(UTC) + timedelta(seconds=min_lead_s + 59)
        self.tiny_due = due.replace(second=0, microsecond=0)
        (self.dags / "tiny-hourly.yaml").write_text(TINY_YAML.format(minute=self.tiny_due.minute))
        (self.dags / "tiny_hourly.py").write_text(TINY_DAG)
        return self.tiny_due

    def ensure_tiny_due(self) -> datetime:
        """Unpause the tiny campaign while its next run is ahead; re-time it if parsed late."""
        dag = self.wait_dag(TINY)
        want = self.tiny_due.strftime("%Y-%m-%dT%H:%M")
        if not (dag.get("next_dagrun_run_after") or "").startswith(want) or (
            datetime.now(UTC) > self.tiny_due - timedelta(seconds=5)
        ):
            due = self.schedule_tiny(min_lead_s=75)  # start-up was slow: due later, re-parse
            self.wait(
                lambda: (
                    self.ok("GET", f"/dags/{TINY}")["timetable_summary"] == f"{due.minute} * * * *"
                ),
                "the re-timed tiny campaign to be parsed",
                70,
            )
        return self.tiny_due

    def start_all(self) -> None:
        self.pg.start()
        self.start(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            airflow=False,
        )
        (self.base / "passwords.json").write_text(
            json.dumps({"admin": ADMIN_PASSWORD, OUTSIDER: OUTSIDER_PASSWORD})
        )
        out = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, f"airflow db migrate:\n{out.stdout[-3000:]}{out.stderr[-3000:]}"
        self.start(
            "api-server",
            ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"],
        )
        self.start("dag-processor", ["dag-processor"])
        self.start("scheduler", ["scheduler"])
        self.start("triggerer", ["triggerer"])
        self.start_worker()
        self.wait(lambda: self._up(), "the api-server to answer", START_TIMEOUT_S)
        self.login()

    def start_worker(self) -> None:
        self.start(
            "worker",
            ["celery", "worker", "--concurrency", "2", "--celery-hostname", self.worker_hostname],
        )

    def start(self, name: str, args: list[str], airflow: bool = True) -> subprocess.Popen:
        argv = [sys.executable, "-m", "airflow", *args] if airflow else args
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                argv,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.base,
            )
        self.procs[name] = proc
        return proc

    def _up(self) -> bool:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited ({proc.returncode}):\n{self.log_tail(name)}")
        try:
            return httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    # -- processes --------------------------------------------------------------------------

    def signal(self, name: str, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[name].pid, sig)

    def stop(self, name: str, timeout: float = 45) -> None:
        proc = self.procs.get(name)
        if proc is None:
            return
        self.signal(name, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.signal(name, signal.SIGKILL)
            proc.wait(10)
        self.signal(name, signal.SIGKILL)  # whatever of the group outlived its leader
        del self.procs[name]

    def kill(self, name: str) -> None:
        """SIGKILL the component as a lost machine would: its process group and, at once,
        the groups its task processes run in (Airflow 3.3 gives each task a group of its
        own). What a task started in a session of its own (servers, a run's runner) lives
        on, as cachebench's design expects of a lost worker."""
        proc = self.procs.pop(name)
        session = os.getsid(proc.pid)
        groups = {proc.pid}
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error, OSError):
                if os.getsid(child.pid) == session:
                    groups.add(os.getpgid(child.pid))
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        proc.wait(10)

    def stop_all(self, timeout: float = 15) -> None:
        """SIGTERM every group at once, SIGKILL what is left after `timeout`."""
        for name in self.procs:
            self.signal(name, signal.SIGTERM)
        end = time.monotonic() + timeout
        for name, proc in list(self.procs.items()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, end - time.monotonic()))
            self.signal(name, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self.procs.clear()
        self.pg.stop()

    def log_text(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(self.log_text(name).splitlines()[-lines:])

    def task_log_dir(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> Path:
        base = self.base / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
        return base / (f"task_id={task_id}" + (f"/map_index={map_index}" if map_index >= 0 else ""))

    def task_log(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, files: str = "*"
    ) -> str:
        logs = self.task_log_dir(dag_id, run_id, task_id, map_index)
        return "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob(files)))

    def log_events(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = -1, attempt: int = 1
    ) -> list[str]:
        """The `event` of every line of one try's task log (the worker's part), in order."""
        path = self.task_log_dir(dag_id, run_id, task_id, map_index) / f"attempt={attempt}.log"
        events = []
        for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
            with contextlib.suppress(ValueError, AttributeError):
                events.append(str(json.loads(line).get("event", "")))
        return events

    # -- REST API -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def login(self) -> None:
        self.token = self.token_of("admin")

    def token_of(self, username: str) -> str:
        """A user's JWT from /auth/token, as the REST API's clients get one."""
        password = json.loads((self.base / "passwords.json").read_text())[username]
        r = httpx.post(
            f"{self.url}/auth/token",
            json={"username": username, "password": password},
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text
        return r.json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"}
        for attempt in range(5):  # the api-server may be busy on a loaded 2-core machine
            try:
                return httpx.request(
                    method, f"{self.url}/api/v2{path}", headers=headers, timeout=30, **kwargs
                )
            except httpx.TransportError:
                if attempt == 4:
                    raise
                time.sleep(2)
        raise AssertionError("unreachable")

    def ok(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        r = self.api(method, path, **kwargs)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def wait_dag(self, dag_id: str, timeout: float = START_TIMEOUT_S) -> dict[str, Any]:
        self.wait(
            lambda: self.api("GET", f"/dags/{dag_id}").status_code == 200,
            f"{dag_id} to be parsed",
            timeout,
        )
        return self.ok("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def ui_conf(self, dag_id: str, **overrides: Any) -> dict[str, Any]:
        """What the trigger form sends: every param's current value, some of them edited."""
        params = self.ok("GET", f"/dags/{dag_id}/details")["params"]
        return {**{k: p["value"] for k, p in params.items()}, **overrides}

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> httpx.Response:
        logical_date = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        return self.api(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf}
        )

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/dags/{dag_id}/dagRuns/{run_id}")

    def tis(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.ok(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 500}
        )["task_instances"]

    def ti(self, dag_id: str, run_id: str, task_id: str, map_index: int = 0) -> dict[str, Any]:
        return self.ok(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}"
        )

    def tries(
        self, dag_id: str, run_id: str, task_id: str, map_index: int = 0
    ) -> list[tuple[int, str]]:
        """(try number, state) of every try of a task instance, from Airflow's history."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return sorted((t["try_number"], t["state"]) for t in self.ok("GET", path)["task_instances"])

    def wait_ti(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        states: set[str],
        timeout: float = 180,
        map_index: int = 0,
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def check() -> bool:
            r = self.api(
                "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}"
            )
            if r.status_code == 200:
                seen.update(r.json())
            run_state = self.run(dag_id, run_id)["state"]
            if run_state in ("success", "failed") and seen.get("state") not in states:
                raise AssertionError(f"run ended {run_state} before {task_id} was {states}: {seen}")
            return seen.get("state") in states

        self.wait(check, f"{task_id} to be {states}", timeout)
        return seen

    def wait_run(
        self,
        dag_id: str,
        run_id: str,
        timeout: float = 300,
        each: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> tuple[str, dict]:
        """Wait for the run to end; returns its state and every TI state seen on the way
        (`each` is given the task instances at every poll)."""
        seen: dict[tuple[str, int], set[str]] = {}

        def check() -> bool:
            tis = self.tis(dag_id, run_id)
            for ti in tis:
                seen.setdefault((ti["task_id"], ti["map_index"]), set()).add(ti["state"])
            if each is not None:
                each(tis)
            return self.run(dag_id, run_id)["state"] in ("success", "failed")

        self.wait(check, f"run {run_id} of {dag_id} to end", timeout, poll=0.5)
        return self.run(dag_id, run_id)["state"], seen

    def wait(self, cond: Callable[[], bool], what: str, timeout: float, poll: float = 1.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise AssertionError(
                        f"{name} exited ({proc.returncode}) while waiting for {what}:\n"
                        + self.log_tail(name)
                    )
            time.sleep(poll)
        raise AssertionError(
            f"timed out after {timeout:.0f}s waiting for {what}\n--- scheduler:\n"
            + self.log_tail("scheduler", 20)
            + "\n--- worker:\n"
            + self.log_tail("worker", 20)
        )


def take_down_leftovers(results: Path) -> None:
    """Safety net for a failed test (tests assert first): stop every run's processes and
    any server a deployment registered."""
    from leftovers import processes_in

    for found in processes_in(results):
        with contextlib.suppress(psutil.Error):
            psutil.Process(found["pid"]).kill()
    for reg in results.glob("*/*/deployments/*/server/registry.json"):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cachebench.targets.local",
                "down",
                "--state-dir",
                str(reg.parent),
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
            capture_output=True,
            timeout=120,
            check=False,
        )


TINY_DAG = """\
\"\"\"A tiny campaign with a schedule: an Airflow DAG for tests/deploy (schedule, backfill).\"\"\"
from pathlib import Path

from cachebench.campaign import load_campaign_file
from cachebench.dag_factory import build_dag

fields = load_campaign_file(Path(__file__).with_name("tiny-hourly.yaml"))
dag = build_dag(f"cachebench__{fields['name']}", fields, doc_md=__doc__, tags=["campaign"])
"""

TINY_YAML = """\
name: tiny-hourly
target: local
schedule: "{minute} * * * *"
engines: [{{engine: redis, versions: ["7.0"]}}]
topologies: [{{cluster_mode: false}}]
node_types: [local.micro]
workloads:
  - {{name: tiny, ratio: "1:1", value_size: 64, key_space: 1000, pipeline: 1, clients: 2,
     threads: 1, warmup_seconds: 1, duration_seconds: 3}}
repetitions: 1
budget_usd: 0
"""


def _take_down(dep: Deployment) -> None:
    dep.stop_all()
    take_down_leftovers(dep.results)
    if os.environ.get("CACHEBENCH_KEEP_DEPLOY"):
        print(f"deployment kept in {dep.base}")
    else:
        shutil.rmtree(dep.base, ignore_errors=True)


_LIVE: list[Deployment] = []  # the session's deployment while it runs


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    if opted_out("CACHEBENCH_SKIP_DEPLOY"):
        pytest.skip(f"opt-out: CACHEBENCH_SKIP_DEPLOY={os.environ['CACHEBENCH_SKIP_DEPLOY']}")
    base = Path(tempfile.mkdtemp(prefix="cachebench-deploy-"))
    dep = Deployment(base)
    dep.write_dags({})
    dep.schedule_tiny(min_lead_s=60)  # due soon after start-up: the schedule test runs early
    _LIVE.append(dep)
    try:
        dep.start_all()
        yield dep
    finally:
        if dep in _LIVE:
            _LIVE.remove(dep)
            _take_down(dep)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Take the deployment down after the last tests/deploy test rather than at the end of
    the session: its five idle Airflow processes would otherwise share the cores with
    every test that comes after (under xdist, the rest of its worker's tests)."""
    here = Path(__file__).parent
    if nextitem is not None and here in Path(nextitem.path).parents:
        return
    while _LIVE:
        _take_down(_LIVE.pop())
