"""Where a campaign runs in an AWS account: VPC, subnets, ECS, buckets.

The settings come from the campaign's optional ``aws:`` block, laid over the
Airflow Variable ``cachebench_aws`` (JSON, same fields): account-wide values
(VPC, subnets, buckets, ECS cluster) live once in the Variable, a campaign only
names what differs. No field ever holds a secret.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Literal

from pydantic import Field, field_validator

from cachebench.models import Strict

VARIABLE = "cachebench_aws"
REQUIRED = (
    "region",
    "vpc_id",
    "subnet_ids",
    "state_bucket",
    "ecs_cluster",
    "task_definition",
    "loadgen_subnet_ids",
)
_ID = {
    "vpc_id": re.compile(r"^vpc-[0-9a-f]{8,17}$"),
    "subnet": re.compile(r"^subnet-[0-9a-f]{8,17}$"),
    "sg": re.compile(r"^sg-[0-9a-f]{8,17}$"),
}


class AwsSettings(Strict):
    """The account side of an aws campaign (every field optional here; plan checks)."""

    region: str | None = Field(None, description="AWS region, e.g. eu-west-1")
    aws_conn_id: str | None = Field(
        "aws_default",
        description="Airflow connection for AWS calls and Terraform; null: worker credentials",
    )
    vpc_id: str | None = Field(None, description="existing VPC of the cache and the load tasks")
    subnet_ids: list[str] = Field([], description="private subnets of the cache subnet group")
    allowed_cidr_blocks: list[str] = Field(
        [], description="CIDRs admitted to the engine port besides the load generators' SG"
    )
    state_bucket: str | None = Field(None, description="S3 bucket of the Terraform state")
    state_prefix: str = Field("cachebench", description="key prefix of the Terraform state")
    results_bucket: str | None = Field(None, description="S3 bucket of memtier results")
    results_prefix: str = Field("cachebench-results", description="key prefix of results")
    ecs_cluster: str | None = Field(None, description="ECS cluster name or ARN of the load tasks")
    task_definition: str | None = Field(
        None, description="family[:revision] or ARN of the memtier task definition"
    )
    container_name: str = Field("memtier", description="container that runs memtier")
    loadgen_subnet_ids: list[str] = Field([], description="subnets of the load tasks")
    loadgen_security_group_id: str | None = Field(
        None, description="security group of the load tasks (admitted to the engine port)"
    )
    assign_public_ip: bool = False
    launch_type: Literal["FARGATE", "EC2"] = "FARGATE"
    log_retention_days: int = Field(14, ge=1, le=3653)
    kms_key_arn: str | None = Field(None, description="CMK for at-rest, logs and the secret")
    transit_encryption: bool = Field(
        True,
        description="TLS to the cache, with an AUTH token; false: plaintext without AUTH "
        "(ElastiCache takes a token only with TLS), to compare with published plaintext numbers",
    )
    tls_cacert: str = Field(
        "/etc/ssl/certs/ca-certificates.crt",
        description="CA bundle in the load image that memtier checks the cache's TLS "
        "certificate against (--cacert; memtier loads no system trust store)",
    )
    tls_skip_verify: bool = Field(
        False, description="explicit opt-out: memtier --tls-skip-verify, no certificate check"
    )
    load_start_grace_seconds: float = Field(
        120.0,
        ge=0,
        description="a run's load tasks all start their warm-up this long after they were "
        "started (Fargate's image pull and start-up), at one time, so they measure together",
    )
    watch_poll_seconds: float = Field(60.0, gt=0, description="how often the watch asks AWS")
    metrics_delay_seconds: float = Field(
        180.0, ge=0, description="wait after the load before reading CloudWatch"
    )

    @field_validator("region")
    @classmethod
    def _region(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[a-z]{2}(-[a-z]+)+-\d$", v):
            raise ValueError(f"{v!r}: not an AWS region name, e.g. 'eu-west-1'")
        return v

    @property
    def bucket_for_results(self) -> str | None:
        return self.results_bucket or self.state_bucket

    def problems(self) -> list[str]:
        """What is missing or malformed, as `aws.field: value: what is allowed`."""
        out = []
        for name in REQUIRED:
            if not getattr(self, name):
                out.append(
                    f"aws.{name}: required for target aws: set it in the campaign's aws: "
                    f"block or in the Airflow Variable {VARIABLE!r}"
                )
        if self.vpc_id and not _ID["vpc_id"].match(self.vpc_id):
            out.append(f"aws.vpc_id: {self.vpc_id!r}: expected vpc-<hex>")
        for field in ("subnet_ids", "loadgen_subnet_ids"):
            for i, s in enumerate(getattr(self, field)):
                if not _ID["subnet"].match(s):
                    out.append(f"aws.{field}[{i}]: {s!r}: expected subnet-<hex>")
        if not self.tls_skip_verify and not self.tls_cacert.startswith("/"):
            out.append(
                f"aws.tls_cacert: {self.tls_cacert!r}: expected the absolute path of a CA "
                "bundle in the load image (or set aws.tls_skip_verify: true)"
            )
        sg = self.loadgen_security_group_id
        if sg and not _ID["sg"].match(sg):
            out.append(f"aws.loadgen_security_group_id: {sg!r}: expected sg-<hex>")
        if not sg and not self.allowed_cidr_blocks:
            out.append(
                "aws.loadgen_security_group_id: required (or name allowed_cidr_blocks): "
                "nothing could reach the engine port"
            )
        return out


def variable_value() -> dict[str, Any]:
    """The Airflow Variable (or its AIRFLOW_VAR_ environment form outside a task)."""
    raw: Any = None
    try:
        from airflow.sdk import Variable

        raw = Variable.get(VARIABLE, default=None)
    except Exception:  # no task context (CLI, tests): the environment form only
        raw = None
    if raw is None:
        raw = os.environ.get(f"AIRFLOW_VAR_{VARIABLE.upper()}")
    if not raw:
        return {}
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def resolve(block: dict[str, Any] | AwsSettings | None) -> AwsSettings:
    """The Variable's fields, overridden by the campaign's aws: block."""
    if isinstance(block, AwsSettings):
        block = block.model_dump(exclude_unset=True)
    merged = {**variable_value(), **(block or {})}
    if not merged.get("region"):
        env_region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if env_region:
            merged["region"] = env_region
    return AwsSettings.model_validate(merged)
