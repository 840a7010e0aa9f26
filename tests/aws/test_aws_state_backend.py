"""Terraform's S3 backend for real, against the tests' moto S3.

The DAG's own steps (render_tfvars, apply, destroy) init Terraform with the
point's backend settings (targets.aws.backend_config: one key per campaign,
run and point, use_lockfile) and apply a STAND-IN module,
include/terraform/aws-standin: the same variables and outputs as
include/terraform/aws, but built-in resources only (terraform_data +
local-exec that create the replication group and the AUTH secret in moto),
because the AWS provider plugin cannot be downloaded here. The backend, the
state objects, the lock and destroy are Terraform's own, unmocked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from aws_fakes import STATE_BUCKET, campaign

from cachebench import steps
from cachebench.models import Endpoint, Point
from cachebench.targets import aws as target
from cachebench.workspace import PointDir


def state_of(s3, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=key)["Body"].read())


def test_state_per_point_in_s3_and_destroy_empties_it(standin, results_dir) -> None:
    aws = standin
    s3, ec = aws.client("s3"), aws.client("elasticache")
    items = [steps.render_tfvars(i) for i in steps.plan(campaign("state"), "scheduled__1")]
    keys = []
    for item in items:
        point, pdir = Point.model_validate(item["point"]), PointDir(Path(item["point_dir"]))
        key = target.backend_config(point, pdir, item["run_id"])["key"]
        keys.append(key)
        applied = steps.apply(item)
        endpoint = Endpoint.model_validate(applied["endpoint"])
        assert endpoint.tls and endpoint.auth_ref and len(endpoint.nodes) == 2
        state = state_of(s3, key)
        assert [r["type"] for r in state["resources"]] == ["terraform_data"]
        assert not (pdir.terraform / "terraform.tfstate").exists()  # remote state only
        listed = s3.list_objects_v2(Bucket=STATE_BUCKET, Prefix=key)["Contents"]
        assert [o["Key"] for o in listed] == [key]  # the lock file is gone after apply
        rg = target.replication_group_id(point, item["run_id"])
        group = ec.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"][0]
        assert group["Status"] == "available"
        assert aws.client("secretsmanager").describe_secret(SecretId=endpoint.auth_ref)
        token = aws.client("secretsmanager").get_secret_value(SecretId=endpoint.auth_ref)
        assert token["SecretString"] not in (pdir.terraform / "terraform.tfvars.json").read_text()
    assert len(set(keys)) == 2, "two points share a state key"

    for item, key in zip(items, keys, strict=True):
        assert steps.destroy(item)["destroyed"] is True
        assert state_of(s3, key)["resources"] == []
        rg = target.replication_group_id(Point.model_validate(item["point"]), item["run_id"])
        status = ec.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"][0]
        assert status["Status"] == "deleting"  # moto keeps deleted groups as "deleting"
    log = (Path(items[0]["point_dir"]) / "terraform" / "terraform.log").read_text()
    assert 'Successfully configured the backend "s3"' in log, log[-2000:]


def test_destroy_reports_what_is_left(standin, results_dir, monkeypatch) -> None:
    """A group that outlives destroy is CLEANUP FAILED, never silently clean."""
    item = steps.render_tfvars(steps.plan(campaign("leftover"), "scheduled__2")[0])
    steps.apply(item)
    point = Point.model_validate(item["point"])
    # the stand-in's destroy runs in a subprocess: make it fail to delete the group
    monkeypatch.setenv("CACHEBENCH_STANDIN_PYTHON", "true")
    with pytest.raises(steps.CleanupFailed, match="still 'available'"):
        steps.destroy(item)
    monkeypatch.setenv("CACHEBENCH_STANDIN_PYTHON", sys.executable)
    rg = target.replication_group_id(point, item["run_id"])
    standin.client("elasticache").delete_replication_group(ReplicationGroupId=rg)
