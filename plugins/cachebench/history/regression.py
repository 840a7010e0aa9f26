"""Per point, this campaign run against its baseline: regression, improvement or neither.

The statistics are the report's own comparisons (:func:`cachebench.report.stats.compare`):
this run's repetitions of a point are one side, the baseline run's repetitions the other;
the ratio of their geometric means gets Welch's interval at the level the two run counts
need, and a verdict is named only when that interval excludes no change **and** the
change is beyond ``regression_pct``. Otherwise the point reads "no significant change"
(with the interval and why), "not enough data" (under 2 runs a side) or, when a run on
either side measured its load generator, no verdict. Throughput falling, or p99 rising,
is a regression; the other way an improvement.

Two runs of a point are compared only when their fingerprints are equal
(:mod:`cachebench.history.fingerprint`); otherwise the point says what differs and
nothing is compared.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import Field

from cachebench.history import baseline as bl
from cachebench.history.fingerprint import differences
from cachebench.history.rows import HistoryRow
from cachebench.models import Strict
from cachebench.report import stats
from cachebench.report.decision import label as point_label

#: (stats metric, HistoryRow column) of every comparison with the baseline.
METRICS: tuple[tuple[stats.Metric, str], ...] = (("throughput", "ops_per_sec"), ("p99", "p99_ms"))
NOW = "this run"
ChangeVerdict = Literal[
    "regression", "improvement", "no_significant_change", "not_enough_data", "client_bound"
]
WORDS = {
    "regression": "regression",
    "improvement": "improvement",
    "no_significant_change": "no significant change",
    "not_enough_data": "not enough data",
    "client_bound": "no verdict (client-bound runs)",
}


class CampaignRun(Strict):
    """One campaign run in the history: its id, when it was planned, its rows."""

    run_id: str
    run_slug: str
    started_at: datetime
    rows: tuple[HistoryRow, ...]

    def ok(self, point_id: str) -> list[HistoryRow]:
        return sorted(
            (r for r in self.rows if r.point_id == point_id and r.status == "ok"),
            key=lambda r: r.repetition,
        )

    def fingerprint(self, point_id: str) -> HistoryRow | None:
        return next((r for r in self.rows if r.point_id == point_id), None)

    def names(self, run: str) -> bool:
        return run in (self.run_id, self.run_slug)


def campaign_runs(rows: Sequence[HistoryRow]) -> list[CampaignRun]:
    """The rows grouped by campaign run, oldest first."""
    by_run: dict[str, list[HistoryRow]] = {}
    for r in rows:
        by_run.setdefault(r.run_id, []).append(r)
    runs = [
        CampaignRun(
            run_id=rid,
            run_slug=rs[0].run_slug,
            started_at=min(r.run_started_at for r in rs),
            rows=tuple(rs),
        )
        for rid, rs in by_run.items()
    ]
    return sorted(runs, key=lambda r: (r.started_at, r.run_id))


class Change(Strict):
    """One metric of a point, this run against its baseline."""

    metric: stats.Metric
    verdict: ChangeVerdict
    baseline_run: str = Field(description="the run id whose repetitions were the baseline side")
    comparison: stats.Comparison = Field(description="stats.compare(this run, baseline)")
    sentence: str


class PointChange(Strict):
    point_id: str
    label: str
    baseline_runs: tuple[str, ...] = ()
    differs: tuple[str, ...] = Field((), description="fingerprint fields that differ")
    changes: tuple[Change, ...] = ()
    note: str = Field("", description="why nothing was compared, or what to know beside it")


class Since(Strict):
    """The report's "Since the baseline": every point of a run against its baseline."""

    campaign: str
    run_id: str
    baseline: str = Field(description="the campaign's baseline, as the report says it")
    regression_pct: float
    earlier_runs: int = Field(description="earlier campaign runs in the history")
    one_deployment: bool = Field(
        False,
        description="each point's repetitions ran on one deployment (no "
        "redeploy_per_repetition): the interval leaves out how two deployments differ",
    )
    points: tuple[PointChange, ...] = ()
    headline: str = ""
    where: str = Field("", description="where the history is")
    skipped: tuple[str, ...] = Field((), description="history files skipped, and why")
    notes: tuple[str, ...] = ()
    figures: tuple[dict[str, str], ...] = Field((), description="the trend figures' paths")

    @property
    def comparisons(self) -> list[stats.Comparison]:
        """Every comparison made, as report/stats.compare returned it (a plain list)."""
        return [c.comparison for p in self.points for c in p.changes]

    @property
    def changes(self) -> list[Change]:
        return [c for p in self.points for c in p.changes]

    def count(self, verdict: ChangeVerdict) -> int:
        return sum(c.verdict == verdict for c in self.changes)


def _side(name: str, rows: list[HistoryRow], column: str) -> stats.Side:
    values = []
    for r in rows:
        v = getattr(r, column)
        values.append(v if v is not None and v > 0 else None)
    return stats.Side(
        name=name,
        values=tuple(values),
        client_bound=tuple(bool(r.client_bound) for r in rows),
        cpu_known=tuple(r.load_cpu_known is not False for r in rows),
    )


def _mean(rows: list[HistoryRow], column: str) -> float | None:
    vals = [v for r in rows if (v := getattr(r, column)) is not None and v > 0]
    return sum(vals) / len(vals) if vals else None


def _pct(r: float) -> str:
    return f"{100 * (r - 1):+.1f}%"


def change(
    now: list[HistoryRow],
    base: list[HistoryRow],
    metric: stats.Metric,
    column: str,
    base_run: str,
    regression_pct: float,
) -> Change:
    """``metric`` of this run's rows against the baseline's, with its verdict and sentence."""
    c = stats.compare(
        _side(NOW, now, column), _side(f"run {base_run}", base, column), metric, regression_pct
    )
    verdict: ChangeVerdict = {
        "a_better": "improvement",
        "b_better": "regression",
        "no_significant_difference": "no_significant_change",
    }.get(c.verdict, c.verdict)  # type: ignore[assignment]
    what = stats.METRIC_LABELS[metric]
    if c.interval is None:
        sentence = f"{what}: not enough data ({c.why})"
    else:
        level = f"{100 * c.interval.level:.1f}".removesuffix(".0")
        low, high = _pct(c.interval.low), _pct(c.interval.high)
        span = f"{_pct(c.ratio)} ({low} to {high}, {level}% interval)"
        if verdict in ("regression", "improvement"):
            why = f"beyond the {regression_pct:g}% threshold"
        elif verdict == "client_bound":
            why = c.why
        elif c.interval.excludes(1.0):  # significant, but within the threshold
            why = f"within the {regression_pct:g}% threshold (regression_pct)"
        else:
            why = c.why
        sentence = f"{what} {span}: {WORDS[verdict]} ({why})"
    if c.cpu_unknown_runs:
        sentence += f"; {c.cpu_unknown_runs} run(s) without load generator CPU"
    return Change(
        metric=metric, verdict=verdict, baseline_run=base_run, comparison=c, sentence=sentence + "."
    )


def _fingerprint_differences(now: HistoryRow, then: HistoryRow) -> list[str]:
    if now.fingerprint == then.fingerprint:
        return []
    a, b = then.fingerprint_fields(), now.fingerprint_fields()
    if a is None or b is None:
        return [f"fingerprint: then {then.fingerprint}, now {now.fingerprint} (fields unreadable)"]
    return differences(a, b) or [f"fingerprint: then {then.fingerprint}, now {now.fingerprint}"]


def _versions(now: list[HistoryRow], then: list[HistoryRow]) -> str:
    a, b = then[0].server_version if then else None, now[0].server_version if now else None
    if a and b and a != b:
        return f"the servers report {b} now, {a} then"
    return ""


def compare_point(
    point_id: str,
    now: CampaignRun,
    earlier: Sequence[CampaignRun],
    baseline: str | bl.MedianOfLast,
    regression_pct: float,
) -> PointChange:
    """Point ``point_id`` of run ``now`` against its baseline among ``earlier`` runs."""
    first = now.fingerprint(point_id)
    assert first is not None, point_id
    label = point_label(first.model_dump())
    rows = now.ok(point_id)
    out = PointChange(point_id=point_id, label=label)
    if isinstance(baseline, bl.MedianOfLast):
        return _median(out, point_id, now, earlier, baseline.median_of_last, regression_pct)
    if baseline == bl.PREVIOUS:
        with_point = [r for r in earlier if r.ok(point_id)]
        if not with_point:
            return out.model_copy(update={"note": "no earlier run measured this point"})
        base = with_point[-1]
    else:
        named = [r for r in earlier if r.names(baseline)]
        if not named:
            return out.model_copy(update={"note": f"run {baseline} is not in the history"})
        base = named[0]
        if not base.ok(point_id):
            note = f"run {baseline} has no result for this point"
            return out.model_copy(update={"note": note})
    then = base.ok(point_id)
    differs = _fingerprint_differences(first, then[0])
    out = out.model_copy(update={"baseline_runs": (base.run_id,), "differs": tuple(differs)})
    if differs:
        return out.model_copy(update={"note": "not comparable: " + "; ".join(differs)})
    changes = tuple(change(rows, then, m, col, base.run_id, regression_pct) for m, col in METRICS)
    return out.model_copy(update={"changes": changes, "note": _versions(rows, then)})


def _median(
    out: PointChange,
    point_id: str,
    now: CampaignRun,
    earlier: Sequence[CampaignRun],
    n: int,
    regression_pct: float,
) -> PointChange:
    """Per metric, the baseline is the run whose mean is the median of the last n runs of
    the point with this run's fingerprint."""
    first = now.fingerprint(point_id)
    assert first is not None
    with_point = [r for r in earlier if r.ok(point_id)]
    same = [r for r in with_point if r.ok(point_id)[0].fingerprint == first.fingerprint][-n:]
    if not same:
        if not with_point:
            return out.model_copy(update={"note": "no earlier run measured this point"})
        latest = with_point[-1]
        differs = _fingerprint_differences(first, latest.ok(point_id)[0])
        note = (
            f"no earlier run with this run's fingerprint; the latest, {latest.run_id}, "
            "differs: " + "; ".join(differs)
        )
        return out.model_copy(
            update={"baseline_runs": (latest.run_id,), "differs": tuple(differs), "note": note}
        )
    rows = now.ok(point_id)
    changes, used = [], []
    for metric, column in METRICS:
        scored = [(m, r) for r in same if (m := _mean(r.ok(point_id), column)) is not None]
        if not scored:
            continue
        middle = statistics.median_low([m for m, _ in scored])
        base = next(r for m, r in reversed(scored) if m == middle)  # a tie: the later run
        used.append(base.run_id)
        changes.append(change(rows, base.ok(point_id), metric, column, base.run_id, regression_pct))
    note = f"median of the last {len(same)} comparable run(s)"
    if len(same) < n:
        note += f" (fewer than {n} in the history)"
    return out.model_copy(
        update={
            "baseline_runs": tuple(dict.fromkeys(used)),
            "changes": tuple(changes),
            "note": note,
        }
    )


def since(
    now_rows: Sequence[HistoryRow],
    history: Sequence[HistoryRow],
    baseline: str | bl.MedianOfLast,
    regression_pct: float,
) -> Since:
    """Every point of the run ``now_rows`` against its baseline among ``history`` (rows of
    other campaign runs; a run id baseline may be any of them, the others must be earlier)."""
    (now,) = campaign_runs(now_rows)
    others = [r for r in campaign_runs(history) if r.run_id != now.run_id]
    earlier = [r for r in others if r.started_at < now.started_at]
    if not (isinstance(baseline, str) and baseline != bl.PREVIOUS):
        others = earlier
    points = tuple(
        compare_point(pid, now, others, baseline, regression_pct)
        for pid in dict.fromkeys(r.point_id for r in now.rows)
    )
    result = Since(
        campaign=now.rows[0].campaign,
        run_id=now.run_id,
        baseline=bl.describe(baseline),
        regression_pct=regression_pct,
        earlier_runs=len(earlier),
        points=points,
    )
    return result.model_copy(update={"headline": headline(result)})


def headline(s: Since) -> str:
    """One line: what changed since the baseline, or why nothing was compared."""
    compared = [p for p in s.points if p.changes]
    if not compared:
        if not s.earlier_runs:
            return (
                "No earlier run in the history: this run is the first, the baseline of the "
                "next ones."
            )
        why = next((p.note for p in s.points if p.note), "nothing comparable")
        return f"Nothing compared with {s.baseline}: {why}."
    counts = [f"{WORDS[v]} in {k}" for v in WORDS if (k := s.count(v))]
    text = (
        f"Against {s.baseline} ({len(compared)} of {len(s.points)} point(s) compared, "
        f"{len(s.changes)} comparisons, threshold {s.regression_pct:g}%): " + ", ".join(counts)
    )
    worst = [
        f"{p.label} {c.comparison.metric} {_pct(c.comparison.ratio)}"
        for p in s.points
        for c in p.changes
        if c.verdict == "regression" and c.comparison.ratio is not None
    ]
    if worst:
        text += ". REGRESSION: " + "; ".join(worst[:3]) + ("; ..." if len(worst) > 3 else "")
    return text + "."
