"""Each campaign Param carries only the $defs it refers to, and still validates."""

from __future__ import annotations

import re
from pathlib import Path

from cachebench.campaign import load_campaign_file
from cachebench.params import campaign_params

EXAMPLE = Path(__file__).resolve().parents[2] / "include/campaigns/redis-vs-valkey-local.yaml"


def test_params_carry_only_referenced_defs_and_resolve() -> None:
    params = campaign_params(load_campaign_file(EXAMPLE))
    for name, param in params.items():
        schema = param.schema
        refs = set(re.findall(r"#/\$defs/([^'\"]+)", str(schema)))
        assert set(schema.get("$defs", {})) == refs, name
        param.resolve(suppress_exception=False)  # the example passes every schema
    assert set(params["workloads"].schema["$defs"]) == {"Workload"}
