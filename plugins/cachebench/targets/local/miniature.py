"""A local deployment as a miniature of ElastiCache nodes: its allowances enforced.

A miniature node type (a local row of include/instance_specs.csv that names the
AWS type it ``mimics``) runs each server node

* in a cgroup of its own with a CPU quota (``cpu_limit_cores``) and a memory limit
  (the type's ``memory_gib``): cachebench.targets.local.cgroups;
* in a network namespace of its own, reached through a veth whose both directions
  are token buckets (baseline, burst rate, bucket): cachebench.targets.local.netns and
  cachebench.targets.local.shaping;

and the load generators of its runs in a cgroup of their own with the CPU the
servers are denied (the machine's cores minus the nodes' quotas), so on a small
machine the servers, not the load, are the bottleneck.

Everything is named after the deployment's key (a hash of its state folder):
namespaces ``cachebench-<key>[-<node id>]``, root link ``cb-<key>``, cgroups
``cachebench-<key>/<node id|load>``, a subnet claim naming the key. `up`
provisions it, `down`, destroy's sweep and the reaper remove it by that key, so
even a deployment whose folder is gone leaves nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

from pydantic import Field

from cachebench.models import Strict
from cachebench.targets.local import cgroups, claims, netns, shaping

LOAD = "load"  # the load generators' cgroup member
FILE = "miniature.json"  # in the servers' state dir: what `up` made (Provisioned)
MIN_LOAD_CORES = 0.5  # what the load keeps however many cores the servers take
# Shares of contended CPU (v2 scale, 100 = default): a node and the load get what their quota
# allows even while the machine's other work competes; the quotas still cap them.
NODE_WEIGHT = LOAD_WEIGHT = 1000
TOOLS = ("ip", "tc", "nsenter")
# Joins the cgroups named before "--", then runs the rest (nsenter into the node's
# namespace, then the server): the server's first instruction already runs limited.
JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class MiniatureError(RuntimeError):
    """The machine cannot enforce a miniature, or its resources could not be made."""


class Miniature(Strict):
    """What a deployment's tfvars say about its limits (no machine state)."""

    key: str = Field(pattern=r"^[0-9a-f]{8}$", max_length=8)
    mimics: str
    subnet: str
    cpu_limit_cores: float = Field(ge=0.1)
    memory_limit_bytes: int = Field(gt=0)
    load_cpu_cores: float = Field(gt=0)
    allowance: shaping.Allowance | None = Field(None, description="each direction's; None: no tc")


class Provisioned(Strict):
    """What `up` made for a miniature deployment (kept in its registry)."""

    miniature: Miniature
    hierarchy: cgroups.Hierarchy
    net: netns.Net
    groups: dict[str, cgroups.Group] = Field(description="node id (and 'load') -> cgroup")

    def node(self, node_id: str) -> netns.NodeNet:
        return next(n for n in self.net.nodes if n.node_id == node_id)


def provisioned(state_dir: Path) -> Provisioned | None:
    """What `up` made for state_dir's servers (None: a plain deployment, or not yet)."""
    try:
        return Provisioned.model_validate_json((state_dir / FILE).read_text())
    except (OSError, ValueError):
        return None


def key_of(state_dir: Path | str) -> str:
    """A deployment's key: its names on this machine (namespaces, links, cgroups, claim)."""
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:8]


def cgroup_name(key: str) -> str:
    return f"{cgroups.PREFIX}{key}"


def machine_problems() -> list[str]:
    """What this machine lacks to enforce a miniature (empty: nothing)."""
    problems = []
    if os.geteuid() != 0:
        problems.append(f"root (running as uid {os.geteuid()}: namespaces, tc and cgroups need it)")
    missing = [t for t in TOOLS if netns.tool(t) is None]
    if missing:
        problems.append(f"{', '.join(missing)} (iproute2 / util-linux, not found on PATH or sbin)")
    if not Path("/proc/self/ns/net").exists():
        problems.append("network namespaces (no /proc/self/ns/net)")
    _, why = cgroups.detect()
    if why:
        problems.append(why)
    return problems


def load_cores(host_cores: int, nodes: int, cpu_limit_cores: float) -> float:
    """The load generators' quota: the cores the servers are denied (at least MIN_LOAD_CORES)."""
    return round(max(MIN_LOAD_CORES, host_cores - nodes * cpu_limit_cores), 3)


def allowance_of(baseline_gbps: float, burst_gbps: float, bucket_mb: float) -> shaping.Allowance:
    return shaping.Allowance(
        baseline_bps=round(baseline_gbps * 1e9),
        burst_bps=round(burst_gbps * 1e9),
        bucket_bytes=round(bucket_mb * 1e6),
    )


def io_threads(cpu_limit_cores: float) -> int:
    """Threads a node's CPU quota can keep busy: more would only spin against the quota."""
    return max(1, math.floor(cpu_limit_cores))


def provision(m: Miniature, node_ids: list[str], owner: claims.Owner) -> Provisioned:
    """Make the cgroups, namespaces, links and shapers of a deployment (anything of the
    same key left by an interrupted `up` is removed first), its subnet held by owner
    (what the reaper reads: state_dir, run, expiry) for as long as they exist."""
    if problems := machine_problems():
        raise MiniatureError("this machine cannot run a miniature: needs " + "; ".join(problems))
    hierarchy, _ = cgroups.detect()
    assert hierarchy is not None  # machine_problems said so
    try:
        netns.hold(m.subnet, owner)
    except netns.NetError as e:
        raise MiniatureError(str(e)) from e
    if left := _remove(m.key):  # an interrupted `up`'s; the subnet claim stays ours
        raise MiniatureError(f"an earlier up's resources could not be removed: {left}")
    net = netns.plan(m.key, m.subnet, node_ids)
    name = cgroup_name(m.key)
    node_limits = cgroups.Limits(
        cpu_cores=m.cpu_limit_cores, memory_bytes=m.memory_limit_bytes, cpu_weight=NODE_WEIGHT
    )
    load_limits = cgroups.Limits(cpu_cores=m.load_cpu_cores, cpu_weight=LOAD_WEIGHT)
    try:
        groups = {nid: cgroups.create(hierarchy, name, nid, node_limits) for nid in node_ids}
        groups[LOAD] = cgroups.create(hierarchy, name, LOAD, load_limits)
        netns.create(net)
        if m.allowance is not None:
            for n in net.nodes:
                shaping.apply(n.netns, n.dev, m.allowance)  # outbound: what the node sends
                shaping.apply(net.hub, n.hub_dev, m.allowance)  # inbound: what it receives
    except (cgroups.CgroupError, netns.NetError, shaping.ShapingError) as e:
        _remove(m.key)
        raise MiniatureError(str(e)) from e
    return Provisioned(miniature=m, hierarchy=hierarchy, net=net, groups=groups)


def in_place(p: Provisioned) -> bool:
    """Are the deployment's namespaces and cgroups still there (an idempotent `up`)?"""
    return netns.exists(p.net) and all(
        all(Path(d).is_dir() for d in g.dirs) for g in p.groups.values()
    )


def launch(p: Provisioned, node_id: str, argv: list[str]) -> list[str]:
    """argv run inside node_id's cgroup and network namespace."""
    nsenter = netns.tool("nsenter") or "nsenter"
    into = f"--net={netns.NETNS_DIR / p.node(node_id).netns}"
    return ["/bin/sh", "-c", JOIN, "join", *p.groups[node_id].procs_files, "--",
            nsenter, into, "--", *argv]  # fmt: skip


def _remove(key: str) -> list[str]:
    """Remove deployment `key`'s namespaces, links and cgroups; return what is left."""
    left = netns.destroy(key)
    hierarchy, _ = cgroups.detect()
    if hierarchy is not None:
        left += cgroups.remove(hierarchy, cgroup_name(key))
    return left


def teardown(key: str) -> list[str]:
    """Remove everything of deployment `key` (its processes are stopped first by the
    caller; one left in a cgroup is killed), its subnet claim last; return what is left
    (empty: all gone)."""
    left = _remove(key)
    if not left:
        netns.release(key)
    return left


def leftovers(key: str) -> list[str]:
    """What of deployment `key` is on this machine: namespaces, links, cgroups, claims."""
    left = netns.left(key)
    hierarchy, _ = cgroups.detect()
    if hierarchy is not None:
        left += [f"cgroup {d}" for d in cgroups.existing(hierarchy, cgroup_name(key))]
    return left


class NodeSample(Strict):
    """A node's shaper counters at one moment: outbound (its interface's egress) and
    inbound (its bridge port's egress)."""

    out: shaping.Counters
    into: shaping.Counters


def sample(p: Provisioned) -> dict[str, NodeSample]:
    """Every node's counters now (nodes whose namespace is gone are left out)."""
    if p.miniature.allowance is None:
        return {}
    try:
        inbound = shaping.read(p.net.hub)
    except shaping.ShapingError:
        return {}
    out = {}
    for n in p.net.nodes:
        try:
            outbound = shaping.read(n.netns).get(n.dev)
        except shaping.ShapingError:
            continue
        if outbound is not None and n.hub_dev in inbound:
            out[n.node_id] = NodeSample(out=outbound, into=inbound[n.hub_dev])
    return out
