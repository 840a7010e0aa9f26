"""
### Ad-hoc benchmark campaign on AWS (ElastiCache, memtier on ECS)

Trigger from the Airflow UI with params, like `cachebench_adhoc`, but every
point is a real ElastiCache replication group and its load runs as ECS tasks:
this costs money. `plan` prints the estimate and refuses the run above
`budget_usd`. Account settings (region, VPC, subnets, state bucket, ECS
cluster and task definition) come from the `cachebench_aws` Variable; the
`aws` param overrides them for one run. Each point has one load task per
generator (`load_g0`, `load_g1`, ...): a run may use fewer, not more.
Every point is destroyed whatever fails.
"""

from __future__ import annotations

from pathlib import Path

from cachebench.campaign import load_campaign_file
from cachebench.dag_factory import build_dag

EXAMPLE = Path(__file__).resolve().parents[1] / "include" / "campaigns" / "redis-vs-valkey-aws.yaml"

# airflow: the example campaign's matrix, the account from the Variable.
dag = build_dag(
    "cachebench_adhoc_aws",
    {**load_campaign_file(EXAMPLE), "name": "adhoc-aws", "schedule": None, "aws": None},
    doc_md=__doc__,
    tags=["adhoc"],
)
