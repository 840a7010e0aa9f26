"""End to end: the campaign DAG through `dag.test()` on real servers with real Terraform.

A deployment is provisioned once and measures every run (workload x repetition)
on it. Afterwards nothing the run created may be left, whatever happened (the
tests' own psutil view, see leftovers.py).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from airflow.dag_processing.dagbag import DagBag
from leftovers import assert_nothing_left

from cachebench.workspace import RunDir
from dag_runs import task_tries

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def workload(name: str, **kw) -> dict:
    return {
        "name": name,
        "ratio": "1:4",
        "value_size": 128,
        "key_space": 5000,
        "pipeline": 2,
        "clients": 4,
        "threads": 1,
        "warmup_seconds": 1,
        "duration_seconds": 3,
    } | kw


CAMPAIGN = {
    "name": "e2e",
    "target": "local",
    "engines": [
        {"engine": "redis", "versions": ["7.0"]},
        {"engine": "valkey", "versions": ["9.1"]},
    ],
    "topologies": [{"cluster_mode": False}],
    "node_types": ["local.micro"],
    "workloads": [workload("mix"), workload("reads", ratio="1:9", key_space=3000, value_size=64)],
    "repetitions": 2,
    "budget_usd": 0,
}


def dag():
    return DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]


def run_campaign(fields: dict):
    """Trigger the ad-hoc DAG with the campaign as params, as the UI trigger form does."""
    dag_run = dag().test(run_conf=fields)
    return dag_run, RunDir.for_run(fields["name"], dag_run.run_id)


def report_link_and_asset_event(dag_run) -> tuple[str, dict]:
    """The report task's extra link (its XCom) and the extra of its Asset's event."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        link = session.scalar(
            select(XComModel.value).where(
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == "report",
                XComModel.key == "_link_ReportLink",
            )
        )
        events = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(
                AssetModel.name == "cachebench_adhoc.report",
                AssetEvent.source_run_id == dag_run.run_id,
            )
        ).all()
        assert len(events) == 1, events
        return (link if isinstance(link, str) else str(link)).strip('"'), dict(events[0].extra)


def hit_ratio_first_second(rdir: Path) -> float:
    """GET hits over all GETs in the first whole second of a run's measured window."""
    m = pd.read_parquet(rdir / "metrics.parquet")
    m = m[m["metric"].astype(str).isin(["CacheHits", "CacheMisses"])]
    first = m["timestamp"].min() + pd.Timedelta(seconds=1)  # the first sample ends a period
    at = m[m["timestamp"] == m.loc[m["timestamp"] >= first, "timestamp"].min()]
    hits = at.loc[at["metric"].astype(str) == "CacheHits", "value"].sum()
    misses = at.loc[at["metric"].astype(str) == "CacheMisses", "value"].sum()
    assert hits + misses > 0, "no GET in the first second"
    return hits / (hits + misses)


def test_deployments_are_provisioned_once_and_measure_every_run_in_order(
    airflow_db, results_dir: Path
) -> None:
    dag_run, run = run_campaign(CAMPAIGN)
    try:
        assert str(dag_run.state) == "success"
        deployments = ["redis-7.0-single-local.micro", "valkey-9.1-single-local.micro"]
        # exactly one apply and one destroy per deployment, each in a single try
        for task in ("deployment.apply", "deployment.destroy", "deployment.measure"):
            tries = task_tries(dag_run, task)
            assert tries == {d: [("success", 1)] for d in deployments}, (task, tries)
        for d in deployments:
            log = (run.deployment(d).terraform / "terraform.log").read_text()
            assert log.count("$ terraform apply") == 1 and log.count("$ terraform destroy") == 1
        # 8 runs, each with its result, measured in the documented (interleaved) order
        expected = [
            f"{d}-{w}/rep{r}" for d in deployments for r in (1, 2) for w in ("mix", "reads")
        ]
        campaign = json.loads((run.path / "campaign.json").read_text())
        planned = sorted(
            (r for d in campaign["deployments"] for r in d["runs"]), key=lambda r: r["order"]
        )
        assert [f"{r['point']['id']}/rep{r['repetition']}" for r in planned] == expected
        started = []
        for key in expected:
            point, rep = key.split("/")
            rdir = run.point(point).rep(int(rep[3:])).path
            load = json.loads((rdir / "load.json").read_text())
            assert load["ops_per_sec"] > 0 and load["requests"] > 0, key
            assert 0 < load["latency"]["p50"] <= load["latency"]["p99"] <= load["latency"]["max"]
            assert (rdir / "warmup.json").is_file() and (rdir / "prefill.json").is_file()
            prefill = json.loads((rdir / "prefill.json").read_text())
            keys = 5000 if point.endswith("-mix") else 3000
            assert prefill["keys"] == keys, key
            # the data set was there from the first second: GETs hit
            assert hit_ratio_first_second(rdir) >= 0.99, key
            assert list((rdir / "figures").glob("*.png")), key
            started.append(load["started_at"])
        # each deployment measured its runs in the planned, interleaved order (the
        # deployments themselves in whatever order Airflow ran their measure tasks)
        for d in range(2):
            mine = started[4 * d : 4 * d + 4]
            assert mine == sorted(mine), f"{deployments[d]}: runs not in the planned order"
        # local loads run one at a time: no measured window overlaps another run's
        windows = []
        for key in expected:
            point, rep = key.split("/")
            load = json.loads((run.point(point).rep(int(rep[3:])).path / "load.json").read_text())
            windows.append((load["started_at"], load["started_at"] + load["elapsed_seconds"]))
        windows.sort()
        for (_, end), (start, _) in itertools.pairwise(windows):
            assert start >= end - 0.01, "two measured windows overlap"
        runs = pd.read_csv(run.path / "runs.csv")
        assert len(runs) == 8 and (runs["status"] == "ok").all()
        summary = pd.read_csv(run.path / "summary.csv")
        assert len(summary) == 4 and (summary["runs_ok"] == 2).all()
        report = (run.path / "report.md").read_text()
        assert "Runs, in the order they were measured" in report
        # every verdict carries its interval (local: no price, so throughput and p99 only)
        assert "How to read this:" in report and "95% interval" in report
        engines = report.split("### Redis vs Valkey")[1].split("###")[0]
        assert "Valkey vs Redis (2 matched pairs, 4 comparisons)" in engines
        sentences = [ln for ln in engines.splitlines() if ln.startswith("- [")]
        assert len(sentences) == 2
        # a verdict may be withheld only for as many runs as runs.csv calls client-bound (a
        # busy 2-core machine can saturate redis-benchmark: honest, not a failure)
        bound = runs.groupby("workload")["client_bound"].sum().astype(int).to_dict()
        for line in sentences:
            workload = re.match(r"- \[.*, (\w+)\]", line)
            assert workload, line
            parts = iter(line.split(": ", 1)[1].split("; "))
            for part in parts:
                if m := re.match(r"[\w ]+: no verdict, (\d+) client-bound runs? \(", part):
                    assert int(m[1]) == bound[workload[1]] > 0, (line, bound)
                    assert re.match(r"measured [+-]\d+\.\d% \(", next(parts)), line
                    continue
                assert re.search(
                    r"wins, [+-]\d+\.\d% \([+-]\d+\.\d% to [+-]\d+\.\d%, 9\d(\.\d)?% "
                    r"interval\)|no significant difference \([+-]",
                    part,
                ), part
        assert "comparisons with an interval" in report
        assert "## Provenance" in report and "servers report redis 7.0" in report
        # the report task: its extra link opens this run's report; its Asset was updated
        link, event = report_link_and_asset_event(dag_run)
        rel = (run.path / "report.html").relative_to(results_dir).as_posix()
        assert link.endswith(f"/cachebench/reports/{rel}")
        assert event["report_html"] == str(run.path / "report.html")
        order_in_report = [
            line.split("|")[3].strip()
            for line in report.splitlines()
            if line.startswith("| ") and "-single-local.micro-" in line.split("|")[3]
        ]
        measured_order = [k.split("/")[0] for _, k in sorted(zip(started, expected, strict=True))]
        assert order_in_report == measured_order  # the report lists them as they ran
    finally:
        assert_nothing_left(run.path)


def test_a_crashed_run_keeps_the_others_and_a_new_try_measures_only_it(
    airflow_db, results_dir: Path
) -> None:
    """The load of the third of four runs of a deployment is killed (SIGKILL of its load
    generators), and again when it is measured again (attempt 2): the other runs keep
    their results, destroy runs once, the run fails; running the Airflow run again (as
    Clear does; dag.test re-runs it from plan) provisions the deployment once more and
    measures only the missing run (attempt 3)."""
    fields = {
        **CAMPAIGN,
        "name": "e2e-crash",
        "engines": [{"engine": "redis", "versions": ["7.0"]}],
    }
    third = "redis-7.0-single-local.micro-mix"  # order: mix 1, reads 1, mix 2, reads 2
    killed: list[list[int]] = []  # the pids of each attempt's load, as killed

    def kill_third_run() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(killed) < 2:
            hits = list(
                results_dir.glob(f"e2e-crash/*/deployments/*/load/{third}/rep2/handles.json")
            )
            pids = [h["pid"] for h in json.loads(hits[0].read_text())] if hits else []
            if pids and pids not in killed:  # each attempt writes its own handles.json
                time.sleep(0.5)
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                killed.append(pids)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_third_run, daemon=True)
    killer.start()
    dag_run, run = run_campaign(fields)
    killer.join(10)
    try:
        assert len(killed) == 2, f"the third run's loads seen and killed: {killed}"
        assert str(dag_run.state) == "failed"
        measure = task_tries(dag_run, "deployment.measure")
        assert list(measure.values()) == [[("failed", 1)]]  # not retried: failed runs end it
        assert list(task_tries(dag_run, "deployment.destroy").values()) == [[("success", 1)]]
        pdir = run.point(third)
        assert not pdir.rep(2).has_result
        error = (pdir.rep(2).path / "error.txt").read_text().splitlines()
        assert len(error) == 2, error  # one line per attempt, the lost one measured again
        for line in error:
            assert line.startswith("collect: ") and "gave no result" in line, line
            assert "it was killed by signal 9 (SIGKILL)" in line, line
        assert error[0].endswith("(attempt 1, measured again)") and "again" not in error[1]
        runs = pd.read_csv(run.path / "runs.csv").set_index(["point_id", "repetition"])
        row = runs.loc[(third, 2)]
        assert (row["status"], row["attempt"]) == ("failed", 2)
        assert row["earlier_attempts"].startswith("attempt 1: collect: LoadError: its load failed:")
        assert (runs["attempt"].drop(index=(third, 2)) == 1).all()
        for point, rep in (
            (third, 1),
            ("redis-7.0-single-local.micro-reads", 1),
            ("redis-7.0-single-local.micro-reads", 2),
        ):
            assert run.point(point).rep(rep).has_result, (point, rep)
        before = {
            p: (p / "load.json").stat().st_mtime_ns
            for p in run.path.glob("points/*/rep*")
            if (p / "load.json").is_file()
        }
        report = (run.path / "report.md").read_text()
        assert "one run: no interval" in report  # mix has 1 of its 2 runs: no spread known
        assert_nothing_left(run.path)

        # The same Airflow run again: dag.test clears its task instances and runs them.
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session
        from airflow.utils.state import DagRunState
        from sqlalchemy import select

        with create_session() as session:
            dr = session.scalar(select(DagRun).where(DagRun.run_id == dag_run.run_id))
            dr.state = DagRunState.RUNNING
        again = dag().test(
            run_after=dag_run.run_after, logical_date=dag_run.logical_date, run_conf=fields
        )
        assert again.run_id == dag_run.run_id and str(again.state) == "success"
        assert pdir.rep(2).has_result
        after = {p: (p / "load.json").stat().st_mtime_ns for p in before}
        assert after == before, "a run that had its result was measured again"
        log = run.deployment("redis-7.0-single-local.micro").terraform / "terraform.log"
        assert log.read_text().count("$ terraform apply") == 2  # once per try of the deployment
        record = json.loads(
            (
                run.deployment("redis-7.0-single-local.micro").load(third, 2) / "record.json"
            ).read_text()
        )
        assert record["status"] == "done" and record["attempt"] == 3
        assert [e.split(":", 1)[0] for e in record["earlier"]] == ["attempt 1", "attempt 2"]
        row = pd.read_csv(run.path / "runs.csv").set_index(["point_id", "repetition"])
        assert row.loc[(third, 2), "attempt"] == 3 and row.loc[(third, 2), "status"] == "ok"
    finally:
        assert_nothing_left(run.path)
