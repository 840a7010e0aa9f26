"""Local points never load at the same time, even while another point's watch is deferred."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from cachebench.loadgen import procs
from cachebench.targets import local
from cachebench.workspace import PointDir


def _handles(pid_dir: Path, argv: list[str], pid: int, started: float) -> None:
    pid_dir.mkdir(parents=True)
    handle = {
        "pid": pid,
        "start_ticks": procs.start_ticks(pid),
        "argv": argv,
        "started_at": started,
        "duration_s": 1,
    }
    (pid_dir / "handles.json").write_text(json.dumps([handle]))


def test_waits_for_another_points_running_load(tmp_path: Path) -> None:
    argv = ["sleep", "1.5"]
    other = subprocess.Popen(argv)
    try:
        _handles(tmp_path / "points" / "a", argv, other.pid, time.time())
        me = PointDir(tmp_path / "points" / "b")
        waited = local.wait_for_other_loads(me, poll_s=0.05)
        assert 1.0 <= waited < 10
        assert other.poll() is not None or not procs.alive(other.pid)
    finally:
        other.kill()
        other.wait()


def test_no_wait_for_finished_loads_or_own_or_past_deadline(tmp_path: Path) -> None:
    done = subprocess.Popen(["true"])
    done.wait()
    _handles(tmp_path / "points" / "a", ["true"], done.pid, time.time())
    stuck = subprocess.Popen(["sleep", "30"])
    try:
        # started long ago: past its watch deadline, so not waited for
        _handles(tmp_path / "points" / "c", ["sleep", "30"], stuck.pid, time.time() - 10_000)
        own = PointDir(tmp_path / "points" / "b")
        _handles(own.path, ["sleep", "30"], stuck.pid, time.time())  # its own handles
        assert local.wait_for_other_loads(own, poll_s=0.05) < 0.5
    finally:
        stuck.kill()
        stuck.wait()
