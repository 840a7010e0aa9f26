"""memtier results of a point's load tasks, from S3 (each task uploads its files to g<N>/).

A run's generators measure the same seconds by design (aws/ecs.py: one start time for
all of them); merge_phase reads how far apart they actually started (start_skew_s) and
the share of the asked window in which all of them were measuring (overlap_pct). Rates
come from those common seconds (each generator's per-second counts cut to them when the
starts are a second or more apart); percentiles from the generators' whole windows
(memtier writes no histogram per second), which the flag says. A run below
OVERLAP_FLAG_PCT is flagged, never merged silently; one whose generators share no whole
second fails (LoadError). Error replies memtier logged are taken out of its counts (it
counts them as served operations) and flag the run too.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

from cachebench.loadgen import LoadError
from cachebench.loadgen.memtier import (
    error_replies,
    merge_results,
    parse_memtier_json,
    scrub_memtier_json,
)
from cachebench.models import LoadResult, PrefillResult, SecondSample
from cachebench.targets.aws import ecs

OVERLAP_FLAG_PCT = 90.0  # below it, the generators measured too few seconds together
SKEW_TRIM_S = 1.0  # starts this far apart: rates from the common seconds only


def split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r}: expected s3://bucket/prefix")
    bucket, _, prefix = uri[5:].partition("/")
    return bucket, prefix.rstrip("/")


def fetch(s3: Any, results_uri: str, dest: Path) -> list[Path]:
    """Every object under results_uri into dest (same layout); each JSON scrubbed on arrival.

    The container scrubs the token memtier copies into its JSON before the
    upload; this scrubs again so no file kept here can hold it.
    """
    bucket, prefix = split_uri(results_uri)
    files = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1 :]
            if not rel or ".." in Path(rel).parts:
                continue
            out = dest / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(out))
            if out.suffix == ".json":
                scrub_memtier_json(out)
            files.append(out)
    return files


def read_started(path: Path) -> float | None:
    """The unix time the container script recorded (``date +%s.%N``), None if absent.

    A date without %N (e.g. a BusyBox built without it) prints "<seconds>.N" or
    "<seconds>.%N": the whole seconds are kept.
    """
    try:
        m = re.match(r"\s*(\d+)(\.\d+)?", path.read_text())
    except OSError:
        return None
    return float(m.group(1) + (m.group(2) or "")) if m else None


def _first_line(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[0].strip() if lines else ""


def _said(path: Path, lines: int = 5) -> str:
    """memtier's error lines in its output (else its last lines), joined on one line."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    errors = [s.strip() for s in text if "error" in s.lower() or "fail" in s.lower()]
    return " | ".join(list(dict.fromkeys(errors))[:lines] or text[-lines:])


def _left(folder: Path, phase: str) -> bool:
    """Whether a task uploaded anything of `phase` (a memtier output or JSON)."""
    return any(folder.glob(f"{phase}*.stdout")) or any(folder.glob(f"{phase}*.json"))


def missing_generators(dest: Path, generators: int, phase: str = "measured") -> list[int]:
    """The generators whose task uploaded nothing of `phase`."""
    return [g for g in range(generators) if not _left(dest / f"g{g}", phase)]


def _generator(folder: Path, phase: str) -> LoadResult | None:
    """One task's `phase` result (its writers and readers merged), None if it left nothing.

    Each memtier process the script started left its <name>.stdout; every one
    of them must have its JSON (a side missing is an error, never half a result).
    """
    if not _left(folder, phase):
        return None
    outputs = sorted(folder.glob(f"{phase}-[sg]et.stdout")) or [folder / f"{phase}.stdout"]
    sides = [o.with_suffix(".json") for o in outputs]
    version = _first_line(folder / ecs.VERSION_FILE) or "memtier_benchmark (version not recorded)"
    started = read_started(folder / ecs.STARTED.format(phase=phase))
    parts = []
    for path in sides:
        try:
            parts.append(parse_memtier_json(path, tool_version=version, started_at=started))
        except (OSError, ValueError, KeyError) as exc:
            # memtier exits 0 even when no connection got through (a TLS or AUTH failure):
            # what it printed says why
            said = _said(path.with_suffix(".stdout")) or "(no output)"
            raise LoadError(
                f"{folder.name}/{path.name} holds no result: {exc}; memtier: {said}"
            ) from exc
    merged = merge_results(parts, generators=1)
    return merged.model_copy(
        update={"reads_from": _first_line(folder / ecs.READS_FILE) or "primary"}
    )


def merge_phase(
    dest: Path, generators: int, phase: str = "measured", window_s: float | None = None
) -> LoadResult:
    """Parse and merge every generator's `phase` result (HDR histograms merged).

    Each generator's folder holds what its container script wrote: the
    memtier JSON (or the writers' and readers' with read_from "replicas"),
    version.txt (memtier's version line), <phase>.started (when memtier was
    started) and, with replicas, reads_from.txt. `window_s`: the seconds asked
    for (the workload's duration), against which the common seconds are judged.
    """
    results, missing = [], []
    for g in range(generators):
        result = _generator(dest / f"g{g}", phase)
        if result is None:
            missing.append(g)
        else:
            results.append(result)
    if missing:
        # a task that uploaded nothing of the phase although the watch saw it exit 0 (the
        # only way here): the result was lost on its way, not refused by the cache
        raise LoadError(
            f"no {phase} result from load generator(s) {missing} in {dest}: their tasks "
            "uploaded nothing of it",
            lost=True,
        )
    merged = merge_results(results, generators=generators)
    if len(results) > 1:
        merged = _common_seconds(results, merged, window_s)
    said = [_error_replies(dest / f"g{g}", phase) for g in range(generators)]
    return _without_error_replies(merged, list(zip(results, said, strict=True)))


def _error_replies(folder: Path, phase: str) -> tuple[int, list[str]]:
    """The error replies a generator's memtier processes logged in the phase."""
    outputs = sorted(folder.glob(f"{phase}-[sg]et.stdout")) or [folder / f"{phase}.stdout"]
    count, replies = 0, []
    for path in outputs:
        try:
            n, said = error_replies(path.read_text(errors="replace"))
        except OSError:
            continue
        count += n
        replies += [r for r in said if r not in replies]
    return count, replies


def _common_seconds(
    results: list[LoadResult], merged: LoadResult, window_s: float | None
) -> LoadResult:
    """The merge over the seconds every generator was in its measured window: the start
    skew, the share of the asked window they overlap, rates from those seconds."""
    lo = max(r.started_at for r in results)
    hi = min(r.started_at + r.elapsed_seconds for r in results)
    skew = lo - min(r.started_at for r in results)
    overlap = max(0.0, hi - lo)
    asked = window_s or min(r.elapsed_seconds for r in results)
    pct = 100.0 * overlap / asked if asked else 0.0
    update: dict = {"start_skew_s": round(skew, 3), "overlap_pct": round(pct, 1)}
    notes, flags = list(merged.notes), list(merged.flags)
    if skew >= SKEW_TRIM_S and overlap < 1.0:
        # no whole second in common: any rate would be made up (0 ops/s would enter the
        # point's mean), so the run fails with what happened instead of being measured
        raise LoadError(
            f"the {len(results)} load generators started {skew:.1f} s apart and were all "
            f"in their measured window for {overlap:.1f} s of the {asked:.0f} s asked: "
            "no second in common to take rates from"
        )
    if skew >= SKEW_TRIM_S:
        update |= _rates_within(results, lo, hi)
        notes.append(
            f"the generators started {skew:.1f} s apart: rates are over the {overlap:.1f} s "
            "they all measured; percentiles over each one's whole window (memtier writes "
            "no histogram per second)"
        )
    if pct < OVERLAP_FLAG_PCT:
        flags.append(
            f"start skew {skew:.1f} s: the {len(results)} load generators were all in their "
            f"measured window for {overlap:.1f} s of the {asked:.0f} s asked ({pct:.0f} %)"
        )
    return merged.model_copy(update={**update, "notes": notes, "flags": flags})


def _rates_within(results: list[LoadResult], lo: float, hi: float) -> dict:
    """Requests and rates of the whole seconds of each result within [lo, hi] (half a
    second of slack at either end), summed; the merged series over the same seconds."""
    requests, ops, sets, gets, kb = 0, 0.0, 0.0, 0.0, 0.0
    series: dict[int, float] = {}
    for r in results:
        kept = [s for s in r.series if r.started_at + s.second >= lo - 0.5]
        kept = [s for s in kept if r.started_at + s.second + 1 <= hi + 0.5]
        count = sum(s.ops_per_sec for s in kept)
        rate = count / len(kept) if kept else 0.0
        share = rate / r.ops_per_sec if r.ops_per_sec else 0.0
        requests += int(count)
        ops += rate
        sets, gets, kb = (
            sets + r.set_ops_per_sec * share,
            gets + r.get_ops_per_sec * share,
            kb + r.kb_per_sec * share,
        )
        for s in kept:
            at = round(r.started_at + s.second - lo)
            series[at] = series.get(at, 0.0) + s.ops_per_sec
    return {
        "started_at": lo,
        "elapsed_seconds": round(max(0.0, hi - lo), 3),
        "requests": requests,
        "ops_per_sec": round(ops, 2),
        "set_ops_per_sec": round(sets, 2),
        "get_ops_per_sec": round(gets, 2),
        "kb_per_sec": round(kb, 2),
        "series": [
            SecondSample(second=k, ops_per_sec=round(v, 2)) for k, v in sorted(series.items())
        ],
    }


def _without_error_replies(
    result: LoadResult, said: list[tuple[LoadResult, tuple[int, list[str]]]]
) -> LoadResult:
    """The result without the error replies each generator's memtier logged (`said`: its
    result and its (count, replies)): memtier counts each as a served SET or GET, so they
    come off requests (the share of each generator's that falls in the merged window)
    and ops/s (off SETs too when they are -OOM, which refuses writes only), and flag
    the run."""
    count = sum(n for _, (n, _) in said)
    if not count:
        return result
    replies = list(dict.fromkeys(r for _, (_, rs) in said for r in rs))
    per_s = sum(n / r.elapsed_seconds for r, (n, _) in said if r.elapsed_seconds)
    removed = sum(
        n * min(1.0, result.elapsed_seconds / r.elapsed_seconds)
        for r, (n, _) in said
        if r.elapsed_seconds
    )
    oom = all(r.startswith("-OOM") for r in replies)
    shown = "; ".join(replies[:2]) + (f"; and {len(replies) - 2} more" if len(replies) > 2 else "")
    return result.model_copy(
        update={
            "error_replies": count,
            "requests": max(0, result.requests - round(removed)),
            "ops_per_sec": round(max(0.0, result.ops_per_sec - per_s), 2),
            "set_ops_per_sec": round(max(0.0, result.set_ops_per_sec - per_s), 2)
            if oom
            else result.set_ops_per_sec,
            "flags": [
                *result.flags,
                f"{count} error replies ({shown}): not counted as served operations",
            ],
            "notes": [
                *result.notes,
                "memtier counts error replies as served operations and does not say in "
                "which second: they are taken out of requests and rates, the per-second "
                "series and the latency histogram still hold them",
            ],
        }
    )


def prefill(dest: Path) -> PrefillResult | None:
    """The run's prefill (memtier --requests=allkeys) as uploaded by its task, if any.

    Only its counts and duration are kept: it is no measurement (memtier releases
    before the upstream duration fix round its duration down to whole seconds). `keys`
    is what memtier wrote, `dbsize` what the primaries held afterwards.
    """
    path = dest / "prefill" / "prefill.json"
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    stats = doc["ALL STATS"]
    runtime = stats.get("Runtime") or {}
    version = (
        (dest / "prefill" / "version.txt").read_text().strip()
        if (dest / "prefill" / "version.txt").is_file()
        else "memtier_benchmark"
    )
    try:
        dbsize: int | None = int((dest / "prefill" / ecs.DBSIZE_FILE).read_text().strip())
    except (OSError, ValueError):
        dbsize = None
    return PrefillResult(
        tool=version,
        keys=int(stats["Sets"]["Count"]),
        dbsize=dbsize,
        value_size=int(doc.get("configuration", {}).get("data_size", 0)),
        seconds=float(runtime.get("Total duration", 0)) / 1000.0,
        started_at=float(runtime.get("Start time", 0)) / 1000.0,
    )


def _cpu_samples(path: Path) -> list[tuple[float, int]]:
    """(unix time, CPU microseconds) lines the container script's sampler wrote."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        m = re.match(r"\s*(\d+(?:\.\d+)?)\S*\s+(\d+)\s*$", line)
        if m:
            out.append((float(m.group(1)), int(m.group(2))))
    return out


def cpu_report(dest: Path, generators: int, threads: int, vcpus: float | None) -> dict | None:
    """The load tasks' CPU over the measured window, in the shape of the local runner's
    cpu.json (models.LoadCpu): per generator the % of one core it ran
    each second, and as its capacity the task's vCPUs (what its cgroup may use; its
    memtier threads when the task definition names none). None when no task left samples
    (an image without the cgroup files)."""
    rows, starts = [], []
    for g in range(generators):
        samples = _cpu_samples(dest / f"g{g}" / ecs.CPU_FILE)
        pct = [
            round(100.0 * (u1 - u0) / ((t1 - t0) * 1e6), 1)
            for (t0, u0), (t1, u1) in itertools.pairwise(samples)
            if t1 > t0 and u1 >= u0
        ]
        if samples:
            starts.append(samples[0][0])
        rows.append(
            {
                "generator": g,
                "side": None,  # the whole task: writers and readers alike
                "tool": "memtier_benchmark",
                "capacity_cores": vcpus or float(threads),
                "cpu_pct": pct,
                "demand_pct": [],  # a cgroup's usage says nothing of the run queue
            }
        )
    if not starts:
        return None
    # host_cores: a Fargate task's machine is not known, only its share (capacity_cores)
    return {"started_at": min(starts), "interval_s": 1.0, "host_cores": None, "generators": rows}
