"""Where a campaign run keeps its files: one results folder per run.

results/<campaign>/<run>/
  campaign.json              the validated spec, the deployments, the run order and the
                             DAG that ran it (who may read that DAG may read the report)
  deployments/<instance>/    one provisioned deployment: deployment.json, terraform/
                             (module copy, tfvars, state), server/ (pids, logs, metrics
                             agent), load/<point>/rep<k>/ (raw load-tool output and the
                             run's record.json), cleanup.json, error.txt
  points/<point_id>/         point.json, and per repetition rep<k>/: load.json,
                             warmup.json, prefill.json, metrics.parquet|csv,
                             metrics_summary.json, figures/dashboard.png|pdf, error.txt
  summary.csv  runs.csv  figures/  report.md  report.html
  interrupted.json           when the user stopped the run (Ctrl-C), and why

Every process a deployment starts runs with its working directory inside the
deployment's folder, so destroy (and the reaper) can find them all there. No secret
is ever written here (the local servers' password: cachebench.targets.local.runtime), and only
what a reader needs is served (cachebench.serve).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachebench import jsonfile

if TYPE_CHECKING:
    from cachebench.models import DeploymentPlan

ROOT = Path(__file__).resolve().parents[2]


def results_root() -> Path:
    return Path(os.environ.get("CACHEBENCH_RESULTS", ROOT / "results")).resolve()


def run_slug(run_id: str) -> str:
    """A file-name-safe, readable form of an Airflow run id."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", run_id).strip("-")
    return slug[:80] or "run"


class _Dir:
    path: Path

    def write_json(self, name: str, data: Any) -> Path:
        return jsonfile.write(self.path / name, data)

    def record_error(self, step: str, exc: BaseException | str) -> None:
        """Leave the reason something has no result where the report looks for it."""
        self.path.mkdir(parents=True, exist_ok=True)
        text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        with (self.path / "error.txt").open("a") as fh:
            fh.write(f"{step}: {text}\n")


INTERRUPT_FILE = "interrupted.json"  # the user stopped the run (see steps.interrupt)


@dataclass(frozen=True)
class RunDir(_Dir):
    path: Path

    @classmethod
    def for_run(cls, campaign: str, run_id: str) -> RunDir:
        return cls(results_root() / campaign / run_slug(run_id))

    def interruption(self) -> dict[str, Any] | None:
        """When and why the run was interrupted, or None."""
        try:
            return json.loads((self.path / INTERRUPT_FILE).read_text())
        except (OSError, ValueError):
            return None

    def deployment(self, instance: str) -> DeploymentDir:
        return DeploymentDir(self.path / "deployments" / instance)

    def point(self, point_id: str) -> PointDir:
        return PointDir(self.path / "points" / point_id)


@dataclass(frozen=True)
class DeploymentDir(_Dir):
    path: Path

    @property
    def terraform(self) -> Path:
        return self.path / "terraform"

    @property
    def server(self) -> Path:
        return self.path / "server"

    def load(self, point_id: str, repetition: int) -> Path:
        """Raw load-tool output of one run (and its record.json)."""
        return self.path / "load" / point_id / f"rep{repetition}"

    def record(self, point_id: str, repetition: int) -> Path:
        """The run's state (models.RunRecord): its attempts and how they ended."""
        return self.load(point_id, repetition) / "record.json"


def deployment_dir(plan: DeploymentPlan) -> DeploymentDir:
    """The one folder of a planned deployment, inside its run's."""
    return RunDir(Path(plan.run_dir)).deployment(plan.instance)


@dataclass(frozen=True)
class PointDir(_Dir):
    path: Path

    def rep(self, repetition: int) -> ResultDir:
        return ResultDir(self.path / f"rep{repetition}")


@dataclass(frozen=True)
class ResultDir(_Dir):
    """One run's results: what the report reads."""

    path: Path

    @property
    def has_result(self) -> bool:
        """Measured once its load result and its server metrics are both written."""
        return (self.path / "metrics.parquet").is_file() and (self.path / "load.json").is_file()
