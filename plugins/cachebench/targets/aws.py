"""The aws target: ElastiCache by Terraform (S3 state), memtier on ECS, CloudWatch metrics.

Per point: `include/terraform/aws` makes the replication group (state under
one S3 key per campaign/run/point, locked with use_lockfile); `prepare_load`
registers the point's task definition revision (the AUTH token as a container
secret) and builds every generator's run_task arguments; the provider's
EcsRunTaskOperator starts and waits for each generator's task (one task per
generator in the point's group, deferrable, reattach, awslogs), while the
watch trigger follows all of them and the group's health over the hour and
fails the point early; `collect` merges the tasks' memtier results from S3
(HDR histograms merged); `metrics` reads the hour from CloudWatch; destroy is
the shared teardown with the same backend key.

The watch finds the load tasks by the point's own task definition family
(list_tasks), so it needs no task ARN from the operators that start them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachebench import specs
from cachebench.aws.settings import AwsSettings, resolve
from cachebench.models import Endpoint, LoadResult, Point
from cachebench.workspace import PointDir, run_slug

if TYPE_CHECKING:
    import pandas as pd

    from cachebench.campaign import CampaignSpec

log = logging.getLogger(__name__)

ENGINE_PORT = 6379
RESERVED_MEMORY = 0.25  # ElastiCache's default reserved-memory-percent
KEY_OVERHEAD_BYTES = 100  # per-key bookkeeping in the engine, on top of the value
START_GRACE_S = 900  # Fargate image pull and start, result upload
ECS_STATE = "ecs.json"


def __getattr__(name: str) -> Any:
    # MODULE is read at run time so tests can point it at the stand-in module
    # (include/terraform/aws-standin: same variables and outputs, built-in resources).
    if name == "MODULE":
        return os.environ.get("CACHEBENCH_AWS_MODULE", "aws")
    raise AttributeError(name)


# ---------------------------------------------------------------- settings


def problems(spec: CampaignSpec) -> list[str]:
    """What keeps an aws campaign from running (checked in plan, before anything exists)."""
    try:
        settings = resolve(spec.aws)
    except Exception as exc:
        return [f"aws: {exc}"]
    return settings.problems()


def settings_for(pdir: PointDir) -> AwsSettings:
    """The run's settings: campaign.json's aws block over the Variable."""
    campaign = json.loads((pdir.path.parents[1] / "campaign.json").read_text())
    return resolve(campaign.get("aws"))


def _client(settings: AwsSettings, service: str) -> Any:
    from cachebench.aws.clients import client

    return client(service, settings.region, settings.aws_conn_id)


def replication_group_id(point: Point, run_id: str) -> str:
    """1-40 chars, lowercase, starts with a letter: a digest; tags carry the readable ids."""
    digest = hashlib.sha1(f"{point.campaign}/{run_id}/{point.id}".encode()).hexdigest()
    return f"cb-{digest[:20]}"


def state_key(settings: AwsSettings, point: Point, run_id: str) -> str:
    """One Terraform state object per (campaign, run, point)."""
    return (
        f"{settings.state_prefix}/{point.campaign}/{run_slug(run_id)}/{point.id}/terraform.tfstate"
    )


def evictions_expected(point: Point) -> bool:
    """True when the workload's data set does not fit in the group's memory."""
    spec = specs.load_instance_specs()[("aws", point.node_type)]
    w = point.workload
    data = w.key_space * (w.value_size + KEY_OVERHEAD_BYTES)
    usable = point.topology.shards * spec.memory_gib * (1 - RESERVED_MEMORY) * 2**30
    return data > usable


def _tfvars_of(pdir: PointDir) -> dict[str, Any]:
    return json.loads((pdir.terraform / "terraform.tfvars.json").read_text())


# ---------------------------------------------------------------- terraform


def tfvars(
    point: Point, pdir: PointDir, run_id: str, expires_at: int, points: int
) -> dict[str, Any]:
    s = settings_for(pdir)
    return {
        "region": s.region,
        "campaign": point.campaign,
        "run_id": run_id,
        "point_id": point.id,
        "replication_group_id": replication_group_id(point, run_id),
        "engine": point.engine,
        "engine_version": point.version,
        "node_type": point.node_type,
        "cluster_mode": point.topology.cluster_mode,
        "shards": point.topology.shards,
        "replicas": point.topology.replicas,
        "vpc_id": s.vpc_id,
        "subnet_ids": s.subnet_ids,
        "allowed_security_group_ids": (
            [s.loadgen_security_group_id] if s.loadgen_security_group_id else []
        ),
        "allowed_cidr_blocks": s.allowed_cidr_blocks,
        "kms_key_arn": s.kms_key_arn,
        "log_retention_days": s.log_retention_days,
        "expires_at": expires_at,
    }


def terraform_env(pdir: PointDir) -> dict[str, str | None]:
    """The Airflow connection's credentials and the region, for Terraform and its S3 backend.

    So Terraform acts in the same account as the DAG's boto3 calls. Without a
    connection id, Terraform keeps the worker's default credential chain.
    """
    s = settings_for(pdir)
    if not s.aws_conn_id:
        return {}
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=s.aws_conn_id, client_type="sts", region_name=s.region)
    creds = hook.get_credentials(region_name=s.region)
    env: dict[str, str | None] = {
        "AWS_ACCESS_KEY_ID": creds.access_key,
        "AWS_SECRET_ACCESS_KEY": creds.secret_key,
        "AWS_SESSION_TOKEN": None,
        "AWS_PROFILE": None,  # a profile would win over these keys in the AWS SDK
    }
    if creds.token:
        env["AWS_SESSION_TOKEN"] = creds.token
    if s.region:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = s.region
    return env


def backend_config(point: Point, pdir: PointDir, run_id: str) -> dict[str, str]:
    """terraform init -backend-config for the S3 backend: the point's own key, locked."""
    s = settings_for(pdir)
    cfg = {
        "bucket": s.state_bucket or "",
        "key": state_key(s, point, run_id),
        "region": s.region or "",
        "use_lockfile": "true",
        "encrypt": "true",
    }
    if s.kms_key_arn:
        cfg["kms_key_id"] = s.kms_key_arn
    if os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
        cfg["use_path_style"] = "true"  # an S3-compatible endpoint (tests: moto) has no DNS
    return cfg


# ---------------------------------------------------------------- load


def prepare_load(point: Point, endpoint: Endpoint, pdir: PointDir) -> dict[str, Any]:
    """The point's task definition revision and each generator's run_task arguments.

    Returns the "ecs_run" arguments the load operators take (no secret in them:
    the token reaches memtier through the task definition's container secret),
    and the "watch" spec for the deferrable trigger over the load and the group.
    """
    from cachebench.aws import ecs
    from cachebench.triggers.aws import CLASSPATH

    s = settings_for(pdir)
    tv = _tfvars_of(pdir)
    rg_id, run_id = tv["replication_group_id"], tv["run_id"]
    results_uri = (
        f"s3://{s.bucket_for_results}/{s.results_prefix}/"
        f"{point.campaign}/{run_slug(run_id)}/{point.id}"
    )
    tags = {
        "cachebench:campaign": point.campaign,
        "cachebench:run": run_id[:256],
        "cachebench:point": point.id,
    }
    client = _client(s, "ecs")
    fam = ecs.family(point, run_id)
    td_arn = ecs.register_point_task_definition(
        client,
        s.task_definition,
        s.container_name,
        fam,
        endpoint.auth_ref,
        [{"key": k, "value": v} for k, v in tags.items()],
    )
    state = {
        "region": s.region,
        "cluster": s.ecs_cluster,
        "family": fam,
        "task_definition": td_arn,
        "container": s.container_name,
        "results_uri": results_uri,
        "replication_group_id": rg_id,
    }
    pdir.write_json(ECS_STATE, state)
    script = ecs.container_script(point, endpoint, s)
    w = point.workload
    logs = ecs.awslogs(client, td_arn, s.container_name) or {}
    ecs_run = {
        "aws_conn_id": s.aws_conn_id,
        "region": s.region,
        "cluster": s.ecs_cluster,
        "task_definition": td_arn,
        "launch_type": s.launch_type,
        "network_configuration": {
            "awsvpcConfiguration": {
                "subnets": s.loadgen_subnet_ids,
                "securityGroups": (
                    [s.loadgen_security_group_id] if s.loadgen_security_group_id else []
                ),
                "assignPublicIp": "ENABLED" if s.assign_public_ip else "DISABLED",
            }
        },
        "tags": tags,
        "container_name": s.container_name,
        "awslogs_group": logs.get("group"),
        "awslogs_stream_prefix": logs.get("prefix"),
        # how often the provider's trigger asks whether a task stopped, and for how long
        "waiter_delay": max(1, int(s.watch_poll_seconds)),
        "wait_seconds": int((w.warmup_seconds + w.duration_seconds) * 1.25 + START_GRACE_S),
        "overrides": [
            ecs.generator_overrides(s.container_name, script, results_uri, g)
            for g in range(point.load_generators)
        ],
    }
    started = time.time()
    watch = {
        "region": s.region,
        "cluster": s.ecs_cluster,
        "family": fam,
        "expected": point.load_generators,
        "container": s.container_name,
        "replication_group_id": rg_id,
        "started_at": started,
        "deadline": started + (w.warmup_seconds + w.duration_seconds) * 1.25 + START_GRACE_S,
        "evictions_allowed": evictions_expected(point),
        "aws_conn_id": s.aws_conn_id,
        "awslogs": logs or None,
        "min_poll": s.watch_poll_seconds,
        "settle_seconds": s.metrics_delay_seconds,
    }
    return {
        "ecs": state,
        "ecs_run": ecs_run,
        "started_at": started,
        "watch": {"classpath": CLASSPATH, "kwargs": watch},
    }


def collect(point: Point, item: dict[str, Any], pdir: PointDir) -> LoadResult:
    from cachebench.aws import results

    s = settings_for(pdir)
    s3 = _client(s, "s3")
    results.fetch(s3, item["ecs"]["results_uri"], pdir.load)
    measured = results.merge_phase(pdir.load, point.load_generators, "measured")
    if point.workload.warmup_seconds > 0:
        try:
            warm = results.merge_phase(pdir.load, point.load_generators, "warmup")
            pdir.write_json("warmup.json", warm.model_dump(mode="json"))
        except Exception as exc:  # the measured result stands; say why warm-up is missing
            log.warning("no warm-up result for %s: %s", point.id, exc)
    return measured


def metrics(point: Point, item: dict[str, Any], start: float, end: float) -> pd.DataFrame:
    from cachebench.aws import cloudwatch

    pdir = PointDir(Path(item["point_dir"]))
    s = settings_for(pdir)
    wait = end + s.metrics_delay_seconds - time.time()
    if wait > 0:  # the watch already waited this out on the triggerer, unless it was cleared
        time.sleep(wait)
    _, nodes = cloudwatch.member_clusters(
        _client(s, "elasticache"), item["ecs"]["replication_group_id"]
    )
    return cloudwatch.node_metrics(_client(s, "cloudwatch"), point.id, nodes, start, end)


def _load_tasks(pdir: PointDir, status: str = "RUNNING") -> tuple[dict, list[str], Any]:
    """(ecs state, ARNs of the point's load tasks in `status`, ECS client); none before prepare."""
    from cachebench.aws import ecs

    path = pdir.path / ECS_STATE
    if not path.exists():
        return {}, [], None
    state = json.loads(path.read_text())
    client = _client(settings_for(pdir), "ecs")
    return state, ecs.family_tasks(client, state["cluster"], state["family"], status), client


def stop_load(pdir: PointDir) -> None:
    from cachebench.aws import ecs

    state, running, client = _load_tasks(pdir)
    if running:
        ecs.stop(client, state["cluster"], running, "cachebench: stopped")


def leftovers(item: dict[str, Any]) -> list[str]:
    """After destroy: load tasks, task definition, replication group, state; empty = clean."""
    pdir = PointDir(Path(item["point_dir"]))
    point = Point.model_validate(item["point"])
    s = settings_for(pdir)
    left: list[str] = []
    state, running, client = _load_tasks(pdir)
    left += [f"load task {arn} is still running" for arn in running]
    if state:
        try:
            client.deregister_task_definition(taskDefinition=state["task_definition"])
        except Exception as exc:
            log.warning("could not deregister %s: %s", state["task_definition"], exc)
    rg_id = replication_group_id(point, item["run_id"])
    try:
        resp = _client(s, "elasticache").describe_replication_groups(ReplicationGroupId=rg_id)
        status = resp["ReplicationGroups"][0].get("Status")
        if status != "deleting":
            left.append(f"replication group {rg_id} is still {status!r}")
    except Exception as exc:
        if "NotFound" not in type(exc).__name__ and "NotFound" not in str(exc):
            left.append(f"replication group {rg_id}: could not check: {exc}")
    key = state_key(s, point, item["run_id"])
    try:
        obj = _client(s, "s3").get_object(Bucket=s.state_bucket, Key=key)
        resources = json.loads(obj["Body"].read()).get("resources", [])
        left += [
            f"still in state s3://{s.state_bucket}/{key}: {r.get('type')}.{r.get('name')}"
            for r in resources
        ]
    except Exception as exc:
        if "NoSuchKey" not in str(exc) and "Not Found" not in str(exc):
            left.append(f"state s3://{s.state_bucket}/{key}: could not check: {exc}")
    return left


# ---------------------------------------------------------------- reaper hooks


def _expiry_of(tag: str | None) -> float | None:
    from datetime import datetime

    if not tag:
        return None
    try:
        return datetime.fromisoformat(tag.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def find_leftovers(now: float) -> list[dict[str, Any]]:
    """Replication groups tagged by cachebench whose cachebench:expires-at has passed.

    Asks AWS only when the account is configured (the cachebench_aws Variable or
    its AIRFLOW_VAR_ form names a region); any error is logged, never raised.
    """
    try:
        s = resolve(None)
        if not s.region:
            return []
        ec = _client(s, "elasticache")
        out = []
        for page in ec.get_paginator("describe_replication_groups").paginate():
            for g in page.get("ReplicationGroups", []):
                arn = g.get("ARN")
                if not arn or g.get("Status") == "deleting":
                    continue
                tags = {
                    t["Key"]: t["Value"]
                    for t in ec.list_tags_for_resource(ResourceName=arn).get("TagList", [])
                }
                if "cachebench:point" not in tags:
                    continue
                expires = _expiry_of(tags.get("cachebench:expires-at"))
                if expires is None or expires > now:
                    continue
                out.append(
                    {
                        "target": "aws",
                        "point_id": tags["cachebench:point"],
                        "campaign": tags.get("cachebench:campaign", ""),
                        "run_id": tags.get("cachebench:run", ""),
                        "expires_at": expires,
                        "where": g["ReplicationGroupId"],
                        "reason": f"expired at {tags['cachebench:expires-at']}",
                        "extra": {"region": s.region},
                    }
                )
        return out
    except Exception as exc:
        log.warning("aws leftovers could not be listed: %s", exc)
        return []


def reap_leftover(leftover: Any) -> list[str]:
    """Delete an expired group and its AUTH secret (what costs money or holds a secret).

    The free companions (security, subnet and parameter groups, log groups,
    dashboard) stay in the point's Terraform state for a later destroy.
    """
    rg = leftover.where if hasattr(leftover, "where") else leftover["where"]
    s = resolve(None)
    problems = []
    try:
        _client(s, "elasticache").delete_replication_group(ReplicationGroupId=rg)
    except Exception as exc:
        if "NotFound" not in str(exc):
            problems.append(f"replication group {rg}: {exc}")
    try:
        _client(s, "secretsmanager").delete_secret(
            SecretId=f"cachebench/{rg}/auth", ForceDeleteWithoutRecovery=True
        )
    except Exception as exc:
        if "ResourceNotFound" not in str(exc):
            problems.append(f"secret cachebench/{rg}/auth: {exc}")
    return problems
