"""Network namespaces of a local miniature deployment: an interface per node to shape.

Shaping loopback would shape every process of the machine, so each server node
runs in a network namespace of its own, reached over a veth pair through a bridge
in the deployment's hub namespace::

    root ns     cb-<key>            169.254.X.B+1/27   clients: worker, agent, prefill, load
      | veth
    hub ns      cachebench-<key>    up0 -- br0 -- n1 .. nN   (bridge ports)
                                                   | veth (nK's egress: node K's inbound)
    node ns     cachebench-<key>-<node id>   eth0  169.254.X.B+1+K/27  (egress: outbound)

Everything a client sends to node K leaves nK (the node's inbound shaper) and
everything node K sends leaves its eth0 (its outbound shaper), node-to-node
traffic (cluster bus, replication) included, as on an ElastiCache node. The
addresses are link-local (169.254/16), on links this module makes; no route
leads anywhere else, and nothing outside these namespaces is ever addressed.
Deleting the hub namespace deletes every veth and the bridge with it.

Each deployment's /27 is claimed machine-wide (claims.py: a file per block under
CLAIMS_DIR) before anything is made, so two campaigns never share a subnet; the
claim names its owner for the reaper and goes last.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
from pathlib import Path

from pydantic import Field

from cachebench.models import Strict
from cachebench.targets.local import claims

CLAIMS_DIR = Path("/run/cachebench/net")
NETNS_DIR = Path("/run/netns")  # where `ip netns` keeps named namespaces
PREFIX = "cachebench-"  # namespaces
LINK_PREFIX = "cb-"  # the root end of a deployment's veth (interface names: 15 chars)
BLOCK_SIZE = 32  # a /27: root end, up to 29 nodes, broadcast
BLOCKS_PER_OCTET = 256 // BLOCK_SIZE
# 169.254.0/24 and .255/24 are reserved (RFC 3927); .169 and .170 hold cloud metadata
# services: never used, even on links of our own.
OCTETS = [o for o in range(1, 255) if o not in (169, 170)]
BLOCKS = len(OCTETS) * BLOCKS_PER_OCTET
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


class NetError(RuntimeError):
    """A namespace, link or address could not be made or removed; the message says which."""


class NodeNet(Strict):
    node_id: str
    netns: str
    address: str
    hub_dev: str = Field(description="the node's bridge port in the hub: its inbound shaper's")
    dev: str = Field("eth0", description="the node's interface: its outbound shaper's")


class Net(Strict):
    """A deployment's namespaces, links and addresses."""

    key: str
    subnet: str
    hub: str
    root_dev: str
    root_address: str
    nodes: list[NodeNet]

    @property
    def namespaces(self) -> list[str]:
        return [n.netns for n in self.nodes] + [self.hub]


def tool(name: str) -> str | None:
    """A tool on PATH or in the usual system folders (root's tools live in sbin)."""
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))


def _run(*argv: str) -> str:
    exe = tool(argv[0]) or argv[0]
    done = subprocess.run(
        [exe, *argv[1:]], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise NetError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def subnet_of(block: int) -> str:
    octet, part = OCTETS[block // BLOCKS_PER_OCTET], block % BLOCKS_PER_OCTET
    return f"169.254.{octet}.{part * BLOCK_SIZE}/27"


def host(subnet: str, index: int) -> str:
    """Address index of subnet (1: the root end, 2..: the nodes)."""
    base = subnet.split("/")[0].rsplit(".", 1)
    return f"{base[0]}.{int(base[1]) + index}"


def plan(key: str, subnet: str, node_ids: list[str]) -> Net:
    if len(node_ids) > BLOCK_SIZE - 3:
        raise NetError(f"{len(node_ids)} nodes do not fit a /27 (at most {BLOCK_SIZE - 3})")
    hub = f"{PREFIX}{key}"
    return Net(
        key=key,
        subnet=subnet,
        hub=hub,
        root_dev=f"{LINK_PREFIX}{key}",
        root_address=host(subnet, 1),
        nodes=[
            NodeNet(
                node_id=nid, netns=f"{hub}-{nid}", address=host(subnet, 2 + i), hub_dev=f"n{i + 1}"
            )
            for i, nid in enumerate(node_ids)
        ],
    )


# ------------------------------------------------------------------ claims


def _addressed(c: claims.Claim) -> bool:
    """Does a link of the root namespace have an address of the claim's subnet?"""
    net = ipaddress.ip_network(subnet_of(c.first))
    listed = json.loads(_run("ip", "-j", "-4", "addr", "show") or "[]")
    return any(
        ipaddress.ip_address(a["local"]) in net
        for link in listed
        for a in link.get("addr_info", [])
        if "local" in a
    )


# Root's /run, whatever CACHEBENCH_MACHINE_DIR says: a subnet is a route of the one root
# namespace, and no probe sees one claimed by another session but not made yet; only
# root makes namespaces, and /run is emptied at boot, as they are.
SUBNETS = claims.Pool(
    home=lambda: CLAIMS_DIR, mode=0o755, units=lambda c: {c.first}, busy=_addressed
)


def claim(owner: claims.Owner) -> int:
    """The block owner holds already, else the first free one (machine-wide)."""
    if (held := SUBNETS.claim(owner, [(b, 1) for b in range(BLOCKS)])) is not None:
        return held.first
    raise NetError(f"every one of the {BLOCKS} local subnets is claimed or in use ({CLAIMS_DIR})")


def hold(subnet: str, owner: claims.Owner) -> None:
    """Make sure owner holds subnet: claimed again if its claim was given back (a `down`
    before a replacing `up`); NetError if another deployment holds or uses it."""
    block = next((b for b in range(BLOCKS) if subnet_of(b) == subnet), None)
    if block is None:
        raise NetError(f"{subnet} is not one of the local subnets (169.254.X.Y/27)")
    if SUBNETS.claim(owner, [(block, 1)]) is None:
        raise NetError(f"subnet {subnet} is claimed by another deployment or in use ({CLAIMS_DIR})")


def release(key: str) -> None:
    """Give back every block the deployment `key` holds (kept while an address of it is
    on a root link)."""
    SUBNETS.release(key)


# ------------------------------------------------------------------ make, find, remove


def namespaces(prefix: str = PREFIX) -> list[str]:
    """Named network namespaces whose name starts with prefix."""
    listed = json.loads(_run("ip", "-j", "netns", "list") or "[]")
    return sorted(n["name"] for n in listed if n.get("name", "").startswith(prefix))


def root_links(prefix: str = LINK_PREFIX) -> list[str]:
    """Interfaces of the root namespace whose name starts with prefix."""
    listed = json.loads(_run("ip", "-j", "link", "show") or "[]")
    return sorted(n["ifname"] for n in listed if n.get("ifname", "").startswith(prefix))


def create(net: Net) -> None:
    """Make the namespaces, bridge, veths and addresses of net (after removing any of the
    same deployment's that an earlier, interrupted `up` left)."""
    destroy(net.key)
    ip = ("ip", "-n")
    _run("ip", "netns", "add", net.hub)
    _run(*ip, net.hub, "link", "add", "br0", "type", "bridge")
    _run(*ip, net.hub, "link", "set", "br0", "up")
    _run("ip", "link", "add", net.root_dev, "type", "veth", "peer", "name", "up0", "netns", net.hub)
    _run(*ip, net.hub, "link", "set", "up0", "master", "br0", "up")
    _run("ip", "addr", "add", f"{net.root_address}/27", "dev", net.root_dev)
    _run("ip", "link", "set", net.root_dev, "up")
    for n in net.nodes:
        _run("ip", "netns", "add", n.netns)
        _run(*ip, n.netns, "link", "set", "lo", "up")
        _run(*ip, n.netns, "link", "add", n.dev, "type", "veth", "peer", "name", n.hub_dev,
             "netns", net.hub)  # fmt: skip
        _run(*ip, net.hub, "link", "set", n.hub_dev, "master", "br0", "up")
        _run(*ip, n.netns, "addr", "add", f"{n.address}/27", "dev", n.dev)
        _run(*ip, n.netns, "link", "set", n.dev, "up")


def exists(net: Net) -> bool:
    """Are net's namespaces and its root link all there?"""
    have = set(namespaces(f"{PREFIX}{net.key}"))
    return set(net.namespaces) <= have and net.root_dev in root_links(net.root_dev)


def left(key: str) -> list[str]:
    """What of deployment `key` exists: namespaces, root links, claims (empty: nothing)."""
    out = [f"network namespace {n}" for n in namespaces(f"{PREFIX}{key}")]
    out += [f"link {d}" for d in root_links(f"{LINK_PREFIX}{key}")]
    out += [f"subnet claim {c.first}" for c in SUBNETS.claims() if c.owner.key == key]
    return out


def destroy(key: str) -> list[str]:
    """Remove deployment `key`'s namespaces (their veths and bridge go with them) and its
    root link; return what is left (empty: all gone). The claim stays: release() it."""
    hub = f"{PREFIX}{key}"
    for name in sorted(namespaces(hub), key=lambda n: n == hub):  # the nodes, then the hub
        with contextlib.suppress(NetError):
            _run("ip", "netns", "del", name)
    for dev in root_links(f"{LINK_PREFIX}{key}"):  # gone with its peer, unless the hub lingers
        with contextlib.suppress(NetError):
            _run("ip", "link", "del", dev)
    return [w for w in left(key) if not w.startswith("subnet claim")]
