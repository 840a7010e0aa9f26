"""include/iam/airflow-connection-policy.json against what really runs with the Airflow
connection: every boto3 call of plugins/cachebench (parsed with `ast`) and of the
provider classes the load operators drive, every resource type of include/terraform/aws
(the mapping below, from the provider and service docs) and its S3 backend. Action
names and resource types are checked against the IAM Service Authorization Reference
as policy_sentry ships it. Conditions are not evaluated here: an action counts as
granted when an Allow statement names it for a matching resource.
"""

from __future__ import annotations

import ast
import fnmatch
import inspect
import json
import re
from pathlib import Path
from types import SimpleNamespace

import botocore.session
import hcl2
import pytest
from botocore import xform_name
from policy_sentry.querying.actions import get_action_data

from cachebench.targets.aws import ecs as cb_ecs
from cachebench.targets.aws.settings import AwsSettings
from cachebench.targets.aws.target import replication_group_id

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "include" / "iam" / "airflow-connection-policy.json"
PACKAGE = ROOT / "plugins" / "cachebench"
AWS_MODULE = ROOT / "include" / "terraform" / "aws"
LOADGEN = ROOT / "include" / "terraform" / "aws-loadgen"

# boto3 service name -> IAM service prefix (they differ for some services).
IAM_PREFIX = {
    "cloudwatch": "cloudwatch",
    "ec2": "ec2",
    "ecs": "ecs",
    "elasticache": "elasticache",
    "logs": "logs",
    "pricing": "pricing",
    "s3": "s3",
    "secretsmanager": "secretsmanager",
}
# Operations authorized by an action of another name (Service Authorization Reference, S3).
ACTION_OF = {("s3", "ListObjectsV2"): "s3:ListBucket", ("s3", "HeadObject"): "s3:GetObject"}
# boto3's S3 transfer methods: HeadObject + GetObject / PutObject.
TRANSFER = {"download_file": "s3:GetObject", "upload_file": "s3:PutObject"}
# Receiver names the package uses for clients passed in as arguments.
CLIENT_NAMES = {
    "ecs": "ecs",
    "logs": "logs",
    "elasticache": "elasticache",
    "cw": "cloudwatch",
    "s3": "s3",
}
# The provider classes a run drives with the connection, with how each names its
# clients: TaskDoneTrigger waits for a run's prefill task (targets/aws.TASK_DONE) and
# streams its awslogs; the tasks themselves are started with EcsHook(...).conn, whose
# calls are the package's own (targets/aws.py).
PROVIDER_CLASSES = {
    ("airflow.providers.amazon.aws.triggers.ecs", "TaskDoneTrigger"): {
        "ecs_client": "ecs",
        "logs_client": "logs",
    },
}
# Authorized on top of the calls themselves.
IMPLIED = {
    # RunTask and RegisterTaskDefinition carry tags: "tag on create" needs ecs:TagResource.
    # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/supported-iam-actions-tagging.html
    "ecs:TagResource",
    # RunTask of a task definition with a task role and an execution role passes both
    # (Service Authorization Reference: dependent action of ecs:RunTask).
    "iam:PassRole",
}
# What Terraform does with the connection, per resource type of include/terraform/aws:
# the provider's create/read/update/delete and tagging calls, plus the dependent actions
# the Service Authorization Reference lists for the create call.
_TAGS_EC = (
    "elasticache:AddTagsToResource",
    "elasticache:ListTagsForResource",
    "elasticache:RemoveTagsFromResource",
)
TF_ACTIONS: dict[str, tuple[str, ...]] = {
    "aws_elasticache_replication_group": (
        "elasticache:CreateReplicationGroup",
        "elasticache:DescribeReplicationGroups",
        "elasticache:DescribeCacheClusters",
        "elasticache:ModifyReplicationGroup",
        "elasticache:DeleteReplicationGroup",
        *_TAGS_EC,
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
        # first cluster of the account creates ElastiCache's service-linked role
        # https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/using-service-linked-roles.html
        "iam:CreateServiceLinkedRole",
        # log_delivery_configuration to CloudWatch Logs
        # https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Logging-destinations.html
        "logs:CreateLogDelivery",
        "logs:GetLogDelivery",
        "logs:UpdateLogDelivery",
        "logs:DeleteLogDelivery",
        "logs:ListLogDeliveries",
        "logs:PutResourcePolicy",
        "logs:DescribeResourcePolicies",
        "logs:DescribeLogGroups",
    ),
    "aws_elasticache_subnet_group": (
        "elasticache:CreateCacheSubnetGroup",
        "elasticache:DescribeCacheSubnetGroups",
        "elasticache:ModifyCacheSubnetGroup",
        "elasticache:DeleteCacheSubnetGroup",
        *_TAGS_EC,
    ),
    "aws_elasticache_parameter_group": (
        "elasticache:CreateCacheParameterGroup",
        "elasticache:DescribeCacheParameterGroups",
        "elasticache:DescribeCacheParameters",
        "elasticache:ModifyCacheParameterGroup",
        "elasticache:ResetCacheParameterGroup",
        "elasticache:DeleteCacheParameterGroup",
        *_TAGS_EC,
    ),
    "aws_security_group": (
        "ec2:CreateSecurityGroup",
        "ec2:DescribeSecurityGroups",
        "ec2:RevokeSecurityGroupEgress",  # the provider removes AWS's default egress rule
        "ec2:DeleteSecurityGroup",
        "ec2:DescribeNetworkInterfaces",
        "ec2:CreateTags",
        "ec2:DeleteTags",
    ),
    "aws_vpc_security_group_ingress_rule": (
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:DescribeSecurityGroupRules",
        "ec2:ModifySecurityGroupRules",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:CreateTags",
        "ec2:DeleteTags",
    ),
    "aws_secretsmanager_secret": (
        "secretsmanager:CreateSecret",
        "secretsmanager:DescribeSecret",
        "secretsmanager:GetResourcePolicy",
        "secretsmanager:UpdateSecret",
        "secretsmanager:TagResource",
        "secretsmanager:UntagResource",
        "secretsmanager:DeleteSecret",
    ),
    "aws_secretsmanager_secret_version": (  # the resource, and the data source reading it back
        "secretsmanager:PutSecretValue",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:ListSecretVersionIds",
        "secretsmanager:UpdateSecretVersionStage",
    ),
    # the ephemeral resource that makes the AUTH token
    "aws_secretsmanager_random_password": ("secretsmanager:GetRandomPassword",),
    "aws_cloudwatch_log_group": (
        "logs:CreateLogGroup",
        "logs:DescribeLogGroups",
        "logs:PutRetentionPolicy",
        "logs:DeleteRetentionPolicy",
        "logs:AssociateKmsKey",
        "logs:DisassociateKmsKey",
        "logs:DeleteLogGroup",
        # tags: the provider has used both the log-group and the ARN-based tagging APIs
        "logs:TagResource",
        "logs:UntagResource",
        "logs:ListTagsForResource",
        "logs:TagLogGroup",
        "logs:UntagLogGroup",
        "logs:ListTagsLogGroup",
    ),
    "aws_cloudwatch_dashboard": (
        "cloudwatch:PutDashboard",
        "cloudwatch:GetDashboard",
        "cloudwatch:DeleteDashboards",
    ),
}
# kms_key_arn set: the services encrypt with the customer managed key for the caller
# (S3 backend encrypt + kms_key_id, Secrets Manager CreateSecret/PutSecretValue,
# ElastiCache at rest).
KMS_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey")
# https://developer.hashicorp.com/terraform/language/backend/s3#s3-bucket-permissions
STATE_KEY = "cachebench/c/run/deployment/terraform.tfstate"

_BOTO = botocore.session.get_session()


def policy() -> dict:
    return json.loads(POLICY.read_text())


def _as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def allowed(action: str, resource: str = "*") -> bool:
    """An Allow statement names `action` for a resource pattern that matches `resource`."""
    for st in policy()["Statement"]:
        if st["Effect"] != "Allow":
            continue
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(st["Action"])):
            continue
        if any(fnmatch.fnmatchcase(resource, r) for r in _as_list(st["Resource"])):
            return True
    return False


# ---------------------------------------------------------------- the calls


def _client_service(call: ast.AST, known: set[str]) -> str | None:
    """The service of `client("svc", ...)`, `_client(s, "svc")`, `boto3.client("svc")`."""
    if not isinstance(call, ast.Call):
        return None
    fn = call.func
    name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", None)
    if name not in ("client", "_client"):
        return None
    for arg in call.args:
        if isinstance(arg, ast.Constant) and arg.value in known:
            return arg.value
    return None


def _operations(service: str) -> dict[str, str]:
    """boto3 method name -> API operation name."""
    model = _BOTO.get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


def _waiter_operation(service: str, waiter: str) -> str:
    model = _BOTO.get_waiter_model(service)
    name = next(w for w in model.waiter_names if xform_name(w) == waiter)
    return model.get_waiter(name).operation


def _action(service: str, operation: str) -> str:
    assert service in IAM_PREFIX, f"boto3 service {service!r}: add its IAM prefix to IAM_PREFIX"
    return ACTION_OF.get((service, operation), f"{IAM_PREFIX[service]}:{operation}")


def _calls_in(
    tree: ast.AST, where: str, names: dict[str, str], candidates: set[str]
) -> dict[str, str]:
    """IAM action -> first call site, for every boto3 client call under `tree`.

    A receiver is resolved from the client-making call itself, a name assigned from one in
    the same function, or `names`; otherwise from the method, among `candidates`.
    """
    known = set(_BOTO.get_available_services())
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    inside = {id(n) for f in functions for n in ast.walk(f)}
    top = ast.Module(body=[n for n in ast.walk(tree) if id(n) not in inside], type_ignores=[])
    found: dict[str, str] = {}
    for scope in [*functions, top]:
        bound = {
            t.id: svc
            for n in ast.walk(scope)
            if isinstance(n, ast.Assign) and (svc := _client_service(n.value, known))
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        calls = ast.walk(scope) if scope is not top else top.body
        for node in calls:
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            method, receiver = node.func.attr, node.func.value
            text = ast.unparse(receiver)
            service = _client_service(receiver, known) or bound.get(text, names.get(text))
            arg = (
                node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
            )
            hits = []
            for svc in [service] if service else sorted(candidates):
                ops = _operations(svc)
                if method == "get_paginator" and arg in ops:
                    hits.append(_action(svc, ops[arg]))
                elif method == "get_waiter" and isinstance(arg, str):
                    hits.append(_action(svc, _waiter_operation(svc, arg)))
                elif method in TRANSFER and svc == "s3":
                    hits.append(TRANSFER[method])
                elif method in ops:
                    hits.append(_action(svc, ops[method]))
            site = f"{where}:{node.lineno} {text}.{method}()"
            assert len(hits) <= 1, f"{site}: which client is {text}? it could be {hits}"
            for action in hits:
                found.setdefault(action, site)
    return found


def package_calls() -> dict[str, str]:
    known = set(_BOTO.get_available_services())
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text())
        # Services a module can call: those it makes clients for, those it takes as arguments.
        made = {s for n in ast.walk(tree) if (s := _client_service(n, known))}
        params = {
            CLIENT_NAMES[a.arg]
            for n in ast.walk(tree)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
            for a in n.args.args
            if a.arg in CLIENT_NAMES
        }
        for action, site in _calls_in(tree, rel, CLIENT_NAMES, made | params).items():
            found.setdefault(action, site)
    return found


def provider_calls() -> dict[str, str]:
    import importlib

    found: dict[str, str] = {}
    for (module, cls), names in PROVIDER_CLASSES.items():
        tree = ast.parse(inspect.getsource(getattr(importlib.import_module(module), cls)))
        for action, site in _calls_in(tree, cls, names, set(names.values())).items():
            found.setdefault(action, site)
    return found


def test_the_scan_finds_the_calls_it_must() -> None:
    calls = package_calls()
    # spot checks of what the source visibly does, so the scan cannot pass by finding nothing
    assert calls.keys() >= {
        "ecs:RegisterTaskDefinition",  # aws/ecs.register_task_definition
        "ecs:RunTask",  # targets/aws._run_tasks: EcsHook(...).conn.run_task
        "ecs:ListTasks",  # get_paginator("list_tasks"), by startedBy (reattach, watch)
        "ecs:DescribeTasks",
        "ecs:StopTask",
        "s3:ListBucket",  # get_paginator("list_objects_v2")
        "s3:GetObject",  # download_file, get_object
        "cloudwatch:GetMetricData",
        "elasticache:ListTagsForResource",  # the reaper
        "secretsmanager:DeleteSecret",  # the reaper
    }, calls
    assert "ecs:ExecuteCommand" not in calls, calls  # redis-py's execute_command is no boto3 call
    assert provider_calls().keys() >= {
        "ecs:DescribeTasks",  # the tasks_stopped waiter
        "logs:GetLogEvents",  # the prefill's awslogs into the task log
    }


def test_every_boto3_call_has_its_action_in_the_policy() -> None:
    calls = {**provider_calls(), **package_calls()}
    missing = {a: site for a, site in calls.items() if not _allowed_somewhere(a)}
    assert not missing, f"boto3 calls without a matching action in {POLICY.name}: {missing}"
    for action in IMPLIED:
        assert _allowed_somewhere(action), action


def _allowed_somewhere(action: str) -> bool:
    return any(
        any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(st["Action"]))
        for st in policy()["Statement"]
        if st["Effect"] == "Allow"
    )


def test_every_terraform_resource_type_is_mapped_and_granted() -> None:
    types = set()
    for path in AWS_MODULE.glob("*.tf"):
        parsed = hcl2.load(path.open())
        for kind in ("resource", "data", "ephemeral"):
            for block in parsed.get(kind, []):
                types |= {k.strip('"') for k in block if k != "__is_block__"}
    unmapped = types - TF_ACTIONS.keys()
    assert not unmapped, f"resource types of include/terraform/aws without actions: {unmapped}"
    missing = {
        t: [a for a in TF_ACTIONS[t] if not _allowed_somewhere(a)]
        for t in types
        if any(not _allowed_somewhere(a) for a in TF_ACTIONS[t])
    }
    assert not missing, missing
    for action in KMS_ACTIONS:
        assert allowed(action, "arn:aws:kms:eu-west-1:123456789012:key/1234abcd"), action


def test_state_bucket_grants_follow_the_s3_backend_docs() -> None:
    bucket = "arn:aws:s3:::<state_bucket>"
    prefix = AwsSettings().state_prefix
    key = f"{bucket}/{prefix}/c/run/deployment/terraform.tfstate"
    assert key.endswith(STATE_KEY)
    assert allowed("s3:ListBucket", bucket)
    for action in ("s3:GetObject", "s3:PutObject"):
        assert allowed(action, key) and allowed(action, key + ".tflock"), action
    assert allowed("s3:DeleteObject", key + ".tflock")
    assert not allowed("s3:DeleteObject", key), "Terraform never deletes the state object"
    results = f"arn:aws:s3:::<results_bucket>/{AwsSettings().results_prefix}/c/run/p/g0/x.json"
    assert allowed("s3:GetObject", results) and allowed(
        "s3:ListBucket", "arn:aws:s3:::<results_bucket>"
    )


def test_grants_are_scoped_to_cachebench_names() -> None:
    deployment = SimpleNamespace(campaign="camp")
    plan = SimpleNamespace(deployment=deployment, run_id="run-1", instance="valkey-8.0-c1r0-x")
    rg = replication_group_id(plan)
    ec = "arn:aws:elasticache:eu-west-1:123456789012:"
    for action in ("elasticache:CreateReplicationGroup", "elasticache:DeleteReplicationGroup"):
        assert allowed(action, f"{ec}replicationgroup:{rg}"), action
        assert not allowed(action, f"{ec}replicationgroup:someone-elses"), action
    assert allowed("elasticache:CreateReplicationGroup", f"{ec}cluster:{rg}-001")
    assert allowed("elasticache:CreateCacheSubnetGroup", f"{ec}subnetgroup:{rg}")
    assert allowed("elasticache:CreateCacheParameterGroup", f"{ec}parametergroup:{rg}")
    secret = f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:cachebench/{rg}/auth-AbCdEf"
    assert allowed("secretsmanager:CreateSecret", secret)
    assert allowed("secretsmanager:DeleteSecret", secret)
    assert not allowed("secretsmanager:DeleteSecret", secret.replace("cachebench/", "prod/"))
    family = cb_ecs.family(plan)
    td = f"arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:1"
    assert allowed("ecs:RegisterTaskDefinition", td) and allowed("ecs:RunTask", td)
    assert not allowed("ecs:RunTask", "arn:aws:ecs:eu-west-1:123456789012:task-definition/x:1")
    main = (AWS_MODULE / "main.tf").read_text()
    groups = hcl2.load((AWS_MODULE / "rules.tf").open())["locals"][0]["log_groups"]
    assert {"slow_log", "engine_log"} <= set(groups), groups
    for name in (groups["slow_log"], groups["engine_log"]):
        group = name.strip('"').replace("${var.replication_group_id}", rg)
        assert group.startswith("/aws/vendedlogs/cachebench/"), group
        assert allowed(
            "logs:CreateLogGroup", f"arn:aws:logs:eu-west-1:123456789012:log-group:{group}"
        )
    dashboard = re.search(r'dashboard_name\s+=\s+"([^"]+)"', main)[1]
    dashboard = dashboard.replace("${var.replication_group_id}", rg)
    assert allowed(
        "cloudwatch:PutDashboard", f"arn:aws:cloudwatch::123456789012:dashboard/{dashboard}"
    )
    # the load roles and log group aws-loadgen makes under its default name
    loadgen = {
        k.strip('"'): v
        for b in hcl2.load((LOADGEN / "variables.tf").open())["variable"]
        for k, v in b.items()
        if k != "__is_block__"
    }
    name = loadgen["name"]["default"].strip('"')
    for role in ("execution", "task"):
        assert allowed("iam:PassRole", f"arn:aws:iam::123456789012:role/{name}-{role}"), role
    stream = f"/cachebench/{name}:log-stream:memtier/memtier/0123456789abcdef"
    assert allowed("logs:GetLogEvents", f"arn:aws:logs:eu-west-1:123456789012:log-group:{stream}")


def test_tag_on_create_and_pass_role_carry_their_conditions() -> None:
    by_action = {a: st for st in policy()["Statement"] for a in _as_list(st["Action"])}
    tag = by_action["ecs:TagResource"]["Condition"]["StringEquals"]["ecs:CreateAction"]
    assert set(tag) == {"RegisterTaskDefinition", "RunTask"}
    passed = by_action["iam:PassRole"]["Condition"]["StringEquals"]["iam:PassedToService"]
    assert passed == "ecs-tasks.amazonaws.com"


def _arn_regex(fmt: str) -> re.Pattern[str]:
    """A Service Authorization Reference ARN format as a regex ("${X}" = any value)."""
    parts = re.split(r"(\$\{[^}]+\})", fmt)
    out = ""
    for part in parts:
        if part in ("${Partition}", "${Region}", "${Account}"):
            out += "[^:]*"
        elif part == "${BucketName}":
            out += "[^/]+"
        elif part.startswith("${"):
            out += ".+"
        else:
            out += re.escape(part)
    return re.compile(out)


@pytest.mark.parametrize("sid", [st["Sid"] for st in policy()["Statement"]])
def test_each_statement_names_real_actions_for_resources_they_take(sid: str) -> None:
    st = next(s for s in policy()["Statement"] if s["Sid"] == sid)
    resources = _as_list(st["Resource"])
    for action in _as_list(st["Action"]):
        prefix, name = action.split(":")
        rows = get_action_data(prefix, name).get(prefix, [])
        assert rows, f"{sid}: {action} is not in the IAM reference"
        formats = {r["resource_arn_format"] for r in rows}
        if "*" in resources:
            continue
        # a statement whose resources the action never takes would grant nothing
        samples = [r.replace("*", "x1") for r in resources]
        ok = any(_arn_regex(f).fullmatch(s) for f in formats - {"*"} for s in samples)
        assert ok, f"{sid}: {action} takes none of {resources} (it takes {sorted(formats)})"


def test_policy_fits_a_managed_policy() -> None:
    # IAM quota: a managed policy is at most 6,144 characters, white space not counted.
    # https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html
    compact = json.dumps(policy(), separators=(",", ":"))
    assert len(re.sub(r"\s", "", compact)) <= 6144


def test_docs_list_every_permission() -> None:
    page = (ROOT / "docs" / "aws-permissions.md").read_text()
    actions = {a for st in policy()["Statement"] for a in _as_list(st["Action"])}
    missing = sorted(a for a in actions if f"`{a}`" not in page)
    assert not missing, f"docs/aws-permissions.md does not list {missing}"


def test_the_modules_readme_key_policy_admits_logs_for_the_modules_log_groups() -> None:
    """With kms_key_arn, CloudWatch Logs encrypts the two log groups with the key only if
    the key policy admits it for their ARNs: the statement include/terraform/aws/README.md
    gives must match the groups rules.tf names (under /aws/vendedlogs/), and no others'."""
    readme = (AWS_MODULE / "README.md").read_text()
    statement = json.loads(
        re.search(r"key policy must admit CloudWatch Logs.*?```json\n(.*?)```", readme, re.S)[1]
    )
    assert statement["Principal"] == {"Service": "logs.<region>.amazonaws.com"}
    (pattern,) = statement["Condition"]["ArnLike"].values()
    pattern = pattern.replace("<region>", "eu-west-1").replace("<account>", "123456789012")
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:"
    groups = hcl2.load((AWS_MODULE / "rules.tf").open())["locals"][0]["log_groups"]
    for name in (groups["slow_log"], groups["engine_log"]):
        group = name.strip('"').replace("${var.replication_group_id}", "cb-camp-x")
        assert fnmatch.fnmatchcase(arn + group, pattern), (group, pattern)
    assert not fnmatch.fnmatchcase(arn + "/aws/elasticache/prod/slow-log", pattern)
