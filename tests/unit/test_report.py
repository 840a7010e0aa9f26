"""Campaign report: summary, figures, md/html, decision sentences, failed points."""

from __future__ import annotations

import re
import time

import pandas as pd
import pytest
from test_export_support import (
    CLUSTER3,
    make_load,
    make_point,
    make_price,
    make_spec,
    write_failed_dir,
    write_point_dir,
)

from cachebench.report.report import LOCAL_CAVEAT, build_report

LARGE = make_spec("cache.r7g.large", baseline=0.937, burst=12.5, vcpu=2)
XLARGE = make_spec("cache.r7g.xlarge", baseline=1.876, burst=12.5, vcpu=4, memory_gib=26.32)
SPECS = {(s.target, s.node_type): s for s in (LARGE, XLARGE)}
# One price for both engines, so these tests see only the measured differences.
PRICES = {
    (engine, node_type): make_price(usd)
    for engine in ("redis", "valkey")
    for node_type, usd in (("cache.r7g.large", 0.252), ("cache.r7g.xlarge", 0.504))
}
FIGURES = ("throughput", "latency", "cpu", "network", "memory")


def _campaign(run_dir, figures=False):
    """Valkey vs Redis, single vs c3r1, large vs xlarge; one failed point."""
    cases = [
        (make_point(0, "redis"), make_load(100_000, p99=1.0)),
        (make_point(1, "valkey"), make_load(120_000, p99=0.8)),
        (make_point(2, "valkey", topology=CLUSTER3), make_load(300_000, p99=0.9)),
        (
            make_point(3, "valkey", node_type="cache.r7g.xlarge"),
            make_load(180_000, p99=0.7),
        ),
    ]
    for point, load in cases:
        spec = SPECS[(point.target, point.node_type)]
        write_point_dir(run_dir, point, load, spec=spec, figures=figures)
    write_failed_dir(run_dir, make_point(4, "redis", topology=CLUSTER3), "apply: quota <exceeded>")
    return cases


def _md(run_dir):
    return (run_dir / "report.md").read_text()


def test_decision_picks_the_right_winners(tmp_path):
    _campaign(tmp_path)
    paths = build_report(tmp_path, SPECS, PRICES)
    md = _md(tmp_path)
    assert re.search(
        r"Best throughput: valkey 8\.0, c3r1, cache\.r7g\.large, mixed with 300,000 ops/s, "
        r"66\.7% more than the runner-up valkey 8\.0, single, cache\.r7g\.xlarge",
        md,
    )
    assert "Best p99 latency: valkey 8.0, single, cache.r7g.xlarge, mixed with 0.700 ms" in md
    assert "12.5% lower than the runner-up valkey 8.0, single, cache.r7g.large" in md
    # ops/$: large valkey 120k / $0.252 beats xlarge 180k / $0.504 and c3r1 300k / $1.512
    assert "Best ops per dollar: valkey 8.0, single, cache.r7g.large, mixed" in md
    assert "Valkey 8.0 vs Redis 7.1: Valkey 8.0 wins throughput by +20.0%" in md
    assert "(120,000 vs 100,000 ops/s); p99 0.800 vs 1.000 ms (Valkey 8.0 20.0% lower)" in md
    assert "Valkey vs Redis (1 matched pair): Valkey wins" in md
    assert "c3r1 (6 nodes) vs single (1 node): c3r1 (6 nodes) wins throughput by 2.50x" in md
    assert "cache.r7g.xlarge vs cache.r7g.large: cache.r7g.xlarge wins throughput by +50.0%" in md
    assert "price 2.00x ($0.504 vs $0.252/h)" in md
    assert "ops per dollar" in md and "cache.r7g.large +33.3%" in md
    assert LOCAL_CAVEAT not in md
    assert {f"fig_{n}_{e}" for n in FIGURES for e in ("png", "pdf")} <= set(paths)


def test_summary_lists_results_and_failed_points(tmp_path):
    _campaign(tmp_path)
    build_report(tmp_path, SPECS, PRICES)
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary["status"]) == ["ok"] * 4 + ["failed"]
    failed = summary[summary["status"] == "failed"].iloc[0]
    assert failed["reason"] == "apply: quota <exceeded>" and failed["engine"] == "redis"
    ok = summary[summary["status"] == "ok"].set_index("index")
    assert ok.loc[2, "nodes"] == 6 and ok.loc[2, "cluster_usd_hour"] == pytest.approx(6 * 0.252)
    assert ok.loc[1, "ops_per_dollar"] == pytest.approx(120_000 * 3600 / 0.252)
    assert list(ok["reads_from"]) == ["primary"] * 4
    md = _md(tmp_path)
    assert "| reads from |" in md and "| primary |" in md
    assert "4 point(s) with a result, 1 without" in md
    assert "| p04-redis-c3r1-large-mixed | apply: quota <exceeded> |" in md
    html = (tmp_path / "report.html").read_text()
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
    imgs = re.findall(r'src="([^"]+)"', html)
    assert {f"figures/{n}.png" for n in FIGURES} == set(imgs)
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
    assert "with 50,000 ops/s (no other point to compare)" in md
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
    assert "<img" not in (tmp_path / "report.html").read_text()
    assert list(pd.read_csv(tmp_path / "summary.csv")["status"]) == ["failed", "failed"]


def test_no_points_directory(tmp_path):
    paths = build_report(tmp_path, {})
    assert "0 point(s) with a result, 0 without" in _md(tmp_path)
    assert (tmp_path / "report.html").is_file() and (tmp_path / "summary.csv").is_file()
    assert set(paths) == {"summary_csv", "runs_csv", "report_md", "report_html"}


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
        write_point_dir(tmp_path, point, make_load(90_000 + i * 10_000), spec=local)
    build_report(tmp_path, {("local", "local-2cpu"): local})
    md = _md(tmp_path)
    assert LOCAL_CAVEAT in md
    assert "Ops per dollar: no price known for these node types." in md
    assert "Valkey 8.0 vs Redis 7.1: Valkey 8.0 wins throughput by +11.1%" in md


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
    started = time.perf_counter()
    build_report(tmp_path, SPECS, PRICES)
    assert time.perf_counter() - started < 60
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert len(summary) == 50 and (summary["status"] == "ok").all()
    md = _md(tmp_path)
    assert "Valkey vs Redis (24 matched pairs): Valkey wins" in md
    assert "Valkey is higher in 24 of 24" in md
    assert "[zipf] Best throughput:" in md
