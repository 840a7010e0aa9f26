"""What local campaigns on one machine share, claimed machine-wide: loopback ports, the CPU.

Two campaigns may run on one machine at once (a scheduled run beside a UI trigger),
each with its own results folder and Airflow home, so nothing of one campaign run's
folder can keep them apart. They meet in a directory every campaign on the machine
sees (CACHEBENCH_MACHINE_DIR, default /tmp/cachebench):

* ``ports/``: each local deployment's block of ports (its cluster bus ports +10000 with
  it), a claim of claims.py claimed when its tfvars are rendered, probed free at that
  moment, and kept until its destroy leaves no process and no port behind, so a
  retried ``apply`` uses a block no other deployment on the machine can have. A claim
  whose deployment folder is gone, or whose expiry (the reaper's) has passed, no
  longer counts once its ports are free.
* ``load.lock``: a run's runner holds its flock while it prefills, warms up and loads,
  and an export holds it while it reads metrics and draws (targets.local quiet), so no
  two loads, nor a load and an export, share the CPUs, whichever campaign they belong
  to. The kernel drops an flock when its holder dies: it never goes stale.
  ``load.holder.json`` names the holder (pid and start, checked with psutil before
  it is believed), for the waiters' status.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cachebench import jsonfile, procs
from cachebench.targets.local import claims
from cachebench.targets.local.config import BUS_PORT_OFFSET

MACHINE_ENV = "CACHEBENCH_MACHINE_DIR"
PORT_SPAN, PORT_BLOCK = 2000, 20  # a deployment's nodes take a block of the span
LOAD_LOCK = "load.lock"
HOLDER = "load.holder.json"


def machine_dir() -> Path:
    """The directory every campaign on this machine shares (made, world-writable with the
    sticky bit like /tmp, when missing: campaigns of any user meet there)."""
    path = Path(os.environ.get(MACHINE_ENV) or "/tmp/cachebench")
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            path.chmod(0o1777)
    return path


def _shared_file(name: str) -> Path:
    """A file of the machine directory, made writable by all when missing: it is written
    in place (under a lock where it matters), since the sticky bit lets no user replace
    another's file."""
    return _shared(machine_dir() / name)


def _shared(path: Path) -> Path:
    if not path.exists():
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o666)  # whatever the umask: other users' campaigns use it too
        os.close(fd)
    return path


def _write_in_place(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def port_first() -> int:
    """Start of the local port range; CACHEBENCH_PORT_FIRST moves it (e.g. for parallel CI).

    The default keeps the span and its cluster bus ports (20000-21999, 30000-31999) below
    Linux's ephemeral range (32768 up): a port there can be taken by any outgoing
    connection between the free-port check and the server's bind."""
    return int(os.environ.get("CACHEBENCH_PORT_FIRST", "20000"))


# ---------------------------------------------------------------- ports


def _ports(c: claims.Claim) -> set[int]:
    own = set(range(c.first, c.first + c.size))
    return own | {p + BUS_PORT_OFFSET for p in own}


# In the machine dir, not root's /run: campaigns of any user claim ports, and a session
# may keep claims of its own (CACHEBENCH_MACHINE_DIR) since the probe sees every port.
PORTS = claims.Pool(
    home=lambda: machine_dir() / "ports",
    mode=0o777,  # no sticky bit: any campaign may take back another user's stale claim
    units=_ports,
    busy=lambda c: not all(procs.port_free(p) for p in _ports(c)),
)


def claim_ports(owner: claims.Owner, nodes: int) -> int:
    """The first block of `nodes` ports (and bus ports) no live claim holds and nothing
    listens on, claimed for owner until release_ports; the block it holds already when
    it has one (a retried render)."""
    first = port_first()
    blocks = [(first + b * PORT_BLOCK, nodes) for b in range(PORT_SPAN // PORT_BLOCK)]
    if (held := PORTS.claim(owner, blocks)) is not None:
        return held.first
    raise RuntimeError(
        f"no free block of {nodes} ports in {first}-{first + PORT_SPAN} (nor their bus ports "
        f"+{BUS_PORT_OFFSET}): other deployments on this machine hold them "
        f"({PORTS.home()}); set CACHEBENCH_PORT_FIRST to another range"
    )


def release_ports(key: str) -> bool:
    """Give back the block of deployment `key` once none of its ports is in use (destroy
    left nothing); False when it is kept (or there was none)."""
    return PORTS.release(key)


# ---------------------------------------------------------------- the load lock


def load_lock() -> Path:
    return _shared_file(LOAD_LOCK)


def _take(lock: Path, blocking: bool, what: str) -> int:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BaseException:
        os.close(fd)
        raise
    me = {"pid": os.getpid(), "start": procs.started(os.getpid()), "what": what}
    with contextlib.suppress(OSError):  # who holds it is for the others' status only
        _write_in_place(_shared(lock.with_name(HOLDER)), json.dumps(me).encode())
    return fd


def take_load_lock(lock: Path, what: str) -> int:
    """Block until this process holds the load lock file `lock` (load_lock(), or a test's);
    the fd that holds it, kept open for the process's life: the kernel releases the flock
    when it exits. `what` names the holder for the others' status."""
    return _take(lock, True, what)


@contextlib.contextmanager
def holding_load(what: str) -> Iterator[None]:
    """Hold the machine's load lock for a section, or raise BlockingIOError at once when
    another process holds it."""
    fd = _take(load_lock(), False, what)
    try:
        yield
    finally:
        os.close(fd)  # the flock goes with it


def load_holder(lock: Path | None = None) -> dict[str, Any] | None:
    """Who holds the load lock now: its holder's pid, start and what it is, once the lock
    is seen held and that process still runs (pid and start match, by psutil)."""
    lock = lock or load_lock()
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None  # nobody holds it (given back at once)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    holder = jsonfile.read_dict(lock.with_name(HOLDER))
    if not holder or not isinstance(holder.get("pid"), int):
        return None
    return holder if procs.running(holder["pid"], holder.get("start")) else None
