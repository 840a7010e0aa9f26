"""
### Reaper: destroy what campaign runs left behind

Runs every 30 minutes. Finds leftovers by their registry and tags: on the
local target the `registry.json` of every point under the results folder and
any server, metrics agent or load process whose working directory is inside
it; on other targets what their `find_leftovers` hook reports (ElastiCache
groups by their cachebench tags). A point is destroyed when its expiry has
passed or its run is no longer running; when the run's Airflow metadata is
gone, expiry alone decides. A point of a running run that has not expired is
left alone.

Params: `dry_run` only lists what would be destroyed. The task fails, naming
the points, when something could not be removed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="cachebench_reaper",
    schedule="*/30 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["cachebench", "reaper"],
    params={"dry_run": Param(False, type="boolean", description="only list the leftovers")},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
) as dag:

    @task
    def reap(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from cachebench import reaper

        summary = reaper.reap(dry_run=bool((params or {}).get("dry_run")))
        if summary["failed"]:
            lines = [f"{f['where']}: {f['problems']}" for f in summary["failed"]]
            raise RuntimeError("CLEANUP FAILED: the reaper could not remove " + "; ".join(lines))
        return summary

    reap()
