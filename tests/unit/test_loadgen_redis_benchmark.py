"""redis-benchmark fallback: refusals, connection split, argv, parsing real outputs."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from cachebench.loadgen import hdr
from cachebench.loadgen.auth import AUTH_ENV, unwrap
from cachebench.loadgen.redis_benchmark import (
    parse_redis_benchmark,
    redis_benchmark_argv,
    requests_for,
    split_connections,
    unsupported,
)
from cachebench.models import Endpoint, Workload

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "loadgen"
SECRET = "s3cret 'pw\" $PATH"


def wl(**kw) -> Workload:
    return Workload(name="w", **kw)


def ep(**kw) -> Endpoint:
    return Endpoint(host="127.0.0.1", port=7000, cluster_mode=kw.pop("cluster_mode", False), **kw)


def fixture(name: str) -> str:
    return (FIX / f"redis_benchmark_7.0_{name}.txt").read_text()


def summary(text: str) -> list[float]:
    m = re.search(r"avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*([\d. ]+)", text)
    assert m
    return [float(x) for x in m.group(1).split()]


# ---------------------------------------------------------------- planning


def test_unsupported_is_empty_for_what_it_can_do():
    assert unsupported(wl()) == []
    assert unsupported(wl(ratio="0:1", pipeline=16, value_size=4096)) == []


def test_unsupported_explains_key_pattern_and_rate_limit():
    msgs = unsupported(wl(key_pattern="G:G", rate_limit=100))
    assert len(msgs) == 2
    assert "key_pattern 'G:G'" in msgs[0] and "R:R" in msgs[0] and "memtier" in msgs[0]
    assert "rate_limit=100" in msgs[1] and "memtier" in msgs[1]
    assert len(unsupported(wl(key_pattern="R:S"))) == 1


def test_split_connections_follows_the_ratio():
    assert split_connections(wl(ratio="1:10", clients=50, threads=4)) == {"set": 18, "get": 182}
    assert split_connections(wl(ratio="1:1", clients=5, threads=2)) == {"set": 5, "get": 5}
    assert split_connections(wl(ratio="0:1", clients=3, threads=2)) == {"get": 6}
    assert split_connections(wl(ratio="1:0", clients=3, threads=2)) == {"set": 6}
    # At least one connection each side with a nonzero weight.
    assert split_connections(wl(ratio="1:1000", clients=10, threads=1)) == {"set": 1, "get": 9}


def test_cluster_sides_cover_every_primary():
    """Each connection serves one primary: a side with fewer connections than primaries
    would leave a shard without SETs (all its GETs miss). Found in a demo run: shard 1
    of 3 had no keys with 2 SET connections."""
    assert split_connections(wl(ratio="1:4", clients=8, threads=1), primaries=3) == {
        "set": 3,
        "get": 6,
    }
    assert split_connections(wl(ratio="1:10", clients=50, threads=4), primaries=3) == {
        "set": 18,
        "get": 183,
    }
    assert split_connections(wl(ratio="0:1", clients=4, threads=1), primaries=3) == {"get": 6}
    assert split_connections(wl(ratio="1000:1", clients=10, threads=1)) == {"set": 9, "get": 1}
    assert split_connections(wl(ratio="1:3", clients=1, threads=1)) == {"set": 1, "get": 1}


def test_requests_for():
    assert requests_for(10, 5000) == 50_000
    assert requests_for(2.5, 1001) == 2503
    assert requests_for(0.01, 10) == 100
    assert requests_for(10, 0) == 100


# ---------------------------------------------------------------- argv


def test_argv_single_node():
    w = wl(value_size=512, key_space=777, pipeline=4, threads=4)
    argv = redis_benchmark_argv(w, ep(), side="get", clients=30, requests=12345, password_env=False)
    assert argv == [
        "redis-benchmark",
        "-h",
        "127.0.0.1",
        "-p",
        "7000",
        "-t",
        "get",
        "-n",
        "12345",
        "-c",
        "30",
        "-r",
        "777",
        "-d",
        "512",
        "-P",
        "4",
        "--threads",
        "4",
    ]
    assert "-q" not in argv and "--csv" not in argv


def test_argv_cluster_tls_and_threads_capped_by_clients():
    argv = redis_benchmark_argv(
        wl(threads=8),
        ep(cluster_mode=True, tls=True),
        side="set",
        clients=3,
        requests=10,
        password_env=False,
        tls_skip_verify=True,
    )
    assert "--cluster" in argv and "--tls" in argv and "--insecure" in argv
    assert argv[argv.index("--threads") + 1] == "3"


def test_password_never_in_argv_but_reaches_the_tool(tmp_path):
    argv = redis_benchmark_argv(wl(), ep(), side="set", clients=2, requests=10, password_env=True)
    assert argv[:2] == ["/bin/sh", "-c"] and f'-a "${AUTH_ENV}"' in argv[2]
    assert not any(SECRET in a for a in argv)
    fake = tmp_path / "redis-benchmark"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$ARGS_OUT"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "args"
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", AUTH_ENV: SECRET, "ARGS_OUT": str(out)}
    subprocess.run(argv, env=env, check=True, timeout=10)
    got = out.read_text().splitlines()
    assert got[-2:] == ["-a", SECRET]
    assert got[:-2] == unwrap(argv)[1:]


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("name", "requests", "seconds", "rps", "side"),
    [
        ("set", 20_000, 2.70, 7393.72, "set"),
        ("get", 200_000, 3.51, 57061.34, "get"),
        ("cluster_set", 300_000, 1.75, 171135.19, "set"),
    ],
)
def test_parse_real_outputs(name, requests, seconds, rps, side):
    text = fixture(name)
    r = parse_redis_benchmark(text, started_at=1000.0, elapsed=99.0, tool_version="rb 7.0")
    assert (r.tool, r.tool_version, r.started_at) == ("redis-benchmark", "rb 7.0", 1000.0)
    assert r.requests == requests and r.errors == 0
    assert r.elapsed_seconds == seconds  # the tool's own time, not the wall clock given
    assert r.ops_per_sec == rps
    assert (r.set_ops_per_sec, r.get_ops_per_sec) == ((rps, 0.0) if side == "set" else (0.0, rps))
    avg, _lo, p50, _p95, p99, hi = summary(text)
    # The tool's exact summary percentiles survive the histogram rebuild.
    assert (r.latency.mean, r.latency.p50, r.latency.p99, r.latency.max) == (avg, p50, p99, hi)
    assert r.latency.p50 <= r.latency.p90 <= r.latency.p99 <= r.latency.p99_9 <= r.latency.max
    assert hdr.decode(r.histogram).get_total_count() == requests
    assert r.kb_per_sec > 0


def test_parse_series_from_progress_lines():
    text = fixture("get")
    r = parse_redis_benchmark(text, started_at=0.0, elapsed=3.6)
    assert [s.second for s in r.series] == [0, 1, 2, 3]
    assert all(s.p50_ms is None for s in r.series)
    # Seconds 0-2 are full (4 ticks each), average of the instantaneous rates.
    rates = [float(x) for x in re.findall(r"GET: rps=([\d.]+)", text)][1:]
    assert r.series[0].ops_per_sec == pytest.approx(sum(rates[:4]) / 4, abs=0.1)
    assert min(s.ops_per_sec for s in r.series) > 10_000


def test_parse_estimated_kb_per_sec():
    r = parse_redis_benchmark(fixture("set"), started_at=0.0, elapsed=1.0)
    # SET of a 256-byte value with a 16-byte key: 309 bytes out, +OK back.
    per_op = len("*3\r\n$3\r\nSET\r\n$16\r\n") + 18 + len("$256\r\n") + 258 + len("+OK\r\n")
    assert r.kb_per_sec == pytest.approx(7393.72 * per_op / 1024, rel=1e-3)


def test_parse_consecutive_blocks_add_up():
    text = fixture("set") + fixture("get")
    r = parse_redis_benchmark(text, started_at=0.0, elapsed=1.0)
    assert r.requests == 220_000
    assert r.elapsed_seconds == pytest.approx(6.21)
    assert r.ops_per_sec == pytest.approx(220_000 / 6.21, abs=0.01)
    assert r.set_ops_per_sec == pytest.approx(20_000 / 6.21, abs=0.01)
    assert r.series == []


def test_parse_incomplete_output_raises():
    with pytest.raises(ValueError, match="no '====== TEST ======' block"):
        parse_redis_benchmark(
            "SET: rps=100.0 (overall: 100.0) avg_msec=0.1\r", started_at=0, elapsed=1
        )
    cut = fixture("set").split("Summary:")[0]
    with pytest.raises(ValueError, match="incomplete"):
        parse_redis_benchmark(cut, started_at=0, elapsed=1)
