"""A scheduled campaign remembers: three runs of one local campaign through its DAG
(`dag.test()`, real servers, real Terraform), the third on a server really slowed.

The node type is a miniature written for the test (a catalogue row like
local.t4g.micro's, its server held by a cgroup CPU quota to 0.1 core, so the server, not
the load generator, sets the pace even on a busy 2-core machine). Runs 1 and 2 are
unchanged: run 2 against run 1 names no regression and no improvement beyond the
campaign's regression_pct (set above how far two deployments of this node differ), and
nobody is told. During run 3 the test lowers that server's quota to a quarter of it (1 ms per
40 ms) as soon as its cgroup exists, before the first load: the kernel slows the
server, no number is edited. Run 3's report names the
regression against run 2 with its interval, draws the trend, and its report task e-mails
it to the campaign's channel: a real SMTP server (aiosmtpd) the test starts. DuckDB over
the history then holds one row per run, and `python -m cachebench history` lists the
three runs and compares two with the report's verdicts.
"""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from email import policy
from pathlib import Path

import duckdb
import pytest
from airflow.dag_processing.dagbag import DagBag
from leftovers import assert_nothing_left

from cachebench import catalogue as node_catalogue
from cachebench import pricing
from cachebench.__main__ import main as cli
from cachebench.history.since import read_since
from cachebench.history.store import FOLDER
from cachebench.targets.local import cgroups, miniature
from cachebench.workspace import RunDir

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
NODE_TYPE = "local.kt.hist"
ROW = f"local,{NODE_TYPE},local,2,0.5,10,10,cache.t4g.micro,0.1,100,test: 0.1 core,test row"
# The slowed quota: a quarter of the node type's 0.1 core. A 10 ms period (cgroups.py)
# cannot go under 0.1 core (1 ms, the kernel's floor), so the period is made longer.
SLOW_QUOTA_US, SLOW_PERIOD_US = 1_000, 40_000
SLOW_CORES = SLOW_QUOTA_US / SLOW_PERIOD_US

WORKLOAD = {
    "name": "w", "ratio": "1:4", "value_size": 64, "key_space": 2000, "pipeline": 4,
    "clients": 4, "threads": 1, "warmup_seconds": 1, "duration_seconds": 2,
}  # fmt: skip
CAMPAIGN = {
    "name": "hist",
    "target": "local",
    "engines": [{"engine": "redis", "versions": ["7.0"]}],
    "topologies": [{"cluster_mode": False}],
    "node_types": [NODE_TYPE],
    "workloads": [WORKLOAD],
    # Three runs a side: with two, one noisy baseline leaves Welch a single degree of
    # freedom (t = 12.7) and even the 4x slowdown went unnamed (19,049 and 27,105 ops/s).
    "repetitions": 3,
    # Above how far two deployments of this 0.1-core node differ (p99 by 12% seen in CI:
    # 10.0 and 10.3 ms, then 8.9), which no run's repetitions measure (the report says so);
    # the slowdown is 4x.
    "regression_pct": 25,
    "budget_usd": 0,
    "notify": [{"via": "smtp", "conn_id": "smtp_e2e", "to": ["bench@localhost"]}],
}


@pytest.fixture
def catalogue(tmp_path: Path, monkeypatch) -> None:
    """The catalogue and price table with the test's node type (plan, export and report
    read them in this process)."""
    path = tmp_path / "instance_specs.csv"
    path.write_text(node_catalogue.DEFAULT_SPECS_PATH.read_text() + ROW + "\n")
    prices = tmp_path / "prices.csv"
    prices.write_text(
        pricing.DEFAULT_PRICES_PATH.read_text() + f"redis,local,{NODE_TYPE},0,test row,2026-12-07\n"
    )
    monkeypatch.setattr(node_catalogue, "DEFAULT_SPECS_PATH", path)
    monkeypatch.setattr(pricing, "DEFAULT_PRICES_PATH", prices)


def slow_down(p: miniature.Provisioned, group: cgroups.Group) -> None:
    """The node's CPU quota down to SLOW_CORES: the kernel's files, v1 or v2."""
    if p.hierarchy.version == 2:
        (Path(group.dirs[0]) / "cpu.max").write_text(f"{SLOW_QUOTA_US} {SLOW_PERIOD_US}")
        return
    cpu = p.hierarchy.tree("cpu") / group.name / group.member
    (cpu / "cpu.cfs_quota_us").write_text(str(SLOW_QUOTA_US))
    (cpu / "cpu.cfs_period_us").write_text(str(SLOW_PERIOD_US))


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def inbox(monkeypatch):
    from aiosmtpd.controller import Controller

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = Inbox()
    server = Controller(box, hostname="127.0.0.1", port=port)
    server.start()
    conn = {
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"disable_ssl": True, "disable_tls": True, "from_email": "cachebench@localhost"},
    }  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_E2E", json.dumps(conn))
    try:
        yield box
    finally:
        server.stop()


class Slowdown(threading.Thread):
    """Lowers the CPU quota of every server node of the first miniature deployment that
    appears under ``campaign_dir`` and is not in ``seen``, as soon as its cgroups exist."""

    def __init__(self, campaign_dir: Path, seen: set[Path]) -> None:
        super().__init__(daemon=True)
        self.campaign_dir, self.seen = campaign_dir, seen
        self.done = threading.Event()
        self.stop = threading.Event()
        self.slowed: list[float | None] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for path in self.campaign_dir.glob("*/deployments/*/**/" + miniature.FILE):
                if path in self.seen or (p := miniature.provisioned(path.parent)) is None:
                    continue
                for member, g in p.groups.items():
                    if member != miniature.LOAD:
                        slow_down(p, g)
                        self.slowed.append(cgroups.cpu_limit_cores(p.hierarchy, g))
                self.done.set()
                return
            time.sleep(0.02)


def run_campaign(dag) -> tuple[object, RunDir]:
    dag_run = dag.test(run_conf=CAMPAIGN)
    return dag_run, RunDir.for_run(CAMPAIGN["name"], dag_run.run_id)


def test_a_really_slowed_server_is_a_regression_and_an_unchanged_run_is_not(
    airflow_db, results_dir: Path, catalogue, inbox: Inbox, capsys
) -> None:
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]  # parsed once
    runs, ids = [], []
    try:
        for _ in range(2):
            dag_run, run = run_campaign(dag)
            runs.append(run)
            ids.append(dag_run.run_id)
            assert str(dag_run.state) == "success"
        first, second = (read_since(r.path) for r in runs)
        assert first is not None and second is not None
        assert first.earlier_runs == 0 and "this run is the first" in first.headline
        # unchanged: compared (throughput and p99), neither a regression nor an improvement
        assert len(second.changes) == 2 and second.earlier_runs == 1, second.headline
        assert second.count("regression") == 0 and second.count("improvement") == 0, [
            c.sentence for c in second.changes
        ]
        assert inbox.messages == []  # the channel asked for regressions (and failures) only

        campaign_dir = results_dir / CAMPAIGN["name"]
        slow = Slowdown(campaign_dir, set(campaign_dir.glob("*/deployments/*/**/miniature.json")))
        slow.start()
        try:
            dag_run, run = run_campaign(dag)
        finally:
            slow.stop.set()
            slow.join(5)
        runs.append(run)
        ids.append(dag_run.run_id)
        assert slow.done.is_set() and slow.slowed == [SLOW_CORES], slow.slowed
        assert str(dag_run.state) == "success"  # a regression is news, not a failed run
        third = read_since(run.path)
        assert third is not None
        tput = next(c for c in third.changes if c.metric == "throughput")
        assert tput.verdict == "regression", tput.sentence
        assert tput.baseline_run == ids[1]
        assert tput.comparison.ratio < 0.6, tput.sentence  # a quarter of the CPU
        assert tput.comparison.interval.high < 0.95
        report = (run.path / "report.md").read_text()
        section = report.split("## Since the baseline", 1)[1]
        assert "REGRESSION" in section and tput.sentence in section
        assert third.one_deployment and "leaves out how far two deployments" in section
        assert (run.path / "figures" / "trends.png").stat().st_size > 10_000
        assert (run.path / "figures" / "trends.pdf").read_bytes().startswith(b"%PDF")
        # the report task told the campaign's channel
        (msg,) = inbox.messages
        assert msg["Subject"] == "[cachebench] hist: REGRESSION"
        body = next(p for p in msg.walk() if p.get_content_type() == "text/html").get_content()
        assert "REGRESSION: " in body and str(run.path / "report.html") in body
        (sent,) = json.loads((run.path / "notifications.json").read_text())
        assert sent["ok"] and sent["events"] == ["regression"]

        # the history: one row per run (point x repetition), three campaign runs
        files = str(results_dir / FOLDER / "campaign=hist" / "*.parquet")
        rows = duckdb.sql(
            f"SELECT run_slug, repetition, count(*) FROM read_parquet('{files}') GROUP BY ALL"
        ).fetchall()
        assert sorted((s, k, n) for s, k, n in rows) == sorted(
            (r.path.name, k, 1) for r in runs for k in (1, 2, 3)
        )
        # the CLI lists them and compares two with the same verdicts as the report
        capsys.readouterr()
        assert cli(["history", "hist"]) == 0
        listed = capsys.readouterr().out
        lines = listed.splitlines()
        assert lines[0].startswith("campaign hist: 3 run(s) in "), listed
        assert [ln.split()[-1] for ln in lines[2:]] == ids
        assert all(" 3/3 " in ln for ln in lines[2:]), listed
        assert cli(["history", "hist", "--compare", ids[1], runs[2].path.name]) == 0
        compared = capsys.readouterr().out
        assert tput.sentence in compared
        with capsys.disabled():  # the numbers behind the verdicts, for whoever reads the log
            for name, since in (("unchanged", second), ("slowed", third)):
                print(f"\n{name}: " + " ".join(c.sentence for c in since.changes))
    finally:
        for r in runs:
            assert_nothing_left(r.path)
