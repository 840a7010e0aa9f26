"""Cost guard: plan refuses a campaign over its budget or its max_points, naming the
estimate, before anything is provisioned (no run, point or terraform folder).

Expected estimates are worked out by hand below from include/prices.csv and
include/fargate_prices.csv (on-demand, Linux/x86 Fargate): the engine's node
price in the campaign's region, for 4 nodes, over warm-up + duration + the
0.5 h a replication group takes to create and delete + 3 minutes of the run's
prefill and task start-up, plus 5 load tasks of 4 vCPU / 8 GiB while they load
(warm-up + duration).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cachebench import steps
from cachebench.campaign import CampaignError

LOAD = (60 + 3600) / 3600  # one run per deployment on aws: warm-up + duration
HOURS = LOAD + 0.5 + 3 / 60  # + create and delete, + the run's prefill and task start-up
# region: (redis and valkey cache.m6g.large $/node-hour, Fargate $/vCPU-hour and $/GB-hour)
RATES = {
    "eu-west-1": (0.164, 0.1312, 0.04048, 0.004445),
    "eu-central-1": (0.177, 0.1416, 0.04656, 0.00511),
}
# 4 nodes x HOURS x (redis + valkey) + 2 deployments x 5 tasks x LOAD x (4 vCPU + 8 GB):
#   eu-west-1:    6.26667 x 0.2952 + 10.16667 x 0.19748 = 1.84992 + 2.00771 = 3.85763
#   eu-central-1: 6.26667 x 0.3186 + 10.16667 x 0.22712 = 1.99656 + 2.30905 = 4.30561
BY_HAND = {
    region: round(4 * HOURS * (redis + valkey) + 2 * 5 * LOAD * (4 * vcpu + 8 * gb), 2)
    for region, (redis, valkey, vcpu, gb) in RATES.items()
}
assert BY_HAND == {"eu-west-1": 3.86, "eu-central-1": 4.31}  # the sums above


def aws_campaign(region: str | None = "eu-west-1", **over) -> dict:
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
        **({"aws": {"region": region}} if region else {}),
        **over,
    }


@pytest.fixture(autouse=True)
def no_ambient_region(monkeypatch) -> None:
    """The region comes from the campaign here, not from this machine's environment."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AIRFLOW_VAR_CACHEBENCH_AWS"):
        monkeypatch.delenv(name, raising=False)


def assert_nothing_created(results: Path) -> None:
    assert not results.exists() or not any(results.rglob("*")), sorted(results.rglob("*"))


@pytest.mark.parametrize("region", sorted(RATES))
def test_over_budget_is_refused_with_the_estimate(results_dir: Path, region: str) -> None:
    with pytest.raises(CampaignError) as err:
        steps.plan(aws_campaign(region), "manual__cost")
    text = str(err.value)
    estimate = BY_HAND[region]
    assert (
        f"budget_usd: 1.0: the campaign is estimated at ${estimate:.2f} (2 deployments, 2 runs)"
        in text
    )
    assert_nothing_created(results_dir)


def test_within_budget_is_not_refused_for_cost(results_dir: Path) -> None:
    fields = aws_campaign(budget_usd=BY_HAND["eu-west-1"] + 0.01)
    try:
        _, _, estimate = steps.validate(fields, target_checks=False)
    except CampaignError as exc:  # pragma: no cover - shows which check refused
        pytest.fail(f"refused: {exc}")
    assert estimate == BY_HAND["eu-west-1"]
    assert_nothing_created(results_dir)


def test_an_aws_campaign_without_a_region_is_refused_naming_the_field(results_dir: Path) -> None:
    with pytest.raises(CampaignError) as err:
        steps.validate(aws_campaign(region=None, budget_usd=1000), target_checks=False)
    assert "aws.region: required to price an aws campaign" in str(err.value)
    assert_nothing_created(results_dir)


def test_a_region_without_prices_is_refused_naming_the_field(results_dir: Path) -> None:
    with pytest.raises(CampaignError) as err:
        steps.validate(aws_campaign("ap-southeast-7", budget_usd=1000), target_checks=False)
    text = str(err.value)
    assert "aws.region: 'ap-southeast-7': no redis cache.m6g.large price" in text
    assert "eu-central-1, eu-west-1, us-east-1, us-west-2" in text
    assert_nothing_created(results_dir)


def test_over_max_points_is_refused_before_anything(results_dir: Path) -> None:
    fields = aws_campaign(max_points=1, budget_usd=1000)
    with pytest.raises(CampaignError) as err:
        steps.plan(fields, "manual__cost")
    assert "matrix: 2 points: over max_points=1" in str(err.value)
    assert_nothing_created(results_dir)


def test_local_points_cost_nothing(results_dir: Path) -> None:
    fields = {
        **aws_campaign(region=None),
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
