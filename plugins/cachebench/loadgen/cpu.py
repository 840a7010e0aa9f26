"""How hard the load generators worked: their CPU use, and their demand, each second.

A generator measures the server only while it keeps up. It stops keeping up
when it is busy all of its threads' time, or when it is ready to run but waits
for a CPU (other processes have the cores: the server itself on a small
machine). So each second of the measured window records, per generator and
summed over its process tree:

* cpu: the CPU time it got (psutil: user + system, children it waited for
  included, so a chunk driver counts the redis-benchmark runs it started);
* demand: cpu plus the time its threads were runnable but waiting on a run
  queue (the second field of /proc/<pid>/task/<tid>/schedstat, the kernel's
  run delay).

Both in percent of one core; divided by what the generator can use (its
threads, fewer when its CPU affinity or its cgroup's CPU quota allows less:
a container's vCPUs, a CPU-limited test) they say how much of its CPU it
used (cpu) or wanted (demand). report/stats calls a run client-bound from the
demand's p95 (>= 85%).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import psutil

from cachebench.loadgen.handle import Handle
from cachebench.models import GeneratorCpu, LoadCpu, Workload


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_s(proc: psutil.Process, tree: list[psutil.Process]) -> float:
    t = proc.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in tree[1:]:
        try:
            c = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += c.user + c.system
    return total


def _run_delays_ns(tree: list[psutil.Process]) -> dict[tuple[int, int], int]:
    """(pid, tid) -> that thread's total run delay so far (ns), for every live thread."""
    out = {}
    for p in tree:
        try:
            tids = os.listdir(f"/proc/{p.pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                fields = Path(f"/proc/{p.pid}/task/{tid}/schedstat").read_text().split()
            except OSError:
                continue
            out[(p.pid, int(tid))] = int(fields[1])
    return out


class _Generator:
    def __init__(self, handle: Handle, proc: psutil.Process, capacity: float):
        self.handle, self.proc, self.capacity = handle, proc, capacity
        tree = _tree(proc)
        self.at, self.cpu = time.monotonic(), _cpu_s(proc, tree)
        self.delays = _run_delays_ns(tree)
        self.cpu_pct: list[float] = []
        self.demand_pct: list[float] = []

    def sample(self) -> None:
        tree = _tree(self.proc)
        if not tree:
            return
        try:
            now, cpu = time.monotonic(), _cpu_s(self.proc, tree)
        except psutil.NoSuchProcess:
            return
        delays = _run_delays_ns(tree)
        # a thread born since the last sample waited all its delay in this interval;
        # one that ended took its last wait with it (the count can only be low)
        waited = sum(d - self.delays.get(key, 0) for key, d in delays.items()) / 1e9
        span = now - self.at
        if span > 0:
            self.cpu_pct.append(round(100.0 * (cpu - self.cpu) / span, 1))
            self.demand_pct.append(round(100.0 * (cpu - self.cpu + max(waited, 0.0)) / span, 1))
        self.at, self.cpu, self.delays = now, cpu, delays


def threads_of(handle: Handle, workload: Workload) -> float:
    """Cores a generator's tool can keep busy: its threads (redis-benchmark: --threads)."""
    argv = handle.tool_argv or []
    if "--threads" in argv:
        return float(argv[argv.index("--threads") + 1])
    return float(workload.threads)


def quota_cores(pid: int, root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of pid's cgroup in cores (cgroup v2 cpu.max, v1 cpu.cfs_quota_us over
    cpu.cfs_period_us), None without one."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        rel = path.lstrip("/")
        try:
            if controllers == "":  # v2: "max 100000" or "20000 100000"
                quota, period = (root / rel / "cpu.max").read_text().split()
                if quota != "max":
                    return int(quota) / int(period)
            elif "cpu" in controllers.split(","):
                base = root / controllers / rel
                quota_us = int((base / "cpu.cfs_quota_us").read_text())
                if quota_us > 0:
                    return quota_us / int((base / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
    return None


def capacity_cores(handle: Handle, workload: Workload) -> float:
    """What a generator can use: its threads, its CPU affinity's cores, its cgroup's quota."""
    limits = [threads_of(handle, workload)]
    with contextlib.suppress(OSError):  # the process may be gone already
        limits.append(float(len(os.sched_getaffinity(handle.pid))))
    if (quota := quota_cores(handle.pid)) is not None:
        limits.append(quota)
    return min(limits)


class CpuSampler:
    """Samples every generator of a load; call sample() about once a second."""

    def __init__(self, handles: list[Handle], workload: Workload):
        self.workload = workload
        self.started_at = time.time()
        self.generators: list[_Generator] = []
        for h in handles:
            try:
                proc = psutil.Process(h.pid)
                self.generators.append(_Generator(h, proc, capacity_cores(h, workload)))
            except psutil.NoSuchProcess:
                continue

    def sample(self) -> None:
        for g in self.generators:
            g.sample()

    def report(self) -> LoadCpu:
        return LoadCpu(
            started_at=self.started_at,
            interval_s=1.0,
            host_cores=os.cpu_count(),
            generators=[
                GeneratorCpu(
                    generator=g.handle.generator,
                    side=g.handle.side,
                    tool=g.handle.tool,
                    capacity_cores=g.capacity,
                    cpu_pct=g.cpu_pct,
                    demand_pct=g.demand_pct,
                )
                for g in self.generators
            ],
        )
