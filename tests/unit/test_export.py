"""Per-point export: agent CSV reading, metric files, Gbps, figures and summary row."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
from test_export_support import (
    GIB,
    T0,
    make_load,
    make_metrics,
    make_point,
    make_price,
    make_spec,
)

from cachebench.models import METRIC_COLUMNS, LoadResult, Point, Topology
from cachebench.report import plots
from cachebench.report.export import (
    SUMMARY_COLUMNS,
    export_point,
    network_gbps,
    normalize_metrics,
    point_summary,
    read_agent_csv,
    write_metrics,
)


def _agent_csv(tmp_path, seconds=20):
    df = make_metrics("ignored", nodes=("n1", "n2"), seconds=seconds)
    path = tmp_path / "metrics.csv"
    df.drop(columns="point_id").to_csv(path, index=False)
    return path


def test_read_agent_csv_schema_and_dtypes(tmp_path):
    df = read_agent_csv(_agent_csv(tmp_path), "p00-x")
    assert list(df.columns) == METRIC_COLUMNS
    assert len(df) == 20 * 2 * 8
    assert isinstance(df["timestamp"].dtype, pd.DatetimeTZDtype)
    assert str(df["timestamp"].dt.tz) == "UTC"
    for col in ("point_id", "node_id", "metric", "unit"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert df["value"].dtype == np.float64
    assert pd.api.types.is_integer_dtype(df["period_s"])
    assert set(df["point_id"]) == {"p00-x"}
    assert df["timestamp"].min() == pd.Timestamp(T0, unit="s", tz="UTC")


def test_read_agent_csv_trims_warmup(tmp_path):
    df = read_agent_csv(_agent_csv(tmp_path), "p", start=T0 + 5, end=T0 + 14)
    secs = (df["timestamp"] - pd.Timestamp(T0, unit="s", tz="UTC")).dt.total_seconds()
    assert secs.min() == 5 and secs.max() == 14
    assert len(df) == 10 * 2 * 8


def test_read_agent_csv_real_agent_format(tmp_path):
    """The agent writes point_id and the measured interval; period 0 on the first sample."""
    path = tmp_path / "metrics.csv"
    path.write_text(
        "timestamp,point_id,node_id,metric,value,unit,period_s\n"
        f"{T0:.3f},p,n1,CurrConnections,50,Count,0.0\n"
        f"{T0 + 1.002:.3f},p,n1,CurrConnections,51,Count,1.002\n"
        f"{T0 + 1.002:.3f},p,n1,NetworkBytesIn,{125e6 * 1.002},Bytes,1.002\n"
        f"{T0 + 2.0:.3f},p,n1,NetworkBytesOut,{125e6 * 0.998},Bytes,0.998\n"
        f"{T0 + 2.0:.3f},p,n1,CPUUtilization,130.5,Percent,0.998\n"
    )
    df = read_agent_csv(path, "p07")
    assert set(df["point_id"]) == {"p07"}
    assert list(df["period_s"]) == [1, 1, 1, 1, 1]
    assert list(df["value"][:2]) == [50, 51]  # gauges untouched
    assert df["value"].iloc[4] == 130.5
    net = network_gbps(df)
    assert net["in_gbps"].dropna().tolist() == pytest.approx([1.0])
    assert net["out_gbps"].dropna().tolist() == pytest.approx([1.0])


def test_read_agent_csv_header_only(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("timestamp,node_id,metric,value,unit,period_s\n")
    df = read_agent_csv(path, "p")
    assert df.empty and list(df.columns) == METRIC_COLUMNS


def test_write_metrics_round_trip(tmp_path):
    df = make_metrics("p1", nodes=("a", "b"), seconds=10)
    paths = write_metrics(df, tmp_path / "out")
    back = pd.read_parquet(paths["metrics_parquet"])
    assert list(back.columns) == METRIC_COLUMNS
    assert isinstance(back["metric"].dtype, pd.CategoricalDtype)
    assert str(back["timestamp"].dt.tz) == "UTC"
    assert len(back) == len(df)
    assert np.allclose(back["value"].to_numpy(), df["value"].to_numpy())
    csv = pd.read_csv(paths["metrics_csv"])
    assert list(csv.columns) == METRIC_COLUMNS and len(csv) == len(df)
    assert pd.to_datetime(csv["timestamp"], utc=True).min() == pd.Timestamp(T0, unit="s", tz="UTC")


@pytest.mark.parametrize("period", [1, 60])
def test_network_gbps_uses_period(period):
    # 1 Gbps in for 1 s is 125e6 bytes; for 60 s it is 7.5e9 bytes.
    in_bytes = 1e9 / 8 * period
    df = make_metrics("p", nodes=("n1", "n2"), seconds=600, period=period)
    df.loc[df["metric"] == "NetworkBytesIn", "value"] = in_bytes
    df.loc[df["metric"] == "NetworkBytesOut", "value"] = 2 * in_bytes
    net = network_gbps(df)
    assert list(net.columns) == [
        "point_id",
        "node_id",
        "timestamp",
        "period_s",
        "in_gbps",
        "out_gbps",
    ]
    assert len(net) == 2 * 600 // period
    assert np.allclose(net["in_gbps"], 1.0) and np.allclose(net["out_gbps"], 2.0)


def test_network_gbps_without_network_rows():
    df = make_metrics("p")
    net = network_gbps(df[~df["metric"].str.startswith("Network")])
    assert net.empty and {"in_gbps", "out_gbps"} <= set(net.columns)


def _panel(chart, title_start):
    (panel,) = [p for p in chart.panels if p.title.startswith(title_start)]
    return panel


def _dashboard(spec, metrics=None, load=None):
    m = normalize_metrics(metrics if metrics is not None else make_metrics("p", nodes=("n1", "n2")))
    return plots.point_chart("t", m, network_gbps(m), load or make_load(), spec, T0)


def test_network_panels_draw_baseline_and_burst():
    chart = _dashboard(make_spec(baseline=0.937, burst=12.5))
    for title in ("network in", "network out"):
        panel = _panel(chart, title)
        assert {(h.label, h.y) for h in panel.hlines} == {
            ("baseline 0.937", 0.937),
            ("burst 12.5", 12.5),
        }
        assert len(panel.lines) == 2  # one per node
    no_spec = _dashboard(None)
    assert all(_panel(no_spec, t).hlines == [] for t in ("network in", "network out"))
    assert "no documented bandwidth" in _panel(no_spec, "network in").title
    flat = _dashboard(make_spec(baseline=10, burst=10))
    assert [h.label for h in _panel(flat, "network in").hlines] == ["baseline 10"]


def test_dashboard_panels_values_and_legend():
    metrics = make_metrics("p", nodes=("n2", "n1"), values={"CPUUtilization": 55.0})
    chart = _dashboard(make_spec(), metrics, make_load(ops=1000))
    assert [k.label for k in chart.keys] == ["n1", "n2"]  # one colour per node, sorted
    cpu = _panel(chart, "CPUUtilization")
    assert all(np.allclose(ln.y, 55.0) for ln in cpu.lines)
    assert cpu.ymax_at_least == 100.0
    net_out = _panel(chart, "network out")
    assert all(np.allclose(ln.y, 1.0) for ln in net_out.lines)  # Gbps, not bytes
    mem = _panel(chart, "BytesUsedForCache")
    assert all(np.allclose(ln.y, 2.0) for ln in mem.lines)  # GiB
    ops = _panel(chart, "throughput")
    assert ops.hlines[0].y == 1000 and len(ops.lines[0].y) == 60
    assert [k.label for k in _panel(chart, "latency").keys] == ["p50", "p99"]
    assert chart.xlabel == "seconds since load start" and chart.note == ""


def test_dashboard_downsamples_hour_of_seconds_and_says_so():
    metrics = make_metrics(
        "p",
        nodes=("n1",),
        seconds=3600,
        overrides={("n1", "CPUUtilization"): np.r_[np.full(1800, 10.0), 97.0, np.full(1799, 10.0)]},
    )
    chart = _dashboard(make_spec(), metrics, make_load(seconds=3600))
    (line,) = _panel(chart, "CPUUtilization").lines
    assert len(line.y) <= plots.MAX_POINTS
    assert line.hi.max() == 97.0 and line.lo.min() == 10.0  # the one-second spike survives
    assert chart.xlabel == "minutes since load start" and chart.xlim == (0.0, 60.0)
    assert "buckets" in chart.note and "min-max" in chart.note


def _three_node_case():
    point = make_point(topology=Topology(cluster_mode=True, shards=1, replicas=2))
    assert point.topology.nodes == 3
    cpu_n1 = np.where(np.arange(60) % 2 == 0, 20.0, 60.0)  # mean 40, max 60
    out_n1 = np.r_[np.full(10, 2.0), np.full(50, 0.5)]  # above 1 Gbps for 10 s
    metrics = make_metrics(
        point.id,
        nodes=("n1", "n2", "n3"),
        values={
            "CPUUtilization": 10.0,
            "NetworkBytesOut": 0.4,
            "Evictions": 1.0,
            "BytesUsedForCache": 1.0 * GIB,
        },
        overrides={
            ("n1", "CPUUtilization"): cpu_n1,
            ("n2", "CPUUtilization"): 30.0,
            ("n1", "NetworkBytesOut"): out_n1,
            ("n3", "BytesUsedForCache"): 3.0 * GIB,
            ("n3", "DatabaseMemoryUsagePercentage"): 45.0,
        },
    )
    return point, metrics


def test_point_summary_values():
    point, metrics = _three_node_case()
    spec = make_spec(baseline=1.0, burst=10.0)
    price = make_price(0.5, source="a test's price", as_of=date(2025, 3, 14))
    row = point_summary(point, metrics, make_load(ops=100_000, p99=1.2), spec, price)
    assert list(row) == SUMMARY_COLUMNS
    assert row["topology"] == "c1r2" and row["nodes"] == 3
    assert row["ops_per_sec"] == 100_000 and row["p99_ms"] == 1.2
    assert row["p99_9_ms"] == pytest.approx(1.8)
    assert row["cpu_mean"] == pytest.approx(40.0)  # busiest node's mean
    assert row["cpu_max"] == pytest.approx(60.0)
    assert row["engine_cpu_mean"] == pytest.approx(60.0)
    assert row["net_out_gbps_peak"] == pytest.approx(2.0)
    assert row["net_out_gbps_mean"] == pytest.approx((10 * 2.0 + 50 * 0.5) / 60)
    assert row["net_in_gbps_peak"] == pytest.approx(0.5)
    assert row["peak_pct_of_baseline"] == pytest.approx(200.0)
    assert row["seconds_above_baseline"] == 10
    assert row["baseline_gbps"] == 1.0 and row["burst_gbps"] == 10.0
    assert row["allowance_exceeded"] is None  # not an aws agent metric here
    assert row["memory_peak_bytes"] == 3.0 * GIB
    assert row["memory_peak_pct"] == 45.0
    assert row["evictions"] == 3 * 60
    assert row["price_usd_hour_node"] == 0.5
    assert row["price_source"] == "a test's price" and row["price_as_of"] == "2025-03-14"
    assert row["cluster_usd_hour"] == pytest.approx(1.5)
    assert row["ops_per_dollar"] == pytest.approx(100_000 * 3600 / 1.5)
    assert row["reads_from"] == "primary"  # the default of a load that names no replica
    replica_load = make_load(ops=1).model_copy(update={"reads_from": "replica nodes 0001-002"})
    assert point_summary(point, metrics, replica_load, spec)["reads_from"] == (
        "replica nodes 0001-002"
    )


def test_point_summary_cloudwatch_period_and_allowance():
    point = make_point()
    metrics = make_metrics(
        point.id,
        seconds=600,
        period=60,
        values={"NetworkBandwidthOutAllowanceExceeded": 0.0},
        overrides={
            ("n1", "NetworkBytesOut"): np.r_[np.full(3, 2.0), np.full(7, 0.5)],
            ("n1", "NetworkBandwidthOutAllowanceExceeded"): np.r_[np.full(3, 5.0), np.zeros(7)],
        },
    )
    row = point_summary(point, metrics, make_load(), make_spec(baseline=1.0, burst=10.0))
    assert row["net_out_gbps_peak"] == pytest.approx(2.0)
    assert row["seconds_above_baseline"] == 180  # 3 CloudWatch minutes
    assert row["allowance_exceeded"] == 15


def test_point_summary_without_spec_or_metrics():
    point = make_point()
    empty = make_metrics(point.id).iloc[0:0]
    row = point_summary(point, empty, make_load(), None)
    assert row["ops_per_sec"] == 100_000
    for key in (
        "cpu_mean",
        "net_out_gbps_peak",
        "baseline_gbps",
        "peak_pct_of_baseline",
    ):
        assert row[key] is None, key
    assert row["cluster_usd_hour"] is None and row["ops_per_dollar"] is None
    assert row["price_source"] is None and row["price_as_of"] is None


def test_export_point_writes_everything(tmp_path):
    point, metrics = _three_node_case()
    other = make_metrics("someone-else", nodes=("x",), seconds=5)
    load = make_load()
    out = tmp_path / "points" / point.id
    paths = export_point(
        point,
        pd.concat([metrics, other]),
        load,
        out,
        make_spec(baseline=1.0, burst=10.0),
    )
    for key in ("metrics_parquet", "metrics_csv", "load", "point", "metrics_summary"):
        assert (out / paths[key].split("/")[-1]).is_file(), key
    png = out / "figures" / "dashboard.png"
    pdf = out / "figures" / "dashboard.pdf"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert paths["fig_dashboard_png"] == str(png) and paths["fig_dashboard_pdf"] == str(pdf)
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["dashboard.pdf", "dashboard.png"]
    assert LoadResult.model_validate_json((out / "load.json").read_text()) == load
    assert Point.model_validate_json((out / "point.json").read_text()) == point
    back = pd.read_parquet(paths["metrics_parquet"])
    assert set(back["point_id"]) == {point.id}  # other points' rows dropped
    assert json.loads((out / "point.json").read_text())["id"] == point.id
