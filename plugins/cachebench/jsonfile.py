"""JSON files that readers never see half-written: the one writer and reader.

A run's state is read while it is written (a watch, the report, another task), so
every file goes to a temporary name in the same folder and is renamed over the old
one (atomic on POSIX). A reader gets the whole old file or the whole new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_text(path: Path, text: str, mode: int = 0o644) -> Path:
    """Replace path's content by text, all at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write(path: Path, data: Any, mode: int = 0o644, sort_keys: bool = False) -> Path:
    """Write data (JSON-able, or a pydantic model) as indented JSON, all at once."""
    if hasattr(data, "model_dump_json"):  # a pydantic model: its own, typed dump
        return write_text(path, data.model_dump_json(indent=2) + "\n", mode)
    return write_text(
        path, json.dumps(data, indent=2, sort_keys=sort_keys, default=str) + "\n", mode
    )


def read(path: Path) -> Any:
    """Parsed JSON of path (any type), or None when missing or damaged."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_dict(path: Path) -> dict[str, Any] | None:
    """Like read, but None unless the file holds a JSON object."""
    data = read(path)
    return data if isinstance(data, dict) else None
