"""The trigger form of cachebench_adhoc in a real browser, against the real deployment.

Headless Chromium (Debian's `chromium`, driven by Playwright) logs in to the
api-server of tests/deploy/conftest.py, opens the DAG and clicks Trigger. Every
field must show its default readably (multi-selects of engine versions, topology
presets and node types, a JSON editor of the workloads, never `[object Object]`);
then a workload, an engine and the repetitions (one run) are changed in the form,
the run is triggered from it and must succeed with exactly the changed values; then its
report task's "Campaign report" link, clicked in the same signed-in browser, opens the
report from the api-server (cachebench.serve, which serves no one without a session).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import yaml

from cachebench.workspace import run_slug
from chromium import chromium_context

pytestmark = [pytest.mark.deploy, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
ADHOC = "cachebench_adhoc"
EDITED_WORKLOAD = {
    "name": "form-edit",
    "ratio": "1:4",
    "value_size": 64,
    "key_space": 1000,
    "pipeline": 1,
    "clients": 2,
    "threads": 1,
    "warmup_seconds": 1,
    "duration_seconds": 2,
}


@pytest.fixture
def page(deployment, tmp_path: Path) -> Iterator[Any]:
    with chromium_context(tmp_path / "chromium-profile") as context:
        # the JSON editor's text is read and written through the clipboard, as a user would
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=deployment.url)
        yield context.new_page()


def chips(page, name: str) -> list[str]:
    """What a multi-select shows: the label of each selected option."""
    labels = page.locator(f'#element_{name} [aria-label^="Remove "]')
    return [a.removeprefix("Remove ") for a in labels.evaluate_all(ARIA_LABELS)]


ARIA_LABELS = "els => els.map(e => e.getAttribute('aria-label'))"


def values(page, name: str) -> list[str]:
    """The values the form holds for a field (react-select keeps them in hidden inputs)."""
    return [el.input_value() for el in page.locator(f'[name="element_{name}"]').all()]


def editor_text(page, name: str) -> str:
    page.locator(f"#element_{name} .monaco-editor").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Control+C")
    return page.evaluate("navigator.clipboard.readText()")


def paste_into_editor(page, name: str, text: str) -> None:
    """Replace a JSON editor's text by pasting (typing would add auto-closed brackets)."""
    page.evaluate("t => navigator.clipboard.writeText(t)", text)
    page.locator(f"#element_{name} .monaco-editor").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Control+V")


def remove_chip(page, name: str, label: str) -> None:
    page.locator(f'#element_{name} [aria-label="Remove {label}"]').click()


def add_option(page, name: str, label: str) -> None:
    page.locator(f"#element_{name}").get_by_role("combobox").click()
    page.get_by_role("option", name=label, exact=True).click()


def open_trigger_form(dep, page, dag_id: str) -> Any:
    """Log in, open the DAG, click Trigger; check every param has a readable field."""
    dep.wait_dag(dag_id)
    params = dep.ok("GET", f"/dags/{dag_id}/details")["params"]
    page.goto(f"{dep.url}/dags/{dag_id}")
    page.get_by_label("Username").fill("admin")
    password = json.loads((dep.base / "passwords.json").read_text())["admin"]
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    page.locator("#element_workloads").wait_for(timeout=60_000)
    # the JSON editors (Monaco) are a large bundle of their own, loaded after the form: on
    # a busy machine parsing it once took longer than a click's 30 s (CI at cdcd391)
    page.locator("#element_workloads .monaco-editor").wait_for(timeout=90_000)
    for name in params:
        field = page.locator(f'#element_{name}, [name="element_{name}"]')
        assert field.count() >= 1, f"no form field for {name}"
    inputs = dialog.locator("input, textarea").evaluate_all("els => els.map(e => e.value)")
    assert "[object Object]" not in "\n".join([dialog.inner_text(), *inputs])
    return dialog


def readme_label(topology: dict[str, Any]) -> str:
    """README: `c3r0` is a cluster of 3 shards, 0 replicas; `single`, `single-r1` cluster
    mode off."""
    replicas = topology.get("replicas", 0)
    if topology.get("cluster_mode"):
        return f"c{topology.get('shards', 1)}r{replicas}"
    return f"single-r{replicas}" if replicas else "single"


@pytest.mark.parametrize(
    ("dag_id", "campaign"),
    [
        ("cachebench__redis-vs-valkey-local", "redis-vs-valkey-local"),
        ("cachebench__redis-vs-valkey-aws", "redis-vs-valkey-aws"),
        ("cachebench_adhoc_aws", "redis-vs-valkey-aws"),
    ],
)
def test_the_other_dags_forms_show_their_campaign(deployment, page, dag_id, campaign) -> None:
    fields = yaml.safe_load((ROOT / f"include/campaigns/{campaign}.yaml").read_text())
    if dag_id == "cachebench_adhoc_aws":
        fields["aws"] = None  # dags/adhoc_aws.py: the account comes from the Variable
    open_trigger_form(deployment, page, dag_id)
    engines = [f"{e['engine']} {v}" for e in fields["engines"] for v in e["versions"]]
    assert chips(page, "engines") == engines
    assert values(page, "topologies") == [readme_label(t) for t in fields["topologies"]]
    assert values(page, "node_types") == fields["node_types"]
    assert json.loads(editor_text(page, "workloads")) == fields["workloads"]
    assert json.loads(editor_text(page, "aws")) == (fields.get("aws") or {})  # null shows {}
    assert values(page, "target") == [fields["target"]]


def test_trigger_form_reads_every_field_and_runs_the_edit(deployment, page) -> None:
    dep = deployment
    example = yaml.safe_load((ROOT / "include/campaigns/redis-vs-valkey-local.yaml").read_text())
    dialog = open_trigger_form(dep, page, ADHOC)

    # -- every field shows its default -------------------------------------------------
    assert values(page, "name") == ["adhoc"]
    assert values(page, "description") == [example["description"]]
    assert values(page, "target") == ["local"]
    assert values(page, "schedule") == [""]
    assert chips(page, "engines") == ["redis 7.0", "valkey 9.1"]
    assert values(page, "engines") == ["redis 7.0", "valkey 9.1"]
    assert chips(page, "topologies") == ["single: one node"]
    assert values(page, "topologies") == ["single"]
    assert values(page, "custom_topologies") == [""]
    assert chips(page, "node_types") == [  # include/instance_specs.csv
        "local.t4g.micro: 2 vCPU, 0.5 GiB, 0.064-5 Gbps (miniature of cache.t4g.micro: 0.25 core)",
        "local.t4g.medium: 2 vCPU, 3.09 GiB, 0.256-5 Gbps"
        " (miniature of cache.t4g.medium: 0.25 core)",
    ]
    assert json.loads(editor_text(page, "workloads")) == example["workloads"]
    assert values(page, "load_generators") == ["1"]
    assert values(page, "repetitions") == [str(example["repetitions"])]
    assert values(page, "budget_usd") == ["0"]
    assert values(page, "max_points") == ["8"]
    assert json.loads(editor_text(page, "aws")) == {}

    # -- edit: no Redis, a tiny workload measured once, the topology typed in -----------
    page.locator("#element_name").fill("form-trigger")
    remove_chip(page, "engines", "redis 7.0")
    remove_chip(page, "topologies", "single: one node")
    page.locator("#element_custom_topologies").fill("single")
    add_option(page, "node_types", "local.micro: 1 vCPU, 0.25 GiB")
    for chip in chips(page, "node_types")[:2]:
        remove_chip(page, "node_types", chip)
    paste_into_editor(page, "workloads", json.dumps([EDITED_WORKLOAD], indent=2))
    page.locator('[name="element_repetitions"]').fill("1")
    assert chips(page, "engines") == ["valkey 9.1"]
    assert chips(page, "topologies") == []
    assert values(page, "node_types") == ["local.micro"]
    assert json.loads(editor_text(page, "workloads")) == [EDITED_WORKLOAD]

    before = {r["dag_run_id"] for r in dep.ok("GET", f"/dags/{ADHOC}/dagRuns")["dag_runs"]}
    dialog.get_by_role("button", name="Trigger").click()
    dialog.wait_for(state="hidden", timeout=60_000)

    # -- the run has the edited values and runs them -----------------------------------
    runs = dep.ok("GET", f"/dags/{ADHOC}/dagRuns")["dag_runs"]
    (run,) = [r for r in runs if r["dag_run_id"] not in before]
    conf = run["conf"]
    assert conf["engines"] == ["valkey 9.1"]
    assert conf["topologies"] is None  # an emptied multi-select sends null
    assert conf["custom_topologies"] == ["single"]
    assert conf["node_types"] == ["local.micro"]
    assert conf["workloads"] == [EDITED_WORKLOAD]
    assert conf["repetitions"] == 1
    assert conf["description"] == example["description"]
    state, _ = dep.wait_run(ADHOC, run["dag_run_id"], timeout=400)
    assert state == "success", dep.log_tail("worker")

    results = dep.results / "form-trigger" / run_slug(run["dag_run_id"])
    spec = json.loads((results / "campaign.json").read_text())["spec"]
    assert spec["engines"] == [{"engine": "valkey", "versions": ["9.1"]}]
    assert spec["topologies"] == [{"cluster_mode": False, "shards": 1, "replicas": 0}]
    assert spec["node_types"] == ["local.micro"]
    assert [w["name"] for w in spec["workloads"]] == ["form-edit"]
    assert spec["workloads"][0]["duration_seconds"] == 2
    assert spec["repetitions"] == 1
    with (results / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [
        (r["engine"], r["version"], r["topology"], r["node_type"], r["workload"]) for r in rows
    ] == [("valkey", "9.1", "single", "local.micro", "form-edit")]
    assert float(rows[0]["requests"]) > 0
    assert (int(rows[0]["repetitions"]), int(rows[0]["runs_ok"])) == (1, 1)

    # -- the report task's "Campaign report" link: one click, as the signed-in user --------
    run_path = quote(run["dag_run_id"], safe="")
    page.goto(f"{dep.url}/dags/{ADHOC}/runs/{run_path}/tasks/report/details")
    link = page.get_by_role("link", name="Campaign report")
    with page.expect_response(lambda r: r.url.endswith("/report.html")) as opened:
        link.click(timeout=60_000)
    assert opened.value.status == 200
    served = f"{dep.url}/cachebench/reports/form-trigger/{results.name}/report.html"
    assert opened.value.url == served
    page.wait_for_load_state("load")
    assert page.title() == "Benchmark report: form-trigger"
    # its figures and plotly.js come from the same app, with the same session
    assert page.evaluate("typeof Plotly") == "object"
    widths = page.locator("img").evaluate_all("els => els.map(e => e.naturalWidth)")
    assert all(w > 0 for w in widths), widths
