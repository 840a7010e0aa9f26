"""A DAG is built for one target (and, on aws, a number of load tasks per point):
plan refuses a run that asks for another, naming the field, before anything exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachebench import steps
from cachebench.campaign import CampaignError, load_campaign_file

ROOT = Path(__file__).resolve().parents[2]
LOCAL = load_campaign_file(ROOT / "include" / "campaigns" / "redis-vs-valkey-local.yaml")
AWS = load_campaign_file(ROOT / "include" / "campaigns" / "redis-vs-valkey-aws.yaml")


def test_a_local_dag_refuses_an_aws_run(results_dir: Path) -> None:
    with pytest.raises(CampaignError, match=r"target: 'aws': this DAG runs the local target"):
        steps.plan({**AWS}, "r1", dag_target="local")
    assert not list(results_dir.rglob("campaign.json"))  # nothing planned, nothing written


def test_an_aws_dag_refuses_more_generators_than_it_has_load_tasks(results_dir: Path) -> None:
    with pytest.raises(CampaignError, match=r"load_generators: 8: .* allowed 1 to 5"):
        steps.plan({**AWS, "load_generators": 8}, "r1", dag_target="aws", load_tasks=5)
    with pytest.raises(CampaignError, match=r"target: 'local': this DAG runs the aws target"):
        steps.plan({**LOCAL}, "r1", dag_target="aws", load_tasks=5)


def test_the_matching_target_plans(results_dir: Path) -> None:
    assert len(steps.plan({**LOCAL}, "r1", dag_target="local")) == 4
