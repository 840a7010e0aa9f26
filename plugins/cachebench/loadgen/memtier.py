"""memtier_benchmark: argv building and parsing of its JSON / HDR outputs.

Output format (memtier 2.x, run_stats.cpp ``print_json`` / ``result_print_to_json``;
real captures in tests/fixtures/memtier-real/): ``"run information"`` holds
``Seconds`` (--test-time); ``"ALL STATS"`` holds ``"Runtime"`` (``Start time`` /
``Finish time`` in ms since the epoch, ``Total duration`` ms, ``Interrupted``)
and one object per command type (``Sets``, ``Gets``, ``Waits``, ``Totals``) with
``Count``, ``Ops/sec``, ``KB/sec``, ``Latency``/``Average Latency``/``Min
Latency``/``Max Latency`` (ms; ``MOVED/sec``/``ASK/sec`` in cluster mode), a
per-second ``Time-Serie`` ({"0": {"Bytes RX", "Bytes TX", "Count", "Average
Latency", "p50.00", ...}}) and ``Percentile Latencies`` ({"p50.000": ms, ...,
"Histogram log format": {"Compressed Histogram": "HISTF..."}}).

What is read, and why (the summary figures are wrong in memtier's source up to its
current default branch, 2f74d61, from which the "master_" captures were made, and in
the older build of the other captures; both report v=255.255.255):

* Totals ``Latency``/``Average Latency`` are written as 0.000: the mean is
  always the HDR histogram's (memtier's printed Avg. Latency is hdr_mean too);
* ``Start time``/``Finish time`` are averaged over the connections with whole
  seconds truncated, so ``Total duration``, and with it the JSON's and stdout's
  Ops/sec and KB/sec, can be a second off (1019 ms for a 2 s run): rates are
  counts over the complete seconds of the per-second series, seconds
  0..T-1 (T = --test-time), divided by T. KB is memtier's own (bytes RX + TX /
  1024). The series ends with a partial second (T, a few dozen ops finishing
  after the window): it is dropped, and ``requests`` counts the window's
  requests. The latency histogram is memtier's for the whole run (that partial
  second included: a few dozen samples in millions);
* ``started_at`` is when the caller started the process (memtier's Start time
  only as a fallback, with a note).

Latency histogram sources, best first (the one used is exact unless noted in
``notes``):
1. Totals' ``Compressed Histogram`` in the JSON (memtier's own HDR, microseconds);
2. ``<prefix>_FULL_RUN_1.hgrm``: HdrHistogram log written by ``--hdr-file-prefix``;
3. ``<prefix>_FULL_RUN_1.txt``: the percentile distribution printed by
   ``--hdr-file-prefix``, values with two decimals (10 us steps), rebuilt from its
   cumulative counts; its footer's Mean (memtier's hdr_mean, 1 us) is the mean;
4. the ``Percentile Latencies`` table only: an approximation (TABLE_NOTE), exact
   at the table's percentiles; the mean is ``Accumulated Latency`` / ``Count``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from cachebench import jsonfile
from cachebench.loadgen import hdr
from cachebench.loadgen.auth import AUTH_ENV, MASK, mask_argv, wrap_with_env_auth
from cachebench.loadgen.redis_benchmark import Side, split_connections
from cachebench.models import Endpoint, LoadResult, SecondSample, Workload

MEMTIER = "memtier_benchmark"
PERCENTILES = "50,90,99,99.9"
TABLE_NOTE = "latency approximated from memtier's percentile table (no histogram found)"
TXT_NOTE = "latency rebuilt from memtier's printed percentile distribution (10 us steps)"
# |Total duration - --test-time| from which memtier's own rates are called wrong: the
# truncation bug is a whole second; a correct run ends a few ms after its test time.
DURATION_SLACK_S = 0.9
# --rate-limiting appeared in memtier 2.1.0 (RedisLabs/memtier_benchmark #237).
RATE_LIMIT_MIN = (2, 1)
# What a build from a source archive reports (configure.ac's AC_INIT on master).
SOURCE_BUILD = (255, 255, 255)

# memtier logs each error reply, and counts it as a served op of its command (client.cpp
# handle_response): "server <host:port> handle error response: -OOM command not allowed ..."
ERROR_REPLY = re.compile(r"handle error response: (.*)")

__all__ = [
    "AUTH_ENV",
    "MEMTIER",
    "error_replies",
    "mask_argv",
    "memtier_argv",
    "memtier_version",
    "merge_results",
    "parse_memtier_json",
    "rate_limit_problem",
    "scrub_memtier_json",
    "side_workloads",
]


def memtier_argv(
    workload: Workload,
    endpoint: Endpoint,
    *,
    password_env: bool,
    test_time: int,
    out_prefix: str,
    tls_cacert: str | None = None,
    tls_skip_verify: bool = False,
) -> list[str]:
    """memtier_benchmark argv for one generator; never contains the password.

    password_env=True wraps the argv in /bin/sh so that memtier gets
    ``--authenticate="$CACHEBENCH_AUTH"`` from the environment at exec time (see
    auth.py; the variable must be set for the process, e.g. from an ECS secret).

    With endpoint.tls: memtier verifies the server certificate against an empty
    trust store unless it is given --cacert (it never loads the system store), so
    plain --tls fails every handshake. tls_cacert (a CA bundle path) gives
    ``--tls --cacert=PATH``; tls_skip_verify (an explicit opt-out) gives
    ``--tls --tls-skip-verify``; with neither, ValueError.
    """
    argv = [
        MEMTIER,
        f"--server={endpoint.host}",
        f"--port={endpoint.port}",
        "--protocol=redis",
    ]
    if endpoint.cluster_mode:
        argv.append("--cluster-mode")
    if endpoint.tls:
        if tls_skip_verify:
            argv += ["--tls", "--tls-skip-verify"]
        elif tls_cacert:
            argv += ["--tls", f"--cacert={tls_cacert}"]
        else:
            raise ValueError(
                "endpoint.tls: memtier needs tls_cacert (a CA bundle to verify the server "
                "certificate) or tls_skip_verify=True; plain --tls fails every handshake"
            )
    argv += [
        f"--ratio={workload.ratio}",
        f"--data-size={workload.value_size}",
        "--key-minimum=1",
        f"--key-maximum={workload.key_space}",
        f"--key-pattern={workload.key_pattern}",
        f"--pipeline={workload.pipeline}",
        f"--clients={workload.clients}",
        f"--threads={workload.threads}",
        f"--test-time={test_time}",
    ]
    if workload.rate_limit:
        argv.append(f"--rate-limiting={workload.rate_limit}")
    argv += [
        "--hide-histogram",
        f"--print-percentiles={PERCENTILES}",
        f"--json-out-file={out_prefix}.json",
        f"--hdr-file-prefix={out_prefix}",
        "--distinct-client-seed",
        "--randomize",
    ]
    return wrap_with_env_auth(argv, "--authenticate=") if password_env else argv


def _side_shape(connections: int, max_threads: int) -> tuple[int, int]:
    """(threads, clients per thread) for exactly `connections`: the most threads
    up to max_threads that divide them evenly."""
    threads = max(t for t in range(1, min(max_threads, connections) + 1) if connections % t == 0)
    return threads, connections // threads


def side_workloads(workload: Workload) -> dict[Side, Workload]:
    """The workload as a SETs-only and a GETs-only memtier process (reads from replicas).

    memtier's --ratio mixes commands on every connection, and a connection goes
    to one host: writers and readers on different hosts take two processes. The
    workload's connections (clients x threads) are split by the SET:GET weights
    as for redis-benchmark (split_connections); each side keeps exactly its
    connections, on as many of the workload's threads as divide them evenly.
    """
    out: dict[Side, Workload] = {}
    for side, conns in split_connections(workload).items():
        threads, clients = _side_shape(conns, workload.threads)
        ratio = "1:0" if side == "set" else "0:1"
        out[side] = workload.model_copy(
            update={"ratio": ratio, "threads": threads, "clients": clients}
        )
    return out


# ---------------------------------------------------------------- version

_VERSION = re.compile(r"memtier_benchmark\s+(?:v=)?(\d+)\.(\d+)(?:\.(\d+))?")


def error_replies(output: str) -> tuple[int, list[str]]:
    """(how many, the distinct replies) of the error replies memtier logged in `output`.

    Its JSON and per-second series count them as served SETs and GETs and say nothing
    else of them (tests/fixtures/memtier-real/memtier_real_oom_t2: all 82 SETs of the
    run answered -OOM, exit 0)."""
    replies = [m.group(1).strip() for m in ERROR_REPLY.finditer(output)]
    return len(replies), list(dict.fromkeys(replies))


def memtier_version(line: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) from `memtier_benchmark --version`'s first line.

    Releases up to 2.2.0 print "memtier_benchmark 2.1.0"; later ones
    "memtier_benchmark v=2.2.1 sha=...". None when the line names no version.
    """
    m = _VERSION.search(line or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def rate_limit_problem(version_line: str) -> str | None:
    """Why this memtier cannot run --rate-limiting (None: it can).

    A build from a source archive reports 255.255.255: accepted (it is newer
    than any release that lacks the flag), and the caller should say so.
    """
    v = memtier_version(version_line)
    if v is None:
        return (
            f"memtier_benchmark --version printed {version_line!r}, no version: "
            "--rate-limiting needs memtier 2.1 or later"
        )
    if v[:2] < RATE_LIMIT_MIN:
        return (
            f"memtier_benchmark {'.'.join(map(str, v))} has no --rate-limiting: "
            "it needs memtier 2.1 or later"
        )
    return None


# memtier writes one field per line and does not escape the password: a line
# pattern catches any value; the JSON-string pattern covers re-serialised files.
_AUTH_LINE = re.compile(r'^(\s*,?\s*"authenticate"\s*:\s*)(".*")(\s*)$', re.M)
_AUTH_JSON = re.compile(r'("authenticate"\s*:\s*)("(?:[^"\\\n]|\\.)*")()')
_URI_CRED = re.compile(r'("uri"\s*:\s*"[^"\n]*?//)[^@/"\n]*@')


def _mask_auth(m: re.Match[str]) -> str:
    if m.group(2) in ('""', f'"{MASK}"'):
        return m.group(0)
    return f'{m.group(1)}"{MASK}"{m.group(3)}'


def scrub_memtier_json(path: str | Path, secret: str | None = None) -> bool:
    """Mask the password memtier copies in clear into its --json-out-file.

    Covers "configuration"."authenticate" and credentials in "uri" (and every
    occurrence of secret when given). Scrub each such file before it is kept or
    uploaded. Returns True if the file was rewritten.
    """
    path = Path(path)
    text = path.read_text()
    new = text
    if secret:
        for form in {secret, json.dumps(secret)[1:-1]}:
            new = new.replace(form, MASK)
    new = _AUTH_LINE.sub(_mask_auth, new)
    new = _AUTH_JSON.sub(_mask_auth, new)
    new = _URI_CRED.sub(lambda m: f"{m.group(1)}{MASK}@", new)
    if new == text:
        return False
    jsonfile.write_text(path, new)
    return True


# ---------------------------------------------------------------- HDR files


def read_hgrm(path: Path) -> HdrHistogram:
    """Sum of every interval of an HdrHistogram log (memtier's ``*_FULL_RUN_1.hgrm``)."""
    encoded = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in '#"':
            continue
        encoded.append(line.rsplit(",", 1)[-1])
    if not encoded:
        raise ValueError(f"{path}: no histogram intervals")
    return hdr.merge(encoded)


_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TXT_LINE = re.compile(rf"^\s*({_NUM})\s+({_NUM})\s+(\d+)(?:\s+\S+)?\s*$")
_TXT_MEAN = re.compile(rf"^#\[Mean\s*=\s*({_NUM})", re.M)


def read_percentiles_txt(path: Path) -> tuple[HdrHistogram, float | None]:
    """Histogram from memtier's ``*_FULL_RUN_1.txt`` (hdr_percentiles_print, values in
    ms with two decimals), and the footer's ``#[Mean = ...]`` in ms (None if absent)."""
    text = path.read_text()
    points = []
    for line in text.splitlines():
        m = _TXT_LINE.match(line)
        if m:
            points.append((float(m.group(1)), int(m.group(3))))
    if not points:
        raise ValueError(f"{path}: no percentile lines")
    mean = _TXT_MEAN.search(text)
    return hdr.histogram_from_cumulative(points), float(mean.group(1)) if mean else None


# ---------------------------------------------------------------- JSON


def _pct_key(key: str) -> float | None:
    m = re.fullmatch(r"p(\d+(?:\.\d+)?)", key)
    return float(m.group(1)) if m else None


def _percentile_table(block: dict[str, Any]) -> dict[float, float]:
    table = block.get("Percentile Latencies") or {}
    out = {}
    for key, value in table.items():
        pct = _pct_key(key)
        if pct is not None and isinstance(value, int | float):
            out[pct] = float(value)
    return out


def _compressed(block: dict[str, Any]) -> str | None:
    fmt = (block.get("Percentile Latencies") or {}).get("Histogram log format")
    if isinstance(fmt, dict):
        return fmt.get("Compressed Histogram") or None
    return None


def _histogram(
    totals: dict[str, Any], prefix: Path | None
) -> tuple[HdrHistogram, float | None, str]:
    """Best available latency histogram of the whole run, a better mean when the
    source has one (ms), and a note when the histogram is not memtier's own."""
    encoded = _compressed(totals)
    if encoded:
        return hdr.decode(encoded), None, ""
    if prefix is not None:
        hgrm = Path(f"{prefix}_FULL_RUN_1.hgrm")
        if hgrm.is_file():
            return read_hgrm(hgrm), None, ""
        txt = Path(f"{prefix}_FULL_RUN_1.txt")
        if txt.is_file():
            hist, mean = read_percentiles_txt(txt)
            return hist, mean, TXT_NOTE
    table = _percentile_table(totals)
    if not table:
        raise ValueError("memtier JSON has no latency histogram nor percentile table")
    count = int(totals.get("Count", 0))
    hist = hdr.histogram_from_percentiles(
        table, count, min_ms=totals.get("Min Latency"), max_ms=totals.get("Max Latency")
    )
    # The exact mean, from memtier's summed latency (whole ms: off by < 1 ms / Count):
    # far closer than the mean of a histogram rebuilt from four percentiles.
    accumulated = totals.get("Accumulated Latency")
    mean = accumulated / count if isinstance(accumulated, int | float) and count else None
    return hist, mean, TABLE_NOTE


def _test_time(doc: dict[str, Any]) -> int:
    """--test-time in seconds, from "run information" or the configuration block."""
    for value in (
        (doc.get("run information") or {}).get("Seconds"),
        (doc.get("configuration") or {}).get("test_time"),
    ):
        if isinstance(value, int) and value > 0:
            return value
    raise ValueError(
        'memtier JSON names no test time ("run information"."Seconds" or '
        "configuration.test_time): cachebench runs memtier with --test-time"
    )


def _rows(block: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(k): v for k, v in (block.get("Time-Serie") or {}).items() if isinstance(v, dict)}


def _count(rows: dict[int, dict[str, Any]], seconds: range) -> int:
    return sum(int(rows.get(s, {}).get("Count", 0)) for s in seconds)


def _window(rows: dict[int, dict[str, Any]], test_time: int) -> tuple[range, str]:
    """The complete seconds of the series, and a note when the run ended early.

    memtier keys each second by its offset from the start and writes one more,
    partial, second after the test time (the requests still in flight). A run
    that stopped early (interrupted, connections lost) ends on a partial second
    before the test time: that one is dropped too. A second without a single
    reply has no entry: it counts as zero.
    """
    last = max(rows, default=-1)
    if last >= test_time:
        return range(test_time), ""
    if last < 1:
        raise ValueError(
            "memtier's per-second series holds no complete second (with Totals Count 0: "
            "no connection got through, e.g. a TLS or AUTH failure, which memtier exits 0 on)"
        )
    return range(last), (
        f"memtier's per-second series ends in second {last} of --test-time={test_time}: "
        f"the window is the {last} complete seconds before it"
    )


def _kb(rows: dict[int, dict[str, Any]], seconds: range) -> float | None:
    """KB (memtier's: bytes RX + TX / 1024) of the window's seconds; None before
    memtier 2.1 (no Bytes RX/TX in the series)."""
    total = 0
    for s in seconds:
        row = rows.get(s, {"Bytes RX": 0, "Bytes TX": 0})
        if "Bytes RX" not in row or "Bytes TX" not in row:
            return None
        total += int(row["Bytes RX"]) + int(row["Bytes TX"])
    return total / 1024.0


def _duration_note(runtime: dict[str, Any], totals: dict[str, Any], test_time: int) -> str:
    """A note when memtier's Total duration is a second off a full-length run's."""
    duration_ms = runtime.get("Total duration")
    if not isinstance(duration_ms, int | float):
        return ""
    if abs(duration_ms / 1000.0 - test_time) < DURATION_SLACK_S:
        return ""
    return (
        f"memtier's Total duration is {duration_ms / 1000.0:.3f} s for "
        f"--test-time={test_time} s, so its own Ops/sec ({totals.get('Ops/sec')}) and "
        "KB/sec are wrong (its averages of the connections' start and finish times "
        "truncate to whole seconds); ops/s here are counts over the "
        f"{test_time} complete seconds of its per-second series"
    )


def parse_memtier_json(
    path_or_dict: str | Path | dict[str, Any],
    *,
    hdr_prefix: str | Path | None = None,
    tool_version: str = "",
    started_at: float | None = None,
) -> LoadResult:
    """LoadResult of one memtier run from its --json-out-file (path or loaded dict).

    hdr_prefix defaults to the JSON path without ``.json`` (memtier_argv's layout).
    started_at: when the process was started (unix seconds), recorded by the
    caller; without it memtier's own Start time is used, with a note.

    The window is the complete seconds of the per-second series (see the module
    docstring): elapsed_seconds, requests and every rate are the window's; the
    latency histogram (and so the percentiles and mean) is the whole run's.
    """
    doc, prefix = _load(path_or_dict, hdr_prefix)
    stats = doc["ALL STATS"]
    totals = stats["Totals"]
    sets, gets = stats.get("Sets") or {}, stats.get("Gets") or {}
    runtime = stats.get("Runtime") or {}
    test_time = _test_time(doc)
    rows = _rows(totals)
    seconds, ended_early = _window(rows, test_time)
    notes = _window_notes(runtime, totals, test_time, seconds, ended_early)
    elapsed = float(len(seconds))
    requests = _count(rows, seconds)
    ops = requests / elapsed
    if started_at is None:
        started_at = _memtier_start(runtime)
        notes.append(
            "started_at is memtier's own Start time (can be a second off: its average of "
            "the connections' start times truncates to whole seconds): the process start "
            "was not recorded"
        )
    hist, mean_ms, source_note = _histogram(totals, prefix)
    notes += [source_note] if source_note else []
    max_ms = totals.get("Max Latency")
    return LoadResult(
        tool=MEMTIER,
        tool_version=tool_version or MEMTIER,
        started_at=started_at,
        elapsed_seconds=elapsed,
        requests=requests,
        errors=int(totals.get("Connection Errors", 0)),
        ops_per_sec=round(ops, 2),
        set_ops_per_sec=round(_count(_rows(sets), seconds) / elapsed, 2),
        get_ops_per_sec=round(_count(_rows(gets), seconds) / elapsed, 2),
        kb_per_sec=round(_kb_per_sec(rows, seconds, totals, ops), 2),
        latency=hdr.latency_from(
            hist,
            mean_ms=mean_ms,  # None: the histogram's own mean
            max_ms=max_ms if isinstance(max_ms, int | float) and max_ms > 0 else None,
        ),
        series=_series(rows, seconds),
        histogram=hdr.encode(hist),
        notes=notes,
    )


def _load(
    path_or_dict: str | Path | dict[str, Any], hdr_prefix: str | Path | None
) -> tuple[dict[str, Any], Path | None]:
    """The JSON document, and the prefix of its HDR files (None for a dict without one)."""
    if isinstance(path_or_dict, dict):
        return path_or_dict, Path(hdr_prefix) if hdr_prefix else None
    path = Path(path_or_dict)
    return json.loads(path.read_text()), Path(hdr_prefix) if hdr_prefix else path.with_suffix("")


def _window_notes(
    runtime: dict[str, Any],
    totals: dict[str, Any],
    test_time: int,
    seconds: range,
    ended_early: str,
) -> list[str]:
    """What the reader must know about the window: it ended early, memtier was
    interrupted, or memtier's own duration (so its own rates) is off."""
    notes = [ended_early] if ended_early else []
    if str(runtime.get("Interrupted", "false")).lower() == "true":
        notes.append(
            'memtier reports the run as interrupted ("Interrupted": "true"): '
            f"rates are over the {len(seconds)} complete seconds it measured"
        )
    if not ended_early and (wrong := _duration_note(runtime, totals, test_time)):
        notes.append(wrong)
    return notes


def _memtier_start(runtime: dict[str, Any]) -> float:
    """memtier's own Start time in unix seconds (0.0 when it gives none)."""
    start_ms = runtime.get("Start time")
    return start_ms / 1000.0 if isinstance(start_ms, int | float) else 0.0


def _kb_per_sec(
    rows: dict[int, dict[str, Any]], seconds: range, totals: dict[str, Any], ops: float
) -> float:
    """KB/s over the window; before memtier 2.1 (no bytes in the series) from its KB per op
    (its rates share one duration)."""
    kb = _kb(rows, seconds)
    if kb is not None:
        return kb / len(seconds)
    tool_ops = float(totals.get("Ops/sec") or 0.0)
    return ops * float(totals.get("KB/sec") or 0.0) / tool_ops if tool_ops else 0.0


def _series(rows: dict[int, dict[str, Any]], seconds: range) -> list[SecondSample]:
    """The window's seconds: ops and the percentiles memtier gives for each."""
    return [
        SecondSample(
            second=s,
            ops_per_sec=float(rows.get(s, {}).get("Count", 0)),
            p50_ms=rows.get(s, {}).get("p50.00"),
            p99_ms=rows.get(s, {}).get("p99.00"),
        )
        for s in seconds
    ]


# ---------------------------------------------------------------- merging


def _align(results: Sequence[LoadResult], t0: float) -> dict[int, float]:
    """Per-second ops summed across results, aligned on their own start times."""
    summed: dict[int, float] = {}
    for r in results:
        offset = round(r.started_at - t0)
        for s in r.series:
            key = s.second + offset
            summed[key] = summed.get(key, 0.0) + s.ops_per_sec
    return summed


def _unique(values: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def merge_results(results: Sequence[LoadResult], *, generators: int | None = None) -> LoadResult:
    """One LoadResult for concurrent generators (or the SET/GET halves of one).

    Rates, requests and errors are summed; the per-second series is summed by
    second (aligned on start times; merged seconds carry no percentiles);
    latency percentiles come from the merged histograms, the mean is the mean
    of every sample in them (each result's mean weighted by its histogram's
    count) and max the max. Notes are kept (once each), so is where reads went.
    generators defaults to the sum.
    """
    if not results:
        raise ValueError("nothing to merge")
    if len(results) == 1 and generators in (None, results[0].generators):
        return results[0]
    if any(not r.histogram for r in results):
        raise ValueError("every result needs its histogram: percentiles are never averaged")
    t0 = min(r.started_at for r in results)
    end = max(r.started_at + r.elapsed_seconds for r in results)
    hist = hdr.merge(r.histogram for r in results)
    counts = [hdr.decode(r.histogram).get_total_count() for r in results]
    mean = (
        sum(r.latency.mean * n for r, n in zip(results, counts, strict=True)) / sum(counts)
        if sum(counts)
        else 0.0
    )
    summed = _align(results, t0)
    return LoadResult(
        tool="+".join(sorted({r.tool for r in results})),
        tool_version="; ".join(sorted({r.tool_version for r in results if r.tool_version})),
        started_at=t0,
        elapsed_seconds=round(end - t0, 3),
        requests=sum(r.requests for r in results),
        errors=sum(r.errors for r in results),
        ops_per_sec=round(sum(r.ops_per_sec for r in results), 2),
        set_ops_per_sec=round(sum(r.set_ops_per_sec for r in results), 2),
        get_ops_per_sec=round(sum(r.get_ops_per_sec for r in results), 2),
        kb_per_sec=round(sum(r.kb_per_sec for r in results), 2),
        latency=hdr.latency_from(hist, mean_ms=mean, max_ms=max(r.latency.max for r in results)),
        series=[SecondSample(second=k, ops_per_sec=round(v, 2)) for k, v in sorted(summed.items())],
        histogram=hdr.encode(hist),
        generators=generators if generators is not None else sum(r.generators for r in results),
        notes=_unique([n for r in results for n in r.notes]),
        reads_from="; ".join(_unique([r.reads_from for r in results])),
    )
