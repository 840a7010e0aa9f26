"""Trend figures: each point's throughput and p99 over its last runs, with intervals.

One figure per report (``figures/trends.png`` and ``.pdf``, drawn by report/chart.py):
a row per point, throughput on the left and p99 on the right, over the point's last
``trend_runs`` campaign runs with this run's fingerprint (runs of another configuration
are left out, and the figure says how many). Each run is its mean over repetitions, its
band the 95% interval over them as the report of that run gave it, and the line of the
baseline run's mean is drawn across.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cachebench.history.regression import CampaignRun, PointChange, Since, campaign_runs
from cachebench.history.rows import HistoryRow
from cachebench.report.chart import Chart, Key, Line, LinePanel, save

MAX_POINTS = 12  # rows of one figure; the rest are in the history
NAME = "trends"
#: (metric, column, its interval's columns, panel title)
PANELS = (
    ("throughput", "ops_per_sec", ("point_ops_ci_low", "point_ops_ci_high"), "ops/s"),
    ("p99", "p99_ms", ("point_p99_ci_low", "point_p99_ci_high"), "p99 ms"),
)
LINE, BASELINE = "#1f77b4", "#d62728"


def _mean(rows: list[HistoryRow], column: str) -> float:
    vals = [v for r in rows if (v := getattr(r, column)) is not None and v > 0]
    return sum(vals) / len(vals) if vals else float("nan")


def _bound(rows: list[HistoryRow], column: str) -> float:
    v = getattr(rows[0], column) if rows else None
    return float(v) if v is not None else float("nan")


def chart(
    since: Since, now_rows: Sequence[HistoryRow], history: Sequence[HistoryRow], last: int
) -> Chart | None:
    """The trend figure of ``since``'s points (None: no point has an earlier run to show)."""
    runs = [r for r in campaign_runs(history) if r.run_id != since.run_id]
    (now,) = campaign_runs(now_rows)
    runs = sorted([*runs, now], key=lambda r: (r.started_at, r.run_id))
    runs = runs[: runs.index(now) + 1]  # a report shows the trend up to its own run
    panels: list[LinePanel] = []
    left_out = drawn = over = longest = 0
    for p in since.points:
        ident = now.fingerprint(p.point_id)
        if ident is None or not now.ok(p.point_id):
            continue
        mine, others = _same_configuration(p.point_id, ident.fingerprint, runs)
        left_out += others
        mine = mine[-last:]
        if len(mine) < 2:
            continue
        if drawn == MAX_POINTS:
            over += 1
            continue
        drawn += 1
        longest = max(longest, len(mine))
        panels += _point_panels(p, mine)
    if not panels:
        return None
    notes = []
    if left_out:
        notes.append(f"{left_out} run(s) of another configuration (fingerprint) left out.")
    if over:
        notes.append(f"{over} more point(s) with a trend, not drawn (see the history).")
    return Chart(
        title=f"{since.campaign}: each point over its last runs",
        panels=panels,
        width=10.0,
        height=1.1 + 2.1 * (len(panels) // 2),
        ncols=2,
        xlabel="campaign runs before this one (0 = this run); band: 95% interval over its "
        "repetitions",
        keys=[
            Key("mean of the run's repetitions", LINE),
            Key("the baseline run's mean", BASELINE, "--"),
        ],
        x_integers=True,
        xlim=(-(longest - 1) - 0.25, 0.25),  # the first and last runs' dots inside the frame
        note=" ".join(notes),
    )


def _same_configuration(
    point_id: str, fingerprint: str, runs: list[CampaignRun]
) -> tuple[list[CampaignRun], int]:
    """The runs where point_id has a result with this fingerprint, and how many runs of
    another configuration (fingerprint) were left out."""
    mine: list[CampaignRun] = []
    left_out = 0
    for r in runs:
        ok = r.ok(point_id)
        if ok and ok[0].fingerprint == fingerprint:
            mine.append(r)
        elif ok:
            left_out += 1
    return mine, left_out


def _point_panels(p: PointChange, mine: list[CampaignRun]) -> list[LinePanel]:
    """A point's throughput and p99 panels over its runs `mine` (the last one is this run's),
    with the baseline run's mean drawn across."""
    x = np.arange(-(len(mine) - 1), 1, dtype=float)
    panels = []
    for metric, column, (lo, hi), title in PANELS:
        rows = [r.ok(p.point_id) for r in mine]
        panel = LinePanel(f"{p.label}: {title}", ymin=0.0)
        panel.lines.append(
            Line(
                x,
                np.array([_mean(rs, column) for rs in rows]),
                LINE,
                lo=np.array([_bound(rs, lo) for rs in rows]),
                hi=np.array([_bound(rs, hi) for rs in rows]),
            )
        )
        base = next((c for c in p.changes if c.metric == metric), None)
        based = [r for r in mine if base is not None and r.run_id == base.baseline_run]
        if based:  # a line, not an HLine: one key for the whole chart
            value = _mean(based[0].ok(p.point_id), column)
            panel.lines.append(Line(x, np.full(len(x), value), BASELINE, "--"))
        panels.append(panel)
    return panels


def draw(
    since: Since,
    now_rows: Sequence[HistoryRow],
    history: Sequence[HistoryRow],
    last: int,
    fig_dir: Path,
) -> dict[str, str]:
    """Write figures/trends.png and .pdf when there is a trend to show; their paths."""
    figure = chart(since, now_rows, history, last)
    return save(figure, fig_dir, NAME) if figure is not None else {}
