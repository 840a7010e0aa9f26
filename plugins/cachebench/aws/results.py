"""memtier results of a point's load tasks, from S3 (each task uploads its files to g<N>/)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path
from typing import Any

from cachebench.aws import ecs
from cachebench.loadgen import LoadError
from cachebench.loadgen.memtier import merge_results, parse_memtier_json, scrub_memtier_json
from cachebench.models import LoadResult, PrefillResult


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


def _generator(folder: Path, phase: str) -> LoadResult | None:
    """One task's `phase` result (its writers and readers merged), None if it left nothing.

    Each memtier process the script started left its <name>.stdout; every one
    of them must have its JSON (a side missing is an error, never half a result).
    """
    outputs = sorted(folder.glob(f"{phase}-[sg]et.stdout")) or [folder / f"{phase}.stdout"]
    sides = [o.with_suffix(".json") for o in outputs]
    if not any(p.exists() for p in (*outputs, *sides)):
        return None
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


def merge_phase(dest: Path, generators: int, phase: str = "measured") -> LoadResult:
    """Parse and merge every generator's `phase` result (HDR histograms merged).

    Each generator's folder holds what its container script wrote: the
    memtier JSON (or the writers' and readers' with read_from "replicas"),
    version.txt (memtier's version line), <phase>.started (when memtier was
    started) and, with replicas, reads_from.txt.
    """
    results, missing = [], []
    for g in range(generators):
        result = _generator(dest / f"g{g}", phase)
        if result is None:
            missing.append(g)
        else:
            results.append(result)
    if missing:
        raise LoadError(
            f"no {phase} result from load generator(s) {missing} in {dest} "
            "(see the task's awslogs stream)"
        )
    return merge_results(results, generators=generators)


def prefill(dest: Path) -> PrefillResult | None:
    """The run's prefill (memtier --requests=allkeys) as uploaded by its task, if any.

    Only its count and duration are kept: it is no measurement (memtier releases
    before the upstream duration fix round its duration down to whole seconds).
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
    return PrefillResult(
        tool=version,
        keys=int(stats["Sets"]["Count"]),
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
