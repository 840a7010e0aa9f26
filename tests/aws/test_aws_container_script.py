"""The load task's shell script (aws/ecs.container_script), run for real by /bin/sh.

Stand-ins on PATH play the image's tools: memtier_benchmark (prints a version
line, logs its argv and start, writes a real capture as its JSON and HDR log)
and the AWS CLI (copies the output folder where "S3" is). What the script
uploads is then read back by aws/results.merge_phase, as collect does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cachebench.aws import ecs
from cachebench.aws.results import merge_phase
from cachebench.aws.settings import AwsSettings
from cachebench.loadgen import LoadError
from cachebench.models import Endpoint, Point, Topology, Workload

REAL = Path(__file__).resolve().parents[1] / "fixtures" / "memtier-real"
CAPTURE = "memtier_real_single"  # window: 3_358_132 - 32 requests over its 10 s
WINDOW = 3_358_100
TOKEN = "tok-never-kept"
VERSIONS = {
    "2.1.0": "memtier_benchmark 2.1.0",  # 2.0.0 - 2.2.0: puts(PACKAGE_STRING)
    "2.2.1": "memtier_benchmark v=2.2.1 sha=3347cb90:0 bits=64 libevent=2.1.12-stable",
    "source": "memtier_benchmark v=255.255.255 sha=2f74d611:0 bits=64 libevent=2.1.12",
}

FAKE_MEMTIER = """#!{python}
import json, os, shutil, sys, time
args = sys.argv[1:]
if "--version" in args:
    if os.environ["FAKE_VERSION"]:
        print(os.environ["FAKE_VERSION"])
        print("Copyright (C) 2011-2026 Redis Ltd.")
    sys.exit(0)
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "at": time.time()}}) + "\\n")
if os.environ.get("FAKE_FAIL_ARG") in args:
    sys.exit(1)
opts = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
auth = '"authenticate": "%s"' % opts.get("authenticate", "")
text = open({capture!r} + ".json").read().replace('"authenticate": "********"', auth)
if os.environ.get("FAKE_NO_CONNECTION"):
    # what a real memtier (a local build) did on a TLS verify failure: exit 0, say
    # so on stderr, write Totals Count 0, every Time-Serie empty, Runtime all zeros
    doc = json.loads(text)
    for block in doc["ALL STATS"].values():
        if "Time-Serie" in block:
            block.update({{"Count": 0, "Time-Serie": {{}}}})
    doc["ALL STATS"]["Runtime"].update({{"Start time": 0, "Finish time": 0, "Total duration": 0}})
    print("TLS connection error: certificate verify failed", file=sys.stderr)
    text = json.dumps(doc)
open(opts["json-out-file"], "w").write(text)
shutil.copy({capture!r} + "_FULL_RUN_1.hgrm", opts["hdr-file-prefix"] + "_FULL_RUN_1.hgrm")
time.sleep(float(os.environ.get("FAKE_SECONDS", "0")))
"""
FAKE_AWS = """#!/bin/sh
# aws s3 cp --recursive --only-show-errors SRC DEST
[ "$1 $2 $3" = "s3 cp --recursive" ] || exit 2
mkdir -p "$FAKE_S3" && cp -R "$5"/. "$FAKE_S3"/ && echo "$6" > "$FAKE_S3.dest"
"""


def point(**workload) -> Point:
    w = Workload(name="w", ratio="1:4", clients=5, threads=2, warmup_seconds=1, duration_seconds=2)
    return Point(
        id="p",
        index=0,
        campaign="c",
        target="aws",
        engine="valkey",
        version="8.0",
        topology=Topology(replicas=1),
        node_type="cache.r7g.large",
        workload=w.model_copy(update=workload),
    )


ENDPOINT = Endpoint(
    host="master.example",
    port=6379,
    cluster_mode=False,
    tls=True,
    auth_ref="arn:aws:secretsmanager:eu-west-1:1:secret:cachebench/x/auth",
    reader_host="replica.example",
)


class Task:
    """One container: its script run by /bin/sh with the stand-ins, and what it left."""

    def __init__(self, tmp: Path, monkeypatch) -> None:
        self.tmp, self.out = tmp, tmp / "out"
        self.s3 = tmp / "s3" / "g0"  # where "S3" keeps generator 0's files
        self.log = tmp / "memtier.jsonl"
        monkeypatch.setattr(ecs, "OUT_DIR", str(self.out))
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        for name, text in (
            (
                "memtier_benchmark",
                FAKE_MEMTIER.format(python=sys.executable, capture=str(REAL / CAPTURE)),
            ),
            ("aws", FAKE_AWS),
        ):
            (bin_dir / name).write_text(text)
            (bin_dir / name).chmod(0o755)
        self.env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "CACHEBENCH_AUTH": TOKEN,
            ecs.RESULTS_ENV: "s3://results/c/r/p/g0/",
            "FAKE_LOG": str(self.log),
            "FAKE_S3": str(self.s3),
            "FAKE_VERSION": VERSIONS["2.2.1"],
        }

    def run(self, pt: Point, endpoint: Endpoint, settings: AwsSettings, **env: str):
        script = ecs.container_script(pt, endpoint, settings)
        return subprocess.run(
            ["/bin/sh", "-c", script],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def runs(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def task(tmp_path, monkeypatch) -> Task:
    return Task(tmp_path, monkeypatch)


def opt(argv: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def test_script_uploads_the_version_line_and_start_and_results_parse(task):
    cacert = task.tmp / "ca.pem"
    cacert.write_text("-----BEGIN CERTIFICATE-----\n")
    done = task.run(point(), ENDPOINT, AwsSettings(tls_cacert=str(cacert)))
    assert done.returncode == 0, done.stderr
    assert VERSIONS["2.2.1"] in done.stdout  # in the task's log too
    assert (task.s3 / "version.txt").read_text() == VERSIONS["2.2.1"] + "\n"  # first line only
    assert (task.s3.parent / "g0.dest").read_text().strip() == "s3://results/c/r/p/g0/"
    warm, measured = task.runs()
    assert opt(measured["argv"], "test-time") == "2" and opt(warm["argv"], "test-time") == "1"
    for run in (warm, measured):
        assert "--tls" in run["argv"] and f"--cacert={cacert}" in run["argv"]
        assert f"--authenticate={TOKEN}" in run["argv"]  # from the container's secret
    started = float((task.s3 / "measured.started").read_text())
    assert started <= measured["at"] < started + 5  # recorded right before memtier
    for f in task.s3.iterdir():
        assert TOKEN not in f.read_text(errors="replace"), f  # scrubbed before upload
    result = merge_phase(task.s3.parent, 1, "measured")
    assert result.tool_version == VERSIONS["2.2.1"]
    assert result.started_at == started and not any("Start time" in n for n in result.notes)
    assert result.requests == WINDOW and result.reads_from == "primary"


@pytest.mark.parametrize("version", ["", "memtier_benchmark 2.0.0", "memtier_benchmark 1.4.0"])
def test_rate_limit_stops_an_old_memtier_before_any_load(task, version):
    done = task.run(point(rate_limit=100), ENDPOINT, AwsSettings(), FAKE_VERSION=version)
    assert done.returncode == ecs.EXIT_OLD_MEMTIER == 78
    assert "rate_limit needs memtier_benchmark 2.1 or later" in done.stderr
    assert f"this image has: {version}" in done.stderr
    assert task.runs() == [] and not task.s3.exists()  # no load, nothing uploaded


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_rate_limit_runs_on_memtier_2_1_and_later(task, version):
    done = task.run(point(rate_limit=100), ENDPOINT, AwsSettings(), FAKE_VERSION=VERSIONS[version])
    assert done.returncode == 0, done.stderr
    assert all(opt(r["argv"], "rate-limiting") == "100" for r in task.runs())
    assert len(task.runs()) == 2


def test_tls_without_the_ca_bundle_stops_before_any_load(task):
    missing = str(task.tmp / "no-such-bundle.crt")
    done = task.run(point(), ENDPOINT, AwsSettings(tls_cacert=missing))
    assert done.returncode == ecs.EXIT_NO_CACERT == 79
    assert f"no CA bundle at {missing}" in done.stderr and "aws.tls_cacert" in done.stderr
    assert task.runs() == []


def test_tls_skip_verify_needs_no_bundle(task):
    settings = AwsSettings(tls_cacert=str(task.tmp / "none.crt"), tls_skip_verify=True)
    done = task.run(point(), ENDPOINT, settings)
    assert done.returncode == 0, done.stderr
    for run in task.runs():
        assert "--tls-skip-verify" in run["argv"]
        assert not any(a.startswith("--cacert") for a in run["argv"])


def test_no_tls_no_bundle_check(task):
    plain = ENDPOINT.model_copy(update={"tls": False})
    script = ecs.container_script(point(), plain, AwsSettings(tls_cacert="/nowhere.crt"))
    assert "/nowhere.crt" not in script and "--tls" not in script


def test_reads_from_replicas_run_writers_and_readers_at_once(task):
    done = task.run(point(read_from="replicas"), ENDPOINT, AwsSettings(), FAKE_SECONDS="0.5")
    assert done.returncode == 0, done.stderr
    by = {opt(r["argv"], "json-out-file").rsplit("/", 1)[-1]: r for r in task.runs()}
    assert sorted(by) == [
        "measured-get.json",
        "measured-set.json",
        "warmup-get.json",
        "warmup-set.json",
    ]
    for phase in ("warmup", "measured"):
        writers, readers = by[f"{phase}-set.json"], by[f"{phase}-get.json"]
        # 1:4 over 5 x 2 = 10 connections: 2 writers (2 threads x 1), 8 readers (2 x 4)
        assert [opt(writers["argv"], k) for k in ("server", "ratio", "threads", "clients")] == [
            "master.example",
            "1:0",
            "2",
            "1",
        ]
        assert [opt(readers["argv"], k) for k in ("server", "ratio", "threads", "clients")] == [
            "replica.example",
            "0:1",
            "2",
            "4",
        ]
        assert abs(writers["at"] - readers["at"]) < 0.5  # each runs 0.5 s: they overlap
    assert (task.s3 / "reads_from.txt").read_text() == "reader endpoint replica.example\n"
    result = merge_phase(task.s3.parent, 1, "measured")
    assert result.reads_from == "reader endpoint replica.example"
    assert result.requests == 2 * WINDOW and result.generators == 1


def test_a_failed_side_fails_the_task(task):
    # the readers' memtier exits 1 (e.g. the reader endpoint refused the connection)
    done = task.run(
        point(read_from="replicas"), ENDPOINT, AwsSettings(), FAKE_FAIL_ARG="--ratio=0:1"
    )
    assert done.returncode == 1
    assert (task.s3 / "measured-set.json").exists()  # what ran is still uploaded
    with pytest.raises(LoadError, match=r"g0/measured-get\.json holds no result"):
        merge_phase(task.s3.parent, 1, "measured")  # never half a result


def test_reads_from_replicas_needs_the_reader_endpoint():
    with pytest.raises(ValueError, match="no reader_host"):
        ecs.container_script(
            point(read_from="replicas"),
            ENDPOINT.model_copy(update={"reader_host": None}),
            AwsSettings(),
        )


def test_settings_want_an_absolute_ca_bundle_path():
    assert AwsSettings().tls_cacert == "/etc/ssl/certs/ca-certificates.crt"
    assert AwsSettings().tls_skip_verify is False
    (problem,) = [p for p in AwsSettings(tls_cacert="ca.pem").problems() if "tls_cacert" in p]
    assert problem.startswith("aws.tls_cacert: 'ca.pem': expected the absolute path")
    skip = AwsSettings(tls_cacert="ca.pem", tls_skip_verify=True)
    assert not [p for p in skip.problems() if "tls_cacert" in p]


def test_memtier_that_never_connected_fails_collect_with_what_it_said(task):
    done = task.run(point(), ENDPOINT, AwsSettings(), FAKE_NO_CONNECTION="1")
    assert done.returncode == 0  # memtier's exit code says nothing here
    with pytest.raises(LoadError) as err:
        merge_phase(task.s3.parent, 1, "measured")
    text = str(err.value)
    assert "g0/measured.json holds no result" in text and "no complete second" in text
    assert "TLS connection error: certificate verify failed" in text  # from measured.stdout
