"""Campaign reports over HTTP, for the report task's extra link in the Airflow UI.

Mounted on the api-server by plugins/cachebench_plugin.py under PREFIX, so
`<api>/cachebench/reports/<campaign>/<run>/report.html` is a run's report (its
figures and files are relative links beside it).

Airflow does not authenticate a plugin's app: this one does, with the identity the
UI and the REST API use (Airflow's `get_user`: a JWT bearer token, or the UI's
`_token` cookie, so the extra link opens with one click for a signed-in user), and
authorizes it with Airflow's `requires_access_dag` for the DAG that ran the campaign
(campaign.json's dag_id): who may read that DAG may read its reports. No identity:
401; no access: 403.

Only what a reader needs is served (SERVED: report.html/.md, figures, the CSV and
parquet results, decisions.json, the blog snippets, plotly.js for the explorable
charts); deployment folders (Terraform, server and load output), logs and records
never are, whoever asks. A
path that is not on that list, or that passes through a symlink, is refused with
404, as a missing file is: `..`, `%2e%2e` (the server decodes it to `..`), `.`,
empty and absolute parts, NUL bytes and backslashes cannot match SERVED.
"""

import os
import re
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse

from cachebench.workspace import results_root

PREFIX = "/cachebench"

_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"  # a file or folder name: never "", "." or ".."
_REP = rf"points/{_NAME}/rep[0-9]+"
SERVED = re.compile(
    rf"(?P<run>{_NAME}/{_NAME})/(?P<file>"
    r"report\.(?:html|md)|(?:summary|runs)\.csv|decisions\.json|figures/plotly\.min\.js"
    rf"|blog/{_NAME}\.(?:md|png|pdf)"
    rf"|(?:{_REP}/)?figures/{_NAME}\.(?:png|pdf)"
    rf"|{_REP}/metrics\.(?:parquet|csv))"
)


# Reports are per user: no shared cache keeps them; browsers sniff no other type.
HEADERS = {"Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"}


def _not_found() -> HTTPException:
    """The answer to a path that is not served, as to a file that is not there."""
    return HTTPException(status_code=404, detail="Not Found")


def _no_symlink(root: Path, rel: str) -> Path | None:
    """root/rel when no part of it is a symlink (root is resolved), else None."""
    path = root / rel
    return path if os.path.realpath(path) == str(path) else None


def _dag_of(root: Path, run: str) -> str | None:
    """The DAG that ran the campaign run root/run (its campaign.json says); 404 for none."""
    from cachebench.campaign import CampaignPlan

    run_dir = _no_symlink(root, run)
    if run_dir is None:
        raise _not_found()
    try:
        return CampaignPlan.read(run_dir).dag_id
    except (OSError, ValueError):  # no run there, or not one of ours
        raise _not_found() from None


def reports_app() -> FastAPI:
    # Airflow's public helpers for plugin apps; imported here, never at DAG parse time.
    # (No `from __future__ import annotations` here: FastAPI reads the route's annotations,
    # GetUserDep among them, when the route is declared.)
    from airflow.api_fastapi.core_api.security import GetUserDep, get_user, requires_access_dag

    app = FastAPI(
        title="cachebench reports",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # every route, one added later included, needs a signed-in user
        dependencies=[Depends(get_user)],
    )

    @app.get("/reports/{path:path}")
    def report_file(path: str, request: Request, user: GetUserDep) -> FileResponse:
        wanted = SERVED.fullmatch(path)
        if wanted is None:
            raise _not_found()
        root = results_root()
        dag_id = _dag_of(root, wanted["run"])
        if dag_id is None:
            raise HTTPException(status_code=403, detail="No DAG is recorded for this run")
        requires_access_dag("GET", param_dag_id=dag_id)(request, user)  # 403 when not
        file = _no_symlink(root, path)
        if file is None or not file.is_file():
            raise _not_found()
        return FileResponse(file, headers=HEADERS)

    return app
