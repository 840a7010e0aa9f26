"""The export's fast paths: what they give, worked out by hand.

metrics.csv read back by pandas and pyarrow, the agent's file read and its network
counters as Gbps (values by hand from a small real agent file, tests/fixtures/agent),
statistics kept by export_point as the ones computed again from metrics.parquet.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import pytest
from test_export_support import (
    T0,
    make_load,
    make_metrics,
    make_point,
    make_spec,
    write_point_dir,
)

from cachebench.models import METRIC_COLUMNS
from cachebench.report import export
from cachebench.report.build import build_report
from cachebench.report.export import (
    CATEGORICAL,
    STATS_FILE,
    cached_summary,
    export_point,
    network_gbps,
    normalize_metrics,
    point_summary,
    write_metrics,
)


def _awkward_metrics() -> pd.DataFrame:
    df = make_metrics("p,1", nodes=('n"1', "n,2\nx"), seconds=6)
    rng = np.random.default_rng(3)
    df["value"] = rng.normal(0, 1e9, len(df))
    df.loc[:4, "value"] = [np.nan, np.inf, -0.0, 1e-300, 123456789.125]
    df["timestamp"] = df["timestamp"] + rng.uniform(0, 1, len(df))  # sub-second times
    return df


def test_metrics_csv_reads_back_as_the_table(tmp_path):
    df = _awkward_metrics()
    write_metrics(df, tmp_path)
    want = normalize_metrics(df)
    for back in (
        pd.read_csv(tmp_path / "metrics.csv", keep_default_na=False, na_values=[""]),
        pacsv.read_csv(tmp_path / "metrics.csv").to_pandas(),
    ):
        assert list(back.columns) == METRIC_COLUMNS
        ts = pd.to_datetime(back["timestamp"], utc=True)
        assert (ts == want["timestamp"].dt.floor("us")).all()  # microseconds, UTC
        for col in CATEGORICAL:  # quotes, commas and newlines survive the quoting
            assert back[col].astype(str).tolist() == want[col].astype(str).tolist()
        # Floats round-trip exactly; NaN is an empty cell (read back as missing).
        np.testing.assert_array_equal(back["value"].to_numpy(float), want["value"].to_numpy())
        assert back["period_s"].tolist() == want["period_s"].tolist()


def test_metrics_csv_bytes(tmp_path):
    """The text, as written by hand from pyarrow.csv's documented defaults: quoted
    header and strings, the timestamp as quoted ISO text, numbers bare, NaN empty."""
    df = pd.DataFrame(
        {
            "timestamp": [T0, T0 + 1.5],
            "point_id": ["p", "p"],
            "node_id": ["n1", 'n"2'],
            "metric": ["CPUUtilization", "NetworkBytesIn"],
            "value": [40.0, np.nan],
            "unit": ["Percent", "Bytes"],
            "period_s": [1, 1],
        }
    )
    write_metrics(df, tmp_path)
    assert (tmp_path / "metrics.csv").read_text() == (
        '"timestamp","point_id","node_id","metric","value","unit","period_s"\n'
        '"2023-11-14 22:13:20.000000Z","p","n1","CPUUtilization",40,"Percent",1\n'
        '"2023-11-14 22:13:21.500000Z","p","n""2","NetworkBytesIn",,"Bytes",1\n'
    )
    write_metrics(df.iloc[0:0], tmp_path)
    assert (tmp_path / "metrics.csv").read_text() == (
        '"timestamp","point_id","node_id","metric","value","unit","period_s"\n'
    )


# A real agent file (tests/fixtures/agent/README.md): one redis-server node, six samples;
# the load (30,000 SETs + 30,000 GETs) is in the sample at LOAD.
AGENT_CSV = Path(__file__).resolve().parents[1] / "fixtures" / "agent" / "metrics.csv"
FIRST, SHORT, LOAD = 1796620739.552, 1796620740.548, 1796620742.548  # unix seconds


def at(df: pd.DataFrame, t: float, metric: str | None = None) -> pd.DataFrame:
    """Rows within a millisecond of t (of one metric)."""
    near = (df["timestamp"] - pd.Timestamp(t, unit="s", tz="UTC")).abs() < pd.Timedelta("1ms")
    if metric is not None:
        near &= df["metric"] == metric
    return df[near.to_numpy()]


def test_read_agent_csv_by_hand_from_a_real_agent_file():
    df = export.read_agent_csv(AGENT_CSV, "p7")
    # 5 gauges in the first sample, then 15 metrics in each of the 5 others
    assert len(df) == 5 + 5 * 15 and set(df["point_id"]) == {"p7"}  # the file's id ignored
    assert set(df["node_id"]) == {"0001-001"}
    # unix seconds as UTC (to the float's own precision, 0.2 us at this epoch)
    first = at(df, FIRST)["timestamp"].iloc[0]
    assert str(first.round("us")) == "2026-12-07 05:18:59.552000+00:00"
    # the measured intervals 0 (first, gauges only) and 0.995 s are whole seconds: 1
    assert df["period_s"].tolist() == [1] * 80
    # counters are rescaled to the whole second: 122 bytes in 0.995 s are 122 / 0.995
    assert at(df, SHORT, "NetworkBytesIn")["value"].item() == pytest.approx(122.6130653, rel=1e-9)
    assert at(df, SHORT, "NetworkBytesOut")["value"].item() == pytest.approx(4318.592965, rel=1e-9)
    assert at(df, SHORT, "NewConnections")["value"].item() == 0.0
    # gauges as written: CPU percent, memory bytes
    assert at(df, SHORT, "CPUUtilization")["value"].item() == 0.165551
    assert at(df, SHORT, "BytesUsedForCache")["value"].item() == 975968.0
    # 1.0 s samples: counters as written
    assert at(df, LOAD, "GetTypeCmds")["value"].item() == 30000.0
    assert at(df, LOAD, "CacheHits")["value"].item() == 30000.0
    assert at(df, LOAD, "NetworkBytesIn")["value"].item() == 4290775.0
    # the window [start, end] keeps both ends: the samples at LOAD - 1, LOAD and LOAD + 1
    window = export.read_agent_csv(AGENT_CSV, "p7", start=LOAD - 1, end=LOAD + 1)
    assert len(window) == 3 * 15 and window["timestamp"].nunique() == 3
    assert export._is_normal(window)  # later normalisations are free


def test_network_gbps_by_hand_from_a_real_agent_file():
    net = network_gbps(export.read_agent_csv(AGENT_CSV, "p7"))
    assert list(net.columns) == ["point_id", "node_id", "timestamp", "period_s", "in_gbps",
                                 "out_gbps"]  # fmt: skip
    assert len(net) == 5 and net["timestamp"].is_monotonic_increasing  # not the gauge-only one
    # bytes x 8 / period / 1e9: 4,290,775 B in, 2,284,483 B out in the load's second
    load = at(net, LOAD)
    assert load["in_gbps"].item() == pytest.approx(0.0343262, rel=1e-9)
    assert load["out_gbps"].item() == pytest.approx(0.018275864, rel=1e-9)
    # the 0.995 s sample, rescaled to 1 s: 122 / 0.995 x 8 / 1e9
    assert at(net, SHORT)["in_gbps"].item() == pytest.approx(9.809045e-7, rel=1e-6)
    assert at(net, SHORT)["out_gbps"].item() == pytest.approx(3.4548744e-5, rel=1e-7)


def test_network_gbps_averages_duplicates_and_leaves_a_missing_direction_nan():
    """By hand: node a sends 1 GB and 3 GB in (two samples of one second: 8 and 24 Gbps,
    mean 16) and nothing out; node b 1 GB in and 0.5 GB out over a 2 s period (4 and 2
    Gbps); a NaN sample is skipped; rows in any order give the same table."""
    rows = [
        ("a", "NetworkBytesIn", 1e9, 1),
        ("a", "NetworkBytesIn", 3e9, 1),
        ("a", "NetworkBytesIn", np.nan, 1),
        ("b", "NetworkBytesIn", 1e9, 2),
        ("b", "NetworkBytesOut", 0.5e9, 2),
        ("b", "CPUUtilization", 50.0, 2),  # not a network counter: not a column
    ]
    df = pd.DataFrame(
        {
            "timestamp": T0,
            "point_id": "p",
            "node_id": [r[0] for r in rows],
            "metric": [r[1] for r in rows],
            "value": [r[2] for r in rows],
            "unit": "Bytes",
            "period_s": [r[3] for r in rows],
        }
    )
    for frame in (df, df.iloc[::-1], normalize_metrics(df)):
        net = network_gbps(frame)
        assert net["node_id"].astype(str).tolist() == ["a", "b"]
        assert net["period_s"].tolist() == [1, 2]
        np.testing.assert_allclose(net["in_gbps"], [16.0, 4.0])
        np.testing.assert_allclose(net["out_gbps"], [np.nan, 2.0])


def test_normalize_metrics_ignores_the_frames_index():
    df = make_metrics("p", nodes=("a", "b"), seconds=3)
    shuffled = df.sample(frac=1, random_state=2)  # index no longer 0..n-1
    doubled = pd.concat([df, df])  # index labels repeat
    for frame in (shuffled, doubled):
        out = normalize_metrics(frame)
        assert list(out.index) == list(range(len(frame)))
        assert np.array_equal(out["value"].to_numpy(), frame["value"].to_numpy())
        assert out["metric"].astype(str).tolist() == frame["metric"].tolist()


def test_normalize_metrics_returns_a_normal_table_as_is():
    m = normalize_metrics(make_metrics("p"))
    assert normalize_metrics(m) is m
    with_unused = m.assign(node_id=m["node_id"].cat.add_categories(["gone"]))
    assert list(normalize_metrics(with_unused)["node_id"].cat.categories) == ["n1"]


def _case():
    point = make_point()
    metrics = make_metrics(
        point.id,
        nodes=("n1", "n2"),
        seconds=120,
        overrides={
            ("n1", "NetworkBytesOut"): np.r_[np.full(30, 2.0), np.full(90, 0.5)],
            ("n2", "CPUUtilization"): np.linspace(5, 95, 120),
        },
        values={"NetworkBandwidthOutAllowanceExceeded": 0.0},
    )
    metrics.loc[
        (metrics["metric"] == "NetworkBandwidthOutAllowanceExceeded")
        & (metrics["timestamp"] >= T0 + 40),
        "value",
    ] = 1.0
    return point, metrics


def test_export_keeps_the_summary_the_report_would_compute(tmp_path):
    point, metrics = _case()
    spec = make_spec(baseline=1.0, burst=10.0)
    load = make_load()
    out = tmp_path / "points" / point.id
    export_point(point, metrics, load, out, spec)
    cached = cached_summary(out, 1.0)
    assert cached is not None
    cached_load, stats = cached
    fresh = point_summary(point, pd.read_parquet(out / "metrics.parquet"), load, spec)
    assert {k: fresh[k] for k in stats} == pytest.approx(stats)
    assert stats["seconds_above_baseline"] == 30
    assert stats["allowance_first_exceeded_s"] == 40
    assert cached_load.ops_per_sec == load.ops_per_sec and cached_load.series == []

    specs = {(spec.target, spec.node_type): spec}
    build_report(tmp_path, specs)
    with_cache = pd.read_csv(tmp_path / "summary.csv")
    (out / STATS_FILE).unlink()
    build_report(tmp_path, specs)
    pd.testing.assert_frame_equal(with_cache, pd.read_csv(tmp_path / "summary.csv"))


def test_cached_summary_is_ignored_when_its_inputs_change(tmp_path):
    point, metrics = _case()
    out = tmp_path / point.id
    export_point(point, metrics, make_load(), out, make_spec(baseline=1.0))
    assert cached_summary(out, 1.0) is not None
    assert cached_summary(out, 2.0) is None  # another baseline: recompute
    write_metrics(metrics.iloc[:100], out)  # the parquet changed since
    assert cached_summary(out, 1.0) is None

    export_point(point, metrics, make_load(), out, make_spec(baseline=1.0))
    (out / "load.json").write_text(make_load(ops=5.0).model_dump_json())
    assert cached_summary(out, 1.0) is None
    export_point(point, metrics, make_load(), out, make_spec(baseline=1.0))
    (out / STATS_FILE).write_text(json.dumps({"version": 1}))
    assert cached_summary(out, 1.0) is None
    (out / STATS_FILE).write_text("not json")
    assert cached_summary(out, 1.0) is None


def test_report_without_cache_still_reads_the_parquet(tmp_path):
    spec = make_spec(baseline=1.0)
    point, metrics = _case()
    write_point_dir(tmp_path, point, make_load(), metrics=metrics)  # no export_point: no cache
    build_report(tmp_path, {(spec.target, spec.node_type): spec})
    row = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    assert row["status"] == "ok" and row["seconds_above_baseline"] == 30


def test_gc_paused_restores_the_collector():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), export.gc_paused():
        assert not gc.isenabled()
        with export.gc_paused():  # nested: the outer pause holds
            pass
        assert not gc.isenabled()
        raise RuntimeError("boom")
    assert gc.isenabled()
    gc.disable()
    try:
        with export.gc_paused():
            pass
        assert not gc.isenabled()  # was off: stays off
    finally:
        gc.enable()
