"""Detached processes we start (load generators, a run's runner): how they ended.

A process's end is known from its exit status: by the process that started it,
from its own ``Popen`` (``Launched``: the parent's wait), and by any other
process from psutil (its status, zombies count as ended; no exit status then).
Nothing here reads /proc text such as the command line to decide whether a
process runs: while a process execs, its cmdline briefly reads empty (the auth
wrapper's ``sh`` execs the tool right after we start it), and a liveness check
that matched it took running generators for gone (issue 22).

A process is named by its pid and its start time in seconds since boot
(:func:`started`, from psutil's public ``create_time() - boot_time()``, which a
change of the wall clock moves both ends of): pids get reused, the pair does not.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psutil

Ident = tuple[int, float | None]  # (pid, start in seconds since boot; None: unknown)


def started(pid: int) -> float | None:
    """pid's start in seconds since boot (to the clock tick), or None when it is gone."""
    try:
        return round(psutil.Process(pid).create_time() - psutil.boot_time(), 2)
    except psutil.Error:
        return None


def _process(pid: int, start: float | None) -> psutil.Process | None:
    """psutil's view of pid when it is still the process that started at `start`."""
    try:
        proc = psutil.Process(pid)
        if start is not None and round(proc.create_time() - psutil.boot_time(), 2) != start:
            return None  # the pid was reused
        return proc
    except psutil.Error:
        return None


def running(pid: int, start: float | None) -> bool:
    """Is the process (pid, start) still running? A zombie has ended."""
    proc = _process(pid, start)
    try:
        return proc is not None and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def describe_exit(returncode: int | None) -> str:
    """How a process ended, from its wait status as Popen gives it."""
    if returncode is None:
        return "its exit status is unknown (not started by this process)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "?"
        return f"it was killed by signal {-returncode} ({name})"
    return f"it exited with status {returncode}"


@dataclass
class Launched:
    """A process this process started: its end and exit status come from its Popen."""

    proc: subprocess.Popen
    start: float | None
    signalled: bool = False  # we sent it a signal (stop), so a signal death is ours

    @property
    def ident(self) -> Ident:
        return self.proc.pid, self.start


# The processes this one started, by (pid, start): polled (and so reaped) by
# exit_status, never left to the garbage collector.
_LAUNCHED: dict[Ident, Launched] = {}


def launch(argv: Sequence[str], **popen: object) -> Launched:
    """Popen argv and remember it, so its end is known from its exit status."""
    for child in _LAUNCHED.values():
        child.proc.poll()  # reap the ones that ended: no zombies pile up (their status stays)
    proc = subprocess.Popen(list(argv), **popen)  # type: ignore[call-overload]
    return adopt(proc)


def adopt(proc: subprocess.Popen) -> Launched:
    """Remember a child started elsewhere in this process (reaped once it ends)."""
    child = Launched(proc, started(proc.pid))
    _LAUNCHED[child.ident] = child
    return child


def launched(pid: int, start: float | None) -> Launched | None:
    return _LAUNCHED.get((pid, start))


def ended(pid: int, start: float | None) -> bool:
    """Has the process (pid, start) ended? Our children: from their exit status."""
    child = launched(pid, start)
    if child is not None:
        return child.proc.poll() is not None
    return not running(pid, start)


def exit_status(pid: int, start: float | None) -> int | None:
    """The wait status of a child of ours that ended (negative: killed by that signal);
    None while it runs or when it is not our child."""
    child = launched(pid, start)
    return None if child is None else child.proc.poll()


def signalled_by_us(pid: int, start: float | None) -> bool:
    child = launched(pid, start)
    return child is not None and child.signalled


def _send(pid: int, start: float | None, sig: int) -> bool:
    """Send sig to (pid, start) if it still runs; True if sent."""
    child = launched(pid, start)
    if child is not None:
        if child.proc.poll() is not None:
            return False
        child.signalled = True
        child.proc.send_signal(sig)  # Popen never signals a reaped pid
        return True
    proc = _process(pid, start) if start is not None else None  # unproven: left alone
    if proc is None:
        return False
    try:
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        proc.send_signal(sig)  # psutil refuses a pid reused since `proc` was made
    except psutil.Error:
        return False
    return True


def _wait_ended(idents: Iterable[Ident], timeout: float) -> list[Ident]:
    """Wait until each process has ended; those still running at the deadline."""
    deadline = time.monotonic() + timeout
    left = [i for i in idents if not ended(*i)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [i for i in left if not ended(*i)]
    return left


def terminate(idents: Sequence[Ident], grace_s: float) -> list[int]:
    """SIGTERM each still-running process, SIGKILL after grace_s; the pids signalled.

    A process is only signalled while it is still the one named (pid and start).
    """
    signalled = [pid for pid, start in idents if _send(pid, start, signal.SIGTERM)]
    left = _wait_ended([i for i in idents if i[0] in signalled], grace_s)
    for pid, start in left:
        with contextlib.suppress(ProcessLookupError):
            _send(pid, start, signal.SIGKILL)
    _wait_ended(left, 5.0)
    return signalled
