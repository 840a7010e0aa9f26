"""The reaper on real leftovers: servers planted with `python -m cachebench.targets.local up`
and with Terraform, some expired, some of a running run, one whose folder is gone (a
miniature: its namespaces, links, cgroups and subnet claim must go too)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag
from leftovers import kernel_objects, miniature_keys

from cachebench import engines, procs, reaper, steps, targets
from cachebench.campaign import CampaignSpec
from cachebench.targets.local import claims, machine, miniature, netns, runtime, servers
from cachebench.workspace import RunDir

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def free_base(k: int) -> int:
    """A port well above the fault tests' blocks, for planted servers."""
    base = machine.port_first() + 4000 + 20 * k
    return next(p for p in range(base, base + 20) if procs.port_free(p))


def plant(results: Path, k: int, *, run_id: str, expires_in: float, mini: bool = False) -> Path:
    """Real servers of a fake deployment, started the way Terraform's local-exec starts them
    (mini: as a miniature of cache.t4g.micro, its subnet claimed as render_tfvars claims it)."""
    run_dir = RunDir.for_run("planted", run_id)
    pdir = run_dir.deployment(f"redis-7.0-single-local.micro-p{k}").path
    sd = pdir / "server"
    sd.mkdir(parents=True)
    config = {
        "deployment_id": pdir.name,
        "campaign": "planted",
        "run_id": run_id,
        "engine": "redis",
        "engine_version": "7.0",
        "server_binary": str(engines.server_binary("redis", "7.0")),
        "cluster_mode": False,
        "shards": 1,
        "replicas": 0,
        "base_port": free_base(k),
        "maxmemory_bytes": 64 * 2**20,
        "maxmemory_policy": "allkeys-lru",
        "io_threads": 1,
        "state_dir": str(sd),
        "runtime_dir": str(runtime.secrets_dir(sd)),
        "metrics_interval_seconds": 1,
        "expires_at": int(time.time() + expires_in),
    }
    if mini:
        owner = claims.Owner(
            key=miniature.key_of(sd),
            state_dir=str(sd),
            campaign="planted",
            run_id=run_id,
            expires_at=config["expires_at"],
        )
        config["miniature"] = {
            "key": owner.key,
            "mimics": "cache.t4g.micro",
            "subnet": netns.subnet_of(netns.claim(owner)),
            "cpu_limit_cores": 0.25,
            "memory_limit_bytes": 2**29,
            "load_cpu_cores": 1.0,
            "allowance": {"baseline_bps": 64e6, "burst_bps": 5e9, "bucket_bytes": 80e6},
        }
    (sd / "config.json").write_text(json.dumps(config))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cachebench.targets.local",
            "up",
            "--config",
            str(sd / "config.json"),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )
    assert processes(pdir), "planting failed"
    return pdir


def processes(pdir: Path) -> list[dict]:
    return [p for p in procs.processes_under(pdir) if p["kind"] == "server"]


def assert_gone(pdir: Path, ports: list[int]) -> None:
    assert procs.processes_under(pdir) == []
    for port in ports:
        assert procs.port_free(port), port
    assert not runtime.secrets_dir(pdir / "server").exists(), "its secrets were kept"


def registry_ports(pdir: Path) -> list[int]:
    return [n["port"] for n in json.loads((pdir / "server/registry.json").read_text())["nodes"]]


def test_reaper_takes_leftovers_and_spares_a_running_run(results_dir: Path) -> None:
    expired = plant(results_dir, 0, run_id="manual__gone", expires_in=4)
    live = plant(results_dir, 1, run_id="manual__live", expires_in=3600)
    done = plant(results_dir, 2, run_id="manual__done", expires_in=3600)
    orphan = plant(results_dir, 3, run_id="manual__live", expires_in=3600, mini=True)
    orphan_key = miniature.key_of(orphan / "server")
    assert kernel_objects({orphan_key}), "the miniature was not planted"
    orphan_ports = registry_ports(orphan)
    shutil.rmtree(orphan)  # its registry and pidfiles are gone with it, not its secrets
    ports = {p: registry_ports(p) for p in (expired, live, done)}
    states = {"manual__live": targets.RUNNING, "manual__done": targets.FINISHED}
    try:
        time.sleep(
            max(
                0.0,
                json.loads((expired / "server/config.json").read_text())["expires_at"]
                - time.time()
                + 0.2,
            )
        )
        summary = reaper.reap([results_dir], run_state=lambda c, r: states.get(r))
        reasons = {Path(f["where"]).name[-2:]: f["reason"] for f in summary["found"]}
        assert set(reasons) == {"p0", "p2", "p3"}, summary
        assert reasons["p0"].startswith("expired")
        assert "no longer running" in reasons["p2"]
        assert "folder was removed" in reasons["p3"]
        assert summary["failed"] == [] and len(summary["reaped"]) == 3
        assert [Path(s["where"]).name[-2:] for s in summary["spared"]] == ["p1"]
        assert_gone(expired, ports[expired])
        assert_gone(done, ports[done])
        assert_gone(orphan, orphan_ports)
        assert kernel_objects({orphan_key}) == []  # namespaces, links, cgroups, claim
        minis = [m for m in summary["strays"] if m["kind"] == "miniature"]
        assert {m["where"]: m["reason"] for m in minis} == {
            orphan_key: "its deployment's folder was removed"
        }
        assert processes(live), "a non-expired deployment of a running run was reaped"
        # the orphan's secrets went after it (its folder is gone, its servers stopped), the
        # running deployment's stay
        folders = [r for r in summary["strays"] if r["kind"] == "runtime folder"]
        secrets = {Path(r["where"]): r["reason"] for r in folders}
        assert "folder was removed" in secrets[runtime.secrets_dir(orphan / "server")]
        assert (runtime.secrets_dir(live / "server") / "auth").is_file()
        assert json.loads((expired / "reaped.json").read_text())["problems"] == []
        # reaping again finds nothing new
        again = reaper.reap([results_dir], run_state=lambda c, r: states.get(r))
        assert again["found"] == []
    finally:
        for pdir in (expired, live, done):
            servers.down(pdir / "server")
        procs.kill_under(results_dir)
        miniature.teardown(orphan_key)


def test_reaper_dag_destroys_expired_terraform_deployment(airflow_db, results_dir: Path) -> None:
    """Through the DAG, with the real run-state lookup: the run's metadata does not exist,
    so expiry decides; the expired deployment is destroyed by `terraform destroy`."""
    spec = CampaignSpec.from_input(
        {
            "name": "planted-tf",
            "engines": [{"engine": "redis", "versions": ["7.0"]}],
            "topologies": [{"cluster_mode": False}],
            "node_types": ["local.t4g.micro"],  # a miniature: its kernel objects must go too
            "workloads": [{"name": "w", "duration_seconds": 2, "warmup_seconds": 0}],
            "budget_usd": 0,
        }
    )
    run_id = "manual__metadata-gone"
    run = RunDir.for_run(spec.name, run_id)
    (plan,) = spec.plans(run_id, str(run.path), "redis-benchmark")
    pdir = run.deployment(plan.instance).path
    steps.apply(steps.render_tfvars(plan))
    reg_file = pdir / "server" / "registry.json"
    reg = json.loads(reg_file.read_text())
    reg["expires_at"] = time.time() - 60  # planted as expired
    reg_file.write_text(json.dumps(reg))
    fresh = plant(results_dir, 5, run_id="manual__unknown", expires_in=3600)
    try:
        dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_reaper"]
        dag_run = dag.test()
        assert str(dag_run.state) == "success"
        assert_gone(pdir, [n["port"] for n in reg["nodes"]])
        state = json.loads((pdir / "terraform" / "terraform.tfstate").read_text())
        assert state["resources"] == []
        assert "$ terraform destroy" in (pdir / "terraform" / "terraform.log").read_text()
        assert miniature_keys(run.path) and kernel_objects(miniature_keys(run.path)) == []
        # unknown run (no metadata), not expired: left alone
        assert processes(fresh)
    finally:
        servers.down(pdir / "server")
        servers.down(fresh / "server")
        procs.kill_under(results_dir)
        miniature.teardown(miniature.key_of(pdir / "server"))
