"""The steps of a campaign run, free of Airflow: typed models in, typed models out.

    plan                    -> [DeploymentPlan]   one per deployment to provision
    render_tfvars(plan)     -> DeploymentPlan     module copy + tfvars
    apply(plan)             -> Provisioned        terraform apply: where the servers are
    measure_step(prov, ...) -> Wait | None       start, reattach or finish the next run
    measured(prov)          -> Measured           every run and how it ended
    destroy(plan)                                 terraform destroy, then prove nothing is left
    report(campaign, run)                         the campaign report

A run is a workload x repetition measured on a provisioned deployment. Its
state lives on disk (deployments/<instance>/load/<point>/rep<k>/record.json)
so that a retry reattaches to a load that still runs, and a cleared task
measures only the runs without a result. A step that fails records why in an
error.txt, so the report can say what happened to every deployment and run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cachebench import jsonfile, loadgen, notify, pricing, provenance, targets
from cachebench.campaign import CampaignError, CampaignPlan, CampaignSpec
from cachebench.catalogue import load_instance_specs
from cachebench.history import store as history_store
from cachebench.history.baseline import PREVIOUS
from cachebench.history.since import read_since
from cachebench.loadgen import redis_benchmark
from cachebench.models import (
    Cleanup,
    DeploymentPlan,
    Destroyed,
    Endpoint,
    LoadResult,
    Measured,
    Provisioned,
    RunLoads,
    RunOutcome,
    RunRecord,
    RunSpec,
    Wait,
)
from cachebench.progress import headlines
from cachebench.report.build import build_report, cleanup_failures
from cachebench.report.export import export_point
from cachebench.terraform import TFVARS, Terraform
from cachebench.workspace import INTERRUPT_FILE, DeploymentDir, RunDir, deployment_dir, run_slug

log = logging.getLogger(__name__)

# Slack a deployment is given past its planned runs before the reaper may take it.
EXPIRY_SLACK_S = 1800
# Metrics due this soon are waited for in the worker; later ones on the triggerer.
SHORT_WAIT_S = 5.0
METRICS_TRIGGER = "airflow.triggers.temporal.DateTimeTrigger"
TRY_FILE = "measure-try.json"
BUSY_S = 2.0  # how soon to look again when another deployment's load holds the machine
SERVERS_FILE = "servers.json"  # each node's engine version, as it reports it


class RunsFailed(RuntimeError):
    pass


class Interrupted(RuntimeError):
    """The user stopped the campaign run (Ctrl-C or SIGTERM of `python -m cachebench run`)."""


def interrupt(run_dir: Path, why: str) -> None:
    """Stop a campaign run: mark it, then stop every load under way.

    Each deployment's measure sees the mark at its next step, records its run under
    way as interrupted and starts no other; deployments not yet provisioned are
    skipped; destroy and the report run as after any failure.
    """
    RunDir(Path(run_dir)).write_json(INTERRUPT_FILE, {"at": time.time(), "why": why})
    for path in sorted(Path(run_dir).glob("deployments/*/deployment.json")):
        try:
            plan = DeploymentPlan.model_validate_json(path.read_text())
            targets.get(plan.deployment.target).stop_load(plan, deployment_dir(plan))
        except Exception as exc:  # every other deployment still gets its stop
            log.warning("interrupt: could not stop the load of %s: %s", path.parent.name, exc)


def interruption(run_dir: str | Path) -> dict[str, Any] | None:
    """The mark interrupt() left, or None."""
    return RunDir(Path(run_dir)).interruption()


def _refuse_if_interrupted(plan: DeploymentPlan) -> None:
    if (mark := interruption(plan.run_dir)) is not None:
        raise Interrupted(f"the campaign run was interrupted ({mark.get('why')}): not provisioned")


class CleanupFailed(RuntimeError):
    """Destroy could not prove the deployment's resources are gone: needs a human or the reaper."""


@contextlib.contextmanager
def recording(step: str, ddir: DeploymentDir) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        ddir.record_error(step, exc)
        raise


# ------------------------------------------------------------------ plan


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
    if target_checks:
        problems += targets.get(spec.target).problems(spec)
    if target_checks or spec.target == "local":  # aws: its bucket needs the connection
        problems += _baseline_problems(spec)
    estimate = None
    try:
        estimate = spec.estimate_usd(spec.node_prices())
    except CampaignError as exc:  # no region or no price: said once, with the field
        named = {p.split(":", 1)[0] for p in problems}
        problems += [p for p in exc.problems if p.split(":", 1)[0] not in named]
    if estimate is not None and estimate > spec.budget_usd:
        problems.append(
            f"budget_usd: {spec.budget_usd}: the campaign is estimated at ${estimate:.2f} "
            f"({spec.instance_count} deployments, {spec.run_count} runs); "
            "raise the budget or shrink the matrix"
        )
    if problems or estimate is None:
        raise CampaignError(problems)
    return spec, tool, estimate


def _baseline_problems(spec: CampaignSpec) -> list[str]:
    """A baseline run id that is not in the campaign's history (a typo would compare
    nothing, night after night)."""
    wanted = spec.baseline
    if not isinstance(wanted, str) or wanted == PREVIOUS:
        return []
    try:
        store = history_store.for_campaign(spec)
        runs = store.runs(spec.name)
    except Exception as exc:  # the report says so too if it stays unreadable
        log.warning("baseline: the history could not be listed to check %r: %s", wanted, exc)
        return []
    if wanted in runs or run_slug(wanted) in runs:
        return []
    known = ", ".join(runs[-5:]) if runs else "none yet"
    return [
        f"baseline: {wanted!r}: no such run in the history of {spec.name} ({store.where}); "
        f"allowed: 'previous', 'median_of_last: N' or one of its runs (latest: {known})"
    ]


def plan(
    params: dict[str, Any],
    run_id: str,
    dag_target: str | None = None,
    dag_id: str | None = None,
) -> list[DeploymentPlan]:
    """Validate, expand and cost the campaign; refuse it before anything exists.

    dag_id (the DAG running it) goes into campaign.json: who may read that DAG may
    read the run's report (cachebench.serve).

    Returns the deployments to provision. A re-run (cleared run, retried plan)
    leaves out the deployments whose every run has a result: the finished runs of
    an earlier try keep their files and the report stays complete.
    """
    if shape := _shape_problems(params, dag_target):
        raise CampaignError(shape)
    spec, tool, estimate = validate(params)
    run = RunDir.for_run(spec.name, run_id)
    plans = spec.plans(run_id, str(run.path), tool)
    campaign = CampaignPlan(
        spec=spec,
        load_tool=tool,
        estimate_usd=estimate,
        deployments=plans,
        provenance=provenance.collect(spec.target, tool),
        dag_id=dag_id,
    )
    (run.path / "points").mkdir(parents=True, exist_ok=True)
    run.write_json("campaign.json", campaign.model_dump(mode="json"))
    for point in campaign.points:
        run.point(point.id).write_json("point.json", point.model_dump(mode="json"))
    pricing.write_run_prices(run.path, spec.node_prices())  # what the report prices ops/$ with
    log.info(
        "campaign %s: %d deployments, %d runs (%d points x %d repetitions), estimate $%.2f, "
        "results in %s",
        spec.name,
        spec.instance_count,
        spec.run_count,
        spec.point_count,
        spec.repetitions,
        estimate,
        run.path,
    )
    log.info("run order: %s", ", ".join(campaign.run_order))
    todo = []
    for p in plans:
        missing = [r for r in p.runs if not _result_dir(r, p).has_result]
        if missing:
            todo.append(p)
        else:
            log.info("skipping %s: all its runs were measured by an earlier try", p.instance)
    return todo


def _shape_problems(params: dict[str, Any], dag_target: str | None) -> list[str]:
    """What this DAG cannot run whatever the rest says: another target."""
    if not isinstance(params, dict):
        return []  # validate says what is wrong with it
    target = params.get("target", "local")
    if dag_target and target != dag_target:
        return [
            f"target: {target!r}: this DAG runs the {dag_target} target "
            f"(trigger a DAG built for it, e.g. cachebench_adhoc_{target})"
        ]
    return []


def _result_dir(run: RunSpec, plan: DeploymentPlan):
    return RunDir(Path(plan.run_dir)).point(run.point.id).rep(run.repetition)


def _expiry(plan: DeploymentPlan) -> int:
    """When the deployment's resources count as leftovers (the reaper may take them)."""
    load_s = sum(
        r.point.workload.warmup_seconds + r.point.workload.duration_seconds for r in plan.runs
    )
    return int(time.time() + 2 * load_s + EXPIRY_SLACK_S)


# ------------------------------------------------------------------ provision


def _terraform(plan: DeploymentPlan, ddir: DeploymentDir) -> Terraform:
    """Terraform in the deployment's work dir, with the target's credentials (aws: the
    connection's)."""
    env = targets.get(plan.deployment.target).terraform_env(plan, ddir)
    return Terraform(ddir.terraform, env=env)


def render_tfvars(plan: DeploymentPlan) -> DeploymentPlan:
    _refuse_if_interrupted(plan)
    ddir = deployment_dir(plan)
    with recording("render_tfvars", ddir):
        ddir.write_json("deployment.json", plan.model_dump(mode="json"))
        target = targets.get(plan.deployment.target)
        tfvars = target.tfvars(plan, ddir, _expiry(plan))
        Terraform(ddir.terraform).prepare(target.module, tfvars)
    return plan


def _init(tf: Terraform, plan: DeploymentPlan, ddir: DeploymentDir) -> Terraform:
    """terraform init, then adopt what a killed apply made that the state does not hold
    (its resources found by the target), so apply does not trip on them and destroy
    deletes them."""
    target = targets.get(plan.deployment.target)
    tf.init(target.backend_config(plan, ddir))
    if found := target.orphans(plan, ddir):
        held = set(tf.resources())
        for address, resource_id in found:
            if address not in held:
                log.warning(
                    "%s: %s exists but not in the state: importing it", plan.instance, address
                )
                tf.import_(address, resource_id)
    return tf


def apply(plan: DeploymentPlan) -> Provisioned:
    _refuse_if_interrupted(plan)
    ddir = deployment_dir(plan)
    with recording("apply", ddir):
        outputs = _init(_terraform(plan, ddir), plan, ddir).apply()
        endpoint = Endpoint.model_validate(outputs["endpoint"])
    prov = Provisioned(plan=plan, endpoint=endpoint)
    try:  # provenance: what the servers say they run, not only what was asked for
        versions = targets.get(plan.deployment.target).server_versions(prov)
    except Exception as exc:
        log.warning("%s: the servers' versions could not be read: %s", plan.instance, exc)
        versions = {}
    ddir.write_json(
        SERVERS_FILE,
        {"asked": plan.deployment.version, "reported": versions, "tls": endpoint.tls},
    )
    return prov


# ------------------------------------------------------------------ measure


def _record_path(ddir: DeploymentDir, run: RunSpec) -> Path:
    return ddir.record(run.point.id, run.repetition)


def read_record(ddir: DeploymentDir, run: RunSpec) -> RunRecord | None:
    path = _record_path(ddir, run)
    try:
        return RunRecord.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def _save(ddir: DeploymentDir, run: RunSpec, record: RunRecord) -> None:
    jsonfile.write(_record_path(ddir, run), record)


def _progress(prov: Provisioned, run: RunSpec, what: str) -> None:
    runs = prov.plan.runs
    done = sum(_result_dir(r, prov.plan).has_result for r in runs)
    log.info(
        "deployment %s: run %d of %d (%s, %s): %s [%d of %d runs have results]",
        prov.plan.instance,
        runs.index(run) + 1,
        len(runs),
        run.point.id,
        f"rep {run.repetition}",
        what,
        done,
        len(runs),
    )


def _fail(
    record: RunRecord, step: str, exc: BaseException, try_id: str, lost: bool = False
) -> RunRecord:
    return record.model_copy(
        update={
            "status": "failed",
            "error": f"{step}: {type(exc).__name__}: {exc}",
            "try_id": try_id,
            "lost": lost,
        }
    )


def _measure_again(record: RunRecord) -> bool:
    """A failed attempt that said nothing about the server (a load generator killed by a
    signal nobody here sent, a run the harness lost) is measured again, once."""
    return record.status == "failed" and record.lost and not record.again


def _collect(prov: Provisioned, run: RunSpec, record: RunRecord, try_id: str) -> RunRecord:
    """The run's load has ended: keep what it measured (the metrics follow once ready)."""
    target = targets.get(prov.plan.deployment.target)
    rdir = _result_dir(run, prov.plan)
    if record.status == "failed":  # the watch failed it (aws: a load task was lost, or not)
        again = f" (attempt {record.attempt}, measured again)" if _measure_again(record) else ""
        rdir.record_error("load", record.error + again)
        return record
    try:
        loads: RunLoads = target.loads(prov, run, record)
    except Exception as exc:
        failed = _fail(record, "collect", exc, try_id)
        rdir.record_error("collect", failed.error.removeprefix("collect: "))
        return failed
    # what finished before a failure is kept, apart from the measured window
    if loads.warmup is not None:
        rdir.write_json("warmup.json", loads.warmup.model_dump(mode="json"))
    if loads.prefill is not None:
        rdir.write_json("prefill.json", loads.prefill.model_dump(mode="json"))
    if loads.cpu is not None:
        rdir.write_json("cpu.json", loads.cpu.model_dump(mode="json"))
    if loads.measured is None:
        failed = _fail(record, "collect", loadgen.LoadError(loads.error), try_id, loads.lost)
        again = f" (attempt {record.attempt}, measured again)" if _measure_again(failed) else ""
        rdir.record_error("collect", failed.error.removeprefix("collect: ") + again)
        return failed
    rdir.write_json("load.json", loads.measured.model_dump(mode="json"))
    m = loads.measured
    _progress(prov, run, f"measured {m.ops_per_sec:,.0f} ops/s, p99 {m.latency.p99:.3f} ms")
    return record.model_copy(
        update={
            "status": "done",
            "try_id": try_id,
            "window": (m.started_at, m.started_at + m.elapsed_seconds),
        }
    )


def _export(prov: Provisioned, run: RunSpec, record: RunRecord, try_id: str) -> RunRecord:
    target = targets.get(prov.plan.deployment.target)
    rdir = _result_dir(run, prov.plan)
    assert record.window is not None, "exported before its load was collected"
    start, end = record.window
    try:
        metrics = target.metrics(prov, run, start, end)
        load = LoadResult.model_validate_json((rdir.path / "load.json").read_text())
        spec = load_instance_specs().get((run.point.target, run.point.node_type))
        export_point(run.point, metrics, load, rdir.path, spec, figures=False)  # the report draws
    except Exception as exc:
        failed = _fail(record, "export", exc, try_id)
        rdir.record_error("export", failed.error.removeprefix("export: "))
        return failed
    return record


def _exports_due(prov: Provisioned, ddir: DeploymentDir) -> list[tuple[RunSpec, RunRecord]]:
    out = []
    for run in prov.plan.runs:
        record = read_record(ddir, run)
        if record and record.status == "done" and not _result_dir(run, prov.plan).has_result:
            out.append((run, record))
    return out


def _export_ready(prov: Provisioned, ddir: DeploymentDir, try_id: str) -> float | None:
    """Export every collected run whose metrics can be read; when the others can (or None)."""
    target = targets.get(prov.plan.deployment.target)
    later: list[float] = []
    for run, record in _exports_due(prov, ddir):
        ready = target.metrics_ready_at(prov, record.window[1])
        wait = ready - time.time()
        if wait > SHORT_WAIT_S:
            later.append(ready)
            continue
        if wait > 0:
            time.sleep(wait)
        _save(ddir, run, _export(prov, run, record, try_id))
    return min(later) if later else None


def begin_try(prov: Provisioned) -> str:
    """A new try of measure (a first try, a retry or a cleared task): its id, kept on disk
    so that the try's resumes after each wait know it (Airflow's try number is no help:
    the same try resumes, and a test run re-run from scratch may count from 1 again)."""
    ddir = deployment_dir(prov.plan)
    try_id = f"{time.time():.6f}"
    ddir.write_json(TRY_FILE, {"try_id": try_id})
    return try_id


def current_try(prov: Provisioned) -> str:
    """The id begin_try gave the try that is resuming now."""
    return json.loads((deployment_dir(prov.plan).path / TRY_FILE).read_text())["try_id"]


def measure_step(prov: Provisioned, try_id: str, event: dict[str, Any] | None) -> Wait | None:
    """Advance the deployment's runs by one wait: the Wait to defer on next, or None.

    event is what the last Wait's trigger said (None at the start of a try: then
    a run still under way is reattached, never started again). Runs go in their
    planned order; a run that fails is recorded and the next one starts; a run
    that failed in this try is not tried again in it, except once when it was lost
    (a load generator killed by a signal nobody here sent, or the harness lost
    the run: attempt 2, see RunRecord.lost). Metrics are exported as
    soon as the target can give them (aws: CloudWatch's delay), the next run
    need not wait for that.
    """
    target = targets.get(prov.plan.deployment.target)
    ddir = deployment_dir(prov.plan)
    if (mark := interruption(prov.plan.run_dir)) is not None:
        target.stop_load(prov.plan, ddir)
        for run in prov.plan.runs:
            record = read_record(ddir, run)
            if record is not None and record.status == "started":
                why = f"interrupted by the user ({mark.get('why')}): its load was stopped"
                _save(ddir, run, record.model_copy(update={"status": "failed", "error": why}))
                _result_dir(run, prov.plan).record_error("load", why)
        return None
    new_try = event is None
    for run in prov.plan.runs:
        record = read_record(ddir, run)
        if record is None or record.status != "started":
            continue
        try:
            record, watch = target.step(prov, run, record, event)
        except Exception as exc:
            record, watch = _fail(record, "watch", exc, try_id), None
        event = None
        _save(ddir, run, record)
        if watch is not None:
            if new_try:  # a retry or a cleared task found the run under way: it says so
                _progress(prov, run, f"reattached (attempt {record.attempt})")
            return watch
        _save(ddir, run, _collect(prov, run, record, try_id))
    # The next run is started before the last one's export, inside the target's quiet
    # section (local: the load lock), so its start-up overlaps the export while its
    # load waits for it: no export ever runs beside a load.
    try:
        with target.quiet(prov):
            watch, ready = _start_next_and_export(prov, ddir, try_id)
    except targets.Busy as busy:  # back once the other load is over: no slot held meanwhile
        log.info("deployment %s: %s; looking again in %.0f s", prov.plan.instance, busy, BUSY_S)
        return _timer(time.time() + BUSY_S, "waiting for another deployment's load")
    if watch is not None:
        return watch
    return _timer(ready) if ready is not None else None


def _start_next_and_export(
    prov: Provisioned, ddir: DeploymentDir, try_id: str
) -> tuple[Wait | None, float | None]:
    """Start the next run that starts (one whose start fails is recorded and passed), then
    export what can be: (the started run's Wait, when the rest can be exported)."""
    target = targets.get(prov.plan.deployment.target)
    watch = None
    while watch is None and (run := _next_run(prov, ddir, try_id)) is not None:
        previous = read_record(ddir, run)
        try:
            record, watch = target.step(prov, run, previous, None)
        except Exception as exc:
            base = previous or RunRecord(status="started", started_at=time.time())
            record, watch = _fail(base, "load", exc, try_id), None
        record = record.model_copy(update={"try_id": try_id})
        if previous is not None and previous.status == "failed" and watch is not None:
            record = record.model_copy(  # a new attempt: what became of the earlier ones
                update={
                    "again": previous.try_id == try_id and _measure_again(previous),
                    "earlier": [*previous.earlier, f"attempt {previous.attempt}: {previous.error}"],
                }
            )
        _save(ddir, run, record)
        if watch is not None:
            _progress(prov, run, f"started (attempt {record.attempt})")
        else:
            _save(ddir, run, _collect(prov, run, record, try_id))
    return watch, _export_ready(prov, ddir, try_id)


def _next_run(prov: Provisioned, ddir: DeploymentDir, try_id: str) -> RunSpec | None:
    """The first run without a result to measure now: not collected already (its metrics
    follow), and not failed in this very try (unless it is to be measured again)."""
    for run in prov.plan.runs:
        if _result_dir(run, prov.plan).has_result:
            continue
        record = read_record(ddir, run)
        if record is not None and record.status == "done":
            continue
        if (
            record is not None
            and record.status == "failed"
            and record.try_id == try_id
            and not _measure_again(record)
        ):
            continue
        return run
    return None


def _timer(ready: float, phase: str = "metrics") -> Wait:
    """A timer's Wait: the run's metrics become readable, or the load lock frees."""
    from datetime import UTC, datetime

    return Wait(
        classpath=METRICS_TRIGGER,
        phase=phase,
        kwargs={"moment": datetime.fromtimestamp(ready, UTC)},
    )


def measured(prov: Provisioned) -> Measured:
    """How every run of the deployment ended (ok: it has its result)."""
    ddir = deployment_dir(prov.plan)
    outcomes = []
    for run in prov.plan.runs:
        if _result_dir(run, prov.plan).has_result:
            outcomes.append(
                RunOutcome(
                    key=run.key, point_id=run.point.id, repetition=run.repetition, status="ok"
                )
            )
            continue
        record = read_record(ddir, run)
        skipped = (
            "skipped: the campaign run was interrupted" if interruption(prov.plan.run_dir) else ""
        )
        outcomes.append(
            RunOutcome(
                key=run.key,
                point_id=run.point.id,
                repetition=run.repetition,
                status="failed",
                error=(record.error if record else "") or skipped or "no result",
            )
        )
    return Measured(instance=prov.plan.instance, outcomes=outcomes)


# ------------------------------------------------------------------ destroy


def destroy(plan: DeploymentPlan) -> Destroyed:
    """Destroy whatever apply made, whatever failed; raise CleanupFailed if anything is left.

    The outcome is also written to the deployment's cleanup.json ("clean" or
    "CLEANUP FAILED", what was found, what is left), overwritten by each try,
    so the report and the reaper see the last word, not an earlier try's.
    """
    target = targets.get(plan.deployment.target)
    ddir = deployment_dir(plan)
    notes: list[str] = []
    if not (ddir.path / "deployment.json").exists():
        notes.append(f"the deployment's folder {ddir.path} was removed during the run")
    target.stop_load(plan, ddir)
    problems: list[str] = []
    tf = Terraform(ddir.terraform)
    try:
        tf = _terraform(plan, ddir)
        if not (ddir.terraform / TFVARS).exists():
            # The work dir is gone: write the module and tfvars again, so a state
            # kept elsewhere (a remote backend) can still be destroyed.
            notes.append(f"{ddir.terraform} was missing: module and tfvars written again")
            tf.prepare(target.module, target.tfvars(plan, ddir, _expiry(plan)))
        _init(tf, plan, ddir).destroy()
    except Exception as exc:
        problems.append(f"terraform destroy: {exc}")
    problems += target.leftovers(plan, ddir)
    stopped, left = target.sweep(plan, ddir)
    notes += stopped
    problems += left
    problems += [f"still in state: {addr}" for addr in tf.resources()]
    for note in notes:
        log.warning("destroy %s: %s", plan.instance, note)
    status = "CLEANUP FAILED" if problems else "clean"
    cleanup = Cleanup(status=status, at=time.time(), problems=problems, notes=notes)
    ddir.write_json("cleanup.json", cleanup.model_dump(mode="json"))
    if problems:
        exc = CleanupFailed(
            f"CLEANUP FAILED for {plan.instance}: "
            + "; ".join(problems)
            + f" (state kept in {ddir.terraform} for a retry)"
        )
        ddir.record_error("destroy", exc)
        raise exc
    if notes:
        ddir.record_error("destroy", "cleaned up, but: " + "; ".join(notes))
    return Destroyed(instance=plan.instance, notes=notes)


# ------------------------------------------------------------------ report


def report(campaign: str, run_id: str, link: str = "", context: Any = None) -> dict[str, Any]:
    """Write the campaign report (and the run into the campaign's history), tell the
    campaign's notify channels how the run ended, then fail the run if any run has no
    result. ``link``: where the report is (the UI's URL, else its path); ``context``: the
    task's Airflow context, for the notifiers."""
    run = RunDir.for_run(campaign, run_id)
    planned = CampaignPlan.read(run.path)
    try:
        files = build_report(run.path, history=_history_store(planned))
    except Exception as exc:  # still say so to whoever listens, then fail as before
        _notify(planned, run.path, f"the report could not be written: {exc}", [], link, context)
        raise
    missing = [
        r.key
        for d in planned.deployments
        for r in d.runs
        if not run.point(r.point.id).rep(r.repetition).has_result
    ]
    print(f"cachebench report: {files.get('report_html') or files}")
    failed_cleanup = cleanup_failures(run.path)
    problem: Exception | None = None
    if (mark := interruption(run.path)) is not None:
        problem = Interrupted(
            f"the campaign run was interrupted ({mark.get('why')}): {len(missing)} run(s) "
            f"without a result; the report says so ({run.path}/report.md)"
        )
    elif failed_cleanup:
        problem = CleanupFailed(
            f"CLEANUP FAILED for {len(failed_cleanup)} deployment(s), resources may be left: "
            + " | ".join(failed_cleanup)
            + f" (retry the deployment's destroy task or run the cachebench_reaper DAG; {run.path})"
        )
    elif missing:
        total = sum(len(d.runs) for d in planned.deployments)
        problem = RunsFailed(
            f"{len(missing)} of {total} runs have no result: {', '.join(missing)} "
            f"(see {run.path}/report.md)"
        )
    _notify(planned, run.path, str(problem or ""), failed_cleanup, link, context)
    if problem is not None:
        raise problem
    return {"run_dir": str(run.path), "files": files}


def _history_store(planned: CampaignPlan) -> history_store.Store | None:
    try:
        return history_store.for_campaign(planned.spec)
    except Exception as exc:  # the report is still written, without its history
        log.warning("history: no store for %s: %s", planned.spec.name, exc)
        return None


def _notify(
    planned: CampaignPlan,
    run_dir: Path,
    failure: str,
    failed_cleanup: list[str],
    link: str,
    context: Any,
) -> None:
    """Tell the campaign's channels how the run ended (never raises)."""
    if not planned.spec.notify:
        return
    since = read_since(run_dir)
    happened: list[notify.Event] = []
    if failed_cleanup:
        happened.append("cleanup_failed")
    if failure:
        happened.append("failure")
    if since is not None and since.count("regression"):
        happened.append("regression")
    if not failure and not failed_cleanup:
        happened.append("success")
    lines = [f"{title}: {text}" for title, text in headlines(run_dir / "report.md")]
    headline = (
        failure
        or (since.headline if since is not None and since.count("regression") else "")
        or f"All {sum(len(d.runs) for d in planned.deployments)} runs measured."
    )
    if since is not None and since.headline != headline:
        lines.insert(0, f"Since the baseline: {since.headline}")
    outcome = notify.Outcome(
        campaign=planned.spec.name,
        run_id=_run_id(planned, run_dir),
        happened=tuple(happened),
        headline=headline,
        details=tuple(lines),
        link=link or str(run_dir / "report.html"),
    )
    sent = notify.send(planned.spec.notify, outcome, context)
    if sent:
        RunDir(run_dir).write_json(notify.FILE, [d.model_dump(mode="json") for d in sent])


def _run_id(planned: CampaignPlan, run_dir: Path) -> str:
    return next((d.run_id for d in planned.deployments), Path(run_dir).name)


def refused(params: Any, run_id: str, exc: CampaignError) -> None:
    """A campaign plan refused still tells its channels (failure), when its notify: block
    itself is valid; never raises."""
    from pydantic import TypeAdapter, ValidationError

    if not isinstance(params, dict) or not params.get("notify"):
        return
    try:
        channels = TypeAdapter(list[notify.Channel]).validate_python(params["notify"])
    except ValidationError:
        return
    if notify.problems(channels):
        return
    outcome = notify.Outcome(
        campaign=str(params.get("name") or "?"),
        run_id=run_id,
        happened=("failure",),
        headline="refused before anything was provisioned: " + "; ".join(exc.problems),
    )
    notify.send(channels, outcome)
