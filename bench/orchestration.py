"""Figure 3, orchestration overhead: wall time beyond the requested load.

(a) One local deployment (redis 7.0, single node) measuring the example
    workload R times (the example's repetitions: warm-up W, window D each), the
    steps called directly, each wait done by running its trigger here as the
    triggerer would: per run, (measure's wall time - R x (W + D)) / R: the
    runner's start, flush and prefill, the watch's poll, collect and export;
    per deployment, apply + destroy.
(b) The example campaign (4 deployments x its repetitions) as one ad-hoc DAG
    run through `dag.test()`: (total - every run's W + D) / runs, each step
    function timed (tasks call `cachebench.steps.<name>` in-process), the rest
    being Airflow's own (scheduling, deferral and resume, metadata DB); and no
    two runs' loads may overlap (their warm-up + measured windows, from the results).
The baseline of each is the requested load time.

Whatever stops it (Ctrl-C, SIGTERM, an exception), every deployment it made is destroyed
before it returns: (a) in a finally; (b) as `python -m cachebench run` does, the first
signal marks the DAG run interrupted (steps.interrupt: its loads stop, its destroy tasks
run), and a finally destroys any deployment not left clean. (Inside dag.test() Airflow's
in-process task runner takes SIGTERM over for its tasks' on_kill: stop (b) with Ctrl-C.)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cachebench import steps, terraform
from cachebench.campaign import CampaignSpec, load_campaign_file
from cachebench.models import Cleanup, DeploymentPlan, PrefillResult
from common import ROOT, Row, holding_signals, smoke, uninterrupted

EXAMPLE = ROOT / "include" / "campaigns" / "redis-vs-valkey-local.yaml"


class Timer:
    """Adds up wall time per label; wraps functions in place and undoes it."""

    def __init__(self) -> None:
        self.total: dict[str, float] = defaultdict(float)
        self.spans: list[tuple[str, float, float, str]] = []  # label, start, end, point
        self._undo: list[tuple[object, str, object]] = []

    @contextlib.contextmanager
    def span(self, label: str, point: str = ""):
        t0 = time.monotonic()
        try:
            yield
        finally:
            t1 = time.monotonic()
            self.total[label] += t1 - t0
            self.spans.append((label, t0, t1, point))

    def wrap(self, owner: object, name: str, label: str | Callable[..., str]) -> None:
        """Time every call of owner.name under label (or label(*args) for a per-call one)."""
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            first = args[0] if args else None
            point = getattr(getattr(first, "plan", first), "instance", "")
            with self.span(label(*args) if callable(label) else label, point):
                return original(*args, **kwargs)

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


def _inner_timers(t: Timer) -> None:
    # Every terraform command by name: init/apply/output in apply, init/destroy/state in
    # destroy (apply includes the servers' start-up, destroy their stop: local-exec).
    t.wrap(terraform.Terraform, "run", lambda tf, cmd, *a: f"  of which terraform {cmd}")


def _wait(watch) -> dict:
    """What the triggerer does with a Wait: run its trigger until its first event."""
    from airflow.sdk.module_loading import import_string

    async def first() -> dict:
        async for event in import_string(watch.classpath)(**watch.kwargs).run():
            return event.payload if isinstance(event.payload, dict) else {"status": "done"}
        return {"status": "done"}

    return asyncio.run(first())


def _example() -> dict[str, Any]:
    """The example campaign's fields; in smoke mode one run per deployment of 1 s + 3 s, on
    its first node type."""
    fields = load_campaign_file(EXAMPLE)
    if smoke():
        short = {"warmup_seconds": 1, "duration_seconds": 3}
        fields |= {
            "repetitions": 1,
            "node_types": fields["node_types"][:1],
            "workloads": [w | short for w in fields["workloads"]],
        }
    return fields


def _prefill_s(run_dir: Path) -> float:
    """Seconds the runners spent flushing and prefilling (their prefill.json)."""
    return sum(
        PrefillResult.model_validate_json(f.read_text()).seconds
        for f in run_dir.glob("points/*/rep*/prefill.json")
    )


def destroy_left(run_dir: Path) -> None:
    """steps.destroy of every deployment of run_dir not left clean (an interrupted or
    failed DAG run's); raises if one could not be cleaned up."""
    failed = []
    for path in sorted(run_dir.glob("deployments/*/deployment.json")):
        cleanup = path.parent / "cleanup.json"
        if cleanup.exists() and Cleanup.model_validate_json(cleanup.read_text()).status == "clean":
            continue
        plan = DeploymentPlan.model_validate_json(path.read_text())
        print(f"  destroying {plan.instance} (not left clean by the DAG run)", flush=True)
        try:
            steps.destroy(plan)
        except Exception as exc:  # every other deployment still gets its destroy
            failed.append(f"{plan.instance}: {exc}")
    if failed:
        raise RuntimeError("figure 3 left resources behind: " + "; ".join(failed))


def interrupting(run_dir: Path):
    """The first SIGINT/SIGTERM marks the DAG run interrupted (it stops its loads and
    destroys its deployments, then ends); raised as KeyboardInterrupt after the block."""

    def stop(signum: int, count: int) -> None:
        if count == 1:
            print(f"  {signal.Signals(signum).name}: interrupting the DAG run, which destroys "
                  "its deployments", flush=True)  # fmt: skip
            steps.interrupt(run_dir, f"{signal.Signals(signum).name} of bench figure 3")
        else:
            print("  still stopping: every deployment is destroyed first", flush=True)

    return holding_signals("figure 3 interrupted", stop)


def _windows(run_dir: Path) -> dict[str, list[tuple[str, float, float]]]:
    """run key -> [(kind, start, end)] of its warm-up and measured windows (unix s)."""
    out: dict[str, list[tuple[str, float, float]]] = {}
    for rdir in sorted(run_dir.glob("points/*/rep*")):
        for kind in ("warmup", "load"):
            f = rdir / f"{kind}.json"
            if f.exists():
                x = json.loads(f.read_text())
                key = f"{rdir.parent.name}/{rdir.name}"
                out.setdefault(key, []).append(
                    (kind, x["started_at"], x["started_at"] + x["elapsed_seconds"])
                )
    return out


def one_deployment() -> list[Row]:
    fields = _example()
    fields |= {
        "name": "bench-deployment",
        "engines": [{"engine": "redis", "versions": ["7.0"]}],
        "topologies": [{"cluster_mode": False}],
        "node_types": fields["node_types"][:1],
    }
    spec = CampaignSpec.from_input(fields)
    w = spec.workloads[0]
    t = Timer()
    _inner_timers(t)
    try:
        with t.span("plan"):
            (plan,) = steps.plan(fields, f"bench-deployment-{int(time.time())}")
        runs = len(plan.runs)
        with t.span("render_tfvars"):
            plan = steps.render_tfvars(plan)
        start = time.monotonic()
        try:
            with t.span("apply (init + apply, servers start-up)"):
                prov = steps.apply(plan)
            with t.span("measure (every run)"):
                m0 = time.monotonic()
                try_id, event = steps.begin_try(prov), None
                while (watch := steps.measure_step(prov, try_id, event)) is not None:
                    event = _wait(watch)
                measured_s = time.monotonic() - m0
            outcome = steps.measured(prov)
        finally:
            with uninterrupted(), t.span("destroy"):
                steps.destroy(plan)
        total = time.monotonic() - start
    finally:
        t.restore()
    t.total["  of which flush + prefill (in the runner)"] = _prefill_s(Path(plan.run_dir))
    windows = _windows(Path(plan.run_dir))
    actual = sum(b - a for ws in windows.values() for _, a, b in ws)
    asked = runs * (w.warmup_seconds + w.duration_seconds)
    per_run = (measured_s - asked) / runs
    per_run_actual = (measured_s - actual) / runs
    provision = t.total["apply (init + apply, servers start-up)"] + t.total["destroy"]
    ok = sum(o.status == "ok" for o in outcome.outcomes)
    breakdown = "; ".join(f"{k.strip()} {v:.2f}s" for k, v in t.total.items())
    print(f"  deployment steps ({ok}/{runs} runs ok): {breakdown}", flush=True)
    return [
        Row("3 orchestration", "per run on one deployment: (measure - R x (W + D)) / R",
            per_run, w.warmup_seconds + w.duration_seconds, "s", "< 2 s",
            per_run < 2.0 and ok == runs,
            f"{runs} runs of W={w.warmup_seconds}s + D={w.duration_seconds}s, measure "
            f"{measured_s:.1f}s; {breakdown}"),
        Row("3 orchestration", "  same, minus the actual warm-up + measured windows",
            per_run_actual, actual / runs, "s", "(< 2 s)", None,
            f"the real windows: {actual:.1f}s in all for {asked}s asked"),
        Row("3 orchestration", "per deployment: apply + destroy", provision, total, "s",
            "(once per deployment, not per run)", None,
            f"apply {t.total['apply (init + apply, servers start-up)']:.2f}s, destroy "
            f"{t.total['destroy']:.2f}s; deployment total {total:.1f}s"),
    ]  # fmt: skip


def dag_run() -> list[Row]:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    from cachebench.workspace import RunDir

    fields = _example() | {"name": "bench-dag"}
    spec = CampaignSpec.from_input(fields)
    # The run id dag.test() will give it, known before: where to mark an interruption.
    run_after = datetime.now(UTC)
    run_id = DagRun.generate_run_id(
        run_type=DagRunType.MANUAL, logical_date=run_after, run_after=run_after
    )
    run_dir = RunDir.for_run(fields["name"], run_id).path
    t = Timer()
    with t.span("DagBag parse"):
        dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]
    for name in ("plan", "render_tfvars", "apply", "measure_step", "destroy", "report"):
        t.wrap(steps, name, name)
    _inner_timers(t)
    try:
        t0 = time.monotonic()
        with interrupting(run_dir):
            run = dag.test(run_after=run_after, logical_date=run_after, run_conf=fields)
        total = time.monotonic() - t0
    finally:
        t.restore()
        with uninterrupted():
            destroy_left(run_dir)
    assert run.run_id == run_id, (run.run_id, run_id)
    state = str(run.state)
    windows = _windows(run_dir)
    runs = spec.run_count
    measured = sum(1 for ws in windows.values() if any(k == "load" for k, _, _ in ws))
    requested = sum(
        (w.warmup_seconds + w.duration_seconds) * spec.repetitions
        for w in spec.workloads
        for _ in range(spec.deployment_count)
    )
    actual = sum(b - a for ws in windows.values() for _, a, b in ws)
    overlap = _overlap(windows)
    steps_s = sum(v for k, v in t.total.items() if not k.startswith(" ") and k != "DagBag parse")
    per_run = (total - requested) / runs
    parts = {k.strip(): v for k, v in t.total.items()}
    breakdown = "; ".join(f"{k} {v:.2f}s" for k, v in parts.items())
    print(f"  dag run {state}, {measured}/{runs} runs measured: {breakdown}", flush=True)
    return [
        Row("3 orchestration",
            f"DAG run, {spec.instance_count} deployments x {runs // spec.instance_count} "
            "runs: (total - load asked) / run",
            per_run, requested / runs, "s", "(< 2 s + Airflow's own)", None,
            f"run {state}, total {total:.1f}s for {requested}s of load asked; steps "
            f"{steps_s:.1f}s; {breakdown}"),
        Row("3 orchestration", "  same, minus the actual windows, per run", (total - actual) / runs,
            actual / runs, "s", "(info)", None,
            f"the real warm-up + measured windows: {actual:.1f}s in all"),
        Row("3 orchestration", "DAG run: the loads of two runs overlapping", overlap, None, "s",
            "0 s (one load at a time)", overlap == 0.0 and state == "success" and measured == runs,
            "sum over run pairs of the overlap of their warm-up/measured windows"),
    ]  # fmt: skip


def _covered(spans: list[tuple[float, float]]) -> float:
    """Length of the union of spans."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def _covered_both(xs: list[tuple[float, float]], ys: list[tuple[float, float]]) -> float:
    """Length of (union of xs) intersected with (union of ys)."""
    cuts = [(max(a, c), min(b, e)) for a, b in xs for c, e in ys if min(b, e) > max(a, c)]
    return _covered(cuts)


def _overlap(windows: dict[str, list[tuple[str, float, float]]]) -> float:
    names = sorted(windows)
    total = 0.0
    for i, p in enumerate(names):
        for q in names[i + 1 :]:
            spans_p = [(a, b) for _, a, b in windows[p]]
            spans_q = [(a, b) for _, a, b in windows[q]]
            total += _covered_both(spans_p, spans_q)
    return round(total, 2)


def measure() -> list[Row]:
    return one_deployment() + dag_run()
