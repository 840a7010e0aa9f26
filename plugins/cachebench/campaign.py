"""Campaign spec: the sweep matrix, its validation and its expansion into points.

A campaign comes from a YAML file in include/campaigns/ or from the UI trigger
form; both go through `CampaignSpec.from_input`, so both are refused the same
way: one `CampaignError` that lists every problem as `field: value: allowed`.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    ValidationError,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)

from cachebench import engines, pricing, specs
from cachebench.aws.settings import VARIABLE, AwsSettings, resolve
from cachebench.history.baseline import Baseline
from cachebench.models import (
    SLUG,
    Deployment,
    DeploymentPlan,
    Engine,
    MaxmemoryPolicy,
    Point,
    RunSpec,
    Strict,
    Target,
    Topology,
    Workload,
    deployment_id,
)
from cachebench.notify import Channel
from cachebench.notify import problems as notify_problems
from cachebench.provenance import Provenance

LOCAL_MAX_NODES = 12  # 2 cores: more server processes than this only measures contention
LOCAL_MAX_DEPLOYMENTS = 200  # each deployment of a local run owns a block of loopback ports
AWS_MAX_NODES = 500  # ElastiCache's limit of nodes per replication group
AWS_LOAD_GENERATORS = 5  # default load tasks per aws point: one task rarely saturates a node
# Load-generator cost on AWS: one Fargate task of 4 vCPU / 8 GiB, at the campaign region's rate.
LOAD_TASK_VCPU, LOAD_TASK_GIB = 4, 8
PROVISION_HOURS = {"aws": 0.5, "local": 0.0}  # create + delete of a replication group
# aws: each run starts a prefill task, then its load tasks: Fargate start-up, image pull
# and the prefill itself, billed on the cache nodes while nothing is measured.
RUN_OVERHEAD_HOURS = {"aws": 3 / 60, "local": 0.0}
DEFAULT_REPETITIONS = {"local": 3, "aws": 1}


class CampaignError(ValueError):
    """Bad input: every problem names the field, the value and what is allowed."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid campaign:\n" + "\n".join(f"  - {p}" for p in problems))


class EngineSweep(Strict):
    engine: Engine
    versions: list[str] = Field(min_length=1)


# Compact forms, as the trigger form's multi-selects send them and a YAML file may write
# them: "redis 7.0" for an engine version, a Topology.label ("single", "single-r1", "c3r1").
ENGINE_LABEL_PATTERN = rf"^\s*({'|'.join(get_args(Engine))})\s+\S+\s*$"
TOPOLOGY_LABEL = re.compile(r"^(?:single(?:-r([0-9]{1,3}))?|c([0-9]{1,3})r([0-9]{1,3}))\Z")
TOPOLOGY_LABEL_PATTERN = r"^\s*(single(-r[0-9]{1,3})?|c[0-9]{1,3}r[0-9]{1,3})\s*$"
TOPOLOGY_LINE_PATTERN = r"^\s*(single(-r[0-9]{1,3})?|c[0-9]{1,3}r[0-9]{1,3})?\s*$"  # or blank
TOPOLOGY_LABEL_HELP = "use a label: single, single-r<replicas>, c<shards>r<replicas> (e.g. c3r1)"


def engine_labels(sweep: EngineSweep) -> list[str]:
    return [f"{sweep.engine} {v}" for v in sweep.versions]


def _engine_input(value: Any) -> Any:
    """'redis 7.0' -> {engine: redis, versions: [7.0]}; EngineSweep then checks both parts."""
    if not isinstance(value, str):
        return value
    parts = value.split()
    if len(parts) != 2:
        raise ValueError(
            "use '<engine> <version>', e.g. 'redis 7.0', or a mapping {engine, versions}"
        )
    return {"engine": parts[0], "versions": [parts[1]]}


def _topology_fields(label: str, problem: str) -> dict[str, Any]:
    """A Topology.label -> its fields; Topology then checks their bounds."""
    m = TOPOLOGY_LABEL.match(label.strip())
    if m is None:
        raise ValueError(problem)
    replicas, shards, cluster_replicas = m.groups()
    if shards is None:
        return {"cluster_mode": False, "replicas": int(replicas or 0)}
    return {"cluster_mode": True, "shards": int(shards), "replicas": int(cluster_replicas)}


def topology_from_label(label: str) -> Topology:
    return Topology(**_topology_fields(label, TOPOLOGY_LABEL_HELP))


def _topology_input(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return _topology_fields(
        value, f"{TOPOLOGY_LABEL_HELP}, or a mapping {{cluster_mode, shards, replicas}}"
    )


def _label_only(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"expected a label; {TOPOLOGY_LABEL_HELP}")
    return _topology_fields(value, TOPOLOGY_LABEL_HELP)


def _label(pattern: str) -> Any:
    return Annotated[str, WithJsonSchema({"type": "string", "pattern": pattern})]


EngineItem = Annotated[
    EngineSweep,
    BeforeValidator(
        _engine_input, json_schema_input_type=_label(ENGINE_LABEL_PATTERN) | EngineSweep
    ),
]
TopologyItem = Annotated[
    Topology,
    BeforeValidator(
        _topology_input, json_schema_input_type=_label(TOPOLOGY_LABEL_PATTERN) | Topology
    ),
]
TopologyLabel = Annotated[
    Topology,
    BeforeValidator(_label_only, json_schema_input_type=_label(TOPOLOGY_LINE_PATTERN)),
]


class CampaignSpec(Strict):
    """What a user writes: the axes of the sweep and the guard rails."""

    name: str = Field(description="campaign slug: DAG id suffix and results folder")
    description: str = ""
    target: Target = "local"
    schedule: str | None = None
    engines: list[EngineItem] = Field(
        min_length=1, description="engine versions: 'redis 7.0' or {engine, versions: [...]}"
    )
    topologies: list[TopologyItem] = Field(
        description="labels (single, single-r1, c3r0, c3r1, ...) or "
        "{cluster_mode, shards, replicas}",
    )
    custom_topologies: list[TopologyLabel] = Field(
        [],
        exclude=True,  # folded into topologies
        description="more topologies by label, added to topologies (the form's free text field)",
    )
    node_types: list[str] = Field(min_length=1)
    workloads: list[Workload] = Field(min_length=1)
    load_generators: int = Field(1, ge=1, le=100, description="load tasks per run")
    repetitions: int = Field(
        DEFAULT_REPETITIONS["local"],
        ge=1,
        le=20,
        description="runs of each workload on each deployment (default 3 local, 1 aws)",
    )
    redeploy_per_repetition: bool = Field(
        False,
        description="provision a fresh deployment for every repetition (host-to-host variance)",
    )
    min_effect_pct: float = Field(
        2.0,
        ge=0,
        le=50,
        description="smallest difference (percent) a verdict names: a smaller one, even a "
        "certain one, reads 'no significant difference'",
    )
    slo_p99_ms: float | None = Field(
        None,
        gt=0,
        description="latency objective (ms): which points' p99 meets it (95% interval below "
        "it); ops per dollar is ranked among those alone",
    )
    maxmemory_policy: MaxmemoryPolicy = Field(
        "allkeys-lru",
        description="the engines' eviction policy (maxmemory-policy); allkeys-lru because "
        "memtier's keys have no TTL: under volatile-lru (ElastiCache's default) a data set "
        "above memory gets OOM error replies, not evictions",
    )
    budget_usd: float = Field(100.0, ge=0, description="refuse a campaign estimated above this")
    max_points: int = Field(50, ge=1, le=1000)
    aws: AwsSettings | None = Field(
        None,
        description="target aws: VPC, subnets, ECS and buckets (over the cachebench_aws Variable)",
    )
    baseline: Baseline = Field(
        "previous",
        description="what each point is compared with in 'Since the baseline': 'previous' "
        "(the latest earlier run), a run id, or 'median_of_last: N'",
    )
    regression_pct: float = Field(
        5.0,
        gt=0,
        lt=100,
        description="a change against the baseline smaller than this (percent), even a "
        "certain one, is 'no significant change'",
    )
    trend_runs: int = Field(
        10, ge=2, le=100, description="campaign runs of each point drawn in the trend figure"
    )
    notify: list[Channel] = Field(
        [],
        description="channels told how a run ended: {via: smtp|slack|sns, conn_id, events, "
        "to (smtp), topic_arn (sns)}",
    )

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not SLUG.match(v):
            raise ValueError(f"{v!r}: use 1-40 chars of a-z, 0-9 and '-'")
        return v

    @field_serializer("aws")
    def _aws_as_written(self, aws: AwsSettings | None) -> dict[str, Any] | None:
        """Only the fields the campaign sets: campaign.json's block is laid over the
        Variable again at every step, and a default written out would hide its value."""
        return None if aws is None else aws.model_dump(mode="json", exclude_unset=True)

    @field_validator("notify", mode="before")
    @classmethod
    def _one_channel(cls, v: Any) -> Any:
        """`notify: {via: slack}` is one channel; null (an emptied form field) none."""
        return [v] if isinstance(v, dict) else [] if v is None else v

    @field_validator("topologies", "custom_topologies", mode="before")
    @classmethod
    def _emptied(cls, v: Any) -> Any:
        """The form sends null for an emptied field, and a text area's blank lines as ''."""
        if v is None:
            return []
        if isinstance(v, list):
            return [x for x in v if not (isinstance(x, str) and not x.strip())]
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _fold_custom_topologies(cls, data: Any, handler: Any) -> CampaignSpec:
        spec = handler(data)
        if not spec.custom_topologies:
            return spec
        return spec.model_copy(
            update={
                "topologies": [*spec.topologies, *spec.custom_topologies],
                "custom_topologies": [],
            }
        )

    @model_validator(mode="before")
    @classmethod
    def _target_defaults(cls, data: Any) -> Any:
        """On aws a run is loaded by AWS_LOAD_GENERATORS tasks and measured once per
        deployment, unless the spec says otherwise."""
        if isinstance(data, dict) and data.get("target") == "aws":
            defaults = {
                "load_generators": AWS_LOAD_GENERATORS,
                "repetitions": DEFAULT_REPETITIONS["aws"],
            }
            return {**defaults, **data}
        return data

    @classmethod
    def from_input(cls, data: Any) -> CampaignSpec:
        """Parse and check a spec from a dict (params, YAML); raise CampaignError."""
        if not isinstance(data, dict):
            raise CampaignError([f"campaign: {type(data).__name__}: expected a mapping of fields"])
        try:
            spec = cls.model_validate(data)
        except ValidationError as exc:
            raise CampaignError([_describe(e) for e in exc.errors()]) from None
        spec.check()
        return spec

    @classmethod
    def from_yaml(cls, path: Path) -> CampaignSpec:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise CampaignError([f"{path.name}: not valid YAML: {exc}"]) from None
        return cls.from_input(data)

    def check(self, catalogue: dict | None = None) -> None:
        """Check the spec against the node type catalogue and the engine versions."""
        try:
            catalogue = catalogue if catalogue is not None else specs.load_instance_specs()
        except (specs.SpecsError, OSError) as exc:  # names the file, line and column
            raise CampaignError([f"node_types: node type catalogue unusable: {exc}"]) from None
        problems: list[str] = []
        known = sorted(nt for (t, nt) in catalogue if t == self.target)
        for i, nt in enumerate(self.node_types):
            if (self.target, nt) not in catalogue:
                problems.append(
                    f"node_types[{i}]: {nt!r}: not a {self.target} node type; "
                    f"allowed: {', '.join(known)}"
                )
        for i, sweep in enumerate(self.engines):
            allowed = engines.versions_for(self.target, sweep.engine)
            for j, v in enumerate(sweep.versions):
                if v not in allowed:
                    problems.append(
                        f"engines[{i}].versions[{j}]: {v!r}: not a {self.target} {sweep.engine} "
                        f"version; allowed: {', '.join(allowed)}"
                    )
                elif self.target == "local" and engines.server_binary(sweep.engine, v) is None:
                    problems.append(
                        f"engines[{i}].versions[{j}]: {sweep.engine} {v} is not installed here "
                        "(see README: set-up)"
                    )
        if not self.topologies:
            problems.append("topologies: none chosen: pick a preset or add custom_topologies")
        limit = LOCAL_MAX_NODES if self.target == "local" else AWS_MAX_NODES
        for i, topo in enumerate(self.topologies):
            if topo.nodes > limit:
                problems.append(
                    f"topologies[{i}]: shards={topo.shards} x (1 + replicas={topo.replicas}) = "
                    f"{topo.nodes} nodes: the {self.target} target allows at most {limit}"
                )
        problems += _read_from_problems(self.workloads, self.topologies)
        problems += notify_problems(self.notify)
        names = [w.name for w in self.workloads]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"workloads: name {dup!r} is used twice; names must be unique")
        if self.schedule is not None and not _valid_schedule(self.schedule):
            problems.append(
                f"schedule: {self.schedule!r}: use a cron expression or a preset like @daily"
            )
        if not problems:
            n = self.point_count
            if n > self.max_points:
                problems.append(f"matrix: {n} points: over max_points={self.max_points}")
            elif self.target == "local" and self.instance_count > LOCAL_MAX_DEPLOYMENTS:
                problems.append(
                    f"matrix: {self.instance_count} deployments: the local target runs at most "
                    f"{LOCAL_MAX_DEPLOYMENTS}"
                )
        if problems:
            raise CampaignError(problems)

    @property
    def deployment_count(self) -> int:
        versions = sum(len(e.versions) for e in self.engines)
        return versions * len(self.topologies) * len(self.node_types)

    @property
    def point_count(self) -> int:
        return self.deployment_count * len(self.workloads)

    @property
    def run_count(self) -> int:
        return self.point_count * self.repetitions

    @property
    def instance_count(self) -> int:
        """Deployments provisioned by one campaign run (x repetitions when redeploying)."""
        return self.deployment_count * (self.repetitions if self.redeploy_per_repetition else 1)

    def deployments(self, load_tool: str = "memtier_benchmark") -> list[Deployment]:
        """engine x version x topology x node type; ids: engine-version-topology-node_type."""
        cells = itertools.product(
            [(e.engine, v) for e in self.engines for v in e.versions],
            self.topologies,
            self.node_types,
        )
        out: list[Deployment] = []
        seen: set[str] = set()
        for i, ((engine, version), topo, node_type) in enumerate(cells):
            did = deployment_id(engine, version, topo, node_type)
            if did in seen:
                raise CampaignError(
                    [f"matrix: deployment {did!r} appears twice: remove the duplicate"]
                )
            seen.add(did)
            out.append(
                Deployment(
                    id=did,
                    index=i,
                    campaign=self.name,
                    target=self.target,
                    engine=engine,
                    version=version,
                    topology=topo,
                    node_type=node_type,
                    load_generators=self.load_generators,
                    load_tool=load_tool,
                    maxmemory_policy=self.maxmemory_policy,
                )
            )
        return out

    def points(self, load_tool: str = "memtier_benchmark") -> list[Point]:
        """Deployment x workload; ids are stable and readable: <deployment id>-<workload>."""
        out: list[Point] = []
        for d in self.deployments(load_tool):
            for workload in self.workloads:
                out.append(
                    Point(
                        id=f"{d.id}-{workload.name}",
                        index=len(out),
                        campaign=self.name,
                        target=self.target,
                        engine=d.engine,
                        version=d.version,
                        topology=d.topology,
                        node_type=d.node_type,
                        workload=workload,
                        load_generators=d.load_generators,
                        load_tool=load_tool,
                    )
                )
        return out

    def price_context(self) -> tuple[str, str | None]:
        """(region, Airflow connection) the prices come from: aws, the resolved settings'."""
        if self.target == "local":
            return pricing.LOCAL_REGION, None
        try:
            settings = resolve(self.aws)
        except ValidationError as exc:
            raise CampaignError([f"aws.{_describe(e)}" for e in exc.errors()]) from None
        if not settings.region:
            raise CampaignError(
                [
                    "aws.region: required to price an aws campaign (node and load-task prices "
                    "are per region): set it in the campaign's aws: block, in the Airflow "
                    f"Variable {VARIABLE!r} or as AWS_REGION"
                ]
            )
        return settings.region, settings.aws_conn_id

    def node_prices(self) -> list[pricing.NodePrice]:
        """The price of every (engine, node type) of the matrix in the campaign's region."""
        region, conn_id = self.price_context()
        out = []
        for engine in dict.fromkeys(e.engine for e in self.engines):
            for node_type in dict.fromkeys(self.node_types):
                try:
                    found = pricing.price(engine, region, node_type, conn_id=conn_id)
                except pricing.PriceTableError as exc:
                    raise CampaignError([f"prices: price table unusable: {exc}"]) from None
                except pricing.PricingError as exc:
                    field = "aws.region" if self.target == "aws" else "node_types"
                    raise CampaignError([f"{field}: {region!r}: {exc}"]) from None
                out.append(
                    pricing.NodePrice(
                        **found.model_dump(), engine=engine, region=region, node_type=node_type
                    )
                )
        return out

    def plans(self, run_id: str, run_dir: str, load_tool: str) -> list[DeploymentPlan]:
        """The mapped deployments of a campaign run, each with its runs in order.

        Runs interleave on a deployment (w1 rep 1, w2 rep 1, ..., w1 rep 2, ...) so
        that the machine's drift does not favour one workload; with
        redeploy_per_repetition each repetition gets a deployment of its own.
        """
        deployments = self.deployments(load_tool)
        by_dep: dict[str, list[Point]] = {}
        for p in self.points(load_tool):
            by_dep.setdefault(p.deployment_id, []).append(p)
        groups: list[tuple[Deployment, str, list[tuple[Point, int]]]] = []
        for d in deployments:
            reps = range(1, self.repetitions + 1)
            order = [(p, r) for r in reps for p in by_dep[d.id]]
            if self.redeploy_per_repetition:
                groups += [(d, f"{d.id}-rep{r}", [x for x in order if x[1] == r]) for r in reps]
            else:
                groups.append((d, d.id, order))
        plans: list[DeploymentPlan] = []
        position = 0
        for i, (d, instance, runs) in enumerate(groups):
            specs = []
            for p, r in runs:
                specs.append(RunSpec(point=p, repetition=r, order=position))
                position += 1
            plans.append(
                DeploymentPlan(
                    deployment=d,
                    instance=instance,
                    instance_index=i,
                    instances=len(groups),
                    run_id=run_id,
                    run_dir=run_dir,
                    runs=specs,
                )
            )
        return plans

    def estimate_usd(self, prices: list[pricing.NodePrice] | None = None) -> float:
        """Nodes x hours x price, plus the load tasks, for the whole campaign run.

        Each deployment is paid from its creation to its deletion (PROVISION_HOURS,
        once per deployment, or once per repetition with redeploy_per_repetition)
        through all its runs (warm-up + measured window + RUN_OVERHEAD_HOURS each);
        the load tasks only while their run loads. ``prices``: :meth:`node_prices`
        when the caller has them already.
        """
        prices = self.node_prices() if prices is None else prices
        by_key = {(p.engine, p.node_type): p.usd_per_node_hour for p in prices}
        task_usd_hour = 0.0
        if self.target == "aws":  # every price of the list is of the campaign's one region
            try:
                rate = pricing.fargate_rate(prices[0].region)
            except pricing.PricingError as exc:
                raise CampaignError([f"aws.region: {exc}"]) from None
            task_usd_hour = rate.task_usd_hour(LOAD_TASK_VCPU, LOAD_TASK_GIB)
        total = 0.0
        for plan in self.plans("estimate", "", "memtier_benchmark"):
            d = plan.deployment
            load_hours = sum(
                (r.point.workload.warmup_seconds + r.point.workload.duration_seconds) / 3600
                for r in plan.runs
            )
            up_hours = PROVISION_HOURS[self.target] + load_hours
            up_hours += len(plan.runs) * RUN_OVERHEAD_HOURS[self.target]
            total += d.topology.nodes * up_hours * by_key[(d.engine, d.node_type)]
            total += d.load_generators * load_hours * task_usd_hour
        return round(total, 2)


class CampaignPlan(Strict):
    """campaign.json: what plan decided, for every later step and the report."""

    spec: CampaignSpec
    load_tool: str
    estimate_usd: float
    deployments: list[DeploymentPlan]
    provenance: Provenance | None = None
    dag_id: str | None = None  # the DAG that ran it; None: planned outside a DAG

    @property
    def run_order(self) -> list[str]:
        """Every run's key in the order the runs are measured."""
        runs = [r for d in self.deployments for r in d.runs]
        return [r.key for r in sorted(runs, key=lambda r: r.order)]

    @property
    def points(self) -> list[Point]:
        seen: dict[str, Point] = {}
        for d in self.deployments:
            for r in d.runs:
                seen.setdefault(r.point.id, r.point)
        return sorted(seen.values(), key=lambda p: p.index)

    @classmethod
    def read(cls, run_dir: Path) -> CampaignPlan:
        return cls.model_validate_json((Path(run_dir) / "campaign.json").read_text())


def _read_from_problems(workloads: list[Workload], topologies: list[Topology]) -> list[str]:
    """read_from "replicas" where no replica can serve the reads (see loadgen/reads.py)."""
    problems = []
    for i, w in enumerate(workloads):
        if w.read_from != "replicas":
            continue
        for j, topo in enumerate(topologies):
            if topo.cluster_mode:
                problems.append(
                    f"workloads[{i}].read_from: 'replicas' with topologies[{j}] cluster_mode "
                    "on: memtier sends every command to the slot's primary (it has no "
                    "READONLY replica reads); allowed there: 'primary'"
                )
            elif topo.replicas == 0:
                problems.append(
                    f"workloads[{i}].read_from: 'replicas' with topologies[{j}] replicas=0: "
                    "no replica to read from; allowed there: 'primary' (or replicas >= 1)"
                )
    return problems


def _describe(err: dict[str, Any]) -> str:
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"{loc or 'campaign'}: unknown field; remove it or check its spelling"
    if err["type"] == "missing":
        return f"{loc}: required field is missing"
    value = err.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    return f"{loc or 'campaign'}: {shown}: {msg}"


_CRON_FIELD = re.compile(r"^[0-9*/,\-A-Za-z?LW#]+\Z")


def _valid_schedule(s: str) -> bool:
    if s.startswith("@"):
        return s in {"@once", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@continuous"}
    parts = s.split()
    return len(parts) == 5 and all(_CRON_FIELD.match(p) for p in parts)


def load_campaign_file(path: Path) -> dict[str, Any]:
    """The raw mapping of a campaign file (cheap: used at DAG parse time)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CampaignError([f"{path.name}: cannot be read as YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise CampaignError([f"{path.name}: expected a mapping of campaign fields"])
    return data
