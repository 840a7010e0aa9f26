"""report.html in a real browser, from file:// and offline: the summary first, the decision
figure, one colour per configuration, every chart drawn, hover, sorting.

Headless Chromium (Debian's ``chromium``, driven by Playwright; never ``playwright
install``) opens the report of a real tiny campaign (``python -m cachebench run``: 2
engines x 1 topology x 2 repetitions x 2 s on local servers), and of a report built
from the unit tests' factories (memtier-style p99 series, AWS node types with a
baseline and a burst, a failed run). What the page must show is read from the run
folder (load.json, metrics.parquet, runs.csv, summary.csv, decisions.json), not from
the page or the code that drew it.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from cli_runs import REDIS, VALKEY, start_run, tiny_campaign
from leftovers import assert_nothing_left

from chromium import chromium_context

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "unit"))

from test_export_support import (  # noqa: E402
    make_load,
    make_metrics,
    make_point,
    make_spec,
    write_failed_dir,
    write_point_dir,
)

CAMPAIGN = tiny_campaign("browser", engines=(REDIS, VALKEY), name="tiny")
#: The metric-table metric behind each node chart (the page's data-chart keys).
NODE_CHARTS = {
    "cpu": "CPUUtilization",
    "net_in": "NetworkBytesIn",
    "net_out": "NetworkBytesOut",
}


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory) -> Path:
    """The run folder of a real tiny campaign on local servers."""
    tmp = tmp_path_factory.mktemp("browser")
    proc = start_run(CAMPAIGN, tmp)
    try:
        out, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    results = tmp / "results"
    assert proc.returncode == 0, out
    (run_dir,) = results.glob("browser/*/")
    assert_nothing_left(run_dir)
    return run_dir


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium_context(tmp_path / "chromium-profile") as context:
        yield context


class Page:
    """A report.html opened from file://, with what it logged and what it asked for."""

    def __init__(self, context: Any, report: Path) -> None:
        self.page = context.new_page()
        self.problems: list[str] = []
        self.remote: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.route(re.compile(r"^(?!file:).*"), self._refuse)  # offline: no CDN
        self.page.goto(report.as_uri(), wait_until="load")

    def _refuse(self, route: Any) -> None:
        self.remote.append(route.request.url)
        route.abort()


def expected_charts(run_dir: Path) -> dict[str, dict[str, int]]:
    """{workload: {chart key: runs it overlays}}, from the runs' own files."""
    runs = pd.read_csv(run_dir / "runs.csv")
    out: dict[str, dict[str, int]] = {}
    for r in runs[runs["status"] == "ok"].itertuples():
        rdir = run_dir / "points" / r.point_id / f"rep{r.repetition}"
        series = json.loads((rdir / "load.json").read_text())["series"]
        metrics = set(pd.read_parquet(rdir / "metrics.parquet", columns=["metric"])["metric"])
        has = {
            "throughput": bool(series),
            "p99": any(s.get("p99_ms") is not None for s in series),
        } | {key: metric in metrics for key, metric in NODE_CHARTS.items()}
        counts = out.setdefault(r.workload, {})
        for key, yes in has.items():
            counts[key] = counts.get(key, 0) + int(yes)
    return {w: {k: n for k, n in c.items() if n} for w, c in out.items()}


def drawn_charts(page: Any) -> dict[str, dict[str, int]]:
    """{workload: {chart key: traces drawn with a line}} as the page shows them."""
    return page.evaluate(
        """() => {
          const out = {};
          for (const s of document.querySelectorAll(".explore-workload")) {
            const charts = out[s.dataset.workload] = {};
            for (const c of s.querySelectorAll(".explore-chart")) {
              const gd = c.querySelector(".plotly-graph-div");
              if (!gd || !gd.querySelector(".main-svg")) continue;
              const lines = Array.from(gd.querySelectorAll(".scatterlayer .trace path.js-line"));
              const drawn = lines.filter((p) => (p.getAttribute("d") || "").length > 1);
              charts[c.dataset.chart] = drawn.length;
            }
          }
          return out;
        }"""
    )


def wait_drawn(page: Any) -> None:
    page.wait_for_function(
        """() => Array.from(document.querySelectorAll(".plotly-graph-div"))
                 .every((g) => g.querySelector(".main-svg .scatterlayer"))""",
        timeout=120_000,
    )


def column(page: Any, table: str, header: str) -> list[str]:
    """The cells of a table's column, top to bottom, as shown."""
    return page.evaluate(
        """([table, header]) => {
          const t = document.getElementById(table);
          const col = Array.from(t.tHead.rows[0].cells).findIndex((c) => c.textContent === header);
          return Array.from(t.tBodies[0].rows).map((r) => r.cells[col].textContent.trim());
        }""",
        [table, header],
    )


def runs_shown(page: Any) -> list[tuple[str, int]]:
    """(point, repetition) of each row of the runs table, top to bottom."""
    points, reps = column(page, "runs", "point"), column(page, "runs", "rep")
    return [(a, int(b)) for a, b in zip(points, reps, strict=True)]


def sort_by(page: Any, table: str, header: str) -> None:
    page.locator(f"#{table} thead th", has_text=re.compile(f"^{re.escape(header)}$")).click()


def hover_values(page: Any, key: str, second: float) -> str:
    """The hover text of chart ``key`` (the first workload's) with the mouse at x = second."""
    chart = page.locator(f'.explore-chart[data-chart="{key}"]').first
    area = chart.locator(".nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    low, high = chart.locator(".plotly-graph-div").evaluate("g => g.layout.xaxis.range")
    page.mouse.move(box["x"] + box["width"] * (second - low) / (high - low), box["y"] + 40)
    page.wait_for_function(
        "el => el.textContent.length > 0", arg=chart.locator(".hoverlayer").element_handle()
    )
    return chart.locator(".hoverlayer").text_content()


def hex_colour(css: str) -> str:
    """'rgb(0, 114, 178)' or '#0072b2' as '#0072B2'."""
    if css.startswith("#"):
        return css.upper()
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return f"#{r:02X}{g:02X}{b:02X}"


def check_glance(p: Page, run_dir: Path) -> None:
    """What a reader sees first: the summary table on the first screen, before anything
    else, then the decision figure (loaded, at 2x), and each configuration in the colour
    decisions.json gives it, the same in the summary and in the explorable charts."""
    seen = p.page.evaluate(
        """() => {
          const summary = document.getElementById("summary");
          const img = document.querySelector("#decision-figure img");
          const first = (sel) => document.querySelector(sel);
          return {
            h2: first("h2").id,
            first_table: first("table").id,
            summary_top: summary.getBoundingClientRect().top,
            screen: window.innerHeight,
            questions: Array.from(summary.querySelectorAll("th.question"))
              .map((t) => t.textContent),
            figure_top: img.getBoundingClientRect().top + window.scrollY,
            summary_bottom: summary.getBoundingClientRect().bottom + window.scrollY,
            loaded: img.complete && img.naturalWidth > 0,
            natural: img.naturalWidth,
            shown: img.getBoundingClientRect().width,
            swatches: Array.from(summary.querySelectorAll(".swatch[data-config]")).map(
              (s) => [s.dataset.config, getComputedStyle(s).backgroundColor]),
            traces: Array.from(document.querySelectorAll(".explore-chart .plotly-graph-div"))
              .flatMap((g) => g.data.map((t) => [t.name, t.line.color])),
          };
        }"""
    )
    assert seen["h2"] == "at-a-glance" and seen["first_table"] == "summary", seen
    assert 0 <= seen["summary_top"] < seen["screen"], seen  # on the first screen
    assert "Redis or Valkey?" in seen["questions"], seen["questions"]
    assert seen["loaded"] and seen["figure_top"] > seen["summary_bottom"], seen
    assert seen["natural"] >= 2 * seen["shown"] - 2, seen  # a sharp figure: PNG at 2x
    decisions = json.loads((run_dir / "decisions.json").read_text())
    colour = {c["label"]: c["colour"].upper() for c in decisions["configurations"]}
    config_of = {pid: c["label"] for c in decisions["configurations"] for pid in c["points"]}
    in_summary = {cfg: hex_colour(css) for cfg, css in seen["swatches"]}
    in_explorer = {
        config_of[name.split(" rep ")[0]]: hex_colour(css) for name, css in seen["traces"]
    }
    both = set(in_summary) & set(in_explorer)
    assert len(both) >= 2, (in_summary, in_explorer)  # else it could pass on nothing
    for cfg in both:
        assert in_summary[cfg] == in_explorer[cfg] == colour[cfg], cfg
    assert len(set(colour.values())) == len(colour)  # one colour per configuration


def check_page(p: Page, run_dir: Path) -> dict[str, dict[str, int]]:
    """The checks both reports share: offline, quiet, the summary and decision figure
    first, every chart drawn with one line per run."""
    wait_drawn(p.page)
    check_glance(p, run_dir)
    assert (run_dir / "figures" / "plotly.min.js").is_file()
    assert p.page.evaluate("typeof Plotly") == "object"  # the local copy loaded
    want = expected_charts(run_dir)
    assert sum(len(c) for c in want.values()) >= 4, want  # else the test could pass on nothing
    assert drawn_charts(p.page) == want
    assert p.problems == [] and p.remote == [], (p.problems, p.remote)
    return want


def test_the_report_of_a_real_campaign_draws_every_run_offline(browser, campaign_dir: Path):
    p = Page(browser, campaign_dir / "report.html")
    want = check_page(p, campaign_dir)
    assert set(want) == {"tiny"} and want["tiny"]["throughput"] == 4  # 2 points x 2 reps
    runs = pd.read_csv(campaign_dir / "runs.csv")
    loads = {
        f"{r.point_id} rep {r.repetition}": json.loads(
            (campaign_dir / "points" / r.point_id / f"rep{r.repetition}" / "load.json").read_text()
        )
        for r in runs.itertuples()
    }
    if "p99" not in want["tiny"]:  # redis-benchmark gives no per-second percentiles
        tools = ", ".join(sorted({load["tool"] for load in loads.values()}))
        notes = p.page.locator(".explore-workload .note").all_text_contents()
        assert any(f"not measured per second by {tools}" in n for n in notes), notes

    # hover: each run's throughput at a second every run measured, as load.json has it
    series = {
        name: {s["second"]: s["ops_per_sec"] for s in load["series"]}
        for name, load in loads.items()
    }
    second = max(set.intersection(*(set(s) for s in series.values())))
    text = hover_values(p.page, "throughput", second)
    for name, values in series.items():
        m = re.search(re.escape(name) + r" : ([\d,.]+) ops/s", text)
        assert m, (name, text)
        assert abs(float(m.group(1).replace(",", "")) - values[second]) <= 1.0, (name, text)

    # sorting: the runs table by ops/s, as runs.csv orders them, then the other way
    by_ops = runs.sort_values("ops_per_sec", kind="stable")
    expected = list(zip(by_ops["point_id"], by_ops["repetition"], strict=True))
    sort_by(p.page, "runs", "ops/s")
    assert runs_shown(p.page) == expected
    sort_by(p.page, "runs", "ops/s")
    assert runs_shown(p.page) == expected[::-1]
    assert p.problems == []


def test_factory_report_draws_p99_baselines_and_sorts_n_a_last(browser, tmp_path: Path):
    """Two workloads, memtier-style per-second p99, AWS node types with a baseline and a
    burst, and a failed run whose ops/s is n/a."""
    from cachebench.report.build import build_report

    large = make_spec("cache.r7g.large", baseline=0.937, burst=12.5)
    specs = {("aws", "cache.r7g.large"): large}
    ops = {}
    for i, (engine, workload) in enumerate(
        [("redis", "mixed"), ("valkey", "mixed"), ("valkey", "reads")]
    ):
        point = make_point(i, engine, workload=workload)
        for rep in (1, 2):
            value = 100_000 * (i + 1) + 1_000 * rep
            ops[(point.id, rep)] = value
            write_point_dir(
                tmp_path,
                point,
                make_load(value, seconds=40),
                make_metrics(point.id),
                large,
                rep=rep,
            )
    failed = make_point(3, "redis", workload="reads")
    write_failed_dir(tmp_path, failed, "load: connection refused")
    build_report(tmp_path, specs)

    p = Page(browser, tmp_path / "report.html")
    want = check_page(p, tmp_path)
    assert want == {
        "mixed": {"throughput": 4, "p99": 4, "cpu": 4, "net_in": 4, "net_out": 4},
        "reads": {"throughput": 2, "p99": 2, "cpu": 2, "net_in": 2, "net_out": 2},
    }
    # the node type's baseline and burst on each network chart
    for key in ("net_in", "net_out"):
        chart = p.page.locator(f'.explore-chart[data-chart="{key}"]').first
        labels = chart.locator(".shapelayer text, .layer-above text").all_text_contents()
        assert "cache.r7g.large baseline 0.937 Gbps" in labels, labels
        assert "cache.r7g.large burst 12.5 Gbps" in labels, labels
    # p99 hover at second 10: make_load's p99 x (1 + 0.05 sin(10 / 5))
    text = hover_values(p.page, "p99", 10)
    p99 = 1.0 * (1 + 0.05 * math.sin(10 / 5))
    assert f"{p99:.3f} ms" in text, text

    # drag-zoom the first throughput chart to its middle: it and its workload's charts follow
    chart = p.page.locator('.explore-chart[data-chart="throughput"]').first
    area = chart.locator(".nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    low, high = chart.locator(".plotly-graph-div").evaluate("g => g.layout.xaxis.range")
    p.page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    p.page.mouse.down()
    p.page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + box["height"] / 2, steps=5)
    p.page.mouse.up()
    want_range = [low + (high - low) * 0.25, low + (high - low) * 0.75]
    ranges = p.page.locator('.explore-workload[data-workload="mixed"] .plotly-graph-div')
    p.page.wait_for_function(
        "([sel, lo]) => Array.from(document.querySelectorAll(sel))"
        "  .every((g) => Math.abs(g.layout.xaxis.range[0] - lo) < 1)",
        arg=['.explore-workload[data-workload="mixed"] .plotly-graph-div', want_range[0]],
    )
    for got in ranges.evaluate_all("gs => gs.map((g) => g.layout.xaxis.range)"):
        assert got == pytest.approx(want_range, abs=(high - low) / 100), (got, want_range)

    # results: by ops/s ascending, then descending; runs: the failed run's n/a stays last
    summary = pd.read_csv(tmp_path / "summary.csv")
    ok = summary[summary["status"] == "ok"].sort_values("ops_per_sec")
    sort_by(p.page, "results", "ops/s (mean of runs)")
    assert column(p.page, "results", "point") == list(ok["point_id"])
    sort_by(p.page, "results", "ops/s (mean of runs)")
    assert column(p.page, "results", "point") == list(ok["point_id"])[::-1]
    by_ops = sorted(ops, key=ops.get)
    for direction in (1, -1):
        sort_by(p.page, "runs", "ops/s")
        cells = column(p.page, "runs", "ops/s")
        assert cells[-1] == "n/a", cells
        shown = runs_shown(p.page)
        assert shown[:-1] == by_ops[::direction] and shown[-1] == (failed.id, 1)
    assert p.problems == []
