"""docker-compose.yaml and the Dockerfile, checked statically (no Docker engine runs here).

It parses as YAML; every service, volume, network and profile it names exists; every
${VARIABLE} has a default or is in .env.example; depends_on targets exist; the
Dockerfile's COPY sources exist and its base image is Airflow 3.3.2 on Python 3.11.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
}
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?err}; $${NAME} is a literal for the shell
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?+][^}]*)?\}")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> set[str]:
    names = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(line.split("=", 1)[0])
    return names


def test_compose_has_the_official_shape() -> None:
    doc = compose()
    services = doc["services"]
    assert {"postgres", "redis", "airflow-init", *AIRFLOW_SERVICES} <= set(services)
    for name, command in AIRFLOW_SERVICES.items():
        svc = services[name]
        assert svc["command"] == command, name
        env = svc["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == "/opt/airflow/plugins"
        assert "AIRFLOW_CONN_AWS_DEFAULT" in env
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        mounts = {v.rsplit(":", 1)[1] for v in svc["volumes"]}
        assert {"/opt/airflow/dags", "/opt/airflow/plugins", "/opt/airflow/include"} <= mounts
        assert svc.get("build") == "." and "healthcheck" in svc
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_local_engines_profile_starts_valkey_and_redis() -> None:
    services = compose()["services"]
    engines = {n for n, s in services.items() if "local-engines" in s.get("profiles", [])}
    assert engines == {"valkey", "redis-engine"}
    assert services["valkey"]["image"].startswith("valkey/valkey:")
    assert services["redis-engine"]["image"].startswith("redis:")
    # no Airflow component depends on an optional profile's service
    for name, svc in services.items():
        if not svc.get("profiles"):
            assert not set(svc.get("depends_on") or {}) & engines, name


def test_every_named_thing_exists() -> None:
    doc = compose()
    services, volumes = doc["services"], set(doc.get("volumes") or {})
    networks = set(doc.get("networks") or {})
    for name, svc in services.items():
        for target in svc.get("depends_on") or {}:
            assert target in services, f"{name} depends on unknown service {target}"
        for vol in svc.get("volumes", []):
            source = vol.rsplit(":", 1)[0]
            if not source.startswith(("$", ".", "/")):
                assert source in volumes, f"{name}: volume {source} is not declared"
            elif source.startswith("${AIRFLOW_PROJ_DIR:-.}/"):
                rel = source.split("/", 1)[1]
                assert (ROOT / rel).is_dir(), f"{name}: bind mount {rel} does not exist"
        for net in svc.get("networks", []):
            assert net in networks, f"{name}: network {net} is not declared"
        for profile in svc.get("profiles", []):
            assert profile in {"debug", "local-engines"}, f"{name}: unexpected profile {profile}"
    assert {"local-engines"} <= {p for s in services.values() for p in s.get("profiles", [])}


def test_every_variable_has_a_default_or_is_in_env_example() -> None:
    documented = env_example()
    for name, rest in VAR.findall(COMPOSE.read_text()):
        has_default = rest.startswith((":-", "-"))
        assert has_default or name in documented, f"${{{name}}}: no default, not in .env.example"
    # and everything .env.example sets is used by the compose file
    used = {name for name, _ in VAR.findall(COMPOSE.read_text())}
    assert documented <= used, documented - used


def test_dockerfile_copy_sources_exist() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM apache/airflow:3\.3\.2-python3\.11\s*$", text, re.M)
    copies = re.findall(r"^COPY\s+(?:--\S+\s+)*(.+)$", text, re.M)
    assert copies
    for line in copies:
        *sources, _dest = line.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY source {src} does not exist"
    assert "terraform" in text and "memtier_benchmark" in text
    assert "requirements.txt" in text
