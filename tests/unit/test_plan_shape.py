"""A DAG is built for one target: plan refuses a run that asks for another, naming the field,
before anything exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachebench import steps
from cachebench.campaign import CampaignError, load_campaign_file

ROOT = Path(__file__).resolve().parents[2]
LOCAL = load_campaign_file(ROOT / "include" / "campaigns" / "redis-vs-valkey-local.yaml")
AWS = load_campaign_file(ROOT / "include" / "campaigns" / "redis-vs-valkey-aws.yaml")


def test_a_dag_refuses_a_run_for_another_target_and_writes_nothing(results_dir: Path) -> None:
    with pytest.raises(CampaignError, match=r"target: 'aws': this DAG runs the local target"):
        steps.plan({**AWS}, "r1", dag_target="local")
    with pytest.raises(CampaignError, match=r"target: 'local': this DAG runs the aws target"):
        steps.plan({**LOCAL}, "r1", dag_target="aws")
    assert not results_dir.exists() or not any(results_dir.rglob("*"))


def test_the_matching_target_plans(results_dir: Path) -> None:
    assert len(steps.plan({**LOCAL}, "r1", dag_target="local")) == 4
