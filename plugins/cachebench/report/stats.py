"""Statistics behind every number and verdict of a report (issue 12): pure functions, no I/O.

Design note for wiring it in
============================

Two sources of noise, treated apart.

* **Within a run** the per-second values are autocorrelated, so the plain
  ``s/sqrt(n)`` understates the uncertainty of a run's mean. :func:`series_mean`
  uses **non-overlapping batch means**: the lag ``L`` where the autocorrelation
  dies out is the first lag whose sample autocorrelation falls inside the
  white-noise band ``2/sqrt(n)``; the batch size is ``m = max(ceil(sqrt(n)), 2L)``
  (``sqrt(n)`` is the classic consistent size; ``2L`` keeps batches longer than
  the memory of the series); the ``a = n // m`` batches (lengths differ by at most
  one second) give ``mean +- t(0.975, a-1) * sd(batch means) / sqrt(a)``. Fewer
  than 4 batches (so under 16 seconds, or a series whose autocorrelation has not
  died out by lag ``n/8``), or no variation at all: no interval (``None``, with
  the reason), never a made-up one. Coverage measured on stationary AR(1)
  series (2,000 seeds each; phi = lag-1 autocorrelation, window in seconds):
  phi <= 0.3: 0.93-0.96 from 20 s on; phi 0.5: 0.92 at 20 s, 0.93-0.95 from 30 s;
  phi 0.7: 0.87 at 20-30 s, 0.91-0.92 at 60-120 s, 0.93-0.94 from 300 s; phi 0.8:
  0.78-0.89 under 300 s, 0.93-0.95 from 300 s; phi 0.9: 0.58-0.90 under 600 s
  (and no interval for 20-50% of such runs), 0.92-0.94 from 600 s. Roughly: the
  interval holds once the window spans about 50 correlation times
  ``(1+phi)/(1-phi)``; shorter strongly correlated windows undercover, and no rule
  that decides from the same short series can tell them apart reliably.
  Throughput: the mean of per-second ops/s (equal to count / window when the
  series covers the window in full seconds: pass only full seconds). p99: the
  interval is one of **the mean of the per-second p99s** (the typical second's
  p99), not of the run's overall p99. The overall p99 (from the run's merged HDR
  histogram) is the 99th percentile of all the window's requests: it is close to
  the mean of per-second p99s when the latency distribution is steady, and above
  it when a few bad seconds carry the tail. It has no interval of its own within a
  run; its uncertainty is what repetitions measure. Mean latency: the mean of
  per-second means (unweighted; the HDR mean weights seconds by their requests,
  which differs only when throughput and latency swing together).

* **Between runs** of one configuration this machine differs by 10-20%, far more
  than any within-run interval shows, so every claim about a configuration
  (point) rests on its repetitions' values only (one value per run: the run's
  throughput, its overall HDR p99, its ops/$), never on per-second samples.
  :func:`point_stats` gives mean, stdev, CV and a t interval (on the logs of the
  runs' values, exponentiated: an interval of the geometric mean, which stays
  positive where a t interval on the values of 2-3 noisy runs reaches below zero;
  within about 0.5% of the arithmetic one at CVs up to 10%); a point is
  **unstable** when CV > 10% or a run is an **outlier**: a run whose distance from
  the point's median exceeds both ``3 * 1.4826 * MAD`` (Hampel's identifier) and
  10% of the median. Why both: with 3-5 runs the MAD rests on one or two
  deviations and is 0 when two runs tie, so Hampel alone would flag a run 1%
  away from two equal ones; Grubbs and Dixon do no better at n = 3 (Dixon's 95%
  critical Q is 0.970: the far run must be 32 times further from its neighbour
  than the other two are from each other). The 10% floor, the same size at which
  the CV rule calls a point unstable, makes the flag mean "one run is off by as
  much as a whole point may spread". With 2 runs no run can be singled out.

**Comparisons** (:func:`compare`): Welch's t interval on the logs of the two
points' run values, exponentiated: the ratio of geometric means ``a / b`` (within
about 0.5% of the ratio of means at CVs up to 10%) with its 95% interval. A
verdict only when the interval excludes 1 **and** the estimate is more than
``min_effect_pct`` away from 1; otherwise "no significant difference (lo% to
hi%)". Fewer than 2 runs a side, or no run-to-run variation on either side:
"not enough data for a verdict". Any client-bound run on either side: the ratio
and interval are given, the verdict is withheld.

Why Welch, and what power it has (issue 12 asks for 90% power at a true 10%
difference, 3% CV, 3 runs). Measured over seeds 0..999 with the generator of
``tests/unit/test_stats.py`` (per-second AR(1) series, phi 0.7, 60 s, plus a
between-run random effect; "3% CV" is the CV of run means, as
:func:`point_stats` defines it):

* On 3 + 3 run means no valid level-5% test reaches 90%. The pooled
  (equal-variance) t-test is the uniformly most powerful unbiased test there when
  both points have the same noise: 82.5% in theory (noncentral t, df 4), 81.4%
  measured. It is valid only then: its false-positive rate is 4.9% at equal noise,
  6.7% when one point's run-to-run CV is twice the other's (3% vs 6%), 7.9% at
  three times. Pooling the variance over all points of a campaign (df = points x
  (runs - 1)) reaches 92% with 4 points, but when the compared pair is noisier
  than the other points its false-positive rate is 9% (pair 1.5 times as noisy),
  12% (2 times), 15% (3 times) (normal run means, 200,000 draws).
* Welch stays valid when the points differ in noise: false positives 3.3% at
  equal noise (throughput; 4.1% for p99 in the A/A test), 4.4% at a CV ratio of
  2, 5.3% at 3 (for 3 + 3 runs it peaks near 5.8%, at an SD ratio near 5). So it
  is the procedure here. Its power at 10% / 3% CV: **70.0% with 3 runs a side**,
  **93.8% with 4**, 99.2% with 5 (pooled t: 81.4%, 95.5%, 99.4%).

So a campaign that must find a 10% difference 9 times in 10 at 3% CV needs
``repetitions >= 4``; with 3 it finds it 7 times in 10 and otherwise says "no
significant difference" (a false winner stays at or under about 5%).

**Multiplicity** (:func:`multiplicity`): each comparison with an interval has at
most a 5% chance of a verdict when nothing differs, so a campaign that makes ``k``
of them gives up to ``0.05 k`` chance verdicts on average; the report should say
``k``.

**Latency objective** (:func:`slo_check`): a point meets ``slo_p99_ms`` when the
upper end of its run p99s' t interval is below it, misses it when the lower end
is above it, and is undecided in between; :func:`rank_within_slo` ranks ops/$
among the points that meet it.

**Saturation** (:func:`saturation`): a run whose load generators ran at >= 85% of
their CPU (p95 over the window, per generator, the busiest generator counts) or,
under ``rate_limit``, achieved more than 5% less than the requested rate, is
client-bound: it measures the load generator, not the server. The measuring is
the caller's.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from scipy import stats as sps

from cachebench.models import Strict

LEVEL = 0.95
MIN_BATCHES = 4
CV_LIMIT_PCT = 10.0
OUTLIER_MADS = 3.0
OUTLIER_FLOOR_PCT = 10.0
MAD_TO_SD = 1.4826  # MAD of a normal sample times this estimates its SD
CPU_LIMIT_PCT = 85.0
SHORTFALL_LIMIT_PCT = 5.0
CLIENT_BOUND = "client-bound: measures the load generator, not the server"

Metric = Literal["throughput", "p99", "mean_latency", "ops_per_dollar"]
#: Which way is better for each metric.
HIGHER_IS_BETTER: dict[str, bool] = {
    "throughput": True,
    "p99": False,
    "mean_latency": False,
    "ops_per_dollar": True,
}
METRIC_LABELS = {
    "throughput": "throughput",
    "p99": "p99 latency",
    "mean_latency": "mean latency",
    "ops_per_dollar": "ops per dollar",
}


class Interval(Strict):
    """A two-sided confidence interval."""

    low: float
    high: float
    level: float = LEVEL

    def excludes(self, value: float) -> bool:
        return value < self.low or value > self.high


class SeriesMean(Strict):
    """The mean of one per-second series of a run, with a batch-means interval."""

    n: int = Field(description="finite seconds used")
    missing: int = Field(0, description="seconds without a value (None or NaN), skipped")
    mean: float | None = None
    interval: Interval | None = None
    acf_lag: int | None = Field(None, description="first lag with autocorrelation inside 2/sqrt(n)")
    batch_size: int | None = None
    batches: int | None = None
    no_interval: str | None = Field(None, description="why there is no interval")


class RunStats(Strict):
    """One run's means with intervals (from its per-second series)."""

    throughput: SeriesMean
    p99_ms: SeriesMean | None = Field(None, description="mean of the per-second p99s")
    mean_latency_ms: SeriesMean | None = Field(None, description="mean of per-second means")
    overall_p99_ms: float | None = Field(None, description="from the run's merged HDR histogram")


class PointStats(Strict):
    """One metric of one point across its repetitions (one value per run)."""

    n: int
    missing: int = 0
    values: tuple[float, ...]
    mean: float | None = None
    stdev: float | None = None
    cv_pct: float | None = None
    interval: Interval | None = None
    outliers: tuple[int, ...] = Field((), description="indices into values")
    unstable: bool = False
    reasons: tuple[str, ...] = ()


class Side(Strict):
    """One point of a comparison: its per-run values and which runs were client-bound."""

    name: str
    values: tuple[float | None, ...]
    client_bound: tuple[bool, ...] = Field((), description="one per value; empty: none known")

    @model_validator(mode="after")
    def _lengths(self) -> Side:
        if self.client_bound and len(self.client_bound) != len(self.values):
            raise ValueError(
                f"client_bound of {self.name!r}: {len(self.client_bound)} flags for "
                f"{len(self.values)} values (give one per run, or none)"
            )
        return self


Verdict = Literal[
    "a_better", "b_better", "no_significant_difference", "not_enough_data", "client_bound"
]


class Comparison(Strict):
    """Point ``a`` against point ``b`` on one metric."""

    metric: Metric
    a: str
    b: str
    n_a: int
    n_b: int
    ratio: float | None = Field(None, description="geometric mean of a / of b")
    interval: Interval | None = Field(None, description="of the ratio")
    df: float | None = Field(None, description="Welch's degrees of freedom")
    min_effect_pct: float
    verdict: Verdict
    winner: str | None = None
    client_bound_runs: int = 0
    sentence: str

    @property
    def tested(self) -> bool:
        """True when an interval was formed (such a comparison can win by chance)."""
        return self.interval is not None


class Multiplicity(Strict):
    comparisons: int = Field(description="comparisons with an interval")
    verdicts: int
    alpha: float
    expected_chance_verdicts: float = Field(description="upper bound when nothing differs")
    sentence: str


class Saturation(Strict):
    client_bound: bool
    cpu_p95_pct: float | None = Field(None, description="busiest generator's p95 CPU")
    shortfall_pct: float | None = Field(None, description="how far below the requested rate")
    reasons: tuple[str, ...] = ()


SloStatus = Literal["meets", "misses", "undecided", "not_enough_data"]


class SloCheck(Strict):
    status: SloStatus
    slo_p99_ms: float
    mean_ms: float | None = None
    interval: Interval | None = None
    sentence: str


def _finite_values(values: Sequence[float | None], what: str) -> tuple[np.ndarray, int]:
    """The values without None/NaN (and how many were dropped); inf or negative: an error."""
    try:
        x = np.asarray(values, dtype=float)  # None becomes NaN
    except (TypeError, ValueError):
        x = None
    if x is None or x.ndim != 1:
        for i, v in enumerate(values):
            if v is not None and not isinstance(v, int | float | np.number):
                raise ValueError(f"{what}[{i}] = {v!r}: use a number, or None for a missing value")
        raise ValueError(f"{what}: use a flat sequence of numbers")
    bad = np.isinf(x) | (x < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"{what}[{i}] = {values[i]!r}: use a finite number >= 0, or None if missing"
        )
    kept = x[~np.isnan(x)]
    return kept, len(x) - len(kept)


@lru_cache(maxsize=256)
def _t(df: float) -> float:
    """Two-sided t quantile at LEVEL."""
    return float(sps.t.ppf(0.5 + LEVEL / 2, df))


def _acf_lag(x: np.ndarray, max_lag: int) -> int | None:
    """First lag whose sample autocorrelation is inside the white-noise band, else None."""
    d = x - x.mean()
    denom = float(d @ d)
    band = 2 / math.sqrt(len(x))
    for k in range(1, max_lag + 1):
        if float(d[:-k] @ d[k:]) / denom < band:
            return k
    return None


def series_mean(values: Sequence[float | None], what: str = "series") -> SeriesMean:
    """Mean of a per-second series with a 95% batch-means interval (see the module doc)."""
    x, missing = _finite_values(values, what)
    n = len(x)
    if n == 0:
        return SeriesMean(n=0, missing=missing, no_interval="no seconds with a value")
    mean = float(x.mean())
    if n < MIN_BATCHES * MIN_BATCHES:
        why = f"{n} seconds: an interval needs at least {MIN_BATCHES**2}"
        return SeriesMean(n=n, missing=missing, mean=mean, no_interval=why)
    if np.ptp(x) == 0:
        why = "every second has the same value: no variation to form an interval from"
        return SeriesMean(n=n, missing=missing, mean=mean, no_interval=why)
    lag = _acf_lag(x, n // (2 * MIN_BATCHES))
    if lag is None:
        why = f"autocorrelation has not died out by lag {n // (2 * MIN_BATCHES)} of {n} seconds"
        return SeriesMean(n=n, missing=missing, mean=mean, no_interval=why)
    m = max(math.ceil(math.sqrt(n)), 2 * lag)
    a = n // m
    base = SeriesMean(n=n, missing=missing, mean=mean, acf_lag=lag, batch_size=m, batches=a)
    if a < MIN_BATCHES:
        why = f"{a} batches of {m} seconds: an interval needs at least {MIN_BATCHES}"
        return base.model_copy(update={"no_interval": why})
    sizes = np.full(a, n // a)
    sizes[: n % a] += 1  # as np.array_split: lengths differ by at most one second
    batch_means = np.add.reduceat(x, np.cumsum(sizes) - sizes) / sizes
    spread = float(batch_means.std(ddof=1))
    if spread == 0:
        why = f"the {a} batch means are equal: no variation to form an interval from"
        return base.model_copy(update={"no_interval": why})
    half = _t(a - 1) * spread / math.sqrt(a)
    return base.model_copy(update={"interval": Interval(low=mean - half, high=mean + half)})


def run_stats(
    ops_per_sec: Sequence[float | None],
    p99_ms: Sequence[float | None] | None = None,
    mean_latency_ms: Sequence[float | None] | None = None,
    overall_p99_ms: float | None = None,
) -> RunStats:
    """Item 1: a run's mean throughput, p99 and mean latency with their intervals."""
    return RunStats(
        throughput=series_mean(ops_per_sec, "ops_per_sec"),
        p99_ms=None if p99_ms is None else series_mean(p99_ms, "p99_ms"),
        mean_latency_ms=(
            None if mean_latency_ms is None else series_mean(mean_latency_ms, "mean_latency_ms")
        ),
        overall_p99_ms=overall_p99_ms,
    )


def _positive(values: Sequence[float | None], what: str) -> tuple[np.ndarray, int]:
    x, missing = _finite_values(values, what)
    if (x <= 0).any():
        i = next(i for i, v in enumerate(values) if v is not None and v == 0)
        raise ValueError(f"{what}[{i}] = 0: run values must be > 0, or None for a missing run")
    return x, missing


def point_stats(values: Sequence[float | None], what: str = "values") -> PointStats:
    """Item 2: one metric of a point across its runs, with the "unstable" flag."""
    x, missing = _positive(values, what)
    n = len(x)
    base = PointStats(n=n, missing=missing, values=tuple(float(v) for v in x))
    if n == 0:
        return base.model_copy(update={"reasons": ("no run with a value",)})
    mean = float(x.mean())
    if n == 1:
        return base.model_copy(update={"mean": mean, "reasons": ("one run: no spread known",)})
    sd = float(x.std(ddof=1))
    cv = 100 * sd / mean
    reasons: list[str] = []
    interval = None
    if sd == 0:
        reasons.append("identical runs: no run-to-run variation seen, so no interval")
    else:
        # On the logs: the metrics are positive and their run-to-run noise multiplicative,
        # so the interval (of the geometric mean) never reaches below zero, as a t
        # interval on the values does with 2 or 3 noisy runs; comparisons work on the logs too.
        lx = np.log(x)
        half = _t(n - 1) * float(lx.std(ddof=1)) / math.sqrt(n)
        interval = Interval(low=math.exp(lx.mean() - half), high=math.exp(lx.mean() + half))
    if cv > CV_LIMIT_PCT:
        reasons.append(f"unstable: CV {cv:.1f}% > {CV_LIMIT_PCT:g}%")
    med = float(np.median(x))
    dev = np.abs(x - med)
    limit = max(OUTLIER_MADS * MAD_TO_SD * float(np.median(dev)), OUTLIER_FLOOR_PCT / 100 * med)
    outliers = tuple(int(i) for i in np.nonzero(dev > limit)[0])
    for i in outliers:
        reasons.append(
            f"unstable: run {i + 1} is an outlier, {100 * (x[i] / med - 1):+.1f}% from the "
            f"median (more than {OUTLIER_MADS:g} scaled MADs and {OUTLIER_FLOOR_PCT:g}%)"
        )
    return base.model_copy(
        update={
            "mean": mean,
            "stdev": sd,
            "cv_pct": cv,
            "interval": interval,
            "outliers": outliers,
            "unstable": cv > CV_LIMIT_PCT or bool(outliers),
            "reasons": tuple(reasons),
        }
    )


def _pct(r: float) -> str:
    return f"{100 * (r - 1):+.1f}%"


def compare(a: Side, b: Side, metric: Metric, min_effect_pct: float = 2.0) -> Comparison:
    """Item 3: ``a`` vs ``b`` on one metric, with a verdict only when the data carry one."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"metric={metric!r}: use one of {sorted(HIGHER_IS_BETTER)}")
    if not (isinstance(min_effect_pct, int | float) and 0 <= min_effect_pct < 100):
        raise ValueError(f"min_effect_pct={min_effect_pct!r}: use a number from 0 to under 100")
    xa, _ = _positive(a.values, f"{a.name} {metric}")
    xb, _ = _positive(b.values, f"{b.name} {metric}")
    bound = sum(a.client_bound) + sum(b.client_bound)
    what = METRIC_LABELS[metric]
    base = {
        "metric": metric,
        "a": a.name,
        "b": b.name,
        "n_a": len(xa),
        "n_b": len(xb),
        "min_effect_pct": float(min_effect_pct),
        "client_bound_runs": bound,
    }
    if len(xa) < 2 or len(xb) < 2:
        few = [(s.name, len(x)) for s, x in ((a, xa), (b, xb)) if len(x) < 2]
        why = "; ".join(f"{name} has {k} run{'s' if k != 1 else ''}" for name, k in few)
        sentence = f"{a.name} vs {b.name}, {what}: not enough data for a verdict ({why}; need 2)."
        return Comparison(**base, verdict="not_enough_data", sentence=sentence)
    la, lb = np.log(xa), np.log(xb)
    if np.ptp(la) == 0 and np.ptp(lb) == 0:
        sentence = (
            f"{a.name} vs {b.name}, {what}: not enough data for a verdict (no run-to-run "
            "variation on either side, so no interval)."
        )
        return Comparison(**base, verdict="not_enough_data", sentence=sentence)
    with warnings.catch_warnings():
        # one side may have no spread (quantised p99s): scipy warns, the result is exact
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.ttest_ind(la, lb, equal_var=False)
    ci = res.confidence_interval(LEVEL)
    ratio = math.exp(float(la.mean() - lb.mean()))
    interval = Interval(low=math.exp(float(ci.low)), high=math.exp(float(ci.high)))
    base |= {"ratio": ratio, "interval": interval, "df": float(res.df)}
    span = f"{_pct(interval.low)} to {_pct(interval.high)}"
    head = f"{a.name} vs {b.name}, {what}"
    if bound:
        sentence = (
            f"{head}: no verdict, {bound} client-bound run{'s' if bound != 1 else ''} "
            f"({CLIENT_BOUND}); measured {_pct(ratio)} ({span})."
        )
        return Comparison(**base, verdict="client_bound", sentence=sentence)
    big = abs(ratio - 1) * 100 > min_effect_pct
    if not interval.excludes(1.0) or not big:
        note = "" if big or not interval.excludes(1.0) else f"; under the {min_effect_pct:g}% bar"
        sentence = f"{head}: no significant difference ({span}{note})."
        return Comparison(**base, verdict="no_significant_difference", sentence=sentence)
    a_wins = (ratio > 1) == HIGHER_IS_BETTER[metric]
    winner = a.name if a_wins else b.name
    sentence = f"{head}: {winner} wins, {_pct(ratio)} ({span}, 95% interval)."
    return Comparison(
        **base,
        verdict="a_better" if a_wins else "b_better",
        winner=winner,
        sentence=sentence,
    )


def multiplicity(comparisons: Sequence[Comparison], alpha: float = 1 - LEVEL) -> Multiplicity:
    """How many comparisons a campaign makes, and how many verdicts chance alone could give."""
    k = sum(c.tested for c in comparisons)
    wins = sum(c.winner is not None for c in comparisons)
    expected = alpha * k
    sentence = (
        f"{k} comparison{'s' if k != 1 else ''} with an interval, {wins} "
        f"verdict{'s' if wins != 1 else ''}: if nothing differed, chance alone would give "
        f"up to {expected:.1f} verdict{'s' if expected != 1 else ''} on average "
        f"({100 * alpha:g}% each)."
    )
    return Multiplicity(
        comparisons=k,
        verdicts=wins,
        alpha=alpha,
        expected_chance_verdicts=expected,
        sentence=sentence,
    )


def saturation(
    generator_cpu_pct: Sequence[Sequence[float | None]] = (),
    achieved_ops_per_sec: float | None = None,
    requested_ops_per_sec: float | None = None,
) -> Saturation:
    """Item 5: is a run client-bound?

    ``generator_cpu_pct``: one per-second series per load generator, in percent of
    the CPU that generator may use (100 = all of its cores). ``requested_ops_per_sec``:
    only under ``rate_limit`` (per-connection rate x connections), else None.
    """
    reasons: list[str] = []
    p95s = []
    for g, series in enumerate(generator_cpu_pct):
        x, _ = _finite_values(series, f"generator_cpu_pct[{g}]")
        if len(x):
            p95s.append(float(np.percentile(x, 95)))
    cpu = max(p95s) if p95s else None
    if cpu is not None and cpu >= CPU_LIMIT_PCT:
        reasons.append(f"{CLIENT_BOUND} (load generator CPU p95 {cpu:.0f}% >= {CPU_LIMIT_PCT:g}%)")
    short = None
    if requested_ops_per_sec is not None:
        if not requested_ops_per_sec > 0:
            raise ValueError(f"requested_ops_per_sec={requested_ops_per_sec!r}: use a rate > 0")
        if achieved_ops_per_sec is None or not achieved_ops_per_sec >= 0:
            raise ValueError(
                f"achieved_ops_per_sec={achieved_ops_per_sec!r}: give the achieved rate (>= 0) "
                "with a requested one"
            )
        short = 100 * (1 - achieved_ops_per_sec / requested_ops_per_sec)
        if short > SHORTFALL_LIMIT_PCT:
            reasons.append(
                f"{CLIENT_BOUND} ({achieved_ops_per_sec:,.0f} of {requested_ops_per_sec:,.0f} "
                f"requested ops/s, {short:.1f}% short > {SHORTFALL_LIMIT_PCT:g}%)"
            )
    return Saturation(
        client_bound=bool(reasons), cpu_p95_pct=cpu, shortfall_pct=short, reasons=tuple(reasons)
    )


def slo_check(p99: PointStats, slo_p99_ms: float) -> SloCheck:
    """Item 4: does a point (its runs' p99s) meet the latency objective?"""
    if not (isinstance(slo_p99_ms, int | float) and math.isfinite(slo_p99_ms) and slo_p99_ms > 0):
        raise ValueError(f"slo_p99_ms={slo_p99_ms!r}: use a number of milliseconds > 0")
    slo = float(slo_p99_ms)
    iv = p99.interval
    if p99.mean is None or iv is None:
        why = p99.reasons[0] if p99.reasons else "no interval"
        got = "" if p99.mean is None else f"p99 {p99.mean:.3f} ms, "
        sentence = f"p99 objective {slo:g} ms: not enough data ({got}{why})."
        return SloCheck(
            status="not_enough_data", slo_p99_ms=slo, mean_ms=p99.mean, sentence=sentence
        )
    status: SloStatus = "meets" if iv.high < slo else "misses" if iv.low > slo else "undecided"
    word = {"meets": "meets", "misses": "misses", "undecided": "undecided on"}[status]
    sentence = (
        f"p99 {p99.mean:.3f} ms ({iv.low:.3f} to {iv.high:.3f}, 95% interval): "
        f"{word} the {slo:g} ms objective."
    )
    return SloCheck(status=status, slo_p99_ms=slo, mean_ms=p99.mean, interval=iv, sentence=sentence)


def rank_within_slo(
    ops_per_dollar: Mapping[str, PointStats], slo: Mapping[str, SloCheck]
) -> tuple[str, ...]:
    """Points that meet the objective, best mean ops/$ first (winner claims: :func:`compare`)."""
    ok = [
        (name, s.mean)
        for name, s in ops_per_dollar.items()
        if s.mean is not None and name in slo and slo[name].status == "meets"
    ]
    return tuple(name for name, _ in sorted(ok, key=lambda t: -t[1]))
