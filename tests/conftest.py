"""Test set-up: the package on sys.path (as Airflow does) and a private Airflow home.

Airflow reads its configuration from the environment at import time, so the
variables are set here, before any test module imports it.
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# CI=true: a skip for a missing tool fails the run; the skips are listed (skips_in_ci.py)
from faults import faults  # noqa: F401 (the fault-injection fixture)
from skips_in_ci import (  # noqa: F401 (hooks pytest finds in this module)
    pytest_make_collect_report,
    pytest_runtest_makereport,
    pytest_terminal_summary,
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))

_HOME = Path(tempfile.mkdtemp(prefix="cachebench-airflow-"))
os.environ.update(
    AIRFLOW_HOME=str(_HOME),
    AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
    AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    CACHEBENCH_RESULTS=str(_HOME / "results"),
    # the local servers' secrets (cachebench.targets.local.runtime), outside every results folder
    CACHEBENCH_RUNTIME=str(_HOME / "runtime"),
    # The session's own machine-wide claims (ports, the load lock: local/machine.py): its
    # campaigns meet each other there, not another test session's or a user's campaign.
    CACHEBENCH_MACHINE_DIR=str(_HOME / "machine"),
    # Prices from include/prices.csv: no test asks the AWS Price List API by accident
    # (tests/unit/test_pricing.py gives that path its own stubbed client).
    CACHEBENCH_PRICES="table",
)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated sqlite metadata DB, for tests that run DAGs."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    return _HOME


@pytest.fixture
def results_dir(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "results"
    monkeypatch.setenv("CACHEBENCH_RESULTS", str(out))
    return out
