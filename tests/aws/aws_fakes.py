"""Stand-ins for what runs inside AWS and cannot run in moto.

moto's ECS never starts a container: FakeLoadTasks plays the memtier
container of every RUNNING task (it uploads the result files the real
container's script would upload, built from a real memtier capture, with fresh
timestamps) and then marks the task STOPPED with an exit code. moto has no
ElastiCache engine either, so it also publishes the group's CloudWatch
datapoints (put_metric_data) the way ElastiCache would.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import boto3

REGION = "us-east-1"
CLUSTER = "cachebench-load"
FAMILY = "memtier"
STATE_BUCKET = "cachebench-state"
RESULTS_BUCKET = "cachebench-results"
REAL = Path(__file__).resolve().parents[1] / "fixtures" / "memtier-real"
MEMTIER_JSON = REAL / "memtier_real_single.json"  # a real capture (see its README)
MEMTIER_HGRM = REAL / "memtier_real_single_FULL_RUN_1.hgrm"
# What `memtier_benchmark --version` prints first in the fake image (2.2.1 and later form).
IMAGE_VERSION = "memtier_benchmark v=2.2.1 sha=3347cb90:0 bits=64 libevent=2.1.12-stable"
TOKEN = "S3cr3t-T0ken-never-kept"


def memtier_json(start: float, token: str | None = None) -> str:
    """The capture's memtier JSON with its run starting at `start` (and a token in it,
    as memtier writes one when it was given --authenticate)."""
    doc = json.loads(MEMTIER_JSON.read_text())
    rt = doc["ALL STATS"]["Runtime"]
    dur = rt["Finish time"] - rt["Start time"]
    rt["Start time"] = int(start * 1000)
    rt["Finish time"] = int(start * 1000) + dur
    if token:
        doc["configuration"]["authenticate"] = token
    return json.dumps(doc, indent=1)


def upload_results(results_uri: str, start: float, token: str | None = None) -> None:
    """What one load task's container script uploads (cachebench.aws.ecs): the version
    line, and per phase its start time, memtier's JSON and HDR log."""
    bucket, _, prefix = results_uri[5:].partition("/")
    prefix = prefix.rstrip("/")
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_object(Bucket=bucket, Key=f"{prefix}/version.txt", Body=f"{IMAGE_VERSION}\n")
    for phase, t in (("warmup", start - 60), ("measured", start)):
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{phase}.started", Body=f"{t:.9f}\n")
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{phase}.json", Body=memtier_json(t, token))
        s3.put_object(
            Bucket=bucket, Key=f"{prefix}/{phase}_FULL_RUN_1.hgrm", Body=MEMTIER_HGRM.read_bytes()
        )


def put_node_metrics(
    node_ids: list[str], at: float, evictions: float = 0.0, allowance_out: float = 0.0
) -> None:
    """One datapoint per node and metric at `at`, as ElastiCache publishes them."""
    cw = boto3.client("cloudwatch", region_name=REGION)
    ts = datetime.fromtimestamp(at, UTC)
    values = {
        "CPUUtilization": ("Percent", 35.0),
        "EngineCPUUtilization": ("Percent", 60.0),
        "NetworkBytesIn": ("Bytes", 6e9),  # 0.8 Gbps over 60 s
        "NetworkBytesOut": ("Bytes", 9e9),  # 1.2 Gbps
        "BytesUsedForCache": ("Bytes", 2.5e8),
        "CurrConnections": ("Count", 250.0),
        "Evictions": ("Count", evictions),
        "NetworkBandwidthOutAllowanceExceeded": ("Count", allowance_out),
    }
    for node in node_ids:
        dims = [
            {"Name": "CacheClusterId", "Value": node},
            {"Name": "CacheNodeId", "Value": "0001"},
        ]
        cw.put_metric_data(
            Namespace="AWS/ElastiCache",
            MetricData=[
                {"MetricName": m, "Dimensions": dims, "Timestamp": ts, "Unit": u, "Value": v}
                for m, (u, v) in values.items()
            ],
        )


LOG_GROUP, LOG_PREFIX, CONTAINER = "/cachebench/load", "memtier", "memtier"


def write_task_log(task_arn: str, lines: list[str]) -> None:
    """What the awslogs driver writes for a task's container: <prefix>/<container>/<task id>."""
    logs = boto3.client("logs", region_name=REGION)
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_group(logGroupName=LOG_GROUP)
    stream = f"{LOG_PREFIX}/{CONTAINER}/{task_arn.rsplit('/', 1)[-1]}"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=LOG_GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": now, "message": line} for line in lines],
    )


def set_exit_code(cluster: str, task_arn: str, code: int, reason: str) -> None:
    """Stop a task and give its container an exit code (moto's API cannot set either on
    the container: its lastStatus stays PENDING, which EcsRunTaskOperator reads as not run)."""
    from moto.ecs.models import ecs_backends

    ecs = boto3.client("ecs", region_name=REGION)
    ecs.stop_task(cluster=cluster, task=task_arn, reason=reason)
    task = ecs_backends["123456789012"][REGION].tasks[cluster.split("/")[-1]][task_arn]
    for c in task.containers:
        c.exitCode = code
        c.last_status = "STOPPED"


class FakeLoadTasks(threading.Thread):
    """Plays every RUNNING task of `cluster`: results + metrics, then STOPPED.

    Tasks whose point id matches a glob in `fail` exit 1 without results.
    """

    def __init__(self, cluster: str, fail: tuple[str, ...] = (), token: str = TOKEN):
        super().__init__(daemon=True)
        self.cluster, self.fail, self.token = cluster, fail, token
        self.done: dict[str, int] = {}
        self.published: set[str] = set()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)

    def run(self) -> None:
        ecs = boto3.client("ecs", region_name=REGION)
        ec = boto3.client("elasticache", region_name=REGION)
        while not self._stop_event.is_set():
            arns = ecs.list_tasks(cluster=self.cluster, desiredStatus="RUNNING")["taskArns"]
            new = [a for a in arns if a not in self.done]
            if new:
                groups = ec.describe_replication_groups()["ReplicationGroups"]
                nodes = [
                    m
                    for g in groups
                    if g["Status"] == "available"
                    for m in g["MemberClusters"]
                    if m not in self.published
                ]
                now = time.time()
                put_node_metrics(nodes, now - 5, allowance_out=4.0)  # once per node
                self.published.update(nodes)
                tasks = ecs.describe_tasks(cluster=self.cluster, tasks=new, include=["TAGS"])
                for t in tasks["tasks"]:
                    tags = {x["key"]: x["value"] for x in t.get("tags", [])}
                    env = {
                        e["name"]: e["value"]
                        for e in t["overrides"]["containerOverrides"][0]["environment"]
                    }
                    point = tags.get("cachebench:point", "")
                    if any(fnmatch.fnmatch(point, g) for g in self.fail):
                        write_task_log(t["taskArn"], ["Connection error: TLS handshake failed"])
                        set_exit_code(self.cluster, t["taskArn"], 1, "Essential container exited")
                        self.done[t["taskArn"]] = 1
                        continue
                    upload_results(env["CACHEBENCH_RESULTS_URI"], now - 10, self.token)
                    write_task_log(t["taskArn"], ["ALL STATS", "Totals  ...  (fake memtier)"])
                    set_exit_code(self.cluster, t["taskArn"], 0, "Essential container exited")
                    self.done[t["taskArn"]] = 0
            self._stop_event.wait(0.2)


def campaign(name: str, generators: int = 3, **extra) -> dict:
    """A small aws campaign: redis and valkey, one topology, a short workload."""
    return {
        "name": name,
        "target": "aws",
        "engines": [
            {"engine": "redis", "versions": ["7.1"]},
            {"engine": "valkey", "versions": ["8.0"]},
        ],
        "topologies": [{"cluster_mode": False, "replicas": 1}],
        "node_types": ["cache.r7g.large"],
        "workloads": [
            {
                "name": "mixed",
                "ratio": "1:4",
                "value_size": 256,
                "key_space": 100000,
                "pipeline": 2,
                "clients": 25,
                "threads": 4,
                "warmup_seconds": 60,
                "duration_seconds": 600,
            }
        ],
        "load_generators": generators,
        "budget_usd": 50,
        **extra,
    }
