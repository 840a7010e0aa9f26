"""The campaign report as a task: an Airflow Asset for downstream DAGs, a link to the report.

`ReportOperator` runs `steps.report` (summary, runs, figures, report.md/html) and
then updates the DAG's report Asset (`report_asset`), with where the report is
in the event's extra, so a DAG scheduled on that asset runs after each
campaign run. Its "Campaign report" extra link opens the run's report.html as
the api-server serves it (cachebench.serve, mounted by plugins/cachebench_plugin.py).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Asset, BaseOperator, BaseOperatorLink, Context


def report_asset(dag_id: str) -> Asset:
    """The Asset a campaign DAG's report task updates after each run."""
    return Asset(name=f"{dag_id}.report")  # a name alone: no URI scheme to look up at parse


class ReportLink(BaseOperatorLink):
    name = "Campaign report"

    def get_link(self, operator: BaseOperator, *, ti_key: Any) -> str:
        from cachebench.serve import PREFIX  # fastapi: not at DAG parse time

        path = getattr(operator, "report_path", None)
        return f"{base_url()}{PREFIX}/reports/{path}" if path else ""


def base_url() -> str:
    """The api-server's own base URL ([api] base_url), so the link also works behind a path."""
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="").rstrip("/")


class ReportOperator(BaseOperator):
    operator_extra_links = (ReportLink(),)

    def __init__(self, *, campaign: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.campaign = campaign
        self.report_path: str | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        from cachebench import steps
        from cachebench.serve import PREFIX
        from cachebench.workspace import RunDir, results_root

        name = context["params"].get("name", self.campaign)
        run = RunDir.for_run(name, context["run_id"])
        # the link and the asset say where the report is, whether or not the run failed
        self.report_path = (run.path / "report.html").relative_to(results_root()).as_posix()
        for asset in self.outlets:
            context["outlet_events"][asset].extra = {
                "campaign": name,
                "run_dir": str(run.path),
                "report_html": str(run.path / "report.html"),
                "summary_csv": str(run.path / "summary.csv"),
                "runs_csv": str(run.path / "runs.csv"),
            }
        html = run.path / "report.html"
        link = f"{base_url()}{PREFIX}/reports/{self.report_path}" if base_url() else str(html)
        return steps.report(name, context["run_id"], link=link, context=context)
