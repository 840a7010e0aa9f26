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
    Formatter,
    FuncFormatter,
    LogLocator,
    MaxNLocator,
    NullFormatter,
)

from cachebench.report.worker import Helper

# fontTools, which subsets the PDF fonts, logs a hundred INFO lines per PDF: in an
# Airflow task log (where INFO is shown) that would bury everything else.
logging.getLogger("fontTools.subset").setLevel(logging.WARNING)

PNG_DPI = 100
GRID = "#d9d9d9"
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
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
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
    bar_colours: list[str] | None = None  # one per label (single series: e.g. by engine)
    bar_text: list[str] | None = None  # printed at the end of the first series' bars
    marks: list[Mark] = field(default_factory=list)
    keys: list[Key] = field(default_factory=list)
    log: bool = False
    xlim: tuple[float | None, float | None] = (0.0, None)


@dataclass
class Chart:
    """A titled page of panels on a grid (``ncols`` wide), sized in inches."""

    title: str
    panels: Sequence[LinePanel | BarPanel]
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
    finite = np.concatenate([v[np.isfinite(v)] for v in values] or [np.array([])])
    if panel.log:
        pos = finite[finite > 0]
        if not len(pos):
            return 0.1, 10.0
        return 10.0 ** math.floor(math.log10(pos.min())), 10.0 ** math.ceil(
            math.log10(pos.max() * 1.5)
        )
    lo = panel.xlim[0] if panel.xlim[0] is not None else min(0.0, *finite)
    hi = max(finite.max() * (1.15 if panel.bar_text else 1.05), lo + 1) if len(finite) else 1.0
    if panel.xlim[1] is not None:
        hi = max(hi, panel.xlim[1])
    return float(lo), float(hi)


# ---- drawing -------------------------------------------------------------------------


def _handle(key: Key) -> Any:
    """A legend handle for ``key``."""
    if key.style == "box":
        return Patch(facecolor=key.colour, edgecolor="none", label=key.label)
    if key.style in ("|", "x"):
        return Line2D(
            [], [], color=key.colour, ls="none", marker=key.style, ms=7, mew=1.2, label=key.label
        )
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
    lay.text(lay.w / 2, y, chart.title, ha="center", va="top", fontsize=12)
    y -= 17
    if chart.note:
        lay.text(lay.w / 2, y - 2, chart.note, ha="center", va="top", fontsize=7.5, color=MUTED)
        y -= 12
    if chart.keys:
        entry = lay.width([k.label for k in chart.keys], 7.5) + 34
        ncols = max(1, min(len(chart.keys), int((lay.w - 16) // entry)))
        rows = math.ceil(len(chart.keys) / ncols)
        lay.fig.legend(
            handles=[_handle(k) for k in chart.keys],
            loc="upper center",
            bbox_to_anchor=(0.5, (y - 1) / lay.h),
            ncols=ncols,
            frameon=False,
            fontsize=7.5,
            borderaxespad=0,
            borderpad=0,
            handlelength=1.8,
            columnspacing=1.2,
        )
        y -= 12 * rows + 4
    return lay.h - y + 4


def _panel_keys(ax: Axes, keys: Sequence[Key]) -> None:
    """A panel's legend in one row above its plot, right-aligned."""
    ax.legend(
        handles=[_handle(k) for k in keys],
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncols=len(keys),
        frameon=False,
        fontsize=7,
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
    ax.set_title(panel.title, loc="left", fontsize=8.5, y=1.0, pad=4)
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
            fontsize=8,
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
    if panel.log:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10))  # decades
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        ax.xaxis.set_major_locator(_linear(6))
        ax.xaxis.set_major_formatter(_Decimals())
    ax.set_xlim(lo, hi)
    ax.set_ylim(n - 0.5, -0.5)  # first label on top
    centre = np.arange(n, dtype=float)
    bar = 0.8 / k
    colours = panel.colours or [COLOURS[i % len(COLOURS)] for i in range(k)]
    base = lo if panel.log else max(lo, 0.0)
    for i, (name, vals) in enumerate(panel.series.items()):
        vals = np.asarray(vals, dtype=float)
        ok = np.isfinite(vals) & ((vals > 0) if panel.log else True)
        if panel.bar_colours and k == 1:
            colour: Any = [c for c, keep in zip(panel.bar_colours, ok, strict=True) if keep]
        else:
            colour = colours[i]
        # One collection of rectangles per series, not a patch per bar (Axes.barh):
        # a campaign's figure has 200 bars, each patch costs its own limits and draw.
        yc = centre[ok] + (i - (k - 1) / 2) * bar
        x0, x1 = np.minimum(base, vals[ok]), np.maximum(base, vals[ok])
        y0, y1 = yc - bar / 2, yc + bar / 2
        corners = [np.column_stack(c) for c in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
        rects = PolyCollection(
            np.stack(corners, axis=1), facecolors=colour, edgecolors="none", label=name
        )
        ax.add_collection(rects, autolim=False)
        if i == 0 and panel.bar_text:
            for text, x, y in zip(np.asarray(panel.bar_text)[ok], vals[ok], yc, strict=True):
                if text:
                    ax.annotate(
                        text,
                        (x, y),
                        xytext=(2, 0),
                        textcoords="offset points",
                        va="center",
                        fontsize=6.5,
                    )
    present = np.zeros(n, dtype=bool)
    for vals in panel.series.values():
        present |= np.isfinite(np.asarray(vals, dtype=float))
    for j in np.flatnonzero(~present):  # a missing value is said, not drawn as zero
        ax.annotate(
            "n/a",
            (base, centre[j]),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=6.5,
            color=MUTED,
        )
    slot = height_pt / max(n, 1)
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
    ax.set_yticks(centre, panel.labels, fontsize=7 if n > 15 else 8)
    ax.tick_params(axis="y", length=0)
    ax.set_xlabel(panel.xlabel, fontsize=8, labelpad=3)
    ax.grid(True, axis="x", which="major", color=GRID, lw=0.5)
    ax.set_axisbelow(True)


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
    bars = [p for p in chart.panels if isinstance(p, BarPanel)]
    # Room under the plots: x tick labels, then the bar panel's or the chart's x label.
    bottom = 16 + (14 if bars else 0) + (14 if chart.xlabel else 0)
    gap_y = 34 if any(isinstance(p, LinePanel) for p in chart.panels) else 40
    cell_h = (lay.h - top - bottom - (nrows - 1) * gap_y) / nrows
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    xlim = _xlim(chart)
    ylabels: list[str] = []
    for i, (ax, panel) in enumerate(zip(axes, chart.panels, strict=False)):
        # Not Axes.sharex: every panel gets the same limits and ticks anyway, and a
        # shared axis measures its siblings' tick labels at each draw.
        if isinstance(panel, LinePanel):
            ylabels += _draw_lines(
                ax, panel, xlim, i + ncols >= len(chart.panels), chart.x_integers
            )
        else:
            _draw_bars(ax, panel, cell_h)
            ylabels += panel.labels
    for ax in axes[len(chart.panels) :]:
        fig.delaxes(ax)
    size = 7 if any(len(p.labels) > 15 for p in bars) else 8 if bars else 7
    left = 8 + lay.width(ylabels, size) + 6
    right = 8 + (14 if bars else 0)  # bar texts past the last tick
    gap_x = left + 6
    cell_w = (lay.w - left - right - (ncols - 1) * gap_x) / ncols
    fig.subplots_adjust(
        left=left / lay.w,
        right=1 - right / lay.w,
        bottom=bottom / lay.h,
        top=1 - top / lay.h,
        wspace=gap_x / cell_w if ncols > 1 else 0,
        hspace=gap_y / cell_h if nrows > 1 else 0,
    )
    if chart.xlabel:
        lay.text(lay.w / 2, 6, chart.xlabel, ha="center", va="bottom", fontsize=8)
    return fig


def _save_pdf(fig: Figure, path: Path) -> None:
    fig.savefig(path, format="pdf", metadata={"Creator": "cachebench"})


def _write_pdf(chart: Chart, path: Path) -> None:
    """Draw ``chart`` and save it as a PDF (the helper process's job)."""
    with matplotlib.rc_context(RC):
        _save_pdf(_figure(chart), path)


#: A process's figures before a helper process starts: one more than the report
#: task draws (its five campaign figures), so no Airflow task starts one.
HELPER_FROM = 6
_HELPER = Helper(preload=__name__, start_at=HELPER_FROM)


def save(chart: Chart, fig_dir: Path, name: str) -> dict[str, str]:
    """Write ``fig_dir/<name>.png`` and ``.pdf``; returns {"fig_<name>_png": path, ...}.

    In a process that draws many figures, once the helper process is up (see
    :mod:`cachebench.report.worker`), it draws the PDF while this one draws the PNG.
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
    "HLine",
    "Key",
    "Line",
    "LinePanel",
    "Mark",
    "figure",
    "save",
    "tick_labels",
]
