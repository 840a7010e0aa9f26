"""Process and port helpers shared by the server manager and the metrics agent.

Nothing here ever sends a signal to a pid without first proving, from /proc,
that the pid is the process we think it is: pids get reused, and pidfiles
outlive their processes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

SERVER_NAMES = frozenset({"redis-server", "valkey-server"})
AGENT_MODULE = "cachebench.targets.local.agent"
RUNNER_MODULE = "cachebench.targets.local.runner"  # one run: prefill, warm-up, measured window


def cmdline(pid: int) -> list[str] | None:
    """argv of pid as /proc shows it (servers rewrite it to their process title)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    parts = [p.decode("utf-8", "replace") for p in raw.split(b"\0") if p]
    # A process title is one NUL-terminated string with spaces: split it too.
    return [w for p in parts for w in p.split(" ") if w]


def pid_alive(pid: int | None) -> bool:
    """True when pid exists and is not a zombie (a dead child nobody reaped yet)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X"):
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def is_server(
    pid: int | None,
    node_dir: Path,
    port: int | None = None,
    names: frozenset[str] | set[str] = SERVER_NAMES,
) -> bool:
    """Is pid a redis/valkey server of node_dir (our servers run with dir=node_dir)?"""
    if not pid_alive(pid):
        return False
    argv = cmdline(pid)  # type: ignore[arg-type]
    if not argv or os.path.basename(argv[0]) not in names:
        return False
    if port is not None and not any(w.endswith(f":{port}") for w in argv[1:]):
        return False
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return os.path.realpath(cwd) == os.path.realpath(node_dir)


def is_agent(pid: int | None, state_dir: Path) -> bool:
    if not pid_alive(pid):
        return False
    argv = cmdline(pid)  # type: ignore[arg-type]
    if not argv or AGENT_MODULE not in argv:
        return False
    return os.path.realpath(state_dir) in {os.path.realpath(a) for a in argv if a.startswith("/")}


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


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


def signal_if(pid: int, sig: int, check) -> bool:
    """Send sig to pid only if check(pid) still holds; True if sent."""
    if not check(pid):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until every pid is dead; return those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if pid_alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if pid_alive(p)]
    return left


def terminate(pids: list[int], check, grace: float) -> list[int]:
    """SIGTERM then SIGKILL (each only after re-checking identity); return survivors."""
    for pid in pids:
        signal_if(pid, signal.SIGTERM, check)
    left = wait_gone(pids, grace)
    for pid in left:
        signal_if(pid, signal.SIGKILL, check)
    return wait_gone(left, 5.0)


LOAD_NAMES = frozenset({"memtier_benchmark", "redis-benchmark"})
# loadgen's redis-benchmark driver, a Python script: known by its path's tail.
LOAD_DRIVER = os.path.join("cachebench", "loadgen", "chunked.py")


def _cwd(pid: int) -> str | None:
    """pid's working directory; a removed directory keeps its old path (sans " (deleted)")."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    return cwd.removesuffix(" (deleted)")


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


def processes_under(root: Path | str) -> list[dict[str, Any]]:
    """Our servers, agents and load generators whose working directory lies in root.

    Every process cachebench starts for a point runs with its cwd inside the
    point's folder (servers: their node dir; agent: server/; load: load/), and
    that stays true when the folder is removed under them, so this finds a
    point's processes with no registry, pidfile or Terraform state at all.
    Only processes of this user and of those three kinds are returned: a shell
    someone opened in the folder is never a match.
    """
    base = os.path.realpath(root)
    uid = os.getuid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        cwd = _cwd(pid)
        if cwd is None or not (cwd == base or cwd.startswith(base + os.sep)):
            continue
        kind = kind_of(pid)
        if kind and pid_alive(pid):
            found.append({"pid": pid, "kind": kind, "cwd": cwd, "argv0": cmdline(pid)[0]})
    return found


def listening_ports(pid: int) -> list[int]:
    """TCP ports pid listens on (from /proc/<pid>/net/tcp and its socket inodes)."""
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


def kill_under(root: Path | str, grace: float = 3.0) -> dict[str, Any]:
    """Stop every process processes_under(root) finds; say what was found and what survived.

    Each signal is sent only after re-checking that the pid is still one of
    root's processes (pids get reused).
    """
    found = processes_under(root)
    ports = sorted({p for f in found for p in listening_ports(f["pid"])})

    def still_ours(pid: int) -> bool:
        return any(f["pid"] == pid for f in processes_under(root))

    survivors = terminate([f["pid"] for f in found], still_ours, grace) if found else []
    return {"found": found, "ports": ports, "survivors": survivors}
