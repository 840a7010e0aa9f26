"""aws/results.merge_phase over generators that started apart: skew, overlap, the rates of
the seconds they all measured, and no made-up rate when they share no second.

Each generator's folder is laid out as its container script leaves it (measured.json,
.stdout, the HDR files, measured.started), from the real capture memtier_real_rate800_t5
(--test-time=5); the expected numbers are read off its per-second series here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cachebench.aws import ecs
from cachebench.aws.results import merge_phase
from cachebench.loadgen import LoadError

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "memtier-real"
CAPTURE = "memtier_real_rate800_t5"
WINDOW = 5
T0 = 1_796_000_000.0


def counts() -> list[int]:
    """The capture's requests in each second of its window, by hand."""
    series = json.loads((REAL / f"{CAPTURE}.json").read_text())["ALL STATS"]["Totals"]
    series = series["Time-Serie"]
    return [series[k]["Count"] for k in sorted(series, key=int)][:WINDOW]


def generators(dest: Path, starts: list[float]) -> Path:
    for g, at in enumerate(starts):
        folder = dest / f"g{g}"
        folder.mkdir(parents=True)
        shutil.copy(REAL / f"{CAPTURE}.json", folder / "measured.json")
        shutil.copy(REAL / f"{CAPTURE}.stdout", folder / "measured.stdout")
        for suffix in ("_FULL_RUN_1.hgrm", "_FULL_RUN_1.txt"):
            shutil.copy(REAL / f"{CAPTURE}{suffix}", folder / f"measured{suffix}")
        (folder / ecs.STARTED.format(phase="measured")).write_text(f"{at:.6f}\n")
        (folder / ecs.VERSION_FILE).write_text("memtier_benchmark 2.2.1\n")
    return dest


def test_generators_started_together_are_merged_whole_and_unflagged(tmp_path) -> None:
    load = merge_phase(generators(tmp_path, [T0, T0 + 0.2]), 2, window_s=WINDOW)
    assert load.start_skew_s == pytest.approx(0.2)
    assert load.overlap_pct == pytest.approx(96.0)
    assert load.requests == 2 * sum(counts()) and load.flags == []


def test_generators_two_seconds_apart_are_flagged_with_the_rates_of_the_common_seconds(
    tmp_path,
) -> None:
    """g1 starts 2 s after g0: they share seconds 2-4 of g0's window (0-2 of g1's)."""
    c = counts()
    load = merge_phase(generators(tmp_path, [T0, T0 + 2.0]), 2, window_s=WINDOW)
    assert load.start_skew_s == pytest.approx(2.0) and load.overlap_pct == pytest.approx(60.0)
    assert load.elapsed_seconds == pytest.approx(3.0)
    assert load.requests == sum(c[2:5]) + sum(c[0:3])
    assert load.ops_per_sec == pytest.approx(sum(c[2:5]) / 3 + sum(c[0:3]) / 3, abs=0.01)
    (flag,) = load.flags
    assert flag == (
        "start skew 2.0 s: the 2 load generators were all in their measured window "
        "for 3.0 s of the 5 s asked (60 %)"
    )


@pytest.mark.parametrize("late", [4.5, 5.0, 8.0])
def test_generators_that_share_no_second_fail_the_run_instead_of_a_made_up_rate(
    tmp_path, late
) -> None:
    """Less than a second in common (none at all from 5 s on): there is no rate of the
    seconds they all measured, and 0 ops/s would enter the point's mean."""
    with pytest.raises(LoadError, match=f"started {late:.1f} s apart .* no second in common"):
        merge_phase(generators(tmp_path, [T0, T0 + late]), 2, window_s=WINDOW)
