"""The `local` target: real Redis/Valkey servers on 127.0.0.1, driven by Terraform.

`python -m cachebench.targets.local up --config FILE` / `down --state-dir DIR` are what the
Terraform module in include/terraform/local runs; the same operations are
available as `up(config)`, `down(state_dir)` and `endpoint_from_registry(state_dir)`.
"""

from cachebench.targets.local.servers import LocalError, down, endpoint_from_registry, up

__all__ = ["LocalError", "down", "endpoint_from_registry", "up"]
