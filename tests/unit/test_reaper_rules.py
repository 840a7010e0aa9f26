"""The reaper's rules and the tests' seam (faults, stand-ins), without servers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from cachebench import reaper, testing
from cachebench.local import procs

NOW = 1_800_000_000.0


def decide(meta, state=None):
    return reaper._decide(meta, NOW, lambda campaign, run_id: state)


def test_expired_is_reaped_whatever_the_run() -> None:
    meta = {"run_id": "r", "campaign": "c", "expires_at": NOW - 5}
    assert decide(meta, reaper.RUNNING).startswith("expired 5 s ago")


def test_finished_run_is_reaped_before_expiry() -> None:
    meta = {"run_id": "r", "campaign": "c", "expires_at": NOW + 600}
    assert "no longer running" in decide(meta, reaper.FINISHED)


@pytest.mark.parametrize("state", [reaper.RUNNING, None])
def test_running_or_unknown_run_is_spared_until_expiry(state) -> None:
    assert decide({"run_id": "r", "campaign": "c", "expires_at": NOW + 600}, state) is None


def test_run_state_unknown_without_metadata(monkeypatch) -> None:
    """Outside a task and with no reachable metadata DB, the lookup says 'unknown'."""

    def no_db(campaign, run_id):
        raise RuntimeError("no metadata DB")

    monkeypatch.setattr(reaper, "_state_via_db", no_db)
    assert reaper.airflow_run_state("c", "manual__x") is None


def test_deployment_dir_of(tmp_path: Path) -> None:
    root = tmp_path / "results"
    here = root / "c" / "run" / "deployments" / "d1"
    deep = here / "server" / "nodes" / "0001-001"
    assert reaper._deployment_dir_of(str(deep), root) == here
    assert reaper._deployment_dir_of(str(here / "load" / "p" / "rep2"), root) == here
    assert reaper._deployment_dir_of(str(root / "c" / "run"), root) is None
    assert reaper._deployment_dir_of(str(root / "c" / "run" / "points" / "p1"), root) is None
    other = tmp_path / "results2" / "c" / "r" / "deployments" / "d"
    assert reaper._deployment_dir_of(str(other), root) is None


def test_nothing_found_in_an_empty_root(tmp_path: Path) -> None:
    summary = reaper.reap([tmp_path], run_state=lambda c, r: None)
    assert summary["found"] == [] and summary["failed"] == []


def test_fault_rules(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CACHEBENCH_FAULTS", "export@valkey-*, after_apply@*#once")
    assert testing.armed("export", "valkey-9.1-x")
    assert not testing.armed("export", "redis-7.0-x")
    assert not testing.armed("after_apply", "p", None)  # once needs somewhere to remember
    assert testing.armed("after_apply", "p", tmp_path)
    assert not testing.armed("after_apply", "p", tmp_path)  # only the first time
    with pytest.raises(testing.InjectedFault, match="injected fault in export"):
        testing.maybe_fail("export", "valkey-1")
    monkeypatch.delenv("CACHEBENCH_FAULTS")
    testing.maybe_fail("export", "valkey-1")


def test_the_seam_returns_production_pieces_untouched_unless_armed(monkeypatch) -> None:
    from cachebench import targets
    from cachebench.targets import local

    monkeypatch.delenv("CACHEBENCH_FAULTS", raising=False)
    assert targets.get("local") is local.TARGET
    monkeypatch.setenv("CACHEBENCH_FAULTS", "export@x")
    wrapped = targets.get("local")
    assert wrapped is not local.TARGET and wrapped.module == "local"


def test_sweep_ignores_processes_that_are_not_ours(tmp_path: Path) -> None:
    """A shell (or anything else) with its cwd in a deployment folder is never a match."""
    (tmp_path / "deployments" / "d").mkdir(parents=True)
    proc = subprocess.Popen(["sleep", "30"], cwd=tmp_path / "deployments" / "d")
    try:
        time.sleep(0.1)
        assert procs.processes_under(tmp_path) == []
        assert procs.kill_under(tmp_path)["found"] == []
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
