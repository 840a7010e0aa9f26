"""Deliberate faults for the project's own failure tests.

CACHEBENCH_FAULTS="run_load@redis-*,export@*" makes the named step fail for the
points whose id matches the glob. Unset (the normal case) it does nothing.
"""

from __future__ import annotations

import fnmatch
import os


class InjectedFault(RuntimeError):
    pass


def maybe_fail(step: str, point_id: str) -> None:
    for rule in filter(None, os.environ.get("CACHEBENCH_FAULTS", "").split(",")):
        name, _, pattern = rule.strip().partition("@")
        if name == step and fnmatch.fnmatchcase(point_id, pattern or "*"):
            raise InjectedFault(f"injected fault in {step} for {point_id}")
