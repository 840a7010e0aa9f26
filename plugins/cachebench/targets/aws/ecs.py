"""memtier_benchmark on ECS: the scripts a run's tasks run, and the ECS calls around them.

A run's tasks are started by targets/aws.py through the Amazon provider's
EcsHook: one prefill task (prefill_script), then `load_generators` load tasks
(container_script), each phase's tasks sharing a startedBy of their own.

The AUTH token reaches memtier only through the container's ``secrets`` (ECS
reads it from Secrets Manager into the CACHEBENCH_AUTH variable at start):
a per-deployment revision of the user's task definition adds that secret, so
the token is never in run_task overrides, XCom or our logs, only its ARN is.

A load task runs a short POSIX shell script we build, in its own folder
(``$CACHEBENCH_OUT_DIR``, default /tmp/cachebench): the memtier version line
to version.txt (and, for a rate-limited workload, a check that it is 2.1 or
later before any load: exit 78), with TLS a check that the CA bundle is there
(exit 79), then it waits for the run's start time (``$CACHEBENCH_START_AT_MS``,
the same for every load task of a run: now + aws.load_start_grace_seconds when
they were started), warms up (kept apart) until start + warmup_seconds, and at
that moment starts the measured run, so every generator measures the same
seconds. A task that comes up late warms up for the seconds left (none if
fewer than one) and measures late: its start skew is read off the results and
the run flagged (aws/results.py). Each phase's start time (``date +%s.%N``) goes
to <phase>.started just before memtier starts; then a scrub of
the password memtier copies into its JSON, and an upload of every output file
to ``<results_uri>/g<N>/`` with the AWS CLI. A memtier that fails has its
output copied to the task's log (awslogs), so the watch can say why. While the
measured memtier runs, the script samples the container's CPU once a second
into cpu.samples (``<unix time> <CPU microseconds used>``) from its cgroup
(``$CACHEBENCH_CGROUP_DIR``, default /sys/fs/cgroup: cgroup v2 cpu.stat
usage_usec, else v1 cpuacct/cpuacct.usage); the cgroup files need nothing in
the image, where the task metadata endpoint's stats would need curl. With
read_from "replicas" each phase runs two memtier processes at once (writers to
the primary endpoint, readers to the reader endpoint: <phase>-set.* and
<phase>-get.*) and reads_from.txt says where reads went. The image therefore
needs memtier_benchmark, /bin/sh, sed, date, sleep, cat, the AWS CLI, for the
prefill redis-cli or valkey-cli and, with TLS, the CA bundle at aws.tls_cacert.
The two folder variables exist so that tests can run the script on a shared
machine; ECS never sets them.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import signal
from typing import Any

from pydantic import Field

from cachebench.loadgen import reads
from cachebench.loadgen.auth import AUTH_ENV
from cachebench.loadgen.memtier import MEMTIER, RATE_LIMIT_MIN, memtier_argv, side_workloads
from cachebench.models import DeploymentPlan, Endpoint, Point, Strict, Workload
from cachebench.targets.aws.settings import AwsSettings

OUT_DIR = "/tmp/cachebench"  # the script's folder in the container
OUT_ENV = "CACHEBENCH_OUT_DIR"  # ... unless this names another (tests)
CGROUP_DIR = "/sys/fs/cgroup"  # where the container's cgroup files are
CGROUP_ENV = "CACHEBENCH_CGROUP_DIR"  # ... unless this names another (tests)
CPU_FILE = "cpu.samples"  # "<unix time> <CPU microseconds>" once a second, measured window
RESULTS_ENV = "CACHEBENCH_RESULTS_URI"
GENERATOR_ENV = "CACHEBENCH_GENERATOR"
START_ENV = "CACHEBENCH_START_AT_MS"  # unix ms at which every load task of a run starts
DBSIZE_FILE = "dbsize.txt"  # the prefill: keys the primaries hold after it (DBSIZE summed)
# The prefill writes each key once: enough connections to be quick, no more.
PREFILL_CLIENTS, PREFILL_THREADS, PREFILL_PIPELINE = 4, 4, 16
VERSION_FILE = "version.txt"  # first line of `memtier_benchmark --version`
READS_FILE = "reads_from.txt"  # where the GETs went, when not to the primary
STARTED = "{phase}.started"  # unix time (date +%s.%N) just before the phase's memtier started
# Exit codes of the script's own checks (memtier's are 0/1, a signal's 128+n).
EXIT_OLD_MEMTIER = 78  # rate_limit, but memtier older than 2.1
EXIT_NO_CACERT = 79  # TLS, but no CA bundle at aws.tls_cacert
EXIT_NO_CLI = 80  # prefill: neither redis-cli nor valkey-cli to flush with
EXIT_FLUSH = 81  # prefill: FLUSHALL refused
EXIT_SHORT_PREFILL = 82  # prefill: the primaries hold fewer keys than the key space
# Fields of describe_task_definition that register_task_definition accepts back.
_TD_FIELDS = (
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "runtimePlatform",
    "ephemeralStorage",
)
# memtier writes `"authenticate": "<token>"` unescaped; ElastiCache AUTH tokens
# cannot contain '"', '/' or '@', so this pattern always spans the whole token.
_SCRUB_SED = r's/"authenticate": *"[^"]*"/"authenticate": "********"/'


def family(plan: DeploymentPlan) -> str:
    """Task definition family of a deployment's load (letters, digits, '-' and '_' only)."""
    key = f"{plan.deployment.campaign}/{plan.run_id}/{plan.instance}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:10]
    return re.sub(r"[^A-Za-z0-9_-]", "_", f"cachebench-{plan.instance}")[:200] + f"-{digest}"


def _checks(point: Point, endpoint: Endpoint, settings: AwsSettings) -> list[str]:
    """Lines that record memtier's version and stop the task, before any load, when
    the image cannot run the point."""
    version = VERSION_FILE  # in the script's folder (see _header)
    lines = [f"memtier_benchmark --version 2>&1 | sed -n 1p > {version}", f"cat {version}"]
    if point.workload.rate_limit:
        # "memtier_benchmark 2.1.0" (up to 2.2.0) or "memtier_benchmark v=2.2.1 sha=...";
        # a source build's 255.255.255 passes; no version found reads as 0.0.
        major, minor = RATE_LIMIT_MIN
        sed = r"s/^memtier_benchmark  *\(v=\)\{0,1\}\([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\2 \3/p"
        lines += [
            f"set -- $(sed -n {shlex.quote(sed)} {version}) 0 0",
            f'if [ "$(($1 * 1000 + $2))" -lt {major * 1000 + minor} ]; then',
            f'  echo "cachebench: rate_limit needs memtier_benchmark {major}.{minor} or later '
            f'(--rate-limiting); this image has: $(cat {version})" >&2',
            f"  exit {EXIT_OLD_MEMTIER}",
            "fi",
        ]
    if endpoint.tls and not settings.tls_skip_verify:
        why = (
            f"cachebench: no CA bundle at {settings.tls_cacert} in this image "
            "(aws.tls_cacert): memtier could not verify the cache's TLS certificate"
        )
        lines += [
            f"if [ ! -r {shlex.quote(settings.tls_cacert)} ]; then",
            f"  echo {shlex.quote(why)} >&2",
            f"  exit {EXIT_NO_CACERT}",
            "fi",
        ]
    return lines


Process = tuple[str, Workload, Endpoint]  # output name suffix, workload, where it connects


def _processes(point: Point, endpoint: Endpoint) -> tuple[list[Process], str]:
    """The memtier processes of a phase, and where reads go: one process, or with
    read_from "replicas" writers (to the primary) and readers (to the reader endpoint)."""
    w = point.workload
    if w.read_from != "replicas":
        return [("", w, endpoint)], ""
    if not endpoint.reader_host:
        raise ValueError(
            "read_from 'replicas': the endpoint has no reader_host (the Terraform "
            "module's endpoint output must name the group's reader endpoint)"
        )
    (reader,), label = reads.reader_endpoints(endpoint, 1)
    ends = {"set": endpoint, "get": reader}
    return [(f"-{side}", wl, ends[side]) for side, wl in side_workloads(w).items()], label


def _header() -> list[str]:
    """The script's start: its folder (the task's by default), entered, and rc."""
    return [
        "set -u",
        f'out="${{{OUT_ENV}:-{OUT_DIR}}}"',
        f'cg="${{{CGROUP_ENV}:-{CGROUP_DIR}}}"',
        'mkdir -p "$out" && cd "$out" || exit 1',
        "rc=0",
    ]


# Unix time in ms (GNU date's %3N; whole seconds where date has no %N), and a sleep
# until a given one (fractional sleep where sleep takes it, else whole seconds up).
_CLOCK = """now_ms() {
  t=$(date +%s%3N 2>/dev/null)
  case "$t" in ''|*[!0-9]*) t=$(( $(date +%s) * 1000 ));; esac
  echo "$t"
}
wait_until() {
  left=$(( $1 - $(now_ms) ))
  [ "$left" -gt 0 ] || return 0
  sleep "$(( left / 1000 )).$(printf '%03d' $(( left % 1000 )))" 2>/dev/null ||
    sleep $(( (left + 999) / 1000 ))
}"""
WARM = "@WARM_SECONDS@"  # the warm-up's --test-time, the seconds left until the measured start


# The container's CPU so far in microseconds (cgroup v2 cpu.stat, else v1 cpuacct), and a
# loop writing it with the time once a second: the sampler of the measured window.
_CPU_SAMPLER = f"""cpu_now() {{
  if [ -r "$cg/cpu.stat" ]; then
    sed -n 's/^usage_usec \\([0-9][0-9]*\\).*/\\1/p' "$cg/cpu.stat"
  elif [ -r "$cg/cpuacct/cpuacct.usage" ]; then
    read -r ns < "$cg/cpuacct/cpuacct.usage" && echo $((ns / 1000))
  fi
}}
sample_cpu() {{
  while :; do
    u=$(cpu_now)
    [ -n "$u" ] && echo "$(date +%s.%N) $u" >> {CPU_FILE}
    sleep 1
  done
}}"""


def _failed(name: str) -> str:
    """What a failed memtier leaves: its exit code in rc, its output in the task's log."""
    return f"{{ rc=$?; cat {name}.stdout >&2; }}"


def container_script(point: Point, endpoint: Endpoint, settings: AwsSettings) -> str:
    """The shell script one load task runs (no secret in it: the token is "$CACHEBENCH_AUTH")."""
    w = point.workload
    auth = f' "--authenticate=${AUTH_ENV}"' if endpoint.auth_ref else ""
    tls = {"tls_cacert": settings.tls_cacert, "tls_skip_verify": settings.tls_skip_verify}
    lines = [*_header(), _CPU_SAMPLER, _CLOCK, *_checks(point, endpoint, settings)]
    processes, reads_label = _processes(point, endpoint)
    if reads_label:
        lines.append(f"echo {shlex.quote(reads_label)} > {READS_FILE}")
    # the run's start (every load task's), else now; the measured window starts warm-up later
    lines += [
        f'start_ms="${{{START_ENV}:-$(now_ms)}}"',
        'wait_until "$start_ms"',
        f"measured_ms=$(( start_ms + {w.warmup_seconds * 1000} ))",
    ]
    if w.warmup_seconds > 0:
        # the whole seconds left, rounded: a task on time warms up for warmup_seconds
        lines += [
            "warm=$(( (measured_ms - $(now_ms) + 500) / 1000 ))",
            'if [ "$warm" -ge 1 ]; then',
        ]
        lines += [f"  {line}" for line in _phase("warmup", WARM, processes, auth, tls)]
        lines.append("fi")
    lines.append('wait_until "$measured_ms"')
    lines += _phase("measured", w.duration_seconds, processes, auth, tls)
    lines += _scrub_and_upload()
    return "\n".join(lines)


def _phase(
    phase: str, seconds: int | str, processes: list[Process], auth: str, tls: dict[str, Any]
) -> list[str]:
    """Lines running one phase's memtier processes at once (writers and readers with
    read_from "replicas"); `seconds` is WARM for the warm-up's seconds left."""
    commands = []
    for suffix, wl, ep in processes:
        name = f"{phase}{suffix}"
        test_time = 1 if seconds == WARM else int(seconds)
        argv = memtier_argv(wl, ep, password_env=False, test_time=test_time, out_prefix=name, **tls)
        if seconds == WARM:
            argv = [WARM if a == "--test-time=1" else a for a in argv]
        cmd = shlex.join(argv).replace(WARM, '"--test-time=$warm"')
        commands.append((name, f"{cmd}{auth} > {name}.stdout 2>&1"))
    lines = [f"date +%s.%N > {STARTED.format(phase=phase)}"]
    if phase == "measured":
        lines.append("sample_cpu & sampler=$!")
    # writers and readers run at once: all but the last in the background
    for i, (_, cmd) in enumerate(commands[:-1]):
        lines += [f"{cmd} &", f"pid{i}=$!"]
    name, cmd = commands[-1]
    lines.append(f"{cmd} || {_failed(name)}")
    lines += [f'wait "$pid{i}" || {_failed(n)}' for i, (n, _) in enumerate(commands[:-1])]
    if phase == "measured":
        lines.append('kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null')
    return lines


def _scrub_and_upload() -> list[str]:
    """The script's end: mask the token memtier copies into its JSON, upload, exit."""
    return [
        f'for f in *.json; do [ -f "$f" ] && sed -i {shlex.quote(_SCRUB_SED)} "$f"; done',
        f'aws s3 cp --recursive --only-show-errors . "${RESULTS_ENV}" || rc=$?',
        'exit "$rc"',
    ]


def register_task_definition(
    ecs: Any, base: str, container: str, fam: str, auth_ref: str | None, tags: list[dict]
) -> str:
    """A revision of the user's task definition with the deployment's AUTH secret; its ARN."""
    td = ecs.describe_task_definition(taskDefinition=base)["taskDefinition"]
    containers = []
    found = False
    for c in td["containerDefinitions"]:
        c = dict(c)
        if c["name"] == container:
            found = True
            secrets = [s for s in c.get("secrets", []) if s["name"] != AUTH_ENV]
            if auth_ref:
                secrets.append({"name": AUTH_ENV, "valueFrom": auth_ref})
            c["secrets"] = secrets
            # Our command is a whole argv (/bin/sh -c script): an image ENTRYPOINT such
            # as memtier's official image's would take it as memtier's arguments.
            c["entryPoint"] = ["/usr/bin/env"]
        containers.append(c)
    if not found:
        raise ValueError(f"task definition {base} has no container named {container!r}")
    kwargs = {k: td[k] for k in _TD_FIELDS if td.get(k)}
    out = ecs.register_task_definition(
        family=fam, containerDefinitions=containers, tags=tags, **kwargs
    )
    return out["taskDefinition"]["taskDefinitionArn"]


def describe_task_definition(ecs: Any, task_definition: str) -> dict[str, Any]:
    return ecs.describe_task_definition(taskDefinition=task_definition)["taskDefinition"]


def vcpus(td: dict[str, Any]) -> float | None:
    """A task definition's vCPUs (task-level cpu units / 1024; Fargate requires them)."""
    units = td.get("cpu")
    try:
        return int(units) / 1024 if units else None
    except ValueError:  # "1 vCPU" is accepted on registration and stored as units
        return None


class AwsLogs(Strict):
    """Where a container's awslogs go: its group and stream prefix."""

    group: str
    prefix: str

    def stream(self, container: str, task_arn: str) -> str:
        return f"{self.prefix}/{container}/{task_arn.rsplit('/', 1)[-1]}"


class EcsState(Strict):
    """A deployment's load tasks' set-up, registered once (ecs.json)."""

    region: str | None
    cluster: str
    family: str
    task_definition: str = Field(description="the registered revision's ARN")
    container: str
    replication_group_id: str
    awslogs: AwsLogs | None
    vcpus: float | None


def awslogs(td: dict[str, Any], container: str) -> AwsLogs | None:
    """The container's awslogs group and stream prefix, or None without awslogs."""
    for c in td["containerDefinitions"]:
        conf = c.get("logConfiguration") or {}
        if c["name"] == container and conf.get("logDriver") == "awslogs":
            opts = conf.get("options", {})
            if opts.get("awslogs-group") and opts.get("awslogs-stream-prefix"):
                return AwsLogs(group=opts["awslogs-group"], prefix=opts["awslogs-stream-prefix"])
    return None


def log_tail(logs: Any, where: AwsLogs, container: str, task_arn: str, n: int = 20) -> str:
    """The last n lines the task's container logged (awslogs stream prefix/container/task-id)."""
    stream = where.stream(container, task_arn)
    try:
        events = logs.get_log_events(
            logGroupName=where.group, logStreamName=stream, limit=n, startFromHead=False
        )["events"]
    except Exception as exc:  # no stream yet (never started) or no permission
        return f"(no log stream {where.group}/{stream}: {type(exc).__name__})"
    return "\n".join(e["message"].rstrip() for e in events)


def generator_overrides(
    container: str, script: str, results_uri: str, name: str, start_at: float | None = None
) -> dict:
    """run_task overrides of one task (generator "g<N>", or "prefill"): the script, where
    its results go and, for a load task, the run's start time (unix seconds)."""
    env = [
        {"name": RESULTS_ENV, "value": f"{results_uri}/{name}/"},
        {"name": GENERATOR_ENV, "value": name},
    ]
    if start_at is not None:
        env.append({"name": START_ENV, "value": str(round(start_at * 1000))})
    return {
        "containerOverrides": [
            {"name": container, "command": ["/bin/sh", "-c", script], "environment": env}
        ]
    }


def task_name(task: dict) -> str | None:
    """The name a task was started as ("g<N>" or "prefill", from its overrides), or None."""
    for c in task.get("overrides", {}).get("containerOverrides", []):
        for e in c.get("environment", []):
            if e.get("name") == GENERATOR_ENV:
                return str(e.get("value", ""))
    return None


def started_tasks(ecs: Any, cluster: str, started_by: str) -> list[dict]:
    """Every task (running or stopped) ECS started with this startedBy, described."""
    arns: list[str] = []
    for status in ("RUNNING", "STOPPED"):  # RUNNING first: one stopping meanwhile is seen next
        for page in ecs.get_paginator("list_tasks").paginate(
            cluster=cluster, startedBy=started_by, desiredStatus=status
        ):
            arns += page.get("taskArns", [])
    return describe(ecs, cluster, list(dict.fromkeys(arns)))


def family_tasks(ecs: Any, cluster: str, family: str, status: str = "RUNNING") -> list[str]:
    """ARNs of the tasks of a task definition family with desiredStatus `status`."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(
        cluster=cluster, family=family, desiredStatus=status
    ):
        arns += page.get("taskArns", [])
    return arns


def describe(ecs: Any, cluster: str, arns: list[str]) -> list[dict]:
    """The tasks of arns that ECS knows, 100 at a time."""
    tasks: list[dict] = []
    for i in range(0, len(arns), 100):
        tasks += ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100]).get("tasks", [])
    return tasks


STOPPED_BY_US = "cachebench: "  # how every StopTask reason of ours begins (stop's callers)
# ECS stop codes (Task.stopCode) of a task the platform ended, whatever its container was
# doing: a Fargate Spot reclaim, a host's termination notice, a service scheduler's
# replacement, a failed health of the infrastructure. Its run says nothing about the cache.
INFRA_STOP_CODES = frozenset(
    {"SpotInterruption", "TerminationNotice", "ServiceSchedulerInitiated", "InfrastructureHealth"}
)
# Documented reasons of a TaskFailedToStart that are ECS's capacity or agent, not the task's
# own set-up (an image that cannot be pulled, a secret it may not read fail again the
# same way): RESOURCE:CPU/MEMORY/ENI/PORTS/GPU, a disconnected agent, Fargate capacity.
START_INFRA_REASONS = (
    "RESOURCE:",
    "AGENT",
    "Capacity is unavailable",
    "Timeout waiting for network interface provisioning",
)
SIGNAL_BASE = 128  # a shell's (and Docker's) exit code of a process ended by signal n


class TaskEnd(Strict):
    """How an ECS task ended, from DescribeTasks' documented fields: its container's exit
    code and reason, the task's stopCode and stoppedReason (or MISSING: ECS no longer has
    it). `lost`: something other than its own tool ended it (a signal, the platform, a
    StopTask nobody here sent, a task that vanished); a task whose tool exited non-zero by
    itself is a plain failure."""

    task_id: str
    name: str | None = Field(None, description="g<N> or prefill, from its overrides")
    exit_code: int | None = None
    stop_code: str | None = None
    stopped_reason: str = ""
    container_reason: str = ""
    missing: bool = Field(False, description="DescribeTasks answered MISSING")

    @property
    def ours(self) -> bool:
        """Stopped by a StopTask of cachebench's (its reason starts STOPPED_BY_US)."""
        return self.stop_code == "UserInitiated" and self.stopped_reason.startswith(STOPPED_BY_US)

    @property
    def from_outside(self) -> bool:
        """Ended by the platform or by a StopTask nobody here sent, whatever its exit code."""
        theirs = self.stop_code == "UserInitiated" and not self.ours
        return self.missing or theirs or self.stop_code in INFRA_STOP_CODES

    @property
    def ok(self) -> bool:
        """Its tool finished by itself: exit 0, and nothing else ended the task."""
        started = self.stop_code != "TaskFailedToStart"
        return self.exit_code == 0 and started and not self.from_outside

    @property
    def lost(self) -> bool:
        """Not ended by its own tool: the run says nothing about the cache."""
        if self.ok or self.ours:
            return False
        if self.from_outside:
            return True
        if self.stop_code == "TaskFailedToStart":
            why = self.stopped_reason or self.container_reason
            return why.removeprefix("TaskFailedToStart:").strip().startswith(START_INFRA_REASONS)
        # its container killed by a signal (128 + n), or no exit code at all (it never
        # ran, or another essential container ended the task)
        return self.exit_code is None or self.exit_code > SIGNAL_BASE

    def describe(self) -> str:
        """'task <id> (g1) stopped with ...': its exit code or signal, stop code, reasons."""
        who = f"task {self.task_id}" + (f" ({self.name})" if self.name else "")
        if self.missing:
            return f"{who} vanished: ECS answers MISSING for it (DescribeTasks)"
        if self.exit_code is None:
            how = "stopped without an exit code (its container never ran or was not seen to end)"
        else:
            how = f"stopped with exit code {self.exit_code}"
            if self.exit_code > SIGNAL_BASE:
                how += f" ({_signal_name(self.exit_code - SIGNAL_BASE)})"
        parts = [how]
        if self.stop_code:
            parts.append(f"stop code {self.stop_code}")
        if self.stopped_reason:
            parts.append(f"reason: {self.stopped_reason}")
        if self.container_reason:
            parts.append(f"container: {self.container_reason}")
        if self.ours:
            parts.append("stopped by cachebench")
        elif self.lost:
            parts.append("not ended by its own tool: the run was lost")
        return f"{who} " + "; ".join(parts)


def _signal_name(n: int) -> str:
    try:
        return f"signal {n}, {signal.Signals(n).name}"
    except ValueError:
        return f"signal {n}"


def task_end(task: dict, container: str) -> TaskEnd | None:
    """How a task ended (its `container`'s exit), None while it is not STOPPED."""
    if task.get("lastStatus") != "STOPPED":
        return None
    ours = [c for c in task.get("containers", []) if c.get("name") in (container, None)]
    c = ours[0] if ours else {}
    return TaskEnd(
        task_id=task["taskArn"].rsplit("/", 1)[-1],
        name=task_name(task),
        exit_code=c.get("exitCode"),
        stop_code=task.get("stopCode"),
        stopped_reason=task.get("stoppedReason") or "",
        container_reason=c.get("reason") or "",
    )


def missing_tasks(ecs: Any, cluster: str, arns: list[str]) -> list[TaskEnd]:
    """The tasks of arns ECS answers MISSING for (it forgot them, or never had them)."""
    gone = []
    for i in range(0, len(arns), 100):
        resp = ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100])
        gone += [
            TaskEnd(task_id=f["arn"].rsplit("/", 1)[-1], missing=True)
            for f in resp.get("failures", [])
            if f.get("reason") == "MISSING" and f.get("arn")
        ]
    return gone


def stop(ecs: Any, cluster: str, arns: list[str], why: str) -> list[str]:
    """Stop the tasks not yet STOPPED, with the reason "cachebench: <why>" (so a task's
    end tells our StopTask from anyone else's); returns the ones it stopped."""
    tasks = describe(ecs, cluster, arns)
    stopped = []
    for t in tasks:
        if t.get("lastStatus") != "STOPPED":
            reason = f"{STOPPED_BY_US}{why}"[:255]
            ecs.stop_task(cluster=cluster, task=t["taskArn"], reason=reason)
            stopped.append(t["taskArn"])
    return stopped


def prefill_script(
    point: Point, endpoint: Endpoint, settings: AwsSettings, expected_keys: int | None
) -> str:
    """The script of a run's prefill task: flush every primary, write the whole key space
    with memtier (--key-pattern=P:P --requests=allkeys), count the keys the primaries
    then hold (DBSIZE, summed: DBSIZE_FILE), and upload it all.

    With `expected_keys` (the key space, when the data set fits in memory) a count
    below it stops the task with EXIT_SHORT_PREFILL and the count in its log: the
    run would read misses where it asked for hits, so it fails before any load.
    The flush and the count need redis-cli or valkey-cli in the image (memtier cannot
    send a keyless command to every shard); both read the token from the environment,
    and take their CA bundle as ``--cacert <file>`` (no ``=`` form) or skip the
    check with ``--insecure``.
    """
    tls, cli_tls = _prefill_tls(endpoint, settings)
    auth = f' "--authenticate=${AUTH_ENV}"' if endpoint.auth_ref else ""
    argv = shlex.join(_prefill_argv(point.workload, endpoint, tls))
    lines = [
        *_header(),
        *_checks(point, endpoint, settings),
        *_flush(endpoint, cli_tls),
        f"{argv}{auth} > prefill.stdout 2>&1 || {_failed('prefill')}",
        *_count_keys(endpoint, cli_tls, expected_keys),
    ]
    return "\n".join([*lines, *_scrub_and_upload()])


def _prefill_tls(endpoint: Endpoint, settings: AwsSettings) -> tuple[list[str], list[str]]:
    """The TLS options of the prefill's memtier, and of redis-cli/valkey-cli (no = form)."""
    if not endpoint.tls:
        return [], []
    if settings.tls_skip_verify:
        return ["--tls", "--tls-skip-verify"], ["--tls", "--insecure"]
    return ["--tls", f"--cacert={settings.tls_cacert}"], ["--tls", "--cacert", settings.tls_cacert]


def _prefill_argv(w: Workload, endpoint: Endpoint, tls: list[str]) -> list[str]:
    """memtier writing every key of the workload's key space once (no token: see auth)."""
    return [
        MEMTIER,
        f"--server={endpoint.host}",
        f"--port={endpoint.port}",
        "--protocol=redis",
        *(["--cluster-mode"] if endpoint.cluster_mode else []),
        *tls,
        "--ratio=1:0",
        f"--data-size={w.value_size}",
        "--key-minimum=1",
        f"--key-maximum={w.key_space}",
        "--key-pattern=P:P",
        "--requests=allkeys",
        f"--clients={PREFILL_CLIENTS}",
        f"--threads={PREFILL_THREADS}",
        f"--pipeline={PREFILL_PIPELINE}",
        "--hide-histogram",
        "--json-out-file=prefill.json",
    ]


def _on_primaries(endpoint: Endpoint, cli_tls: list[str], command: str) -> str:
    """redis-cli/valkey-cli arguments sending `command` to every primary (one a line)."""
    if endpoint.cluster_mode:
        where = f"{endpoint.host}:{endpoint.port}"
        argv = [*cli_tls, "--cluster", "call", where, command, "--cluster-only-masters"]
    else:
        argv = [*cli_tls, "-h", endpoint.host, "-p", str(endpoint.port), command]
    return shlex.join(argv)


def _flush(endpoint: Endpoint, cli_tls: list[str]) -> list[str]:
    """Lines finding the image's CLI (EXIT_NO_CLI without one), handing it the token, and
    flushing every primary (EXIT_FLUSH when refused)."""
    no_cli = (
        "cachebench: the load image needs redis-cli or valkey-cli to flush the data set "
        "before a run"
    )
    lines = [
        "cli=$(command -v valkey-cli || command -v redis-cli) || {"
        f" echo {shlex.quote(no_cli)} >&2; exit {EXIT_NO_CLI}; }}",
    ]
    if endpoint.auth_ref:
        lines.append(f'export REDISCLI_AUTH="${AUTH_ENV}" VALKEYCLI_AUTH="${AUTH_ENV}"')
    lines.append(
        f'"$cli" {_on_primaries(endpoint, cli_tls, "FLUSHALL")} > flush.stdout 2>&1'
        f" || {{ cat flush.stdout >&2; exit {EXIT_FLUSH}; }}"
    )
    return lines


def _count_keys(endpoint: Endpoint, cli_tls: list[str], expected_keys: int | None) -> list[str]:
    """Lines summing the primaries' DBSIZE into DBSIZE_FILE and, with `expected_keys`, a
    count short of it setting rc to EXIT_SHORT_PREFILL."""
    # "12345" from one node, "host:port: 12345" a line from --cluster call
    count = r"s/^\(.*: *\)\{0,1\}\([0-9][0-9]*\)$/\2/p"
    lines = [
        f'"$cli" {_on_primaries(endpoint, cli_tls, "DBSIZE")} > dbsize.stdout 2>&1'
        " || { rc=$?; cat dbsize.stdout >&2; }",
        f"keys=0; for n in $(sed -n {shlex.quote(count)} dbsize.stdout); do"
        " keys=$((keys + n)); done",
        f'echo "$keys" > {DBSIZE_FILE}',
    ]
    if expected_keys is not None:
        short = (
            "cachebench: after the prefill the primaries hold $keys keys (DBSIZE), the "
            f"key space is {expected_keys}: the run would read misses where it asks for "
            "hits, so it is not loaded"
        )
        lines.append(
            f'if [ "$rc" -eq 0 ] && [ "$keys" -ne {expected_keys} ]; then'
            f' echo "{short}" >&2; rc={EXIT_SHORT_PREFILL}; fi'
        )
    return lines
