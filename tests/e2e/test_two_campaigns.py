"""Two local campaigns started together on one machine (issue 22): a scheduled run beside
a UI trigger, each with its own results folder and Airflow home.

Both must succeed: their deployments claim different port blocks (before, both took
the first free block and the second's apply failed on every try), and their loads take
turns on the machine's load lock (before, the lock was per campaign run and the two
loads shared the two cores): no two measured windows overlap, whichever campaign they
belong to. Each campaign runs as `python -m cachebench run` in a child process.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from cli_runs import start_run, tiny_campaign
from leftovers import assert_nothing_left

from cachebench.targets.local import machine

pytestmark = pytest.mark.e2e


def test_two_campaigns_started_together_both_succeed_and_never_load_at_once(
    tmp_path: Path,
) -> None:
    procs = {
        name: start_run(tiny_campaign(name, duration_seconds=3), tmp_path / name)
        for name in ("twin-a", "twin-b")
    }
    outputs = {}
    try:
        for name, proc in procs.items():
            outputs[name], _ = proc.communicate(timeout=600)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    runs = {name: next((tmp_path / name / "results" / name).glob("*/")) for name in procs}
    try:
        for name, proc in procs.items():
            assert proc.returncode == 0, (name, outputs[name])
        windows, bases = [], []
        for name, run_dir in runs.items():
            (ddir,) = (run_dir / "deployments").glob("*/")
            tfvars = json.loads((ddir / "terraform" / "terraform.tfvars.json").read_text())
            bases.append(tfvars["base_port"])
            records = sorted(ddir.glob("load/*/rep*/record.json"))
            assert len(records) == 2, records
            for path in records:
                record = json.loads(path.read_text())
                assert (record["status"], record["attempt"]) == ("done", 1), record
                windows.append((*record["window"], f"{name} {path.parent.name}"))
        assert bases[0] != bases[1], bases  # each deployment its own block
        # the campaign that loaded second had its deployment up (apply wrote servers.json)
        # while the first one loaded: it could have loaded then, and waited its turn (else
        # this test would prove nothing)
        first, second = sorted(procs, key=lambda n: min(w[0] for w in windows if n in w[2]))
        (up,) = (runs[second] / "deployments").glob("*/servers.json")
        assert up.stat().st_mtime < max(w[1] for w in windows if first in w[2]), windows
        # and no two measured windows overlap
        windows.sort()
        for (_, end, a), (start_, _, b) in itertools.pairwise(windows):
            assert start_ >= end - 0.01, f"{a} and {b}: measured windows overlap ({windows})"
        # both destroys gave their blocks back
        owners = {c.owner.state_dir for c in machine.PORTS.claims()}
        assert not any(str(run_dir) in o for o in owners for run_dir in runs.values()), owners
    finally:
        for run_dir in runs.values():
            assert_nothing_left(run_dir)
