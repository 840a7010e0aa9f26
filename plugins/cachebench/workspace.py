"""Where a campaign run keeps its files: one results folder per run, one folder per point.

results/<campaign>/<run>/
  campaign.json            the validated spec and the planned points
  points/<point_id>/       terraform/ (module copy, tfvars, state), server/ (pids,
                           logs, metrics agent), load/ (raw load-tool output),
                           load.json, metrics.parquet|csv, metrics_summary.json,
                           figures/dashboard.png|pdf, error.txt
  summary.csv  figures/  report.md  report.html
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def results_root() -> Path:
    return Path(os.environ.get("CACHEBENCH_RESULTS", ROOT / "results")).resolve()


def run_slug(run_id: str) -> str:
    """A file-name-safe, readable form of an Airflow run id."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", run_id).strip("-")
    return slug[:80] or "run"


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def for_run(cls, campaign: str, run_id: str) -> RunDir:
        return cls(results_root() / campaign / run_slug(run_id))

    def point(self, point_id: str) -> PointDir:
        return PointDir(self.path / "points" / point_id)


@dataclass(frozen=True)
class PointDir:
    path: Path

    @property
    def terraform(self) -> Path:
        return self.path / "terraform"

    @property
    def server(self) -> Path:
        return self.path / "server"

    @property
    def load(self) -> Path:
        return self.path / "load"

    def write_json(self, name: str, data: Any) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        out = self.path / name
        out.write_text(json.dumps(data, indent=2, default=str))
        return out

    def record_error(self, step: str, exc: BaseException) -> None:
        """Leave the reason a point has no result where the report looks for it."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / "error.txt").open("a") as fh:
            fh.write(f"{step}: {type(exc).__name__}: {exc}\n")
