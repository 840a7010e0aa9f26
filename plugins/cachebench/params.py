"""The campaign spec as the UI trigger form: one `Param` per spec field, JSON-schema checked.

The schemas come from the pydantic model, so the form and the YAML files can never
disagree about what a field accepts. Airflow's form picks each widget from the
schema (type, enum, examples, items.type): scalars and optional fields get theirs
from the schema as pydantic writes it (optional ones typed [T, "null"]), lists of
objects a JSON editor (items.type "object"). The sweep axes are multi-selects of
what the DAG's target offers, with their defaults in the compact form the selects
show ("redis 7.0", "c3r1"); CampaignSpec accepts both forms.
"""

from __future__ import annotations

import contextlib
import json
import re
from functools import cache
from typing import Any, get_args

from airflow.sdk import Param

from cachebench import engines
from cachebench.campaign import (
    CampaignSpec,
    EngineSweep,
    engine_labels,
    topology_from_label,
)
from cachebench.catalogue import InstanceSpec, SpecsError, load_instance_specs
from cachebench.history import baseline
from cachebench.models import Engine, Target, Topology

# Each Param's schema declares JSON Schema draft 7. Airflow checks a Param's schema
# against its draft's metaschema every time it resolves the Param (jsonschema.validate:
# each task start, each DAG serialization), and draft 2020-12's metaschema, the default,
# costs about 15 times more to check (20 ms against 1.3 ms for these params): in an end-
# to-end campaign it was a quarter of the process's CPU. The fields use nothing draft 7
# lacks (tests/unit/test_params_defs.py), their defs under draft 7's `definitions`.
DRAFT = "http://json-schema.org/draft-07/schema#"
DEFS = "definitions"
TOPOLOGY_PRESETS = ("single", "single-r1", "single-r2", "c3r0", "c3r1", "c3r2", "c6r0", "c6r1")
# Shown under the workloads editor: a minimal valid workload (tests/unit/test_params_defs.py).
WORKLOAD_EXAMPLE = [{"name": "quick", "ratio": "1:4", "warmup_seconds": 1, "duration_seconds": 10}]

HELP = {
    "engines": "Engine versions to compare (those the {target} target offers).",
    "topologies": "Topology presets: single = cluster mode off (one primary, -rN: N replicas); "
    "cSrR = cluster mode on, S shards of 1 primary + R replicas.",
    "custom_topologies": "Other topologies, one label a line (e.g. c4r1 or single-r3): "
    "added to the presets chosen above.",
    "node_types": "Node types of the {target} target (include/instance_specs.csv).",
}


def _defs_for(field: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The defs a field refers to, directly or through other defs (not all of them:
    every task deep-copies and every DAG checks each Param's schema at parse time)."""
    need: dict[str, Any] = {}
    todo: list[Any] = [field]
    while todo:
        for name in re.findall(rf"#/{DEFS}/([^'\"]+)", str(todo.pop())):
            if name in defs and name not in need:
                need[name] = defs[name]
                todo.append(defs[name])
    return need


def _types(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    """The JSON types a schema admits, through $ref and anyOf (empty when unknown)."""
    if "type" in schema:
        t = schema["type"]
        return list(t) if isinstance(t, list) else [t]
    if "$ref" in schema:
        return _types(defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), defs)
    out: list[str] = []
    for branch in schema.get("anyOf", []):
        out += [t for t in _types(branch, defs) if t not in out]
    return out


def _widget(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The field's schema, typed at its top level (and its items') as the form reads it."""
    field = {k: v for k, v in prop.items() if k not in ("default", "description", "title")}
    branches = field.get("anyOf", [])
    others = [b for b in branches if b.get("type") != "null"]
    if len(others) < len(branches) and len(others) == 1 and isinstance(others[0].get("type"), str):
        # X | None: X's keywords at the top, so a Literal becomes a dropdown, a list its widget
        field = {k: v for k, v in field.items() if k != "anyOf"} | others[0]
        field["type"] = [others[0]["type"], "null"]
        if "enum" in field:
            field["enum"] = [*field["enum"], None]
    elif "type" not in field and (types := _types(field, defs)):
        field["type"] = types if len(types) > 1 else types[0]
    items = field.get("items")
    if isinstance(items, dict) and "type" not in items and (types := _types(items, defs)):
        field["items"] = {**items, "type": types if len(types) > 1 else types[0]}
    return field


def _describe_items(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """Markdown: an object list's required item fields, and the others' defaults."""
    ref = prop.get("items", {}).get("$ref", "")
    fields = defs.get(ref.rsplit("/", 1)[-1], {})
    required = fields.get("required", [])
    need = ", ".join(f"**{k}**" for k in required)
    rest = ", ".join(
        f"{k} {json.dumps(sub.get('default'))}"
        for k, sub in fields.get("properties", {}).items()
        if k not in required
    )
    return f"Each item needs {need}; the others default to: {rest}."


def _compact(value: Any, to_labels: Any) -> Any:
    """A default in the multi-select's compact form; anything invalid is left for plan."""
    if not isinstance(value, list):
        return value
    out: list[Any] = []
    for item in value:
        try:
            out += to_labels(item)
        except (ValueError, TypeError):
            out.append(item)
    return out


def _engine_items(item: Any) -> list[str]:
    return [" ".join(item.split())] if isinstance(item, str) else engine_labels(EngineSweep(**item))


def _topology_items(item: Any) -> list[str]:
    topo = topology_from_label(item) if isinstance(item, str) else Topology(**item)
    return [topo.label]


@cache
def _topology_display(label: str) -> str:
    t = topology_from_label(label)
    replicas = f"{t.replicas} replica{'s' * (t.replicas > 1)}" if t.replicas else ""
    if not t.cluster_mode:
        return f"{label}: one node" if not t.replicas else f"{label}: primary + {replicas}"
    each = f"primary + {replicas} each" if t.replicas else "no replicas"
    return f"{label}: cluster, {t.shards} shards, {each} ({t.nodes} nodes)"


def _node_type_display(spec: InstanceSpec) -> str:
    text = f"{spec.node_type}: {spec.vcpu} vCPU, {spec.memory_gib:g} GiB"
    base, burst = spec.network_baseline_gbps, spec.network_burst_gbps
    if base:
        text += f", {base:g}-{burst:g} Gbps" if burst and burst != base else f", {base:g} Gbps"
    if spec.miniature:
        text += f" (miniature of {spec.mimics}: {spec.cpu_limit_cores:g} core)"
    return text  # no price: it depends on the engine and the region (see pricing.py)


def _options(values: list[str], defaults: Any) -> list[str]:
    """The choices, plus any default the list lacks (so a selected value stays removable)."""
    extra = [d for d in defaults if isinstance(d, str) and d not in values]
    return [*values, *extra] if isinstance(defaults, list) else values


def _axis(name: str, default: Any, target: str) -> tuple[Any, dict[str, Any]]:
    """A sweep axis as a multi-select (or the custom topologies' text area)."""
    if name == "engines":
        default = _compact(default, _engine_items)
        offered = [f"{e} {v}" for e in get_args(Engine) for v in engines.versions_for(target, e)]
        return default, {"examples": _options(offered, default)}
    if name == "topologies":
        default = _compact(default, _topology_items)
        options = _options(list(TOPOLOGY_PRESETS), default)
        shown = {}
        for label in options:
            with contextlib.suppress(ValueError):  # an invalid default: plan names it
                shown[label] = _topology_display(label)
        # null: every preset removed, the custom field may still hold some
        return default, {"type": ["array", "null"], "examples": options, "values_display": shown}
    if name == "custom_topologies":
        return default, {"type": ["array", "null"]}
    if name == "baseline" and isinstance(default, dict):  # the text field's form of it
        with contextlib.suppress(ValueError):
            default = baseline.text(baseline.MedianOfLast(**default))
        return default, {}
    if name == "node_types":
        try:
            catalogue = {nt: s for (t, nt), s in load_instance_specs().items() if t == target}
        except (SpecsError, OSError):
            catalogue = {}  # plan reports the broken catalogue with its line
        shown = {nt: _node_type_display(s) for nt, s in catalogue.items()}
        return default, {"examples": _options(list(catalogue), default), "values_display": shown}
    return default, {}


@cache
def _fields() -> dict[str, tuple[dict[str, Any], str | None, Any]]:
    """Each spec field's form schema, help text and default: the same for every DAG."""
    schema = CampaignSpec.model_json_schema(ref_template=f"#/{DEFS}/{{model}}")
    defs = schema.get("$defs", {})  # where pydantic keeps them, whatever the refs say
    out = {}
    for name, prop in schema["properties"].items():
        # baseline: a text field ('previous', a run id, 'median_of_last: N'), the spec
        # parses it
        field = _widget(prop, defs) if name != "baseline" else {"type": "string"}
        field = {"$schema": DRAFT, **field}
        if "$ref" in str(field) and defs:
            field[DEFS] = _defs_for(field, defs)
        description: str | None = HELP.get(name, prop.get("description", ""))
        if field.get("items", {}).get("type") == "object":
            # a JSON editor: say what an item holds (markdown is shown only without description)
            md = f"{description}\n\n{_describe_items(prop, defs)}".strip()
            if name == "workloads":
                md += f"\n\nThe smallest, for example: `{json.dumps(WORKLOAD_EXAMPLE)}`"
            field["description_md"] = md
            description = None
        out[name] = (field, description, prop.get("default"))
    return out


def campaign_params(defaults: dict[str, Any]) -> dict[str, Param]:
    """Params for every spec field, defaulting to a campaign file's values."""
    target = defaults.get("target")
    target = target if target in get_args(Target) else "local"
    out: dict[str, Param] = {}
    for name, (field, description, default) in _fields().items():
        value, extra = _axis(name, defaults.get(name, default), target)
        if description:
            description = description.format(target=target)
        out[name] = Param(value, description=description, **(field | extra))
    return out
