"""Campaign report: summary, figures, md/html, decision sentences, failed points."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from test_export_support import (
    CLUSTER3,
    make_load,
    make_point,
    make_price,
    make_spec,
    write_failed_dir,
    write_point_dir,
)

from cachebench.report.build import LOCAL_CAVEAT, build_report

LARGE = make_spec("cache.r7g.large", baseline=0.937, burst=12.5, vcpu=2)
XLARGE = make_spec("cache.r7g.xlarge", baseline=1.876, burst=12.5, vcpu=4, memory_gib=26.32)
SPECS = {(s.target, s.node_type): s for s in (LARGE, XLARGE)}
# One price for both engines, so these tests see only the measured differences.
PRICES = {
    (engine, node_type): make_price(usd)
    for engine in ("redis", "valkey")
    for node_type, usd in (("cache.r7g.large", 0.252), ("cache.r7g.xlarge", 0.504))
}
FIGURES = ("decision", "throughput", "latency", "ops_per_dollar", "cpu", "network", "memory")
# Every point's three runs: its value x 0.99, x 1 and x 1.01. Two points then differ by
# exactly their ratio, and the ratio's interval is, by hand (Welch on the logs, equal
# spreads, 3 + 3 runs: df 4): ratio x exp(+-q x s x sqrt(2 / 3)), s the sd of ln 0.99,
# ln 1, ln 1.01, q = t(1 - 0.0473 / 2, 4): a verdict at 3 + 3 runs needs the 95.3% interval
# (stats.verdict_alpha(3, 3) = 0.0473, whose false-winner rate test_stats.py checks).
SPREAD = (0.99, 1.0, 1.01)
Q4 = 2.8309  # t(1 - 0.0473 / 2, 4)
_LN = [math.log(f) for f in SPREAD]
_S = math.sqrt(sum((x - sum(_LN) / 3) ** 2 for x in _LN) / 2)
HALF = Q4 * _S * math.sqrt(2 / 3)


def span(ratio: float) -> str:
    """'+17.3% to +22.7%' for a ratio of two such points."""
    lo, hi = ratio * math.exp(-HALF), ratio * math.exp(HALF)
    return f"{100 * (lo - 1):+.1f}% to {100 * (hi - 1):+.1f}%"


def write_runs(run_dir, point, ops, p99, spec, figures=False):
    for rep, f in enumerate(SPREAD, start=1):
        load = make_load(ops * f, p99=p99 * f)
        write_point_dir(run_dir, point, load, spec=spec, figures=figures, rep=rep)


def _campaign(run_dir, figures=False):
    """Valkey vs Redis, single vs c3r1, large vs xlarge, 3 runs each; one failed point."""
    cases = [
        (make_point(0, "redis"), 100_000, 1.0),
        (make_point(1, "valkey"), 120_000, 0.8),
        (make_point(2, "valkey", topology=CLUSTER3), 300_000, 0.9),
        (make_point(3, "valkey", node_type="cache.r7g.xlarge"), 180_000, 0.7),
    ]
    for point, ops, p99 in cases:
        write_runs(run_dir, point, ops, p99, SPECS[(point.target, point.node_type)], figures)
    write_failed_dir(run_dir, make_point(4, "redis", topology=CLUSTER3), "apply: quota <exceeded>")
    return cases


def _md(run_dir):
    return (run_dir / "report.md").read_text()


@dataclass(frozen=True)
class Built:
    """A report built once for the tests that only read it: its run folder, what
    build_report returned, and every chart it saved as (chart, folder, name)."""

    run_dir: Path
    paths: dict[str, str]
    drawn: list[tuple[Any, Path, str]]


def _build(run_dir: Path) -> Built:
    from cachebench.report import plots

    drawn = []
    save = plots.save
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save", lambda c, d, n: drawn.append((c, d, n)) or save(c, d, n))
        paths = build_report(run_dir, SPECS, PRICES)
    return Built(run_dir, paths, drawn)


# A whole report with its figures is about 8 CPU-s: the tests that read _campaign's (or
# _bound_campaign's) report without changing it share one (tests/conftest.py keeps this
# module on one worker, so it is built once).
@pytest.fixture(scope="module")
def campaign_report(tmp_path_factory) -> Built:
    run_dir = tmp_path_factory.mktemp("campaign")
    _campaign(run_dir)
    return _build(run_dir)


@pytest.fixture(scope="module")
def bound_report(tmp_path_factory) -> Built:
    run_dir = tmp_path_factory.mktemp("bound")
    _bound_campaign(run_dir)
    return _build(run_dir)


def test_decision_names_winners_with_their_intervals(campaign_report):
    run_dir, paths = campaign_report.run_dir, campaign_report.paths
    md = _md(run_dir)
    assert abs(HALF - 0.02311) < 1e-4  # the hand calculation above, as a number
    large, xlarge = (
        "valkey 8.0, single, cache.r7g.large, mixed",
        "valkey 8.0, single, cache.r7g.xlarge, mixed",
    )
    cluster, redis = (
        "valkey 8.0, c3r1, cache.r7g.large, mixed",
        "redis 7.1, single, cache.r7g.large, mixed",
    )
    assert f"Best throughput: {cluster}, 300,000 ops/s" in md
    assert f"{cluster} vs {xlarge}, throughput: {cluster} wins, +66.7% ({span(300 / 180)}" in md
    assert f"Best p99 latency: {xlarge}, 0.700 ms" in md
    assert f"{xlarge} vs {large}, p99 latency: {xlarge} wins, -12.5% ({span(0.7 / 0.8)}" in md
    # ops/$: large valkey 120k / $0.252 beats large redis 100k / $0.252, xlarge 180k / $0.504
    # and c3r1 300k / (6 x $0.252)
    assert f"{large} vs {redis}, ops per dollar: {large} wins, +20.0% ({span(1.2)}" in md
    assert (
        f"Valkey 8.0 vs Redis 7.1: throughput: Valkey 8.0 wins, +20.0% ({span(1.2)}, 95.3% "
        f"interval); p99 latency: Valkey 8.0 wins, -20.0% ({span(0.8)}, 95.3% interval)"
    ) in md
    assert "Valkey vs Redis (1 matched pair, 3 comparisons): Valkey better in 3." in md
    assert f"c3r1 (6 nodes) wins, +150.0% ({span(2.5)}" in md
    assert f"cache.r7g.xlarge wins, +50.0% ({span(1.5)}" in md
    assert "price 2.00x ($0.504 vs $0.252/h)" in md
    assert "How to read this:" in md and "Welch" in md
    assert "comparisons with an interval" in md
    assert LOCAL_CAVEAT not in md
    assert {f"fig_{n}_{e}" for n in FIGURES for e in ("png", "pdf")} <= set(paths)
    runs = pd.read_csv(run_dir / "runs.csv")
    assert len(runs) == 13 and (runs["status"] == "ok").sum() == 12


def test_a_real_a_a_pair_is_no_significant_difference(tmp_path):
    """Item 7: an A/A pair of the report: two points of one configuration whose three runs
    each are drawn independently from the same distribution (throughput CV 3%, p99 CV
    8%, seed 5), not the same values reordered. The report names no winner and gives the
    interval worked out by hand from the drawn values."""
    rng = np.random.default_rng(5)
    drawn = {}
    for i, engine in enumerate(("redis", "valkey")):
        point = make_point(i, engine)
        ops = 100_000 * np.exp(rng.normal(0, 0.03, 3))
        p99 = 1.0 * np.exp(rng.normal(0, 0.08, 3))
        drawn[engine] = (ops, p99)
        for rep, (o, p) in enumerate(zip(ops, p99, strict=True), start=1):
            write_point_dir(tmp_path, point, make_load(o, p99=p), spec=LARGE, rep=rep)
    build_report(tmp_path, SPECS, PRICES)
    md = _md(tmp_path)
    for metric, k in (("throughput", 0), ("p99 latency", 1)):
        la, lb = np.log(drawn["valkey"][k]), np.log(drawn["redis"][k])
        assert la.mean() != lb.mean()  # not a permutation: a real A/A
        va, vb = la.var(ddof=1) / 3, lb.var(ddof=1) / 3
        df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
        half = sps.t.ppf(1 - 0.0473 / 2, df) * math.sqrt(va + vb)  # the 95.3% interval
        d = la.mean() - lb.mean()
        assert d - half < 0 < d + half
        lo, hi = 100 * math.expm1(d - half), 100 * math.expm1(d + half)
        assert (
            f"{metric}: no significant difference ({lo:+.1f}% to {hi:+.1f}%, 95.3% interval): "
            "its interval includes no change"
        ) in md
    assert "Valkey vs Redis (1 matched pair, 3 comparisons): no significant difference in 3." in md
    assert " wins" not in md


def test_a_point_with_one_run_gets_no_verdict(tmp_path):
    write_runs(tmp_path, make_point(0, "redis"), 100_000, 1.0, LARGE)
    write_point_dir(tmp_path, make_point(1, "valkey"), make_load(150_000), spec=LARGE)
    build_report(tmp_path, SPECS, PRICES)
    md = _md(tmp_path)
    assert "not enough data for a verdict (Valkey 8.0 has 1 run; need 2)" in md
    assert " wins" not in md and "one run: no interval" in md


def test_summary_lists_results_and_failed_points(campaign_report):
    run_dir = campaign_report.run_dir
    summary = pd.read_csv(run_dir / "summary.csv")
    assert list(summary["status"]) == ["ok"] * 4 + ["failed"]
    failed = summary[summary["status"] == "failed"].iloc[0]
    assert failed["reason"] == "apply: quota <exceeded>" and failed["engine"] == "redis"
    ok = summary[summary["status"] == "ok"].set_index("index")
    assert ok.loc[2, "nodes"] == 6 and ok.loc[2, "cluster_usd_hour"] == pytest.approx(6 * 0.252)
    assert ok.loc[1, "ops_per_dollar"] == pytest.approx(120_000 * 3600 / 0.252)
    assert list(ok["reads_from"]) == ["primary"] * 4
    md = _md(run_dir)
    assert "| reads from |" in md and "| primary |" in md
    assert "4 point(s) with a result, 1 without" in md
    assert "| p04-redis-c3r1-large-mixed | apply: quota <exceeded> |" in md
    html = (run_dir / "report.html").read_text()
    assert "apply: quota &lt;exceeded&gt;" in html


def test_files_exist_and_html_references_existing_files(tmp_path):
    _campaign(tmp_path, figures=True)
    paths = build_report(tmp_path, SPECS, PRICES)
    for key in ("summary_csv", "report_md", "report_html"):
        assert (tmp_path / paths[key].split("/")[-1]).is_file()
    for name in FIGURES:
        assert (tmp_path / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / "figures" / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    html = (tmp_path / "report.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    imgs = re.findall(r'<img src="([^"]+)"', html)
    scripts = re.findall(r'<script src="([^"]+)"', html)
    assert {f"figures/{n}.png" for n in FIGURES} == set(imgs)
    assert scripts == ["figures/plotly.min.js"]  # one local copy, no CDN
    # one workload ("mixed") of 4 points x 3 runs: throughput, p99, CPU, network in and out
    charts = re.findall(r'class="explore-chart" data-chart="(\w+)" data-traces="(\d+)"', html)
    assert charts == [(k, "12") for k in ("throughput", "p99", "cpu", "net_in", "net_out")]
    assert re.findall(r'<table class="sortable" id="(\w+)"', html) == ["results", "failed", "runs"]
    assert any(r.startswith("points/") and r.endswith("/figures/dashboard.png") for r in refs)
    for ref in refs:
        assert (tmp_path / ref).is_file(), ref
    for ref in re.findall(r"\]\(([^)]+)\)", _md(tmp_path)):
        assert (tmp_path / ref).is_file(), ref


def test_one_point(tmp_path):
    write_point_dir(tmp_path, make_point(0, "valkey"), make_load(50_000), spec=LARGE)
    build_report(tmp_path, SPECS, PRICES)
    md = _md(tmp_path)
    assert "1 point(s) with a result, 0 without" in md
    assert "50,000 ops/s, 1 run (no other point to compare)" in md
    assert "No pair of points differs only by engine." in md
    assert (tmp_path / "figures" / "throughput.png").is_file()


def test_nothing_finished(tmp_path):
    write_failed_dir(tmp_path, make_point(0, "redis"), "load: connection refused\nTraceback...")
    write_failed_dir(tmp_path, make_point(1, "valkey"), None)
    paths = build_report(tmp_path, {})
    md = _md(tmp_path)
    assert "No point finished, so there is nothing to compare." in md
    assert "Nothing finished: no point produced a result." in md
    assert "load: connection refused Traceback..." in md
    assert "no result (the run never finished)" in md
    assert not any(k.startswith("fig_") for k in paths)
    html = (tmp_path / "report.html").read_text()
    assert "<img" not in html and "<script src" not in html and "Explore the runs" not in html
    assert list(pd.read_csv(tmp_path / "summary.csv")["status"]) == ["failed", "failed"]


def test_no_points_directory(tmp_path):
    paths = build_report(tmp_path, {})
    assert "0 point(s) with a result, 0 without" in _md(tmp_path)
    assert (tmp_path / "report.html").is_file() and (tmp_path / "summary.csv").is_file()
    assert set(paths) == {"summary_csv", "runs_csv", "decisions_json", "report_md", "report_html"}


def test_unreadable_result_is_a_failed_point(tmp_path):
    write_point_dir(tmp_path, make_point(0, "redis"), make_load(), spec=LARGE)
    bad = write_point_dir(tmp_path, make_point(1, "valkey"), make_load(), spec=LARGE)
    (bad / "metrics.parquet").write_bytes(b"not parquet")
    build_report(tmp_path, SPECS, PRICES)
    md = _md(tmp_path)
    assert "1 point(s) with a result, 1 without" in md
    assert "| p01-valkey-single-large-mixed | unreadable result:" in md


def test_local_target_caveat(tmp_path):
    local = make_spec("local-2cpu", target="local", baseline=None, burst=None)
    for i, engine in enumerate(("redis", "valkey")):
        point = make_point(i, engine, node_type="local-2cpu", target="local")
        write_runs(tmp_path, point, 90_000 + i * 10_000, 1.0, local)
    build_report(tmp_path, {("local", "local-2cpu"): local})
    md = _md(tmp_path)
    assert LOCAL_CAVEAT in md
    assert "ops per dollar" not in md.split("## Decision")[1].split("## Figures")[0]  # no price
    assert f"throughput: Valkey 8.0 wins, +11.1% ({span(100 / 90)}" in md


def test_fifty_points(tmp_path):
    engines, topologies = ("redis", "valkey"), (None, CLUSTER3)
    types = ("cache.r7g.large", "cache.r7g.xlarge")
    i = 0
    for wl in (
        "mixed",
        "read-heavy",
        "write-heavy",
        "big-values",
        "pipelined",
        "zipf",
        "tiny",
    ):
        for engine in engines:
            for topo in topologies:
                for nt in types:
                    if i == 50:
                        break
                    point = make_point(
                        i,
                        engine,
                        topology=topo or make_point().topology,
                        node_type=nt,
                        workload=wl,
                    )
                    ops = 100_000 * (1.1 if engine == "valkey" else 1) * (2 if topo else 1)
                    write_point_dir(tmp_path, point, make_load(ops + i), spec=SPECS[("aws", nt)])
                    i += 1
    build_report(tmp_path, SPECS, PRICES)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 50 and (summary["status"] == "ok").all()
    md = _md(tmp_path)
    # one run each: nothing can be told apart, and the report says so for every pair
    assert "Valkey vs Redis (24 matched pairs, 72 comparisons): not enough data in 72." in md
    assert "[zipf] Highest mean throughput:" in md and " wins" not in md
    assert "[zipf] Best throughput" not in md  # one run each: no best can be named


def test_runs_table_reason_joins_the_error_the_flags_and_the_earlier_attempts(tmp_path):
    """A run's reason in the runs table: why it failed, what flags doubt its numbers
    (load.json's flags), and what became of its earlier attempts (its record), each said;
    a flagged run is also a caveat and counted in its point's flags."""
    from cachebench.models import RunRecord
    from cachebench.workspace import RunDir

    point = make_point(0, "valkey")
    flag = "start skew 6.0 s: the 3 load generators were all in their measured window"
    for rep, f in enumerate(SPREAD, start=1):
        load = make_load(100_000 * f).model_copy(update={"flags": [flag] if rep == 2 else []})
        write_point_dir(tmp_path, point, load, spec=LARGE, rep=rep)
    record = RunDir(tmp_path).deployment(point.deployment_id).record(point.id, 2)
    record.parent.mkdir(parents=True, exist_ok=True)
    lost = "attempt 1: collect: LoadError: g1 killed by SIGKILL"
    record.write_text(
        RunRecord(status="done", attempt=2, started_at=0, earlier=[lost]).model_dump_json()
    )
    write_failed_dir(tmp_path, make_point(1, "redis"), "apply: quota <exceeded>")
    build_report(tmp_path, SPECS, PRICES)
    html = (tmp_path / "report.html").read_text()
    runs = html[html.index('id="runs"') :]
    assert f"{flag}; measured again after {lost}" in runs
    assert "apply: quota &lt;exceeded&gt;" in runs
    md = _md(tmp_path)
    assert f"run {point.id} rep 2 is flagged: {flag}." in md
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert summary.loc[summary.point_id == point.id, "flagged_runs"].item() == 1


def _bound_campaign(run_dir):
    """_campaign, and a Redis xlarge point whose second run was client-bound (its load
    generator at 95% of its core)."""
    cases = _campaign(run_dir)
    point = make_point(5, "redis", node_type="cache.r7g.xlarge")
    for rep, f in enumerate(SPREAD, start=1):
        load = make_load(150_000 * f, p99=0.75 * f)
        write_point_dir(
            run_dir, point, load, spec=XLARGE, rep=rep, cpu_pct=95.0 if rep == 2 else 30
        )
    return cases


def test_every_summary_figures_interval_ends_are_summary_csvs(bound_report):
    """Throughput, latency percentiles and ops per dollar: each bar's whisker as matplotlib
    draws it ends where summary.csv's 95% interval does; a point with client-bound runs
    is hatched; each bar in its configuration's colour, as decisions.json gives it."""
    from matplotlib.collections import LineCollection, PolyCollection

    from cachebench.report import chart
    from cachebench.report.decision import Decisions
    from cachebench.report.palette import configuration

    run_dir, drawn = bound_report.run_dir, {}
    for c, _, n in bound_report.drawn:
        drawn.setdefault(n, c)
    summary = pd.read_csv(run_dir / "summary.csv")
    ok = summary[summary["status"] == "ok"].reset_index(drop=True)
    assert list(ok["client_bound_runs"]) == [0, 0, 0, 0, 1]
    colours = Decisions.read(run_dir).colours()
    for name, prefixes in (
        ("throughput", ["ops"]),
        ("latency", ["p50", "p90", "p99", "p999"]),
        ("ops_per_dollar", ["opd"]),
    ):
        (panel,) = drawn[name].panels
        scale = 1e6 if name == "ops_per_dollar" else 1  # drawn in millions of ops per $
        assert panel.bar_colours == [colours[configuration(r)] for _, r in ok.iterrows()]
        assert all(
            lab.endswith(f"({n} runs)") for lab, n in zip(panel.labels, ok["runs_ok"], strict=True)
        ), panel.labels
        (ax,) = chart.figure(drawn[name]).axes
        whiskers = sorted(
            (seg[0, 1], seg[:, 0].min(), seg[:, 0].max())
            for coll in ax.collections
            if isinstance(coll, LineCollection)
            for seg in coll.get_segments()
        )
        want = [
            (ok.loc[i, f"{p}_ci_low"] / scale, ok.loc[i, f"{p}_ci_high"] / scale)
            for i in range(len(ok))
            for p in prefixes
        ]
        assert len(whiskers) == len(want) == len(ok) * len(prefixes), name
        for (_, low, high), (w_low, w_high) in zip(whiskers, want, strict=True):
            assert (low, high) == pytest.approx((w_low, w_high), rel=1e-9), name
        hatched = {
            round(v[:, 1].mean())
            for coll in ax.collections
            if isinstance(coll, PolyCollection) and coll.get_hatch()
            for v in (p.vertices for p in coll.get_paths())
        }
        assert hatched == {4}, name  # the client-bound point's bars, and only they


def test_caveats_one_per_cause_naming_every_point(campaign_report):
    """_campaign's three AWS points that ran above their baseline share one caveat; its
    four measured points, each on one deployment, another."""
    run_dir = campaign_report.run_dir
    md = _md(run_dir)
    caveat, shared = [ln for ln in md.splitlines() if ln.startswith("> **Caveat:**")]
    assert "3 point(s) ran above the node type's network baseline" in caveat
    assert "Each point's repetitions ran on one deployment" in shared
    for pid in ("p00-redis-single-large-mixed", "p01-valkey-single-large-mixed",
                "p02-valkey-c3r1-large-mixed"):  # fmt: skip
        assert pid in caveat
    from cachebench.report.decision import Decisions

    c, one = Decisions.read(run_dir).caveats
    assert c.cause == "above_baseline" and len(c.applies_to) == 3
    assert one.cause == "one_deployment" and len(one.applies_to) == 4  # the 4 with results


def test_caveats_group_local_points_errors_and_exhausted_allowances():
    from cachebench.report.build import caveats
    from cachebench.report.decision import Caveat

    ok = pd.DataFrame(
        {
            "point_id": [f"p{i}" for i in range(5)],
            "target": ["local"] * 5,
            "node_type": ["local-2cpu"] * 5,
            "errors": [0, 3, 0, 2, 0],
            "seconds_above_baseline": [0] * 5,
            "allowance_first_exceeded_s": [None, 12.0, None, 40.0, 7.0],
        }
    )
    extra = Caveat(cause="oversubscribed", text="...", applies_to=("d1", "d2"))
    got = caveats(ok, {}, extra, None)
    assert [c.cause for c in got] == ["local", "oversubscribed", "errors", "allowance"]
    by = {c.cause: c for c in got}
    assert by["local"].applies_to == tuple(ok["point_id"]) and by["local"].text == LOCAL_CAVEAT
    assert by["errors"].applies_to == ("p1", "p3") and "2 point(s) had request errors" in (
        by["errors"].text
    )
    assert by["allowance"].applies_to == ("p1", "p3", "p4")
    assert "p1: 12 s in; p3: 40 s in; p4: 7 s in." in by["allowance"].text


def test_summary_first_blog_snippets_and_the_clis_headlines(bound_report, tmp_path):
    from cachebench import progress
    from cachebench.report.decision import Decisions

    paths = bound_report.paths
    # a copy: the end of this test overwrites report.md
    run_dir = Path(shutil.copytree(bound_report.run_dir, tmp_path / "run"))
    md = _md(run_dir)
    # the one-screen summary comes before the decision figure, the caveats and the details
    order = [md.index(s) for s in ("## At a glance", "figures/decision.png", "> **Caveat:**",
                                   "## Decision")]  # fmt: skip
    assert order == sorted(order)
    glance = md.split("## At a glance", 1)[1].split("\n\n", 2)[1]
    assert glance.startswith("| question | compared | answer | by how much | interval |")
    assert (
        "| Redis or Valkey? | Valkey 8.0 vs Redis 7.1, throughput, single, cache.r7g.large | "
        f"**Valkey 8.0** | 20.0% more throughput than Redis 7.1 | {span(1.2)}, 95.3% interval |"
    ) in glance
    # the client-bound xlarge Redis: no answer, and why in plain words
    bound = next(ln for ln in glance.splitlines() if "cache.r7g.xlarge vs cache.r7g.large" in ln
                 and "redis" in ln.lower() and "throughput" in ln)  # fmt: skip
    assert "**no answer**" in bound and "the load generator, not the server" in bound
    d = Decisions.read(run_dir)
    assert paths["decisions_json"] == str(bound_report.run_dir / "decisions.json")
    # a blog snippet per question with a comparison: its figure and a caption with intervals
    keys = [s.key for s in d.sections if s.rows and s.answers]
    assert keys == ["best", "engine", "topology", "node_size"]
    for s in d.sections:
        if s.key not in keys:
            continue
        text = (run_dir / "blog" / f"{s.key}.md").read_text()
        assert text.startswith(f"![{s.title}]({s.key}.png)\n\n*{s.title}: ")
        assert (run_dir / "blog" / f"{s.key}.png").read_bytes()[:4] == b"\x89PNG"
        assert (run_dir / "blog" / f"{s.key}.pdf").read_bytes()[:5] == b"%PDF-"
        for a in s.answers[:4]:
            assert a.subject in text and (a.interval in text if a.interval else True)
    assert f"{span(1.2)}, 95.3% interval" in (run_dir / "blog" / "engine.md").read_text()
    # the CLI's headlines are the decisions' (no regex over report.md)
    (run_dir / "report.md").write_text("not a report")
    assert progress.headlines(run_dir) == [(s.title, s.headline) for s in d.sections]
    assert progress.headlines(run_dir / "nowhere") == []


def test_a_configuration_keeps_its_colour_in_the_dashboards_bars_and_explorer(
    campaign_report,
):
    """The report draws each run's dashboard in its configuration's colour (its throughput
    line, and its nodes in shades of it), the same as its bars and its explorable traces;
    the colours are Okabe-Ito's, one per configuration."""
    from cachebench.report import palette, plots
    from cachebench.report.decision import Decisions

    # _campaign has figures=False: the report draws the dashboards
    run_dir, drawn = campaign_report.run_dir, campaign_report.drawn
    d = Decisions.read(run_dir)
    colours = d.colours()
    assert list(colours.values()) == list(palette.CONFIGURATION_COLOURS[: len(colours)])
    by_point = {p: c.colour for c in d.configurations for p in c.points}
    dashboards = [(c, Path(out)) for c, out, n in drawn if n == plots.POINT_FIGURE]
    assert len(dashboards) == 12  # 4 points x 3 runs
    for c, out in dashboards:
        point = out.parent.parent.name  # points/<point>/rep<k>/figures
        ops = c.panels[0]
        assert [ln.colour for ln in ops.lines] == [by_point[point]], point
    (bars,) = next(c for c, _, n in drawn if n == "throughput").panels
    summary = pd.read_csv(run_dir / "summary.csv")
    ok = summary[summary["status"] == "ok"]
    assert bars.bar_colours == [by_point[p] for p in ok["point_id"]]
    html = (run_dir / "report.html").read_text()
    for point, colour in by_point.items():
        if point in set(ok["point_id"]):
            assert f'"color":"{colour}"' in html.replace(" ", ""), point
