"""Deliberate faults for the project's own failure tests.

CACHEBENCH_FAULTS="run_load@redis-*,export@*" makes the named step fail for the
points whose id matches the glob. Unset (the normal case) it does nothing.

A rule ending in "#once" fires only the first time for a point (a marker file
in the point's folder remembers it), e.g. "after_apply@*#once" to fail an
attempt and let the retry succeed.

Fault points besides the step names: "after_apply" (apply has provisioned,
then fails), "watch" (the sensor errors), "destroy" (terraform destroy fails)
and "up" (the local server manager dies half-way, after starting one node and
without cleaning up: see cachebench.local.servers).
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path


class InjectedFault(RuntimeError):
    pass


def armed(step: str, point_id: str, marker_dir: Path | None = None) -> bool:
    """Should `step` fail for `point_id` now? ("#once" rules: only the first time.)"""
    for rule in filter(None, os.environ.get("CACHEBENCH_FAULTS", "").split(",")):
        rule, once, _ = rule.strip().partition("#once")
        name, _, pattern = rule.partition("@")
        if name != step or not fnmatch.fnmatchcase(point_id, pattern or "*"):
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


def maybe_fail(step: str, point_id: str, marker_dir: Path | None = None) -> None:
    if armed(step, point_id, marker_dir):
        raise InjectedFault(f"injected fault in {step} for {point_id}")
