"""Where a campaign's numbers come from: the software that made them and the machine.

Written into campaign.json by plan (cachebench's own version, Terraform's, the
load tool's, and for the local target the host: CPU model, cores, kernel, load
average at the start); each deployment adds the engine version its servers
report (INFO) once they run, and each run's load.json holds its tool's version
line. The report prints all of it next to the price sources.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from pathlib import Path

from pydantic import Field

from cachebench.models import Strict

ROOT = Path(__file__).resolve().parents[2]


class Host(Strict):
    hostname: str = Field("", description="the machine's name ('' in runs planned before it)")
    cpu_model: str
    cores: int
    kernel: str
    load_average: tuple[float, float, float] = Field(description="1, 5 and 15 min, at the start")


class Provenance(Strict):
    cachebench: str = Field(description="version, and git commit when there is one")
    terraform: str
    load_tool: str
    captured_at: float
    host: Host | None = Field(None, description="the local target's machine")


def cachebench_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        base = version("cachebench")
    except PackageNotFoundError:  # run from the checkout, not installed
        text = (ROOT / "pyproject.toml").read_text() if (ROOT / "pyproject.toml").is_file() else ""
        base = next((ln.split('"')[1] for ln in text.splitlines() if ln.startswith("version")), "?")
    try:
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return base
    return f"{base} (git {commit})" if commit else base


def terraform_version() -> str:
    from cachebench.terraform import version

    try:
        return version()
    except Exception as exc:  # the report says it could not be told, and why
        return f"unknown ({type(exc).__name__}: {exc})"


def host() -> Host:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Host(
        hostname=socket.gethostname(),
        cpu_model=model,
        cores=os.cpu_count() or 0,
        kernel=f"{platform.system()} {platform.release()}",
        load_average=os.getloadavg(),
    )


def collect(target: str, load_tool: str) -> Provenance:
    from cachebench.loadgen import tool_version

    tool = tool_version(load_tool) if target == "local" else ""
    return Provenance(
        cachebench=cachebench_version(),
        terraform=terraform_version(),
        load_tool=tool or f"{load_tool} (its version line is in each run's load.json)",
        captured_at=time.time(),
        host=host() if target == "local" else None,
    )
