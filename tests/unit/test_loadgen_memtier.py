"""memtier_benchmark: argv, password handling, JSON/HDR parsing, merging results."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from cachebench.loadgen import hdr
from cachebench.loadgen.auth import AUTH_ENV, MASK, mask_argv, unwrap
from cachebench.loadgen.memtier import (
    APPROX_NOTE,
    TXT_NOTE,
    memtier_argv,
    merge_results,
    parse_memtier_json,
    scrub_memtier_json,
)
from cachebench.models import Endpoint, LoadResult, SecondSample, Workload

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "loadgen"
JSON = FIX / "memtier_2x.json"
SECRET = "p@ss w'rd$HOME\"x"


def wl(**kw) -> Workload:
    return Workload(name="w", **kw)


def ep(**kw) -> Endpoint:
    return Endpoint(host=kw.pop("host", "10.0.0.5"), port=kw.pop("port", 6379), **kw)


def argv_of(**kw) -> list[str]:
    defaults = dict(password_env=False, test_time=60, out_prefix="/tmp/x/measured-g0")
    return memtier_argv(
        kw.pop("workload", wl()), kw.pop("endpoint", ep(cluster_mode=False)), **(defaults | kw)
    )


def test_argv_basic_shape():
    argv = argv_of(
        workload=wl(
            ratio="1:4",
            value_size=512,
            key_space=5000,
            key_pattern="G:G",
            pipeline=8,
            clients=25,
            threads=2,
        ),
        test_time=120,
    )
    assert argv[0] == "memtier_benchmark"
    for flag in (
        "--server=10.0.0.5",
        "--port=6379",
        "--protocol=redis",
        "--ratio=1:4",
        "--data-size=512",
        "--key-maximum=5000",
        "--key-pattern=G:G",
        "--pipeline=8",
        "--clients=25",
        "--threads=2",
        "--test-time=120",
        "--hide-histogram",
        "--print-percentiles=50,90,99,99.9",
        "--json-out-file=/tmp/x/measured-g0.json",
        "--hdr-file-prefix=/tmp/x/measured-g0",
        "--distinct-client-seed",
        "--randomize",
    ):
        assert flag in argv
    assert "--cluster-mode" not in argv and "--tls" not in argv
    assert not any(a.startswith(("--rate-limiting", "--authenticate")) for a in argv)


def test_argv_cluster_tls_rate_limit():
    argv = argv_of(
        workload=wl(rate_limit=200),
        endpoint=ep(cluster_mode=True, tls=True),
        tls_skip_verify=True,
    )
    assert "--cluster-mode" in argv
    assert "--tls" in argv and "--tls-skip-verify" in argv
    assert "--rate-limiting=200" in argv
    assert "--tls-skip-verify" not in argv_of(endpoint=ep(cluster_mode=False, tls=True))


def test_password_never_in_argv_but_reaches_memtier(tmp_path):
    argv = argv_of(password_env=True, endpoint=ep(cluster_mode=False, auth_ref="/run/pw"))
    assert argv[:2] == ["/bin/sh", "-c"]
    assert f'--authenticate="${AUTH_ENV}"' in argv[2]
    assert unwrap(argv) == argv_of()
    assert not any(SECRET in a for a in argv)
    # A stand-in memtier_benchmark that records its argv: the shell hands it the
    # password as one argument, however odd its characters.
    fake = tmp_path / "memtier_benchmark"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > "$ARGS_OUT"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "args"
    env = {"PATH": f"{tmp_path}:{os.environ['PATH']}", AUTH_ENV: SECRET, "ARGS_OUT": str(out)}
    subprocess.run(argv, env=env, check=True, timeout=10)
    got = out.read_text().splitlines()
    assert got[-1] == f"--authenticate={SECRET}"
    assert got[:-1] == argv_of()[1:]


def test_mask_argv():
    assert mask_argv(["x", f"--authenticate={SECRET}", "-a", SECRET], SECRET) == [
        "x",
        f"--authenticate={MASK}",
        "-a",
        MASK,
    ]
    assert mask_argv(["a", "b"], "") == ["a", "b"]


def test_parse_fixture_uses_memtiers_own_histogram():
    doc = json.loads(JSON.read_text())
    totals = doc["ALL STATS"]["Totals"]
    r = parse_memtier_json(JSON, tool_version="memtier_benchmark 2.1.1")
    assert r.tool == "memtier_benchmark" and r.tool_version == "memtier_benchmark 2.1.1"
    assert r.requests == totals["Count"] == 416_590
    assert r.ops_per_sec == totals["Ops/sec"]
    assert r.set_ops_per_sec == doc["ALL STATS"]["Sets"]["Ops/sec"]
    assert r.get_ops_per_sec == doc["ALL STATS"]["Gets"]["Ops/sec"]
    assert r.kb_per_sec == totals["KB/sec"]
    assert r.started_at == pytest.approx(1_732_594_800.123)
    assert r.elapsed_seconds == pytest.approx(10.001)
    assert r.errors == 0
    pct = totals["Percentile Latencies"]
    lat = r.latency
    assert (lat.p50, lat.p90, lat.p99, lat.p99_9) == (
        pct["p50.00"],
        pct["p90.00"],
        pct["p99.00"],
        pct["p99.90"],
    )
    assert lat.mean == totals["Average Latency"] and lat.max == totals["Max Latency"]
    assert hdr.decode(r.histogram).get_total_count() == r.requests
    assert len(r.series) == 11 and r.series[0] == SecondSample(
        second=0, ops_per_sec=38_500, p50_ms=4.543, p99_ms=7.647
    )
    assert sum(s.ops_per_sec for s in r.series) == r.requests


def _without_compressed() -> dict:
    doc = json.loads(JSON.read_text())
    for block in doc["ALL STATS"].values():
        if isinstance(block, dict):
            block.get("Percentile Latencies", {}).pop("Histogram log format", None)
    return doc


def test_parse_falls_back_to_hgrm_log_exactly():
    exact = parse_memtier_json(JSON)
    r = parse_memtier_json(_without_compressed(), hdr_prefix=FIX / "memtier_2x")
    assert r.latency == exact.latency
    assert r.tool_version == "memtier_benchmark"


def test_parse_falls_back_to_percentile_txt(tmp_path):
    shutil.copy(FIX / "memtier_2x_FULL_RUN_1.txt", tmp_path / "run_FULL_RUN_1.txt")
    exact = parse_memtier_json(JSON).latency
    r = parse_memtier_json(_without_compressed(), hdr_prefix=tmp_path / "run")
    assert TXT_NOTE in r.tool_version
    for a, b in (
        (r.latency.p50, exact.p50),
        (r.latency.p99, exact.p99),
        (r.latency.p99_9, exact.p99_9),
    ):
        assert a == pytest.approx(b, rel=0.015)


def test_parse_approximates_from_percentile_table(tmp_path):
    r = parse_memtier_json(_without_compressed(), hdr_prefix=tmp_path / "none")
    assert APPROX_NOTE in r.tool_version
    pct = json.loads(JSON.read_text())["ALL STATS"]["Totals"]["Percentile Latencies"]
    got = (r.latency.p50, r.latency.p90, r.latency.p99, r.latency.p99_9)
    want = (pct["p50.00"], pct["p90.00"], pct["p99.00"], pct["p99.90"])
    assert got == pytest.approx(want, rel=1e-3)


def test_scrub_masks_password_memtier_writes_into_json(tmp_path):
    path = tmp_path / "g0.json"
    doc = json.loads(JSON.read_text())
    doc["configuration"]["authenticate"] = SECRET
    path.write_text(json.dumps(doc))
    assert scrub_memtier_json(path) is True
    text = path.read_text()
    assert SECRET not in text and json.loads(text)["configuration"]["authenticate"] == MASK
    assert scrub_memtier_json(path) is False
    assert parse_memtier_json(path).requests == 416_590


def test_scrub_handles_memtiers_unescaped_password(tmp_path):
    # memtier prints "%s" unescaped: a quote in the password breaks the JSON.
    path = tmp_path / "g0.json"
    path.write_text(JSON.read_text().replace('"authenticate": ""', f'"authenticate": "{SECRET}"'))
    with pytest.raises(json.JSONDecodeError):
        json.loads(path.read_text())
    assert scrub_memtier_json(path) is True
    assert SECRET not in path.read_text()
    assert json.loads(path.read_text())["configuration"]["authenticate"] == MASK
    uri = tmp_path / "u.json"
    uri.write_text(json.dumps({"configuration": {"uri": "redis://default:hunter2@h:6379"}}))
    assert scrub_memtier_json(uri) is True
    assert "hunter2" not in uri.read_text()


def _result(values_us: list[int], start: float, per_sec: list[float], **kw) -> LoadResult:
    h = hdr.new_histogram()
    for v in values_us:
        hdr.record_us(h, v)
    return LoadResult(
        tool="memtier_benchmark",
        started_at=start,
        elapsed_seconds=len(per_sec),
        requests=len(values_us),
        ops_per_sec=sum(per_sec) / len(per_sec),
        kb_per_sec=100.0,
        latency=hdr.latency_from(h),
        series=[
            SecondSample(second=i, ops_per_sec=v, p50_ms=1.0, p99_ms=2.0)
            for i, v in enumerate(per_sec)
        ],
        histogram=hdr.encode(h),
        **kw,
    )


def test_merge_results_sums_rates_and_merges_histograms():
    a = _result(
        [1000] * 980 + [50_000] * 20,
        100.0,
        [500, 500],
        set_ops_per_sec=100,
        get_ops_per_sec=400,
        errors=1,
    )
    b = _result([2000] * 1000, 101.0, [500, 500], set_ops_per_sec=90, get_ops_per_sec=410)
    m = merge_results([a, b])
    assert m.generators == 2
    assert m.requests == 2000 and m.errors == 1
    assert m.ops_per_sec == a.ops_per_sec + b.ops_per_sec
    assert (m.set_ops_per_sec, m.get_ops_per_sec, m.kb_per_sec) == (190, 810, 200)
    assert m.started_at == 100.0 and m.elapsed_seconds == 3.0
    # b started one second later: its second 0 is a's second 1.
    assert [(s.second, s.ops_per_sec) for s in m.series] == [(0, 500), (1, 1000), (2, 500)]
    assert all(s.p50_ms is None and s.p99_ms is None for s in m.series)
    assert m.latency.p99 == 2.0  # not (50 + 2) / 2
    assert m.latency.max == pytest.approx(50.0, rel=1e-3)
    assert m.latency.mean == pytest.approx((a.latency.mean * 1000 + b.latency.mean * 1000) / 2000)
    assert hdr.decode(m.histogram).get_total_count() == 2000


def test_merge_results_refuses_without_histograms():
    a = _result([1000], 0.0, [1.0])
    b = a.model_copy(update={"histogram": ""})
    with pytest.raises(ValueError, match="never averaged"):
        merge_results([a, b])
    with pytest.raises(ValueError):
        merge_results([])
    assert merge_results([a]) is a


def test_merge_two_real_memtier_results():
    r = parse_memtier_json(JSON)
    m = merge_results([r, r.model_copy(update={"started_at": r.started_at + 0.2})])
    assert m.requests == 2 * r.requests and m.generators == 2
    assert m.latency.p50 == r.latency.p50 and m.latency.p99 == r.latency.p99
    assert m.series[0].ops_per_sec == 2 * r.series[0].ops_per_sec
