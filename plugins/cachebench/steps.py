"""The steps of a campaign run, free of Airflow: each takes and returns plain JSON.

The DAG's tasks are thin wrappers over these functions, so each step can be
called and tested on its own. A step that fails records why in the point's
error.txt, so the report can say what happened to every point.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cachebench import loadgen, pricing, targets
from cachebench.campaign import CampaignError, CampaignSpec
from cachebench.faults import maybe_fail
from cachebench.loadgen import redis_benchmark
from cachebench.models import Endpoint, LoadResult, Point
from cachebench.report.export import export_point
from cachebench.report.report import build_report, cleanup_failures
from cachebench.specs import load_instance_specs
from cachebench.terraform import TFVARS, Terraform
from cachebench.workspace import PointDir, RunDir

log = logging.getLogger(__name__)

# Slack a point is given past its load window before the reaper may take it.
EXPIRY_SLACK_S = 1800


class PointFailed(RuntimeError):
    pass


class CleanupFailed(RuntimeError):
    """Destroy could not prove the point's resources are gone: needs a human or the reaper."""


@contextlib.contextmanager
def recording(step: str, item: dict[str, Any]) -> Iterator[PointDir]:
    pdir = PointDir(Path(item["point_dir"]))
    try:
        maybe_fail(step, item["point"]["id"])
        yield pdir
    except Exception as exc:
        pdir.record_error(step, exc)
        raise


def validate(
    params: dict[str, Any], *, target_checks: bool = True
) -> tuple[CampaignSpec, str, float]:
    """Every check of plan, creating nothing: (spec, load tool, estimate) or CampaignError.

    target_checks=False leaves out the target's own checks (aws: settings that
    may live in an Airflow Variable), for callers without Airflow set up.
    """
    spec = CampaignSpec.from_input(params)
    tool = loadgen.available_tool() if spec.target == "local" else "memtier_benchmark"
    problems = []
    if tool == "redis-benchmark":
        problems += [
            f"workloads[{i}].{msg}"
            for i, w in enumerate(spec.workloads)
            for msg in redis_benchmark.unsupported(w)
        ]
    if spec.target == "local":  # on aws the load image checks itself (ecs.container_script)
        problems += loadgen.rate_limit_problems(spec.workloads, tool)
    if spec.target == "aws" and target_checks:
        problems += targets.get("aws").problems(spec)
    estimate = None
    try:
        estimate = spec.estimate_usd(spec.node_prices())
    except CampaignError as exc:  # no region or no price: said once, with the field
        named = {p.split(":", 1)[0] for p in problems}
        problems += [p for p in exc.problems if p.split(":", 1)[0] not in named]
    if estimate is not None and estimate > spec.budget_usd:
        problems.append(
            f"budget_usd: {spec.budget_usd}: the campaign is estimated at ${estimate:.2f} "
            f"({spec.point_count} points); raise the budget or shrink the matrix"
        )
    if problems or estimate is None:
        raise CampaignError(problems)
    return spec, tool, estimate


def plan(
    params: dict[str, Any], run_id: str, dag_target: str | None = None, load_tasks: int = 0
) -> list[dict[str, Any]]:
    """Validate, expand and cost the campaign; refuse it before anything exists.

    dag_target and load_tasks describe the DAG's shape (fixed when it was parsed):
    the target it was built for and, for aws, its load tasks per point.
    """
    if shape := _shape_problems(params, dag_target, load_tasks):
        raise CampaignError(shape)
    spec, tool, estimate = validate(params)
    run = RunDir.for_run(spec.name, run_id)
    points = spec.points(load_tool=tool)
    (run.path / "points").mkdir(parents=True, exist_ok=True)
    (run.path / "campaign.json").write_text(spec.model_dump_json(indent=2))
    pricing.write_run_prices(run.path, spec.node_prices())  # what the report prices ops/$ with
    log.info(
        "campaign %s: %d points, estimate $%.2f, results in %s",
        spec.name,
        len(points),
        estimate,
        run.path,
    )
    # A re-run (cleared run, retried plan) measures only the cells without a result yet:
    # the finished points of an earlier try keep their files and the report stays complete.
    done = [p.id for p in points if has_result(run.point(p.id).path)]
    if done:
        log.info("skipping %d point(s) measured by an earlier try: %s", len(done), ", ".join(done))
    return [
        {
            "point": p.model_dump(mode="json"),
            "run_id": run_id,
            "points": len(points),
            "point_dir": str(run.point(p.id).path),
        }
        for p in points
        if p.id not in done
    ]


def _shape_problems(params: dict[str, Any], dag_target: str | None, load_tasks: int) -> list[str]:
    """What this DAG cannot run whatever the rest says: another target, more load tasks."""
    if not isinstance(params, dict):
        return []  # validate says what is wrong with it
    target = params.get("target", "local")
    if dag_target and target != dag_target:
        return [
            f"target: {target!r}: this DAG runs the {dag_target} target "
            f"(trigger a DAG built for it, e.g. cachebench_adhoc_{target})"
        ]
    wanted = params.get("load_generators")
    if target == "aws" and load_tasks and isinstance(wanted, int) and wanted > load_tasks:
        return [
            f"load_generators: {wanted}: this DAG has {load_tasks} load tasks per point "
            f"(its campaign file's load_generators); allowed 1 to {load_tasks}"
        ]
    return []


def has_result(point_dir: Path) -> bool:
    """A point is measured once its load result and its server metrics are both written."""
    return (point_dir / "metrics.parquet").is_file() and (point_dir / "load.json").is_file()


def _expiry(point: Point) -> int:
    """When the point's resources count as leftovers (the reaper may take them)."""
    w = point.workload
    return int(time.time() + w.warmup_seconds + w.duration_seconds + EXPIRY_SLACK_S)


def render_tfvars(item: dict[str, Any]) -> dict[str, Any]:
    point = Point.model_validate(item["point"])
    with recording("render_tfvars", item) as pdir:
        pdir.write_json("point.json", item["point"])
        target = targets.get(point.target)
        tfvars = target.tfvars(point, pdir, item["run_id"], _expiry(point), item["points"])
        Terraform(pdir.terraform).prepare(target.MODULE, tfvars)
    return {**item, "state_dir": tfvars.get("state_dir")}


def _terraform(point: Point, pdir: PointDir) -> Terraform:
    """Terraform in the point's work dir, with the target's credentials (aws: the connection's)."""
    env = getattr(targets.get(point.target), "terraform_env", None)
    return Terraform(pdir.terraform, env=env(pdir) if env else None)


def _init(tf: Terraform, point: Point, pdir: PointDir, item: dict[str, Any]) -> Terraform:
    tf.init(targets.get(point.target).backend_config(point, pdir, item["run_id"]))
    return tf


def apply(item: dict[str, Any]) -> dict[str, Any]:
    point = Point.model_validate(item["point"])
    with recording("apply", item) as pdir:
        tf = _init(_terraform(point, pdir), point, pdir, item)
        outputs = tf.apply()
        endpoint = Endpoint.model_validate(outputs["endpoint"])
        maybe_fail("after_apply", point.id, marker_dir=pdir.path)
    return {**item, "endpoint": endpoint.model_dump(mode="json")}


def run_load(item: dict[str, Any]) -> dict[str, Any]:
    point = Point.model_validate(item["point"])
    with recording("run_load", item) as pdir:
        endpoint = Endpoint.model_validate(item["endpoint"])
        started = targets.get(point.target).run_load(point, endpoint, pdir)
    return {**item, **started}


def prepare_load(item: dict[str, Any]) -> dict[str, Any]:
    """aws: the arguments of the point's load tasks (the load operators start them)."""
    point = Point.model_validate(item["point"])
    with recording("prepare_load", item) as pdir:
        endpoint = Endpoint.model_validate(item["endpoint"])
        prepared = targets.get(point.target).prepare_load(point, endpoint, pdir)
    return {**item, **prepared}


def watch_failed(item: dict[str, Any], event: dict[str, Any]) -> None:
    """Turn a watch event into the point's outcome; stop its load if it went wrong."""
    try:
        with recording("watch", item):  # the "watch" fault: the sensor itself errors
            if event.get("status") == "done":
                return
            raise PointFailed(f"watch: {event.get('message', event)}")
    except Exception:
        targets.get(item["point"]["target"]).stop_load(PointDir(Path(item["point_dir"])))
        raise


def collect(item: dict[str, Any]) -> dict[str, Any]:
    point = Point.model_validate(item["point"])
    with recording("collect", item) as pdir:
        result = targets.get(point.target).collect(point, item, pdir)
        pdir.write_json("load.json", result.model_dump(mode="json"))
    return {
        **item,
        "window": [result.started_at, result.started_at + result.elapsed_seconds],
        "ops_per_sec": result.ops_per_sec,
        "p99_ms": result.latency.p99,
    }


def export(item: dict[str, Any]) -> dict[str, Any]:
    point = Point.model_validate(item["point"])
    with recording("export", item) as pdir:
        start, end = item["window"]
        metrics = targets.get(point.target).metrics(point, item, start, end)
        load = LoadResult.model_validate_json((pdir.path / "load.json").read_text())
        spec = load_instance_specs().get((point.target, point.node_type))
        files = export_point(point, metrics, load, pdir.path, spec)
    return {"point_id": point.id, "files": files}


def destroy(item: dict[str, Any]) -> dict[str, Any]:
    """Destroy whatever apply made, whatever failed; raise CleanupFailed if anything is left.

    The outcome is also written to the point's cleanup.json ("clean" or
    "CLEANUP FAILED", what was found, what is left), overwritten by each try,
    so the report and the reaper see the last word, not an earlier try's.
    """
    point = Point.model_validate(item["point"])
    target = targets.get(point.target)
    pdir = PointDir(Path(item["point_dir"]))
    notes: list[str] = []
    if not (pdir.path / "point.json").exists():
        notes.append(f"the point's folder {pdir.path} was removed during the run")
    target.stop_load(pdir)
    problems: list[str] = []
    tf = Terraform(pdir.terraform)
    try:
        tf = _terraform(point, pdir)
        if not (pdir.terraform / TFVARS).exists():
            # The work dir is gone: write the module and tfvars again, so a state
            # kept elsewhere (a remote backend) can still be destroyed.
            notes.append(f"{pdir.terraform} was missing: module and tfvars written again")
            tf.prepare(target.MODULE, target.tfvars(point, pdir, item["run_id"], _expiry(point), 1))
        maybe_fail("destroy", point.id)
        _init(tf, point, pdir, item).destroy()
    except Exception as exc:
        problems.append(f"terraform destroy: {exc}")
    problems += target.leftovers(item)
    sweep = getattr(target, "sweep", None)  # processes no registry knows (local)
    if sweep is not None:
        swept = sweep(item)
        notes += swept["stopped"]
        problems += swept["left"]
    problems += [f"still in state: {addr}" for addr in tf.resources()]
    for note in notes:
        log.warning("destroy %s: %s", point.id, note)
    status = {"status": "CLEANUP FAILED" if problems else "clean", "at": time.time()}
    pdir.write_json("cleanup.json", {**status, "problems": problems, "notes": notes})
    if problems:
        exc = CleanupFailed(
            f"CLEANUP FAILED for {item['point']['id']}: "
            + "; ".join(problems)
            + f" (state kept in {pdir.terraform} for a retry)"
        )
        pdir.record_error("destroy", exc)
        raise exc
    if notes:
        pdir.record_error("destroy", RuntimeError("cleaned up, but: " + "; ".join(notes)))
    return {"point_id": item["point"]["id"], "destroyed": True, "notes": notes}


def report(campaign: str, run_id: str) -> dict[str, Any]:
    """Write the campaign report; fail the run if any point has no result."""
    run = RunDir.for_run(campaign, run_id)
    files = build_report(run.path)
    planned = CampaignSpec.model_validate_json((run.path / "campaign.json").read_text()).points()
    missing = [p.id for p in planned if not (run.point(p.id).path / "metrics.parquet").exists()]
    print(f"cachebench report: {files.get('report_html') or files}")
    if failed_cleanup := cleanup_failures(run.path):
        raise CleanupFailed(
            f"CLEANUP FAILED for {len(failed_cleanup)} point(s), resources may be left: "
            + " | ".join(failed_cleanup)
            + f" (retry the point's destroy task or run the cachebench_reaper DAG; {run.path})"
        )
    if missing:
        raise PointFailed(
            f"{len(missing)} of {len(planned)} points have no result: {', '.join(missing)} "
            f"(see {run.path}/report.md)"
        )
    return {"run_dir": str(run.path), "files": files}
