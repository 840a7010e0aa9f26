"""Re-running a campaign run measures only the runs that have no result yet."""

from __future__ import annotations

import json
from pathlib import Path

from cachebench import steps
from cachebench.campaign import load_campaign_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "include" / "campaigns" / "redis-vs-valkey-local.yaml"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"


def _measure(run_dir: Path, point_id: str, rep: int, exported: bool = True) -> None:
    rdir = run_dir / "points" / point_id / f"rep{rep}"
    rdir.mkdir(parents=True, exist_ok=True)
    (rdir / "load.json").write_text("{}")
    if exported:
        (rdir / "metrics.parquet").write_bytes(b"PAR1")


def test_plan_skips_deployments_whose_runs_were_all_measured(results_dir: Path) -> None:
    fields = load_campaign_file(EXAMPLE)  # 4 deployments x 1 workload x 3 repetitions
    first = steps.plan(fields, RUN_ID)
    assert [len(p.runs) for p in first] == [3, 3, 3, 3]
    run_dir = Path(first[0].run_dir)
    done, half = first[1], first[2]
    for r in done.runs:  # every run measured: load result and server metrics
        _measure(run_dir, r.point.id, r.repetition)
    for r in half.runs[:2]:
        _measure(run_dir, r.point.id, r.repetition)
    # collected but never exported: still without a result, measured again
    _measure(run_dir, half.runs[2].point.id, half.runs[2].repetition, exported=False)

    again = steps.plan(fields, RUN_ID)
    assert [p.instance for p in again] == [first[0].instance, half.instance, first[3].instance]
    # each plan is unchanged: same runs in the same order, port blocks striding all deployments
    assert again[1] == half and all(p.instances == 4 for p in again)

    other_run = steps.plan(fields, "manual__2026-01-02T00:00:00+00:00")
    assert len(other_run) == 4  # results of another run never count


def test_plan_of_a_fully_measured_run_maps_nothing(results_dir: Path) -> None:
    fields = load_campaign_file(EXAMPLE)
    for p in steps.plan(fields, RUN_ID):
        for r in p.runs:
            _measure(Path(p.run_dir), r.point.id, r.repetition)
    assert steps.plan(fields, RUN_ID) == []


def test_campaign_json_holds_the_spec_the_deployments_and_the_run_order(
    results_dir: Path,
) -> None:
    fields = {
        **load_campaign_file(EXAMPLE),
        "workloads": [
            {"name": "a", "duration_seconds": 2, "warmup_seconds": 0},
            {"name": "b", "duration_seconds": 2, "warmup_seconds": 0},
        ],
        "repetitions": 2,
    }
    plans = steps.plan(fields, RUN_ID)
    doc = json.loads((Path(plans[0].run_dir) / "campaign.json").read_text())
    assert doc["spec"]["repetitions"] == 2
    first = doc["deployments"][0]
    # interleaved on a deployment: a rep 1, b rep 1, a rep 2, b rep 2
    keys = [r["point"]["id"].rsplit("-", 1)[1] + f"/{r['repetition']}" for r in first["runs"]]
    assert keys == ["a/1", "b/1", "a/2", "b/2"]
    orders = [r["order"] for d in doc["deployments"] for r in d["runs"]]
    assert orders == list(range(4 * 4))
    for p in plans:  # every point is known before anything ran
        for r in p.runs:
            assert (Path(p.run_dir) / "points" / r.point.id / "point.json").is_file()
