"""Run every harness benchmark and print value, same-run baseline, ratio, target, PASS/FAIL.

    bash bench/run.sh                 # set-up, then all six figures (about 12 minutes)
    bash bench/run.sh --only 4 5      # some figures
    bash bench/run.sh --smoke         # reduced parameters: does each figure run? (no results)

Benchmarks, not tests: the machine is shared, so each value and its baseline
are measured alternately in the same run and medians are reported.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SMOKE_ENV, Row

FIGURES = {
    "1": ("load fidelity", "fidelity"),
    "2": ("observer cost", "observer"),
    "3": ("orchestration overhead", "orchestration"),
    "4": ("DAG parse time", "parse_time"),
    "5": ("export at scale", "export_scale"),
    "6": ("enforcement fidelity", "enforcement"),
}


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}" if abs(v) >= 0.01 else f"{v:.2g}"


def table(rows: list[Row]) -> str:
    head = "| figure | measure | value | baseline | ratio | target | result |"
    lines = [head, "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = f"{r.ratio:.3g}" if r.ratio is not None else "-"
        result = "info" if r.passed is None else "PASS" if r.passed else "FAIL"
        lines.append(
            f"| {r.figure} | {r.name} | {_fmt(r.value)} {r.unit} | {_fmt(r.baseline)} | "
            f"{ratio} | {r.target} | {result} |"
        )
    return "\n".join(lines)


def machine() -> str:
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) / 2**20
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{now}; {os.cpu_count()} cores, {mem:.1f} GiB; Python {platform.python_version()}; "
        f"load average at the end {load}"
    )


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.py")
    ap.add_argument("--only", nargs="+", choices=sorted(FIGURES), default=sorted(FIGURES))
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="fewer pairs, shorter windows, smaller data: checks that each figure runs; "
        "its numbers are not results",
    )
    args = ap.parse_args(argv)
    if args.smoke:
        os.environ[SMOKE_ENV] = "1"  # read by the figures as they are imported, and children
        print("SMOKE MODE: reduced parameters; the numbers below are not results", flush=True)
    # SIGTERM as Ctrl-C: each figure's finally destroys what it made before the temp dir goes.
    signal.signal(signal.SIGTERM, _interrupt)
    rows: list[Row] = []
    for key in args.only:
        title, module = FIGURES[key]
        print(f"== figure {key}: {title}", flush=True)
        t = time.monotonic()
        try:
            rows += __import__(module).measure()
        except Exception:
            traceback.print_exc()
            rows.append(Row(f"{key} {module}", f"{title}: crashed", 0, None, "", "-", False))
        print(f"   ({time.monotonic() - t:.0f} s)", flush=True)
    print("\n" + machine() + ("; SMOKE MODE (not results)" if args.smoke else "") + "\n")
    print(table(rows))
    print("\nnotes:")
    for r in rows:
        if r.note:
            print(f"- {r.figure} / {r.name}: {r.note}")
    passed = sum(1 for r in rows if r.passed)
    failed = [f"{r.figure} / {r.name}" for r in rows if r.passed is False]
    print(f"\n{passed} passed, {len(failed)} failed" + (f": {'; '.join(failed)}" if failed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
