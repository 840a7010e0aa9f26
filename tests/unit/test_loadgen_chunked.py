"""redis-benchmark for a fixed time: chunk planning, the driver, and honest merging."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cachebench import procs
from cachebench.loadgen import CHUNKED, hdr
from cachebench.loadgen.chunked import (
    FIRST_CHUNK_S,
    MIN_REQUESTS,
    STOP_S,
    next_chunk_s,
    requests_for_chunk,
    tool_numbers,
)
from cachebench.loadgen.redis_benchmark import merge_chunks, parse_chunks, parse_redis_benchmark

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "loadgen"


def fixture(name: str) -> str:
    return (FIX / f"redis_benchmark_7.0_{name}.txt").read_text()


# A stand-in for redis-benchmark: sleeps -n / rate (the rate of chunk k is the
# k-th of FAKE_RB_RATES, the last one repeating) and prints the tool's output
# shape: 250 ms progress ticks, then a GET block whose latencies are scaled by
# chunk k's FAKE_RB_LAT factor. It sleeps to deadlines from its start: on a busy
# machine its late wake-ups once added up to a second, a run no real tool's
# requests would stretch (the driver took it for start-up time).
FAKE_TOOL = r"""
import os, sys, time
from pathlib import Path
n = int(sys.argv[sys.argv.index("-n") + 1])
counter = Path(os.environ["FAKE_RB_COUNTER"])
k = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(k + 1))
def pick(name):
    xs = [float(x) for x in os.environ[name].split(",")]
    return xs[min(k, len(xs) - 1)]
rate, lat = pick("FAKE_RB_RATES"), pick("FAKE_RB_LAT")
sec = n / rate
t0, t = time.monotonic(), 0.0
sys.stdout.write("GET: rps=0.0 (overall: 0.0) avg_msec=-nan (overall: -nan)\r")
while t + 0.25 <= sec:
    t += 0.25
    time.sleep(max(0.0, t0 + t - time.monotonic()))
    sys.stdout.write(f"GET: rps={rate:.1f} (overall: {rate:.1f}) avg_msec=0.3 (overall: 0.3)\r")
time.sleep(max(0.0, t0 + sec - time.monotonic()))
v = lambda x: f"{x * lat:.3f}"
print(f"\n====== GET ======\n  {n} requests completed in {sec:.2f} seconds\n  8 parallel clients\n"
      f"  256 bytes payload\n\nLatency by percentile distribution:\n"
      f"0.000% <= {v(0.05)} milliseconds (cumulative count 1)\n"
      f"50.000% <= {v(0.3)} milliseconds (cumulative count {n // 2})\n"
      f"100.000% <= {v(2.0)} milliseconds (cumulative count {n})\n\nSummary:\n"
      f"  throughput summary: {rate:.2f} requests per second\n  latency summary (msec):\n"
      f"          avg       min       p50       p95       p99       max\n"
      f"        {v(0.31)}     {v(0.05)}     {v(0.3)}     {v(0.5)}     {v(0.9)}     {v(2.0)}\n")
"""


@pytest.fixture
def fake_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    script = tmp_path / "fake_rb.py"
    script.write_text(FAKE_TOOL)
    monkeypatch.setenv("FAKE_RB_COUNTER", str(tmp_path / "counter"))
    monkeypatch.setenv("FAKE_RB_LAT", "1")
    # -I -S (no site-packages, as the driver runs): closer to the real tool's start-up
    return [sys.executable, "-I", "-S", str(script)]


def drive(tool: list[str], out: Path, seconds: float, rate: float, *extra: str) -> subprocess.Popen:
    argv = [sys.executable, "-I", "-S", str(CHUNKED), "--seconds", str(seconds)]
    argv += ["--rate", str(rate), "--out", str(out), *extra, "--", *tool]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def manifest(out: Path) -> dict:
    return json.loads(out.with_name(f"{out.name}.chunks.json").read_text())


# ---------------------------------------------------------------- planning


def test_chunk_plan_halves_what_is_left_and_ends_short() -> None:
    plan, left = [], 20.0
    while left >= STOP_S:
        planned = next_chunk_s(left, first=not plan)
        plan.append(planned)
        left -= planned
    assert plan[0] == FIRST_CHUNK_S  # the hint is trusted for 2 s only
    assert plan[1:] == [9.0, 4.5, 2.25, 1.125, 1.125]
    assert sum(plan) == pytest.approx(20.0)
    assert next_chunk_s(1.4) == 1.4 and next_chunk_s(0.3) == 0.3  # the last: all of it
    assert next_chunk_s(2.0) == 1.0  # never shorter than MIN_CHUNK_S before the last
    assert next_chunk_s(-0.5) == 0.0


def test_requests_for_chunk_leaves_time_for_start_up() -> None:
    assert requests_for_chunk(2.0, 10_000, 0.0) == 20_000
    assert requests_for_chunk(2.0, 10_000, 0.5) == 15_000
    assert requests_for_chunk(2.0, 10_000, 5.0) == 10_000  # never below half the time
    assert requests_for_chunk(0.001, 10, 0.0) == MIN_REQUESTS
    # whole pipelines (-P): never fewer requests than asked, never a part of a batch
    assert requests_for_chunk(2.0, 37_081.5, 0.0, multiple=2) == 74_164
    assert requests_for_chunk(2.0, 10_000, 0.0, multiple=3) == 20_001
    assert requests_for_chunk(0.001, 10, 0.0, multiple=16) == 112  # MIN_REQUESTS, rounded up


def test_tool_numbers_read_the_tools_own_summary() -> None:
    requests, seconds = tool_numbers(fixture("get"))
    assert requests == 200_000
    assert seconds == pytest.approx(200_000 / 57061.34)  # ms precision, not "3.51"
    assert tool_numbers("GET: rps=1.0 (overall: 1.0) avg_msec=0.3 (overall: 0.3)\r") is None


# ---------------------------------------------------------------- merging


def test_merge_chunks_sums_requests_over_the_wall_window_and_merges_histograms() -> None:
    # Two real outputs with different latency distributions as two chunks.
    get, st = fixture("get"), fixture("set")
    a = parse_redis_benchmark(get, started_at=100.0, elapsed=3.6)
    b = parse_redis_benchmark(st, started_at=103.61, elapsed=3.0)
    merged = merge_chunks(
        [(get, 100.0, 103.6), (st, 103.61, 106.6)], started_at=100.0, ended_at=106.6
    )
    assert merged.requests == a.requests + b.requests == 220_000
    assert merged.elapsed_seconds == pytest.approx(6.6)
    assert merged.ops_per_sec == pytest.approx(220_000 / 6.6, abs=0.01)  # the gap counts
    assert merged.get_ops_per_sec == pytest.approx(200_000 / 6.6, abs=0.02)
    assert merged.set_ops_per_sec == pytest.approx(20_000 / 6.6, abs=0.02)
    # Percentiles of the 220,000 samples together, by hand from what the tool printed
    # (cumulative counts at "<= v ms" in its two distributions, its summary percentiles;
    # a summary p at v means the sample of rank p% is in v's HDR bucket, so fewer than
    # p% are below v). HDR keeps 3 significant digits: a bucket reads up to 0.1 % above v.
    lat = merged.latency
    # p50, rank 110,000: get p50 0.295 (< 100,000 below), <= 0.295: 104,213;
    # set p50 0.295 (< 10,000 below), <= 0.295: 10,024. Below 0.295 fewer than 110,000,
    # up to it 114,237: the rank-110,000 sample is in 0.295's bucket.
    assert lat.p50 == 0.295
    # p90, rank 198,000: <= 0.407: 179,088 + 17,095 = 196,183, short of it;
    # <= 0.455: get 187,563, set at least 17,502 (<= 0.423): 205,065, past it.
    assert 0.407 < lat.p90 <= 0.455 * 1.001
    # p99, rank 217,800: <= 0.607: 198,108 + 19,661 = 217,769, 31 short of it;
    # <= 0.615: get at least 198,108, set 19,693: 217,801, past it.
    assert 0.607 < lat.p99 <= 0.615 * 1.001  # not the mean of 0.607 and 0.655, nor either
    # p99.9, rank 219,780: <= 2.007: 199,734 + 19,986 = 219,720;
    # <= 2.255: 199,805 + at least 19,992 (<= 2.247) = 219,797.
    assert 2.007 < lat.p99_9 <= 2.255 * 1.001
    assert lat.max == 8.023  # get's max (set's: 3.983)
    # the tools' avg weighted by requests: (0.269 x 200,000 + 0.260 x 20,000) / 220,000
    assert lat.mean == pytest.approx(0.26818, abs=0.001)
    assert hdr.decode(merged.histogram).get_total_count() == 220_000
    # KB: what each chunk moved, over the whole window.
    kb = sum(r.kb_per_sec * r.requests / r.ops_per_sec for r in (a, b))
    assert merged.kb_per_sec == pytest.approx(kb / 6.6, rel=1e-3)


def test_merge_chunks_places_each_chunks_ticks_at_its_own_start() -> None:
    get = fixture("get")
    run_s = 200_000 / 57061.34
    # Second chunk starts 10 s into the window: its ticks land from second 10 on.
    merged = merge_chunks(
        [(get, 0.0, run_s), (get, 10.0 - 0.01, 10.0 + run_s)], started_at=0.0, ended_at=10 + run_s
    )
    seconds = [s.second for s in merged.series]
    assert seconds[:4] == [0, 1, 2, 3] and 10 in seconds and 5 not in seconds
    single = parse_redis_benchmark(get, started_at=0.0, elapsed=run_s)
    assert [s.ops_per_sec for s in merged.series[:3]] == [s.ops_per_sec for s in single.series[:3]]


def test_parse_chunks_refuses_an_incomplete_run(tmp_path: Path) -> None:
    out = tmp_path / "c000.stdout"
    out.write_text(fixture("get"))
    chunk = {"stdout": str(out), "spawned_at": 1.0, "exited_at": 4.6}
    good = {"complete": True, "started_at": 1.0, "ended_at": 4.6, "chunks": [chunk]}
    assert parse_chunks(good).requests == 200_000
    with pytest.raises(ValueError, match="incomplete: stopped by signal 15"):
        parse_chunks(good | {"complete": False, "error": "stopped by signal 15"})
    with pytest.raises(ValueError, match="driver ended before its window was full"):
        parse_chunks(good | {"complete": False})


# ---------------------------------------------------------------- the driver


def test_driver_fills_the_window_when_the_rate_changes(
    fake_tool: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hint is 2x too high, and the last chunk runs 25 % slower than the one before.
    monkeypatch.setenv("FAKE_RB_RATES", "20000,20000,15000")
    monkeypatch.setenv("FAKE_RB_LAT", "1,1,3")
    out = tmp_path / "measured-g0-get"
    t0 = time.monotonic()
    proc = drive(fake_tool, out, seconds=6, rate=40_000)
    log, _ = proc.communicate(timeout=60)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, log
    m = manifest(out)
    assert m["complete"] and m["error"] is None
    window = m["ended_at"] - m["started_at"]
    assert 6 - STOP_S <= window <= 6.6, log  # a single 20 s-style -n would have run 12 s
    assert wall < 8
    chunks = m["chunks"]
    assert len(chunks) == 3, log
    assert chunks[0]["requests_asked"] == 40_000 * FIRST_CHUNK_S  # sized from the hint
    assert 15_000 <= chunks[1]["requests_asked"] <= 20_000  # then from what chunk 0 did
    assert all(c["returncode"] == 0 and c["requests"] == c["requests_asked"] for c in chunks)
    result = parse_chunks(m)
    assert result.requests == sum(c["requests"] for c in chunks)
    assert result.elapsed_seconds == pytest.approx(window, abs=0.001)
    assert result.ops_per_sec == pytest.approx(result.requests / window, rel=1e-3)
    assert 0.9 <= result.latency.p99 <= 2.7  # between the chunks' own p99s, from the merge
    assert result.latency.max == pytest.approx(6.0)


def test_driver_asks_for_whole_pipelines(
    fake_tool: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_RB_RATES", "10000")
    out = tmp_path / "measured-g0-get"
    proc = drive(fake_tool, out, 3, 10_001, "--multiple-of", "7")
    log, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, log
    chunks = manifest(out)["chunks"]
    assert len(chunks) >= 2, log
    assert all(c["requests_asked"] % 7 == 0 for c in chunks), chunks


def test_driver_stops_its_chunk_on_sigterm_and_says_so(
    fake_tool: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_RB_RATES", "1000")
    out = tmp_path / "m"
    proc = drive(fake_tool, out, seconds=60, rate=1000)
    child = _wait_child(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 128 + signal.SIGTERM
    assert not procs.pid_alive(child)
    m = manifest(out)
    assert not m["complete"] and m["error"] == "stopped by signal 15"
    with pytest.raises(ValueError, match="stopped by signal 15"):
        parse_chunks(m)


def test_a_killed_driver_takes_its_chunk_with_it(
    fake_tool: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_RB_RATES", "1000")
    proc = drive(fake_tool, tmp_path / "m", seconds=60, rate=1000)
    child = _wait_child(proc.pid)
    proc.kill()
    proc.wait(5)
    assert procs.wait_gone([child], 5.0) == []  # PR_SET_PDEATHSIG
    assert not manifest(tmp_path / "m")["complete"]


def test_a_failing_chunk_ends_the_run_incomplete(tmp_path: Path) -> None:
    proc = drive(["/bin/sh", "-c", "echo boom >&2; exit 3", "sh"], tmp_path / "m", 5, 1000)
    proc.communicate(timeout=10)
    assert proc.returncode == 1
    m = manifest(tmp_path / "m")
    assert not m["complete"] and "chunk 0 (m.c000.stdout) exited with 3" in m["error"]
    assert len(m["chunks"]) == 1


def test_the_sweep_knows_the_driver_as_a_load_process(
    fake_tool: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_RB_RATES", "1000")
    monkeypatch.chdir(tmp_path)
    proc = drive(fake_tool, tmp_path / "m", seconds=60, rate=1000)
    try:
        _wait_child(proc.pid)
        assert procs.kind_of(proc.pid) == "load"
        found = procs.kill_under(tmp_path)
        assert proc.pid in {f["pid"] for f in found["found"]} and found["survivors"] == []
        assert procs.processes_under(tmp_path) == []
    finally:
        proc.kill()
        proc.communicate(timeout=5)


def _wait_child(pid: int, timeout: float = 10.0) -> int:
    """The pid of the driver's running chunk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if kids:
            return int(kids[0])
        time.sleep(0.02)
    raise TimeoutError("the driver started no chunk")


def test_driver_refuses_bad_arguments() -> None:
    argv = [sys.executable, "-I", "-S", str(CHUNKED), "--seconds", "0", "--rate", "1"]
    r = subprocess.run([*argv, "--out", "/tmp/x", "--", "true"], capture_output=True, text=True)
    assert r.returncode == 2 and "--seconds > 0" in r.stderr
    assert os.path.basename(CHUNKED) == "chunked.py"
