"""memtier results of a point's load tasks, from S3 (each task uploads its files to g<N>/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def merge_phase(dest: Path, generators: int, phase: str = "measured") -> LoadResult:
    """Parse and merge every generator's `phase` result (HDR histograms merged)."""
    results, missing = [], []
    for g in range(generators):
        path = dest / f"g{g}" / f"{phase}.json"
        if not path.is_file():
            missing.append(g)
            continue
        results.append(parse_memtier_json(path, tool_version="memtier_benchmark (ECS)"))
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
