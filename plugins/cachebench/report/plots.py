"""Figures for one point and for the campaign, drawn without pyplot.

Every figure is a :class:`matplotlib.figure.Figure` rendered by the Agg canvas
(PNG) or the PDF backend; nothing is registered with pyplot, so nothing leaks
between Airflow tasks. :func:`save` writes PNG and PDF and then clears the figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from cachebench.models import LoadResult

if TYPE_CHECKING:
    from cachebench.specs import InstanceSpec

ENGINE_COLOURS = {"redis": "#d62728", "valkey": "#1f77b4"}
BASELINE_STYLE = {"color": "black", "linestyle": "--", "linewidth": 1.2}
BURST_STYLE = {"color": "#ff7f0e", "linestyle": ":", "linewidth": 1.5}
GIB = 1024**3


def save(fig: Figure, fig_dir: Path, name: str) -> dict[str, str]:
    """Write ``fig_dir/<name>.png`` and ``.pdf``, clear the figure, return the paths."""
    fig_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for ext in ("png", "pdf"):
        path = fig_dir / f"{name}.{ext}"
        fig.savefig(path, dpi=110 if ext == "png" else None)
        paths[f"fig_{name}_{ext}"] = str(path)
    fig.clear()
    return paths


def _elapsed(ts: pd.Series, t0: float) -> tuple[np.ndarray, str, float]:
    """Seconds (or minutes, for spans over 10 min) since ``t0``; returns (x, label, scale)."""
    secs = (ts - pd.Timestamp(t0, unit="s", tz="UTC")).dt.total_seconds().to_numpy()
    if len(secs) and np.nanmax(secs) - np.nanmin(secs) > 600:
        return secs / 60.0, "minutes since load start", 60.0
    return secs, "seconds since load start", 1.0


def _no_data(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} data", ha="center", va="center", transform=ax.transAxes)


def _legend(ax: Axes, **kw: object) -> None:
    """Legend to the right of the axes, so it never hides data."""
    handles, _ = ax.get_legend_handles_labels()
    if handles or "handles" in kw:
        ax.legend(
            fontsize="small",
            ncol=max(1, len(handles) // 16 + 1),
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            borderaxespad=0.0,
            **kw,
        )


def _node_lines(
    ax: Axes, m: pd.DataFrame, metric: str, t0: float, scale: float = 1.0
) -> str | None:
    """One line per node for ``metric``; returns the x label, None without data."""
    sel = m.loc[(m["metric"] == metric).to_numpy()] if len(m) else m
    if sel.empty:
        _no_data(ax, metric)
        return None
    sel = sel.sort_values("timestamp")
    x, xlabel, _ = _elapsed(sel["timestamp"], t0)
    nodes = sel["node_id"].astype("str").to_numpy()
    y = sel["value"].to_numpy() / scale
    for node in sorted(pd.unique(nodes)):
        k = nodes == node
        ax.plot(x[k], y[k], label=node, linewidth=1, marker="." if k.sum() < 120 else None)
    return xlabel


def throughput_figure(load: LoadResult, title: str) -> Figure:
    """Ops/s per second of the measured window, with p50/p99 below when recorded."""
    s = load.series
    has_lat = any(x.p99_ms is not None or x.p50_ms is not None for x in s)
    fig = Figure(figsize=(9, 6 if has_lat else 4), layout="constrained")
    axes = fig.subplots(2 if has_lat else 1, 1, sharex=True, squeeze=False)[:, 0]
    ax = axes[0]
    if s:
        sec = np.array([x.second for x in s])
        ax.plot(sec, [x.ops_per_sec for x in s], linewidth=1, label="ops/s")
        ax.axhline(load.ops_per_sec, **BASELINE_STYLE, label=f"mean {load.ops_per_sec:,.0f}")
        _legend(ax)
    else:
        _no_data(ax, "throughput series")
    ax.set_ylabel("ops/s")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_title(f"Throughput — {title}")
    if has_lat:
        for key in ("p50_ms", "p99_ms"):
            y = np.array([getattr(x, key) if getattr(x, key) is not None else np.nan for x in s])
            axes[1].plot(sec, y, linewidth=1, label=key.replace("_ms", ""))
        axes[1].set_ylabel("latency (ms)")
        axes[1].set_ylim(bottom=0)
        _legend(axes[1])
    axes[-1].set_xlabel("seconds of measured window")
    return fig


def cpu_figure(m: pd.DataFrame, t0: float, title: str) -> Figure:
    """CPUUtilization and EngineCPUUtilization per node."""
    fig = Figure(figsize=(9, 6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    xlabel = None
    for ax, metric in zip(axes, ("CPUUtilization", "EngineCPUUtilization"), strict=True):
        xlabel = _node_lines(ax, m, metric, t0) or xlabel
        ax.set_ylabel(f"{metric} (%)")
        ax.set_ylim(0, max(105.0, ax.get_ylim()[1]))  # CPUUtilization may pass 100
        _legend(ax)
    axes[0].set_title(f"CPU — {title}")
    axes[-1].set_xlabel(xlabel or "seconds since load start")
    return fig


def network_figure(net: pd.DataFrame, spec: InstanceSpec | None, t0: float, title: str) -> Figure:
    """In/out Gbps per node, with the node type's baseline and burst as horizontal lines."""
    fig = Figure(figsize=(9, 6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    baseline = spec.network_baseline_gbps if spec else None
    burst = spec.network_burst_gbps if spec else None
    xlabel = None
    if len(net):
        net = net.sort_values("timestamp")
        x, xlabel, _ = _elapsed(net["timestamp"], t0)
        nodes = net["node_id"].astype("str").to_numpy()
    for ax, col in zip(axes, ("in_gbps", "out_gbps"), strict=True):
        if len(net) and net[col].notna().any():
            y = net[col].to_numpy()
            for node in sorted(pd.unique(nodes)):
                k = nodes == node
                ax.plot(
                    x[k],
                    y[k],
                    label=node,
                    linewidth=1,
                    marker="." if k.sum() < 120 else None,
                )
        else:
            _no_data(ax, col.replace("_gbps", "bound network"))
        if baseline is not None:
            ax.axhline(baseline, **BASELINE_STYLE, label=f"baseline {baseline:g} Gbps")
        if burst is not None and burst != baseline:
            ax.axhline(burst, **BURST_STYLE, label=f"burst {burst:g} Gbps")
        ax.set_ylabel(f"network {col[:-5]} (Gbps)")
        ax.set_ylim(bottom=0)
        _legend(ax)
    note = "" if spec and baseline is not None else " (no documented bandwidth)"
    axes[0].set_title(f"Network — {title}{note}")
    axes[-1].set_xlabel(xlabel or "seconds since load start")
    return fig


def memory_figure(m: pd.DataFrame, t0: float, title: str) -> Figure:
    """BytesUsedForCache (GiB) and DatabaseMemoryUsagePercentage per node."""
    fig = Figure(figsize=(9, 6), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    xlabel = _node_lines(axes[0], m, "BytesUsedForCache", t0, scale=GIB)
    axes[0].set_ylabel("BytesUsedForCache (GiB)")
    xlabel = _node_lines(axes[1], m, "DatabaseMemoryUsagePercentage", t0) or xlabel
    axes[1].set_ylabel("DatabaseMemoryUsage (%)")
    for ax in axes:
        ax.set_ylim(bottom=0)
        _legend(ax)
    axes[0].set_title(f"Memory — {title}")
    axes[-1].set_xlabel(xlabel or "seconds since load start")
    return fig


# ---- campaign figures: one horizontal bar (group) per point -----------------


def _bars(
    labels: list[str],
    series: dict[str, np.ndarray],
    xlabel: str,
    title: str,
    log: bool = False,
) -> tuple[Figure, Axes, np.ndarray, float]:
    """Grouped horizontal bars, first point on top; returns (fig, ax, y centres, bar height)."""
    n, k = len(labels), len(series)
    fig = Figure(figsize=(10, max(3.0, n * (0.16 + 0.1 * k) + 1.5)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(n)[::-1].astype(float)
    h = 0.8 / k
    for i, (name, vals) in enumerate(series.items()):
        ax.barh(y + (k - 1 - 2 * i) * h / 2, vals, height=h, label=name)
    ax.set_yticks(y, labels, fontsize="small" if n > 15 else "medium")
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.6g}"))
    ax.grid(axis="x", alpha=0.3)
    if k > 1:
        _legend(ax)
    return fig, ax, y, h


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype="float64")


def campaign_throughput(df: pd.DataFrame, labels: list[str]) -> Figure:
    """Ops/s per point, coloured by engine, values printed at the bar ends."""
    fig, ax, *_ = _bars(labels, {"ops/s": _col(df, "ops_per_sec")}, "ops/s", "Throughput")
    for bar, engine in zip(ax.patches, df["engine"], strict=True):
        bar.set_color(ENGINE_COLOURS.get(engine, "grey"))
    ax.bar_label(ax.containers[0], fmt="{:,.0f}", fontsize="x-small", padding=2)
    handles = [Patch(color=c, label=e) for e, c in ENGINE_COLOURS.items() if e in set(df["engine"])]
    _legend(ax, handles=handles)
    ax.margins(x=0.15)
    return fig


def campaign_latency(df: pd.DataFrame, labels: list[str]) -> Figure:
    """p50/p90/p99/p99.9 per point, log scale."""
    series = {
        "p50": _col(df, "p50_ms"),
        "p90": _col(df, "p90_ms"),
        "p99": _col(df, "p99_ms"),
        "p99.9": _col(df, "p99_9_ms"),
    }
    fig, *_ = _bars(labels, series, "latency (ms, log scale)", "Latency percentiles", log=True)
    return fig


def campaign_cpu(df: pd.DataFrame, labels: list[str]) -> Figure:
    """Busiest node's mean and max of host CPU and engine CPU."""
    series = {
        "CPU mean": _col(df, "cpu_mean"),
        "CPU max": _col(df, "cpu_max"),
        "engine CPU mean": _col(df, "engine_cpu_mean"),
        "engine CPU max": _col(df, "engine_cpu_max"),
    }
    fig, ax, *_ = _bars(labels, series, "% (busiest node)", "CPU")
    ax.set_xlim(0, max(105.0, ax.get_xlim()[1]))
    return fig


def campaign_network(df: pd.DataFrame, labels: list[str]) -> Figure:
    """Peak in/out Gbps per point with each node type's baseline (|) and burst (x)."""
    series = {
        "peak in": _col(df, "net_in_gbps_peak"),
        "peak out": _col(df, "net_out_gbps_peak"),
    }
    fig, ax, y, _ = _bars(labels, series, "Gbps (busiest node)", "Network peak vs allowance")
    base, burst = _col(df, "baseline_gbps"), _col(df, "burst_gbps")
    if np.isfinite(base).any():
        ax.scatter(base, y, marker="|", s=400, color="black", zorder=3, label="baseline")
    if np.isfinite(burst).any():
        ax.scatter(burst, y, marker="x", s=60, color="#ff7f0e", zorder=3, label="burst")
    _legend(ax)
    return fig


def campaign_memory(df: pd.DataFrame, labels: list[str]) -> Figure:
    """Peak DatabaseMemoryUsagePercentage per point, peak GiB printed at the bar ends."""
    fig, ax, *_ = _bars(
        labels,
        {"memory %": _col(df, "memory_peak_pct")},
        "% of maxmemory (peak)",
        "Memory",
    )
    gib = _col(df, "memory_peak_bytes") / GIB
    ax.bar_label(
        ax.containers[0],
        labels=[f"{g:.2f} GiB" if np.isfinite(g) else "" for g in gib],
        fontsize="x-small",
        padding=2,
    )
    ax.set_xlim(0, 115)
    return fig


CAMPAIGN_FIGURES = {
    "throughput": campaign_throughput,
    "latency": campaign_latency,
    "cpu": campaign_cpu,
    "network": campaign_network,
    "memory": campaign_memory,
}
