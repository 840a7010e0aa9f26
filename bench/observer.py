"""Figure 2, observer cost: server throughput with the metrics agent sampling vs without.

One real redis-server under a fixed load (redis-benchmark, fixed -n, the
example campaign's shape, GET-only). A/B alternate (ABBA): A with
`python -m cachebench.local.agent` sampling INFO every second (started before
the window, its start-up excluded), B without it. The agent's CPU is read from
/proc/<pid>/stat (utime + stime) over exactly the load window.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Row, Server, cpu_seconds, median
from fidelity import direct, direct_argv


def start_agent(srv: Server, state: Path) -> subprocess.Popen:
    state.mkdir(parents=True, exist_ok=True)
    (state / "auth").write_text(srv.password)
    (state / "metrics.csv").unlink(missing_ok=True)
    registry = {
        "point_id": "bench-observer",
        "host": "127.0.0.1",
        "nodes": [{"node_id": "0001", "pid": srv.proc.pid, "port": srv.port}],
        "metrics_interval_seconds": 1,
        "expires_at": time.time() + 3600,
        "maxmemory_bytes": 0,
    }
    (state / "registry.json").write_text(json.dumps(registry))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    return subprocess.Popen(
        [sys.executable, "-m", "cachebench.local.agent", "--state-dir", str(state)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(pairs: int = 6) -> list[Row]:
    with (
        tempfile.TemporaryDirectory(prefix="cb-observer-") as tmp,
        Server(Path(tmp) / "srv", offset=120) as srv,
    ):
        work = Path(tmp)
        subprocess.run(
            direct_argv(srv, "set", 200_000),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
        )
        probe, _ = direct(srv, 200_000, work / "probe.out")
        n = int(probe * 6)  # about 6 s per window
        with_agent, without, agent_cpu, rows_written = [], [], [], []
        for i in range(pairs):
            for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
                agent = None
                if which == "A":
                    agent = start_agent(srv, work / "state")
                    csv = work / "state" / "metrics.csv"
                    deadline = time.monotonic() + 15
                    while not (csv.exists() and csv.stat().st_size > 200):  # sampling
                        if time.monotonic() > deadline or agent.poll() is not None:
                            raise RuntimeError("the metrics agent did not start sampling")
                        time.sleep(0.1)
                    lines0 = csv.read_text().count("\n")
                    c0, t0 = cpu_seconds(agent.pid), time.monotonic()
                ops, _ = direct(srv, n, work / f"run-{i}-{which}.out")
                if agent is not None:
                    c1, t1 = cpu_seconds(agent.pid), time.monotonic()
                    agent_cpu.append(100.0 * (c1 - c0) / (t1 - t0))
                    rows_written.append(csv.read_text().count("\n") - lines0)
                    agent.terminate()
                    agent.wait(10)
                    with_agent.append(ops)
                else:
                    without.append(ops)
                print(f"  observer {which} pair {i}: {ops:,.0f} ops/s", flush=True)
    ratio = median(with_agent) / median(without)
    cpu = median(agent_cpu)
    note = f"-n {n:,} GET, {pairs} A/B pairs (ABBA), medians; agent wrote {rows_written} rows"
    return [
        Row("2 observer", "throughput with agent vs without", median(with_agent),
            median(without), "ops/s", ">= 0.99 x", ratio >= 0.99, note, with_agent + without),
        Row("2 observer", "agent CPU (% of one core)", cpu, None, "%", "< 1%", cpu < 1.0,
            f"per window: {', '.join(f'{c:.2f}' for c in agent_cpu)}", agent_cpu),
    ]  # fmt: skip
