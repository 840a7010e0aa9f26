"""include/terraform/aws applied and destroyed by the real AWS provider against the moto
server, through the DAG's own steps (render_tfvars, apply, destroy): Terraform's S3
backend in moto (one state key per deployment, locked with use_lockfile), the provider's
create and delete waits, the module's every resource.

What moto (5.2.5) lacks is filled in tests/aws/moto_gaps.py (its GAPS): ElastiCache
cache parameter groups and DeleteCacheSubnetGroup (not implemented), NumCacheClusters
with cluster mode disabled (ignored), the member clusters of a replication group (not
describable), the reader endpoint (not returned), a deleted group (never gone) and
the tags of parameter groups (refused). Nothing else is stood in.

The provider waits 30 s before it first looks at a group it created or deleted, so each
apply and each destroy takes about 30 s here: the deployments of a test run side by side.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import moto_gaps
import pytest
from aws_fakes import STATE_BUCKET, campaign, left_in_moto
from botocore import xform_name
from botocore.session import get_session
from test_airflow_connection_policy import _allowed_somewhere as granted

from cachebench import steps, terraform
from cachebench.models import DeploymentPlan
from cachebench.report.build import build_report
from cachebench.targets.aws import target

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = [
    {"cluster_mode": False, "replicas": 1},
    {"cluster_mode": True, "shards": 2, "replicas": 1},
]


def state_of(key: str) -> dict:
    s3 = boto3.client("s3")
    return json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=key)["Body"].read())


def keys_under(prefix: str) -> list[str]:
    s3 = boto3.client("s3")
    return [
        o["Key"] for o in s3.list_objects_v2(Bucket=STATE_BUCKET, Prefix=prefix).get("Contents", [])
    ]


class LockWatch(threading.Thread):
    """Records every state lock object (<key>.tflock) seen in the bucket while it runs."""

    def __init__(self, prefix: str):
        super().__init__(daemon=True)
        self.prefix, self.seen, self.done = prefix, set(), threading.Event()

    def run(self) -> None:
        s3 = boto3.client("s3")
        while not self.done.wait(0.2):
            for o in s3.list_objects_v2(Bucket=STATE_BUCKET, Prefix=self.prefix).get(
                "Contents", []
            ):
                if o["Key"].endswith(".tflock"):
                    self.seen.add(o["Key"])

    def stop(self) -> set[str]:
        self.done.set()
        self.join(10)
        return self.seen


def iam_actions(calls: list[tuple[str, str, int]]) -> set[str]:
    """The IAM actions of the API calls moto answered (STS GetCallerIdentity needs none)."""
    session, out = get_session(), set()
    for service, action, _ in calls:
        if service in ("sts", "s3"):  # S3: the backend's grants have a test of their own
            continue
        ops = {xform_name(op): op for op in session.get_service_model(service).operation_names}
        out.add(f"{service}:{ops[action]}")
    return out


def test_real_module_applies_and_destroys_single_and_cluster_of_both_engines(
    real_module, results_dir
) -> None:
    fields = {
        **campaign("apply"),
        "topologies": TOPOLOGIES,
        "maxmemory_policy": "allkeys-lfu",
    }
    plans = [steps.render_tfvars(p) for p in steps.plan(fields, "scheduled__apply")]
    assert sorted(p.deployment.topology.label + " " + p.deployment.engine for p in plans) == [
        "c2r1 redis", "c2r1 valkey", "single-r1 redis", "single-r1 valkey",
    ]  # fmt: skip
    # and one without TLS (aws.transit_encryption: false), applied beside them
    plain_fields = {
        **campaign("apply-plain"),
        "engines": [{"engine": "valkey", "versions": ["8.1"]}],
        "topologies": [{"cluster_mode": False, "replicas": 0}],
        "aws": {"transit_encryption": False},
    }
    (plain,) = [steps.render_tfvars(p) for p in steps.plan(plain_fields, "scheduled__plain")]
    settings = target.settings_for(plans[0])
    prefix = f"{settings.state_prefix}/apply"
    first_call = len(moto_gaps.CALLS)
    locks = LockWatch(prefix)
    locks.start()
    with ThreadPoolExecutor(len(plans) + 1) as pool:
        *provisioned, plain_prov = list(pool.map(steps.apply, [*plans, plain]))
    seen_locks = locks.stop()

    plain_key = target.state_key(settings, plain)
    keys = [target.state_key(settings, p) for p in plans]
    assert len(set(keys)) == len(plans), "two deployments share a state key"
    assert seen_locks == {k + ".tflock" for k in [*keys, plain_key]}, "each apply locked"
    assert sorted(keys_under(prefix)) == sorted([*keys, plain_key]), "a lock outlived its apply"
    sm, ec = real_module.client("secretsmanager"), real_module.client("elasticache")
    for plan, prov, key in zip(plans, provisioned, keys, strict=True):
        ddir = steps.deployment_dir(plan)
        rg = target.replication_group_id(plan)
        topo = plan.deployment.topology
        ep = prov.endpoint
        assert ep.tls and ep.auth_ref.startswith("arn:aws:secretsmanager:")
        assert len(ep.nodes) == topo.nodes
        assert [n.node_id for n in ep.nodes if n.role == "primary"] == (
            [f"{rg}-{s:04d}-001" for s in range(1, topo.shards + 1)]
            if topo.cluster_mode
            else [f"{rg}-001"]
        )
        assert (ep.reader_host is None) == topo.cluster_mode
        assert not (ddir.terraform / "terraform.tfstate").exists()  # remote state only
        types = {r["type"] for r in state_of(key)["resources"]}
        assert "aws_elasticache_replication_group" in types and "random_password" not in types
        (group,) = ec.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"]
        assert group["Status"] == "available" and group["TransitEncryptionEnabled"]
        assert group["ClusterEnabled"] is topo.cluster_mode
        tags = {
            t["Key"]: t["Value"]
            for t in ec.list_tags_for_resource(ResourceName=group["ARN"])["TagList"]
        }
        assert tags["cachebench:deployment"] == plan.instance
        params = ec.describe_cache_parameters(CacheParameterGroupName=rg)["Parameters"]
        assert {p["ParameterName"]: p["ParameterValue"] for p in params} == {
            "cluster-enabled": "yes" if topo.cluster_mode else "no",
            "maxmemory-policy": "allkeys-lfu",
        }
        token = sm.get_secret_value(SecretId=ep.auth_ref)["SecretString"]
        assert re.fullmatch(r"[A-Za-z0-9]{64}", token)
        for f in ddir.path.rglob("*"):  # tfvars, terraform.log, deployment.json, ...
            if f.is_file() and ".terraform" not in f.parts:
                assert token.encode() not in f.read_bytes(), f
        logs = real_module.client("logs").describe_log_groups(
            logGroupNamePrefix=f"/aws/vendedlogs/cachebench/{rg}/"
        )["logGroups"]
        assert sorted(g["logGroupName"].rsplit("/", 1)[1] for g in logs) == [
            "engine-log",
            "slow-log",
        ]
        body = json.loads(
            real_module.client("cloudwatch").get_dashboard(DashboardName=f"cachebench-{rg}")[
                "DashboardBody"
            ]
        )
        for w in body["widgets"]:
            assert all(isinstance(m, list) for m in w["properties"]["metrics"]), w
        # the dashboard named the nodes before they existed (rules.tf): these are they
        graphed = {m[3] for w in body["widgets"] for m in w["properties"]["metrics"]}
        assert graphed == {n.node_id for n in ep.nodes}, plan.instance

    # without TLS: plaintext, no AUTH token and no secret; the report says so
    rg = target.replication_group_id(plain)
    assert not plain_prov.endpoint.tls and plain_prov.endpoint.auth_ref is None
    (group,) = ec.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"]
    assert group["TransitEncryptionEnabled"] is False and group["AuthTokenEnabled"] is False
    types = {r["type"] for r in state_of(plain_key)["resources"]}
    assert not {t for t in types if t.startswith("aws_secretsmanager")}, types
    report = build_report(Path(plain.run_dir))
    assert (
        "measured without TLS (aws.transit_encryption: false"
        in Path(report["report_md"]).read_text()
    )

    # a destroy AWS refuses is CLEANUP FAILED, never silently clean; the retry cleans up
    refused = target.replication_group_id(plans[0])
    moto_gaps.REFUSE_DELETE.add(refused)
    try:
        with pytest.raises(steps.CleanupFailed, match=f"replication group {refused} is still"):
            steps.destroy(plans[0])
    finally:
        moto_gaps.REFUSE_DELETE.discard(refused)
    cleanup = json.loads((steps.deployment_dir(plans[0]).path / "cleanup.json").read_text())
    assert cleanup["status"] == "CLEANUP FAILED"
    assert any("aws_elasticache_replication_group.this" in p for p in cleanup["problems"])

    with ThreadPoolExecutor(len(plans) + 1) as pool:
        outcomes = list(pool.map(steps.destroy, [*plans, plain]))
    assert all(o.destroyed for o in outcomes)
    for plan, key in zip([*plans, plain], [*keys, plain_key], strict=True):
        assert state_of(key)["resources"] == []
        assert left_in_moto(target.replication_group_id(plan), settings.vpc_id) == []
    assert sorted(keys_under(prefix)) == sorted([*keys, plain_key]), "no lock left behind"
    calls = moto_gaps.CALLS[first_call:]
    assert not moto_gaps.missing(), moto_gaps.missing()
    # every call the provider and the steps made is one the Airflow connection's policy grants
    ungranted = sorted(a for a in iam_actions(calls) if not granted(a))
    assert not ungranted, f"include/iam/airflow-connection-policy.json lacks {ungranted}"


APPLY_THEN_DIE = """
import json, sys
from cachebench import steps
from cachebench.models import DeploymentPlan
from cachebench.report.build import build_report
steps.apply(DeploymentPlan.model_validate_json(sys.argv[1]))
"""


def _group_exists(rg: str) -> bool:
    ec = boto3.client("elasticache")
    try:
        ec.describe_replication_groups(ReplicationGroupId=rg)
    except ec.exceptions.ReplicationGroupNotFoundFault:
        return False
    return True


def _wait_for(what, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not what():
        assert time.monotonic() < deadline, f"{what} never came true"
        time.sleep(0.2)


def _interrupted_apply(plan: DeploymentPlan, monkeypatch) -> None:
    """Terraform overruns its time while it waits for the group: SIGINT, as on a timeout."""
    with pytest.raises(terraform.TerraformError, match="interrupted after 15 s"):
        steps.apply(plan)


def _killed_worker(plan: DeploymentPlan) -> None:
    """The worker running apply dies mid-way (SIGKILL), Terraform and its provider with it."""
    ddir = steps.deployment_dir(plan)
    worker = subprocess.Popen(
        [sys.executable, "-c", APPLY_THEN_DIE, plan.model_dump_json()],
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
        start_new_session=True,
    )
    rg = target.replication_group_id(plan)
    _wait_for(lambda: _group_exists(rg))
    running = json.loads((ddir.terraform / terraform.RUNNING).read_text())
    os.killpg(running["pid"], signal.SIGKILL)  # Terraform and its provider
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(30)


def test_an_apply_killed_mid_way_leaves_what_destroy_can_finish(
    real_module, results_dir, monkeypatch
) -> None:
    """Two applies die while the provider waits for their groups: one interrupted on its
    timeout (SIGINT: Terraform records the group, tainted, and releases the lock), one
    killed with its worker (SIGKILL: no state of the group, the lock left behind). Destroy
    finishes both: the stale lock released, the unrecorded resources found by their names
    and the group by its tags, imported, destroyed; nothing is left."""
    # the provider asks for the group within seconds, then waits 30 s before it looks at it:
    # 15 s falls in that wait
    monkeypatch.setitem(terraform.TIMEOUTS, "apply", 15)
    fields = {**campaign("killed", generators=1), "topologies": TOPOLOGIES[:1]}
    interrupted, killed = (steps.render_tfvars(p) for p in steps.plan(fields, "scheduled__kill"))
    settings = target.settings_for(interrupted)
    with ThreadPoolExecutor(2) as pool:
        done = [
            pool.submit(_interrupted_apply, interrupted, monkeypatch),
            pool.submit(_killed_worker, killed),
        ]
        for f in done:
            f.result()

    key = target.state_key(settings, interrupted)
    assert keys_under(key + ".tflock") == [], "SIGINT: Terraform released its lock"
    recorded = {r["type"]: r for r in state_of(key)["resources"]}
    group = recorded["aws_elasticache_replication_group"]["instances"][0]
    assert group.get("status") == "tainted"  # made, not known good: recorded all the same

    key = target.state_key(settings, killed)
    assert keys_under(key + ".tflock") == [key + ".tflock"], "SIGKILL leaves the lock"
    assert "aws_elasticache_replication_group" not in {
        r["type"] for r in (state_of(key)["resources"] if key in keys_under(key) else [])
    }

    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(steps.destroy, [interrupted, killed]))
    assert all(o.destroyed for o in outcomes)
    for plan in (interrupted, killed):
        assert left_in_moto(target.replication_group_id(plan), settings.vpc_id) == []
        assert state_of(target.state_key(settings, plan))["resources"] == []
    log = (steps.deployment_dir(killed).terraform / "terraform.log").read_text()
    assert "$ terraform force-unlock -force" in log
    assert "$ terraform import" in log and "aws_elasticache_replication_group.this" in log
