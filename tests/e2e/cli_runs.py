"""`python -m cachebench run` as a child process, as a newcomer runs it, for the e2e tests.

Each run gets a home of its own: its campaign file, its results folder and its own
Airflow home (the command migrates it): a `python -m cachebench run` on the session's
sqlite DB was followed by "database disk image is malformed" in later tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
REDIS = {"engine": "redis", "versions": ["7.0"]}
VALKEY = {"engine": "valkey", "versions": ["9.1"]}


def tiny_campaign(
    campaign: str, *, engines: tuple[dict, ...] = (REDIS,), repetitions: int = 2, **workload: Any
) -> dict:
    """A local campaign of single-node local.micro deployments and one short workload
    ("w", 1 s warm-up + 2 s unless `workload` says otherwise, its name too)."""
    return {
        "name": campaign,
        "target": "local",
        "engines": list(engines),
        "topologies": [{"cluster_mode": False}],
        "node_types": ["local.micro"],
        "workloads": [
            {
                "name": "w",
                "ratio": "1:4",
                "value_size": 64,
                "key_space": 2000,
                "pipeline": 2,
                "clients": 2,
                "threads": 1,
                "warmup_seconds": 1,
                "duration_seconds": 2,
            }
            | workload
        ],
        "repetitions": repetitions,
        "budget_usd": 0,
    }


def start_run(campaign: dict, home: Path) -> subprocess.Popen:
    """`python -m cachebench run` of `campaign` in `home` (results in home/results),
    stdout and stderr together as text; the session's other CACHEBENCH_* settings kept."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / f"{campaign['name']}.yaml"
    path.write_text(yaml.safe_dump(campaign))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "plugins"),
        "CACHEBENCH_RESULTS": str(home / "results"),
        "AIRFLOW_HOME": str(home / "airflow-home"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "cachebench", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
