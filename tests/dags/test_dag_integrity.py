"""DAG integrity: every DAG file imports cleanly, fast, with tags, retries and docs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from airflow.dag_processing.dagbag import DagBag

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag: DagBag) -> None:
    assert dagbag.import_errors == {}
    assert "cachebench_adhoc" in dagbag.dags
    assert "cachebench__redis-vs-valkey-local" in dagbag.dags


CAMPAIGN_FILES = sorted((ROOT / "include" / "campaigns").glob("*.yaml"))
# cachebench__<the file's name field> (README: Running campaigns)
CAMPAIGN_DAG_IDS = {f"cachebench__{yaml.safe_load(p.read_text())['name']}" for p in CAMPAIGN_FILES}


def test_one_dag_per_campaign_file(dagbag: DagBag) -> None:
    assert CAMPAIGN_FILES, "no campaign file to check"
    campaign_dags = {d for d in dagbag.dags if d.startswith("cachebench__")}
    assert campaign_dags == CAMPAIGN_DAG_IDS


CAMPAIGN_DAGS = (
    "cachebench_adhoc",
    "cachebench_adhoc_aws",
    "cachebench__redis-vs-valkey-local",
    "cachebench__redis-vs-valkey-aws",
)


def test_tags_and_docs(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert "cachebench" in dag.tags, dag_id
        assert dag.doc_md and dag.doc_md.strip(), dag_id
    assert dagbag.dags["cachebench_reaper"].schedule is not None


def test_retry_policy(dagbag: DagBag) -> None:
    """Each task retries as its work allows: plan and report decide once; measure retries
    only to reattach after a lost worker (failed runs end it with AirflowFailException,
    which is never retried); apply and destroy try hard."""
    assert dagbag.dags["cachebench_reaper"].get_task("reap").retries >= 2
    for dag_id in CAMPAIGN_DAGS:
        retries = {t.task_id: t.retries for t in dagbag.dags[dag_id].tasks}
        assert retries == {
            "plan": 0,
            "deployment.render_tfvars": 1,
            "deployment.apply": 2,
            "deployment.measure": 1,
            "deployment.destroy": 3,
            "report": 0,
        }, dag_id


def test_shape_and_teardown(dagbag: DagBag) -> None:
    from cachebench.operators.measure import MeasureOperator

    for dag_id in CAMPAIGN_DAGS:  # one shape for both targets
        dag = dagbag.dags[dag_id]
        ids = {t.task_id for t in dag.tasks}
        assert ids == {
            "plan",
            "deployment.render_tfvars",
            "deployment.apply",
            "deployment.measure",
            "deployment.destroy",
            "report",
        }, dag_id
        measure = dag.get_task("deployment.measure")
        assert isinstance(measure, MeasureOperator)
        assert measure.upstream_task_ids == {"deployment.apply"}
        destroy = dag.get_task("deployment.destroy")
        assert destroy.is_teardown and destroy.on_failure_fail_dagrun
        assert {t.task_id for t in destroy.upstream_list if t.is_setup} == {
            "deployment.render_tfvars",
            "deployment.apply",
        }
        for tid in ids - {"plan", "report"}:
            assert dag.get_task(tid).map_index_template == "{{ deployment_label }}", tid
        report = dag.get_task("report")
        # a teardown of plan: runs after every destroy even on a run marked failed, and fails it
        assert report.is_teardown and report.on_failure_fail_dagrun
        assert {t.task_id for t in report.upstream_list if t.is_setup} == {"plan"}
        assert destroy.task_id in report.upstream_task_ids
    local, aws = dagbag.dags["cachebench_adhoc"], dagbag.dags["cachebench_adhoc_aws"]
    assert local.max_active_tasks == 1  # local: one task at a time
    # ... and one measure at a time, deferred ones counted (max_active_tasks counts none)
    assert local.get_task("deployment.measure").max_active_tis_per_dagrun == 1
    assert aws.get_task("deployment.measure").max_active_tis_per_dagrun is None


HEAVY = ("pandas", "boto3", "matplotlib", "pyarrow", "scipy", "cachebench.report")
# the DAGs each file defines, as the README names them (campaigns.py: one per campaign file)
FILE_DAGS = {
    "adhoc.py": {"cachebench_adhoc"},
    "adhoc_aws.py": {"cachebench_adhoc_aws"},
    "campaigns.py": CAMPAIGN_DAG_IDS,
    "reaper.py": {"cachebench_reaper"},
}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_each_dag_file_parses_alone_without_heavy_imports(path: Path) -> None:
    """Parse each file in a fresh interpreter: it defines its DAGs without import errors and
    without importing what makes parsing slow (how long it takes is bench figure 4's)."""
    code = (
        "import sys; sys.path.insert(0, 'plugins'); import airflow.sdk;"
        "from airflow.dag_processing.dagbag import DagBag;"
        f"b = DagBag(dag_folder={str(path)!r}); print('PARSED', len(b.import_errors),"
        f" ','.join(sorted(b.dags)),"
        f" *[m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}])"
    )
    stdout = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    out = next(line for line in stdout.splitlines() if line.startswith("PARSED ")).split()
    errors, dags, heavy = int(out[1]), set(out[2].split(",")), out[3:]
    assert errors == 0
    assert dags == FILE_DAGS[path.name]
    assert heavy == [], f"{path.name} imports {heavy} when parsed"


def test_every_dag_file_is_checked() -> None:
    assert {p.name for p in DAG_FILES} == set(FILE_DAGS)


def test_parsing_imports_no_pandas_nor_boto3() -> None:
    """No pandas nor boto3 at parse time, for any DAG file (aws ones included)."""
    code = (
        "import sys; sys.path.insert(0, 'plugins');"
        "from airflow.dag_processing.dagbag import DagBag; DagBag(dag_folder='dags');"
        "print('pandas' in sys.modules, 'boto3' in sys.modules, 'matplotlib' in sys.modules)"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[-3:] == ["False", "False", "False"], (
        f"parse imported pandas/boto3/matplotlib ({time.perf_counter() - started:.1f}s)"
    )
