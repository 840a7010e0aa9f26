"""Factories for synthetic points, load results, metric tables and run directories."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from cachebench.catalogue import InstanceSpec
from cachebench.models import (
    METRIC_COLUMNS,
    Deployment,
    DeploymentPlan,
    GeneratorCpu,
    Latency,
    LoadCpu,
    LoadResult,
    Point,
    RunSpec,
    SecondSample,
    Topology,
    Workload,
)
from cachebench.pricing import Price
from cachebench.report.export import export_point, write_metrics

T0 = 1_700_000_000.0
GIB = 1024**3
UNITS = {
    "CPUUtilization": "Percent",
    "EngineCPUUtilization": "Percent",
    "NetworkBytesIn": "Bytes",
    "NetworkBytesOut": "Bytes",
    "BytesUsedForCache": "Bytes",
    "DatabaseMemoryUsagePercentage": "Percent",
    "Evictions": "Count",
    "CurrConnections": "Count",
    "NetworkBandwidthOutAllowanceExceeded": "Count",
}
SINGLE = Topology()
CLUSTER3 = Topology(cluster_mode=True, shards=3, replicas=1)


def make_point(
    index: int = 0,
    engine: str = "valkey",
    version: str | None = None,
    topology: Topology = SINGLE,
    node_type: str = "cache.r7g.large",
    workload: str = "mixed",
    target: str = "aws",
) -> Point:
    """A point whose id spells out its dimensions."""
    version = version or {"valkey": "8.0", "redis": "7.1"}[engine]
    pid = f"p{index:02d}-{engine}-{topology.label}-{node_type.split('.')[-1]}-{workload}"
    return Point(
        id=pid,
        index=index,
        campaign="demo",
        target=target,
        engine=engine,
        version=version,
        topology=topology,
        node_type=node_type,
        workload=Workload(name=workload, duration_seconds=60, warmup_seconds=5),
    )


def make_load(
    ops: float = 100_000.0, p99: float = 1.0, seconds: int = 60, errors: int = 0
) -> LoadResult:
    """A load result with a per-second series wobbling around ``ops``."""
    wobble = 1 + 0.05 * np.sin(np.arange(seconds) / 5)
    series = [
        SecondSample(second=i, ops_per_sec=ops * w, p50_ms=p99 * 0.4, p99_ms=p99 * w)
        for i, w in enumerate(wobble)
    ]
    return LoadResult(
        tool="memtier_benchmark",
        started_at=T0,
        elapsed_seconds=seconds,
        requests=int(ops * seconds),
        errors=errors,
        ops_per_sec=ops,
        kb_per_sec=ops * 0.3,
        latency=Latency(
            p50=p99 * 0.4,
            p90=p99 * 0.7,
            p99=p99,
            p99_9=p99 * 1.5,
            max=p99 * 3,
            mean=p99 * 0.45,
        ),
        series=series,
    )


def make_metrics(
    point_id: str,
    nodes: tuple[str, ...] = ("n1",),
    seconds: int = 60,
    period: int = 1,
    start: float = T0,
    values: dict[str, float] | None = None,
    overrides: dict[tuple[str, str], np.ndarray | float] | None = None,
) -> pd.DataFrame:
    """A long table: one row per (sample, node, metric), constant unless overridden.

    ``values`` are per-period values (NetworkBytes* as Gbps, converted to bytes);
    ``overrides[(node, metric)]`` replaces one node's series.
    """
    base = {
        "CPUUtilization": 40.0,
        "EngineCPUUtilization": 60.0,
        "NetworkBytesIn": 0.5,
        "NetworkBytesOut": 1.0,
        "BytesUsedForCache": 2.0 * GIB,
        "DatabaseMemoryUsagePercentage": 30.0,
        "Evictions": 0.0,
        "CurrConnections": 200.0,
    } | (values or {})
    overrides = overrides or {}
    ts = start + np.arange(0, seconds, period, dtype="float64")
    frames = []
    for node in nodes:
        for metric, v in base.items():
            y = np.broadcast_to(np.asarray(overrides.get((node, metric), v), float), ts.shape)
            if metric.startswith("NetworkBytes"):
                y = y * 1e9 / 8 * period  # Gbps -> bytes per period
            frames.append(
                pd.DataFrame(
                    {
                        "timestamp": ts,
                        "point_id": point_id,
                        "node_id": node,
                        "metric": metric,
                        "value": y,
                        "unit": UNITS[metric],
                        "period_s": period,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)[METRIC_COLUMNS]


def make_spec(
    node_type: str = "cache.r7g.large",
    target: str = "aws",
    baseline: float | None = 0.937,
    burst: float | None = 12.5,
    vcpu: int = 2,
    memory_gib: float = 13.07,
) -> InstanceSpec:
    return InstanceSpec(
        target=target,
        node_type=node_type,
        family=node_type.split(".")[1] if "." in node_type else "local",
        vcpu=vcpu,
        memory_gib=memory_gib,
        network_baseline_gbps=baseline,
        network_burst_gbps=burst,
        source="test",
    )


def make_price(usd: float, source: str = "test price", as_of: date = date(2025, 3, 14)) -> Price:
    return Price(usd_per_node_hour=usd, source=source, as_of=as_of)


def register_run(run_dir: Path, point: Point, rep: int = 1) -> None:
    """Add a run of point to run_dir's campaign.json, as plan would have planned it."""
    path = run_dir / "campaign.json"
    if path.is_file():
        doc = json.loads(path.read_text())
    else:
        spec = {
            "name": point.campaign,
            "target": point.target,
            "engines": [{"engine": point.engine, "versions": [point.version]}],
            "topologies": [{}],
            "node_types": [point.node_type],
            "workloads": [point.workload.model_dump()],
        }
        doc = {"spec": spec, "load_tool": "memtier_benchmark", "estimate_usd": 0, "deployments": []}
    deployments = {d["instance"]: d for d in doc["deployments"]}
    instance = point.deployment_id
    if instance not in deployments:
        d = Deployment(
            id=instance,
            index=len(deployments),
            campaign=point.campaign,
            target=point.target,
            engine=point.engine,
            version=point.version,
            topology=point.topology,
            node_type=point.node_type,
        )
        plan = DeploymentPlan(
            deployment=d,
            instance=instance,
            instance_index=len(deployments),
            instances=len(deployments) + 1,
            run_id="manual__test",
            run_dir=str(run_dir),
            runs=[],
        )
        deployments[instance] = plan.model_dump(mode="json")
        doc["deployments"].append(deployments[instance])
    order = sum(len(d["runs"]) for d in doc["deployments"])
    run = RunSpec(point=point, repetition=rep, order=order)
    deployments[instance]["runs"].append(run.model_dump(mode="json"))
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1))


def write_point_dir(
    run_dir: Path,
    point: Point,
    load: LoadResult,
    metrics: pd.DataFrame | None = None,
    spec: InstanceSpec | None = None,
    figures: bool = False,
    rep: int = 1,
    cpu_pct: float | None = 30.0,
) -> Path:
    """A finished run's directory (points/<id>/rep<k>), with figures via export_point or
    just the data files, and the run planned in campaign.json. Its load generator ran at
    cpu_pct of its one core every second (cpu.json); None: no cpu.json."""
    register_run(run_dir, point, rep)
    (run_dir / "points" / point.id).mkdir(parents=True, exist_ok=True)
    (run_dir / "points" / point.id / "point.json").write_text(point.model_dump_json())
    out = run_dir / "points" / point.id / f"rep{rep}"
    if metrics is None:
        nodes = tuple(f"n{i}" for i in range(point.topology.nodes))
        metrics = make_metrics(point.id, nodes=nodes, seconds=30)
    if figures:
        export_point(point, metrics, load, out, spec)
    else:
        write_metrics(metrics, out)
        (out / "load.json").write_text(load.model_dump_json())
    if cpu_pct is not None:
        seconds = len(load.series) or 1
        cpu = LoadCpu(
            started_at=load.started_at,
            generators=[GeneratorCpu(generator=0, capacity_cores=1, cpu_pct=[cpu_pct] * seconds)],
        )
        (out / "cpu.json").write_text(cpu.model_dump_json())
    return out


def write_failed_dir(run_dir: Path, point: Point, error: str | None, rep: int = 1) -> Path:
    """A planned run that never finished: point.json and optionally the run's error.txt."""
    register_run(run_dir, point, rep)
    (run_dir / "points" / point.id).mkdir(parents=True, exist_ok=True)
    (run_dir / "points" / point.id / "point.json").write_text(point.model_dump_json())
    out = run_dir / "points" / point.id / f"rep{rep}"
    out.mkdir(parents=True, exist_ok=True)
    if error is not None:
        (out / "error.txt").write_text(error)
    return out
