"""`python -m cachebench run` as a newcomer meets it: short progress lines without a
terminal, Airflow's logs in the run's folder, and a clean Ctrl-C.

The command runs as a real child process; the test reads its output and the run's
folder, and sends its signals (the tests' own psutil view checks nothing is left).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from cli_runs import start_run, tiny_campaign
from leftovers import assert_nothing_left

pytestmark = pytest.mark.e2e

# a miniature: its namespace and cgroups must go too
CAMPAIGN = tiny_campaign("cli", repetitions=3, duration_seconds=20) | {
    "node_types": ["local.t4g.micro"]
}


def test_ctrl_c_stops_the_campaign_destroys_everything_and_reports_it(
    tmp_path: Path, results_dir: Path
) -> None:
    proc = start_run(CAMPAIGN, tmp_path)  # results in tmp_path/results: results_dir
    try:
        deadline = time.monotonic() + 300
        loading = []
        while not loading and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            loading = list(results_dir.glob("cli/*/deployments/*/load/*/rep1/handles.json"))
        assert loading, "the first run's measured load never started"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)  # a second Ctrl-C must not skip the destroy
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run_dir,) = results_dir.glob("cli/*/")
    assert proc.returncode == 130, out
    lines = out.splitlines()
    assert "SIGINT: stopping the campaign" in out and "still stopping" in out
    assert any(line.startswith("[") and "runs 0/3 done" in line for line in lines), out
    assert "interrupted" in lines[-4] or "interrupted" in out.split("\ncampaign cli:")[-1]
    # the decision's headlines, read from the report's decisions.json
    assert "  Nothing finished: No point finished, so there is nothing to compare." in lines
    # short: a line per change, none of Airflow's logs, which are in the run's folder
    assert len(lines) < 40, out
    assert "[info" not in out and "TaskInstance" not in out
    log = (run_dir / "airflow.log").read_text()
    assert "DAG TEST" in log and "deployment.measure" in log
    report = (run_dir / "report.md").read_text()
    assert "## INTERRUPTED" in report and "SIGINT" in report
    # the load under way stopped well before its 20 s window ended, the runs after it skipped
    rdir = run_dir / "points" / "redis-7.0-single-local.t4g.micro-w"
    assert not (rdir / "rep1" / "load.json").exists()
    assert "interrupted by the user" in (rdir / "rep1" / "error.txt").read_text()
    assert not (rdir / "rep2").exists() and not (rdir / "rep3").exists()
    assert "skipped: the campaign run was interrupted" in log
    assert_nothing_left(run_dir)
