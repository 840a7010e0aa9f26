"""Figure 3, orchestration overhead: wall time beyond the requested load.

(a) One local point (redis 7.0, single node, the example workload: warm-up W,
    load D = 20 s), the steps called directly and timed one by one:
    overhead = (apply start -> destroy end) - D - W.
(b) The example campaign (4 points: redis/valkey x single/3-shard cluster, each
    W + D) as one ad-hoc DAG run through `dag.test()`:
    overhead = total - 4 x (D + W). Each step function is wrapped with a timer
    (tasks call `cachebench.steps.<name>` in-process), so the rest of the wall
    time is load (each point's measured elapsed) and Airflow's own overhead
    (scheduling, deferral of the watch and its 1 s poll, metadata DB).
The baseline of each is the requested load time (D, resp. 4 x (D + W)).
"""

from __future__ import annotations

import contextlib
import functools
import json
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from cachebench import loadgen, steps, terraform, watch
from cachebench.campaign import load_campaign_file
from cachebench.targets import local
from common import ROOT, Row

EXAMPLE = ROOT / "include" / "campaigns" / "redis-vs-valkey-local.yaml"
POLL_S = 1.0  # the watch trigger's poll (WatchLoadSensor poke_interval)


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
            point = first["point"]["id"] if isinstance(first, dict) and "point" in first else ""
            point = point or getattr(getattr(first, "path", None), "name", "")
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
    t.wrap(loadgen, "run_load", "  of which warm-up (blocking)")
    t.wrap(local, "wait_for_other_loads", "  of which waiting for another point's load")
    t.wrap(local, "leftovers", "  of which destroy's checks (down, ports)")
    t.wrap(local, "sweep", "  of which destroy's /proc sweep")


def one_point() -> list[Row]:
    fields = load_campaign_file(EXAMPLE)
    fields |= {
        "name": "bench-point",
        "engines": [{"engine": "redis", "versions": ["7.0"]}],
        "topologies": [{"cluster_mode": False}],
    }
    w = fields["workloads"][0]
    d, warm = w["duration_seconds"], w["warmup_seconds"]
    t = Timer()
    _inner_timers(t)
    try:
        with t.span("plan"):
            (item,) = steps.plan(fields, f"bench-point-{int(time.time())}")
        with t.span("render_tfvars"):
            item = steps.render_tfvars(item)
        start = time.monotonic()
        try:
            with t.span("apply (init + apply, servers start-up)"):
                item = steps.apply(item)
            with t.span("run_load (warm-up + start of load)"):
                item = steps.run_load(item)
            with t.span("watch (load + 1 s poll)"):
                kwargs = item["watch"]["kwargs"]
                while (event := watch.check(**kwargs)) is None:
                    time.sleep(POLL_S)
                noticed = time.time()
                steps.watch_failed(item, event)
            with t.span("collect"):
                item = steps.collect(item)
            with t.span("export"):
                steps.export(item)
        finally:
            with t.span("destroy"):
                steps.destroy(item)
        total = time.monotonic() - start
        with t.span("report (not in the total)"):
            steps.report(fields["name"], item["run_id"])
    finally:
        t.restore()
    load = json.loads((Path(item["point_dir"]) / "load.json").read_text())
    warmed = json.loads((Path(item["point_dir"]) / "warmup.json").read_text())
    overhead = total - d - warm
    harness = total - load["elapsed_seconds"] - warmed["elapsed_seconds"]
    lag = noticed - (load["started_at"] + load["elapsed_seconds"])
    breakdown = "; ".join(f"{k.strip()} {v:.2f}s" for k, v in t.total.items())
    breakdown += f"; the watch noticed the end of the load {lag:.2f}s after it"
    print("  point steps: " + breakdown, flush=True)
    return [
        Row("3 orchestration", "one point: apply..destroy - D - warm-up", overhead, d, "s",
            "< 10 s", overhead < 10.0,
            f"total {total:.1f}s, D={d}s, warm-up {warm}s, measured load elapsed "
            f"{load['elapsed_seconds']:.1f}s; {breakdown}"),
        Row("3 orchestration", "  same, minus the actual load and warm-up windows", harness,
            load["elapsed_seconds"], "s", "(< 10 s)", None,
            f"the real windows: load {load['elapsed_seconds']:.2f}s for D = {d}s, warm-up "
            f"{warmed['elapsed_seconds']:.2f}s for {warm}s ({load['tool']})"),
    ]  # fmt: skip


def dag_run() -> list[Row]:
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from airflow.dag_processing.dagbag import DagBag

    from cachebench.workspace import RunDir

    fields = load_campaign_file(EXAMPLE) | {"name": "bench-dag"}
    w = fields["workloads"][0]
    d, warm = w["duration_seconds"], w["warmup_seconds"]
    t = Timer()
    with t.span("DagBag parse"):
        dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]
    for name in ("plan", "render_tfvars", "apply", "run_load", "collect", "export"):
        t.wrap(steps, name, name)
    t.wrap(steps, "destroy", "destroy")
    t.wrap(steps, "report", "report")
    t.wrap(steps, "watch_failed", "watch_failed")
    _inner_timers(t)
    try:
        t0 = time.monotonic()
        run = dag.test(run_conf=fields)
        total = time.monotonic() - t0
    finally:
        t.restore()
    state = str(run.state)
    rdir = RunDir.for_run(fields["name"], run.run_id)
    windows = {}  # point -> [(kind, start, end)] in unix seconds, from the results
    for pdir in sorted(rdir.path.glob("points/*")):
        for kind in ("warmup", "load"):
            f = pdir / f"{kind}.json"
            if f.exists():
                x = json.loads(f.read_text())
                windows.setdefault(pdir.name, []).append(
                    (kind, x["started_at"], x["started_at"] + x["elapsed_seconds"])
                )
    points = sum(1 for w in windows.values() if any(k == "load" for k, _, _ in w))
    overlap = _overlap(windows)
    offset = time.time() - time.monotonic()  # monotonic spans -> unix seconds
    busy = [(t0 + offset, t1 + offset) for k, t0, t1, _ in t.spans if not k.startswith(" ")]
    loads = [(a, b) for w in windows.values() for k, a, b in w if k == "load"]

    def spans_of_others(p: str, waits: bool) -> list[tuple[float, float]]:
        return [
            (t0 + offset, t1 + offset)
            for k, t0, t1, q in t.spans
            if q and q != p and (k.startswith("  of which waiting") if waits else k[0] != " ")
        ]

    others = sum(
        _covered_both([(a, b) for k, a, b in w if k == "load"], spans_of_others(p, False))
        - _covered_both([(a, b) for k, a, b in w if k == "load"], spans_of_others(p, True))
        for p, w in windows.items()
    )
    actual = sum(b - a for w in windows.values() for _, a, b in w)
    waiting = _covered(loads) - _covered_both(loads, busy)
    requested = 4 * (d + warm)
    overhead = total - requested
    steps_s = sum(v for k, v in t.total.items() if not k.startswith(" ") and k != "DagBag parse")
    parts = {k.strip(): v for k, v in t.total.items()}
    parts["waiting on measured load (no step running)"] = waiting
    # Each task instance runs once, the deferred watch twice (defer, then resume).
    tis = run.get_task_instances()
    task_runs = len(tis) + sum(1 for ti in tis if ti.task_id.endswith("watch"))
    own = total - steps_s - waiting
    parts[
        f"Airflow's own (rest: scheduling, deferral, poll, DB; {task_runs} task runs, "
        f"{own / max(task_runs, 1):.2f}s each)"
    ] = own
    breakdown = "; ".join(f"{k} {v:.2f}s" for k, v in parts.items())
    elapsed = ", ".join(
        f"{p.split('-local')[0]} {b - a:.1f}s" for p, w in windows.items() for k, a, b in w
        if k == "load"
    )  # fmt: skip
    print(f"  dag run {state}, {points} points: {breakdown}; load windows {elapsed}", flush=True)
    return [
        Row("3 orchestration", "DAG run of 4 points: total - 4 x (D + warm-up)", overhead,
            requested, "s", "< 60 s", overhead < 60.0 and state == "success" and points == 4,
            f"run {state}, total {total:.1f}s, D={d}s, warm-up {warm}s; {breakdown}; "
            f"measured windows {elapsed}"),
        Row("3 orchestration", "  same, minus the actual load and warm-up windows",
            total - actual, actual, "s", "(< 60 s)", None,
            f"sum of the real warm-up + measured windows {actual:.1f}s vs {requested}s asked"),
        Row("3 orchestration", "DAG run: load of one point overlapping another's", overlap,
            None, "s", "0 s (one load at a time)", overlap == 0.0,
            "sum over point pairs of the overlap of their warm-up/measured windows"),
        Row("3 orchestration", "DAG run: other points' steps inside a measured window",
            others, None, "s", "(0 s: nothing else on the cores)", None,
            "apply/collect/export/destroy of other points while a load ran (the watch is "
            "deferred, so it holds no task slot); a run_load waiting for it is not counted"),
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
    return one_point() + dag_run()
