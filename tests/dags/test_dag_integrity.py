"""DAG integrity: every DAG file imports cleanly, fast, with tags, retries and docs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
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


def test_one_dag_per_campaign_file(dagbag: DagBag) -> None:
    campaigns = list((ROOT / "include" / "campaigns").glob("*.yaml"))
    campaign_dags = [d for d in dagbag.dags if d.startswith("cachebench__")]
    assert len(campaign_dags) == len(campaigns)


def test_tags_docs_and_retries(dagbag: DagBag) -> None:
    for dag_id, dag in dagbag.dags.items():
        assert "cachebench" in dag.tags, dag_id
        assert dag.doc_md, dag_id
        for t in dag.tasks:
            assert t.retries is not None, f"{dag_id}.{t.task_id} has no retry policy"
        if dag_id == "cachebench_reaper":
            assert dag.get_task("reap").retries >= 2 and dag.schedule is not None
            continue
        retries = {t.task_id: t.retries for t in dag.tasks}
        # a retried load would measure twice (aws load tasks only ever reattach on retry);
        # destroy must try hard
        load = "point.prepare_load" if "point.prepare_load" in retries else "point.run_load"
        assert retries[load] == 0
        assert retries["point.destroy"] >= 2


def test_shape_and_teardown(dagbag: DagBag) -> None:
    dag = dagbag.dags["cachebench_adhoc"]
    ids = {t.task_id for t in dag.tasks}
    assert ids == {
        "plan",
        "point.render_tfvars",
        "point.apply",
        "point.run_load",
        "point.watch",
        "point.collect",
        "point.export",
        "point.destroy",
        "report",
    }
    destroy = dag.get_task("point.destroy")
    assert destroy.is_teardown
    assert {t.task_id for t in destroy.upstream_list if t.is_setup} == {
        "point.render_tfvars",
        "point.apply",
    }
    for tid in ids - {"plan", "report"}:
        assert dag.get_task(tid).map_index_template, tid
    report = dag.get_task("report")
    # a teardown of plan: runs after every destroy even on a run marked failed, and fails it
    assert report.is_teardown and report.on_failure_fail_dagrun
    assert {t.task_id for t in report.upstream_list if t.is_setup} == {"plan"}
    assert destroy.task_id in report.upstream_task_ids


def test_aws_shape_uses_the_providers_ecs_operator(dagbag: DagBag) -> None:
    from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator

    for dag_id in ("cachebench_adhoc_aws", "cachebench__redis-vs-valkey-aws"):
        dag = dagbag.dags[dag_id]
        loads = [t for t in dag.tasks if t.task_id.startswith("point.load_g")]
        assert len(loads) == 5  # the campaign file's load_generators
        for t in loads:
            assert isinstance(t, EcsRunTaskOperator)
            assert t.deferrable and t.reattach
            assert dag.get_task("point.prepare_load").task_id in t.upstream_task_ids
            assert "point.collect" in t.downstream_task_ids
        watch = dag.get_task("point.watch")
        assert watch.upstream_task_ids == {"point.prepare_load"}  # beside the load, not after
        assert dag.get_task("point.collect").trigger_rule == "none_failed"
        assert "point.run_load" not in dag.task_ids


# boto3 is not here: the aws DAGs' EcsRunTaskOperator brings it (test_parsing_imports_no_pandas)
HEAVY = ("pandas", "matplotlib", "pyarrow", "scipy", "cachebench.report")


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_each_dag_file_parses_alone_without_heavy_imports(path: Path) -> None:
    """Parse each file in a fresh interpreter: it defines its DAGs without import errors and
    without importing what makes parsing slow (how long it takes is bench figure 4's)."""
    code = (
        "import sys; sys.path.insert(0, 'plugins'); import airflow.sdk;"
        "from airflow.dag_processing.dagbag import DagBag;"
        f"b = DagBag(dag_folder={str(path)!r}); print('PARSED', len(b.dags), len(b.import_errors),"
        f" *[m for m in sys.modules if m.split('.')[0] in {HEAVY!r} or m in {HEAVY!r}])"
    )
    stdout = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    out = next(line for line in stdout.splitlines() if line.startswith("PARSED ")).split()
    dags, errors, heavy = int(out[1]), int(out[2]), out[3:]
    assert errors == 0 and dags >= 1
    assert heavy == [], f"{path.name} imports {heavy} when parsed"


def test_parsing_imports_no_pandas() -> None:
    """No pandas at parse time; boto3 only for aws DAGs (the provider's ECS operator)."""
    code = (
        "import sys; sys.path.insert(0, 'plugins');"
        "from airflow.dag_processing.dagbag import DagBag; DagBag(dag_folder='dags/adhoc.py');"
        "local = ('pandas' in sys.modules, 'boto3' in sys.modules);"
        "DagBag(dag_folder='dags'); print(*local, 'pandas' in sys.modules)"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[-3:] == ["False", "False", "False"], (
        f"parse imported pandas/boto3 ({time.perf_counter() - started:.1f}s)"
    )
