"""Machine-wide claims: blocks of what every local deployment on this machine draws from
(loopback ports: machine.py; link-local subnets: netns.py), a block held by one at a time.

A pool is a folder with one file per claimed block (``<first>.json``, a Claim), changed
only under the flock of the folder's ``.lock`` and written whole (jsonfile), so readers
(the reaper, the leftover checks) never see half a claim. A claim names its deployment
(Owner: what the reaper judges it by) and is kept until given back; one whose deployment
folder is gone or whose expiry passed no longer counts once nothing on the machine uses
its block (the pool's probe). A file that is no Claim keeps its block: whose it is cannot
be told.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, ValidationError

from cachebench import jsonfile
from cachebench.models import Strict

LOCK = ".lock"


class Owner(Strict):
    """The deployment a claim is for: its name on this machine, its run and expiry."""

    key: str = Field(pattern=r"^[0-9a-f]{8}$", description="miniature.key_of(state_dir)")
    state_dir: str
    deployment_id: str = ""
    campaign: str = ""
    run_id: str = ""
    expires_at: float

    @property
    def folder(self) -> Path:
        """The deployment's folder (its servers' state dir's parent)."""
        return Path(self.state_dir).parent


class Claim(Strict):
    owner: Owner
    first: int = Field(description="the block's first unit: a port, a subnet's index")
    size: int = Field(1, ge=1, description="units from first: a deployment's nodes' ports")
    at: float

    def gone(self, now: float) -> bool:
        """Its deployment's folder is gone or its expiry passed (still kept while in use)."""
        return now > self.owner.expires_at or not self.owner.folder.is_dir()


@dataclass(frozen=True)
class Pool:
    """One resource's claims, in the folder home() (made with mode when missing)."""

    home: Callable[[], Path]
    mode: int
    units: Callable[[Claim], set[int]]  # what a claim holds, compared between claims
    busy: Callable[[Claim], bool]  # does the machine use any of it now?

    def _folder(self) -> Path:
        path = self.home()
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(PermissionError):
                path.chmod(self.mode)  # whatever the umask: other users' campaigns meet here
        return path

    def _read(self) -> dict[Path, Claim | None]:
        out: dict[Path, Claim | None] = {}
        home = self.home()
        files = home.glob("*.json") if home.is_dir() else []
        for path in sorted(files, key=lambda p: (len(p.stem), p.stem)):  # 2 before 10
            try:
                out[path] = Claim.model_validate_json(path.read_bytes())
            except (OSError, ValidationError):
                out[path] = None
        return out

    @contextlib.contextmanager
    def _locked(self) -> Iterator[Path]:
        home = self._folder()
        fd = os.open(home / LOCK, os.O_RDWR | os.O_CREAT, self.mode & 0o666)
        try:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, self.mode & 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield home
        finally:
            os.close(fd)  # the flock goes with it

    def claims(self) -> list[Claim]:
        """The claims as they stand (unreadable files left out)."""
        return [c for c in self._read().values() if c is not None]

    def claim(self, owner: Owner, blocks: Sequence[tuple[int, int]]) -> Claim | None:
        """The first of blocks ((first, size), in order) no claim holds and nothing uses,
        claimed for owner; the one of them it holds already (a retry); None: none is free."""
        owner.folder.mkdir(parents=True, exist_ok=True)  # a claim lives as long as its folder
        wanted = set(blocks)
        with self._locked() as home:
            now, taken, held = time.time(), set(), None
            for path, c in self._read().items():
                if c is None:
                    with contextlib.suppress(ValueError):
                        taken.add(int(path.stem))
                elif c.owner.key == owner.key and held is None and (c.first, c.size) in wanted:
                    held = c
                elif c.owner.key == owner.key or (c.gone(now) and not self.busy(c)):
                    path.unlink(missing_ok=True)  # another shape of its own, or stale
                else:
                    taken |= self.units(c)
            if held is not None:
                return held
            for first, size in blocks:
                c = Claim(owner=owner, first=first, size=size, at=now)
                if not self.units(c) & taken and not self.busy(c):
                    jsonfile.write(home / f"{first}.json", c)
                    return c
        return None

    def release(self, key: str) -> bool:
        """Give back the claims of deployment `key` once nothing uses them; False when kept
        (or there was none)."""
        with self._locked():
            mine = [(p, c) for p, c in self._read().items() if c and c.owner.key == key]
            if not mine or any(self.busy(c) for _, c in mine):
                return False
            for path, _ in mine:
                path.unlink(missing_ok=True)
        return True
