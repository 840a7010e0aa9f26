"""Fault injection for the tests: a pytest plugin, never imported by production code.

The `faults` fixture swaps in subclasses of the production pieces (each target, and
steps' Terraform) that fail where a rule says, and returns `arm(rules)`:

    faults("name@glob[#once],...")

makes the named fault point fail for ids matching the glob. The rules travel in
CACHEBENCH_FAULTS, read only here and by the shim (tests/shim/sitecustomize.py) that
the faulty local target puts on the PYTHONPATH of its servers' manager
(`python -m cachebench.targets.local up`, run by Terraform's local-exec). Removing the
variable disarms every point. A "#once" rule fires only the first time (a marker
file remembers it), e.g. "after_apply@*#once" to fail an attempt and let the retry
succeed. Fault points:

    apply, after_apply, destroy   terraform apply (before / after it provisioned),
                                  terraform destroy; glob over deployment ids
    up                            the local server manager dies half-way (after
                                  starting one node, without cleaning up)
    load, watch, collect, export  a run's load does not start, its watch errors, its
                                  result cannot be read, its metrics cannot be read;
                                  glob over point ids
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

FAULTS = "CACHEBENCH_FAULTS"
SHIM = Path(__file__).resolve().parent / "shim"


class InjectedFault(RuntimeError):
    pass


def armed(step: str, ident: str, marker_dir: Path | None = None) -> bool:
    """Should fault point `step` fail for `ident` now? ("#once" rules: only the first time.)"""
    for rule in filter(None, os.environ.get(FAULTS, "").split(",")):
        rule, once, _ = rule.strip().partition("#once")
        name, _, pattern = rule.partition("@")
        if name != step or not fnmatch.fnmatchcase(ident, pattern or "*"):
            continue
        if not once:
            return True
        if marker_dir is None:
            continue
        marker = Path(marker_dir) / f".fault-{step}"
        if marker.exists():
            continue
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
        return True
    return False


def maybe_fail(step: str, ident: str, marker_dir: Path | None = None) -> None:
    if armed(step, ident, marker_dir):
        raise InjectedFault(f"injected fault in {step} for {ident}")


class _TargetFaults:
    """Mixed in before a target class: its run steps fail where the rules say."""

    def tfvars(self, plan, ddir, expires_at):
        tfvars = super().tfvars(plan, ddir, expires_at)  # type: ignore[misc]
        if "pythonpath" in tfvars:  # the local servers' manager imports the shim first
            tfvars["pythonpath"] = os.pathsep.join([str(SHIM), tfvars["pythonpath"]])
        return tfvars

    def step(self, prov, run, record, event):
        from cachebench.steps import deployment_dir

        marker = deployment_dir(prov.plan).load(run.point.id, run.repetition)
        if record is None or record.status != "started":
            maybe_fail("load", run.point.id, marker)
        elif event is not None:
            maybe_fail("watch", run.point.id, marker)
        return super().step(prov, run, record, event)  # type: ignore[misc]

    def loads(self, prov, run, record):
        maybe_fail("collect", run.point.id)
        return super().loads(prov, run, record)  # type: ignore[misc]

    def metrics(self, prov, run, start, end):
        maybe_fail("export", run.point.id)
        return super().metrics(prov, run, start, end)  # type: ignore[misc]


def faulty(cls: type) -> type:
    """`cls` with its run steps failing where the rules say (still a `Target`)."""
    return type(f"Faulty{cls.__name__}", (_TargetFaults, cls), {})


def faulty_terraform() -> type:
    from cachebench.terraform import Terraform

    class FaultyTerraform(Terraform):
        """apply / destroy fail where the rules say; the deployment is the work dir's
        parent (deployments/<instance>/terraform)."""

        def apply(self) -> dict[str, Any]:
            ddir = Path(self.workdir).parent
            maybe_fail("apply", ddir.name, ddir)
            outputs = super().apply()
            maybe_fail("after_apply", ddir.name, ddir)
            return outputs

        def destroy(self) -> None:
            maybe_fail("destroy", Path(self.workdir).parent.name)
            super().destroy()

    return FaultyTerraform


def install_server_faults() -> None:
    """`cachebench.targets.local up` dies half-way when "up" is armed for its deployment: after
    starting the first node, like a killed process (no registry, no clean-up). Called by
    the shim, in that process."""
    from cachebench.targets.local import servers

    started = servers.start_node

    def start_node(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        result = started(cfg, *args, **kwargs)
        if armed("up", cfg.deployment_id):
            node = args[1] if len(args) > 1 else kwargs.get("n")
            node_id = getattr(node, "node_id", node)
            print(
                f"cachebench.targets.local up: injected crash after node {node_id}",
                file=sys.stderr,
            )
            sys.stderr.flush()
            os._exit(70)
        return result

    servers.start_node = start_node


@pytest.fixture
def faults(monkeypatch) -> Callable[[str], None]:
    """Swap in the faulty target and Terraform; returns `arm(rules)`."""
    from cachebench import steps, targets

    production = targets.registry()
    faulty_ones = {name: faulty(cls) for name, cls in production.items()}
    monkeypatch.setattr(targets, "registry", lambda: faulty_ones)
    monkeypatch.setattr(steps, "Terraform", faulty_terraform())

    def arm(rules: str) -> None:
        monkeypatch.setenv(FAULTS, rules)

    return arm
