"""What a DAG test reads back from Airflow's metadata about its run."""

from __future__ import annotations


def task_tries(dag_run, task_id: str) -> dict[str, list[tuple[str, int]]]:
    """(state, try number) of a mapped task by deployment label, from Airflow's metadata."""
    out: dict[str, list[tuple[str, int]]] = {}
    for ti in dag_run.get_task_instances():
        if ti.task_id == task_id:
            out.setdefault(ti.rendered_map_index, []).append((str(ti.state), ti.try_number))
    return out
