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
    runs = [(d, r) for d in plan.deployments for r in d.runs]
    done = failed = 0
    now = ""
    load_left = 0.0
    for d, r in runs:
        ddir = run.deployment(d.instance)
        record = _record(ddir.load(r.point.id, r.repetition) / "record.json")
        w = r.point.workload
        if run.point(r.point.id).rep(r.repetition).has_result:
            done += 1
            continue
        load_left += w.warmup_seconds + w.duration_seconds
        if record is not None and record.status == "failed":
            failed += 1
        elif record is not None and record.status == "started":
            phase = _phase(ddir.load(r.point.id, r.repetition)) or record.phase
            position = d.runs.index(r) + 1
            now = f"{d.instance}: run {position}/{len(d.runs)} ({r.label}): {phase}"
    provisioned = len(list(run.path.glob("deployments/*/servers.json")))
    destroyed = len(list(run.path.glob("deployments/*/cleanup.json")))
    interrupted = run.interruption() is not None
    report = (run.path / "report.md").is_file()
    if not now:
        if report:
            now = "report written"
        elif interrupted:
            now = "interrupted: stopping the load and destroying every deployment"
        elif destroyed and destroyed >= provisioned:
            now = "destroying / writing the report"
        else:
            now = "provisioning" if provisioned < len(plan.deployments) else "measuring"
    elapsed = time.time() - started_at
    finished = done + failed
    remaining = None
    if finished:  # the time each run took beyond its own load, times the runs left
        spent_load = sum(
            r.point.workload.warmup_seconds + r.point.workload.duration_seconds
            for d, r in runs
            if run.point(r.point.id).rep(r.repetition).has_result
        )
        overhead = max(elapsed - spent_load, 0.0) / finished
        remaining = load_left + overhead * (len(runs) - finished)
    return Progress(
        campaign=plan.spec.name,
        target=plan.spec.target,
        estimate_usd=plan.estimate_usd,
        deployments=len(plan.deployments),
        provisioned=provisioned,
        destroyed=destroyed,
        runs=len(runs),
        done=done,
        failed=failed,
        now=now,
        elapsed_s=elapsed,
        remaining_s=None if report or interrupted else remaining,
        interrupted=interrupted,
        report=report,
    )


def headlines(run_dir: Path) -> list[tuple[str, str]]:
    """(question title, headline) of every decision, from the report's decisions.json."""
    try:
        decisions = Decisions.read(run_dir)
    except (OSError, ValueError):
        return []
    return [(s.title, s.headline) for s in decisions.sections]
