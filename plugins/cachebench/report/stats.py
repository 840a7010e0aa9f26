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

**Comparisons** (:func:`compare`, the rule in :func:`verdict_bounds`): Welch's
interval on the logs of the two points' run values, exponentiated: the ratio of
geometric means ``a / b`` (within about 0.5% of the ratio of means at CVs up to
10%) with its interval at the level :func:`verdict_alpha` gives for the two run
counts. A winner only when that interval excludes 1 **and** the estimate is more
than ``min_effect_pct`` away from 1; otherwise "no significant difference" with
the interval and why (it includes no change, or the difference is under the bar).
Fewer than 2 runs a side, or no run-to-run variation on either side: "not enough
data for a verdict". Any client-bound run on either side: the ratio and interval
are given, the verdict is withheld. Runs without their load generators' CPU
(no cpu.json) are counted, and the sentence says so (issue 22).

The rule, and why (issue 22). Runs fail, and only a point's finished runs are
evidence, so comparisons of 2 runs against 5 are normal. Plain Welch at 5% then
names a false winner far more often than 5% when the point with fewer runs is the
noisier: its exact rate (normal logs, the worst ratio of the two points' run-to-run
CVs up to 3, :func:`welch_false_winner_rate`) is 11.0% at 2 + 6 runs, 7.4% at
2 + 3, 6.8% at 3 + 6, 5.8% at 4 + 6, and even 5.2-5.3% with equal counts of 3 to
6. So a verdict needs the Welch interval at the level that keeps the false-winner
rate at or under FALSE_WINNER_TARGET (4.9%: 5% less 0.1% for the error of the
simulation that checks it) at every CV ratio up to CV_RATIO_LIMIT (3), computed
for the run counts at hand by numerical integration (the rate is a double
integral over the two spreads' chi-square distributions; no table, any counts):

    runs      2        3        4        5        6
      2    95.00%   97.04%   98.48%   99.11%   99.42%
      3             95.27%   96.22%   96.68%   96.91%
      4                      95.43%   95.74%   95.90%
      5                               95.37%   95.51%
      6                                        95.31%

(2 + 2 keeps 95%: Welch is conservative there, 3.6% at worst.) Measured by
``tests/unit/test_stats.py`` (16,384 quasi-random trials a cell, each counted by
its exact chance of a false winner given its runs' spreads; log-normal run values;
quieter side's CV 2% for throughput, 8% for p99; CV ratios 1/3, 1/2, 1, 2, 3), the
worst false-winner rate of each pair of run counts from 2 to 6:

    throughput  2      3      4      5      6      p99    2      3      4      5      6
      2       3.50%  4.85%  4.88%  4.84%  4.88%    2    3.58%  4.88%  4.92%  4.93%  4.90%
      3              4.86%  4.88%  4.88%  4.86%    3           4.87%  4.88%  4.90%  4.90%
      4                     4.88%  4.88%  4.88%    4                  4.87%  4.88%  4.89%
      5                            4.89%  4.88%    5                         4.88%  4.90%
      6                                   4.88%    6                                4.89%

Beyond a CV ratio of 3 the rate can pass 5% (plain Welch's own peak for 3 + 3 is
near 5.8%, at an SD ratio near 5).

Power at a true 10% difference with 3% CV (same method, equal noise): 70.7% with
3 runs a side, 93.2% with 4, 98.7% with 5, 99.8% with 6 (plain Welch: 72.4%,
94.1%, 98.9%, at 5.2-5.3% false winners). The 4 + 4 power is below the 93.8%
plain Welch was measured at (over 1,000 seeds), and no rule can keep it: among
rules that treat both points alike and do not depend on units (a critical value
for |t| chosen freely for each ratio of the two spreads, optimised on 1,000,000
simulated trials), the most power at 4 + 4 with at most 5.0% false winners at CV
ratios up to 3 is about 93.5% (72.1% at 3 + 3). Calibrated Welch is within about
0.3 points of that. On 3 + 3 run means no valid test reaches 90% either: the
pooled (equal-variance) t-test, the most powerful unbiased test when both points
have the same noise, reaches 82.5% there but names false winners 7.9% of the time
when one point's CV is three times the other's. So a campaign that must find a
10% difference 9 times in 10 at 3% CV needs ``repetitions >= 4`` (5 for 98%).

**Multiplicity** (:func:`multiplicity`): each comparison with an interval has at
most a 5% chance of a verdict when nothing differs (4.9% at CV ratios up to 3), so a
campaign that makes ``k``
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
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Literal, NamedTuple

import numpy as np
from pydantic import Field, model_validator
from scipy import optimize
from scipy import stats as sps

from cachebench.models import Strict

LEVEL = 0.95
ALPHA = 1 - LEVEL
#: A verdict between two points with no real difference may be named at most this often
#: (5% less 0.1% for the error of the simulation that checks it), for every pair of run
#: counts, whatever the two points' run-to-run CVs up to CV_RATIO_LIMIT times apart.
FALSE_WINNER_TARGET = 0.049
CV_RATIO_LIMIT = 3.0
# Where Welch's false-winner rate is looked for its peak: the limits for 2 to 6 runs a
# side, inside them for more unequal counts (3 + 12 peaks at a ratio of 1.7).
_CV_RATIOS = tuple(np.geomspace(1 / CV_RATIO_LIMIT, CV_RATIO_LIMIT, 25))
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
    cpu_known: tuple[bool, ...] = Field(
        (), description="one per value: was the load generators' CPU measured; empty: all were"
    )

    @model_validator(mode="after")
    def _lengths(self) -> Side:
        for what, flags in (("client_bound", self.client_bound), ("cpu_known", self.cpu_known)):
            if flags and len(flags) != len(self.values):
                raise ValueError(
                    f"{what} of {self.name!r}: {len(flags)} flags for "
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
    interval: Interval | None = Field(
        None, description="of the ratio, at the level a verdict needs (verdict_alpha)"
    )
    df: float | None = Field(None, description="Welch's degrees of freedom")
    min_effect_pct: float
    verdict: Verdict
    winner: str | None = None
    why: str = Field("", description="why no winner was named ('' when one was)")
    client_bound_runs: int = 0
    cpu_unknown_runs: int = Field(0, description="runs without load generator CPU (cpu.json)")
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


def pct_text(r: float) -> str:
    """A ratio as the change it means: 1.183 is '+18.3%'."""
    return f"{100 * (r - 1):+.1f}%"


def level_text(level: float) -> str:
    """'95%', '95.3%', '99.4%': the interval's level as the report writes it."""
    return f"{100 * level:.1f}".removesuffix(".0") + "%"


# ---- the verdict rule: Welch at the level that keeps false winners at or under 5% ----

_NODES = 32  # Gauss-Legendre nodes per spread: the rate is exact to ~1e-6 (checked at 96)


@lru_cache(maxsize=1)
def _unit_nodes() -> tuple[np.ndarray, np.ndarray]:
    x, w = np.polynomial.legendre.leggauss(_NODES)
    return (x + 1) / 2, w / 2


def welch_false_winner_rate(n_a: int, n_b: int, cv_ratio: float, alpha: float) -> float:
    """How often Welch's test at level ``alpha`` rejects "no difference" when there is
    none, for n_a and n_b runs whose log values are normal with SDs in ratio ``cv_ratio``
    (a's over b's): exact up to the quadrature, no simulation.

    Given both sides' sample variances the difference of means is normal and independent
    of them, so the rate is a double integral over the two scaled chi-square spreads,
    taken on their quantile scale with Gauss-Legendre nodes.
    """
    f_a, f_b = n_a - 1, n_b - 1
    u, w = _unit_nodes()
    va = cv_ratio**2 * (sps.chi2.ppf(u, f_a) / f_a)[:, None] / n_a  # sigma_b = 1
    vb = (sps.chi2.ppf(u, f_b) / f_b)[None, :] / n_b
    df = (va + vb) ** 2 / (va**2 / f_a + vb**2 / f_b)
    half = sps.t.ppf(1 - alpha / 2, df) * np.sqrt(va + vb)
    rate = 2 * sps.norm.sf(half / math.sqrt(cv_ratio**2 / n_a + 1 / n_b))
    return float(w @ rate @ w)


def _worst_rate(n_a: int, n_b: int, alpha: float) -> float:
    return max(welch_false_winner_rate(n_a, n_b, r, alpha) for r in _CV_RATIOS)


@lru_cache(maxsize=256)
def verdict_alpha(n_a: int, n_b: int) -> float:
    """The level (alpha, at most 5%) at which a Welch interval may name a winner with
    n_a and n_b runs: the largest that keeps its false-winner rate at or under
    FALSE_WINNER_TARGET for every ratio of the two points' run-to-run CVs up to
    CV_RATIO_LIMIT (see the module doc for the table and why)."""
    if min(n_a, n_b) < 2:
        raise ValueError(f"n_a={n_a}, n_b={n_b}: a verdict needs at least 2 runs a side")
    if n_a > n_b:  # the rate at (a, b, r) is the rate at (b, a, 1/r): the same level
        return verdict_alpha(n_b, n_a)
    if _worst_rate(n_a, n_b, ALPHA) <= FALSE_WINNER_TARGET:
        return ALPHA
    return float(
        optimize.brentq(
            lambda a: _worst_rate(n_a, n_b, a) - FALSE_WINNER_TARGET, 1e-6, ALPHA, xtol=1e-7
        )
    )


class Bounds(NamedTuple):
    """Per trial: the difference of the two sides' mean logs and the bounds it must pass
    for a verdict (a wins above ``upper`` when higher is better, b below ``lower``)."""

    diff: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    half: np.ndarray  # half-width of the interval at ``level``
    df: np.ndarray
    level: float


def verdict_bounds(log_a: np.ndarray, log_b: np.ndarray, min_effect_pct: float) -> Bounds:
    """The verdict rule, for many trials at once (one row of runs' log values per trial).

    A winner is named only when the Welch interval at level 1 - verdict_alpha(n_a, n_b)
    excludes no difference and the ratio is more than min_effect_pct away from 1: the
    difference of mean logs must be below ``lower`` or above ``upper``. compare() uses
    it for one comparison; the tests' simulations for thousands.
    """
    log_a, log_b = np.atleast_2d(log_a), np.atleast_2d(log_b)
    n_a, n_b = log_a.shape[1], log_b.shape[1]
    level = 1 - verdict_alpha(n_a, n_b)
    va = log_a.var(axis=1, ddof=1) / n_a
    vb = log_b.var(axis=1, ddof=1) / n_b
    with np.errstate(divide="ignore", invalid="ignore"):  # both sides flat: no interval (nan)
        df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))
    half = sps.t.ppf(0.5 + level / 2, df) * np.sqrt(va + vb)
    bar = min_effect_pct / 100
    return Bounds(
        diff=log_a.mean(axis=1) - log_b.mean(axis=1),
        lower=np.minimum(-half, math.log1p(-bar)),
        upper=np.maximum(half, math.log1p(bar)),
        half=half,
        df=df,
        level=level,
    )


def compare(a: Side, b: Side, metric: Metric, min_effect_pct: float = 2.0) -> Comparison:
    """Item 3: ``a`` vs ``b`` on one metric, with a verdict only when the data carry one."""
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"metric={metric!r}: use one of {sorted(HIGHER_IS_BETTER)}")
    if not (isinstance(min_effect_pct, int | float) and 0 <= min_effect_pct < 100):
        raise ValueError(f"min_effect_pct={min_effect_pct!r}: use a number from 0 to under 100")
    xa, _ = _positive(a.values, f"{a.name} {metric}")
    xb, _ = _positive(b.values, f"{b.name} {metric}")
    bound = sum(a.client_bound) + sum(b.client_bound)
    unknown = sum(not k for k in a.cpu_known) + sum(not k for k in b.cpu_known)
    found = _too_few(a, b, xa, xb) or _judge(a, b, xa, xb, metric, min_effect_pct, bound)
    caveat = (
        f"; {unknown} run{'s' if unknown != 1 else ''} without load generator CPU (cpu.json): "
        "whether they measured the load generator is unknown"
        if unknown
        else ""
    )
    return Comparison(
        metric=metric,
        a=a.name,
        b=b.name,
        n_a=len(xa),
        n_b=len(xb),
        ratio=found.ratio,
        interval=found.interval,
        df=found.df,
        min_effect_pct=float(min_effect_pct),
        verdict=found.verdict,
        winner=found.winner,
        why=found.why,
        client_bound_runs=bound,
        cpu_unknown_runs=unknown,
        sentence=f"{a.name} vs {b.name}, {METRIC_LABELS[metric]}: {found.text}{caveat}.",
    )


class _Found(NamedTuple):
    """What a comparison found: its verdict, why (no winner), the sentence's words after
    its subject, and the estimate when there is one."""

    verdict: Verdict
    why: str
    text: str
    winner: str | None = None
    ratio: float | None = None
    interval: Interval | None = None
    df: float | None = None


def _too_few(a: Side, b: Side, xa: np.ndarray, xb: np.ndarray) -> _Found | None:
    """not_enough_data when a side has under 2 runs or neither side varies (no interval)."""
    if len(xa) < 2 or len(xb) < 2:
        few = [(s.name, len(x)) for s, x in ((a, xa), (b, xb)) if len(x) < 2]
        why = "; ".join(f"{name} has {k} run{'s' if k != 1 else ''}" for name, k in few)
        why += "; need 2"
        return _Found("not_enough_data", why, f"not enough data for a verdict ({why})")
    if np.ptp(np.log(xa)) == 0 and np.ptp(np.log(xb)) == 0:
        why = "no run-to-run variation on either side, so no interval"
        return _Found("not_enough_data", why, f"not enough data for a verdict ({why})")
    return None


def _judge(
    a: Side,
    b: Side,
    xa: np.ndarray,
    xb: np.ndarray,
    metric: Metric,
    min_effect_pct: float,
    bound: int,
) -> _Found:
    """The ratio of a to b with its interval, and the verdict they carry: none with
    client-bound runs, a winner only when the interval excludes no change and the change
    clears the min_effect_pct bar."""
    rule = verdict_bounds(np.log(xa), np.log(xb), min_effect_pct)
    diff, half = float(rule.diff[0]), float(rule.half[0])
    ratio = math.exp(diff)
    interval = Interval(low=math.exp(diff - half), high=math.exp(diff + half), level=rule.level)
    df = float(rule.df[0])

    def found(verdict: Verdict, why: str, text: str, winner: str | None = None) -> _Found:
        return _Found(verdict, why, text, winner, ratio, interval, df)

    level = level_text(rule.level)
    span = f"{pct_text(interval.low)} to {pct_text(interval.high)}, {level} interval"
    if bound:
        why = f"{bound} client-bound run{'s' if bound != 1 else ''} ({CLIENT_BOUND})"
        return found("client_bound", why, f"no verdict, {why}; measured {pct_text(ratio)} ({span})")
    if not interval.excludes(1.0):
        why = "its interval includes no change"
        if len(xa) != len(xb):  # say why it is wider than the usual 95%
            why += (
                f" (with {len(xa)} + {len(xb)} runs a narrower one than "
                f"{level} would name false winners more than "
                f"{100 * FALSE_WINNER_TARGET:g}% of the time)"
            )
        return found("no_significant_difference", why, f"no significant difference ({span}): {why}")
    if not rule.lower[0] < diff < rule.upper[0]:
        a_wins = (ratio > 1) == HIGHER_IS_BETTER[metric]
        winner = a.name if a_wins else b.name
        text = f"{winner} wins, {pct_text(ratio)} ({span})"
        return found("a_better" if a_wins else "b_better", "", text, winner)
    why = f"{pct_text(ratio)} is under the {min_effect_pct:g}% bar (min_effect_pct)"
    return found("no_significant_difference", why, f"no significant difference ({span}): {why}")


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
