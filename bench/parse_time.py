"""Figure 4, DAG parse time: 50 campaign files vs an empty DAG file.

A temp tree holds a verbatim copy of dags/campaigns.py in <tmp>/dags and 50
generated campaign files in <tmp>/include/campaigns (campaigns.py reads
parents[1]/include/campaigns, so the copy reads the temp files; nothing is
written into the repo). Each measurement is a fresh interpreter that imports
Airflow first, then times `DagBag(dag_folder=...)`, as tests/dags does. A/B
alternate with an empty DAG file (one DAG, no tasks); medians.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from common import ROOT, Row, median, scaled

CAMPAIGNS = scaled(50, 5)
PAIRS = scaled(5, 1)
EMPTY_DAG = '''"""An empty DAG: the floor of parsing one DAG file."""

from airflow.sdk import DAG

with DAG(dag_id="empty", schedule=None, doc_md=__doc__, tags=["bench"]) as dag:
    pass
'''
PROBE = (
    "import sys, time, json; import airflow.sdk;"
    "from airflow.dag_processing.dagbag import DagBag; t = time.perf_counter();"
    "b = DagBag(dag_folder=sys.argv[1]);"
    "print(json.dumps([time.perf_counter() - t, len(b.dags), len(b.import_errors),"
    " [s.duration.total_seconds() for s in b.dagbag_stats]]))"
)


def make_tree(tmp: Path) -> tuple[Path, Path]:
    dags = tmp / "dags"
    camp = tmp / "include" / "campaigns"
    dags.mkdir(parents=True)
    camp.mkdir(parents=True)
    shutil.copy2(ROOT / "dags" / "campaigns.py", dags / "campaigns.py")
    base = yaml.safe_load((ROOT / "include/campaigns/redis-vs-valkey-local.yaml").read_text())
    for i in range(CAMPAIGNS):
        c = copy.deepcopy(base)
        c["name"] = f"bench-campaign-{i:02d}"
        c["workloads"][0]["value_size"] = 64 * (1 + i % 8)
        c["workloads"][0]["name"] = f"w{i:02d}"
        if i % 5 == 0:
            c["schedule"] = "0 3 * * 1"
        (camp / f"bench-campaign-{i:02d}.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
    empty = tmp / "empty"
    empty.mkdir()
    (empty / "empty_dag.py").write_text(EMPTY_DAG)
    return dags, empty


def _parse(folder: Path) -> tuple[float, int, int, float]:
    import json

    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    out = (
        subprocess.run(
            [sys.executable, "-c", PROBE, str(folder)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=folder,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    wall, dags, errors, stats = json.loads(out)
    return wall, dags, errors, sum(stats)


def measure(pairs: int = PAIRS) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="cb-parse-") as tmp:
        dags, empty = make_tree(Path(tmp))
        full, floor, counts = [], [], set()
        for i in range(pairs):
            for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
                wall, n, errors, _ = _parse(dags if which == "A" else empty)
                if errors:
                    raise RuntimeError(f"import errors parsing {which}")
                (full if which == "A" else floor).append(wall)
                if which == "A":
                    counts.add(n)
                print(f"  parse {which} pair {i}: {wall:.3f}s ({n} DAGs)", flush=True)
    (n_dags,) = counts
    per_dag = median(full) / n_dags
    note = f"{n_dags} DAGs from {CAMPAIGNS} files; fresh interpreter each, {pairs} A/B pairs"
    return [
        Row("4 parse", f"DagBag of {n_dags} campaign DAGs", median(full), median(floor), "s",
            "< 3 s", median(full) < 3.0 and n_dags == CAMPAIGNS, note, full + floor),
        Row("4 parse", "per campaign DAG vs empty DAG file", per_dag, median(floor), "s",
            "< 0.1 s", per_dag < 0.1, "per DAG = DagBag time / DAGs"),
    ]  # fmt: skip
