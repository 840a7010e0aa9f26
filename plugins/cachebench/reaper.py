"""The reaper: find what campaign runs left behind and destroy it.

A leftover is something a deployment created that still exists although nothing
will clean it up any more:

* **local**: servers and metrics agents on this machine. They are found by
  the `registry.json` of each deployment under the results root (`up` writes it:
  deployment, campaign, run id, expiry, pids) and, for deployments whose registry or
  whole folder is gone, by scanning /proc for our server, agent and load
  processes whose working directory lies inside the results root.
* **other targets** (aws): the target's `find_leftovers(now)` (ElastiCache
  replication groups found by their cachebench tags) and
  `reap_leftover(leftover) -> list[str]` (the `Reapable` protocol below).

A found deployment is reaped when its registry says it expired, or when its run is
known to be finished. When the run cannot be looked up (its Airflow metadata
is gone, or no metadata DB is reachable), expiry alone decides. A deployment of a
running run that has not expired is left alone.

Destroying a local deployment: `terraform destroy` in the deployment's work dir when
its state still holds resources, then `cachebench.targets.local.servers.down` on its
state dir (which removes its private runtime folder, the secrets), then a /proc sweep
of the deployment's folder; it is reaped only when no process of the deployment is
left and its ports are free. A runtime folder (cachebench.targets.local.runtime) outlives its
deployment when that folder was removed: it is removed once no process of the
deployment runs and the same rules (expired, run finished, folder gone) say so.
So are a miniature's namespaces, links, cgroups and subnet claim
(cachebench.targets.local.miniature), found by the claim that names their deployment;
any of them without a claim is an orphan, removed once it is an hour old.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cachebench import targets
from cachebench.targets.local import cgroups, miniature, netns, procs, runtime, servers
from cachebench.workspace import results_root

log = logging.getLogger(__name__)

RUNNING = "running"
FINISHED = "finished"
# Targets besides local whose module may offer find_leftovers / reap_leftover.
OTHER_TARGETS = ("aws",)

RunState = Callable[[str, str], str | None]
STRAY_RUNTIME_S = 3600  # a runtime folder without an owner is left alone this long


class Reapable(Protocol):
    """What a target other than local offers the reaper (aws: groups found by their tags)."""

    def find_leftovers(self, now: float) -> list[dict[str, Any]]: ...

    def reap_leftover(
        self, leftover: Leftover
    ) -> list[str]: ...  # (campaign, run_id) -> RUNNING | FINISHED | None


@dataclass
class Leftover:
    target: str
    deployment_id: str
    campaign: str
    run_id: str
    expires_at: float | None
    where: str  # local: the deployment's folder; aws: the resource id
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ run state


def dag_ids_for(campaign: str) -> list[str]:
    """The DAGs a deployment of `campaign` may have come from (file DAG or ad-hoc)."""
    return [f"cachebench__{campaign}", "cachebench_adhoc", "cachebench_adhoc_aws"]


def airflow_run_state(campaign: str, run_id: str) -> str | None:
    """RUNNING / FINISHED from Airflow's metadata, or None when it is not known there.

    Inside a task it asks through the Task SDK (workers have no DB access);
    elsewhere (CLI, tests) it reads the metadata DB. Any failure means "unknown".
    """
    try:
        return _state_via_task_sdk(campaign, run_id)
    except Exception as exc:  # not inside a task, or the API refused
        log.debug("run state via task sdk unavailable: %s", exc)
    try:
        return _state_via_db(campaign, run_id)
    except Exception as exc:
        log.warning("run state of %s unknown (%s): relying on expiry", run_id, exc)
        return None


def _state_via_task_sdk(campaign: str, run_id: str) -> str | None:
    from airflow.sdk.execution_time import task_runner

    if getattr(task_runner, "SUPERVISOR_COMMS", None) is None:
        raise RuntimeError("not inside a task")
    ti = task_runner.RuntimeTaskInstance
    for dag_id in dag_ids_for(campaign):
        if ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]):
            live = ti.get_dr_count(dag_id=dag_id, run_ids=[run_id], states=["queued", "running"])
            return RUNNING if live else FINISHED
    return None


def _state_via_db(campaign: str, run_id: str) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.scalars(
            select(DagRun.state).where(
                DagRun.dag_id.in_(dag_ids_for(campaign)), DagRun.run_id == run_id
            )
        ).all()
    if not rows:
        return None
    return RUNNING if any(str(s) in ("queued", "running") for s in rows) else FINISHED


# ------------------------------------------------------------------ local: find


def _deployment_dir_of(path: str, root: Path) -> Path | None:
    """results/<campaign>/<run>/deployments/<instance>/... -> that folder (None if not so)."""
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return None
    if len(parts) >= 4 and parts[2] == "deployments":
        return root.joinpath(*parts[:4])
    return None


def _state_has_resources(pdir: Path) -> bool:
    state = procs.read_json_dict(pdir / "terraform" / "terraform.tfstate") or {}
    return bool(state.get("resources"))


def _decide(meta: dict[str, Any], now: float, run_state: RunState) -> str | None:
    """Why this deployment is a leftover, or None to leave it alone."""
    expires = meta.get("expires_at")
    if isinstance(expires, int | float) and expires <= now:
        return f"expired {now - expires:.0f} s ago"
    if not meta.get("run_id"):
        return "no run owns it (no registry or config)"
    state = run_state(str(meta.get("campaign", "")), str(meta["run_id"]))
    if state == FINISHED:
        return f"its run {meta['run_id']} is no longer running"
    return None  # running, or unknown and not yet expired


def find_local(
    roots: list[Path], now: float | None = None, run_state: RunState = airflow_run_state
) -> tuple[list[Leftover], list[Leftover]]:
    """(leftovers, spared): live local deployments under roots, split by _decide."""
    now = time.time() if now is None else now
    found: dict[Path, Leftover] = {}
    spared: list[Leftover] = []
    for root in (Path(r).resolve() for r in roots):
        candidates: dict[Path, list[dict]] = {}
        for reg_file in root.glob("*/*/deployments/*/server/registry.json"):
            candidates.setdefault(reg_file.parents[1], [])
        for proc in procs.processes_under(root):
            pdir = _deployment_dir_of(proc["cwd"], root)
            if pdir is not None:
                candidates.setdefault(pdir, []).append(proc)
        for pdir, running in sorted(candidates.items()):
            if not running and not _state_has_resources(pdir):
                continue  # already clean
            sd = pdir / "server"
            meta = procs.read_json_dict(sd / "registry.json") or procs.read_json_dict(
                sd / "config.json"
            )
            if meta is None:
                meta = {}
                reason = (
                    "its folder was removed" if not pdir.exists() else "it has no registry"
                ) + " (orphaned processes)"
            else:
                reason = _decide(meta, now, run_state)
            item = Leftover(
                target="local",
                deployment_id=str(meta.get("deployment_id", pdir.name)),
                campaign=str(meta.get("campaign", pdir.parents[2].name)),
                run_id=str(meta.get("run_id", "")),
                expires_at=meta.get("expires_at"),
                where=str(pdir),
                reason=reason or "",
                extra={"pids": [p["pid"] for p in running]},
            )
            if reason:
                found[pdir] = item
            else:
                spared.append(item)
    return list(found.values()), spared


# ------------------------------------------------------------------ local: destroy


def reap_local(leftover: Leftover) -> list[str]:
    """Destroy a local deployment's resources; return what could not be removed (empty: done)."""
    from cachebench.terraform import TFVARS, Terraform

    pdir = Path(leftover.where)
    sd = pdir / "server"
    problems: list[str] = []
    tf = Terraform(pdir / "terraform")
    tf_error = ""
    if _state_has_resources(pdir) and (tf.workdir / TFVARS).exists():
        try:
            tf.init()
            tf.destroy()
        except Exception as exc:
            tf_error = f" (terraform destroy: {exc})"
            log.warning("reaper: terraform destroy of %s failed: %s", pdir, exc)
    reg = procs.read_json_dict(sd / "registry.json") or {}
    ports = {n.get("port") for n in reg.get("nodes", []) if isinstance(n, dict)}
    try:
        down = servers.down(sd)
        ports.update(down["busy_ports"])
        problems += [f"{what} still on this machine" for what in down["left"]]
    except Exception as exc:
        problems.append(f"down: {exc}")
    swept = procs.kill_under(pdir)
    for f in swept["found"]:
        log.warning("reaper: stopped %s pid %s in %s", f["kind"], f["pid"], f["cwd"])
    ports.update(swept["ports"])
    if left := procs.processes_under(pdir):
        problems.append(f"still running: {[(p['kind'], p['pid']) for p in left]}")
    if busy := sorted(p for p in ports if p and not procs.port_free(p)):
        problems.append(f"ports still in use: {busy}")
    if _state_has_resources(pdir):
        problems.append(f"terraform state in {tf.workdir} still holds resources{tf_error}")
    if pdir.exists():
        procs.write_json_atomic(
            pdir / "reaped.json",
            {"at": time.time(), "reason": leftover.reason, "problems": problems},
        )
    return problems


def stale_runtime(now: float, run_state: RunState) -> list[tuple[Path, str]]:
    """Runtime folders (a deployment's secrets) no running deployment needs, and why."""
    stale = []
    for path, owner in runtime.owners():
        if owner is None or not isinstance(owner.get("state_dir"), str):
            try:  # `up` writes its owner at once; `down` may have removed it meanwhile
                stray = now - path.stat().st_mtime > STRAY_RUNTIME_S
            except OSError:
                continue
            if stray:
                stale.append((path, "it names no deployment"))
            continue
        sd = Path(owner["state_dir"])
        if procs.processes_under(sd.parent):
            continue  # its servers run: find_local's to judge, their password kept
        reason = "its deployment's folder was removed" if not sd.is_dir() else None
        if reason := reason or _decide(owner, now, run_state):
            stale.append((path, reason))
    return stale


def stale_miniatures(now: float, run_state: RunState) -> list[tuple[str, str]]:
    """(key, why) of miniature resources no running deployment needs: claimed by a
    deployment the rules let go, or of no claim at all and an hour old."""
    stale, claimed = [], set()
    for _, owner in netns.claims():
        if owner is None or not isinstance(owner.get("key"), str):
            continue
        claimed.add(owner["key"])
        sd = Path(str(owner.get("state_dir", "")))
        if procs.processes_under(sd.parent):
            continue  # its servers run: find_local's to judge
        reason = "its deployment's folder was removed" if not sd.parent.is_dir() else None
        if reason := reason or _decide(owner, now, run_state):
            stale.append((owner["key"], reason))
    hierarchy, _ = cgroups.detect()
    found = [Path(netns.NETNS_DIR, n) for n in netns.namespaces()]
    found += [Path(d) for d in cgroups.existing(hierarchy)] if hierarchy else []
    for path in found:
        key = path.name.removeprefix(netns.PREFIX).split("-")[0]
        try:
            old = now - path.stat().st_mtime > STRAY_RUNTIME_S
        except OSError:
            continue
        if key not in claimed and old and key not in {k for k, _ in stale}:
            stale.append((key, f"{path} is claimed by no deployment"))
    return stale


# ------------------------------------------------------------------ all targets


def reap(
    roots: list[Path] | None = None,
    *,
    now: float | None = None,
    run_state: RunState = airflow_run_state,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Find and (unless dry_run) destroy leftovers of every target; a JSON summary."""
    now = time.time() if now is None else now
    roots = roots if roots is not None else [results_root()]
    leftovers, spared = find_local(roots, now, run_state)
    reapers: dict[str, Callable[[Leftover], list[str]]] = {"local": reap_local}
    for name in OTHER_TARGETS:
        target: Reapable = targets.get(name)  # type: ignore[assignment]
        for item in target.find_leftovers(now):  # the target decides expiry by its tags
            leftovers.append(item if isinstance(item, Leftover) else Leftover(**item))
        reapers[name] = target.reap_leftover
    reaped, failed = [], []
    for item in leftovers:
        log.warning(
            "reaper: %s deployment %s (%s): %s",
            item.target,
            item.deployment_id,
            item.where,
            item.reason,
        )
        if dry_run:
            continue
        problems = reapers[item.target](item)
        (failed if problems else reaped).append({**asdict(item), "problems": problems})
    secrets = stale_runtime(now, run_state)  # after the reaping: their servers are gone
    for path, reason in secrets:
        log.warning("reaper: runtime folder %s: %s", path, reason)
        if not dry_run:
            runtime.remove(path)
    minis = stale_miniatures(now, run_state) if miniature.machine_problems() == [] else []
    for key, reason in minis:
        log.warning("reaper: miniature resources %s: %s", key, reason)
        if not dry_run and (left := miniature.teardown(key)):
            failed.append({"target": "local", "where": key, "problems": left})
    return {
        "runtime_folders": [{"where": str(p), "reason": r} for p, r in secrets],
        "miniatures": [{"key": k, "reason": r} for k, r in minis],
        "found": [asdict(i) for i in leftovers],
        "reaped": reaped,
        "failed": failed,
        "spared": [asdict(i) for i in spared],
        "dry_run": dry_run,
    }
