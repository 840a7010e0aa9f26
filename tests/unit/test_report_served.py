"""The report task's extra link and the reports it opens: served only to a user who may read
the campaign's DAG, and only what a reader needs.

The app is cachebench.serve's, called through Starlette's TestClient with Airflow's real
identity (a JWT the auth manager signs, as a bearer token or as the UI's `_token` cookie).
The auth manager is SimpleAuthManager with one change, in this file: a user may read only
the DAGs READS names for it, so the test sees which DAG the app asks about. The real
api-server and SimpleAuthManager itself are tests/deploy/test_reports_served.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from fastapi.testclient import TestClient

from cachebench import steps
from cachebench.campaign import load_campaign_file
from cachebench.operators.report import ReportLink, ReportOperator, report_asset
from cachebench.workspace import RunDir

ROOT = Path(__file__).resolve().parents[2]
LOCAL = load_campaign_file(ROOT / "include" / "campaigns" / "redis-vs-valkey-local.yaml")
DAG = "cachebench__served"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"
READS = {"reader": {DAG}, "other": {"cachebench__other"}}
ASKED: list[tuple[str, str | None, object]] = []  # (method, dag id, access entity)


class ReadsListedDags(SimpleAuthManager):
    """SimpleAuthManager whose users may read (GET) the DAGs READS lists for them only."""

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        ASKED.append((method, details.id if details else None, access_entity))
        return method == "GET" and details is not None and details.id in READS[user.username]


@pytest.fixture
def client(airflow_db, monkeypatch) -> Iterator[TestClient]:
    from airflow.api_fastapi.app import create_auth_manager, purge_cached_app

    monkeypatch.setenv("AIRFLOW__CORE__AUTH_MANAGER", f"{__name__}.ReadsListedDags")
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "unit-test-jwt-secret-0123456789abcdef")
    purge_cached_app()
    create_auth_manager()
    from cachebench.serve import reports_app

    ASKED.clear()
    try:
        yield TestClient(reports_app())
    finally:
        purge_cached_app()


def token(username: str) -> str:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().generate_jwt(SimpleAuthManagerUser(username=username, role=None))


def bearer(username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(username)}"}


@pytest.fixture
def run(results_dir: Path, tmp_path: Path) -> Path:
    """A planned run of DAG with the files a finished run has, a secret outside the results
    folder, and symlinks inside the run pointing at it (and at a file inside)."""
    steps.plan({**LOCAL, "name": "served"}, RUN_ID, "local", dag_id=DAG)
    run = RunDir.for_run("served", RUN_ID).path
    files = {
        "report.html": "<html>the report</html>",
        "report.md": "# the report",
        "summary.csv": "point,ops\n",
        "runs.csv": "run,ops\n",
        "decisions.json": "{}",
        "blog/engine.md": "![Redis vs Valkey](engine.png)",
        "blog/engine.png": "PNG",
        "blog/engine.pdf": "PDF",
        "figures/throughput.png": "PNG",
        "figures/throughput.pdf": "PDF",
        "figures/plotly.min.js": "plotly",
        "points/p1/rep1/metrics.parquet": "PAR1",
        "points/p1/rep1/metrics.csv": "timestamp\n",
        "points/p1/rep1/figures/dashboard.png": "PNG",
        "points/p1/rep1/load.json": "{}",
        "airflow.log": "log",
        "prices.json": "{}",
        "deployments/d1/deployment.json": "{}",
        "deployments/d1/terraform/terraform.tfstate": "{}",
        "deployments/d1/terraform/terraform.tfvars.json": "{}",
        "deployments/d1/server/registry.json": "{}",
        "deployments/d1/load/p1/rep1/record.json": "{}",
    }
    for rel, text in files.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(text)
    (tmp_path / "secret.txt").write_text("outside")
    (run / "figures" / "outside.png").symlink_to(tmp_path / "secret.txt")
    (run / "figures" / "inside.png").symlink_to(run / "figures" / "throughput.png")
    (run / "points" / "p2").symlink_to(tmp_path)
    (tmp_path / "rep1" / "figures").mkdir(parents=True)
    (tmp_path / "rep1" / "figures" / "x.png").write_text("outside")
    return run


SERVED = [
    "report.html",
    "report.md",
    "summary.csv",
    "runs.csv",
    "decisions.json",
    "blog/engine.md",
    "blog/engine.png",
    "blog/engine.pdf",
    "figures/throughput.png",
    "figures/throughput.pdf",
    "figures/plotly.min.js",
    "points/p1/rep1/metrics.parquet",
    "points/p1/rep1/metrics.csv",
    "points/p1/rep1/figures/dashboard.png",
]
NEVER = [
    "campaign.json",
    "airflow.log",
    "prices.json",
    "blog/",
    "points/p1/rep1/load.json",
    "deployments/d1/deployment.json",
    "deployments/d1/terraform/terraform.tfstate",
    "deployments/d1/terraform/terraform.tfvars.json",
    "deployments/d1/server/registry.json",
    "deployments/d1/load/p1/rep1/record.json",
    "deployments/d1/",
    "",
]
# path tricks as a client sends them: httpx (under TestClient) drops literal "." and ".."
# segments itself, so they go percent-encoded, which the server decodes to the same path
# (tests/deploy/test_reports_served.py sends them raw to the real api-server)
TRICKS = [
    "%2e%2e/secret.txt",
    "served/%2e%2e/%2e%2e/secret.txt",
    "served/{run}/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "served/{run}/figures/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "served/{run}/%2E%2E/{run}/report.html",
    "served/{run}/%2e/report.html",
    "served/{run}//report.html",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "served/{run}/figures/outside.png",
    "served/{run}/figures/inside.png",  # a symlink, even to a served file, is refused
    "served/{run}/points/p2/rep1/figures/x.png",
    "served/{run}/report.html%00.png",
    "served/{run}/figures/throughput.png%00",
    "served%5c{run}%5creport.html",
]


def test_a_reader_of_the_dag_gets_what_a_reader_needs_and_nothing_else(client, run) -> None:
    base = f"/reports/served/{run.name}"
    for rel in SERVED:
        got = client.get(f"{base}/{rel}", headers=bearer("reader"))
        assert got.status_code == 200, rel
        assert got.content == (run / rel).read_bytes(), rel
        assert got.headers["cache-control"] == "private, no-cache"
    for rel in NEVER:
        got = client.get(f"{base}/{rel}", headers=bearer("reader"))
        assert got.status_code == 404, rel
    missing = client.get("/reports/served/manual-2/report.html", headers=bearer("reader"))
    assert missing.status_code == 404
    for trick in TRICKS:
        got = client.get(f"/reports/{trick.format(run=run.name)}", headers=bearer("reader"))
        assert got.status_code == 404, trick
        assert "outside" not in got.text, trick
    # the access asked about: reading (GET) the DAG that ran the campaign
    assert set(ASKED) == {("GET", DAG, None)}


def test_no_identity_is_401_another_dags_reader_403(client, run) -> None:
    report = f"/reports/served/{run.name}/report.html"
    assert client.get(report).status_code == 401
    assert client.get(report, headers={"Authorization": "Bearer"}).status_code == 401
    # Airflow's own answer to a token it did not sign, as the REST API gives it
    assert client.get(report, headers={"Authorization": "Bearer not.a.jwt"}).status_code == 403
    for path in (report, *(f"/reports/{t.format(run=run.name)}" for t in TRICKS)):
        got = client.get(path)
        assert got.status_code == 401 and "outside" not in got.text, path
    other = client.get(report, headers=bearer("other"))
    assert other.status_code == 403 and "the report" not in other.text
    assert ASKED == [("GET", DAG, None)]
    # the UI's session: its `_token` cookie, what a click on the extra link sends
    client.cookies.set("_token", token("reader"))
    assert client.get(report).text == "<html>the report</html>"


def test_a_run_planned_outside_a_dag_is_served_to_no_one(client, results_dir) -> None:
    steps.plan({**LOCAL, "name": "nodag"}, RUN_ID, "local")
    run = RunDir.for_run("nodag", RUN_ID).path
    (run / "report.html").write_text("<html>r</html>")
    got = client.get(f"/reports/nodag/{run.name}/report.html", headers=bearer("reader"))
    assert got.status_code == 403


def test_the_link_points_at_the_runs_report_under_the_mount() -> None:
    op = ReportOperator(task_id="report", campaign="c")
    assert ReportLink().get_link(op, ti_key=None) == ""  # before it ran: no report yet
    op.report_path = "c/manual-1/report.html"
    assert (
        ReportLink()
        .get_link(op, ti_key=None)
        .endswith("/cachebench/reports/c/manual-1/report.html")
    )
    assert ReportLink().name == "Campaign report"
    assert report_asset("cachebench__x").name == "cachebench__x.report"


def test_the_plugin_registers_the_link_and_the_served_folder() -> None:
    from airflow import plugins_manager

    links = {type(link).__name__ for link in plugins_manager.get_operator_extra_links()}
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert "ReportLink" in links
    assert any(a.get("url_prefix") == "/cachebench" for a in apps)
