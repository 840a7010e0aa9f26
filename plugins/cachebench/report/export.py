"""Per-point export: the metric long table, its files, figures and one summary row.

The long table (:data:`cachebench.models.METRIC_COLUMNS`) has one row per
(timestamp, node, metric) with CloudWatch AWS/ElastiCache metric names and
units. Counters (NetworkBytes*, Evictions, ...) are summed over ``period_s``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cachebench.models import METRIC_COLUMNS, LoadResult, Point
from cachebench.report import plots

if TYPE_CHECKING:
    from cachebench.specs import InstanceSpec

CATEGORICAL = ("point_id", "node_id", "metric", "unit")
TIMESTAMP_DTYPE = "datetime64[ns, UTC]"
NET_IN, NET_OUT = "NetworkBytesIn", "NetworkBytesOut"
#: Metrics summed over ``period_s`` (everything else is a gauge).
COUNTERS = frozenset(
    {
        "NetworkBytesIn",
        "NetworkBytesOut",
        "NetworkBandwidthInAllowanceExceeded",
        "NetworkBandwidthOutAllowanceExceeded",
        "NetworkPacketsIn",
        "NetworkPacketsOut",
        "NetworkPacketsPerSecondAllowanceExceeded",
        "NewConnections",
        "Evictions",
        "CacheHits",
        "CacheMisses",
        "GetTypeCmds",
        "SetTypeCmds",
        "ReplicationBytes",
    }
)
ALLOWANCE = (
    "NetworkBandwidthInAllowanceExceeded",
    "NetworkBandwidthOutAllowanceExceeded",
)
_DICT = pa.dictionary(pa.int32(), pa.string())
_CSV_BATCH = 500_000
_AGENT_TYPES = {
    "timestamp": pa.float64(),
    "node_id": _DICT,
    "metric": _DICT,
    "value": pa.float64(),
    "unit": _DICT,
    "period_s": pa.float64(),
}


def empty_metrics() -> pd.DataFrame:
    """A zero-row frame with the long-table schema."""
    return normalize_metrics(pd.DataFrame({c: [] for c in METRIC_COLUMNS}))


def normalize_metrics(df: pd.DataFrame) -> pd.DataFrame:
    """Coerce a long table to the schema: UTC timestamps, categoricals, float64, int32.

    A numeric ``timestamp`` is read as unix seconds; a naive one as UTC.
    """
    missing = [c for c in METRIC_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"metric table lacks columns {missing}")
    out = df.loc[:, METRIC_COLUMNS]
    ts = out["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype) and not pd.api.types.is_datetime64_dtype(ts):
        ts = pd.to_datetime(ts.astype("float64"), unit="s", utc=True)
    elif getattr(ts.dt, "tz", None) is None:
        ts = ts.dt.tz_localize("UTC")
    cols: dict[str, Any] = {"timestamp": ts.astype(TIMESTAMP_DTYPE)}
    for c in CATEGORICAL:
        s = out[c]
        if isinstance(s.dtype, pd.CategoricalDtype):
            # Categories as plain strings, unused ones dropped.
            cols[c] = s.cat.remove_unused_categories()
        else:
            cols[c] = s.astype("str").astype("category")
    cols["value"] = out["value"].astype("float64")
    cols["period_s"] = out["period_s"].astype("float64").round().astype("int32")
    return pd.DataFrame(cols, index=pd.RangeIndex(len(out)))[METRIC_COLUMNS]


def trim_window(df: pd.DataFrame, start: float | None = None, end: float | None = None):
    """Rows whose timestamp lies in ``[start, end]`` (unix seconds; None = open)."""
    mask = np.ones(len(df), dtype=bool)
    if start is not None:
        mask &= (df["timestamp"] >= pd.Timestamp(start, unit="s", tz="UTC")).to_numpy()
    if end is not None:
        mask &= (df["timestamp"] <= pd.Timestamp(end, unit="s", tz="UTC")).to_numpy()
    return df.loc[mask].reset_index(drop=True)


def read_agent_csv(
    path: str | Path,
    point_id: str,
    start: float | None = None,
    end: float | None = None,
) -> pd.DataFrame:
    """Read the local agent's ``metrics.csv`` into the long table of ``point_id``.

    ``start``/``end`` (unix seconds, inclusive) trim the window, e.g. to drop warm-up.
    A ``point_id`` column in the file is ignored. The agent records the measured
    sample interval (e.g. 1.002 s; 0 on the first, gauge-only sample); it becomes
    the whole-second ``period_s`` (at least 1) and counters are rescaled to it, so
    rates such as Gbps stay exact.
    """
    path = Path(path)
    if path.stat().st_size == 0:
        return empty_metrics()
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types=_AGENT_TYPES, include_columns=list(_AGENT_TYPES)
        ),
    )
    ts = table["timestamp"]
    mask = None
    if start is not None:
        mask = pc.greater_equal(ts, start)
    if end is not None:
        upper = pc.less_equal(ts, end)
        mask = upper if mask is None else pc.and_(mask, upper)
    if mask is not None:
        table = table.filter(mask)
    raw = table.to_pandas()
    measured = raw["period_s"].to_numpy(dtype="float64")
    period = np.maximum(np.rint(measured), 1.0)
    counter = raw["metric"].isin(COUNTERS).to_numpy() & (measured > 0)
    scale = np.where(counter, period / np.where(measured > 0, measured, 1.0), 1.0)
    raw["value"] = raw["value"].to_numpy() * scale
    raw["period_s"] = period
    raw["point_id"] = pd.Categorical.from_codes(np.zeros(len(raw), dtype="int8"), [point_id])
    return normalize_metrics(raw)


def write_metrics(df: pd.DataFrame, out_dir: str | Path) -> dict[str, str]:
    """Write ``metrics.parquet`` (zstd) and ``metrics.csv`` (ISO UTC timestamps) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(normalize_metrics(df), preserve_index=False)
    parquet, csv = out / "metrics.parquet", out / "metrics.csv"
    pq.write_table(table, parquet, compression="zstd")
    # CSV in slices: strings for categoricals and ISO timestamps are built per batch.
    plain = pa.schema(
        [
            pa.field("timestamp", pa.timestamp("us", tz="UTC"))
            if name == "timestamp"
            else pa.field(name, pa.string())
            if name in CATEGORICAL
            else table.schema.field(name).remove_metadata()
            for name in METRIC_COLUMNS
        ]
    )
    with pacsv.CSVWriter(csv, plain) as writer:
        for batch in table.to_batches(max_chunksize=_CSV_BATCH):
            cols = [
                batch.column(name).cast(plain.field(name).type, safe=False)
                for name in METRIC_COLUMNS
            ]
            writer.write_batch(pa.record_batch(cols, schema=plain))
    return {"metrics_parquet": str(parquet), "metrics_csv": str(csv)}


def network_gbps(df: pd.DataFrame) -> pd.DataFrame:
    """NetworkBytesIn/Out as Gbps (bytes * 8 / period_s / 1e9) per point, node and timestamp.

    Columns: point_id, node_id, timestamp, period_s, in_gbps, out_gbps.
    """
    cols = ["point_id", "node_id", "timestamp", "period_s"]
    sel = df.loc[df["metric"].isin([NET_IN, NET_OUT]).to_numpy()]
    if sel.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype=df[c].dtype if c in df else "float64") for c in cols}
            | {
                "in_gbps": pd.Series(dtype="float64"),
                "out_gbps": pd.Series(dtype="float64"),
            }
        )
    frame = sel[cols].assign(
        direction=sel["metric"].astype("str").map({NET_IN: "in_gbps", NET_OUT: "out_gbps"}),
        gbps=sel["value"].to_numpy() * 8.0 / sel["period_s"].to_numpy() / 1e9,
    )
    wide = (
        frame.groupby([*cols, "direction"], observed=True, sort=True)["gbps"]
        .mean()
        .unstack("direction")
        .reindex(columns=["in_gbps", "out_gbps"])
        .reset_index()
    )
    wide.columns.name = None
    return wide


def _for_point(metrics: pd.DataFrame, point_id: str) -> pd.DataFrame:
    """The rows of ``point_id`` (all rows if the table holds only that point)."""
    if metrics.empty:
        return metrics
    ids = metrics["point_id"].astype("str")
    if (ids == point_id).all():
        return metrics
    return metrics.loc[(ids == point_id).to_numpy()].reset_index(drop=True)


def export_point(
    point: Point,
    metrics: pd.DataFrame,
    load: LoadResult,
    out_dir: Path,
    spec: InstanceSpec | None = None,
) -> dict[str, str]:
    """Write one point's results: metrics, ``load.json``, ``point.json`` and figures.

    Figures (``figures/<name>.png|pdf``): throughput, cpu, network, memory.
    Returns ``{key: path}`` of every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    m = normalize_metrics(_for_point(metrics, point.id))
    paths = write_metrics(m, out)
    (out / "load.json").write_text(load.model_dump_json(indent=2))
    (out / "point.json").write_text(point.model_dump_json(indent=2))
    paths |= {"load": str(out / "load.json"), "point": str(out / "point.json")}
    t0, title = load.started_at, f"{point.id}"
    figures = {
        "throughput": plots.throughput_figure(load, title),
        "cpu": plots.cpu_figure(m, t0, title),
        "network": plots.network_figure(network_gbps(m), spec, t0, title),
        "memory": plots.memory_figure(m, t0, title),
    }
    for name, fig in figures.items():
        paths |= plots.save(fig, out / "figures", name)
    return paths


def _num(x: Any) -> float | None:
    """A finite float, or None for missing/NaN."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _node_stat(stats: pd.DataFrame, metric: str, col: str, how: str) -> float | None:
    """Aggregate per-node ``col`` of ``metric`` across nodes with ``how`` (max/sum)."""
    if metric not in stats.index.get_level_values(0):
        return None
    return _num(getattr(stats.loc[metric, col], how)())


def _first_exceeded_s(m: pd.DataFrame, t0: float) -> float | None:
    """Seconds from the load's start to the first period any node exceeded its
    bandwidth allowance (the burst ran out; CloudWatch's *AllowanceExceeded > 0)."""
    if m.empty:
        return None
    hit = m.loc[(m["metric"].isin(ALLOWANCE) & (m["value"] > 0)).to_numpy()]
    if hit.empty:
        return None
    ts = hit["timestamp"].min()
    first = ts.timestamp() if hasattr(ts, "timestamp") else float(ts)  # datetime or unix s
    return max(0.0, round(first - t0, 1))


def point_summary(
    point: Point,
    metrics: pd.DataFrame,
    load: LoadResult,
    spec: InstanceSpec | None = None,
) -> dict[str, Any]:
    """One summary row for a point.

    Node metrics are reduced per node first, then across nodes: ``*_mean`` is the
    busiest node's mean, ``*_max``/``*_peak`` the highest node's maximum.
    ``seconds_above_baseline`` is the busiest node's time with in or out above the
    baseline (burst credit in use); counters (evictions, allowance) are summed.
    ``ops_per_dollar`` = ops_per_sec * 3600 / cluster_usd_hour.
    """
    m = _for_point(metrics, point.id)
    lat = load.latency
    row: dict[str, Any] = {
        "point_id": point.id,
        "index": point.index,
        "campaign": point.campaign,
        "target": point.target,
        "engine": point.engine,
        "version": point.version,
        "topology": point.topology.label,
        "cluster_mode": point.topology.cluster_mode,
        "shards": point.topology.shards,
        "replicas": point.topology.replicas,
        "nodes": point.topology.nodes,
        "node_type": point.node_type,
        "workload": point.workload.name,
        "load_generators": point.load_generators,
        "ops_per_sec": load.ops_per_sec,
        "kb_per_sec": load.kb_per_sec,
        "p50_ms": lat.p50,
        "p90_ms": lat.p90,
        "p99_ms": lat.p99,
        "p99_9_ms": lat.p99_9,
        "max_ms": lat.max,
        "requests": load.requests,
        "errors": load.errors,
    }
    if m.empty:
        stats = pd.DataFrame(columns=["mean", "max", "sum"])
    else:
        stats = m.groupby(["metric", "node_id"], observed=True)["value"].agg(["mean", "max", "sum"])
    for key, metric in (
        ("cpu", "CPUUtilization"),
        ("engine_cpu", "EngineCPUUtilization"),
    ):
        row[f"{key}_mean"] = _node_stat(stats, metric, "mean", "max")
        row[f"{key}_max"] = _node_stat(stats, metric, "max", "max")

    net = network_gbps(m)
    baseline = spec.network_baseline_gbps if spec else None
    burst = spec.network_burst_gbps if spec else None
    per_node = net.groupby("node_id", observed=True)[["in_gbps", "out_gbps"]].agg(["mean", "max"])
    for d in ("in", "out"):
        col = f"{d}_gbps"
        row[f"net_{d}_gbps_mean"] = _num(per_node[(col, "mean")].max()) if len(net) else None
        row[f"net_{d}_gbps_peak"] = _num(per_node[(col, "max")].max()) if len(net) else None
    peaks = [v for v in (row["net_in_gbps_peak"], row["net_out_gbps_peak"]) if v is not None]
    peak = max(peaks) if peaks else None
    row["baseline_gbps"], row["burst_gbps"] = baseline, burst
    row["peak_pct_of_baseline"] = 100.0 * peak / baseline if peak is not None and baseline else None
    if baseline and len(net):
        above = (net[["in_gbps", "out_gbps"]].max(axis=1) > baseline).to_numpy()
        secs = net.loc[above].groupby("node_id", observed=True)["period_s"].sum()
        row["seconds_above_baseline"] = float(secs.max()) if len(secs) else 0.0
    else:
        row["seconds_above_baseline"] = None
    allowance = [_node_stat(stats, a, "sum", "sum") for a in ALLOWANCE]
    known = [a for a in allowance if a is not None]
    row["allowance_exceeded"] = sum(known) if known else None
    row["allowance_first_exceeded_s"] = _first_exceeded_s(m, load.started_at)
    row["memory_peak_bytes"] = _node_stat(stats, "BytesUsedForCache", "max", "max")
    row["memory_peak_pct"] = _node_stat(stats, "DatabaseMemoryUsagePercentage", "max", "max")
    row["evictions"] = _node_stat(stats, "Evictions", "sum", "sum")

    price = spec.price_usd_hour if spec else None
    row["vcpu"] = spec.vcpu if spec else None
    row["memory_gib"] = spec.memory_gib if spec else None
    row["price_usd_hour_node"] = price
    row["cluster_usd_hour"] = price * point.topology.nodes if price is not None else None
    cost = row["cluster_usd_hour"]
    row["ops_per_dollar"] = load.ops_per_sec * 3600.0 / cost if cost else None
    return row


#: Column order of :func:`point_summary` rows (and of ``summary.csv``).
SUMMARY_COLUMNS = [
    "point_id", "index", "campaign", "target", "engine", "version", "topology",
    "cluster_mode", "shards", "replicas", "nodes", "node_type", "workload",
    "load_generators", "ops_per_sec", "kb_per_sec", "p50_ms", "p90_ms", "p99_ms",
    "p99_9_ms", "max_ms", "requests", "errors", "cpu_mean", "cpu_max",
    "engine_cpu_mean", "engine_cpu_max", "net_in_gbps_mean", "net_in_gbps_peak",
    "net_out_gbps_mean", "net_out_gbps_peak", "baseline_gbps", "burst_gbps",
    "peak_pct_of_baseline", "seconds_above_baseline", "allowance_exceeded",
    "allowance_first_exceeded_s",
    "memory_peak_bytes", "memory_peak_pct", "evictions", "vcpu", "memory_gib",
    "price_usd_hour_node", "cluster_usd_hour", "ops_per_dollar",
]  # fmt: skip
