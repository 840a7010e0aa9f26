"""Terraform acts with the Airflow connection's credentials, as the DAG's boto3 calls do.

A `terraform` executable stand-in on PATH records the environment it is given
(names and values go to a file in the test's tmp dir, never to a log).
"""

from __future__ import annotations

import json
import os
import sys

from aws_fakes import campaign

from cachebench import steps

RECORDER = """#!{python}
import json, os, sys
with open({out!r}, "w") as fh:
    json.dump(dict(os.environ), fh)
print("Terraform v1.10.0 (stand-in)")
"""


def test_terraform_gets_the_connections_credentials(
    aws, results_dir, monkeypatch, tmp_path
) -> None:
    out = tmp_path / "env.json"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "terraform"
    exe.write_text(RECORDER.format(python=sys.executable, out=str(out)))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("CACHEBENCH_TERRAFORM", "cli")
    shared = tmp_path / "credentials"  # the worker's own profile must not win over the connection
    shared.write_text("[someone-else]\naws_access_key_id = AKIAWORKER\naws_secret_access_key = w\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    monkeypatch.setenv("AWS_PROFILE", "someone-else")
    conn = {"conn_type": "aws", "login": "AKIACONNECTION", "password": "conn-secret-key"}
    monkeypatch.setenv("AIRFLOW_CONN_CACHEBENCH_BENCH", json.dumps(conn))
    settings = {**aws.settings, "aws_conn_id": "cachebench_bench"}
    monkeypatch.setenv("AIRFLOW_VAR_CACHEBENCH_AWS", json.dumps(settings))

    plan = steps.render_tfvars(steps.plan(campaign("creds", generators=1), "r-creds")[0])
    ddir = steps.deployment_dir(plan)
    steps._terraform(plan, ddir).run("version")

    env = json.loads(out.read_text())
    assert env["AWS_ACCESS_KEY_ID"] == "AKIACONNECTION"
    assert env["AWS_SECRET_ACCESS_KEY"] == "conn-secret-key"
    assert "AWS_PROFILE" not in env and "AWS_SESSION_TOKEN" not in env
    assert env["AWS_REGION"] == aws.settings["region"]
    log = (ddir.terraform / "terraform.log").read_text()
    assert "conn-secret-key" not in log and "AKIACONNECTION" not in log
