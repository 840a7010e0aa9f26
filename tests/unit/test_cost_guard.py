"""Cost guard: plan refuses a campaign over its budget or its max_points, naming the
estimate, before anything is provisioned (no run, point or terraform folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachebench import steps
from cachebench.campaign import FARGATE_TASK_USD_HOUR, PROVISION_HOURS, CampaignError
from cachebench.specs import load_instance_specs


def aws_campaign(**over) -> dict:
    return {
        "name": "costly",
        "target": "aws",
        "engines": [
            {"engine": "redis", "versions": ["7.1"]},
            {"engine": "valkey", "versions": ["8.1"]},
        ],
        "topologies": [{"cluster_mode": True, "shards": 2, "replicas": 1}],
        "node_types": ["cache.m6g.large"],
        "workloads": [{"name": "w", "warmup_seconds": 60, "duration_seconds": 3600}],
        "load_generators": 5,
        "budget_usd": 1,
        "max_points": 10,
        **over,
    }


def by_hand(fields: dict) -> float:
    """4 nodes x hours x node price + 5 load tasks x hours x Fargate, per point."""
    price = load_instance_specs()[("aws", "cache.m6g.large")].price_usd_hour
    w = fields["workloads"][0]
    hours = (w["warmup_seconds"] + w["duration_seconds"]) / 3600 + PROVISION_HOURS["aws"]
    per_point = 4 * hours * price + fields["load_generators"] * hours * FARGATE_TASK_USD_HOUR
    return round(2 * per_point, 2)


def assert_nothing_created(results: Path) -> None:
    assert not results.exists() or not any(results.rglob("*")), sorted(results.rglob("*"))


def test_over_budget_is_refused_with_the_estimate(results_dir: Path) -> None:
    fields = aws_campaign()
    estimate = by_hand(fields)
    assert estimate > 1
    with pytest.raises(CampaignError) as err:
        steps.plan(fields, "manual__cost")
    text = str(err.value)
    assert f"budget_usd: 1.0: the campaign is estimated at ${estimate:.2f} (2 points)" in text
    assert_nothing_created(results_dir)


def test_within_budget_is_not_refused_for_cost(results_dir: Path) -> None:
    fields = aws_campaign(budget_usd=by_hand(aws_campaign()) + 0.01)
    try:
        steps.validate(fields, target_checks=False)
    except CampaignError as exc:  # pragma: no cover - shows which check refused
        pytest.fail(f"refused: {exc}")
    assert_nothing_created(results_dir)


def test_over_max_points_is_refused_before_anything(results_dir: Path) -> None:
    fields = aws_campaign(max_points=1, budget_usd=1000)
    with pytest.raises(CampaignError) as err:
        steps.plan(fields, "manual__cost")
    assert "matrix: 2 points: over max_points=1" in str(err.value)
    assert_nothing_created(results_dir)


def test_local_points_cost_nothing(results_dir: Path) -> None:
    fields = {
        **aws_campaign(),
        "target": "local",
        "engines": [{"engine": "redis", "versions": ["7.0"]}],
        "topologies": [{"cluster_mode": False}],
        "node_types": ["local.micro"],
        "workloads": [{"name": "w", "warmup_seconds": 1, "duration_seconds": 2}],
        "load_generators": 1,
        "budget_usd": 0,
    }
    _, _, estimate = steps.validate(fields)
    assert estimate == 0
    assert_nothing_created(results_dir)
