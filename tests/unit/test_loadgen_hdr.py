"""HDR helpers: encoding, exact merges, rebuilt histograms, Latency in ms."""

from __future__ import annotations

import random

import pytest
from hdrh.histogram import HdrHistogram

from cachebench.loadgen import hdr


def hist_of(values_us: list[int]) -> HdrHistogram:
    h = hdr.new_histogram()
    for v in values_us:
        hdr.record_us(h, v)
    return h


def test_encode_decode_roundtrip():
    h = hist_of([100, 200, 300, 5000])
    s = hdr.encode(h)
    assert isinstance(s, str) and s.startswith("HISTF")
    back = hdr.decode(s)
    assert back.get_total_count() == 4
    assert back.get_value_at_percentile(50) == 200
    assert back.get_max_value() == h.get_max_value()


def test_record_clamps_out_of_range():
    h = hdr.new_histogram()
    hdr.record_us(h, 0)
    hdr.record_us(h, 10 * hdr.HIGHEST_US)
    assert h.get_total_count() == 2
    assert h.get_max_value() >= hdr.HIGHEST_US


def test_merge_is_exact_against_all_samples():
    rnd = random.Random(7)
    a = [int(rnd.lognormvariate(7, 0.5)) for _ in range(5000)]
    b = [int(rnd.lognormvariate(8, 0.9)) for _ in range(3000)]
    merged = hdr.merge([hdr.encode(hist_of(a)), hdr.encode(hist_of(b))])
    direct = hist_of(a + b)
    assert merged.get_total_count() == 8000
    for p in (1, 25, 50, 75, 90, 99, 99.9, 99.99, 100):
        assert merged.get_value_at_percentile(p) == direct.get_value_at_percentile(p)


def test_merged_p99_is_not_the_average_of_p99s():
    # A: 980 x 1 ms + 20 x 50 ms -> p99 = 50 ms. B: 1000 x 2 ms -> p99 = 2 ms.
    a = hist_of([1000] * 980 + [50_000] * 20)
    b = hist_of([2000] * 1000)
    lat_a, lat_b = hdr.latency_from(a), hdr.latency_from(b)
    assert lat_a.p99 == pytest.approx(50.0, rel=1e-3)
    assert lat_b.p99 == 2.0
    merged = hdr.latency_from(hdr.merge([hdr.encode(a), hdr.encode(b)]))
    # 2000 samples: the 1980th is the last 2 ms one.
    assert merged.p99 == 2.0
    assert merged.p99 != pytest.approx((lat_a.p99 + lat_b.p99) / 2)
    assert merged.p50 == 2.0
    assert merged.max == pytest.approx(50.0, rel=1e-3)


def test_merge_of_different_layouts_keeps_every_sample():
    memtier_like = HdrHistogram(10, 600_000_000, 2)  # memtier 2.x's layout
    for v in (1500, 1500, 2500, 90_000):
        memtier_like.record_value(v)
    ours = hist_of([1000, 3000])
    merged = hdr.merge([hdr.encode(memtier_like), hdr.encode(ours)])
    assert merged.get_total_count() == 6
    assert merged.get_value_at_percentile(50) == memtier_like.get_highest_equivalent_value(1500)
    assert merged.get_max_value() == pytest.approx(90_000, rel=0.01)


def test_merge_of_nothing_is_empty():
    assert hdr.merge([]).get_total_count() == 0
    assert hdr.latency_from(hdr.merge([])).p99 == 0


def test_histogram_from_cumulative_hits_printed_steps():
    # (value ms, cumulative count) as redis-benchmark / hdr_percentiles_print show them
    points = [(0.1, 10), (0.2, 50), (0.3, 90), (1.5, 99), (4.0, 100)]
    h = hdr.histogram_from_cumulative(points)
    assert h.get_total_count() == 100
    lat = hdr.latency_from(h)
    # HDR reports a bucket's highest equivalent value: exact to 3 significant digits.
    assert (lat.p50, lat.p90, lat.p99) == (0.2, 0.3, 1.5)
    assert lat.max == pytest.approx(4.0, rel=1e-3)


def test_histogram_from_percentiles_is_exact_at_table_points():
    h = hdr.histogram_from_percentiles(
        {50.0: 1.2, 90.0: 2.0, 99.0: 3.5, 99.9: 9.0}, 10_000, min_ms=0.3, max_ms=12.0
    )
    lat = hdr.latency_from(h)
    assert h.get_total_count() == 10_000
    got = (lat.p50, lat.p90, lat.p99, lat.p99_9, lat.max)
    assert got == pytest.approx((1.2, 2.0, 3.5, 9.0, 12.0), rel=1e-3)


def test_latency_from_is_in_ms_with_overrides():
    h = hist_of([500, 1500, 2500])
    lat = hdr.latency_from(h)
    assert lat.p50 == 1.5
    assert lat.max == pytest.approx(2.5, rel=1e-3)
    assert lat.mean == pytest.approx(1.5, abs=0.001)
    lat2 = hdr.latency_from(h, mean_ms=1.234, max_ms=9.9)
    assert (lat2.mean, lat2.max) == (1.234, 9.9)
