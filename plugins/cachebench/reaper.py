"""The reaper: find what campaign runs left behind and destroy it.

A leftover is something a deployment created that still exists although nothing
will clean it up any more. Each target finds its own (`Target.find_leftovers`: local,
the deployments under the results root, by their registry and processes; aws, the
ElastiCache groups found by their cachebench tags), destroys them
(`Target.reap_leftover`) and, after that, its strays (`Target.reap_strays`: local,
runtime folders and miniature resources no deployment owns any more).

A found deployment is reaped when its expiry has passed, or when its run is known to
be finished (`airflow_run_state`). When the run cannot be looked up (its Airflow
metadata is gone, or no metadata DB is reachable), expiry alone decides. A
deployment of a running run that has not expired is left alone.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from cachebench import targets
from cachebench.targets import FINISHED, RUNNING, Leftover, RunState
from cachebench.workspace import results_root

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ run state


def dag_ids_for(campaign: str) -> list[str]:
    """The DAGs a deployment of `campaign` may have come from (file DAG or ad-hoc)."""
    return [f"cachebench__{campaign}", "cachebench_adhoc", "cachebench_adhoc_aws"]


def airflow_run_state(campaign: str, run_id: str) -> str | None:
    """RUNNING / FINISHED from Airflow's metadata, or None when it is not known there.

    Inside a task it asks through the Task SDK (workers have no DB access);
    elsewhere (CLI, tests) it reads the metadata DB. Any failure means "unknown".
    """
    try:
        return _state_via_task_sdk(campaign, run_id)
    except Exception as exc:  # not inside a task, or the API refused
        log.debug("run state via task sdk unavailable: %s", exc)
    try:
        return _state_via_db(campaign, run_id)
    except Exception as exc:
        log.warning("run state of %s unknown (%s): relying on expiry", run_id, exc)
        return None


def _state_via_task_sdk(campaign: str, run_id: str) -> str | None:
    from airflow.sdk.execution_time import task_runner

    if getattr(task_runner, "SUPERVISOR_COMMS", None) is None:
        raise RuntimeError("not inside a task")
    ti = task_runner.RuntimeTaskInstance
    for dag_id in dag_ids_for(campaign):
        if ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]):
            live = ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=["queued", "running"])
            return RUNNING if live else FINISHED
    return None


def _state_via_db(campaign: str, run_id: str) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(DagRun.state).where(
                DagRun.dag_id.in_(dag_ids_for(campaign)), DagRun.run_id == run_id
            )
        ).all()
    if not rows:
        return None
    return RUNNING if any(str(s) in ("queued", "running") for s in rows) else FINISHED


# ------------------------------------------------------------------ all targets


def reap(
    roots: list[Path] | None = None,
    *,
    now: float | None = None,
    run_state: RunState = airflow_run_state,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Find and (unless dry_run) destroy leftovers of every target; a JSON summary."""
    now = time.time() if now is None else now
    roots = roots if roots is not None else [results_root()]
    live = [cls() for cls in targets.registry().values()]
    found: list[tuple[targets.Target, Leftover]] = []
    spared: list[Leftover] = []
    for target in live:
        leftovers, kept = target.find_leftovers(roots, now, run_state)
        found += [(target, item) for item in leftovers]
        spared += kept
    reaped, failed = [], []
    for target, item in found:
        log.warning(
            "reaper: %s deployment %s (%s): %s",
            item.target,
            item.deployment_id,
            item.where,
            item.reason,
        )
        if dry_run:
            continue
        problems = target.reap_leftover(item)
        (failed if problems else reaped).append(asdict(item) | {"problems": problems})
    strays = [s for target in live for s in target.reap_strays(now, run_state, dry_run)]
    failed += [asdict(s) for s in strays if s.problems]
    return {
        "found": [asdict(item) for _, item in found],
        "reaped": reaped,
        "failed": failed,
        "spared": [asdict(i) for i in spared],
        "strays": [asdict(s) for s in strays],
        "dry_run": dry_run,
    }
