"""The history's rows: one per measured run (a workload x repetition of a point) of a
finished campaign run, failed runs included (status 'failed', the reason, no numbers).

A row carries what a later run needs to compare with it and what a person querying the
history wants beside it: ids, the point's fingerprint (its digest and its fields as
JSON), provenance, throughput and p99 with their intervals (the run's own, from its
per-second series, and the point's over its repetitions), flags (client-bound, load
generator CPU unknown, unstable point), the server metrics' summaries and the price.
"""

from __future__ import annotations

import json
import math
import numbers
import time
import types
import typing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field

from cachebench import pricing
from cachebench.history.fingerprint import Fingerprint, of_point
from cachebench.models import Point, Strict
from cachebench.workspace import run_slug

#: What a file of the history must hold to be read as one (others are skipped as foreign).
CORE = ("campaign", "run_id", "run_slug", "point_id", "repetition", "status", "fingerprint")


class HistoryRow(Strict):
    # which run
    campaign: str
    run_id: str = Field(description="the Airflow run id of the campaign run")
    run_slug: str = Field(description="its folder under the results root")
    run_started_at: datetime = Field(description="when the campaign run was planned (UTC)")
    recorded_at: datetime
    dag_id: str | None = None
    point_id: str
    deployment: str | None = None
    repetition: int
    attempt: int | None = None
    status: str = Field(description="ok, or failed (then reason says why)")
    reason: str | None = None
    started_at: datetime | None = Field(None, description="the run's measured window began")
    # what was measured
    target: str | None = None
    engine: str | None = None
    version: str | None = None
    topology: str | None = None
    node_type: str | None = None
    workload: str | None = None
    load_generators: int | None = None
    fingerprint: str
    fingerprint_json: str | None = Field(None, description="history.fingerprint.Fingerprint")
    # provenance
    cachebench_version: str | None = None
    terraform_version: str | None = None
    load_tool: str | None = None
    load_tool_version: str | None = None
    server_version: str | None = Field(None, description="what the servers report (INFO)")
    host: str | None = Field(None, description="local: hostname, CPU, cores, kernel")
    # the run's numbers
    ops_per_sec: float | None = None
    ops_ci_low: float | None = Field(None, description="the run's 95% interval (batch means)")
    ops_ci_high: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    p99_9_ms: float | None = None
    errors: float | None = None
    # the point's, over its repetitions in this campaign run
    point_runs_ok: int | None = None
    point_ops_ci_low: float | None = Field(None, description="95% t interval over repetitions")
    point_ops_ci_high: float | None = None
    point_p99_ci_low: float | None = None
    point_p99_ci_high: float | None = None
    # flags
    client_bound: bool | None = None
    client_bound_reason: str | None = None
    load_cpu_known: bool | None = None
    unstable: bool | None = None
    notes: str | None = None
    # the servers' metrics over the run's window
    cpu_max: float | None = None
    engine_cpu_max: float | None = None
    net_in_gbps_peak: float | None = None
    net_out_gbps_peak: float | None = None
    seconds_above_baseline: float | None = None
    memory_peak_pct: float | None = None
    evictions: float | None = None
    # price
    price_usd_hour_node: float | None = None
    price_source: str | None = None
    cluster_usd_hour: float | None = None
    ops_per_dollar: float | None = None

    def fingerprint_fields(self) -> Fingerprint | None:
        try:
            return Fingerprint.model_validate_json(self.fingerprint_json or "")
        except ValueError:
            return None


def arrow_schema() -> Any:
    """The parquet schema of the history, from HistoryRow (one home for its columns)."""
    import pyarrow as pa

    kinds = {
        str: pa.string(),
        int: pa.int64(),
        float: pa.float64(),
        bool: pa.bool_(),
        datetime: pa.timestamp("us", tz="UTC"),
    }
    fields = []
    for name, info in HistoryRow.model_fields.items():
        hint = info.annotation
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        fields.append(pa.field(name, kinds[hint], nullable=not info.is_required()))
    return pa.schema(fields)


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    return float(v) if math.isfinite(v) else None


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)


def _flag(v: Any) -> bool | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, str):
        return v.strip().lower() == "true"
    return bool(v)


def _when(ts: Any) -> datetime | None:
    x = _number(ts)
    return datetime.fromtimestamp(x, UTC) if x is not None else None


def _tool_version(rdir: Path) -> str:
    try:
        return json.loads((rdir / "load.json").read_text()).get("tool_version") or ""
    except (OSError, ValueError):
        return ""


def _servers(run_dir: Path, deployment: str) -> str | None:
    try:
        data = json.loads((run_dir / "deployments" / deployment / "servers.json").read_text())
    except (OSError, ValueError):
        return None
    reported = sorted(set((data.get("reported") or {}).values()))
    return ", ".join(reported) or None


def rows_for_run(
    run_dir: Path, plan: Any, runs: list[dict[str, Any]], points: list[dict[str, Any]], specs: dict
) -> list[HistoryRow]:
    """The history rows of a campaign run: one per planned run.

    ``plan``: its campaign.CampaignPlan; ``runs``: the report's run rows (runs.csv);
    ``points``: its point rows with a result (summary.csv: the intervals over repetitions).
    """
    run_dir = Path(run_dir)
    prov = plan.provenance
    run = _Run(
        run_dir=run_dir,
        plan=plan,
        run_id=_run_id(plan, run_dir),
        started=datetime.fromtimestamp(prov.captured_at, UTC) if prov else datetime.now(UTC),
        recorded=datetime.fromtimestamp(time.time(), UTC),
        host=_host(prov),
    )
    by_point = {p.id: p for p in plan.points}
    summary = {r["point_id"]: r for r in points}
    prints = _fingerprints(run_dir, plan, runs, specs)
    out = []
    for r in runs:
        point: Point = by_point[r["point_id"]]
        out.append(_row(run, r, point, prints[point.id], summary.get(point.id, {})))
    return out


@dataclass(frozen=True)
class _Run:
    """What every row of one campaign run shares."""

    run_dir: Path
    plan: Any
    run_id: str
    started: datetime
    recorded: datetime
    host: str | None


def _host(prov: Any) -> str | None:
    """The machine a local run ran on, in a line (None without provenance)."""
    if prov is None or prov.host is None:
        return None
    h = prov.host
    return f"{h.hostname or '?'}: {h.cpu_model}, {h.cores} cores, {h.kernel}"


def _fingerprints(
    run_dir: Path, plan: Any, runs: list[dict[str, Any]], specs: dict
) -> dict[str, Fingerprint]:
    """Each run point's fingerprint, by point id."""
    by_point = {p.id: p for p in plan.points}
    prov = plan.provenance
    prices = pricing.read_run_prices(run_dir)
    prints: dict[str, Fingerprint] = {}
    for point_id in dict.fromkeys(r["point_id"] for r in runs):
        point: Point = by_point[point_id]
        # the tool's version line: any of the point's runs
        reps = [x["repetition"] for x in runs if x["point_id"] == point.id]
        pdir = run_dir / "points" / point.id
        version = next((v for k in reps if (v := _tool_version(pdir / f"rep{k}"))), "")
        price = prices.get((point.engine, point.node_type))
        prints[point.id] = of_point(
            point,
            load_tool=plan.load_tool,
            tool_version=version,
            spec=specs.get((point.target, point.node_type)),
            region=price.region if price else None,
            host=prov.host if prov else None,
        )
    return prints


def _row(
    run: _Run, r: dict[str, Any], point: Point, fp: Fingerprint, s: dict[str, Any]
) -> HistoryRow:
    """The history row of run row r (s: its point's summary row, {} without a result)."""
    prov = run.plan.provenance
    ok = r.get("status") == "ok"
    rdir = run.run_dir / "points" / point.id / f"rep{r['repetition']}"
    return HistoryRow(
        campaign=point.campaign,
        run_id=run.run_id,
        run_slug=run.run_dir.name,
        run_started_at=run.started,
        recorded_at=run.recorded,
        dag_id=run.plan.dag_id,
        point_id=point.id,
        deployment=_text(r.get("deployment")),
        repetition=int(r["repetition"]),
        attempt=int(a) if (a := _number(r.get("attempt"))) is not None else None,
        status="ok" if ok else "failed",
        reason=_text(r.get("reason")) or None,
        started_at=_when(r.get("started_at")),
        target=point.target,
        engine=point.engine,
        version=point.version,
        topology=point.topology.label,
        node_type=point.node_type,
        workload=point.workload.name,
        load_generators=point.load_generators,
        fingerprint=fp.digest,
        fingerprint_json=fp.model_dump_json(),
        cachebench_version=prov.cachebench if prov else None,
        terraform_version=prov.terraform if prov else None,
        load_tool=run.plan.load_tool,
        load_tool_version=_tool_version(rdir) or None,
        server_version=_servers(run.run_dir, str(r.get("deployment"))),
        host=run.host if point.target == "local" else None,
        ops_per_sec=_number(r.get("ops_per_sec")) if ok else None,
        ops_ci_low=_number(r.get("ops_ci_low")) if ok else None,
        ops_ci_high=_number(r.get("ops_ci_high")) if ok else None,
        p50_ms=_number(r.get("p50_ms")) if ok else None,
        p99_ms=_number(r.get("p99_ms")) if ok else None,
        p99_9_ms=_number(r.get("p99_9_ms")) if ok else None,
        errors=_number(r.get("errors")) if ok else None,
        point_runs_ok=int(n) if (n := _number(s.get("runs_ok"))) is not None else None,
        point_ops_ci_low=_number(s.get("ops_ci_low")),
        point_ops_ci_high=_number(s.get("ops_ci_high")),
        point_p99_ci_low=_number(s.get("p99_ci_low")),
        point_p99_ci_high=_number(s.get("p99_ci_high")),
        client_bound=_flag(r.get("client_bound")) if ok else None,
        client_bound_reason=_text(r.get("client_bound_reason")) or None,
        load_cpu_known=_flag(r.get("load_cpu_known")) if ok else None,
        unstable=_flag(s.get("unstable")) if s else None,
        notes=_text(r.get("notes")) or None,
        cpu_max=_number(r.get("cpu_max")),
        engine_cpu_max=_number(r.get("engine_cpu_max")),
        net_in_gbps_peak=_number(r.get("net_in_gbps_peak")),
        net_out_gbps_peak=_number(r.get("net_out_gbps_peak")),
        seconds_above_baseline=_number(r.get("seconds_above_baseline")),
        memory_peak_pct=_number(r.get("memory_peak_pct")),
        evictions=_number(r.get("evictions")),
        price_usd_hour_node=_number(r.get("price_usd_hour_node")),
        price_source=_text(r.get("price_source")),
        cluster_usd_hour=_number(r.get("cluster_usd_hour")),
        ops_per_dollar=_number(r.get("ops_per_dollar")),
    )


def _run_id(plan: Any, run_dir: Path) -> str:
    """The campaign run's Airflow run id (every deployment plan carries it)."""
    for d in plan.deployments:
        if run_slug(d.run_id) == run_dir.name:
            return d.run_id
    return run_dir.name
