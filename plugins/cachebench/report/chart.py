"""Charts drawn straight onto matplotlib's renderers: PNG through Agg, PDF through the PDF backend.

Why not ``Figure``/``Axes``: a campaign of 50 points writes over a hundred figure
files, and on a 2-core box a matplotlib Figure of a few panels costs 150-250 ms
per PNG + PDF (every tick, tick label, grid line and legend entry is an Artist
with its own draw overhead; constrained layout draws twice; matplotlib 3.11's
Agg lays out and renders every glyph on every draw). The export-at-scale
benchmark (50 points, export + report in < 5 s at CloudWatch's period) leaves
about 60 ms a point for everything. So this module draws the same primitives
(paths and text) through the same renderers, so antialiasing, fonts and PDF
writing stay matplotlib's, for ~30 ms a PNG + PDF pair:

- the layout is fixed arithmetic in points (1/72 in): no layout engine;
- Agg text bitmaps and extents are cached per (string, font, size, dpi), since
  tick and bar labels repeat across points and figures;
- PDFs use the standard 14 fonts (Helvetica, not embedded): no font subsetting,
  text stays vector and selectable;
- PNGs are written unfiltered at zlib level 1, compressed in a thread while the
  PDF is drawn (zlib runs without the GIL).

A chart is plain data (:class:`Chart` of :class:`LinePanel` or :class:`BarPanel`),
so tests check what is drawn without rendering; :func:`save` renders it. The
few matplotlib internals used (``RendererAgg._renderer.draw_text_image``, the
PDF backend's text operators, ``_cached_get_afm_from_fname``) are pinned by
requirements.txt and covered by tests/unit/test_plots.py.
"""

from __future__ import annotations

import math
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import matplotlib

matplotlib.use("Agg")

import numpy as np
from matplotlib.backend_bases import GraphicsContextBase, RendererBase
from matplotlib.backends import _backend_pdf_ps, backend_pdf
from matplotlib.backends.backend_agg import RendererAgg, get_hinting_flag
from matplotlib.backends.backend_pdf import PdfFile, RendererPdf
from matplotlib.colors import to_rgba
from matplotlib.font_manager import FontProperties, findfont
from matplotlib.path import Path as MPath
from matplotlib.ticker import LogLocator, MaxNLocator
from matplotlib.transforms import Affine2D, Bbox

PNG_DPI = 100
GRID = "#d9d9d9"
AXIS = "#333333"
MUTED = "#666666"
#: Colour cycle (matplotlib's tab10) for nodes and series.
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
DASHES = {"-": None, "--": (0.0, (4.0, 2.0)), ":": (0.0, (1.2, 1.8)), "-.": (0.0, (4, 1.5, 1, 1.5))}
_MOVE_LINE = np.array([MPath.MOVETO, MPath.LINETO], dtype=MPath.code_type)
#: Series with fewer points than this get a dot at each sample (e.g. a 10-minute
#: run at CloudWatch's 60 s period); denser lines need none.
MARKERS_BELOW = 30


@dataclass
class Line:
    """A series in a line panel; ``lo``/``hi`` shade a band (the min-max of downsampled data)."""

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
    # Computed at the first rendering, then shared by the PNG and the PDF.
    _axis: _YAxis | None = field(default=None, init=False, repr=False, compare=False)

    def has_data(self) -> bool:
        return any(np.isfinite(ln.y).any() for ln in self.lines if len(ln.y))


@dataclass
class Mark:
    """A marker per bar group (e.g. each point's baseline bandwidth as "|")."""

    values: np.ndarray
    label: str
    colour: str
    style: str = "|"


@dataclass
class BarPanel:
    """Grouped horizontal bars, one group per label, first label on top."""

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
    keys: list[Key] = field(default_factory=list)  # chart-wide legend under the title
    note: str = ""  # small grey line under the title


# ---- rendering ----------------------------------------------------------------------


class _CachedTextAgg(RendererAgg):
    """RendererAgg that caches text extents and bitmaps (horizontal, non-math text).

    matplotlib 3.11 lays out a string (~0.5 ms) for its extent and again, glyph by
    glyph, to draw it; tick labels such as "0" or "20" are the same bitmap every
    time. One layout per distinct string gives both. Anything else (math, rotated
    text) goes to the stock implementation.
    """

    _texts: ClassVar[dict[tuple, tuple[float, float, float, np.ndarray, float]]] = {}
    _LIMIT = 20_000  # entries; cleared when full (long-lived workers)

    def _text(self, s: str, prop: FontProperties) -> tuple[float, float, float, np.ndarray, float]:
        """(width, height, descent, alpha bitmap, bitmap x offset) of ``s``, in pixels."""
        key = (s, prop.get_size_in_points(), str(prop.get_weight()), str(prop.get_style()))
        key += (tuple(prop.get_family()), self.dpi)
        hit = self._texts.get(key)
        if hit is None:
            font = self._prepare_font(prop)
            font.set_text(s, 0.0, flags=get_hinting_flag())
            w, h = font.get_width_height()
            descent = font.get_descent() / 64.0
            font.draw_glyphs_to_bitmap(antialiased=True)
            xo, _ = font.get_bitmap_offset()
            image = np.array(font.get_image(), dtype=np.uint8)  # a copy: the font reuses it
            if len(self._texts) > self._LIMIT:
                self._texts.clear()
            hit = self._texts[key] = (w / 64.0, h / 64.0, descent, image, xo / 64.0)
        return hit

    def get_text_width_height_descent(self, s: str, prop: FontProperties, ismath: Any):
        if ismath:
            return super().get_text_width_height_descent(s, prop, ismath)
        return self._text(s, prop)[:3]

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if ismath or angle:
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        _, _, descent, image, xo = self._text(s, prop)
        if image.size:
            # (x, y) is the baseline's left end, y downwards; the image is placed
            # by its bottom-left corner, which is the descent below the baseline.
            self._renderer.draw_text_image(image, round(x + xo), round(y + descent), 0, gc)


class _Pen:
    """Layout in points, y upwards from the bottom-left; converts to the renderer's units."""

    _extents: ClassVar[dict[tuple, tuple[float, float, float]]] = {}
    _files: ClassVar[dict[tuple[bool, bool], str]] = {}

    def __init__(self, renderer: RendererBase, width_pt: float, height_pt: float, scale: float):
        self.r = renderer
        self.w, self.h, self.s = width_pt, height_pt, scale
        self.to_device = Affine2D().scale(scale)
        self.pdf = isinstance(renderer, RendererPdf)
        family = "Helvetica" if self.pdf else "DejaVu Sans"
        regular = "medium" if self.pdf else "normal"  # Helvetica.afm's weight is "medium"
        self._props: dict[tuple[float, bool], FontProperties] = {}
        self._family, self._regular = family, regular
        self._gcs: dict[tuple, GraphicsContextBase] = {}

    def prop(self, size: float, bold: bool = False) -> FontProperties:
        key = (size, bold)
        if key not in self._props:
            self._props[key] = FontProperties(fname=self._font_file(bold), size=size)
        return self._props[key]

    def _font_file(self, bold: bool) -> str:
        """The font file, looked up once: a property naming its file skips matplotlib's
        font matching, which otherwise runs for every string drawn or measured."""
        key = (self.pdf, bold)
        if key not in self._files:
            weight = "bold" if bold else self._regular
            prop = FontProperties(family=self._family, weight=weight)
            if self.pdf:
                found = findfont(prop, fontext="afm", directory=RendererPdf._afm_font_dir)
            else:
                found = findfont(prop)
            self._files[key] = found
        return self._files[key]

    def gc(
        self,
        colour: str,
        width: float = 1.0,
        style: str = "-",
        alpha: float = 1.0,
        clip: tuple[float, float, float, float] | None = None,
    ) -> GraphicsContextBase:
        """A graphics context, shared by every primitive of the same look in this drawing."""
        key = (colour, width, style, alpha, clip)
        gc = self._gcs.get(key)
        if gc is not None:
            return gc
        gc = self._gcs[key] = self.r.new_gc()
        gc.set_foreground(to_rgba(colour, alpha), isRGBA=True)
        gc.set_linewidth(width)
        gc.set_antialiased(True)
        gc.set_capstyle("butt")
        gc.set_joinstyle("round")
        dash = DASHES.get(style)
        if dash is not None:
            gc.set_dashes(*dash)
        if clip is not None:
            x, y, w, h = clip
            gc.set_clip_rectangle(Bbox.from_bounds(x * self.s, y * self.s, w * self.s, h * self.s))
        return gc

    def path(self, pts: np.ndarray, gc: GraphicsContextBase, fill: str | None = None) -> None:
        face = to_rgba(fill, gc.get_rgb()[3]) if fill is not None else None
        self.r.draw_path(gc, MPath(pts), self.to_device, face)

    def segments(self, segs: np.ndarray, gc: GraphicsContextBase) -> None:
        """Many separate 2-point segments, (n, 2, 2), as one path."""
        if not len(segs):
            return
        codes = np.tile(_MOVE_LINE, len(segs))
        self.r.draw_path(gc, MPath(segs.reshape(-1, 2), codes), self.to_device)

    def hsegs(self, x0: float, x1: float, ys: Any, gc: GraphicsContextBase) -> None:
        """Horizontal segments from x0 to x1 at each of ``ys`` (grid lines, tick marks)."""
        ys = np.asarray(ys, dtype=float)
        segs = np.empty((len(ys), 2, 2))
        segs[:, 0, 0], segs[:, 1, 0], segs[:, 0, 1], segs[:, 1, 1] = x0, x1, ys, ys
        self.segments(segs, gc)

    def vsegs(self, xs: Any, y0: float, y1: float, gc: GraphicsContextBase) -> None:
        """Vertical segments from y0 to y1 at each of ``xs``."""
        xs = np.asarray(xs, dtype=float)
        segs = np.empty((len(xs), 2, 2))
        segs[:, 0, 0], segs[:, 1, 0], segs[:, 0, 1], segs[:, 1, 1] = xs, xs, y0, y1
        self.segments(segs, gc)

    def rect(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        gc: GraphicsContextBase,
        fill: str | None = None,
    ) -> None:
        pts = np.array([(x, y), (x + w, y), (x + w, y + h), (x, y + h), (x, y)])
        self.path(pts, gc, fill)

    def dots(self, pts: np.ndarray, colour: str, clip: tuple[float, float, float, float]) -> None:
        """A filled dot at each point, as one compound path (the PDF backend writes a
        marker per sample with Python overhead; one path is a single C call)."""
        circle = MPath.unit_circle()
        verts = (circle.vertices[None, :, :] * 1.4 + pts[:, None, :]).reshape(-1, 2)
        codes = np.tile(circle.codes, len(pts))
        self.r.draw_path(
            self.gc(colour, 0, clip=clip), MPath(verts, codes), self.to_device, to_rgba(colour)
        )

    def extent(self, s: str, size: float, bold: bool = False) -> tuple[float, float, float]:
        """(width, height, descent) of ``s`` in points (cached: labels repeat a lot)."""
        key = (self.pdf, self.s, s, size, bold)
        hit = self._extents.get(key)
        if hit is None:
            w, h, d = self.r.get_text_width_height_descent(s, self.prop(size, bold), False)
            if len(self._extents) > 20_000:
                self._extents.clear()
            hit = self._extents[key] = (w / self.s, h / self.s, d / self.s)
        return hit

    def text(
        self,
        x: float,
        y: float,
        s: str,
        size: float = 8.0,
        colour: str = "black",
        ha: str = "left",
        va: str = "baseline",
        bold: bool = False,
    ) -> float:
        """Draw ``s`` anchored at (x, y); returns its width in points."""
        if not s:
            return 0.0
        w, h, d = self.extent(s, size, bold)
        x -= {"left": 0.0, "center": w / 2, "right": w}[ha]
        y += {"baseline": 0.0, "bottom": d, "center": d - h / 2, "top": d - h}[va]
        gc = self.gc(colour)
        ty = (self.h - y) * self.s if self.r.flipy() else y * self.s
        self.r.draw_text(gc, x * self.s, ty, s, self.prop(size, bold), 0)
        return w


def _ticks(lo: float, hi: float, log: bool = False, nbins: int = 4) -> np.ndarray:
    """Nice tick values covering [lo, hi] (log: 1-2-5 per decade)."""
    if log:
        ticks = LogLocator(base=10, subs=(1.0, 2.0, 5.0)).tick_values(lo, hi)
    else:
        ticks = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    eps = (hi - lo) * 1e-9
    return ticks[(ticks >= lo - eps) & (ticks <= hi + eps)]


def tick_labels(ticks: np.ndarray, log: bool = False) -> list[str]:
    """Fewest decimals that tell the ticks apart exactly; thousands separated."""
    if log:
        return [f"{t:g}" for t in ticks]
    for dec in range(7):
        if np.allclose(np.round(ticks, dec), ticks, rtol=0, atol=1e-9 * max(1, abs(ticks).max())):
            return [f"{t:,.{dec}f}" for t in ticks]
    return [f"{t:,.6g}" for t in ticks]


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
    ticks = MaxNLocator(nbins=4, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    above = ticks[ticks >= hi]
    return lo, float(above[0]) if len(above) else hi


def _keys_width(pen: _Pen, keys: Sequence[Key], size: float) -> float:
    return sum(22 + pen.extent(k.label, size)[0] + 10 for k in keys)


def _draw_keys(pen: _Pen, x: float, y: float, keys: Sequence[Key], size: float = 7.5) -> None:
    """Legend keys in a row from (x, y) (the row's vertical centre)."""
    for k in keys:
        if k.style == "box":
            pen.rect(x + 2, y - 4, 14, 8, pen.gc(k.colour, 0), fill=k.colour)
        elif k.style in ("|", "x"):
            _mark(pen, x + 9, y, 8, k.style, pen.gc(k.colour, 1.2))
        else:
            pen.path(np.array([(x, y), (x + 18, y)]), pen.gc(k.colour, 1.5, k.style))
        x += 22
        x += pen.text(x, y, k.label, size, va="center") + 10


def _mark(pen: _Pen, x: float, y: float, size: float, style: str, gc: GraphicsContextBase) -> None:
    """A "|" or "x" marker centred on (x, y)."""
    half = size / 2
    if style == "|":
        segs = np.array([[(x, y - half), (x, y + half)]])
    else:
        q = half * 0.7
        segs = np.array([[(x - q, y - q), (x + q, y + q)], [(x - q, y + q), (x + q, y - q)]])
    pen.segments(segs, gc)


def _draw_header(pen: _Pen, chart: Chart) -> float:
    """Title, note and chart-wide keys; returns the y (points) where panels may start."""
    y = pen.h - 8
    pen.text(pen.w / 2, y, chart.title, 12, ha="center", va="top", bold=True)
    y -= 17
    if chart.note:
        pen.text(pen.w / 2, y - 2, chart.note, 7.5, MUTED, ha="center", va="top")
        y -= 12
    if chart.keys:
        width = _keys_width(pen, chart.keys, 7.5)
        _draw_keys(pen, max(8.0, (pen.w - width) / 2), y - 8, chart.keys)
        y -= 16
    return y - 4


@dataclass
class _YAxis:
    lo: float
    hi: float
    ticks: np.ndarray
    labels: list[str]


def _y_axis(panel: LinePanel) -> _YAxis:
    if panel._axis is None:
        lo, hi = _y_range(panel)
        ticks = _ticks(lo, hi)
        panel._axis = _YAxis(lo, hi, ticks, tick_labels(ticks))
    return panel._axis


def _draw_line_panel(
    pen: _Pen,
    panel: LinePanel,
    cell: tuple[float, float, float, float],
    xlim: tuple[float, float],
    xticks: np.ndarray,
    xlabels: list[str],
    yaxis: _YAxis,
    label_w: float,
    xtick_labels: bool = True,
) -> None:
    cx, cy, cw, ch = cell
    lo, hi, yticks, ylabels = yaxis.lo, yaxis.hi, yaxis.ticks, yaxis.labels
    left = cx + label_w + 8
    right = cx + cw - 6
    top = cy + ch - 16
    bottom = cy + 14
    pw, ph = right - left, top - bottom
    if pw <= 10 or ph <= 10:
        return
    pen.text(left, top + 5, panel.title, 8.5, bold=True)
    keys = [*panel.keys, *(Key(h.label, h.colour, h.style) for h in panel.hlines)]
    if keys:
        _draw_keys(pen, right - _keys_width(pen, keys, 7), top + 8, keys, 7)

    def sx(x: np.ndarray | float) -> Any:
        return left + (np.asarray(x, dtype=float) - xlim[0]) / (xlim[1] - xlim[0]) * pw

    def sy(y: np.ndarray | float) -> Any:
        return bottom + (np.asarray(y, dtype=float) - lo) / (hi - lo) * ph

    grid = pen.gc(GRID, 0.5)
    ticks = pen.gc(AXIS, 0.8)
    ys = sy(yticks)
    pen.hsegs(left, right, ys, grid)
    pen.hsegs(left - 3, left, ys, ticks)
    for yv, s in zip(ys, ylabels, strict=True):
        pen.text(left - 5, yv, s, 7, ha="right", va="center")
    xs = sx(xticks)
    pen.vsegs(xs, bottom, bottom - 3, ticks)
    if xtick_labels:  # the bottom row only: the x axis is shared
        for xv, s in zip(xs, xlabels, strict=True):
            pen.text(xv, bottom - 4, s, 7, ha="center", va="top")

    clip = (left, bottom, pw, ph)
    if not panel.has_data():
        pen.text(left + pw / 2, bottom + ph / 2, panel.empty, 8, MUTED, ha="center", va="center")
    for ln in panel.lines:
        if ln.lo is not None and ln.hi is not None and len(ln.x):
            upper = np.column_stack([sx(ln.x), sy(ln.hi)])
            lower = np.column_stack([sx(ln.x[::-1]), sy(ln.lo[::-1])])
            band = np.concatenate([upper, lower])
            band = band[np.isfinite(band).all(axis=1)]
            if len(band) > 2:
                pen.path(band, pen.gc(ln.colour, 0, alpha=0.15, clip=clip), fill=ln.colour)
    for ln in panel.lines:
        if not len(ln.x):
            continue
        pts = np.column_stack([sx(ln.x), sy(ln.y)])
        gc = pen.gc(ln.colour, ln.width, ln.style, clip=clip)
        pen.path(pts, gc)
        if len(pts) < MARKERS_BELOW and ln.style == "-":
            finite = pts[np.isfinite(pts).all(axis=1)]
            if len(finite):
                pen.dots(finite, ln.colour, clip)
    for h in panel.hlines:
        if math.isfinite(h.y):
            yv = float(sy(h.y))
            pen.hsegs(left, right, [yv], pen.gc(h.colour, h.width, h.style, clip=clip))
    pen.rect(left, bottom, pw, ph, pen.gc(AXIS, 0.8))


def _draw_bar_panel(pen: _Pen, panel: BarPanel, cell: tuple[float, float, float, float]) -> None:
    cx, cy, cw, ch = cell
    n, k = len(panel.labels), max(1, len(panel.series))
    label_size = 7 if n > 15 else 8
    label_w = max((pen.extent(s, label_size)[0] for s in panel.labels), default=0.0)
    left = cx + label_w + 10
    right = cx + cw - 10
    top = cy + ch - 4
    bottom = cy + 34
    pw, ph = right - left, top - bottom
    if pw <= 10 or ph <= 10 or n == 0:
        return
    values = [np.asarray(v, dtype=float) for v in panel.series.values()]
    finite = np.concatenate([v[np.isfinite(v)] for v in values] or [np.array([])])
    for m in panel.marks:
        finite = np.r_[finite, m.values[np.isfinite(m.values)]]
    if panel.log:
        pos = finite[finite > 0]
        lo = 10 ** math.floor(math.log10(pos.min())) if len(pos) else 0.1
        hi = 10 ** math.ceil(math.log10(pos.max() * 1.5)) if len(pos) else 10.0
    else:
        lo = panel.xlim[0] if panel.xlim[0] is not None else min(0.0, *finite)
        hi = max(finite.max() * (1.15 if panel.bar_text else 1.05), lo + 1) if len(finite) else 1.0
    if panel.xlim[1] is not None:
        hi = max(hi, panel.xlim[1]) if not panel.log else hi
    xticks = _ticks(lo, hi, panel.log, nbins=6)

    def sx(x: np.ndarray | float) -> Any:
        v = np.asarray(x, dtype=float)
        if panel.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.log10(np.where(v > 0, v, np.nan))
            a, b = math.log10(lo), math.log10(hi)
        else:
            a, b = lo, hi
        return left + np.clip((v - a) / (b - a), 0, 1) * pw

    slot = ph / n
    bar = slot * 0.8 / k
    centre = top - slot * (np.arange(n) + 0.5)  # first label on top
    grid = pen.gc(GRID, 0.5)
    xs = sx(xticks)
    pen.vsegs(xs, bottom, top, grid)
    pen.vsegs(xs, bottom, bottom - 3, pen.gc(AXIS, 0.8))
    for xv, s in zip(xs, tick_labels(xticks, panel.log), strict=True):
        pen.text(xv, bottom - 4, s, 7, ha="center", va="top")
    pen.text(left + pw / 2, bottom - 16, panel.xlabel, 8, ha="center", va="top")
    for yc, s in zip(centre, panel.labels, strict=True):
        pen.text(left - 5, yc, s, label_size, ha="right", va="center")
    colours = panel.colours or [COLOURS[i % len(COLOURS)] for i in range(k)]
    base = sx(lo if panel.log else max(lo, 0.0))
    for i, vals in enumerate(values):
        yc = centre + (k - 1 - 2 * i) * bar / 2
        ends = sx(vals)
        for j in range(n):
            if not math.isfinite(vals[j]):
                continue
            colour = panel.bar_colours[j] if panel.bar_colours and k == 1 else colours[i]
            x0, x1 = min(base, ends[j]), max(base, ends[j])
            pen.rect(x0, yc[j] - bar / 2, max(x1 - x0, 0.3), bar, pen.gc(colour, 0), fill=colour)
            if i == 0 and panel.bar_text and panel.bar_text[j]:
                pen.text(x1 + 2, yc[j], panel.bar_text[j], 6.5, ha="left", va="center")
    for m in panel.marks:
        gc = pen.gc(m.colour, 1.2)
        for j, v in enumerate(m.values):
            if math.isfinite(v):
                _mark(pen, float(sx(v)), float(centre[j]), slot * 0.9, m.style, gc)
    pen.rect(left, bottom, pw, ph, pen.gc(AXIS, 0.8))


def draw(renderer: RendererBase, chart: Chart, scale: float, background: bool = True) -> None:
    """Draw ``chart`` on ``renderer`` (``scale`` = device units per point), on white
    unless ``background`` is False (the caller painted it)."""
    w_pt, h_pt = chart.width * 72, chart.height * 72
    pen = _Pen(renderer, w_pt, h_pt, scale)
    if background:
        pen.rect(0, 0, w_pt, h_pt, pen.gc("white", 0), fill="white")
    top = _draw_header(pen, chart)
    lines = [p for p in chart.panels if isinstance(p, LinePanel)]
    xlim = chart.xlim
    if xlim is None:
        xs = [ln.x[np.isfinite(ln.x)] for p in lines for ln in p.lines if len(ln.x)]
        xs = [x for x in xs if len(x)]
        xlim = (min(x.min() for x in xs), max(x.max() for x in xs)) if xs else (0.0, 1.0)
    if not xlim[1] > xlim[0]:
        xlim = (xlim[0], xlim[0] + 1.0)
    xticks = _ticks(*xlim, nbins=8)
    xlabels = tick_labels(xticks)
    ncols = max(1, chart.ncols)
    nrows = max(1, math.ceil(len(chart.panels) / ncols))
    bottom = 20 if chart.xlabel else 6
    cw, ch = (w_pt - 12) / ncols, (top - bottom) / nrows
    yaxes = {id(p): _y_axis(p) for p in lines}
    # One label width for all panels, so plot areas line up in each column.
    label_w = max((pen.extent(t, 7)[0] for a in yaxes.values() for t in a.labels), default=0.0)
    for i, panel in enumerate(chart.panels):
        r, c = divmod(i, ncols)
        cell = (6 + c * cw, top - (r + 1) * ch, cw, ch)
        if isinstance(panel, LinePanel):
            last_row = i + ncols >= len(chart.panels)
            _draw_line_panel(
                pen, panel, cell, xlim, xticks, xlabels, yaxes[id(panel)], label_w, last_row
            )
        else:
            _draw_bar_panel(pen, panel, cell)
    if chart.xlabel:
        pen.text(w_pt / 2, 6, chart.xlabel, 8, ha="center", va="bottom")


def _png_rows(rgba: np.ndarray) -> np.ndarray:
    """PNG scanlines of an (h, w, 4) uint8 image: filter byte 0 (None), then RGBA."""
    h, w = rgba.shape[:2]
    raw = np.empty((h, 1 + 4 * w), dtype=np.uint8)
    raw[:, 0] = 0
    raw[:, 1:] = rgba.reshape(h, 4 * w)
    return raw


def _png_from_rows(raw: np.ndarray) -> bytes:
    """The PNG file of :func:`_png_rows` output (zlib level 1; it releases the GIL)."""
    h, w = raw.shape[0], (raw.shape[1] - 1) // 4

    def chunk(tag: bytes, payload: bytes) -> bytes:
        body = tag + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)  # 8-bit RGBA, not interlaced
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 1))
        + chunk(b"IEND", b"")
    )


def png_bytes(rgba: np.ndarray) -> bytes:
    """A PNG of an (h, w, 4) uint8 RGBA image: no row filter, zlib level 1.

    Pillow's encoder tries a filter per row and needs an RGB copy first; for
    flat-colour charts that costs twice the time for a larger file. The alpha
    channel (opaque everywhere) compresses to almost nothing.
    """
    return _png_from_rows(_png_rows(rgba))


_AGG = threading.local()


def _agg_renderer(w: int, h: int, dpi: float) -> _CachedTextAgg:
    """A blank Agg canvas; the last one of this size is reused (this thread's), since
    making one allocates the buffer and sets up a math-text parser each time."""
    key = (w, h, dpi)
    if getattr(_AGG, "key", None) != key:
        _AGG.key, _AGG.renderer = key, _CachedTextAgg(w, h, dpi)
    renderer = _AGG.renderer
    np.asarray(renderer.buffer_rgba())[:] = 255  # opaque white: cheaper than a filled path
    return renderer


def _agg_rows(chart: Chart, dpi: float) -> np.ndarray:
    """Draw ``chart`` with Agg; its PNG scanlines."""
    w, h = round(chart.width * dpi), round(chart.height * dpi)
    renderer = _agg_renderer(w, h, dpi)
    draw(renderer, chart, dpi / 72.0, background=False)
    return _png_rows(np.asarray(renderer.buffer_rgba()))


def render_png(chart: Chart, path: Path, dpi: float = PNG_DPI) -> None:
    """Draw with Agg and write a PNG."""
    Path(path).write_bytes(_png_from_rows(_agg_rows(chart, dpi)))


class _PdfFile(PdfFile):
    """PdfFile that reuses matplotlib's parsed AFM metrics of the standard fonts.

    The stock ``_write_afm_font`` parses the whole AFM file (kerning tables and
    all, ~10 ms) for every PDF just to read the font's name.
    """

    def _write_afm_font(self, filename: str) -> Any:
        cached = getattr(_backend_pdf_ps, "_cached_get_afm_from_fname", None)
        if cached is None:  # another matplotlib: the stock way
            return super()._write_afm_font(filename)
        fontdict = {
            "Type": backend_pdf.Name("Font"),
            "Subtype": backend_pdf.Name("Type1"),
            "BaseFont": backend_pdf.Name(cached(filename).get_fontname()),
            "Encoding": backend_pdf.Name("WinAnsiEncoding"),
        }
        obj = self.reserveObject("font dictionary")
        self.writeObject(obj, fontdict)
        return obj


class _PdfRenderer(RendererPdf):
    """RendererPdf whose standard-font text skips font matching.

    With ``pdf.use14corefonts`` the stock ``draw_text`` matches the font
    properties against the font list twice per string (~60 us each) only to name
    a font the properties already name by file. Our properties name the AFM file,
    so the text operators are written directly, as the stock code writes them.
    """

    def draw_text(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):
        fname = prop.get_file()
        if ismath or not isinstance(fname, str) or not fname.endswith(".afm"):
            return super().draw_text(gc, x, y, s, prop, angle, ismath, mtext)
        op = backend_pdf.Op
        self.check_gc(gc, gc._rgb)
        self.file.output(
            op.begin_text, self.file.fontName(fname), prop.get_size_in_points(), op.selectfont
        )
        self._setup_textpos(x, y, angle)
        self.file.output(self.encode_string(s, fonttype=1), op.show, op.end_text)


def render_pdf(chart: Chart, path: Path) -> None:
    """Draw with the PDF backend; text in Helvetica (standard font, not embedded)."""
    with matplotlib.rc_context({"pdf.use14corefonts": True, "pdf.compression": 1}):
        pdf = _PdfFile(str(path), metadata={"Creator": "cachebench"})
        try:
            pdf.newPage(chart.width, chart.height)
            renderer = _PdfRenderer(pdf, 72, chart.height, chart.width)
            draw(renderer, chart, 1.0)
            renderer.finalize()
            pdf.finalize()
        finally:
            pdf.close()


def save(chart: Chart, fig_dir: Path, name: str) -> dict[str, str]:
    """Write ``fig_dir/<name>.png`` and ``.pdf``; returns {"fig_<name>_png": path, ...}.

    The PNG's compression (zlib, without the GIL) runs in a thread while the PDF
    is drawn: a second core, when there is one, takes a third of the work.
    """
    fig_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = fig_dir / f"{name}.png", fig_dir / f"{name}.pdf"
    rows = _agg_rows(chart, PNG_DPI)
    failed: list[BaseException] = []

    def write_png() -> None:
        try:
            png.write_bytes(_png_from_rows(rows))
        except BaseException as exc:  # re-raised in the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=write_png, name="cachebench-png", daemon=True)
    worker.start()
    try:
        render_pdf(chart, pdf)
    finally:
        worker.join()
    if failed:
        raise failed[0]
    return {f"fig_{name}_png": str(png), f"fig_{name}_pdf": str(pdf)}


__all__ = [
    "COLOURS",
    "BarPanel",
    "Chart",
    "HLine",
    "Key",
    "Line",
    "LinePanel",
    "Mark",
    "draw",
    "png_bytes",
    "render_pdf",
    "render_png",
    "save",
    "tick_labels",
]
