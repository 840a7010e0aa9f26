"""Local runs never load at the same time, whichever deployment they belong to: a run's
runner waits for the campaign run's load lock before it touches the servers."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from cachebench.models import Endpoint, Node, Workload
from cachebench.targets.local import runner

ROOT = Path(__file__).resolve().parents[2]


def _job(tmp_path: Path, lock: Path) -> Path:
    # Nothing listens on this port: once past the lock, the runner fails its prefill.
    node = Node(node_id="0001-001", host="127.0.0.1", port=1, role="primary", shard=1)
    job = runner.RunJob(
        key="p/rep1",
        workload=Workload(name="w", duration_seconds=1, warmup_seconds=0, key_space=10),
        endpoint=Endpoint(host="127.0.0.1", port=1, cluster_mode=False, nodes=[node]),
        tool="redis-benchmark",
        generators=1,
        out_dir=str(tmp_path / "out"),
        lock=str(lock),
    )
    path = tmp_path / "job.json"
    path.write_text(job.model_dump_json())
    return path


def _status(tmp_path: Path) -> dict:
    try:
        return json.loads((tmp_path / "out" / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def test_a_run_waits_for_the_load_lock_then_goes_on(tmp_path: Path) -> None:
    lock = tmp_path / ".load.lock"
    held = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)  # another run is loading
    proc = subprocess.Popen(
        [sys.executable, "-m", runner.MODULE, str(_job(tmp_path, lock))],
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    try:
        deadline = time.monotonic() + 30
        while _status(tmp_path).get("phase") != "waiting" and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        assert _status(tmp_path)["phase"] == "waiting" and proc.poll() is None
        assert "deadline" not in _status(tmp_path)  # its clock starts once it holds the lock
        os.close(held)  # the other run ends
        assert proc.wait(timeout=30) == 1
        error = json.loads((tmp_path / "out" / "error.json").read_text())
        assert error["step"] == "prefill" and "Connection" in error["type"] + error["message"]
        assert _status(tmp_path).get("deadline", 0) > time.time() - 60
    finally:
        proc.kill()
        proc.wait()
