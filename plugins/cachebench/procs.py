"""The processes cachebench starts, on psutil: what they are, whether they run, how
they ended, and stopping them without ever signalling a pid that was reused.

Kinds: servers (redis-server, valkey-server, named by their process title), the
metrics agent and a run's runner (``python -m`` their module), load generators
(memtier_benchmark, redis-benchmark, or loadgen's chunked driver). Each runs with
its working directory inside its deployment's folder, so `processes_under(folder)`
finds them with no registry, pidfile or Terraform state at all.

A process's end is known from its exit status: by the process that started it,
from its own ``Popen`` (``Launched``: the parent's wait), and by any other
process from psutil (its status, zombies count as ended; no exit status then).
Nothing here reads the command line to decide whether a *load generator* runs:
while a process execs, its cmdline briefly reads empty (the auth wrapper's ``sh``
execs the tool right after we start it), and a liveness check that matched it took
running generators for gone (issue 22).

A process is named by its pid and its start time in seconds since boot
(:func:`started`, from psutil's public ``create_time() - boot_time()``, which a
change of the wall clock moves both ends of): pids get reused, the pair does not.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------------------ our kinds

SERVER_NAMES = frozenset({"redis-server", "valkey-server"})
AGENT_MODULE = "cachebench.targets.local.agent"
RUNNER_MODULE = "cachebench.targets.local.runner"  # one run: prefill, warm-up, measured window
LOAD_NAMES = frozenset({"memtier_benchmark", "redis-benchmark"})
# loadgen's redis-benchmark driver, a Python script: known by its path's tail.
LOAD_DRIVER = os.path.join("cachebench", "loadgen", "chunked.py")


def cmdline(pid: int) -> list[str] | None:
    """argv of pid, each word apart (servers rewrite theirs to one process title)."""
    try:
        parts = psutil.Process(pid).cmdline()
    except psutil.Error:
        return None
    return [w for p in parts for w in p.split(" ") if w]


def _cwd(pid: int) -> str | None:
    """pid's working directory; a removed one keeps its old path (psutil drops " (deleted)")."""
    try:
        return psutil.Process(pid).cwd()
    except psutil.Error:
        return None


def pid_alive(pid: int | None) -> bool:
    """True when pid exists and is not a zombie (a dead child of ours is reaped here)."""
    if not pid or pid <= 0:
        return False
    try:
        status = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def is_server(
    pid: int | None,
    node_dir: Path,
    port: int | None = None,
    names: frozenset[str] | set[str] = SERVER_NAMES,
) -> bool:
    """Is pid a redis/valkey server of node_dir (our servers run with dir=node_dir)?"""
    if pid is None or not pid_alive(pid):
        return False
    argv = cmdline(pid)
    if not argv or os.path.basename(argv[0]) not in names:
        return False
    if port is not None and not any(w.endswith(f":{port}") for w in argv[1:]):
        return False
    cwd = _cwd(pid)
    return cwd is not None and os.path.realpath(cwd) == os.path.realpath(node_dir)


def is_agent(pid: int | None, state_dir: Path) -> bool:
    if pid is None or not pid_alive(pid):
        return False
    argv = cmdline(pid)
    if not argv or AGENT_MODULE not in argv:
        return False
    return os.path.realpath(state_dir) in {os.path.realpath(a) for a in argv if a.startswith("/")}


def kind_of(pid: int) -> str | None:
    """'server', 'agent' or 'load' for the processes cachebench starts, else None."""
    argv = cmdline(pid)
    if not argv:
        return None
    name = os.path.basename(argv[0])
    if name in SERVER_NAMES:
        return "server"
    if name in LOAD_NAMES:
        return "load"
    if name.startswith("python") and any(a.endswith(os.sep + LOAD_DRIVER) for a in argv[1:4]):
        return "load"
    if AGENT_MODULE in argv:
        return "agent"
    if RUNNER_MODULE in argv:
        return "load"
    return None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def processes_under(root: Path | str) -> list[dict[str, Any]]:
    """Our servers, agents and load generators whose working directory lies in root.

    That stays true when the folder is removed under them. Only processes of this
    user and of those three kinds are returned: a shell someone opened in the
    folder is never a match.
    """
    base = os.path.realpath(root)
    uid = os.geteuid()
    found = []
    for proc in psutil.process_iter(["uids", "cwd"]):
        uids, cwd = proc.info["uids"], proc.info["cwd"]
        if uids is None or uids.effective != uid or not cwd:
            continue
        if not (cwd == base or cwd.startswith(base + os.sep)):
            continue
        kind = kind_of(proc.pid)
        if kind and pid_alive(proc.pid) and (argv := cmdline(proc.pid)):
            found.append({"pid": proc.pid, "kind": kind, "cwd": cwd, "argv0": argv[0]})
    return found


# ------------------------------------------------------------------ ports


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Can a server listen on host:port right now? (SO_REUSEADDR, as the servers use.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def listening_ports(pid: int) -> list[int]:
    """TCP ports pid listens on. Read from /proc/<pid>/net/tcp, the table of pid's own
    network namespace (a miniature's node runs in its own): psutil's net_connections
    reads the caller's namespace's table and would miss them."""
    try:
        inodes = {
            os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1]
            for fd in os.listdir(f"/proc/{pid}/fd")
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")
        }
    except OSError:
        return []
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and f[9] in inodes:  # 0A: LISTEN
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


# ------------------------------------------------------------------ stopping


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid is dead; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if pid_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if pid_alive(p)]
    return left


def stop(pids: list[int], check: Callable[[int], bool], grace: float) -> list[int]:
    """SIGTERM, then SIGKILL after grace, each pid that check() proves ours now; the
    survivors. Each is named by (pid, start) once proven, so a reused pid is never hit."""
    idents = [(pid, started(pid)) for pid in pids if check(pid)]
    terminate([i for i in idents if i[1] is not None], grace)
    return [pid for pid in pids if pid_alive(pid) and check(pid)]


def kill_under(root: Path | str, grace: float = 3.0) -> dict[str, Any]:
    """Stop every process processes_under(root) finds; say what was found and what survived."""
    found = processes_under(root)
    ports = sorted({p for f in found for p in listening_ports(f["pid"])})

    def still_ours(pid: int) -> bool:
        return any(f["pid"] == pid for f in processes_under(root))

    survivors = stop([f["pid"] for f in found], still_ours, grace) if found else []
    return {"found": found, "ports": ports, "survivors": survivors}
