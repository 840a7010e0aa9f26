"""One DAG shape for every campaign: a mapped task group per point, destroy as its teardown.

    plan -> point[...]: render_tfvars -> apply -> run_load -> watch -> collect -> export
                        -> destroy (teardown of render_tfvars + apply) -> report

On the aws target the load is the provider's EcsRunTaskOperator, one task per
load generator, beside the watch:

    apply -> prepare_load -> [load_g0 .. load_gN-1, watch] -> collect

Tasks are thin: each calls the step of the same name in `cachebench.steps`,
imported inside the task so that parsing a DAG file costs no pandas or boto3.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, chain, get_current_context, task, task_group

from cachebench.campaign import AWS_LOAD_GENERATORS
from cachebench.params import campaign_params
from cachebench.sensors.watch import WatchLoadSensor

LABEL = "{{ point_label }}"  # each mapped instance is shown by its point id


def _label(item: dict[str, Any]) -> None:
    get_current_context()["point_label"] = item["point"]["id"]


def build_dag(
    dag_id: str, defaults: dict[str, Any], *, doc_md: str | None = None, tags: list[str] = ()
) -> DAG:
    """The campaign DAG for `defaults` (a campaign file's fields, overridable at trigger)."""
    target = defaults.get("target", "local")
    # aws: one load task per generator, so the count is part of the DAG's shape.
    load_tasks = defaults.get("load_generators", AWS_LOAD_GENERATORS) if target == "aws" else 0
    # Seconds between tries; the failure tests shorten it (CACHEBENCH_RETRY_DELAY_S=1).
    retry_s = float(os.environ.get("CACHEBENCH_RETRY_DELAY_S", "10"))
    with DAG(
        dag_id=dag_id,
        schedule=defaults.get("schedule"),
        catchup=False,
        max_active_runs=1,
        # Local points share two cores: one task at a time keeps their numbers clean.
        max_active_tasks=1 if target == "local" else 16,
        params=campaign_params(defaults),
        doc_md=doc_md,
        tags=["cachebench", f"target:{target}", *tags],
        # "upstream" weights favour the later steps of a started point over the
        # next point's apply, so a scheduler finishes points rather than piling up servers.
        default_args={
            "retries": 1,
            "retry_delay": timedelta(seconds=retry_s),
            "weight_rule": "upstream",
        },
        render_template_as_native_obj=True,
    ) as dag:

        @task(retries=0)
        def plan() -> list[dict[str, Any]]:
            from cachebench import steps
            from cachebench.campaign import CampaignError

            ctx = get_current_context()
            try:
                return steps.plan(dict(ctx["params"]), ctx["run_id"], target, load_tasks)
            except CampaignError as exc:
                from airflow.sdk.exceptions import AirflowFailException

                raise AirflowFailException(str(exc)) from None

        @task(map_index_template=LABEL)
        def render_tfvars(item: dict[str, Any]) -> dict[str, Any]:
            from cachebench import steps

            _label(item)
            return steps.render_tfvars(item)

        @task(map_index_template=LABEL, retries=2)
        def apply(item: dict[str, Any]) -> dict[str, Any]:
            from cachebench import steps

            _label(item)
            return steps.apply(item)

        @task(map_index_template=LABEL, retries=0)
        def run_load(item: dict[str, Any]) -> dict[str, Any]:
            from cachebench import steps

            _label(item)
            return steps.run_load(item)

        @task(map_index_template=LABEL, retries=0)
        def prepare_load(item: dict[str, Any]) -> dict[str, Any]:
            from cachebench import steps

            _label(item)
            return steps.prepare_load(item)

        # none_failed: on aws the load tasks a run does not use are skipped.
        @task(map_index_template=LABEL, trigger_rule="none_failed")
        def collect(item: dict[str, Any]) -> dict[str, Any]:
            from cachebench import steps

            _label(item)
            return steps.collect(item)

        @task(map_index_template=LABEL)
        def export(item: dict[str, Any]) -> dict[str, Any]:
            from cachebench import steps

            _label(item)
            return steps.export(item)

        @task(map_index_template=LABEL, retries=3, retry_delay=timedelta(seconds=retry_s / 2))
        def destroy(item: dict[str, Any]) -> dict[str, Any]:
            from cachebench import steps

            _label(item)
            return steps.destroy(item)

        @task(retries=0)
        def report() -> dict[str, Any]:
            from cachebench import steps

            ctx = get_current_context()
            return steps.report(ctx["params"]["name"], ctx["run_id"])

        teardowns = []  # report waits for every destroy: a group's leaves skip teardowns

        @task_group(group_id="point")
        def point(item: dict[str, Any]) -> None:
            rendered = render_tfvars(item)
            applied = apply(rendered)
            loaded = prepare_load(applied) if target == "aws" else run_load(applied)
            watched = WatchLoadSensor(
                task_id="watch",
                loaded=loaded,
                map_index_template=LABEL,
                retries=0,
                # aws: reschedules itself until the load tasks beside it have started
                mode="reschedule" if target == "aws" else "poke",
                # local: a /proc check is cheap, so the end of the load is seen within 0.25 s
                poke_interval=0.25 if target == "local" else 1.0,
            )
            collected = collect(loaded)
            exported = export(collected)
            destroyed = destroy(rendered)
            chain(rendered, applied, loaded, watched, collected, exported, destroyed)
            if target == "aws":
                from cachebench.operators.ecs_load import EcsLoadGeneratorOperator

                generators = [
                    EcsLoadGeneratorOperator(
                        task_id=f"load_g{g}",
                        prepared=loaded,
                        generator=g,
                        map_index_template=LABEL,
                        retries=1,  # only ever reattaches to the running task
                    )
                    for g in range(load_tasks)
                ]
                chain(loaded, generators, collected)
            destroyed.as_teardown(setups=[rendered, applied], on_failure_fail_dagrun=True)
            teardowns.append(destroyed)

        planned = plan()
        points = point.expand(item=planned)
        # The report is a teardown too: it runs after every destroy even when the run is
        # marked failed from the UI/API, and its failure (points without a result) fails
        # the run; otherwise Airflow would recompute such a run as a success.
        reported = report().as_teardown(setups=planned, on_failure_fail_dagrun=True)
        chain(points, reported)
        chain(teardowns, reported)
    return dag
