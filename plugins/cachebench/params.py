"""The campaign spec as typed UI params: one `Param` per spec field, JSON-schema checked.

The schemas come from the pydantic model, so the trigger form and the YAML
files can never disagree about what a field accepts.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.sdk import Param

from cachebench.campaign import CampaignSpec


@cache
def _schema() -> dict[str, Any]:
    return CampaignSpec.model_json_schema()


def campaign_params(defaults: dict[str, Any]) -> dict[str, Param]:
    """Params for every spec field, defaulting to a campaign file's values."""
    schema = _schema()
    defs = schema.get("$defs", {})
    out: dict[str, Param] = {}
    for name, prop in schema["properties"].items():
        field = {k: v for k, v in prop.items() if k not in ("default", "description")}
        if "$ref" in str(field) and defs:
            field["$defs"] = defs
        default = defaults.get(name, prop.get("default"))
        out[name] = Param(default, description=prop.get("description", ""), **field)
    return out
