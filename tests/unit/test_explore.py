"""The report's explorable charts: what each chart overlays, downsampling, the plotly.js copy."""

from __future__ import annotations

import base64
import math
import re

import numpy as np
import plotly
import plotly.graph_objects as go
import pytest
from test_export_support import make_load, make_metrics, make_point, make_spec, write_point_dir

from cachebench.models import SecondSample
from cachebench.report import explore
from cachebench.report.explore import ExploreRun, figure, minmax, read_run
from cachebench.report.palette import CONFIGURATION_COLOURS, configuration

#: The configurations' colours as a report assigns them (palette.assign: in campaign order).
COLOURS = {
    "redis 7.1, single, cache.r7g.large": CONFIGURATION_COLOURS[0],
    "valkey 8.0, single, cache.r7g.large": CONFIGURATION_COLOURS[1],
}

LARGE = make_spec("cache.r7g.large", baseline=0.937, burst=12.5)


def run_of(run_dir, point, rep=1, spec=LARGE):
    config = configuration(
        {
            "engine": point.engine,
            "version": point.version,
            "topology": point.topology.label,
            "node_type": point.node_type,
        }
    )
    return ExploreRun(
        point_id=point.id,
        configuration=config,
        colour=COLOURS.get(config, CONFIGURATION_COLOURS[2]),
        repetition=rep,
        workload=point.workload.name,
        node_type=point.node_type,
        path=run_dir / "points" / point.id / f"rep{rep}",
        baseline_gbps=spec.network_baseline_gbps if spec else None,
        burst_gbps=spec.network_burst_gbps if spec else None,
    )


def without_percentiles(load):
    """A load as redis-benchmark reports it: ops/s per second, no per-second percentiles."""
    series = [SecondSample(second=s.second, ops_per_sec=s.ops_per_sec) for s in load.series]
    return load.model_copy(update={"tool": "redis-benchmark", "series": series})


def test_minmax_keeps_each_buckets_lowest_and_highest_sample_in_time_order():
    x = np.arange(10.0)
    y = np.array([5, 1, 9, 3, 4, 7, 2, 8, 6, 0], dtype=float)
    # 4 points: 2 buckets, x 0-4 and 5-9; lows/highs by hand: (1, 1) (2, 9) | (7, 8) (9, 0)
    xs, ys, down = minmax(x, y, 4)
    assert down
    assert xs.tolist() == [1, 2, 7, 9] and ys.tolist() == [1, 9, 8, 0]


def test_minmax_leaves_a_short_series_alone_but_breaks_it_at_a_hole():
    xs, ys, down = minmax(np.array([0.0, 1, 2, 10, 11]), np.array([1.0, 2, 3, 4, 5]), 100)
    assert not down
    assert xs.tolist() == [0, 1, 2, 6, 10, 11]  # a NaN row in the middle of the 8 s hole
    assert ys[:3].tolist() == [1, 2, 3] and math.isnan(ys[3]) and ys[4:].tolist() == [4, 5]


def test_minmax_breaks_the_line_at_an_empty_bucket():
    x = np.array([0.0, 1, 2, 3, 17, 18, 19, 20])
    # 3 buckets of 20/3 s: 0-3 in the first, none in the second, 17-20 in the third
    xs, ys, down = minmax(x, x.copy(), 6)
    assert down and xs.tolist() == [0, 3, 10, 17, 20]
    assert ys[:2].tolist() == [0, 3] and math.isnan(ys[2]) and ys[3:].tolist() == [17, 20]


def test_a_run_is_its_busiest_nodes_cpu_and_network_in_gbps(tmp_path):
    point = make_point(0, "valkey")
    metrics = make_metrics(
        point.id,
        nodes=("n1", "n2"),
        seconds=60,
        overrides={("n2", "CPUUtilization"): 70.0, ("n1", "NetworkBytesOut"): 2.0},
    )
    write_point_dir(tmp_path, point, make_load(50_000), metrics=metrics)
    data = read_run(run_of(tmp_path, point))
    cpu, out, in_ = data.series["cpu"], data.series["net_out"], data.series["net_in"]
    assert cpu.node == "n2" and np.allclose(cpu.y, 70.0)  # n1 runs at 40
    assert out.node == "n1" and np.allclose(out.y, 2.0)  # the factory's Gbps, back from bytes
    assert np.allclose(in_.y, 0.5)
    # x: seconds since the load started (the metrics start with it, one a second)
    assert cpu.x.tolist() == list(range(60))
    wobble = 1 + 0.05 * np.sin(np.arange(60) / 5)  # make_load's series
    assert np.allclose(data.series["throughput"].y, 50_000 * wobble)
    assert np.allclose(data.series["p99"].y, 1.0 * wobble)


def test_each_workload_gets_a_chart_per_metric_with_a_trace_per_run(tmp_path):
    runs = []
    for i, (engine, workload, tool) in enumerate(
        [("redis", "mixed", "memtier"), ("valkey", "mixed", "memtier"), ("valkey", "big", "rb")]
    ):
        point = make_point(i, engine, workload=workload)
        for rep in (1, 2):
            load = make_load(100_000 + i)
            write_point_dir(
                tmp_path, point, load if tool == "memtier" else without_percentiles(load), rep=rep
            )
            runs.append(run_of(tmp_path, point, rep))
    sections = explore.explore(runs)
    assert [(w.workload, w.runs) for w in sections] == [("mixed", 4), ("big", 2)]
    mixed, big = sections
    assert [(c.key, c.traces) for c in mixed.charts] == [
        (k, 4) for k in ("throughput", "p99", "cpu", "net_in", "net_out")
    ]
    assert [c.key for c in big.charts] == ["throughput", "cpu", "net_in", "net_out"]
    assert big.notes == [
        "p99 per second: not measured per second by redis-benchmark (the tables give each "
        "run's p99)."
    ]
    for c in mixed.charts + big.charts:
        assert f'id="{c.div_id}"' in c.html and "Plotly.newPlot" in c.html
        assert not re.search(r"https?://", c.html)  # nothing fetched from anywhere


def test_a_points_repetitions_share_its_configurations_colour_and_a_legend_group(tmp_path):
    points = [make_point(i, e) for i, e in enumerate(("redis", "valkey"))]
    runs = []
    for point in points:
        for rep in (1, 2):
            write_point_dir(tmp_path, point, make_load(), rep=rep)
            runs.append(run_of(tmp_path, point, rep))
    data = [read_run(r) for r in runs]
    fig = figure("throughput", data, 1000)
    names = [t["name"] for t in fig["data"]]
    assert names == [f"{p.id} rep {k}" for p in points for k in (1, 2)]
    colour = [t["line"]["color"] for t in fig["data"]]
    assert colour == [CONFIGURATION_COLOURS[0]] * 2 + [CONFIGURATION_COLOURS[1]] * 2
    assert [t["legendgroup"] for t in fig["data"]] == [p.id for p in points for _ in (1, 2)]


def test_network_charts_draw_the_node_types_baseline_and_burst(tmp_path):
    point = make_point(0, "valkey")
    write_point_dir(tmp_path, point, make_load())
    data = [read_run(run_of(tmp_path, point))]
    fig = figure("net_in", data, 1000)
    lines = {(s["label"]["text"], s["y0"], s["y1"]) for s in fig["layout"]["shapes"]}
    assert lines == {
        ("cache.r7g.large baseline 0.937 Gbps", 0.937, 0.937),
        ("cache.r7g.large burst 12.5 Gbps", 12.5, 12.5),
    }
    local = make_spec("local.micro", target="local", baseline=None, burst=None)
    lp = make_point(1, "redis", node_type="local.micro", target="local")
    write_point_dir(tmp_path, lp, make_load())
    fig = figure("net_in", [read_run(run_of(tmp_path, lp, spec=local))], 1000)
    assert fig["layout"]["shapes"] == []
    assert "No documented bandwidth" in fig["layout"]["title"]["subtitle"]["text"]


def test_a_long_run_is_drawn_in_buckets_that_keep_its_peak_and_say_so(tmp_path):
    point = make_point(0, "valkey")
    load = make_load(100_000, seconds=3600)
    spike = load.series[1234].model_copy(update={"ops_per_sec": 1e6})
    dip = load.series[2345].model_copy(update={"ops_per_sec": 1.0})
    series = list(load.series)
    series[1234], series[2345] = spike, dip
    write_point_dir(tmp_path, point, load.model_copy(update={"series": series}))
    data = [read_run(run_of(tmp_path, point))]
    fig = figure("throughput", data, 800)
    y = np.frombuffer(base64.b64decode(fig["data"][0]["y"]["bdata"]), "<f4")
    assert len(y) <= 800 + 400  # 400 buckets, two samples each, and a NaN at any hole
    assert np.nanmax(y) == 1e6 and np.nanmin(y) == 1.0  # the spike and the dip survive
    assert "drawn as 400 min-max buckets" in fig["layout"]["title"]["subtitle"]["text"]
    assert fig["layout"]["title"]["subtitle"]["text"].startswith("Runs over 800 samples")


@pytest.mark.parametrize("key", list(explore.KINDS))
def test_every_figure_is_valid_for_plotly(tmp_path, key):
    """plotly's own validator accepts every property the (unvalidated) figures carry."""
    point = make_point(0, "valkey")
    write_point_dir(tmp_path, point, make_load())
    fig = figure(key, [read_run(run_of(tmp_path, point))], 1000)
    go.Figure(fig)  # raises ValueError on any unknown or invalid property


def test_the_plotly_js_copy_is_the_installed_plotly_js(tmp_path):
    path = explore.write_plotly_js(tmp_path)
    assert path == tmp_path / "figures" / "plotly.min.js"
    head = path.read_text()[:200]
    assert f"plotly.js v{plotly.offline.get_plotlyjs_version()}" in head
