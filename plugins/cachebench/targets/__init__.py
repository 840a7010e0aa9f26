"""Back ends. Each target module offers the same functions, which steps.py calls:

MODULE                                  root module under include/terraform/
tfvars(point, pdir, run_id, expires_at, points) -> dict
backend_config(point, pdir, run_id) -> dict | None   terraform init -backend-config
run_load(point, endpoint, pdir) -> dict              started load + a "watch" spec:
                                        {"classpath": trigger class, "kwargs": {...}}
collect(point, item, pdir) -> LoadResult
metrics(point, item, start, end) -> DataFrame        the long metric table of the window
stop_load(pdir) -> None                              stop the point's load, if any runs
leftovers(item) -> list[str]                         after destroy: what is still there
sweep(item) -> {'stopped': [...], 'left': [...]}     optional: stop what no registry knows
problems(spec) -> list[str]                          aws: missing settings, refused in plan
"""

from __future__ import annotations

import importlib
from types import ModuleType


def get(target: str) -> ModuleType:
    return importlib.import_module(f"cachebench.targets.{target}")
