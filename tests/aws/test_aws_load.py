"""The aws target's runs against the tests' moto server, step by step as MeasureOperator
drives them (steps.begin_try / measure_step): a prefill task, then N load tasks, each
phase started through the provider's EcsHook with a startedBy of its own and waited
for by its trigger (the provider's TaskDoneTrigger, our EcsElastiCacheWatchTrigger),
run here for real; results collected from S3, metrics from CloudWatch.

moto runs no containers: aws_fakes.FakeEcs runs each task's own command under sh
(stand-in memtier and redis-cli, the real AWS CLI against moto's S3, the AUTH token
from moto's Secrets Manager) and publishes the nodes' CloudWatch datapoints.
Every count of moto objects here is of this test's own (its startedBy, its run id).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from airflow.sdk.module_loading import import_string
from aws_fakes import (
    CAPTURES,
    CLUSTER,
    IMAGE_VERSION,
    RESULTS_BUCKET,
    FakeEcs,
    campaign,
    create_group,
    forget_task,
    put_node_metrics,
    recorded,
    window_requests,
)
from botocore.stub import Stubber

from cachebench import steps
from cachebench.campaign import CampaignError
from cachebench.models import Endpoint, Node, Provisioned, RunRecord
from cachebench.report.build import build_report
from cachebench.targets.aws import clients, cloudwatch, ecs, target
from cachebench.targets.aws.results import split_uri
from cachebench.targets.aws.trigger import EcsElastiCacheWatchTrigger

TARGET = target.AwsTarget()
# the stand-in memtier's captures for the campaign's 2 s warm-up and 5 s window
WARM, MEASURED = (
    window_requests("memtier_real_rate800_t2"),
    window_requests("memtier_real_rate800_t5"),
)
assert WARM != MEASURED  # a collect that took the warm-up's numbers would be seen


def provisioned(name: str, generators: int = 3, engine: int = 0, **workload) -> Provisioned:
    """plan + render_tfvars for real; the group and its secret made straight in moto with
    the names and tags include/terraform/aws gives them (tests/aws/test_aws_module_apply.py
    applies the module itself)."""
    fields = campaign(name, generators=generators)
    fields["workloads"] = [{**w, **workload} for w in fields["workloads"]]
    plan = steps.render_tfvars(steps.plan(fields, f"run-{name}")[engine])
    ddir = steps.deployment_dir(plan)
    tv = json.loads((ddir.terraform / "terraform.tfvars.json").read_text())
    rg = tv["replication_group_id"]
    secret = create_group(
        rg,
        {
            "cachebench:campaign": tv["campaign"],
            "cachebench:run": tv["run_id"],
            "cachebench:deployment": tv["deployment_id"],
        },
        replicas=tv["replicas"],
        engine=tv["engine"],
        version=tv["engine_version"],
    )
    host = f"master.{rg}.example.invalid"
    nodes = [
        Node(node_id=f"{rg}-00{i}", host=host, port=6379, role=role)
        for i, role in ((1, "primary"), (2, "replica"))
    ]
    endpoint = Endpoint(
        host=host, port=6379, cluster_mode=False, tls=True, auth_ref=secret, nodes=nodes
    )
    return Provisioned(plan=plan, endpoint=endpoint)


def token_of(prov: Provisioned) -> str:
    sm = boto3.client("secretsmanager")
    return sm.get_secret_value(SecretId=prov.endpoint.auth_ref)["SecretString"]


def record_of(prov: Provisioned, i: int = 0) -> RunRecord:
    return steps.read_record(steps.deployment_dir(prov.plan), prov.plan.runs[i])


async def _first(trigger) -> dict:
    async for ev in trigger.run():
        return ev.payload
    raise AssertionError("the trigger ended without an event")


def wait_on(watch) -> dict:
    """What the triggerer does with a Wait: build its trigger, run it to its event."""
    kwargs = dict(watch.kwargs)
    if watch.classpath == target.LOAD_TRIGGER:
        kwargs["poll"] = 0.05
    return asyncio.run(asyncio.wait_for(_first(import_string(watch.classpath)(**kwargs)), 120))


def tasks_of(started_by: str) -> list[dict]:
    return ecs.started_tasks(boto3.client("ecs"), CLUSTER, started_by)


def s3_objects(uri: str) -> dict[str, bytes]:
    s3 = boto3.client("s3")
    bucket, prefix = split_uri(uri)
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for o in page.get("Contents", []):
            out[o["Key"]] = s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
    return out


def opt(argv: list[str], name: str) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}="))


def test_plan_refuses_aws_without_settings(aws, results_dir, monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_VAR_CACHEBENCH_AWS")
    with pytest.raises(CampaignError) as err:
        steps.plan(
            campaign("nosettings", aws={"region": "eu-west-1", "vpc_id": "vpc-nothex"}), "r1"
        )
    text = str(err.value)
    assert "aws.subnet_ids: required" in text and "aws.vpc_id: 'vpc-nothex'" in text
    assert "aws.ecs_cluster: required" in text


def test_a_campaigns_aws_block_overrides_only_what_it_names(aws, results_dir) -> None:
    """campaign.json keeps the aws: block as written, so every later step lays it over the
    Variable again: a block naming only some fields (as the shipped example campaign's,
    region and watch_poll_seconds) leaves the Variable's VPC, subnets and buckets in force."""
    fields = {**campaign("block"), "aws": {"watch_poll_seconds": 30, "kms_key_arn": None}}
    plan = steps.render_tfvars(steps.plan(fields, "run-block")[0])
    s = target.settings_for(plan)
    assert (s.vpc_id, s.subnet_ids, s.watch_poll_seconds) == (aws.vpc_id, [aws.subnet_id], 30)
    tv = json.loads((steps.deployment_dir(plan).terraform / "terraform.tfvars.json").read_text())
    assert tv["vpc_id"] == aws.vpc_id and tv["subnet_ids"] == [aws.subnet_id]


def test_plan_estimates_and_backend_keys_differ(aws, results_dir) -> None:
    plans = steps.plan(campaign("keys"), "manual__2026-11-26T05:00:00+00:00")
    assert len(plans) == 2
    keys = set()
    for plan in plans:
        plan = steps.render_tfvars(plan)
        cfg = TARGET.backend_config(plan, steps.deployment_dir(plan))
        assert cfg["use_lockfile"] == "true" and cfg["bucket"] == "cachebench-state"
        assert cfg["key"].endswith(
            f"/keys/manual-2026-11-26T05-00-00-00-00/{plan.instance}/terraform.tfstate"
        )
        keys.add(cfg["key"])
    assert len(keys) == 2


def test_a_run_prefills_then_measures_with_n_tasks_and_the_token_only_as_a_secret(
    on_time, results_dir, tmp_path
) -> None:
    # Every task must be up by the start time to warm up its full 2 s: on a machine busy
    # with the other test workers, three fake containers once took more than the
    # conftest's 3 s (each warmed up for the 1 s left). A late task is test_a_late_generator.
    grace = on_time.settings["load_start_grace_seconds"]
    prov = provisioned("runs", generators=3)
    token = token_of(prov)
    run = prov.plan.runs[0]
    w = run.point.workload
    with FakeEcs(tmp_path / "ecs", "runs", cpu_pct=140.0) as fake:
        try_id = steps.begin_try(prov)
        watch = steps.measure_step(prov, try_id, None)
        # phase 1: one prefill task, followed by the provider's TaskDoneTrigger
        assert watch.phase == "prefill" and watch.classpath == target.TASK_DONE
        record = record_of(prov)
        assert record.status == "started" and record.phase == "prefill" and record.attempt == 1
        (prefill,) = tasks_of(record.detail.started_by.prefill)
        assert watch.kwargs["task_arn"] == prefill["taskArn"] == record.detail.prefill_task
        assert watch.kwargs["log_group"] == "/cachebench/load"  # awslogs into the task log
        assert wait_on(watch)["status"] == "success"
        # phase 2: N load tasks under a startedBy of their own, followed by our watch
        watch = steps.measure_step(prov, try_id, {"status": "success"})
        assert watch.phase == "load" and watch.classpath == target.LOAD_TRIGGER
        record = record_of(prov)
        sb = record.detail.started_by.load
        assert watch.kwargs["started_by"] == sb != record.detail.started_by.prefill
        loads = tasks_of(sb)
        assert sorted(ecs.task_name(t) for t in loads) == ["g0", "g1", "g2"]
        # one start time for all of them, in their overrides: now + the start-up grace
        start_at = record.detail.load_start_at
        assert start_at == pytest.approx(record.detail.load_started_at + grace)
        starts = {
            e["value"]
            for t in loads
            for e in t["overrides"]["containerOverrides"][0]["environment"]
            if e["name"] == ecs.START_ENV
        }
        assert starts == {str(round(start_at * 1000))}
        assert wait_on(watch)["status"] == "done"
        assert steps.measure_step(prov, try_id, {"status": "done"}) is None  # collected, exported
    assert not fake.errors, fake.errors
    assert sorted(fake.done[t["taskArn"]] for t in [prefill, *loads]) == [0, 0, 0, 0]

    # the token: only the task definition's secret (its ARN), never in overrides or XCom
    described = boto3.client("ecs").describe_tasks(
        cluster=CLUSTER, tasks=[t["taskArn"] for t in [prefill, *loads]], include=["TAGS"]
    )["tasks"]
    assert {t["taskDefinitionArn"] for t in described} == {
        json.loads((steps.deployment_dir(prov.plan).path / "ecs.json").read_text())[
            "task_definition"
        ]
    }
    td = boto3.client("ecs").describe_task_definition(
        taskDefinition=described[0]["taskDefinitionArn"]
    )["taskDefinition"]
    (container,) = td["containerDefinitions"]
    assert container["secrets"] == [
        {"name": "CACHEBENCH_AUTH", "valueFrom": prov.endpoint.auth_ref}
    ]
    assert container["entryPoint"] == ["/usr/bin/env"]  # the image's ENTRYPOINT is not in front
    tags = {x["key"]: x["value"] for x in described[0]["tags"]}
    assert tags["cachebench:deployment"] == prov.plan.instance
    assert tags["cachebench:run"] == "run-runs"
    for text in (json.dumps(described), json.dumps(watch.model_dump(mode="json"))):
        assert token not in text

    # what each memtier ran is the workload (campaign() by hand), the token from the secret
    runs = recorded(tmp_path / "ecs")
    fills = [r for r in runs if "--requests=allkeys" in r["argv"]]
    loads_argv = [r["argv"] for r in runs if "--requests=allkeys" not in r["argv"]]
    assert len(fills) == 1 and len(loads_argv) == 2 * 3  # warm-up + measured per generator
    for argv in loads_argv:
        assert [opt(argv, k) for k in ("ratio", "data-size", "key-maximum", "pipeline")] == [
            "1:4",
            "256",
            "100000",
            "2",
        ]
        assert [opt(argv, k) for k in ("clients", "threads")] == ["25", "4"]
        assert opt(argv, "server") == prov.endpoint.host and "--tls" in argv
        assert "--cacert=/etc/ssl/certs/ca-certificates.crt" in argv
        assert f"--authenticate={token}" in argv
    assert sorted(opt(a, "test-time") for a in loads_argv) == ["2"] * 3 + ["5"] * 3
    flush, count = recorded(tmp_path / "ecs", "cli.jsonl")
    assert flush["command"] == ["FLUSHALL"] and flush["options"]["-h"] == prov.endpoint.host
    assert count["command"] == ["DBSIZE"]
    # every generator waited for the start time: warm-ups from it, measured windows from
    # it + the 2 s warm-up, together
    warm_at = [r["at"] for r in runs if "--test-time=2" in r["argv"]]
    assert min(warm_at) >= start_at - 0.05 and max(warm_at) < start_at + 1.0

    # collect read the measured files, not the warm-up's: N x the capture's window
    rdir = steps._result_dir(run, prov.plan).path
    load = json.loads((rdir / "load.json").read_text())
    assert load["generators"] == 3 and load["requests"] == 3 * MEASURED
    # the merged window spans the generators' 5 s windows, started moments apart
    assert w.duration_seconds <= load["elapsed_seconds"] < w.duration_seconds + 3
    assert load["tool_version"] == IMAGE_VERSION  # each container's version line
    warmup = json.loads((rdir / "warmup.json").read_text())
    assert warmup["requests"] == 3 * WARM
    measured_starts = [
        float(p.read_text()) for p in (tmp_path / "ecs" / "tasks").glob("*/out/measured.started")
    ]
    assert load["started_at"] == pytest.approx(min(measured_starts))
    assert min(measured_starts) >= start_at + w.warmup_seconds - 0.05
    assert max(measured_starts) - min(measured_starts) < 0.5
    assert load["start_skew_s"] < 0.5 and load["overlap_pct"] > 90 and load["flags"] == []
    prefill = json.loads((rdir / "prefill.json").read_text())
    assert prefill["keys"] == prefill["dbsize"] == w.key_space
    assert (rdir / "metrics.parquet").is_file() and rdir.joinpath("metrics_summary.json").is_file()

    # each load task's CPU, in the local runner's cpu.json shape, beside its load.json
    cpu = json.loads((rdir / "cpu.json").read_text())
    assert [g["generator"] for g in cpu["generators"]] == [0, 1, 2]
    for g in cpu["generators"]:
        assert g["capacity_cores"] == 4.0  # the task definition's 4096 CPU units
        assert 3 <= len(g["cpu_pct"]) <= 6, g  # one a second of the 5 s window
        # the fake cgroup's counter is rewritten by a thread of this busy process: a second
        # can read it late and the next early, their mean is the container's 140%
        assert sum(g["cpu_pct"]) / len(g["cpu_pct"]) == pytest.approx(140.0, rel=0.1)
        assert min(g["cpu_pct"]) > 0

    # nothing kept or uploaded holds the token
    uploaded = s3_objects(record.detail.results_uri)
    assert len(uploaded) > 3 * 6
    for key, body in uploaded.items():
        assert token.encode() not in body, f"s3 {key} holds the token"
    run_dir = Path(prov.plan.run_dir)
    for f in run_dir.rglob("*"):
        if f.is_file():
            assert token.encode() not in f.read_bytes(), f"{f} holds the token"


def _measure(prov: Provisioned, **fake) -> tuple[RunRecord, FakeEcs]:
    """The first run of the deployment, measured under FakeEcs as MeasureOperator would."""
    with FakeEcs(Path(fake.pop("root")), prov.plan.deployment.campaign, **fake) as agent:
        try_id = steps.begin_try(prov)
        watch = steps.measure_step(prov, try_id, None)
        while watch is not None:
            event = wait_on(watch) if watch.classpath != steps.METRICS_TRIGGER else None
            watch = steps.measure_step(prov, try_id, event)
    assert not agent.errors, agent.errors
    return record_of(prov), agent


def test_a_late_generator_flags_the_run_with_its_skew(aws, results_dir, tmp_path) -> None:
    """g2's container comes up 6.5 s late (a slow image pull): the start time (3 s after
    the tasks were started) and its 2 s warm-up have passed, so it skips its warm-up and
    measures about 2 s after the others (its script's start-up on top: 5.6 s was seen at
    a load average of 8 on two cores). The run keeps its result, flagged with the skew;
    its rates are over the seconds all three measured. A 10 s window keeps seconds in
    common whatever that start-up costs."""
    window = 10
    prov = provisioned("late", generators=3, duration_seconds=window)
    record, _ = _measure(prov, root=tmp_path / "ecs", late={"*/g2": 6.5}, time_scale=0.4)
    assert record.status == "done", record.error
    rdir = steps._result_dir(prov.plan.runs[0], prov.plan).path
    load = json.loads((rdir / "load.json").read_text())
    starts = {
        p.parts[-3]: float(p.read_text())
        for p in (tmp_path / "ecs" / "tasks").glob("*/out/measured.started")
    }
    skew = max(starts.values()) - min(starts.values())
    assert 1.0 < skew < window - 1, starts  # about 2 s; more on a busy machine
    assert load["start_skew_s"] == pytest.approx(skew, abs=0.01)
    overlap = window - skew
    assert load["overlap_pct"] == pytest.approx(100 * overlap / window, abs=0.5)
    (flag,) = load["flags"]
    assert flag.startswith(f"start skew {skew:.1f} s: the 3 load generators were all in")
    assert f"for {overlap:.1f} s of the {window} s asked" in flag
    # rates from the common seconds: fewer requests than 3 whole windows
    assert load["requests"] < 3 * window_requests(CAPTURES[window])
    assert load["elapsed_seconds"] == pytest.approx(overlap, abs=0.01)
    assert any("rates are over the" in n for n in load["notes"])
    md = Path(build_report(Path(prov.plan.run_dir))["report_md"]).read_text()
    assert "start skew" in md and prov.plan.runs[0].point.id in md  # named in the report


def test_a_prefill_that_writes_fewer_keys_fails_the_run_before_its_load(
    aws, results_dir, tmp_path
) -> None:
    """The primaries hold 10 keys fewer than the key space after the prefill (DBSIZE):
    the run fails with the count, and no load task is ever started."""
    prov = provisioned("short", generators=2)
    record, agent = _measure(prov, root=tmp_path / "ecs", env={"*/prefill": {"FAKE_LOST": "10"}})
    assert record.status == "failed"
    assert "exit code 82" in record.error
    key_space = prov.plan.runs[0].point.workload.key_space
    assert f"the primaries hold {key_space - 10} keys (DBSIZE), the key space is {key_space}" in (
        record.error
    )
    assert record.detail.started_by.load is None
    assert [ecs.task_name(t) for t in agent.tasks.values()] == ["prefill"]
    error = (steps._result_dir(prov.plan.runs[0], prov.plan).path / "error.txt").read_text()
    assert f"{key_space - 10} keys" in error


def test_error_replies_flag_the_run_and_are_not_served_operations(
    aws, results_dir, tmp_path
) -> None:
    """Both generators' memtier answers are the real capture memtier_real_oom_t2 (a full
    cache under noeviction: each of its 82 SETs answered -OOM, which memtier counts as
    served SETs and logs one line each): the run keeps its result with 2 x 82 error
    replies taken out of its requests, flagged, and named in the report."""
    prov = provisioned("oom", generators=2, duration_seconds=2)
    oom = {"FAKE_CAPTURE": "memtier_real_oom_t2"}
    record, _ = _measure(prov, root=tmp_path / "ecs", env={"*/g*": oom}, time_scale=0.5)
    assert record.status == "done", record.error
    rdir = steps._result_dir(prov.plan.runs[0], prov.plan).path
    load = json.loads((rdir / "load.json").read_text())
    window = window_requests("memtier_real_oom_t2")  # the 2 s window's requests, by hand
    assert load["error_replies"] == 2 * 82
    assert load["requests"] == 2 * window - 2 * 82
    assert load["ops_per_sec"] == pytest.approx((2 * window - 2 * 82) / 2, abs=0.01)
    (flag,) = load["flags"]
    assert flag.startswith("164 error replies (-OOM command not allowed when used memory")
    md = Path(build_report(Path(prov.plan.run_dir))["report_md"]).read_text()
    assert "164 error replies" in md and prov.plan.runs[0].point.id in md


def test_a_new_try_reattaches_to_the_load_tasks_and_starts_none(on_time, results_dir, tmp_path):
    prov = provisioned("reattach", generators=2)
    # the load sleeps long enough to still run when the worker is "lost"
    with FakeEcs(tmp_path / "ecs", "reattach", time_scale=3.0) as fake:
        first = steps.begin_try(prov)
        assert wait_on(steps.measure_step(prov, first, None))["status"] == "success"
        watch = steps.measure_step(prov, first, {"status": "success"})
        sb = record_of(prov).detail.started_by.load
        before = sorted(t["taskArn"] for t in tasks_of(sb))
        assert len(before) == 2
        assert {t["lastStatus"] for t in tasks_of(sb)} == {"RUNNING"}
        family = json.loads((steps.deployment_dir(prov.plan).path / "ecs.json").read_text())
        every = ecs.family_tasks(boto3.client("ecs"), CLUSTER, family["family"])
        # the worker is lost while the load runs; a new try of measure starts
        second = steps.begin_try(prov)
        assert second != first and record_of(prov).status == "started"
        again = steps.measure_step(prov, second, None)
        assert again.phase == "load" and again.kwargs["started_by"] == sb
        assert again.kwargs["started_at"] == watch.kwargs["started_at"]  # its clock is kept
        assert sorted(t["taskArn"] for t in tasks_of(sb)) == before  # none started
        assert ecs.family_tasks(boto3.client("ecs"), CLUSTER, family["family"]) == every
        assert wait_on(again)["status"] == "done"
        assert steps.measure_step(prov, second, {"status": "done"}) is None
    assert not fake.errors, fake.errors
    assert record_of(prov).status == "done" and record_of(prov).attempt == 1
    load = json.loads(
        (steps._result_dir(prov.plan.runs[0], prov.plan).path / "load.json").read_text()
    )
    assert load["requests"] == 2 * MEASURED


def test_a_lost_worker_mid_start_leaves_no_duplicate_prefill_or_load(aws, results_dir, tmp_path):
    """The worker dies right after run_task, before the run's record is saved (prefill), or
    after starting g0 of 2 (load): the new try starts only what ECS does not have."""
    prov = provisioned("midstart", generators=2)
    ddir = steps.deployment_dir(prov.plan)
    run = prov.plan.runs[0]
    with FakeEcs(tmp_path / "ecs", "midstart", time_scale=3.0):
        watch = steps.measure_step(prov, steps.begin_try(prov), None)
        prefill_sb = record_of(prov).detail.started_by.prefill
        steps._record_path(ddir, run).unlink()  # the record was never saved
        again = steps.measure_step(prov, steps.begin_try(prov), None)
        assert again.kwargs["task_arn"] == watch.kwargs["task_arn"]
        assert len(tasks_of(prefill_sb)) == 1
        assert wait_on(again)["status"] == "success"

        # the load: only g0 got started (by this very code path) before the worker died
        s = target.settings_for(prov.plan)
        state = ecs.EcsState.model_validate_json((ddir.path / "ecs.json").read_text())
        record = record_of(prov)
        sb = target.started_by(prov.plan, run, record.attempt, "load")
        script = ecs.container_script(run.point, prov.endpoint, s)
        g0 = ecs.generator_overrides("memtier", script, record.detail.results_uri, "g0")
        (arn0,) = TARGET._run_tasks(s, state, sb, {"g0": g0}, prov)
        half = EcsElastiCacheWatchTrigger(
            **{
                **TARGET._load_wait(
                    prov,
                    run,
                    s,
                    state,
                    record.model_copy(
                        update={
                            "detail": record.detail.model_copy(
                                update={
                                    "started_by": record.detail.started_by.model_copy(
                                        update={"load": sb}
                                    ),
                                    "load_started_at": time.time() - 700,
                                }
                            )
                        }
                    ),
                ).kwargs
            }
        )
        event = half.check_once()  # the watch would not wait for g1 forever
        assert event.status == "failed" and "only 1 of 2 load tasks started" in event.message
        load = steps.measure_step(prov, steps.begin_try(prov), None)
        names = {ecs.task_name(t): t["taskArn"] for t in tasks_of(sb)}
        assert sorted(names) == ["g0", "g1"] and names["g0"] == arn0  # g1 alone was started
        assert wait_on(load)["status"] == "done"
        TARGET.stop_load(prov.plan, ddir)


def test_watch_fails_early_when_a_load_task_dies_and_the_others_are_stopped(
    aws, results_dir, tmp_path
) -> None:
    prov = provisioned("dies", generators=2)
    ddir = steps.deployment_dir(prov.plan)
    # g1's memtier cannot connect; g0 would run for minutes
    with FakeEcs(tmp_path / "ecs", "dies", fail=("*/g1",), time_scale=20.0) as fake:
        try_id = steps.begin_try(prov)
        assert wait_on(steps.measure_step(prov, try_id, None))["status"] == "success"
        watch = steps.measure_step(prov, try_id, {"status": "success"})
        event = wait_on(watch)
        assert event["status"] == "failed" and "exit code 1" in event["message"]
        assert "stop code EssentialContainerExited" in event["message"]
        # the dead task's awslogs tail: what its script printed when memtier failed
        assert "Connection error: TLS handshake failed" in event["message"]
        # memtier's own exit 1 is the run's failure, not a lost run: no attempt 2 in this try
        assert event["lost"] is False
        assert steps.measure_step(prov, try_id, event) is None
        record = record_of(prov)
        assert record.status == "failed" and "exit code 1" in record.error
        assert record.attempt == 1 and not record.lost and not record.again
        sb = record.detail.started_by.load
        tasks = {ecs.task_name(t): t for t in tasks_of(sb)}
        assert {n: t["lastStatus"] for n, t in tasks.items()} == {"g0": "STOPPED", "g1": "STOPPED"}
        assert tasks["g0"]["stoppedReason"] == "cachebench: run failed"
        error = (steps._result_dir(prov.plan.runs[0], prov.plan).path / "error.txt").read_text()
        assert "exit code 1" in error
        # a failed run is measured again only by a new try, as attempt 2 (a new startedBy)
        fake.fail = ()
        fake.time_scale = 0.3
        retry = steps.measure_step(prov, steps.begin_try(prov), None)
        assert retry.phase == "prefill" and record_of(prov).attempt == 2
        assert record_of(prov).detail.started_by.prefill != record.detail.started_by.prefill
        TARGET.stop_load(prov.plan, ddir)


def _to_load(prov: Provisioned, try_id: str, event: dict | None = None):
    """measure_step until the run's load watch (the prefill waited for on the way)."""
    watch = steps.measure_step(prov, try_id, event)
    while watch.phase != "load":
        watch = steps.measure_step(prov, try_id, wait_on(watch))
    return watch


def _to_the_end(prov: Provisioned, try_id: str, watch) -> None:
    while watch is not None:
        event = wait_on(watch) if watch.classpath != steps.METRICS_TRIGGER else None
        watch = steps.measure_step(prov, try_id, event)


def _load_task(prov: Provisioned, fake: FakeEcs, name: str) -> str:
    """The ARN of the run's load task `name` once its container runs its warm-up."""
    arn = dict(zip(["g0", "g1"], record_of(prov).detail.load_tasks, strict=False))[name]
    started = fake.root / "tasks" / arn.rsplit("/", 1)[-1] / "out" / "warmup.started"
    deadline = time.monotonic() + 60
    while not started.is_file():
        assert time.monotonic() < deadline, f"{name} never started its warm-up"
        time.sleep(0.05)
    return arn


def _stop_by_someone_else(prov: Provisioned, fake: FakeEcs, name: str) -> None:
    """A StopTask nobody in cachebench sent (an operator draining the cluster): ECS gives
    the task stopCode UserInitiated and SIGTERMs its container (exit 143)."""
    arn = _load_task(prov, fake, name)
    boto3.client("ecs").stop_task(cluster=CLUSTER, task=arn, reason="drained by an operator")


def _runs_csv(prov: Provisioned) -> list[dict]:
    import csv

    build_report(Path(prov.plan.run_dir))
    with (Path(prov.plan.run_dir) / "runs.csv").open() as fh:
        return [r for r in csv.DictReader(fh) if r["deployment"] == prov.plan.instance]


def test_a_load_task_stopped_by_someone_else_is_measured_again_as_attempt_2(
    on_time, results_dir, tmp_path
) -> None:
    prov = provisioned("stopped", generators=2)
    with FakeEcs(tmp_path / "ecs", "stopped", time_scale=20.0) as fake:
        try_id = steps.begin_try(prov)
        watch = _to_load(prov, try_id)
        _stop_by_someone_else(prov, fake, "g1")
        event = wait_on(watch)
        assert event["status"] == "failed" and event["lost"] is True
        assert "stop code UserInitiated" in event["message"]
        assert "reason: drained by an operator" in event["message"]
        first = record_of(prov)
        fake.time_scale = 0.3  # attempt 2 runs through
        # the same try measures it again at once: attempt 2, with a startedBy of its own
        retry = steps.measure_step(prov, try_id, event)
        record = record_of(prov)
        assert retry.phase == "prefill" and record.attempt == 2 and record.again
        assert record.detail.started_by.prefill != first.detail.started_by.prefill
        (earlier,) = record.earlier
        assert earlier.startswith("attempt 1: watch: load task ") and "(g1)" in earlier
        assert "UserInitiated" in earlier
        _to_the_end(prov, try_id, retry)
    assert not fake.errors, fake.errors
    record = record_of(prov)
    assert record.status == "done" and record.attempt == 2 and record.again
    assert record.detail.results_uri.endswith("/attempt2")
    rdir = steps._result_dir(prov.plan.runs[0], prov.plan).path
    assert json.loads((rdir / "load.json").read_text())["requests"] == 2 * MEASURED
    error = (rdir / "error.txt").read_text()
    assert "drained by an operator" in error and "(attempt 1, measured again)" in error
    (row,) = _runs_csv(prov)
    assert (row["status"], row["attempt"]) == ("ok", "2")
    assert "UserInitiated" in row["earlier_attempts"]


def test_a_run_lost_twice_fails_and_says_both(aws, results_dir, tmp_path) -> None:
    """Attempt 1 killed (its container's memtier by SIGKILL: exit 137), attempt 2's task
    stopped by someone else: the run fails at attempt 2, never an attempt 3."""
    prov = provisioned("losttwice", generators=2)
    with FakeEcs(tmp_path / "ecs", "losttwice", time_scale=20.0) as fake:
        try_id = steps.begin_try(prov)
        watch = _to_load(prov, try_id)
        arn = _load_task(prov, fake, "g0")
        fake.kill(arn, 9)  # the container's shell and memtier, by SIGKILL: exit 137
        event = wait_on(watch)
        assert event["lost"] is True and "exit code 137 (signal 9, SIGKILL)" in event["message"]
        watch = _to_load(prov, try_id, event)
        assert record_of(prov).attempt == 2
        _stop_by_someone_else(prov, fake, "g0")
        event = wait_on(watch)
        assert event["lost"] is True
        assert steps.measure_step(prov, try_id, event) is None  # no attempt 3
    record = record_of(prov)
    assert record.status == "failed" and record.attempt == 2 and record.again and record.lost
    assert "drained by an operator" in record.error
    (earlier,) = record.earlier
    assert "SIGKILL" in earlier
    rdir = steps._result_dir(prov.plan.runs[0], prov.plan).path
    error = (rdir / "error.txt").read_text()
    assert "SIGKILL" in error and "(attempt 1, measured again)" in error
    assert "drained by an operator" in error
    (row,) = _runs_csv(prov)
    assert (row["status"], row["attempt"]) == ("failed", "2")
    assert "SIGKILL" in row["earlier_attempts"] and "drained by an operator" in row["reason"]


def test_a_load_task_that_vanished_or_left_no_result_is_measured_again(
    aws, results_dir, tmp_path
) -> None:
    """Attempt 1: ECS forgets g1 mid-run (DescribeTasks: MISSING); attempt 2: every task
    exits 0 but g1's results never reach S3; attempt 3 is never started."""
    prov = provisioned("vanished", generators=2)
    with FakeEcs(tmp_path / "ecs", "vanished", time_scale=20.0) as fake:
        try_id = steps.begin_try(prov)
        watch = _to_load(prov, try_id)
        arn = _load_task(prov, fake, "g1")
        forget_task(CLUSTER, arn)  # its host is gone, and ECS's record of it
        fake.kill(arn, 9)
        event = wait_on(watch)
        assert event["lost"] is True and "vanished: ECS answers MISSING" in event["message"]
        fake.time_scale = 0.3
        watch = _to_load(prov, try_id, event)
        record = record_of(prov)
        assert record.attempt == 2 and "vanished" in record.earlier[0]
        assert wait_on(watch)["status"] == "done"
        bucket, prefix = split_uri(record.detail.results_uri)
        s3 = boto3.client("s3")
        for key in s3_objects(record.detail.results_uri):
            if key.startswith(f"{prefix}/g1/"):
                s3.delete_object(Bucket=bucket, Key=key)
        assert steps.measure_step(prov, try_id, {"status": "done"}) is None
    record = record_of(prov)
    assert record.status == "failed" and record.attempt == 2 and record.lost
    assert "no measured result from load generator(s) [1]" in record.error
    assert "(g1) stopped with exit code 0" in record.error  # what ECS said of its task
    assert "its log ends:" in record.error


def test_a_failed_prefill_fails_the_run_with_its_log_and_starts_no_load(
    aws, results_dir, tmp_path
) -> None:
    prov = provisioned("prefillfails", generators=2)
    with FakeEcs(tmp_path / "ecs", "prefillfails", fail=("*/prefill",)) as fake:
        try_id = steps.begin_try(prov)
        assert wait_on(steps.measure_step(prov, try_id, None))["status"] == "success"
        assert steps.measure_step(prov, try_id, {"status": "success"}) is None
    assert list(fake.done.values()) == [1]  # the prefill task alone, exit 1
    record = record_of(prov)
    assert record.status == "failed" and record.error.startswith("prefill: ")
    assert "exit code 1" in record.error
    assert "Connection error: TLS handshake failed" in record.error  # its awslogs tail
    assert record.detail.started_by.load is None
    sb = target.started_by(prov.plan, prov.plan.runs[0], 1, "load")
    assert tasks_of(sb) == []  # no load on a data set that was not written


def test_watch_fails_on_evictions_and_unavailable_group(aws, results_dir, monkeypatch) -> None:
    made: list[str] = []  # the clients the watch makes: one per service, however many polls
    make = clients.client
    monkeypatch.setattr(
        clients, "client", lambda service, *a, **k: made.append(service) or make(service, *a, **k)
    )
    prov = provisioned("evict", generators=1)
    rg = target.replication_group_id(prov.plan)
    _, nodes = cloudwatch.member_clusters(boto3.client("elasticache"), rg)
    assert len(nodes) == 2  # primary + 1 replica, from describe_replication_groups
    now = time.time()
    kwargs = {
        "region": "us-east-1",
        "cluster": CLUSTER,
        "started_by": f"cb-test-{uuid.uuid4().hex[:20]}",  # none of its tasks yet: starting
        "expected": 1,
        "container": "memtier",
        "replication_group_id": rg,
        "started_at": now,
        "deadline": now + 600,
        "min_poll": 0.05,
    }
    trig = EcsElastiCacheWatchTrigger(**kwargs)
    assert trig.check_once() is None
    put_node_metrics(nodes[1:], now + 1, evictions=42)
    event = trig.check_once()
    assert event.status == "failed" and "evicted 42 keys" in event.message
    allowed = EcsElastiCacheWatchTrigger(**{**kwargs, "evictions_allowed": True})
    assert allowed.check_once() is None  # a data set larger than memory evicts by design
    ec = boto3.client("elasticache")
    ec.delete_replication_group(ReplicationGroupId=rg)  # gone at once (moto_gaps)
    event = allowed.check_once()
    assert event.status == "failed" and "not found" in event.message
    # two watches, five polls in all: each made each of its clients once (a new client is
    # a new boto3 session: the endpoint data parsed again); evictions allowed: no cloudwatch
    assert made == ["ecs", "elasticache", "cloudwatch", "ecs", "elasticache"], made


def test_export_reads_every_node_with_pagination(aws, results_dir) -> None:
    prov = provisioned("export", generators=1)
    rg = target.replication_group_id(prov.plan)
    _, nodes = cloudwatch.member_clusters(boto3.client("elasticache"), rg)
    t0 = 1_790_000_040.0  # a whole minute
    for minute in range(5):
        put_node_metrics(nodes, t0 + 60 * minute + 5, allowance_out=3.0 if minute >= 3 else 0.0)
    cw = boto3.client("cloudwatch")
    requests = []
    cw.meta.events.register(
        "provide-client-params.cloudwatch.GetMetricData",
        lambda params, **_: requests.append(len(params["MetricDataQueries"])),
    )
    # 2 nodes x 19 metrics = 38 queries in batches of 7: six requests to moto
    point = prov.plan.runs[0].point
    table = cloudwatch.node_metrics(cw, point.id, nodes, t0, t0 + 299, batch=7)
    assert requests == [7, 7, 7, 7, 7, 3]
    assert set(table["node_id"].astype(str)) == set(nodes)
    assert (table["period_s"] == 60).all()
    per = table.groupby(["node_id", "metric"], observed=True).size()
    assert (per == 5).all() and len(per) == 2 * 8  # 8 metrics were published, each minute
    net = table[table["metric"] == "NetworkBytesOut"]
    assert (net["value"] == 9e9).all() and set(net["unit"].astype(str)) == {"Bytes"}

    from cachebench.catalogue import load_instance_specs
    from cachebench.models import Latency, LoadResult
    from cachebench.report.export import point_summary

    lat = Latency(p50=1, p90=2, p99=3, p99_9=4, max=5, mean=1.5)
    load = LoadResult(tool="memtier_benchmark", started_at=t0, elapsed_seconds=300,
                      requests=1, ops_per_sec=1, kb_per_sec=1, latency=lat)  # fmt: skip
    row = point_summary(point, table, load, load_instance_specs()[("aws", point.node_type)])
    assert row["net_out_gbps_peak"] == pytest.approx(9e9 * 8 / 60 / 1e9)
    # cache.r7g.large: baseline 0.937 Gbps, burst up to 12.5 Gbps (AWS ElastiCache
    # "Supported node types", docs.aws.amazon.com/AmazonElastiCache/latest/dg/
    # CacheNodes.SupportedTypes.html)
    assert row["baseline_gbps"] == 0.937 and row["burst_gbps"] == 12.5
    assert row["seconds_above_baseline"] == 300
    assert row["allowance_first_exceeded_s"] == 180  # the burst ran out in minute 3


def test_get_metric_data_follows_next_token() -> None:
    """moto answers GetMetricData in one page, so NextToken is checked with botocore's Stubber."""
    cw = boto3.client("cloudwatch", region_name="us-east-1", aws_access_key_id="x",
                      aws_secret_access_key="x")  # fmt: skip
    queries, _ = cloudwatch.queries_for(["n-001"], {"Evictions": ("Sum", "Count")})
    t0 = datetime(2026, 11, 26, 5, tzinfo=UTC)
    pages = [
        ([t0, t0 + timedelta(minutes=1)], [1.0, 2.0], "page-2"),
        ([t0 + timedelta(minutes=2)], [3.0], None),
    ]
    with Stubber(cw) as stub:
        for i, (ts, vals, token) in enumerate(pages):
            resp = {"MetricDataResults": [{"Id": "n0m0", "Timestamps": ts, "Values": vals}]}
            if token:
                resp["NextToken"] = token
            expected = {
                "MetricDataQueries": queries,
                "StartTime": t0,
                "EndTime": t0 + timedelta(minutes=3),
                "ScanBy": "TimestampAscending",
            }
            if i:
                expected["NextToken"] = pages[i - 1][2]
            stub.add_response("get_metric_data", resp, expected)
        data = cloudwatch.get_metric_data(cw, queries, t0, t0 + timedelta(minutes=3))
    assert [v for _, v in data["n0m0"]] == [1.0, 2.0, 3.0]


def test_aws_points_default_to_five_load_generators() -> None:
    from cachebench.campaign import CampaignSpec

    fields = campaign("five")
    del fields["load_generators"]
    assert {p.load_generators for p in CampaignSpec.from_input(fields).points()} == {5}


def test_reaper_hooks_find_and_delete_expired_groups(aws) -> None:
    tag = uuid.uuid4().hex[:8]
    expired, alive = f"cb-expired-{tag}", f"cb-alive-{tag}"
    for rg, expires in ((expired, "2020-01-01T00:00:00Z"), (alive, "2999-01-01T00:00:00Z")):
        tags = {"cachebench:deployment": rg, "cachebench:campaign": "c", "cachebench:run": "r",
                "cachebench:expires-at": expires}  # fmt: skip
        create_group(rg, tags, cluster_mode=True, shards=2, replicas=0)
    leftovers, spared = TARGET.find_leftovers([], time.time(), lambda c, r: None)
    found = {f.where: f for f in leftovers}
    assert expired in found and alive not in found
    assert found[expired].deployment_id == expired and spared == []
    assert TARGET.reap_leftover(found[expired]) == []
    ec = boto3.client("elasticache")
    with pytest.raises(ec.exceptions.ReplicationGroupNotFoundFault):  # deleted (moto_gaps)
        ec.describe_replication_groups(ReplicationGroupId=expired)
    sm = boto3.client("secretsmanager")
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=f"cachebench/{expired}/auth")
    ec.delete_replication_group(ReplicationGroupId=alive)


def test_results_land_under_the_runs_own_prefix(aws, results_dir) -> None:
    """Attempts and repetitions never share a results folder (a retry reads its own)."""
    prov = provisioned("prefix", generators=1)
    s = target.settings_for(prov.plan)
    run = prov.plan.runs[0]
    uris = {target.results_uri(s, prov.plan, run, a) for a in (1, 2)}
    assert len(uris) == 2
    assert all(u.startswith(f"s3://{RESULTS_BUCKET}/cachebench-results/prefix/") for u in uris)
    assert target.started_by(prov.plan, run, 1, "load") != target.started_by(
        prov.plan, run, 1, "prefill"
    )
    assert all(len(target.started_by(prov.plan, run, a, "prefill")) <= 36 for a in (1, 99))
