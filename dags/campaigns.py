"""
### Benchmark campaigns from `include/campaigns/*.yaml`

One Airflow DAG per campaign file, `cachebench__<name>`. Each run sweeps the file's
matrix (engine x version x topology x node type x workload): every point is
provisioned with Terraform, loaded, watched, collected, exported and always
destroyed; the report compares the points and says which choice wins.
Trigger with different params to override the file's values for one run.
"""

from __future__ import annotations

from pathlib import Path

from cachebench.campaign import load_campaign_file
from cachebench.dag_factory import build_dag

CAMPAIGNS = Path(__file__).resolve().parents[1] / "include" / "campaigns"

for path in sorted(CAMPAIGNS.glob("*.yaml")):
    fields = load_campaign_file(path)
    dag_id = f"cachebench__{fields.get('name', path.stem)}"
    globals()[dag_id] = build_dag(dag_id, fields, doc_md=__doc__, tags=["campaign"])
