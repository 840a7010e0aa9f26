"""Stand-ins for what runs inside AWS and cannot run in moto.

moto's ECS never starts a container. FakeEcs plays the container of every
RUNNING task of the cluster the way ECS and the image would: it runs the
task's own command (its container override, ``/bin/sh -c <script>``) for real
under ``sh``, with the environment ECS gives the container (the overrides'
environment, and CACHEBENCH_AUTH set to the secret's value read from moto's
Secrets Manager as the task definition's ``secrets`` say), the image's tools on
PATH (stand-ins of ``memtier_benchmark`` and ``redis-cli``/``valkey-cli``, the
REAL AWS CLI pointed at the moto server), a cgroup whose CPU counter grows at a
known rate, then marks the task STOPPED with the script's exit code and puts
what it printed into the task's awslogs stream. moto has no ElastiCache engine
either, so FakeEcs also publishes the group's CloudWatch datapoints
(put_metric_data) for the measured window, as ElastiCache would.

The memtier stand-in records its argv and writes a REAL capture of
tests/fixtures/memtier-real, chosen by its --test-time (so a 2 s warm-up and a
5 s measured window give different captures and counts), with the
configuration memtier writes from its argv (the password in clear, as memtier
copies it). The redis-cli stand-in parses its arguments as redis-cli 7.0 does
(``--cacert <file>``, no ``=`` form) and answers OK.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import secrets
import signal
import string
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3

REGION = "us-east-1"
CLUSTER = "cachebench-load"
FAMILY = "memtier"
STATE_BUCKET = "cachebench-state"
RESULTS_BUCKET = "cachebench-results"
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "memtier-real"
# What `memtier_benchmark --version` prints first in the fake image (2.2.1 and later form).
IMAGE_VERSION = "memtier_benchmark v=2.2.1 sha=3347cb90:0 bits=64 libevent=2.1.12-stable"
# The real capture the memtier stand-in writes for a --test-time (see the fixtures' README).
# (a late task's 1 s warm-up gets the 2 s capture: no real 1 s capture was made)
CAPTURES = {
    10: "memtier_real_single",
    5: "memtier_real_rate800_t5",
    2: "memtier_real_rate800_t2",
    1: "memtier_real_rate800_t2",
}
CLUSTER_CAPTURE = "memtier_real_cluster3"  # --cluster-mode, --test-time=10
LOG_GROUP, LOG_PREFIX, CONTAINER = "/cachebench/load", "memtier", "memtier"
VENV_BIN = str(Path(sys.executable).parent)  # the real AWS CLI (PyPI awscli) lives here


def window_requests(capture: str) -> int:
    """Requests of a capture's measured window, read off its per-second series by hand:
    the first test_time seconds (the last entry is the partial second after the run)."""
    doc = json.loads((REAL / f"{capture}.json").read_text())
    series = doc["ALL STATS"]["Totals"]["Time-Serie"]
    counts = [series[k]["Count"] for k in sorted(series, key=int)]
    return sum(counts[: doc["configuration"]["test_time"]])


# ---------------------------------------------------------------- the image's tools

MEMTIER_STANDIN = r'''#!{python}
"""memtier_benchmark stand-in: memtier's options, a real capture, the argv recorded."""
import json, os, shutil, sys, time

REAL = {real!r}
CAPTURES = {captures!r}
FLAGS = {{"--tls", "--tls-skip-verify", "--cluster-mode", "--hide-histogram", "--show-config",
         "--print-all-runs", "--distinct-client-seed", "--randomize", "--random-data",
         "--data-verify", "--verify-only", "--generate-keys", "--no-expiry", "--ipv4", "--ipv6"}}
VALUED = {{"--server", "--port", "--unix-socket", "--protocol", "--authenticate", "--cert",
          "--key", "--cacert", "--tls-protocols", "--sni", "--run-count", "--debug",
          "--client-stats", "--out-file", "--json-out-file", "--hdr-file-prefix",
          "--print-percentiles", "--requests", "--clients", "--threads", "--test-time",
          "--ratio", "--pipeline", "--reconnect-interval", "--multi-key-get", "--select-db",
          "--rate-limiting", "--data-size", "--data-offset", "--data-size-range",
          "--data-size-list", "--data-size-pattern", "--expiry-range", "--data-import",
          "--key-prefix", "--key-minimum", "--key-maximum", "--key-pattern", "--key-stddev",
          "--key-median", "--key-zipf-exp", "--command", "--command-ratio",
          "--command-key-pattern", "--wait-ratio", "--num-slaves", "--wait-timeout",
          "--connection-timeout"}}
# configuration field memtier writes <- its option
CONFIG = {{"server": "server", "port": "port", "protocol": "protocol", "cacert": "cacert",
          "clients": "clients", "threads": "threads", "test_time": "test-time",
          "ratio": "ratio", "pipeline": "pipeline", "data_size": "data-size",
          "key_minimum": "key-minimum", "key_maximum": "key-maximum",
          "key_pattern": "key-pattern", "rate_limit": "rate-limiting",
          "authenticate": "authenticate"}}

args = sys.argv[1:]
if "--version" in args:
    version = os.environ.get("FAKE_VERSION", {version!r})
    if version:
        print(version)
        print("Copyright (C) 2011-2026 Redis Ltd.")
    sys.exit(0)
opts, flags = {{}}, set()
for a in args:
    name, eq, value = a.partition("=")
    if (name in VALUED and eq) or (name in FLAGS and not eq):
        opts[name[2:]] = value
        flags.add(name)
    else:
        print(f"memtier_benchmark: unrecognized option '{{a}}'", file=sys.stderr)
        sys.exit(1)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "at": time.time(), "cwd": os.getcwd()}}) + "\n")
if os.environ.get("FAKE_FAIL_ARG") and os.environ["FAKE_FAIL_ARG"] in args:
    print("Connection error: TLS handshake failed", file=sys.stderr)
    sys.exit(1)
allkeys = opts.get("requests") == "allkeys"
test_time = int(opts.get("test-time", 10)) if not allkeys else 10
if os.environ.get("FAKE_CAPTURE") and not allkeys:
    capture = os.environ["FAKE_CAPTURE"]
elif "--cluster-mode" in flags and test_time == 10:
    capture = {cluster!r}
elif test_time in CAPTURES:
    capture = CAPTURES[test_time]
else:
    print(f"stand-in: no capture for --test-time={{test_time}}", file=sys.stderr)
    sys.exit(2)
time.sleep(0 if allkeys else test_time * float(os.environ.get("FAKE_TIME_SCALE", "1")))
doc = json.load(open(os.path.join(REAL, capture + ".json")))
for field, opt in CONFIG.items():
    if opt in opts:
        old = doc["configuration"].get(field)
        doc["configuration"][field] = type(old)(opts[opt]) if isinstance(old, int) else opts[opt]
doc["configuration"]["tls"] = "true" if "--tls" in flags else "false"
stats = doc["ALL STATS"]
if allkeys:  # --requests=allkeys: every key of the range written once, no GETs
    keys = int(opts["key-maximum"]) - int(opts.get("key-minimum", 1)) + 1
    stats["Sets"]["Count"], stats["Gets"]["Count"], stats["Totals"]["Count"] = keys, 0, keys
    # what the cache holds afterwards (the redis-cli stand-in's DBSIZE), short by FAKE_LOST
    with open("fake.dbsize", "w") as db:
        db.write(str(keys - int(os.environ.get("FAKE_LOST", "0"))))
end = int(time.time() * 1000)
stats["Runtime"]["Start time"] = end - stats["Runtime"]["Total duration"]
stats["Runtime"]["Finish time"] = end
if os.environ.get("FAKE_NO_CONNECTION"):
    # what a real memtier (a local build) did on a TLS verify failure: exit 0, say
    # so on stderr, write Totals Count 0, every Time-Serie empty, Runtime all zeros
    for block in stats.values():
        if "Time-Serie" in block:
            block.update({{"Count": 0, "Time-Serie": {{}}}})
    stats["Runtime"].update({{"Start time": 0, "Finish time": 0, "Total duration": 0}})
    print("TLS connection error: certificate verify failed", file=sys.stderr)
with open(opts["json-out-file"], "w") as fh:
    json.dump(doc, fh, indent="\t")  # memtier's '"authenticate": "<token>"', unescaped
if "hdr-file-prefix" in opts:
    for suffix in ("_FULL_RUN_1.hgrm", "_FULL_RUN_1.txt"):
        shutil.copy(os.path.join(REAL, capture + suffix), opts["hdr-file-prefix"] + suffix)
print(open(os.path.join(REAL, capture + ".stdout")).read(), end="")
'''

CLI_STANDIN = r'''#!{python}
"""redis-cli / valkey-cli stand-in: redis-cli 7.0's argument rules; DBSIZE answers what the
memtier stand-in's prefill wrote (fake.dbsize, split over 3 primaries with --cluster call),
FLUSHALL empties it, any other command is OK."""
import hashlib, json, os, sys

VALUED = {{"-h", "-p", "-a", "-n", "-u", "--user", "--pass", "--cacert", "--cacertdir",
          "--cert", "--key", "--sni", "--tls-ciphers", "--tls-ciphersuites"}}
FLAGS = {{"--tls", "--insecure", "--no-auth-warning"}}
args, i, seen, command = sys.argv[1:], 0, {{}}, []
while i < len(args):
    a = args[i]
    if a in VALUED and i + 1 < len(args):
        seen[a] = args[i + 1]
        i += 2
    elif a in FLAGS:
        seen[a] = True
        i += 1
    elif a == "--cluster" and i + 1 < len(args):
        seen[a] = args[i + 1]
        command = args[i + 2 :]
        i = len(args)
    elif a.startswith("-"):
        print(f"Unrecognized option or bad number of args for: '{{a}}'", file=sys.stderr)
        sys.exit(1)
    else:
        command = args[i:]
        i = len(args)
auth = os.environ.get("VALKEYCLI_AUTH") or os.environ.get("REDISCLI_AUTH") or ""
with open(os.environ["FAKE_CLI_LOG"], "a") as log:
    log.write(json.dumps({{"tool": os.path.basename(sys.argv[0]), "argv": sys.argv[1:],
                          "options": seen, "command": command,
                          "auth_sha256": hashlib.sha256(auth.encode()).hexdigest()}}) + "\n")
verb = (command[1:] if seen.get("--cluster") == "call" else command)[:1]
keys = int(open("fake.dbsize").read()) if os.path.exists("fake.dbsize") else 0
if verb == ["FLUSHALL"] and os.path.exists("fake.dbsize"):
    os.remove("fake.dbsize")
if seen.get("--cluster") == "call":
    print(f">>> Calling {{' '.join(command[1:])}}")
    for n in range(3):  # three primaries, as redis-cli --cluster call answers
        share = keys // 3 + (1 if n < keys % 3 else 0)
        print(f"10.0.0.{{n + 1}}:6379: {{share if verb == ['DBSIZE'] else 'OK'}}")
else:
    print(keys if verb == ["DBSIZE"] else "OK")
'''


def install_image(bin_dir: Path) -> None:
    """The image's tools as executables in bin_dir (the AWS CLI is the real one)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    memtier = MEMTIER_STANDIN.format(
        python=sys.executable,
        real=str(REAL),
        captures=CAPTURES,
        cluster=CLUSTER_CAPTURE,
        version=IMAGE_VERSION,
    )
    cli = CLI_STANDIN.format(python=sys.executable)
    for name, text in (("memtier_benchmark", memtier), ("redis-cli", cli), ("valkey-cli", cli)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)


CGROUP_WRITER = r"""
import sys, time
from pathlib import Path
path, pct, version = Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
t0 = time.time()
while True:
    usec = int((time.time() - t0) * pct / 100 * 1e6)
    if version == 2:
        target = path / "cpu.stat"
        text = f"usage_usec {usec}\nuser_usec {usec * 9 // 10}\nsystem_usec {usec // 10}\n"
    else:
        target = path / "cpuacct" / "cpuacct.usage"
        text = f"{usec * 1000}\n"
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(target)
    time.sleep(0.005)
"""


class FakeCgroup:
    """A cgroup folder whose CPU counter grows at `pct` % of one core (v2 cpu.stat
    usage_usec, or v1 cpuacct/cpuacct.usage in nanoseconds), rewritten every 5 ms by a
    process of its own (a thread of the busy test process would fall behind)."""

    def __init__(self, path: Path, pct: float, version: int = 2):
        self.path, self.pct, self.version = path, pct, version
        (path / "cpuacct").mkdir(parents=True, exist_ok=True)
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", CGROUP_WRITER, str(self.path), str(self.pct), str(self.version)]
        )
        target = self.path / ("cpu.stat" if self.version == 2 else "cpuacct/cpuacct.usage")
        deadline = time.monotonic() + 10
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)


def container_env(root: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """What the container's processes see besides what ECS sets: the image's PATH, the
    task role's credentials for the moto server, the stand-ins' logs."""
    if not (Path(VENV_BIN) / "aws").exists():
        raise RuntimeError(
            f"no AWS CLI in {VENV_BIN}: pip install -r requirements-dev.txt (awscli), "
            "the load task's upload runs the real one"
        )
    bin_dir = root / "bin"
    if not (bin_dir / "memtier_benchmark").exists():
        install_image(bin_dir)
    home = root / "home"
    home.mkdir(exist_ok=True)
    return {
        "PATH": f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "FAKE_LOG": str(root / "memtier.jsonl"),
        "FAKE_CLI_LOG": str(root / "cli.jsonl"),
        **(extra or {}),
    }


def recorded(root: Path, name: str = "memtier.jsonl") -> list[dict]:
    path = root / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- moto's ECS, played


def put_node_metrics(
    node_ids: list[str],
    at: float,
    evictions: float = 0.0,
    allowance_out: float = 0.0,
    cw=None,
) -> None:
    """One datapoint per node and metric at `at`, as ElastiCache publishes them."""
    cw = cw or boto3.client("cloudwatch", region_name=REGION)
    ts = datetime.fromtimestamp(at, UTC)
    values = {
        "CPUUtilization": ("Percent", 35.0),
        "EngineCPUUtilization": ("Percent", 60.0),
        "NetworkBytesIn": ("Bytes", 6e9),  # 0.8 Gbps over 60 s
        "NetworkBytesOut": ("Bytes", 9e9),  # 1.2 Gbps
        "BytesUsedForCache": ("Bytes", 2.5e8),
        "CurrConnections": ("Count", 250.0),
        "Evictions": ("Count", evictions),
        "NetworkBandwidthOutAllowanceExceeded": ("Count", allowance_out),
    }
    for node in node_ids:
        dims = [
            {"Name": "CacheClusterId", "Value": node},
            {"Name": "CacheNodeId", "Value": "0001"},
        ]
        cw.put_metric_data(
            Namespace="AWS/ElastiCache",
            MetricData=[
                {"MetricName": m, "Dimensions": dims, "Timestamp": ts, "Unit": u, "Value": v}
                for m, (u, v) in values.items()
            ],
        )


def write_task_log(task_arn: str, lines: list[str], logs=None) -> None:
    """What the awslogs driver writes for a task's container: <prefix>/<container>/<task id>."""
    logs = logs or boto3.client("logs", region_name=REGION)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=LOG_GROUP)
    stream = f"{LOG_PREFIX}/{CONTAINER}/{task_arn.rsplit('/', 1)[-1]}"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    if lines:
        logs.put_log_events(
            logGroupName=LOG_GROUP,
            logStreamName=stream,
            logEvents=[{"timestamp": now, "message": line} for line in lines],
        )


def _backend_task(cluster: str, task_arn: str):
    """moto's own task object, None once forgotten (forget_task)."""
    from moto.ecs.models import ecs_backends

    return ecs_backends["123456789012"][REGION].tasks[cluster.split("/")[-1]].get(task_arn)


def set_exit_code(cluster: str, task_arn: str, code: int, reason: str, ecs=None) -> None:
    """The task's container exited with `code`: the task stops as ECS stops it then
    (stopCode EssentialContainerExited), unless a StopTask stopped it first (UserInitiated,
    its reason kept). moto's API cannot set the container's exit code: set here."""
    ecs = ecs or boto3.client("ecs", region_name=REGION)
    task = _backend_task(cluster, task_arn)
    if task is None:  # ECS forgot it (forget_task)
        return
    # the container first, then the task: a DescribeTasks in between must never see the
    # task STOPPED with moto's default exit code 0 or without its stop code
    for c in task.containers:
        c.exitCode = code
        c.last_status = "STOPPED"
    if task.desired_status != "STOPPED":
        task.stop_code = "EssentialContainerExited"  # moto_gaps' StopTask keeps it
        ecs.stop_task(cluster=cluster, task=task_arn, reason=reason)


def forget_task(cluster: str, task_arn: str) -> None:
    """ECS no longer has the task (it forgets stopped ones after about an hour): gone from
    ListTasks, DescribeTasks answers MISSING for it (moto_gaps)."""
    from moto.ecs.models import ecs_backends

    del ecs_backends["123456789012"][REGION].tasks[cluster.split("/")[-1]][task_arn]


def _tags(tags: list[dict]) -> dict[str, str]:
    return {t.get("key", t.get("Key")): t.get("value", t.get("Value")) for t in tags}


class FakeEcs(threading.Thread):
    """Plays every RUNNING task of `cluster`: runs its command, then STOPPED with its exit code.

    `fail`: globs over "<point id>/<task name>" (g0, g1, ..., prefill) of the tasks
    whose memtier fails (exit 1, "Connection error: TLS handshake failed" on stderr); a
    prefill task fails only for a glob ending in "/prefill". A task stopped with
    stop_task has its container ended.
    `late`: {glob over the same: seconds} tasks whose container comes up that much later
    (a slow image pull); `env`: {glob: {variable: value}} more environment for those
    tasks' containers (the stand-ins' FAKE_* settings).
    `cpu_pct`: how busy each task's cgroup reports the container (% of one core).
    `time_scale`: the memtier stand-in sleeps --test-time x this.
    `campaign`: play only the tasks tagged with this campaign (the moto server is shared
    by the session: another test's tasks are not this one's).
    """

    def __init__(
        self,
        root: Path,
        campaign: str,
        cluster: str = CLUSTER,
        fail: tuple[str, ...] = (),
        cpu_pct: float = 150.0,
        time_scale: float = 1.0,
        late: dict[str, float] | None = None,
        env: dict[str, dict[str, str]] | None = None,
    ):
        super().__init__(daemon=True)
        self.root, self.campaign, self.cluster, self.fail = root, campaign, cluster, fail
        self.late, self.extra_env = late or {}, env or {}
        self.cpu_pct, self.time_scale = cpu_pct, time_scale
        self.done: dict[str, int] = {}  # task ARN -> exit code
        self.output: dict[str, str] = {}  # task ARN -> what its container printed
        self.tasks: dict[str, dict] = {}  # task ARN -> the task as ECS described it at start
        self.errors: list[str] = []
        self.secrets: set[str] = set()  # every secret value handed to a container
        self.procs: dict[str, subprocess.Popen] = {}  # task ARN -> its container's shell
        self._seen: set[str] = set()
        self._workers: list[threading.Thread] = []
        self._published: set[tuple[str, int]] = set()  # (node, minute)
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self.env = container_env(root)
        # clients made here, once: the task runner of dag.test edits os.environ while it
        # runs a task, and botocore reads it when a client is made (a thread would race it)
        self.aws = {
            svc: boto3.client(svc, region_name=REGION)
            for svc in ("ecs", "secretsmanager", "logs", "elasticache", "cloudwatch")
        }

    def __enter__(self) -> FakeEcs:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)
        for w in self._workers:
            w.join(timeout=60)

    def run(self) -> None:
        ecs = self.aws["ecs"]
        while not self._stop_event.is_set():
            try:
                arns = ecs.list_tasks(cluster=self.cluster, desiredStatus="RUNNING")["taskArns"]
                new = [a for a in arns if a not in self._seen]
                if new:
                    described = ecs.describe_tasks(
                        cluster=self.cluster, tasks=new, include=["TAGS"]
                    )
                    for task in described["tasks"]:
                        self._seen.add(task["taskArn"])
                        if _tags(task.get("tags", [])).get("cachebench:campaign") != self.campaign:
                            continue
                        self.tasks[task["taskArn"]] = task
                        worker = threading.Thread(target=self._play, args=(task,), daemon=True)
                        worker.start()
                        self._workers.append(worker)
            except Exception as exc:  # keep playing; the test sees it in .errors
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop_event.wait(0.1)

    def _secrets(self, task: dict, container: str) -> dict[str, str]:
        """The container's secrets, resolved as ECS does at start (valueFrom: name or ARN)."""
        ecs, sm = self.aws["ecs"], self.aws["secretsmanager"]
        td = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])
        out = {}
        for c in td["taskDefinition"]["containerDefinitions"]:
            if c["name"] == container:
                for s in c.get("secrets", []):
                    out[s["name"]] = sm.get_secret_value(SecretId=s["valueFrom"])["SecretString"]
                    self.secrets.add(out[s["name"]])
        return out

    def _play(self, task: dict) -> None:
        arn = task["taskArn"]
        try:
            rc, output = self._run_container(task)
        except Exception as exc:
            self.errors.append(f"{arn}: {type(exc).__name__}: {exc}")
            rc, output = 1, f"fake ECS could not run the task: {exc}"
        self.output[arn] = output
        write_task_log(arn, output.splitlines(), self.aws["logs"])
        set_exit_code(self.cluster, arn, rc, "Essential container in task exited", self.aws["ecs"])
        self.done[arn] = rc

    def _run_container(self, task: dict) -> tuple[int, str]:
        (override,) = task["overrides"]["containerOverrides"]
        env = {e["name"]: e["value"] for e in override.get("environment", [])}
        env.update(self._secrets(task, override["name"]))
        tid = task["taskArn"].rsplit("/", 1)[-1]
        home = self.root / "tasks" / tid
        tags = _tags(task.get("tags", []))
        extra = {
            "CACHEBENCH_OUT_DIR": str(home / "out"),
            "CACHEBENCH_CGROUP_DIR": str(home / "cgroup"),
            "FAKE_TIME_SCALE": str(self.time_scale),
        }
        name = env.get("CACHEBENCH_GENERATOR", "")
        # the point's id, from where the task uploads: .../<point id>/rep<k>/attempt<a>/<name>/
        point_id = env.get("CACHEBENCH_RESULTS_URI", "").rstrip("/").split("/")[-4:-3]
        where = f"{''.join(point_id)}/{name}"
        if any(
            fnmatch.fnmatchcase(where, g) and (name.startswith("g") or g.endswith("/prefill"))
            for g in self.fail
        ):
            extra["FAKE_FAIL_ARG"] = "--protocol=redis"  # every memtier of the task fails
        for glob, more in self.extra_env.items():
            if fnmatch.fnmatchcase(where, glob):
                extra.update(more)
        if delay := max(
            (s for g, s in self.late.items() if fnmatch.fnmatchcase(where, g)), default=0
        ):
            time.sleep(delay)
        cgroup = FakeCgroup(home / "cgroup", self.cpu_pct)
        cgroup.start()
        proc = subprocess.Popen(
            override["command"],
            env={**self.env, **extra, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=home,
            start_new_session=True,
        )
        self.procs[task["taskArn"]] = proc
        try:
            output = self._wait(task["taskArn"], proc)
        finally:
            cgroup.stop()
        self._publish(tags, home / "out" / "measured.started")
        rc = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        return rc, output

    def kill(self, arn: str, sig: int) -> None:
        """Signal every process of the task's container (the OOM killer, a crash): it exits
        128 + sig, and the task stops as ECS stops it when its essential container exits."""
        os.killpg(self.procs[arn].pid, sig)

    def _wait(self, arn: str, proc: subprocess.Popen) -> str:
        """The container's output once it exits; SIGTERM to it when its task is stopped
        (stop_task), as ECS does."""
        task = _backend_task(self.cluster, arn)
        reader = threading.Thread(target=lambda: setattr(proc, "out", proc.stdout.read()))
        reader.start()
        deadline = time.monotonic() + 600
        while proc.poll() is None:
            if task.desired_status == "STOPPED" or time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            time.sleep(0.1)
        reader.join(timeout=10)
        return getattr(proc, "out", "")

    def _publish(self, tags: dict[str, str], started: Path) -> None:
        """The group's datapoints for the minute of the measured window (once per minute:
        two runs in one minute share ElastiCache's one-minute datapoint)."""
        if not started.is_file():
            return
        at = float(started.read_text().split()[0]) + 1
        ec = self.aws["elasticache"]
        mine = ("cachebench:campaign", "cachebench:run", "cachebench:deployment")
        for g in ec.describe_replication_groups()["ReplicationGroups"]:
            if g["Status"] != "available":
                continue
            theirs = _tags(ec.list_tags_for_resource(ResourceName=g["ARN"])["TagList"])
            if all(theirs.get(k) == tags.get(k) for k in mine):
                with self._lock:
                    nodes = [
                        m for m in g["MemberClusters"] if (m, int(at // 60)) not in self._published
                    ]
                    self._published.update((m, int(at // 60)) for m in nodes)
                if nodes:
                    put_node_metrics(nodes, at, allowance_out=4.0, cw=self.aws["cloudwatch"])

    def started_by(self) -> dict[str, list[str]]:
        """Task ARNs by the startedBy they were started with."""
        out: dict[str, list[str]] = {}
        for arn, t in self.tasks.items():
            out.setdefault(t.get("startedBy", ""), []).append(arn)
        return out


# ---------------------------------------------------------------- what the module makes


def create_group(
    rg: str,
    tags: dict[str, str],
    *,
    cluster_mode: bool = False,
    shards: int = 1,
    replicas: int = 1,
    engine: str = "valkey",
    version: str = "8.0",
) -> str:
    """A replication group and its AUTH secret made straight in moto, with the names and
    tags include/terraform/aws gives them, for tests of what runs on a group (loads,
    the reaper) rather than of the module. Returns the secret's ARN."""
    ec = boto3.client("elasticache", region_name=REGION)
    sm = boto3.client("secretsmanager", region_name=REGION)
    token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(64))
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    arn = sm.create_secret(Name=f"cachebench/{rg}/auth", SecretString=token, Tags=tag_list)["ARN"]
    topology = (
        {"ClusterMode": "enabled", "NumNodeGroups": shards, "ReplicasPerNodeGroup": replicas}
        if cluster_mode
        else {"ClusterMode": "disabled", "NumCacheClusters": 1 + replicas}
    )
    ec.create_replication_group(
        ReplicationGroupId=rg,
        ReplicationGroupDescription="cachebench test",
        Engine=engine,
        EngineVersion=version,
        CacheNodeType="cache.r7g.large",
        TransitEncryptionEnabled=True,
        TransitEncryptionMode="required",
        AtRestEncryptionEnabled=True,
        AuthToken=token,
        Tags=tag_list,
        **topology,
    )
    return arn


def left_in_moto(rg: str, vpc_id: str) -> list[str]:
    """What include/terraform/aws made for group `rg` that still exists in moto."""
    ec = boto3.client("elasticache", region_name=REGION)
    left = []
    with contextlib.suppress(ec.exceptions.ReplicationGroupNotFoundFault):
        ec.describe_replication_groups(ReplicationGroupId=rg)
        left.append(f"replication group {rg}")
    left += [
        f"cache cluster {c['CacheClusterId']}"
        for c in ec.describe_cache_clusters()["CacheClusters"]
        if c["CacheClusterId"].startswith(f"{rg}-")
    ]
    with contextlib.suppress(ec.exceptions.CacheSubnetGroupNotFoundFault):
        ec.describe_cache_subnet_groups(CacheSubnetGroupName=rg)
        left.append(f"subnet group {rg}")
    with contextlib.suppress(ec.exceptions.CacheParameterGroupNotFoundFault):
        ec.describe_cache_parameter_groups(CacheParameterGroupName=rg)
        left.append(f"parameter group {rg}")
    ec2 = boto3.client("ec2", region_name=REGION)
    left += [
        f"security group {g['GroupId']}"
        for g in ec2.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [f"{rg}-cache"]},
                {"Name": "vpc-id", "Values": [vpc_id]},
            ]
        )["SecurityGroups"]
    ]
    sm = boto3.client("secretsmanager", region_name=REGION)
    with contextlib.suppress(sm.exceptions.ResourceNotFoundException):
        if not sm.describe_secret(SecretId=f"cachebench/{rg}/auth").get("DeletedDate"):
            left.append(f"secret cachebench/{rg}/auth")
    logs = boto3.client("logs", region_name=REGION)
    left += [
        f"log group {g['logGroupName']}"
        for g in logs.describe_log_groups(logGroupNamePrefix=f"/aws/vendedlogs/cachebench/{rg}/")[
            "logGroups"
        ]
    ]
    cw = boto3.client("cloudwatch", region_name=REGION)
    with contextlib.suppress(cw.exceptions.DashboardNotFoundError, cw.exceptions.ResourceNotFound):
        cw.get_dashboard(DashboardName=f"cachebench-{rg}")
        left.append(f"dashboard cachebench-{rg}")
    return left


def campaign(name: str, generators: int = 3, **extra) -> dict:
    """A small aws campaign: redis and valkey, one topology, a 2 s warm-up and 5 s window
    (the memtier stand-in's captures for those --test-time values differ)."""
    return {
        "name": name,
        "target": "aws",
        "engines": [
            {"engine": "redis", "versions": ["7.1"]},
            {"engine": "valkey", "versions": ["8.0"]},
        ],
        "topologies": [{"cluster_mode": False, "replicas": 1}],
        "node_types": ["cache.r7g.large"],
        "workloads": [
            {
                "name": "mixed",
                "ratio": "1:4",
                "value_size": 256,
                "key_space": 100000,
                "pipeline": 2,
                "clients": 25,
                "threads": 4,
                "warmup_seconds": 2,
                "duration_seconds": 5,
            }
        ],
        "load_generators": generators,
        "budget_usd": 50,
        **extra,
    }
