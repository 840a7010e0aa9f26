"""The campaign Params: each reads as what it is in Airflow's trigger form, carries only
the defs it refers to, is a JSON Schema draft 7 that checks values as draft 2020-12 would,
and its defaults mean the campaign file they come from."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field, TypeAdapter

from cachebench.campaign import CampaignSpec, load_campaign_file
from cachebench.models import Workload
from cachebench.params import DEFS, DRAFT, WORKLOAD_EXAMPLE, _widget, campaign_params

ROOT = Path(__file__).resolve().parents[2]
CAMPAIGNS = sorted((ROOT / "include/campaigns").glob("*.yaml"))
EXAMPLE = ROOT / "include/campaigns/redis-vs-valkey-local.yaml"


def airflow_widget(schema: dict[str, Any], value: Any) -> str:
    """The widget Airflow 3.3.2's trigger form renders for a param, in its order of checks
    (FieldSelector.tsx of airflow-core/src/airflow/ui, as compiled in airflow/ui/dist).
    tests/deploy/test_trigger_form.py checks the real form in Chromium."""
    t = schema.get("type")
    several = isinstance(t, list) and len([x for x in t if x != "null"]) > 1
    if several and "enum" not in schema and "examples" not in schema:
        return "json or text"
    if t:
        kind = next((x for x in t if x != "null"), "string") if isinstance(t, list) else t
    else:
        kind = "array" if isinstance(value, list) else "null" if value is None else "other"
    items = (schema.get("items") or {}).get("type")
    if kind == "boolean":
        return "switch"
    if kind in ("null", "string", "number", "integer") and isinstance(schema.get("enum"), list):
        return "dropdown"
    if kind == "array" and isinstance(schema.get("examples") or schema.get("enum"), list):
        return "multi-select"
    if kind == "array" and items in (None, "string"):
        return "lines"  # a text area, one item a line: an object shows as [object Object]
    if kind in ("array", "object"):
        return "json"
    if kind in ("integer", "number"):
        return "number"
    return "text"


WIDGETS = {
    "name": "text",
    "description": "text",
    "target": "dropdown",
    "schedule": "text",
    "engines": "multi-select",
    "topologies": "multi-select",
    "custom_topologies": "lines",
    "node_types": "multi-select",
    "workloads": "json",
    "load_generators": "number",
    "budget_usd": "number",
    "max_points": "number",
    "aws": "json",
}


def catalogue(target: str) -> list[str]:
    with (ROOT / "include/instance_specs.csv").open() as fh:
        return [row["node_type"] for row in csv.DictReader(fh) if row["target"] == target]


@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.stem)
def test_every_field_gets_a_widget_that_shows_its_value(path: Path) -> None:
    params = campaign_params(load_campaign_file(path))
    assert set(WIDGETS) <= set(params)
    for name, param in params.items():
        widget = airflow_widget(param.schema, param.value)
        if name in WIDGETS:
            assert widget == WIDGETS[name], name
        if widget in ("lines", "multi-select"):
            assert all(isinstance(v, str) for v in param.value or []), (name, param.value)
        if widget == "multi-select":  # every default is one of the options
            assert set(param.value) <= set(param.schema["examples"]), name
        if widget == "text":
            assert param.value is None or isinstance(param.value, str), name


def test_multi_select_options_are_what_the_target_offers() -> None:
    local = campaign_params(load_campaign_file(EXAMPLE))
    # README: local engine versions are Redis 7.0, Valkey 8.1 and Valkey 9.1
    assert local["engines"].schema["examples"] == ["redis 7.0", "valkey 8.1", "valkey 9.1"]
    assert local["node_types"].schema["examples"] == catalogue("local")
    assert {"single", "single-r1", "c3r0", "c3r1"} <= set(local["topologies"].schema["examples"])
    aws = campaign_params(load_campaign_file(ROOT / "include/campaigns/redis-vs-valkey-aws.yaml"))
    assert aws["node_types"].schema["examples"] == catalogue("aws")
    valkey = [v for v in aws["engines"].schema["examples"] if v.startswith("valkey")]
    assert valkey == ["valkey 7.2", "valkey 8.0", "valkey 8.1", "valkey 8.2"]  # ElastiCache's
    shown = local["topologies"].schema["values_display"]
    assert shown["c3r1"] == "c3r1: cluster, 3 shards, primary + 1 replica each (6 nodes)"
    assert local["node_types"].schema["values_display"]["local.small"].startswith("local.small:")


@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.stem)
def test_every_option_is_accepted(path: Path) -> None:
    fields = load_campaign_file(path)
    params = campaign_params(fields)
    for name in ("engines", "topologies", "node_types"):
        for option in params[name].schema["examples"]:
            params[name].resolve([option])
            spec = CampaignSpec.from_input({**fields, name: [option], "budget_usd": 10_000})
            assert spec.point_count >= 1


@pytest.mark.parametrize("path", CAMPAIGNS, ids=lambda p: p.stem)
def test_the_forms_defaults_are_the_campaign_file(path: Path) -> None:
    fields = load_campaign_file(path)
    params = campaign_params(fields)
    form = {name: p.resolve(suppress_exception=False) for name, p in params.items()}
    assert CampaignSpec.from_input(form) == CampaignSpec.from_input(fields)


def test_form_values_are_compact() -> None:
    params = campaign_params(load_campaign_file(EXAMPLE))
    # include/campaigns/redis-vs-valkey-local.yaml: redis 7.0 and valkey 9.1, single node
    assert params["engines"].value == ["redis 7.0", "valkey 9.1"]
    assert params["topologies"].value == ["single"]
    assert params["custom_topologies"].value == []
    # emptied in the form (null), or one label a line with a trailing blank one
    params["topologies"].resolve(None)
    params["custom_topologies"].resolve(None)
    params["custom_topologies"].resolve(["c4r1", " single-r3", ""])


def test_workloads_help_lists_the_fields_and_a_valid_example() -> None:
    md = campaign_params(load_campaign_file(EXAMPLE))["workloads"].schema["description_md"]
    for name in Workload.model_fields:
        assert re.search(rf"\b{name}\b", md), name
    assert "needs **name**;" in md and 'ratio "1:10"' in md and "rate_limit null" in md
    assert TypeAdapter(list[Workload]).validate_python(WORKLOAD_EXAMPLE)
    assert json.dumps(WORKLOAD_EXAMPLE) in md


class _Inner(BaseModel):
    x: int = 1


@pytest.mark.parametrize(
    ("annotation", "widget", "null_ok"),
    [
        (int, "number", False),
        (int | None, "number", True),
        (float, "number", False),
        (bool, "switch", False),
        (str | None, "text", True),
        (Literal["a", "b"] | None, "dropdown", True),
        (list[_Inner], "json", False),
        (_Inner | None, "json", True),
    ],
)
def test_new_fields_get_their_widget_from_the_schema(annotation, widget, null_ok) -> None:
    """A field the spec gains renders without code for it (scalars, optionals, objects)."""
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    class Spec(BaseModel):
        field: annotation = Field(description="a new field")  # type: ignore[valid-type]

    schema = Spec.model_json_schema()
    field = _widget(schema["properties"]["field"], schema.get("$defs", {}))
    if "$ref" in str(field):
        field["$defs"] = schema["$defs"]
    assert airflow_widget(field, None) == widget
    param = Param(None, **field)
    if null_ok:
        assert param.resolve() is None
    else:
        with pytest.raises(ParamValidationError):
            param.resolve()


def test_params_carry_only_referenced_defs_and_resolve() -> None:
    params = campaign_params(load_campaign_file(EXAMPLE))
    for name, param in params.items():
        schema = param.schema
        refs = set(re.findall(rf"#/{DEFS}/([^'\"]+)", str(schema)))
        assert set(schema.get(DEFS, {})) == refs, name
        param.resolve(suppress_exception=False)  # the example passes every schema
    assert set(params["workloads"].schema[DEFS]) == {"Workload"}


# What draft 2020-12 has and draft 7 does not (draft 7 would ignore them, unchecked).
NEWER = ("$defs", "prefixItems", "$dynamicRef", "$dynamicAnchor", "$anchor", "dependentSchemas",
         "dependentRequired", "unevaluatedProperties", "unevaluatedItems", "minContains",
         "maxContains", "contentSchema", "$recursiveRef")  # fmt: skip


def _as_2020_12(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema as draft 2020-12 writes it: defs under $defs, no $schema."""
    text = json.dumps({k: v for k, v in schema.items() if k != "$schema"})
    return json.loads(text.replace(f'"{DEFS}"', '"$defs"').replace(f"#/{DEFS}/", "#/$defs/"))


def test_params_are_draft_7_and_check_values_as_draft_2020_12_does() -> None:
    """Draft 7, declared: Airflow checks each Param's schema against its draft's metaschema
    every time it resolves it, and draft 7's check is the cheap one (params.DRAFT). Every
    schema is a valid draft 7 one without a keyword only later drafts know, and on the
    defaults and on values of every JSON type (right and wrong) it says what the same
    schema as draft 2020-12 (pydantic's) says."""
    workload = {"name": "w", "ratio": "1:4", "warmup_seconds": 1, "duration_seconds": 2}
    values = [None, 0, -1, 1, 3, 100, 2.5, True, "", "x", "redis 7.0", "allkeys-lru", [],
              ["x"], [1], ["redis 7.0"], ["single", "c3r1"], ["local.micro"],
              [{"engine": "redis", "versions": ["7.0"]}], [{}], [workload],
              [{**workload, "ratio": "nope"}], [{**workload, "extra": 1}], {}, {"x": 1},
              {"region": "us-east-1"}, {"median_of_last": 3}]  # fmt: skip
    params = campaign_params(load_campaign_file(EXAMPLE))
    for name, param in params.items():
        schema = param.schema
        assert schema["$schema"] == DRAFT, name
        assert jsonschema.validators.validator_for(schema) is jsonschema.Draft7Validator, name
        jsonschema.Draft7Validator.check_schema(schema)
        assert not [k for k in NEWER if f'"{k}"' in json.dumps(schema)], name
        newer = jsonschema.Draft202012Validator(_as_2020_12(schema))
        draft7 = jsonschema.Draft7Validator(schema)
        for value in [param.value, *values]:
            assert draft7.is_valid(value) == newer.is_valid(value), (name, value)
