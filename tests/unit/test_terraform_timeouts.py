"""cachebench.terraform's limits on a CLI command: the time it may run (above the AWS
provider's own waits for a replication group), SIGINT on overrun and SIGKILL of its
whole process group only INTERRUPT_GRACE_S later, -lock-timeout on every command that
takes the state lock, and the RUNNING marker a killed command leaves (its lock is stale).

A `terraform` stand-in on PATH records its argv and the signals it gets; it starts a
child of its own (as Terraform starts its provider) that must go with it on SIGKILL.
tests/aws/test_aws_module_apply.py interrupts the real Terraform during a real apply.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import hcl2
import psutil
import pytest

from cachebench import terraform
from cachebench.terraform import Terraform, TerraformError

MAIN_TF = terraform.MODULES_DIR / "aws" / "main.tf"
# The AWS provider's defaults for aws_elasticache_replication_group (its docs' Timeouts).
PROVIDER_DEFAULTS = {"create": 60 * 60, "delete": 45 * 60}
STANDIN = """#!{python}
import json, os, signal, subprocess, sys, time
out = {out!r}
def note(what):
    with open(out, "a") as fh:
        fh.write(json.dumps(what) + "\\n")
provider = subprocess.Popen(
    [sys.executable, "-c", "import time; time.sleep(600)"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
)
note({{"argv": sys.argv[1:], "pid": os.getpid(), "provider": provider.pid}})
def on_sigint(*_):
    note("SIGINT")
    if os.environ.get("STANDIN_ON_SIGINT") == "stop":
        provider.terminate()
        print("Interrupt received. Gracefully shutting down...")
        sys.exit(1)
signal.signal(signal.SIGINT, on_sigint)
time.sleep(float(os.environ.get("STANDIN_SECONDS", "600")))
provider.terminate()
"""


def _seconds(value: str) -> int:
    value = value.strip('"')
    return int(value[:-1]) * {"s": 1, "m": 60, "h": 3600}[value[-1]]


def test_each_command_outlasts_the_modules_timeouts_with_a_margin() -> None:
    """apply and destroy run longer than the provider waits for the group (the module's
    timeouts block, itself at least the provider's defaults), so Terraform's own timeout
    fires first and it records what it made; the margin covers its last poll and the
    state write."""
    parsed = hcl2.load(MAIN_TF.open())
    (group,) = [
        b['"aws_elasticache_replication_group"'] for b in parsed["resource"]
        if '"aws_elasticache_replication_group"' in b
    ]  # fmt: skip
    (timeouts,) = group['"this"']["timeouts"]
    module = {k: _seconds(timeouts[k]) for k in ("create", "delete")}
    assert all(module[k] >= PROVIDER_DEFAULTS[k] for k in module), module
    assert terraform.TIMEOUTS["apply"] >= module["create"] + 5 * 60
    assert terraform.TIMEOUTS["destroy"] >= module["delete"] + 5 * 60
    assert terraform.INTERRUPT_GRACE_S >= 60  # time to write the state and free the lock


@pytest.fixture
def standin(tmp_path, monkeypatch) -> Path:
    """A `terraform` stand-in on PATH; returns the file it notes what it saw in."""
    out = tmp_path / "seen.jsonl"
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "terraform"
    exe.write_text(STANDIN.format(python=sys.executable, out=str(out)))
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CACHEBENCH_TERRAFORM", "cli")
    return out


def seen(out: Path) -> list:
    return [json.loads(line) for line in out.read_text().splitlines()]


def _gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_an_overrun_gets_sigint_and_stops_there_when_terraform_does(
    standin, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(terraform.TIMEOUTS, "apply", 1)
    monkeypatch.setattr(terraform, "INTERRUPT_GRACE_S", 20)
    monkeypatch.setenv("STANDIN_ON_SIGINT", "stop")
    work = tmp_path / "work"
    work.mkdir()
    started = time.monotonic()
    with pytest.raises(TerraformError, match="interrupted after 1 s:") as err:
        Terraform(work).run("apply", "-auto-approve")
    assert time.monotonic() - started < 15  # not the grace: Terraform stopped on SIGINT
    assert "killed" not in str(err.value)
    first, *signals = seen(standin)
    assert first["argv"][:3] == [f"-chdir={work}", "apply", "-lock-timeout=300s"]
    assert signals == ["SIGINT"]
    assert not (work / terraform.RUNNING).exists()  # it ended: its lock went with it
    assert "[exit 1, interrupted after 1 s]" in (work / "terraform.log").read_text()


def test_an_overrun_that_ignores_sigint_is_killed_with_its_provider_after_the_grace(
    standin, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(terraform.TIMEOUTS, "destroy", 1)
    monkeypatch.setattr(terraform, "INTERRUPT_GRACE_S", 2)
    work = tmp_path / "work"
    work.mkdir()
    started = time.monotonic()
    with pytest.raises(TerraformError, match="interrupted after 1 s, killed 2 s later"):
        Terraform(work).run("destroy", "-auto-approve")
    assert 3 <= time.monotonic() - started < 15  # SIGKILL only after the grace
    first, *signals = seen(standin)
    assert signals == ["SIGINT"]  # one SIGINT, then the kill
    assert _gone(first["pid"]) and _gone(first["provider"]), "the provider outlived the kill"
    # its state lock, if it held one, has no holder now: the marker says so to the next
    # command (_release_stale_lock)
    assert json.loads((work / terraform.RUNNING).read_text())["pid"] == first["pid"]


def test_terraform_killed_by_someone_else_leaves_its_marker_for_the_next_command(
    standin, tmp_path, monkeypatch
) -> None:
    """Terraform killed while our process lives (the OOM killer, a kill by hand; the aws
    module test saw it when the worker's wait returned between the two kills of a lost
    worker): its lock has no holder, so RUNNING stays and the next command keeps it as
    STALE for _release_stale_lock, instead of waiting LOCK_TIMEOUT for a dead holder."""
    work = tmp_path / "work"
    work.mkdir()
    tf = Terraform(work)
    with ThreadPoolExecutor(1) as pool:
        applying = pool.submit(tf.run, "apply", "-auto-approve")
        deadline = time.monotonic() + 20
        while not standin.exists() or not seen(standin):
            assert time.monotonic() < deadline, "the stand-in never started"
            time.sleep(0.05)
        (first,) = seen(standin)
        os.killpg(first["pid"], signal.SIGKILL)  # Terraform and its provider
        with pytest.raises(TerraformError, match=r"exit -9"):
            applying.result(timeout=20)
    assert json.loads((work / terraform.RUNNING).read_text())["pid"] == first["pid"]
    monkeypatch.setenv("STANDIN_SECONDS", "0")
    tf.run("output", "-json")
    stale = json.loads((work / terraform.STALE).read_text())
    assert stale["pid"] == first["pid"] and not terraform._alive(stale["pid"])
    assert not (work / terraform.RUNNING).exists()  # the output ended by itself


@pytest.mark.parametrize(
    ("command", "locks"),
    [("apply", True), ("destroy", True), ("import", True), ("output", False), ("init", False)],
)
def test_lock_timeout_on_the_commands_that_take_the_lock(
    command, locks, standin, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("STANDIN_SECONDS", "0")
    Terraform(tmp_path).run(command)
    (first,) = seen(standin)
    assert (f"-lock-timeout={terraform.LOCK_TIMEOUT}" in first["argv"]) is locks
