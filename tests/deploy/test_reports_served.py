"""The reports the api-server serves (cachebench.serve), asked for by an outsider, by a
signed-in user who may read no DAG, and by a reader, on the real deployment's api-server.

A one-deployment campaign runs through the REST API. While its servers run, the password
is read from the deployment's private runtime folder (the runtime_dir its tfvars name)
and every file under the results folder is searched for it, byte for byte; then the
reports are asked for: nothing without a token (401), nothing for a user without access
(403), for the admin the report and a figure (200) and never a deployment's files, a
Terraform state, airflow.log or a path trick (404). Path tricks go through http.client,
which sends the request line as written (httpx would drop `..` segments itself).
"""

from __future__ import annotations

import http.client
import json
import time
from pathlib import Path

import httpx
import pytest
from form_params import ADHOC, one_deployment
from leftovers import assert_nothing_left

from cachebench.workspace import run_slug

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

DEPLOYMENT = "redis-7.0-single-local.micro"
OUTSIDE = "a file outside the results folder"


def files_holding(root: Path, needle: bytes) -> list[str]:
    return [
        str(p)
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink() and needle in p.read_bytes()
    ]


def password_while_up(run: Path, timeout: float = 240) -> tuple[str, Path]:
    """The servers' password, read from the private folder while they run."""
    tfvars = run / "deployments" / DEPLOYMENT / "terraform" / "terraform.tfvars.json"
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if tfvars.is_file():
            auth = Path(json.loads(tfvars.read_text())["runtime_dir"]) / "auth"
            if auth.is_file() and (secret := auth.read_text().strip()):
                return secret, auth
        time.sleep(0.1)
    raise AssertionError(f"no password file seen in {timeout:.0f} s")


def raw_get(dep, target: str, token: str) -> tuple[int, bytes]:
    """GET with the request target exactly as written."""
    conn = http.client.HTTPConnection("127.0.0.1", dep.api_port, timeout=30)
    try:
        conn.request("GET", target, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_reports_are_served_to_readers_only_and_only_what_they_need(deployment) -> None:
    dep = deployment
    dep.wait_dag(ADHOC)
    conf = one_deployment(dep, "served", warmup=1, duration=4, repetitions=1)
    r = dep.trigger(ADHOC, conf)
    assert r.status_code == 200, r.text
    run_id = r.json()["dag_run_id"]
    run = dep.results / "served" / run_slug(run_id)
    base = f"/cachebench/reports/served/{run.name}"
    admin = {"Authorization": f"Bearer {dep.token}"}
    try:
        # -- while the servers run: no secret under the results folder, none served --------
        secret, auth = password_while_up(run)
        assert not auth.is_relative_to(dep.results)
        hits = files_holding(dep.results, secret.encode())
        files = [p for p in run.rglob("*") if p.is_file()]
        assert auth.is_file(), "the servers were gone before the search ended"
        assert hits == [] and len(files) > 5, (hits, len(files))
        ddir = f"{base}/deployments/{DEPLOYMENT}"
        for rel in ("terraform/terraform.tfvars.json", "server/registry.json", "server/auth"):
            got = httpx.get(f"{dep.url}{ddir}/{rel}", headers=admin, timeout=30)
            assert got.status_code == 404 and secret not in got.text, rel

        state, _ = dep.wait_run(ADHOC, run_id, timeout=400)
        assert state == "success", dep.log_tail("worker")
        assert not auth.parent.exists(), "destroy left the password's folder"

        # -- after the run: who may read what ------------------------------------------------
        report = f"{dep.url}{base}/report.html"
        figure = f"{dep.url}{base}/points/{DEPLOYMENT}-short/rep1/figures/dashboard.png"
        assert httpx.get(report, timeout=30).status_code == 401  # no identity
        outsider = dep.token_of("outsider")  # signed in, may read no DAG (conftest.py)
        as_bearer = httpx.get(report, headers={"Authorization": f"Bearer {outsider}"}, timeout=30)
        as_cookie = httpx.get(report, cookies={"_token": outsider}, timeout=30)  # the UI's
        for got in (as_bearer, as_cookie):
            assert got.status_code == 403 and "Benchmark report" not in got.text
        got = httpx.get(report, headers=admin, timeout=30)
        assert got.status_code == 200 and got.content == (run / "report.html").read_bytes()
        assert got.headers["content-type"].startswith("text/html")
        got = httpx.get(figure, cookies={"_token": dep.token}, timeout=30)
        assert got.status_code == 200 and got.content[:8] == b"\x89PNG\r\n\x1a\n"

        # -- never served, whoever asks: a deployment's folder, Terraform state, logs ------
        (run / "airflow.log").write_text("the CLI's Airflow log")
        (dep.base / "outside.txt").write_text(OUTSIDE)
        (run / "figures").mkdir(exist_ok=True)
        (run / "figures" / "leak.png").symlink_to(dep.base / "outside.txt")
        never = [
            f"deployments/{DEPLOYMENT}/",
            f"deployments/{DEPLOYMENT}/deployment.json",
            f"deployments/{DEPLOYMENT}/terraform/terraform.tfstate",
            f"deployments/{DEPLOYMENT}/terraform/terraform.log",
            f"deployments/{DEPLOYMENT}/server/agent.log",
            "airflow.log",
            "campaign.json",
            "figures/leak.png",  # a symlink inside the results folder to a file outside it
        ]
        assert (run / f"deployments/{DEPLOYMENT}/terraform/terraform.tfstate").is_file()
        for rel in never:
            got = httpx.get(f"{dep.url}{base}/{rel}", headers=admin, timeout=30)
            assert got.status_code == 404 and OUTSIDE not in got.text, rel
        # -- path tricks, sent raw: .., %2e%2e, an absolute path, a NUL byte -----------------
        tricks = [
            f"{base}/../../../outside.txt",
            f"{base}/figures/../../../../outside.txt",
            f"{base}/%2e%2e/%2e%2e/%2e%2e/outside.txt",
            f"{base}/%2E%2E/{run.name}/report.html",
            "/cachebench/reports/../../outside.txt",
            f"/cachebench/reports/{dep.base}/outside.txt",
            "/cachebench/reports//etc/passwd",
            f"{base}/report.html%00.png",
            f"{base}/figures/leak.png",
        ]
        for target in tricks:
            status, body = raw_get(dep, target, dep.token)
            assert status == 404 and OUTSIDE.encode() not in body, (target, status, body[:200])
    finally:
        assert_nothing_left(run)
