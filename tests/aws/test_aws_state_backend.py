"""Terraform's S3 backend for real, against the tests' moto S3.

The DAG's own steps (render_tfvars, apply, destroy) init Terraform with the
deployment's backend settings (targets.aws.backend_config: one key per campaign,
run and deployment, use_lockfile) and apply a STAND-IN module,
include/terraform/aws-standin: the same variables and outputs as
include/terraform/aws, but built-in resources only (terraform_data +
local-exec that create the replication group and the AUTH secret in moto),
because the AWS provider plugin cannot be downloaded here. The backend, the
state objects, the lock and destroy are Terraform's own, unmocked.
"""

from __future__ import annotations

import json
import sys

import pytest
from aws_fakes import STATE_BUCKET, campaign

from cachebench import steps
from cachebench.targets import aws as target


def state_of(s3, key: str) -> dict:
    return json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=key)["Body"].read())


def test_state_per_deployment_in_s3_and_destroy_empties_it(standin, results_dir) -> None:
    aws = standin
    s3, ec = aws.client("s3"), aws.client("elasticache")
    plans = [steps.render_tfvars(p) for p in steps.plan(campaign("state"), "scheduled__1")]
    keys = []
    for plan in plans:
        ddir = steps.deployment_dir(plan)
        key = target.TARGET.backend_config(plan, ddir)["key"]
        keys.append(key)
        endpoint = steps.apply(plan).endpoint
        assert endpoint.tls and endpoint.auth_ref and len(endpoint.nodes) == 2
        state = state_of(s3, key)
        assert [r["type"] for r in state["resources"]] == ["terraform_data"]
        assert not (ddir.terraform / "terraform.tfstate").exists()  # remote state only
        listed = s3.list_objects_v2(Bucket=STATE_BUCKET, Prefix=key)["Contents"]
        assert [o["Key"] for o in listed] == [key]  # the lock file is gone after apply
        rg = target.replication_group_id(plan)
        group = ec.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"][0]
        assert group["Status"] == "available"
        tags = {
            t["Key"]: t["Value"]
            for t in ec.list_tags_for_resource(ResourceName=group["ARN"])["TagList"]
        }
        assert tags["cachebench:deployment"] == plan.instance
        assert aws.client("secretsmanager").describe_secret(SecretId=endpoint.auth_ref)
        token = aws.client("secretsmanager").get_secret_value(SecretId=endpoint.auth_ref)
        assert token["SecretString"] not in (ddir.terraform / "terraform.tfvars.json").read_text()
    assert len(set(keys)) == 2, "two deployments share a state key"

    for plan, key in zip(plans, keys, strict=True):
        assert steps.destroy(plan)["destroyed"] is True
        assert state_of(s3, key)["resources"] == []
        rg = target.replication_group_id(plan)
        status = ec.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"][0]
        assert status["Status"] == "deleting"  # moto keeps deleted groups as "deleting"
    log = (steps.deployment_dir(plans[0]).terraform / "terraform.log").read_text()
    assert 'Successfully configured the backend "s3"' in log, log[-2000:]


def test_destroy_reports_what_is_left(standin, results_dir, monkeypatch) -> None:
    """A group that outlives destroy is CLEANUP FAILED, never silently clean."""
    plan = steps.render_tfvars(steps.plan(campaign("leftover"), "scheduled__2")[0])
    steps.apply(plan)
    # the stand-in's destroy runs in a subprocess: make it fail to delete the group
    monkeypatch.setenv("CACHEBENCH_STANDIN_PYTHON", "true")
    with pytest.raises(steps.CleanupFailed, match="still 'available'"):
        steps.destroy(plan)
    monkeypatch.setenv("CACHEBENCH_STANDIN_PYTHON", sys.executable)
    rg = target.replication_group_id(plan)
    standin.client("elasticache").delete_replication_group(ReplicationGroupId=rg)
