"""HDR histogram helpers: the only way latencies are combined across generators.

Values are microseconds. Percentiles are never averaged: per-generator
histograms are merged (count by count) and percentiles are read from the merge.
"""

from __future__ import annotations

from collections.abc import Iterable

from hdrh.histogram import HdrHistogram

from cachebench.models import Latency

LOWEST_US = 1
HIGHEST_US = 60_000_000  # 60 s
SIG_FIGS = 3
SPREAD_POINTS = 64  # values per CDF step when rebuilding a histogram


def new_histogram() -> HdrHistogram:
    """Empty histogram, 1 us .. 60 s, 3 significant digits."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_FIGS)


def _top(hist: HdrHistogram) -> int:
    """Largest value hist can record."""
    return hist.get_highest_equivalent_value(hist.get_value_from_index(hist.counts_len - 1))


def record_us(hist: HdrHistogram, value_us: float, count: int = 1) -> None:
    """Record count samples of value_us, clamped into the trackable range."""
    if count <= 0:
        return
    value = min(max(round(value_us), 0), _top(hist))
    if not hist.record_value(value, count):
        raise ValueError(f"could not record {value_us} us")


def encode(hist: HdrHistogram) -> str:
    """HdrHistogram V2 compressed, base64 (the 'HISTF...' string)."""
    data = hist.encode()
    return data.decode("ascii") if isinstance(data, bytes) else data


def decode(encoded: str) -> HdrHistogram:
    """Inverse of encode; also reads memtier's and other HdrHistogram producers' strings."""
    return HdrHistogram.decode(encoded.strip())


def _layout(hist: HdrHistogram) -> tuple[int, int, int, int]:
    return (hist.bucket_count, hist.sub_bucket_count, hist.unit_magnitude, hist.word_size)


def add_into(dst: HdrHistogram, src: HdrHistogram) -> None:
    """Add src's counts to dst.

    Same layout: exact, bucket by bucket. Different layouts: each recorded bucket
    of src is re-recorded at its highest equivalent value (what HdrHistogram
    reports for percentiles), clamped to dst's range.
    """
    if src.get_total_count() == 0:
        return
    if _layout(dst) == _layout(src) and src.get_max_value() <= _top(dst):
        dst.add(src)
        return
    for item in src.get_recorded_iterator():
        value = src.get_highest_equivalent_value(item.value_iterated_to)
        record_us(dst, value, item.count_at_value_iterated_to)


def merge(encoded: Iterable[str]) -> HdrHistogram:
    """One histogram holding every sample of the encoded histograms."""
    hists = [decode(e) for e in encoded if e]
    if not hists:
        return new_histogram()
    layouts = {_layout(h) for h in hists}
    if len(layouts) == 1:
        out = decode(encode(hists[0]))
        rest = hists[1:]
    else:
        out, rest = new_histogram(), hists
    for h in rest:
        add_into(out, h)
    return out


def histogram_from_cumulative(
    points: Iterable[tuple[float, int]], *, spread: bool = True
) -> HdrHistogram:
    """Rebuild a histogram from (value_ms, cumulative_count) steps of a CDF.

    Percentiles at the printed steps come back exactly. The samples new at a
    step are spread evenly over the values since the previous step (linear CDF
    in between, up to SPREAD_POINTS values), or with spread=False all recorded
    at the step's value (between steps every percentile is then an upper bound).
    """
    hist = new_histogram()
    seen, prev = 0, None
    for value_ms, cumulative in sorted(points, key=lambda p: (p[0], p[1])):
        new = cumulative - seen
        if new <= 0:
            continue
        if spread and prev is not None and new > 1 and value_ms > prev:
            parts = min(new, SPREAD_POINTS)
            base, extra = divmod(new, parts)
            for i in range(1, parts + 1):
                at = prev + (value_ms - prev) * i / parts
                record_us(hist, at * 1000.0, base + (extra if i == parts else 0))
        else:
            record_us(hist, value_ms * 1000.0, new)
        seen, prev = cumulative, value_ms
    return hist


def histogram_from_percentiles(
    percentiles_ms: dict[float, float],
    total: int,
    *,
    min_ms: float | None = None,
    max_ms: float | None = None,
) -> HdrHistogram:
    """Approximate histogram from a percentile table ({50.0: 1.2, 99.0: 3.4, ...}).

    Only for producers that give no histogram: the table's own percentiles come
    back exactly, anything in between is rounded up to the next table entry.
    """
    points: list[tuple[float, int]] = []
    if min_ms is not None and total > 0:
        points.append((min_ms, 1))
    for pct, value in percentiles_ms.items():
        points.append((value, min(total, round(total * pct / 100.0))))
    if max_ms is not None:
        points.append((max_ms, total))
    elif percentiles_ms:
        points.append((max(percentiles_ms.values()), total))
    return histogram_from_cumulative(points)


def latency_from(
    hist: HdrHistogram, *, mean_ms: float | None = None, max_ms: float | None = None
) -> Latency:
    """Latency (ms) read from hist; mean_ms/max_ms override when known exactly."""
    if hist.get_total_count() == 0:
        return Latency(p50=0, p90=0, p99=0, p99_9=0, max=max_ms or 0, mean=mean_ms or 0)

    def at(p: float) -> float:
        return round(hist.get_value_at_percentile(p) / 1000.0, 3)

    return Latency(
        p50=at(50),
        p90=at(90),
        p99=at(99),
        p99_9=at(99.9),
        max=round(max_ms if max_ms is not None else hist.get_max_value() / 1000.0, 3),
        mean=round(mean_ms if mean_ms is not None else hist.get_mean_value() / 1000.0, 3),
    )
