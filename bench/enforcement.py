"""Figure 6, enforcement fidelity: each limit a miniature asks for against what the kernel
delivered, measured in one run.

* CPU share: a miniature node held to q cores (cgroup quota) under a GET load that
  would take more: the server's CPU seconds per second (/proc/<pid>/stat) over the
  window, against q; for two quotas, 3 windows each (median).
* Shaped rate and burst duration (outbound, real servers): GETs of 1 KiB from a quarter
  core against a 0.1 Gbps baseline and a 300 MB bucket; the node's tbf counters read
  every 0.1 s: the bytes per second once the bucket is empty against the baseline,
  and when it emptied against bucket / (offered - baseline), offered being what it
  sent before.
* Burst rate (inbound, no server): a TCP stream from the root namespace into a
  node's namespace through a 0.05 Gbps baseline, 0.4 Gbps burst and 100 MB bucket:
  what passed while the bucket held tokens against the burst rate, then against the
  baseline.

Each limit is its own baseline (the "asked"), so the ratio says how faithfully the
kernel delivered it; the machine's other work can only lower what a node gets.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Row, cpu_seconds, median, scaled, uninterrupted

sys.path.insert(0, str(ROOT / "plugins"))

from cachebench import engines
from cachebench.loadgen.auth import AUTH_ENV, wrap_with_env_auth
from cachebench.targets.local import claims, miniature, netns, runtime, servers, shaping
from cachebench.targets.local.config import Registry, ServerConfig

FIG = "6 enforcement"
CPU_QUOTAS = (0.1, 0.25)
CPU_WINDOW_S, CPU_WINDOWS = scaled(4.0, 2.0), scaled(3, 1)
NET = {"baseline_gbps": 0.1, "burst_gbps": 5.0, "bucket_mb": 300.0}
PEAK = {"baseline_gbps": 0.05, "burst_gbps": 0.4, "bucket_mb": 100.0}
SAMPLE_S = 0.1


class Deployment:
    """One miniature node (redis 7.0) started and stopped as Terraform's local-exec does
    (`up`, `down`); whatever `up` got to make is removed on the way out."""

    def __init__(self, work: Path, name: str, cpu: float, net: dict | None):
        self.name, self.cpu, self.net = name, cpu, net
        self.sd = work / name / "server"
        self.key = miniature.key_of(self.sd)

    def __enter__(self) -> Deployment:
        self.sd.mkdir(parents=True)
        expires = time.time() + 900
        owner = claims.Owner(key=self.key, state_dir=str(self.sd), expires_at=expires)
        try:
            net = self.net
            self.mini = miniature.Miniature(
                key=self.key,
                mimics="cache.t4g.micro",
                subnet=netns.subnet_of(netns.claim(owner)),
                cpu_limit_cores=self.cpu,
                memory_limit_bytes=2**29,
                load_cpu_cores=miniature.load_cores(os.cpu_count() or 1, 1, self.cpu),
                allowance=miniature.allowance_of(**net) if net else None,
            )
            binary = engines.server_binary("redis", "7.0")
            assert binary is not None, "no redis 7.0 server binary"
            config = ServerConfig(
                deployment_id=self.name,
                campaign="bench",
                run_id="bench",
                engine="redis",
                engine_version="7.0",
                server_binary=str(binary),
                cluster_mode=False,
                shards=1,
                replicas=0,
                base_port=27000,
                maxmemory_bytes=2**28,
                maxmemory_policy="allkeys-lru",
                io_threads=1,
                state_dir=str(self.sd),
                runtime_dir=str(runtime.secrets_dir(self.sd)),
                metrics_interval_seconds=1.0,
                expires_at=expires,
                miniature=self.mini,
            )
            # as the local-exec passes it: the config's JSON
            self.reg = Registry.model_validate(servers.up(config.model_dump(mode="json")))
            prov = miniature.provisioned(self.sd)
            assert prov is not None, f"up left no {miniature.FILE} in {self.sd}"
            self.node = self.reg.nodes[0]
            self.node_net = prov.node(self.node.node_id)
            self.password = (Path(config.runtime_dir) / "auth").read_text().strip()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        with uninterrupted():
            servers.down(self.sd)
            left = miniature.teardown(self.key)  # the subnet claim too, if `up` never ran
        if left:
            raise RuntimeError(f"{self.name}: left behind: {'; '.join(left)}")

    def load(self, value_size: int, fill: bool = True) -> subprocess.Popen:
        """redis-benchmark GETs from the root namespace (the load's side of the veth)."""
        base = ["redis-benchmark", "-h", self.node.host, "-p", str(self.node.port)]
        base += ["-r", "1000", "-d", str(value_size), "-c", "16", "-P", "8", "--threads", "1"]
        env = {**os.environ, AUTH_ENV: self.password}  # as the harness passes it
        if fill:
            argv = wrap_with_env_auth([*base, "-t", "set", "-n", "20000", "-q"], "-a")
            subprocess.run(argv, env=env, capture_output=True, check=True)
        # a count far beyond the window: stopped when the window ends
        return subprocess.Popen(
            wrap_with_env_auth([*base, "-t", "get", "-n", str(int(1e9)), "-q"], "-a"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def cpu_share(work: Path) -> list[Row]:
    rows = []
    for q in CPU_QUOTAS:
        with Deployment(work, f"cpu-{q}", q, None) as d:
            load = d.load(256)
            try:
                time.sleep(1.0)
                got = []
                for _ in range(CPU_WINDOWS):
                    c0, t0 = cpu_seconds(d.node.pid), time.monotonic()
                    time.sleep(CPU_WINDOW_S)
                    got.append((cpu_seconds(d.node.pid) - c0) / (time.monotonic() - t0))
            finally:
                stop(load)
        value = median(got)
        rows.append(
            Row(
                FIG,
                f"CPU delivered vs quota {q:g} core (server CPU s per s, saturated)",
                value,
                q,
                "cores",
                "within 5%",
                abs(value / q - 1) <= 0.05,
                note=f"{CPU_WINDOWS} windows of {CPU_WINDOW_S:g} s: "
                + ", ".join(f"{g:.3f}" for g in got),
                samples=got,
            )
        )
    return rows


def watch(read, seconds: float) -> list[tuple[float, shaping.Counters]]:
    """(time, counters) every SAMPLE_S for seconds."""
    out, t0 = [], time.monotonic()
    while (now := time.monotonic()) - t0 < seconds:
        out.append((now - t0, read()))
        time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - now)))
    return out


def burst_phases(
    samples: list[tuple[float, shaping.Counters]], below: float | None = None
) -> tuple[float, float, float]:
    """(when the bucket emptied, bytes/s before it, bytes/s after it) from tbf samples.

    The moment is the first allowance-exceeded count, or with `below` (traffic held to
    the burst rate counts as exceeded from its first packet) the middle of the first
    sample interval in which fewer than `below` bytes/s passed.
    """
    if below is None:
        t_empty = next(t for t, c in samples if c.exceeded > samples[0][1].exceeded)
    else:
        t_empty = next(
            (ta + tb) / 2
            for (ta, a), (tb, b) in itertools.pairwise(samples)
            if ta >= 0.5 and (b.bytes - a.bytes) / (tb - ta) < below
        )
    first = next(i for i, (t, _) in enumerate(samples) if t >= 0.5)
    before = [(t, c) for t, c in samples[first:] if t <= t_empty - 0.6]
    after = [(t, c) for t, c in samples if t >= t_empty + 1.0]

    def rate(part: list) -> float:
        (ta, a), (tb, b) = part[0], part[-1]
        return (b.bytes - a.bytes) / (tb - ta)

    return t_empty, rate(before), rate(after)


def shaped_out(work: Path) -> list[Row]:
    with Deployment(work, "net-out", 0.25, NET) as d:
        node, net = d.mini, d.node_net
        load = d.load(1024)  # the samples' clock starts with its GETs (the fill is over)
        try:
            samples = watch(lambda: shaping.read(net.netns)[net.dev], 14)
        finally:
            stop(load)
    assert node.allowance is not None
    baseline = node.allowance.baseline_bps / 8
    t_empty, offered, after = burst_phases(samples)
    by_hand = node.allowance.bucket_bytes / (offered - baseline)
    return [
        Row(FIG, "shaped rate out vs baseline 0.1 Gbps (bucket empty)", after, baseline, "B/s",
            "within 2%", abs(after / baseline - 1) <= 0.02),
        Row(FIG, "burst out lasted vs bucket / (offered - baseline)", t_empty, by_hand, "s",
            "within 10%", abs(t_empty / by_hand - 1) <= 0.10,
            note=f"offered {offered / 1e6:.2f} MB/s, bucket 300 MB, baseline 12.5 MB/s"),
    ]  # fmt: skip


SINK = """
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("{host}", 7000)); s.listen(1); print("ready", flush=True)
c, _ = s.accept()
while c.recv(1 << 20):
    pass
"""


def burst_in(work: Path) -> list[Row]:
    key = miniature.key_of(work / "peak")
    owner = claims.Owner(key=key, state_dir=str(work / "peak"), expires_at=time.time() + 900)
    try:
        m = miniature.Miniature(
            key=key,
            mimics="cache.t4g.micro",
            subnet=netns.subnet_of(netns.claim(owner)),
            cpu_limit_cores=1.0,
            memory_limit_bytes=2**29,
            load_cpu_cores=1.0,
            allowance=miniature.allowance_of(**PEAK),
        )
        prov = miniature.provision(m, ["0001-001"], owner)
        node = prov.net.nodes[0]
        sink = subprocess.Popen(
            ["nsenter", f"--net={netns.NETNS_DIR / node.netns}", sys.executable, "-c",
             SINK.format(host=node.address)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
            sender = subprocess.Popen(
                [sys.executable, "-c", SEND.format(host=node.address, seconds=9)],
            )
            try:
                samples = watch(lambda: shaping.read(prov.net.hub)[node.hub_dev], 8.5)
            finally:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    sender.wait(15)
                stop(sender)
        finally:
            stop(sink)
    finally:
        with uninterrupted():
            left = miniature.teardown(key)  # the subnet claim too, if provision never ran
        if left:
            raise RuntimeError(f"peak: left behind: {'; '.join(left)}")
    burst, baseline = PEAK["burst_gbps"] * 1e9 / 8, PEAK["baseline_gbps"] * 1e9 / 8
    t_empty, during, after = burst_phases(samples, below=(burst + baseline) / 2)
    by_hand = PEAK["bucket_mb"] * 1e6 / (during - baseline)
    return [
        Row(FIG, "burst rate in vs burst 0.4 Gbps (bucket holding tokens)", during, burst, "B/s",
            "within 5%", abs(during / burst - 1) <= 0.05),
        Row(FIG, "shaped rate in vs baseline 0.05 Gbps (bucket empty)", after, baseline, "B/s",
            "within 2%", abs(after / baseline - 1) <= 0.02),
        Row(FIG, "burst in lasted vs bucket / (burst - baseline)", t_empty, by_hand, "s",
            "within 10%", abs(t_empty / by_hand - 1) <= 0.10),
    ]  # fmt: skip


SEND = """
import socket, time
c = socket.create_connection(("{host}", 7000))
buf, end = b"x" * 65536, time.monotonic() + {seconds}
while time.monotonic() < end:
    c.sendall(buf)
"""


def measure() -> list[Row]:
    if problems := miniature.machine_problems():
        raise RuntimeError("this machine cannot run miniatures: " + "; ".join(problems))
    work = Path(tempfile.mkdtemp(prefix="cachebench-enforce-"))
    runtime_was = os.environ.get("CACHEBENCH_RUNTIME")
    os.environ.setdefault("CACHEBENCH_RUNTIME", str(work / "runtime"))
    try:
        return cpu_share(work) + shaped_out(work) + burst_in(work)
    finally:
        # each Deployment and burst_in removed what it made (or raised)
        shutil.rmtree(work, ignore_errors=True)
        if runtime_was is None:
            os.environ.pop("CACHEBENCH_RUNTIME", None)


if __name__ == "__main__":
    for row in measure():
        print(json.dumps(row.__dict__, default=str))
