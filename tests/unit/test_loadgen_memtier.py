"""memtier_benchmark: argv, password handling, JSON/HDR parsing, merging results.

The parsing tests read real memtier output (tests/fixtures/memtier-real/, see its
README: memtier built from source, before the upstream fixes of Totals latency and
of the truncated duration; the "master_" captures from its default branch at
2f74d61) and compare with what memtier printed (the .stdout files) and with
values computed by hand from the files' own counts.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from cachebench.loadgen import hdr
from cachebench.loadgen.auth import AUTH_ENV, MASK, mask_argv, unwrap
from cachebench.loadgen.memtier import (
    SOURCE_BUILD,
    TABLE_NOTE,
    TXT_NOTE,
    error_replies,
    memtier_argv,
    memtier_version,
    merge_results,
    parse_memtier_json,
    rate_limit_problem,
    scrub_memtier_json,
    side_workloads,
)
from cachebench.models import Endpoint, LoadResult, SecondSample, Workload

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "memtier-real"
CAPTURES = ["single", "cluster3", "rate800_t2", "rate800_t5", "master_single", "master_rate800_t5"]
SECRET = "p@ss w'rd$HOME\"x"
CACERT = "/etc/ssl/certs/ca-certificates.crt"
T0 = 1_796_000_000.25  # a process start the caller recorded


def wl(**kw) -> Workload:
    return Workload(name="w", **kw)


def ep(**kw) -> Endpoint:
    return Endpoint(host=kw.pop("host", "10.0.0.5"), port=kw.pop("port", 6379), **kw)


def argv_of(**kw) -> list[str]:
    defaults = dict(password_env=False, test_time=60, out_prefix="/tmp/x/measured-g0")
    return memtier_argv(
        kw.pop("workload", wl()), kw.pop("endpoint", ep(cluster_mode=False)), **(defaults | kw)
    )


def stem(name: str) -> Path:
    """The capture's files without their suffix: memtier_real_<name>, memtier_master_*."""
    return REAL / (f"memtier_{name}" if name.startswith("master_") else f"memtier_real_{name}")


def path_of(name: str) -> Path:
    return Path(f"{stem(name)}.json")


def doc_of(name: str) -> dict:
    return json.loads(path_of(name).read_text())


def printed(name: str) -> dict[str, float]:
    """memtier's printed Totals row: Ops/sec, Avg. Latency, p50 ... p99.9 (ms)."""
    text = Path(f"{stem(name)}.stdout").read_text()
    header = next(line for line in text.splitlines() if line.startswith("Type"))
    row = next(line for line in text.splitlines() if line.startswith("Totals"))
    cols = re.split(r"\s{2,}", header.strip())[1:]
    return dict(zip(cols, (float(v) for v in row.split()[1:]), strict=True))


# ---------------------------------------------------------------- argv


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
    assert not any(a.startswith(("--rate-limiting", "--authenticate", "--cacert")) for a in argv)


def test_argv_tls_verifies_against_the_ca_bundle_given():
    argv = argv_of(endpoint=ep(cluster_mode=False, tls=True), tls_cacert=CACERT)
    assert "--tls" in argv and f"--cacert={CACERT}" in argv
    assert "--tls-skip-verify" not in argv


def test_argv_tls_skip_verify_is_an_explicit_opt_out():
    argv = argv_of(endpoint=ep(cluster_mode=False, tls=True), tls_skip_verify=True)
    assert "--tls" in argv and "--tls-skip-verify" in argv
    assert not any(a.startswith("--cacert") for a in argv)
    # skip-verify wins over a bundle: memtier would not check it anyway
    both = argv_of(
        endpoint=ep(cluster_mode=False, tls=True), tls_cacert=CACERT, tls_skip_verify=True
    )
    assert "--tls-skip-verify" in both and not any(a.startswith("--cacert") for a in both)


def test_argv_refuses_plain_tls():
    # memtier loads no system trust store: --tls alone fails every handshake
    with pytest.raises(ValueError, match="tls_cacert"):
        argv_of(endpoint=ep(cluster_mode=False, tls=True))
    no_tls = argv_of(endpoint=ep(cluster_mode=False), tls_cacert=CACERT)
    assert "--tls" not in no_tls and not any(a.startswith("--cacert") for a in no_tls)


def test_argv_cluster_and_rate_limit():
    argv = argv_of(workload=wl(rate_limit=200), endpoint=ep(cluster_mode=True))
    assert "--cluster-mode" in argv
    assert "--rate-limiting=200" in argv


def test_side_workloads_split_connections_by_the_ratio():
    # 1:4 over 25 x 4 = 100 connections: 100 * 1/5 = 20 writers, 80 readers; both
    # divide by 4 threads: 4 x 5 and 4 x 20.
    sides = side_workloads(wl(ratio="1:4", clients=25, threads=4))
    assert {s: (w.ratio, w.threads, w.clients) for s, w in sides.items()} == {
        "set": ("1:0", 4, 5),
        "get": ("0:1", 4, 20),
    }
    # 1:10 over 50 x 4 = 200: round(200 / 11) = 18 writers (3 threads x 6), 182 readers
    # (182 = 2 x 91: 2 threads x 91); every connection is kept.
    sides = side_workloads(wl(ratio="1:10", clients=50, threads=4))
    assert {s: (w.threads, w.clients) for s, w in sides.items()} == {
        "set": (3, 6),
        "get": (2, 91),
    }
    assert list(side_workloads(wl(ratio="0:1", clients=8, threads=1))) == ["get"]


def test_argv_of_both_processes_reading_from_replicas():
    w = wl(ratio="1:4", clients=25, threads=4, rate_limit=10)
    primary = ep(cluster_mode=False, host="master.example", reader_host="replica.example")
    reader = primary.model_copy(update={"host": primary.reader_host})
    sides = side_workloads(w)
    writers = argv_of(workload=sides["set"], endpoint=primary, out_prefix="/o/measured-set")
    readers = argv_of(workload=sides["get"], endpoint=reader, out_prefix="/o/measured-get")
    for flag in ("--server=master.example", "--ratio=1:0", "--threads=4", "--clients=5"):
        assert flag in writers, flag
    for flag in ("--server=replica.example", "--ratio=0:1", "--threads=4", "--clients=20"):
        assert flag in readers, flag
    for argv in (writers, readers):  # the rest of the shape is the workload's
        assert "--rate-limiting=10" in argv and "--key-maximum=100000" in argv
    assert "--json-out-file=/o/measured-set.json" in writers
    assert "--json-out-file=/o/measured-get.json" in readers


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


# ---------------------------------------------------------------- version


def test_memtier_version_lines():
    # 2.0.0 - 2.2.0 print PACKAGE_STRING (puts); 2.2.1 and later
    # printf("memtier_benchmark v=%s sha=%s:%s", ...) then bits, libevent, openssl.
    assert memtier_version("memtier_benchmark 2.1.0") == (2, 1, 0)
    line = "memtier_benchmark v=2.2.1 sha=3347cb90:0 bits=64 libevent=2.1.12-stable openssl=3.0.13"
    assert memtier_version(line) == (2, 2, 1)
    assert memtier_version("memtier_benchmark v=255.255.255 sha=2f74d611:0 bits=64") == SOURCE_BUILD
    assert memtier_version("sh: memtier_benchmark: not found") is None


def test_rate_limit_needs_memtier_2_1():
    assert "2.0.0 has no --rate-limiting" in rate_limit_problem("memtier_benchmark 2.0.0")
    assert "no version" in rate_limit_problem("")
    assert rate_limit_problem("memtier_benchmark 2.1.0") is None
    assert rate_limit_problem("memtier_benchmark v=2.3.0 sha=188107c3:0") is None
    assert rate_limit_problem("memtier_benchmark v=255.255.255 sha=2f74d611:0") is None


# ---------------------------------------------------------------- real captures

# What memtier itself wrote or printed next to what the window's counts say.
# ops/s: the complete seconds 0..T-1 of the Totals Time-Serie over T; the series'
# last entry (second T) is the partial one, a few dozen ops.
BY_HAND = {
    # name: (T, Totals Count, last partial second's ops, window ops/s)
    "single": (10, 3_358_132, 32, (3_358_132 - 32) / 10),
    "cluster3": (10, 2_871_328, 32, (2_871_328 - 32) / 10),
    "rate800_t2": (2, 1616, 8, (808 + 800) / 2),  # 804/s, not the JSON's 1586.95
    "rate800_t5": (5, 4016, 8, (808 + 4 * 800) / 5),  # 801.6/s, not 667.19
    # memtier's default branch (2f74d61): Total duration 11001 ms for 10 s, 4017 ms for 5 s
    "master_single": (
        10,
        1_713_812,
        32,
        (267216 + 212752 + 200104 + 78088 + 96124 + 122824 + 140204 + 196760 + 255812 + 143896)
        / 10,
    ),  # 171,378/s, not the JSON's 155,789.59
    "master_rate800_t5": (5, 4008, 8, (800 + 794 + 806 + 800 + 800) / 5),  # 800/s, not 997.65
}


@pytest.mark.parametrize("name", CAPTURES)
def test_real_capture_against_what_memtier_printed(name):
    doc = doc_of(name)
    totals = doc["ALL STATS"]["Totals"]
    # the bug the parser must not inherit: Totals mean written as 0
    assert totals["Latency"] == totals["Average Latency"] == 0.0
    r = parse_memtier_json(path_of(name), started_at=T0)
    shown = printed(name)
    # Mean: memtier prints hdr_mean of the same histogram with five decimals, so the
    # two agree within half the last printed digit (5e-6 ms); our Latency keeps 1 us.
    hist = hdr.decode(r.histogram)
    assert abs(hist.get_mean_value() / 1000 - shown["Avg. Latency"]) <= 5e-6
    assert abs(r.latency.mean - shown["Avg. Latency"]) <= 0.0005 + 1e-9
    # Percentiles: memtier prints whole microseconds (".xxx00"): equal at 1 us.
    got = (r.latency.p50, r.latency.p90, r.latency.p99, r.latency.p99_9)
    want = tuple(shown[f"p{p} Latency"] for p in ("50", "90", "99", "99.9"))
    assert got == want
    test_time, count, partial, ops = BY_HAND[name]
    assert r.ops_per_sec == pytest.approx(ops, abs=0.005)
    assert r.requests == count - partial  # the window's requests
    assert r.elapsed_seconds == test_time
    assert [s.second for s in r.series] == list(range(test_time))  # no partial second
    assert min(s.ops_per_sec for s in r.series) > 10 * partial  # no fall at the end
    # the histogram is the whole run's, the partial second included
    assert hist.get_total_count() >= count
    assert r.started_at == T0 and r.tool_version == "memtier_benchmark"


@pytest.mark.parametrize("name", ["rate800_t2", "rate800_t5", "master_single", "master_rate800_t5"])
def test_captures_with_memtiers_wrong_duration_are_flagged(name):
    runtime = doc_of(name)["ALL STATS"]["Runtime"]
    test_time = BY_HAND[name][0]
    # 1019 ms for 2 s, 6019 ms for 5 s; on 2f74d61 11001 ms for 10 s, 4017 ms for 5 s
    assert abs(runtime["Total duration"] / 1000 - test_time) > 0.9
    r = parse_memtier_json(path_of(name), started_at=T0)
    (note,) = [n for n in r.notes if "Total duration" in n]
    assert f"--test-time={test_time} s" in note and "Ops/sec" in note
    assert str(doc_of(name)["ALL STATS"]["Totals"]["Ops/sec"]) in note
    assert "complete seconds" in note
    assert printed(name)["Ops/sec"] != pytest.approx(r.ops_per_sec, rel=0.05)


@pytest.mark.parametrize("name", ["single", "cluster3"])
def test_full_length_captures_carry_no_duration_flag(name):
    assert parse_memtier_json(path_of(name), started_at=T0).notes == []


def test_rate800_t2_sides_and_kb_by_hand():
    r = parse_memtier_json(path_of("rate800_t2"), started_at=T0)
    assert r.set_ops_per_sec == (168 + 160) / 2  # Sets Time-Serie seconds 0 and 1
    assert r.get_ops_per_sec == (640 + 640) / 2
    # memtier's KB is (bytes RX + TX) / 1024 (run_stats.cpp summarize): Totals seconds 0, 1
    assert r.kb_per_sec == pytest.approx((4299 + 70861 + 4518 + 68458) / 1024 / 2, abs=0.005)
    assert [s.ops_per_sec for s in r.series] == [808, 800]
    assert r.series[0].p50_ms == 0.071 and r.series[0].p99_ms == 0.415


def test_cluster_capture_with_moved_and_ask_keys():
    doc = doc_of("cluster3")
    for block in ("Sets", "Gets", "Totals"):
        assert {"MOVED/sec", "ASK/sec"} <= set(doc["ALL STATS"][block])
    r = parse_memtier_json(doc, started_at=T0)
    assert r.errors == 0 and r.set_ops_per_sec + r.get_ops_per_sec == pytest.approx(
        r.ops_per_sec, abs=0.02
    )


def test_started_at_falls_back_to_memtiers_start_time_with_a_note():
    r = parse_memtier_json(path_of("single"))
    assert r.started_at == 1_796_154_038.202  # Runtime "Start time", ms
    assert any("Start time" in n for n in r.notes)


# ---------------------------------------------------------------- other memtier shapes


def fixed_release(name: str) -> dict:
    """The capture as a release with the upstream fixes would write it, by hand.

    No code in the memtier mirror (master 2f74d61, tags up to 2.3.0) has these
    fixes yet, so the variant changes exactly the fields run_stats.cpp derives
    from them: Totals Latency/Average Latency become the histogram's mean at %.3f
    (hdr_mean, as 19fe0c9 did for the aggregated types and as stdout prints it),
    Start/Finish time exact (Total duration the test time plus the few ms of the
    last replies), and each block's Ops/sec and KB/sec over that duration
    (summarize). Counts, series and histograms are what memtier measured: kept."""
    doc = copy.deepcopy(doc_of(name))
    stats = doc["ALL STATS"]
    test_time = doc["run information"]["Seconds"]
    duration_ms = test_time * 1000 + 4
    rt = stats["Runtime"]
    rt["Total duration"] = duration_ms
    rt["Finish time"] = rt["Start time"] + duration_ms
    totals = stats["Totals"]
    mean = hdr.decode(
        totals["Percentile Latencies"]["Histogram log format"]["Compressed Histogram"]
    ).get_mean_value()
    totals["Latency"] = totals["Average Latency"] = round(mean / 1000, 3)
    for block in (stats[k] for k in ("Sets", "Gets", "Totals")):
        rows = block["Time-Serie"].values()
        block["Ops/sec"] = round(block["Count"] / (duration_ms / 1000), 2)
        kb = sum(r["Bytes RX"] + r["Bytes TX"] for r in rows) / 1024
        block["KB/sec"] = block["KB/sec RX/TX"] = round(kb / (duration_ms / 1000), 2)
    return doc


@pytest.mark.parametrize("name", ["single", "rate800_t2"])
def test_fixed_release_gives_the_same_numbers(name):
    old = parse_memtier_json(path_of(name), started_at=T0)
    new = parse_memtier_json(fixed_release(name), hdr_prefix=REAL / "none", started_at=T0)
    assert new.latency.mean > 0 and new.latency == old.latency
    for field in ("ops_per_sec", "set_ops_per_sec", "get_ops_per_sec", "kb_per_sec"):
        assert getattr(new, field) == getattr(old, field), field
    assert (new.requests, new.elapsed_seconds, new.series) == (
        old.requests,
        old.elapsed_seconds,
        old.series,
    )
    assert not any("Total duration" in n for n in new.notes)
    # a fixed release's own Ops/sec is close to ours (it counts the partial second too)
    totals = fixed_release(name)["ALL STATS"]["Totals"]
    assert totals["Ops/sec"] == pytest.approx(new.ops_per_sec, rel=0.01)


def test_interrupted_run_keeps_its_complete_seconds():
    doc = copy.deepcopy(doc_of("single"))
    stats = doc["ALL STATS"]
    stats["Runtime"]["Interrupted"] = "true"  # memtier stopped (SIGINT) in second 6
    for block in (stats[k] for k in ("Sets", "Gets", "Totals")):
        rows = block["Time-Serie"]
        block["Time-Serie"] = {k: rows[k] for k in ("0", "1", "2", "3", "4", "5", "6")}
    r = parse_memtier_json(doc, started_at=T0)
    assert r.elapsed_seconds == 6 and len(r.series) == 6  # second 6 was partial
    window = 393832 + 352024 + 355092 + 337300 + 328808 + 322092
    assert r.requests == window and r.ops_per_sec == pytest.approx(window / 6, abs=0.005)
    assert any('"Interrupted": "true"' in n for n in r.notes)
    assert any("ends in second 6 of --test-time=10" in n for n in r.notes)


def test_a_second_without_replies_counts_as_zero():
    doc = copy.deepcopy(doc_of("rate800_t5"))
    stats = doc["ALL STATS"]
    for block in (stats[k] for k in ("Sets", "Gets", "Totals")):
        del block["Time-Serie"]["2"]  # memtier writes no entry for a second without replies
    r = parse_memtier_json(doc, started_at=T0)
    assert [s.ops_per_sec for s in r.series] == [808, 800, 0, 800, 800]
    assert r.ops_per_sec == (808 + 3 * 800) / 5


def test_series_without_bytes_takes_memtiers_kb_per_op():
    # memtier before 2.1 writes no Bytes RX/TX per second: KB per op comes from its
    # KB/sec over Ops/sec (both over the same duration, so the ratio is right).
    doc = copy.deepcopy(doc_of("rate800_t2"))
    totals = doc["ALL STATS"]["Totals"]
    for row in totals["Time-Serie"].values():
        del row["Bytes RX"], row["Bytes TX"]
    r = parse_memtier_json(doc, started_at=T0)
    assert r.kb_per_sec == pytest.approx(804 * 142.35 / 1586.95, abs=0.005)
    from_bytes = parse_memtier_json(path_of("rate800_t2"), started_at=T0).kb_per_sec
    assert r.kb_per_sec == pytest.approx(from_bytes, rel=0.01)


def test_no_test_time_is_refused():
    doc = copy.deepcopy(doc_of("single"))
    del doc["run information"]["Seconds"]
    assert parse_memtier_json(doc, started_at=T0).elapsed_seconds == 10  # configuration.test_time
    del doc["configuration"]["test_time"]
    with pytest.raises(ValueError, match="test time"):
        parse_memtier_json(doc, started_at=T0)


# ---------------------------------------------------------------- latency fallbacks


def without_compressed(name: str) -> dict:
    doc = copy.deepcopy(doc_of(name))
    for block in doc["ALL STATS"].values():
        if isinstance(block, dict):
            block.get("Percentile Latencies", {}).pop("Histogram log format", None)
    return doc


@pytest.mark.parametrize("name", CAPTURES)
def test_fallback_to_the_hgrm_log_is_exact(name):
    exact = parse_memtier_json(path_of(name), started_at=T0)
    r = parse_memtier_json(without_compressed(name), hdr_prefix=stem(name), started_at=T0)
    assert r.latency == exact.latency and r.notes == exact.notes


@pytest.mark.parametrize("name", CAPTURES)
def test_fallback_to_the_percentile_txt(name, tmp_path):
    # no compressed histogram, no .hgrm: only the .txt distribution, two decimals
    shutil.copy(f"{stem(name)}_FULL_RUN_1.txt", tmp_path / "run_FULL_RUN_1.txt")
    exact = parse_memtier_json(path_of(name), started_at=T0).latency
    r = parse_memtier_json(without_compressed(name), hdr_prefix=tmp_path / "run", started_at=T0)
    assert TXT_NOTE in r.notes
    # every printed value is rounded to 10 us, and memtier's own histogram (2
    # significant digits: 256 sub-buckets) is itself exact to 1/128 of a value
    for got, want in (
        (r.latency.p50, exact.p50),
        (r.latency.p90, exact.p90),
        (r.latency.p99, exact.p99),
        (r.latency.p99_9, exact.p99_9),
    ):
        assert abs(got - want) <= 0.010 + want / 128, (got, want)
    # the mean is the footer's "#[Mean = 0.095 ...]": memtier's hdr_mean at 1 us
    assert abs(r.latency.mean - printed(name)["Avg. Latency"]) <= 0.0005 + 1e-9


@pytest.mark.parametrize("name", CAPTURES)
def test_fallback_to_the_percentile_table(name, tmp_path):
    doc = without_compressed(name)
    totals = doc["ALL STATS"]["Totals"]
    r = parse_memtier_json(doc, hdr_prefix=tmp_path / "none", started_at=T0)
    assert TABLE_NOTE in r.notes
    pct = totals["Percentile Latencies"]
    got = (r.latency.p50, r.latency.p90, r.latency.p99, r.latency.p99_9)
    # memtier writes "p%.3f" into 7 chars: "p50.00", "p99.90"
    assert got == (pct["p50.00"], pct["p90.00"], pct["p99.00"], pct["p99.90"])
    # mean = Accumulated Latency (whole ms) / Count: the exact mean, < 1 ms / Count
    # low; memtier's printed one is the 2-digit histogram's (within 1/128)
    avg = printed(name)["Avg. Latency"]
    assert abs(r.latency.mean - avg) <= 1 / totals["Count"] + avg / 128 + 0.0005


# ---------------------------------------------------------------- scrubbing


def test_scrub_masks_password_memtier_writes_into_json(tmp_path):
    path = tmp_path / "g0.json"
    doc = doc_of("single")
    doc["configuration"]["authenticate"] = SECRET
    path.write_text(json.dumps(doc))
    assert scrub_memtier_json(path) is True
    text = path.read_text()
    assert SECRET not in text and json.loads(text)["configuration"]["authenticate"] == MASK
    assert scrub_memtier_json(path) is False
    assert parse_memtier_json(path, started_at=T0).requests == 3_358_100


def test_scrub_handles_memtiers_unescaped_password(tmp_path):
    # memtier prints "%s" unescaped: a quote in the password breaks the JSON.
    path = tmp_path / "g0.json"
    raw = path_of("single").read_text()
    assert '"authenticate": "********"' in raw  # the capture was scrubbed like this
    path.write_text(raw.replace('"authenticate": "********"', f'"authenticate": "{SECRET}"'))
    with pytest.raises(json.JSONDecodeError):
        json.loads(path.read_text())
    assert scrub_memtier_json(path) is True
    assert SECRET not in path.read_text()
    assert json.loads(path.read_text())["configuration"]["authenticate"] == MASK
    uri = tmp_path / "u.json"
    uri.write_text(json.dumps({"configuration": {"uri": "redis://default:hunter2@h:6379"}}))
    assert scrub_memtier_json(uri) is True
    assert "hunter2" not in uri.read_text()


# ---------------------------------------------------------------- merging


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
    r = parse_memtier_json(path_of("rate800_t2"), started_at=T0)
    m = merge_results([r, r.model_copy(update={"started_at": r.started_at + 0.2})])
    assert m.requests == 2 * r.requests and m.generators == 2
    assert m.ops_per_sec == 2 * 804
    assert m.latency.p50 == r.latency.p50 and m.latency.p99 == r.latency.p99
    assert m.latency.mean == r.latency.mean
    assert m.series[0].ops_per_sec == 2 * 808
    assert m.notes == r.notes  # the duration flag once, not twice
    assert m.reads_from == "primary"


def test_merge_keeps_every_note_and_where_reads_went():
    a = _result([1000], 0.0, [1.0], notes=["x"])
    b = _result([1000], 0.0, [1.0], notes=["y", "x"], reads_from="reader endpoint r.example")
    m = merge_results([a, b])
    assert m.notes == ["x", "y"]
    assert m.reads_from == "primary; reader endpoint r.example"


def test_error_replies_are_read_from_what_memtier_printed() -> None:
    """memtier_real_oom_t2: all 82 SETs of a full noeviction cache answered -OOM; memtier
    exited 0 and its JSON counts them as Sets; only its output names them, a line each."""
    count, replies = error_replies((REAL / "memtier_real_oom_t2.stdout").read_text())
    assert count == 82
    assert replies == ["-OOM command not allowed when used memory > 'maxmemory'."]
    doc = json.loads((REAL / "memtier_real_oom_t2.json").read_text())
    assert doc["ALL STATS"]["Sets"]["Count"] == 82  # counted as served SETs
    for name in ("memtier_real_single", "memtier_real_rate800_t5"):
        assert error_replies((REAL / f"{name}.stdout").read_text()) == (0, [])
