"""The reaper's rules and the tests' fault injection, without servers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import faults as fault_rules
from cachebench import procs, reaper, targets
from cachebench.targets.local import leftovers

NOW = 1_800_000_000.0


def decide(meta, state=None):
    return leftovers.decide(meta, NOW, lambda campaign, run_id: state)


def test_expired_is_reaped_whatever_the_run() -> None:
    meta = {"run_id": "r", "campaign": "c", "expires_at": NOW - 5}
    assert decide(meta, targets.RUNNING).startswith("expired 5 s ago")


def test_finished_run_is_reaped_before_expiry() -> None:
    meta = {"run_id": "r", "campaign": "c", "expires_at": NOW + 600}
    assert "no longer running" in decide(meta, targets.FINISHED)


@pytest.mark.parametrize("state", [targets.RUNNING, None])
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
    assert leftovers._deployment_dir_of(str(deep), root) == here
    assert leftovers._deployment_dir_of(str(here / "load" / "p" / "rep2"), root) == here
    assert leftovers._deployment_dir_of(str(root / "c" / "run"), root) is None
    assert leftovers._deployment_dir_of(str(root / "c" / "run" / "points" / "p1"), root) is None
    other = tmp_path / "results2" / "c" / "r" / "deployments" / "d"
    assert leftovers._deployment_dir_of(str(other), root) is None


def test_nothing_found_in_an_empty_root(tmp_path: Path) -> None:
    summary = reaper.reap([tmp_path], run_state=lambda c, r: None)
    assert summary["found"] == [] and summary["failed"] == []


def test_fault_rules(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CACHEBENCH_FAULTS", "export@valkey-*, after_apply@*#once")
    assert fault_rules.armed("export", "valkey-9.1-x")
    assert not fault_rules.armed("export", "redis-7.0-x")
    assert not fault_rules.armed("after_apply", "p", None)  # once needs somewhere to remember
    assert fault_rules.armed("after_apply", "p", tmp_path)
    assert not fault_rules.armed("after_apply", "p", tmp_path)  # only the first time
    with pytest.raises(fault_rules.InjectedFault, match="injected fault in export"):
        fault_rules.maybe_fail("export", "valkey-1")
    monkeypatch.delenv("CACHEBENCH_FAULTS")
    fault_rules.maybe_fail("export", "valkey-1")


def test_faulty_pieces_are_still_the_production_classes(faults) -> None:
    """The fixture swaps in subclasses: a faulty target still satisfies the protocol."""
    from cachebench import steps, targets
    from cachebench.targets.local.target import LocalTarget
    from cachebench.terraform import Terraform

    faults("export@x")
    target = targets.get("local")
    assert isinstance(target, LocalTarget) and type(target) is not LocalTarget
    assert issubclass(steps.Terraform, Terraform) and steps.Terraform is not Terraform


def test_production_knows_no_test_seam() -> None:
    """No production module imports the tests' code or reads their fault variable."""
    plugins = Path(__file__).resolve().parents[2] / "plugins"
    for path in plugins.rglob("*.py"):
        text = path.read_text()
        assert "CACHEBENCH_FAULTS" not in text, path
        assert "import faults" not in text and "cachebench.testing" not in text, path


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
