"""include/terraform/aws checked without the provider: formatting (terraform fmt,
CLI or embedded), that the DAG's tfvars and the module's variables agree
(python-hcl2), the pinned provider and the S3 backend, and a checkov scan (every
skip carries its reason). The real provider plans the module in
test_aws_module_plan.py and applies it in test_aws_module_apply.py.

The API rules (transit encryption mode, num_cache_clusters, member ids, log group
names, the reader endpoint, aws-loadgen's kms:Decrypt) are evaluated here by
Terraform alone, in milliseconds per case: expressions that read only variables
evaluate in a directory of the module's variables.tf and the file that holds them,
with an output per expression (`apply` of a configuration with no resources needs
no provider). The wiring of those values into the resources is checked on the
parse tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
from aws_fakes import campaign

from cachebench import steps
from cachebench.engines import AWS_VERSIONS
from cachebench.models import Endpoint
from cachebench.terraform import MODULES_DIR, TFVARS, Terraform

AWS = MODULES_DIR / "aws"
LOADGEN = MODULES_DIR / "aws-loadgen"  # optional: the ECS cluster and task definition


def parse(path: Path) -> dict:
    with path.open() as fh:
        return hcl2.load(fh)


def unq(value: str) -> str:
    """python-hcl2 keeps HCL's quotes around labels and strings."""
    return value[1:-1] if value.startswith('"') and value.endswith('"') else value


def declared(module: Path) -> dict[str, dict]:
    out = {}
    for block in parse(module / "variables.tf").get("variable", []):
        out.update({unq(k): v for k, v in block.items() if k != "__is_block__"})
    return out


def output_names(module: Path) -> set[str]:
    blocks = parse(module / "outputs.tf").get("output", [])
    return {unq(name) for block in blocks for name in block if name != "__is_block__"}


@pytest.mark.parametrize("module", [AWS, LOADGEN], ids=lambda p: p.name)
def test_fmt(module: Path, tmp_path: Path) -> None:
    tf = Terraform(tmp_path)  # the CLI when on PATH, else the embedded one
    for src in module.glob("*.tf"):
        shutil.copy2(src, tmp_path / src.name)
    tf.run("fmt", "-check", "-diff", "-no-color")  # raises TerraformError with the diff


def test_rendered_tfvars_match_the_declared_variables(aws, results_dir) -> None:
    plan = steps.render_tfvars(steps.plan(campaign("static"), "run-static")[0])
    rendered = json.loads(
        (steps.deployment_dir(plan).terraform / "terraform.tfvars.json").read_text()
    )
    variables = declared(AWS)
    assert set(rendered) <= set(variables), set(rendered) - set(variables)
    required = {name for name, spec in variables.items() if "default" not in spec}
    assert required <= {k for k, v in rendered.items() if v is not None}, required - set(rendered)
    assert not any(re.search(r"token|password|secret", k) for k in rendered)
    for name, spec in variables.items():
        assert spec.get("description"), f"variable {name} has no description"
    validated = {n for n, spec in variables.items() if spec.get("validation")}
    assert validated >= required - {"cluster_mode"}


def test_outputs_the_dag_reads() -> None:
    assert {"endpoint", "replication_group_id", "member_clusters", "auth_secret_arn"} <= (
        output_names(AWS)
    )


def test_providers_pinned_and_state_in_s3() -> None:
    """One provider, hashicorp/aws (the only one the machines carry: no random), pinned;
    the backend and the provider's configuration in root.tf, which only a root holds."""
    tf = parse(AWS / "versions.tf")["terraform"][0]
    providers = tf["required_providers"][0]
    providers = {k: v for k, v in providers.items() if k != "__is_block__"}
    assert set(providers) == {"aws"}
    assert unq(providers["aws"]["source"]) == "hashicorp/aws"
    assert re.match(r"^~> \d+\.\d+$", unq(providers["aws"]["version"]))
    root = parse(AWS / "root.tf")
    assert '"s3"' in root["terraform"][0]["backend"][0]
    assert [list(p) for p in root["provider"]] == [['"aws"']]
    for path in AWS.glob("*.tf"):
        if path.name != "root.tf":
            blocks = parse(path)
            assert "provider" not in blocks, path.name
            assert all("backend" not in t for t in blocks.get("terraform", [])), path.name
    main = (AWS / "main.tf").read_text()
    for setting in (
        "transit_encryption_enabled = var.transit_encryption",
        "at_rest_encryption_enabled = true",
        "auth_token                 = var.transit_encryption ? "
        "data.aws_secretsmanager_secret_version.auth[0].secret_string : null",
        "secret_string_wo         = "
        "ephemeral.aws_secretsmanager_random_password.auth[0].random_password",
        'log_type         = "slow-log"',
        'log_type         = "engine-log"',
        "retention_in_days = var.log_retention_days",
        'resource "aws_cloudwatch_dashboard"',
        "referenced_security_group_id = each.value",
    ):
        assert setting in main, setting
    assert "default_tags" in (AWS / "root.tf").read_text()
    readme = (AWS / "README.md").read_text()
    for name in declared(AWS):
        assert f"`{name}`" in readme, f"README.md does not document {name}"
    loadgen_readme = (LOADGEN / "README.md").read_text()
    for name in declared(LOADGEN):
        assert f"`{name}`" in loadgen_readme, f"aws-loadgen/README.md does not document {name}"


def _checkov() -> str | None:
    """CHECKOV, else `checkov` on PATH, else the repo's .venv-checkov (requirements-checkov.txt)."""
    local = MODULES_DIR.parents[1] / ".venv-checkov" / "bin" / "checkov"
    found = os.environ.get("CHECKOV") or shutil.which("checkov")
    return found or (str(local) if local.exists() else None)


@pytest.mark.parametrize("module", [AWS, LOADGEN], ids=lambda p: p.name)
def test_checkov_no_failed_check_and_every_skip_justified(module: Path) -> None:
    checkov = _checkov()
    if checkov is None:  # scripts/setup.sh installs it: with CI=true this skip fails the run
        pytest.skip("checkov not installed: bash scripts/setup.sh makes .venv-checkov")
    proc = subprocess.run(
        [
            checkov,
            "-d",
            str(module),
            "--framework",
            "terraform",
            "-o",
            "json",
            "--skip-download",
            "--compact",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    report = json.loads(proc.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0 and summary["passed"] > 10
    for skip in re.findall(r"#checkov:skip=(.*)", (module / "main.tf").read_text()):
        check, _, reason = skip.partition(":")
        assert re.match(r"^CKV2?_AWS_\d+$", check) and len(reason.strip()) > 20, skip


# ---------------------------------------------------------------- rules, evaluated

BASE_TFVARS = {
    "region": "eu-west-1",
    "campaign": "static",
    "run_id": "run-static",
    "deployment_id": "p1",
    "replication_group_id": "cb-0123456789abcdef0123",
    "engine": "valkey",
    "engine_version": "8.0",
    "node_type": "cache.r7g.large",
    "vpc_id": "vpc-0123456789abcdef0",
    "subnet_ids": ["subnet-0123456789abcdef0"],
    "allowed_security_group_ids": ["sg-0123456789abcdef0"],
    "expires_at": 1900000000,
}


def hcl_expr(value) -> str:
    """python-hcl2's form of an attribute back as HCL expression text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    value = str(value)
    return value[2:-1] if value.startswith("${") and value.endswith("}") else value


def evaluate(workdir: Path, sources: list[Path], tfvars: dict, exprs: dict[str, str]) -> dict:
    """Each expression's value as Terraform computes it over `sources` and `tfvars`.

    Outputs are wrapped in an object: Terraform drops a root output whose value is null.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for src in sources:
        (workdir / src.name).write_text(src.read_text())
    probe = "".join(f'output "{k}" {{\n  value = {{ v = {e} }}\n}}\n' for k, e in exprs.items())
    (workdir / "probe.tf").write_text(probe)
    (workdir / TFVARS).write_text(json.dumps(tfvars))
    return {k: v["v"] for k, v in Terraform(workdir).apply().items()}


def rules(workdir: Path, **tfvars) -> dict:
    names = [k for k in parse(AWS / "rules.tf")["locals"][0] if not k.startswith("__")]
    sources = [AWS / "variables.tf", AWS / "rules.tf"]
    return evaluate(workdir, sources, {**BASE_TFVARS, **tfvars}, {n: f"local.{n}" for n in names})


def replication_group() -> dict:
    for block in parse(AWS / "main.tf")["resource"]:
        if '"aws_elasticache_replication_group"' in block:
            return block['"aws_elasticache_replication_group"']['"this"']
    raise AssertionError("no aws_elasticache_replication_group.this")


# ElastiCache refuses TransitEncryptionMode below Redis OSS 7.0.5 ("Transit encryption
# mode is not supported for engine version 6.2.6. Please use engine version 7.0.5 or
# higher."); online TLS migration, which the mode is for, exists from Redis OSS 7.0 and
# Valkey 7.2 on (ElastiCache user guide, in-transit-encryption-enable-python), and
# "7.0" resolves to the newest 7.0.x.
EXPECTED_MODE = {
    ("redis", "6.2"): None,
    ("redis", "7.0"): "required",
    ("redis", "7.1"): "required",
    ("valkey", "7.2"): "required",
    ("valkey", "8.0"): "required",
    ("valkey", "8.1"): "required",
    ("valkey", "8.2"): "required",
}


def test_transit_encryption_mode_is_sent_only_where_the_api_takes_it(tmp_path: Path) -> None:
    offered = {(e, v) for e, versions in AWS_VERSIONS.items() for v in versions}
    assert offered <= EXPECTED_MODE.keys(), offered - EXPECTED_MODE.keys()
    for engine, version in sorted(offered):
        for tls in (True, False):
            got = rules(
                tmp_path / f"{engine}-{version}-{tls}",
                engine=engine,
                engine_version=version,
                transit_encryption=tls,
            )
            expected = EXPECTED_MODE[engine, version] if tls else None  # no TLS, no mode
            assert got["transit_encryption_mode"] == expected, (engine, version, tls)
    rg = replication_group()
    assert rg["transit_encryption_mode"] == "${local.transit_encryption_mode}"
    assert rg["transit_encryption_enabled"] == "${var.transit_encryption}"


@pytest.mark.parametrize(
    "topology, members",
    [
        ((False, 1, 0), ["cb-x-001"]),
        ((False, 1, 2), ["cb-x-001", "cb-x-002", "cb-x-003"]),
        ((True, 2, 1), ["cb-x-0001-001", "cb-x-0001-002", "cb-x-0002-001", "cb-x-0002-002"]),
    ],
    ids=str,
)
def test_member_ids_and_log_groups_are_named_as_elasticache_names_them(
    topology, members, tmp_path: Path
) -> None:
    """Member clusters <group>-<shard>-<member> (cluster mode on) or <group>-<member> (off);
    the log groups under /aws/vendedlogs/ (their names never grow the account's
    CloudWatch Logs resource policy)."""
    cluster_mode, shards, replicas = topology
    got = rules(
        tmp_path,
        replication_group_id="cb-x",
        cluster_mode=cluster_mode,
        shards=shards,
        replicas=replicas,
    )
    assert got["member_ids"] == members
    assert got["log_groups"] == {
        "slow_log": "/aws/vendedlogs/cachebench/cb-x/slow-log",
        "engine_log": "/aws/vendedlogs/cachebench/cb-x/engine-log",
    }


# (cluster_mode, shards, replicas) -> what the provider must get: num_cache_clusters
# (primary + replicas) with cluster mode off, node groups x replicas with it on, never
# both (they conflict), and failover / Multi-AZ only where a replica can take over.
TOPOLOGIES = {
    (False, 1, 0): dict(
        num_cache_clusters=1,
        num_node_groups=None,
        replicas_per_node_group=None,
        automatic_failover_enabled=False,
        multi_az_enabled=False,
    ),
    (False, 1, 2): dict(
        num_cache_clusters=3,
        num_node_groups=None,
        replicas_per_node_group=None,
        automatic_failover_enabled=True,
        multi_az_enabled=True,
    ),
    (True, 3, 0): dict(
        num_cache_clusters=None,
        num_node_groups=3,
        replicas_per_node_group=0,
        automatic_failover_enabled=True,
        multi_az_enabled=False,
    ),
    (True, 2, 1): dict(
        num_cache_clusters=None,
        num_node_groups=2,
        replicas_per_node_group=1,
        automatic_failover_enabled=True,
        multi_az_enabled=True,
    ),
}


@pytest.mark.parametrize("topology", list(TOPOLOGIES), ids=str)
def test_cluster_mode_off_uses_num_cache_clusters(topology, tmp_path: Path) -> None:
    cluster_mode, shards, replicas = topology
    got = rules(tmp_path, cluster_mode=cluster_mode, shards=shards, replicas=replicas)
    assert {k: got[k] for k in TOPOLOGIES[topology]} == TOPOLOGIES[topology]
    rg = replication_group()
    for name in TOPOLOGIES[topology]:
        assert rg[name] == f"${{local.{name}}}", name


def _endpoint_exprs(module: Path) -> dict[str, str]:
    block = next(b for b in parse(module / "outputs.tf")["output"] if '"endpoint"' in b)
    return {k: hcl_expr(v) for k, v in block['"endpoint"']["value"].items()}


@pytest.mark.parametrize("cluster_mode", [False, True])
def test_endpoint_output_has_the_reader_host(cluster_mode: bool, tmp_path: Path) -> None:
    """reader_host: the group's reader endpoint with cluster mode off, null with it on
    (the provider documents reader_endpoint_address for cluster mode disabled only)."""
    assert set(_endpoint_exprs(AWS)) == set(Endpoint.model_fields)
    # main.tf's host and reader_host over a group with the provider's attribute names
    main_locals = parse(AWS / "main.tf")["locals"][0]
    group = "aws_elasticache_replication_group.this."
    exprs = {
        k: hcl_expr(main_locals[k]).replace(group, "local.rg.") for k in ("host", "reader_host")
    }
    fake = tmp_path / "group.tf"
    fake.write_text(
        "locals {\n  rg = {\n"
        '    primary_endpoint_address       = "master.example"\n'
        '    reader_endpoint_address        = "replica.example"\n'
        '    configuration_endpoint_address = "clustercfg.example"\n'
        "  }\n}\n"
    )
    tfvars = {**BASE_TFVARS, "cluster_mode": cluster_mode, "shards": 2 if cluster_mode else 1}
    got = evaluate(tmp_path / "aws", [AWS / "variables.tf", fake], tfvars, exprs)
    if cluster_mode:
        assert got == {"host": "clustercfg.example", "reader_host": None}
    else:
        assert got == {"host": "master.example", "reader_host": "replica.example"}
    assert _endpoint_exprs(AWS)["reader_host"] == "local.reader_host"


def _secrets_policy_document() -> dict:
    for block in parse(LOADGEN / "main.tf")["data"]:
        if (
            '"aws_iam_policy_document"' in block
            and '"secrets"' in block['"aws_iam_policy_document"']
        ):
            return block['"aws_iam_policy_document"']['"secrets"']
    raise AssertionError("aws-loadgen has no aws_iam_policy_document.secrets")


LOADGEN_TFVARS = {
    "region": "eu-west-1",
    "vpc_id": "vpc-0123456789abcdef0",
    "vpc_cidr": "10.0.0.0/16",
    "image": "example/memtier-awscli:2.1",
    "results_bucket": "my-bench-results",
}
KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_loadgen_grants_kms_decrypt_on_the_secrets_key_when_set(tmp_path: Path) -> None:
    """A secret under a customer managed key needs kms:Decrypt on it by the execution role
    (ECS developer guide, task execution IAM role: Secrets Manager permissions)."""
    doc = _secrets_policy_document()
    (dynamic,) = [d['"statement"'] for d in doc["dynamic"]]
    (content,) = dynamic["content"]
    assert [unq(a) for a in content["actions"]] == ["kms:Decrypt"]
    assert content["resources"] == ["${statement.value}"]
    (cond,) = content["condition"]
    assert unq(cond["variable"]) == "kms:ViaService"
    assert [unq(v) for v in cond["values"]] == ["secretsmanager.${var.region}.amazonaws.com"]
    for_each = hcl_expr(dynamic["for_each"])
    for key, expected in ((KEY, [KEY]), (None, [])):
        got = evaluate(
            tmp_path / str(bool(key)),
            [LOADGEN / "variables.tf"],
            {**LOADGEN_TFVARS, "secrets_kms_key_arn": key},
            {"keys": for_each},
        )
        assert got["keys"] == expected, key
    # the document is the execution role's: ECS reads the secret with that role
    roles = {
        k: v
        for b in parse(LOADGEN / "main.tf")["resource"]
        if '"aws_iam_role_policy"' in b
        for k, v in b['"aws_iam_role_policy"'].items()
    }
    attached = roles['"secrets"']
    assert attached["role"] == "${aws_iam_role.execution.id}"
    assert attached["policy"] == "${data.aws_iam_policy_document.secrets.json}"
