"""include/terraform/aws planned by the real AWS provider for every configuration a campaign
can ask for: engine x version (the catalogue's: Redis OSS 6.2, 7.0, 7.1, Valkey 7.2, 8.0,
8.1, 8.2) x topology (cluster mode off with 0, 1, 5 replicas; on with 1 and 3 shards of
0 and 1 replicas) x TLS on/off x KMS on/off, 196 deployments, each from the tfvars the
DAG's render step writes.

Two roots, each with one `terraform init` and one `terraform plan` for half of them,
side by side on the machine's two cores: the module's files (all but root.tf, which
holds what only a root may: the backend and the provider block) are a child module,
called once per deployment with its rendered tfvars, under a root with one provider
(one provider process; a provider block per deployment would start one each, about
400 MB apiece). The plan must be clean: no error and no diagnostic of any kind (the provider's
warnings for the arguments included). Every deployment's dashboard body, as the plan
renders it, must have the shape CloudWatch documents (DASHBOARD_DOC).

Plans need no AWS: the provider's configuration asks STS who it is and the AUTH
token's ephemeral resource asks Secrets Manager for a random password; both go to the
tests' moto server (AWS_ENDPOINT_URL); nothing is refreshed (-refresh=false).
"""

from __future__ import annotations

import json
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from aws_fakes import campaign

from cachebench import steps
from cachebench.engines import AWS_VERSIONS
from cachebench.terraform import MODULES_DIR, TFVARS, Terraform

pytestmark = pytest.mark.e2e
TOPOLOGIES = [
    {"cluster_mode": False, "replicas": 0},
    {"cluster_mode": False, "replicas": 1},
    {"cluster_mode": False, "replicas": 5},
    {"cluster_mode": True, "shards": 1, "replicas": 0},
    {"cluster_mode": True, "shards": 1, "replicas": 1},
    {"cluster_mode": True, "shards": 3, "replicas": 0},
    {"cluster_mode": True, "shards": 3, "replicas": 1},
]
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DASHBOARD_DOC = (
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/"
    "CloudWatch-Dashboard-Body-Structure.html"
)
STATS = {"SampleCount", "Average", "Sum", "Minimum", "Maximum"}
VIEWS = {"timeSeries", "singleValue", "gauge", "bar", "pie", "table"}


def dashboard_problems(body: Any) -> list[str]:
    """What in a dashboard body breaks CloudWatch's documented structure (DASHBOARD_DOC):
    a `widgets` array of 0-500 objects; each with a `type`, integer `x` (0-23), `y`
    (>= 0), `width` (1-24, within the 24-column grid with x), `height` (1-1000) and a
    `properties` object; a metric widget's `metrics` an array of arrays, each
    [namespace, metric name, dimension name, dimension value, ...] (strings, names and
    values in pairs, then an optional rendering object), at most 100 of them (the limit
    CloudWatch documents for one graph, GetMetricWidgetImage's; the module keeps its
    widgets under it), with a `region`, a `period` of 1, 5, 10, 30 or a
    multiple of 60, a `stat` and a `view` CloudWatch knows."""
    if not isinstance(body, dict) or not isinstance(body.get("widgets"), list):
        return ["the body must be an object with a widgets array"]
    out = []
    if len(body["widgets"]) > 500:
        out.append(f"{len(body['widgets'])} widgets: at most 500")
    for i, w in enumerate(body["widgets"]):
        at = f"widgets[{i}]"
        if not isinstance(w, dict) or not isinstance(w.get("properties"), dict):
            out.append(f"{at}: an object with a properties object")
            continue
        if w.get("type") not in ("metric", "text", "log", "alarm", "explorer"):
            out.append(f"{at}.type: {w.get('type')!r}")
        for field, low, high in (
            ("x", 0, 23),
            ("y", 0, None),
            ("width", 1, 24),
            ("height", 1, 1000),
        ):
            v = w.get(field)
            if v is None:
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < low or (high and v > high):
                out.append(f"{at}.{field}: {v!r}")
        if isinstance(w.get("x"), int) and w.get("x", 0) + w.get("width", 6) > 24:
            out.append(f"{at}: x + width beyond the 24-column grid")
        if w.get("type") == "metric":
            out += _metric_widget_problems(at, w["properties"])
    return out


def _metric_widget_problems(at: str, props: dict) -> list[str]:
    out = []
    metrics = props.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        return [f"{at}.properties.metrics: a non-empty array of arrays"]
    if len(metrics) > 100:
        out.append(f"{at}.properties.metrics: {len(metrics)} metrics, at most 100")
    for j, m in enumerate(metrics):
        where = f"{at}.properties.metrics[{j}]"
        if not isinstance(m, list):
            out.append(f"{where}: {m!r} is not an array (metrics is an array of arrays)")
            continue
        names = m[:-1] if m and isinstance(m[-1], dict) else m
        if not all(isinstance(s, str) and s for s in names):
            out.append(f"{where}: namespace, metric and dimensions must be non-empty strings")
        elif len(names) < 2 or len(names) % 2:
            out.append(f"{where}: namespace, metric name, then dimension name/value pairs")
        elif (len(names) - 2) // 2 > 30:
            out.append(f"{where}: more than 30 dimensions")
    if not isinstance(props.get("region"), str) or not re.match(
        r"^[a-z]{2}(-[a-z]+)+-\d$", props["region"]
    ):
        out.append(f"{at}.properties.region: {props.get('region')!r}")
    period = props.get("period", 300)
    if not isinstance(period, int) or not (period in (1, 5, 10, 30) or period % 60 == 0):
        out.append(f"{at}.properties.period: {period!r}")
    stat = props.get("stat", "Average")
    if stat not in STATS and not re.fullmatch(r"p\d{1,2}(\.\d+)?", str(stat)):
        out.append(f"{at}.properties.stat: {stat!r}")
    if props.get("view", "timeSeries") not in VIEWS:
        out.append(f"{at}.properties.view: {props.get('view')!r}")
    return out


def test_the_dashboard_check_refuses_what_putdashboard_refused() -> None:
    """The body the module rendered before (flatten() of every level: one flat list of
    strings, "Field metrics has to be an array of array of strings") fails the check."""
    row = ["AWS/ElastiCache", "CPUUtilization", "CacheClusterId", "cb-x-001", "CacheNodeId", "0001"]
    widget = {"type": "metric", "x": 0, "y": 0, "width": 12, "height": 6,
              "properties": {"region": "eu-west-1", "period": 60, "stat": "Average",
                             "view": "timeSeries", "metrics": row}}  # fmt: skip
    assert any("is not an array" in p for p in dashboard_problems({"widgets": [widget]}))
    widget["properties"]["metrics"] = [row]
    assert dashboard_problems({"widgets": [widget]}) == []
    widget["properties"]["metrics"] = [row[:5]]  # a dimension name without its value
    assert dashboard_problems({"widgets": [widget]}) != []


def rendered(tls: bool, kms: bool) -> list[tuple[str, dict]]:
    """(deployment id, tfvars) of the matrix for one TLS x KMS setting, rendered by the
    DAG's plan and render_tfvars steps."""
    name = f"matrix-{'tls' if tls else 'plain'}-{'kms' if kms else 'nokms'}"
    fields = {
        **campaign(name, generators=1),
        "engines": [{"engine": e, "versions": list(v)} for e, v in AWS_VERSIONS.items()],
        "topologies": TOPOLOGIES,
        "budget_usd": 100_000,
        "max_points": 1000,
        "aws": {"transit_encryption": tls, "kms_key_arn": KEY if kms else None},
    }
    out = []
    for plan in steps.plan(fields, f"scheduled__{name}"):
        plan = steps.render_tfvars(plan)
        tfvars = steps.deployment_dir(plan).terraform / TFVARS
        out.append((plan.instance, json.loads(tfvars.read_text())))
    return out


def test_the_module_plans_clean_for_every_configuration(real_module, results_dir, tmp_path) -> None:
    matrix = {
        f"d{i}": (instance, tls, kms, tfvars)
        for i, (tls, kms, (instance, tfvars)) in enumerate(
            (tls, kms, d)
            for tls, kms in product((True, False), (True, False))
            for d in rendered(tls, kms)
        )
    }
    n_versions = sum(len(v) for v in AWS_VERSIONS.values())
    assert len(matrix) == n_versions * len(TOPOLOGIES) * 4 == 196
    # two roots, half the matrix each, planned side by side (one per core)
    keys = sorted(matrix, key=lambda k: int(k[1:]))
    halves = [{k: matrix[k][3] for k in keys[i::2]} for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        planned = {}
        for part in pool.map(plan_clean, [tmp_path / "a", tmp_path / "b"], halves):
            planned |= part
    assert planned.keys() == matrix.keys()
    for key, (instance, tls, kms, tv) in matrix.items():
        changes = planned[key]
        group = changes["aws_elasticache_replication_group.this"]["after"]
        assert group["transit_encryption_enabled"] is tls, instance
        assert group["kms_key_id"] == (KEY if kms else None), instance
        assert ("aws_secretsmanager_secret.auth[0]" in changes) is tls, instance
        params = {
            p["name"]: p["value"]
            for p in changes["aws_elasticache_parameter_group.this"]["after"]["parameter"]
        }
        assert params == {
            "cluster-enabled": "yes" if tv["cluster_mode"] else "no",
            "maxmemory-policy": "allkeys-lru",
        }, instance
        body = json.loads(changes["aws_cloudwatch_dashboard.this"]["after"]["dashboard_body"])
        assert dashboard_problems(body) == [], (instance, dashboard_problems(body)[:5])
        nodes = tv["shards"] * (1 + tv["replicas"])
        graphed = {m[3] for w in body["widgets"] for m in w["properties"]["metrics"]}
        assert len(graphed) == nodes, instance  # every node, on every panel's widget


def plan_clean(root: Path, tfvars: dict[str, dict]) -> dict[str, dict[str, dict]]:
    """Plan the module once per entry of `tfvars` (module key -> rendered tfvars) under one
    root, assert the plan clean, and return each module's planned changes by address."""
    child = root / "aws"
    child.mkdir(parents=True)
    for src in (MODULES_DIR / "aws").glob("*.tf"):
        if src.name != "root.tf":
            shutil.copy2(src, child / src.name)
    (region,) = {tv["region"] for tv in tfvars.values()}
    config = {
        "provider": {"aws": {"region": region}},
        "module": {key: {"source": "./aws", **tv} for key, tv in tfvars.items()},
    }
    (root / "main.tf.json").write_text(json.dumps(config, indent=1))
    tf = Terraform(root)
    tf.run("init", "-input=false", "-no-color")
    out = tf.run("plan", "-input=false", "-refresh=false", "-out=plan.bin", "-json")
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    diagnostics = [e["diagnostic"] for e in events if e.get("type") == "diagnostic"]
    assert not diagnostics, json.dumps(diagnostics, indent=1)[:4000]
    summary = next(e for e in events if e.get("type") == "change_summary")["changes"]
    assert summary["change"] == summary["remove"] == 0 and summary["add"] > 0
    shown = json.loads(tf.run("show", "-json", "plan.bin"))
    planned: dict[str, dict[str, dict]] = {}
    for rc in shown["resource_changes"]:
        key = rc["module_address"].removeprefix("module.")
        planned.setdefault(key, {})[f"{rc['type']}.{rc['name']}{_index(rc)}"] = rc["change"]
    return planned


def _index(rc: dict) -> str:
    index = rc.get("index")
    if index is None:
        return ""
    return f"[{json.dumps(index)}]"
