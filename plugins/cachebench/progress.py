"""Where a campaign run stands, read from its results folder (what the CLI shows).

Everything here comes from the files the steps write (campaign.json, each
deployment's servers.json and cleanup.json, each run's record and result, the
report's decisions.json), so
it works whoever runs the campaign: `python -m cachebench run`, or a scheduler
while someone watches the folder.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from cachebench.campaign import CampaignPlan
from cachebench.models import RunRecord
from cachebench.report.decision import Decisions
from cachebench.workspace import RunDir


@dataclass(frozen=True)
class Progress:
    campaign: str
    target: str
    estimate_usd: float
    deployments: int
    provisioned: int
    destroyed: int
    runs: int
    done: int
    failed: int
    now: str
    elapsed_s: float
    remaining_s: float | None
    interrupted: bool
    report: bool

    def line(self) -> str:
        """One line for a log or a terminal without a screen."""
        left = f", ~{clock(self.remaining_s)} left" if self.remaining_s is not None else ""
        cost = f", estimate ${self.estimate_usd:.2f}" if self.target == "aws" else ""
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"[{clock(self.elapsed_s)}] deployments {self.provisioned}/{self.deployments} up, "
            f"{self.destroyed} destroyed; runs {self.done}/{self.runs} done{failed}{left}{cost}: "
            f"{self.now}"
        )


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(max(seconds, 0))
    return (
        f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
    )


def _record(path: Path) -> RunRecord | None:
    try:
        return RunRecord.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def _phase(load_dir: Path) -> str:
    try:
        return json.loads((load_dir / "status.json").read_text()).get("phase", "")
    except (OSError, ValueError):
        return ""


def read(run_dir: Path, started_at: float) -> Progress | None:
    """The run's progress, or None before plan has written campaign.json."""
    run = RunDir(Path(run_dir))
    try:
        plan = CampaignPlan.read(run.path)
    except (OSError, ValueError):
        return None
    runs = _runs(run, plan)
    provisioned = len(list(run.path.glob("deployments/*/servers.json")))
    destroyed = len(list(run.path.glob("deployments/*/cleanup.json")))
    interrupted = run.interruption() is not None
    report = (run.path / "report.md").is_file()
    if report:
        now = "report written"
    elif interrupted:
        now = "interrupted: stopping the load and destroying every deployment"
    elif destroyed and destroyed >= provisioned:
        now = "destroying / writing the report"
    else:
        now = "provisioning" if provisioned < len(plan.deployments) else "measuring"
    elapsed = time.time() - started_at
    finished = runs.done + runs.failed
    remaining = None
    if finished:  # the time each run took beyond its own load, times the runs left
        overhead = max(elapsed - runs.spent_load_s, 0.0) / finished
        remaining = runs.load_left_s + overhead * (runs.total - finished)
    return Progress(
        campaign=plan.spec.name,
        target=plan.spec.target,
        estimate_usd=plan.estimate_usd,
        deployments=len(plan.deployments),
        provisioned=provisioned,
        destroyed=destroyed,
        runs=runs.total,
        done=runs.done,
        failed=runs.failed,
        now=runs.now or now,
        elapsed_s=elapsed,
        remaining_s=None if report or interrupted else remaining,
        interrupted=interrupted,
        report=report,
    )


@dataclass(frozen=True)
class _Runs:
    """Where the planned runs stand: how many, done (a result) and failed; the run under
    way ('' when none); the load seconds of the runs done and of the runs left."""

    total: int
    done: int
    failed: int
    now: str
    spent_load_s: float
    load_left_s: float


def _runs(run: RunDir, plan: CampaignPlan) -> _Runs:
    total = done = failed = 0
    now = ""
    spent = left = 0.0
    for d in plan.deployments:
        for position, r in enumerate(d.runs, start=1):
            total += 1
            w = r.point.workload
            if run.point(r.point.id).rep(r.repetition).has_result:
                done += 1
                spent += w.warmup_seconds + w.duration_seconds
                continue
            left += w.warmup_seconds + w.duration_seconds
            load = run.deployment(d.instance).load(r.point.id, r.repetition)
            record = _record(load / "record.json")
            if record is not None and record.status == "failed":
                failed += 1
            elif record is not None and record.status == "started":
                phase = _phase(load) or record.phase
                now = f"{d.instance}: run {position}/{len(d.runs)} ({r.label}): {phase}"
    return _Runs(total, done, failed, now, spent, left)


def headlines(run_dir: Path) -> list[tuple[str, str]]:
    """(question title, headline) of every decision, from the report's decisions.json."""
    try:
        decisions = Decisions.read(run_dir)
    except (OSError, ValueError):
        return []
    return [(s.title, s.headline) for s in decisions.sections]
