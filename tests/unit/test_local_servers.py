"""Pure parts of the local server manager: node plan, slots, config, validation."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest

from cachebench import jsonfile, procs
from cachebench.targets.local import runtime
from cachebench.targets.local.servers import (
    CLUSTER_SLOTS,
    LocalError,
    plan_nodes,
    render_server_conf,
    slot_ranges,
    validate_config,
)


def base_config(**over):
    cfg = {
        "deployment_id": "p",
        "campaign": "c",
        "run_id": "r",
        "engine": "redis",
        "engine_version": "7.0",
        "server_binary": "/bin/sh",
        "cluster_mode": False,
        "shards": 1,
        "replicas": 0,
        "base_port": 27000,
        "maxmemory_bytes": 1 << 20,
        "maxmemory_policy": "volatile-lru",
        "io_threads": 1,
        "state_dir": "/tmp/x/server",
        "runtime_dir": "/tmp/runtime/x",
        "metrics_interval_seconds": 1,
        "expires_at": time.time() + 600,
    }
    cfg.update(over)
    return cfg


def test_plan_nodes_elasticache_ids_and_ports():
    nodes = plan_nodes(3, 1, 27000)
    assert [(n.node_id, n.port, n.role, n.shard) for n in nodes] == [
        ("0001-001", 27000, "primary", 1),
        ("0001-002", 27001, "replica", 1),
        ("0002-001", 27002, "primary", 2),
        ("0002-002", 27003, "replica", 2),
        ("0003-001", 27004, "primary", 3),
        ("0003-002", 27005, "replica", 3),
    ]
    assert [n.node_id for n in plan_nodes(1, 0, 1)] == ["0001-001"]


@pytest.mark.parametrize("shards", [1, 2, 3, 7, 500])
def test_slot_ranges_cover_all_slots_evenly(shards):
    ranges = slot_ranges(shards)
    assert ranges[0][0] == 0 and ranges[-1][1] == CLUSTER_SLOTS - 1
    for (_, hi), (lo, _) in itertools.pairwise(ranges):
        assert lo == hi + 1
    sizes = [hi - lo + 1 for lo, hi in ranges]
    assert sum(sizes) == CLUSTER_SLOTS and max(sizes) - min(sizes) <= 1


def test_render_conf_is_local_and_unsaved(tmp_path):
    cfg = validate_config(base_config(replicas=1))
    primary, replica = plan_nodes(1, 1, 27000)
    conf = render_server_conf(cfg, replica, tmp_path, "pw-123", primary=primary)
    lines = conf.splitlines()
    for want in (
        "bind 127.0.0.1",
        "protected-mode yes",
        "daemonize yes",
        'save ""',
        "appendonly no",
        'requirepass "pw-123"',
        'masterauth "pw-123"',
        "port 27001",
        "replicaof 127.0.0.1 27000",
        "maxmemory 1048576",
        "maxmemory-policy volatile-lru",
        "io-threads 1",
        f'pidfile "{tmp_path}/server.pid"',
        f'logfile "{tmp_path}/server.log"',
    ):
        assert want in lines
    cluster = render_server_conf(
        validate_config(base_config(cluster_mode=True, shards=2)), primary, tmp_path, "pw", None
    )
    assert "cluster-enabled yes" in cluster and "replicaof" not in cluster
    assert "cluster-announce-ip 127.0.0.1" in cluster.splitlines()


def test_miniature_nodes_listen_on_their_own_addresses(tmp_path):
    """A miniature's nodes: address 2 + i of the deployment's /27, bound, announced to the
    cluster and replicated from there."""
    nodes = plan_nodes(2, 1, 27000, subnet="169.254.9.64/27")
    assert [(n.node_id, n.host, n.port) for n in nodes] == [
        ("0001-001", "169.254.9.66", 27000),
        ("0001-002", "169.254.9.67", 27001),
        ("0002-001", "169.254.9.68", 27002),
        ("0002-002", "169.254.9.69", 27003),
    ]
    cluster = render_server_conf(
        validate_config(base_config(cluster_mode=True, shards=2, replicas=1)),
        nodes[2],
        tmp_path,
        "pw",
        None,
    ).splitlines()
    assert "bind 169.254.9.68" in cluster and "cluster-announce-ip 169.254.9.68" in cluster
    replica = render_server_conf(
        validate_config(base_config(replicas=1)), nodes[1], tmp_path, "pw", nodes[0]
    )
    assert "replicaof 169.254.9.66 27000" in replica.splitlines()


@pytest.mark.parametrize(
    ("over", "needle"),
    [
        ({"engine": "memcached"}, "engine"),
        ({"shards": 2}, "exactly 1 shard"),
        ({"shards": 0, "cluster_mode": True}, "shards"),
        ({"replicas": 6}, "replicas"),
        ({"base_port": 80}, "base_port"),
        ({"base_port": 60000, "cluster_mode": True}, "cluster bus"),
        ({"maxmemory_policy": "lru"}, "maxmemory_policy"),
        ({"expires_at": 1}, "past"),
        ({"state_dir": "rel/dir"}, "absolute"),
        ({"runtime_dir": "rel/dir"}, "runtime_dir='rel/dir': must be an absolute path outside"),
        ({"runtime_dir": "/tmp/x/secrets"}, "outside the results folder .* and outside /tmp/x"),
        ({"runtime_dir": os.environ["CACHEBENCH_RESULTS"] + "/c/r"}, "outside the results folder"),
        ({"server_binary": "/nonexistent/redis-server"}, "executable"),
        ({"shards": "3"}, "expected"),
        ({"cluster_mode": 1}, "expected"),
    ],
)
def test_validate_config_rejects(over, needle):
    with pytest.raises(LocalError, match=needle):
        validate_config(base_config(**over))


def test_validate_config_missing_key():
    cfg = base_config()
    del cfg["base_port"]
    with pytest.raises(LocalError, match="lacks base_port"):
        validate_config(cfg)


def test_write_secret_mode(tmp_path: Path):
    p = tmp_path / "auth"
    p.write_text("old")
    p.chmod(0o644)
    runtime.write_secret(p, "new")
    assert p.read_text() == "new"
    assert p.stat().st_mode & 0o777 == 0o600


def test_port_free_detects_listener():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not procs.port_free(port)
    assert procs.port_free(port)


def test_identity_checks_reject_unrelated_process(tmp_path):
    import os

    me = os.getpid()
    assert procs.pid_alive(me)
    assert not procs.is_server(me, tmp_path)
    assert not procs.is_agent(me, tmp_path)
    assert not procs.pid_alive(None)


def test_read_json_tolerates_damage(tmp_path):
    p = tmp_path / "x.json"
    assert jsonfile.read(p) is None
    p.write_text("{ damaged")
    assert jsonfile.read(p) is None and jsonfile.read_dict(p) is None
    p.write_text("[1, 2]")
    assert jsonfile.read(p) == [1, 2]
    assert jsonfile.read_dict(p) is None
    jsonfile.write(p, {"a": 1})
    assert jsonfile.read_dict(p) == {"a": 1}


class _FakeNode:
    """Stands in for a node's client in _form_cluster: records what it was sent."""

    def __init__(self, port: int, sent: list[tuple[int, tuple]]):
        self.port, self.sent = port, sent

    def execute_command(self, *args):
        self.sent.append((self.port, args))
        if args[:2] == ("CLUSTER", "MYID"):
            return f"id{self.port}"
        if args[:2] == ("CLUSTER", "NODES"):
            return " ".join(f"id{p}" for p in range(27000, 27100))  # every primary known
        return "OK"

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("shards", "replicas"), [(3, 0), (2, 1), (9, 1)])
def test_form_cluster_meets_as_full_mesh_when_small(monkeypatch, shards, replicas):
    """Every node MEETs every other one, so nobody waits for gossip to learn its peers."""
    from cachebench.targets.local import servers

    sent: list[tuple[int, tuple]] = []
    monkeypatch.setattr(servers, "_client", lambda port, password, host: _FakeNode(port, sent))
    cfg = validate_config(
        base_config(cluster_mode=True, shards=shards, replicas=replicas, ready_timeout_seconds=5)
    )
    nodes = plan_nodes(shards, replicas, 27000)
    servers._form_cluster(cfg, nodes, "pw")
    meets = {frozenset((src, args[3])) for src, args in sent if args[1] == "MEET"}
    count = sum(1 for _, args in sent if args[1] == "MEET")
    if len(nodes) <= servers.FULL_MESH_NODES:
        assert meets == {frozenset(p) for p in itertools.combinations([n.port for n in nodes], 2)}
        assert count == len(nodes) * (len(nodes) - 1) // 2  # each pair once
    else:  # large clusters: a star from the first node, the rest by gossip
        assert meets == {frozenset((27000, n.port)) for n in nodes[1:]}
    slots = [a for _, a in sent if a[1] == "ADDSLOTSRANGE"]
    assert len(slots) == shards
    assert sum(1 for _, a in sent if a[1] == "REPLICATE") == shards * replicas
