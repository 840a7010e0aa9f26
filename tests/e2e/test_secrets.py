"""The AUTH password of a real run is found nowhere it must not be.

The password is read from the deployment's private runtime folder (the runtime_dir its
tfvars name, outside the results folder) while the servers are up, from another thread
as an outsider would, and at once every file under the results folder is searched for
it, byte for byte, while the servers still run (a results folder is served and copied
as it is: no secret may ever be in it, not only after destroy). After the run it is
searched for again in: everything under the results folder (tfvars, Terraform state
and log, server and agent logs, load-tool output, reports), the task logs (the Airflow
log folder and what the run printed), XCom values, rendered template fields, trigger
arguments, and the raw bytes of the metadata DB file.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

from cachebench.workspace import RunDir

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

CAMPAIGN = {
    "name": "secrets",
    "target": "local",
    "engines": [{"engine": "valkey", "versions": ["9.1"]}],
    "topologies": [{"cluster_mode": True, "shards": 2, "replicas": 1}],
    "node_types": ["local.micro"],
    "workloads": [
        {
            "name": "w",
            "ratio": "1:4",
            "value_size": 64,
            "key_space": 1000,
            "pipeline": 2,
            "clients": 2,
            "threads": 1,
            "warmup_seconds": 1,
            "duration_seconds": 2,
        }
    ],
    "budget_usd": 0,
}


def search_while_up(results: Path, seen: dict, stop: threading.Event) -> None:
    """Read the password once the servers run, search the results folder for it then,
    and record whether the password file was still there (the servers up) afterwards."""
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        for tfvars in results.glob("secrets/*/deployments/*/terraform/terraform.tfvars.json"):
            auth = Path(json.loads(tfvars.read_text())["runtime_dir"]) / "auth"
            try:
                secret = auth.read_text().strip()
            except OSError:
                continue
            if secret:
                seen["secret"], seen["auth"] = secret, auth
                seen["hits"] = files_holding(results, secret.encode())
                seen["files"] = sum(1 for p in results.rglob("*") if p.is_file())
                seen["still_up"] = auth.exists()
                return
        time.sleep(0.05)


def files_holding(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


def test_password_leaks_nowhere(airflow_db: Path, results_dir: Path, capfd) -> None:
    seen: dict = {}
    stop = threading.Event()
    grabber = threading.Thread(target=search_while_up, args=(results_dir, seen, stop), daemon=True)
    grabber.start()
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]
    try:
        dag_run = dag.test(run_conf=CAMPAIGN)
    finally:
        stop.set()
        grabber.join(5)
    printed = "".join(capfd.readouterr())
    run = RunDir.for_run(CAMPAIGN["name"], dag_run.run_id)
    assert str(dag_run.state) == "success"
    assert seen, "the password file was never seen while the servers ran"
    secret = seen["secret"]
    assert len(secret) >= 32
    needle = secret.encode()
    # while the servers ran: the password's folder lies outside the results folder, and no
    # file in the results folder (there were some: tfvars, state, logs) held it
    assert not seen["auth"].is_relative_to(results_dir)
    assert seen["still_up"] and seen["files"] > 5, seen
    assert seen["hits"] == [], seen["hits"]
    assert not seen["auth"].parent.exists(), "destroy left the password's folder"

    # on disk: everything under the results folder (reports, tfvars, state, logs, output)
    assert (run.path / "report.md").exists()
    assert list(run.path.glob("deployments/*/terraform/terraform.tfvars.json"))
    assert list(run.path.glob("deployments/*/terraform/terraform.tfstate"))
    assert list(run.path.glob("deployments/*/load/*/rep1/measured/*"))
    assert list(run.path.glob("deployments/*/load/*/rep1/job.json"))  # the runner's job
    assert files_holding(results_dir, needle) == []
    # task logs: what the run printed (dag.test logs every task there) and the Airflow log
    # folder where it has one
    assert "cachebench report:" in printed and "DagRun Finished" in printed
    assert secret not in printed
    logs = airflow_db / "logs"
    assert files_holding(logs, needle) == []
    # dag.test runs each task in this process and logs it to stdout (the log folder then
    # stays empty): wherever the task logs went, every try of every task must be among
    # what was searched (Airflow logs "Task started ... ti_id=<id>" as each one starts)
    searched = printed + "".join(
        f.read_text(errors="replace") for f in logs.rglob("*") if f.is_file()
    )
    tis = dag_run.get_task_instances()
    assert {ti.task_id for ti in tis} >= {"plan", "deployment.measure", "report"}
    for ti in tis:
        assert f"ti_id={ti.id}" in searched, f"no log of {ti.task_id} was searched"

    # metadata DB: XCom, rendered template fields, trigger kwargs, and the raw DB file
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.models.trigger import Trigger
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        xcoms = session.scalars(select(XComModel).where(XComModel.run_id == dag_run.run_id)).all()
        rtifs = session.scalars(
            select(RenderedTaskInstanceFields).where(
                RenderedTaskInstanceFields.run_id == dag_run.run_id
            )
        ).all()
        triggers = session.scalars(
            select(Trigger).where(Trigger.classpath.like("cachebench.%"))
        ).all()
        assert xcoms and rtifs, "nothing to search: the run stored no XCom or rendered fields"
        # this run's own (the DB is the session's, shared with other DAG tests)
        triggers = [t for t in triggers if run.path.name in json.dumps(t.kwargs, default=str)]
        assert any("LoadWatchTrigger" in t.classpath for t in triggers), "no trigger to search"
        for x in xcoms:
            assert secret not in json.dumps(x.value, default=str), (x.task_id, x.key)
        for r in rtifs:
            assert secret not in json.dumps(r.rendered_fields, default=str), r.task_id
        for t in triggers:
            assert secret not in json.dumps(t.kwargs, default=str)
    db_files = [p for p in airflow_db.glob("*.db*") if p.is_file()]
    assert db_files, "no sqlite metadata DB found"
    for db in db_files:
        assert needle not in db.read_bytes(), db
    assert os.environ.get("CACHEBENCH_AUTH") is None  # never set in the worker's own env
