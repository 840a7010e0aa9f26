"""Figure 5, export at scale: 50 points x 1 h x 20 metrics x 3 nodes, then the report.

Each point's metrics.csv is written as the agent writes it (same columns, one
row per tick x node x metric, measured period around 1 s; or 60 s, CloudWatch's
period). The timed part runs in a child process (`python bench/export_scale.py
child RUN_DIR`): per point what the DAG's export step does (read_agent_csv of
the measured window + export_point), then build_report. Its peak RSS comes
from os.wait4 (the child's own ru_maxrss). Baseline, in the same run and
alternated with it: a child that only reads each CSV with pyarrow and writes
it as parquet (the I/O floor). Target at 1 s: under 60 s and 2 GiB (an export
must never hold up a campaign; it need not win a race); the 60 s period is
information.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

POINTS, HOURS_S, NODES = 50, 3600, 3
METRICS = [
    ("CurrConnections", "Count"), ("BytesUsedForCache", "Bytes"),
    ("DatabaseMemoryUsagePercentage", "Percent"), ("CurrItems", "Count"), ("IsMaster", "Count"),
    ("CPUUtilization", "Percent"), ("EngineCPUUtilization", "Percent"),
    ("NetworkBytesIn", "Bytes"), ("NetworkBytesOut", "Bytes"), ("NetworkPacketsIn", "Count"),
    ("NetworkPacketsOut", "Count"), ("NewConnections", "Count"), ("Evictions", "Count"),
    ("CacheHits", "Count"), ("CacheMisses", "Count"), ("GetTypeCmds", "Count"),
    ("SetTypeCmds", "Count"), ("ReplicationBytes", "Bytes"),
    ("NetworkBandwidthInAllowanceExceeded", "Count"),
    ("NetworkBandwidthOutAllowanceExceeded", "Count"),
]  # fmt: skip
T0 = 1_790_000_000.0


def write_agent_csv(path: Path, point_id: str, period: int, seed: int) -> int:
    """An agent-format metrics.csv of one hour for NODES nodes; returns its rows."""
    rng = np.random.default_rng(seed)
    ticks = HOURS_S // period
    per_tick = NODES * len(METRICS)
    n = ticks * per_tick
    jitter = rng.normal(0, 0.002 * period, ticks)
    tick_ts = T0 + np.arange(ticks) * period + np.abs(jitter)
    ts = np.repeat(tick_ts, per_tick) + np.tile(np.arange(per_tick) * 1e-4, ticks)
    measured = np.repeat(period + np.diff(jitter, prepend=jitter[0]), per_tick)
    node = np.tile(np.repeat(np.arange(NODES, dtype=np.int32), len(METRICS)), ticks)
    metric = np.tile(np.arange(len(METRICS), dtype=np.int32), ticks * NODES)
    scale = np.array([10, 5e7, 40, 5e4, 1, 60, 45, 3e7, 6e7, 2e5, 2e5, 1, 0, 1e5, 1e3, 1e5,
                      2.5e4, 0, 0, 0], dtype=np.float64)  # fmt: skip
    value = np.round(
        scale[metric]
        * rng.uniform(0.8, 1.2, n)
        * np.where(np.isin(metric, [7, 8, 9, 10, 11, 13, 14, 15, 16]), period, 1),
        6,
    )
    table = pa.table(
        {
            "timestamp": pa.array(np.char.mod("%.3f", ts)),
            "point_id": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([point_id])
            ),
            "node_id": pa.DictionaryArray.from_arrays(
                pa.array(node), pa.array([f"{point_id[:8]}-000{i + 1}" for i in range(NODES)])
            ),
            "metric": pa.DictionaryArray.from_arrays(
                pa.array(metric), pa.array([m for m, _ in METRICS])
            ),
            "value": pa.array(value),
            "unit": pa.DictionaryArray.from_arrays(
                pa.array(metric), pa.array([u for _, u in METRICS])
            ),
            "period_s": pa.array(np.round(measured, 3)),
        }
    )
    plain = pa.table(
        [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns],
        names=table.column_names,
    )
    pacsv.write_csv(plain, path, pacsv.WriteOptions(quoting_style="none"))
    return n


def make_campaign(root: Path, period: int) -> int:
    """RUN_DIR with points/<id>/{state/metrics.csv, item.json, load.json}; returns total rows."""
    from cachebench.campaign import CampaignSpec
    from cachebench.models import Latency, LoadResult, SecondSample

    spec = CampaignSpec.from_input(
        {
            "name": f"bench-export-{period}s",
            "target": "local",
            "engines": [{"engine": "redis", "versions": ["7.0"]}],
            "topologies": [{"cluster_mode": True, "shards": 3, "replicas": 0}],
            "node_types": ["local.small"],
            "workloads": [{"name": "w", "duration_seconds": HOURS_S, "warmup_seconds": 0}],
            "budget_usd": 0,
        }
    )
    (base,) = spec.points(load_tool="redis-benchmark")
    rows = 0
    for i in range(POINTS):
        point = base.model_copy(update={"id": f"{base.id}-{i:02d}", "index": i})
        pdir = root / "points" / point.id
        (pdir / "state").mkdir(parents=True)
        rows += write_agent_csv(pdir / "state" / "metrics.csv", point.id, period, seed=i)
        ops = 150_000.0 + 1000 * i
        load = LoadResult(
            tool="redis-benchmark", started_at=T0, elapsed_seconds=HOURS_S,
            requests=int(ops * HOURS_S), ops_per_sec=ops, set_ops_per_sec=ops / 5,
            get_ops_per_sec=ops * 4 / 5, kb_per_sec=ops * 0.3,
            latency=Latency(p50=0.2, p90=0.3, p99=0.5 + i / 100, p99_9=1.2, max=4.0, mean=0.22),
            series=[SecondSample(second=s, ops_per_sec=ops) for s in range(HOURS_S)],
        )  # fmt: skip
        # As the DAG leaves a point before export: load.json from collect, the
        # point in the task's item.
        (pdir / "load.json").write_text(load.model_dump_json())
        (pdir / "item.json").write_text(json.dumps({"point": point.model_dump(mode="json")}))
    return rows


def child(run_dir: Path, mode: str) -> None:
    """The timed part (run in its own process); prints a JSON of timings on stdout."""
    t_start = time.perf_counter()
    out: dict[str, float] = {}
    if mode == "floor":
        import pyarrow.parquet as pq

        for pdir in sorted((run_dir / "points").iterdir()):
            table = pacsv.read_csv(pdir / "state" / "metrics.csv")
            pq.write_table(table, pdir / "floor.parquet", compression="zstd")
        out["total"] = time.perf_counter() - t_start
        print(json.dumps(out))
        return
    from cachebench.catalogue import load_instance_specs
    from cachebench.models import LoadResult, Point
    from cachebench.report import export, plots
    from cachebench.report.build import build_report

    out["imports"] = time.perf_counter() - t_start
    parts = {"read_agent_csv": 0.0, "write_metrics": 0.0, "figures drawn": 0.0}
    parts["figures saved"] = 0.0

    def timed(owner, name, label):
        is_dict = isinstance(owner, dict)
        original = owner[name] if is_dict else getattr(owner, name)

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                parts[label] += time.perf_counter() - t

        if is_dict:
            owner[name] = wrapper
        else:
            setattr(owner, name, wrapper)

    timed(export, "write_metrics", "write_metrics")
    timed(plots, "save", "figures saved")
    timed(plots, "point_chart", "figures drawn")
    for name in list(plots.CAMPAIGN_FIGURES):
        timed(plots.CAMPAIGN_FIGURES, name, "figures drawn")
    spec = load_instance_specs()[("local", "local.small")]
    t = time.perf_counter()
    for pdir in sorted((run_dir / "points").iterdir()):
        item = json.loads((pdir / "item.json").read_text())
        point = Point.model_validate(item["point"])
        # As steps.export reads it.
        load = LoadResult.model_validate_json((pdir / "load.json").read_text())
        t1 = time.perf_counter()
        m = export.read_agent_csv(
            pdir / "state" / "metrics.csv", point.id, start=T0, end=T0 + HOURS_S + 60
        )
        parts["read_agent_csv"] += time.perf_counter() - t1
        export.export_point(point, m, load, pdir, spec)
    out["export (all points)"] = time.perf_counter() - t
    out |= {f"  of which {k}": v for k, v in parts.items()}
    t = time.perf_counter()
    build_report(run_dir, {("local", "local.small"): spec})
    out["build_report"] = time.perf_counter() - t
    out["total"] = time.perf_counter() - t_start
    out["without figures"] = out["total"] - parts["figures drawn"] - parts["figures saved"]
    print(json.dumps(out))


def run_child(run_dir: Path, mode: str) -> tuple[dict[str, float], float]:
    """(timings, peak RSS in GiB) of one child, the peak from wait4's rusage."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "plugins")}
    with tempfile.TemporaryFile() as fh:
        proc = subprocess.Popen(
            [sys.executable, __file__, "child", str(run_dir), mode], stdout=fh, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise RuntimeError(f"export child ({mode}) failed: exit {proc.returncode}")
        fh.seek(0)
        timings = json.loads(fh.read().decode().strip().splitlines()[-1])
    # CPU seconds (user + sys, all threads) of the child: on a shared box the wall
    # time also counts waiting for a core, this does not.
    timings["cpu"] = usage.ru_utime + usage.ru_stime
    return timings, usage.ru_maxrss / 2**20


def measure(repeats: int = 2) -> list:
    from common import Row, median

    rows = []
    for period, limit in ((1, 60.0), (60, None)):
        with tempfile.TemporaryDirectory(prefix=f"cb-export-{period}s-") as tmp:
            run_dir = Path(tmp) / "run"
            t = time.perf_counter()
            n = make_campaign(run_dir, period)
            # The generated files (1 GB at 1 s) go to disk now, not while a child is timed.
            os.sync()
            print(f"  export {period}s: generated {n:,} rows in {time.perf_counter() - t:.1f}s",
                  flush=True)  # fmt: skip
            full, floor, peaks, nofig, cpu, last = [], [], [], [], [], {}
            for i in range(repeats):
                for mode in ("full", "floor") if i % 2 == 0 else ("floor", "full"):
                    timings, peak = run_child(run_dir, mode)
                    if mode == "full":
                        full.append(timings["total"])
                        peaks.append(peak)
                        nofig.append(timings["without figures"])
                        cpu.append(timings.pop("cpu"))
                        last = timings
                    else:
                        floor.append(timings["total"])
                    print(f"  export {period}s {mode} #{i}: {timings['total']:.2f}s, "
                          f"peak RSS {peak:.2f} GiB, load average {os.getloadavg()[0]:.2f}",
                          flush=True)  # fmt: skip
        skip = ("total", "without figures")
        breakdown = "; ".join(f"{k.strip()} {v:.2f}s" for k, v in last.items() if k not in skip)
        target = f"< {limit:g} s, < 2 GiB" if limit else "(info)"
        ok = (median(full) < limit and max(peaks) < 2.0) if limit else None
        rows.append(
            Row("5 export", f"{POINTS} points x 1 h @ {period}s: export + report", median(full),
                median(floor), "s", target, ok,
                f"{n:,} rows; peak RSS {max(peaks):.2f} GiB; child CPU (user+sys) median "
                f"{median(cpu):.2f}s; baseline = pyarrow read CSV + "
                f"write parquet; {repeats} A/B runs; {breakdown}", full + floor)
        )  # fmt: skip
        rows.append(
            Row("5 export", "  same, without drawing/saving figures", median(nofig),
                median(floor), "s", f"(< {limit:g} s)" if limit else "(info)", None,
                "total minus per-point and campaign figures (PNG + PDF); write_metrics runs "
                "in a thread beside the figures, so the breakdown's parts overlap", nofig)
        )  # fmt: skip
    return rows


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "child":
    child(Path(sys.argv[2]), sys.argv[3])
