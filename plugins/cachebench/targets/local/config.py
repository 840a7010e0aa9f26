"""What `python -m cachebench.targets.local up` is asked to run, and what runs.

Terraform's local-exec writes the servers' config (include/terraform/local:
`local.config`) as config.json; `validate_config` reads it into a frozen
`ServerConfig` before anything starts, its topology checked by the campaign's own
`Topology` rules. `up` writes what it started as a `Registry` (registry.json):
the agent, `down`, the target and the reaper read it back with `read_registry`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from cachebench import jsonfile
from cachebench.engines import MAXMEMORY_POLICIES
from cachebench.models import Strict, Topology
from cachebench.targets.local.miniature import Miniature
from cachebench.workspace import results_root

BUS_PORT_OFFSET = 10000  # a cluster node's bus listens on port + 10000
READY_TIMEOUT_S = 30.0


class LocalError(RuntimeError):
    """A failure `up`/`down` reports to the user (message names the cause)."""


class ServerConfig(Strict):
    """The deployment's servers, as Terraform's local module describes them."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    deployment_id: str
    campaign: str
    run_id: str
    engine: Literal["redis", "valkey"]
    engine_version: str
    server_binary: str
    cluster_mode: bool
    shards: int
    replicas: int
    base_port: int
    maxmemory_bytes: int = Field(ge=0, description="0: no limit")
    maxmemory_policy: str
    io_threads: int = Field(ge=1, le=128)
    state_dir: str
    runtime_dir: str = Field(description="the private folder of the password")
    metrics_interval_seconds: float = Field(gt=0)
    expires_at: float
    miniature: Miniature | None = None
    ready_timeout_seconds: float = READY_TIMEOUT_S

    @model_validator(mode="after")
    def _rules(self) -> ServerConfig:
        Topology(cluster_mode=self.cluster_mode, shards=self.shards, replicas=self.replicas)
        nodes = self.shards * (self.replicas + 1)
        top = 65535 - (BUS_PORT_OFFSET if self.cluster_mode else 0)
        if self.base_port < 1024 or self.base_port + nodes - 1 > top:
            raise ValueError(
                f"base_port={self.base_port}: ports {self.base_port}.."
                f"{self.base_port + nodes - 1} must lie in 1024..{top}"
                + (" (cluster bus ports are port+10000)" if self.cluster_mode else "")
            )
        if self.maxmemory_policy not in MAXMEMORY_POLICIES:
            raise ValueError(f"maxmemory_policy={self.maxmemory_policy!r} is not a valid policy")
        if self.expires_at <= time.time():
            raise ValueError(f"expires_at={self.expires_at} is in the past")
        if not os.path.isabs(self.state_dir):
            raise ValueError(f"state_dir={self.state_dir!r} must be an absolute path")
        rt, deployment = Path(self.runtime_dir), Path(self.state_dir).parent
        if (
            not rt.is_absolute()
            or rt.is_relative_to(deployment)
            or rt.is_relative_to(results_root())
        ):
            raise ValueError(
                f"runtime_dir={self.runtime_dir!r}: must be an absolute path outside the results"
                f" folder {results_root()} and outside {deployment} (it holds the password)"
            )
        if not (os.path.isfile(self.server_binary) and os.access(self.server_binary, os.X_OK)):
            raise ValueError(f"server_binary {self.server_binary!r} is not an executable file")
        return self


def _message(err: dict[str, Any], raw: dict[str, Any]) -> str:
    """One pydantic error as `field=value: what`, naming the field."""
    field = ".".join(str(p) for p in err["loc"])
    if err["type"] == "missing":
        return f"config lacks {field}"
    if not err["loc"]:  # a rule over several fields: its message names them
        return str(err["msg"]).removeprefix("Value error, ")
    return f"config {field}={raw.get(str(err['loc'][0]))!r}: expected {err['msg']}"


def validate_config(raw: dict[str, Any]) -> ServerConfig:
    try:
        return ServerConfig.model_validate(raw)
    except ValidationError as e:
        raise LocalError("; ".join(_message(err, raw) for err in e.errors())) from None


class RegisteredNode(Strict):
    node_id: str
    pid: int
    host: str
    port: int
    role: Literal["primary", "replica"]
    shard: int


class Registry(Strict):
    """What `up` started in a state dir (registry.json)."""

    deployment_id: str
    campaign: str
    run_id: str
    expires_at: float
    nodes: list[RegisteredNode]
    agent_pid: int | None
    created_at: float
    state_dir: str
    runtime_dir: str
    host: str
    engine: str
    engine_version: str
    server_version: str
    server_binary: str
    cluster_mode: bool
    maxmemory_bytes: int
    metrics_interval_seconds: float
    config_hash: str
    reused: bool
    stopped_at: float | None = Field(None, description="when `down` stopped them")


REGISTRY = "registry.json"


def read_registry(state_dir: Path) -> Registry | None:
    """The registry of state_dir, or None when missing or damaged (then pidfiles and
    node dirs say what may run)."""
    raw = jsonfile.read_dict(state_dir / REGISTRY)
    try:
        return Registry.model_validate(raw) if raw is not None else None
    except ValidationError:
        return None


def write_registry(state_dir: Path, registry: Registry) -> None:
    jsonfile.write(state_dir / REGISTRY, registry)
