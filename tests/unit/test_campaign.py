"""Campaign spec: validation names the field, the value and what is allowed; stable point ids."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from cachebench.campaign import CampaignError, CampaignSpec, load_campaign_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "include" / "campaigns" / "redis-vs-valkey-local.yaml"

AWS = {
    "name": "aws-sweep",
    "target": "aws",
    "engines": [
        {"engine": "redis", "versions": ["7.1"]},
        {"engine": "valkey", "versions": ["8.1"]},
    ],
    "topologies": [
        {"cluster_mode": False, "replicas": 1},
        {"cluster_mode": True, "shards": 3, "replicas": 1},
    ],
    "node_types": ["cache.r7g.large", "cache.m7g.xlarge"],
    "workloads": [{"name": "read-heavy", "ratio": "1:10", "duration_seconds": 3600}],
    "load_generators": 5,
    "budget_usd": 500,
}


def refused(data: dict) -> str:
    with pytest.raises(CampaignError) as err:
        CampaignSpec.from_input(data)
    return str(err.value)


def test_example_campaign_is_valid() -> None:
    spec = CampaignSpec.from_yaml(EXAMPLE)
    assert spec.target == "local"
    assert spec.point_count == 4
    assert {p.engine for p in spec.points()} == {"redis", "valkey"}
    assert {p.node_type for p in spec.points()} == {"local.t4g.micro", "local.t4g.medium"}


def test_matrix_expansion_and_stable_ids() -> None:
    spec = CampaignSpec.from_input(AWS)
    points = spec.points()
    assert len(points) == 2 * 2 * 2 * 1
    ids = [p.id for p in points]
    assert len(set(ids)) == len(ids)
    assert "valkey-8.1-c3r1-cache.r7g.large-read-heavy" in ids
    assert "redis-7.1-single-r1-cache.m7g.xlarge-read-heavy" in ids
    assert [p.id for p in CampaignSpec.from_input(copy.deepcopy(AWS)).points()] == ids
    assert [p.index for p in points] == list(range(8))


def test_unknown_node_type_names_field_value_and_allowed() -> None:
    msg = refused({**AWS, "node_types": ["cache.r7g.large", "cache.x9.huge"]})
    assert "node_types[1]" in msg and "'cache.x9.huge'" in msg and "cache.r7g.large" in msg


def test_local_node_type_refused_on_aws() -> None:
    msg = refused({**AWS, "node_types": ["local.small"]})
    assert "node_types[0]" in msg and "not a aws node type" in msg


def test_unknown_version_names_allowed_versions() -> None:
    msg = refused({**AWS, "engines": [{"engine": "valkey", "versions": ["6.0"]}]})
    assert "engines[0].versions[0]: '6.0'" in msg and "7.2, 8.0, 8.1" in msg


def test_unknown_engine() -> None:
    msg = refused({**AWS, "engines": [{"engine": "memcached", "versions": ["1.6"]}]})
    assert "engines[0].engine" in msg and "memcached" in msg


@pytest.mark.parametrize(
    ("topology", "needle"),
    [
        ({"cluster_mode": False, "shards": 2}, "cluster_mode off allows exactly 1 shard"),
        ({"cluster_mode": True, "shards": 0}, "topologies[0].shards"),
        ({"cluster_mode": True, "shards": 3, "replicas": 6}, "topologies[0].replicas"),
    ],
)
def test_illegal_topologies(topology: dict, needle: str) -> None:
    assert needle in refused({**AWS, "topologies": [topology]})


def test_local_node_limit() -> None:
    local = load_campaign_file(EXAMPLE)
    msg = refused({**local, "topologies": [{"cluster_mode": True, "shards": 5, "replicas": 2}]})
    assert "15 nodes" in msg and "at most 12" in msg


@pytest.mark.parametrize(
    ("workload", "field"),
    [
        ({"name": "w", "ratio": "ten"}, "workloads[0].ratio"),
        ({"name": "w", "ratio": "0:0"}, "workloads[0].ratio"),
        ({"name": "w", "key_pattern": "X:Y"}, "workloads[0].key_pattern"),
        ({"name": "w", "value_size": 0}, "workloads[0].value_size"),
        ({"name": "Bad Name"}, "workloads[0].name"),
        ({"name": "w", "pipeline": 0}, "workloads[0].pipeline"),
        ({"name": "w", "rate_limit": -1}, "workloads[0].rate_limit"),
    ],
)
def test_bad_workloads(workload: dict, field: str) -> None:
    assert field in refused({**AWS, "workloads": [workload]})


def test_reads_from_replicas_only_where_a_replica_can_serve() -> None:
    replicas = [{"name": "w", "read_from": "replicas"}]
    msg = refused({**AWS, "workloads": replicas})  # AWS sweeps single-r1 and c3r1
    assert "workloads[0].read_from: 'replicas' with topologies[1] cluster_mode on" in msg
    assert "no READONLY replica reads" in msg and "allowed there: 'primary'" in msg
    assert "topologies[0]" not in msg  # single-r1 has a replica to read from
    none = {**AWS, "workloads": replicas, "topologies": [{"cluster_mode": False}]}
    assert "'replicas' with topologies[0] replicas=0: no replica to read from" in refused(none)
    ok = {**AWS, "workloads": replicas, "topologies": [{"cluster_mode": False, "replicas": 2}]}
    assert {p.workload.read_from for p in CampaignSpec.from_input(ok).points()} == {"replicas"}
    assert "workloads[0].read_from" in refused(
        {**AWS, "workloads": [{"name": "w", "read_from": "secondary"}]}
    )


def test_unknown_field_and_missing_field() -> None:
    assert "nodetypes: unknown field" in refused({**AWS, "nodetypes": []})
    data = dict(AWS)
    del data["workloads"]
    assert "workloads: required field is missing" in refused(data)


def test_duplicate_workload_names_and_point_limit() -> None:
    assert "used twice" in refused({**AWS, "workloads": [{"name": "w"}, {"name": "w"}]})
    assert "over max_points=3" in refused({**AWS, "max_points": 3})


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(CampaignError) as err:
        CampaignSpec.from_input(
            {**AWS, "node_types": ["nope"], "engines": [{"engine": "redis", "versions": ["1.0"]}]}
        )
    # both bad fields at once, each named with its path and value; the aws Redis OSS
    # versions offered are written out, so a change to them is seen here
    first, second = err.value.problems
    assert first.startswith("node_types[0]: 'nope': not a aws node type; allowed: ")
    assert (
        second == "engines[0].versions[0]: '1.0': not a aws redis version; allowed: 6.2, 7.0, 7.1"
    )


def test_bad_schedule() -> None:
    assert "schedule: 'every day'" in refused({**AWS, "schedule": "every day"})
    assert CampaignSpec.from_input({**AWS, "schedule": "0 3 * * 1"}).schedule == "0 3 * * 1"


def test_cost_estimate_of_the_example_campaigns(monkeypatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AIRFLOW_VAR_CACHEBENCH_AWS"):
        monkeypatch.delenv(name, raising=False)  # its region is the file's: eu-west-1
    spec = CampaignSpec.from_yaml(ROOT / "include" / "campaigns" / "redis-vs-valkey-aws.yaml")
    load = (300 + 3600) / 3600  # one run per deployment: warm-up + duration
    up = load + 0.5 + 3 / 60  # + create and delete, + the run's prefill and task start-up
    # eu-west-1 cache.r7g.large per node-hour (include/prices.csv): redis $0.243, valkey
    # $0.1944; 2 + 6 nodes per engine; 4 deployments x 5 load tasks of 4 vCPU x $0.04048
    # + 8 GB x $0.004445 per hour (include/fargate_prices.csv), only while they load
    by_hand = 8 * up * (0.243 + 0.1944) + 4 * 5 * load * (4 * 0.04048 + 8 * 0.004445)
    assert spec.estimate_usd() == round(by_hand, 2) == 9.99
    assert CampaignSpec.from_yaml(EXAMPLE).estimate_usd() == 0.0


# ------------------------------------------------------------------ compact forms

COMPACT = {
    **AWS,
    "engines": ["redis 7.1", "valkey 8.1"],
    "topologies": ["single-r1", "c3r1"],
}


def test_compact_engines_and_topologies_mean_the_object_form() -> None:
    assert CampaignSpec.from_input(COMPACT) == CampaignSpec.from_input(AWS)
    mixed = {
        **AWS,
        "engines": ["redis 7.1", AWS["engines"][1]],
        "topologies": ["single-r1", AWS["topologies"][1]],
    }
    assert CampaignSpec.from_input(mixed) == CampaignSpec.from_input(AWS)


@pytest.mark.parametrize(
    ("label", "cluster_mode", "shards", "replicas"),
    [
        ("single", False, 1, 0),
        ("single-r2", False, 1, 2),
        ("c3r0", True, 3, 0),
        ("c12r5", True, 12, 5),
        (" c3r1 ", True, 3, 1),  # as a text area line may carry it
    ],
)
def test_topology_labels(label: str, cluster_mode: bool, shards: int, replicas: int) -> None:
    (topo,) = CampaignSpec.from_input({**AWS, "topologies": [label]}).topologies
    assert (topo.cluster_mode, topo.shards, topo.replicas) == (cluster_mode, shards, replicas)


def test_custom_topologies_are_added_and_not_kept_apart() -> None:
    spec = CampaignSpec.from_input(
        {**COMPACT, "topologies": ["single-r1"], "custom_topologies": ["c3r1", "", "  "]}
    )
    assert spec == CampaignSpec.from_input(AWS)
    assert "custom_topologies" not in spec.model_dump()
    # the form sends null for an emptied multi-select: the custom field alone is enough
    alone = CampaignSpec.from_input({**COMPACT, "topologies": None, "custom_topologies": ["c3r1"]})
    assert [t.label for t in alone.topologies] == ["c3r1"]
    # what plan writes to campaign.json reads back as the same spec (steps.report does)
    assert CampaignSpec.model_validate_json(spec.model_dump_json()) == spec


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"engines": ["redis 7.1", "valkey"]}, "engines[1]: 'valkey': use '<engine> <version>'"),
        ({"engines": ["memcached 1.6"]}, "engines[0].engine: 'memcached'"),
        ({"engines": ["valkey 6.0"]}, "engines[0].versions[0]: '6.0': not a aws valkey version"),
        ({"topologies": ["c3"]}, "topologies[0]: 'c3': use a label: single, single-r<replicas>"),
        ({"topologies": ["c3r6"]}, "topologies[0].replicas: 6"),
        ({"topologies": ["single", 3]}, "topologies[1]"),
        ({"custom_topologies": ["big"]}, "custom_topologies[0]: 'big': use a label"),
        (
            {"custom_topologies": [{"cluster_mode": True}]},
            "custom_topologies[0]: dict: expected a label",
        ),
        ({"topologies": [], "custom_topologies": None}, "topologies: none chosen"),
        ({"topologies": ["single-r1", "single-r1"]}, "appears twice"),
        ({"maxmemory_policy": "lru"}, "maxmemory_policy: 'lru': Input should be 'allkeys-lru'"),
    ],
)
def test_bad_compact_forms_name_the_field(change: dict, needle: str) -> None:
    data = {**COMPACT, **change}
    with pytest.raises(CampaignError) as err:
        CampaignSpec.from_input(data).points()
    assert needle in str(err.value)
