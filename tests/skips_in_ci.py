"""No silent skips in CI: with CI=true a skipped test fails unless the user opted out.

A test skips when a tool it needs is missing (redis-cli, checkov, a server wheel);
scripts/setup.sh installs all of them, so in CI such a skip means the set-up broke
and the run must say so instead of passing with less tested. An explicit opt-out
(CACHEBENCH_SKIP_DEPLOY=1) gives a reason starting with OPT_OUT and still skips;
deselection (`-m "not deploy"`) never reaches these hooks. Every run with a skip
lists them at the end. tests/conftest.py imports these hooks; the plugin is also
loadable on its own (`-p skips_in_ci`) for its tests. The verdict travels on the report
itself, so under pytest-xdist the controller lists what its workers judged.
"""

from __future__ import annotations

import os

import pytest

OPT_OUT = "opt-out:"
VERDICT = "cachebench_skip"  # on a judged report: (reason, verdict)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def opted_out(variable: str) -> bool:
    """Does the environment variable opt out (CACHEBENCH_SKIP_DEPLOY)? Only for "1" or
    "true" (any case): "0", "false", "" or anything else leave the tests to run."""
    return os.environ.get(variable, "").strip().lower() in ("1", "true")


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ").strip()


def judge(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Record a skip; in CI turn it into a failure unless its reason is an opt-out."""
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = skip_reason(report)
    if reason.startswith(OPT_OUT):
        verdict = "opted out"
    elif in_ci():
        verdict = "FAILED (CI=true)"
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI: {reason}\n(CI=true: a missing tool is a broken set-up, "
            f"see docs/testing.md; only a skip whose reason starts with {OPT_OUT!r} may pass)"
        )
    else:
        verdict = "skipped"
    setattr(report, VERDICT, (reason, verdict))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    judge(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield  # a module-level skip (pytest.importorskip, allow_module_level)
    judge(report)
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    skips = [
        (report.nodeid, *getattr(report, VERDICT))
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, VERDICT, None)
    ]
    if not skips:
        return
    terminalreporter.write_sep("=", f"skips ({len(skips)})", yellow=True)
    for nodeid, reason, verdict in skips:
        terminalreporter.write_line(f"{verdict}: {nodeid}: {reason}")
