"""The results folder over HTTP, read-only, for the report's extra link in the Airflow UI.

Mounted on the api-server by plugins/cachebench_plugin.py under PREFIX, so
`<api>/cachebench/reports/<campaign>/<run>/report.html` is a run's report
(its figures and files are relative links and resolve beside it). Only files
under the results folder are served; a path that leaves it is refused.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cachebench.workspace import results_root

PREFIX = "/cachebench"


def reports_app() -> FastAPI:
    app = FastAPI(title="cachebench reports", docs_url=None, redoc_url=None, openapi_url=None)
    root = results_root()
    root.mkdir(parents=True, exist_ok=True)
    app.mount("/reports", StaticFiles(directory=root, html=True, check_dir=False), name="reports")
    return app
