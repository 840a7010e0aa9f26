"""Test stand-in for the aws module's resources (see include/terraform/aws-standin).

`python -m cachebench.aws.standin up|down CONFIG_JSON` makes or deletes the
replication group and the AUTH secret through boto3 against AWS_ENDPOINT_URL
(the tests' moto server). Refuses to run without an endpoint override, so it
can never touch a real account.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import string
import sys

import boto3


def _clients(cfg: dict) -> tuple:
    if not os.environ.get("AWS_ENDPOINT_URL"):
        raise SystemExit("standin: AWS_ENDPOINT_URL is not set: refusing to touch a real account")
    region = cfg["region"]
    return boto3.client("elasticache", region_name=region), boto3.client(
        "secretsmanager", region_name=region
    )


def up(cfg: dict) -> None:
    ec, sm = _clients(cfg)
    token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(48))
    tags = [{"Key": k, "Value": v} for k, v in cfg["tags"].items()]
    with contextlib.suppress(sm.exceptions.ResourceExistsException):
        sm.create_secret(Name=cfg["secret_name"], SecretString=token, Tags=tags)
    with contextlib.suppress(ec.exceptions.ReplicationGroupAlreadyExistsFault):
        _create(ec, cfg, token, tags)


def _create(ec, cfg: dict, token: str, tags: list) -> None:
    kwargs = dict(
        ReplicationGroupId=cfg["replication_group_id"],
        ReplicationGroupDescription="cachebench stand-in",
        Engine=cfg["engine"],
        EngineVersion=cfg["engine_version"],
        CacheNodeType=cfg["node_type"],
        TransitEncryptionEnabled=True,
        AtRestEncryptionEnabled=True,
        AuthToken=token,
        Tags=tags,
    )
    # The topology and TLS mode the aws module sends (its rules.tf, linked here).
    if cfg["transit_encryption_mode"] is not None:
        kwargs["TransitEncryptionMode"] = cfg["transit_encryption_mode"]
    if cfg["cluster_mode"]:
        kwargs.update(
            ClusterMode="enabled",
            NumNodeGroups=cfg["num_node_groups"],
            ReplicasPerNodeGroup=cfg["replicas_per_node_group"],
        )
    else:
        # moto 5.2.5 ignores NumCacheClusters with cluster mode disabled and counts
        # members from ReplicasPerNodeGroup alone, so the stand-in sends both.
        kwargs.update(
            ClusterMode="disabled",
            NumCacheClusters=cfg["num_cache_clusters"],
            ReplicasPerNodeGroup=cfg["num_cache_clusters"] - 1,
        )
    ec.create_replication_group(**kwargs)


def down(cfg: dict) -> None:
    ec, sm = _clients(cfg)
    with contextlib.suppress(ec.exceptions.ReplicationGroupNotFoundFault):
        ec.delete_replication_group(ReplicationGroupId=cfg["replication_group_id"])
    with contextlib.suppress(sm.exceptions.ResourceNotFoundException):
        sm.delete_secret(SecretId=cfg["secret_name"], ForceDeleteWithoutRecovery=True)


if __name__ == "__main__":
    action, config = sys.argv[1], json.loads(sys.argv[2])
    {"up": up, "down": down}[action](config)
