"""The export's fast paths give what the straightforward versions gave.

metrics.csv read back by pandas and pyarrow, Gbps as a pandas groupby,
statistics kept by export_point as the ones computed again from metrics.parquet.
"""

from __future__ import annotations

import gc
import json

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
from cachebench.report.export import (
    CATEGORICAL,
    NET_IN,
    NET_OUT,
    STATS_FILE,
    cached_summary,
    export_point,
    network_gbps,
    normalize_metrics,
    point_summary,
    write_metrics,
)
from cachebench.report.report import build_report


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


def _reference_gbps(df: pd.DataFrame) -> pd.DataFrame:
    """network_gbps as a pandas groupby-mean-unstack (how it was written first)."""
    cols = ["point_id", "node_id", "timestamp", "period_s"]
    sel = df.loc[df["metric"].isin([NET_IN, NET_OUT]).to_numpy()]
    frame = sel[cols].assign(
        direction=sel["metric"].astype("str").map({NET_IN: "in_gbps", NET_OUT: "out_gbps"}),
        gbps=sel["value"].to_numpy() * 8.0 / sel["period_s"].to_numpy() / 1e9,
    )
    wide = (
        frame.groupby([*cols, "direction"], observed=True, sort=True)["gbps"]
        .mean()
        .unstack("direction")
        .reindex(columns=["in_gbps", "out_gbps"])
        .reset_index()
    )
    wide.columns.name = None
    return wide


def test_network_gbps_matches_pandas_groupby():
    raw = pd.concat(
        [
            make_metrics("p", nodes=("n2", "n1", "n3"), seconds=40),
            make_metrics("a", nodes=("z",), seconds=5),
        ],
        ignore_index=True,
    )
    late_in = (raw["node_id"] == "n3") & (raw["metric"] == NET_IN) & (raw["timestamp"] > T0 + 10)
    raw = raw[~late_in]  # n3 lacks "in" after 10 s: NaN there
    raw.loc[raw.index[:3], "value"] = np.nan
    raw = pd.concat([raw, raw.iloc[:50]])  # duplicate samples are averaged
    for df in (raw, normalize_metrics(raw), raw.sample(frac=1, random_state=1)):
        mine, ref = network_gbps(df), _reference_gbps(df)
        pd.testing.assert_frame_equal(mine, ref)


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


def _reference_read(path, point_id: str, start: float, end: float) -> pd.DataFrame:
    """read_agent_csv as first written: pandas all the way, then normalize_metrics."""
    raw = pd.read_csv(path)
    raw = raw[(raw["timestamp"] >= start) & (raw["timestamp"] <= end)]
    measured = raw["period_s"].to_numpy(dtype="float64")
    period = np.maximum(np.rint(measured), 1.0)
    counter = raw["metric"].isin(export.COUNTERS).to_numpy() & (measured > 0)
    scale = np.where(counter, period / np.where(measured > 0, measured, 1.0), 1.0)
    raw = raw.assign(
        value=raw["value"].to_numpy() * scale, period_s=period, point_id=point_id
    ).drop(columns=[c for c in raw.columns if c not in METRIC_COLUMNS])
    return normalize_metrics(raw)


def test_read_agent_csv_matches_a_plain_pandas_read(tmp_path):
    rng = np.random.default_rng(5)
    df = make_metrics("ignored", nodes=("b", "a"), seconds=40)
    df["period_s"] = np.where(df["timestamp"] == T0, 0.0, rng.uniform(0.98, 1.02, len(df)))
    df["value"] = rng.uniform(0, 1e9, len(df))
    path = tmp_path / "metrics.csv"
    df.to_csv(path, index=False)
    got = export.read_agent_csv(path, "p7", start=T0 + 3, end=T0 + 30)
    ref = _reference_read(path, "p7", T0 + 3, T0 + 30)
    pd.testing.assert_frame_equal(
        got.astype({c: "str" for c in CATEGORICAL}), ref.astype({c: "str" for c in CATEGORICAL})
    )
    assert export._is_normal(got)  # later normalisations are free


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
