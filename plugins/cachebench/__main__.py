"""`python -m cachebench run CAMPAIGN.yaml`: one campaign run through its Airflow DAG, here.

A file in include/campaigns runs its own DAG; any other file runs the ad-hoc
DAG with the file's fields as params, as a UI trigger would. Either way the
run goes through `dag.test()` against a local metadata DB, and the command
prints where the report is. Exit status 0 only when every point has a result.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from cachebench.campaign import CampaignError, load_campaign_file


def run(path: Path, conf: dict | None = None) -> int:
    try:
        fields = load_campaign_file(path)
        from cachebench.steps import validate  # the checks of plan, before anything exists

        validate({**fields, **(conf or {})}, target_checks=False)
    except CampaignError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from airflow.dag_processing.dagbag import DagBag

    from cachebench.workspace import ROOT, RunDir

    dags = DagBag(dag_folder=str(ROOT / "dags")).dags
    dag_id = f"cachebench__{fields['name']}"
    if path.resolve().parent == (ROOT / "include" / "campaigns") and dag_id in dags:
        dag_run = dags[dag_id].test(run_conf=conf or None)
    else:  # a file outside include/campaigns: the ad-hoc DAG with the file as its params
        dag_run = dags["cachebench_adhoc"].test(run_conf={**fields, **(conf or {})})
    run = RunDir.for_run(fields["name"], dag_run.run_id)
    state = str(dag_run.state)
    print(f"\ncampaign {fields['name']}: run {dag_run.run_id} {state}")
    for name in ("report.html", "report.md", "summary.csv"):
        if (run.path / name).exists():
            print(f"  {name:12} {run.path / name}")
    if not (run.path / "report.md").exists():
        print(f"  no report was written; see {run.path}", file=sys.stderr)
    return 0 if state == "success" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cachebench")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a campaign file on this machine through its DAG")
    r.add_argument("campaign", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return run(args.campaign)


if __name__ == "__main__":
    sys.exit(main())
