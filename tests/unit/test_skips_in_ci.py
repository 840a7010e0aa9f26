"""tests/skips_in_ci.py in a pytest run of its own (pytester): in CI a skip for a missing
tool fails, an opt-out still skips, and the skips are listed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
# the plugin module is already imported by tests/conftest.py: no assertion rewriting to redo
ARGS = ("-p", "skips_in_ci", "-W", "ignore::pytest.PytestAssertRewriteWarning")

SUITE = """
import pytest

@pytest.mark.skipif(True, reason="frobnicator not installed")
def test_needs_a_tool():
    pass

def test_skips_inside():
    pytest.skip("no frobnicator on PATH")

@pytest.fixture
def deployment():
    pytest.skip("opt-out: SKIP_FROB is set")

def test_opted_out(deployment):
    pass

@pytest.mark.xfail(reason="known bug")
def test_known_bug():
    assert False

def test_passes():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_in_ci_a_missing_tool_fails_and_an_opt_out_skips(suite, monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest(*ARGS)
    # the 2 tool skips fail (skipif at setup: an error; pytest.skip in the test: a failure),
    # the opt-out skips, the xfail stays an xfail
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*= skips (3) =*",
            "FAILED (CI=true): test_suite.py::test_needs_a_tool: frobnicator not installed",
            "FAILED (CI=true): test_suite.py::test_skips_inside: no frobnicator on PATH",
            "opted out: test_suite.py::test_opted_out: opt-out: SKIP_FROB is set",
        ]
    )
    result.stdout.fnmatch_lines(["*skipped in CI: frobnicator not installed*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_under_xdist_the_workers_verdicts_are_listed(suite, monkeypatch) -> None:
    """scripts/test.sh runs pytest on workers: the skips judged in them still fail in CI
    and are listed by the controller."""
    tests_dir = Path(__file__).resolve().parents[1]
    monkeypatch.setenv("PYTHONPATH", f"{tests_dir}:{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("CI", "true")
    result = suite.runpytest_subprocess(*ARGS, "-n", "2")
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(
        [
            "*= skips (3) =*",
            "FAILED (CI=true): test_suite.py::test_needs_a_tool: frobnicator not installed",
        ]
    )
    result.stdout.fnmatch_lines(["opted out: test_suite.py::test_opted_out: opt-out:*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize("ci", ["", "false", "1"])
def test_outside_ci_skips_stay_skips_and_are_listed(suite, monkeypatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    result = suite.runpytest(*ARGS)
    result.assert_outcomes(passed=1, skipped=3, xfailed=1)
    result.stdout.fnmatch_lines(
        ["*= skips (3) =*", "skipped: test_suite.py::test_needs_a_tool: frobnicator not installed"]
    )
    assert result.ret == pytest.ExitCode.OK


def test_in_ci_a_module_level_skip_fails(pytester: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(test_mod="import pytest\npytest.importorskip('no_such_module_frob')\n")
    result = pytester.runpytest(*ARGS)
    result.stdout.fnmatch_lines(["FAILED (CI=true): test_mod.py: could not import*"])
    assert result.ret != pytest.ExitCode.OK


@pytest.mark.parametrize(
    ("value", "out"),
    [("1", True), ("true", True), (" TRUE ", True), ("0", False), ("false", False),
     ("", False), ("no", False), ("yes", False)],
)  # fmt: skip
def test_skip_deploy_opts_out_only_for_1_or_true(monkeypatch, value: str, out: bool) -> None:
    from skips_in_ci import opted_out

    monkeypatch.setenv("CACHEBENCH_SKIP_DEPLOY", value)
    assert opted_out("CACHEBENCH_SKIP_DEPLOY") is out
    monkeypatch.delenv("CACHEBENCH_SKIP_DEPLOY")
    assert opted_out("CACHEBENCH_SKIP_DEPLOY") is False
