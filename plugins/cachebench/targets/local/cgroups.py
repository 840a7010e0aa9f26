"""CPU and memory limits for a local deployment's processes: cgroups v1 or v2.

A deployment's cgroups are named after it (``cachebench-<key>``, see
cachebench.targets.local.miniature) and hold one member per server node (its CPU quota
and memory limit) plus ``load`` (the load generators: the CPU the servers are
denied)::

    v1  <controller mount>/cachebench-<key>/<member>   one tree per controller (cpu, memory)
    v2  <cgroup2 mount>/cachebench-<key>/<member>       one tree, cpu + memory enabled

v2 is used when its mount offers both the cpu and the memory controller; else v1
when both are mounted (a machine whose controllers are bound to v1 mounts a
cgroup2 tree without them). A process joins by writing its pid to each tree's
``cgroup.procs``; its children inherit the cgroup.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from cachebench.models import Strict

MOUNTS = Path("/proc/self/mounts")
CONTROLLERS = ("cpu", "memory")
# The CFS period the quota is a share of: 10 ms, not the kernel's 100 ms, so a node held to
# a quarter of a core waits at most 7.5 ms at a time, not 75 ms (an EC2 vCPU is not a
# quota: a long throttle would show up as a latency tail no ElastiCache node has).
PERIOD_US = 10_000
MIN_QUOTA_US = 1_000  # the kernel's floor: 0.1 core at this period
DEFAULT_V1_SHARES, DEFAULT_V2_WEIGHT = 1024, 100
PREFIX = "cachebench-"
# What a controller's directory must hold to be usable (a masked mount has none of it).
PROBE = {
    1: {"cpu": "cpu.cfs_quota_us", "memory": "memory.limit_in_bytes"},
    2: {"cpu": "cgroup.controllers", "memory": "cgroup.controllers"},
}


class CgroupError(RuntimeError):
    """A cgroup could not be made, limited, joined or removed; the message says which."""


class Hierarchy(Strict):
    """The cgroup trees this machine offers for the cpu and memory controllers."""

    version: Literal[1, 2]
    roots: dict[str, str] = Field(description="controller -> its tree's mount directory")

    def tree(self, controller: str) -> Path:
        return Path(self.roots[controller])

    @property
    def trees(self) -> list[Path]:
        """Each distinct tree once (v2: one for both controllers)."""
        return [Path(r) for r in dict.fromkeys(self.roots[c] for c in CONTROLLERS)]


class Limits(Strict):
    cpu_cores: float | None = Field(None, gt=0, description="CFS quota in cores; None: none")
    memory_bytes: int | None = Field(None, gt=0, description="memory limit; None: none")
    cpu_weight: int = Field(
        DEFAULT_V2_WEIGHT, ge=1, le=10_000, description="share of contended CPU (v2 scale)"
    )


class Group(Strict):
    """One member's cgroup: its directory in each tree."""

    name: str = Field(description="the deployment's cgroup, cachebench-<key>")
    member: str
    dirs: list[str]

    @property
    def procs_files(self) -> list[str]:
        return [str(Path(d) / "cgroup.procs") for d in self.dirs]


def _mounts(mounts: Path = MOUNTS) -> list[tuple[str, str, set[str]]]:
    """(fstype, mount point, options) of every cgroup mount."""
    out = []
    with contextlib.suppress(OSError):
        for line in mounts.read_text().splitlines():
            f = line.split()
            if len(f) >= 4 and f[2] in ("cgroup", "cgroup2"):
                out.append((f[2], f[1].replace("\\040", " "), set(f[3].split(","))))
    return out


def detect(mounts: Path = MOUNTS) -> tuple[Hierarchy | None, str]:
    """(the usable hierarchy, "") or (None, what is missing)."""
    found = _mounts(mounts)
    v2_seen = []
    for fstype, point, _ in found:
        if fstype != "cgroup2":
            continue
        try:
            offered = set((Path(point) / "cgroup.controllers").read_text().split())
        except OSError:
            v2_seen.append(f"{point} unreadable")
            continue
        v2_seen.append(f"{point} offers {', '.join(sorted(offered)) or 'no controller'}")
        if set(CONTROLLERS) <= offered:
            return Hierarchy(version=2, roots={c: point for c in CONTROLLERS}), ""
    roots = {}
    for fstype, point, options in found:
        for c in CONTROLLERS:
            if fstype == "cgroup" and c in options and (Path(point) / PROBE[1][c]).exists():
                roots.setdefault(c, point)
    if set(CONTROLLERS) <= set(roots):
        return Hierarchy(version=1, roots=roots), ""
    missing = [c for c in CONTROLLERS if c not in roots]
    seen = "; ".join(v2_seen) or "no cgroup2 mount"
    return None, (
        f"cgroups: no tree with the cpu and memory controllers (cgroup v2: {seen}; "
        f"cgroup v1: {', '.join(missing)} not mounted)"
    )


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as e:
        raise CgroupError(f"cannot write {value.strip()!r} to {path}: {e.strerror}") from e


def create(h: Hierarchy, name: str, member: str, limits: Limits) -> Group:
    """Make (or find) name/member in every tree and set its limits; idempotent."""
    dirs = []
    for tree in h.trees:
        top, own = tree / name, tree / name / member
        try:
            top.mkdir(exist_ok=True)
            if h.version == 2:  # children get the controllers only through their parents
                for parent in (tree, top):
                    enabled = (parent / "cgroup.subtree_control").read_text().split()
                    if not set(CONTROLLERS) <= set(enabled):
                        _write(parent / "cgroup.subtree_control", "+cpu +memory")
            own.mkdir(exist_ok=True)
        except OSError as e:
            raise CgroupError(f"cannot make cgroup {own}: {e.strerror}") from e
        dirs.append(str(own))
    group = Group(name=name, member=member, dirs=dirs)
    _limit(h, group, limits)
    return group


def _limit(h: Hierarchy, group: Group, limits: Limits) -> None:
    quota = max(MIN_QUOTA_US, round(limits.cpu_cores * PERIOD_US)) if limits.cpu_cores else None
    if h.version == 2:
        d = Path(group.dirs[0])
        _write(d / "cpu.max", f"{quota if quota else 'max'} {PERIOD_US}")
        _write(d / "cpu.weight", str(limits.cpu_weight))
        _write(d / "memory.max", str(limits.memory_bytes) if limits.memory_bytes else "max")
        return
    cpu = Path(h.tree("cpu")) / group.name / group.member
    memory = Path(h.tree("memory")) / group.name / group.member
    _write(cpu / "cpu.cfs_period_us", str(PERIOD_US))
    _write(cpu / "cpu.cfs_quota_us", str(quota if quota else -1))
    _write(cpu / "cpu.shares", str(limits.cpu_weight * DEFAULT_V1_SHARES // DEFAULT_V2_WEIGHT))
    # -1 is "no limit" in v1; the largest page-aligned value is what the kernel shows for it
    _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes or -1))


def join(group: Group, pid: int) -> None:
    """Move pid (every thread of it) into the group, in every tree."""
    for procs in group.procs_files:
        _write(Path(procs), str(pid))


def pids(group: Group) -> list[int]:
    out: set[int] = set()
    for procs in group.procs_files:
        with contextlib.suppress(OSError, ValueError):
            out.update(int(p) for p in Path(procs).read_text().split())
    return sorted(out)


def cpu_limit_cores(h: Hierarchy, group: Group) -> float | None:
    """The CPU quota the kernel holds for the group, in cores (None: no quota)."""
    if h.version == 2:
        quota, period = (Path(group.dirs[0]) / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    cpu = Path(h.tree("cpu")) / group.name / group.member
    quota_us = int((cpu / "cpu.cfs_quota_us").read_text())
    return None if quota_us < 0 else quota_us / int((cpu / "cpu.cfs_period_us").read_text())


def memory_limit_bytes(h: Hierarchy, group: Group) -> int:
    if h.version == 2:
        raw = (Path(group.dirs[0]) / "memory.max").read_text().strip()
        return -1 if raw == "max" else int(raw)
    return int((Path(h.tree("memory")) / group.name / group.member / "memory.limit_in_bytes")
               .read_text())  # fmt: skip


def existing(h: Hierarchy, prefix: str = PREFIX) -> list[str]:
    """Directories named prefix* at the top of each tree (a deployment's cgroups)."""
    out = []
    for tree in h.trees:
        with contextlib.suppress(OSError):
            out += [
                str(p) for p in sorted(tree.iterdir()) if p.is_dir() and p.name.startswith(prefix)
            ]
    return out


def remove(h: Hierarchy, name: str, grace_s: float = 5.0) -> list[str]:
    """Remove name and its members from every tree; kill whatever still runs in them.

    The caller stops its servers first; a process left in a member (one that
    outlived its stop) is killed, as nothing else would ever stop it. Returns what
    could not be removed (empty: gone).
    """
    left = []
    for tree in h.trees:
        top = tree / name
        if not top.is_dir():
            continue
        members = [p for p in top.iterdir() if p.is_dir()]
        for d in [*members, top]:
            _kill_all(d, grace_s)
            if not _rmdir(d, grace_s):
                left.append(f"cgroup {d} could not be removed")
    return left


def _kill_all(d: Path, grace_s: float) -> None:
    """SIGKILL every process in cgroup dir d (none are anyone else's: they joined it)."""
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        try:
            inside = [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            return
        if not inside:
            return
        for pid in inside:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _rmdir(d: Path, grace_s: float) -> bool:
    """rmdir a cgroup (EBUSY while a process dying in it is not gone yet: try again)."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            d.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
            time.sleep(0.05)
