"""The report's "Since the baseline" section: this run into the history, then against it.

:func:`update` writes the campaign run's rows to its history (replacing them when the
run is reported again), reads the campaign's history back, compares every point with
its baseline (:mod:`cachebench.history.regression`), draws the trend figure and keeps
the result as ``since_baseline.json`` in the run's folder (the notifications read it).
Nothing here may sink the report: a history that cannot be written or read is said in
the section's notes, and a file of the history that is not one is named and skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cachebench.history import regression, trends
from cachebench.history.baseline import describe
from cachebench.history.rows import rows_for_run
from cachebench.history.store import History, Store, read
from cachebench.report.decision import Row, Section
from cachebench.workspace import RunDir

log = logging.getLogger(__name__)

FILE = "since_baseline.json"


#: The decision figure's section of the changes since the baseline.
SECTION = "since_baseline"


def update(
    run_dir: Path,
    plan: Any,
    run_rows: list[dict[str, Any]],
    point_rows: list[dict[str, Any]],
    specs: dict,
    store: Store,
) -> regression.Since:
    """Record campaign run ``run_dir`` in ``store`` and compare it with its baseline.

    ``plan``: its campaign.CampaignPlan; ``run_rows`` / ``point_rows``: the report's rows
    (runs.csv, and summary.csv's points with a result).
    """
    spec = plan.spec
    try:
        rows = rows_for_run(run_dir, plan, run_rows, point_rows, specs)
        if not rows:
            raise ValueError("the run planned no run")
    except Exception as exc:  # the report is still written, saying why it has no history
        log.warning("history: this run's rows could not be made: %s", exc, exc_info=True)
        result = regression.Since(
            campaign=spec.name,
            run_id=Path(run_dir).name,
            baseline=describe(spec.baseline),
            regression_pct=spec.regression_pct,
            earlier_runs=0,
            headline=f"Nothing compared: this run's history rows could not be made ({exc}).",
            where=store.where,
        )
        RunDir(Path(run_dir)).write_json(FILE, result.model_dump(mode="json"))
        return result
    notes: list[str] = []
    try:
        written = store.write(spec.name, Path(run_dir).name, rows)
        log.info("history: %d row(s) of this run written to %s", len(rows), written)
    except Exception as exc:
        notes.append(f"this run could not be written to the history ({type(exc).__name__}: {exc})")
        log.warning("history: %s", notes[-1])
    try:
        history = read(store, spec.name)
    except Exception as exc:
        notes.append(f"the history could not be read ({type(exc).__name__}: {exc})")
        log.warning("history: %s", notes[-1])
        history = History(where=store.where)
    others = [r for r in history.rows if r.run_id != rows[0].run_id] if rows else []
    result = regression.since(rows, others, spec.baseline, spec.regression_pct)
    figures: list[dict[str, str]] = []
    try:
        paths = trends.draw(result, rows, others, spec.trend_runs, Path(run_dir) / "figures")
        if paths:
            figures.append(
                {
                    "title": "Each point over its last runs",
                    "name": trends.NAME,
                    "png": f"figures/{trends.NAME}.png",
                    "pdf": f"figures/{trends.NAME}.pdf",
                }
            )
    except Exception as exc:  # a figure must not sink the report
        notes.append(f"no trend figure ({type(exc).__name__}: {exc})")
        log.warning("history: %s", notes[-1])
    result = result.model_copy(
        update={
            "where": store.where,
            "skipped": history.skipped,
            "notes": tuple(notes),
            "figures": tuple(figures),
            "one_deployment": not spec.redeploy_per_repetition,
        }
    )
    RunDir(Path(run_dir)).write_json(FILE, result.model_dump(mode="json"))
    return result


def read_since(run_dir: Path) -> regression.Since | None:
    """The section as the run's report computed it (None: none was)."""
    try:
        return regression.Since.model_validate_json((Path(run_dir) / FILE).read_text())
    except (OSError, ValueError):
        return None


def decision_section(since: regression.Since) -> Section | None:
    """The changes since the baseline as the decision figure's rows (this run against its
    baseline's runs, per point and metric), or None when nothing was compared."""
    rows = tuple(
        Row(
            section=SECTION,
            group=f"Since the baseline: {change.metric}",
            label=f"{point.label}: this run vs {change.baseline_run}",
            a_point=point.point_id,
            verdict_word=regression.WORDS[change.verdict],
            withheld=change.verdict in ("not_enough_data", "client_bound"),
            comparison=change.comparison,
        )
        for point in since.points
        for change in point.changes
    )
    if not rows:
        return None
    return Section(
        key=SECTION, title="Changes since the baseline", headline=since.headline, rows=rows
    )
