"""Figure 1, load fidelity: redis-benchmark run by hand vs through cachebench.loadgen.

One real redis-server (password, 127.0.0.1). The same tool, the same parameters
and the same fixed request count (-n) run A/B alternately: A by hand (plain
subprocess, numbers read from the tool's own summary), B through the path the
DAG uses (loadgen.start_load, poll until done as the watch does, collect_load).
The workload is GET-only so that one process runs per side and the by-hand
number needs no merging; keys are filled first so GETs hit.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from pathlib import Path

from cachebench import loadgen
from cachebench.models import Endpoint, Workload
from common import HOST, Row, Server, median

WORKLOAD = Workload(
    name="fidelity",
    ratio="0:1",
    value_size=256,
    key_space=50_000,
    pipeline=4,
    clients=8,
    threads=1,
    warmup_seconds=0,
    duration_seconds=8,
)
_RPS = re.compile(r"throughput summary: ([\d.]+) requests per second")
_SUMMARY = re.compile(
    r"latency summary \(msec\):\s*\n\s*avg\s+min\s+p50\s+p95\s+p99\s+max\s*\n\s*"
    r"([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)"
)


def direct_argv(srv: Server, test: str, n: int) -> list[str]:
    w = WORKLOAD
    return [
        "redis-benchmark", "-h", HOST, "-p", str(srv.port), "-a", srv.password,
        "-t", test, "-n", str(n), "-c", str(w.clients * w.threads), "-r", str(w.key_space),
        "-d", str(w.value_size), "-P", str(w.pipeline), "--threads", str(w.threads),
    ]  # fmt: skip


def direct(srv: Server, n: int, out: Path) -> tuple[float, float]:
    """(ops/s, p99 ms) as redis-benchmark itself prints them."""
    with out.open("wb") as fh:
        subprocess.run(direct_argv(srv, "get", n), stdout=fh, stderr=subprocess.STDOUT, check=True)
    text = out.read_text(errors="replace")
    return float(_RPS.search(text).group(1)), float(_SUMMARY.search(text).group(5))


def harness(srv: Server, n: int, out: Path) -> tuple[float, float]:
    endpoint = Endpoint(host=HOST, port=srv.port, cluster_mode=False, auth_ref=str(srv.auth))
    d = WORKLOAD.duration_seconds
    handles = loadgen.start_load(
        WORKLOAD,
        endpoint,
        password=srv.password,
        out_dir=out,
        generators=1,
        tool="redis-benchmark",
        phase="measured",
        duration_s=d,
        rate_hint_ops={"get": n / d},  # sizes -n to exactly n (n is a multiple of d)
    )
    assert [h["requests"] for h in handles] == [n], handles
    while loadgen.load_running(handles):  # what the watch trigger does, at its 1 s poll
        time.sleep(1.0)
    result = loadgen.collect_load(handles)
    return result.ops_per_sec, result.latency.p99


def measure(pairs: int = 5) -> list[Row]:
    with (
        tempfile.TemporaryDirectory(prefix="cb-fidelity-") as tmp,
        Server(Path(tmp) / "srv", offset=100) as srv,
    ):
        work = Path(tmp)
        fill = direct_argv(srv, "set", WORKLOAD.key_space * 4)
        subprocess.run(fill, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        probe_ops, _ = direct(srv, 200_000, work / "probe.out")
        d = WORKLOAD.duration_seconds
        n = int(probe_ops * d) // d * d  # about d seconds, a multiple of d
        a_ops, a_p99, b_ops, b_p99 = [], [], [], []
        for i in range(pairs):
            order = ("A", "B") if i % 2 == 0 else ("B", "A")  # ABBA: drift hits both alike
            for which in order:
                if which == "A":
                    ops, p99 = direct(srv, n, work / f"direct-{i}.out")
                    a_ops.append(ops)
                    a_p99.append(p99)
                else:
                    ops, p99 = harness(srv, n, work / f"harness-{i}")
                    b_ops.append(ops)
                    b_p99.append(p99)
                print(f"  fidelity {which} pair {i}: {ops:,.0f} ops/s p99 {p99:.3f} ms", flush=True)
    ops_ratio = median(b_ops) / median(a_ops)
    p99_dev = abs(median(b_p99) / median(a_p99) - 1)
    note = f"GET-only, -n {n:,}, {pairs} A/B pairs (ABBA), medians"
    return [
        Row("1 fidelity", "harness ops/s vs direct", median(b_ops), median(a_ops), "ops/s",
            ">= 0.97 x", ops_ratio >= 0.97, note, b_ops + a_ops),
        Row("1 fidelity", "harness p99 vs direct", median(b_p99), median(a_p99), "ms",
            "within 5%", p99_dev <= 0.05, f"deviation {p99_dev:.1%}", b_p99 + a_p99),
    ]  # fmt: skip
