"""Figures: downsampling for drawing, what the matplotlib Figures show, valid PNG/PDF files."""

from __future__ import annotations

import logging
import os
import re
import signal
import struct
import time
import zlib
from concurrent.futures import Future

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection, PolyCollection
from PIL import Image
from test_export_support import T0, make_load, make_metrics, make_spec

from cachebench.report import chart, decision, palette, plots
from cachebench.report.chart import BarPanel, Chart, HLine, Line, LinePanel, Mark
from cachebench.report.export import network_gbps, normalize_metrics
from cachebench.report.figure_helper import Helper

BLUE = (0x1F, 0x77, 0xB4)  # tab10's first colour, as drawn


def test_envelope_keeps_extremes_and_bucket_means():
    x = np.arange(3600.0)
    y = np.sin(x / 50) * 10
    y[1234] = 99.0
    y[2222] = -42.0
    xs, mean, lo, hi = plots.envelope(x, y, buckets=300)
    assert len(xs) == len(mean) == len(lo) == len(hi) == 300
    assert hi.max() == 99.0 and lo.min() == -42.0  # no spike lost
    assert np.all(lo <= mean) and np.all(mean <= hi)
    assert mean[0] == pytest.approx(y[:12].mean()) and xs[0] == pytest.approx(x[:12].mean())
    assert mean.mean() == pytest.approx(y.mean())  # equal buckets: mean of means


def test_envelope_keeps_a_short_series_nan_as_a_gap():
    x, y = np.arange(10.0), np.arange(10.0) ** 2
    y[3] = np.nan
    xs, ys, lo, hi = plots.envelope(x, y)
    assert lo is None and hi is None
    assert list(xs) == list(range(10))
    assert np.isnan(ys[3]) and ys[4] == 16  # missing, not zero and not skipped


def test_envelope_breaks_the_line_over_a_hole_in_time():
    # Samples every second, none from 20 s to 40 s (a node down): one NaN row there.
    x = np.r_[np.arange(0, 20.0), np.arange(40, 60.0)]
    xs, ys, _, _ = plots.envelope(x, np.full(len(x), 5.0))
    (hole,) = np.flatnonzero(np.isnan(ys))
    assert xs[hole - 1] == 19 and xs[hole + 1] == 40 and 19 < xs[hole] < 40
    assert np.isfinite(ys).sum() == 40
    # An hour at 1 s with a 120 s hole: 12 s buckets, so 10 have no sample.
    x = np.r_[np.arange(0, 1800.0), np.arange(1920, 3600.0)]
    xs, mean, lo, hi = plots.envelope(x, np.ones(len(x)), buckets=300)
    (hole,) = np.flatnonzero(np.isnan(mean))
    assert np.isnan(lo[hole]) and np.isnan(hi[hole])
    assert xs[hole - 1] < 1800 < 1920 < xs[hole + 1]


def test_envelope_uneven_sampling_uses_time_buckets():
    x = np.r_[np.arange(0, 100, 0.1), np.arange(100, 1000, 10.0)]  # dense, then sparse
    xs, mean, lo, hi = plots.envelope(x, x, buckets=100)
    assert np.allclose(mean, xs)  # y = x: each bucket mean sits at its mean time
    assert len(xs) <= 100 and np.all(np.diff(xs) > 0)  # no hole: the sparse part is regular
    # Buckets are equal time spans: the dense first 100 s fill about a tenth of them.
    assert (xs < 100).sum() == pytest.approx(10, abs=1)
    assert lo.min() == 0 and hi.max() == 990


def test_tick_labels():
    assert chart.tick_labels(np.array([0, 50_000, 100_000.0])) == ["0", "50,000", "100,000"]
    assert chart.tick_labels(np.array([0, 0.25, 0.5])) == ["0.00", "0.25", "0.50"]
    assert chart.tick_labels(np.array([0.1, 1, 10.0]), log=True) == ["0.1", "1", "10"]


# ---- line panels ---------------------------------------------------------------------


def _line_chart(title: str = "A chart") -> Chart:
    x = np.linspace(0, 60, 50)
    panels = [
        LinePanel(
            "cpu (%)",
            [Line(x, 50 + 10 * np.sin(x), "#1f77b4"), Line(x, 30 + x / 3, "#ff7f0e", "--")],
            hlines=[HLine(90.0, "limit 90")],
            ymax_at_least=100,
        ),
        LinePanel("empty", [], empty="nothing here"),
    ]
    return Chart(title, panels, width=8, height=4, ncols=2, xlabel="minutes")


def _rgb(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3]


def _pixel(ax, x: float, y: float, height: int) -> tuple[int, int]:
    """(row, column) in the rendered image of data point (x, y) of ``ax``."""
    px, py = ax.transData.transform((x, y))
    return round(height - py), round(px)


def test_line_panel_shows_its_lines_reference_line_and_empty_message():
    c = _line_chart()
    fig = chart.figure(c)
    cpu, empty = fig.axes
    assert cpu.get_title(loc="left") == "cpu (%)"
    sine, ramp, limit = cpu.get_lines()
    assert np.array_equal(sine.get_xdata(), c.panels[0].lines[0].x)
    assert np.array_equal(sine.get_ydata(), c.panels[0].lines[0].y)
    assert sine.get_color() == "#1f77b4" and ramp.get_linestyle() == "--"
    assert list(limit.get_ydata()) == [90.0, 90.0] and limit.get_linestyle() == "--"
    assert cpu.get_ylim() == (0.0, 100.0)  # from 0, and at least 100 (ymax_at_least)
    assert cpu.get_xlim() == (0.0, 60.0)
    legend = [t.get_text() for t in cpu.get_legend().get_texts()]
    assert legend == ["limit 90"]
    assert [t.get_text() for t in empty.texts] == ["nothing here"]
    assert empty.get_lines() == []
    assert "minutes" in [t.get_text() for t in fig.texts]


def test_missing_samples_are_gaps_in_the_line_not_zeros():
    x = np.arange(0, 61.0)
    y = np.full(len(x), 50.0)
    y[20:41] = np.nan  # nothing measured from 20 s to 40 s
    c = Chart("gap", [LinePanel("cpu (%)", [Line(x, y, "#1f77b4", width=2.0)])], width=6, height=3)
    fig = chart.figure(c)
    (ax,) = fig.axes
    (line,) = ax.get_lines()
    assert np.isnan(line.get_ydata()[20:41]).all()  # the data keep the hole
    img = _rgb(fig)
    h = img.shape[0]

    def blue_near(x: float, y: float) -> bool:
        r, col = _pixel(ax, x, y, h)
        patch = img[r - 2 : r + 3, col - 1 : col + 2].reshape(-1, 3).astype(int)
        return bool((np.abs(patch - BLUE).sum(axis=1) < 60).any())

    assert blue_near(10, 50) and blue_near(50, 50)  # drawn where measured
    assert not blue_near(30, 50)  # no bridge over the hole
    assert not any(blue_near(t, 0) for t in (25, 30, 35))  # and no line at zero


def _hole_metrics() -> pd.DataFrame:
    """n1 sends nothing from 20 s to 40 s; n2 sends every second."""
    m = make_metrics("p", nodes=("n1", "n2"), seconds=60)
    secs = m["timestamp"] - T0
    return m[~((m["node_id"] == "n1") & (secs >= 20) & (secs < 40))]


def test_dashboard_breaks_a_nodes_line_where_it_sent_nothing():
    m = normalize_metrics(_hole_metrics())
    c = plots.point_chart("t", m, network_gbps(m), make_load(), make_spec(), T0)
    fig = chart.figure(c)
    (cpu,) = [ax for ax in fig.axes if ax.get_title(loc="left").startswith("CPUUtilization")]
    n1, n2 = cpu.get_lines()  # nodes in name order
    # nodes in shades of the configuration's colour (the palette's first by default)
    assert [n1.get_color(), n2.get_color()] == palette.shades(palette.CONFIGURATION_COLOURS[0], 2)
    x1, y1 = n1.get_xdata(), n1.get_ydata()
    (hole,) = np.flatnonzero(np.isnan(y1))
    assert x1[hole - 1] == 19 and x1[hole + 1] == 40
    assert np.isfinite(n2.get_ydata()).all() and len(n2.get_ydata()) == 60
    assert len(fig.axes) == 8  # the dashboard's panels


# ---- bar panels ----------------------------------------------------------------------


def _bars(fig_or_ax) -> dict[str, list[tuple[float, float, float]]]:
    """{series: [(left, right, y centre), ...]} of a bar panel's rectangles, top to bottom
    (a series' hatched bars are a collection of their own)."""
    ax = fig_or_ax
    out: dict[str, list[tuple[float, float, float]]] = {}
    for coll in ax.collections:
        if isinstance(coll, PolyCollection):
            boxes = [p.vertices for p in coll.get_paths()]
            out.setdefault(coll.get_label(), []).extend(
                (v[:, 0].min(), v[:, 0].max(), (v[:, 1].min() + v[:, 1].max()) / 2) for v in boxes
            )
    return {k: sorted(v, key=lambda b: b[2]) for k, v in out.items()}


def _hatched(ax) -> list[float]:
    """The y centres of the hatched bars, top to bottom."""
    return sorted(
        (v[:, 1].min() + v[:, 1].max()) / 2
        for coll in ax.collections
        if isinstance(coll, PolyCollection) and coll.get_hatch()
        for v in (p.vertices for p in coll.get_paths())
    )


def _whiskers(ax) -> list[tuple[float, float, float]]:
    """(low, high, y) of each interval drawn on a bar panel, top to bottom."""
    out = [
        (min(seg[:, 0]), max(seg[:, 0]), seg[0, 1])
        for coll in ax.collections
        if isinstance(coll, LineCollection)
        for seg in coll.get_segments()
    ]
    return sorted(out, key=lambda w: w[2])


def _latency_panel() -> BarPanel:
    vals = np.array([0.2, 1.5, np.nan, 40.0, 3.0, 0.9])
    return BarPanel(
        [f"point {i}" for i in range(6)],
        {"p50": vals, "p99": vals * 3},
        "ms",
        log=True,
        marks=[Mark(np.array([2.0, 2.0, 2.0, np.nan, 2.0, 2.0]), "target", "black", "|")],
    )


def test_bar_panel_log_scale_has_decade_ticks():
    fig = chart.figure(Chart("Latency", [_latency_panel()], width=6, height=3))
    (ax,) = fig.axes
    fig.canvas.draw()
    assert ax.get_xscale() == "log"
    # Values 0.2 .. 120 (40 x 3): from the decade below 0.2 to the one above 1.5 x 120.
    assert ax.get_xlim() == pytest.approx((0.1, 1000.0))
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks == pytest.approx([0.1, 1, 10, 100, 1000])
    labels = [t.get_text() for t in ax.get_xticklabels() if lo <= t.get_position()[0] <= hi]
    assert labels == ["0.1", "1", "10", "100", "1000"]


def test_bar_panel_draws_values_marks_and_says_what_is_missing():
    fig = chart.figure(Chart("Latency", [_latency_panel()], width=6, height=3))
    (ax,) = fig.axes
    bars = _bars(ax)
    assert set(bars) == {"p50", "p99"}
    # point 2 has no value: 5 bars per series, none at its row (y = 2), all from the
    # axis floor (0.1: a log axis has no zero) to the value.
    rights = {"p50": [0.2, 1.5, 40.0, 3.0, 0.9], "p99": [0.6, 4.5, 120.0, 9.0, 2.7]}
    for name, boxes in bars.items():
        assert [b[1] for b in boxes] == pytest.approx(rights[name])
        assert all(b[0] == pytest.approx(0.1) for b in boxes)
        assert [round(b[2]) for b in boxes] == [0, 1, 3, 4, 5]
    # Two series share a row: p50 above p99 (rows grow downwards, first label on top).
    assert all(a[2] < b[2] for a, b in zip(bars["p50"], bars["p99"], strict=True))
    assert ax.get_ylim()[0] > ax.get_ylim()[1]
    na = [t for t in ax.texts if t.get_text() == "n/a"]
    assert len(na) == 1 and na[0].xy[1] == 2
    (mark,) = ax.get_lines()
    assert mark.get_marker() == "|" and mark.get_linestyle() == "None"
    assert list(mark.get_xdata()) == [2.0] * 5
    assert list(mark.get_ydata()) == [0, 1, 2, 4, 5]  # none where the mark's value is NaN
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"point {i}" for i in range(6)]


def _summary(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    out = pd.DataFrame(
        {
            "engine": ["redis", "valkey"] * (n // 2),
            "ops_per_sec": rng.uniform(5e4, 3e5, n),
            "p50_ms": rng.uniform(0.1, 0.5, n),
            "p90_ms": rng.uniform(0.5, 1, n),
            "p99_ms": rng.uniform(1, 2, n),
            "p99_9_ms": rng.uniform(2, 9, n),
            "cpu_mean": rng.uniform(10, 50, n),
            "cpu_max": rng.uniform(50, 100, n),
            "engine_cpu_mean": rng.uniform(10, 50, n),
            "engine_cpu_max": rng.uniform(50, 100, n),
            "net_in_gbps_peak": rng.uniform(0.1, 2, n),
            "net_out_gbps_peak": rng.uniform(0.1, 2, n),
            "baseline_gbps": [0.937] * n,
            "burst_gbps": [12.5] * n,
            "memory_peak_pct": rng.uniform(1, 90, n),
            "memory_peak_bytes": rng.uniform(1e8, 1e10, n),
            "ops_per_dollar": rng.uniform(1e8, 1e9, n),
            "client_bound_runs": [0, 0, 1] * (n // 3) + [0] * (n % 3),
        }
    )
    intervals = {"ops": "ops_per_sec", "p50": "p50_ms", "p90": "p90_ms", "p99": "p99_ms",
                 "p999": "p99_9_ms", "opd": "ops_per_dollar"}  # fmt: skip
    for prefix, col in intervals.items():
        low = rng.uniform(0.8, 0.99, n)
        out[f"{prefix}_ci_low"] = out[col] * low
        out[f"{prefix}_ci_high"] = out[col] * (2 - low)
    return out


def test_campaign_figures(tmp_path):
    df = _summary(50)
    labels = [f"redis 7.0 c3r1 cache.r7g.large #{i}" for i in range(50)]
    colours = [palette.CONFIGURATION_COLOURS[i % 7] for i in range(50)]
    charts = {name: draw(df, labels, colours) for name, draw in plots.CAMPAIGN_FIGURES.items()}
    ops = charts["throughput"].panels[0]
    assert ops.bar_colours == colours
    assert ops.bar_text[0] == f"{df['ops_per_sec'][0]:,.0f}"
    net = charts["network"]
    assert [k.label for k in net.keys] == ["peak in", "peak out", "baseline", "burst"]
    assert charts["latency"].panels[0].log
    assert charts["cpu"].height > 10  # 50 points x 4 bars stay readable
    fig = chart.figure(charts["throughput"])
    (ax,) = fig.axes
    (ops_bars,) = _bars(ax).values()
    assert [b[1] for b in ops_bars] == pytest.approx(df["ops_per_sec"].tolist())
    # every bar's 95% interval, and the points with client-bound runs hatched
    whiskers = _whiskers(ax)
    assert [w[0] for w in whiskers] == pytest.approx(df["ops_ci_low"].tolist())
    assert [w[1] for w in whiskers] == pytest.approx(df["ops_ci_high"].tolist())
    bound = [b[2] for b, k in zip(ops_bars, df["client_bound_runs"], strict=True) if k]
    assert _hatched(ax) == pytest.approx(bound) and len(bound) == 16
    assert plots.CLIENT_BOUND_KEY in charts["throughput"].keys
    ends = {t.get_text(): t.xy[0] for t in ax.texts}
    # a bar's number past its interval's end
    assert ends[f"{df['ops_per_sec'][3]:,.0f}"] == pytest.approx(df["ops_ci_high"][3])
    (net_ax,) = chart.figure(net).axes
    baseline, burst = net_ax.get_lines()
    assert baseline.get_marker() == "|" and list(baseline.get_xdata()) == [0.937] * 50
    assert burst.get_marker() == "x" and list(burst.get_xdata()) == [12.5] * 50
    for name, c in charts.items():
        paths = chart.save(c, tmp_path, name)
        with Image.open(paths[f"fig_{name}_png"]) as im:
            assert im.size[0] == chart.COLUMN_IN * chart.PNG_DPI  # a blog's column, at 2x


# ---- files ---------------------------------------------------------------------------


def test_png_file_is_a_valid_image_of_the_chart(tmp_path):
    paths = chart.save(_line_chart(), tmp_path / "figs", "demo")
    assert paths == {
        "fig_demo_png": str(tmp_path / "figs" / "demo.png"),
        "fig_demo_pdf": str(tmp_path / "figs" / "demo.pdf"),
    }
    data = (tmp_path / "figs" / "demo.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1600, 800)  # 8 x 4 in at 200 dpi
    assert zlib.crc32(data[12:29]) == int.from_bytes(data[29:33], "big")
    with Image.open(tmp_path / "figs" / "demo.png") as im:
        im.verify()
    with Image.open(tmp_path / "figs" / "demo.png") as im:
        img = np.asarray(im.convert("RGB")).astype(int)
    assert (img == 255).all(axis=2).mean() > 0.7  # white background
    assert ((np.abs(img - BLUE).sum(axis=2)) < 60).sum() > 200  # the first line is drawn


def _pdf_objects(data: bytes) -> dict[int, tuple[bytes, bytes | None]]:
    """{number: (dictionary, decompressed stream or None)} of each object of a PDF with
    a classic cross-reference table and no object streams (as matplotlib writes them)."""
    xref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF", data).group(1))
    assert data[xref : xref + 4] == b"xref"
    first, count = map(int, re.match(rb"xref\s+(\d+) (\d+)\s", data[xref:]).groups())
    rows = re.findall(rb"(\d{10}) (\d{5}) ([nf])", data[xref : xref + 40 + 20 * count])
    offsets = {first + i: int(off) for i, (off, _, kind) in enumerate(rows) if kind == b"n"}
    raw: dict[int, tuple[bytes, int | None]] = {}
    for num, off in offsets.items():
        head = re.match(rb"(\d+) 0 obj\s*", data[off:])
        assert int(head.group(1)) == num
        at = off + head.end()
        stream, end = data.find(b"stream", at), data.find(b"endobj", at)
        if 0 <= stream < end:
            raw[num] = (data[at:stream], stream + len(b"stream"))
        else:
            raw[num] = (data[at:end], None)
    out: dict[int, tuple[bytes, bytes | None]] = {}
    for num, (head, at) in raw.items():
        body = None
        if at is not None:
            length = re.search(rb"/Length (\d+)( 0 R)?", head)
            n = int(raw[int(length.group(1))][0]) if length.group(2) else int(length.group(1))
            at += 2 if data[at : at + 2] == b"\r\n" else 1
            body = data[at : at + n]
            if b"/FlateDecode" in head:
                body = zlib.decompress(body)
        out[num] = (head.strip(), body)
    return out


def _ref(head: bytes, key: bytes) -> int:
    return int(re.search(rb"/" + key + rb" \[?\s*(\d+) 0 R", head).group(1))


def _literal_strings(text: bytes) -> list[bytes]:
    """The (...) strings of a TJ array or Tj, escapes resolved."""
    out, i = [], 0
    while (i := text.find(b"(", i)) >= 0:
        buf, i, depth = bytearray(), i + 1, 1
        while True:
            c = text[i]
            if c == 0x5C:  # backslash
                nxt = text[i + 1 : i + 2]
                octal = re.match(rb"[0-7]{1,3}", text[i + 1 : i + 4])
                if octal:
                    buf.append(int(octal.group(), 8))
                    i += 1 + len(octal.group())
                    continue
                buf += {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}.get(
                    nxt, nxt
                )
                i += 2
                continue
            if c == 0x28:
                depth += 1
            elif c == 0x29:
                depth -= 1
                if depth == 0:
                    i += 1
                    break
            buf.append(c)
            i += 1
        out.append(bytes(buf))
    return out


def _to_unicode(cmap: bytes) -> dict[int, str]:
    """A ToUnicode CMap's code -> text (bfchar and bfrange entries)."""
    out = {}
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", cmap, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
            out[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
    hexa = rb"<([0-9A-Fa-f]+)>"
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", cmap, re.S):
        for lo, hi, dst in re.findall(hexa + rb"\s*" + hexa + rb"\s*(<[^>]*>|\[[^\]]*\])", block):
            codes = range(int(lo, 16), int(hi, 16) + 1)
            if dst.startswith(b"["):  # one destination per code
                targets = [
                    bytes.fromhex(d.decode()).decode("utf-16-be") for d in re.findall(hexa, dst)
                ]
            else:  # consecutive from the first
                targets = [chr(int(dst[1:-1], 16) + k) for k in range(len(codes))]
            out.update(zip(codes, targets, strict=True))
    return out


def test_pdf_embeds_truetype_fonts_and_keeps_non_ascii_text(tmp_path):
    title = "Größe — p99 → 20 µs"  # "—" and "→" are outside Latin-1
    chart.save(_line_chart(title), tmp_path, "u")
    data = (tmp_path / "u.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    objs = _pdf_objects(data)
    fonts = {n: h for n, (h, _) in objs.items() if b"/Type /Font" in h and b"/Type0" in h}
    assert fonts and not [h for h, _ in objs.values() if b"/Subtype /Type1" in h]
    gid_maps, unicode_maps = {}, {}
    for num, head in fonts.items():
        assert b"/Encoding /Identity-H" in head
        cid_font = objs[_ref(head, b"DescendantFonts")][0]
        assert b"/Subtype /CIDFontType2" in cid_font
        descriptor = objs[_ref(cid_font, b"FontDescriptor")][0]
        font_file = objs[_ref(descriptor, b"FontFile2")][1]  # embedded TrueType
        assert font_file[:4] in (b"\x00\x01\x00\x00", b"true") and len(font_file) > 1000
        gid_maps[num] = objs[_ref(cid_font, b"CIDToGIDMap")][1]
        unicode_maps[num] = _to_unicode(objs[_ref(head, b"ToUnicode")][1])
    # The text drawn: each BT..ET block's strings, decoded through its font's ToUnicode.
    page = next(h for h, _ in objs.values() if re.search(rb"/Type /Page\b(?!s)", h))
    resources = objs[_ref(page, b"Resources")][0]
    names = {
        name: int(num)
        for name, num in re.findall(rb"/(F\d+) (\d+) 0 R", objs[_ref(resources, b"Font")][0])
    }
    content = objs[_ref(page, b"Contents")][1]
    texts = []
    for block in re.findall(rb"\bBT\b(.*?)\bET\b", content, re.S):
        text = ""
        parts = re.split(rb"/(F\d+) [\d.]+ Tf", block)  # [before, font, shown, font, ...]
        for name, shown in zip(parts[1::2], parts[2::2], strict=True):
            font = names[name]
            codes = b"".join(_literal_strings(shown))
            cids = struct.unpack(f">{len(codes) // 2}H", codes)
            text += "".join(unicode_maps[font][c] for c in cids)
            # Every character has a glyph in the embedded subset (glyph 0, .notdef, is a box).
            gids = gid_maps[font]
            assert all(struct.unpack(">H", gids[2 * c : 2 * c + 2])[0] != 0 for c in cids)
        texts.append(text)
    assert title in texts
    assert "cpu (%)" in texts and "nothing here" in texts


# ---- the helper process --------------------------------------------------------------


def _wait_until_up(helper: Helper) -> Future:
    """Ask until the helper takes a job (it starts in the background)."""
    deadline = time.monotonic() + 120
    while (job := helper.submit(os.getpid)) is None:
        assert time.monotonic() < deadline, "the helper process never came up"
        time.sleep(0.05)
    return job


def test_no_airflow_task_draws_enough_figures_to_start_a_helper(tmp_path, monkeypatch):
    # An export task draws one figure (its dashboard), the report task its decision figure,
    # one per campaign figure and a blog figure per question (report/blog.py).
    questions = [k for k, ask in decision.ASKS.items() if ask]
    assert 1 + len(plots.CAMPAIGN_FIGURES) + len(questions) < chart.HELPER_FROM
    helper = Helper(preload=chart.__name__, start_at=chart.HELPER_FROM)
    monkeypatch.setattr(chart, "_HELPER", helper)
    small = Chart("small", [LinePanel("x", [Line(np.arange(3.0), np.ones(3), "#1f77b4")])], 3, 2)
    try:
        for i in range(chart.HELPER_FROM - 1):
            chart.save(small, tmp_path, f"f{i}")
        assert helper._pool is None
        chart.save(small, tmp_path, "one more")  # a whole campaign in one process
        assert helper._pool is not None
    finally:
        helper.close()


def test_helper_draws_the_pdfs_once_up(tmp_path, monkeypatch):
    helper = Helper(preload=chart.__name__, start_at=2)
    monkeypatch.setattr(chart, "_HELPER", helper)
    submitted = []
    submit = helper.submit
    monkeypatch.setattr(helper, "submit", lambda *a: submitted.append(submit(*a)) or submitted[-1])
    try:
        chart.save(_line_chart(), tmp_path, "first")  # one figure: no helper at all
        assert submitted == [None] and helper._pool is None
        chart.save(_line_chart(), tmp_path, "second")  # starts it, not waited for
        assert submitted[-1] is None and helper._pool is not None
        worker = _wait_until_up(helper).result()
        assert worker != os.getpid()
        chart.save(_line_chart("drawn by the helper"), tmp_path, "third")
        assert submitted[-1] is not None  # the PDF was the helper's job
        objs = _pdf_objects((tmp_path / "third.pdf").read_bytes())
        assert any(b"/FontFile2" in head for head, _ in objs.values())
    finally:
        helper.close()


def test_save_draws_in_process_when_the_helper_dies(tmp_path, monkeypatch, caplog):
    helper = Helper(preload=chart.__name__, start_at=2)
    monkeypatch.setattr(chart, "_HELPER", helper)
    try:
        helper.submit(os.getpid)
        worker = _wait_until_up(helper).result()
        os.kill(worker, signal.SIGKILL)  # the helper process this test started
        with caplog.at_level(logging.WARNING, logger="cachebench.report.figure_helper"):
            chart.save(_line_chart(), tmp_path, "a")
            deadline = time.monotonic() + 30
            while helper.submit(os.getpid) is not None:  # until the pool sees it died
                assert time.monotonic() < deadline
                time.sleep(0.05)
        assert "figure helper process unavailable" in caplog.text
        assert helper.submit(os.getpid) is None  # this process draws alone from now on
        chart.save(_line_chart(), tmp_path, "b")
        for name in ("a", "b"):
            assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert (tmp_path / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    finally:
        helper.close()


def test_every_figure_is_legible_at_a_blogs_column_width(tmp_path):
    """No text under 9 pt in any figure of a report (the summary bars, the decision figure,
    a dashboard), each sized for a 7 in column (wider only when its labels need it), its
    PNG at 2x a screen's 96 dpi."""
    from matplotlib.text import Text
    from test_decision import pair_runs

    df = _summary(12)
    labels = [f"valkey 9.1 c3r1 local.t4g.medium #{i} (3 runs)" for i in range(12)]
    colours = [palette.CONFIGURATION_COLOURS[i % 7] for i in range(12)]
    charts = {name: draw(df, labels, colours) for name, draw in plots.CAMPAIGN_FIGURES.items()}
    m = normalize_metrics(make_metrics("p0", nodes=("0001-001", "0002-001")))
    charts["dashboard"] = plots.point_chart("t", m, network_gbps(m), make_load(), make_spec(), T0)
    ok, runs = pair_runs()
    charts["decision"] = plots.decision_chart(decision.decide(ok, runs))
    assert chart.PNG_DPI >= 2 * 96
    for name, c in charts.items():
        fig = chart.figure(c)
        sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip()]
        assert len(sizes) > 10 and min(sizes) >= chart.TEXT_PT >= 9, name
        assert fig.get_figwidth() >= chart.COLUMN_IN and c.width == chart.COLUMN_IN, name
        png = chart.save(c, tmp_path, name)[f"fig_{name}_png"]
        with Image.open(png) as im:
            assert im.size[0] == round(fig.get_figwidth() * chart.PNG_DPI), name
