"""cachebench's Airflow plugin: the served reports and the report task's extra link.

The cachebench package itself is not a plugin (plugins/.airflowignore); this
module is, so the api-server mounts the results folder (cachebench.serve) and
every component knows the "Campaign report" link of the report task.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from cachebench.operators.report import ReportLink
from cachebench.serve import PREFIX, reports_app


class CachebenchPlugin(AirflowPlugin):
    name = "cachebench"
    operator_extra_links = [ReportLink()]
    fastapi_apps = [{"app": reports_app(), "url_prefix": PREFIX, "name": "cachebench reports"}]
