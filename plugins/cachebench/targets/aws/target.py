"""The aws target: ElastiCache by Terraform (S3 state), memtier on ECS, CloudWatch metrics.

Per deployment: `include/terraform/aws` makes the replication group (state under
one S3 key per campaign/run/deployment, locked with use_lockfile); a revision of
the user's task definition carries the AUTH token as a container secret. Per
run, two phases, each started through the Amazon provider's EcsHook and waited
for on the triggerer:

1. prefill: one task flushes every primary and writes the workload's whole key
   space with memtier (kept apart); the provider's TaskDoneTrigger waits for it
   and streams its awslogs into the task log;
2. load: `load_generators` tasks run the warm-up and the measured window and
   upload their results to S3; EcsElastiCacheWatchTrigger follows all of them
   and the group's health, and fails the run early.

Each phase's tasks share a startedBy of their own (run, attempt, phase): a retry
after a lost worker finds them with list_tasks and reattaches, so no run ever
gets a second set of load tasks of one attempt. A run that was lost (a task ended
by anything but its own tool: ecs.TaskEnd) is measured again at once, once, as
attempt 2 (RunRecord.lost); any other failed run only by a new try of measure (a
cleared task), as a new attempt. The run's metrics come
from CloudWatch once its publishing delay has passed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachebench.catalogue import load_instance_specs
from cachebench.loadgen import LoadError
from cachebench.models import (
    AwsRunDetail,
    AwsStartedBy,
    DeploymentPlan,
    LoadCpu,
    Provisioned,
    RunLoads,
    RunRecord,
    RunSpec,
    Wait,
)
from cachebench.targets import Leftover, RunState, Stray
from cachebench.targets.aws.clients import error_code
from cachebench.targets.aws.settings import AwsSettings, resolve
from cachebench.workspace import DeploymentDir, deployment_dir, run_slug

if TYPE_CHECKING:
    import pandas as pd

    from cachebench.campaign import CampaignSpec
    from cachebench.targets.aws.ecs import EcsState, TaskEnd

log = logging.getLogger(__name__)

ENGINE_PORT = 6379
RESERVED_MEMORY = 0.25  # ElastiCache's default reserved-memory-percent
KEY_OVERHEAD_BYTES = 100  # per-key bookkeeping in the engine, on top of the value
START_GRACE_S = 900  # Fargate image pull and start, result upload
PREFILL_KEYS_PER_S = 20_000  # a slow prefill's rate, for its wait's limit only
PREFILL = "prefill"  # the prefill task's name (its results folder; load tasks are g<N>)
ECS_STATE = "ecs.json"
LOAD_TRIGGER = "cachebench.targets.aws.trigger.EcsElastiCacheWatchTrigger"
TASK_DONE = "airflow.providers.amazon.aws.triggers.ecs.TaskDoneTrigger"


def settings_for(plan: DeploymentPlan) -> AwsSettings:
    """The run's settings: campaign.json's aws block over the Variable."""
    campaign = json.loads((Path(plan.run_dir) / "campaign.json").read_text())
    return resolve(campaign["spec"].get("aws"))


def _client(settings: AwsSettings, service: str) -> Any:
    from cachebench.targets.aws.clients import client

    return client(service, settings.region, settings.aws_conn_id)


def _digest(*parts: str, n: int = 20) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:n]


def _ecs_state(ddir: DeploymentDir) -> EcsState | None:
    """The deployment's ECS set-up (ecs.json), once its task definition was registered."""
    from cachebench.targets.aws.ecs import EcsState

    path = ddir.path / ECS_STATE
    return EcsState.model_validate_json(path.read_text()) if path.is_file() else None


def _detail(record: RunRecord) -> AwsRunDetail:
    assert isinstance(record.detail, AwsRunDetail), "not a run of the aws target"
    return record.detail


def replication_group_id(plan: DeploymentPlan) -> str:
    """1-40 chars, lowercase, starts with a letter: a digest; tags carry the readable ids."""
    return f"cb-{_digest(plan.deployment.campaign, plan.run_id, plan.instance)}"


def state_key(settings: AwsSettings, plan: DeploymentPlan) -> str:
    """One Terraform state object per (campaign, run, deployment)."""
    where = f"{plan.deployment.campaign}/{run_slug(plan.run_id)}/{plan.instance}"
    return f"{settings.state_prefix}/{where}/terraform.tfstate"


def results_uri(settings: AwsSettings, plan: DeploymentPlan, run: RunSpec, attempt: int) -> str:
    return (
        f"s3://{settings.bucket_for_results}/{settings.results_prefix}/"
        f"{plan.deployment.campaign}/{run_slug(plan.run_id)}/{run.point.id}/"
        f"rep{run.repetition}/attempt{attempt}"
    )


def started_by(plan: DeploymentPlan, run: RunSpec, attempt: int, phase: str) -> str:
    """ECS startedBy (<= 36 chars) shared by one phase's tasks of one attempt of a run."""
    return f"cb-{phase[:4]}-{_digest(plan.run_id, plan.instance, run.key, str(attempt), n=24)}"


def evictions_expected(plan: DeploymentPlan, run: RunSpec) -> bool:
    """True when the workload's data set does not fit in the group's memory."""
    spec = load_instance_specs()[("aws", plan.deployment.node_type)]
    w = run.point.workload
    data = w.key_space * (w.value_size + KEY_OVERHEAD_BYTES)
    usable = plan.deployment.topology.shards * spec.memory_gib * (1 - RESERVED_MEMORY) * 2**30
    return data > usable


def _tags(plan: DeploymentPlan) -> dict[str, str]:
    return {
        "cachebench:campaign": plan.deployment.campaign,
        "cachebench:run": plan.run_id[:256],
        "cachebench:deployment": plan.instance,
    }


class AwsTarget:
    name = "aws"
    module = "aws"

    def problems(self, spec: CampaignSpec) -> list[str]:
        try:
            settings = resolve(spec.aws)
        except Exception as exc:
            return [f"aws: {exc}"]
        return settings.problems()

    # ------------------------------------------------------------ terraform

    def tfvars(self, plan: DeploymentPlan, ddir: DeploymentDir, expires_at: int) -> dict[str, Any]:
        s, d = settings_for(plan), plan.deployment
        return {
            "region": s.region,
            "campaign": d.campaign,
            "run_id": plan.run_id,
            "deployment_id": plan.instance,
            "replication_group_id": replication_group_id(plan),
            "engine": d.engine,
            "engine_version": d.version,
            "node_type": d.node_type,
            "cluster_mode": d.topology.cluster_mode,
            "shards": d.topology.shards,
            "replicas": d.topology.replicas,
            "vpc_id": s.vpc_id,
            "subnet_ids": s.subnet_ids,
            "allowed_security_group_ids": (
                [s.loadgen_security_group_id] if s.loadgen_security_group_id else []
            ),
            "allowed_cidr_blocks": s.allowed_cidr_blocks,
            "kms_key_arn": s.kms_key_arn,
            "transit_encryption": s.transit_encryption,
            "maxmemory_policy": d.maxmemory_policy,
            "log_retention_days": s.log_retention_days,
            "expires_at": expires_at,
        }

    def terraform_env(self, plan: DeploymentPlan, ddir: DeploymentDir) -> dict[str, str | None]:
        """The region, and the Airflow connection's keys when it holds static ones.

        So Terraform acts in the same account as the DAG's boto3 calls. Keys are handed
        over only when the connection stores them (login/password or extra): keys the
        hook derives (an assumed role_arn, a profile, the worker's role) would be frozen
        for the whole apply and expire under it (an assumed role's last an hour by
        default, a group takes up to 60 minutes to create). Without static keys
        Terraform keeps its default credential chain: the worker's environment, profile
        or instance/task role, which the AWS SDK refreshes as it goes.
        """
        s = settings_for(plan)
        env: dict[str, str | None] = {}
        if s.region:
            env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = s.region
        if not s.aws_conn_id:
            return env
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        conn = AwsBaseHook(aws_conn_id=s.aws_conn_id, client_type="sts").conn_config
        if conn.role_arn:
            log.warning(
                "connection %s assumes %s: Terraform uses the worker's default credential "
                "chain instead (keys of an assumed role would expire during a long apply); "
                "that identity needs include/iam/airflow-connection-policy.json",
                s.aws_conn_id,
                conn.role_arn,
            )
            return env
        if not (conn.aws_access_key_id and conn.aws_secret_access_key):
            return env  # no keys stored: the default chain, as boto3 falls back to
        return {
            **env,
            "AWS_ACCESS_KEY_ID": conn.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": conn.aws_secret_access_key,
            "AWS_SESSION_TOKEN": conn.aws_session_token,  # None removes the worker's
            "AWS_PROFILE": None,  # a profile would win over these keys in the AWS SDK
        }

    def backend_config(self, plan: DeploymentPlan, ddir: DeploymentDir) -> dict[str, str]:
        """terraform init -backend-config for the S3 backend: the deployment's own key, locked."""
        import os

        s = settings_for(plan)
        cfg = {
            "bucket": s.state_bucket or "",
            "key": state_key(s, plan),
            "region": s.region or "",
            "use_lockfile": "true",
            "encrypt": "true",
        }
        if s.kms_key_arn:
            cfg["kms_key_id"] = s.kms_key_arn
        if os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
            cfg["use_path_style"] = "true"  # an S3-compatible endpoint (tests: moto) has no DNS
        return cfg

    def server_versions(self, prov: Provisioned) -> dict[str, str]:
        """Each member cluster's engine and version, as ElastiCache reports them (the
        engine's own INFO is not reachable from the worker: the cache is inside the VPC)."""
        from cachebench.targets.aws import cloudwatch

        s = settings_for(prov.plan)
        ec = _client(s, "elasticache")
        _, members = cloudwatch.member_clusters(ec, replication_group_id(prov.plan))
        out = {}
        for member in members:
            c = ec.describe_cache_clusters(CacheClusterId=member)["CacheClusters"][0]
            out[member] = (
                f"{c.get('Engine', prov.plan.deployment.engine)} {c.get('EngineVersion', '?')}"
            )
        return out

    # ------------------------------------------------------------ runs

    def _task_definition(self, prov: Provisioned, s: AwsSettings) -> EcsState:
        """The deployment's task definition revision (registered once), its awslogs and vCPUs."""
        from cachebench.targets.aws import ecs as ecs_mod

        ddir = deployment_dir(prov.plan)
        if state := _ecs_state(ddir):
            return state
        ecs = self._hook(s).conn
        fam = ecs_mod.family(prov.plan)
        tags = [{"key": k, "value": v} for k, v in _tags(prov.plan).items()]
        arn = ecs_mod.register_task_definition(
            ecs, s.task_definition, s.container_name, fam, prov.endpoint.auth_ref, tags
        )
        td = ecs_mod.describe_task_definition(ecs, arn)
        state = ecs_mod.EcsState(
            region=s.region,
            cluster=s.ecs_cluster,
            family=fam,
            task_definition=arn,
            container=s.container_name,
            replication_group_id=replication_group_id(prov.plan),
            awslogs=ecs_mod.awslogs(td, s.container_name),
            vcpus=ecs_mod.vcpus(td),
        )
        ddir.write_json(ECS_STATE, state)
        return state

    def _hook(self, s: AwsSettings) -> Any:
        from airflow.providers.amazon.aws.hooks.ecs import EcsHook

        return EcsHook(aws_conn_id=s.aws_conn_id, region_name=s.region)

    def _run_tasks(
        self,
        s: AwsSettings,
        state: EcsState,
        sb: str,
        overrides: dict[str, dict],
        prov: Provisioned,
    ) -> list[str]:
        """Start one task per name in overrides with startedBy sb, but only those ECS does
        not already have under sb (a retry reattaches, it never starts a second set)."""
        from cachebench.targets.aws import ecs as ecs_mod

        client = self._hook(s).conn
        have = ecs_mod.started_tasks(client, state.cluster, sb)
        started = {ecs_mod.task_name(t): t["taskArn"] for t in have}
        for name, override in overrides.items():
            if name in started:
                continue
            resp = client.run_task(
                cluster=state.cluster,
                taskDefinition=state.task_definition,
                launchType=s.launch_type,
                count=1,
                startedBy=sb,
                overrides=override,
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": s.loadgen_subnet_ids,
                        "securityGroups": (
                            [s.loadgen_security_group_id] if s.loadgen_security_group_id else []
                        ),
                        "assignPublicIp": "ENABLED" if s.assign_public_ip else "DISABLED",
                    }
                },
                tags=[{"key": k, "value": v} for k, v in _tags(prov.plan).items()],
                propagateTags="TASK_DEFINITION",
            )
            if resp.get("failures") or not resp.get("tasks"):
                raise RuntimeError(
                    f"ECS could not start {name} ({sb}): {resp.get('failures') or 'no task'}"
                )
            started[name] = resp["tasks"][0]["taskArn"]
        return [started[name] for name in overrides]

    def _prefill_wait(self, s: AwsSettings, state: EcsState, run: RunSpec, arn: str) -> Wait:
        logs = state.awslogs
        stream = logs.stream(state.container, arn) if logs else None
        delay = max(1, int(s.watch_poll_seconds))
        allowed = START_GRACE_S + run.point.workload.key_space / PREFILL_KEYS_PER_S
        return Wait(
            classpath=TASK_DONE,
            phase="prefill",
            kwargs={
                "cluster": state.cluster,
                "task_arn": arn,
                "waiter_delay": delay,
                "waiter_max_attempts": max(1, int(allowed / delay)),
                "aws_conn_id": s.aws_conn_id,
                "region_name": s.region,
                "log_group": logs.group if logs else None,
                "log_stream": stream,
            },
        )

    def _load_wait(
        self, prov: Provisioned, run: RunSpec, s: AwsSettings, state: EcsState, record: RunRecord
    ) -> Wait:
        w = run.point.workload
        d = _detail(record)
        started = d.load_started_at  # kept: a reattached watch keeps its clock
        assert started is not None and d.started_by.load is not None, "load not started"
        return Wait(
            classpath=LOAD_TRIGGER,
            phase="load",
            kwargs={
                "region": s.region,
                "cluster": state.cluster,
                "started_by": d.started_by.load,
                "expected": run.point.load_generators,
                "container": state.container,
                "replication_group_id": state.replication_group_id,
                "started_at": started,
                "deadline": (d.load_start_at or started)
                + (w.warmup_seconds + w.duration_seconds) * 1.25
                + START_GRACE_S,
                "evictions_allowed": evictions_expected(prov.plan, run),
                "aws_conn_id": s.aws_conn_id,
                "awslogs": state.awslogs.model_dump() if state.awslogs else None,
                "task_arns": d.load_tasks,
                "min_poll": s.watch_poll_seconds,
            },
        )

    def _start_prefill(
        self, prov: Provisioned, run: RunSpec, attempt: int
    ) -> tuple[RunRecord, Wait]:
        from cachebench.targets.aws import ecs as ecs_mod

        s = settings_for(prov.plan)
        state = self._task_definition(prov, s)
        uri = results_uri(s, prov.plan, run, attempt)
        sb = started_by(prov.plan, run, attempt, "prefill")
        # a data set larger than memory is evicted while it is written: no count to reach
        fits = not evictions_expected(prov.plan, run)
        expected = run.point.workload.key_space if fits else None
        script = ecs_mod.prefill_script(run.point, prov.endpoint, s, expected)
        override = ecs_mod.generator_overrides(state.container, script, uri, PREFILL)
        (arn,) = self._run_tasks(s, state, sb, {PREFILL: override}, prov)
        record = RunRecord(
            status="started",
            attempt=attempt,
            phase="prefill",
            started_at=time.time(),
            detail=AwsRunDetail(
                results_uri=uri, started_by=AwsStartedBy(prefill=sb), prefill_task=arn
            ),
        )
        return record, self._prefill_wait(s, state, run, arn)

    def _start_load(
        self, prov: Provisioned, run: RunSpec, record: RunRecord
    ) -> tuple[RunRecord, Wait]:
        """Start the run's load tasks, or those of them not started yet (a reattach)."""
        from cachebench.targets.aws import ecs as ecs_mod

        s = settings_for(prov.plan)
        state = self._task_definition(prov, s)
        sb = started_by(prov.plan, run, record.attempt, "load")
        script = ecs_mod.container_script(run.point, prov.endpoint, s)
        d = _detail(record)
        uri = d.results_uri
        first = d.load_started_at is None
        started_at = time.time() if d.load_started_at is None else d.load_started_at
        # one start for every load task (kept: a task a retry starts late is late)
        start_at = (
            started_at + s.load_start_grace_seconds if d.load_start_at is None else d.load_start_at
        )
        overrides = {
            f"g{g}": ecs_mod.generator_overrides(state.container, script, uri, f"g{g}", start_at)
            for g in range(run.point.load_generators)
        }
        arns = self._run_tasks(s, state, sb, overrides, prov)
        record = record.model_copy(
            update={
                "phase": "load",
                "detail": d.model_copy(
                    update={
                        "started_by": d.started_by.model_copy(update={"load": sb}),
                        "load_started_at": started_at,
                        "load_start_at": start_at,
                        "load_tasks": arns,
                    }
                ),
            }
        )
        if first:
            log.info(
                "%s: %d load tasks started (startedBy %s); they all start at %s",
                run.key,
                len(overrides),
                sb,
                time.strftime("%H:%M:%S", time.gmtime(start_at)),
            )
        return record, self._load_wait(prov, run, s, state, record)

    def _prefill_end(self, prov: Provisioned, record: RunRecord) -> TaskEnd | None:
        """How the run's prefill task ended (MISSING once ECS forgot it), None while it runs."""
        from cachebench.targets.aws import ecs as ecs_mod

        s = settings_for(prov.plan)
        client, arn = self._hook(s).conn, _detail(record).prefill_task
        tasks = ecs_mod.describe(client, s.ecs_cluster, [arn])
        if not tasks:  # ECS forgets stopped tasks after about an hour
            gone = ecs_mod.missing_tasks(client, s.ecs_cluster, [arn])
            tid = arn.rsplit("/", 1)[-1]
            return gone[0] if gone else ecs_mod.TaskEnd(task_id=tid, missing=True)
        return ecs_mod.task_end(tasks[0], s.container_name)

    def step(
        self,
        prov: Provisioned,
        run: RunSpec,
        record: RunRecord | None,
        event: dict[str, Any] | None,
    ) -> tuple[RunRecord, Wait | None]:
        from cachebench.targets.aws import ecs as ecs_mod
        from cachebench.targets.aws.trigger import WatchEvent

        if record is None or record.status != "started":
            return self._start_prefill(prov, run, record.attempt + 1 if record else 1)
        s = settings_for(prov.plan)
        state = self._task_definition(prov, s)
        if record.phase == "prefill":
            end = self._prefill_end(prov, record)
            if end is None:  # a new try while it still runs: follow it again
                arn = _detail(record).prefill_task
                return record, self._prefill_wait(s, state, run, arn)
            if not end.ok:
                problem = f"prefill: {end.describe()}"
                if (logs := state.awslogs) and not end.missing:  # what the flush or memtier said
                    arn = _detail(record).prefill_task
                    tail = ecs_mod.log_tail(_client(s, "logs"), logs, state.container, arn)
                    problem += f"; its log ends:\n{tail}"
                return self._failed(record, problem, lost=end.lost), None
            return self._start_load(prov, run, record)
        if event is None:  # a new try: reattach to the load tasks (start any never started)
            return self._start_load(prov, run, record)
        watched = WatchEvent.model_validate(event)
        if watched.status == "done":
            return record, None
        self._stop(s, state, _detail(record).started_by.load)
        return self._failed(record, f"watch: {watched.message}", lost=watched.lost), None

    def _failed(self, record: RunRecord, why: str, lost: bool = False) -> RunRecord:
        return record.model_copy(update={"status": "failed", "error": why, "lost": lost})

    def _stop(self, s: AwsSettings, state: EcsState, sb: str | None) -> None:
        from cachebench.targets.aws import ecs as ecs_mod

        if sb is None:  # no load task was started
            return
        client = self._hook(s).conn
        arns = [t["taskArn"] for t in ecs_mod.started_tasks(client, state.cluster, sb)]
        ecs_mod.stop(client, state.cluster, arns, "run failed")

    def loads(self, prov: Provisioned, run: RunSpec, record: RunRecord) -> RunLoads:
        from cachebench.targets.aws import results

        s = settings_for(prov.plan)
        ddir = deployment_dir(prov.plan)
        dest = ddir.load(run.point.id, run.repetition) / f"attempt{record.attempt}"
        results.fetch(_client(s, "s3"), _detail(record).results_uri, dest)
        g = run.point.load_generators
        warm = None
        if run.point.workload.warmup_seconds:
            try:
                warm = results.merge_phase(dest, g, "warmup")
            except LoadError as exc:  # the measured result stands; say why warm-up is missing
                log.warning("no warm-up result for %s: %s", run.key, exc)
        try:
            window = run.point.workload.duration_seconds
            measured, error, lost = results.merge_phase(dest, g, "measured", window), "", False
        except LoadError as exc:
            measured, error, lost = None, str(exc), exc.lost
            if missing := results.missing_generators(dest, g, "measured"):
                error += "; " + self._ends(s, _ecs_state(ddir), record, missing)
        return RunLoads(
            measured=measured,
            warmup=warm,
            prefill=results.prefill(dest),
            cpu=self._cpu(ddir, run, dest),
            error=error,
            lost=lost,
        )

    def _ends(
        self, s: AwsSettings, state: EcsState | None, record: RunRecord, gens: list[int]
    ) -> str:
        """How the load tasks of generators `gens` ended (ECS's word, their awslogs tail)."""
        from cachebench.targets.aws import ecs as ecs_mod

        arns = _detail(record).load_tasks
        if state is None or len(arns) <= max(gens):
            return "how their load tasks ended is not known (no task ARNs recorded)"
        client, said = self._hook(s).conn, []
        for g in gens:
            tasks = ecs_mod.describe(client, state.cluster, [arns[g]])
            end = (
                ecs_mod.task_end(tasks[0], state.container)
                if tasks
                else ecs_mod.TaskEnd(task_id=arns[g].rsplit("/", 1)[-1], name=f"g{g}", missing=True)
            )
            line = f"load {end.describe()}" if end else f"load task of g{g} still runs"
            if state.awslogs and tasks:
                tail = ecs_mod.log_tail(_client(s, "logs"), state.awslogs, state.container, arns[g])
                line += f"; its log ends:\n{tail}"
            said.append(line)
        return "; ".join(said)

    def _cpu(self, ddir: DeploymentDir, run: RunSpec, dest: Path) -> LoadCpu | None:
        """The load tasks' CPU over the measured window, if they sampled it."""
        from cachebench.loadgen.memtier import side_workloads
        from cachebench.targets.aws import results

        w = run.point.workload
        threads = (
            sum(side.threads for side in side_workloads(w).values())
            if w.read_from == "replicas"
            else w.threads
        )
        state = _ecs_state(ddir)
        vcpus = state.vcpus if state else None
        report = results.cpu_report(dest, run.point.load_generators, threads, vcpus)
        return None if report is None else LoadCpu.model_validate(report)

    def metrics(self, prov: Provisioned, run: RunSpec, start: float, end: float) -> pd.DataFrame:
        from cachebench.targets.aws import cloudwatch

        s = settings_for(prov.plan)
        _, nodes = cloudwatch.member_clusters(
            _client(s, "elasticache"), replication_group_id(prov.plan)
        )
        return cloudwatch.node_metrics(_client(s, "cloudwatch"), run.point.id, nodes, start, end)

    def metrics_ready_at(self, prov: Provisioned, end: float) -> float:
        return end + settings_for(prov.plan).metrics_delay_seconds

    def quiet(self, prov: Provisioned) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # the worker shares no CPU with the cache or the load

    # ------------------------------------------------------------ destroy

    def stop_load(self, plan: DeploymentPlan, ddir: DeploymentDir) -> None:
        from cachebench.targets.aws import ecs as ecs_mod

        if (state := _ecs_state(ddir)) is None:
            return
        client = _client(settings_for(plan), "ecs")
        running = ecs_mod.family_tasks(client, state.cluster, state.family)
        if running:
            ecs_mod.stop(client, state.cluster, running, "stopped")

    def orphans(self, plan: DeploymentPlan, ddir: DeploymentDir) -> list[tuple[str, str]]:
        """(module address, import id) of what this deployment's module makes that exists in
        the account, found by the names the module gives it (the group also by its tags):
        after a killed apply, what the state may not hold. Steps import those the state
        lacks before apply and destroy."""
        s, rg = settings_for(plan), replication_group_id(plan)
        found: list[tuple[str, str]] = []
        lookups = (
            self._orphan_group,
            self._orphan_cache_groups,
            self._orphan_network,
            self._orphan_secret,
            self._orphan_logs,
        )
        for lookup in lookups:
            try:
                found += lookup(s, rg, plan)
            except Exception as exc:  # destroy still runs on what the state holds
                log.warning("%s: could not look for %s: %s", plan.instance, lookup.__name__, exc)
        return found

    def _orphan_group(self, s: AwsSettings, rg: str, plan: DeploymentPlan) -> list[tuple[str, str]]:
        ec = _client(s, "elasticache")
        try:
            (group,) = ec.describe_replication_groups(ReplicationGroupId=rg)["ReplicationGroups"]
        except ec.exceptions.ReplicationGroupNotFoundFault:
            return []
        tags = {
            t["Key"]: t["Value"]
            for t in ec.list_tags_for_resource(ResourceName=group["ARN"]).get("TagList", [])
        }
        ours = all(tags.get(k) == v for k, v in _tags(plan).items())
        if not ours or group.get("Status") == "deleting":
            return []
        return [("aws_elasticache_replication_group.this", rg)]

    def _orphan_cache_groups(
        self, s: AwsSettings, rg: str, plan: DeploymentPlan
    ) -> list[tuple[str, str]]:
        ec, out = _client(s, "elasticache"), []
        with contextlib.suppress(ec.exceptions.CacheSubnetGroupNotFoundFault):
            ec.describe_cache_subnet_groups(CacheSubnetGroupName=rg)
            out.append(("aws_elasticache_subnet_group.this", rg))
        with contextlib.suppress(ec.exceptions.CacheParameterGroupNotFoundFault):
            ec.describe_cache_parameter_groups(CacheParameterGroupName=rg)
            out.append(("aws_elasticache_parameter_group.this", rg))
        return out

    def _orphan_network(
        self, s: AwsSettings, rg: str, plan: DeploymentPlan
    ) -> list[tuple[str, str]]:
        ec2 = _client(s, "ec2")
        groups = ec2.describe_security_groups(
            Filters=[
                {"Name": "group-name", "Values": [f"{rg}-cache"]},
                {"Name": "vpc-id", "Values": [s.vpc_id or ""]},
            ]
        )["SecurityGroups"]
        out = []
        for g in groups:
            out.append(("aws_security_group.cache", g["GroupId"]))
            rules = ec2.describe_security_group_rules(
                Filters=[{"Name": "group-id", "Values": [g["GroupId"]]}]
            )["SecurityGroupRules"]
            for r in rules:
                if r.get("IsEgress"):
                    continue
                if ref := (r.get("ReferencedGroupInfo") or {}).get("GroupId"):
                    key = f'aws_vpc_security_group_ingress_rule.from_security_groups["{ref}"]'
                elif cidr := r.get("CidrIpv4"):
                    key = f'aws_vpc_security_group_ingress_rule.from_cidrs["{cidr}"]'
                else:
                    continue
                out.append((key, r["SecurityGroupRuleId"]))
        return out

    def _orphan_secret(
        self, s: AwsSettings, rg: str, plan: DeploymentPlan
    ) -> list[tuple[str, str]]:
        sm = _client(s, "secretsmanager")
        try:
            secret = sm.describe_secret(SecretId=f"cachebench/{rg}/auth")
        except sm.exceptions.ResourceNotFoundException:
            return []
        return (
            []
            if secret.get("DeletedDate")
            else [("aws_secretsmanager_secret.auth[0]", secret["ARN"])]
        )

    def _orphan_logs(self, s: AwsSettings, rg: str, plan: DeploymentPlan) -> list[tuple[str, str]]:
        out = []
        prefix = f"/aws/vendedlogs/cachebench/{rg}/"
        logs = _client(s, "logs")
        for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix=prefix):
            for g in page.get("logGroups", []):
                name = {"slow-log": "slow", "engine-log": "engine"}.get(
                    g["logGroupName"][len(prefix) :]
                )
                if name:
                    out.append((f"aws_cloudwatch_log_group.{name}", g["logGroupName"]))
        cw = _client(s, "cloudwatch")
        with contextlib.suppress(
            cw.exceptions.DashboardNotFoundError, cw.exceptions.ResourceNotFound
        ):
            cw.get_dashboard(DashboardName=f"cachebench-{rg}")
            out.append(("aws_cloudwatch_dashboard.this", f"cachebench-{rg}"))
        return out

    def leftovers(self, plan: DeploymentPlan, ddir: DeploymentDir) -> list[str]:
        """After destroy: load tasks, task definition, replication group, state; empty = clean."""
        from cachebench.targets.aws import ecs as ecs_mod

        s = settings_for(plan)
        left: list[str] = []
        if state := _ecs_state(ddir):
            client = _client(s, "ecs")
            running = ecs_mod.family_tasks(client, state.cluster, state.family)
            left += [f"load task {arn} is still running" for arn in running]
            try:
                client.deregister_task_definition(taskDefinition=state.task_definition)
            except Exception as exc:
                log.warning("could not deregister %s: %s", state.task_definition, exc)
        rg_id = replication_group_id(plan)
        try:
            resp = _client(s, "elasticache").describe_replication_groups(ReplicationGroupId=rg_id)
            status = resp["ReplicationGroups"][0].get("Status")
            if status != "deleting":
                left.append(f"replication group {rg_id} is still {status!r}")
        except Exception as exc:
            if error_code(exc) != "ReplicationGroupNotFoundFault":
                left.append(f"replication group {rg_id}: could not check: {exc}")
        key = state_key(s, plan)
        try:
            obj = _client(s, "s3").get_object(Bucket=s.state_bucket, Key=key)
            resources = json.loads(obj["Body"].read()).get("resources", [])
            left += [
                f"still in state s3://{s.state_bucket}/{key}: {r.get('type')}.{r.get('name')}"
                for r in resources
            ]
        except Exception as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                left.append(f"state s3://{s.state_bucket}/{key}: could not check: {exc}")
        return left

    def sweep(self, plan: DeploymentPlan, ddir: DeploymentDir) -> tuple[list[str], list[str]]:
        return [], []  # nothing runs on this machine

    # ------------------------------------------------------------ reaper

    def find_leftovers(
        self, roots: list[Path], now: float, run_state: RunState
    ) -> tuple[list[Leftover], list[Leftover]]:
        """Replication groups tagged by cachebench whose cachebench:expires-at has passed
        (their tags decide, not the results folders nor the run's state).

        Asks AWS only when the account is configured (the cachebench_aws Variable or
        its AIRFLOW_VAR_ form names a region); any error is logged, never raised.
        """
        try:
            s = resolve(None)
            if not s.region:
                return [], []
            ec = _client(s, "elasticache")
            out = []
            for page in ec.get_paginator("describe_replication_groups").paginate():
                for g in page.get("ReplicationGroups", []):
                    arn = g.get("ARN")
                    if not arn or g.get("Status") == "deleting":
                        continue
                    tags = {
                        t["Key"]: t["Value"]
                        for t in ec.list_tags_for_resource(ResourceName=arn).get("TagList", [])
                    }
                    if "cachebench:deployment" not in tags:
                        continue
                    expires = _expiry_of(tags.get("cachebench:expires-at"))
                    if expires is None or expires > now:
                        continue
                    out.append(
                        Leftover(
                            target="aws",
                            deployment_id=tags["cachebench:deployment"],
                            campaign=tags.get("cachebench:campaign", ""),
                            run_id=tags.get("cachebench:run", ""),
                            expires_at=expires,
                            where=g["ReplicationGroupId"],
                            reason=f"expired at {tags['cachebench:expires-at']}",
                            extra={"region": s.region},
                        )
                    )
            return out, []
        except Exception as exc:
            log.warning("aws leftovers could not be listed: %s", exc)
            return [], []

    def reap_leftover(self, leftover: Leftover) -> list[str]:
        """Delete an expired group and its AUTH secret (what costs money or holds a secret).

        The free companions (security, subnet and parameter groups, log groups,
        dashboard) stay in the deployment's Terraform state for a later destroy.
        """
        rg = leftover.where
        s = resolve(None)
        problems = []
        try:
            _client(s, "elasticache").delete_replication_group(ReplicationGroupId=rg)
        except Exception as exc:
            if error_code(exc) != "ReplicationGroupNotFoundFault":
                problems.append(f"replication group {rg}: {exc}")
        try:
            _client(s, "secretsmanager").delete_secret(
                SecretId=f"cachebench/{rg}/auth", ForceDeleteWithoutRecovery=True
            )
        except Exception as exc:
            if error_code(exc) != "ResourceNotFoundException":
                problems.append(f"secret cachebench/{rg}/auth: {exc}")
        return problems

    def reap_strays(self, now: float, run_state: RunState, dry_run: bool) -> list[Stray]:
        return []  # every resource it makes is found by its tags


def _expiry_of(tag: str | None) -> float | None:
    from datetime import datetime

    if not tag:
        return None
    try:
        return datetime.fromisoformat(tag.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
