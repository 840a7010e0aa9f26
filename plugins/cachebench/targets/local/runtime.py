"""The local servers' private runtime folder: their secrets, never under the results folder.

A results folder is copied, served (cachebench.serve) and attached to posts as it is,
so the AUTH password and the servers' configs (requirepass, masterauth) live here:

    <root>/                     0700, this user's
      <deployment>-<hash>/      0700, one per deployment (secrets_dir(state_dir))
        owner.json              its state dir, run and expiry (no secret; for the reaper)
        auth                    0600, the AUTH password
        nodes/<node id>.conf    0600, each server's config

root is $CACHEBENCH_RUNTIME, else $XDG_RUNTIME_DIR/cachebench, else
<tmp>/cachebench-<uid>. `up` makes a deployment's folder, `down` removes it, and so
does the reaper once its deployment is gone (cachebench.reaper).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from cachebench import jsonfile
from cachebench.targets.local.claims import Owner

OWNER = "owner.json"


class NotPrivate(RuntimeError):
    """The runtime root exists but is not this user's own folder."""


def root() -> Path:
    if env := os.environ.get("CACHEBENCH_RUNTIME"):
        return Path(env)
    if xdg := os.environ.get("XDG_RUNTIME_DIR"):
        return Path(xdg) / "cachebench"
    return Path(tempfile.gettempdir()) / f"cachebench-{os.getuid()}"


def secrets_dir(state_dir: Path | str) -> Path:
    """The private folder of the deployment whose servers' state dir is state_dir."""
    sd = Path(os.path.abspath(state_dir))
    # results/<campaign>/<run>/deployments/<deployment>/server: named after the deployment
    name = sd.parent.name if sd.name == "server" else sd.name
    return root() / f"{name[:80]}-{hashlib.sha256(str(sd).encode()).hexdigest()[:12]}"


def make(path: Path, owner: Owner) -> Path:
    """Create path (0700) in a private root, saying whose it is (OWNER); refuse a root
    that is another user's."""
    top = path.parent
    top.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(top)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise NotPrivate(f"{top} is not a folder of this user's: secrets cannot go there")
    os.chmod(top, 0o700)
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    (path / "nodes").mkdir(mode=0o700, exist_ok=True)
    jsonfile.write(path / OWNER, owner)
    return path


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def owners() -> list[tuple[Path, Owner | None]]:
    """Every deployment folder under the root and its OWNER (None: unreadable, or not
    written yet), for the reaper."""
    top = root()
    found = []
    for path in sorted(top.iterdir()) if top.is_dir() else []:
        if path.is_dir():
            try:
                owner = Owner.model_validate_json((path / OWNER).read_bytes())
            except (OSError, ValueError):
                owner = None
            found.append((path, owner))
    return found


def write_secret(path: Path, text: str) -> None:
    """Write a file readable by its owner only, never briefly readable by others."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
