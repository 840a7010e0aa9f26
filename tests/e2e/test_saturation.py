"""A run that measures its load generator, not the server, is told apart (issue 12, item 4).

Real redis-server, real redis-benchmark through loadgen (the chunked driver), the
runner's CPU sampler. Given too little CPU: the generator runs in a cgroup
whose CPU quota is a fifth of a core (as a container's vCPUs bound an ECS
task), against a server with a CPU of its own; it uses all the CPU it may, and
report.stats calls the run client-bound. The control runs a light load on the
generator's own CPU: it mostly waits for the network, and is not.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from cachebench import loadgen
from cachebench.loadgen.cpu import CpuSampler
from cachebench.models import Endpoint, Node, Workload
from cachebench.report import stats

pytestmark = pytest.mark.e2e


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path, machine_load):
    if (os.cpu_count() or 1) < 2:
        pytest.fail("this test needs 2 CPUs: one for the server, one for the generator")
    password, port = secrets.token_hex(16), _port()
    proc = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--requirepass",
            password,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    os.sched_setaffinity(proc.pid, {1})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    node = Node(node_id="0001-001", host="127.0.0.1", port=port, role="primary", shard=1)
    yield Endpoint(host="127.0.0.1", port=port, cluster_mode=False, nodes=[node]), password
    proc.kill()
    proc.wait()


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller (this machine's)


@pytest.fixture
def fifth_of_a_core():
    """A cgroup whose CPU quota is 0.2 core; processes moved in leave it at teardown."""
    if not CGROUP_CPU.is_dir():
        pytest.fail(f"{CGROUP_CPU} is missing: a CPU quota cannot be set on this machine")
    group = CGROUP_CPU / f"cachebench-test-{secrets.token_hex(4)}"
    group.mkdir()
    (group / "cpu.cfs_period_us").write_text("100000")
    (group / "cpu.cfs_quota_us").write_text("20000")
    yield group
    for pid in (group / "cgroup.procs").read_text().split():
        (CGROUP_CPU / "cgroup.procs").write_text(pid)
    group.rmdir()


def _pin(pid: int, cpu: int, cgroup: Path | None) -> None:
    for p in (psutil.Process(pid), *psutil.Process(pid).children(recursive=True)):
        p.cpu_affinity([cpu])
        if cgroup is not None:  # the chunks it starts later are born in it
            (cgroup / "cgroup.procs").write_text(str(p.pid))


def _measure(tmp_path, endpoint, password, workload, cgroup: Path | None) -> stats.Saturation:
    try:
        handles = loadgen.start_load(
            workload,
            endpoint,
            password=password,
            out_dir=tmp_path / workload.name,
            generators=1,
            tool="redis-benchmark",
            phase="measured",
            duration_s=workload.duration_seconds,
        )
        for h in handles:  # on CPU 0, the server has CPU 1
            _pin(h.pid, 0, cgroup)
        sampler = CpuSampler(handles, workload)
        assert [g.capacity for g in sampler.generators] == [0.2 if cgroup else 1.0]
        while loadgen.load_running(handles):
            time.sleep(1.0)
            sampler.sample()
        result = loadgen.collect_load(handles)
    finally:
        loadgen.stop_load(handles)
    cpu = sampler.report()
    assert all(len(g.demand_pct) >= 3 for g in cpu.generators), cpu
    assert result.requests > 0
    return stats.saturation([g.utilisation_pct for g in cpu.generators])


def test_a_load_generator_given_too_little_cpu_is_client_bound(
    tmp_path, server, fifth_of_a_core
) -> None:
    endpoint, password = server
    heavy = Workload(name="heavy", ratio="0:1", key_space=1000, value_size=32, pipeline=16,
                     clients=8, threads=1, warmup_seconds=0, duration_seconds=5)  # fmt: skip
    sat = _measure(tmp_path, endpoint, password, heavy, fifth_of_a_core)
    assert sat.client_bound, sat
    assert sat.cpu_p95_pct >= stats.CPU_LIMIT_PCT
    assert "client-bound: measures the load generator, not the server" in sat.reasons[0]


def test_a_light_load_on_its_own_cpu_is_not(tmp_path, server) -> None:
    endpoint, password = server
    light = Workload(name="light", ratio="0:1", key_space=1000, value_size=32, pipeline=1,
                     clients=1, threads=1, warmup_seconds=0, duration_seconds=5)  # fmt: skip
    sat = _measure(tmp_path, endpoint, password, light, None)
    assert not sat.client_bound, sat
