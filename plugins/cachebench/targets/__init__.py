"""Back ends: one `Target` per place a campaign can run (local, aws), one shape for both.

steps.py drives a deployment through a target and never asks what it is:

    tfvars / backend_config / terraform_env   provision it with Terraform
    server_versions(prov)                     what its servers say they run (provenance)
    step(prov, run, record, event)            start (or reattach to) a run's load, or
                                              advance it on its watch's event: the next
                                              Watch to defer on, or None when its load ended
    loads(prov, run, record)                  the run's measured load (+ warm-up, prefill)
    metrics(prov, run, start, end)            the server metrics of a window
    metrics_ready_at(end)                     when they can be read (CloudWatch lags)
    quiet(prov)                               no load beside the block (the export)
    orphans(plan, ddir)                       what a killed apply made that exists (import ids),
                                              adopted into the state before apply and destroy
    stop_load / leftovers / sweep             destroy's checks
    problems(spec)                            what plan refuses before anything exists
"""

from __future__ import annotations

import importlib
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from cachebench.campaign import CampaignSpec
    from cachebench.models import (
        DeploymentPlan,
        Provisioned,
        RunLoads,
        RunRecord,
        RunSpec,
        Watch,
    )
    from cachebench.workspace import DeploymentDir


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
    ) -> tuple[RunRecord, Watch | None]: ...

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


class Busy(RuntimeError):
    """Another deployment's load runs now: come back later (do not wait in a worker slot)."""


def get(target: str) -> Target:
    return importlib.import_module(f"cachebench.targets.{target}.target").TARGET
