"""Load generation for the local target: start, watch, stop and collect generators.

A "generator" runs the whole workload shape (clients x threads connections):
one memtier_benchmark process, or for redis-benchmark one process per side of
the SET:GET ratio (see redis_benchmark.py), each a chunked.py driver that runs
redis-benchmark in consecutive chunks for the duration (redis-benchmark has a
request count, no duration). With read_from "replicas" memtier too runs one
process per side, the GET side against a replica (see reads.py). Processes are
detached (own session, output to files in out_dir) so the Airflow task that
started them may exit; ``start_load`` returns typed handles (handle.py),
``collect_load`` parses and merges, ``stop_load`` ends leftovers. Whether a
generator still runs, and how it ended, comes from its exit status (cachebench.procs:
the Popen of the process that started it, psutil for any other), never /proc text.

The password goes to the process in the environment (AUTH_ENV), never in the
argv we build or return; see auth.py for what the tools do with it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cachebench import jsonfile, procs
from cachebench.loadgen import reads
from cachebench.loadgen.auth import AUTH_ENV, mask_argv
from cachebench.loadgen.handle import Handle, Launched, LoadGenerator, write_handles
from cachebench.loadgen.memtier import (
    MEMTIER,
    SOURCE_BUILD,
    memtier_argv,
    memtier_version,
    merge_results,
    parse_memtier_json,
    rate_limit_problem,
    scrub_memtier_json,
    side_workloads,
)
from cachebench.loadgen.redis_benchmark import (
    DEFAULT_OPS_PER_CONN,
    REDIS_BENCHMARK,
    parse_chunks,
    parse_redis_benchmark,
    redis_benchmark_argv,
    split_connections,
    unsupported,
)
from cachebench.models import Endpoint, LoadResult, Workload

Phase = Literal["warmup", "measured"]
RateHint = float | dict[str, float] | None
TOOLS = (MEMTIER, REDIS_BENCHMARK)
log = logging.getLogger(__name__)
# The redis-benchmark driver, run as a file in isolated mode (-I -S): stdlib only,
# so it starts in milliseconds and never imports cachebench (see chunked.py).
CHUNKED = Path(__file__).resolve().parent / "chunked.py"


class LoadError(RuntimeError):
    """A generator failed or its output could not be parsed.

    lost: a generator was killed by a signal nobody here sent (a crash, the OOM
    killer, a kill from outside): the run says nothing about the server, so it is
    worth measuring again.
    """

    def __init__(self, message: str, *, lost: bool = False):
        super().__init__(message)
        self.lost = lost


def available_tool() -> str:
    """memtier_benchmark when on PATH, else redis-benchmark; error if neither."""
    for tool in TOOLS:
        if shutil.which(tool):
            return tool
    raise LoadError(
        "no load generator on PATH: install memtier_benchmark (preferred) or "
        "redis-benchmark (Debian: redis-tools)"
    )


def tool_version(tool: str) -> str:
    """First line of `tool --version` ('' if it cannot be run)."""
    return _version_line(tool)


def _start_version(tool: str) -> str:
    """tool_version, asked once per binary in this process: a run starts its tool twice
    (warm-up, measured window) and a runner lives for one run."""
    path = shutil.which(tool)
    try:
        return _cached_version(path, os.stat(path).st_mtime_ns) if path else ""
    except OSError:
        return ""


@functools.cache
def _cached_version(path: str, stamp: int) -> str:
    return _version_line(path)


def _version_line(tool: str) -> str:
    try:
        out = subprocess.run(
            [tool, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else ""


def rate_limit_problems(workloads: Sequence[Workload], tool: str) -> list[str]:
    """Plan check: workloads with rate_limit need memtier 2.1 or later on PATH.

    A memtier built from a source archive reports v=255.255.255: accepted, and
    logged as such (its real version is whatever source it was built from).
    """
    limited = [i for i, w in enumerate(workloads) if w.rate_limit]
    if tool != MEMTIER or not limited:
        return []
    line = tool_version(MEMTIER)
    problem = rate_limit_problem(line)
    if problem:
        return [f"workloads[{i}].rate_limit: {problem}" for i in limited]
    if memtier_version(line) == SOURCE_BUILD:
        log.warning(
            "memtier_benchmark reports %r, the version of a build from a source archive: "
            "taken as recent enough for --rate-limiting (needs 2.1 or later)",
            line,
        )
    return []


def rate_hint_from(result: LoadResult) -> dict[str, float]:
    """Per-side total rates of a (warm-up) result, for start_load's rate_hint_ops."""
    return {"set": result.set_ops_per_sec, "get": result.get_ops_per_sec}


def _side_rate(side: str, conns: dict[str, int], generators: int, hint: RateHint) -> float:
    """Expected ops/s of one process of side: the hint split per generator and side."""
    if isinstance(hint, dict) and hint.get(side):
        return float(hint[side]) / generators
    if isinstance(hint, int | float) and hint > 0:
        return float(hint) * conns[side] / sum(conns.values()) / generators
    return DEFAULT_OPS_PER_CONN * conns[side]


def _launch(argv: list[str], password: str, base: Path) -> Launched:
    """Popen argv detached, output to <base>.stdout/.stderr, password in the env only."""
    stdout, stderr = Path(f"{base}.stdout"), Path(f"{base}.stderr")
    env = dict(os.environ)
    if password:
        env[AUTH_ENV] = password
    else:
        env.pop(AUTH_ENV, None)
    with stdout.open("wb") as out, stderr.open("wb") as err:
        child = procs.launch(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=base.parent,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    return Launched(
        pid=child.proc.pid,
        proc_start=child.start,
        argv=argv,
        argv_masked=mask_argv(argv, password),
        stdout=str(stdout),
        stderr=str(stderr),
        started_at=time.time(),
    )


@dataclass(frozen=True)
class _Generator:
    """A generator being started: what its handles share, and the password its
    processes get in their environment (never in a handle)."""

    shared: LoadGenerator
    password: str = field(repr=False)

    def handle(self, launched: Launched, side: str, **tool_fields: Any) -> Handle:
        return Handle(**launched.model_dump(), **self.shared.model_dump(), side=side, **tool_fields)


def _check_start(workload: Workload, tool: str, generators: int, duration_s: int) -> None:
    if tool not in TOOLS:
        raise ValueError(f"tool {tool!r}: use one of {TOOLS}")
    if generators < 1 or duration_s < 1:
        raise ValueError("generators and duration_s must be >= 1")
    if tool == REDIS_BENCHMARK and (problems := unsupported(workload)):
        raise ValueError("; ".join(problems))
    if not shutil.which(tool):
        raise LoadError(f"{tool} is not on PATH")


def start_load(
    workload: Workload,
    endpoint: Endpoint,
    *,
    password: str,
    out_dir: Path,
    generators: int,
    tool: str,
    phase: Phase,
    duration_s: int,
    rate_hint_ops: RateHint = None,
    tls_cacert: str | None = None,
    tls_skip_verify: bool = False,
) -> list[Handle]:
    """Launch the generator processes detached and return their handles.

    memtier runs for duration_s (--test-time). redis-benchmark runs in chunks
    through chunked.py until duration_s is filled; rate_hint_ops sizes the
    first chunk: a total ops/s (e.g. warm-up ops_per_sec, split by connection
    share) or per side {"set": ops/s, "get": ops/s} (see rate_hint_from);
    without a hint a conservative DEFAULT_OPS_PER_CONN is used (the first
    chunk is then short, and the next ones are sized from what it achieved).
    tls_cacert / tls_skip_verify: how memtier checks a TLS endpoint's certificate
    (see memtier_argv). Output files are named "<phase>-g<N>[-<side>].*" in out_dir.
    """
    _check_start(workload, tool, generators, duration_s)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    version = _start_version(tool)
    if workload.read_from == "replicas":
        readers, reads_from = reads.reader_endpoints(endpoint, generators)
    else:
        readers, reads_from = [endpoint] * generators, "primary"
    handles: list[Handle] = []
    try:
        for g in range(generators):
            shared = LoadGenerator(
                tool=tool,
                tool_version=version,
                phase=phase,
                generator=g,
                duration_s=duration_s,
                reads_from=reads_from,
            )
            gen = _Generator(shared, password)
            ends = {"set": endpoint, "get": readers[g]}
            prefix = out_dir / f"{phase}-g{g}"
            if tool == MEMTIER:
                tls = {"tls_cacert": tls_cacert, "tls_skip_verify": tls_skip_verify}
                handles += _start_memtier(gen, workload, ends, prefix, tls)
            else:
                rate = functools.partial(_side_rate, generators=generators, hint=rate_hint_ops)
                handles += _start_redis_benchmark(
                    gen, workload, ends, prefix, rate, tls_skip_verify
                )
    except BaseException:
        stop_load(handles, grace_s=2.0)
        raise
    write_handles(out_dir / f"{phase}-handles.json", handles)
    return handles


def _start_memtier(
    gen: _Generator,
    workload: Workload,
    ends: dict[str, Endpoint],
    prefix: Path,
    tls: dict[str, Any],
) -> list[Handle]:
    """One memtier process, or one per side when reads go to a replica (reads.py)."""
    if workload.read_from != "replicas":
        return [_start_memtier_process(gen, workload, ends["set"], prefix, "mixed", tls)]
    return [
        _start_memtier_process(
            gen, side_wl, ends[side], prefix.with_name(f"{prefix.name}-{side}"), side, tls
        )
        for side, side_wl in side_workloads(workload).items()
    ]


def _start_memtier_process(
    gen: _Generator,
    workload: Workload,
    endpoint: Endpoint,
    prefix: Path,
    side: str,
    tls: dict[str, Any],
) -> Handle:
    # Old outputs of the same name would be read as this run's.
    for stale in [prefix.with_name(f"{prefix.name}.json"), *prefix.parent.glob(f"{prefix.name}_*")]:
        stale.unlink(missing_ok=True)
    argv = memtier_argv(
        workload,
        endpoint,
        password_env=bool(gen.password),
        test_time=gen.shared.duration_s,
        out_prefix=str(prefix),
        **tls,
    )
    launched = _launch(argv, gen.password, prefix)
    return gen.handle(launched, side, json_path=f"{prefix}.json", hdr_prefix=str(prefix))


def _start_redis_benchmark(
    gen: _Generator,
    workload: Workload,
    ends: dict[str, Endpoint],
    prefix: Path,
    rate: Callable[[str, dict[str, int]], float],
    tls_skip_verify: bool,
) -> list[Handle]:
    """One chunked.py driver per side of the ratio (redis-benchmark runs one command)."""
    endpoint = ends["set"]
    primaries = sum(n.role == "primary" for n in endpoint.nodes)
    conns = split_connections(workload, primaries if endpoint.cluster_mode else 1)
    handles = []
    for side, clients in conns.items():
        tool_argv = redis_benchmark_argv(
            workload,
            ends[side],
            side=side,
            clients=clients,
            requests=None,
            password_env=bool(gen.password),
            tls_skip_verify=tls_skip_verify,
        )
        side_prefix = prefix.with_name(f"{prefix.name}-{side}")
        handles.append(
            _start_chunked(gen, tool_argv, side_prefix, side, rate(side, conns), workload.pipeline)
        )
    return handles


def _start_chunked(
    gen: _Generator, tool_argv: list[str], prefix: Path, side: str, rate: float, pipeline: int
) -> Handle:
    """Launch chunked.py over tool_argv (no -n, -P pipeline) for the generator's duration;
    its handle."""
    # Old outputs of the same name would be read as this run's.
    for stale in prefix.parent.glob(f"{prefix.name}.c[0-9]*.stdout"):
        stale.unlink(missing_ok=True)
    manifest = prefix.with_name(f"{prefix.name}.chunks.json")
    manifest.unlink(missing_ok=True)
    argv = [sys.executable, "-I", "-S", str(CHUNKED), "--seconds", str(gen.shared.duration_s)]
    argv += ["--rate", f"{rate:.1f}", "--out", str(prefix), "--multiple-of", str(pipeline)]
    argv += ["--", *tool_argv]
    launched = _launch(argv, gen.password, prefix)
    return gen.handle(
        launched,
        side,
        chunks=str(manifest),
        tool_argv=tool_argv,
        expected_ops_per_sec=round(rate, 1),
    )


def load_running(handles: Sequence[Handle]) -> list[int]:
    """pids of handles whose process has not ended (from its exit status, see procs.py)."""
    return [h.pid for h in handles if not procs.ended(*h.ident)]


def wait_load(handles: Sequence[Handle], timeout_s: float) -> bool:
    """Block until every generator has exited (True) or timeout_s passed (False)."""
    deadline = time.monotonic() + timeout_s
    while load_running(handles):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)  # the warm-up blocks here: notice its end at once (a poll is cheap)
    return True


def stop_load(handles: Sequence[Handle], grace_s: float = 5.0) -> list[int]:
    """SIGTERM still-running generators, SIGKILL after grace_s; returns pids signalled.

    A pid is only signalled while it is still the process of its handle (the same
    start time: pids get reused).
    """
    return procs.terminate([h.ident for h in handles], grace_s)


TAIL_LINES, TAIL_CHARS = 5, 600


def tail(path: str | Path) -> str:
    """The last lines of an output file, on one line ('' when missing or empty)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if line.strip()][-TAIL_LINES:]
    return " | ".join(lines)[-TAIL_CHARS:]


def _chunk_trouble(h: Handle) -> tuple[str, str, bool]:
    """(what the chunk driver's manifest says, its last chunk's stdout tail, whether a
    chunk was killed by a signal the driver did not pass on) of a redis-benchmark side."""
    manifest = jsonfile.read_dict(Path(h.chunks)) if h.chunks else None
    if manifest is None:
        return "", "", False
    chunks = manifest.get("chunks") or [{}]
    error = str(manifest.get("error") or "")
    rc = chunks[-1].get("returncode")
    killed = isinstance(rc, int) and rc < 0 and not error.startswith("stopped by signal")
    return error, tail(chunks[-1].get("stdout") or ""), killed


def _how_it_ended(h: Handle) -> tuple[str, bool]:
    """A sentence on how a generator ended (its exit status or signal, the last lines of
    its output), and whether a signal nobody here sent ended it (the run was lost)."""
    status = procs.exit_status(*h.ident)
    ours = procs.signalled_by_us(*h.ident)
    lost = status is not None and status < 0 and not ours
    parts = [procs.describe_exit(status) + (" (stopped by cachebench)" if ours else "")]
    stdout = tail(h.stdout)
    if h.chunks:
        error, chunk_out, killed = _chunk_trouble(h)
        stdout, lost = chunk_out or stdout, lost or killed
        if error:
            parts.append(f"its driver says: {error}")
    parts.append(f"stdout: {stdout or '(empty)'}")
    parts.append(f"stderr: {tail(h.stderr) or '(empty)'}")
    return "; ".join(parts), lost


def _collect_one(h: Handle) -> LoadResult:
    try:
        if h.tool == MEMTIER:
            assert h.json_path is not None and h.hdr_prefix is not None
            scrub_memtier_json(h.json_path)
            return parse_memtier_json(
                h.json_path,
                hdr_prefix=h.hdr_prefix,
                tool_version=h.tool_version,
                started_at=h.started_at,
            )
        if h.chunks:
            manifest = json.loads(Path(h.chunks).read_text())
            return parse_chunks(manifest, tool_version=h.tool_version)
        # One redis-benchmark process, no chunks: its stdout is its report.
        text = Path(h.stdout).read_text(errors="replace")
        elapsed = max(0.0, Path(h.stdout).stat().st_mtime - h.started_at)
        return parse_redis_benchmark(
            text, started_at=h.started_at, elapsed=elapsed, tool_version=h.tool_version
        )
    except (OSError, ValueError, KeyError) as e:
        ended, lost = _how_it_ended(h)
        raise LoadError(
            f"generator {h.generator} ({h.tool} {h.side}, pid {h.pid}) "
            f"gave no result: {e}; {ended}",
            lost=lost,
        ) from e


def collect_load(handles: Sequence[Handle]) -> LoadResult:
    """Parse every generator's output and merge (sides first, then generators)."""
    if not handles:
        raise ValueError("no handles")
    if running := load_running(handles):
        raise LoadError(f"generators still running: pids {running}")
    per_gen: dict[int, list[LoadResult]] = {}
    failures: list[LoadError] = []
    for h in handles:
        try:
            per_gen.setdefault(h.generator, []).append(_collect_one(h))
        except LoadError as e:
            failures.append(e)
    if failures:  # every generator that failed says how it ended
        raise LoadError(
            " / ".join(str(e) for e in failures), lost=any(e.lost for e in failures)
        ) from failures[0].__cause__
    merged = [merge_results(rs, generators=1) for _, rs in sorted(per_gen.items())]
    reads_from = handles[0].reads_from
    return merge_results(merged).model_copy(update={"reads_from": reads_from})


def run_load(
    workload: Workload,
    endpoint: Endpoint,
    *,
    password: str,
    out_dir: Path,
    generators: int,
    tool: str,
    phase: Phase,
    duration_s: int,
    rate_hint_ops: RateHint = None,
    tls_cacert: str | None = None,
    tls_skip_verify: bool = False,
    timeout_s: float | None = None,
) -> LoadResult:
    """Start, wait for and collect a load (blocking; warm-up and tests).

    Generators still running at timeout_s (default 3 x duration + 30 s) are
    stopped and LoadError is raised.
    """
    handles = start_load(
        workload,
        endpoint,
        password=password,
        out_dir=out_dir,
        generators=generators,
        tool=tool,
        phase=phase,
        duration_s=duration_s,
        rate_hint_ops=rate_hint_ops,
        tls_cacert=tls_cacert,
        tls_skip_verify=tls_skip_verify,
    )
    limit = timeout_s if timeout_s is not None else 3 * duration_s + 30
    try:
        if not wait_load(handles, limit):
            raise LoadError(f"load did not finish within {limit:.0f} s; generators stopped")
    finally:
        stop_load(handles, grace_s=3.0)
    return collect_load(handles)
