"""The local target: real servers on this machine, started and stopped by Terraform.

A plain node type's servers listen on 127.0.0.1; a miniature's (a row that mimics
an AWS node type) run with its CPU, memory and network allowances enforced by the
kernel, each node in its own cgroup and network namespace (cachebench.targets.local.miniature).
A deployment's servers (and its metrics agent) live in deployments/<instance>/server;
each run is one detached `cachebench.targets.local.runner` process (lock, flush, prefill,
warm-up, measured window) in deployments/<instance>/load/<point>/rep<k>, watched
by LoadWatchTrigger on the triggerer.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachebench import engines, jsonfile, loadgen, procs
from cachebench.catalogue import InstanceSpec, load_instance_specs
from cachebench.loadgen.handle import read_handles
from cachebench.models import (
    DeploymentPlan,
    LoadCpu,
    LoadResult,
    LocalRunDetail,
    PrefillResult,
    Provisioned,
    RunLoads,
    RunRecord,
    RunSpec,
    Wait,
)
from cachebench.targets import Busy, Leftover, RunState, Stray
from cachebench.targets.local import (
    claims,
    machine,
    miniature,
    netns,
    runner,
    runtime,
    servers,
)
from cachebench.targets.local import leftovers as local_leftovers
from cachebench.targets.local.config import read_registry
from cachebench.workspace import DeploymentDir, deployment_dir

if TYPE_CHECKING:
    import pandas as pd

    from cachebench.campaign import CampaignSpec

RESERVED_MEMORY = 0.25  # ElastiCache's default reserved-memory-percent
TRIGGER = "cachebench.targets.local.trigger.LoadWatchTrigger"
PLUGINS_DIR = Path(__file__).resolve().parents[3]
AGENT_SETTLE_S = 0.25  # a sample the agent took before the window's end is on disk by then
# What a run's runner writes, removed before each attempt: never read as the new one's.
STALE = (
    "status.json",
    "handles.json",
    "error.json",
    "measured.json",
    "warmup.json",
    "prefill.json",
    "cpu.json",
)


def server_pids(state_dir: Path) -> list[int]:
    reg = read_registry(state_dir)
    return [n.pid for n in reg.nodes] if reg else []


def load_cgroup(state_dir: Path) -> list[str]:
    """The cgroup.procs files a run's load generators join (a miniature's load cgroup)."""
    prov = miniature.provisioned(state_dir)
    return prov.groups[miniature.LOAD].procs_files if prov is not None else []


def _runner(record: RunRecord) -> procs.Ident:
    assert isinstance(record.detail, LocalRunDetail)
    return record.detail.pid, record.detail.proc_start


def _out_dir(record: RunRecord) -> Path:
    assert isinstance(record.detail, LocalRunDetail)
    return Path(record.detail.out_dir)


def runner_alive(record: RunRecord) -> bool:
    return isinstance(record.detail, LocalRunDetail) and not procs.ended(*_runner(record))


class LocalTarget:
    name = "local"
    module = "local"

    def problems(self, spec: CampaignSpec) -> list[str]:
        """A miniature node type needs what enforces it (root, tc, ip, cgroups); a plain one
        runs anywhere."""
        catalogue = load_instance_specs()
        minis = [
            (i, nt)
            for i, nt in enumerate(spec.node_types)
            if (row := catalogue.get(("local", nt))) is not None and row.miniature
        ]
        missing = miniature.machine_problems() if minis else []
        if not missing:
            return []
        plain = [nt for (t, nt), row in catalogue.items() if t == "local" and not row.miniature]
        return [
            f"node_types[{i}]: {nt!r}: a miniature (limits enforced by the kernel) needs "
            f"{'; '.join(missing)}; allowed on this machine: {', '.join(plain)} "
            "(plain, unlimited)"
            for i, nt in minis
        ]

    def tfvars(self, plan: DeploymentPlan, ddir: DeploymentDir, expires_at: int) -> dict[str, Any]:
        d = plan.deployment
        spec = load_instance_specs()[("local", d.node_type)]
        binary = engines.server_binary(d.engine, d.version)
        if binary is None:
            raise RuntimeError(f"{d.engine} {d.version} is not installed on this machine")
        owner = claims.Owner(
            key=miniature.key_of(ddir.server),
            state_dir=str(ddir.server),
            deployment_id=plan.instance,
            campaign=d.campaign,
            run_id=plan.run_id,
            expires_at=expires_at,
        )
        mini = self._miniature(plan, owner, spec) if spec.miniature else None
        return {
            "deployment_id": plan.instance,
            "campaign": d.campaign,
            "run_id": plan.run_id,
            "engine": d.engine,
            "engine_version": d.version,
            "server_binary": str(binary),
            "cluster_mode": d.topology.cluster_mode,
            "shards": d.topology.shards,
            "replicas": d.topology.replicas,
            # claimed machine-wide until destroy: no other deployment of any campaign
            # on this machine gets these ports, whichever applies first (machine.py)
            "base_port": machine.claim_ports(owner, d.topology.nodes),
            "maxmemory_bytes": int(spec.memory_gib * (1 - RESERVED_MEMORY) * 2**30),
            "maxmemory_policy": d.maxmemory_policy,
            "io_threads": miniature.io_threads(mini["cpu_limit_cores"]) if mini else spec.vcpu,
            "miniature": mini,
            "state_dir": str(ddir.server),
            "runtime_dir": str(runtime.secrets_dir(ddir.server)),
            "python": sys.executable,
            "pythonpath": str(PLUGINS_DIR),
            "metrics_interval_seconds": 1,
            "expires_at": expires_at,
        }

    @staticmethod
    def _miniature(plan: DeploymentPlan, owner: claims.Owner, spec: InstanceSpec) -> dict[str, Any]:
        """The miniature's limits, and its subnet claimed machine-wide until `down`."""
        assert spec.mimics is not None and spec.cpu_limit_cores is not None
        allowance = None
        if spec.network_baseline_gbps is not None:
            assert spec.network_burst_gbps is not None and spec.network_bucket_mb is not None
            allowance = miniature.allowance_of(
                spec.network_baseline_gbps, spec.network_burst_gbps, spec.network_bucket_mb
            )
        nodes = plan.deployment.topology.nodes
        return miniature.Miniature(
            key=owner.key,
            mimics=spec.mimics,
            subnet=netns.subnet_of(netns.claim(owner)),
            cpu_limit_cores=spec.cpu_limit_cores,
            memory_limit_bytes=int(spec.memory_gib * 2**30),
            load_cpu_cores=miniature.load_cores(os.cpu_count() or 1, nodes, spec.cpu_limit_cores),
            allowance=allowance,
        ).model_dump()

    def backend_config(self, plan: DeploymentPlan, ddir: DeploymentDir) -> None:
        return None  # a local state file in the deployment's terraform/ dir

    def terraform_env(self, plan: DeploymentPlan, ddir: DeploymentDir) -> None:
        return None

    def server_versions(self, prov: Provisioned) -> dict[str, str]:
        """INFO server of every node: its engine and version."""
        from cachebench.redis_conn import connect

        password = (
            Path(prov.endpoint.auth_ref).read_text().strip() if prov.endpoint.auth_ref else None
        )
        out = {}
        for node in prov.endpoint.nodes:
            with connect(node.host, node.port, password, timeout=5) as c:
                info = c.info("server")
            engine = "valkey" if "valkey_version" in info else "redis"
            out[node.node_id] = f"{engine} {info.get('valkey_version') or info['redis_version']}"
        return out

    # ------------------------------------------------------------ runs

    def _wait(self, prov: Provisioned, record: RunRecord, out: Path) -> Wait:
        ddir = deployment_dir(prov.plan)
        return Wait(
            classpath=TRIGGER,
            phase="load",
            kwargs={
                "load_pids": [_runner(record)[0]],
                "server_pids": server_pids(ddir.server),
                "status_file": str(out / "status.json"),
            },
        )

    def _start(self, prov: Provisioned, run: RunSpec, attempt: int) -> RunRecord:
        ddir = deployment_dir(prov.plan)
        out = ddir.load(run.point.id, run.repetition)
        out.mkdir(parents=True, exist_ok=True)
        for stale in STALE:
            (out / stale).unlink(missing_ok=True)  # an earlier attempt's, never this one's
        job = runner.RunJob(
            key=run.key,
            workload=run.point.workload,
            endpoint=prov.endpoint,
            tool=run.point.load_tool,
            generators=run.point.load_generators,
            out_dir=str(out),
            lock=str(machine.load_lock()),
            cgroup_procs=load_cgroup(ddir.server),
        )
        job_file = out / "job.json"
        job_file.write_text(job.model_dump_json(indent=2))
        argv = [sys.executable, "-m", runner.MODULE, str(job_file)]
        with (out / "runner.log").open("ab") as log:
            runner_proc = procs.launch(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=out,
                env={**os.environ, "PYTHONPATH": str(PLUGINS_DIR)},
                start_new_session=True,
                close_fds=True,
            )
        return RunRecord(
            status="started",
            attempt=attempt,
            phase="load",
            started_at=time.time(),
            detail=LocalRunDetail(
                pid=runner_proc.proc.pid, proc_start=runner_proc.start, argv=argv, out_dir=str(out)
            ),
        )

    def step(
        self,
        prov: Provisioned,
        run: RunSpec,
        record: RunRecord | None,
        event: dict[str, Any] | None,
    ) -> tuple[RunRecord, Wait | None]:
        if record is None or record.status != "started":
            attempt = record.attempt + 1 if record else 1
            record = self._start(prov, run, attempt)
            return record, self._wait(prov, record, _out_dir(record))
        out = _out_dir(record)
        if event is None:  # a new try: reattach to the runner if it still runs
            if runner_alive(record):
                return record, self._wait(prov, record, out)
            return record, None
        if event.get("status") == "done":
            return record, None
        self._stop(record)
        return record.model_copy(
            update={"status": "failed", "error": f"watch: {event.get('message', event)}"}
        ), None

    def _stop(self, record: RunRecord) -> None:
        if not isinstance(record.detail, LocalRunDetail):
            return
        procs.terminate([_runner(record)], 5.0)
        if handles := read_handles(_out_dir(record) / "handles.json"):
            loadgen.stop_load(handles)

    def loads(self, prov: Provisioned, run: RunSpec, record: RunRecord) -> RunLoads:
        out = _out_dir(record)
        warm, filled, measured = out / "warmup.json", out / "prefill.json", out / "measured.json"
        cpu = out / "cpu.json"
        error, lost = "", False
        failed = out / "error.json"
        if failed.is_file():
            failure = runner.RunnerError.model_validate_json(failed.read_text())
            what = failure.message
            if failure.type != "LoadError":
                what = f"{failure.type}: {what}"
            error, lost = f"its {failure.step} failed: {what}", failure.lost
        elif not measured.is_file():
            # the runner ended without saying why (killed, out of memory): the harness lost it
            phase = (jsonfile.read_dict(out / "status.json") or {}).get("phase", "not started")
            log = loadgen.tail(out / "runner.log") or "(empty)"
            error = (
                f"the run's runner ended without a result or an error, in its {phase} phase "
                f"(the harness lost the run); runner log ({out / 'runner.log'}): {log}"
            )
            lost = True
        return RunLoads(
            measured=(
                LoadResult.model_validate_json(measured.read_text())
                if measured.is_file() and not error
                else None
            ),
            warmup=LoadResult.model_validate_json(warm.read_text()) if warm.is_file() else None,
            prefill=(
                PrefillResult.model_validate_json(filled.read_text()) if filled.is_file() else None
            ),
            cpu=LoadCpu.model_validate_json(cpu.read_text()) if cpu.is_file() else None,
            error=error,
            lost=lost,
        )

    def metrics(self, prov: Provisioned, run: RunSpec, start: float, end: float) -> pd.DataFrame:
        from cachebench.report.export import read_agent_csv

        csv = deployment_dir(prov.plan).server / "metrics.csv"
        return read_agent_csv(csv, run.point.id, start=start, end=end)

    def metrics_ready_at(self, prov: Provisioned, end: float) -> float:
        return end + AGENT_SETTLE_S

    @contextlib.contextmanager
    def quiet(self, prov: Provisioned) -> Iterator[None]:
        """Hold the machine's load lock (every runner, of any campaign on this machine,
        waits for it before it loads); Busy when another load or export holds it."""
        try:
            with machine.holding_load(f"export of {prov.plan.instance} ({prov.plan.run_dir})"):
                yield
        except BlockingIOError:
            holder = machine.load_holder()
            raise Busy(
                f"another load runs ({holder['what']}, pid {holder['pid']})"
                if holder
                else "another load runs"
            ) from None

    # ------------------------------------------------------------ destroy

    def stop_load(self, plan: DeploymentPlan, ddir: DeploymentDir) -> None:
        for path in sorted(ddir.path.glob("load/*/*/record.json")):
            try:
                record = RunRecord.model_validate_json(path.read_text())
            except (OSError, ValueError):
                continue
            if record.status == "started":
                self._stop(record)

    def leftovers(self, plan: DeploymentPlan, ddir: DeploymentDir) -> list[str]:
        """Stop whatever destroy missed and say what it was; empty means clean."""
        missed = [p for p in server_pids(ddir.server) if procs.pid_alive(p)]
        result = servers.down(ddir.server)
        left = [f"server pid {p} outlived terraform destroy" for p in missed]
        left += [f"port {p} still in use" for p in result["busy_ports"]]
        left += [f"{what} still on this machine" for what in result["left"]]
        return left

    def orphans(self, plan: DeploymentPlan, ddir: DeploymentDir) -> list[tuple[str, str]]:
        return []  # server processes nobody registered are sweep's

    def sweep(self, plan: DeploymentPlan, ddir: DeploymentDir) -> tuple[list[str], list[str]]:
        """Stop what no registry knows: processes whose cwd is in the deployment's folder.

        Catches what `down` cannot see when the folder (registry, pidfiles, records)
        was removed under a running deployment.
        """
        swept = procs.kill_under(ddir.path)
        runtime.remove(servers.runtime_dir_of(ddir.server))  # its secrets, with no one to use them
        if not swept["survivors"]:  # its ports are free again: give the block back
            machine.release_ports(miniature.key_of(ddir.server))
        stopped = [
            f"stopped {f['kind']} pid {f['pid']} ({os.path.basename(f['argv0'])}) "
            f"found in {f['cwd']}"
            for f in swept["found"]
        ]
        left = [f"pid {p} survived SIGKILL" for p in swept["survivors"]]
        left += [f"port {p} still in use" for p in swept["ports"] if not procs.port_free(p)]
        spec = load_instance_specs().get(("local", plan.deployment.node_type))
        if spec is not None and spec.miniature:  # found by its key: no registry needed
            key = miniature.key_of(ddir.server)
            if found := miniature.leftovers(key):
                stopped.append(f"removed {', '.join(found)}")
            left += [f"{what} still on this machine" for what in miniature.teardown(key)]
        return stopped, left

    # ------------------------------------------------------------ reaper

    def find_leftovers(
        self, roots: list[Path], now: float, run_state: RunState
    ) -> tuple[list[Leftover], list[Leftover]]:
        return local_leftovers.find(roots, now, run_state)

    def reap_leftover(self, leftover: Leftover) -> list[str]:
        return local_leftovers.reap(leftover)

    def reap_strays(self, now: float, run_state: RunState, dry_run: bool) -> list[Stray]:
        return local_leftovers.reap_strays(now, run_state, dry_run)
