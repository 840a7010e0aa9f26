"""The targets' registry: every target found by name is a whole `Target`."""

from __future__ import annotations

import pytest

from cachebench import targets


@pytest.mark.parametrize("name", ["local", "aws"])
def test_each_registered_target_is_a_target(name: str) -> None:
    target = targets.get(name)
    assert isinstance(target, targets.Target)
    assert target.name == name and target.module == name


def test_an_unknown_target_is_not_found() -> None:
    with pytest.raises(KeyError):
        targets.get("gcp")
