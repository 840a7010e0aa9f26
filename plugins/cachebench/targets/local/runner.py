"""One run on the local target, detached from the Airflow task that started it.

    python -m cachebench.targets.local.runner JOB.json

A run is: wait for the machine's load lock (one load at a time on this machine,
whichever deployment and campaign it belongs to: local/machine.py), flush and
prefill the data set, the warm-up, then the measured window. The task that starts it defers while it
runs (no worker slot is held) and reads what it leaves in the job's folder:

    status.json     phase (while waiting: which load holds the lock) and, once
                    loading, the deadline the watch enforces
    prefill.json    the prefill (PrefillResult), kept apart
    warmup.json     the warm-up (LoadResult), kept apart
    handles.json    the measured generators (pids, outputs), while they run
    measured.json   the measured window (LoadResult)
    cpu.json        the load generators' CPU each second of the measured window
    error.json      why the run failed, if it did (then exit status 1): RunnerError

It runs with its working directory in the job's folder, inside the
deployment's, so destroy's sweep finds it and its generators. A miniature's run
joins the deployment's load cgroup first: its generators get the CPU the servers
are denied, and the saturation check reads their capacity from its quota. SIGTERM stops
the generators and ends it.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from pydantic import Field

from cachebench import jsonfile, loadgen, procs
from cachebench.loadgen import prefill
from cachebench.loadgen.cpu import CpuSampler
from cachebench.loadgen.handle import write_handles
from cachebench.models import Endpoint, LoadResult, Strict, Workload
from cachebench.targets.local import machine

MODULE = procs.RUNNER_MODULE
GRACE_S = 120  # past twice the run's load time before the watch calls it overdue
PREFILL_KEYS_PER_S = 20_000  # a slow prefill's rate, for the deadline only


class RunJob(Strict):
    key: str
    workload: Workload
    endpoint: Endpoint
    tool: str
    generators: int = Field(ge=1)
    out_dir: str
    lock: str = Field(description="the machine's load lock file (machine.load_lock())")
    cgroup_procs: list[str] = Field(
        [],
        description="a miniature's load cgroup (cgroup.procs files): the runner and every "
        "generator it starts run there, with the CPU the servers are denied",
    )


class RunnerError(Strict):
    """Why a run failed, as its runner saw it (error.json)."""

    step: str
    type: str
    message: str
    lost: bool = Field(False, description="a load generator was killed by a signal nobody sent")


def deadline_after(start: float, w: Workload) -> float:
    prefill_s = max(30.0, w.key_space / PREFILL_KEYS_PER_S)
    return start + prefill_s + 2 * (w.warmup_seconds + w.duration_seconds) + GRACE_S


class _Stopped(Exception):
    pass


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped(f"signal {signum}")


def _write(out: Path, name: str, data: object) -> None:
    jsonfile.write(out / name, data)


def measure(job: RunJob, out: Path, password: str, status) -> LoadResult:
    w = job.workload
    common = {
        "password": password,
        "generators": job.generators,
        "tool": job.tool,
    }
    rate_hint = None
    if w.warmup_seconds > 0:
        status("warmup")
        warm = loadgen.run_load(
            w,
            job.endpoint,
            out_dir=out / "warmup",
            phase="warmup",
            duration_s=w.warmup_seconds,
            **common,
        )
        _write(out, "warmup.json", warm.model_dump(mode="json"))
        rate_hint = loadgen.rate_hint_from(warm)
    status("measured")
    handles = loadgen.start_load(
        w,
        job.endpoint,
        out_dir=out / "measured",
        phase="measured",
        duration_s=w.duration_seconds,
        rate_hint_ops=rate_hint,
        **common,
    )
    write_handles(out / "handles.json", handles)
    cpu = CpuSampler(handles, w)
    try:
        limit = time.monotonic() + 3 * w.duration_seconds + 30
        next_sample = time.monotonic() + 1.0
        while loadgen.load_running(handles):
            if time.monotonic() > limit:
                raise loadgen.LoadError("the measured load overran 3 x its duration; stopped")
            if time.monotonic() >= next_sample:
                cpu.sample()
                next_sample += 1.0
            time.sleep(0.05)
    finally:
        loadgen.stop_load(handles, grace_s=3.0)
    _write(out, "cpu.json", cpu.report().model_dump(mode="json"))
    return loadgen.collect_load(handles)


def run(job: RunJob) -> int:
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    deadline: dict[str, float] = {}

    def status(phase: str, **more: object) -> None:
        now = {"phase": phase, "at": time.time(), "pid": os.getpid()}
        _write(out, "status.json", now | deadline | more)

    step = "lock"
    try:
        for procs_file in job.cgroup_procs:  # its generators inherit it
            Path(procs_file).write_text(str(os.getpid()))
        status("waiting", holder=machine.load_holder(Path(job.lock)))
        machine.take_load_lock(Path(job.lock), f"run {job.key} ({out})")  # held until exit
        deadline["deadline"] = deadline_after(time.time(), job.workload)
        status("prefill")
        password = Path(job.endpoint.auth_ref).read_text().strip() if job.endpoint.auth_ref else ""
        step = "prefill"
        filled = prefill.prefill(job.endpoint, password, job.workload, job.tool)
        _write(out, "prefill.json", filled.model_dump(mode="json"))
        step = "load"
        result = measure(job, out, password, status)
        _write(out, "measured.json", result.model_dump(mode="json"))
    except BaseException as exc:  # every failure is the run's result: say it, then exit
        lost = isinstance(exc, loadgen.LoadError) and exc.lost
        failure = RunnerError(step=step, type=type(exc).__name__, message=str(exc), lost=lost)
        _write(out, "error.json", failure.model_dump())
        return 1
    status("done")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    ap.add_argument("job", type=Path)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    return run(RunJob.model_validate_json(args.job.read_text()))


if __name__ == "__main__":
    sys.exit(main())
