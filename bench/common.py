"""Shared by the benchmark figures: result rows, a hand-started server, /proc CPU reading,
the smoke mode and an uninterruptible clean-up."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import redis

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# `run.py --smoke` sets it (children inherit it): each figure with reduced parameters, to
# check that it runs; its numbers are no results.
SMOKE_ENV = "CACHEBENCH_BENCH_SMOKE"
T = TypeVar("T")


def smoke() -> bool:
    return os.environ.get(SMOKE_ENV) == "1"


def scaled(full: T, small: T) -> T:
    """full, or small in smoke mode."""
    return small if smoke() else full


@contextlib.contextmanager
def holding_signals(why: str, on_signal: Callable[[int, int], None] | None = None):
    """Hold SIGINT/SIGTERM for the block: each calls on_signal(signum, how many so far)
    instead of interrupting it; the first is raised as KeyboardInterrupt once it is done."""
    got: list[int] = []

    def held(signum: int, _frame: object) -> None:
        got.append(signum)
        if on_signal is not None:
            on_signal(signum, len(got))

    previous = {sig: signal.signal(sig, held) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if got:
            raise KeyboardInterrupt(f"signal {got[0]} ({why})")


def uninterrupted():
    """Hold SIGINT/SIGTERM while a figure destroys what it made: a second Ctrl-C must not
    leave servers, namespaces, cgroups or claims behind."""
    return holding_signals("held during clean-up")


@dataclass
class Row:
    """One figure line: value against its same-run baseline and a target."""

    figure: str
    name: str
    value: float
    baseline: float | None
    unit: str
    target: str
    passed: bool | None  # None: informational (no target)
    note: str = ""
    samples: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def port_base() -> int:
    return int(os.environ.get("CACHEBENCH_PORT_FIRST", "50000"))


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(offset: int) -> int:
    """A free port at or above CACHEBENCH_PORT_FIRST + offset (never below 50000)."""
    start = max(port_base(), 50000) + offset
    for port in range(start, start + 200):
        if port_free(port):
            return port
    raise RuntimeError(f"no free port in {start}-{start + 200}")


class Server:
    """One real redis-server on 127.0.0.1 with a password, started by hand (no Terraform)."""

    def __init__(self, workdir: Path, offset: int, binary: str | None = None):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(offset)
        self.password = secrets.token_hex(16)
        self.binary = binary or shutil.which("redis-server") or "redis-server"
        self.auth = self.dir / "auth"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Server:
        self.auth.write_text(self.password)
        self.auth.chmod(0o600)
        conf = self.dir / "server.conf"
        conf.write_text(
            f"bind {HOST}\nport {self.port}\nrequirepass {self.password}\n"
            f'save ""\nappendonly no\ndir {self.dir}\nprotected-mode yes\n'
        )
        conf.chmod(0o600)
        log = (self.dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [self.binary, str(conf)], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client().ping()
                return self
            except redis.RedisError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{self.binary} did not start on {self.port}") from None
                time.sleep(0.05)

    def client(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, password=self.password, socket_timeout=5)

    def __exit__(self, *exc: object) -> None:
        with uninterrupted():
            if self.proc and self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.auth.unlink(missing_ok=True)


def cpu_seconds(pid: int) -> float:
    """utime + stime of pid (and its waited-for children are not counted) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK
