"""memtier_benchmark: argv building and parsing of its JSON / HDR outputs.

Output format (memtier 2.x, run_stats.cpp ``print_json`` / ``result_print_to_json``):
``"ALL STATS"`` holds ``"Runtime"`` (``Start time``/``Finish time`` in ms since
the epoch, ``Total duration`` ms) and one object per command type (``Sets``,
``Gets``, ``Waits``, ``Totals``) with ``Count``, ``Ops/sec``, ``KB/sec``,
``Latency``/``Average Latency``/``Min Latency``/``Max Latency`` (ms), a
per-second ``Time-Serie`` ({"0": {"Count", "Bytes RX", "Bytes TX",
"Average Latency", "p50.00", ...}}) and ``Percentile Latencies``
({"p50.00": ms, ..., "Histogram log format": {"Compressed Histogram": "HISTF..."}}).

Latency histogram sources, best first (the one used is exact unless noted):
1. Totals' ``Compressed Histogram`` in the JSON (memtier's own HDR, microseconds);
2. ``<prefix>_FULL_RUN_1.hgrm``: HdrHistogram log written by ``--hdr-file-prefix``;
3. ``<prefix>_FULL_RUN_1.txt``: the percentile distribution printed by
   ``--hdr-file-prefix`` (rebuilt from its cumulative counts, near exact);
4. the ``Percentile Latencies`` table only: an approximation, flagged in
   ``tool_version`` with APPROX_NOTE.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from cachebench.loadgen import hdr
from cachebench.loadgen.auth import AUTH_ENV, MASK, mask_argv, wrap_with_env_auth
from cachebench.models import Endpoint, LoadResult, SecondSample, Workload

MEMTIER = "memtier_benchmark"
PERCENTILES = "50,90,99,99.9"
APPROX_NOTE = "[latency approximated from memtier's percentile table]"
TXT_NOTE = "[latency rebuilt from memtier's printed percentile distribution]"

__all__ = [
    "AUTH_ENV",
    "MEMTIER",
    "mask_argv",
    "memtier_argv",
    "merge_results",
    "parse_memtier_json",
    "scrub_memtier_json",
]


def memtier_argv(
    workload: Workload,
    endpoint: Endpoint,
    *,
    password_env: bool,
    test_time: int,
    out_prefix: str,
    tls_skip_verify: bool = False,
) -> list[str]:
    """memtier_benchmark argv for one generator; never contains the password.

    password_env=True wraps the argv in /bin/sh so that memtier gets
    ``--authenticate="$CACHEBENCH_AUTH"`` from the environment at exec time (see
    auth.py; the variable must be set for the process, e.g. from an ECS secret).
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
        argv.append("--tls")
        if tls_skip_verify:
            argv.append("--tls-skip-verify")
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
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(new)
    tmp.replace(path)
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


def read_percentiles_txt(path: Path) -> HdrHistogram:
    """Histogram from memtier's ``*_FULL_RUN_1.txt`` (hdr_percentiles_print, values in ms)."""
    points = []
    for line in path.read_text().splitlines():
        m = _TXT_LINE.match(line)
        if m:
            points.append((float(m.group(1)), int(m.group(3))))
    if not points:
        raise ValueError(f"{path}: no percentile lines")
    return hdr.histogram_from_cumulative(points)


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


def _histogram(totals: dict[str, Any], prefix: Path | None) -> tuple[HdrHistogram, str]:
    """Best available latency histogram of the whole run, and a note when approximate."""
    encoded = _compressed(totals)
    if encoded:
        return hdr.decode(encoded), ""
    if prefix is not None:
        hgrm = Path(f"{prefix}_FULL_RUN_1.hgrm")
        if hgrm.is_file():
            return read_hgrm(hgrm), ""
        txt = Path(f"{prefix}_FULL_RUN_1.txt")
        if txt.is_file():
            return read_percentiles_txt(txt), TXT_NOTE
    table = _percentile_table(totals)
    if not table:
        raise ValueError("memtier JSON has no latency histogram nor percentile table")
    hist = hdr.histogram_from_percentiles(
        table,
        int(totals.get("Count", 0)),
        min_ms=totals.get("Min Latency"),
        max_ms=totals.get("Max Latency"),
    )
    return hist, APPROX_NOTE


def _series(totals: dict[str, Any]) -> list[SecondSample]:
    series = []
    for sec, row in sorted((totals.get("Time-Serie") or {}).items(), key=lambda kv: int(kv[0])):
        series.append(
            SecondSample(
                second=int(sec),
                ops_per_sec=float(row.get("Count", 0)),
                p50_ms=row.get("p50.00"),
                p99_ms=row.get("p99.00"),
            )
        )
    return series


def _duration_s(stats: dict[str, Any], totals: dict[str, Any], n_seconds: int) -> float:
    runtime = stats.get("Runtime") or {}
    total_ms = runtime.get("Total duration")
    if isinstance(total_ms, int | float) and 0 < total_ms < 1e9:
        return total_ms / 1000.0
    count, ops = totals.get("Count", 0), totals.get("Ops/sec", 0)
    if count and ops:
        return count / ops
    return float(n_seconds)


def parse_memtier_json(
    path_or_dict: str | Path | dict[str, Any],
    *,
    hdr_prefix: str | Path | None = None,
    tool_version: str = "",
) -> LoadResult:
    """LoadResult of one memtier run from its --json-out-file (path or loaded dict).

    hdr_prefix defaults to the JSON path without ``.json`` (memtier_argv's layout).
    """
    if isinstance(path_or_dict, dict):
        doc = path_or_dict
        prefix = Path(hdr_prefix) if hdr_prefix else None
    else:
        path = Path(path_or_dict)
        doc = json.loads(path.read_text())
        prefix = Path(hdr_prefix) if hdr_prefix else path.with_suffix("")
    stats = doc["ALL STATS"]
    totals = stats["Totals"]
    sets, gets = stats.get("Sets") or {}, stats.get("Gets") or {}
    hist, note = _histogram(totals, prefix)
    series = _series(totals)
    runtime = stats.get("Runtime") or {}
    start_ms = runtime.get("Start time")
    version = " ".join(v for v in (tool_version or MEMTIER, note) if v)
    return LoadResult(
        tool=MEMTIER,
        tool_version=version,
        started_at=start_ms / 1000.0 if isinstance(start_ms, int | float) else 0.0,
        elapsed_seconds=round(_duration_s(stats, totals, len(series)), 3),
        requests=int(totals.get("Count", 0)),
        errors=int(totals.get("Connection Errors", 0)),
        ops_per_sec=float(totals.get("Ops/sec", 0.0)),
        set_ops_per_sec=float(sets.get("Ops/sec", 0.0)),
        get_ops_per_sec=float(gets.get("Ops/sec", 0.0)),
        kb_per_sec=float(totals.get("KB/sec", 0.0)),
        latency=hdr.latency_from(
            hist,
            mean_ms=totals.get("Average Latency", totals.get("Latency")),
            max_ms=totals.get("Max Latency"),
        ),
        series=series,
        histogram=hdr.encode(hist),
    )


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


def merge_results(results: Sequence[LoadResult], *, generators: int | None = None) -> LoadResult:
    """One LoadResult for concurrent generators (or the SET/GET halves of one).

    Rates, requests and errors are summed; the per-second series is summed by
    second (aligned on start times; merged seconds carry no percentiles);
    latency percentiles come from the merged histograms, the mean is the
    request-weighted mean and max the max. generators defaults to the sum.
    """
    if not results:
        raise ValueError("nothing to merge")
    if len(results) == 1 and generators in (None, results[0].generators):
        return results[0]
    if any(not r.histogram for r in results):
        raise ValueError("every result needs its histogram: percentiles are never averaged")
    t0 = min(r.started_at for r in results)
    end = max(r.started_at + r.elapsed_seconds for r in results)
    requests = sum(r.requests for r in results)
    hist = hdr.merge(r.histogram for r in results)
    mean = (
        sum(r.latency.mean * r.requests for r in results) / requests
        if requests
        else hdr.latency_from(hist).mean
    )
    summed = _align(results, t0)
    return LoadResult(
        tool="+".join(sorted({r.tool for r in results})),
        tool_version="; ".join(sorted({r.tool_version for r in results if r.tool_version})),
        started_at=t0,
        elapsed_seconds=round(end - t0, 3),
        requests=requests,
        errors=sum(r.errors for r in results),
        ops_per_sec=round(sum(r.ops_per_sec for r in results), 2),
        set_ops_per_sec=round(sum(r.set_ops_per_sec for r in results), 2),
        get_ops_per_sec=round(sum(r.get_ops_per_sec for r in results), 2),
        kb_per_sec=round(sum(r.kb_per_sec for r in results), 2),
        latency=hdr.latency_from(hist, mean_ms=mean, max_ms=max(r.latency.max for r in results)),
        series=[SecondSample(second=k, ops_per_sec=round(v, 2)) for k, v in sorted(summed.items())],
        histogram=hdr.encode(hist),
        generators=generators if generators is not None else sum(r.generators for r in results),
    )
