"""The report task's extra link and the results folder it points to, served read-only."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from cachebench.operators.report import ReportLink, ReportOperator, report_asset


def test_the_served_results_folder_gives_a_report_and_nothing_outside_it(
    results_dir: Path, tmp_path: Path
) -> None:
    report = results_dir / "c" / "manual-1" / "report.html"
    report.parent.mkdir(parents=True)
    report.write_text("<html>the report</html>")
    (results_dir / "c" / "manual-1" / "figures").mkdir()
    (results_dir / "c" / "manual-1" / "figures" / "throughput.png").write_bytes(b"\x89PNG")
    (tmp_path / "secret.txt").write_text("outside")
    from cachebench.serve import reports_app

    client = TestClient(reports_app())
    got = client.get("/reports/c/manual-1/report.html")
    assert got.status_code == 200 and got.text == "<html>the report</html>"
    assert client.get("/reports/c/manual-1/figures/throughput.png").content == b"\x89PNG"
    assert client.get("/reports/c/manual-2/report.html").status_code == 404
    for escape in ("/reports/../secret.txt", "/reports/%2e%2e/secret.txt"):
        got = client.get(escape)
        assert got.status_code == 404 and "outside" not in got.text, escape


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
