"""Re-running a campaign run measures only the matrix cells that have no result yet."""

from __future__ import annotations

from pathlib import Path

from cachebench import steps
from cachebench.campaign import load_campaign_file

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "include" / "campaigns" / "redis-vs-valkey-local.yaml"
RUN_ID = "manual__2026-01-01T00:00:00+00:00"


def test_plan_skips_points_measured_by_an_earlier_try(results_dir: Path) -> None:
    fields = load_campaign_file(EXAMPLE)
    first = steps.plan(fields, RUN_ID)
    assert len(first) == 4
    ids = [item["point"]["id"] for item in first]

    done = Path(first[1]["point_dir"])  # measured: load result and server metrics
    done.mkdir(parents=True)
    (done / "load.json").write_text("{}")
    (done / "metrics.parquet").write_bytes(b"PAR1")
    half = Path(first[2]["point_dir"])  # collected but never exported: measure it again
    half.mkdir(parents=True)
    (half / "load.json").write_text("{}")

    again = steps.plan(fields, RUN_ID)
    assert [item["point"]["id"] for item in again] == [ids[0], ids[2], ids[3]]
    # the rest of each item is unchanged: same dirs, and port blocks striding the full matrix
    assert all(item["points"] == 4 for item in again)
    assert again[0] == first[0] and again[1] == first[2]

    other_run = steps.plan(fields, "manual__2026-01-02T00:00:00+00:00")
    assert len(other_run) == 4  # results of another run never count


def test_plan_of_a_fully_measured_run_maps_nothing(results_dir: Path) -> None:
    fields = load_campaign_file(EXAMPLE)
    for item in steps.plan(fields, RUN_ID):
        pdir = Path(item["point_dir"])
        pdir.mkdir(parents=True)
        (pdir / "load.json").write_text("{}")
        (pdir / "metrics.parquet").write_bytes(b"PAR1")
    assert steps.plan(fields, RUN_ID) == []
