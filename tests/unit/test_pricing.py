"""Prices per engine and region: the table, the Price List API path, its cache and fallback,
and what they do to ops per dollar.

moto does not implement the ``pricing`` service, so the API is botocore's Stubber
answering with GetProducts responses shaped as the AWS docs' example (botocore's
``pricing/2017-10-15/examples-1.json``): FormatVersion, NextToken and a
PriceList of JSON *strings*, each a product, its terms, version and publication date.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber
from test_export_support import make_load, make_spec, write_point_dir

from cachebench import pricing, steps
from cachebench.catalogue import load_instance_specs
from cachebench.report.build import build_report

ROOT = Path(__file__).resolve().parents[2]
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "eu-central-1")
FILTERS = [
    {"Type": "TERM_MATCH", "Field": "productFamily", "Value": "Cache Instance"},
    {"Type": "TERM_MATCH", "Field": "instanceType", "Value": "cache.r7g.large"},
    {"Type": "TERM_MATCH", "Field": "regionCode", "Value": "eu-west-1"},
    {"Type": "TERM_MATCH", "Field": "cacheEngine", "Value": "Valkey"},
]
REQUEST = {
    "ServiceCode": "AmazonElastiCache",
    "Filters": FILTERS,
    "FormatVersion": "aws_v1",
    "MaxResults": 100,
}


@pytest.fixture(autouse=True)
def fresh(monkeypatch, tmp_path):
    """No answer of an earlier test, and a cache file of this test's own."""
    pricing.clear_memo()
    monkeypatch.setenv(pricing.CACHE_ENV, str(tmp_path / "price-cache.json"))
    yield
    pricing.clear_memo()


def price_item(sku: str, usagetype: str, usd: str, engine: str = "Valkey") -> str:
    """One PriceList entry: an ElastiCache node product in eu-west-1 with its terms."""
    on_demand = f"{sku}.JRTCKXETXF"
    return json.dumps(
        {
            "product": {
                "productFamily": "Cache Instance",
                "attributes": {
                    "servicecode": "AmazonElastiCache",
                    "location": "EU (Ireland)",
                    "locationType": "AWS Region",
                    "instanceType": "cache.r7g.large",
                    "cacheEngine": engine,
                    "usagetype": usagetype,
                    "operation": f"CreateCacheCluster:{engine}",
                    "regionCode": "eu-west-1",
                    "servicename": "Amazon ElastiCache",
                },
                "sku": sku,
            },
            "serviceCode": "AmazonElastiCache",
            "terms": {
                "OnDemand": {
                    on_demand: {
                        "priceDimensions": {
                            f"{on_demand}.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "endRange": "Inf",
                                "description": f"${usd} per {engine} cache.r7g.large node hour",
                                "appliesTo": [],
                                "rateCode": f"{on_demand}.6YS6EN2CT7",
                                "beginRange": "0",
                                "pricePerUnit": {"USD": usd},
                            }
                        },
                        "sku": sku,
                        "effectiveDate": "2025-03-01T00:00:00Z",
                        "offerTermCode": "JRTCKXETXF",
                        "termAttributes": {},
                    }
                },
                "Reserved": {
                    f"{sku}.4NA7Y494T4": {
                        "priceDimensions": {
                            f"{sku}.4NA7Y494T4.6YS6EN2CT7": {
                                "unit": "Hrs",
                                "rateCode": f"{sku}.4NA7Y494T4.6YS6EN2CT7",
                                "pricePerUnit": {"USD": "0.1100000000"},
                            }
                        },
                        "termAttributes": {"LeaseContractLength": "1yr"},
                    }
                },
            },
            "version": "20250314170235",
            "publicationDate": "2025-03-14T17:02:35Z",
        }
    )


NODE = price_item("NODESKU0000000001", "EU-NodeUsage:cache.r7g.large", "0.1944000000")
# Same instance type, another meter: the durability surcharge must not be taken for the node.
SURCHARGE = price_item(
    "SYNCSKU0000000001", "EU-SyncDurability-NodeUsage:cache.r7g.large", "0.0350000000"
)


def stubbed(*pages: dict) -> tuple[object, Stubber]:
    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    token = None
    for page in pages:
        stub.add_response(
            "get_products",
            {"FormatVersion": "aws_v1", **page},
            {**REQUEST, **({"NextToken": token} if token else {})},
        )
        token = page.get("NextToken")
    stub.activate()
    return client, stub


# ---------------------------------------------------------------- the table


def test_the_table_prices_every_aws_node_type_for_both_engines_in_four_regions() -> None:
    table = pricing.load_table()
    aws_types = [nt for (t, nt) in load_instance_specs() if t == "aws"]
    assert len(aws_types) == 31  # t4g x 3, m6g, m7g, r6g, r7g x 7
    for engine in ("redis", "valkey"):
        for region in REGIONS:
            for node_type in aws_types:
                p = table[(engine, region, node_type)]
                assert p.usd_per_node_hour > 0 and p.source and p.as_of, (engine, region)


def test_the_table_has_the_figures_of_the_aws_pricing_page() -> None:
    """eu-west-1 cache.r7g.large as the ElastiCache pricing page's data lists it
    (hawkFilePublicationDate 2025-03-14): Redis OSS $0.243, Valkey $0.1944 per node-hour."""
    redis = pricing.table_price("redis", "eu-west-1", "cache.r7g.large")
    valkey = pricing.table_price("valkey", "eu-west-1", "cache.r7g.large")
    assert (redis.usd_per_node_hour, valkey.usd_per_node_hour) == (0.243, 0.1944)
    assert redis.as_of == valkey.as_of == date(2025, 3, 14)
    assert "EU (Ireland)" in valkey.source and "Valkey" in valkey.source
    frankfurt = pricing.table_price("redis", "eu-central-1", "cache.m6g.large")
    assert frankfurt.usd_per_node_hour == 0.177


def test_local_node_types_cost_nothing() -> None:
    for node_type in ("local.micro", "local.small", "local.medium"):
        for engine in ("redis", "valkey"):
            assert pricing.price(engine, "local", node_type).usd_per_node_hour == 0


def test_fargate_rates_are_per_region() -> None:
    ireland, frankfurt = pricing.fargate_rate("eu-west-1"), pricing.fargate_rate("eu-central-1")
    assert ireland.task_usd_hour(4, 8) == pytest.approx(4 * 0.04048 + 8 * 0.004445)
    assert frankfurt.task_usd_hour(4, 8) == pytest.approx(4 * 0.04656 + 8 * 0.00511)
    with pytest.raises(pricing.PricingError, match="no Fargate rate for region 'sa-east-1'"):
        pricing.fargate_rate("sa-east-1")


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("redis,eu-west-1,cache.r7g.large,cheap,doc,2025-03-14", "usd_per_node_hour"),
        ("redis,eu-west-1,cache.r7g.large,-1,doc,2025-03-14", "usd_per_node_hour"),
        ("memcached,eu-west-1,cache.r7g.large,0.2,doc,2025-03-14", "engine"),
        ("redis,eu-west-1,cache.r7g.large,0.2,,2025-03-14", "source"),
        ("redis,eu-west-1,cache.r7g.large,0.2,doc,last week", "as_of"),
    ],
)
def test_a_malformed_price_row_names_line_and_column(tmp_path, row: str, column: str) -> None:
    path = tmp_path / "prices.csv"
    good = "valkey,eu-west-1,cache.r7g.large,0.1944,doc,2025-03-14"
    path.write_text("\n".join([",".join(pricing.COLUMNS), good, row]) + "\n")
    with pytest.raises(pricing.PriceTableError, match=f"line 3: column '{column}'"):
        pricing.load_table(path)


# ---------------------------------------------------------------- the Price List API


def test_the_api_price_is_the_nodes_own_on_demand_rate() -> None:
    client, stub = stubbed(
        {"PriceList": [SURCHARGE], "NextToken": "page-2"},
        {"PriceList": [NODE]},
    )
    found = pricing.price("valkey", "eu-west-1", "cache.r7g.large", client=client)
    stub.assert_no_pending_responses()
    assert found.usd_per_node_hour == 0.1944
    assert found.as_of == date(2025, 3, 14)  # the price list's publication date
    assert "Price List API" in found.source and "NODESKU0000000001" in found.source


def test_the_api_answer_is_cached_until_it_expires(tmp_path) -> None:
    cache = tmp_path / "price-cache.json"
    client, stub = stubbed({"PriceList": [price_item("A", "EU-NodeUsage:cache.r7g.large", "0.19")]})
    assert pricing.price("valkey", "eu-west-1", "cache.r7g.large", client=client).usd_per_node_hour
    stub.assert_no_pending_responses()

    # Asked again: no call (a call would fail the stub and fall back to the table's 0.1944).
    idle, _ = stubbed()
    again = pricing.price("valkey", "eu-west-1", "cache.r7g.large", client=idle)
    assert again.usd_per_node_hour == 0.19

    data = json.loads(cache.read_text())
    for entry in data["entries"].values():
        entry["fetched_at"] = time.time() - pricing.CACHE_TTL_S - 1
    cache.write_text(json.dumps(data))
    client, stub = stubbed({"PriceList": [price_item("B", "EU-NodeUsage:cache.r7g.large", "0.2")]})
    assert pricing.price("valkey", "eu-west-1", "cache.r7g.large", client=client).usd_per_node_hour
    stub.assert_no_pending_responses()  # expired: asked the API again
    assert (
        json.loads(cache.read_text())["entries"]["valkey|eu-west-1|cache.r7g.large"]["price"][
            "usd_per_node_hour"
        ]
        == 0.2
    )


def test_an_api_error_falls_back_to_the_table_and_is_logged(caplog) -> None:
    client = boto3.client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    stub.add_client_error("get_products", "ThrottlingException", "Rate exceeded")
    stub.activate()
    with caplog.at_level(logging.WARNING, logger="cachebench.pricing"):
        found = pricing.price("valkey", "eu-west-1", "cache.r7g.large", client=client)
    assert found == pricing.table_price("valkey", "eu-west-1", "cache.r7g.large")
    assert "ThrottlingException" in caplog.text and "prices.csv" in caplog.text
    assert not (Path(pricing.cache_file())).exists()  # a failure is not kept


def test_two_rates_for_one_node_is_an_error_not_a_guess() -> None:
    other = price_item("C", "EU-NodeUsage:cache.r7g.large", "0.3")
    client, _ = stubbed({"PriceList": [NODE, other]})
    with pytest.raises(pricing.PricingError, match="2 on-demand node rates"):
        pricing.fetch(client, "valkey", "eu-west-1", "cache.r7g.large")


def test_the_api_is_asked_through_the_campaigns_connection(monkeypatch) -> None:
    monkeypatch.delenv(pricing.SOURCE_ENV)
    client, stub = stubbed({"PriceList": [NODE]})
    asked = []

    def fake_client(service, region, conn_id, config=None):
        asked.append((service, region, conn_id))
        return client

    monkeypatch.setattr("cachebench.targets.aws.clients.client", fake_client)
    found = pricing.price("valkey", "eu-west-1", "cache.r7g.large", conn_id="my_aws")
    stub.assert_no_pending_responses()
    assert asked == [("pricing", "us-east-1", "my_aws")]
    assert found.usd_per_node_hour == 0.1944 and "Price List API" in found.source


def test_importing_costs_no_aws_client_and_no_table_read() -> None:
    code = (
        "import sys, cachebench.campaign, cachebench.pricing as p;"
        "assert not p._TABLES, 'a table was read at import';"
        "assert 'boto3' not in sys.modules and 'botocore' not in sys.modules, 'boto imported'"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "plugins"), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr


# ---------------------------------------------------------------- ops per dollar


def test_valkey_and_redis_of_equal_throughput_get_their_engines_ops_per_dollar(
    results_dir, monkeypatch
) -> None:
    """Same node type, same ops/s; eu-west-1 prices cache.r7g.large at $0.243 (Redis OSS)
    and $0.1944 (Valkey) per node-hour, so with 2 nodes (primary + replica):
    Redis  100,000 ops/s x 3600 / (2 x 0.243)  = 740,740,740.7 ops per dollar,
    Valkey 100,000 ops/s x 3600 / (2 x 0.1944) = 925,925,925.9 ops per dollar."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AIRFLOW_VAR_CACHEBENCH_AWS"):
        monkeypatch.delenv(name, raising=False)
    campaign = {
        "name": "fair-prices",
        "target": "aws",
        "engines": [
            {"engine": "redis", "versions": ["7.1"]},
            {"engine": "valkey", "versions": ["8.0"]},
        ],
        "topologies": [{"cluster_mode": False, "replicas": 1}],
        "node_types": ["cache.r7g.large"],
        "workloads": [{"name": "w", "warmup_seconds": 0, "duration_seconds": 60}],
        "aws": {
            "region": "eu-west-1",
            "vpc_id": "vpc-0123456789abcdef0",
            "subnet_ids": ["subnet-0123456789abcdef0"],
            "loadgen_subnet_ids": ["subnet-0123456789abcdef0"],
            "loadgen_security_group_id": "sg-0123456789abcdef0",
            "state_bucket": "state",
            "ecs_cluster": "bench",
            "task_definition": "memtier:1",
        },
    }
    plans = steps.plan(campaign, "manual__fair")
    run_dir = Path(plans[0].run_dir)
    (run_dir / "campaign.json").unlink()  # write_point_dir plans the runs it writes
    for plan in plans:
        for run in plan.runs:
            write_point_dir(run_dir, run.point, make_load(100_000), spec=make_spec())
    build_report(run_dir, {("aws", "cache.r7g.large"): make_spec()})

    summary = pd.read_csv(run_dir / "summary.csv").set_index("engine")
    assert summary.loc["redis", "ops_per_sec"] == summary.loc["valkey", "ops_per_sec"]
    assert summary.loc["redis", "ops_per_dollar"] == pytest.approx(740_740_740.7, abs=0.1)
    assert summary.loc["valkey", "ops_per_dollar"] == pytest.approx(925_925_925.9, abs=0.1)
    assert summary.loc["valkey", "price_usd_hour_node"] == 0.1944
    assert summary.loc["valkey", "price_as_of"] == "2025-03-14"
    assert "EU (Ireland)" in summary.loc["valkey", "price_source"]

    md = (run_dir / "report.md").read_text()
    assert "## Prices" in md
    assert "- valkey cache.r7g.large in eu-west-1: $0.1944 per node-hour, as of 2025-03-14" in md
    assert "- redis cache.r7g.large in eu-west-1: $0.243 per node-hour, as of 2025-03-14" in md
    assert "Valkey 8.0 vs Redis 7.1" in md and "ops per dollar" in md
