"""Real generator runs against a real redis-server started (and stopped) here."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis

import cachebench.loadgen as loadgen
from cachebench import procs
from cachebench.loadgen import (
    LoadError,
    collect_load,
    load_running,
    run_load,
    start_load,
    stop_load,
)
from cachebench.loadgen.chunked import STOP_S
from cachebench.loadgen.handle import Handle, read_handles
from cachebench.models import Endpoint, Node, Workload

REDIS_BENCHMARK = shutil.which("redis-benchmark") or "/usr/bin/redis-benchmark"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
needs_redis = pytest.mark.skipif(
    not (os.path.exists(REDIS_BENCHMARK) and os.path.exists(REDIS_SERVER)),
    reason="redis-server / redis-benchmark not installed",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, machine_load):
    """A password-protected redis-server on 127.0.0.1; always stopped afterwards."""
    password = "pw-" + secrets.token_hex(8)
    port = free_port()
    data = tmp_path / "server"
    data.mkdir()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(data)]
    with (data / "log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=port, password=password)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port, password, client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def workload(**kw) -> Workload:
    return Workload(
        name="t",
        **(
            {
                "ratio": "1:4",
                "value_size": 64,
                "key_space": 1000,
                "clients": 4,
                "threads": 1,
                "pipeline": 1,
            }
            | kw
        ),
    )


def endpoint(port: int) -> Endpoint:
    return Endpoint(host="127.0.0.1", port=port, cluster_mode=False, auth_ref="/dev/null")


def test_available_tool(monkeypatch):
    monkeypatch.setattr(loadgen.shutil, "which", lambda t: "/x/" + t)
    assert loadgen.available_tool() == "memtier_benchmark"
    monkeypatch.setattr(loadgen.shutil, "which", lambda t: "/x" if t == "redis-benchmark" else None)
    assert loadgen.available_tool() == "redis-benchmark"
    monkeypatch.setattr(loadgen.shutil, "which", lambda t: None)
    with pytest.raises(LoadError, match="memtier_benchmark"):
        loadgen.available_tool()


def test_start_load_refuses_what_redis_benchmark_cannot_do(tmp_path):
    with pytest.raises(ValueError, match="key_pattern"):
        start_load(
            workload(key_pattern="S:S"),
            endpoint(1),
            password="",
            out_dir=tmp_path,
            generators=1,
            tool="redis-benchmark",
            phase="measured",
            duration_s=1,
        )
    assert not list(tmp_path.iterdir())


@needs_redis
def test_run_load_redis_benchmark_real(server, tmp_path):
    port, password, client = server
    out = tmp_path / "load"
    t0 = time.time()
    result = run_load(
        workload(pipeline=3),
        endpoint(port),
        password=password,
        out_dir=out,
        generators=1,
        tool="redis-benchmark",
        phase="measured",
        duration_s=2,
    )
    wall = time.time() - t0
    assert result.tool == "redis-benchmark" and result.tool_version.startswith("redis-benchmark")
    assert result.generators == 1
    assert result.requests > 1000
    assert result.set_ops_per_sec > 0 and result.get_ops_per_sec > 0
    assert result.ops_per_sec == pytest.approx(result.set_ops_per_sec + result.get_ops_per_sec)
    assert 0 < result.latency.p50 <= result.latency.p99 <= result.latency.max
    assert result.histogram
    # No rate hint: chunks sized from what the previous one did fill the 2 s window (how
    # close to 2 s it ends depends on the machine's load: bench figure 1 measures it).
    assert result.elapsed_seconds >= 1.8, result.elapsed_seconds
    assert 1.8 < wall < 30
    assert client.dbsize() > 0  # AUTH worked: SETs landed
    # Every handle JSON-able, no password anywhere, nothing left running.
    handles = read_handles(out / "measured-handles.json")
    assert {h.phase for h in handles} == {"measured"}
    assert {h.side for h in handles} == {"set", "get"}
    assert load_running(handles) == []
    for h in handles:
        chunks = json.loads(Path(h.chunks).read_text())
        assert chunks["complete"] and len(chunks["chunks"]) >= 2
        assert chunks["ended_at"] - chunks["started_at"] >= 1.8  # each side's window is full
        for c in chunks["chunks"]:  # the driver's own decisions, whatever the machine's speed:
            into = c["spawned_at"] - chunks["started_at"]
            assert into <= 2 - STOP_S + 0.01  # no chunk starts once the window is full
            assert c["planned_seconds"] <= 2 - into + 0.01  # none is planned past its end
            # whole pipelines: redis-benchmark may abort a chunk whose -n is not (chunked.py)
            assert c["requests_asked"] % 3 == 0 and c["requests"] == c["requests_asked"], c
        # Each chunk ran the side's argv plus its own -n; the password only via the env.
        assert h.tool_argv[h.tool_argv.index("-t") + 1] == h.side
        assert "-n" not in h.tool_argv and h.argv[-len(h.tool_argv) :] == h.tool_argv
    for f in out.iterdir():
        assert password not in f.read_text(errors="replace"), f
    for h in handles:
        assert password not in h.model_dump_json()
        assert h.argv_masked == h.argv


@needs_redis
def test_stop_load_ends_generators_and_collect_refuses(server, tmp_path):
    port, password, _ = server
    handles = start_load(
        workload(),
        endpoint(port),
        password=password,
        out_dir=tmp_path,
        generators=2,
        tool="redis-benchmark",
        phase="measured",
        duration_s=600,
        rate_hint_ops=1e6,
    )
    try:
        assert len(handles) == 4
        [h.model_dump_json() for h in handles]  # each handle JSON-able
        time.sleep(0.5)
        running = load_running(handles)
        assert sorted(running) == sorted(h.pid for h in handles)
        with pytest.raises(LoadError, match="still running"):
            collect_load(handles)
    finally:
        signalled = stop_load(handles, grace_s=3.0)
    assert sorted(signalled) == sorted(h.pid for h in handles)
    assert load_running(handles) == []
    with pytest.raises(LoadError, match=r"gave no result.*stopped by signal 15"):
        collect_load(handles)
    left = [f for f in procs.processes_under(tmp_path) if f["kind"] == "load"]
    assert left == []  # no chunk outlived its driver


def fake_handle(**fields) -> Handle:
    """A redis-benchmark handle of fields, the rest filled in."""
    base = {"proc_start": None, "argv": ["redis-benchmark"], "argv_masked": ["redis-benchmark"],
            "stdout": "/nonexistent", "stderr": "/nonexistent", "started_at": 0.0,
            "tool": "redis-benchmark", "tool_version": "", "phase": "measured", "generator": 0,
            "duration_s": 1, "reads_from": "primary", "side": "set"}  # fmt: skip
    return Handle.model_validate(base | fields)


def test_stop_load_leaves_processes_that_are_not_ours(tmp_path):
    # started elsewhere (not a child of loadgen's): only signalled once proven to be the
    # handle's process by its start time, never by a bare pid
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        start = procs.started(sleeper.pid)
        unproven = fake_handle(pid=sleeper.pid, proc_start=None)
        assert stop_load([unproven], grace_s=0.5) == []
        wrong_start = fake_handle(pid=sleeper.pid, proc_start=start - 0.01)
        assert stop_load([wrong_start], grace_s=0.5) == []
        assert sleeper.poll() is None
        assert load_running([unproven]) == [sleeper.pid] and load_running([wrong_start]) == []
        proven = fake_handle(pid=sleeper.pid, proc_start=start)
        assert stop_load([proven], grace_s=3.0) == [sleeper.pid]
        assert sleeper.wait(5) == -signal.SIGTERM
    finally:
        if sleeper.poll() is None:
            os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait(5)


def test_collect_load_merges_generators_from_files(tmp_path):
    fix = Path(__file__).resolve().parents[1] / "fixtures" / "loadgen"
    handles = []
    for g in range(2):
        for side in ("set", "get"):
            out = tmp_path / f"m-g{g}-{side}.stdout"
            shutil.copy(fix / f"redis_benchmark_7.0_{side}.txt", out)
            handles.append(
                fake_handle(
                    pid=2**22 + 7,
                    side=side,
                    generator=g,
                    stdout=str(out),
                    stderr=str(out),
                    started_at=1000.0 + g,
                )
            )
    r = collect_load(handles)
    assert r.generators == 2
    assert r.requests == 2 * (20_000 + 200_000)
    assert r.set_ops_per_sec == pytest.approx(2 * 7393.72)
    assert r.get_ops_per_sec == pytest.approx(2 * 57061.34)


REAL = Path(__file__).resolve().parents[1] / "fixtures" / "memtier-real"
CAPTURE = REAL / "memtier_real_single.json"  # window: (3_358_132 - 32) requests over 10 s
WINDOW = 3_358_100
SOURCE_BUILD_LINE = "memtier_benchmark v=255.255.255 sha=2f74d611:0 bits=64 libevent=2.1.12"

# A stand-in memtier_benchmark (memtier is not installable here): prints
# $FAKE_MEMTIER_VERSION for --version, else logs its argv to $FAKE_MEMTIER_LOG and
# writes a real capture as its --json-out-file (with the --authenticate value
# copied in, unescaped, as memtier does).
# FAKE_MEMTIER_BLANK_S: first shows an empty /proc/<pid>/cmdline for that long, as a
# process does while it execs (the kernel has put the new program's memory in place
# but not yet written its arguments into it): here the argument area is zeroed and its
# last byte set, which the kernel reads as an empty process title.
# FAKE_MEMTIER_DIE: "signal N" (killed by signal N) or "status N" (exits with N) after
# printing a line to stdout and to stderr, instead of writing its JSON.
FAKE_MEMTIER = """#!{python}
import ctypes, json, os, signal, sys, time
args = sys.argv[1:]
if "--version" in args:
    print(os.environ.get("FAKE_MEMTIER_VERSION", {version!r}))
    print("Copyright (C) 2011-2026 Redis Ltd.")
    sys.exit(0)
if os.environ.get("FAKE_MEMTIER_BLANK_S"):
    stat = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    start, end = int(stat[45]), int(stat[46])  # fields 48, 49: arg_start, arg_end
    saved = ctypes.string_at(start, end - start)
    ctypes.memset(start, 0, end - start)
    ctypes.memset(end - 1, ord("x"), 1)
    time.sleep(float(os.environ["FAKE_MEMTIER_BLANK_S"]))
    ctypes.memmove(start, saved, len(saved))
if os.environ.get("FAKE_MEMTIER_LOG"):
    with open(os.environ["FAKE_MEMTIER_LOG"], "a") as log:
        log.write(json.dumps({{"argv": args, "at": time.time()}}) + "\\n")
opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
text = open({fixture!r}).read()
auth = '"authenticate": "%s"' % opts.get("authenticate", "")
text = text.replace('"authenticate": "********"', auth)
time.sleep(float(os.environ.get("FAKE_MEMTIER_SECONDS", "0")))
if os.environ.get("FAKE_MEMTIER_DIE"):
    how, number = os.environ["FAKE_MEMTIER_DIE"].split()
    print("[RUN #1 100%,   1 secs]  1 threads:  4 conns", flush=True)
    print("connection dropped.", file=sys.stderr, flush=True)
    if how == "signal":
        os.kill(os.getpid(), int(number))
    sys.exit(int(number))
open(opts["json-out-file"], "w").write(text)
"""


@pytest.fixture
def fake_memtier(tmp_path, monkeypatch) -> Path:
    """The stand-in first on PATH; returns the file its runs are logged to."""
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "memtier_benchmark"
    fake.write_text(
        FAKE_MEMTIER.format(python=sys.executable, fixture=str(CAPTURE), version=SOURCE_BUILD_LINE)
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    log = tmp_path / "memtier-runs.jsonl"
    monkeypatch.setenv("FAKE_MEMTIER_LOG", str(log))
    return log


def runs(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def opt(argv: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def test_memtier_start_collect_with_a_stand_in_binary(tmp_path, fake_memtier):
    password = "pw-" + secrets.token_hex(6)
    out = tmp_path / "load"
    result = run_load(
        workload(key_pattern="G:G", rate_limit=50),
        endpoint(6379),
        password=password,
        out_dir=out,
        generators=2,
        tool="memtier_benchmark",
        phase="warmup",
        duration_s=1,
    )
    assert result.tool == "memtier_benchmark" and result.generators == 2
    assert result.tool_version == SOURCE_BUILD_LINE  # `--version`'s first line
    assert result.requests == 2 * WINDOW
    assert result.reads_from == "primary"
    handles = read_handles(out / "warmup-handles.json")
    assert [h.json_path for h in handles] == [
        str(out / "warmup-g0.json"),
        str(out / "warmup-g1.json"),
    ]
    # started_at is the processes' own start, not memtier's Start time
    assert result.started_at == min(h.started_at for h in handles)
    assert not any("Start time" in n for n in result.notes)
    for f in out.iterdir():  # the password reached memtier, and was scrubbed from its JSON
        assert password not in f.read_text(errors="replace"), f
    assert (
        json.loads((out / "warmup-g0.json").read_text())["configuration"]["authenticate"]
        == "********"
    )


def one_memtier(out_dir: Path, phase: str):
    """run_load of one (stand-in) memtier generator for 1 s, with a password."""
    return run_load(
        workload(),
        endpoint(6379),
        password="pw",
        out_dir=out_dir,
        generators=1,
        tool="memtier_benchmark",
        phase=phase,
        duration_s=1,
    )


def test_a_generator_that_briefly_shows_an_empty_cmdline_is_still_running(
    tmp_path, fake_memtier, monkeypatch
):
    """The lost run of issue 22: /proc/<pid>/cmdline reads empty while a generator execs
    (the auth wrapper's sh execs memtier right after we start it), so a liveness check
    that matches /proc text took a running generator for gone and collected nothing."""
    monkeypatch.setenv("FAKE_MEMTIER_BLANK_S", "1.0")
    monkeypatch.setenv("FAKE_MEMTIER_SECONDS", "0.5")
    result = one_memtier(tmp_path / "load", "warmup")
    assert result.requests == WINDOW
    assert len(runs(fake_memtier)) == 1  # logged after its cmdline came back: it ran once


@pytest.mark.parametrize(
    ("die", "ended", "lost"),
    [
        ("signal 9", "it was killed by signal 9 (SIGKILL)", True),
        ("status 3", "it exited with status 3", False),
    ],
)
def test_gave_no_result_says_how_the_generator_ended(
    tmp_path, fake_memtier, monkeypatch, die, ended, lost
):
    monkeypatch.setenv("FAKE_MEMTIER_DIE", die)
    with pytest.raises(LoadError) as caught:
        one_memtier(tmp_path / "load", "measured")
    message = str(caught.value)
    assert message.startswith("generator 0 (memtier_benchmark mixed, pid ")
    json_path = tmp_path / "load" / "measured-g0.json"
    assert f"gave no result: [Errno 2] No such file or directory: '{json_path}'" in message
    assert f"; {ended}; " in message
    # the last lines of its output, as the stand-in printed them
    assert "stdout: [RUN #1 100%,   1 secs]  1 threads:  4 conns; " in message
    assert message.endswith("stderr: connection dropped.")
    assert caught.value.lost is lost  # a signal nobody here sent: measured again


def test_a_generator_we_stopped_is_not_lost(tmp_path, fake_memtier, monkeypatch):
    monkeypatch.setenv("FAKE_MEMTIER_SECONDS", "30")
    handles = start_load(
        workload(),
        endpoint(6379),
        password="",
        out_dir=tmp_path,
        generators=1,
        tool="memtier_benchmark",
        phase="measured",
        duration_s=1,
    )
    assert stop_load(handles, grace_s=3.0) == [handles[0].pid]
    with pytest.raises(LoadError, match=r"signal 15 \(SIGTERM\) \(stopped by cachebench\)") as e:
        collect_load(handles)
    assert e.value.lost is False


def replicated_endpoint(port: int, replicas: int) -> Endpoint:
    nodes = [Node(node_id="0001-001", host="127.0.0.1", port=port, role="primary")]
    nodes += [
        Node(node_id=f"0001-{r + 2:03d}", host="127.0.0.1", port=port + r + 1, role="replica")
        for r in range(replicas)
    ]
    return endpoint(port).model_copy(update={"nodes": nodes})


def test_memtier_reads_from_replica_nodes_with_a_stand_in(tmp_path, fake_memtier, monkeypatch):
    monkeypatch.setenv("FAKE_MEMTIER_SECONDS", "0.5")
    result = run_load(
        workload(ratio="1:4", clients=5, threads=2, read_from="replicas"),
        replicated_endpoint(7000, replicas=2),
        password="pw",
        out_dir=tmp_path / "load",
        generators=2,
        tool="memtier_benchmark",
        phase="measured",
        duration_s=1,
    )
    logged = runs(fake_memtier)
    assert len(logged) == 4  # writers and readers of each generator
    by = {(opt(r["argv"], "json-out-file").rsplit("/", 1)[-1]): r for r in logged}
    # 1:4 over 5 x 2 = 10 connections: 2 writers (2 threads x 1), 8 readers (2 x 4)
    for g, replica_port in ((0, 7001), (1, 7002)):  # generator g reads from replica g
        writers, readers = by[f"measured-g{g}-set.json"], by[f"measured-g{g}-get.json"]
        assert opt(writers["argv"], "port") == "7000" and opt(writers["argv"], "ratio") == "1:0"
        assert opt(readers["argv"], "port") == str(replica_port)
        assert opt(readers["argv"], "ratio") == "0:1"
        assert (opt(writers["argv"], "threads"), opt(writers["argv"], "clients")) == ("2", "1")
        assert (opt(readers["argv"], "threads"), opt(readers["argv"], "clients")) == ("2", "4")
        # at once: each side started before the other ended (each runs 0.5 s)
        assert abs(writers["at"] - readers["at"]) < 0.5
    assert result.reads_from == "replica nodes 0001-002, 0001-003"
    assert result.generators == 2 and result.requests == 4 * WINDOW


def test_reads_from_replicas_needs_a_replica(tmp_path, fake_memtier):
    with pytest.raises(ValueError, match="no reader_host and no replica node"):
        start_load(
            workload(read_from="replicas"),
            replicated_endpoint(7000, replicas=0),
            password="",
            out_dir=tmp_path,
            generators=1,
            tool="memtier_benchmark",
            phase="measured",
            duration_s=1,
        )
    assert not fake_memtier.exists()  # nothing was started


def test_rate_limit_needs_memtier_2_1_on_path(fake_memtier, monkeypatch, caplog):
    workloads = [workload(), workload(rate_limit=100)]
    monkeypatch.setenv("FAKE_MEMTIER_VERSION", "memtier_benchmark 2.0.0")
    (problem,) = loadgen.rate_limit_problems(workloads, "memtier_benchmark")
    assert problem.startswith("workloads[1].rate_limit: memtier_benchmark 2.0.0 has no")
    assert "2.1 or later" in problem
    monkeypatch.setenv("FAKE_MEMTIER_VERSION", "memtier_benchmark 2.1.0")
    assert loadgen.rate_limit_problems(workloads, "memtier_benchmark") == []
    monkeypatch.setenv("FAKE_MEMTIER_VERSION", SOURCE_BUILD_LINE)
    with caplog.at_level("WARNING", logger="cachebench.loadgen"):
        assert loadgen.rate_limit_problems(workloads, "memtier_benchmark") == []
    assert "255.255.255" in caplog.text and "source archive" in caplog.text
    # no rate_limit, or redis-benchmark (refused apart, see unsupported): nothing asked
    monkeypatch.setenv("FAKE_MEMTIER_VERSION", "memtier_benchmark 1.4.0")
    assert loadgen.rate_limit_problems(workloads[:1], "memtier_benchmark") == []
    assert loadgen.rate_limit_problems(workloads, "redis-benchmark") == []


@pytest.fixture
def replica(server, tmp_path):
    """A replica of `server` (same password), in sync; always stopped afterwards."""
    port, password, _ = server
    rport = free_port()
    data = tmp_path / "replica"
    data.mkdir()
    argv = [REDIS_SERVER, "--port", str(rport), "--bind", "127.0.0.1", "--requirepass", password]
    argv += ["--masterauth", password, "--replicaof", "127.0.0.1", str(port)]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", str(data)]
    with (data / "log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    client = redis.Redis(host="127.0.0.1", port=rport, password=password)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if client.info("replication").get("master_link_status") == "up":
                    break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError("the replica never synced")
            time.sleep(0.05)
        yield rport, client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@needs_redis
def test_redis_benchmark_reads_from_a_real_replica(server, replica, tmp_path):
    port, password, primary = server
    rport, rclient = replica
    ep = endpoint(port).model_copy(
        update={
            "nodes": [
                Node(node_id="0001-001", host="127.0.0.1", port=port, role="primary"),
                Node(node_id="0001-002", host="127.0.0.1", port=rport, role="replica"),
            ]
        }
    )
    primary.config_resetstat()
    rclient.config_resetstat()
    result = run_load(
        workload(read_from="replicas"),
        ep,
        password=password,
        out_dir=tmp_path / "load",
        generators=1,
        tool="redis-benchmark",
        phase="measured",
        duration_s=1,
    )
    assert result.reads_from == "replica nodes 0001-002"
    on_primary = primary.info("commandstats")
    on_replica = rclient.info("commandstats")
    assert on_replica["cmdstat_get"]["calls"] > 1000  # the GETs went to the replica
    assert "cmdstat_get" not in on_primary
    assert on_primary["cmdstat_set"]["calls"] > 100  # (the replica applies them too)


def test_a_childs_end_and_exit_status_come_from_its_wait():
    child = procs.launch(["sh", "-c", "exit 3"])
    pid, start = child.ident
    deadline = time.monotonic() + 10
    while not procs.ended(pid, start) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert procs.exit_status(pid, start) == 3
    assert procs.describe_exit(3) == "it exited with status 3"
    assert procs.describe_exit(-9) == "it was killed by signal 9 (SIGKILL)"
    assert "unknown" in procs.describe_exit(None)
    # another process's view: psutil (no exit status there)
    assert procs.exit_status(os.getppid(), procs.started(os.getppid())) is None
    assert not procs.ended(os.getppid(), procs.started(os.getppid()))
