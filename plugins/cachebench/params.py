"""The campaign spec as typed UI params: one `Param` per spec field, JSON-schema checked.

The schemas come from the pydantic model, so the trigger form and the YAML
files can never disagree about what a field accepts.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from airflow.sdk import Param

from cachebench.campaign import CampaignSpec


@cache
def _schema() -> dict[str, Any]:
    return CampaignSpec.model_json_schema()


def _defs_for(field: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The $defs a field refers to, directly or through other defs (not all of them:
    every task deep-copies and every DAG checks each Param's schema at parse time)."""
    need: dict[str, Any] = {}
    todo: list[Any] = [field]
    while todo:
        for name in re.findall(r"#/\$defs/([^'\"]+)", str(todo.pop())):
            if name in defs and name not in need:
                need[name] = defs[name]
                todo.append(defs[name])
    return need


def campaign_params(defaults: dict[str, Any]) -> dict[str, Param]:
    """Params for every spec field, defaulting to a campaign file's values."""
    schema = _schema()
    defs = schema.get("$defs", {})
    out: dict[str, Param] = {}
    for name, prop in schema["properties"].items():
        field = {k: v for k, v in prop.items() if k not in ("default", "description")}
        if "$ref" in str(field) and defs:
            field["$defs"] = _defs_for(field, defs)
        default = defaults.get(name, prop.get("default"))
        out[name] = Param(default, description=prop.get("description", ""), **field)
    return out
