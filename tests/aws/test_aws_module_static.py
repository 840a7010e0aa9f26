"""include/terraform/aws checked statically: the AWS provider plugin cannot be
downloaded here, so the module is never planned. Checked: formatting
(terraform fmt, CLI or embedded), that the DAG's tfvars and the module's
variables agree (python-hcl2), pinned providers and the S3 backend, the
stand-in's interface, and a checkov scan (every skip carries its reason).
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
from cachebench.terraform import MODULES_DIR, Terraform

AWS = MODULES_DIR / "aws"
STANDIN = MODULES_DIR / "aws-standin"
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


@pytest.mark.parametrize("module", [AWS, STANDIN, LOADGEN], ids=lambda p: p.name)
def test_fmt(module: Path, tmp_path: Path) -> None:
    tf = Terraform(tmp_path)  # the CLI when on PATH, else the embedded one
    for src in module.glob("*.tf"):
        shutil.copy2(src, tmp_path / src.name)
    tf.run("fmt", "-check", "-diff", "-no-color")  # raises TerraformError with the diff


def test_rendered_tfvars_match_the_declared_variables(aws, results_dir) -> None:
    item = steps.render_tfvars(steps.plan(campaign("static"), "run-static")[0])
    rendered = json.loads(
        (Path(item["point_dir"]) / "terraform" / "terraform.tfvars.json").read_text()
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


def test_standin_has_the_same_interface() -> None:
    assert (STANDIN / "variables.tf").read_text() == (AWS / "variables.tf").read_text()
    assert output_names(STANDIN) == output_names(AWS)
    assert {"endpoint", "replication_group_id", "member_clusters", "auth_secret_arn"} <= (
        output_names(AWS)
    )


def test_providers_pinned_and_state_in_s3() -> None:
    versions = parse(AWS / "versions.tf")
    tf = versions["terraform"][0]
    providers = tf["required_providers"][0]
    providers = {k: v for k, v in providers.items() if k != "__is_block__"}
    assert set(providers) == {"aws", "random"}
    for name, spec in providers.items():
        assert re.match(r"^~> \d+\.\d+$", unq(spec["version"])), name
    assert '"s3"' in tf["backend"][0]
    main = (AWS / "main.tf").read_text()
    for setting in (
        "transit_encryption_enabled = true",
        "at_rest_encryption_enabled = true",
        "auth_token                 = random_password.auth.result",
        'log_type         = "slow-log"',
        'log_type         = "engine-log"',
        "retention_in_days = var.log_retention_days",
        'resource "aws_cloudwatch_dashboard"',
        "referenced_security_group_id = each.value",
    ):
        assert setting in main, setting
    assert "default_tags" in (AWS / "versions.tf").read_text()
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


@pytest.mark.skipif(_checkov() is None, reason="checkov not installed (see README: Tests)")
@pytest.mark.parametrize("module", [AWS, LOADGEN], ids=lambda p: p.name)
def test_checkov_no_failed_check_and_every_skip_justified(module: Path) -> None:
    proc = subprocess.run(
        [
            _checkov(),
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
