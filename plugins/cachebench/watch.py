"""What "still fine" means while a point is under load (shared by sensor and trigger)."""

from __future__ import annotations

import time
from typing import Any

from cachebench.local.procs import pid_alive


def check(load_pids: list[int], server_pids: list[int], deadline: float) -> dict[str, Any] | None:
    """None while the load runs and the servers live; else the event that ends the watch."""
    dead = [p for p in server_pids if not pid_alive(p)]
    if dead:
        return {"status": "failed", "message": f"server process(es) {dead} died under load"}
    if not any(pid_alive(p) for p in load_pids):
        return {"status": "done", "message": "load generators finished"}
    if time.time() > deadline:
        return {"status": "failed", "message": "load generators overran their deadline"}
    return None
