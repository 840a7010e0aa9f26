"""The load and prefill tasks' shell scripts (aws/ecs.py), run for real by /bin/sh.

The image's tools are aws_fakes' stand-ins (memtier_benchmark: memtier's options,
its argv recorded, a real capture per --test-time; redis-cli: redis-cli's
argument rules) and the REAL AWS CLI, which uploads to the tests' moto S3. What
the script uploaded is downloaded as it is (no scrub on the way) and read by
aws/results, as collect does.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import boto3
import pytest
from aws_fakes import (
    IMAGE_VERSION,
    REGION,
    RESULTS_BUCKET,
    FakeCgroup,
    container_env,
    recorded,
    window_requests,
)

from cachebench.loadgen import LoadError
from cachebench.models import Endpoint, Point, Topology, Workload
from cachebench.targets.aws import ecs, results
from cachebench.targets.aws.results import merge_phase
from cachebench.targets.aws.settings import AwsSettings

TOKEN = "tok-never-kept"
VERSIONS = {
    "2.1.0": "memtier_benchmark 2.1.0",  # 2.0.0 - 2.2.0: puts(PACKAGE_STRING)
    "2.2.1": IMAGE_VERSION,
    "source": "memtier_benchmark v=255.255.255 sha=2f74d611:0 bits=64 libevent=2.1.12",
}
# the stand-in's captures for the workload's 2 s warm-up and 5 s window (hand-read counts)
WARM, MEASURED = (
    window_requests("memtier_real_rate800_t2"),
    window_requests("memtier_real_rate800_t5"),
)


def point(**workload) -> Point:
    w = Workload(
        name="w",
        ratio="1:4",
        value_size=512,
        key_space=7000,
        pipeline=3,
        clients=5,
        threads=2,
        warmup_seconds=2,
        duration_seconds=5,
    )
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
    """One container: a script run by /bin/sh with the image's tools, and what it left."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.prefix = f"script-{uuid.uuid4().hex}"  # this test's own place in the shared S3
        self.s3 = boto3.client("s3", region_name=REGION)
        self.env = container_env(
            tmp,
            {
                ecs.OUT_ENV: str(tmp / "out"),
                ecs.CGROUP_ENV: str(tmp / "cgroup"),
                "CACHEBENCH_AUTH": TOKEN,
                ecs.RESULTS_ENV: f"s3://{RESULTS_BUCKET}/{self.prefix}/g0/",
                "FAKE_TIME_SCALE": "0.1",
            },
        )

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["/bin/sh", "-c", script],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=self.tmp,
        )

    def load(self, pt: Point, endpoint: Endpoint, settings: AwsSettings, **env: str):
        return self.run(ecs.container_script(pt, endpoint, settings), **env)

    def uploaded(self) -> dict[str, bytes]:
        """Every object the script uploaded, by its path under the generator's folder."""
        objs = self.s3.list_objects_v2(Bucket=RESULTS_BUCKET, Prefix=f"{self.prefix}/")
        return {
            o["Key"].removeprefix(f"{self.prefix}/"): self.s3.get_object(
                Bucket=RESULTS_BUCKET, Key=o["Key"]
            )["Body"].read()
            for o in objs.get("Contents", [])
        }

    def download(self) -> Path:
        """The uploaded files as they are in S3 (collect's layout: dest/g0/...)."""
        dest = self.tmp / "collected"
        for rel, body in self.uploaded().items():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(body)
        return dest

    def runs(self) -> list[dict]:
        return recorded(self.tmp)


@pytest.fixture
def task(aws, tmp_path) -> Task:
    return Task(tmp_path)


def opt(argv: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def test_script_runs_the_workload_and_uploads_scrubbed_results_collect_reads(task):
    cacert = task.tmp / "ca.pem"
    cacert.write_text("-----BEGIN CERTIFICATE-----\n")
    done = task.load(point(), ENDPOINT, AwsSettings(tls_cacert=str(cacert)))
    assert done.returncode == 0, done.stderr
    assert IMAGE_VERSION in done.stdout  # in the task's log too
    files = task.uploaded()
    assert files["g0/version.txt"].decode() == IMAGE_VERSION + "\n"  # first line only
    assert {"g0/warmup.json", "g0/measured.json", "g0/measured_FULL_RUN_1.hgrm"} <= set(files)
    warm, measured = task.runs()
    # the argv is the workload's (Workload above, by hand)
    for run, seconds in ((warm, "2"), (measured, "5")):
        argv = run["argv"]
        assert [opt(argv, k) for k in ("server", "port", "ratio", "data-size")] == [
            "master.example",
            "6379",
            "1:4",
            "512",
        ]
        assert [opt(argv, k) for k in ("key-minimum", "key-maximum", "key-pattern")] == [
            "1",
            "7000",
            "R:R",
        ]
        assert [opt(argv, k) for k in ("pipeline", "clients", "threads", "test-time")] == [
            "3",
            "5",
            "2",
            seconds,
        ]
        assert "--tls" in argv and f"--cacert={cacert}" in argv
        assert "--tls-skip-verify" not in argv
        assert f"--authenticate={TOKEN}" in argv  # from the container's secret
    started = float(files["g0/measured.started"])
    assert started <= measured["at"] < started + 5  # recorded right before memtier
    for name, body in files.items():
        assert TOKEN.encode() not in body, f"{name} was uploaded with the token"
    result = merge_phase(task.download(), 1, "measured")
    assert result.tool_version == IMAGE_VERSION
    assert result.started_at == started and not any("Start time" in n for n in result.notes)
    assert result.requests == MEASURED != WARM and result.reads_from == "primary"
    assert merge_phase(task.download(), 1, "warmup").requests == WARM


def test_script_waits_for_the_start_time_then_measures_from_start_plus_warmup(task):
    """Every load task of a run gets one start time: the warm-up begins then, the measured
    window warmup_seconds later, whatever the task's own start-up took."""
    start = time.time() + 2.0
    env = {ecs.START_ENV: str(round(start * 1000))}
    done = task.load(point(), ENDPOINT, AwsSettings(tls_skip_verify=True), **env)
    assert done.returncode == 0, done.stderr
    warm, measured = task.runs()
    assert start - 0.05 <= warm["at"] < start + 0.5 and opt(warm["argv"], "test-time") == "2"
    started = float(task.uploaded()["g0/measured.started"])
    assert start + 2 - 0.05 <= started < start + 2.3
    assert opt(measured["argv"], "test-time") == "5"


@pytest.mark.parametrize("late, warm_up", [(0.6, "1"), (4.0, None)], ids=["late", "too-late"])
def test_a_task_up_late_warms_up_for_what_is_left_and_measures_on_time_if_it_can(
    task, late, warm_up
):
    """0.6 s late: the rounded second left of the 2 s warm-up, then the measured window at
    start + 2 s like the others. 4 s late: no warm-up, the measured window at once, late
    (its skew is read off the results: test_aws_load). The script's own start-up (a shell,
    the stand-in's `memtier_benchmark --version`) adds to the lateness before it counts
    what is left: 0.6 s leaves 1.4 s, rounded to 1 up to 0.9 s more of it (at 1.2 s late a
    busy machine's 0.3 s once made it 0: no warm-up)."""
    start = time.time() - late
    env = {ecs.START_ENV: str(round(start * 1000))}
    done = task.load(point(), ENDPOINT, AwsSettings(tls_skip_verify=True), **env)
    assert done.returncode == 0, done.stderr
    *warm, _ = task.runs()  # the warm-up, if any, then the measured run
    assert [opt(w["argv"], "test-time") for w in warm] == ([warm_up] if warm_up else [])
    started = float(task.uploaded()["g0/measured.started"])
    if warm_up:
        assert start + 2 - 0.05 <= started < start + 2.3
    else:
        assert started >= start + late - 0.05  # at once, 2 s after it should have


def test_cpu_is_sampled_from_cgroup_v2_while_the_measured_memtier_runs(task):
    cgroup = FakeCgroup(task.tmp / "cgroup", pct=175.0)
    cgroup.start()
    try:
        done = task.load(
            point(), ENDPOINT, AwsSettings(tls_skip_verify=True), FAKE_TIME_SCALE="0.6"
        )
    finally:
        cgroup.stop()
    assert done.returncode == 0, done.stderr
    samples = task.uploaded()["g0/" + ecs.CPU_FILE].decode().splitlines()
    first = float(samples[0].split()[0])
    measured_at = float(task.uploaded()["g0/measured.started"])
    assert measured_at <= first < measured_at + 1  # the measured window, not the warm-up
    report = results.cpu_report(task.download(), 1, threads=2, vcpus=4.0)
    (gen,) = report["generators"]
    # 5 s x 0.6 = 3 s of measured memtier: about 3 one-second intervals
    assert 2 <= len(gen["cpu_pct"]) <= 4, gen
    # the fake counter is rewritten by a thread of this process (a late second, then an
    # early one): their mean is the container's 175%
    assert sum(gen["cpu_pct"]) / len(gen["cpu_pct"]) == pytest.approx(175.0, rel=0.1)
    assert gen["capacity_cores"] == 4.0 and gen["generator"] == 0  # the task's vCPUs


def test_cpu_falls_back_to_cgroup_v1_cpuacct(task):
    cgroup = FakeCgroup(task.tmp / "cgroup", pct=60.0, version=1)
    cgroup.start()
    try:
        done = task.load(
            point(), ENDPOINT, AwsSettings(tls_skip_verify=True), FAKE_TIME_SCALE="0.5"
        )
    finally:
        cgroup.stop()
    assert done.returncode == 0, done.stderr
    (gen,) = results.cpu_report(task.download(), 1, threads=2, vcpus=None)["generators"]
    assert gen["capacity_cores"] == 2.0  # no vCPUs in the task definition: its threads
    assert sum(gen["cpu_pct"]) / len(gen["cpu_pct"]) == pytest.approx(60.0, rel=0.1)


def test_no_cgroup_files_no_cpu_report(task):
    done = task.load(point(), ENDPOINT, AwsSettings(tls_skip_verify=True))
    assert done.returncode == 0, done.stderr
    assert "g0/" + ecs.CPU_FILE not in task.uploaded()
    assert results.cpu_report(task.download(), 1, threads=2, vcpus=4.0) is None


@pytest.mark.parametrize("version", ["", "memtier_benchmark 2.0.0", "memtier_benchmark 1.4.0"])
def test_rate_limit_stops_an_old_memtier_before_any_load(task, version):
    done = task.load(point(rate_limit=100), ENDPOINT, AwsSettings(), FAKE_VERSION=version)
    assert done.returncode == ecs.EXIT_OLD_MEMTIER == 78
    assert "rate_limit needs memtier_benchmark 2.1 or later" in done.stderr
    assert f"this image has: {version}" in done.stderr
    assert task.runs() == [] and task.uploaded() == {}  # no load, nothing uploaded


@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_rate_limit_runs_on_memtier_2_1_and_later(task, version):
    settings = AwsSettings(tls_skip_verify=True)
    done = task.load(point(rate_limit=100), ENDPOINT, settings, FAKE_VERSION=VERSIONS[version])
    assert done.returncode == 0, done.stderr
    assert all(opt(r["argv"], "rate-limiting") == "100" for r in task.runs())
    assert len(task.runs()) == 2


def test_tls_without_the_ca_bundle_stops_before_any_load(task):
    missing = str(task.tmp / "no-such-bundle.crt")
    done = task.load(point(), ENDPOINT, AwsSettings(tls_cacert=missing))
    assert done.returncode == ecs.EXIT_NO_CACERT == 79
    assert f"no CA bundle at {missing}" in done.stderr and "aws.tls_cacert" in done.stderr
    assert task.runs() == []


def test_tls_skip_verify_needs_no_bundle(task):
    settings = AwsSettings(tls_cacert=str(task.tmp / "none.crt"), tls_skip_verify=True)
    done = task.load(point(), ENDPOINT, settings)
    assert done.returncode == 0, done.stderr
    for run in task.runs():
        assert "--tls-skip-verify" in run["argv"]
        assert not any(a.startswith("--cacert") for a in run["argv"])


def test_no_tls_no_bundle_check(task):
    plain = ENDPOINT.model_copy(update={"tls": False})
    script = ecs.container_script(point(), plain, AwsSettings(tls_cacert="/nowhere.crt"))
    assert "/nowhere.crt" not in script and "--tls" not in script


def test_reads_from_replicas_run_writers_and_readers_at_once(task):
    done = task.load(point(read_from="replicas"), ENDPOINT, AwsSettings(tls_skip_verify=True))
    assert done.returncode == 0, done.stderr
    by = {opt(r["argv"], "json-out-file"): r for r in task.runs()}
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
        assert abs(writers["at"] - readers["at"]) < 0.2  # each sleeps 0.2-0.5 s: they overlap
    assert task.uploaded()["g0/reads_from.txt"] == b"reader endpoint replica.example\n"
    result = merge_phase(task.download(), 1, "measured")
    assert result.reads_from == "reader endpoint replica.example"
    assert result.requests == 2 * MEASURED and result.generators == 1


def test_a_failed_side_fails_the_task_and_says_why_in_its_log(task):
    # the readers' memtier exits 1 (e.g. the reader endpoint refused the connection)
    done = task.load(
        point(read_from="replicas"),
        ENDPOINT,
        AwsSettings(tls_skip_verify=True),
        FAKE_FAIL_ARG="--ratio=0:1",
    )
    assert done.returncode == 1
    assert "Connection error: TLS handshake failed" in done.stderr  # the task's awslogs
    assert "g0/measured-set.json" in task.uploaded()  # what ran is still uploaded
    with pytest.raises(LoadError, match=r"g0/measured-get\.json holds no result"):
        merge_phase(task.download(), 1, "measured")  # never half a result


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
    done = task.load(point(), ENDPOINT, AwsSettings(tls_skip_verify=True), FAKE_NO_CONNECTION="1")
    assert done.returncode == 0  # memtier's exit code says nothing here
    with pytest.raises(LoadError) as err:
        merge_phase(task.download(), 1, "measured")
    text = str(err.value)
    assert "g0/measured.json holds no result" in text and "no complete second" in text
    assert "TLS connection error: certificate verify failed" in text  # from measured.stdout


# ---------------------------------------------------------------- the prefill task


@pytest.mark.parametrize("cluster_mode", [False, True], ids=["single", "cluster"])
def test_prefill_flushes_every_primary_then_writes_the_key_space(task, cluster_mode):
    cacert = task.tmp / "ca.pem"
    cacert.write_text("-----BEGIN CERTIFICATE-----\n")
    endpoint = ENDPOINT.model_copy(update={"cluster_mode": cluster_mode})
    script = ecs.prefill_script(point(), endpoint, AwsSettings(tls_cacert=str(cacert)), 7000)
    # the prefill task's results folder, as targets/aws names it
    done = task.run(script, **{ecs.RESULTS_ENV: f"s3://{RESULTS_BUCKET}/{task.prefix}/prefill/"})
    assert done.returncode == 0, done.stderr
    flush, count = recorded(task.tmp, "cli.jsonl")
    assert count["command"][-2:] == (
        ["DBSIZE", "--cluster-only-masters"] if cluster_mode else ["DBSIZE"]
    )
    assert flush["tool"] == "valkey-cli"  # valkey-cli first, else redis-cli
    assert flush["options"]["--tls"] is True and flush["options"]["--cacert"] == str(cacert)
    assert flush["auth_sha256"] == hashlib.sha256(TOKEN.encode()).hexdigest()  # from the env
    if cluster_mode:
        assert flush["options"]["--cluster"] == "call"
        assert flush["command"] == ["master.example:6379", "FLUSHALL", "--cluster-only-masters"]
    else:
        assert flush["options"]["-h"] == "master.example" and flush["options"]["-p"] == "6379"
        assert flush["command"] == ["FLUSHALL"]
    (fill,) = task.runs()
    argv = fill["argv"]
    assert [opt(argv, k) for k in ("ratio", "key-pattern", "requests", "data-size")] == [
        "1:0",
        "P:P",
        "allkeys",
        "512",
    ]
    assert opt(argv, "key-minimum") == "1" and opt(argv, "key-maximum") == "7000"
    assert ("--cluster-mode" in argv) is cluster_mode
    assert f"--authenticate={TOKEN}" in argv
    assert "prefill/prefill.json" in task.uploaded()
    for name, body in task.uploaded().items():
        assert TOKEN.encode() not in body, name
    filled = results.prefill(task.download())
    assert filled.keys == 7000 and filled.value_size == 512  # each key of 1-7000 once
    assert filled.dbsize == 7000  # summed over the primaries with --cluster call
    assert filled.tool == IMAGE_VERSION


@pytest.mark.parametrize("cluster_mode", [False, True], ids=["single", "cluster"])
def test_a_prefill_that_leaves_fewer_keys_stops_the_task_with_the_count(task, cluster_mode):
    """DBSIZE over the primaries below the key space: exit 82, the count in the task's log
    (the run then fails before its load, test_aws_load); what it did is uploaded all the
    same. Without an expected count (a data set larger than memory is evicted as it is
    written) the count is only recorded."""
    endpoint = ENDPOINT.model_copy(update={"cluster_mode": cluster_mode})
    settings = AwsSettings(tls_skip_verify=True)
    uri = {ecs.RESULTS_ENV: f"s3://{RESULTS_BUCKET}/{task.prefix}/prefill/"}
    done = task.run(ecs.prefill_script(point(), endpoint, settings, 7000), FAKE_LOST="13", **uri)
    assert done.returncode == ecs.EXIT_SHORT_PREFILL == 82
    assert "the primaries hold 6987 keys (DBSIZE), the key space is 7000" in done.stderr
    assert results.prefill(task.download()).dbsize == 6987
    done = task.run(ecs.prefill_script(point(), endpoint, settings, None), FAKE_LOST="13", **uri)
    assert done.returncode == 0, done.stderr
    assert results.prefill(task.download()).dbsize == 6987


def test_prefill_without_tls_sends_no_token(task):
    """TLS off (aws.transit_encryption false): no AUTH token exists, none is sent."""
    plain = ENDPOINT.model_copy(update={"tls": False, "auth_ref": None})
    env = {k: v for k, v in task.env.items() if k != "CACHEBENCH_AUTH"}
    task.env = env
    done = task.run(ecs.prefill_script(point(), plain, AwsSettings(), 7000))
    assert done.returncode == 0, done.stderr
    (fill,) = task.runs()
    assert "--tls" not in fill["argv"] and not any("--authenticate" in a for a in fill["argv"])
    assert all("--tls" not in c["argv"] for c in recorded(task.tmp, "cli.jsonl"))


def test_prefill_without_a_cli_stops_before_writing(task):
    bare = task.tmp / "bare"
    bare.mkdir()
    for tool in ("memtier_benchmark", "sed", "cat", "date", "mkdir"):
        src = shutil.which(tool, path=task.env["PATH"])
        (bare / tool).symlink_to(src)
    done = task.run(
        ecs.prefill_script(point(), ENDPOINT, AwsSettings(tls_skip_verify=True), 7000),
        PATH=str(bare),
    )
    assert done.returncode == ecs.EXIT_NO_CLI == 80
    assert "needs redis-cli or valkey-cli" in done.stderr
    assert task.runs() == []


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="needs Debian's redis-tools")
@pytest.mark.parametrize("skip_verify", [False, True], ids=["cacert", "insecure"])
def test_the_real_redis_cli_accepts_the_flush_and_count_arguments(tmp_path, skip_verify):
    """The flush and count lines of the prefill script, run with the machine's real
    redis-cli against a port nothing listens on: each must get as far as connecting (an
    unknown option, such as `--cacert=<file>`, stops it before that)."""
    endpoint = ENDPOINT.model_copy(update={"host": "127.0.0.1", "port": 1})
    settings = AwsSettings(tls_cacert=str(tmp_path / "ca.pem"), tls_skip_verify=skip_verify)
    script = ecs.prefill_script(point(), endpoint, settings, 7000)
    lines = [x for x in script.splitlines() if x.startswith('"$cli"')]
    assert [x.split(" > ")[0].split()[-1] for x in lines] == ["FLUSHALL", "DBSIZE"]
    for line in lines:
        args = line.split(" > ")[0].removeprefix('"$cli" ')
        done = subprocess.run(
            f"redis-cli {args}", shell=True, capture_output=True, text=True, timeout=30
        )
        said = done.stdout + done.stderr
        assert "Unrecognized option" not in said, said
        assert "Could not connect" in said, said
