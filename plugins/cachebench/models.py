"""The data that moves between the steps of a campaign.

Every model here is plain data (pydantic, JSON-serialisable) because it travels
through XCom between Airflow tasks. None of them ever holds a secret: the AUTH
password lives in a file (local) or a secret store (aws) and only its path or
ARN is passed around.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cachebench.engines import MAXMEMORY_POLICIES

Engine = Literal["redis", "valkey"]
Target = Literal["local", "aws"]
MaxmemoryPolicy = Literal[MAXMEMORY_POLICIES]  # type: ignore[valid-type]

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}\Z")  # \Z: "$" would allow a trailing newline
# memtier's --key-pattern: SET pattern ':' GET pattern; R random, S sequential,
# G gaussian, P parallel (cluster), Z zipf (memtier >= 2.1).
KEY_PATTERN = re.compile(r"^[RSGPZ]:[RSGPZ]\Z")
RATIO = re.compile(r"^[0-9]{1,4}:[0-9]{1,4}\Z")  # ASCII digits only


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Topology(Strict):
    """Cluster mode off (one shard, optional replicas) or on (shards x replicas)."""

    cluster_mode: bool = False
    shards: int = Field(1, ge=1, le=500)
    replicas: int = Field(0, ge=0, le=5)

    @model_validator(mode="after")
    def _single_shard_when_off(self) -> Topology:
        if not self.cluster_mode and self.shards != 1:
            raise ValueError(f"shards={self.shards}: cluster_mode off allows exactly 1 shard")
        return self

    @property
    def nodes(self) -> int:
        return self.shards * (1 + self.replicas)

    @property
    def label(self) -> str:
        if self.cluster_mode:
            return f"c{self.shards}r{self.replicas}"
        return "single" if self.replicas == 0 else f"single-r{self.replicas}"


class Workload(Strict):
    """One load shape, in memtier_benchmark's terms."""

    name: str = Field(description="short slug used in point ids")
    ratio: str = Field("1:10", description="SET:GET ratio, as memtier --ratio")
    value_size: int = Field(256, ge=1, le=1_048_576, description="bytes per value")
    key_space: int = Field(100_000, ge=1, le=1_000_000_000, description="key maximum")
    key_pattern: str = Field("R:R", description="SET:GET key pattern, as memtier --key-pattern")
    pipeline: int = Field(1, ge=1, le=1000)
    clients: int = Field(50, ge=1, le=10_000, description="connections per thread")
    threads: int = Field(4, ge=1, le=64)
    warmup_seconds: int = Field(5, ge=0, le=3600)
    duration_seconds: int = Field(3600, ge=1, le=86_400)
    rate_limit: int | None = Field(
        None, ge=1, description="requests per second per connection (memtier --rate-limiting)"
    )
    read_from: Literal["primary", "replicas"] = Field(
        "primary",
        description="where GETs go: the primary, or the replicas (cluster mode off: the "
        "reader endpoint on aws, the replica nodes locally)",
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError(f"{v!r}: use 1-40 chars of a-z, 0-9 and '-'")
        return v

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, v: str) -> str:
        if not RATIO.match(v) or v == "0:0" or all(int(p) == 0 for p in v.split(":")):
            raise ValueError(f"{v!r}: use SET:GET with non-negative integers, e.g. '1:10'")
        return v

    @field_validator("key_pattern")
    @classmethod
    def _pattern(cls, v: str) -> str:
        if not KEY_PATTERN.match(v):
            raise ValueError(f"{v!r}: use SET:GET with each of R, S, G, P or Z, e.g. 'R:R'")
        return v

    @property
    def set_get(self) -> tuple[int, int]:
        s, g = self.ratio.split(":")
        return int(s), int(g)


class Node(Strict):
    node_id: str
    host: str
    port: int
    role: Literal["primary", "replica"]
    shard: int = 0


class Endpoint(Strict):
    """What `apply` hands to the load step: where to connect and how to authenticate."""

    host: str
    port: int
    cluster_mode: bool
    tls: bool = False
    # Path of a 0600 file holding the AUTH password (local) or a Secrets Manager ARN (aws).
    auth_ref: str | None = None
    nodes: list[Node] = []
    # Cluster mode off with replicas: the endpoint that spreads reads over the replicas
    # (ElastiCache's reader endpoint); None where there is none.
    reader_host: str | None = None


class Latency(Strict):
    """Milliseconds, computed from a (merged) HDR histogram, never averaged."""

    p50: float
    p90: float
    p99: float
    p99_9: float
    max: float
    mean: float


class SecondSample(Strict):
    second: int  # seconds since the start of the measured window
    ops_per_sec: float
    p50_ms: float | None = None
    p99_ms: float | None = None


class LoadResult(Strict):
    """One load generator's (or the merged) result for the measured window."""

    tool: str
    tool_version: str = ""
    started_at: float  # unix seconds
    elapsed_seconds: float
    requests: int
    errors: int = 0
    ops_per_sec: float
    set_ops_per_sec: float = 0.0
    get_ops_per_sec: float = 0.0
    kb_per_sec: float
    latency: Latency
    series: list[SecondSample] = []
    # HdrHistogram's compressed base64 encoding (microseconds), for merging.
    histogram: str = ""
    generators: int = 1
    # What a reader must know about these numbers (e.g. a tool's own summary found wrong).
    notes: list[str] = []
    # Where the GETs went: "primary", "reader endpoint <host>", "replica nodes 0001-002".
    reads_from: str = "primary"
    # Error replies the tool logged (memtier counts them as served operations: they are
    # taken out of requests and rates here, and flag the run).
    error_replies: int = 0
    # Several generators: how far apart their measured windows started, and the share of
    # the asked window in which all of them were measuring.
    start_skew_s: float | None = None
    overlap_pct: float | None = None
    # What makes the run's numbers doubtful; the report names every flagged run.
    flags: list[str] = []


class _Cell(Strict):
    """What a deployment and a point share: the sweep cell without its workload."""

    id: str
    index: int
    campaign: str
    target: Target
    engine: Engine
    version: str
    topology: Topology
    node_type: str
    load_generators: int = Field(1, ge=1, le=100)
    load_tool: str = "memtier_benchmark"


class Deployment(_Cell):
    """The infrastructure of a sweep cell: engine x version x topology x node type.

    Provisioned once per campaign run (once per repetition with
    redeploy_per_repetition); every run of its workloads is measured on it.
    """

    maxmemory_policy: MaxmemoryPolicy = "allkeys-lru"  # the campaign's, for its servers


class Point(_Cell):
    """What a result is named by: a deployment and a workload (its repetitions sit under it)."""

    workload: Workload

    @property
    def deployment_id(self) -> str:
        return deployment_id(self.engine, self.version, self.topology, self.node_type)


def deployment_id(engine: str, version: str, topology: Topology, node_type: str) -> str:
    """engine-version-topology-node_type, e.g. valkey-9.1-c3r0-local.small."""
    return f"{engine}-{version}-{topology.label}-{node_type}"


class RunSpec(Strict):
    """One measurement: a point's workload, repetition `repetition`, on its deployment."""

    point: Point
    repetition: int = Field(ge=1)
    order: int = Field(ge=0, description="position in the campaign's run order")

    @property
    def key(self) -> str:
        return f"{self.point.id}/rep{self.repetition}"

    @property
    def label(self) -> str:
        return f"{self.point.workload.name} rep {self.repetition}"


class DeploymentPlan(Strict):
    """What plan hands to one mapped deployment: its infrastructure and its runs, in order."""

    deployment: Deployment
    instance: str = Field(description="label and folder: the deployment id (+ '-rep<k>')")
    instance_index: int
    instances: int
    run_id: str
    run_dir: str
    runs: list[RunSpec]


class Provisioned(Strict):
    """What apply hands to measure: the plan and where the servers are."""

    plan: DeploymentPlan
    endpoint: Endpoint


class RunOutcome(Strict):
    key: str
    point_id: str
    repetition: int
    status: Literal["ok", "failed"]
    error: str = ""


class Measured(Strict):
    """What measure hands on: every run of the deployment and how it ended."""

    instance: str
    outcomes: list[RunOutcome]

    @property
    def failed(self) -> list[RunOutcome]:
        return [o for o in self.outcomes if o.status != "ok"]


class Wait(Strict):
    """What a measure task defers on next (a run's load phase, or a timer): a trigger class
    and its arguments."""

    classpath: str
    kwargs: dict[str, Any]
    phase: str


class LocalRunDetail(Strict):
    """A local run: its detached runner (named by pid and start) and its folder."""

    target: Literal["local"] = "local"
    pid: int
    proc_start: float | None = Field(description="the runner's start, seconds since boot")
    argv: list[str]
    out_dir: str


class AwsStartedBy(Strict):
    """The ECS startedBy of each phase's tasks (a retry finds them by it)."""

    prefill: str
    load: str | None = None


class AwsRunDetail(Strict):
    """An aws run: its ECS tasks and where they upload their results."""

    target: Literal["aws"] = "aws"
    results_uri: str
    started_by: AwsStartedBy
    prefill_task: str
    load_started_at: float | None = Field(None, description="when its load tasks were started")
    load_start_at: float | None = Field(None, description="when they all begin their load")
    load_tasks: list[str] = Field([], description="the load tasks' ARNs, g0 first")


class Cleanup(Strict):
    """cleanup.json: the last destroy's word on a deployment (each try overwrites it), read
    by the report and the notifications."""

    status: Literal["clean", "CLEANUP FAILED"]
    at: float
    problems: list[str] = []
    notes: list[str] = []


class Destroyed(Strict):
    """What destroy returns (XCom): the deployment is gone; what it noticed on the way."""

    instance: str
    destroyed: bool = True
    notes: list[str] = []


class RunRecord(Strict):
    """A run's state on disk, so a retry or a cleared task knows what is under way."""

    status: Literal["started", "done", "failed"]
    attempt: int = 1
    phase: str = "load"
    try_id: str = Field("", description="the try of measure that last started or ended it")
    started_at: float
    error: str = ""
    lost: bool = Field(
        False,
        description="failed because a load generator was killed by a signal nobody here "
        "sent, or the harness lost the run: it is measured again once",
    )
    again: bool = Field(False, description="this attempt measures again a lost one")
    earlier: list[str] = Field([], description="why each earlier attempt failed, oldest first")
    window: tuple[float, float] | None = Field(
        None, description="the measured window (unix seconds), once its load was collected"
    )
    detail: LocalRunDetail | AwsRunDetail | None = Field(
        None, discriminator="target", description="what the target needs to follow the run"
    )


class PrefillResult(Strict):
    """The data set written before a run's warm-up (kept apart from the measured window)."""

    tool: str
    keys: int
    # The keys the primaries held afterwards (DBSIZE, summed), where it was counted.
    dbsize: int | None = None
    value_size: int
    seconds: float
    started_at: float
    notes: list[str] = []


class GeneratorCpu(Strict):
    """One load generator's CPU over the measured window, a sample a second."""

    generator: int | None = None
    side: str | None = None
    tool: str | None = None
    capacity_cores: float = Field(gt=0, description="cores it can use (its threads)")
    cpu_pct: list[float] = Field(description="% of one core it ran, each second")
    demand_pct: list[float] = Field(
        [], description="% of one core it ran or waited to run (run queue), each second"
    )

    @property
    def utilisation_pct(self) -> list[float]:
        """% of what this generator can use that it wanted (its demand where measured,
        else its use): 100 means all of its threads running or waiting to run."""
        return [v / self.capacity_cores for v in (self.demand_pct or self.cpu_pct)]


class LoadCpu(Strict):
    """The load generators' CPU during a run's measured window (saturation evidence)."""

    started_at: float
    interval_s: float = 1.0
    host_cores: int | None = Field(None, description="cores of the machine they ran on")
    generators: list[GeneratorCpu]


class RunLoads(Strict):
    """What one run's load tools measured: the window, and apart from it the warm-up and
    prefill. A run whose measured window gave no result says why in `error` (what did
    finish before it, such as the warm-up, is still here)."""

    measured: LoadResult | None
    warmup: LoadResult | None = None
    prefill: PrefillResult | None = None
    cpu: LoadCpu | None = None
    error: str = ""
    lost: bool = Field(
        False, description="no result through no fault of the server (see RunRecord)"
    )


# The long metric table every metrics source writes (local agent and CloudWatch).
METRIC_COLUMNS = ["timestamp", "point_id", "node_id", "metric", "value", "unit", "period_s"]
