"""
### Ad-hoc benchmark campaign

Trigger from the Airflow UI with params: every field of a campaign file is a typed
param (engines and versions, topologies, node types, workloads, load
generators, budget). The defaults are the example local campaign: Redis vs
Valkey, single node vs cluster, a short mixed load. Invalid params are refused
before anything is provisioned; every point is destroyed whatever fails.
"""

from __future__ import annotations

from pathlib import Path

from cachebench.campaign import load_campaign_file
from cachebench.dag_factory import build_dag

EXAMPLE = (
    Path(__file__).resolve().parents[1] / "include" / "campaigns" / "redis-vs-valkey-local.yaml"
)

dag = build_dag(
    "cachebench_adhoc",
    {**load_campaign_file(EXAMPLE), "name": "adhoc", "schedule": None},
    doc_md=__doc__,
    tags=["adhoc"],
)
