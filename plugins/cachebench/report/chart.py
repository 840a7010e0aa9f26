"""Charts as plain data, drawn with matplotlib's public API.

A chart is a :class:`Chart` of :class:`LinePanel` or :class:`BarPanel`
(:mod:`cachebench.report.plots` builds them from a point's or a campaign's
data). :func:`figure` turns one into a ``matplotlib.figure.Figure`` on a
``FigureCanvasAgg``, without pyplot, so no figure or state outlives the
Airflow task that drew it; :func:`save` writes it as PNG and PDF with
``Figure.savefig``. PDFs embed their font (DejaVu Sans, as TrueType subsets:
``pdf.fonttype`` 42), so text stays selectable and any character the font has
survives.

A campaign of 50 points draws 50 dashboards, so a few choices are about time:
the layout is fixed arithmetic in points (margins from the measured label
widths, panel titles at a fixed height) instead of a layout engine, which
would draw every figure twice; one font weight, since each one embedded in a
PDF is a font subset to compute; no shared axes (see :func:`_figure`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import (
    FixedLocator,
    Formatter,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
    NullLocator,
)

from cachebench.report.figure_helper import Helper

# fontTools, which subsets the PDF fonts, logs a hundred INFO lines per PDF: in an
# Airflow task log (where INFO is shown) that would bury everything else.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)

#: Text sizes in points: nothing under TEXT_PT, so a figure sized for a blog's column
#: (COLUMN_IN wide) reads as it is printed; PNGs are drawn at twice a screen's 96 dpi
#: (rounded), sharp on high-density screens.
TEXT_PT = 9.0
TITLE_PT = 11.0
PANEL_TITLE_PT = 10.0
COLUMN_IN = 7.0
#: Narrowest plot area: a figure whose labels would leave less is made wider.
MIN_PLOT_PT = 3.0 * 72
PNG_DPI = 200
GRID = "#d9d9d9"
BAND_COLOUR = "#e5e5e5"
AXIS = "#333333"
MUTED = "#666666"
#: Colour cycle (matplotlib's tab10) for nodes and series.
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
#: Series with fewer points than this get a dot at each sample (e.g. a 10-minute
#: run at CloudWatch's 60 s period); denser lines need none.
MARKERS_BELOW = 30
#: What every chart is drawn with, whatever the process's own matplotlib settings.
RC = {
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs everywhere
    "pdf.fonttype": 42,  # embed TrueType subsets, not Type 3 procedures
    "axes.edgecolor": AXIS,
    "axes.linewidth": 0.8,
    "xtick.color": AXIS,
    "ytick.color": AXIS,
    "xtick.labelsize": TEXT_PT,
    "ytick.labelsize": TEXT_PT,
    "xtick.major.size": 3,
    "ytick.major.size": 3,
    "xtick.major.width": 0.8,
    "ytick.major.width": 0.8,
    "xtick.major.pad": 2,
    "ytick.major.pad": 2,
    "axes.xmargin": 0,
    "axes.ymargin": 0,
}


@dataclass
class Line:
    """A series in a line panel; ``lo``/``hi`` shade a band (the min-max of downsampled data).

    NaN in ``y`` is a gap in the line (missing samples), never a zero.
    """

    x: np.ndarray
    y: np.ndarray
    colour: str
    style: str = "-"
    width: float = 1.0
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None


@dataclass
class HLine:
    """A horizontal reference line (e.g. a node type's baseline bandwidth), with a legend key."""

    y: float
    label: str
    colour: str = "black"
    style: str = "--"
    width: float = 1.2


@dataclass
class Key:
    """A legend entry: a short line (style "-", "--", ":"), a box ("box") or a marker ("|", "x")."""

    label: str
    colour: str
    style: str = "-"


@dataclass
class LinePanel:
    """One plot of lines over the chart's shared x axis."""

    title: str
    lines: list[Line] = field(default_factory=list)
    hlines: list[HLine] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    ymin: float | None = 0.0
    ymax_at_least: float | None = None
    empty: str = "no data"

    def has_data(self) -> bool:
        return any(np.isfinite(ln.y).any() for ln in self.lines if len(ln.y))


@dataclass
class Mark:
    """A marker per bar group (e.g. each point's baseline bandwidth as "|"); NaN: none."""

    values: np.ndarray
    label: str
    colour: str
    style: str = "|"


@dataclass
class BarPanel:
    """Grouped horizontal bars, one group per label, first label on top; NaN: no bar."""

    labels: list[str]
    series: dict[str, np.ndarray]
    xlabel: str
    colours: list[str] | None = None  # one per series (default: the cycle)
    bar_colours: list[str] | None = None  # one per label, for every series (by configuration)
    alphas: list[float] | None = None  # one per series: series told apart by shade
    #: series name -> (low, high) per label: an interval drawn over the series' bars
    errors: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    hatched: list[bool] | None = None  # one per label: its bars hatched (e.g. client-bound)
    bar_text: list[str] | None = None  # printed at the end of the first series' bars
    marks: list[Mark] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    log: bool = False
    xlim: tuple[float | None, float | None] = (0.0, None)


@dataclass
class ForestRow:
    """One estimate with its interval (a ratio: 1 is no change); ``ratio`` None: no
    estimate, only ``word`` is shown. ``hollow``: an open marker and a dashed interval."""

    label: str
    ratio: float | None
    low: float | None
    high: float | None
    colour: str
    word: str  # printed right of the plot, in ``colour``
    hollow: bool = False


@dataclass
class ForestPanel:
    """A forest plot: rows under group headings (first on top) on a log ratio axis
    labelled as changes (-50%, 0%, +100%), with the no-change line and a band."""

    groups: list[tuple[str, list[ForestRow]]]
    xlabel: str
    band: tuple[float, float] | None = None  # shaded ratio range (e.g. min_effect_pct)
    reference: str = "black"


@dataclass
class Chart:
    """A titled page of panels on a grid (``ncols`` wide), sized in inches."""

    title: str
    panels: Sequence[LinePanel | BarPanel | ForestPanel]
    width: float
    height: float
    ncols: int = 1
    xlabel: str = ""  # line panels: the shared x axis
    xlim: tuple[float, float] | None = None  # line panels: default = data range
    x_integers: bool = False  # line panels: whole-number x ticks only (e.g. run counts)
    keys: list[Key] = field(default_factory=list)  # chart-wide legend under the title
    note: str = ""  # small grey line under the title


# ---- ticks ---------------------------------------------------------------------------


def tick_labels(ticks: np.ndarray, log: bool = False) -> list[str]:
    """Fewest decimals that tell the ticks apart exactly; thousands separated."""
    ticks = np.asarray(ticks, dtype=float)
    if log:
        return [f"{t:g}" for t in ticks]
    if not len(ticks):
        return []
    for dec in range(7):
        if np.allclose(np.round(ticks, dec), ticks, rtol=0, atol=1e-9 * max(1, abs(ticks).max())):
            return [f"{t:,.{dec}f}" for t in ticks]
    return [f"{t:,.6g}" for t in ticks]


class _Decimals(Formatter):
    """Linear tick labels as :func:`tick_labels` writes them (one decimal count per axis)."""

    def __init__(self) -> None:
        self._labels: dict[float, str] = {}

    def set_locs(self, locs: Sequence[float]) -> None:
        super().set_locs(locs)
        locs = np.asarray(locs, dtype=float)
        self._labels = dict(zip(locs.tolist(), tick_labels(locs), strict=True))

    def __call__(self, x: float, pos: int | None = None) -> str:
        label = self._labels.get(float(x))
        return label if label is not None else tick_labels(np.array([x]))[0]


def _linear(nbins: int) -> MaxNLocator:
    return MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10])


def _y_range(panel: LinePanel) -> tuple[float, float]:
    """(bottom, top) of a line panel: data, reference lines, then rounded up to a tick."""
    vals: list[float] = [h.y for h in panel.hlines if math.isfinite(h.y)]
    for ln in panel.lines:
        for arr in (ln.y, ln.lo, ln.hi):
            if arr is not None and len(arr):
                finite = arr[np.isfinite(arr)]
                if len(finite):
                    vals += [float(finite.min()), float(finite.max())]
    lo = min(vals, default=0.0)
    if panel.ymin is not None:
        lo = min(panel.ymin, lo)
    hi = max(vals, default=lo + 1.0)
    hi += (hi - lo) * 0.03  # a line at the maximum stays clear of the frame
    if panel.ymax_at_least is not None:
        hi = max(hi, panel.ymax_at_least)
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    ticks = _linear(4).tick_values(lo, hi)
    above = ticks[ticks >= hi]
    return lo, float(above[0]) if len(above) else hi


def _bar_range(panel: BarPanel) -> tuple[float, float]:
    """(left, right) of a bar panel's value axis: whole decades on a log axis."""
    values = [np.asarray(v, dtype=float) for v in panel.series.values()]
    values += [np.asarray(m.values, dtype=float) for m in panel.marks]
    values += [np.asarray(hi, dtype=float) for _, hi in panel.errors.values()]
    finite = np.concatenate([v[np.isfinite(v)] for v in values] or [np.array([])])
    if panel.log:
        pos = finite[finite > 0]
        if not len(pos):
            return 0.1, 10.0
        return 10.0 ** math.floor(math.log10(pos.min())), 10.0 ** math.ceil(
            math.log10(pos.max() * 1.5)
        )
    lo = panel.xlim[0] if panel.xlim[0] is not None else min(0.0, *finite)
    hi = max(finite.max() * (1.4 if panel.bar_text else 1.05), lo + 1) if len(finite) else 1.0
    if panel.xlim[1] is not None:
        hi = max(hi, panel.xlim[1])
    return float(lo), float(hi)


# ---- drawing -------------------------------------------------------------------------


def _handle(key: Key) -> Any:
    """A legend handle for ``key``."""
    if key.style == "box":
        return Patch(facecolor=key.colour, edgecolor="none", label=key.label)
    if key.style in ("|", "x", "o"):
        return Line2D(
            [], [], color=key.colour, ls="none", marker=key.style, ms=7, mew=1.2, label=key.label
        )
    if key.style == "open":  # a hollow dot on a dashed line: a withheld estimate
        return Line2D([], [], color=key.colour, ls="--", lw=1.2, marker="o", mfc="white", ms=7,
                      mew=1.2, label=key.label)  # fmt: skip
    if key.style.startswith("box:"):  # a shaded or hatched box: "box:0.5", "box:///"
        what = key.style[4:]
        if what.replace(".", "", 1).isdigit():
            return Patch(facecolor=key.colour, alpha=float(what), edgecolor="none", label=key.label)
        return Patch(facecolor=key.colour, hatch=what, hatchcolor="white", edgecolor="none",
                     label=key.label)  # fmt: skip
    return Line2D([], [], color=key.colour, ls=key.style, lw=1.5, label=key.label)


class _Layout:
    """Converts points (1/72 in, from the figure's bottom-left) to figure fractions,
    and measures text with the figure's own Agg renderer."""

    def __init__(self, fig: Figure, canvas: FigureCanvasAgg):
        self.fig = fig
        self.w, self.h = (float(v) * 72 for v in fig.get_size_inches())
        self._renderer = canvas.get_renderer()
        self._px = 72.0 / fig.dpi

    def width(self, texts: Sequence[str], size: float) -> float:
        """The widest of ``texts`` in points (measured: the few longest strings)."""
        prop = FontProperties(family=RC["font.family"], size=size)
        longest = sorted(set(texts), key=len)[-3:]
        widths = (
            self._renderer.get_text_width_height_descent(s, prop, ismath=False)[0] for s in longest
        )
        return max(widths, default=0.0) * self._px + 2  # slack: a shorter label may be wider

    def text(self, x: float, y: float, s: str, **kw: Any) -> None:
        self.fig.text(x / self.w, y / self.h, s, **kw)


def _header(lay: _Layout, chart: Chart) -> float:
    """Title, note and chart-wide keys; returns the points they take from the top."""
    y = lay.h - 8
    lay.text(lay.w / 2, y, chart.title, ha="center", va="top", fontsize=TITLE_PT)
    y -= TITLE_PT + 6
    for line in _wrap(lay, chart.note, TEXT_PT):
        lay.text(lay.w / 2, y - 2, line, ha="center", va="top", fontsize=TEXT_PT, color=MUTED)
        y -= TEXT_PT + 4
    if chart.keys:
        entry = lay.width([k.label for k in chart.keys], TEXT_PT) + 34
        ncols = max(1, min(len(chart.keys), int((lay.w - 16) // entry)))
        rows = math.ceil(len(chart.keys) / ncols)
        lay.fig.legend(
            handles=[_handle(k) for k in chart.keys],
            loc="upper center",
            bbox_to_anchor=(0.5, (y - 1) / lay.h),
            ncols=ncols,
            frameon=False,
            fontsize=TEXT_PT,
            borderaxespad=0,
            borderpad=0,
            handlelength=1.8,
            columnspacing=1.2,
        )
        y -= (TEXT_PT + 5) * rows + 4
    return lay.h - y + 4


def _wrap(lay: _Layout, text: str, size: float) -> list[str]:
    """``text`` in lines that fit the figure's width (a note must not run off the page)."""
    lines: list[str] = []
    for word in text.split():
        if lines and lay.width([f"{lines[-1]} {word}"], size) < lay.w - 24:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _panel_keys(ax: Axes, keys: Sequence[Key]) -> None:
    """A panel's legend in one row above its plot, right-aligned."""
    ax.legend(
        handles=[_handle(k) for k in keys],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncols=len(keys),
        frameon=False,
        fontsize=TEXT_PT,
        borderaxespad=0.15,
        borderpad=0,
        handlelength=1.8,
        columnspacing=1.0,
    )


def _draw_lines(
    ax: Axes,
    panel: LinePanel,
    xlim: tuple[float, float],
    xtick_labels: bool,
    x_integers: bool = False,
) -> list[str]:
    """Draw ``panel`` on ``ax``; returns its y tick labels (for the left margin)."""
    ax.set_title(panel.title, loc="left", fontsize=PANEL_TITLE_PT, y=1.0, pad=4)
    keys = [*panel.keys, *(Key(h.label, h.colour, h.style) for h in panel.hlines)]
    if keys:
        _panel_keys(ax, keys)
    for ln in panel.lines:
        if ln.lo is not None and ln.hi is not None and len(ln.x):
            ax.fill_between(ln.x, ln.lo, ln.hi, color=ln.colour, alpha=0.15, lw=0)
    for ln in panel.lines:
        if not len(ln.x):
            continue
        dots = len(ln.x) < MARKERS_BELOW and ln.style == "-"
        ax.plot(
            ln.x,
            ln.y,
            color=ln.colour,
            ls=ln.style,
            lw=ln.width,
            marker="o" if dots else None,
            ms=2.8,
            mew=0,
        )
    for h in panel.hlines:
        if math.isfinite(h.y):
            ax.axhline(h.y, color=h.colour, ls=h.style, lw=h.width)
    if not panel.has_data():
        ax.text(
            0.5,
            0.5,
            panel.empty,
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=TEXT_PT,
            color=MUTED,
        )
    lo, hi = _y_range(panel)
    ax.set_ylim(lo, hi)
    ax.set_xlim(*xlim)
    ax.yaxis.set_major_locator(_linear(4))
    ax.yaxis.set_major_formatter(_Decimals())
    ax.xaxis.set_major_locator(
        MaxNLocator(nbins=8, steps=[1, 2, 2.5, 5, 10], integer=True) if x_integers else _linear(8)
    )
    ax.xaxis.set_major_formatter(_Decimals())
    ax.tick_params(labelbottom=xtick_labels)
    ax.grid(True, axis="y", color=GRID, lw=0.5)
    ax.set_axisbelow(True)
    return ax.yaxis.get_major_formatter().format_ticks(ax.yaxis.get_majorticklocs())


def _draw_bars(ax: Axes, panel: BarPanel, height_pt: float) -> None:
    """Draw ``panel`` on ``ax`` (its plot ``height_pt`` points tall)."""
    n, k = len(panel.labels), max(1, len(panel.series))
    lo, hi = _bar_range(panel)
    _bar_axis(ax, panel, lo, hi)
    centre = np.arange(n, dtype=float)
    bar = 0.8 / k
    colours = panel.colours or [COLOURS[i % len(COLOURS)] for i in range(k)]
    base = lo if panel.log else max(lo, 0.0)
    hatched = np.asarray(panel.hatched if panel.hatched else [False] * n, dtype=bool)
    for i, (name, vals) in enumerate(panel.series.items()):
        vals = np.asarray(vals, dtype=float)
        ok = np.isfinite(vals) & ((vals > 0) if panel.log else True)
        yc = centre + (i - (k - 1) / 2) * bar
        alpha = panel.alphas[i] if panel.alphas else 1.0
        for marked in (False, True):
            sel = ok & (hatched == marked)
            if sel.any():
                colour = _selected(panel.bar_colours, sel) if panel.bar_colours else colours[i]
                _add_rects(ax, vals[sel], yc[sel], base, bar, colour, alpha, name, marked)
        ends = vals
        if name in panel.errors:
            ends = _error_bars(ax, vals, yc, panel.errors[name], min(8.0, height_pt / n * 0.5))
        if i == 0 and panel.bar_text:
            _bar_texts(ax, np.asarray(panel.bar_text)[ok], ends[ok], yc[ok])
    _say_missing(ax, panel, centre, base)
    _marks(ax, panel, centre, height_pt / max(n, 1))
    ax.set_yticks(centre, panel.labels, fontsize=TEXT_PT)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(panel.xlabel, fontsize=TEXT_PT, labelpad=3)
    ax.grid(True, axis="x", which="major", color=GRID, lw=0.5)
    ax.set_axisbelow(True)


def _bar_axis(ax: Axes, panel: BarPanel, lo: float, hi: float) -> None:
    """The value axis (log in decades, or linear) from lo to hi; first label on top."""
    if panel.log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))  # decades
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_locator(_linear(5))
        ax.xaxis.set_major_formatter(_Decimals())
    ax.set_xlim(lo, hi)
    ax.set_ylim(len(panel.labels) - 0.5, -0.5)


def _selected(bar_colours: Sequence[str], sel: np.ndarray) -> list[str]:
    return [c for c, keep in zip(bar_colours, sel, strict=True) if keep]


def _add_rects(
    ax: Axes,
    vals: np.ndarray,
    yc: np.ndarray,
    base: float,
    bar: float,
    colour: Any,
    alpha: float,
    name: str,
    hatched: bool,
) -> None:
    """Bars from base to vals, centred on yc, as one collection of rectangles, not a patch
    per bar (Axes.barh): a campaign's figure has 200 bars, each patch costs its own draw."""
    x0, x1 = np.minimum(base, vals), np.maximum(base, vals)
    y0, y1 = yc - bar / 2, yc + bar / 2
    corners = [np.column_stack(c) for c in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    rects = PolyCollection(
        np.stack(corners, axis=1),
        facecolors=colour,
        edgecolors="none",
        alpha=alpha,
        label=name,
        hatch="///" if hatched else None,
        hatchcolor="white",
    )
    ax.add_collection(rects, autolim=False)


def _error_bars(
    ax: Axes, vals: np.ndarray, yc: np.ndarray, error: tuple[np.ndarray, np.ndarray], tick_pt: float
) -> np.ndarray:
    """Whiskers from low to high where both are known; returns where each bar's drawing
    ends (its value, or its whisker's high end beyond it)."""
    low, high = (np.asarray(v, dtype=float) for v in error)
    has = np.isfinite(low) & np.isfinite(high)
    ax.hlines(yc[has], low[has], high[has], colors=AXIS, lw=1.1)
    for edge in (low, high):
        ax.plot(edge[has], yc[has], ls="none", marker="|", ms=tick_pt, mew=1.1, color=AXIS)
    return np.where(has, np.fmax(vals, high), vals)


def _bar_texts(ax: Axes, texts: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> None:
    """Each bar's text just past its end."""
    for text, x, y in zip(texts, xs, ys, strict=True):
        if text:
            ax.annotate(
                text,
                (x, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=TEXT_PT,
            )


def _say_missing(ax: Axes, panel: BarPanel, centre: np.ndarray, base: float) -> None:
    """n/a on a label no series has a value for: a missing value is said, not drawn as zero."""
    present = np.zeros(len(panel.labels), dtype=bool)
    for vals in panel.series.values():
        present |= np.isfinite(np.asarray(vals, dtype=float))
    for j in np.flatnonzero(~present):
        ax.annotate(
            "n/a",
            (base, centre[j]),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=TEXT_PT,
            color=MUTED,
        )


def _marks(ax: Axes, panel: BarPanel, centre: np.ndarray, slot: float) -> None:
    """The panel's marks (e.g. each point's baseline bandwidth) on its row, `slot` points tall."""
    for m in panel.marks:
        values = np.asarray(m.values, dtype=float)
        ok = np.isfinite(values)
        ax.plot(
            values[ok],
            centre[ok],
            ls="none",
            marker=m.style,
            ms=slot * (0.9 if m.style == "|" else 0.6),
            mew=1.2,
            color=m.colour,
        )


#: Width a forest plot's change label needs ("+100%" at TEXT_PT, and a gap), in points.
FOREST_TICK_PT = 44
#: Changes a forest plot's axis may be labelled at, in percent.
FOREST_TICKS = (-90, -75, -60, -50, -40, -30, -25, -20, -15, -10, -5, -2, 0, 2, 5, 10, 15, 20,
                25, 30, 40, 50, 75, 100, 150, 200, 300, 400, 900)  # fmt: skip


def forest_layout(panel: ForestPanel) -> tuple[list[str], list[ForestRow | None]]:
    """The forest plot's lines, top to bottom: group headings (row None) and rows."""
    labels: list[str] = []
    rows: list[ForestRow | None] = []
    for heading, group in panel.groups:
        labels.append(heading)
        rows.append(None)
        for r in group:
            labels.append(r.label)
            rows.append(r)
    return labels, rows


def forest_ticks(lo: float, hi: float, most: int = 8) -> list[float]:
    """Ratios to label between lo and hi: no change, then outwards the round changes at
    least 1/most of the axis apart (on its log scale), so no two labels collide."""
    gap = math.log(hi / lo) / max(most, 2)
    ticks = [1.0]
    for side in (
        sorted(t for t in FOREST_TICKS if t > 0),
        sorted((t for t in FOREST_TICKS if t < 0), reverse=True),
    ):
        last = 1.0
        for t in side:
            r = 1 + t / 100
            if lo <= r <= hi and abs(math.log(r / last)) >= gap:
                ticks.append(r)
                last = r
    return sorted(ticks)


def _forest_range(panel: ForestPanel) -> tuple[float, float]:
    vals = [1.0]
    for _, group in panel.groups:
        for r in group:
            vals += [v for v in (r.ratio, r.low, r.high) if v is not None and v > 0]
    if panel.band:
        vals += list(panel.band)
    lo, hi = min(vals), max(vals)
    span = math.log(hi / lo) or math.log(1.1)
    return lo * math.exp(-0.06 * span), hi * math.exp(0.06 * span)


def _draw_forest(ax: Axes, panel: ForestPanel, height_pt: float) -> list[str]:
    """Draw ``panel`` on ``ax``; returns the words printed right of it (for the margin)."""
    labels, rows = forest_layout(panel)
    n = len(labels)
    lo, hi = _forest_range(panel)
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(n - 0.5, -0.5)
    ax.xaxis.set_major_locator(FixedLocator(forest_ticks(lo, hi)))
    ax.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _pos: "0%" if abs(v - 1) < 1e-9 else f"{100 * (v - 1):+.0f}%")
    )
    ax.xaxis.set_minor_locator(NullLocator())
    if panel.band:
        ax.axvspan(*panel.band, color=BAND_COLOUR, lw=0, zorder=0)
    ax.axvline(1.0, color=panel.reference, lw=1.0, zorder=1)
    words = []
    marker = min(7.0, height_pt / max(n, 1) * 0.55)
    for y, r in enumerate(rows):
        if r is None:
            continue
        words.append(r.word)
        ax.annotate(r.word, (1.0, y), xycoords=("axes fraction", "data"), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=TEXT_PT,
                    color=r.colour)  # fmt: skip
        if r.low is not None and r.high is not None:
            ax.hlines(
                y, r.low, r.high, colors=r.colour, lw=1.6, linestyles="--" if r.hollow else "-"
            )
        if r.ratio is not None:
            ax.plot([r.ratio], [y], ls="none", marker="o", ms=marker, mew=1.4, color=r.colour,
                    mfc="white" if r.hollow else r.colour, zorder=3)  # fmt: skip
    ax.set_yticks(range(n), [lab if r else "" for lab, r in zip(labels, rows, strict=True)],
                  fontsize=TEXT_PT)  # fmt: skip
    for y, (heading, r) in enumerate(zip(labels, rows, strict=True)):
        if r is None:  # a group's heading, from the figure's left edge over the plot's width
            ax.annotate(heading, (8, y), xycoords=("figure points", "data"), va="center",
                        fontsize=TEXT_PT, fontweight="bold", annotation_clip=False,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})  # fmt: skip
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(panel.xlabel, fontsize=TEXT_PT, labelpad=3)
    ax.grid(True, axis="x", which="major", color=GRID, lw=0.5)
    ax.set_axisbelow(True)
    return words


def _xlim(chart: Chart) -> tuple[float, float]:
    """The line panels' shared x range: the chart's, else the data's."""
    xlim = chart.xlim
    if xlim is None:
        lines = [ln for p in chart.panels if isinstance(p, LinePanel) for ln in p.lines]
        xs = [ln.x[np.isfinite(ln.x)] for ln in lines if len(ln.x)]
        xs = [x for x in xs if len(x)]
        xlim = (min(x.min() for x in xs), max(x.max() for x in xs)) if xs else (0.0, 1.0)
    if not xlim[1] > xlim[0]:
        xlim = (xlim[0], xlim[0] + 1.0)
    return float(xlim[0]), float(xlim[1])


def figure(chart: Chart) -> Figure:
    """The matplotlib Figure of ``chart`` (with its Agg canvas), drawn with :data:`RC`."""
    with matplotlib.rc_context(RC):
        return _figure(chart)


def _figure(chart: Chart) -> Figure:
    fig = Figure(figsize=(chart.width, chart.height), dpi=PNG_DPI)
    lay = _Layout(fig, FigureCanvasAgg(fig))
    top = _header(lay, chart)
    ncols = max(1, chart.ncols)
    nrows = max(1, math.ceil(len(chart.panels) / ncols))
    labelled = [p for p in chart.panels if not isinstance(p, LinePanel)]
    # Room under the plots: x tick labels, then the panel's or the chart's x label.
    bottom = 18 + (TEXT_PT + 7 if labelled else 0) + (TEXT_PT + 7 if chart.xlabel else 0)
    gap_y = 38 if any(isinstance(p, LinePanel) for p in chart.panels) else 44
    cell_h = (lay.h - top - bottom - (nrows - 1) * gap_y) / nrows
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    xlim = _xlim(chart)
    ylabels: list[str] = []
    words: list[str] = []
    for i, (ax, panel) in enumerate(zip(axes, chart.panels, strict=False)):
        # Not Axes.sharex: every panel gets the same limits and ticks anyway, and a
        # shared axis measures its siblings' tick labels at each draw.
        if isinstance(panel, LinePanel):
            ylabels += _draw_lines(
                ax,
                panel,
                xlim,
                xtick_labels=i + ncols >= len(chart.panels),
                x_integers=chart.x_integers,
            )
        elif isinstance(panel, ForestPanel):
            words += _draw_forest(ax, panel, cell_h)
            ylabels += [r.label for _, group in panel.groups for r in group]
        else:
            _draw_bars(ax, panel, cell_h)
            ylabels += panel.labels
    for ax in axes[len(chart.panels) :]:
        fig.delaxes(ax)
    left = 8 + lay.width(ylabels, TEXT_PT) + 6
    right = 8 + (18 if labelled else 0)  # bar texts past the last tick
    if words:
        right = 8 + 6 + lay.width(words, TEXT_PT)
    if lay.w - left - right < MIN_PLOT_PT * ncols:  # long labels: widen, never crush the plot
        lay.w = left + right + MIN_PLOT_PT * ncols + 8 * (ncols - 1)
        fig.set_size_inches(lay.w / 72, lay.h / 72)
    gap_x = left + 6
    cell_w = (lay.w - left - right - (ncols - 1) * gap_x) / ncols
    for ax, panel in zip(axes, chart.panels, strict=False):
        if isinstance(panel, ForestPanel):  # as many change labels as the plot's width holds
            lo, hi = ax.get_xlim()
            ax.xaxis.set_major_locator(
                FixedLocator(forest_ticks(lo, hi, int(cell_w // FOREST_TICK_PT)))
            )
    fig.subplots_adjust(
        left=left / lay.w,
        right=1 - right / lay.w,
        bottom=bottom / lay.h,
        top=1 - top / lay.h,
        wspace=gap_x / cell_w if ncols > 1 else 0,
        hspace=gap_y / cell_h if nrows > 1 else 0,
    )
    if chart.xlabel:
        lay.text(lay.w / 2, 6, chart.xlabel, ha="center", va="bottom", fontsize=TEXT_PT)
    return fig


def _save_pdf(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="pdf", metadata={"Creator": "cachebench"})


def _write_pdf(chart: Chart, path: Path) -> None:
    """Draw ``chart`` and save it as a PDF (the helper process's job)."""
    with matplotlib.rc_context(RC):
        _save_pdf(_figure(chart), path)


#: A process's figures before a helper process starts: one more than the report
#: task draws besides dashboards (its decision figure, six campaign figures, a blog
#: figure per question: five), so it starts one only for many dashboards.
HELPER_FROM = 13
_HELPER = Helper(preload=__name__, start_at=HELPER_FROM)


def save(chart: Chart, fig_dir: Path, name: str) -> dict[str, str]:
    """Write ``fig_dir/<name>.png`` and ``.pdf``; returns {"fig_<name>_png": path, ...}.

    In a process that draws many figures, once the helper process is up (see
    :mod:`cachebench.report.figure_helper`), it draws the PDF while this one draws the PNG.
    """
    fig_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = fig_dir / f"{name}.png", fig_dir / f"{name}.pdf"
    pending = _HELPER.submit(_write_pdf, chart, pdf)
    with matplotlib.rc_context(RC):
        fig = _figure(chart)
        fig.savefig(png, format="png", dpi=PNG_DPI)
        if pending is None or not _HELPER.done(pending):
            _save_pdf(fig, pdf)
    return {f"fig_{name}_png": str(png), f"fig_{name}_pdf": str(pdf)}


__all__ = [
    "COLOURS",
    "RC",
    "BarPanel",
    "Chart",
    "ForestPanel",
    "ForestRow",
    "HLine",
    "Key",
    "Line",
    "LinePanel",
    "Mark",
    "figure",
    "save",
    "tick_labels",
]
