"""Which credentials Terraform acts with: the Airflow connection's keys when the connection
stores static ones, else its own default credential chain (the worker's environment,
profile or instance/task role, which the AWS SDK refreshes during an hour-long apply).

A `terraform` executable stand-in on PATH records the environment it is given (names
and values go to a file in the test's tmp dir, never to a log).
"""

from __future__ import annotations

import json
import os
import sys

import moto_gaps
import pytest
from aws_fakes import campaign

from cachebench import steps

RECORDER = """#!{python}
import json, os, sys
with open({out!r}, "w") as fh:
    json.dump(dict(os.environ), fh)
print("Terraform v1.11.0 (stand-in)")
"""
ROLE = "arn:aws:iam::123456789012:role/cachebench-bench"
CONNECTIONS = {
    "static keys": {"conn_type": "aws", "login": "AKIACONNECTION", "password": "conn-secret-key"},
    "assumed role": {
        "conn_type": "aws",
        "login": "AKIASOURCE",
        "password": "source-secret-key",
        "extra": {"role_arn": ROLE},
    },
    "no keys": {"conn_type": "aws", "extra": {"region_name": "us-east-1"}},
}


def terraform_sees(aws, monkeypatch, tmp_path, connection: dict) -> tuple[dict, str]:
    """The environment `terraform` runs with for a deployment whose campaign uses
    `connection`, and what the deployment's terraform.log holds."""
    out = tmp_path / "env.json"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "terraform"
    exe.write_text(RECORDER.format(python=sys.executable, out=str(out)))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("CACHEBENCH_TERRAFORM", "cli")
    shared = tmp_path / "credentials"  # the worker's own profile
    shared.write_text("[worker]\naws_access_key_id = AKIAWORKER\naws_secret_access_key = w\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    monkeypatch.setenv("AWS_PROFILE", "worker")
    monkeypatch.setenv("AIRFLOW_CONN_CACHEBENCH_BENCH", json.dumps(connection))
    settings = {**aws.settings, "aws_conn_id": "cachebench_bench"}
    monkeypatch.setenv("AIRFLOW_VAR_CACHEBENCH_AWS", json.dumps(settings))

    plan = steps.render_tfvars(steps.plan(campaign("creds", generators=1), "r-creds")[0])
    ddir = steps.deployment_dir(plan)
    steps._terraform(plan, ddir).run("version")
    return json.loads(out.read_text()), (ddir.terraform / "terraform.log").read_text()


def test_terraform_gets_the_connections_static_keys(aws, results_dir, monkeypatch, tmp_path):
    env, log = terraform_sees(aws, monkeypatch, tmp_path, CONNECTIONS["static keys"])
    assert env["AWS_ACCESS_KEY_ID"] == "AKIACONNECTION"
    assert env["AWS_SECRET_ACCESS_KEY"] == "conn-secret-key"
    # the worker's profile and session token would win over (or spoil) these keys
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["AWS_REGION"] == aws.settings["region"]
    assert "conn-secret-key" not in log and "AKIACONNECTION" not in log


@pytest.mark.parametrize("kind", ["assumed role", "no keys"])
def test_without_static_keys_terraform_keeps_its_default_chain(
    kind, aws, results_dir, monkeypatch, tmp_path, caplog
):
    """No frozen keys: no assumed role's (they expire in an hour), nothing at all for a
    connection without keys; the worker's own chain is left as it is."""
    first = len(moto_gaps.CALLS)
    env, _ = terraform_sees(aws, monkeypatch, tmp_path, CONNECTIONS[kind])
    assert env["AWS_PROFILE"] == "worker"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"  # the worker's environment (aws fixture)
    assert env["AWS_SESSION_TOKEN"] == "testing"
    assert env["AWS_REGION"] == aws.settings["region"]
    assert not [k for k, v in env.items() if k.startswith("AWS_") and "AKIASOURCE" in v]
    assert ("sts", "assume_role") not in {(s, a) for s, a, _ in moto_gaps.CALLS[first:]}
    if kind == "assumed role":
        assert any(ROLE in r.getMessage() for r in caplog.records), "the choice is logged"
