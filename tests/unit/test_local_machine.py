"""Machine-wide claims (local/machine.py): port blocks no two deployments of any campaign
on this machine share, and the load lock with a holder others can name."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cachebench.targets.local import claims, machine, miniature

ROOT = Path(__file__).resolve().parents[2]
FIRST = 46200


def owner(folder: Path, expires_at: float = 2e9) -> claims.Owner:
    """The claims' owner of a deployment in folder."""
    sd = folder / "server"
    return claims.Owner(key=miniature.key_of(sd), state_dir=str(sd), expires_at=expires_at)


@pytest.fixture(autouse=True)
def own_machine(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("CACHEBENCH_MACHINE_DIR", str(tmp_path / "machine"))
    monkeypatch.setenv("CACHEBENCH_PORT_FIRST", str(FIRST))
    return tmp_path / "machine"


def test_two_deployments_get_two_blocks_though_every_port_is_free(tmp_path: Path) -> None:
    """The collision of issue 22: two campaigns rendered their first deployment's tfvars
    5 s apart, probed the same free block and both took it."""
    a = machine.claim_ports(owner(tmp_path / "camp1" / "d0"), nodes=1)
    b = machine.claim_ports(owner(tmp_path / "camp2" / "d0"), nodes=1)
    # (ports of the range that other processes of this machine hold are skipped too)
    assert a >= FIRST and b >= a + machine.PORT_BLOCK and (b - FIRST) % machine.PORT_BLOCK == 0
    # a retried render keeps its block; a retried apply reads the same tfvars
    assert machine.claim_ports(owner(tmp_path / "camp1" / "d0"), nodes=1) == a
    assert [c.first for c in machine.PORTS.claims()] == [a, b]


def test_a_bus_port_in_use_or_claimed_keeps_the_block_out(tmp_path: Path) -> None:
    a = machine.claim_ports(owner(tmp_path / "a"), nodes=3)  # a..a+2, bus +10000
    with socket.socket() as s:
        with contextlib.suppress(OSError):  # in use by another process already: as good
            s.bind(("127.0.0.1", a + machine.PORT_BLOCK + 10000))  # the next block's bus port
            s.listen()
        base = machine.claim_ports(owner(tmp_path / "b"), nodes=3)
    assert base >= a + 2 * machine.PORT_BLOCK


def test_released_blocks_are_free_again_but_not_while_a_port_is_in_use(tmp_path: Path) -> None:
    d = owner(tmp_path / "d")
    base = machine.claim_ports(d, nodes=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", base + 1))  # a server destroy did not stop
        s.listen()
        assert machine.release_ports(d.key) is False
        assert [c.owner for c in machine.PORTS.claims()] == [d]
    assert machine.release_ports(d.key) is True and machine.PORTS.claims() == []
    assert machine.release_ports(d.key) is False  # nothing left to give back
    assert machine.claim_ports(owner(tmp_path / "e"), nodes=2) == base  # free again


def test_stale_claims_are_taken_back_once_their_ports_are_free(tmp_path: Path) -> None:
    gone, expired, busy = tmp_path / "gone", tmp_path / "expired", tmp_path / "busy"
    gone_base = machine.claim_ports(owner(gone), nodes=1)
    expired_base = machine.claim_ports(owner(expired, time.time() + 0.5), nodes=1)
    with socket.socket() as s:
        base = machine.claim_ports(owner(busy, time.time() + 0.5), nodes=1)
        s.bind(("127.0.0.1", base))  # an expired claim whose server still runs
        s.listen()
        shutil.rmtree(gone)  # its folder removed (and nothing listens on its port)
        time.sleep(0.6)
        again = machine.claim_ports(owner(tmp_path / "new"), nodes=1)
        assert again == gone_base  # the removed deployment's block
        assert {c.owner.folder.name for c in machine.PORTS.claims()} == {"busy", "new"}
        # the expired claim was dropped too: its block is the next one taken
        assert machine.claim_ports(owner(tmp_path / "new2"), nodes=1) == expired_base


CLAIM = """
import sys
from pathlib import Path
from cachebench.targets.local import claims, machine, miniature
sd = Path(sys.argv[1]) / "server"
owner = claims.Owner(key=miniature.key_of(sd), state_dir=str(sd), expires_at=2e9)
print(machine.claim_ports(owner, nodes=2))
"""


def test_processes_claiming_at_once_never_share_a_block(tmp_path: Path, own_machine) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM, str(tmp_path / f"d{k}")],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for k in range(6)
    ]
    bases = sorted(int(p.communicate(timeout=60)[0]) for p in procs)
    assert len(set(bases)) == 6 and all(
        b - a >= machine.PORT_BLOCK for a, b in itertools.pairwise(bases)
    )
    assert len(list((own_machine / "ports").glob("*.json"))) == 6


HOLD = """
import sys, time
from pathlib import Path
from cachebench.targets.local import claims, machine, miniature
machine.take_load_lock(machine.load_lock(), "run r/rep1")
print("held", flush=True)
time.sleep(60)
"""


def test_the_load_lock_is_machine_wide_and_names_its_holder() -> None:
    assert machine.load_holder() is None
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(BlockingIOError), machine.holding_load("export of d"):
            pass
        said = machine.load_holder()
        assert said is not None and (said["pid"], said["what"]) == (holder.pid, "run r/rep1")
    finally:
        holder.kill()
        holder.wait(10)
    # the kernel dropped the flock with its holder: nothing stale, and the file says nothing
    assert machine.load_holder() is None
    with machine.holding_load("export of d"):
        assert machine.load_holder()["what"] == "export of d"
