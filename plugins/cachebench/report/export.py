"""Per-point export: the metric long table, its files, figures and one summary row.

The long table (:data:`cachebench.models.METRIC_COLUMNS`) has one row per
(timestamp, node, metric) with CloudWatch AWS/ElastiCache metric names and
units. Counters (NetworkBytes*, Evictions, ...) are summed over ``period_s``.

A point's folder gets ``metrics.parquet`` and ``metrics.csv`` (the full table),
``load.json``, ``point.json``, ``metrics_summary.json`` (its summary statistics,
computed from the full table, for the report) and ``figures/dashboard.png|pdf``.
Sized for 50 points x 1 h at 1 s (10.8M rows) in well under a minute: Arrow
writes the CSV, numpy does the per-node reductions, only the figure is
downsampled (see :mod:`cachebench.report.plots`).
"""

from __future__ import annotations

import gc
import json
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from cachebench.models import METRIC_COLUMNS, LoadResult, Point
from cachebench.report import palette, plots

if TYPE_CHECKING:
    from cachebench.pricing import Price
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
_CSV_THREADS_FROM = 4 * 2**20  # bytes
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
    if _is_normal(df):
        return df  # export normalises the same table several times: make that free
    # A fresh 0..n-1 index: the columns below are aligned on it (a filtered or
    # concatenated frame's own index would misalign or repeat).
    out = df.loc[:, METRIC_COLUMNS].reset_index(drop=True)
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


def _is_normal(df: pd.DataFrame) -> bool:
    """Whether ``df`` already is exactly what :func:`normalize_metrics` would return."""
    if list(df.columns) != METRIC_COLUMNS or not isinstance(df.index, pd.RangeIndex):
        return False
    if df.index.start != 0 or df.index.step != 1:
        return False
    if str(df["timestamp"].dtype) != TIMESTAMP_DTYPE or df["value"].dtype != np.float64:
        return False
    if df["period_s"].dtype != np.int32:
        return False
    for c in CATEGORICAL:
        s = df[c]
        if not isinstance(s.dtype, pd.CategoricalDtype):
            return False
        codes = s.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(s.cat.categories))
        if not used.all() or not all(isinstance(v, str) for v in s.cat.categories):
            return False
    return True


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
    size = path.stat().st_size
    if size == 0:
        return empty_metrics()
    table = pacsv.read_csv(
        path,
        # Arrow's thread pool pays off on large files only (1 h at 1 s is ~20 MB).
        read_options=pacsv.ReadOptions(use_threads=size > _CSV_THREADS_FROM),
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
    # The normalised table built column by column (what normalize_metrics of the
    # whole frame gives, at a fraction of the pandas overhead on small files).
    cat = {c: _categorical(table.column(c)) for c in ("node_id", "metric", "unit")}
    measured = table.column("period_s").to_numpy().astype("float64", copy=False)
    period = np.maximum(np.rint(measured), 1.0)
    metric = cat["metric"]
    is_counter = np.array([str(c) in COUNTERS for c in metric.categories] + [False])
    counter = is_counter[metric.codes] & (measured > 0)  # code -1 (missing) -> False
    scale = np.where(counter, period / np.where(measured > 0, measured, 1.0), 1.0)
    ts = pd.to_datetime(table.column("timestamp").to_numpy(), unit="s", utc=True)
    n = table.num_rows
    point = pd.Categorical.from_codes(np.zeros(n, dtype="int8"), [point_id])
    out = pd.DataFrame(
        {
            "timestamp": ts.astype(TIMESTAMP_DTYPE),
            "point_id": point.remove_unused_categories(),
            "node_id": cat["node_id"],
            "metric": metric,
            "value": table.column("value").to_numpy().astype("float64", copy=False) * scale,
            "unit": cat["unit"],
            "period_s": period.astype("int32"),
        },
        index=pd.RangeIndex(n),
    )
    return normalize_metrics(out)  # a no-op when the table came out normal, as it should


def _categorical(col: pa.ChunkedArray) -> pd.Categorical:
    """A dictionary column as a pandas Categorical of plain strings, unused values dropped."""
    values = col.to_pandas().array
    if not isinstance(values, pd.Categorical):
        values = pd.Categorical(values)
    values = values.remove_unused_categories()
    cats = values.categories
    if not all(isinstance(c, str) for c in cats):
        values = values.rename_categories([str(c) for c in cats])
    return values


def _csv_table(table: pa.Table) -> pa.Table:
    """``table`` as ``metrics.csv`` holds it: the timestamp as text, the rest as is.

    The timestamp becomes ISO 8601 UTC with microseconds and a "Z"
    (``2023-11-14 22:13:20.000000Z``), formatted from the naive UTC wall time:
    Arrow's CSV writer formats a zoned timestamp through the time zone
    database, value by value (~7 s per million rows here), a naive one ~10x
    faster. As text it is quoted like every other string cell.
    """
    i = table.schema.get_field_index("timestamp")
    ts = table.column(i)
    if pa.types.is_timestamp(ts.type):
        naive = ts.cast(pa.timestamp("us", tz=ts.type.tz), safe=False).cast(pa.timestamp("us"))
        text = pc.binary_join_element_wise(naive.cast(pa.string()), "Z", "")
        table = table.set_column(i, "timestamp", text)
    return table


def write_metrics(df: pd.DataFrame, out_dir: str | Path) -> dict[str, str]:
    """Write ``metrics.parquet`` (zstd) and ``metrics.csv`` (pyarrow's CSV writer) to ``out_dir``.

    The CSV has a quoted header, quoted strings (node, metric, unit, the
    timestamp: see :func:`_csv_table`), numbers as Arrow formats them
    (shortest round-trip floats, ``nan``, ``inf``) and "\\n" line ends.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(normalize_metrics(df), preserve_index=False)
    parquet, csv = out / "metrics.parquet", out / "metrics.csv"
    pq.write_table(table, parquet, compression="zstd")
    # Formatting 64k rows per batch (default 1k) costs a quarter less.
    pacsv.write_csv(_csv_table(table), csv, pacsv.WriteOptions(batch_size=65_536))
    return {"metrics_parquet": str(parquet), "metrics_csv": str(csv)}


def network_gbps(df: pd.DataFrame) -> pd.DataFrame:
    """NetworkBytesIn/Out as Gbps (bytes * 8 / period_s / 1e9) per point, node and timestamp.

    Columns: point_id, node_id, timestamp, period_s, in_gbps, out_gbps; one row per
    (point_id, node_id, timestamp, period_s), sorted by them; a direction's duplicate
    samples are averaged, a missing one is NaN. (What a pandas groupby-mean-unstack
    gives, in numpy: that costs ~10x more on a point's few thousand rows.)
    """
    cols = ["point_id", "node_id", "timestamp", "period_s"]
    metric = df["metric"] if "metric" in df else pd.Series([], dtype="str")
    is_out = (metric == NET_OUT).to_numpy()
    sel = np.flatnonzero((metric == NET_IN).to_numpy() | is_out)
    if not len(sel):
        return pd.DataFrame(
            {c: pd.Series(dtype=df[c].dtype if c in df else "float64") for c in cols}
            | {
                "in_gbps": pd.Series(dtype="float64"),
                "out_gbps": pd.Series(dtype="float64"),
            }
        )
    sub = df.iloc[sel]
    keys = [pd.factorize(sub[c], sort=True) for c in cols]  # codes follow the sort order
    codes = np.stack([k for k, _ in keys])
    keep = (codes >= 0).all(axis=0)  # as groupby: rows with a missing key are dropped
    codes, out_dir = codes[:, keep], is_out[sel][keep]
    gbps = (
        sub["value"].to_numpy(dtype="float64")[keep]
        * 8.0
        / sub["period_s"].to_numpy(dtype="float64")[keep]
        / 1e9
    )
    order = np.lexsort(codes[::-1])
    codes, out_dir, gbps = codes[:, order], out_dir[order], gbps[order]
    new = np.r_[True, (codes[:, 1:] != codes[:, :-1]).any(axis=0)]
    group, first = np.cumsum(new) - 1, np.flatnonzero(new)
    n = len(first)
    wide: dict[str, Any] = {
        c: uniques.take(codes[i, first])
        for i, (c, (_, uniques)) in enumerate(zip(cols, keys, strict=True))
    }
    for name, rows in (("in_gbps", ~out_dir), ("out_gbps", out_dir)):
        rows = rows & ~np.isnan(gbps)  # mean skips NaN
        total = np.bincount(group[rows], weights=gbps[rows], minlength=n)
        count = np.bincount(group[rows], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            wide[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return pd.DataFrame({c: np.asarray(v) if c.endswith("_gbps") else v for c, v in wide.items()})


def _for_point(metrics: pd.DataFrame, point_id: str) -> pd.DataFrame:
    """The rows of ``point_id`` (all rows if the table holds only that point)."""
    if metrics.empty:
        return metrics
    col = metrics["point_id"]
    if isinstance(col.dtype, pd.CategoricalDtype):
        # Compare the few categories, not every row's string.
        cats = [str(c) for c in col.cat.categories]
        if point_id not in cats:
            return metrics.iloc[0:0]
        codes = col.cat.codes.to_numpy()
        mine = codes == cats.index(point_id)
        if mine.all():
            return metrics
        return metrics.loc[mine].reset_index(drop=True)
    ids = col.astype("str")
    if (ids == point_id).all():
        return metrics
    return metrics.loc[(ids == point_id).to_numpy()].reset_index(drop=True)


def export_point(
    point: Point,
    metrics: pd.DataFrame,
    load: LoadResult,
    out_dir: Path,
    spec: InstanceSpec | None = None,
    figures: bool = True,
) -> dict[str, str]:
    """Write one point's results: metrics, ``load.json``, ``point.json``, the figure.

    ``figures=False`` leaves the figure for later (:func:`draw_dashboard`): a run's
    export happens between two runs, where every second counts against the campaign.

    The figure is one dashboard (``figures/dashboard.png|pdf``): throughput,
    latency, CPU, network in/out against the node type's baseline and burst,
    memory. The summary's metric statistics are computed here from the full
    table and kept in ``metrics_summary.json``, so the report need not read
    every point's metrics again. Returns ``{key: path}`` of every file written.
    """
    with gc_paused():
        return _export_point(point, metrics, load, Path(out_dir), spec, figures)


def draw_dashboard(
    point: Point, out_dir: Path, spec: InstanceSpec | None, colour: str | None = None
) -> dict[str, str]:
    """The dashboard of an exported run (its metrics.parquet and load.json), drawn now in
    its configuration's ``colour`` (default: the palette's first)."""
    out = Path(out_dir)
    m = normalize_metrics(pd.read_parquet(out / "metrics.parquet"))
    load = LoadResult.model_validate_json((out / "load.json").read_text())
    colour = colour or palette.CONFIGURATION_COLOURS[0]
    chart = plots.point_chart(
        point_title(point), m, network_gbps(m), load, spec, load.started_at, colour
    )
    return plots.save(chart, out / "figures", plots.POINT_FIGURE)


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (as it was after it).

    A full collection walks every object the process holds: with pandas,
    pyarrow, matplotlib and Airflow loaded that is ~1M objects, ~65 ms a time.
    What a point allocates lives just long enough to be promoted to the oldest
    generation and so triggers such collections, six for a 50-point campaign's
    export, 0.4 s. Reference counting still frees everything as usual.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _export_point(
    point: Point,
    metrics: pd.DataFrame,
    load: LoadResult,
    out: Path,
    spec: InstanceSpec | None,
    figures: bool,
) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    m = normalize_metrics(_for_point(metrics, point.id))
    # The metric files are Arrow work (casts, zstd, CSV text) that runs without
    # the GIL: written in a thread while statistics and figures, Python-bound,
    # are computed here. The table is only read by both.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="cachebench-metrics") as pool:
        written = pool.submit(write_metrics, m, out)
        (out / "load.json").write_text(load.model_dump_json(indent=2))
        (out / "point.json").write_text(point.model_dump_json(indent=2))
        net = network_gbps(m)
        baseline = spec.network_baseline_gbps if spec else None
        stats = metric_stats(m, load.started_at, baseline, net)
        drawn: dict[str, str] = {}
        if figures:
            chart = plots.point_chart(point_title(point), m, net, load, spec, load.started_at)
            drawn = plots.save(chart, out / "figures", plots.POINT_FIGURE)
        paths = written.result()
    paths |= {"load": str(out / "load.json"), "point": str(out / "point.json")}
    # After the parquet exists: the cache records which file it describes.
    paths["metrics_summary"] = str(write_stats_cache(out, stats, load, baseline))
    return paths | drawn


def point_title(point: Point) -> str:
    """A dashboard title: the point id and its configuration."""
    return (
        f"{point.id}: {point.engine} {point.version}, {point.topology.label}, "
        f"{point.node_type}, {point.workload.name}"
    )


def _num(x: Any) -> float | None:
    """A finite float, or None for missing/NaN."""
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def _node_stats(m: pd.DataFrame) -> Callable[[str, str, str], float | None]:
    """``stat(metric, col, how)``: per-node ``col`` (mean/max/sum of the values) of
    ``metric``, aggregated across nodes with ``how`` (max/sum); None without data.

    One groupby; lookups then work on its small result as numpy arrays.
    """
    if m.empty:
        return lambda metric, col, how: None
    agg = m.groupby(["metric", "node_id"], observed=True)["value"].agg(["mean", "max", "sum"])
    names = agg.index.get_level_values(0).astype("str").to_numpy()
    cols = {c: agg[c].to_numpy(dtype="float64") for c in ("mean", "max", "sum")}

    def stat(metric: str, col: str, how: str) -> float | None:
        vals = cols[col][names == metric]
        if not len(vals):
            return None
        vals = vals[~np.isnan(vals)]  # as pandas' max/sum, NaN skipped
        if how == "sum":
            return float(vals.sum())
        return float(vals.max()) if len(vals) else None

    return stat


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


def _net_stats(net: pd.DataFrame, baseline: float | None) -> dict[str, float | None]:
    """Busiest node's mean and peak Gbps per direction, and its seconds above ``baseline``.

    Per node first, then across nodes; NaN samples are skipped (as pandas does).
    """
    row: dict[str, float | None] = {}
    node = pd.factorize(net["node_id"])[0] if len(net) else np.zeros(0, dtype=np.int64)
    n = int(node.max()) + 1 if len(node) else 0
    for d in ("in", "out"):
        v = net[f"{d}_gbps"].to_numpy(dtype="float64") if len(net) else np.zeros(0)
        ok = ~np.isnan(v) & (node >= 0)
        count = np.bincount(node[ok], minlength=n)
        has = count > 0
        if not has.any():
            row[f"net_{d}_gbps_mean"] = row[f"net_{d}_gbps_peak"] = None
            continue
        means = np.bincount(node[ok], weights=v[ok], minlength=n)[has] / count[has]
        peaks = np.full(n, -np.inf)
        np.maximum.at(peaks, node[ok], v[ok])
        row[f"net_{d}_gbps_mean"] = float(means.max())
        row[f"net_{d}_gbps_peak"] = float(peaks[has].max())
    if baseline and len(net):
        both = np.fmax(
            net["in_gbps"].to_numpy(dtype="float64"), net["out_gbps"].to_numpy(dtype="float64")
        )
        above = (both > baseline) & (node >= 0)
        period = net["period_s"].to_numpy(dtype="float64")
        secs = np.bincount(node[above], weights=period[above], minlength=n)
        row["seconds_above_baseline"] = float(secs.max()) if above.any() else 0.0
    else:
        row["seconds_above_baseline"] = None
    return row


#: The summary columns computed from the metric table (the rest come from the
#: point, its load result and its node type).
METRIC_STATS = (
    "cpu_mean", "cpu_max", "engine_cpu_mean", "engine_cpu_max",
    "net_in_gbps_mean", "net_in_gbps_peak", "net_out_gbps_mean", "net_out_gbps_peak",
    "seconds_above_baseline", "allowance_exceeded", "allowance_first_exceeded_s",
    "memory_peak_bytes", "memory_peak_pct", "evictions",
)  # fmt: skip
STATS_FILE = "metrics_summary.json"
_STATS_VERSION = 1


def metric_stats(
    m: pd.DataFrame,
    t0: float,
    baseline: float | None,
    net: pd.DataFrame | None = None,
) -> dict[str, float | None]:
    """The :data:`METRIC_STATS` of one point's full-resolution long table.

    Node metrics are reduced per node first, then across nodes: ``*_mean`` is the
    busiest node's mean, ``*_max``/``*_peak`` the highest node's maximum.
    ``seconds_above_baseline`` is the busiest node's time with in or out above
    ``baseline`` (burst credit in use); counters (evictions, allowance) are summed.
    ``net`` is :func:`network_gbps` of ``m`` when the caller has it already.
    """
    row: dict[str, float | None] = {}
    node_stat = _node_stats(m)
    for key, metric in (
        ("cpu", "CPUUtilization"),
        ("engine_cpu", "EngineCPUUtilization"),
    ):
        row[f"{key}_mean"] = node_stat(metric, "mean", "max")
        row[f"{key}_max"] = node_stat(metric, "max", "max")

    row |= _net_stats(network_gbps(m) if net is None else net, baseline)
    allowance = [node_stat(a, "sum", "sum") for a in ALLOWANCE]
    known = [a for a in allowance if a is not None]
    row["allowance_exceeded"] = sum(known) if known else None
    row["allowance_first_exceeded_s"] = _first_exceeded_s(m, t0)
    row["memory_peak_bytes"] = node_stat("BytesUsedForCache", "max", "max")
    row["memory_peak_pct"] = node_stat("DatabaseMemoryUsagePercentage", "max", "max")
    row["evictions"] = node_stat("Evictions", "sum", "sum")
    return {k: row[k] for k in METRIC_STATS}


def _file_id(path: Path) -> dict[str, int]:
    """What identifies a file's version: size and modification time (ns)."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def write_stats_cache(
    pdir: Path, stats: dict[str, float | None], load: LoadResult, baseline: float | None
) -> Path:
    """Keep ``stats`` and the load's summary in ``metrics_summary.json``, tied to the
    ``metrics.parquet`` and ``load.json`` just written (their size and mtime)."""
    path = pdir / STATS_FILE
    data = {
        "version": _STATS_VERSION,
        "metrics_parquet": _file_id(pdir / "metrics.parquet"),
        "load_json": _file_id(pdir / "load.json"),
        "baseline_gbps": baseline,
        "load": load.model_dump(mode="json", exclude={"series"}),
        "stats": stats,
    }
    path.write_text(json.dumps(data, indent=2))
    return path


def cached_summary(
    pdir: Path, baseline: float | None
) -> tuple[LoadResult, dict[str, float | None]] | None:
    """(load result without its per-second series, metric statistics) as export_point
    kept them, if ``metrics.parquet`` and ``load.json`` are still the files they were
    computed from and ``baseline`` is the same; None means compute them again."""
    try:
        data = json.loads((pdir / STATS_FILE).read_text())
        if (
            data.get("version") == _STATS_VERSION
            and data.get("metrics_parquet") == _file_id(pdir / "metrics.parquet")
            and data.get("load_json") == _file_id(pdir / "load.json")
            and data.get("baseline_gbps") == baseline
            and set(data["stats"]) == set(METRIC_STATS)
        ):
            load = LoadResult.model_validate(data["load"])
            return load, {k: _num(data["stats"][k]) for k in METRIC_STATS}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def summary_row(
    point: Point,
    load: LoadResult,
    spec: InstanceSpec | None,
    stats: dict[str, float | None],
    price: Price | None = None,
) -> dict[str, Any]:
    """One summary row from the point, its load, its node type, its metric statistics
    and the price of its engine and node type in the campaign's region."""
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
        "reads_from": load.reads_from,
        "ops_per_sec": load.ops_per_sec,
        "kb_per_sec": load.kb_per_sec,
        "p50_ms": lat.p50,
        "p90_ms": lat.p90,
        "p99_ms": lat.p99,
        "p99_9_ms": lat.p99_9,
        "max_ms": lat.max,
        "requests": load.requests,
        "errors": load.errors,
        **stats,
    }
    baseline = spec.network_baseline_gbps if spec else None
    burst = spec.network_burst_gbps if spec else None
    peaks = [v for v in (row["net_in_gbps_peak"], row["net_out_gbps_peak"]) if v is not None]
    peak = max(peaks) if peaks else None
    row["baseline_gbps"], row["burst_gbps"] = baseline, burst
    row["peak_pct_of_baseline"] = 100.0 * peak / baseline if peak is not None and baseline else None
    row["vcpu"] = spec.vcpu if spec else None
    row["memory_gib"] = spec.memory_gib if spec else None
    node_usd = price.usd_per_node_hour if price else None
    row["price_usd_hour_node"] = node_usd
    row["price_source"] = price.source if price else None
    row["price_as_of"] = price.as_of.isoformat() if price else None
    row["cluster_usd_hour"] = node_usd * point.topology.nodes if node_usd is not None else None
    cost = row["cluster_usd_hour"]
    row["ops_per_dollar"] = load.ops_per_sec * 3600.0 / cost if cost else None
    return {k: row[k] for k in SUMMARY_COLUMNS}


def point_summary(
    point: Point,
    metrics: pd.DataFrame,
    load: LoadResult,
    spec: InstanceSpec | None = None,
    price: Price | None = None,
) -> dict[str, Any]:
    """One summary row for a point (see :func:`metric_stats` for the metric columns).

    ``ops_per_dollar`` = ops_per_sec * 3600 / cluster_usd_hour, at ``price``.
    """
    m = _for_point(metrics, point.id)
    baseline = spec.network_baseline_gbps if spec else None
    return summary_row(point, load, spec, metric_stats(m, load.started_at, baseline), price)


#: Column order of :func:`point_summary` rows (and of ``summary.csv``).
SUMMARY_COLUMNS = [
    "point_id", "index", "campaign", "target", "engine", "version", "topology",
    "cluster_mode", "shards", "replicas", "nodes", "node_type", "workload",
    "load_generators", "reads_from", "ops_per_sec", "kb_per_sec", "p50_ms", "p90_ms", "p99_ms",
    "p99_9_ms", "max_ms", "requests", "errors", "cpu_mean", "cpu_max",
    "engine_cpu_mean", "engine_cpu_max", "net_in_gbps_mean", "net_in_gbps_peak",
    "net_out_gbps_mean", "net_out_gbps_peak", "baseline_gbps", "burst_gbps",
    "peak_pct_of_baseline", "seconds_above_baseline", "allowance_exceeded",
    "allowance_first_exceeded_s",
    "memory_peak_bytes", "memory_peak_pct", "evictions", "vcpu", "memory_gib",
    "price_usd_hour_node", "price_source", "price_as_of", "cluster_usd_hour", "ops_per_dollar",
]  # fmt: skip
