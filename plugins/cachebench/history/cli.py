"""`python -m cachebench history NAME`: a campaign's runs; `--compare RUN_A RUN_B`: RUN_B
against RUN_A as its baseline, with the verdicts its report would give.

The history is read where the campaign's runs write it: under the results root
(``CACHEBENCH_RESULTS``), or with ``--aws`` in the results bucket of the
``cachebench_aws`` settings (the Variable, or its AIRFLOW_VAR_CACHEBENCH_AWS form).
A run is named by its Airflow run id or its folder name. Exit status 0; 2 when the
campaign has no history or a run is not in it.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas, scipy, duckdb: only when the command runs
    from cachebench.history import regression, store


def add_parser(sub: argparse._SubParsersAction) -> None:
    h = sub.add_parser("history", help="a campaign's runs, or two of them compared")
    h.add_argument("campaign", help="the campaign's name")
    h.add_argument(
        "--compare",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="compare RUN_B with RUN_A as its baseline (run ids or folder names)",
    )
    h.add_argument(
        "--regression-pct",
        type=float,
        help="threshold of a verdict (default: RUN_B's campaign's regression_pct, else 5)",
    )
    h.add_argument("--aws", action="store_true", help="read the history in the results bucket")


def _store(aws: bool) -> store.Store:
    from cachebench.history import store

    if aws:
        from cachebench.aws.settings import resolve

        return store.aws_store(resolve(None))
    return store.local_store()


def _default_pct(campaign: str, run: regression.CampaignRun) -> float:
    """RUN_B's own campaign's regression_pct, when its folder is here; else the default."""
    from cachebench.campaign import CampaignPlan, CampaignSpec
    from cachebench.workspace import results_root

    try:
        return CampaignPlan.read(results_root() / campaign / run.run_slug).spec.regression_pct
    except (OSError, ValueError):
        return CampaignSpec.model_fields["regression_pct"].default


def _find(runs: list[regression.CampaignRun], name: str) -> regression.CampaignRun | None:
    return next((r for r in runs if r.names(name)), None)


def main(args: argparse.Namespace) -> int:
    from cachebench.history import regression, store

    history = store.read(_store(args.aws), args.campaign)
    for line in history.skipped:
        print(f"skipped {line}", file=sys.stderr)
    runs = regression.campaign_runs(history.rows)
    if not runs:
        print(f"campaign {args.campaign}: no run in its history ({history.where})", file=sys.stderr)
        return 2
    if not args.compare:
        _list(args.campaign, history.where, runs)
        return 0
    found = [_find(runs, name) for name in args.compare]
    for name, run in zip(args.compare, found, strict=True):
        if run is None:
            known = ", ".join(r.run_id for r in runs[-5:])
            print(f"{name}: not a run of {args.campaign} (latest: {known})", file=sys.stderr)
            return 2
    a, b = found
    assert a is not None and b is not None
    pct = args.regression_pct if args.regression_pct is not None else _default_pct(args.campaign, b)
    result = regression.since(b.rows, a.rows, a.run_id, pct)
    print(f"campaign {args.campaign}: {b.run_id} against {a.run_id}")
    print(f"  {result.headline}")
    for p in result.points:
        print(f"  - {p.label}:")
        for c in p.changes:
            print(f"      {c.sentence}")
        if p.note:
            print(f"      {p.note}")
    return 0


def _list(campaign: str, where: str, runs: list[regression.CampaignRun]) -> None:
    print(f"campaign {campaign}: {len(runs)} run(s) in {where}")
    print(f"  {'planned (UTC)':19}  {'runs ok':>7}  {'points':>6}  run id")
    for r in runs:
        ok = sum(x.status == "ok" for x in r.rows)
        points = len({x.point_id for x in r.rows})
        when = r.started_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"  {when:19}  {f'{ok}/{len(r.rows)}':>7}  {points:>6}  {r.run_id}")
