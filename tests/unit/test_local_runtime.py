"""The local servers' private runtime folder (their secrets) and the reaper's rules for it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from cachebench import reaper, targets
from cachebench.targets.local import cgroups, claims, leftovers, netns, runtime

NOW = time.time()
OWNER = claims.Owner(key="0000000a", state_dir="/x/server", expires_at=2e9)


def test_a_deployments_folder_is_named_after_it_and_lies_in_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHEBENCH_RUNTIME", str(tmp_path / "rt"))
    sd = tmp_path / "results/c/r/deployments/redis-7.0-single-local.micro/server"
    path = runtime.secrets_dir(sd)
    assert path.parent == tmp_path / "rt"
    assert path.name.startswith("redis-7.0-single-local.micro-")
    assert runtime.secrets_dir(str(sd)) == path  # the same folder for the same deployment
    assert runtime.secrets_dir(sd.parent.with_name("other") / "server") != path
    monkeypatch.delenv("CACHEBENCH_RUNTIME")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert runtime.root() == tmp_path / "xdg" / "cachebench"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert runtime.root().name == f"cachebench-{os.getuid()}"


def test_make_is_private_and_says_whose(tmp_path):
    path = runtime.make(tmp_path / "rt" / "d-1", OWNER)
    for p in (tmp_path / "rt", path, path / "nodes"):
        assert p.stat().st_mode & 0o777 == 0o700, p
    assert json.loads((path / runtime.OWNER).read_text()) == OWNER.model_dump()
    runtime.remove(path)
    assert not path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_a_root_of_another_user_or_a_symlink_is_refused(tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o777)
    os.chown(theirs, 65534, 65534)  # nobody
    with pytest.raises(runtime.NotPrivate, match="not a folder of this user's"):
        runtime.make(theirs / "d-1", OWNER)
    assert not (theirs / "d-1").exists()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(runtime.NotPrivate):
        runtime.make(tmp_path / "link" / "d-1", OWNER)


def owned(name: str, **owner) -> Path:
    return runtime.make(runtime.root() / name, claims.Owner(key="0000000a", campaign="c", **owner))


def test_the_reaper_takes_the_secrets_no_running_deployment_needs(monkeypatch, tmp_path):
    monkeypatch.setenv("CACHEBENCH_RUNTIME", str(tmp_path / "rt"))
    # The machine's miniatures are not this test's: campaigns of other tests (another
    # xdist worker) may hold claims now, and this reaper must neither judge nor reap them.
    monkeypatch.setattr(netns, "CLAIMS_DIR", tmp_path / "net-claims")
    monkeypatch.setattr(netns, "namespaces", lambda prefix=netns.PREFIX: [])
    monkeypatch.setattr(cgroups, "detect", lambda *a, **k: (None, "not this test's"))
    alive = tmp_path / "alive" / "server"
    alive.mkdir(parents=True)
    gone = tmp_path / "gone" / "server"  # its deployment's folder was removed
    live = owned("live", state_dir=str(alive), run_id="r1", expires_at=NOW + 600)
    expired = owned("expired", state_dir=str(alive), run_id="r1", expires_at=NOW - 5)
    finished = owned("finished", state_dir=str(alive), run_id="r2", expires_at=NOW + 600)
    removed = owned("removed", state_dir=str(gone), run_id="r1", expires_at=NOW + 600)
    fresh = runtime.root() / "fresh"  # no owner yet: `up` is writing it
    fresh.mkdir()
    stray = runtime.root() / "stray"
    stray.mkdir()
    os.utime(stray, (NOW - 2 * leftovers.STRAY_RUNTIME_S,) * 2)
    states = {"r1": targets.RUNNING, "r2": targets.FINISHED}
    summary = reaper.reap([tmp_path / "results"], now=NOW, run_state=lambda c, r: states[r])
    folders = [f for f in summary["strays"] if f["kind"] == "runtime folder"]
    reasons = {Path(f["where"]).name: f["reason"] for f in folders}
    assert set(reasons) == {"expired", "finished", "removed", "stray"}
    assert reasons["expired"].startswith("expired")
    assert "no longer running" in reasons["finished"]
    assert reasons["removed"] == "its deployment's folder was removed"
    assert [p.name for p in sorted(runtime.root().iterdir())] == ["fresh", "live"]
    assert live.is_dir() and fresh.is_dir() and not expired.exists()
    assert not finished.exists() and not removed.exists() and not stray.exists()
