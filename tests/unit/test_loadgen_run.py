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
from cachebench.loadgen import (
    LoadError,
    collect_load,
    load_running,
    run_load,
    start_load,
    stop_load,
)
from cachebench.local import procs as local_procs
from cachebench.models import Endpoint, Workload

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
def server(tmp_path):
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
        workload(),
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
    # No rate hint: chunks sized from what the previous one did fill the 2 s window.
    assert 1.8 <= result.elapsed_seconds <= 2.6, result.elapsed_seconds
    assert 1.8 < wall < 30
    assert client.dbsize() > 0  # AUTH worked: SETs landed
    # Every handle JSON-able, no password anywhere, nothing left running.
    handles = json.loads((out / "measured-handles.json").read_text())
    assert {h["phase"] for h in handles} == {"measured"}
    assert {h["side"] for h in handles} == {"set", "get"}
    assert load_running(handles) == []
    for h in handles:
        chunks = json.loads(Path(h["chunks"]).read_text())
        assert chunks["complete"] and len(chunks["chunks"]) >= 2
        assert 1.8 <= chunks["ended_at"] - chunks["started_at"] <= 2.6  # each side's window
        # Each chunk ran the side's argv plus its own -n; the password only via the env.
        assert h["tool_argv"][h["tool_argv"].index("-t") + 1] == h["side"]
        assert "-n" not in h["tool_argv"] and h["argv"][-len(h["tool_argv"]) :] == h["tool_argv"]
    for f in out.iterdir():
        assert password not in f.read_text(errors="replace"), f
    for h in handles:
        assert password not in json.dumps(h)
        assert h["argv_masked"] == h["argv"]


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
        json.dumps(handles)
        time.sleep(0.5)
        running = load_running(handles)
        assert sorted(running) == sorted(h["pid"] for h in handles)
        with pytest.raises(LoadError, match="still running"):
            collect_load(handles)
    finally:
        signalled = stop_load(handles, grace_s=3.0)
    assert sorted(signalled) == sorted(h["pid"] for h in handles)
    assert load_running(handles) == []
    with pytest.raises(LoadError, match=r"gave no result.*stopped by signal 15"):
        collect_load(handles)
    left = [f for f in local_procs.processes_under(tmp_path) if f["kind"] == "load"]
    assert left == []  # no chunk outlived its driver


def test_stop_load_leaves_processes_that_are_not_ours(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        fake = {"pid": sleeper.pid, "start_ticks": None, "argv": ["redis-benchmark", "-t", "set"]}
        assert stop_load([fake], grace_s=0.5) == []
        assert sleeper.poll() is None
        wrong_start = {"pid": sleeper.pid, "start_ticks": 1, "argv": ["sleep", "30"]}
        assert stop_load([wrong_start], grace_s=0.5) == []
        assert sleeper.poll() is None
    finally:
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
                {
                    "pid": 2**22 + 7,
                    "argv": ["redis-benchmark"],
                    "tool": "redis-benchmark",
                    "side": side,
                    "generator": g,
                    "stdout": str(out),
                    "stderr": str(out),
                    "started_at": 1000.0 + g,
                }
            )
    r = collect_load(handles)
    assert r.generators == 2
    assert r.requests == 2 * (20_000 + 200_000)
    assert r.set_ops_per_sec == pytest.approx(2 * 7393.72)
    assert r.get_ops_per_sec == pytest.approx(2 * 57061.34)


FAKE_MEMTIER = """#!{python}
import sys
args = sys.argv[1:]
if "--version" in args:
    print("memtier_benchmark 2.1.1 (fake)")
    sys.exit(0)
opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
text = open({fixture!r}).read()
# memtier copies --authenticate into its JSON, unescaped.
text = text.replace('"authenticate": ""', '"authenticate": "%s"' % opts.get("authenticate", ""))
open(opts["json-out-file"], "w").write(text)
"""


def test_memtier_start_collect_with_a_stand_in_binary(tmp_path, monkeypatch):
    """memtier is not installable here: a stand-in writes the fixture JSON."""
    import sys

    fix = Path(__file__).resolve().parents[1] / "fixtures" / "loadgen" / "memtier_2x.json"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "memtier_benchmark"
    fake.write_text(FAKE_MEMTIER.format(python=sys.executable, fixture=str(fix)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
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
    assert "memtier_benchmark 2.1.1 (fake)" in result.tool_version
    assert result.requests == 2 * 416_590
    handles = json.loads((out / "warmup-handles.json").read_text())
    assert [h["json_path"] for h in handles] == [
        str(out / "warmup-g0.json"),
        str(out / "warmup-g1.json"),
    ]
    for f in out.iterdir():  # the password reached memtier, and was scrubbed from its JSON
        assert password not in f.read_text(errors="replace"), f
    assert (
        json.loads((out / "warmup-g0.json").read_text())["configuration"]["authenticate"]
        == "********"
    )


def test_process_identity_matching():
    from cachebench.loadgen.procs import _matches

    form = ["redis-benchmark", "-t", "set", "-n", "10"]
    assert _matches([*form, "-a", "pw"], form)  # the tool appends its auth args
    assert _matches(["/usr/bin/python3", "/opt/bin/redis-benchmark", *form[1:]], form)
    assert not _matches(["redis-benchmark", "-t", "get", "-n", "10"], form)
    assert not _matches(["sleep", "-t", "set", "-n", "10"], form)
    assert not _matches(["redis-benchmark"], [])
