"""The local target's leftovers: deployments under the results root whose run is over.

A deployment is found by the `registry.json` its `up` wrote (deployment, campaign, run
id, expiry, pids) and, for deployments whose registry or whole folder is gone, by
the server, agent and load processes whose working directory lies inside the results
root. It is reaped when its registry says it expired, or when its run is known to be
finished (`decide`); a deployment of a running run that has not expired is left alone.

Destroying one: `terraform destroy` in the deployment's work dir when its state still
holds resources, then `servers.down` on its state dir (which removes its private
runtime folder, the secrets), then a sweep of the deployment's folder; it is reaped
only when no process of the deployment is left and its ports are free.

Strays, after the reaping: a runtime folder (runtime.py) that outlived its deployment,
and a miniature's namespaces, links, cgroups and subnet claim (miniature.py), found by
the claim that names their deployment; any of them without a claim is an orphan,
removed once it is an hour old.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from cachebench import jsonfile, procs
from cachebench.targets import FINISHED, Leftover, RunState, Stray
from cachebench.targets.local import cgroups, miniature, netns, runtime, servers

log = logging.getLogger(__name__)

STRAY_RUNTIME_S = 3600  # a runtime folder without an owner is left alone this long


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
    state = jsonfile.read_dict(pdir / "terraform" / "terraform.tfstate") or {}
    return bool(state.get("resources"))


def decide(meta: dict[str, Any], now: float, run_state: RunState) -> str | None:
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


def find(
    roots: list[Path], now: float, run_state: RunState
) -> tuple[list[Leftover], list[Leftover]]:
    """(leftovers, spared): live local deployments under roots, split by decide."""
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
            meta = jsonfile.read_dict(sd / "registry.json") or jsonfile.read_dict(
                sd / "config.json"
            )
            if meta is None:
                meta = {}
                reason = (
                    "its folder was removed" if not pdir.exists() else "it has no registry"
                ) + " (orphaned processes)"
            else:
                reason = decide(meta, now, run_state)
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


def reap(leftover: Leftover) -> list[str]:
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
    reg = jsonfile.read_dict(sd / "registry.json") or {}
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
        jsonfile.write(
            pdir / "reaped.json",
            {"at": time.time(), "reason": leftover.reason, "problems": problems},
        )
    return problems


def stale_runtime(now: float, run_state: RunState) -> list[tuple[Path, str]]:
    """Runtime folders (a deployment's secrets) no running deployment needs, and why."""
    stale = []
    for path, owner in runtime.owners():
        if owner is None:
            try:  # `up` writes its owner at once; `down` may have removed it meanwhile
                stray = now - path.stat().st_mtime > STRAY_RUNTIME_S
            except OSError:
                continue
            if stray:
                stale.append((path, "it names no deployment"))
            continue
        sd = Path(owner.state_dir)
        if procs.processes_under(owner.folder):
            continue  # its servers run: find_local's to judge, their password kept
        reason = "its deployment's folder was removed" if not sd.is_dir() else None
        if reason := reason or decide(owner.model_dump(), now, run_state):
            stale.append((path, reason))
    return stale


def stale_miniatures(now: float, run_state: RunState) -> list[tuple[str, str]]:
    """(key, why) of miniature resources no running deployment needs: claimed by a
    deployment the rules let go, or of no claim at all and an hour old."""
    stale, claimed = [], set()
    for owner in (c.owner for c in netns.SUBNETS.claims()):
        claimed.add(owner.key)
        if procs.processes_under(owner.folder):
            continue  # its servers run: find_local's to judge
        reason = "its deployment's folder was removed" if not owner.folder.is_dir() else None
        if reason := reason or decide(owner.model_dump(), now, run_state):
            stale.append((owner.key, reason))
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


def reap_strays(now: float, run_state: RunState, dry_run: bool) -> list[Stray]:
    """Remove (unless dry_run) the runtime folders and miniature resources no running
    deployment needs; after the deployments were reaped: their servers are gone."""
    strays = []
    for path, reason in stale_runtime(now, run_state):
        log.warning("reaper: runtime folder %s: %s", path, reason)
        if not dry_run:
            runtime.remove(path)
        strays.append(Stray("local", "runtime folder", str(path), reason))
    minis = stale_miniatures(now, run_state) if miniature.machine_problems() == [] else []
    for key, reason in minis:
        log.warning("reaper: miniature resources %s: %s", key, reason)
        left = [] if dry_run else miniature.teardown(key)
        strays.append(Stray("local", "miniature", key, reason, left))
    return strays
