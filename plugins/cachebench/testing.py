"""The one seam the project's own tests reach production through: fault injection.

Nothing here acts unless its environment variable is set; production code only
passes its pieces through `wrap_target`, `wrap_terraform` and
`install_server_faults`, which return them untouched otherwise.

CACHEBENCH_FAULTS="name@glob[#once],..." makes the named fault point fail for
ids matching the glob. A "#once" rule fires only the first time (a marker file
remembers it), e.g. "after_apply@*#once" to fail an attempt and let the retry
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
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cachebench.targets import Target
    from cachebench.terraform import Terraform

FAULTS = "CACHEBENCH_FAULTS"


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


class _FaultyTarget:
    """A target whose run steps fail where CACHEBENCH_FAULTS says; the rest is the target's."""

    def __init__(self, target: Target):
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def step(self, prov, run, record, event):
        from cachebench.steps import deployment_dir

        marker = deployment_dir(prov.plan).load(run.point.id, run.repetition)
        if record is None or record.status != "started":
            maybe_fail("load", run.point.id, marker)
        elif event is not None:
            maybe_fail("watch", run.point.id, marker)
        return self._target.step(prov, run, record, event)

    def loads(self, prov, run, record):
        maybe_fail("collect", run.point.id)
        return self._target.loads(prov, run, record)

    def metrics(self, prov, run, start, end):
        maybe_fail("export", run.point.id)
        return self._target.metrics(prov, run, start, end)


def wrap_target(target: Target) -> Target:
    if not os.environ.get(FAULTS):
        return target
    return _FaultyTarget(target)  # type: ignore[return-value]


class _FaultyTerraform:
    def __init__(self, tf: Terraform, ident: str, marker_dir: Path):
        self._tf, self._ident, self._marker = tf, ident, marker_dir

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tf, name)

    def init(self, backend_config: dict[str, str] | None = None) -> None:
        self._tf.init(backend_config)
        return None

    def apply(self) -> dict[str, Any]:
        maybe_fail("apply", self._ident, self._marker)
        outputs = self._tf.apply()
        maybe_fail("after_apply", self._ident, self._marker)
        return outputs

    def destroy(self) -> None:
        maybe_fail("destroy", self._ident)
        self._tf.destroy()


def wrap_terraform(tf: Terraform, ident: str, marker_dir: Path) -> Terraform:
    if not os.environ.get(FAULTS):
        return tf
    return _FaultyTerraform(tf, ident, marker_dir)  # type: ignore[return-value]


def install_server_faults() -> None:
    """`cachebench.local up` dies half-way when "up" is armed for its deployment: after
    starting the first node, like a killed process (no registry, no clean-up)."""
    if not os.environ.get(FAULTS):
        return
    from cachebench.local import servers

    started = servers.start_node

    def start_node(cfg: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        result = started(cfg, *args, **kwargs)
        if armed("up", cfg["deployment_id"]):
            node = kwargs.get("node", args[1] if len(args) > 1 else "?")
            print(
                f"cachebench.local up: injected crash after node {getattr(node, 'node_id', node)}",
                file=sys.stderr,
            )
            sys.stderr.flush()
            os._exit(70)
        return result

    servers.start_node = start_node
