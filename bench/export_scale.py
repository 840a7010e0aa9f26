"""Figure 5, export at scale: 50 points x 1 h x 20 metrics x 3 nodes, then the report.

The campaign is planned as steps.plan plans one (campaign.json, prices.json: one
3-shard deployment, 50 workloads, a run each) and each run left as collect leaves it
(load.json). Each point's metrics.csv is written as the agent writes it (same columns,
one row per tick x node x metric, measured period around 1 s; or 60 s, CloudWatch's
period). The timed part runs in a child process (`python bench/export_scale.py
child ROOT MODE`): per run what the DAG's export step does (read_agent_csv of
the measured window + export_point, its dashboard left for the report), then
build_report (which draws the dashboards). Its peak RSS comes
from os.wait4 (the child's own ru_maxrss). Baseline, in the same run and
alternated with it: a child that only reads each CSV with pyarrow and writes
it as parquet (the I/O floor). Target at 1 s: under 60 s and 2 GiB (an export
must never hold up a campaign; it need not win a race); the 60 s period is
information.
"""

from __future__ import annotations

import csv
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

from common import scaled

POINTS, HOURS_S, NODES = scaled(50, 3), scaled(3600, 300), 3
SPAN = "1 h" if HOURS_S == 3600 else f"{HOURS_S} s"
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
REPEATS = scaled(2, 1)


def write_agent_csv(path: Path, deployment_id: str, period: int, seed: int) -> int:
    """An agent-format metrics.csv of HOURS_S for NODES nodes; returns its rows."""
    from cachebench.targets.local.servers import plan_nodes

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
            # the agent's point_id column holds its deployment's id
            "point_id": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([deployment_id])
            ),
            "node_id": pa.DictionaryArray.from_arrays(
                pa.array(node), pa.array([x.node_id for x in plan_nodes(NODES, 0, 1024)])
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
    """root/run (a planned campaign, each run's load.json) and root/agent/<point>.csv;
    returns the CSVs' rows."""
    from cachebench import pricing
    from cachebench.campaign import CampaignPlan, CampaignSpec
    from cachebench.models import Latency, LoadResult, SecondSample
    from cachebench.workspace import RunDir

    spec = CampaignSpec.from_input(
        {
            "name": f"bench-export-{period}s",
            "target": "local",
            "engines": [{"engine": "redis", "versions": ["7.0"]}],
            "topologies": [{"cluster_mode": True, "shards": NODES, "replicas": 0}],
            "node_types": ["local.small"],
            # POINTS points (one per workload) on one deployment, a run each
            "workloads": [
                {
                    "name": f"w{i:02d}",
                    "value_size": 64 * (1 + i % 8),
                    "duration_seconds": HOURS_S,
                    "warmup_seconds": 0,
                }
                for i in range(POINTS)
            ],
            "repetitions": 1,
            "max_points": POINTS,
            "budget_usd": 0,
        }
    )
    run = RunDir(root / "run")
    plans = spec.plans("bench", str(run.path), "redis-benchmark")
    run.write_json(
        "campaign.json",
        CampaignPlan(spec=spec, load_tool="redis-benchmark", estimate_usd=0.0, deployments=plans),
    )
    pricing.write_run_prices(run.path, spec.node_prices())
    rows = 0
    for i, r in enumerate(r for d in plans for r in d.runs):
        point = r.point
        run.point(point.id).write_json("point.json", point)
        src = root / "agent" / f"{point.id}.csv"
        src.parent.mkdir(parents=True, exist_ok=True)
        rows += write_agent_csv(src, point.deployment_id, period, seed=i)
        ops = 150_000.0 + 1000 * i
        load = LoadResult(
            tool="redis-benchmark", started_at=T0, elapsed_seconds=HOURS_S,
            requests=int(ops * HOURS_S), ops_per_sec=ops, set_ops_per_sec=ops / 5,
            get_ops_per_sec=ops * 4 / 5, kb_per_sec=ops * 0.3,
            latency=Latency(p50=0.2, p90=0.3, p99=0.5 + i / 100, p99_9=1.2, max=4.0, mean=0.22),
            series=[SecondSample(second=s, ops_per_sec=ops) for s in range(HOURS_S)],
        )  # fmt: skip
        run.point(point.id).rep(r.repetition).write_json("load.json", load)  # as collect does
    return rows


def child(root: Path, mode: str) -> None:
    """The timed part (run in its own process); prints a JSON of timings on stdout."""
    t_start = time.perf_counter()
    out: dict[str, float] = {}
    if mode == "floor":
        import pyarrow.parquet as pq

        for src in sorted((root / "agent").glob("*.csv")):
            table = pacsv.read_csv(src)
            pq.write_table(table, src.with_suffix(".parquet"), compression="zstd")
        out["total"] = time.perf_counter() - t_start
        print(json.dumps(out))
        return
    from cachebench.campaign import CampaignPlan
    from cachebench.catalogue import load_instance_specs
    from cachebench.models import LoadResult
    from cachebench.report import export, plots
    from cachebench.report.build import build_report
    from cachebench.workspace import RunDir

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
    run = RunDir(root / "run")
    t = time.perf_counter()
    for d in CampaignPlan.read(run.path).deployments:
        for r in d.runs:
            rdir = run.point(r.point.id).rep(r.repetition).path
            # As steps' export reads it: the run's load.json, the agent's CSV of its window.
            load = LoadResult.model_validate_json((rdir / "load.json").read_text())
            t1 = time.perf_counter()
            m = export.read_agent_csv(
                root / "agent" / f"{r.point.id}.csv", r.point.id, start=T0, end=T0 + HOURS_S + 60
            )
            parts["read_agent_csv"] += time.perf_counter() - t1
            export.export_point(r.point, m, load, rdir, spec, figures=False)  # the report draws
    out["export (all points)"] = time.perf_counter() - t
    t = time.perf_counter()
    build_report(run.path, {("local", "local.small"): spec})
    out["build_report"] = time.perf_counter() - t
    out["total"] = time.perf_counter() - t_start
    # after the report: it draws the dashboards (the parts span export and report)
    out |= {f"  of which {k}": v for k, v in parts.items()}
    with (run.path / "runs.csv").open() as fh:
        ok = sum(row["status"] == "ok" for row in csv.DictReader(fh))
    if ok != POINTS:  # a report of fewer runs would time less than the figure says
        raise RuntimeError(f"the report has {ok} runs ok of {POINTS}: see {run.path}")
    out["without figures"] = out["total"] - parts["figures drawn"] - parts["figures saved"]
    print(json.dumps(out))


def run_child(root: Path, mode: str) -> tuple[dict[str, float], float]:
    """(timings, peak RSS in GiB) of one child, the peak from wait4's rusage."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "plugins")}
    with tempfile.TemporaryFile() as fh:
        proc = subprocess.Popen(
            [sys.executable, __file__, "child", str(root), mode], stdout=fh, env=env
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


def measure(repeats: int = REPEATS) -> list:
    from common import Row, median

    rows = []
    for period, limit in ((1, 60.0), (60, None)):
        with tempfile.TemporaryDirectory(prefix=f"cb-export-{period}s-") as tmp:
            root = Path(tmp)
            t = time.perf_counter()
            n = make_campaign(root, period)
            # The generated files (1 GB at 1 s) go to disk now, not while a child is timed.
            os.sync()
            print(f"  export {period}s: generated {n:,} rows in {time.perf_counter() - t:.1f}s",
                  flush=True)  # fmt: skip
            full, floor, peaks, nofig, cpu, last = [], [], [], [], [], {}
            for i in range(repeats):
                for mode in ("full", "floor") if i % 2 == 0 else ("floor", "full"):
                    timings, peak = run_child(root, mode)
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
            Row("5 export", f"{POINTS} points x {SPAN} @ {period}s: export + report", median(full),
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
