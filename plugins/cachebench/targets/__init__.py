"""Back ends: one `Target` per place a campaign can run (local, aws), one shape for both.

steps.py drives a deployment through a target and never asks what it is:

    tfvars / backend_config / terraform_env   provision it with Terraform
    server_versions(prov)                     what its servers say they run (provenance)
    step(prov, run, record, event)            start (or reattach to) a run's load, or
                                              advance it on its watch's event: the next
                                              Wait to defer on, or None when its load ended
    loads(prov, run, record)                  the run's measured load (+ warm-up, prefill)
    metrics(prov, run, start, end)            the server metrics of a window
    metrics_ready_at(end)                     when they can be read (CloudWatch lags)
    quiet(prov)                               no load beside the block (the export)
    orphans(plan, ddir)                       what a killed apply made that exists (import ids),
                                              adopted into the state before apply and destroy
    stop_load / leftovers / sweep             destroy's checks
    problems(spec)                            what plan refuses before anything exists

and the reaper (reaper.py) through the same protocol:

    find_leftovers(roots, now, run_state)     (leftovers, spared) of runs gone or expired
    reap_leftover(leftover)                   destroy one; what could not be removed
    reap_strays(now, run_state, dry_run)      what no deployment owns any more (local:
                                              runtime folders, miniature resources)

Each target is one package (targets/local/, targets/aws/): its Terraform glue, load,
metrics, trigger, leftovers finder and reaper together; `registry()` names them all.
This package itself stays light: the local target's own processes (python -m
cachebench.targets.local ..., its runner and agent) import it first.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from cachebench.campaign import CampaignSpec
    from cachebench.models import (
        DeploymentPlan,
        Provisioned,
        RunLoads,
        RunRecord,
        RunSpec,
        Wait,
    )
    from cachebench.workspace import DeploymentDir


RUNNING = "running"
FINISHED = "finished"
RunState = Callable[[str, str], str | None]  # (campaign, run_id) -> RUNNING | FINISHED | None


@dataclass
class Leftover:
    """A deployment (or its resource) that exists although nothing will clean it up."""

    target: str
    deployment_id: str
    campaign: str
    run_id: str
    expires_at: float | None
    where: str  # local: the deployment's folder; aws: the resource id
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Stray:
    """Something of a target's that no deployment owns any more (and what of it is left)."""

    target: str
    kind: str
    where: str
    reason: str
    problems: list[str] = field(default_factory=list)


@runtime_checkable
class Target(Protocol):
    name: str

    @property
    def module(self) -> str:
        """Root module under include/terraform/."""
        ...

    def problems(self, spec: CampaignSpec) -> list[str]: ...

    def tfvars(self, plan: DeploymentPlan, ddir: DeploymentDir, expires_at: int) -> dict: ...

    def backend_config(self, plan: DeploymentPlan, ddir: DeploymentDir) -> dict | None: ...

    def terraform_env(self, plan: DeploymentPlan, ddir: DeploymentDir) -> dict | None: ...

    def server_versions(self, prov: Provisioned) -> dict[str, str]:
        """Each node's engine and version as it reports them, e.g. {"0001-001": "valkey 9.1.2"}."""
        ...

    def step(
        self,
        prov: Provisioned,
        run: RunSpec,
        record: RunRecord | None,
        event: dict[str, Any] | None,
    ) -> tuple[RunRecord, Wait | None]: ...

    def loads(self, prov: Provisioned, run: RunSpec, record: RunRecord) -> RunLoads: ...

    def metrics(
        self, prov: Provisioned, run: RunSpec, start: float, end: float
    ) -> pd.DataFrame: ...

    def metrics_ready_at(self, prov: Provisioned, end: float) -> float: ...

    def quiet(self, prov: Provisioned) -> AbstractContextManager[None]:
        """A section in which no load runs beside the caller's work (local: the load lock;
        aws: nothing shares the cache's or the load tasks' CPUs with the worker). Raises
        Busy at once, rather than waiting in a worker slot, while another load runs."""
        ...

    def orphans(self, plan: DeploymentPlan, ddir: DeploymentDir) -> list[tuple[str, str]]:
        """(module address, import id) of the deployment's resources that exist now, found
        by name or tags; steps imports those the state does not hold."""
        ...

    def stop_load(self, plan: DeploymentPlan, ddir: DeploymentDir) -> None: ...

    def leftovers(self, plan: DeploymentPlan, ddir: DeploymentDir) -> list[str]: ...

    def sweep(self, plan: DeploymentPlan, ddir: DeploymentDir) -> tuple[list[str], list[str]]:
        """(what was found and stopped, what survived) among processes nobody registered."""
        ...

    def find_leftovers(
        self, roots: list[Path], now: float, run_state: RunState
    ) -> tuple[list[Leftover], list[Leftover]]:
        """(leftovers, spared): what runs left behind, and what a live run still owns."""
        ...

    def reap_leftover(self, leftover: Leftover) -> list[str]:
        """Destroy one leftover; what could not be removed (empty: done)."""
        ...

    def reap_strays(self, now: float, run_state: RunState, dry_run: bool) -> list[Stray]:
        """After the leftovers: what no deployment owns any more, removed unless dry_run."""
        ...


class Busy(RuntimeError):
    """Another deployment's load runs now: come back later (do not wait in a worker slot)."""


def registry() -> dict[str, type[Target]]:
    """Every target by name. Imported on call, not with this package, which the local
    target's own light processes import first."""
    from cachebench.targets.aws.target import AwsTarget
    from cachebench.targets.local.target import LocalTarget

    return {"local": LocalTarget, "aws": AwsTarget}


def get(name: str) -> Target:
    return registry()[name]()
