"""The history: one row per run in parquet, read with DuckDB, rewritten in place, never
half-written; corrupt and foreign files skipped; regressions against the baseline with
the report's own comparison statistics; trend figures; `python -m cachebench history`.

Campaign runs here are report folders written the way the real steps write them
(test_export_support), reported by the real build_report with a history store.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from test_export_support import make_load, make_point, make_spec, write_point_dir

from cachebench.__main__ import main as cli
from cachebench.campaign import CampaignError, CampaignPlan
from cachebench.history import regression
from cachebench.history.baseline import MedianOfLast
from cachebench.history.fingerprint import differences, major_version
from cachebench.history.since import read_since, update
from cachebench.history.store import FOLDER, LocalStore, read
from cachebench.report import stats
from cachebench.report.build import build_report, collect
from cachebench.steps import validate

ROOT = Path(__file__).resolve().parents[2]
SPEC = make_spec("cache.r7g.large")
SPECS = {(SPEC.target, SPEC.node_type): SPEC}
POINTS = [make_point(0, "valkey"), make_point(1, "redis")]
SPREAD = (0.98, 1.0, 1.02)  # each run's three repetitions around its level


def campaign_run(
    root: Path,
    name: str,
    level: float = 1.0,
    points=POINTS,
    fields: dict | None = None,
    spread: tuple[float, ...] = SPREAD,
) -> Path:
    """A finished campaign run in root/demo/<name>: every point's repetitions at ``level``
    x 100k ops/s x ``spread`` (p99 1 ms / level); ``fields`` go into its campaign spec."""
    run_dir = root / "demo" / name
    for p in points:
        for rep, f in enumerate(spread, start=1):
            load = make_load(100_000 * level * f, p99=f / level)
            write_point_dir(run_dir, p, load, spec=SPEC, rep=rep)
    if fields:
        doc = json.loads((run_dir / "campaign.json").read_text())
        doc["spec"] |= fields
        (run_dir / "campaign.json").write_text(json.dumps(doc))
    return run_dir


def report(run_dir: Path, store: LocalStore, full: bool = False) -> regression.Since:
    """The run into the history and its "Since the baseline", as its report makes them;
    ``full``: the whole report (figures, report.md and .html) with it."""
    if full:
        build_report(run_dir, SPECS, {}, history=store)
        since = read_since(run_dir)
        assert since is not None
        return since
    ok, _, runs = collect(run_dir, SPECS, {})
    return update(run_dir, CampaignPlan.read(run_dir), runs, ok, SPECS, store)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / FOLDER)


def history_sql(store: LocalStore, query: str) -> list[tuple]:
    files = str(store.partition("demo") / "*.parquet")
    return duckdb.sql(query.replace("HISTORY", f"read_parquet('{files}')")).fetchall()


def test_three_runs_give_one_row_per_run_and_a_rewrite_replaces_its_rows(tmp_path, store):
    runs = [campaign_run(tmp_path, f"run{i}") for i in (1, 2, 3)]
    for run_dir in runs:
        report(run_dir, store)
    # DuckDB over the dataset as it lies on disk: one row per run (point x repetition)
    per_run = history_sql(
        store, "SELECT run_slug, point_id, repetition, count(*) FROM HISTORY GROUP BY ALL"
    )
    assert len(per_run) == 3 * 2 * 3 and {n for *_, n in per_run} == {1}
    assert history_sql(store, "SELECT count(DISTINCT run_id) FROM HISTORY") == [(3,)]
    # the same run written again (a cleared run reported again): replaced, not duplicated
    before = history_sql(store, "SELECT min(recorded_at) FROM HISTORY WHERE run_slug = 'run2'")
    report(runs[1], store)
    assert history_sql(store, "SELECT count(*) FROM HISTORY") == [(18,)]
    after = history_sql(store, "SELECT min(recorded_at) FROM HISTORY WHERE run_slug = 'run2'")
    assert after > before
    assert sorted(p.name for p in store.partition("demo").iterdir()) == [
        "run1.parquet",
        "run2.parquet",
        "run3.parquet",
    ]
    # what a row holds: ids, fingerprint, provenance, numbers with intervals, flags, price
    (row,) = history_sql(
        store,
        "SELECT campaign, fingerprint, fingerprint_json, ops_per_sec, ops_ci_low, "
        "point_ops_ci_low, point_p99_ci_high, client_bound, load_cpu_known, cpu_max, "
        "memory_peak_pct, status FROM HISTORY WHERE run_slug = 'run3' AND repetition = 2 "
        "AND point_id = 'p00-valkey-single-large-mixed'",
    )
    assert row[0] == "demo" and len(row[1]) == 16
    assert json.loads(row[2])["node_type"] == "cache.r7g.large"
    assert row[3] == pytest.approx(100_000)
    assert row[4] < row[3] and row[5] < row[3]
    assert row[6] > 1.0 and row[7] is False and row[8] is True
    assert row[9] == pytest.approx(40.0) and row[10] == pytest.approx(30.0)
    assert row[11] == "ok"


WRITER = """
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from cachebench.history.rows import HistoryRow
from cachebench.history.store import LocalStore

now = datetime.now(UTC)
rows = [  # ~100 MB of notes that do not compress: seconds of writing to kill it in
    HistoryRow(campaign="demo", run_id="big", run_slug="big", run_started_at=now,
               recorded_at=now, point_id=f"p{i}", repetition=1, status="ok",
               fingerprint="f" * 16, notes=os.urandom(32_768).hex(), ops_per_sec=float(i))
    for i in range(int(sys.argv[2]))
]
print("writing", flush=True)
LocalStore(Path(sys.argv[1])).write("demo", "big", rows)
"""


def test_a_run_killed_while_writing_leaves_no_partial_row(tmp_path, store):
    for name in ("run1", "run2"):
        report(campaign_run(tmp_path, name), store)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store.root), "1500"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        deadline = time.monotonic() + 60
        partial = []
        while not partial and time.monotonic() < deadline and writer.poll() is None:
            partial = [p for p in store.partition("demo").glob(".big.parquet.*.tmp")]
            partial = [p for p in partial if p.stat().st_size > 0]
        assert partial, "the writer finished before it could be killed mid-write"
        writer.send_signal(signal.SIGKILL)  # mid-write: its file has bytes, no footer yet
        writer.wait(10)
    finally:
        if writer.poll() is None:
            writer.kill()
    assert writer.returncode == -signal.SIGKILL
    assert partial[0].exists()  # the killed writer's bytes are still on disk...
    history = read(store, "demo")  # ...and never show: no row, nothing to skip
    assert {r.run_slug for r in history.rows} == {"run1", "run2"} and not history.skipped
    assert history_sql(store, "SELECT count(DISTINCT run_id) FROM HISTORY") == [(2,)]
    # the next run reports as usual, and the next write of that run clears what was left
    since = report(campaign_run(tmp_path, "run3"), store)
    assert since.earlier_runs == 2 and not since.skipped
    LocalStore(store.root).write("demo", "big", read(store, "demo").rows[:1])
    assert not list(store.partition("demo").glob(".big.parquet.*.tmp"))


def test_corrupt_and_foreign_files_are_named_and_skipped(tmp_path, store):
    report(campaign_run(tmp_path, "run1"), store)
    report(campaign_run(tmp_path, "run2"), store)
    folder = store.partition("demo")
    (folder / "junk.parquet").write_bytes(b"PAR1 not parquet at all")
    duckdb.sql(f"COPY (SELECT 1 AS x) TO '{folder / 'foreign.parquet'}' (FORMAT parquet)")
    moved = folder / "run9.parquet"  # a run's file under another run's name
    moved.write_bytes((folder / "run1.parquet").read_bytes())
    broken = folder / "run2.parquet"  # its footer intact, its data pages not
    data = bytearray(broken.read_bytes())
    data[200:4000] = os.urandom(3800)
    broken.write_bytes(bytes(data))
    since = report(campaign_run(tmp_path, "run3"), store)
    skipped = "\n".join(since.skipped)
    assert "junk.parquet: not a readable parquet file" in skipped
    assert "foreign.parquet: a parquet file, but not one of cachebench's history" in skipped
    assert "run9.parquet: holds rows of demo/run1, not of demo/run9" in skipped
    assert "run2.parquet: unreadable" in skipped
    assert len(since.skipped) == 4
    # the rest is read: run3 is compared with run1, the previous readable run
    assert {p.baseline_runs for p in since.points} == {("run1",)}


def test_a_slowed_run_is_a_regression_and_an_unchanged_one_is_not(tmp_path, store):
    first = report(campaign_run(tmp_path, "run1"), store)
    assert first.earlier_runs == 0 and "this run is the first" in first.headline
    same = report(campaign_run(tmp_path, "run2", level=1.01), store)
    assert same.count("regression") == 0 and same.count("improvement") == 0
    assert same.count("no_significant_change") == 4
    slow = report(campaign_run(tmp_path, "run3", level=0.8), store)
    assert slow.count("regression") == 4  # 2 points x (throughput, p99)
    (p,) = [p for p in slow.points if p.point_id.startswith("p00")]
    tput = next(c for c in p.changes if c.metric == "throughput")
    assert tput.baseline_run == "run2" and tput.verdict == "regression"
    assert tput.sentence.startswith("throughput -20.8% (")
    assert "REGRESSION" in slow.headline
    # the statistics are report/stats.compare's, the baseline's runs as one side
    now = [100_000 * 0.8 * f for f in SPREAD]
    then = [100_000 * 1.01 * f for f in SPREAD]
    expected = stats.compare(
        stats.Side(name="this run", values=tuple(now), client_bound=(False,) * 3),
        stats.Side(name="run run2", values=tuple(then), client_bound=(False,) * 3),
        "throughput",
        5.0,
    )
    assert tput.comparison.ratio == pytest.approx(expected.ratio)
    assert tput.comparison.interval == expected.interval
    assert tput.comparison.verdict == "b_better"
    assert len(slow.comparisons) == 4  # a plain list of stats.Comparison
    assert all(isinstance(c, stats.Comparison) for c in slow.comparisons)


def test_the_decision_figure_has_a_row_per_change_since_the_baseline(tmp_path, store):
    """decisions.json (which the decision figure draws) carries the changes since the
    baseline as their own section: one row per point and metric, the ratio and interval
    of the history's own comparison, its verdict in words; the forest plot draws them."""
    from cachebench.report import plots
    from cachebench.report.decision import Decisions

    report(campaign_run(tmp_path, "run1"), store)
    run3 = campaign_run(tmp_path, "run3", level=0.8)
    since = report(run3, store, full=True)
    decisions = Decisions.read(run3)
    (section,) = [s for s in decisions.sections if s.key == "since_baseline"]
    changes = {(p.point_id, c.metric): c for p in since.points for c in p.changes}
    assert len(section.rows) == len(changes) == 4
    for row in section.rows:
        change = changes[(row.a_point, row.comparison.metric)]
        assert row.comparison == change.comparison and row.verdict_word == "regression"
        assert row.group == f"Since the baseline: {change.metric}" and not row.withheld
    chart = plots.decision_chart(decisions, "since_baseline")
    (panel,) = chart.panels
    drawn = [r for _, group in panel.groups for r in group]
    assert sorted(r.ratio for r in drawn) == sorted(r.comparison.ratio for r in section.rows)
    assert {g for g, _ in panel.groups} == {r.group for r in section.rows}
    assert all(r.word == "regression" for r in drawn)


def test_repetitions_on_one_deployment_are_said_to_leave_out_how_deployments_differ(
    tmp_path, store
):
    """By default a point's repetitions share one deployment: the report's caveats and its
    Since section say the intervals leave out how two deployments differ; with
    redeploy_per_repetition neither does."""
    from cachebench.report.decision import Decisions

    shared = campaign_run(tmp_path, "shared")
    since = report(shared, store, full=True)
    (caveat,) = [c for c in Decisions.read(shared).caveats if c.cause == "one_deployment"]
    assert sorted(caveat.applies_to) == sorted(p.id for p in POINTS)
    md = (shared / "report.md").read_text()
    assert f"> **Caveat:** {caveat.text}" in md
    assert since.one_deployment and "leaves out how far two deployments" in md
    assert "redeploy_per_repetition: true measures it" in (shared / "report.html").read_text()

    fresh = campaign_run(tmp_path, "fresh", fields={"redeploy_per_repetition": True})
    since = report(fresh, store, full=True)
    assert all(c.cause != "one_deployment" for c in Decisions.read(fresh).caveats)
    md = (fresh / "report.md").read_text()
    assert not since.one_deployment and "one deployment" not in md


def test_a_change_within_regression_pct_is_no_significant_change(tmp_path, store):
    narrow = (0.99, 1.0, 1.01)
    report(campaign_run(tmp_path, "run1", spread=narrow), store)
    since = report(campaign_run(tmp_path, "run2", 0.96, spread=narrow), store)  # -4%, certain
    assert since.count("regression") == 0
    sentence = since.points[0].changes[0].sentence
    assert "no significant change (within the 5% threshold (regression_pct))" in sentence
    assert since.points[0].changes[0].comparison.interval.high < 1
    strict = campaign_run(tmp_path, "run3", 0.96**2, fields={"regression_pct": 2}, spread=narrow)
    assert report(strict, store).count("regression") == 4


def test_runs_of_another_configuration_are_not_compared_and_the_report_says_why(tmp_path, store):
    report(campaign_run(tmp_path, "run1"), store)
    longer = [p.model_copy(update={"workload": p.workload.model_copy(
        update={"duration_seconds": 120})}) for p in POINTS]  # fmt: skip
    since = report(campaign_run(tmp_path, "run2", level=0.5, points=longer), store)
    assert since.count("regression") == 0 and not since.comparisons
    for p in since.points:
        assert p.differs == ("workload.duration_seconds: then 60, now 120",)
        assert p.note.startswith("not comparable: workload.duration_seconds")
    assert since.headline.startswith("Nothing compared with the previous run: not comparable")


def test_fingerprint_names_what_differs() -> None:
    from cachebench.history.fingerprint import of_point
    from cachebench.provenance import Host

    local = make_point(0, "valkey", node_type="local.t4g.micro", target="local")
    host = Host(hostname="a", cpu_model="cpu", cores=2, kernel="k1", load_average=(0, 0, 0))
    a = of_point(local, load_tool="redis-benchmark", tool_version="redis-benchmark 7.0.15",
                 host=host)  # fmt: skip
    same = of_point(local, load_tool="redis-benchmark", tool_version="redis-benchmark 7.0.11",
                    host=host.model_copy(update={"kernel": "k2"}))  # fmt: skip
    assert a.digest == same.digest  # a patch release, another kernel: still comparable
    other = of_point(
        local.model_copy(update={"node_type": "local.t4g.small"}),
        load_tool="memtier_benchmark",
        tool_version="memtier_benchmark 2.1.0",
        host=host.model_copy(update={"hostname": "b"}),
    )
    assert differences(a, other) == [
        "node_type: then 'local.t4g.micro', now 'local.t4g.small'",
        "load_tool: then 'redis-benchmark', now 'memtier_benchmark'",
        "load_tool_major: then '7', now '2'",
        "host.hostname: then 'a', now 'b'",
    ]
    assert major_version("v=255.255.255") == "255" and major_version("") == ""


def test_baselines_previous_a_run_id_and_the_median_of_the_last_runs(tmp_path, store):
    levels = {"run1": 1.0, "run2": 0.7, "run3": 1.3, "run4": 0.95}
    for name, level in levels.items():
        report(campaign_run(tmp_path, name, level), store)
    by_id = report(campaign_run(tmp_path, "run5", 1.0, fields={"baseline": "run1"}), store)
    assert {c.baseline_run for c in by_id.changes} == {"run1"}
    assert by_id.count("no_significant_change") == 4
    median = report(
        campaign_run(tmp_path, "run6", 1.0, fields={"baseline": {"median_of_last": 3}}), store
    )
    # the last 3 before run6: run3 (1.3), run4 (0.95), run5 (1.0): the median is run5's
    assert {c.baseline_run for c in median.changes} == {"run5"}
    assert median.baseline == "the median of the last 3 comparable runs"
    missing = report(campaign_run(tmp_path, "run7", 1.0, fields={"baseline": "run99"}), store)
    assert {p.note for p in missing.points} == {"run run99 is not in the history"}


def test_the_report_shows_the_section_its_trend_figure_and_what_it_skipped(tmp_path, store):
    one = POINTS[:1]
    for i, level in enumerate((1.0, 1.02, 0.98), start=1):
        report(campaign_run(tmp_path, f"run{i}", level, points=one), store)
    (store.partition("demo") / "junk.parquet").write_bytes(b"PAR1 junk")
    run_dir = campaign_run(tmp_path, "run4", 0.75, points=one)
    files = build_report(run_dir, SPECS, {}, history=store)
    since = read_since(run_dir)
    assert since is not None and since.count("regression") == 2
    assert since.figures == (
        {
            "title": "Each point over its last runs",
            "name": "trends",
            "png": "figures/trends.png",
            "pdf": "figures/trends.pdf",
        },
    )
    assert files["fig_trends_png"] == str(run_dir / "figures/trends.png")
    assert (run_dir / "figures/trends.png").stat().st_size > 10_000
    assert (run_dir / "figures/trends.pdf").read_bytes().startswith(b"%PDF")
    html = (run_dir / "report.html").read_text()
    assert '<h2 id="since">Since the baseline</h2>' in html
    assert '<img src="figures/trends.png"' in html and 'href="figures/trends.pdf"' in html
    assert "History file skipped:</strong> junk.parquet: not a readable parquet file" in html
    md = (run_dir / "report.md").read_text()
    section = md.split("## Since the baseline", 1)[1].split("\n## ", 1)[0]
    assert f"**{since.headline}**" in section
    assert "regression (beyond the 5% threshold)" in section
    assert "![trends](figures/trends.png) ([PDF](figures/trends.pdf))" in section
    assert "> **History file skipped:** junk.parquet" in section


def test_cli_lists_the_runs_and_compares_two_with_the_reports_verdicts(
    tmp_path, store, monkeypatch, capsys
):
    monkeypatch.setenv("CACHEBENCH_RESULTS", str(tmp_path))
    report(campaign_run(tmp_path, "run1"), store)
    report(campaign_run(tmp_path, "run2", 1.01), store)
    slow = report(campaign_run(tmp_path, "run3", 0.8), store)
    assert cli(["history", "demo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"campaign demo: 3 run(s) in {store.root}"
    assert [line.split()[-1] for line in out[2:]] == ["run1", "run2", "run3"]
    assert all(" 6/6 " in line for line in out[2:])
    assert cli(["history", "demo", "--compare", "run2", "run3"]) == 0
    out = capsys.readouterr().out
    assert slow.headline.replace("the previous run", "run run2") in out
    for change in slow.changes:
        assert change.sentence in out
    assert cli(["history", "demo", "--compare", "run2", "nope"]) == 2
    assert "nope: not a run of demo" in capsys.readouterr().err
    assert cli(["history", "other"]) == 2


def test_campaign_fields_are_checked_before_anything_exists(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CACHEBENCH_RESULTS", str(tmp_path))
    base = yaml_campaign()
    for extra, said in [
        ({"baseline": "two weeks ago"}, "baseline: 'two weeks ago': use 'previous', a run id"),
        ({"baseline": {"median_of_last": 0}}, "'median_of_last: N' with N from 1 to 100"),
        ({"regression_pct": 0}, "regression_pct: 0: Input should be greater than 0"),
        ({"trend_runs": 1}, "trend_runs: 1: Input should be greater than or equal to 2"),
        ({"notify": [{"via": "teams"}]}, "notify[0].via: 'teams': Input should be 'smtp'"),
        ({"notify": [{"via": "smtp"}]}, "notify[0].to: []: smtp needs at least one recipient"),
        (
            {"notify": [{"via": "sns", "topic_arn": "bench"}]},
            "notify[0].topic_arn: 'bench': not an SNS topic ARN",
        ),
        ({"notify": [{"via": "slack", "to": ["a@b.org"]}]}, "notify[0].to: ['a@b.org']: only"),
        (
            {"baseline": "manual__2026-01-01T00:00:00+00:00"},
            "baseline: 'manual__2026-01-01T00:00:00+00:00': no such run in the history of "
            "demo-local",
        ),
    ]:
        with pytest.raises(CampaignError) as err:
            validate({**base, **extra})
        assert said in str(err.value), (extra, str(err.value))
    LocalStore(tmp_path / FOLDER).write("demo-local", "manual-2026-01-01T00-00-00-00-00", [])
    spec, _, _ = validate({**base, "baseline": "manual__2026-01-01T00:00:00+00:00"})
    assert spec.baseline == "manual__2026-01-01T00:00:00+00:00"
    spec, _, _ = validate({**base, "baseline": "median_of_last: 7"})
    assert spec.baseline == MedianOfLast(median_of_last=7)
    # notify: a list of channels, or one channel as a mapping
    spec, _, _ = validate({**base, "notify": {"via": "slack", "events": ["success"]}})
    assert [(c.via, c.connection, c.events) for c in spec.notify] == [
        ("slack", "slack_default", ["success"])
    ]
    assert validate({**base, "notify": None})[0].notify == []


def yaml_campaign() -> dict:
    import yaml

    text = textwrap.dedent("""
        name: demo-local
        engines: ["redis 7.0"]
        topologies: [single]
        node_types: [local.micro]
        workloads: [{name: w, ratio: "1:4", duration_seconds: 2, warmup_seconds: 1}]
        budget_usd: 0
    """)
    return yaml.safe_load(text)


def test_on_aws_the_history_is_in_the_results_bucket(tmp_path, monkeypatch) -> None:
    """The S3 store (a moto server): the same rows, a rewrite replaces them, a foreign
    object is skipped, an object under a deeper key is not the campaign's."""
    import boto3
    from moto.server import ThreadedMotoServer

    from cachebench.history.store import S3Store

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        conn = {"conn_type": "aws", "login": "testing", "password": "testing",
                "extra": {"endpoint_url": url, "region_name": "eu-west-1"}}  # fmt: skip
        monkeypatch.setenv("AIRFLOW_CONN_AWS_HISTORY", json.dumps(conn))
        s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=url,
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
        s3.create_bucket(
            Bucket="results", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
        store = S3Store("results", "cachebench-results/_history", "eu-west-1", "aws_history")
        for name, level in (("run1", 1.0), ("run2", 0.8)):
            since = report(run_dir := campaign_run(tmp_path, name, level), store)
        assert since.where == "s3://results/cachebench-results/_history"
        assert since.count("regression") == 4 and since.points[0].baseline_runs == ("run1",)
        report(run_dir, store)  # run2 written again: replaced
        prefix = "cachebench-results/_history/campaign=demo/"
        s3.put_object(Bucket="results", Key=prefix + "junk.parquet", Body=b"PAR1 junk")
        s3.put_object(Bucket="results", Key=prefix + "old/run0.parquet", Body=b"elsewhere")
        history = read(store, "demo")
        assert len(history.rows) == 2 * 2 * 3 and store.runs("demo") == ["junk", "run1", "run2"]
        assert len(history.skipped) == 1 and history.skipped[0].startswith("junk.parquet: not")
    finally:
        server.stop()
