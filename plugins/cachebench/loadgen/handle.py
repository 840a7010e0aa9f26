"""A started generator process: what stopping, watching and collecting it needs.

The runner writes the measured load's handles to handles.json while they run; the
local target reads them back to stop a load it gives up on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, TypeAdapter

from cachebench import jsonfile
from cachebench.models import Strict


class Launched(Strict):
    """A detached process: named by (pid, start), its output files, its argv."""

    pid: int
    proc_start: float | None = Field(description="its start, seconds since boot")
    argv: list[str]
    argv_masked: list[str] = Field(description="argv as it may be shown (no secret)")
    stdout: str
    stderr: str
    started_at: float


class LoadGenerator(Strict):
    """One generator of a load: what each of its processes shares."""

    tool: str
    tool_version: str
    phase: str
    generator: int
    duration_s: int
    reads_from: str


class Handle(Launched, LoadGenerator):
    """One generator process (a generator may run one per side of the ratio)."""

    side: Literal["mixed", "set", "get"]
    # memtier_benchmark: its JSON and HDR outputs
    json_path: str | None = None
    hdr_prefix: str | None = None
    # redis-benchmark through chunked.py: its manifest, the tool's argv, the first rate
    chunks: str | None = None
    tool_argv: list[str] | None = None
    expected_ops_per_sec: float | None = None

    @property
    def ident(self) -> tuple[int, float | None]:
        return self.pid, self.proc_start


_HANDLES = TypeAdapter(list[Handle])


def write_handles(path: Path, handles: list[Handle]) -> None:
    jsonfile.write(path, [h.model_dump(mode="json") for h in handles])


def read_handles(path: Path) -> list[Handle]:
    """The handles written at path ([] when missing or damaged)."""
    try:
        return _HANDLES.validate_json(path.read_bytes())
    except (OSError, ValueError):
        return []
