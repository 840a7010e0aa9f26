"""`python -m cachebench run CAMPAIGN.yaml`: one campaign run through its Airflow DAG, here.

A file in include/campaigns runs its own DAG; any other file runs the ad-hoc
DAG with the file's fields as params, as a UI trigger would. The run goes
through `dag.test()` against a local metadata DB in a child process, whose
output (Airflow's task logs) goes to `airflow.log` in the run's folder (`-v`
streams it instead). This process shows where the run stands (a live view on
a terminal, a short line per change otherwise), and ends with the decision's
headlines and where the report is.

Ctrl-C or SIGTERM stops the campaign: the load under way stops, the runs left
are skipped, every deployment is destroyed and the report, marked
INTERRUPTED, is written; exit status 130. A second Ctrl-C does not skip the
destroy (the child does not get the terminal's signals). Exit status 0 only
when every run has a result; 2 for a campaign refused before anything ran.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from cachebench.campaign import CampaignError, load_campaign_file
from cachebench.history import cli as history_cli

POLL_S = 0.5


def _dag_and_conf(path: Path, fields: dict) -> tuple[str, dict | None]:
    from cachebench.workspace import ROOT

    dag_id = f"cachebench__{fields['name']}"
    if path.resolve().parent == (ROOT / "include" / "campaigns"):
        return dag_id, None
    return "cachebench_adhoc", fields  # the ad-hoc DAG with the file as its params


def _run_id(run_after: datetime) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.types import DagRunType

    return DagRun.generate_run_id(
        run_type=DagRunType.MANUAL, logical_date=run_after, run_after=run_after
    )


class _Stop:
    """First signal: interrupt the campaign run; later ones only say it is under way."""

    def __init__(self, run_dir: Path, say):
        self.run_dir, self.say, self.count = run_dir, say, 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        name = signal.Signals(signum).name
        if self.count > 1:
            self.say("still stopping: every deployment is destroyed before this ends")
            return
        self.say(f"{name}: stopping the campaign (the load under way stops, the runs left are "
                 "skipped, every deployment is destroyed, the report is written)")  # fmt: skip
        from cachebench.steps import interrupt

        interrupt(self.run_dir, f"{name} of python -m cachebench run")


def _follow(child: subprocess.Popen, run_dir: Path, started: float, live: bool) -> None:
    from cachebench import progress

    if live:
        from rich.console import Console
        from rich.live import Live
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        console = Console()

        def view() -> Table:
            p = progress.read(run_dir, started)
            grid = Table.grid(padding=(0, 1))
            if p is None:
                grid.add_row("planning...")
                return grid
            cost = f"   estimate ${p.estimate_usd:.2f}" if p.target == "aws" else ""
            grid.add_row(f"[bold]{p.campaign}[/] ({p.target}){cost}")
            grid.add_row(
                f"deployments {p.provisioned}/{p.deployments} provisioned, {p.destroyed} destroyed"
            )
            bar = ProgressBar(total=max(p.runs, 1), completed=p.done + p.failed, width=40)
            failed = f", {p.failed} failed" if p.failed else ""
            runs = Table.grid(padding=(0, 1))
            runs.add_row(bar, f"runs {p.done}/{p.runs} done{failed}")
            grid.add_row(runs)
            left = progress.clock(p.remaining_s)
            grid.add_row(f"elapsed {progress.clock(p.elapsed_s)}, remaining ~{left}")
            grid.add_row(f"now: {p.now}")
            return grid

        with Live(view(), console=console, refresh_per_second=4, transient=False) as screen:
            while child.poll() is None:
                time.sleep(POLL_S)
                screen.update(view())
        return
    last = ""
    while child.poll() is None:
        time.sleep(POLL_S)
        p = progress.read(run_dir, started)
        line = p.line() if p else "planning..."
        key = line.split("] ", 1)[-1].split(", ~")[0]  # the elapsed time alone is no news
        if key != last:
            print(line, flush=True)
            last = key


def run(path: Path, conf: dict | None = None, verbose: bool = False) -> int:
    try:
        fields = {**load_campaign_file(path), **(conf or {})}
        from cachebench.steps import validate  # the checks of plan, before anything exists

        validate(fields, target_checks=False)
    except CampaignError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    from cachebench.workspace import RunDir

    dag_id, run_conf = _dag_and_conf(path, fields)
    run_after = datetime.now(UTC)
    run_id = _run_id(run_after)
    run = RunDir.for_run(fields["name"], run_id)
    run.path.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "cachebench", "dag-test", dag_id, run_after.isoformat()]
    argv += ["--conf", json.dumps(run_conf)] if run_conf is not None else []
    log = run.path / "airflow.log"
    print(f"campaign {fields['name']}: run {run_id}; Airflow's logs: "
          f"{'this terminal' if verbose else log}", flush=True)  # fmt: skip
    _run_child(argv, run.path, log, verbose)
    state = _state(dag_id, run_id)
    interrupted = run.interruption() is not None
    print(f"\ncampaign {fields['name']}: run {run_id} {'interrupted' if interrupted else state}")
    _print_outcome(run.path, log)
    if interrupted:
        return 130
    return 0 if state == "success" else 1


def _run_child(argv: list[str], run_dir: Path, log: Path, verbose: bool) -> None:
    """Run the dag-test child to its end, following it (or streaming its output with
    verbose); the first SIGINT or SIGTERM interrupts the campaign run."""
    live = sys.stdout.isatty() and not verbose

    def say(text):
        return print(text, file=sys.stderr, flush=True)

    started = time.time()
    with log.open("ab") as out:
        child = subprocess.Popen(
            argv,
            stdout=None if verbose else out,
            stderr=None if verbose else subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the terminal's Ctrl-C is ours to handle, not the DAG's
        )
        stop = _Stop(run_dir, say)
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            if verbose:
                while child.poll() is None:
                    time.sleep(POLL_S)
            else:
                _follow(child, run_dir, started, live)
        finally:
            child.wait()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _print_outcome(run_dir: Path, log: Path) -> None:
    """The decision's headlines and where the report is."""
    from cachebench import progress
    from cachebench.history.since import read_since

    for title, headline in progress.headlines(run_dir):
        print(f"  {title}: {headline}")
    if (since := read_since(run_dir)) is not None:
        print(f"  Since the baseline: {since.headline}")
    for name in ("report.html", "report.md", "summary.csv"):
        if (run_dir / name).exists():
            print(f"  {name:12} {run_dir / name}")
    if not (run_dir / "report.md").exists():
        print(f"  no report was written; see {log}", file=sys.stderr)


def _state(dag_id: str, run_id: str) -> str:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        state = session.scalar(
            select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)
        )
    return str(state) if state is not None else "unknown"


def dag_test(dag_id: str, run_after: str, conf: str | None) -> int:
    """The child: one dag.test() of dag_id at run_after (so the parent knows the run id)."""
    from airflow.dag_processing.dagbag import DagBag

    from cachebench.workspace import ROOT

    when = datetime.fromisoformat(run_after)
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags[dag_id]
    dag_run = dag.test(
        run_after=when, logical_date=when, run_conf=json.loads(conf) if conf else None
    )
    return 0 if str(dag_run.state) == "success" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cachebench")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a campaign file on this machine through its DAG")
    r.add_argument("campaign", type=Path)
    r.add_argument("-v", "--verbose", action="store_true", help="stream Airflow's logs")
    history_cli.add_parser(sub)
    t = sub.add_parser("dag-test", help=argparse.SUPPRESS)
    t.add_argument("dag_id")
    t.add_argument("run_after")
    t.add_argument("--conf")
    args = parser.parse_args(argv)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    if args.command == "dag-test":
        return dag_test(args.dag_id, args.run_after, args.conf)
    if args.command == "history":
        return history_cli.main(args)
    return run(args.campaign, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
