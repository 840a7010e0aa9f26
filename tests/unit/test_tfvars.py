"""tfvars rendering for the local target: matches the module's variables, carries no secret."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import hcl2
import pytest

from cachebench.campaign import CampaignSpec
from cachebench.targets.local import claims, machine
from cachebench.targets.local import target as local
from cachebench.targets.local.servers import BUS_PORT_OFFSET
from cachebench.terraform import MODULES_DIR, Terraform
from cachebench.workspace import RunDir

SPEC = {
    "name": "tfvars",
    "target": "local",
    "engines": [
        {"engine": "redis", "versions": ["7.0"]},
        {"engine": "valkey", "versions": ["9.1"]},
    ],
    "topologies": [{"cluster_mode": False}, {"cluster_mode": True, "shards": 3, "replicas": 1}],
    "node_types": ["local.small"],
    "workloads": [{"name": "w", "duration_seconds": 5}],
    "budget_usd": 0,
}


def declared(module: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for block in hcl2.load((MODULES_DIR / module / "variables.tf").open())["variable"]:
        for name, body in block.items():
            out[name.strip('"')] = body
    return out


@pytest.fixture
def rendered(results_dir: Path) -> list[dict]:
    run = RunDir.for_run("tfvars", "manual__1")
    plans = CampaignSpec.from_input(SPEC).plans("manual__1", str(run.path), "redis-benchmark")
    return [local.LocalTarget().tfvars(p, run.deployment(p.instance), 2_000_000_000) for p in plans]


def test_every_rendered_variable_is_declared_and_every_required_one_rendered(rendered) -> None:
    variables = declared("local")
    required = {name for name, body in variables.items() if "default" not in body}
    for tfvars in rendered:
        assert set(tfvars) <= set(variables), set(tfvars) - set(variables)
        assert required <= set(tfvars), required - set(tfvars)


def test_the_campaigns_eviction_policy_reaches_the_servers(rendered) -> None:
    """maxmemory_policy is a campaign field, allkeys-lru unless the campaign says otherwise
    (memtier's keys have no TTL: volatile-lru would answer OOM instead of evicting)."""
    assert CampaignSpec.from_input(SPEC).maxmemory_policy == "allkeys-lru"
    assert {t["maxmemory_policy"] for t in rendered} == {"allkeys-lru"}


def test_values_follow_the_point(rendered) -> None:
    by_id = {t["deployment_id"]: t for t in rendered}
    cluster = by_id["valkey-9.1-c3r1-local.small"]  # the deployment's id names its servers
    assert cluster["cluster_mode"] is True and cluster["shards"] == 3 and cluster["replicas"] == 1
    assert cluster["engine"] == "valkey" and cluster["engine_version"] == "9.1"
    assert Path(cluster["server_binary"]).exists()
    # local.small is 1 GiB; ElastiCache reserves 25% by default
    assert cluster["maxmemory_bytes"] == int(0.75 * 2**30)
    assert Path(cluster["state_dir"]).is_absolute()


def test_the_secrets_folder_is_outside_the_results_and_one_per_deployment(
    rendered, results_dir: Path
) -> None:
    folders = {Path(t["runtime_dir"]) for t in rendered}
    assert len(folders) == len(rendered)
    for folder in folders:
        assert folder.is_absolute() and not folder.is_relative_to(results_dir)


def test_deployments_of_a_run_get_distinct_port_blocks(rendered) -> None:
    ranges = [
        set(range(t["base_port"], t["base_port"] + t["shards"] * (1 + t["replicas"])))
        for t in rendered
    ]
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            assert not a & b


def _free_two_blocks() -> int:
    """A range start whose first two port blocks and their bus ports nothing holds now
    (other tests' servers may hold any fixed range while this one runs)."""
    for first in range(46000, 60000 - 2 * machine.PORT_BLOCK, 2 * machine.PORT_BLOCK):
        ports = range(first, first + 2 * machine.PORT_BLOCK)
        if all(_port_free(p) and _port_free(p + BUS_PORT_OFFSET) for p in ports):
            return first
    raise AssertionError("no two free port blocks on this machine")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_busy_port_block_is_skipped(monkeypatch, tmp_path: Path) -> None:
    first = _free_two_blocks()
    monkeypatch.setenv("CACHEBENCH_PORT_FIRST", str(first))
    monkeypatch.setenv("CACHEBENCH_MACHINE_DIR", str(tmp_path / "machine"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", first + 1))  # one port of the first block
        s.listen()
        sd = str(tmp_path / "d" / "server")
        base = machine.claim_ports(claims.Owner(key="0000000d", state_dir=sd, expires_at=2e9), 2)
    assert base == first + machine.PORT_BLOCK


def test_prepare_writes_module_and_tfvars_without_secrets(rendered, tmp_path: Path) -> None:
    tf = Terraform(tmp_path / "tf", kind="cli")
    path = tf.prepare("local", rendered[0])
    assert {p.name for p in (tmp_path / "tf").glob("*.tf")} >= {"main.tf", "variables.tf"}
    text = path.read_text()
    assert json.loads(text) == rendered[0]
    assert "password" not in text.lower() and "auth" not in json.loads(text)
