"""The aws target's load path against the tests' moto server: ECS tasks started by the
provider's EcsRunTaskOperator (our EcsLoadGeneratorOperator) with the AUTH token
only as a container secret, the watch trigger (done and early
failures), results collected from S3 with HDR histograms merged, and CloudWatch
export with pagination.

moto runs no containers and has no engine: the tests put the result files and
the CloudWatch datapoints there themselves (see aws_fakes.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from aws_fakes import (
    CLUSTER,
    IMAGE_VERSION,
    MEMTIER_JSON,
    TOKEN,
    campaign,
    put_node_metrics,
    set_exit_code,
    upload_results,
    write_task_log,
)
from botocore.stub import Stubber

from cachebench import steps
from cachebench.aws import cloudwatch, standin
from cachebench.campaign import CampaignError
from cachebench.loadgen import hdr
from cachebench.loadgen.memtier import parse_memtier_json
from cachebench.models import Endpoint, Point
from cachebench.operators.ecs_load import EcsLoadGeneratorOperator
from cachebench.targets import aws as target
from cachebench.triggers.aws import EcsElastiCacheWatchTrigger
from cachebench.workspace import PointDir


def provisioned(run_id: str, generators: int = 3) -> tuple[dict, Point, PointDir, Endpoint]:
    """plan + render_tfvars for real; the stand-in makes the group and its secret."""
    item = steps.plan(campaign("load", generators=generators), run_id)[0]
    item = steps.render_tfvars(item)
    point, pdir = Point.model_validate(item["point"]), PointDir(Path(item["point_dir"]))
    tv = json.loads((pdir.terraform / "terraform.tfvars.json").read_text())
    secret = f"cachebench/{tv['replication_group_id']}/auth"
    standin.up(
        {
            "region": tv["region"],
            "replication_group_id": tv["replication_group_id"],
            "engine": tv["engine"],
            "engine_version": tv["engine_version"],
            "node_type": tv["node_type"],
            "cluster_mode": tv["cluster_mode"],
            "shards": tv["shards"],
            "replicas": tv["replicas"],
            # what the module's rules.tf sends for cluster mode off with one replica
            "num_cache_clusters": 1 + tv["replicas"],
            "num_node_groups": None,
            "replicas_per_node_group": None,
            "transit_encryption_mode": "required",
            "secret_name": secret,
            "tags": {"cachebench:point": point.id},
        }
    )
    endpoint = Endpoint(
        host="master.example", port=6379, cluster_mode=False, tls=True, auth_ref=secret
    )
    return item, point, pdir, endpoint


class FakeTI:
    """What EcsRunTaskOperator asks of its task instance when it runs outside a DAG."""

    def __init__(self, try_number: int = 1) -> None:
        self.try_number, self.map_index, self.pushed = try_number, 0, {}
        self.dag_id, self.task_id, self.run_id = "cachebench_adhoc_aws", "point.load_g0", "r"

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def generator_op(prepared: dict, g: int, **kwargs) -> EcsLoadGeneratorOperator:
    """The DAG's load operator, run in place: starts the task and returns (no deferral)."""
    kwargs = {"deferrable": False, "wait_for_completion": False, "reattach": False, **kwargs}
    return EcsLoadGeneratorOperator(task_id=f"load_g{g}", prepared=prepared, generator=g, **kwargs)


def start_load(point: Point, endpoint: Endpoint, pdir: PointDir) -> tuple[dict, list[str]]:
    """prepare_load, then each generator's operator: (prepared, task ARNs)."""
    prepared = {
        "point": point.model_dump(mode="json"),
        **target.prepare_load(point, endpoint, pdir),
    }
    arns = []
    for g in range(point.load_generators):
        ti = FakeTI()
        generator_op(prepared, g).execute({"ti": ti})
        arns.append(ti.pushed["ecs_task_arn"])
    return prepared, arns


async def first_event(trigger: EcsElastiCacheWatchTrigger) -> dict:
    async for ev in trigger.run():
        return ev.payload
    raise AssertionError("the trigger ended without an event")


def trigger_for(started: dict) -> EcsElastiCacheWatchTrigger:
    return EcsElastiCacheWatchTrigger(**started["watch"]["kwargs"], poll=0.05)


def test_plan_refuses_aws_without_settings(aws, results_dir, monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_CACHEBENCH_AWS")
    with pytest.raises(CampaignError) as err:
        steps.plan(
            campaign("nosettings", aws={"region": "eu-west-1", "vpc_id": "vpc-nothex"}), "r1"
        )
    text = str(err.value)
    assert "aws.subnet_ids: required" in text and "aws.vpc_id: 'vpc-nothex'" in text
    assert "aws.ecs_cluster: required" in text


def test_plan_estimates_and_backend_keys_differ(aws, results_dir) -> None:
    items = steps.plan(campaign("keys"), "manual__2026-11-26T05:00:00+00:00")
    assert len(items) == 2
    keys = set()
    for item in items:
        item = steps.render_tfvars(item)
        point, pdir = Point.model_validate(item["point"]), PointDir(Path(item["point_dir"]))
        cfg = target.backend_config(point, pdir, item["run_id"])
        assert cfg["use_lockfile"] == "true" and cfg["bucket"] == "cachebench-state"
        assert cfg["key"].endswith(
            f"/keys/manual-2026-11-26T05-00-00-00-00/{point.id}/terraform.tfstate"
        )
        keys.add(cfg["key"])
    assert len(keys) == 2


def test_load_operators_start_tasks_with_the_token_only_as_a_secret(aws, results_dir) -> None:
    item, point, pdir, endpoint = provisioned("run-1")
    started, arns = start_load(point, endpoint, pdir)
    ecs = aws.client("ecs")
    assert len(set(arns)) == 3
    tasks = ecs.describe_tasks(cluster=CLUSTER, tasks=arns, include=["TAGS"])["tasks"]
    assert {t["taskDefinitionArn"] for t in tasks} == {started["ecs"]["task_definition"]}
    tags = {x["key"]: x["value"] for x in tasks[0]["tags"]}
    assert tags["cachebench:point"] == point.id
    net = tasks[0]["attachments"] or started["ecs_run"]["network_configuration"]
    assert net
    td = ecs.describe_task_definition(taskDefinition=started["ecs"]["task_definition"])
    container = td["taskDefinition"]["containerDefinitions"][0]
    assert container["secrets"] == [{"name": "CACHEBENCH_AUTH", "valueFrom": endpoint.auth_ref}]
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    assert container["entryPoint"] == ["/usr/bin/env"]  # the image's ENTRYPOINT is not in front
    script = tasks[0]["overrides"]["containerOverrides"][0]["command"][2]
    for flag in ("--tls", "--ratio=1:4", "--data-size=256", "--key-maximum=100000",
                 "--pipeline=2", "--clients=25", "--threads=4", "--test-time=600",
                 "--test-time=60", "--json-out-file=/tmp/cachebench/measured.json",
                 "--hdr-file-prefix=/tmp/cachebench/measured", '"--authenticate=$CACHEBENCH_AUTH"',
                 "--print-percentiles=50,90,99,99.9", "aws s3 cp",
                 "--cacert=/etc/ssl/certs/ca-certificates.crt"):  # fmt: skip
        assert flag in script, flag
    assert "--tls-skip-verify" not in script  # verified against the image's CA bundle
    secret = aws.client("secretsmanager").get_secret_value(SecretId=endpoint.auth_ref)
    token = secret["SecretString"]
    assert token not in json.dumps(tasks) and token not in json.dumps(started)
    envs = [t["overrides"]["containerOverrides"][0]["environment"] for t in tasks]
    uris = {e["value"] for env in envs for e in env if e["name"] == "CACHEBENCH_RESULTS_URI"}
    assert len(uris) == 3  # one result folder per generator

    trig = trigger_for(started)
    assert trig.check_once() is None  # running, group available, no evictions
    starts = [1.7e9 + 0.25 * g for g in range(len(arns))]  # each task's recorded start
    for g, arn in enumerate(arns):
        upload_results(f"{started['ecs']['results_uri']}/g{g}/", starts[g], TOKEN)
        set_exit_code(CLUSTER, arn, 0, "Essential container exited")
    assert trig.check_once()["status"] == "done"
    # the watch waits CloudWatch's publishing delay out on the triggerer, not in export
    settle = {**started["watch"]["kwargs"], "settle_seconds": 0.5, "min_poll": 0.05}
    t0 = time.monotonic()
    assert asyncio.run(first_event(EcsElastiCacheWatchTrigger(**settle)))["status"] == "done"
    assert time.monotonic() - t0 >= 0.5

    merged = target.collect(point, {**item, **started}, pdir)
    single = parse_memtier_json(MEMTIER_JSON, started_at=0.0)
    assert merged.generators == 3
    assert merged.requests == 3 * single.requests == 3 * (3_358_132 - 32)
    assert merged.ops_per_sec == pytest.approx(3 * single.ops_per_sec, rel=1e-6)
    # each generator's version line from its container, its start from <phase>.started
    assert merged.tool_version == IMAGE_VERSION
    assert merged.started_at == starts[0] and merged.reads_from == "primary"
    # the same histogram three times: percentiles of the merge are the single run's
    assert merged.latency.p99 == pytest.approx(single.latency.p99, rel=1e-3)
    assert (
        hdr.decode(merged.histogram).get_total_count()
        == 3 * hdr.decode(single.histogram).get_total_count()
    )
    assert (pdir.path / "warmup.json").exists()
    for f in pdir.load.rglob("*.json"):
        assert TOKEN not in f.read_text(), f"{f} kept the token"


def test_watch_fails_early_when_a_load_task_dies(aws, results_dir) -> None:
    _, point, pdir, endpoint = provisioned("run-2", generators=2)
    started, arns = start_load(point, endpoint, pdir)
    set_exit_code(CLUSTER, arns[1], 137, "OutOfMemoryError: container killed")
    write_task_log(arns[1], ["Connection error: TLS"])  # what awslogs holds for the dead task
    trig = trigger_for(started)
    event = trig.check_once()
    assert event["status"] == "failed" and "exit code 137" in event["message"]
    assert "Connection error: TLS" in event["message"]  # the task's log tail, from CloudWatch Logs

    assert asyncio.run(first_event(trig))["status"] == "failed"
    target.stop_load(pdir)  # what steps.watch_failed does: the other task is stopped too
    tasks = aws.client("ecs").describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
    assert {t["lastStatus"] for t in tasks} == {"STOPPED"}


def test_watch_fails_on_evictions_and_unavailable_group(aws, results_dir) -> None:
    _, point, pdir, endpoint = provisioned("run-3", generators=1)
    started, _ = start_load(point, endpoint, pdir)
    trig = trigger_for(started)
    rg = started["ecs"]["replication_group_id"]
    _, nodes = cloudwatch.member_clusters(aws.client("elasticache"), rg)
    assert len(nodes) == 2  # primary + 1 replica, from describe_replication_groups
    assert trig.check_once() is None
    put_node_metrics(nodes[1:], trig.started_at + 1, evictions=42)
    event = trig.check_once()
    assert event["status"] == "failed" and "evicted 42 keys" in event["message"]
    allowed = EcsElastiCacheWatchTrigger(
        **{**started["watch"]["kwargs"], "evictions_allowed": True}
    )
    assert allowed.check_once() is None  # a data set larger than memory evicts by design
    aws.client("elasticache").delete_replication_group(ReplicationGroupId=rg)
    event = allowed.check_once()
    assert event["status"] == "failed" and "not available" in event["message"]
    target.stop_load(pdir)  # as watch_failed does; a RUNNING task would outlive the test


def test_export_reads_every_node_with_pagination(aws, results_dir) -> None:
    _, point, pdir, _ = provisioned("run-4", generators=1)
    rg = json.loads((pdir.terraform / "terraform.tfvars.json").read_text())["replication_group_id"]
    _, nodes = cloudwatch.member_clusters(aws.client("elasticache"), rg)
    t0 = 1_790_000_040.0  # a whole minute
    for minute in range(5):
        put_node_metrics(nodes, t0 + 60 * minute + 5, allowance_out=3.0 if minute >= 3 else 0.0)
    cw = aws.client("cloudwatch")
    # 2 nodes x 19 metrics = 38 queries in batches of 7: six requests to moto
    table = cloudwatch.node_metrics(cw, point.id, nodes, t0, t0 + 299, batch=7)
    assert set(table["node_id"].astype(str)) == set(nodes)
    assert (table["period_s"] == 60).all()
    per = table.groupby(["node_id", "metric"], observed=True).size()
    assert (per == 5).all() and len(per) == 2 * 8  # 8 metrics were published, each minute
    net = table[table["metric"] == "NetworkBytesOut"]
    assert (net["value"] == 9e9).all() and set(net["unit"].astype(str)) == {"Bytes"}

    from cachebench.models import Latency, LoadResult
    from cachebench.report.export import point_summary
    from cachebench.specs import load_instance_specs

    lat = Latency(p50=1, p90=2, p99=3, p99_9=4, max=5, mean=1.5)
    load = LoadResult(tool="memtier_benchmark", started_at=t0, elapsed_seconds=300,
                      requests=1, ops_per_sec=1, kb_per_sec=1, latency=lat)  # fmt: skip
    row = point_summary(point, table, load, load_instance_specs()[("aws", point.node_type)])
    assert row["net_out_gbps_peak"] == pytest.approx(1.2)
    assert row["baseline_gbps"] == 0.937 and row["burst_gbps"] == 12.5
    assert row["seconds_above_baseline"] == 300
    assert row["allowance_first_exceeded_s"] == 180  # the burst ran out in minute 3


def test_get_metric_data_follows_next_token() -> None:
    """moto answers GetMetricData in one page, so NextToken is checked with botocore's Stubber."""
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x")  # fmt: skip
    queries, _ = cloudwatch.queries_for(["n-001"], {"Evictions": ("Sum", "Count")})
    t0 = datetime(2026, 11, 26, 5, tzinfo=UTC)
    pages = [
        ([t0, t0 + timedelta(minutes=1)], [1.0, 2.0], "page-2"),
        ([t0 + timedelta(minutes=2)], [3.0], None),
    ]
    with Stubber(cw) as stub:
        for i, (ts, vals, token) in enumerate(pages):
            resp = {"MetricDataResults": [{"Id": "n0m0", "Timestamps": ts, "Values": vals}]}
            if token:
                resp["NextToken"] = token
            expected = {
                "MetricDataQueries": queries,
                "StartTime": t0,
                "EndTime": t0 + timedelta(minutes=3),
                "ScanBy": "TimestampAscending",
            }
            if i:
                expected["NextToken"] = pages[i - 1][2]
            stub.add_response("get_metric_data", resp, expected)
        data = cloudwatch.get_metric_data(cw, queries, t0, t0 + timedelta(minutes=3))
    assert [v for _, v in data["n0m0"]] == [1.0, 2.0, 3.0]


def test_watch_waits_for_every_generator_to_start_then_fails(aws, results_dir) -> None:
    _, point, pdir, endpoint = provisioned("run-5", generators=2)
    prepared = {
        "point": point.model_dump(mode="json"),
        **target.prepare_load(point, endpoint, pdir),
    }
    generator_op(prepared, 0).execute({"ti": FakeTI()})  # generator 1 never starts
    kwargs = prepared["watch"]["kwargs"]
    assert EcsElastiCacheWatchTrigger(**kwargs).check_once() is None  # may still be starting
    late = EcsElastiCacheWatchTrigger(**{**kwargs, "started_at": kwargs["started_at"] - 700})
    event = late.check_once()
    assert event["status"] == "failed" and "only 1 of 2 load tasks started" in event["message"]
    target.stop_load(pdir)
    running = aws.client("ecs").list_tasks(
        cluster=CLUSTER, family=prepared["ecs"]["family"], desiredStatus="RUNNING"
    )
    assert running["taskArns"] == []


def test_load_operator_retry_reattaches_or_refuses_a_fresh_start(aws, results_dir) -> None:
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    _, point, pdir, endpoint = provisioned("run-6", generators=1)
    prepared = {
        "point": point.model_dump(mode="json"),
        **target.prepare_load(point, endpoint, pdir),
    }
    first = FakeTI()
    generator_op(prepared, 0, reattach=True).execute({"ti": first})
    retry = FakeTI(try_number=2)  # e.g. the worker died while the task deferred
    generator_op(prepared, 0, reattach=True).execute({"ti": retry})
    assert retry.pushed["ecs_task_arn"] == first.pushed["ecs_task_arn"]  # reattached, not new
    set_exit_code(CLUSTER, first.pushed["ecs_task_arn"], 0, "Essential container exited")
    with pytest.raises(AirflowFailException, match="different window"):
        generator_op(prepared, 0, reattach=True).execute({"ti": FakeTI(try_number=2)})
    with pytest.raises(AirflowSkipException, match="1 load generators"):
        generator_op(prepared, 1).execute({"ti": FakeTI()})  # the DAG has more tasks than used
    assert len(aws.client("ecs").list_tasks(cluster=CLUSTER)["taskArns"]) >= 1


def test_aws_points_default_to_five_load_generators() -> None:
    from cachebench.campaign import CampaignSpec

    fields = campaign("five")
    del fields["load_generators"]
    assert {p.load_generators for p in CampaignSpec.from_input(fields).points()} == {5}


def test_reaper_hooks_find_and_delete_expired_groups(aws) -> None:
    from cachebench.reaper import Leftover

    base = {
        "region": "us-east-1",
        "engine": "valkey",
        "engine_version": "8.0",
        "node_type": "cache.r7g.large",
        "cluster_mode": True,
        "shards": 2,
        "replicas": 0,
        "num_cache_clusters": None,
        "num_node_groups": 2,
        "replicas_per_node_group": 0,
        "transit_encryption_mode": "required",
    }
    for rg, expires in (
        ("cb-expired", "2020-01-01T00:00:00Z"),
        ("cb-alive", "2999-01-01T00:00:00Z"),
    ):
        tags = {"cachebench:point": rg, "cachebench:campaign": "c", "cachebench:run": "r",
                "cachebench:expires-at": expires}  # fmt: skip
        standin.up(
            {
                **base,
                "replication_group_id": rg,
                "secret_name": f"cachebench/{rg}/auth",
                "tags": tags,
            }
        )
    found = {f["where"]: f for f in target.find_leftovers(time.time())}
    assert "cb-expired" in found and "cb-alive" not in found
    assert target.reap_leftover(Leftover(**found["cb-expired"])) == []
    ec = aws.client("elasticache")
    status = ec.describe_replication_groups(ReplicationGroupId="cb-expired")["ReplicationGroups"]
    assert status[0]["Status"] == "deleting"
    with pytest.raises(aws.client("secretsmanager").exceptions.ResourceNotFoundException):
        aws.client("secretsmanager").describe_secret(SecretId="cachebench/cb-expired/auth")
    ec.delete_replication_group(ReplicationGroupId="cb-alive")
