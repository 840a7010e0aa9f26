"""The local target: real servers on 127.0.0.1, started and stopped by Terraform.

Everything target-specific about one point lives here: its tfvars, how load
is driven, what "healthy" means while it runs, where its server metrics are,
and the check that destroy left nothing behind.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachebench import engines, loadgen, specs
from cachebench.local import procs, servers
from cachebench.models import Endpoint, LoadResult, Point
from cachebench.workspace import PointDir

if TYPE_CHECKING:
    import pandas as pd

MODULE = "local"
PORT_SPAN, PORT_BLOCK = 5000, 20  # a point's nodes take a block; cluster bus ports are +10000
RESERVED_MEMORY = 0.25  # ElastiCache's default reserved-memory-percent
WATCH_GRACE_S = 120  # how long past twice its planned length a load may run
TRIGGER = "cachebench.triggers.watch.LoadWatchTrigger"
PLUGINS_DIR = Path(__file__).resolve().parents[2]


BLOCKS = PORT_SPAN // PORT_BLOCK


def port_first() -> int:
    """Start of the local port range; CACHEBENCH_PORT_FIRST moves it (e.g. for parallel CI)."""
    return int(os.environ.get("CACHEBENCH_PORT_FIRST", "30000"))


def free_port_block(nodes: int, index: int, points: int) -> int:
    """A block of ports (and cluster bus ports) nothing listens on, never another point's.

    Point i of n only ever takes blocks i, i+n, i+2n...: all points of a run
    render their tfvars before any applies, so probing alone would hand every
    point the same free block.
    """
    first = port_first()
    for block in range(index, BLOCKS, max(points, 1)):
        base = first + block * PORT_BLOCK
        if all(
            procs.port_free(p) and procs.port_free(p + 10000) for p in range(base, base + nodes)
        ):
            return base
    raise RuntimeError(f"no free block of {nodes} ports in {first}-{first + PORT_SPAN}")


def tfvars(
    point: Point, pdir: PointDir, run_id: str, expires_at: int, points: int
) -> dict[str, Any]:
    spec = specs.load_instance_specs()[("local", point.node_type)]
    binary = engines.server_binary(point.engine, point.version)
    if binary is None:
        raise RuntimeError(f"{point.engine} {point.version} is not installed on this machine")
    return {
        "point_id": point.id,
        "campaign": point.campaign,
        "run_id": run_id,
        "engine": point.engine,
        "engine_version": point.version,
        "server_binary": str(binary),
        "cluster_mode": point.topology.cluster_mode,
        "shards": point.topology.shards,
        "replicas": point.topology.replicas,
        "base_port": free_port_block(point.topology.nodes, point.index, points),
        "maxmemory_bytes": int(spec.memory_gib * (1 - RESERVED_MEMORY) * 2**30),
        "io_threads": spec.vcpu,
        "state_dir": str(pdir.server),
        "python": sys.executable,
        "pythonpath": str(PLUGINS_DIR),
        "metrics_interval_seconds": 1,
        "expires_at": expires_at,
    }


def password(endpoint: Endpoint) -> str:
    if not endpoint.auth_ref:
        raise RuntimeError("the endpoint has no auth file: servers would run without a password")
    return Path(endpoint.auth_ref).read_text().strip()


def wait_for_other_loads(pdir: PointDir, poll_s: float = 0.1) -> float:
    """Block while another point of this run still has its measured load running.

    A deferred watch holds no task slot (max_active_tasks does not count it), so
    the next point's run_load would otherwise start while this one's load still
    runs: two loads on two cores. Waits at most until the other load's watch
    deadline; returns the seconds waited.
    """
    t0 = time.monotonic()
    for other in sorted(pdir.path.parent.glob("*/handles.json")):
        handles = procs.read_json(other) if other.parent != pdir.path else None
        if not isinstance(handles, list) or not handles:
            continue
        deadline = load_deadline(
            min(float(h.get("started_at", 0)) for h in handles),
            max(float(h.get("duration_s", 0)) for h in handles),
        )
        while loadgen.load_running(handles) and time.time() < deadline:
            time.sleep(poll_s)
    return time.monotonic() - t0


def load_deadline(started_at: float, duration_s: float) -> float:
    """When a measured load that started at started_at is overdue (watch and waiters)."""
    return started_at + duration_s * 2 + WATCH_GRACE_S


def run_load(point: Point, endpoint: Endpoint, pdir: PointDir) -> dict[str, Any]:
    """Warm up (blocking, results kept apart), then start the measured phase detached."""
    w = point.workload
    secret = password(endpoint)
    wait_for_other_loads(pdir)
    pdir.load.mkdir(parents=True, exist_ok=True)
    rate_hint = None
    if w.warmup_seconds > 0:
        warm = loadgen.run_load(
            w,
            endpoint,
            password=secret,
            out_dir=pdir.load / "warmup",
            generators=point.load_generators,
            tool=point.load_tool,
            phase="warmup",
            duration_s=w.warmup_seconds,
        )
        pdir.write_json("warmup.json", warm.model_dump(mode="json"))
        rate_hint = loadgen.rate_hint_from(warm)
    started = time.time()
    handles = loadgen.start_load(
        w,
        endpoint,
        password=secret,
        out_dir=pdir.load / "measured",
        generators=point.load_generators,
        tool=point.load_tool,
        phase="measured",
        duration_s=w.duration_seconds,
        rate_hint_ops=rate_hint,
    )
    pdir.write_json("handles.json", handles)  # so destroy can stop them without XCom
    watch = {
        "load_pids": [int(h["pid"]) for h in handles],
        "server_pids": server_pids(pdir.server),
        "deadline": load_deadline(started, w.duration_seconds),
    }
    return {
        "handles": handles,
        "started_at": started,
        "watch": {"classpath": TRIGGER, "kwargs": watch},
    }


def backend_config(point: Point, pdir: PointDir, run_id: str) -> None:
    return None  # local state file in the point's terraform/ dir


def server_pids(state_dir: Path) -> list[int]:
    reg = procs.read_json(state_dir / "registry.json") or {}
    return [int(n["pid"]) for n in reg.get("nodes", []) if n.get("pid")]


def collect(point: Point, item: dict[str, Any], pdir: PointDir) -> LoadResult:
    return loadgen.collect_load(item["handles"])


def metrics(point: Point, item: dict[str, Any], start: float, end: float) -> pd.DataFrame:
    from cachebench.report.export import read_agent_csv

    return read_agent_csv(Path(item["state_dir"]) / "metrics.csv", point.id, start=start, end=end)


def stop_load(pdir: PointDir) -> None:
    handles = procs.read_json(pdir.path / "handles.json")
    if isinstance(handles, list) and handles:
        loadgen.stop_load(handles)


def leftovers(item: dict[str, Any]) -> list[str]:
    """Stop whatever destroy missed and say what it was; empty means clean."""
    state_dir = Path(item["state_dir"])
    missed = [p for p in server_pids(state_dir) if procs.pid_alive(p)]
    result = servers.down(state_dir)
    left = [f"server pid {p} outlived terraform destroy" for p in missed]
    left += [f"port {p} still in use" for p in result["busy_ports"]]
    return left


def sweep(item: dict[str, Any]) -> dict[str, list[str]]:
    """Stop what no registry knows: processes whose cwd is in the point's folder.

    Catches what `down` cannot see when the folder (registry, pidfiles,
    handles.json) was removed under a running point. "stopped" is what was
    found and stopped, "left" what survived it (a CLEANUP FAILED).
    """
    swept = procs.kill_under(item["point_dir"])
    stopped = [
        f"stopped {f['kind']} pid {f['pid']} ({os.path.basename(f['argv0'])}) found in {f['cwd']}"
        for f in swept["found"]
    ]
    left = [f"pid {p} survived SIGKILL" for p in swept["survivors"]]
    left += [f"port {p} still in use" for p in swept["ports"] if not procs.port_free(p)]
    return {"stopped": stopped, "left": left}
