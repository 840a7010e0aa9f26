"""The report's explorable charts: every run's time series overlaid, per workload and metric.

For each workload (absolute numbers of different workloads do not compare) one
plotly chart per metric: throughput and p99 per second (``load.json``'s
series), the busiest node's CPUUtilization and network in/out Gbps
(``metrics.parquet``) against the node type's baseline and burst. One trace
per run, named "<point> rep <k>", in its configuration's colour (the same in every
figure of the report: :mod:`cachebench.report.palette`), so a point's repetitions
look alike; x is seconds since the run's measured window started, so runs
overlay. The charts are drawn by plotly.js from one local copy,
``figures/plotly.min.js`` (:func:`write_plotly_js`): the report works offline.

Drawing only is downsampled, and only when a page would get heavy: a chart gets
at most :data:`CHART_POINTS` points, a page :data:`PAGE_POINTS`, a trace never
fewer than :data:`MIN_TRACE_POINTS`. A longer series becomes min-max buckets
(each bucket's lowest and highest sample, in time order), so no peak or dip
disappears; the chart says so. Every number of the tables comes from the full
series.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import plotly.io as pio
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from plotly.offline import get_plotlyjs
from pydantic import BaseModel, ConfigDict

from cachebench.models import LoadResult
from cachebench.report.export import NET_IN, NET_OUT
from cachebench.report.plots import BASELINE_COLOUR, BURST_COLOUR, gaps, node_series

CPU = "CPUUtilization"
#: Points drawn per chart and per page at most (traces are cut to fit), per trace at least.
CHART_POINTS = 40_000
PAGE_POINTS = 200_000
MIN_TRACE_POINTS = 600
PLOTLY_JS = "figures/plotly.min.js"
XLABEL = "seconds since the run's measured window started"
#: Chart keys, in page order: (title, y axis, hover number format).
KINDS = {
    "throughput": ("Throughput per second", "ops/s", ",.0f"),
    "p99": ("p99 latency per second", "ms", ".3f"),
    "cpu": ("CPUUtilization of the busiest node", "%", ".1f"),
    "net_in": ("Network in of the busiest node", "Gbps", ".3f"),
    "net_out": ("Network out of the busiest node", "Gbps", ".3f"),
}
#: The metric table's metrics drawn, and their chart keys.
DRAWN_KEYS = {CPU: "cpu", NET_IN: "net_in", NET_OUT: "net_out"}
DRAWN = tuple(DRAWN_KEYS)
#: Above this many traces the hover shows the nearest trace only (a unified box would
#: list them all).
UNIFIED_HOVER_TRACES = 12
CONFIG = {"displaylogo": False, "responsive": True}


class ExploreRun(BaseModel):
    """A run with a result, as the charts need it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    point_id: str
    configuration: str  # palette.configuration of its point
    colour: str  # its configuration's colour
    repetition: int
    workload: str
    node_type: str
    path: Path  # points/<point>/rep<k>
    baseline_gbps: float | None = None
    burst_gbps: float | None = None


class ExploreChart(BaseModel):
    """One drawn chart: its plotly div and script, and how many runs it overlays."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    div_id: str
    traces: int
    html: str


class WorkloadCharts(BaseModel):
    """A workload's charts, and why any metric has none."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workload: str
    runs: int
    charts: list[ExploreChart]
    notes: list[str]


class Series(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    node: str | None  # the busiest node, for node metrics


class RunData(NamedTuple):
    run: ExploreRun
    tool: str
    series: dict[str, Series]  # by KINDS key; a key is absent where the run has no data


def minmax(x: np.ndarray, y: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(x, y, downsampled)``: the series itself when it has at most ``max_points``
    samples, else the lowest and the highest sample of each of ``max_points // 2``
    equal-width x buckets, in time order. ``x`` must be sorted.

    Holes in time become NaN rows (a break in the line): a step over 1.5 times the
    usual one when drawn as is (:func:`cachebench.report.plots.gaps`), an empty
    bucket when bucketed; long series drop NaN values first.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x)
    x, y = x[keep], y[keep]
    if len(x) <= max_points:
        xs, ys = gaps(x, y)
        return xs, ys, False
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    buckets = max(1, max_points // 2)
    span = x[-1] - x[0] if len(x) else 0.0
    if span <= 0:
        return x[:1], y[:1], True
    b = np.minimum(((x - x[0]) / span * buckets).astype(np.int64), buckets - 1)
    order = np.lexsort((y, b))  # by bucket, then value
    sb = b[order]
    first = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]])
    last = np.r_[first[1:], len(sb)] - 1
    idx = np.unique(np.concatenate([order[first], order[last]]))  # time order
    xs, ys, bs = x[idx], y[idx], b[idx]
    hole = np.flatnonzero(np.diff(bs) > 1) + 1  # a bucket without samples between
    if len(hole):
        xs = np.insert(xs, hole, (xs[hole - 1] + xs[hole]) / 2)
        ys = np.insert(ys, hole, np.nan)
    return xs, ys, True


NodeSeries = tuple[str, np.ndarray, np.ndarray]


def _busiest(series: list[NodeSeries]) -> NodeSeries | None:
    """The node series with the highest mean (NaN samples skipped); None without samples."""
    means = [np.nanmean(v) if np.isfinite(v).any() else -np.inf for _, _, v in series]
    return series[int(np.argmax(means))] if series and max(means) > -np.inf else None


def read_run(run: ExploreRun) -> RunData:
    """A run's series for the charts, read from its ``load.json`` and ``metrics.parquet``."""
    load = LoadResult.model_validate_json((run.path / "load.json").read_text())
    out: dict[str, Series] = {}
    if load.series:
        sec = np.array([s.second for s in load.series], dtype=float)
        out["throughput"] = Series(sec, np.array([s.ops_per_sec for s in load.series]), None)
        p99 = np.array([np.nan if s.p99_ms is None else s.p99_ms for s in load.series])
        if np.isfinite(p99).any():
            out["p99"] = Series(sec, p99, None)
    nodes = node_series(_drawn_metrics(run.path / "metrics.parquet"), DRAWN, load.started_at)
    for metric, key in DRAWN_KEYS.items():
        top = _busiest(nodes[metric])
        if top is not None:
            out[key] = Series(top[1], top[2], top[0])
    return RunData(run, load.tool, out)


def _dictionary(col: pa.ChunkedArray) -> pa.DictionaryArray:
    col = col.combine_chunks()
    return col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)


def _drawn_metrics(path: Path) -> pd.DataFrame:
    """The rows of the :data:`DRAWN` metrics (timestamp, node_id, metric, value), the
    network ones as Gbps (bytes * 8 / period_s / 1e9, as export.network_gbps).

    Arrow and numpy on the dictionary codes: pandas' string handling would cost more
    than everything else the charts do.
    """
    table = pq.read_table(path, columns=["timestamp", "node_id", "metric", "value", "period_s"])
    metric, node = _dictionary(table["metric"]), _dictionary(table["node_id"])
    names = metric.dictionary.to_pylist()
    codes = metric.indices.to_numpy(zero_copy_only=False)
    sel = np.flatnonzero(np.isin(codes, [i for i, n in enumerate(names) if n in DRAWN_KEYS]))
    net = [i for i, n in enumerate(names) if n in (NET_IN, NET_OUT)]
    value = table["value"].to_numpy()[sel].astype(float)
    period = table["period_s"].to_numpy()[sel].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        gbps = value * 8.0 / np.where(period > 0, period, np.nan) / 1e9
    value = np.where(np.isin(codes[sel], net), gbps, value)
    ts = table["timestamp"].combine_chunks().cast(pa.timestamp("ns", tz="UTC"))
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(ts.to_numpy(zero_copy_only=False)[sel], utc=True),
            "node_id": pd.Categorical.from_codes(
                node.indices.to_numpy(zero_copy_only=False)[sel], node.dictionary.to_pylist()
            ),
            "metric": pd.Categorical.from_codes(codes[sel], names),
            "value": value,
        }
    )


def _lines(runs: Sequence[RunData]) -> list[tuple[str, float, str]]:
    """(label, Gbps, colour) of each node type's baseline and burst, once per value."""
    out, seen = [], set()
    for r in runs:
        for what, v, colour in (
            ("baseline", r.run.baseline_gbps, BASELINE_COLOUR),
            ("burst", r.run.burst_gbps, BURST_COLOUR),
        ):
            if v is None or (what, v) in seen:
                continue
            seen.add((what, v))
            out.append((f"{r.run.node_type} {what} {v:g} Gbps", v, colour))
    return out


def typed(a: np.ndarray) -> dict[str, str]:
    """A float array as plotly.js's base64 typed-array spec (float32: half the bytes of
    float64 and 7 digits, plenty to draw)."""
    return {"dtype": "f4", "bdata": base64.b64encode(a.astype("<f4").tobytes()).decode("ascii")}


def figure(key: str, runs: Sequence[RunData], per_trace: int) -> dict[str, Any]:
    """The plotly figure (data, layout) of metric ``key`` with one trace per run."""
    title, unit, fmt = KINDS[key]
    traces, down = [], False
    for r in runs:
        s = r.series[key]
        x, y, cut = minmax(s.x, s.y, per_trace)
        down |= cut
        node = f" (node {s.node})" if s.node else ""
        traces.append(
            {
                "type": "scatter",
                "mode": "lines",
                "x": typed(x),
                "y": typed(y),
                "name": f"{r.run.point_id} rep {r.run.repetition}",
                "legendgroup": r.run.point_id,
                "line": {"color": r.run.colour, "width": 1.5},
                "hovertemplate": f"%{{y:{fmt}}} {unit}{node}",
            }
        )
    notes = []
    if down:
        notes.append(
            f"Runs over {per_trace:,} samples drawn as {per_trace // 2:,} min-max buckets (each "
            "bucket's lowest and highest sample); every sample is in load.json / metrics.parquet."
        )
    shapes = []
    if key.startswith("net"):
        lines = _lines(runs)
        if not lines:
            notes.append("No documented bandwidth for these node types.")
        for label, v, colour in lines:
            shapes.append(
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "yref": "y",
                    "y0": v,
                    "y1": v,
                    "line": {"color": colour, "dash": "dash" if "baseline" in label else "dot"},
                    "label": {"text": label, "textposition": "end", "font": {"size": 11}},
                }
            )
    layout = {
        "title": {"text": title, "subtitle": {"text": " ".join(notes)}},
        "xaxis": {"title": {"text": XLABEL}, "zeroline": False},
        "yaxis": {"title": {"text": unit}, "rangemode": "tozero"},
        "hovermode": "x unified" if len(traces) <= UNIFIED_HOVER_TRACES else "closest",
        "shapes": shapes,
        "height": 420,
        "margin": {"l": 70, "r": 20, "t": 80 if notes else 60, "b": 60},
        "legend": {"groupclick": "togglegroup"},
    }
    return {"data": traces, "layout": layout}


def _chart(key: str, div_id: str, runs: Sequence[RunData], per_trace: int) -> ExploreChart:
    fig = figure(key, runs, per_trace)
    # validate=False: plotly's graph objects would check every property of every trace,
    # ten times the cost of the rest; tests/unit/test_explore.py validates the figures.
    html = pio.to_html(
        fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=CONFIG, validate=False
    )
    return ExploreChart(key=key, div_id=div_id, traces=len(fig["data"]), html=html)


def _per_trace(chart_traces: int, page_traces: int) -> int:
    return max(
        MIN_TRACE_POINTS, min(CHART_POINTS // chart_traces, PAGE_POINTS // max(1, page_traces))
    )


def explore(runs: Sequence[ExploreRun]) -> list[WorkloadCharts]:
    """Each workload's charts (in the order its runs come), every run overlaid."""
    data, unread = [], {}
    for r in runs:
        try:
            data.append(read_run(r))
        except Exception as exc:  # one unreadable run must not sink the report
            unread.setdefault(r.workload, []).append(
                f"{r.point_id} rep {r.repetition} not drawn: {type(exc).__name__}: {exc}"
            )
    by_workload: dict[str, list[RunData]] = {}
    for d in data:
        by_workload.setdefault(d.run.workload, []).append(d)
    page_traces = sum(len(d.series) for d in data)
    out = []
    for w_index, (workload, rs) in enumerate(by_workload.items()):
        charts, notes = [], list(unread.pop(workload, []))
        for key in KINDS:
            have = [r for r in rs if key in r.series]
            lacking = [
                f"{r.run.point_id} rep {r.run.repetition}" for r in rs if key not in r.series
            ]
            if not have:
                notes.append(_absent(key, rs))
                continue
            if lacking:
                notes.append(f"{KINDS[key][0]}: no data for {', '.join(lacking)}.")
            per_trace = _per_trace(len(have), page_traces)
            charts.append(_chart(key, f"explore-{w_index}-{key}", have, per_trace))
        out.append(WorkloadCharts(workload=workload, runs=len(rs), charts=charts, notes=notes))
    for workload, notes in unread.items():  # no run of it could be read
        out.append(WorkloadCharts(workload=workload, runs=0, charts=[], notes=notes))
    return out


def _absent(key: str, runs: Sequence[RunData]) -> str:
    """Why no run of a workload has a chart for ``key``."""
    if key == "p99":
        tools = ", ".join(sorted({r.tool for r in runs}))
        return (
            f"p99 per second: not measured per second by {tools} (the tables give each run's p99)."
        )
    source = (
        "load.json has no per-second series"
        if key == "throughput"
        else "no samples in metrics.parquet"
    )
    return f"{KINDS[key][0]}: {source}."


def write_plotly_js(run_dir: Path) -> Path:
    """plotly.js as the installed plotly package ships it, in ``<run_dir>/figures/``."""
    path = Path(run_dir) / PLOTLY_JS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(get_plotlyjs(), encoding="utf-8")
    return path
