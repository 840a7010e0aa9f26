"""Run redis-benchmark for a fixed time: consecutive chunks, each sized from the last.

redis-benchmark has no duration flag, only a request count (-n). Sizing one -n
from a warm-up rate gave windows of 16.5 to 36.8 s for 20 s asked on a shared
machine. This driver instead runs the same argv again and again, each run
("chunk") with an -n sized from the rate the previous chunk really achieved,
for half of the time still left (all of it once that is short), and stops when
the window is full. A wrong estimate can then only stretch one chunk, and the
last one is short, so the window ends within a fraction of a second of the
duration asked for.

Honest merging (``redis_benchmark.parse_chunks``): requests add up, the window
is the wall time from the first chunk's start to the last one's exit (the
gaps between chunks, about 10 ms each, count against the throughput), and
latency percentiles come from the chunks' histograms merged, never averaged.

Run as a file (``python -I -S .../chunked.py``), not as ``-m``: it uses only the
standard library, so it starts in milliseconds without importing cachebench.

    chunked.py --seconds S --rate OPS --out PREFIX [--multiple-of P] -- TOOL ARGV...

appends ``-n N`` (a multiple of P, the pipeline depth) to TOOL ARGV for each chunk
(through the auth wrapper's ``"$@"``, so before ``-a``), writes each chunk's stdout to
PREFIX.cNNN.stdout (stderr goes to the driver's) and the manifest PREFIX.chunks.json after every
chunk: "complete" is true only once the window is full and every chunk
succeeded. A chunk dies with the driver (PR_SET_PDEATHSIG), and SIGTERM ends
the running chunk first.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

MIN_CHUNK_S = 1.0  # shorter chunks would only add start-up gaps
FIRST_CHUNK_S = 2.0  # the first rate is a hint (warm-up, default): trust it briefly
STOP_S = 0.2  # a window this close to full is done: no chunk for the rest
MIN_REQUESTS = 100
PR_SET_PDEATHSIG = 1

_COMPLETED = re.compile(r"(\d+) requests completed in ([\d.]+) seconds")
_THROUGHPUT = re.compile(r"throughput summary: ([\d.]+) requests per second")


def next_chunk_s(remaining: float, *, first: bool = False, min_chunk: float = MIN_CHUNK_S) -> float:
    """Seconds to plan the next chunk for: half of what is left, all of it once short.

    Halving means a chunk overruns the window only if the rate falls to less
    than half of the previous chunk's; the last chunk (<= 1.5 x min_chunk)
    is short, so its misestimate costs a fraction of a second. The first chunk,
    sized from a rate nobody measured on this run, is at most FIRST_CHUNK_S.
    """
    if remaining <= 1.5 * min_chunk:
        return max(remaining, 0.0)
    planned = max(min_chunk, remaining / 2)
    return min(planned, FIRST_CHUNK_S) if first else planned


def requests_for_chunk(seconds: float, rate: float, startup_s: float, multiple: int = 1) -> int:
    """-n that keeps the tool busy for `seconds` wall time, its start-up included, rounded
    up to a multiple of `multiple` (the pipeline depth).

    redis-benchmark 7.0 issues a pipeline's commands together and counts each reply: with
    -n not a multiple of -P its last batch overshoots -n, and under --threads its progress
    timer can then find every client gone with the count != -n and abort the chunk ("All
    clients disconnected... aborting.", exit 1; seen once in CI, 74163 requests at -P 2).
    """
    busy = max(seconds - startup_s, seconds / 2)
    n = max(MIN_REQUESTS, math.ceil(rate * busy))
    return math.ceil(n / multiple) * multiple


def tool_numbers(text: str) -> tuple[int, float] | None:
    """(requests, seconds) of a finished redis-benchmark run, from its own summary.

    Seconds come from requests / "throughput summary" (ms precision) rather
    than "completed in", which is printed with two decimals only.
    """
    done = _COMPLETED.search(text)
    if not done:
        return None
    requests = int(done.group(1))
    rps = _THROUGHPUT.search(text)
    seconds = requests / float(rps.group(1)) if rps and float(rps.group(1)) > 0 else 0.0
    return requests, seconds or float(done.group(2))


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        # A SIGKILLed driver must not leave its chunk running.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the driver died before prctl took effect
            os._exit(1)

    return preexec


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


class Driver:
    """One chunked run: the loop, the manifest, and stopping on a signal."""

    def __init__(
        self, seconds: float, rate: float, out: Path, argv: list[str], multiple: int = 1
    ) -> None:
        self.seconds, self.rate, self.out, self.argv = seconds, rate, out, argv
        self.multiple = multiple
        self.manifest = out.with_name(f"{out.name}.chunks.json")
        self.child: subprocess.Popen | None = None
        self.stopped: int | None = None
        self.state: dict[str, Any] = {
            "target_seconds": seconds,
            "initial_rate": rate,
            "started_at": None,
            "ended_at": None,
            "complete": False,
            "error": None,
            "chunks": [],
        }

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.stopped = signum
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()

    def _finish(self, error: str | None = None) -> int:
        self.state["error"] = error
        self.state["complete"] = error is None
        _write_atomic(self.manifest, self.state)
        return 0 if error is None else 1

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        _write_atomic(self.manifest, self.state)
        rate, startup = self.rate, 0.0
        t0: float | None = None
        for k in range(10_000):
            if self.stopped is not None:
                break
            remaining = self.seconds - (time.monotonic() - t0 if t0 is not None else 0.0)
            if t0 is not None and remaining < STOP_S:
                break
            planned = next_chunk_s(remaining, first=k == 0)
            n = requests_for_chunk(planned, rate, startup, self.multiple)
            t_spawn = time.monotonic()
            if t0 is None:  # the window starts with the first chunk
                t0, self.state["started_at"] = t_spawn, time.time()
            chunk = self._chunk(k, n, planned, t_spawn, t0)
            if self.stopped is not None:
                break
            if chunk.rc != 0 or chunk.numbers is None:
                return self._finish(
                    f"chunk {k} ({chunk.stdout.name}) exited with {chunk.rc}"
                    + ("" if chunk.numbers else " without its summary")
                )
            _write_atomic(self.manifest, self.state)
            requests, tool_s = chunk.numbers
            if tool_s > 0:
                rate = requests / tool_s
            startup = max(0.0, chunk.wall - tool_s)
        if self.stopped is not None:
            self._finish(f"stopped by signal {self.stopped}")
            return 128 + self.stopped
        return self._finish()

    def _chunk(self, k: int, n: int, planned: float, t_spawn: float, t0: float) -> _Chunk:
        """Run chunk k (-n n), spawned at t_spawn (monotonic, the window's start t0), to
        its end; record it in the manifest's state."""
        stdout = self.out.with_name(f"{self.out.name}.c{k:03d}.stdout")
        # Wall times are the window's start plus monotonic offsets: a clock step
        # during the run must not stretch or shrink the window.
        spawned = self.state["started_at"] + (t_spawn - t0)
        with stdout.open("wb") as fh:
            self.child = subprocess.Popen(
                [*self.argv, "-n", str(n)],
                stdin=subprocess.DEVNULL,
                stdout=fh,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        if self.stopped is not None:  # a signal came while it started
            self.child.terminate()
        rc = self.child.wait()
        wall = time.monotonic() - t_spawn
        self.child = None
        ended = spawned + wall
        self.state["ended_at"] = ended
        numbers = tool_numbers(stdout.read_text(errors="replace"))
        self.state["chunks"].append(
            {
                "stdout": str(stdout),
                "requests_asked": n,
                "planned_seconds": round(planned, 3),
                "spawned_at": spawned,
                "exited_at": ended,
                "returncode": rc,
                "requests": numbers[0] if numbers else None,
                "tool_seconds": round(numbers[1], 4) if numbers else None,
            }
        )
        print(
            f"chunk {k}: -n {n} planned {planned:.2f}s took {wall:.3f}s rc {rc}"
            + (f" tool {numbers[1]:.3f}s" if numbers else ""),
            flush=True,
        )
        return _Chunk(stdout, rc, wall, numbers)


class _Chunk(NamedTuple):
    """How one chunk ended: its output, exit status, wall time and the tool's numbers."""

    stdout: Path
    rc: int
    wall: float
    numbers: tuple[int, float] | None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="chunked.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, required=True, help="window length to fill")
    ap.add_argument("--rate", type=float, required=True, help="ops/s to size the first chunk")
    ap.add_argument("--out", type=Path, required=True, help="prefix of the output files")
    ap.add_argument("--multiple-of", type=int, default=1, help="-n a multiple of this (-P)")
    ap.add_argument("tool", nargs=argparse.REMAINDER, help="-- then the tool's argv without -n")
    args = ap.parse_args(argv)
    tool = args.tool[1:] if args.tool[:1] == ["--"] else args.tool
    if not tool or args.seconds <= 0 or args.rate <= 0 or args.multiple_of < 1:
        ap.error("need --seconds > 0, --rate > 0, --multiple-of >= 1 and a tool argv after --")
    return Driver(args.seconds, args.rate, args.out, tool, args.multiple_of).run()


if __name__ == "__main__":
    sys.exit(main())
