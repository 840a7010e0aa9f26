"""Figures: downsampling for drawing, the chart renderer's PNG/PDF, campaign charts."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import RendererAgg
from matplotlib.font_manager import FontProperties
from PIL import Image

from cachebench.report import chart, plots
from cachebench.report.chart import BarPanel, Chart, HLine, Line, LinePanel, Mark


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


def test_envelope_leaves_short_series_and_drops_nan():
    x, y = np.arange(10.0), np.arange(10.0) ** 2
    y[3] = np.nan
    xs, ys, lo, hi = plots.envelope(x, y)
    assert lo is None and hi is None
    assert list(xs) == [0, 1, 2, 4, 5, 6, 7, 8, 9] and ys[3] == 16


def test_envelope_uneven_sampling_uses_time_buckets():
    x = np.r_[np.arange(0, 100, 0.1), np.arange(100, 1000, 10.0)]  # dense, then sparse
    xs, mean, lo, hi = plots.envelope(x, x, buckets=100)
    assert np.allclose(mean, xs)  # y = x: each bucket mean sits at its mean time
    assert len(xs) <= 100 and np.all(np.diff(xs) > 0)
    # Buckets are equal time spans: the dense first 100 s fill about a tenth of them.
    assert (xs < 100).sum() == pytest.approx(10, abs=1)
    assert lo.min() == 0 and hi.max() == 990


def test_tick_labels():
    assert chart.tick_labels(np.array([0, 50_000, 100_000.0])) == ["0", "50,000", "100,000"]
    assert chart.tick_labels(np.array([0, 0.25, 0.5])) == ["0.00", "0.25", "0.50"]
    assert chart.tick_labels(np.array([0.1, 1, 10.0]), log=True) == ["0.1", "1", "10"]


def _line_chart(points: int = 50) -> Chart:
    x = np.linspace(0, 60, points)
    panels = [
        LinePanel(
            "cpu (%)",
            [Line(x, 50 + 10 * np.sin(x), "#1f77b4"), Line(x, 30 + x / 3, "#ff7f0e", "--")],
            hlines=[HLine(90.0, "limit 90")],
            ymax_at_least=100,
        ),
        LinePanel("empty", [], empty="nothing here"),
    ]
    return Chart("A chart: ünïcode — ok", panels, width=8, height=4, ncols=2, xlabel="minutes")


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_save_writes_png_and_pdf(tmp_path):
    paths = chart.save(_line_chart(), tmp_path / "figs", "demo")
    assert paths == {
        "fig_demo_png": str(tmp_path / "figs" / "demo.png"),
        "fig_demo_pdf": str(tmp_path / "figs" / "demo.pdf"),
    }
    img = _png(paths["fig_demo_png"])
    assert img.shape == (400, 800, 3)
    assert (img == 255).all(axis=2).mean() > 0.7  # white background
    blue = (img[..., 2] > 150) & (img[..., 0] < 80)
    assert blue.sum() > 200  # the first line is drawn
    pdf = (tmp_path / "figs" / "demo.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and b"/Helvetica" in pdf
    assert b"FontFile" not in pdf  # standard font, nothing embedded


def test_png_bytes_round_trip():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    data = chart.png_bytes(rgba)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGBA" and np.array_equal(np.asarray(im), rgba)
    assert zlib.crc32(data[12:29]) == int.from_bytes(data[29:33], "big")  # IHDR crc


@pytest.mark.parametrize("text", ["0", "150,000", "CPUUtilization (%)", "gyp|Q"])
def test_cached_text_lands_where_matplotlib_draws_it(text):
    """The text cache must place glyphs as the stock Agg renderer does (within 1 px)."""
    prop = FontProperties(family="DejaVu Sans", size=9)

    def ink(renderer_cls) -> tuple[int, int, int, int]:
        r = renderer_cls(120, 40, 100)
        gc = r.new_gc()
        r.draw_text(gc, 10.3, 25.6, text, prop, 0)
        alpha = np.asarray(r.buffer_rgba())[..., 3]
        rows, cols = np.nonzero(alpha)
        return rows.min(), rows.max(), cols.min(), cols.max()

    stock, cached = ink(RendererAgg), ink(chart._CachedTextAgg)
    assert np.abs(np.subtract(stock, cached)).max() <= 1
    r = chart._CachedTextAgg(10, 10, 100)
    assert r.get_text_width_height_descent(text, prop, False) == pytest.approx(
        RendererAgg(10, 10, 100).get_text_width_height_descent(text, prop, False)
    )


def test_bar_chart_renders_log_scale_marks_and_missing_values(tmp_path):
    labels = [f"point {i}" for i in range(6)]
    vals = np.array([0.2, 1.5, np.nan, 40.0, 3.0, 0.9])
    panel = BarPanel(
        labels,
        {"p50": vals, "p99": vals * 3},
        "ms",
        log=True,
        marks=[Mark(np.full(6, 2.0), "target", "black", "|")],
    )
    paths = chart.save(Chart("Latency", [panel], width=6, height=3), tmp_path, "bars")
    assert _png(paths["fig_bars_png"]).shape == (300, 600, 3)


def _summary(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    return pd.DataFrame(
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
        }
    )


def test_campaign_figures(tmp_path):
    df = _summary(50)
    labels = [f"redis 7.0 c3r1 cache.r7g.large #{i}" for i in range(50)]
    charts = {name: draw(df, labels) for name, draw in plots.CAMPAIGN_FIGURES.items()}
    ops = charts["throughput"].panels[0]
    assert ops.bar_colours[:2] == [plots.ENGINE_COLOURS["redis"], plots.ENGINE_COLOURS["valkey"]]
    assert ops.bar_text[0] == f"{df['ops_per_sec'][0]:,.0f}"
    net = charts["network"]
    assert [k.label for k in net.keys] == ["peak in", "peak out", "baseline", "burst"]
    assert charts["latency"].panels[0].log
    assert charts["cpu"].height > 10  # 50 points x 4 bars stay readable
    for name, c in charts.items():
        paths = chart.save(c, tmp_path, name)
        assert _png(paths[f"fig_{name}_png"]).shape[1] == 1000
