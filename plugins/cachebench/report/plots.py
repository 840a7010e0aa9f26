"""What the figures show: one dashboard per point and the campaign's comparison bars.

Figures are :class:`~cachebench.report.chart.Chart` data drawn by
:mod:`cachebench.report.chart` (matplotlib Figures, without pyplot, so nothing
leaks between Airflow tasks). :func:`save` writes the PNG and the PDF.

Dense series are downsampled for drawing only (a panel ~500 px wide cannot
show 3,600 samples per line): :func:`envelope` keeps each time bucket's mean as
the line and its min and max as a shaded band, so no peak disappears; the
figure says so. Every summary number comes from the full-resolution table.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cachebench.models import LoadResult
from cachebench.report import palette, stats
from cachebench.report.chart import (
    COLUMN_IN,
    BarPanel,
    Chart,
    ForestPanel,
    ForestRow,
    HLine,
    Key,
    Line,
    LinePanel,
    Mark,
    save,
)

if TYPE_CHECKING:
    from cachebench.catalogue import InstanceSpec
    from cachebench.report.decision import Decisions, Row

BASELINE_COLOUR, BURST_COLOUR = palette.REFERENCE, palette.BURST
#: A bar of a point some of whose runs were client-bound.
CLIENT_BOUND_KEY = Key("client-bound runs (measured the load generator)", "#7F7F7F", "box:///")
GIB = 1024**3
#: Most points drawn per line; longer series become buckets (mean line + min-max band).
MAX_POINTS = 300
#: A step between samples (or bucket means) over this many times the median step
#: is a hole in the data: the line breaks there.
GAP = 1.5
#: Nodes named one by one in a dashboard's legend; beyond, the legend says how many.
MAX_NODE_KEYS = 12
#: Per-point dashboard panels: (metric, panel title, divisor, y at least).
NODE_PANELS = (
    ("CPUUtilization", "CPUUtilization (%)", 1.0, 100.0),
    ("EngineCPUUtilization", "EngineCPUUtilization (%)", 1.0, 100.0),
    ("NetworkBytesIn", "network in (Gbps)", 1.0, None),
    ("NetworkBytesOut", "network out (Gbps)", 1.0, None),
    ("BytesUsedForCache", "BytesUsedForCache (GiB)", GIB, None),
    ("DatabaseMemoryUsagePercentage", "DatabaseMemoryUsagePercentage (%)", 1.0, None),
)
POINT_FIGURE = "dashboard"

__all__ = [
    "CAMPAIGN_FIGURES",
    "POINT_FIGURE",
    "decision_chart",
    "envelope",
    "gaps",
    "node_series",
    "point_chart",
    "save",
]


def envelope(
    x: np.ndarray, y: np.ndarray, buckets: int = MAX_POINTS
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(x, mean, min, max) per equal-width x bucket; the input itself when it is short.

    ``x`` must be sorted. With at most ``buckets`` samples the series is returned
    as is (a NaN value stays NaN: a gap in the line) and the band is None; longer
    series drop NaN values, then are bucketed. Either way a hole in time (a step
    over :data:`GAP` times the usual one, e.g. samples missing while a node was
    down, or a bucket without samples) gets a NaN row, so the line breaks there
    instead of bridging it.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    keep = np.isfinite(x)
    x, y = x[keep], y[keep]
    if len(x) <= buckets:
        xs, ys = gaps(x, y)
        return xs, ys, None, None
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if not len(x) or x[-1] == x[0]:  # nothing left, or every sample at one instant
        return x[:1], np.array([y.mean()]) if len(y) else y, None, None
    span = x[-1] - x[0]
    b = np.minimum(((x - x[0]) / span * buckets).astype(np.int64), buckets - 1)
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    count = np.diff(np.r_[starts, len(y)])
    return gaps(
        np.add.reduceat(x, starts) / count,
        np.add.reduceat(y, starts) / count,
        np.minimum.reduceat(y, starts),
        np.maximum.reduceat(y, starts),
    )


def gaps(x: np.ndarray, *ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """``x`` and ``ys`` with a NaN row (at the middle x) in every step over GAP x the median."""
    steps = np.diff(x)
    usual = np.median(steps[steps > 0]) if (steps > 0).any() else 0.0
    cut = np.flatnonzero(steps > GAP * usual) + 1 if usual > 0 and len(x) > 2 else []
    if not len(cut):
        return (x, *ys)
    mid = (x[cut - 1] + x[cut]) / 2
    return (np.insert(x, cut, mid), *(np.insert(y, cut, np.nan) for y in ys))


def _seconds(ts: pd.Series, t0: float) -> np.ndarray:
    """Seconds since ``t0`` of a UTC timestamp column, vectorised."""
    ns = ts.array.as_unit("ns").asi8 if hasattr(ts.array, "as_unit") else ts.astype("int64")
    return np.asarray(ns, dtype=np.int64) / 1e9 - t0


def node_series(
    m: pd.DataFrame, metrics: tuple[str, ...], t0: float
) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """``{metric: [(node, seconds since t0, values), ...]}`` sorted by node and time.

    One sort over the selected rows instead of a boolean mask per metric and node.
    """
    out: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {k: [] for k in metrics}
    if m.empty:
        return out
    metric = m["metric"].astype("category")
    node = m["node_id"].astype("category")
    cats = list(metric.cat.categories)
    wanted = [i for i, c in enumerate(cats) if c in out]
    codes = metric.cat.codes.to_numpy()
    sel = np.flatnonzero(np.isin(codes, wanted))
    if not len(sel):
        return out
    mc, nc = codes[sel], node.cat.codes.to_numpy()[sel]
    secs = _seconds(m["timestamp"], t0)[sel]
    vals = m["value"].to_numpy(dtype=float)[sel]
    order = np.lexsort((secs, nc, mc))
    mc, nc, secs, vals = mc[order], nc[order], secs[order], vals[order]
    cut = np.flatnonzero(np.r_[True, (mc[1:] != mc[:-1]) | (nc[1:] != nc[:-1]), True])
    nodes = node.cat.categories
    for a, b in itertools.pairwise(cut):
        out[cats[mc[a]]].append((str(nodes[nc[a]]), secs[a:b], vals[a:b]))
    return out


def _net_series(
    net: pd.DataFrame, t0: float
) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
    """network_gbps() rows as node series for the in/out panels."""
    out: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {
        "NetworkBytesIn": [],
        "NetworkBytesOut": [],
    }
    if net.empty:
        return out
    nodes = net["node_id"].astype("str").to_numpy()
    secs = _seconds(net["timestamp"], t0)
    order = np.lexsort((secs, nodes))
    nodes, secs = nodes[order], secs[order]
    cut = np.flatnonzero(np.r_[True, nodes[1:] != nodes[:-1], True])
    for metric, col in (("NetworkBytesIn", "in_gbps"), ("NetworkBytesOut", "out_gbps")):
        vals = net[col].to_numpy(dtype=float)[order]
        for a, b in itertools.pairwise(cut):
            out[metric].append((str(nodes[a]), secs[a:b], vals[a:b]))
    return out


def _line(x: np.ndarray, y: np.ndarray, colour: str, style: str = "-") -> tuple[Line, bool]:
    """A Line, downsampled when long; the flag says whether it was."""
    xs, mean, lo, hi = envelope(x, y)
    return Line(xs, mean, colour, style, lo=lo, hi=hi), lo is not None


def point_chart(
    title: str,
    m: pd.DataFrame,
    net: pd.DataFrame,
    load: LoadResult,
    spec: InstanceSpec | None,
    t0: float,
    colour: str = palette.CONFIGURATION_COLOURS[0],
) -> Chart:
    """One point's dashboard: throughput, latency, CPU, network vs baseline/burst, memory,
    in its configuration's ``colour`` (its nodes in shades of it).

    ``m`` is the point's long table, ``net`` its :func:`~cachebench.report.export.network_gbps`.
    """
    series = node_series(m, tuple(k for k, *_ in NODE_PANELS if not k.startswith("Network")), t0)
    series |= _net_series(net, t0)
    names = sorted({node for lst in series.values() for node, *_ in lst})
    node_colour = dict(zip(names, palette.shades(colour, len(names)), strict=True))
    spans = [s[-1] for lst in series.values() for _, s, _ in lst if len(s)]
    samples = load.series
    # The whole load (a last sample falls just short of it), else whatever was sampled.
    span = max([*spans, samples[-1].second if samples else 0.0, load.elapsed_seconds, 0.0])
    minutes = span > 600
    unit = 60.0 if minutes else 1.0
    load_panels, load_down = _load_panels(load, colour, unit)
    node_panels, node_down = _node_panels(series, node_colour, spec, unit)
    notes = []
    if load_down or node_down:
        notes.append(
            f"Dense series drawn as at most {MAX_POINTS} buckets: line = bucket mean, "
            "band = bucket min-max (all samples are in metrics.parquet)."
        )
    keys = [Key(n, node_colour[n]) for n in names[:MAX_NODE_KEYS]]
    if len(names) > MAX_NODE_KEYS:
        notes.append(f"{len(names)} nodes, one colour each (first {MAX_NODE_KEYS} named).")
    panels = [*load_panels, *node_panels]
    return Chart(
        title=title,
        panels=panels,
        width=COLUMN_IN,
        height=8.4,
        ncols=2,
        xlabel="minutes since load start" if minutes else "seconds since load start",
        xlim=(0.0, span / unit) if span > 0 else None,
        keys=keys,
        note=" ".join(notes),
    )


def _load_panels(load: LoadResult, colour: str, unit: float) -> tuple[list[LinePanel], bool]:
    """Throughput and latency over the load's seconds (x in `unit` seconds); the flag says
    whether a line was downsampled."""
    samples = load.series
    downsampled = False
    ops = LinePanel("throughput (ops/s)", empty="no throughput series")
    lat = LinePanel("latency (ms)", empty="no per-second latency recorded")
    if samples:
        sec = np.array([s.second for s in samples], dtype=float) / unit
        line, down = _line(sec, np.array([s.ops_per_sec for s in samples], dtype=float), colour)
        ops.lines.append(line)
        ops.hlines.append(
            HLine(load.ops_per_sec, f"mean {load.ops_per_sec:,.0f}", BASELINE_COLOUR, ":", 1.0)
        )
        downsampled |= down
        for key, style in (("p50_ms", "--"), ("p99_ms", "-")):
            y = np.array([getattr(s, key) for s in samples], dtype=float)
            if np.isfinite(y).any():
                line, down = _line(sec, y, colour, style)
                lat.lines.append(line)
                lat.keys.append(Key(key.removesuffix("_ms"), colour, style))
                downsampled |= down
    return [ops, lat], downsampled


def _node_panels(
    series: dict[str, list[tuple[str, np.ndarray, np.ndarray]]],
    colour: dict[str, str],
    spec: InstanceSpec | None,
    unit: float,
) -> tuple[list[LinePanel], bool]:
    """A panel per node metric, a line per node; the network ones with the node type's
    baseline and burst. The flag says whether a line was downsampled."""
    baseline = spec.network_baseline_gbps if spec else None
    burst = spec.network_burst_gbps if spec else None
    panels = []
    downsampled = False
    for metric, name, divisor, at_least in NODE_PANELS:
        panel = LinePanel(name, ymax_at_least=at_least, empty=f"no {metric} data")
        for node, secs, vals in series.get(metric, []):
            line, down = _line(secs / unit, vals / divisor, colour[node])
            panel.lines.append(line)
            downsampled |= down
        if metric.startswith("Network"):
            if baseline is not None:
                panel.hlines.append(HLine(baseline, f"baseline {baseline:g}", BASELINE_COLOUR))
            if burst is not None and burst != baseline:
                panel.hlines.append(HLine(burst, f"burst {burst:g}", BURST_COLOUR, ":", 1.5))
            if baseline is None:
                panel.title += " - no documented bandwidth"
        panels.append(panel)
    return panels, downsampled


# ---- campaign figures: one horizontal bar (group) per point -------------------------


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype="float64")


def _bound(df: pd.DataFrame) -> list[bool]:
    """Per point: were any of its runs client-bound?"""
    return [bool(v > 0) for v in np.nan_to_num(_col(df, "client_bound_runs"))]


def _bar_chart(title: str, panel: BarPanel, note: str = "") -> Chart:
    n, k = len(panel.labels), max(1, len(panel.series))
    keys = list(panel.keys)
    if not keys and k > 1:
        alphas = panel.alphas or [1.0] * k
        keys = [Key(name, "#555555", f"box:{a:g}") for name, a in zip(panel.series, alphas,
                                                                       strict=True)]  # fmt: skip
    keys += [Key(m.label, m.colour, m.style) for m in panel.marks]
    if panel.hatched and any(panel.hatched):
        keys.append(CLIENT_BOUND_KEY)
    height = max(3.0, n * (0.14 + 0.1 * k) + 1.8)
    return Chart(title, [panel], width=COLUMN_IN, height=height, keys=keys, note=note)


INTERVAL_NOTE = "Bars: the mean of a point's runs; whiskers: its 95% interval."


def _with_interval(df: pd.DataFrame, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    return _col(df, f"{prefix}_ci_low"), _col(df, f"{prefix}_ci_high")


def campaign_throughput(df: pd.DataFrame, labels: list[str], colours: list[str]) -> Chart:
    """Ops/s per point with its 95% interval, in each configuration's colour."""
    ops = _col(df, "ops_per_sec")
    panel = BarPanel(
        labels,
        {"ops/s": ops},
        "ops/s",
        bar_colours=colours,
        errors={"ops/s": _with_interval(df, "ops")},
        hatched=_bound(df),
        bar_text=[f"{v:,.0f}" if math.isfinite(v) else "" for v in ops],
    )
    return _bar_chart("Throughput", panel, INTERVAL_NOTE)


#: Latency percentiles: (series, summary column, interval prefix, shade).
PERCENTILES = (
    ("p50", "p50_ms", "p50", 0.35),
    ("p90", "p90_ms", "p90", 0.55),
    ("p99", "p99_ms", "p99", 0.8),
    ("p99.9", "p99_9_ms", "p999", 1.0),
)


def campaign_latency(df: pd.DataFrame, labels: list[str], colours: list[str]) -> Chart:
    """p50/p90/p99/p99.9 per point with their 95% intervals, log scale; percentiles by shade."""
    panel = BarPanel(
        labels,
        {name: _col(df, col) for name, col, _, _ in PERCENTILES},
        "latency (ms, log scale)",
        bar_colours=colours,
        alphas=[a for *_, a in PERCENTILES],
        errors={name: _with_interval(df, prefix) for name, _, prefix, _ in PERCENTILES},
        hatched=_bound(df),
        log=True,
    )
    return _bar_chart("Latency percentiles", panel, INTERVAL_NOTE)


def campaign_ops_per_dollar(
    df: pd.DataFrame, labels: list[str], colours: list[str]
) -> Chart | None:
    """Ops per dollar per point with its 95% interval; None when nothing is priced."""
    opd = _col(df, "ops_per_dollar") / 1e6
    if not np.isfinite(opd).any():
        return None
    low, high = _with_interval(df, "opd")
    panel = BarPanel(
        labels,
        {"M ops/$": opd},
        "million ops per dollar",
        bar_colours=colours,
        errors={"M ops/$": (low / 1e6, high / 1e6)},
        hatched=_bound(df),
        bar_text=[f"{v:,.1f}" if math.isfinite(v) else "" for v in opd],
    )
    return _bar_chart("Ops per dollar", panel, INTERVAL_NOTE)


def campaign_cpu(df: pd.DataFrame, labels: list[str], colours: list[str]) -> Chart:
    """Busiest node's mean and max of host CPU and engine CPU, told apart by shade."""
    series = {
        "CPU mean": _col(df, "cpu_mean"),
        "CPU max": _col(df, "cpu_max"),
        "engine CPU mean": _col(df, "engine_cpu_mean"),
        "engine CPU max": _col(df, "engine_cpu_max"),
    }
    panel = BarPanel(labels, series, "% (busiest node)", bar_colours=colours,
                     alphas=[0.3, 0.55, 0.75, 1.0], xlim=(0.0, 105.0))  # fmt: skip
    return _bar_chart("CPU", panel)


def campaign_network(df: pd.DataFrame, labels: list[str], colours: list[str]) -> Chart:
    """Peak in/out Gbps per point with each node type's baseline (|) and burst (x)."""
    series = {
        "peak in": _col(df, "net_in_gbps_peak"),
        "peak out": _col(df, "net_out_gbps_peak"),
    }
    base, burst = _col(df, "baseline_gbps"), _col(df, "burst_gbps")
    marks = []
    if np.isfinite(base).any():
        marks.append(Mark(base, "baseline", BASELINE_COLOUR, "|"))
    if np.isfinite(burst).any():
        marks.append(Mark(burst, "burst", BURST_COLOUR, "x"))
    panel = BarPanel(labels, series, "Gbps (busiest node)", bar_colours=colours,
                     alphas=[0.5, 1.0], marks=marks)  # fmt: skip
    return _bar_chart("Network peak vs allowance", panel)


def campaign_memory(df: pd.DataFrame, labels: list[str], colours: list[str]) -> Chart:
    """Peak DatabaseMemoryUsagePercentage per point, peak GiB printed at the bar ends."""
    gib = _col(df, "memory_peak_bytes") / GIB
    panel = BarPanel(
        labels,
        {"memory %": _col(df, "memory_peak_pct")},
        "% of maxmemory (peak)",
        bar_colours=colours,
        bar_text=[f"{g:.2f} GiB" if math.isfinite(g) else "" for g in gib],
        xlim=(0.0, 115.0),
    )
    return _bar_chart("Memory", panel)


CAMPAIGN_FIGURES = {
    "throughput": campaign_throughput,
    "latency": campaign_latency,
    "ops_per_dollar": campaign_ops_per_dollar,
    "cpu": campaign_cpu,
    "network": campaign_network,
    "memory": campaign_memory,
}


# ---- the decision figure: every comparison as a row of a forest plot ----------------


def verdict_colour(row: Row) -> str:
    """A row's colour: a named winner, no significant difference, or withheld."""
    if row.withheld:
        return palette.VERDICT_COLOURS["withheld"]
    if row.comparison.winner is not None:
        return palette.VERDICT_COLOURS["verdict"]
    return palette.VERDICT_COLOURS["no_difference"]


def forest_row(row: Row) -> ForestRow:
    c = row.comparison
    return ForestRow(
        label=row.label,
        ratio=c.ratio,
        low=c.interval.low if c.interval else None,
        high=c.interval.high if c.interval else None,
        colour=verdict_colour(row),
        word=row.verdict_word,
        hollow=row.withheld,
    )


def decision_chart(decisions: Decisions, section: str | None = None) -> Chart:
    """Every comparison of ``decisions`` (or of one section) as a row: the ratio a / b with
    its interval, the no-change line, the min_effect_pct band, the verdict by colour and
    word; a withheld verdict hollow and dashed. Rows are grouped as the decisions group them."""
    groups: dict[str, list[ForestRow]] = {}
    for s in decisions.sections:
        if section is None or s.key == section:
            for r in s.rows:
                groups.setdefault(r.group, []).append(forest_row(r))
    m = decisions.min_effect_pct
    levels = sorted({r.comparison.interval.level for r in decisions.rows if r.comparison.interval})
    level = " or ".join(stats.level_text(v) for v in levels[:2]) + (
        " ..." if len(levels) > 2 else ""
    )
    panel = ForestPanel(
        groups=list(groups.items()),
        xlabel="change, first named against second (log scale)",
        band=(1 - m / 100, 1 + m / 100) if m else None,
        reference=palette.REFERENCE,
    )
    keys = [
        Key("winner named", palette.VERDICT_COLOURS["verdict"], "o"),
        Key("no significant difference", palette.VERDICT_COLOURS["no_difference"], "o"),
        Key("verdict withheld", palette.VERDICT_COLOURS["withheld"], "open"),
    ]
    if m:
        keys.append(Key(f"within {m:g}% (min_effect_pct)", palette.BAND, "box"))
    n = sum(len(g) + 1 for g in groups.values())
    title = next((s.title for s in decisions.sections if s.key == section), "Every comparison")
    note = (
        "Dot: the ratio of the runs' geometric means; line: its "
        f"{level or '95%'} interval (the level the run counts need)."
    )
    return Chart(title, [panel], width=COLUMN_IN, height=max(3.0, 0.24 * n + 2.0), keys=keys,
                 note=note)  # fmt: skip
