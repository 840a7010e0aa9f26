"""The campaign report: ``summary.csv``, comparison figures, ``report.md`` and ``report.html``.

Reads ``<run_dir>/points/<point_id>/`` as written by
:func:`cachebench.report.export.export_point` (its metric statistics from
``metrics_summary.json`` when that still matches ``metrics.parquet``, else from
the parquet itself). A point without ``point.json``,
``load.json`` and ``metrics.parquet`` is listed as failed (reason from its
``error.txt``); every finished point is still reported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from cachebench import pricing
from cachebench.campaign import CampaignPlan
from cachebench.history.regression import Since
from cachebench.history.since import FILE as SINCE_FILE
from cachebench.history.since import decision_section as since_section
from cachebench.history.since import update as update_history
from cachebench.history.store import Store
from cachebench.models import Cleanup, LoadCpu, LoadResult, Point, RunRecord
from cachebench.report import blog, palette, plots, stats
from cachebench.report.decision import Caveat, Configuration, Decisions, decide, label
from cachebench.report.explore import (
    PLOTLY_JS,
    ExploreRun,
    WorkloadCharts,
    explore,
    write_plotly_js,
)
from cachebench.report.export import (
    METRIC_STATS,
    SUMMARY_COLUMNS,
    cached_summary,
    draw_dashboard,
    gc_paused,
    point_summary,
    summary_row,
)
from cachebench.workspace import RunDir

log = logging.getLogger(__name__)

RUN_REQUIRED = ("load.json", "metrics.parquet")
CPU_UNKNOWN = (
    "load generator CPU unknown (no cpu.json): whether the run measured its load generator "
    "rather than the server is not known"
)
#: Summary columns a point averages over its repetitions (the rest describe the point).
MEASURED = (
    "ops_per_sec", "kb_per_sec", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
    "requests", "errors", *METRIC_STATS, "peak_pct_of_baseline", "ops_per_dollar",
)  # fmt: skip
TEMPLATES = Path(__file__).parent / "templates"
LOCAL_CAVEAT = (
    "Target is local: servers and load generator share this host's CPUs and talk over "
    "loopback, so absolute numbers do not predict ElastiCache; use relative comparisons only."
)
MINIATURE_CAVEAT = (
    "These are miniatures of ElastiCache node types ({types}): each node runs on this host "
    "with the CPU, memory and network allowance of the type it mimics, scaled down where "
    "include/instance_specs.csv says so and enforced by the kernel (a cgroup CPU quota and "
    "memory limit, a tc token bucket each way on its own interface); the load generators get "
    "the CPU the servers are denied. Compare the points with each other: the absolute numbers "
    "are a miniature's, not ElastiCache's."
)
FIGURE_TITLES = {
    "decision": "Every comparison: the ratio with its interval",
    "ops_per_dollar": "Ops per dollar",
    "throughput": "Throughput",
    "latency": "Latency percentiles",
    "cpu": "CPU (busiest node)",
    "network": "Network peak vs baseline and burst",
    "memory": "Memory peak",
}
#: (summary column, table header, format; "M" = millions) shown in report tables.
TABLE = [
    ("point_id", "point", "s"),
    ("engine", "engine", "s"),
    ("version", "version", "s"),
    ("topology", "topology", "s"),
    ("node_type", "node type", "s"),
    ("workload", "workload", "s"),
    ("reads_from", "reads from", "s"),
    ("runs_ok", "runs", "d"),
    ("ops_per_sec", "ops/s (mean of runs)", ",.0f"),
    ("ops_interval", "ops/s 95% interval", "s"),
    ("ops_cv_pct", "ops/s CV %", ".1f"),
    ("flags", "flags", "s"),
    ("p50_ms", "p50 ms", ".3f"),
    ("p99_ms", "p99 ms", ".3f"),
    ("p99_interval", "p99 95% interval", "s"),
    ("p99_9_ms", "p99.9 ms", ".3f"),
    ("errors", "errors", ",.0f"),
    ("cpu_max", "CPU max %", ".1f"),
    ("engine_cpu_max", "engine CPU max %", ".1f"),
    ("net_in_gbps_peak", "net in peak Gbps", ".3f"),
    ("net_out_gbps_peak", "net out peak Gbps", ".3f"),
    ("peak_pct_of_baseline", "peak % of baseline", ".0f"),
    ("seconds_above_baseline", "s above baseline", ",.0f"),
    ("burst_gbps", "burst Gbps", ".3f"),
    ("allowance_first_exceeded_s", "allowance out after s", ",.0f"),
    ("memory_peak_pct", "memory peak %", ".1f"),
    ("evictions", "evictions", ",.0f"),
    ("cluster_usd_hour", "$/hour", ".3f"),
    ("ops_per_dollar", "M ops/$", "M"),
]


def _default_specs() -> dict:
    """The shipped node catalogue, or {} (with a warning) when it cannot be read."""
    try:
        from cachebench.catalogue import load_instance_specs

        return load_instance_specs()
    except Exception as exc:  # the report must still be written
        log.warning("instance specs unavailable, reporting without them: %s", exc)
        return {}


REASON_CHARS = 600


def _reason(run_dir: Path, rdir: Path, deployment: Path) -> str:
    """Why a run has no result: its ``error.txt``, else its deployment's; the run's folder
    is written as <run> (it is in every path and says nothing), and long texts shortened."""
    for err, prefix in ((rdir / "error.txt", ""), (deployment / "error.txt", "its deployment: ")):
        if err.is_file():
            text = " ".join(err.read_text(errors="replace").split()).replace(str(run_dir), "<run>")
            if text:
                text = prefix + text
                return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."
    return "no result (the run never finished)"


def _point_fields(p: Point) -> dict[str, Any]:
    return {
        "point_id": p.id,
        "index": p.index,
        "campaign": p.campaign,
        "target": p.target,
        "engine": p.engine,
        "version": p.version,
        "topology": p.topology.label,
        "nodes": p.topology.nodes,
        "node_type": p.node_type,
        "workload": p.workload.name,
    }


def _planned(run_dir: Path) -> list[tuple[Point, int, str]]:
    """(point, repetition, deployment instance) of every planned run, in run order."""
    try:
        plan = CampaignPlan.read(run_dir)
    except (OSError, ValueError):
        return []
    runs = sorted((r for d in plan.deployments for r in d.runs), key=lambda r: r.order)
    instance = {r.key: d.instance for d in plan.deployments for r in d.runs}
    return [(r.point, r.repetition, instance[r.key]) for r in runs]


def _run_row(point: Point, rdir: Path, spec: Any, price: Any) -> dict[str, Any]:
    baseline = spec.network_baseline_gbps if spec else None
    # export kept the statistics of these very files: reading every run's full
    # metric table again would dominate a large campaign's report.
    cached = cached_summary(rdir, baseline)
    if cached is None:
        load = LoadResult.model_validate_json((rdir / "load.json").read_text())
        metrics = pd.read_parquet(rdir / "metrics.parquet")
        return point_summary(point, metrics, load, spec, price)
    return summary_row(point, cached[0], spec, cached[1], price)


def run_evidence(point: Point, rdir: Path, row: dict[str, Any]) -> dict[str, Any]:
    """What the report needs beyond a run's summary: its throughput's interval (batch means
    over its per-second series) and whether it measured its load generator (client-bound)."""
    load = LoadResult.model_validate_json((rdir / "load.json").read_text())
    series = stats.series_mean([s.ops_per_sec for s in load.series], "ops/s")
    out: dict[str, Any] = {
        "started_at": load.started_at,
        "ops_ci_low": series.interval.low if series.interval else None,
        "ops_ci_high": series.interval.high if series.interval else None,
        "notes": " ".join(load.notes),
        "flags": "; ".join(load.flags),
    }
    cpu_file = rdir / "cpu.json"
    cpu = LoadCpu.model_validate_json(cpu_file.read_text()) if cpu_file.is_file() else None
    sat = stats.saturation(
        [g.utilisation_pct for g in cpu.generators] if cpu else (),
        achieved_ops_per_sec=load.ops_per_sec if point.workload.rate_limit else None,
        requested_ops_per_sec=requested_rate(point),
    )
    reasons = [*sat.reasons, *([] if cpu is not None else [CPU_UNKNOWN])]
    return out | {
        "cpu_p95_pct": sat.cpu_p95_pct,
        "rate_shortfall_pct": sat.shortfall_pct,
        "client_bound": sat.client_bound,
        "client_bound_reason": "; ".join(reasons),
        "load_cpu_known": cpu is not None,
    }


def requested_rate(point: Point) -> float | None:
    """ops/s a rate-limited workload asks for: memtier limits each connection, and in
    cluster mode each client holds one connection per primary; None without a limit."""
    w = point.workload
    if not w.rate_limit:
        return None
    per_client = point.topology.shards if point.topology.cluster_mode else 1
    return float(w.rate_limit * w.clients * w.threads * point.load_generators * per_client)


def configurations(run_dir: Path, ok_rows: list[dict]) -> tuple[Configuration, ...]:
    """Every configuration of the campaign with its colour (in the plan's order, so a
    configuration keeps its colour whichever of its runs failed) and its points."""
    points: dict[str, list[str]] = {}
    for fields in [_point_fields(p) for p, _, _ in _planned(run_dir)] + ok_rows:
        ids = points.setdefault(palette.configuration(fields), [])
        if fields["point_id"] not in ids:
            ids.append(fields["point_id"])
    colours = palette.assign(points)
    return tuple(
        Configuration(label=c, colour=colours[c], points=tuple(ids)) for c, ids in points.items()
    )


def draw_missing_dashboards(run_dir: Path, specs: dict, colours: dict[str, str]) -> None:
    """Each exported run's dashboard (PNG + PDF), where its export left it for later, in
    its configuration's colour."""
    for point, rep, _ in _planned(run_dir):
        rdir = run_dir / "points" / point.id / f"rep{rep}"
        done = (rdir / "figures" / f"{plots.POINT_FIGURE}.png").is_file()
        if done or not all((rdir / f).is_file() for f in RUN_REQUIRED):
            continue
        try:
            colour = colours.get(palette.configuration(_point_fields(point)))
            draw_dashboard(point, rdir, specs.get((point.target, point.node_type)), colour)
        except Exception as exc:  # a figure must not sink the report
            log.warning("no dashboard for %s rep %d: %s", point.id, rep, exc)


def attempts(run_dir: Path, instance: str, point: Point, rep: int) -> dict[str, Any]:
    """Which attempt a run's row is (a lost attempt is measured again) and what became of
    the earlier ones, from the run's record."""
    path = RunDir(run_dir).deployment(instance).record(point.id, rep)
    try:
        record = RunRecord.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return {"attempt": None, "earlier_attempts": ""}
    return {"attempt": record.attempt, "earlier_attempts": " | ".join(record.earlier)}


def collect_runs(run_dir: Path, specs: dict, prices: dict) -> list[dict[str, Any]]:
    """One row per planned run: its summary statistics (status ok) or why it has none.

    ``prices``: :class:`cachebench.pricing.Price` by (engine, node_type); none, none priced.
    """
    rows = []
    for point, rep, instance in _planned(run_dir):
        rdir = run_dir / "points" / point.id / f"rep{rep}"
        base = {"repetition": rep, "deployment": instance} | attempts(run_dir, instance, point, rep)
        missing = [f for f in RUN_REQUIRED if not (rdir / f).is_file()]
        if missing:
            reason = _reason(run_dir, rdir, run_dir / "deployments" / instance)
            rows.append(_point_fields(point) | base | {"status": "failed", "reason": reason})
            continue
        try:
            spec = specs.get((point.target, point.node_type))
            row = _run_row(point, rdir, spec, prices.get((point.engine, point.node_type)))
            row |= run_evidence(point, rdir, row)
        except Exception as exc:  # one bad run must not sink the report
            reason = f"unreadable result: {type(exc).__name__}: {exc}"
            rows.append(_point_fields(point) | base | {"status": "failed", "reason": reason})
            continue
        rows.append(row | base | {"status": "ok", "reason": ""})
    # in the order they were measured (Airflow may take deployments in any order);
    # runs without a result after them, in planned order
    rows.sort(key=lambda r: r.get("started_at") or math.inf)
    return rows


def collect(
    run_dir: Path, specs: dict, prices: dict | None = None
) -> tuple[list[dict], list[dict], list[dict]]:
    """(point rows of points with a result, point rows of the others, run rows).

    A point's row holds the mean over its repetitions with a result (the runs
    themselves are in runs.csv); a point none of whose runs finished is failed,
    with the first run's reason.
    """
    runs = collect_runs(run_dir, specs, prices or {})
    by_point: dict[str, list[dict]] = {}
    for r in runs:
        by_point.setdefault(r["point_id"], []).append(r)
    ok, failed = [], []
    for rows in by_point.values():
        good = [r for r in rows if r["status"] == "ok"]
        if not good:
            failed.append({**rows[0], "repetitions": len(rows), "runs_ok": 0})
            continue
        row = dict(good[0])
        for col in MEASURED:
            vals = [r.get(col) for r in good]
            if all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in vals):
                row[col] = sum(vals) / len(vals)
        reasons = [f"rep {r['repetition']}: {r['reason']}" for r in rows if r["status"] != "ok"]
        row |= {
            "repetitions": len(rows),
            "runs_ok": len(good),
            "status": "ok",
            "reason": "; ".join(reasons),
        } | _spread(good)
        ok.append(row)
    ok.sort(key=lambda r: (r["index"], r["point_id"]))
    failed.sort(key=lambda r: (r.get("index", math.inf), r["point_id"]))
    return ok, failed, runs


#: (summary column prefix, runs column) of the per-point statistics across repetitions.
SPREAD = (
    ("ops", "ops_per_sec"),
    ("p50", "p50_ms"),
    ("p90", "p90_ms"),
    ("p99", "p99_ms"),
    ("p999", "p99_9_ms"),
    ("opd", "ops_per_dollar"),
)
SPREAD_COLUMNS = [
    f"{prefix}_{what}" for prefix, _ in SPREAD for what in ("ci_low", "ci_high", "cv_pct")
] + ["unstable", "unstable_reasons", "client_bound_runs", "cpu_unknown_runs", "flagged_runs"]


def _spread(good: list[dict[str, Any]]) -> dict[str, Any]:
    """Each metric's 95% interval and CV across a point's runs, and its flags."""
    out: dict[str, Any] = {}
    flags: list[str] = []
    for prefix, col in SPREAD:
        values = [r[col] for r in good if isinstance(r.get(col), numbers.Real) and r[col] > 0]
        ps = stats.point_stats(values, col)
        out[f"{prefix}_ci_low"] = ps.interval.low if ps.interval else None
        out[f"{prefix}_ci_high"] = ps.interval.high if ps.interval else None
        out[f"{prefix}_cv_pct"] = ps.cv_pct
        if prefix == "ops" and ps.unstable:
            flags += list(ps.reasons)
    bound = sum(bool(r.get("client_bound")) for r in good)
    return out | {
        "unstable": bool(flags),
        "unstable_reasons": "; ".join(flags),
        "client_bound_runs": bound,
        "cpu_unknown_runs": sum(r.get("load_cpu_known") is False for r in good),
        "flagged_runs": sum(bool(r.get("flags")) for r in good),
    }


def chart_labels(ok: pd.DataFrame) -> list[str]:
    """Short, unique bar labels from the dimensions that vary across points, with the
    number of runs each point's numbers are the mean of."""
    dims = [
        c for c in ("engine", "version", "topology", "node_type", "workload") if ok[c].nunique() > 1
    ]
    dims = dims or ["engine", "version", "topology", "node_type"]
    labels = ok[dims].astype(str).agg(" ".join, axis=1).tolist()
    counts = pd.Series(labels).value_counts()
    return [
        (f"{lab} #{idx}" if counts[lab] > 1 else lab) + f" ({n} run{'s' if n != 1 else ''})"
        for lab, idx, n in zip(labels, ok["index"], ok["runs_ok"].astype(int), strict=True)
    ]


def _fmt(v: Any, fmt: str) -> str:
    if v is None or (isinstance(v, numbers.Real) and not math.isfinite(v)):
        return "n/a"
    if fmt == "s":
        return str(v)
    if fmt == "M":
        return format(v / 1e6, ",.1f")
    if fmt == "d":
        return str(int(v))
    return format(v, fmt)


def oversubscribed(plan: CampaignPlan | None, specs: dict) -> Caveat | None:
    """Local deployments whose servers and load generators want more cores than the host
    has: each node's io-threads (its node type's vCPUs) plus every generator's threads
    (redis-benchmark runs a SET and a GET process, each with its threads)."""
    if plan is None or plan.spec.target != "local" or plan.provenance is None:
        return None
    host = plan.provenance.host.cores if plan.provenance.host else 0
    named, which = [], []
    for d in plan.deployments:
        spec = specs.get(("local", d.deployment.node_type))
        if spec is not None and spec.miniature:
            continue  # its servers' CPU is a quota apart from the load's (the saturation check)
        nodes = d.deployment.topology.nodes
        server = nodes * (spec.vcpu if spec else 1)
        load = 0
        for r in d.runs:
            w = r.point.workload
            sides = 2 if plan.load_tool == "redis-benchmark" and all(w.set_get) else 1
            load = max(load, w.threads * sides * r.point.load_generators)
        if host and server + load > host:
            which.append(d.instance)
            named.append(
                f"{d.instance} ({nodes} node(s) x {server // nodes} thread(s) and up to {load} "
                f"load generator thread(s): {server + load} cores)"
            )
    if not named:
        return None
    return Caveat(
        cause="oversubscribed",
        text=(
            f"Servers and load generators want more cores than this machine has ({host}), so "
            "they compete for CPU and these deployments' numbers partly measure that "
            "contention: " + "; ".join(named) + "."
        ),
        applies_to=tuple(which),
    )


def _listed(ids: Sequence[str]) -> str:
    return ", ".join(ids)


def caveats(ok: pd.DataFrame, specs: dict, *extra: Caveat | None) -> list[Caveat]:
    """What limits the numbers: one caveat per cause, naming every point or deployment it
    applies to."""
    out = []
    local = ok[ok["target"] == "local"]
    minis = {nt: s for nt in local["node_type"]
             if (s := specs.get(("local", nt))) and s.miniature}  # fmt: skip
    plain = local[~local["node_type"].isin(list(minis))]
    if len(plain):
        out.append(Caveat(cause="local", text=LOCAL_CAVEAT, applies_to=tuple(plain["point_id"])))
    if minis:
        text = MINIATURE_CAVEAT.format(
            types=", ".join(f"{nt} of {s.mimics}" for nt, s in sorted(minis.items()))
        )
        ids = local[local["node_type"].isin(list(minis))]["point_id"]
        out.append(Caveat(cause="miniature", text=text, applies_to=tuple(ids)))
    out += [c for c in extra if c is not None]
    bad = ok[pd.to_numeric(ok["errors"], errors="coerce").fillna(0) > 0]
    if len(bad):
        ids = tuple(bad["point_id"])
        text = f"{len(ids)} point(s) had request errors: {_listed(ids)}."
        out.append(Caveat(cause="errors", text=text, applies_to=ids))
    above = ok[pd.to_numeric(ok["seconds_above_baseline"], errors="coerce").fillna(0) > 0]
    if len(above):
        ids = tuple(above["point_id"])
        text = (
            f"{len(ids)} point(s) ran above the node type's network baseline (burst credits); "
            f"a longer run may settle lower: {_listed(ids)}."
        )
        out.append(Caveat(cause="above_baseline", text=text, applies_to=ids))
    if "allowance_first_exceeded_s" in ok:
        out_at = pd.to_numeric(ok["allowance_first_exceeded_s"], errors="coerce")
        hit = [(pid, sec) for pid, sec in zip(ok["point_id"], out_at, strict=True) if pd.notna(sec)]
        if hit:
            text = (
                "During the load the network burst allowance ran out "
                "(NetworkBandwidth*AllowanceExceeded > 0): from then on traffic is shaped "
                "toward the baseline. "
                + "; ".join(f"{pid}: {sec:,.0f} s in" for pid, sec in hit)
                + "."
            )
            out.append(Caveat(cause="allowance", text=text, applies_to=tuple(p for p, _ in hit)))
    return out


def _one_deployment(plan: CampaignPlan | None, runs: pd.DataFrame) -> Caveat | None:
    """Points compared while each point's repetitions shared one deployment: the
    intervals measure those runs' spread, not how far two deployments of one
    configuration differ, so a verdict may rest on that difference."""
    if plan is None or plan.spec.redeploy_per_repetition:
        return None
    measured = runs[runs["status"] == "ok"].groupby("point_id").size()
    ids = tuple(str(p) for p in measured[measured >= 2].index)  # those with an interval
    if len(ids) < 2:
        return None
    text = (
        "Each point's repetitions ran on one deployment (redeploy_per_repetition: false), so "
        "a comparison's interval measures how its runs varied there, not how far two "
        "deployments of one configuration differ; a verdict may rest on that difference. "
        "redeploy_per_repetition: true measures it (a fresh deployment per repetition)."
    )
    return Caveat(cause="one_deployment", text=text, applies_to=ids)


def _plaintext(run_dir: Path, plan: CampaignPlan | None) -> Caveat | None:
    """The aws deployments measured without TLS (aws.transit_encryption false):
    comparable with published plaintext numbers, not with TLS ones."""
    off = []
    for f in sorted(run_dir.glob("deployments/*/servers.json")):
        with contextlib.suppress(OSError, ValueError):
            if json.loads(f.read_text()).get("tls") is False:
                off.append(f.parent.name)
    if not off or plan is None or plan.spec.target != "aws":
        return None
    text = (
        f"measured without TLS (aws.transit_encryption: false; no AUTH token either): "
        f"{', '.join(off)}. Compare with published plaintext numbers, not with TLS ones."
    )
    return Caveat(cause="plaintext", text=text, applies_to=tuple(off))


def _flagged(run_rows: list[dict[str, Any]]) -> Caveat | None:
    """The runs whose numbers a flag doubts (their load generators measured too few
    seconds together, error replies): each is in its point's numbers, named here."""
    runs = [r for r in run_rows if r["status"] == "ok" and r.get("flags")]
    if not runs:
        return None
    text = " ".join(
        f"run {r['point_id']} rep {r['repetition']} is flagged: {r['flags']}." for r in runs
    )
    return Caveat(
        cause="flagged", text=text, applies_to=tuple(dict.fromkeys(r["point_id"] for r in runs))
    )


def _point_figures(run_dir: Path, ok: pd.DataFrame) -> list[dict[str, Any]]:
    """Per-point figure PNGs that exist, as paths relative to ``run_dir``."""
    out = []
    for pid in ok["point_id"]:
        figs = sorted((run_dir / "points" / pid).glob("rep*/figures/*.png"))
        if figs:
            out.append(
                {
                    "point_id": pid,
                    "figures": [
                        {"name": f.parents[1].name, "path": f.relative_to(run_dir).as_posix()}
                        for f in figs
                    ],
                }
            )
    return out


def cleanup_failures(run_dir: Path) -> list[str]:
    """Deployments whose last destroy said CLEANUP FAILED (cleanup.json, written by destroy)."""
    out = []
    for f in sorted(run_dir.glob("deployments/*/cleanup.json")):
        try:
            cleanup = Cleanup.model_validate_json(f.read_bytes())
        except (OSError, ValueError):
            continue
        if cleanup.status != "clean":
            out.append(f"{f.parent.name}: " + "; ".join(cleanup.problems or ["unknown"]))
    return out


def build_report(
    run_dir: Path,
    specs: dict | None = None,
    prices: dict | None = None,
    history: Store | None = None,
) -> dict[str, str]:
    """Write summary.csv, runs.csv, figures/*.png|pdf, report.md and report.html (with the
    runs' explorable charts, drawn by figures/plotly.min.js); return their paths.

    ``prices`` by (engine, node_type): the run's own (``prices.json``, written by plan)
    when not given. ``history``: the campaign's history store; with it the run is written
    into it and the report says what changed since the baseline (cachebench.history).
    """
    with gc_paused():  # see export.gc_paused: full collections would cost more than the report
        return _build_report(Path(run_dir), specs, prices, history)


def _price_list(ok_rows: list[dict], prices: dict) -> list[dict[str, str]]:
    """Each price the finished points were costed at, with its source and date."""
    used = dict.fromkeys((r["engine"], r["node_type"]) for r in ok_rows)
    out = []
    for key in used:
        p = prices.get(key)
        if p is None:
            continue
        out.append(
            {
                "engine": key[0],
                "node_type": key[1],
                "region": getattr(p, "region", ""),
                "usd": f"{p.usd_per_node_hour:g}",
                "source": p.source,
                "as_of": p.as_of.isoformat(),
            }
        )
    return out


#: CSS pixels per inch: report.html shows a figure at its size in inches, its PNG at 2x.
SCREEN_DPI = 96
#: Answers per question in the one-screen summary (the rest: the Decision section).
SUMMARY_ROWS = 6
#: runs.csv columns besides the summary's.
RUN_EVIDENCE = [
    "attempt", "earlier_attempts", "started_at", "ops_ci_low", "ops_ci_high", "cpu_p95_pct",
    "rate_shortfall_pct", "client_bound", "client_bound_reason", "load_cpu_known", "notes",
    "flags",
]  # fmt: skip
HOW_TO_READ = (
    "How to read this: every number of a point is the mean of its runs (repetitions on "
    "its deployment); its 95% interval (a t interval on the logs of the runs' values) says "
    "where the configuration's true value most likely is. Comparisons use the ratio of two "
    "points' runs with Welch's interval on the logs of the runs' values, at the level that "
    "keeps false winners at or under 5% for the run counts at hand whatever the two "
    "points' run-to-run CVs (up to 3 times apart): 95.3% for 3 runs a side, 95.4% for 4, "
    "wider for unequal counts (99.4% for 2 runs against 6; each sentence names it). A winner "
    "is named only when that interval excludes no change and the difference is above "
    "{min_effect:g}%; otherwise the sentence says why not: 'no significant difference' "
    "with the interval, 'not enough data for a verdict' with fewer than 2 runs a side, or "
    "client-bound runs. A point is 'unstable' when its runs' CV exceeds 10% or one run is "
    "an outlier (more than 3 scaled MADs and 10% from the median); a run is "
    "'client-bound' when its load generators used 85% or more of their CPU (p95) or fell "
    "more than 5% short of a rate_limit: it measured the load generator, not the server, "
    "and names no winner; a run without its load generators' CPU (no cpu.json) is "
    "'load generator CPU unknown', and its comparisons say so. {multiplicity}"
)


def _explore_runs(
    run_dir: Path, run_rows: list[dict[str, Any]], colours: dict[str, str]
) -> list[ExploreRun]:
    """The runs with a result, in run order, for the explorable charts."""
    return [
        ExploreRun(
            point_id=r["point_id"],
            configuration=palette.configuration(r),
            colour=colours[palette.configuration(r)],
            repetition=r["repetition"],
            workload=r["workload"],
            node_type=r["node_type"],
            path=run_dir / "points" / r["point_id"] / f"rep{r['repetition']}",
            baseline_gbps=r.get("baseline_gbps"),
            burst_gbps=r.get("burst_gbps"),
        )
        for r in run_rows
        if r["status"] == "ok"
    ]


def _interval(low: Any, high: Any, fmt: str) -> str:
    if not (isinstance(low, numbers.Real) and isinstance(high, numbers.Real)):
        return "n/a"
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a"
    return f"{low:{fmt}} to {high:{fmt}}"


def _flags(row: dict[str, Any], slo: dict) -> str:
    flags = []
    if row.get("unstable"):
        flags.append(f"unstable ({row['unstable_reasons']})")
    if row.get("flagged_runs"):
        flags.append(f"flagged runs: {row['flagged_runs']} (see the caveats)")
    if row.get("client_bound_runs"):
        flags.append(f"client-bound runs: {row['client_bound_runs']}")
    if row.get("cpu_unknown_runs"):
        flags.append(f"runs with load generator CPU unknown: {row['cpu_unknown_runs']}")
    if row.get("runs_ok", 0) < 2:
        flags.append("one run: no interval")
    if row["point_id"] in slo:
        flags.append(f"p99 objective: {slo[row['point_id']].status}")
    return "; ".join(flags)


def _earlier(text: str | None) -> str:
    return f"measured again after {text}" if text else ""


def _interrupted(run_dir: Path) -> str:
    mark = RunDir(run_dir).interruption()
    if mark is None:
        return ""
    at = datetime.fromtimestamp(float(mark.get("at", 0)), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"This campaign run was interrupted at {at} ({mark.get('why')}): the load under way "
        "was stopped, the runs after it were skipped, every deployment was destroyed. What "
        "finished is reported; the runs without a result are listed below."
    )


def _provenance(run_dir: Path, plan: CampaignPlan | None) -> list[str]:
    """Lines saying what made the numbers: software, host, servers, load tools."""
    lines = []
    if plan is not None and plan.provenance is not None:
        pv = plan.provenance
        lines += [
            f"cachebench {pv.cachebench}",
            f"Terraform {pv.terraform}",
            f"load tool: {pv.load_tool}",
            f"eviction policy (maxmemory-policy): {plan.spec.maxmemory_policy}",
        ]
        if pv.host is not None:
            h = pv.host
            la = ", ".join(f"{x:.2f}" for x in h.load_average)
            lines.append(
                f"host: {h.cpu_model}, {h.cores} cores, {h.kernel}, load average {la} at the start"
            )
    for f in sorted(run_dir.glob("deployments/*/servers.json")):
        try:
            data = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        reported = sorted(set(data.get("reported", {}).values())) or ["(not read)"]
        transport = {True: ", TLS", False: ", no TLS"}.get(data.get("tls"), "")
        lines.append(
            f"{f.parent.name}: asked {data.get('asked')}, servers report "
            f"{', '.join(reported)}{transport}"
        )
    tools = sorted({r for r in _tool_versions(run_dir)})
    if tools:
        lines.append("load tools of the runs: " + "; ".join(tools))
    return lines


def _tool_versions(run_dir: Path) -> list[str]:
    out = []
    for f in run_dir.glob("points/*/rep*/load.json"):
        try:
            out.append(json.loads(f.read_text()).get("tool_version") or "?")
        except (OSError, ValueError):
            continue
    return out


def _campaign_figures(
    run_dir: Path,
    ok: pd.DataFrame,
    decisions: Decisions,
    colours: dict[str, str],
    paths: dict[str, str],
) -> list[dict[str, str]]:
    """The decision figure and the summary figures (PNG + PDF), their paths added to
    ``paths``; returns what the templates show of them."""
    if ok.empty:
        return []
    ok = ok.assign(label=ok.apply(label, axis=1))
    charts = {}
    if decisions.rows:
        charts["decision"] = plots.decision_chart(decisions)
    bars = chart_labels(ok)
    bar_colours = [colours[palette.configuration(r)] for _, r in ok.iterrows()]
    for name, draw in plots.CAMPAIGN_FIGURES.items():
        if (drawn := draw(ok, bars, bar_colours)) is not None:
            charts[name] = drawn
    figures = []
    for name, chart in charts.items():
        paths |= plots.save(chart, run_dir / "figures", name)
        figures.append(
            {
                "title": FIGURE_TITLES.get(name, name.capitalize()),
                "name": name,
                "png": f"figures/{name}.png",
                "pdf": f"figures/{name}.pdf",
                "width": round(chart.width * SCREEN_DPI),  # its PNG is drawn at 2x that
            }
        )
    return figures


def _build_report(
    run_dir: Path, specs: dict | None, prices: dict | None, history: Store | None
) -> dict[str, str]:
    specs = _default_specs() if specs is None else specs
    prices = pricing.read_run_prices(run_dir) if prices is None else prices
    try:
        plan: CampaignPlan | None = CampaignPlan.read(run_dir)
    except (OSError, ValueError):
        plan = None
    planned = {c.label: c.colour for c in configurations(run_dir, [])}
    draw_missing_dashboards(run_dir, specs, planned)
    ok_rows, failed_rows, run_rows = collect(run_dir, specs, prices)
    paths: dict[str, str] = {}
    ok, runs = _write_tables(run_dir, ok_rows, failed_rows, run_rows, paths)
    campaign = next(
        (r["campaign"] for r in ok_rows + failed_rows if r.get("campaign")),
        run_dir.name,
    )
    decisions = _decide(run_dir, plan, specs, campaign, ok, runs, ok_rows, run_rows)
    colours = decisions.colours()  # the since section added below changes no colour
    for r in ok_rows:
        r["ops_interval"] = _interval(r.get("ops_ci_low"), r.get("ops_ci_high"), ",.0f")
        r["p99_interval"] = _interval(r.get("p99_ci_low"), r.get("p99_ci_high"), ".3f")
        r["flags"] = _flags(r, decisions.slo)
        r["colour"] = colours[palette.configuration(r)]
    since = None
    if history is not None and plan is not None:
        since = update_history(run_dir, plan, run_rows, ok_rows, specs, history)
        paths |= {
            f"fig_{f['name']}_{k}": str(run_dir / f[k])
            for f in since.figures
            for k in ("png", "pdf")
        }
        paths["since_json"] = str(run_dir / SINCE_FILE)
        if (changes := since_section(since)) is not None:
            decisions = decisions.model_copy(update={"sections": (*decisions.sections, changes)})
    paths["decisions_json"] = str(decisions.write(run_dir))
    figures = _campaign_figures(run_dir, ok, decisions, colours, paths)
    paths |= blog.write_snippets(run_dir, decisions)
    explored = explore(_explore_runs(run_dir, run_rows, colours))
    if any(w.charts for w in explored):
        paths["plotly_js"] = str(write_plotly_js(run_dir))
    context = _context(
        run_dir, plan, campaign, decisions, colours, since, figures, explored, ok, paths, prices,
        ok_rows=ok_rows, failed_rows=failed_rows, run_rows=run_rows,
    )  # fmt: skip
    paths |= _render(run_dir, context)
    return paths


def _context(
    run_dir: Path,
    plan: CampaignPlan | None,
    campaign: str,
    decisions: Decisions,
    colours: dict[str, str],
    since: Since | None,
    figures: list[dict[str, str]],
    explored: list[WorkloadCharts],
    ok: pd.DataFrame,
    paths: dict[str, str],
    prices: dict,
    *,
    ok_rows: list[dict[str, Any]],
    failed_rows: list[dict[str, Any]],
    run_rows: list[dict[str, Any]],
) -> dict[str, Any]:
    """What the report templates show."""
    return {
        "campaign": campaign,
        "run_dir": str(run_dir),
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "n_ok": len(ok_rows),
        "n_failed": len(failed_rows),
        "n_runs": len(run_rows),
        "n_runs_ok": sum(r["status"] == "ok" for r in run_rows),
        "decisions": decisions,
        "colours": colours,
        "summary_rows": SUMMARY_ROWS,
        "since": since,
        "how_to_read": HOW_TO_READ.format(
            min_effect=decisions.min_effect_pct, multiplicity=decisions.multiplicity.sentence
        ),
        "provenance": _provenance(run_dir, plan),
        "decision_figure": next((f for f in figures if f["name"] == "decision"), None),
        "figures": [f for f in figures if f["name"] != "decision"],
        "blog": sorted(
            Path(v).relative_to(run_dir).as_posix()
            for k, v in paths.items()
            if k.startswith("blog_")
        ),
        "headers": [h for _, h, _ in TABLE],
        "rows": [
            {"colour": r["colour"], "cells": [_fmt(r.get(c), f) for c, _, f in TABLE]}
            for r in ok_rows
        ],
        "failed": [{"point_id": r["point_id"], "reason": r["reason"]} for r in failed_rows]
        + [{"point_id": r["point_id"], "reason": r["reason"]} for r in ok_rows if r["reason"]],
        "point_figures": _point_figures(run_dir, ok) if len(ok) else [],
        "runs": _runs_table(run_rows),
        "cleanup_failed": cleanup_failures(run_dir),
        "interrupted": _interrupted(run_dir),
        "prices": _price_list(ok_rows, prices),
        "explore": explored,
        "plotly_js": PLOTLY_JS if "plotly_js" in paths else "",
    }


#: summary.csv's columns.
SUMMARY_CSV_COLUMNS = [
    *SUMMARY_COLUMNS, "repetitions", "runs_ok", *SPREAD_COLUMNS, "status", "reason"
]  # fmt: skip
#: runs.csv's columns.
RUNS_CSV_COLUMNS = [
    "deployment", "repetition", *SUMMARY_COLUMNS, *RUN_EVIDENCE, "status", "reason"
]  # fmt: skip


def _write_tables(
    run_dir: Path,
    ok_rows: list[dict[str, Any]],
    failed_rows: list[dict[str, Any]],
    run_rows: list[dict[str, Any]],
    paths: dict[str, str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """summary.csv (a row per point) and runs.csv (a row per run), their paths added to
    ``paths``; returns the measured points and the runs as frames."""
    paths["summary_csv"] = str(run_dir / "summary.csv")
    paths["runs_csv"] = str(run_dir / "runs.csv")
    summary = pd.DataFrame(ok_rows + failed_rows, columns=SUMMARY_CSV_COLUMNS)
    summary.to_csv(paths["summary_csv"], index=False)
    runs = pd.DataFrame(run_rows, columns=RUNS_CSV_COLUMNS)
    # a whole number, also beside a deployment that never measured (no record: empty)
    runs["attempt"] = runs["attempt"].astype("Int64")
    runs.to_csv(paths["runs_csv"], index=False)
    return pd.DataFrame(ok_rows, columns=SUMMARY_CSV_COLUMNS), runs


def _decide(
    run_dir: Path,
    plan: CampaignPlan | None,
    specs: dict,
    campaign: str,
    ok: pd.DataFrame,
    runs: pd.DataFrame,
    ok_rows: list[dict[str, Any]],
    run_rows: list[dict[str, Any]],
) -> Decisions:
    """What the report decides (decisions.json): the verdicts, the configurations and
    their colours, and the caveats, one per cause."""
    min_effect = plan.spec.min_effect_pct if plan else 2.0
    slo_ms = plan.spec.slo_p99_ms if plan else None
    found = tuple(caveats(ok, specs, oversubscribed(plan, specs))) if len(ok) else ()
    extra = (_plaintext(run_dir, plan), _flagged(run_rows), _one_deployment(plan, runs))
    found += tuple(c for c in extra if c)
    return decide(ok, runs, min_effect, slo_ms).model_copy(
        update={
            "campaign": campaign,
            "configurations": configurations(run_dir, ok_rows),
            "caveats": found,
        }
    )


def _runs_table(run_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's runs table, in the order the runs ran: a run's reason is why it
    failed, the flags that doubt its numbers, and what became of its earlier attempts."""
    return [
        {
            "order": i + 1,
            "deployment": r["deployment"],
            "point_id": r["point_id"],
            "repetition": r["repetition"],
            "attempt": _fmt(r.get("attempt"), "d"),
            "status": r["status"],
            "ops": _fmt(r.get("ops_per_sec"), ",.0f"),
            "p99": _fmt(r.get("p99_ms"), ".3f"),
            "reason": "; ".join(
                filter(None, [r["reason"], r.get("flags"), _earlier(r.get("earlier_attempts"))])
            ),
        }
        for i, r in enumerate(run_rows)
    ]


def _render(run_dir: Path, context: dict[str, Any]) -> dict[str, str]:
    """report.md and report.html from their templates; returns their paths."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = lambda s: str(s).replace("|", "\\|")
    paths = {}
    for name in ("report.md", "report.html"):
        out = run_dir / name
        out.write_text(env.get_template(f"{name}.j2").render(**context))
        paths[name.replace(".", "_")] = str(out)
    return paths
