"""Figure 2, observer cost: server throughput with the metrics agent sampling vs without.

One real redis-server under a fixed load (redis-benchmark, the same fixed -n
each time, the example campaign's shape, GET-only), keys filled and warmed.
A/B alternate (ABBA, many short pairs): A with `python -m cachebench.targets.local.agent`
sampling INFO every second (started before the window and sampling already,
its start-up excluded), B without it. The value is the median of the per-pair
throughput ratios A/B with a bootstrap 95% interval and the pairs' spread (see
fidelity.py). The agent's CPU is read from /proc/<pid>/schedstat (ns) over
exactly the load windows. Also shown, steadier on a shared machine: the
requests per CPU-second of server, load tool and (A) agent, per pair.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cachebench.targets.local import servers
from cachebench.targets.local.config import RegisteredNode, Registry, write_registry
from common import HOST, ROOT, Row, Server, median, scaled
from fidelity import WORKLOAD, Run, abba, cpu_s, describe, direct, direct_argv, paired, pinning

WINDOW_S = 3.0  # per run; the agent samples about three times in it
PAIRS = scaled(20, 2)


def registry(srv: Server, state: Path) -> Registry:
    """What `up` would register for this one hand-started server: all the agent reads."""
    engine, version = servers.binary_version(srv.binary)
    (node,) = servers.plan_nodes(shards=1, replicas=0, base_port=srv.port)
    now = time.time()
    return Registry(
        deployment_id="bench-observer",
        campaign="bench",
        run_id="bench",
        expires_at=now + 3600,
        nodes=[
            RegisteredNode(
                node_id=node.node_id,
                pid=srv.proc.pid,
                host=node.host,
                port=node.port,
                role=node.role,
                shard=node.shard,
            )
        ],
        agent_pid=None,
        created_at=now,
        state_dir=str(state),
        runtime_dir=str(srv.dir),  # where the agent finds the password (auth)
        host=HOST,
        engine=engine,
        engine_version=version,
        server_version=version,
        server_binary=srv.binary,
        cluster_mode=False,
        maxmemory_bytes=0,
        metrics_interval_seconds=1,
        config_hash="",  # no `up` config to compare: started by hand
        reused=False,
    )


def start_agent(reg: Registry) -> subprocess.Popen:
    state = Path(reg.state_dir)
    state.mkdir(parents=True, exist_ok=True)
    (state / "metrics.csv").unlink(missing_ok=True)
    write_registry(state, reg)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    with (state / "agent.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cachebench.targets.local.agent", "--state-dir", str(state)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def sampling(agent: subprocess.Popen, csv: Path) -> None:
    """Wait until the agent has written its first samples (its start-up is not measured)."""
    deadline = time.monotonic() + 15
    while not (csv.exists() and csv.stat().st_size > 200):
        if time.monotonic() > deadline or agent.poll() is not None:
            log = (csv.parent / "agent.log").read_text(errors="replace")[-600:]
            raise RuntimeError(f"the metrics agent did not start sampling; its log: {log}")
        time.sleep(0.05)


def measure(pairs: int = PAIRS) -> list[Row]:
    pin_server, unpin = pinning()
    a: dict[int, Run] = {}  # with the agent
    b: dict[int, Run] = {}  # without
    agent_cpu: list[float] = []
    agent_total = [0.0, 0.0]  # CPU seconds, wall seconds over every A window
    rows_written: list[int] = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="cb-observer-") as tmp,
            Server(Path(tmp) / "srv", offset=120) as srv,
        ):
            pin_server(srv.proc.pid)
            work = Path(tmp)
            subprocess.run(
                direct_argv(srv, "set", WORKLOAD.key_space * 4),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            cold = direct(srv, 300_000, work / "probe.out")
            warm = direct(srv, int(cold.ops * WINDOW_S / 2), work / "warm.out")
            n = int(warm.ops * WINDOW_S)  # the fixed load: the same -n every time
            reg = registry(srv, work / "state")
            csv = work / "state" / "metrics.csv"

            def with_agent(i: int) -> None:
                agent = start_agent(reg)
                try:
                    sampling(agent, csv)
                    lines0 = csv.read_text().count("\n")
                    c0, t0 = cpu_s(agent.pid), time.monotonic()
                    run = direct(srv, n, work / f"run-{i}-A.out")
                    c1, t1 = cpu_s(agent.pid), time.monotonic()
                    rows_written.append(csv.read_text().count("\n") - lines0)
                finally:
                    agent.terminate()
                    agent.wait(10)
                agent_cpu.append(100.0 * (c1 - c0) / (t1 - t0))
                agent_total[0] += c1 - c0
                agent_total[1] += t1 - t0
                run.cpu_s += c1 - c0  # the work per request includes the observer's
                a[i] = run
                print(f"  observer A pair {i}: {run.ops:,.0f} ops/s, agent "
                      f"{agent_cpu[-1]:.2f}% of a core", flush=True)  # fmt: skip

            def without(i: int) -> None:
                b[i] = direct(srv, n, work / f"run-{i}-B.out")
                print(f"  observer B pair {i}: {b[i].ops:,.0f} ops/s", flush=True)

            abba(pairs, with_agent, without)
    finally:
        unpin()
    ops = paired([a[i].ops / b[i].ops for i in range(pairs)])
    work_ratio = paired([a[i].per_cpu / b[i].per_cpu for i in range(pairs)])
    cpu = 100.0 * agent_total[0] / agent_total[1]
    a_ops, b_ops = median([r.ops for r in a.values()]), median([r.ops for r in b.values()])
    note = (
        f"-n {n:,} GET (about {WINDOW_S:g} s), {pairs} A/B pairs (ABBA); {describe(ops)}; "
        f"medians of the runs: with {a_ops:,.0f} ops/s, without {b_ops:,.0f} ops/s; agent "
        f"wrote {min(rows_written)}-{max(rows_written)} rows per window"
    )
    return [
        Row("2 observer", "throughput with agent vs without (per-pair ratio)", ops["median"],
            1.0, "x", ">= 0.99 x", ops["median"] >= 0.99, note,
            [r.ops for r in a.values()] + [r.ops for r in b.values()]),
        Row("2 observer", "agent CPU (% of one core)", cpu, None, "%", "< 1%", cpu < 1.0,
            f"its CPU over all {pairs} windows / their length (schedstat, ns); per window "
            f"median {median(agent_cpu):.2f}%, max {max(agent_cpu):.2f}%: "
            + ", ".join(f"{c:.2f}" for c in agent_cpu), agent_cpu),
        Row("2 observer", "  requests per CPU-second (server + load + agent), per-pair ratio",
            work_ratio["median"], 1.0, "x", "(1: the agent costs no work)", None,
            f"{describe(work_ratio)}; steadier than ops/s when other jobs take the CPU"),
    ]  # fmt: skip
