"""redis-benchmark (also valkey-benchmark): the fallback generator when memtier is absent.

redis-benchmark runs a fixed number of requests of one command type and has no
SET:GET mix, no duration and no key patterns. Mapping from a Workload:

* ratio S:G -> up to two concurrent processes per generator, ``-t set`` and
  ``-t get``, with the connections (clients x threads) split in proportion to
  the weights (at least one each side with a nonzero weight). The op mix that
  results is whatever the two sides achieve: it is reported, not enforced;
* duration -> ``-n`` from a rate estimate (``requests_for``): the warm-up
  measures it, the measured phase uses it, so durations are approximate;
* keys -> ``-r key_space`` (uniform random keys ``key:NNNNNNNNNNNN``).

Output (redis 7.0, without -q/--csv): progress lines separated by ``\\r`` every
250 ms (also when stdout is a pipe or file), then per test a ``====== SET ======``
block with "N requests completed in T seconds", "Latency by percentile
distribution:" and "Cumulative distribution of latencies:" lines ``P% <= V
milliseconds (cumulative count C)``, "throughput summary: R requests per
second" and a "latency summary (msec):" table (avg min p50 p95 p99 max).

Approximations: the histogram is rebuilt from the printed cumulative steps plus
the summary's p50/p95/p99 (exact there, linear in between, so p90 and p99.9 are
interpolated); the per-second
series assumes the nominal 250 ms progress tick; KB/s is estimated from the
RESP wire size of each request/reply (assuming GET hits). redis-benchmark exits
on the first error reply, so a completed run has errors=0.
"""

from __future__ import annotations

import math
import re
from typing import Literal

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


def split_connections(workload: Workload) -> dict[Side, int]:
    """Connections per side (only sides with a nonzero weight), proportional to the ratio."""
    s, g = workload.set_get
    total = workload.clients * workload.threads
    if s == 0:
        return {"get": total}
    if g == 0:
        return {"set": total}
    n_set = round(total * s / (s + g))
    n_set = min(max(n_set, 1), max(total - 1, 1))
    return {"set": n_set, "get": max(total - n_set, 1)}


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
    requests: int,
    password_env: bool,
    tls_skip_verify: bool = False,
) -> list[str]:
    """argv of one redis-benchmark process (one side); never contains the password.

    password_env=True wraps the argv in /bin/sh which appends ``-a "$CACHEBENCH_AUTH"``
    at exec time (redis-benchmark 7.0 ignores REDISCLI_AUTH; see auth.py).
    """
    argv = [
        REDIS_BENCHMARK,
        "-h",
        endpoint.host,
        "-p",
        str(endpoint.port),
        "-t",
        side,
        "-n",
        str(requests),
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


def _series(progress: str) -> list[SecondSample]:
    """Per-second ops from the \\r-separated progress lines (nominal 250 ms ticks).

    The first tick fires right at the start (empty interval) and is skipped;
    tick j covers ((j-1)/4 s, j/4 s] and belongs to second (j-1)//4.
    """
    rates: list[float] = []
    for chunk in re.split(r"[\r\n]+", progress):
        m = _PROGRESS.match(chunk.strip())
        if m:
            rates.append(float(m.group(2)))
    by_second: dict[int, list[float]] = {}
    per_second = round(1 / TICK_S)
    for j, rate in enumerate(rates[1:], start=1):
        by_second.setdefault((j - 1) // per_second, []).append(rate)
    return [
        SecondSample(second=s, ops_per_sec=round(sum(v) / len(v), 1))
        for s, v in sorted(by_second.items())
    ]


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
