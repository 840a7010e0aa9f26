"""Test set-up: the package on sys.path (as Airflow does) and a private Airflow home.

Airflow reads its configuration from the environment at import time, so the
variables are set here, before any test module imports it.
"""

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
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
    # Under pytest-xdist the workers share the controller's (they inherit its environment):
    # a worker's loads wait for the other's, and their deployments get different ports.
    CACHEBENCH_MACHINE_DIR=(
        os.environ["CACHEBENCH_MACHINE_DIR"]
        if os.environ.get("PYTEST_XDIST_WORKER") and os.environ.get("CACHEBENCH_MACHINE_DIR")
        else str(_HOME / "machine")
    ),
    # Each worker's local deployments take their ports from a range of its own (1000
    # apart, below the default 20000): a block one worker's destroy just gave back is not
    # another's new deployment's before the first has checked that its ports are free.
    CACHEBENCH_PORT_FIRST=str(
        int(os.environ.get("CACHEBENCH_PORT_FIRST", "20000"))
        - 1000 * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    ),
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
def machine_load(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hold the machine-wide load lock for a test that loads the machine itself (a real
    load tool against a real server), as each run of a campaign holds it for its load: a
    campaign of another worker waits for this test's load, and this test for its."""
    from cachebench.targets.local import machine

    fd = machine.take_load_lock(machine.load_lock(), f"test {request.node.nodeid}")
    try:
        yield
    finally:
        os.close(fd)  # the flock goes with it


@pytest.fixture
def results_dir(tmp_path, monkeypatch) -> Path:
    out = tmp_path / "results"
    monkeypatch.setenv("CACHEBENCH_RESULTS", str(out))
    return out


# Parallel runs (scripts/test.sh: pytest -n 4 --dist loadgroup). A group runs on one
# worker, in collection order. Tests that put real load on the machine (servers measured
# under load, campaigns, miniatures) are two groups: at most two of them run at once, and
# the machine-wide load lock keeps their loads one at a time (a campaign's runs take it,
# tests that load the machine themselves take it with `machine_load`), so one group's
# provisioning and reports overlap the other's loads. The real Airflow deployment's tests
# are another group (one deployment per worker session, mostly waiting on Airflow: their
# loads take the deployment's own load lock). Everything else is CPU-light enough to go to
# whichever worker is free.
GROUPS = {
    "tests/e2e/test_miniature_truth.py": "load_1",
    "tests/e2e/test_reaper.py": "load_1",  # it reaps miniatures: never beside one being made
    "tests/e2e/test_history_runs.py": "load_1",
    "tests/e2e/test_report_browser.py": "load_1",
    "tests/e2e/test_cli.py": "load_1",
    "tests/e2e/test_saturation.py": "load_1",
    "tests/unit/test_loadgen_run.py": "load_1",
    "tests/unit/test_loadgen_chunked.py": "load_1",
    "tests/e2e/": "load_2",
    "tests/unit/test_local_load_serial.py": "load_2",
    "tests/unit/test_local_servers.py": "load_2",
    "tests/unit/test_local_agent.py": "load_2",
    "tests/deploy/": "deploy",
    # the real aws module applied against moto: the provider sleeps 30 s before it first
    # looks at a replication group it created or deleted, so these mostly wait, like deploy
    "tests/aws/test_aws_campaign_dag.py": "aws_apply",
    "tests/aws/test_aws_module_apply.py": "aws_apply",
    # and the module's static checks, short, last: xdist sends a worker its next unit when
    # two of its tests are left, which were two applies here (minutes: the unit it got,
    # test_report.py, waited behind them and ended the run 2 minutes after the others)
    "tests/aws/test_aws_module_static.py": "aws_apply",
    # modules with an expensive module-scoped fixture: built once, on one worker
    "tests/unit/test_specs.py": "test_specs",
    "tests/unit/test_report.py": "test_report",
    "tests/unit/test_hostile_input.py": "test_hostile_input",
    "tests/dags/test_dag_integrity.py": "test_dag_integrity",
}


def xdist_group_of(nodeid: str) -> str | None:
    path = nodeid.split("::", 1)[0]
    for prefix, group in GROUPS.items():
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return group
    return None


# The long groups start at once, one per worker.
FIRST = ("load_1", "load_2", "deploy", "aws_apply")
# Then the longest of the rest, longest first (10 s to 90 s a unit here), and the many
# short tests last, so that the workers end together: in collection order test_report.py
# came last and its worker ran on alone for up to a minute after the others had finished.
EARLY = (
    "tests/unit/test_report.py",
    "tests/aws/test_aws_load.py",
    "tests/unit/test_history.py",
    "tests/aws/test_aws_container_script.py",
    "tests/aws/test_aws_module_plan.py",
    "tests/dags/test_dag_integrity.py",
    "tests/unit/test_hostile_input.py",
)


def _rank(nodeid: str) -> int:
    group, path = xdist_group_of(nodeid), nodeid.split("::", 1)[0]
    if group in FIRST:
        return FIRST.index(group)
    return len(FIRST) + (EARLY.index(path) if path in EARLY else len(EARLY))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker orders its collection alike
        items.sort(key=lambda item: _rank(item.nodeid))


@pytest.hookimpl(optionalhook=True)  # pytest -p no:xdist has no such hook
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """--dist loadgroup, its groups taken from GROUPS by path. xdist's own loadgroup reads
    `xdist_group` marks by renaming the items' node ids, which pytest 9.2 no longer lets
    it do (pytest-xdist issue 1386): with marks alone every test went to either worker."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class PathGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or super()._split_scope(nodeid)

    config.option.loadscopereorder = False  # the work goes out in collection order
    return PathGroupScheduling(config, log)
