"""Detached generator processes: identity checks from /proc before any signal."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Sequence
from pathlib import Path

# Liveness (zombies count as gone) and waiting are the same as for the servers.
from cachebench.local.procs import pid_alive as alive
from cachebench.local.procs import wait_gone


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after "(comm)"; comm itself may hold spaces or parentheses.
    return stat.rsplit(")", 1)[-1].split()


def start_ticks(pid: int) -> int | None:
    """Process start time (clock ticks since boot): tells a reused pid apart."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [p.decode("utf-8", "replace") for p in raw.split(b"\0")[:-1]]


def _contains(seq: Sequence[str], sub: Sequence[str]) -> bool:
    n = len(sub)
    return any(list(seq[i : i + n]) == list(sub) for i in range(len(seq) - n + 1))


def _matches(argv: Sequence[str], form: Sequence[str]) -> bool:
    """argv is form (prefix: tools append their auth args), or form run by an
    interpreter (``python /path/tool args...`` for a script tool)."""
    if not form:
        return False
    if list(argv[: len(form)]) == list(form):
        return True
    names = {os.path.basename(a) for a in argv}
    return os.path.basename(form[0]) in names and _contains(argv, form[1:])


def is_ours(pid: int, ticks: int | None, argv_forms: Sequence[Sequence[str]]) -> bool:
    """Still the process we started: same start time and an expected argv."""
    if not alive(pid):
        return False
    if ticks is not None and start_ticks(pid) != ticks:
        return False
    argv = cmdline(pid)
    return bool(argv) and any(_matches(argv, form) for form in argv_forms)


def terminate(
    procs: Sequence[tuple[int, int | None, Sequence[Sequence[str]]]], grace_s: float
) -> list[int]:
    """SIGTERM, then SIGKILL after grace_s, each only if is_ours() still holds.

    procs: (pid, start_ticks, argv_forms). Returns the pids that were signalled.
    """
    signalled: list[int] = []
    for pid, ticks, forms in procs:
        if is_ours(pid, ticks, forms):
            try:
                os.kill(pid, signal.SIGTERM)
                signalled.append(pid)
            except ProcessLookupError:
                pass
    left = set(wait_gone(signalled, grace_s))
    for pid, ticks, forms in procs:
        if pid in left and is_ours(pid, ticks, forms):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    wait_gone(list(left), 5.0)
    return signalled
