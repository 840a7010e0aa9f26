"""The tests' own view of "nothing left": psutil over this machine, not the code under test.

Every process cachebench starts for a deployment runs with its working directory
inside the deployment's folder; the ports are those its tfvars gave its nodes
(and the cluster bus ports). These checks look at the whole machine through
psutil, so a leftover that our own sweep (`cachebench.procs`) would miss is caught.
A miniature deployment's kernel objects (network namespaces, links, qdiscs,
cgroups and its subnet claim) carry the key its tfvars name: they are looked up
with `ip`, `tc` and the cgroup file systems themselves, not with cachebench's code.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil

BUS_PORT_OFFSET = 10000


def processes_in(root: Path) -> list[dict]:
    """Every process of this user whose cwd is root or below (a removed dir included)."""
    base = os.path.realpath(root)
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "uids", "status"]):
        try:
            if proc.info["uids"].real != os.getuid() or proc.info["status"] == "zombie":
                continue
            cwd = proc.cwd().removesuffix(" (deleted)")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if cwd == base or cwd.startswith(base + os.sep):
            found.append({"pid": proc.pid, "name": proc.info["name"], "cwd": cwd})
    return found


def node_ports(run_dir: Path) -> set[int]:
    """The ports every deployment's tfvars gave its nodes (and bus ports in cluster mode)."""
    ports: set[int] = set()
    for tfvars in run_dir.glob("deployments/*/terraform/terraform.tfvars.json"):
        v = json.loads(tfvars.read_text())
        nodes = range(v["base_port"], v["base_port"] + v["shards"] * (v["replicas"] + 1))
        ports.update(nodes)
        if v["cluster_mode"]:
            ports.update(p + BUS_PORT_OFFSET for p in nodes)
    return ports


def listening(ports: set[int]) -> set[int]:
    held = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port in ports:
            held.add(conn.laddr.port)
    return held


def miniature_keys(run_dir: Path) -> set[str]:
    """The keys of the run's miniature deployments, as their tfvars name them."""
    keys = set()
    for tfvars in run_dir.glob("deployments/*/terraform/terraform.tfvars.json"):
        if mini := json.loads(tfvars.read_text()).get("miniature"):
            keys.add(mini["key"])
    return keys


def _json(*argv: str) -> list[dict]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def kernel_objects(keys: set[str]) -> list[str]:
    """Network namespaces, root links and their qdiscs, cgroups and subnet claims that
    name one of keys."""
    if not keys:
        return []
    found = [f"netns {n['name']}" for n in _json("ip", "-j", "netns", "list")]
    found += [f"link {n['ifname']}" for n in _json("ip", "-j", "link", "show")]
    found += [f"qdisc {q['kind']} on {q['dev']}" for q in _json("tc", "-j", "qdisc", "show")]
    for controller in Path("/sys/fs/cgroup").iterdir():
        for d in controller.glob("*") if controller.is_dir() else []:
            if d.is_dir():
                found.append(f"cgroup {d}")
    claims = Path("/run/cachebench/net")
    for claim in claims.glob("*.json") if claims.is_dir() else []:
        found.append(f"claim {claim}: {claim.read_text()}")
    return [f for f in found if any(k in f for k in keys)]


def assert_nothing_running(run_dir: Path, ports: set[int] | None = None) -> None:
    """No process in the run's folder (servers, agents, runners, load generators), no
    node or bus port held, no namespace, link, qdisc, cgroup or claim of a miniature."""
    left = processes_in(run_dir)
    assert left == [], f"processes left: {left}"
    kernel = kernel_objects(miniature_keys(run_dir))
    assert kernel == [], f"kernel objects left: {kernel}"
    ports = node_ports(run_dir) | (ports or set())
    assert ports, "the run gave no deployment a port: nothing was checked"
    assert listening(ports) == set(), f"ports still held: {sorted(listening(ports))}"


def assert_nothing_left(run_dir: Path, ports: set[int] | None = None) -> None:
    """Nothing running (assert_nothing_running), no private folder of secrets (the
    runtime_dir its tfvars gave each deployment), every Terraform state empty and every
    cleanup verdict clean."""
    assert_nothing_running(run_dir, ports)
    for tfvars in run_dir.glob("deployments/*/terraform/terraform.tfvars.json"):
        secrets = Path(json.loads(tfvars.read_text())["runtime_dir"])
        assert not secrets.exists(), f"{secrets}: the password outlived destroy"
    for state in run_dir.glob("deployments/*/terraform/terraform.tfstate"):
        assert json.loads(state.read_text()).get("resources") == [], f"{state} not empty"
    for cleanup in run_dir.glob("deployments/*/cleanup.json"):
        assert json.loads(cleanup.read_text())["status"] == "clean", cleanup
