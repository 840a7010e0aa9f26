"""What moto (5.2.5) lacks for include/terraform/aws under the real AWS provider, filled here.

`install()` adds these to the moto server the tests start in their own process
(tests/aws/conftest.py); nothing of it reaches the module or production code.
Each gap is one entry of GAPS, named where a test relies on it.

ElastiCache
- parameter groups: CreateCacheParameterGroup, ModifyCacheParameterGroup,
  DescribeCacheParameterGroups, DescribeCacheParameters, DeleteCacheParameterGroup
  are not implemented (the family is checked against ElastiCache's, each parameter
  against the values the engines take);
- DeleteCacheSubnetGroup is not implemented;
- CreateReplicationGroup ignores NumCacheClusters with cluster mode disabled (one
  member only, unless ReplicasPerNodeGroup is sent): the members follow it here;
- the member clusters of a replication group are not DescribeCacheClusters-able: they
  are made here with the group, as ElastiCache lists them;
- DescribeReplicationGroups names no reader endpoint (cluster mode disabled);
- a deleted replication group stays "deleting" for ever, while the provider waits for
  it to be gone: here it is gone once DeleteReplicationGroup has answered "deleting"
  (ElastiCache takes some minutes);
- ListTagsForResource refuses parameter group ARNs.

EC2
- the backend is not safe for concurrent requests: with five applies at once, the
  provider's RevokeSecurityGroupEgress of a group it had just created was once answered
  InvalidPermission.NotFound (the default egress rule AWS always makes); EC2 requests
  are served one at a time here (`_ec2_serial`).

ECS
- a stopped task has no stopCode: StopTask gives it UserInitiated here (a container that
  exits by itself gets EssentialContainerExited from aws_fakes.set_exit_code), and a
  StopTask of a task already STOPPED leaves its first stop's reason and code, as ECS does;
- DescribeTasks answers no failures: a task ARN it does not have is a MISSING failure
  here (as ECS answers for a task it forgot, about an hour after it stopped).

Also here, for tests that need AWS to refuse: REFUSE_DELETE, replication group ids
whose DeleteReplicationGroup is denied (AccessDenied).
"""

from __future__ import annotations

import threading
from typing import Any

from cachebench.engines import MAXMEMORY_POLICIES

GAPS = (
    "elasticache: cache parameter groups (create, modify, describe, parameters, delete)",
    "elasticache: DeleteCacheSubnetGroup",
    "elasticache: NumCacheClusters with cluster mode disabled",
    "elasticache: member clusters of a replication group",
    "elasticache: the reader endpoint (cluster mode disabled)",
    "elasticache: a deleted replication group disappears",
    "elasticache: tags of parameter groups",
    "ec2: requests of concurrent applies served one at a time",
    "ecs: stopCode of a stopped task; StopTask of a stopped task",
    "ecs: DescribeTasks failures (MISSING)",
)

# Families and the parameters the module sets, as ElastiCache has them.
FAMILIES = ("redis6.x", "redis7", "valkey7", "valkey8")
ALLOWED = {"cluster-enabled": ("yes", "no"), "maxmemory-policy": MAXMEMORY_POLICIES}

REFUSE_DELETE: set[str] = set()
CALLS: list[tuple[str, str, int]] = []  # (service, action, HTTP status) of every request
_installed = threading.Lock()
_ec2_serial = threading.Lock()
_done: list[bool] = []


def install() -> None:
    """Fill the gaps in this process's moto (idempotent)."""
    with _installed:
        if _done:
            return
        _record_calls()
        _elasticache()
        _ecs()
        _done.append(True)


def missing() -> list[tuple[str, str]]:
    """The calls moto answered "not implemented" since the start (should be none)."""
    return [(s, a) for s, a, status in CALLS if status == 501]


def _record_calls() -> None:
    from moto.core.responses import BaseResponse
    from moto.core.utils import camelcase_to_underscores

    original = BaseResponse.call_action

    def call_action(self: BaseResponse) -> Any:
        action = camelcase_to_underscores(self._get_action())
        try:
            if self.service_name == "ec2":
                with _ec2_serial:
                    out = original(self)
            else:
                out = original(self)
        except NotImplementedError:
            CALLS.append((self.service_name or "?", action, 501))
            raise
        CALLS.append((self.service_name or "?", action, int(out[0]) if out else 0))
        return out

    BaseResponse.call_action = call_action  # type: ignore[method-assign]


def _elasticache() -> None:
    from moto.core.responses import ActionResult, EmptyResult
    from moto.elasticache import models
    from moto.elasticache.exceptions import ElastiCacheException
    from moto.elasticache.responses import ElastiCacheResponse

    # moto finds an error's HTTP status and shape by the module of its exception
    here = {"__module__": "moto.elasticache.exceptions"}
    Invalid = type("Invalid", (ElastiCacheException,), {**here, "code": "InvalidParameterValue"})
    Exists = type(
        "Exists", (ElastiCacheException,), {**here, "code": "CacheParameterGroupAlreadyExists"}
    )
    Denied = type("Denied", (ElastiCacheException,), {**here, "code": "AccessDenied"})
    codes = {"CacheParameterGroup": "CacheParameterGroupNotFound",
             "CacheSubnetGroup": "CacheSubnetGroupNotFoundFault"}  # fmt: skip

    def not_found(kind: str, name: str) -> ElastiCacheException:
        cls = type(kind, (ElastiCacheException,), {**here, "code": codes[kind]})
        return cls(f"{kind} {name} not found.")

    def groups(backend: Any) -> dict[str, dict[str, Any]]:
        if not hasattr(backend, "parameter_groups"):
            backend.parameter_groups = {}
        return backend.parameter_groups

    def group_of(self: Any, name: str | None) -> dict[str, Any]:
        found = groups(self.elasticache_backend).get(name or "")
        if found is None:
            raise not_found("CacheParameterGroup", str(name))
        return found

    def public(g: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in g.items() if k != "Parameters"}

    def create_cache_parameter_group(self: Any) -> ActionResult:
        backend = self.elasticache_backend
        name = self._get_param("CacheParameterGroupName")
        family = self._get_param("CacheParameterGroupFamily")
        if family not in FAMILIES:
            raise Invalid(f"Invalid CacheParameterGroupFamily {family!r}")
        if name in groups(backend):
            raise Exists(f"Cache parameter group {name} already exists.")
        arn = f"arn:aws:elasticache:{self.region}:{self.current_account}:parametergroup:{name}"
        group = {
            "CacheParameterGroupName": name,
            "CacheParameterGroupFamily": family,
            "Description": self._get_param("Description"),
            "IsGlobal": False,
            "ARN": arn,
            "Parameters": {},
        }
        groups(backend)[name] = group
        if tags := self._get_param("Tags", []):
            backend.tagging_service.tag_resource(arn, tags)
        return ActionResult({"CacheParameterGroup": public(group)})

    def modify_cache_parameter_group(self: Any) -> ActionResult:
        group = group_of(self, self._get_param("CacheParameterGroupName"))
        for p in self._get_param("ParameterNameValues", []):
            name, value = p["ParameterName"], p.get("ParameterValue")
            if name not in ALLOWED or value not in ALLOWED[name]:
                raise Invalid(f"Invalid parameter value {value!r} for {name!r}")
            group["Parameters"][name] = value
        return ActionResult({"CacheParameterGroupName": group["CacheParameterGroupName"]})

    def reset_cache_parameter_group(self: Any) -> ActionResult:
        group = group_of(self, self._get_param("CacheParameterGroupName"))
        for p in self._get_param("ParameterNameValues", []):
            group["Parameters"].pop(p["ParameterName"], None)
        return ActionResult({"CacheParameterGroupName": group["CacheParameterGroupName"]})

    def describe_cache_parameter_groups(self: Any) -> ActionResult:
        name = self._get_param("CacheParameterGroupName")
        every = groups(self.elasticache_backend)
        found = [group_of(self, name)] if name else list(every.values())
        return ActionResult({"CacheParameterGroups": [public(g) for g in found]})

    def describe_cache_parameters(self: Any) -> ActionResult:
        group = group_of(self, self._get_param("CacheParameterGroupName"))
        params = [
            {
                "ParameterName": k,
                "ParameterValue": v,
                "Source": "user",
                "DataType": "string",
                "IsModifiable": True,
                "AllowedValues": ",".join(ALLOWED[k]),
            }
            for k, v in sorted(group["Parameters"].items())
        ]
        return ActionResult({"Parameters": params})

    def delete_cache_parameter_group(self: Any) -> ActionResult:
        name = self._get_param("CacheParameterGroupName")
        group_of(self, name)
        del groups(self.elasticache_backend)[name]
        return EmptyResult()

    def delete_cache_subnet_group(self: Any) -> ActionResult:
        name = self._get_param("CacheSubnetGroupName")
        if self.elasticache_backend.cache_subnet_groups.pop(name, None) is None:
            raise not_found("CacheSubnetGroup", name)
        return EmptyResult()

    for fn in (
        create_cache_parameter_group,
        modify_cache_parameter_group,
        reset_cache_parameter_group,
        describe_cache_parameter_groups,
        describe_cache_parameters,
        delete_cache_parameter_group,
        delete_cache_subnet_group,
    ):
        setattr(ElastiCacheResponse, fn.__name__, fn)

    backend_cls = models.ElastiCacheBackend
    backend_cls_create = backend_cls.create_replication_group
    backend_cls_delete = backend_cls.delete_replication_group

    def create_replication_group(self: Any, **kwargs: Any) -> Any:
        off = kwargs.get("cluster_mode") != "enabled"
        if off and kwargs.get("num_cache_clusters") and not kwargs.get("replicas_per_node_group"):
            kwargs["replicas_per_node_group"] = kwargs["num_cache_clusters"] - 1
        group = backend_cls_create(self, **kwargs)
        for node_group in group.node_groups:
            if "reader_endpoint_address" in node_group:
                node_group["reader_endpoint"] = {
                    "address": node_group["reader_endpoint_address"],
                    "port": group.port,
                }
        for member in group.member_clusters:
            self.cache_clusters[member] = _member(self, group, member, kwargs)
        return group

    def delete_replication_group(self: Any, replication_group_id: str, **kwargs: Any) -> Any:
        if replication_group_id in REFUSE_DELETE:
            raise Denied(
                "User: arn:aws:iam::123456789012:user/test is not authorized to perform: "
                f"elasticache:DeleteReplicationGroup on {replication_group_id} (test)"
            )
        members = list(self.replication_groups.get(replication_group_id, _NoGroup).member_clusters)
        group = backend_cls_delete(self, replication_group_id, **kwargs)
        self.replication_groups.pop(replication_group_id, None)
        for member in members:
            self.cache_clusters.pop(member, None)
        return group

    backend_cls.create_replication_group = create_replication_group  # type: ignore[method-assign]
    backend_cls.delete_replication_group = delete_replication_group  # type: ignore[method-assign]

    original_init = backend_cls.__init__

    def init(self: Any, region_name: str, account_id: str) -> None:
        original_init(self, region_name, account_id)
        self.arn_regex = models.re_compile(
            r"^arn:aws:elasticache:.*:[0-9]*:"
            r"(cluster|snapshot|subnetgroup|replicationgroup|user|parametergroup):.*$"
        )

    backend_cls.__init__ = init  # type: ignore[method-assign]


def _ecs() -> None:
    from moto.core.responses import ActionResult
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.ecs.responses import EC2ContainerServiceResponse

    backend_stop = EC2ContainerServiceBackend.stop_task

    def stop_task(self: Any, cluster_str: str, task_str: str, reason: str) -> Any:
        cluster = self._get_cluster(cluster_str)
        for arn, task in self.tasks.get(cluster.name, {}).items():
            if arn.endswith(task_str.split("/")[-1]) and task.desired_status == "STOPPED":
                return task  # stopped already: ECS keeps how it stopped
        task = backend_stop(self, cluster_str, task_str, reason)
        # a container that exited first stopped it (aws_fakes.set_exit_code set the code)
        task.stop_code = getattr(task, "stop_code", None) or "UserInitiated"
        return task

    def describe_tasks(self: Any) -> ActionResult:
        out = response_describe(self)
        asked = self._get_param("tasks", [])
        found = out.result["tasks"]
        known = {t.task_arn for t in found} | {t.id for t in found}
        out.result["failures"] = [
            {"arn": a, "reason": "MISSING"} for a in asked if a.split("/")[-1] not in known
        ]
        return out

    response_describe = EC2ContainerServiceResponse.describe_tasks
    EC2ContainerServiceBackend.stop_task = stop_task  # type: ignore[method-assign]
    EC2ContainerServiceResponse.describe_tasks = describe_tasks  # type: ignore[method-assign]


class _NoGroup:
    member_clusters: tuple[str, ...] = ()


def _member(backend: Any, group: Any, member: str, kwargs: dict[str, Any]) -> Any:
    from moto.elasticache.models import CacheCluster

    return CacheCluster(
        account_id=backend.account_id,
        region_name=backend.region_name,
        cache_cluster_id=member,
        cache_node_type=kwargs.get("cache_node_type"),
        replication_group_id=group.replication_group_id,
        az_mode="single-az",
        preferred_availability_zone=None,
        num_cache_nodes=1,
        engine=kwargs.get("engine"),
        engine_version=kwargs.get("engine_version"),
        cache_parameter_group_name=kwargs.get("cache_parameter_group_name"),
        cache_subnet_group_name=kwargs.get("cache_subnet_group_name"),
        transit_encryption_enabled=kwargs.get("transit_encryption_enabled"),
        network_type="ipv4",
        ip_discovery="ipv4",
        snapshot_name=None,
        preferred_maintenance_window=kwargs.get("preferred_maintenance_window"),
        port=kwargs.get("port"),
        notification_topic_arn=None,
        auto_minor_version_upgrade=kwargs.get("auto_minor_version_upgrade"),
        snapshot_retention_limit=0,
        snapshot_window=None,
        auth_token=kwargs.get("auth_token"),
        outpost_mode=None,
        preferred_outpost_arn=None,
        preferred_availability_zones=None,
        cache_security_group_names=None,
        security_group_ids=kwargs.get("security_group_ids"),
        tags=None,
        snapshot_arns=None,
        preferred_outpost_arns=None,
        log_delivery_configurations=[],
        cache_node_ids_to_remove=None,
        cache_node_ids_to_reboot=None,
    )
