"""redis-benchmark (also valkey-benchmark): the fallback generator when memtier is absent.

redis-benchmark runs a fixed number of requests of one command type and has no
SET:GET mix, no duration and no key patterns. Mapping from a Workload:

* ratio S:G -> up to two concurrent processes per generator, ``-t set`` and
  ``-t get``, with the connections (clients x threads) split in proportion to
  the weights (at least one each side with a nonzero weight). The op mix that
  results is whatever the two sides achieve: it is reported, not enforced;
* duration -> consecutive runs ("chunks") of the same argv, each with an ``-n``
  sized from the rate the previous one achieved, until the window is full
  (chunked.py drives them; ``parse_chunks`` merges them): the window is the
  duration asked for within a fraction of a second;
* keys -> ``-r key_space`` (uniform random keys ``key:NNNNNNNNNNNN``).

Output (redis 7.0, without -q/--csv): progress lines separated by ``\\r`` every
250 ms (also when stdout is a pipe or file), then per test a ``====== SET ======``
block with "N requests completed in T seconds", "Latency by percentile
distribution:" and "Cumulative distribution of latencies:" lines ``P% <= V
milliseconds (cumulative count C)``, "throughput summary: R requests per
second" and a "latency summary (msec):" table (avg min p50 p95 p99 max).

Approximations: the histogram is rebuilt from the printed cumulative steps plus
the summary's p50/p95/p99 (exact there, linear in between, so p90 and p99.9 are
interpolated; a chunked run merges its chunks' histograms, so even p99 is then
read from the merge); the per-second
series assumes the nominal 250 ms progress tick; KB/s is estimated from the
RESP wire size of each request/reply (assuming GET hits). redis-benchmark exits
on the first error reply, so a completed run has errors=0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from cachebench.loadgen import hdr
from cachebench.loadgen.auth import wrap_with_env_auth
from cachebench.models import Endpoint, LoadResult, SecondSample, Workload

REDIS_BENCHMARK = "redis-benchmark"
Side = Literal["set", "get"]
SIDES: tuple[Side, Side] = ("set", "get")
KEY_LEN = 16  # "key:" + 12 digits (the __rand_int__ expansion with -r)
TICK_S = 0.25  # redis-benchmark's progress interval
# Fallback when nothing was measured yet (used to size a short first run).
DEFAULT_OPS_PER_CONN = 1000.0


def unsupported(workload: Workload) -> list[str]:
    """Why redis-benchmark cannot run workload as specified (empty: it can)."""
    problems = []
    if workload.key_pattern != "R:R":
        problems.append(
            f"key_pattern {workload.key_pattern!r}: redis-benchmark only does uniform random "
            "keys (R:R); install memtier_benchmark for S/G/P/Z patterns"
        )
    if workload.rate_limit:
        problems.append(
            f"rate_limit={workload.rate_limit}/s per connection: redis-benchmark cannot "
            "rate-limit; install memtier_benchmark"
        )
    return problems


def split_connections(workload: Workload, primaries: int = 1) -> dict[Side, int]:
    """Connections per side (only sides with a nonzero weight), proportional to the ratio.

    In cluster mode redis-benchmark gives each connection one primary, round
    robin, and that connection's keys hash to its primary's slots. A side with
    fewer connections than primaries would leave a shard without that command
    (no SETs there: every GET on it misses), so each side is rounded up to a
    multiple of the primaries: every shard gets the same mix.
    """
    s, g = workload.set_get
    total = workload.clients * workload.threads
    if s == 0:
        sides = {"get": total}
    elif g == 0:
        sides = {"set": total}
    else:
        n_set = round(total * s / (s + g))
        n_set = min(max(n_set, 1), max(total - 1, 1))
        sides = {"set": n_set, "get": max(total - n_set, 1)}
    if primaries > 1:
        sides = {k: math.ceil(v / primaries) * primaries for k, v in sides.items()}
    return sides


def requests_for(duration_s: float, rate_ops: float, *, minimum: int = 100) -> int:
    """-n that keeps one process busy for about duration_s at rate_ops."""
    if rate_ops <= 0 or duration_s <= 0:
        return minimum
    return max(minimum, math.ceil(duration_s * rate_ops))


def redis_benchmark_argv(
    workload: Workload,
    endpoint: Endpoint,
    *,
    side: Side,
    clients: int,
    requests: int | None,
    password_env: bool,
    tls_skip_verify: bool = False,
) -> list[str]:
    """argv of one redis-benchmark process (one side); never contains the password.

    password_env=True wraps the argv in /bin/sh which appends ``-a "$CACHEBENCH_AUTH"``
    at exec time (redis-benchmark 7.0 ignores REDISCLI_AUTH; see auth.py).
    requests=None leaves out ``-n``: chunked.py appends one per chunk.
    """
    argv = [
        REDIS_BENCHMARK,
        "-h",
        endpoint.host,
        "-p",
        str(endpoint.port),
        "-t",
        side,
        *(["-n", str(requests)] if requests is not None else []),
        "-c",
        str(clients),
        "-r",
        str(workload.key_space),
        "-d",
        str(workload.value_size),
        "-P",
        str(workload.pipeline),
        "--threads",
        str(max(1, min(workload.threads, clients))),
    ]
    if endpoint.cluster_mode:
        argv.append("--cluster")
    if endpoint.tls:
        argv.append("--tls")
        if tls_skip_verify:
            argv.append("--insecure")
    return wrap_with_env_auth(argv, "-a") if password_env else argv


# ---------------------------------------------------------------- parsing

_BLOCK = re.compile(r"====== (.+?) ======")
_COMPLETED = re.compile(r"(\d+) requests completed in ([\d.]+) seconds")
_PAYLOAD = re.compile(r"(\d+) bytes payload")
_STEP = re.compile(r"([\d.]+)% <= ([\d.]+) milliseconds \(cumulative count (\d+)\)")
_THROUGHPUT = re.compile(r"throughput summary: ([\d.]+) requests per second")
_SUMMARY = re.compile(
    r"latency summary \(msec\):\s*\n\s*avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*"
    r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
)
_PROGRESS = re.compile(r"^(.+?): rps=([\d.]+) \(overall: ([^)]*)\) avg_msec=(\S+)")


def _wire_bytes(test: str, payload: int) -> int:
    """RESP bytes on the wire (request + reply) of one SET or GET, key of KEY_LEN."""
    key = f"${KEY_LEN}\r\n".encode() + b"k" * KEY_LEN + b"\r\n"
    bulk = len(f"${payload}\r\n") + payload + 2
    if test.upper().startswith("SET"):
        return len(b"*3\r\n$3\r\nSET\r\n") + len(key) + bulk + len(b"+OK\r\n")
    return len(b"*2\r\n$3\r\nGET\r\n") + len(key) + bulk


def _tick_rates(progress: str) -> list[float]:
    """ops/s of each progress tick after the first (which fires at the start, empty)."""
    rates: list[float] = []
    for chunk in re.split(r"[\r\n]+", progress):
        m = _PROGRESS.match(chunk.strip())
        if m:
            rates.append(float(m.group(2)))
    return rates[1:]


def _bin_ticks(ticks: Sequence[tuple[float, float]]) -> list[SecondSample]:
    """Per-second means of (tick end in seconds since the window start, ops/s) pairs.

    A tick covers the TICK_S before its end and counts for the second holding
    its middle: tick j of a run started at 0 ends at j/4 s, second (j-1)//4.
    """
    by_second: dict[int, list[float]] = {}
    for end, rate in ticks:
        by_second.setdefault(max(0, math.floor(end - TICK_S / 2)), []).append(rate)
    return [
        SecondSample(second=s, ops_per_sec=round(sum(v) / len(v), 1))
        for s, v in sorted(by_second.items())
    ]


def _series(progress: str) -> list[SecondSample]:
    """Per-second ops from the \\r-separated progress lines (nominal 250 ms ticks)."""
    return _bin_ticks([(j * TICK_S, r) for j, r in enumerate(_tick_rates(progress), start=1)])


def _parse_block(title: str, body: str) -> dict:
    completed = _COMPLETED.search(body)
    throughput = _THROUGHPUT.search(body)
    summary = _SUMMARY.search(body)
    if not (completed and throughput and summary):
        raise ValueError(f"redis-benchmark {title!r} block is incomplete (run interrupted?)")
    avg, lo, p50, p95, p99, hi = (float(x) for x in summary.groups())
    n = int(completed.group(1))
    points = [(float(v), int(c)) for _pct, v, c in _STEP.findall(body)]
    # The summary's exact percentiles are CDF points too: value v at p% means at
    # least ceil(p% of n) samples are <= v.
    points += [(lo, 1), (p50, math.ceil(n * 0.50)), (p95, math.ceil(n * 0.95))]
    points += [(p99, math.ceil(n * 0.99))]
    payload = _PAYLOAD.search(body)
    return {
        "title": title,
        "requests": n,
        "seconds": float(completed.group(2)),
        "rps": float(throughput.group(1)),
        "avg": avg,
        "max": hi,
        "hist": hdr.histogram_from_cumulative(points),
        "bytes": _wire_bytes(title, int(payload.group(1)) if payload else 3),
    }


def parse_redis_benchmark(
    text: str, *, started_at: float, elapsed: float, tool_version: str = ""
) -> LoadResult:
    """LoadResult of one redis-benchmark process from its normal (non -q/--csv) stdout.

    elapsed (wall clock) is only used when the output lacks the tool's own
    "completed in" time. Several test blocks (e.g. ``-t set,get``) ran one after
    the other: requests and time add up, rates are requests / total time.
    """
    heads = list(_BLOCK.finditer(text))
    if not heads:
        raise ValueError("no '====== TEST ======' block in redis-benchmark output")
    blocks = []
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        blocks.append(_parse_block(head.group(1), text[head.end() : end]))
    requests = sum(b["requests"] for b in blocks)
    seconds = sum(b["seconds"] for b in blocks) or elapsed
    if len(blocks) == 1:
        ops = blocks[0]["rps"]
        series = _series(text[: heads[0].start()])
    else:
        ops = requests / seconds if seconds else 0.0
        series = []
    set_ops = sum(b["requests"] for b in blocks if b["title"].upper().startswith("SET"))
    get_ops = sum(b["requests"] for b in blocks if b["title"].upper().startswith("GET"))
    scale = ops / requests if requests else 0.0
    hist = hdr.merge(hdr.encode(b["hist"]) for b in blocks)
    kb = sum(b["requests"] * b["bytes"] for b in blocks) * scale / 1024.0
    return LoadResult(
        tool=REDIS_BENCHMARK,
        tool_version=tool_version,
        started_at=started_at,
        elapsed_seconds=round(seconds, 3),
        requests=requests,
        errors=0,
        ops_per_sec=round(ops, 2),
        set_ops_per_sec=round(set_ops * scale, 2),
        get_ops_per_sec=round(get_ops * scale, 2),
        kb_per_sec=round(kb, 2),
        latency=hdr.latency_from(
            hist,
            mean_ms=sum(b["avg"] * b["requests"] for b in blocks) / requests if requests else 0,
            max_ms=max(b["max"] for b in blocks),
        ),
        series=series,
        histogram=hdr.encode(hist),
    )


# ---------------------------------------------------------------- chunked runs


def merge_chunks(
    chunks: Sequence[tuple[str, float, float]],
    *,
    started_at: float,
    ended_at: float,
    tool_version: str = "",
) -> LoadResult:
    """One LoadResult of consecutive runs of one process, as (stdout, spawned_at, exited_at).

    Requests add up and the rates are over the whole wall window
    [started_at, ended_at] (first start to last exit: the gaps between chunks
    count against the throughput, as time the load did not run). Latency
    percentiles come from the chunks' histograms merged count by count; the
    mean is request-weighted and max the max. The per-second series places each
    chunk's ticks at the chunk's own start (its exit minus the tool's run time).
    """
    if not chunks:
        raise ValueError("no chunks")
    elapsed = ended_at - started_at
    if elapsed <= 0:
        raise ValueError(f"empty window: {started_at} .. {ended_at}")
    parts: list[LoadResult] = []
    ticks: list[tuple[float, float]] = []
    for text, spawned, exited in chunks:
        r = parse_redis_benchmark(
            text, started_at=spawned, elapsed=exited - spawned, tool_version=tool_version
        )
        parts.append(r)
        head = _BLOCK.search(text)
        run_s = r.requests / r.ops_per_sec if r.ops_per_sec else r.elapsed_seconds
        offset = exited - run_s - started_at
        progress = text[: head.start()] if head else ""
        ticks += [(offset + j * TICK_S, x) for j, x in enumerate(_tick_rates(progress), start=1)]

    def total(rate: Any) -> float:
        """What a chunk's per-second figure adds up to over its own run time."""
        return sum(rate(r) * r.requests / r.ops_per_sec for r in parts if r.ops_per_sec)

    requests = sum(r.requests for r in parts)
    hist = hdr.merge(r.histogram for r in parts)
    return LoadResult(
        tool=REDIS_BENCHMARK,
        tool_version=tool_version,
        started_at=started_at,
        elapsed_seconds=round(elapsed, 3),
        requests=requests,
        errors=sum(r.errors for r in parts),
        ops_per_sec=round(requests / elapsed, 2),
        set_ops_per_sec=round(total(lambda r: r.set_ops_per_sec) / elapsed, 2),
        get_ops_per_sec=round(total(lambda r: r.get_ops_per_sec) / elapsed, 2),
        kb_per_sec=round(total(lambda r: r.kb_per_sec) / elapsed, 2),
        latency=hdr.latency_from(
            hist,
            mean_ms=sum(r.latency.mean * r.requests for r in parts) / requests if requests else 0,
            max_ms=max(r.latency.max for r in parts),
        ),
        series=_bin_ticks(ticks),
        histogram=hdr.encode(hist),
    )


def parse_chunks(manifest: dict[str, Any], *, tool_version: str = "") -> LoadResult:
    """LoadResult of a chunked run from chunked.py's manifest (the chunks' stdout files).

    Refuses (ValueError) a run that did not fill its window: a killed or
    failed chunk, or a driver that was stopped or died, never passes for a result.
    """
    if not manifest.get("complete"):
        why = manifest.get("error") or "the driver ended before its window was full"
        raise ValueError(f"chunked redis-benchmark run incomplete: {why}")
    chunks = [
        (Path(c["stdout"]).read_text(errors="replace"), c["spawned_at"], c["exited_at"])
        for c in manifest["chunks"]
    ]
    return merge_chunks(
        chunks,
        started_at=float(manifest["started_at"]),
        ended_at=float(manifest["ended_at"]),
        tool_version=tool_version,
    )
