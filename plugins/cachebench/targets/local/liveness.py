"""What "still fine" means while a local run loads (the trigger's check)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from cachebench.procs import pid_alive


def deadline_of(status_file: str | None) -> float | None:
    """The deadline the run's runner wrote once it held the load lock (None before)."""
    if not status_file:
        return None
    try:
        value = json.loads(Path(status_file).read_text()).get("deadline")
    except (OSError, ValueError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) else None


def check(
    load_pids: list[int], server_pids: list[int], status_file: str | None = None
) -> dict[str, Any] | None:
    """None while the load runs and the servers live; else the event that ends the watch."""
    dead = [p for p in server_pids if not pid_alive(p)]
    if dead:
        return {"status": "failed", "message": f"server process(es) {dead} died under load"}
    if not any(pid_alive(p) for p in load_pids):
        return {"status": "done", "message": "the run's load ended"}
    deadline = deadline_of(status_file)
    if deadline is not None and time.time() > deadline:
        return {"status": "failed", "message": "the run's load overran its deadline"}
    return None
