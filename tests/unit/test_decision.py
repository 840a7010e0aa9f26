"""The decision sections (report/decision.py) on hand-built summary.csv / runs.csv.

Every point's runs are written here as CSV text, read back as the report reads its own
files, and the sentences are checked against values worked out by hand from them.
"""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
from test_export_support import make_load, make_point, write_point_dir

from cachebench.models import Workload
from cachebench.report.build import CPU_UNKNOWN, build_report, run_evidence
from cachebench.report.decision import decide

# Two points on one node type, differing only by engine (one matched pair).
SUMMARY = """\
point_id,target,engine,version,topology,cluster_mode,nodes,node_type,workload,load_generators,\
vcpu,memory_gib,price_usd_hour_node,cluster_usd_hour,ops_per_dollar
redis,aws,redis,7.1,single,False,1,cache.r7g.large,mixed,1,2,13.07,0.252,0.252,{opd_r}
valkey,aws,valkey,8.0,single,False,1,cache.r7g.large,mixed,1,2,13.07,0.252,0.252,{opd_v}
"""
RUNS_HEAD = (
    "point_id,repetition,status,engine,version,topology,node_type,workload,ops_per_sec,p99_ms,"
    "ops_per_dollar,client_bound,client_bound_reason,load_cpu_known\n"
)
PRICE = 0.252  # $/hour of either point: ops per dollar = ops/s x 3600 / 0.252
ENGINE = {"redis": ("redis", "7.1"), "valkey": ("valkey", "8.0")}
BOUND = (
    "client-bound: measures the load generator, not the server (load generator CPU p95 91% >= 85%)"
)


def run_line(point: str, rep: int, ops: float, p99: float, bound: str = "", cpu: bool = True):
    engine, version = ENGINE[point]
    opd = ops * 3600 / PRICE
    return (
        f"{point},{rep},ok,{engine},{version},single,cache.r7g.large,mixed,{ops},{p99},{opd},"
        f'{bool(bound)},"{bound}",{cpu}\n'
    )


def frames(lines: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    runs = pd.read_csv(io.StringIO(RUNS_HEAD + "".join(lines)))
    opd = runs.groupby("point_id")["ops_per_dollar"].mean()
    summary = SUMMARY.format(opd_r=opd["redis"], opd_v=opd["valkey"])
    return pd.read_csv(io.StringIO(summary)), runs


def section(decision, title: str):
    return next(s for s in decision.sections if s.title == title)


# redis runs 100k, 101k, 99k ops/s (p99 1.00, 1.01, 0.99 ms); valkey 20% faster, 20% quicker
REDIS = [
    run_line("redis", k, o, p) for k, o, p in ((1, 100e3, 1.00), (2, 101e3, 1.01), (3, 99e3, 0.99))
]
VALKEY = [
    run_line("valkey", k, o, p)
    for k, o, p in ((1, 120e3, 0.80), (2, 121.2e3, 0.808), (3, 118.8e3, 0.792))
]


def test_a_clear_difference_is_a_winner():
    ok, runs = frames(REDIS + VALKEY)
    d = decide(ok, runs)
    engines = section(d, "Redis vs Valkey")
    assert (
        engines.headline == "Valkey vs Redis (1 matched pair, 3 comparisons): Valkey better in 3."
    )
    (line,) = engines.details
    assert "throughput: Valkey 8.0 wins, +20.0% (" in line
    assert "p99 latency: Valkey 8.0 wins, -20.0% (" in line
    assert section(d, "Best overall").headline.startswith(
        "Best throughput: valkey 8.0, single, cache.r7g.large, mixed, significantly ahead of the "
        "others; best p99 latency: valkey 8.0"
    )
    assert not any(s.title == "Stability" for s in d.sections)  # nothing to say there


def test_client_bound_runs_withhold_the_verdict_and_are_listed():
    bound = run_line("valkey", 2, 121.2e3, 0.808, bound=BOUND)
    ok, runs = frames([*REDIS, VALKEY[0], bound, VALKEY[2]])
    d = decide(ok, runs)
    (line,) = section(d, "Redis vs Valkey").details
    assert "throughput: no verdict, 1 client-bound run (client-bound: measures" in line
    assert "measured +20.0% (" in line  # the ratio is still shown
    assert all(c.winner is None for c in d.comparisons if c.n_a == 3 and c.client_bound_runs)
    stab = section(d, "Stability")
    assert stab.headline.startswith("0 point(s) unstable, 1 client-bound run(s), 0 run(s)")
    assert list(stab.details) == [
        f"valkey 8.0, single, cache.r7g.large, mixed rep 2: {BOUND}; kept out of winner claims."
    ]


def test_a_rate_limit_shortfall_is_client_bound(tmp_path):
    """run_evidence calls a rate-limited run that achieved 6% less than it asked
    client-bound; the decision then names no winner from it."""
    point = make_point(0, "valkey").model_copy(
        update={"workload": Workload(name="mixed", rate_limit=1000, clients=10, threads=1)}
    )
    # asked: 1,000 requests/s x 10 connections x 1 thread x 1 generator = 10,000 ops/s
    rdir = write_point_dir(tmp_path, point, make_load(9_400.0))
    row = run_evidence(point, rdir, {})
    assert row["client_bound"] and row["rate_shortfall_pct"] == pytest.approx(6.0)
    assert "9,400 of 10,000 requested ops/s, 6.0% short > 5%" in row["client_bound_reason"]
    ok, runs = frames(
        [
            *REDIS,
            VALKEY[0],
            run_line("valkey", 2, 121.2e3, 0.8, row["client_bound_reason"]),
            *VALKEY[2:],
        ]
    )
    (line,) = section(decide(ok, runs), "Redis vs Valkey").details
    assert line.count("no verdict, 1 client-bound run") == 3  # throughput, p99, ops/$


def test_latency_objective_section_and_ops_per_dollar_among_those_that_meet_it():
    ok, runs = frames(REDIS + VALKEY)
    d = decide(ok, runs, slo_p99_ms=0.9)
    slo = section(d, "Latency objective")
    # valkey's p99s 0.792-0.808 sit under 0.9 ms, redis's 0.99-1.01 above it
    assert slo.headline == (
        "p99 objective 0.9 ms: 1 point(s) meet it, 1 miss it, 0 undecided or without enough "
        "data. By ops per dollar among those that meet it: valkey 8.0, single, "
        "cache.r7g.large, mixed."
    )
    assert d.slo["valkey"].status == "meets" and d.slo["redis"].status == "misses"
    best = section(d, "Best overall")
    assert any("Best ops per dollar among the points that meet the p99 objective" in x
               for x in best.details)  # fmt: skip
    none_meet = decide(ok, runs, slo_p99_ms=0.5)
    assert (
        "Ops per dollar: no point meets the p99 objective."
        in section(none_meet, "Best overall").details
    )


def test_stability_section_names_unstable_points_and_outliers():
    # redis: runs 100k, 100k, 118k (run 3 18% off two equal runs: an outlier, CV 9.8%);
    # valkey: 100k, 120k, 130k (CV 13.1%: unstable)
    lines = [run_line("redis", k, o, 1.0) for k, o in ((1, 100e3), (2, 100e3), (3, 118e3))]
    lines += [run_line("valkey", k, o, 0.8) for k, o in ((1, 100e3), (2, 120e3), (3, 130e3))]
    ok, runs = frames(lines)
    stab = section(decide(ok, runs), "Stability")
    assert stab.headline.startswith("2 point(s) unstable, 0 client-bound run(s)")
    assert stab.details[0].startswith(
        "redis 7.1, single, cache.r7g.large, mixed: unstable: run 3 is an outlier, +18.0%"
    )
    assert (
        stab.details[1] == "valkey 8.0, single, cache.r7g.large, mixed: unstable: CV 13.1% > 10%."
    )


def test_min_effect_pct_is_the_bar():
    # valkey 1.5% faster, runs +-0.1%: the interval excludes no change, the bar does not
    faster = [run_line("valkey", k, o, p) for k, o, p in ((1, 101.5e3, 1.0), (2, 101.6e3, 1.01),
                                                          (3, 101.4e3, 0.99))]  # fmt: skip
    ok, runs = frames(REDIS[:0] + [run_line("redis", k, o, 1.0) for k, o in
                                   ((1, 100e3), (2, 100.1e3), (3, 99.9e3))] + faster)  # fmt: skip
    (line,) = section(decide(ok, runs, min_effect_pct=2.0), "Redis vs Valkey").details
    assert "throughput: no significant difference (" in line
    assert "+1.5% is under the 2% bar (min_effect_pct)" in line
    (line,) = section(decide(ok, runs, min_effect_pct=1.0), "Redis vs Valkey").details
    assert "throughput: Valkey 8.0 wins, +1.5% (" in line


def test_load_generator_cpu_unknown_is_said_not_taken_for_not_client_bound():
    lines = [*REDIS[:2], run_line("redis", 3, 99e3, 0.99, cpu=False), *VALKEY]
    ok, runs = frames(lines)
    d = decide(ok, runs)
    (line,) = section(d, "Redis vs Valkey").details
    caveat = "1 run without load generator CPU (cpu.json): whether they measured the load"
    assert line.count(caveat) == 3  # every comparison that run is part of
    assert all(c.cpu_unknown_runs == 1 for c in d.comparisons if "Redis" in c.b)
    stab = section(d, "Stability")
    assert "1 run(s) with load generator CPU unknown" in stab.headline
    assert list(stab.details) == [
        "redis 7.1, single, cache.r7g.large, mixed rep 3: load generator CPU unknown (no "
        "cpu.json); its comparisons say so."
    ]


def test_min_effect_and_slo_are_read_from_campaign_json_and_cpu_unknown_reaches_runs_csv(
    tmp_path,
):
    """build_report takes min_effect_pct and slo_p99_ms from the run's campaign.json; a run
    written without cpu.json is 'load generator CPU unknown' in runs.csv and the report."""
    redis, valkey = make_point(0, "redis"), make_point(1, "valkey")
    for rep, f in enumerate((0.99, 1.0, 1.01), start=1):
        write_point_dir(tmp_path, redis, make_load(100e3 * f, p99=1.0 * f), rep=rep)
        cpu = None if rep == 2 else 30.0
        write_point_dir(tmp_path, valkey, make_load(110e3 * f, p99=0.8 * f), rep=rep, cpu_pct=cpu)
    doc = json.loads((tmp_path / "campaign.json").read_text())
    doc["spec"] |= {"min_effect_pct": 25, "slo_p99_ms": 0.9}
    (tmp_path / "campaign.json").write_text(json.dumps(doc))
    build_report(tmp_path, {}, {})
    md = (tmp_path / "report.md").read_text()
    assert "the difference is above 25%" in md  # how to read this
    assert "+10.0% is under the 25% bar (min_effect_pct)" in md  # valkey 10% faster
    assert "### Latency objective" in md and "p99 objective 0.9 ms: 1 point(s) meet it" in md
    runs = pd.read_csv(tmp_path / "runs.csv").set_index(["point_id", "repetition"])
    row = runs.loc[(valkey.id, 2)]
    assert not row["load_cpu_known"] and row["client_bound_reason"] == CPU_UNKNOWN
    assert not row["client_bound"]
    assert runs["load_cpu_known"].sum() == 5
    assert "runs with load generator CPU unknown: 1" in md  # the point's flags
    assert "without load generator CPU (cpu.json)" in md
    assert math.isclose(pd.read_csv(tmp_path / "summary.csv")["cpu_unknown_runs"].sum(), 1)


# ---- the decisions as data, and the decision figure drawn from them ----------------------

#: Three node types, each with a Redis and a Valkey point (one matched pair each): on the
#: large Valkey is 20% faster and 20% quicker (a known winner), on the xlarge the two are
#: the same runs (no difference), on the 2xlarge one Valkey run is client-bound.
PAIRS_SUMMARY = "".join(
    f"{e}-{nt},aws,{e},{ENGINE[e][1]},single,False,1,cache.r7g.{nt},mixed,1,{vcpu},13.07,,,\n"
    for nt, vcpu in (("large", 2), ("xlarge", 4), ("2xlarge", 8))
    for e in ("redis", "valkey")
)
SPREAD = ((1, 1.00), (2, 1.01), (3, 0.99))
# The winner's ratio 1.2 with its 95.3% interval, by hand: the runs' spread is
# test_report.py's (x 0.99, 1, 1.01 on both sides), so its half width (in logs) is HALF.
WINNER = 1.2


def pair_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    lines = []
    for nt, valkey, p99, bound in (
        ("large", WINNER, 1 / WINNER, ""),
        ("xlarge", 1.0, 1.0, ""),
        ("2xlarge", 1.1, 0.9, BOUND),
    ):
        for e, factor, lat in (("redis", 1.0, 1.0), ("valkey", valkey, p99)):
            engine, version = ENGINE[e]
            for k, f in SPREAD:
                cb = bound if e == "valkey" and k == 2 else ""
                lines.append(
                    f"{e}-{nt},{k},ok,{engine},{version},single,cache.r7g.{nt},mixed,"
                    f'{100e3 * factor * f},{lat * f},,{bool(cb)},"{cb}",True\n'
                )
    head = SUMMARY.splitlines()[0] + "\n"
    return pd.read_csv(io.StringIO(head + PAIRS_SUMMARY)), pd.read_csv(
        io.StringIO(RUNS_HEAD + "".join(lines))
    )


def test_the_decision_figure_draws_the_decisions_comparisons(tmp_path):
    from matplotlib.collections import LineCollection
    from test_report import HALF

    from cachebench.report import chart, palette, plots
    from cachebench.report.decision import Decisions

    ok, runs = pair_runs()
    d = decide(ok, runs)
    d.write(tmp_path)
    assert Decisions.read(tmp_path) == d  # decisions.json holds all of it
    engines = section(d, "Redis vs Valkey")
    by_label = {(r.label, r.comparison.metric): r for r in engines.rows}
    assert sorted(by_label) == sorted(
        (f"Valkey 8.0 vs Redis 7.1, cache.r7g.{nt}", m)
        for nt in ("large", "xlarge", "2xlarge")
        for m in ("throughput", "p99")
    )
    win = by_label[("Valkey 8.0 vs Redis 7.1, cache.r7g.large", "throughput")]
    assert win.verdict_word == "Valkey 8.0 better" and not win.withheld
    c = win.comparison
    assert c.ratio == pytest.approx(WINNER)
    assert (c.interval.low, c.interval.high) == pytest.approx(
        (WINNER * math.exp(-HALF), WINNER * math.exp(HALF)), rel=1e-3
    )
    same = by_label[("Valkey 8.0 vs Redis 7.1, cache.r7g.xlarge", "throughput")]
    assert same.comparison.ratio == pytest.approx(1.0)
    assert same.verdict_word == "no clear difference" and not same.withheld
    bound = by_label[("Valkey 8.0 vs Redis 7.1, cache.r7g.2xlarge", "throughput")]
    assert bound.verdict_word == "withheld: client-bound" and bound.withheld
    assert bound.comparison.winner is None and bound.comparison.ratio == pytest.approx(1.1)

    # the figure: a group per question and metric, in the decisions' order, a row per
    # comparison with the comparison's own ratio, interval, colour and word
    fig_chart = plots.decision_chart(d)
    (panel,) = fig_chart.panels
    groups = list(dict.fromkeys(r.group for r in d.rows))
    assert [g for g, _ in panel.groups] == groups
    drawn = [row for _, rows in panel.groups for row in rows]
    expected = [r for g in groups for r in d.rows if r.group == g]
    assert len(drawn) == len(d.rows) and len(d.rows) >= len(engines.rows) + 5
    colours = {
        "verdict": palette.VERDICT_COLOURS["verdict"],
        "none": palette.VERDICT_COLOURS["no_difference"],
        "withheld": palette.VERDICT_COLOURS["withheld"],
    }
    for row, f in zip(expected, drawn, strict=True):
        c = row.comparison
        assert (f.label, f.word, f.hollow) == (row.label, row.verdict_word, row.withheld)
        assert (f.ratio, f.low, f.high) == (c.ratio, c.interval.low, c.interval.high)
        kind = "withheld" if row.withheld else "verdict" if c.winner else "none"
        assert f.colour == colours[kind]
    assert panel.band == pytest.approx((0.98, 1.02))  # min_effect_pct 2

    # ... and as matplotlib draws it: each row's dot at its ratio, its line over its interval
    fig = chart.figure(fig_chart)
    (ax,) = fig.axes
    names = [t.get_text() for t in ax.get_yticklabels()]
    dots = {names[int(ln.get_ydata()[0])]: ln for ln in ax.get_lines() if ln.get_marker() == "o"}
    spans = {
        (names[int(seg[0, 1])], round(seg[0, 1])): (seg[:, 0].min(), seg[:, 0].max())
        for coll in ax.collections
        if isinstance(coll, LineCollection)
        for seg in coll.get_segments()
    }
    y = 0
    for _, rows in panel.groups:
        y += 1  # the group's heading
        for f in rows:
            dot = next(ln for ln in ax.get_lines() if ln.get_marker() == "o"
                       and ln.get_ydata()[0] == y)  # fmt: skip
            assert dot.get_xdata()[0] == pytest.approx(f.ratio)
            assert (dot.get_markerfacecolor() == "white") == f.hollow
            assert spans[(f.label, y)] == pytest.approx((f.low, f.high))
            y += 1
    assert len(dots) >= 1 and y == len(names)


def test_best_is_named_only_when_significantly_ahead():
    ok, runs = pair_runs()
    best = section(decide(ok, runs), "Best overall")
    (thr, p99) = best.answers
    # the large Valkey has the highest mean, but the client-bound 2xlarge Valkey's runs
    # cannot be told from it: no best, the answer names both
    assert thr.answer == (
        "cannot tell apart: valkey 8.0, single, cache.r7g.large; valkey 8.0, single, "
        "cache.r7g.2xlarge"
    )
    assert "the load generator, not the server, was the bottleneck" in thr.why_not
    assert thr.by_how_much.startswith("highest mean, 9.1% more throughput than the runner-up")
    assert "cannot tell apart" in best.headline and "significantly ahead" not in best.headline
    # p99: the large Valkey's is lowest, but against the client-bound point no winner is
    # named, so it is not named best either
    assert p99.answer.startswith("cannot tell apart: valkey 8.0, single, cache.r7g.large")
    assert p99.by_how_much.startswith("lowest mean, ") and "lower p99 latency" in p99.by_how_much
    ok2, runs2 = pair_runs()
    runs2 = runs2[~runs2["point_id"].str.endswith("2xlarge")]
    ok2 = ok2[~ok2["point_id"].str.endswith("2xlarge")]
    best2 = section(decide(ok2, runs2), "Best overall")
    assert [a.answer for a in best2.answers] == ["valkey 8.0, single, cache.r7g.large"] * 2
    # (the three other points tie at 100k ops/s: which is the runner-up is not the point)
    assert best2.answers[0].by_how_much.startswith("20.0% more throughput than the runner-up")
    assert best2.answers[0].why_not == "" and best2.answers[0].interval.endswith("interval")
