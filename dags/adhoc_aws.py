"""
### Ad-hoc benchmark campaign on AWS (ElastiCache, memtier on ECS)

Trigger from the Airflow UI with params, like `cachebench_adhoc`, but every
deployment is a real ElastiCache replication group and each run's load runs as
ECS tasks (a prefill task, then `load_generators` memtier tasks): this costs
money. `plan` prints the estimate and refuses the run above `budget_usd`.
Account settings (region, VPC, subnets, state bucket, ECS cluster and task
definition) come from the `cachebench_aws` Variable; the `aws` param overrides
them for one run. Every deployment is destroyed whatever fails.
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
