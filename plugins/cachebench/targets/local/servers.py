"""Start and stop real Redis/Valkey servers for the `local` target.

Plain node types listen on 127.0.0.1. A miniature's nodes (config "miniature",
cachebench.targets.local.miniature) each listen on their own address in a network
namespace of their own, inside a cgroup: `up` makes those first and `down`
removes them after the servers have stopped.

Layout of a state directory (one per deployment; no secret in it)::

    <state_dir>/
      config.json          the config `up` ran with
      registry.json        what runs here: pids, ports, expiry (for the reaper)
      miniature.json       a miniature's namespaces, links and cgroups (written as soon
                           as they exist, so a failure from then on still removes them)
      agent.pid agent.log  the metrics agent
      metrics.csv          the agent's samples (kept by `down`)
      nodes/<node_id>/
        node.json          node id, port, binary (lets `down` work alone)
        server.pid server.log nodes.conf startup.err

The password (`auth`) and each server's config (requirepass/masterauth) live in the
config's `runtime_dir`, a private folder outside the results (cachebench.targets.local.runtime),
which `down` removes.

`up` is idempotent and all-or-nothing: if it fails it stops whatever runs in the
state directory, because Terraform never runs the destroy provisioner of a
resource whose create failed (it is tainted instead).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import redis
from pydantic import Field

from cachebench import jsonfile, procs
from cachebench.models import Strict
from cachebench.redis_conn import connect
from cachebench.targets.local.config import (
    BUS_PORT_OFFSET,
    REGISTRY,
    LocalError,
    RegisteredNode,
    Registry,
    ServerConfig,
    read_registry,
    validate_config,
    write_registry,
)

from . import claims, miniature, netns, runtime

CLUSTER_SLOTS = 16384
HOST = "127.0.0.1"
READY_POLL_S = 0.05  # readiness is a few commands per node: poll it often
FULL_MESH_NODES = 16  # up to this many nodes, every node MEETs every other one
STOP_GRACE_S = 10.0
SLOTS_LACK_REPLICAS = "(replicas not yet in CLUSTER SLOTS)"
# Fields that define what runs; a change means "different servers".
IDENTITY = (
    "miniature",
    "deployment_id",
    "engine",
    "engine_version",
    "server_binary",
    "cluster_mode",
    "shards",
    "replicas",
    "base_port",
    "maxmemory_bytes",
    "maxmemory_policy",
    "io_threads",
)


class NodeSpec(Strict):
    node_id: str
    shard: int  # 1-based, like ElastiCache's node group "0001"
    member: int  # 1-based within the shard; 1 is the primary
    port: int
    role: Literal["primary", "replica"]
    host: str = HOST  # a miniature's node: its own address, in its own namespace


class NodeFile(NodeSpec):
    """A node folder's node.json: what `down` needs to find its server without a registry."""

    server_binary: str


class KnownNode(Strict):
    """A node a state dir may run, as its registry and its node folder say."""

    node_id: str
    host: str
    port: int | None
    role: Literal["primary", "replica"]
    binary: str | None
    dir: Path
    pid: int | None = Field(description="its server's, when one of its pids runs it")


# ---------------------------------------------------------------- planning


def plan_nodes(
    shards: int, replicas: int, base_port: int, subnet: str | None = None
) -> list[NodeSpec]:
    """Node ids and ports; node i (shard-major order) listens on base_port + i, on
    127.0.0.1 or, with a miniature's subnet, on the subnet's address 2 + i."""
    per = replicas + 1
    return [
        NodeSpec(
            node_id=f"{s + 1:04d}-{m + 1:03d}",
            shard=s + 1,
            member=m + 1,
            port=base_port + s * per + m,
            role="primary" if m == 0 else "replica",
            host=netns.host(subnet, 2 + s * per + m) if subnet else HOST,
        )
        for s in range(shards)
        for m in range(per)
    ]


def nodes_of(cfg: ServerConfig) -> list[NodeSpec]:
    mini = cfg.miniature
    return plan_nodes(cfg.shards, cfg.replicas, cfg.base_port, mini.subnet if mini else None)


def slot_ranges(shards: int) -> list[tuple[int, int]]:
    """16384 slots spread evenly over shards, as inclusive (first, last) ranges."""
    bounds = [k * CLUSTER_SLOTS // shards for k in range(shards + 1)]
    return [(bounds[k], bounds[k + 1] - 1) for k in range(shards)]


def binary_version(binary: str) -> tuple[str, str]:
    """(engine, version) the binary reports, e.g. ('valkey', '9.1.2')."""
    out = subprocess.run(
        [binary, "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    ).stdout
    engine = "valkey" if out.lower().startswith("valkey") else "redis"
    version = next((w[2:] for w in out.split() if w.startswith("v=")), "")
    return engine, version


def config_hash(cfg: ServerConfig) -> str:
    ident = cfg.model_dump(mode="json", include=set(IDENTITY))
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]


def render_server_conf(
    cfg: ServerConfig,
    node: NodeSpec,
    node_dir: Path,
    password: str,
    primary: NodeSpec | None,
) -> str:
    lines = [
        f"port {node.port}",
        f"bind {node.host}",
        "protected-mode yes",
        "daemonize yes",
        f'dir "{node_dir}"',
        f'pidfile "{node_dir / "server.pid"}"',
        f'logfile "{node_dir / "server.log"}"',
        'save ""',
        'dbfilename "dump.rdb"',
        "appendonly no",
        f'requirepass "{password}"',
        f'masterauth "{password}"',
        f"maxmemory {cfg.maxmemory_bytes}",
        f"maxmemory-policy {cfg.maxmemory_policy}",
        f"io-threads {cfg.io_threads}",
        # Diskless full sync starts at once instead of waiting 5 s for more replicas.
        "repl-diskless-sync-delay 0",
    ]
    if cfg.cluster_mode:
        lines += [
            "cluster-enabled yes",
            f'cluster-config-file "{node_dir / "nodes.conf"}"',
            "cluster-node-timeout 5000",
            f"cluster-announce-ip {node.host}",  # what clients and other nodes are told
        ]
    elif primary is not None:
        lines.append(f"replicaof {primary.host} {primary.port}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- helpers


@contextlib.contextmanager
def _locked(state_dir: Path):
    fd = os.open(state_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _client(port: int, password: str | None, timeout: float = 2.0, host: str = HOST) -> redis.Redis:
    return connect(host, port, password, timeout)  # SHUTDOWN must not retry


def _tail(path: Path, lines: int = 15, redact: str | None = None) -> str:
    try:
        text = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
    return text.replace(redact, "***") if redact else text


def _kv(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


def _names(binary: str | None) -> frozenset[str]:
    return procs.SERVER_NAMES | ({os.path.basename(binary)} if binary else set())


# ---------------------------------------------------------------- up


def up(config: dict[str, Any]) -> dict[str, Any]:
    """Start (or find running) the servers config describes; return the registry."""
    cfg = validate_config(config)
    engine, version = binary_version(cfg.server_binary)
    if engine != cfg.engine:
        raise LocalError(f"{cfg.server_binary} is a {engine} server, config says {cfg.engine}")
    want = cfg.engine_version.split(".") if cfg.engine_version else []
    if version.split(".")[: len(want)] != want:
        raise LocalError(
            f"{cfg.server_binary} is {engine} {version}, config says {cfg.engine_version}"
        )
    sd = Path(cfg.state_dir)
    sd.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(sd, 0o700)
    with _locked(sd):
        try:
            return _up_locked(cfg, sd, version).model_dump(mode="json")
        except BaseException:
            # All-or-nothing: nobody runs `down` for a failed create (tainted resource).
            with contextlib.suppress(Exception):
                _stop_all(sd)
            raise


def _live_nodes(cfg: ServerConfig, sd: Path, nodes: list[NodeSpec]) -> dict[str, int]:
    """node id -> pid of the nodes whose pidfile names a live server of theirs."""
    names = _names(cfg.server_binary)
    live = {}
    for n in nodes:
        pid = procs.read_pid(sd / "nodes" / n.node_id / "server.pid")
        if pid is not None and procs.is_server(pid, sd / "nodes" / n.node_id, n.port, names):
            live[n.node_id] = pid
    return live


def _start_fresh(cfg: ServerConfig, sd: Path, nodes: list[NodeSpec]) -> dict[str, int]:
    """Stop whatever ran here, then start, cluster and check the servers anew (a new
    password, a miniature's namespaces and cgroups); node id -> pid."""
    if _running_here(sd) or miniature.provisioned(sd) is not None:
        _stop_all(sd)  # stale or different servers: start clean
    prov = None
    owner = claims.Owner(
        key=cfg.miniature.key if cfg.miniature else miniature.key_of(sd),
        state_dir=cfg.state_dir,
        deployment_id=cfg.deployment_id,
        campaign=cfg.campaign,
        run_id=cfg.run_id,
        expires_at=cfg.expires_at,
    )
    if cfg.miniature is None:
        _check_ports(cfg, nodes)
    else:  # each node gets its own namespace: no port of this machine's is taken
        try:
            prov = miniature.provision(cfg.miniature, [n.node_id for n in nodes], owner)
        except miniature.MiniatureError as e:
            raise LocalError(f"miniature {cfg.miniature.mimics}: {e}") from e
        # recorded at once: a failure from here on still finds it to remove
        jsonfile.write(sd / miniature.FILE, prov.model_dump(mode="json"))
    rt = Path(cfg.runtime_dir)
    try:
        runtime.make(rt, owner)
    except (OSError, runtime.NotPrivate) as e:
        raise LocalError(f"runtime_dir {rt}: {e}") from e
    password = secrets.token_urlsafe(32)
    runtime.write_secret(rt / "auth", password + "\n")
    pids = _start_nodes(cfg, sd, nodes, password, prov)
    deadline = time.monotonic() + cfg.ready_timeout_seconds
    if cfg.cluster_mode:
        _form_cluster(cfg, nodes, password)
    # nudge: the data set is empty now, so a FLUSHALL is harmless.
    _wait_ready(cfg, nodes, password, deadline=deadline, nudge=True)
    return pids


def _up_locked(cfg: ServerConfig, sd: Path, version: str) -> Registry:
    """Reuse the servers running here when they are exactly what cfg asks for (an apply
    retried), else start them anew; register them and make sure the agent runs."""
    nodes = nodes_of(cfg)
    reg = read_registry(sd)
    auth = Path(cfg.runtime_dir) / "auth"
    live = _live_nodes(cfg, sd, nodes)
    same = reg is not None and reg.config_hash == config_hash(cfg) and auth.exists()
    if cfg.miniature is not None:  # its namespaces and cgroups must still be there too
        prov = miniature.provisioned(sd)
        same = same and prov is not None and miniature.in_place(prov)
    reused = same and len(live) == len(nodes)
    if reused:
        deadline = time.monotonic() + cfg.ready_timeout_seconds
        _wait_ready(cfg, nodes, auth.read_text().strip(), deadline=deadline)
        pids = live
    else:
        pids = _start_fresh(cfg, sd, nodes)
    registry = Registry(
        deployment_id=cfg.deployment_id,
        campaign=cfg.campaign,
        run_id=cfg.run_id,
        expires_at=cfg.expires_at,
        nodes=[
            RegisteredNode(
                node_id=n.node_id,
                pid=pids[n.node_id],
                host=n.host,
                port=n.port,
                role=n.role,
                shard=n.shard,
            )
            for n in nodes
        ],
        agent_pid=reg.agent_pid if reused and reg else None,
        created_at=reg.created_at if reused and reg else time.time(),
        # Beyond the reaper's needs: what the agent and `down` use.
        state_dir=str(sd),
        runtime_dir=cfg.runtime_dir,
        host=nodes[0].host,
        engine=cfg.engine,
        engine_version=cfg.engine_version,
        server_version=version,
        server_binary=cfg.server_binary,
        cluster_mode=cfg.cluster_mode,
        maxmemory_bytes=cfg.maxmemory_bytes,
        metrics_interval_seconds=cfg.metrics_interval_seconds,
        config_hash=config_hash(cfg),
        reused=reused,
    )
    write_registry(sd, registry)
    return _ensure_agent(sd, registry, reg)


def _ensure_agent(sd: Path, registry: Registry, before: Registry | None) -> Registry:
    """The metrics agent runs, with what it reads once at its start up to date."""
    agent_reads = {"deployment_id", "expires_at", "metrics_interval_seconds", "maxmemory_bytes"}
    changed = before is None or before.model_dump(include=agent_reads) != registry.model_dump(
        include=agent_reads
    )
    if registry.agent_pid is not None and procs.is_agent(registry.agent_pid, sd) and changed:
        procs.stop([registry.agent_pid], lambda p: procs.is_agent(p, sd), grace=3.0)
    if not procs.is_agent(registry.agent_pid, sd):
        registry = registry.model_copy(update={"agent_pid": _start_agent(sd)})
        write_registry(sd, registry)
    return registry


def _running_here(sd: Path) -> bool:
    reg = read_registry(sd)
    return any(n.pid for n in _known_nodes(sd, reg)) or any(
        procs.is_agent(p, sd) for p in _agent_pids(sd, reg)
    )


def _check_ports(cfg: ServerConfig, nodes: list[NodeSpec]) -> None:
    for n in nodes:
        ports = [n.port] + ([n.port + BUS_PORT_OFFSET] if cfg.cluster_mode else [])
        for port in ports:
            if not procs.port_free(port):
                what = "cluster bus port" if port != n.port else "port"
                raise LocalError(
                    f"{what} {port} (node {n.node_id}) on {HOST} is already in use by a process"
                    f" that is not a server of {cfg.state_dir}; choose another base_port"
                )


def start_node(
    cfg: ServerConfig,
    sd: Path,
    n: NodeSpec,
    password: str,
    upstream: NodeSpec | None,
    prov: miniature.Provisioned | None = None,
) -> None:
    """Write one node's config and start its server (daemonized; a miniature's inside its
    cgroup and network namespace); raise if it cannot start."""
    nd = sd / "nodes" / n.node_id
    nd.mkdir(parents=True, exist_ok=True, mode=0o700)
    _remove_data(nd)  # a fresh start never loads what an earlier run left
    jsonfile.write(nd / "node.json", NodeFile(**n.model_dump(), server_binary=cfg.server_binary))
    conf = Path(cfg.runtime_dir) / "nodes" / f"{n.node_id}.conf"
    runtime.write_secret(conf, render_server_conf(cfg, n, nd, password, upstream))
    argv = [cfg.server_binary, str(conf)]
    with open(nd / "startup.err", "wb") as err:
        rc = subprocess.run(
            miniature.launch(prov, n.node_id, argv) if prov is not None else argv,
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=nd,
            timeout=30,
        ).returncode
    if rc != 0:
        raise LocalError(
            f"node {n.node_id} (port {n.port}) failed to start (exit {rc}):\n"
            + (
                _tail(nd / "startup.err", redact=password)
                or _tail(nd / "server.log", redact=password)
            )
        )


def _start_nodes(
    cfg: ServerConfig,
    sd: Path,
    nodes: list[NodeSpec],
    password: str,
    prov: miniature.Provisioned | None,
) -> dict[str, int]:
    primary = {n.shard: n for n in nodes if n.role == "primary"}
    names = _names(cfg.server_binary)
    for n in nodes:
        upstream = primary[n.shard] if n.role == "replica" else None
        start_node(cfg, sd, n, password, upstream, prov=prov)
    pids: dict[str, int] = {}
    deadline = time.monotonic() + cfg.ready_timeout_seconds
    for n in nodes:
        nd = sd / "nodes" / n.node_id
        while True:
            pid = procs.read_pid(nd / "server.pid")
            if pid and procs.is_server(pid, nd, n.port, names):
                try:
                    with _client(n.port, password, host=n.host) as c:
                        c.ping()
                    pids[n.node_id] = pid
                    break
                except redis.BusyLoadingError:
                    pass
                except redis.ConnectionError:
                    pass
            elif pid and not procs.pid_alive(pid):
                raise LocalError(
                    f"node {n.node_id} (port {n.port}) exited during start-up; its log ends:\n"
                    + _tail(nd / "server.log", redact=password)
                )
            if time.monotonic() > deadline:
                raise LocalError(
                    f"node {n.node_id} (port {n.port}) did not answer PING within"
                    f" {cfg.ready_timeout_seconds:.0f} s; its log ends:\n"
                    + _tail(nd / "server.log", redact=password)
                )
            time.sleep(0.05)
    return pids


def _form_cluster(cfg: ServerConfig, nodes: list[NodeSpec], password: str) -> None:
    deadline = time.monotonic() + cfg.ready_timeout_seconds
    clients = {n.node_id: _client(n.port, password, host=n.host) for n in nodes}
    try:
        ids = {nid: c.execute_command("CLUSTER", "MYID") for nid, c in clients.items()}
        # Small clusters meet as a full mesh: with a star (everyone meets node 1)
        # the others learn of each other by gossip only, which took up to ~1 s more.
        meets = nodes if len(nodes) <= FULL_MESH_NODES else nodes[:1]
        for i, a in enumerate(meets):
            for b in nodes[i + 1 :]:
                clients[a.node_id].execute_command("CLUSTER", "MEET", b.host, b.port)
        primaries = [n for n in nodes if n.role == "primary"]
        for n, (lo, hi) in zip(primaries, slot_ranges(len(primaries)), strict=True):
            clients[n.node_id].execute_command("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        primary_of = {n.shard: n.node_id for n in primaries}
        pending = [n for n in nodes if n.role == "replica"]
        while pending:
            left = []
            for n in pending:
                c, pid_ = clients[n.node_id], ids[primary_of[n.shard]]
                try:
                    if pid_ in c.execute_command("CLUSTER", "NODES"):
                        c.execute_command("CLUSTER", "REPLICATE", pid_)
                        continue
                except redis.ResponseError:
                    pass  # primary not known yet: MEET still propagating
                left.append(n)
            pending = left
            if pending and time.monotonic() > deadline:
                raise LocalError(
                    "cluster: replicas "
                    + ", ".join(n.node_id for n in pending)
                    + f" never learned their primary within {cfg.ready_timeout_seconds:.0f} s"
                )
            if pending:
                time.sleep(0.1)
    finally:
        for c in clients.values():
            c.close()


def _readiness_problems(
    cfg: ServerConfig, nodes: list[NodeSpec], clients: dict[str, redis.Redis]
) -> list[str]:
    problems: list[str] = []
    ids: dict[str, str] = {}
    for n in nodes:
        c = clients[n.node_id]
        try:
            c.ping()
            if cfg.cluster_mode:
                ids[n.node_id] = c.execute_command("CLUSTER", "MYID")
                info = _kv(c.execute_command("CLUSTER", "INFO"))
                if info.get("cluster_state") != "ok":
                    problems.append(f"{n.node_id}: cluster_state:{info.get('cluster_state')}")
                if info.get("cluster_known_nodes") != str(len(nodes)):
                    problems.append(
                        f"{n.node_id}: knows {info.get('cluster_known_nodes')}/{len(nodes)} nodes"
                    )
                if info.get("cluster_slots_ok") != str(CLUSTER_SLOTS):
                    problems.append(f"{n.node_id}: cluster_slots_ok:{info.get('cluster_slots_ok')}")
            if n.role == "replica":
                repl = c.info("replication")
                if repl.get("master_link_status") != "up":
                    problems.append(
                        f"{n.node_id}: master_link_status:{repl.get('master_link_status')}"
                    )
        except redis.RedisError as e:
            problems.append(f"{n.node_id} (port {n.port}): {type(e).__name__}: {e}")
    if cfg.cluster_mode and not problems:
        # Every node must see every replica attached to the right primary, so a
        # cluster client gets the same CLUSTER SLOTS answer from any node.
        primary_of = {n.shard: ids[n.node_id] for n in nodes if n.role == "primary"}
        expect = {ids[n.node_id]: primary_of[n.shard] for n in nodes if n.role == "replica"}
        for n in nodes:
            view = {}
            for line in clients[n.node_id].execute_command("CLUSTER", "NODES").splitlines():
                f = line.split()
                if len(f) >= 4:
                    view[f[0]] = (f[2], f[3])
                    if any(x in f[2] for x in ("handshake", "fail", "noaddr")):
                        problems.append(f"{n.node_id} sees {f[0][:8]} as {f[2]}")
            for rid, pid_ in expect.items():
                if rid not in view or view[rid][1] != pid_ or "slave" not in view[rid][0]:
                    problems.append(f"{n.node_id} does not yet see {rid[:8]} replicating")
    if cfg.cluster_mode and not problems:
        # Clients discover replicas via CLUSTER SLOTS, which omits a replica
        # whose replication offset is still 0 (nothing written yet).
        want = {n.port for n in nodes if n.role == "replica"}
        for n in nodes:
            listed = set()
            for entry in clients[n.node_id].execute_command("CLUSTER", "SLOTS"):
                listed.update(int(x[1]) for x in entry[3:])
            if listed != want:
                missing = sorted(want - listed)
                problems.append(f"{n.node_id}: CLUSTER SLOTS lacks replicas {missing}")
                if missing:
                    problems.append(SLOTS_LACK_REPLICAS)
    return problems


def _wait_ready(
    cfg: ServerConfig,
    nodes: list[NodeSpec],
    password: str,
    deadline: float,
    nudge: bool = False,
) -> None:
    """Wait until every node is healthy (cluster_state:ok, replicas linked...).

    nudge=True (only right after a fresh start, when the data set is empty) lets
    it send FLUSHALL to the primaries once: that advances the replication offset
    so CLUSTER SLOTS lists the replicas without waiting for the periodic ping.
    """
    clients = {n.node_id: _client(n.port, password, host=n.host) for n in nodes}
    try:
        while True:
            problems = _readiness_problems(cfg, nodes, clients)
            if not problems:
                return
            if nudge and problems[-1] == SLOTS_LACK_REPLICAS:
                nudge = False
                for n in nodes:
                    if n.role == "primary" and cfg.replicas > 0:
                        clients[n.node_id].execute_command("FLUSHALL")
            problems = [p for p in problems if p != SLOTS_LACK_REPLICAS]
            if time.monotonic() > deadline:
                more = f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""
                raise LocalError(
                    f"servers not ready after {cfg.ready_timeout_seconds:.0f} s: "
                    + "; ".join(problems[:8])
                    + more
                )
            time.sleep(READY_POLL_S)
    finally:
        for c in clients.values():
            c.close()


def _start_agent(sd: Path) -> int:
    pkg_root = str(Path(__file__).resolve().parents[3])  # the dir holding cachebench/
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_root, env.get("PYTHONPATH", "")) if p)
    with open(sd / "agent.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", procs.AGENT_MODULE, "--state-dir", str(sd)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            cwd=sd,
            env=env,
        )
    (sd / "agent.pid").write_text(f"{proc.pid}\n")
    return proc.pid


# ---------------------------------------------------------------- down


def _agent_pids(sd: Path, reg: Registry | None) -> list[int]:
    pids = {procs.read_pid(sd / "agent.pid")}
    if reg and reg.agent_pid:
        pids.add(reg.agent_pid)
    return [p for p in pids if p]


def _known_nodes(sd: Path, reg: Registry | None) -> list[KnownNode]:
    """Every node this state dir may run: from the registry, else from node dirs (their
    node.json and pidfile: an `up` that died before registering)."""
    registered = {n.node_id: n for n in reg.nodes} if reg else {}
    nodes_dir = sd / "nodes"
    on_disk = (
        sorted(d.name for d in nodes_dir.iterdir() if d.is_dir()) if nodes_dir.is_dir() else []
    )
    out = []
    for node_id in [*registered, *(n for n in on_disk if n not in registered)]:
        nd, entry = nodes_dir / node_id, registered.get(node_id)
        try:
            meta: NodeFile | None = NodeFile.model_validate_json((nd / "node.json").read_bytes())
        except (OSError, ValueError):
            meta = None
        port = entry.port if entry else meta.port if meta else None
        binary = (reg.server_binary if entry and reg else None) or (
            meta.server_binary if meta else None
        )
        pids = [p for p in (entry.pid if entry else None, procs.read_pid(nd / "server.pid")) if p]
        ours = [p for p in pids if procs.is_server(p, nd, port, _names(binary))]
        out.append(
            KnownNode(
                node_id=node_id,
                host=entry.host if entry else meta.host if meta else HOST,
                port=port,
                role=meta.role if meta else entry.role if entry else "primary",
                binary=binary,
                dir=nd,
                pid=ours[0] if ours else None,
            )
        )
    return out


def down(state_dir: Path | str) -> dict[str, Any]:
    """Stop the agent and every server of state_dir; idempotent."""
    sd = Path(state_dir)
    if not sd.is_dir():
        return {
            "state_dir": str(sd),
            "stopped_nodes": [],
            "agent_stopped": False,
            "busy_ports": [],
            "left": [],
        }
    with _locked(sd):
        return _stop_all(sd)


def _stop_all(sd: Path) -> dict[str, Any]:
    reg = read_registry(sd)
    agent_stopped = False
    for pid in _agent_pids(sd, reg):
        if procs.is_agent(pid, sd):
            left = procs.stop([pid], lambda p: procs.is_agent(p, sd), grace=3.0)
            if left:
                raise LocalError(f"agent pid {pid} survived SIGKILL")
            agent_stopped = True
    known = _known_nodes(sd, reg)
    running = [n for n in known if n.pid]

    def ours(n: KnownNode) -> Callable[[int], bool]:
        return lambda p: procs.is_server(p, n.dir, n.port, _names(n.binary))

    rt = runtime_dir_of(sd, reg)
    auth = rt / "auth"
    password = auth.read_text().strip() if auth.exists() else None
    # Replicas first, so no primary waits for a lagging replica on SHUTDOWN.
    for n in sorted(running, key=lambda n: n.role == "primary"):
        if n.port and n.pid and ours(n)(n.pid):
            _shutdown_nosave(n.host, n.port, password)
    by_pid = {n.pid: n for n in running if n.pid}
    for pid in procs.wait_gone(list(by_pid), STOP_GRACE_S):
        if procs.stop([pid], ours(by_pid[pid]), grace=5.0):
            raise LocalError(f"server pid {pid} ({by_pid[pid].node_id}) survived SIGKILL")
    cluster = reg.cluster_mode if reg else any((n.dir / "nodes.conf").exists() for n in known)
    # a miniature's nodes listen in their own namespaces: none of this machine's ports
    ports = [n.port for n in known if n.port and n.host == HOST]
    ports += [p + BUS_PORT_OFFSET for p in ports] if cluster else []
    deadline = time.monotonic() + 10.0
    busy = [p for p in ports if not procs.port_free(p)]
    while busy and time.monotonic() < deadline:
        time.sleep(0.1)
        busy = [p for p in busy if not procs.port_free(p)]
    # Secrets must not outlive the servers; cluster state would confuse a new `up`.
    runtime.remove(rt)
    for n in known:
        _remove_data(n.dir)
    left = miniature.teardown(key) if (key := _miniature_key(sd, reg)) else []
    if not left:
        (sd / miniature.FILE).unlink(missing_ok=True)
    (sd / "agent.pid").unlink(missing_ok=True)
    if reg is not None:
        write_registry(sd, reg.model_copy(update={"stopped_at": time.time()}))
    if busy:
        print(
            f"cachebench.targets.local down: ports {busy} are still in use"
            " by processes that are not ours",
            file=sys.stderr,
        )
    return {
        "state_dir": str(sd),
        "stopped_nodes": sorted(n.node_id for n in running),
        "agent_stopped": agent_stopped,
        "busy_ports": busy,
        "left": left,
    }


def _miniature_key(sd: Path, reg: Registry | None) -> str | None:
    """The key of the miniature resources state_dir's deployment may have: as provisioned,
    else as configured (an `up` that died before provisioning), else None (plain)."""
    if (prov := miniature.provisioned(sd)) is not None:
        return prov.miniature.key
    raw = jsonfile.read_dict(sd / "config.json") or {}
    mini = raw.get("miniature")
    return str(mini["key"]) if isinstance(mini, dict) and mini.get("key") else None


def runtime_dir_of(state_dir: Path, reg: Registry | None = None) -> Path:
    """The private folder of state_dir's servers: as registered, configured, else derived."""
    if reg is not None:
        return Path(reg.runtime_dir)
    raw = jsonfile.read_dict(state_dir / "config.json") or {}
    if isinstance(raw.get("runtime_dir"), str):
        return Path(raw["runtime_dir"])
    return runtime.secrets_dir(state_dir)


def _remove_data(node_dir: Path) -> None:
    """Delete a node's state files (pidfile, cluster config, RDBs a replica received)."""
    for name in ("server.pid", "nodes.conf", "dump.rdb"):
        (node_dir / name).unlink(missing_ok=True)
    for tmp in node_dir.glob("temp-*.rdb"):
        tmp.unlink(missing_ok=True)
    shutil.rmtree(node_dir / "appendonlydir", ignore_errors=True)


def _shutdown_nosave(host: str, port: int, password: str | None) -> None:
    if password is None:
        return  # cannot AUTH: SIGTERM will do (save "" means nothing is written)
    try:
        with _client(port, password, timeout=3.0, host=host) as c:
            try:
                c.execute_command("SHUTDOWN", "NOSAVE", "NOW")
            except redis.ResponseError:
                c.execute_command("SHUTDOWN", "NOSAVE")
    except (redis.ConnectionError, redis.TimeoutError):
        pass  # the server closes the connection as it exits
    except redis.RedisError:
        pass  # SIGTERM follows


# ---------------------------------------------------------------- endpoint


def endpoint_from_registry(state_dir: Path | str):
    """The Endpoint (no secret: auth_ref is the password file's path) of a running point."""
    from cachebench.models import Endpoint, Node

    sd = Path(state_dir)
    reg = read_registry(sd)
    if not reg or not reg.nodes:
        raise LocalError(f"{sd / REGISTRY} is missing or damaged")
    nodes = [
        Node(node_id=n.node_id, host=n.host, port=n.port, role=n.role, shard=n.shard)
        for n in reg.nodes
    ]
    first = next(n for n in nodes if n.role == "primary")
    return Endpoint(
        host=first.host,
        port=first.port,
        cluster_mode=reg.cluster_mode,
        tls=False,
        auth_ref=str(runtime_dir_of(sd, reg) / "auth"),
        nodes=nodes,
    )
