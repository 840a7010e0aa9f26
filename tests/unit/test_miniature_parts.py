"""A miniature's parts without the kernel: cgroup files (v1 and v2, on folders shaped like
the cgroup file systems), tc's arguments and counters, addressing, the agent's rows.

The kernel side (namespaces, veths, tbf, quotas really enforced) is tested end to end
in tests/e2e/test_miniature_truth.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from cachebench.targets.local import agent, cgroups, claims, miniature, netns, shaping

# --------------------------------------------------------------------- cgroups


def fake_tree(root: Path, version: int) -> Path:
    """A folder shaped like a cgroup mount (what the kernel shows before anything is made)."""
    root.mkdir(parents=True)
    if version == 2:
        (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
        (root / "cgroup.subtree_control").write_text("\n")
    else:
        (root / "cgroup.procs").write_text("")
    return root


def mounts_file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "mounts"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_detect_prefers_v2_when_it_has_cpu_and_memory(tmp_path: Path) -> None:
    unified = fake_tree(tmp_path / "unified", 2)
    mounts = mounts_file(tmp_path, [f"cgroup2 {unified} cgroup2 rw,nosuid 0 0"])
    h, why = cgroups.detect(mounts)
    assert why == "" and h is not None
    assert (h.version, h.trees) == (2, [unified])


def test_detect_falls_back_to_v1_when_v2_has_no_controllers(tmp_path: Path) -> None:
    """This machine's shape: v1 cpu and memory, a cgroup2 tree without controllers."""
    unified = tmp_path / "unified"
    unified.mkdir()
    (unified / "cgroup.controllers").write_text("\n")
    cpu, memory = tmp_path / "cpu", tmp_path / "memory"
    cpu.mkdir(), memory.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    (memory / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    mounts = mounts_file(
        tmp_path,
        [
            f"cgroup {cpu} cgroup rw,relatime,cpu 0 0",
            f"cgroup {memory} cgroup rw,relatime,memory 0 0",
            f"cgroup2 {unified} cgroup2 rw,relatime 0 0",
        ],
    )
    h, why = cgroups.detect(mounts)
    assert why == "" and h is not None
    assert h.version == 1 and h.roots == {"cpu": str(cpu), "memory": str(memory)}


def test_detect_names_what_is_missing(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    mounts = mounts_file(tmp_path, [f"cgroup {cpu} cgroup rw,cpu 0 0"])
    h, why = cgroups.detect(mounts)
    assert h is None
    assert "memory not mounted" in why and "no cgroup2 mount" in why


def test_v2_member_gets_quota_weight_and_memory(tmp_path: Path) -> None:
    unified = fake_tree(tmp_path / "unified", 2)
    h = cgroups.Hierarchy(version=2, roots={"cpu": str(unified), "memory": str(unified)})
    (unified / "cachebench-0123abcd").mkdir()  # the kernel makes these files with the dir
    (unified / "cachebench-0123abcd" / "cgroup.subtree_control").write_text("\n")
    limits = cgroups.Limits(cpu_cores=0.25, memory_bytes=512 * 2**20, cpu_weight=1000)
    group = cgroups.create(h, "cachebench-0123abcd", "0001-001", limits)
    own = unified / "cachebench-0123abcd" / "0001-001"
    assert group.dirs == [str(own)]
    assert (own / "cpu.max").read_text() == "2500 10000"  # 0.25 of a 10 ms period
    assert (own / "cpu.weight").read_text() == "1000"
    assert (own / "memory.max").read_text() == "536870912"
    # the controllers reach the member only when both parents hand them down
    assert (unified / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert (unified / "cachebench-0123abcd" / "cgroup.subtree_control").read_text() == (
        "+cpu +memory"
    )
    assert group.procs_files == [str(own / "cgroup.procs")]
    assert cgroups.cpu_limit_cores(h, group) == 0.25


def test_v1_member_gets_quota_shares_and_memory(tmp_path: Path) -> None:
    cpu, memory = fake_tree(tmp_path / "cpu", 1), fake_tree(tmp_path / "memory", 1)
    h = cgroups.Hierarchy(version=1, roots={"cpu": str(cpu), "memory": str(memory)})
    load = cgroups.create(h, "cachebench-0123abcd", "load", cgroups.Limits(cpu_cores=1.75))
    c, m = cpu / "cachebench-0123abcd" / "load", memory / "cachebench-0123abcd" / "load"
    assert load.dirs == [str(c), str(m)]
    assert (c / "cpu.cfs_period_us").read_text() == "10000"
    assert (c / "cpu.cfs_quota_us").read_text() == "17500"
    assert (c / "cpu.shares").read_text() == "1024"  # weight 100: the default
    assert (m / "memory.limit_in_bytes").read_text() == "-1"  # no memory limit
    assert cgroups.cpu_limit_cores(h, load) == 1.75


def test_existing_lists_only_our_cgroups(tmp_path: Path) -> None:
    cpu = fake_tree(tmp_path / "cpu", 1)
    (cpu / "cachebench-aa").mkdir()
    (cpu / "system.slice").mkdir()
    h = cgroups.Hierarchy(version=1, roots={"cpu": str(cpu), "memory": str(cpu)})
    assert cgroups.existing(h) == [str(cpu / "cachebench-aa")]


# --------------------------------------------------------------------- shaping


def test_allowance_of_the_catalogue_units() -> None:
    """Gbps are decimal, as AWS states them; the bucket is in decimal megabytes."""
    a = miniature.allowance_of(0.064, 5, 80)
    assert (a.baseline_bps, a.burst_bps, a.bucket_bytes) == (64_000_000, 5_000_000_000, 80_000_000)


def test_tbf_arguments() -> None:
    a = shaping.Allowance(baseline_bps=64_000_000, burst_bps=5_000_000_000, bucket_bytes=80_000_000)
    # queue: 100 ms of 8 MB/s = 800,000 bytes; peak bucket: 1 MiB
    assert a.tbf == [
        "rate", "64000000bit", "burst", "80000000", "limit", "800000",
        "peakrate", "5000000000bit", "mtu", "1048576",
    ]  # fmt: skip
    flat = shaping.Allowance(baseline_bps=10**9, burst_bps=10**9, bucket_bytes=10**6)
    assert "peakrate" not in flat.tbf  # no burst above the baseline: one bucket


def test_empties_after() -> None:
    a = shaping.Allowance(baseline_bps=64_000_000, burst_bps=5 * 10**9, bucket_bytes=80_000_000)
    assert a.empties_after_s(24_000_000) == pytest.approx(80 / 16)  # 24 - 8 MB/s drains it
    assert a.empties_after_s(8_000_000) is None  # at the baseline it never empties


def test_read_parses_tc_json(monkeypatch) -> None:
    """What `tc -s -j qdisc show` printed for a hub namespace (iproute2 6.1)."""
    printed = [
        {"kind": "noqueue", "handle": "0:", "dev": "br0", "root": True, "bytes": 0},
        {
            "kind": "tbf", "handle": "8004:", "dev": "n1", "root": True, "refcnt": 3,
            "options": {"rate": 8000000, "burst": 41943040, "lat": 50000},
            "bytes": 112016206, "packets": 3201, "drops": 2, "overlimits": 2893,
            "requeues": 0, "backlog": 51476, "qlen": 2,
        },
    ]  # fmt: skip
    monkeypatch.setattr(shaping, "_tc", lambda *argv: json.dumps(printed))
    got = shaping.read("cachebench-0123abcd")
    assert list(got) == ["n1"]
    assert got["n1"].bytes == 112016206 and got["n1"].exceeded == 2893 + 2
    assert got["n1"].backlog == 51476


# --------------------------------------------------------------------- addressing


def test_subnets_are_link_local_27s_off_the_reserved_ones() -> None:
    assert netns.subnet_of(0) == "169.254.1.0/27"
    assert netns.subnet_of(7) == "169.254.1.224/27"
    assert netns.subnet_of(8) == "169.254.2.0/27"
    octets = {int(netns.subnet_of(b).split(".")[2]) for b in range(netns.BLOCKS)}
    assert octets.isdisjoint({0, 169, 170, 255})
    assert len({netns.subnet_of(b) for b in range(netns.BLOCKS)}) == netns.BLOCKS


def test_plan_names_and_addresses() -> None:
    net = netns.plan("0123abcd", "169.254.3.32/27", ["0001-001", "0002-001"])
    assert (net.hub, net.root_dev, net.root_address) == (
        "cachebench-0123abcd",
        "cb-0123abcd",
        "169.254.3.33",
    )
    assert [(n.netns, n.address, n.hub_dev) for n in net.nodes] == [
        ("cachebench-0123abcd-0001-001", "169.254.3.34", "n1"),
        ("cachebench-0123abcd-0002-001", "169.254.3.35", "n2"),
    ]
    assert len(net.root_dev) <= 15  # IFNAMSIZ


def test_load_gets_the_cores_the_servers_are_denied() -> None:
    assert miniature.load_cores(2, 1, 0.25) == 1.75
    assert miniature.load_cores(2, 3, 0.25) == 1.25
    assert miniature.load_cores(2, 12, 0.25) == 0.5  # never less than half a core


# --------------------------------------------------------------------- the agent


def counters(nbytes: int, packets: int, over: int, drops: int) -> shaping.Counters:
    return shaping.Counters(bytes=nbytes, packets=packets, overlimits=over, drops=drops)


def test_agent_rows_from_two_shaper_samples() -> None:
    before = miniature.NodeSample(out=counters(1000, 10, 0, 0), into=counters(500, 5, 0, 0))
    after = miniature.NodeSample(out=counters(9000, 30, 7, 1), into=counters(700, 8, 0, 0))
    rows = agent.metrics_from_shaper(before, after, 1.002, "0001-001")
    got = {r["metric"]: (r["value"], r["unit"], r["period_s"]) for r in rows}
    assert got == {
        "NetworkBytesIn": (200.0, "Bytes", 1.002),
        "NetworkPacketsIn": (3.0, "Count", 1.002),
        "NetworkBandwidthInAllowanceExceeded": (0.0, "Count", 1.002),
        "NetworkBytesOut": (8000.0, "Bytes", 1.002),
        "NetworkPacketsOut": (20.0, "Count", 1.002),
        "NetworkBandwidthOutAllowanceExceeded": (8.0, "Count", 1.002),
    }


def test_agent_cpu_in_percent_of_the_quota() -> None:
    prev = {"used_cpu_sys": 1.0, "used_cpu_user": 1.0}
    cur = {"used_cpu_sys": 1.05, "used_cpu_user": 1.15}  # 0.2 s of CPU in 1 s
    rows = agent.metrics_from_info(prev, cur, 1.0, "0001-001", 0, cpu_cores=0.25)
    cpu = next(r for r in rows if r["metric"] == "CPUUtilization")
    assert cpu["value"] == pytest.approx(80.0)  # 0.2 of a 0.25-core allowance


def test_claims_are_exclusive_and_held_again_after_a_down(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(netns, "CLAIMS_DIR", tmp_path / "net")
    # other deployments' subnets on this machine are not this test's (see the next one)
    monkeypatch.setattr(netns, "SUBNETS", dataclasses.replace(netns.SUBNETS, busy=lambda c: False))
    a, b = (
        claims.Owner(key=k * 8, state_dir=str(tmp_path / k / "server"), expires_at=2e9)
        for k in "ab"
    )
    assert (netns.claim(a), netns.claim(b)) == (0, 1)
    assert netns.claim(a) == 0  # a render_tfvars retry keeps its block
    netns.release("aaaaaaaa")  # `down` gave it back; the replacing `up` holds it again
    netns.hold("169.254.1.0/27", a)
    got = [(c.first, c.owner.key) for c in netns.SUBNETS.claims()]
    assert got == [(0, "aaaaaaaa"), (1, "bbbbbbbb")]
    netns.hold("169.254.1.0/27", a)  # already its own: nothing to do
    with pytest.raises(netns.NetError, match="claimed by another deployment"):
        netns.hold("169.254.1.32/27", a)


def test_a_stale_subnet_claim_is_taken_back_once_no_root_link_has_its_addresses(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(netns, "CLAIMS_DIR", tmp_path / "net")
    last = netns.subnet_of(netns.BLOCKS - 1)  # one no deployment of this machine is near
    gone = claims.Owner(key="aaaaaaaa", state_dir=str(tmp_path / "a" / "server"), expires_at=2e9)
    new = claims.Owner(key="bbbbbbbb", state_dir=str(tmp_path / "b" / "server"), expires_at=2e9)
    netns.hold(last, gone)
    with pytest.raises(netns.NetError, match="claimed by another deployment"):
        netns.hold(last, new)
    (tmp_path / "a").rmdir()  # its deployment's folder removed, nothing of it addressed
    netns.hold(last, new)
    assert [(c.first, c.owner.key) for c in netns.SUBNETS.claims()] == [
        (netns.BLOCKS - 1, "bbbbbbbb")
    ]
