"""Hostile input: property-based tests over campaign specs and the DAG's UI params.

Every invalid input must be refused with a CampaignError (or, for the trigger
form, a ParamValidationError) whose text names the offending field; nothing
may be provisioned (the results folder stays empty); the user sees the
problems, not a traceback.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachebench import catalogue as node_catalogue
from cachebench import steps
from cachebench.campaign import CampaignError, CampaignSpec

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

VALID = {
    "name": "hostile",
    "target": "local",
    "engines": [{"engine": "redis", "versions": ["7.0"]}],
    "topologies": [{"cluster_mode": False}],
    "node_types": ["local.micro"],
    "workloads": [
        {
            "name": "w",
            "ratio": "1:4",
            "value_size": 64,
            "key_space": 1000,
            "key_pattern": "R:R",
            "pipeline": 1,
            "clients": 2,
            "threads": 1,
            "warmup_seconds": 1,
            "duration_seconds": 2,
        }
    ],
    "load_generators": 1,
    "budget_usd": 0,
    "max_points": 4,
}

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
not_int = junk.filter(lambda v: not isinstance(v, int) and not _intlike(v))
bad_text = st.text(max_size=60)


def _intlike(v) -> bool:
    """Values pydantic's lax mode turns into an int (2.0, "3")."""
    try:
        return isinstance(v, float | str) and float(v) == int(float(v))
    except (ValueError, OverflowError):
        return False


# A topology label (README: single, single-r1, c3r0), written here apart from the code.
TOPOLOGY_LABEL = re.compile(r"^\s*(single(-r[0-9]+)?|c[0-9]+r[0-9]+)\s*$")
LOCAL_ENGINES = (["redis", "7.0"], ["valkey", "8.1"], ["valkey", "9.1"])
not_a_label = bad_text.filter(lambda s: s.strip() and not TOPOLOGY_LABEL.match(s))
# labels of topologies the local target refuses: more than 12 nodes, or more than 5 replicas
too_big = st.builds("c{}r0".format, st.integers(13, 999)) | st.builds(
    "single-r{}".format, st.integers(6, 999)
)


def _non_slug(s: str) -> bool:
    from cachebench.models import SLUG

    return not SLUG.match(s)


# (path, strategy of invalid values, the field name the message must carry)
MUTATIONS = [
    (("name",), bad_text.filter(_non_slug), "name"),
    (("name",), not_int.filter(lambda v: not isinstance(v, str)), "name"),
    (("target",), bad_text.filter(lambda s: s not in ("local", "aws")), "target"),
    (("engines",), st.just([]), "engines"),
    (("engines", 0, "engine"), bad_text.filter(lambda s: s not in ("redis", "valkey")), "engine"),
    (("engines", 0), bad_text.filter(lambda s: s.split() not in LOCAL_ENGINES), "engines"),
    (("engines", 0, "versions"), st.just([]), "versions"),
    (("engines", 0, "versions", 0), bad_text.filter(lambda s: s != "7.0"), "versions"),
    (("topologies", 0, "shards"), st.integers(max_value=0) | st.integers(min_value=501), "shards"),
    (
        ("topologies", 0, "replicas"),
        st.integers(max_value=-1) | st.integers(min_value=6),
        "replicas",
    ),
    (
        ("topologies", 0, "cluster_mode"),
        st.text(min_size=1, max_size=8).filter(
            lambda s: (
                s.lower()
                not in {"0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"}
            )
        ),
        "cluster_mode",
    ),
    (("topologies", 0), not_a_label | too_big, "topologies"),
    (("custom_topologies",), st.lists(not_a_label | too_big, min_size=1, max_size=3), "topologies"),
    (
        ("node_types", 0),
        bad_text.filter(lambda s: s not in ("local.micro", "local.small")),
        "node_types",
    ),
    (("workloads", 0, "name"), bad_text.filter(_non_slug), "name"),
    (("workloads", 0, "ratio"), bad_text, "ratio"),
    (("workloads", 0, "key_pattern"), bad_text, "key_pattern"),
    (
        ("workloads", 0, "value_size"),
        st.integers(max_value=0) | st.integers(min_value=2**20 + 1),
        "value_size",
    ),
    (("workloads", 0, "key_space"), st.integers(max_value=0), "key_space"),
    (("workloads", 0, "pipeline"), st.integers(max_value=0) | not_int, "pipeline"),
    (
        ("workloads", 0, "clients"),
        st.integers(max_value=0) | st.integers(min_value=10_001),
        "clients",
    ),
    (("workloads", 0, "threads"), st.integers(max_value=0) | st.integers(min_value=65), "threads"),
    (("workloads", 0, "duration_seconds"), st.integers(max_value=0) | not_int, "duration_seconds"),
    (("workloads", 0, "warmup_seconds"), st.integers(max_value=-1), "warmup_seconds"),
    (("workloads", 0, "rate_limit"), st.integers(max_value=0), "rate_limit"),
    (
        ("load_generators",),
        st.integers(max_value=0) | st.integers(min_value=101),
        "load_generators",
    ),
    (
        ("budget_usd",),
        st.floats(max_value=-0.01, allow_nan=False) | st.just(float("nan")),
        "budget_usd",
    ),
    (("max_points",), st.integers(max_value=0) | st.integers(min_value=1001), "max_points"),
    (
        ("schedule",),
        st.text(min_size=1, max_size=20).filter(
            lambda s: len(s.split()) != 5 and not s.startswith("@")
        ),
        "schedule",
    ),
    (("surprise",), junk, "surprise"),
    (("workloads", 0, "surprise"), junk, "surprise"),
]


def mutate(path: tuple, value) -> dict:
    data = copy.deepcopy(VALID)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@st.composite
def invalid_campaigns(draw):
    path, values, field = draw(st.sampled_from(MUTATIONS))
    return mutate(path, draw(values)), field


def test_the_base_campaign_is_valid() -> None:
    CampaignSpec.from_input(VALID)


@SETTINGS
@given(invalid_campaigns())
def test_invalid_campaign_refused_naming_the_field(results_dir: Path, case) -> None:
    fields, field = case
    with pytest.raises(CampaignError) as err:
        steps.plan(fields, "manual__hostile")
    assert field in str(err.value), (field, str(err.value))
    assert str(err.value).startswith("invalid campaign:")
    assert not results_dir.exists() or not any(results_dir.iterdir())


@SETTINGS
@given(st.one_of(junk, st.lists(junk, max_size=3)))
def test_not_a_mapping_is_refused(results_dir: Path, data) -> None:
    with pytest.raises(CampaignError, match="campaign"):
        steps.plan(data, "manual__hostile")


# ------------------------------------------------------------------ UI params


@pytest.fixture(scope="module")
def adhoc_params():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"].params


@SETTINGS
@given(invalid_campaigns())
def test_invalid_trigger_params_refused_naming_the_field(
    adhoc_params, results_dir: Path, case
) -> None:
    """The trigger form's JSON schema refuses it, or plan does; either way it is named."""
    from airflow.sdk.exceptions import ParamValidationError

    fields, field = case
    top = next(k for k in fields if fields[k] != VALID.get(k, object()))
    try:
        params = copy.deepcopy(adhoc_params)
        params.update(fields)  # as a trigger's conf is merged over the DAG's params
        resolved = params.validate()
    except ParamValidationError as exc:
        assert top in str(exc), (top, str(exc))
        return
    with pytest.raises(CampaignError) as err:
        steps.plan(dict(resolved), "manual__hostile")
    assert field in str(err.value), (field, str(err.value))
    assert not results_dir.exists() or not any(results_dir.iterdir())


def test_plan_task_refuses_without_provisioning(airflow_db, results_dir: Path, capfd) -> None:
    """A conf the form's schema accepts but plan refuses: the run fails in plan, once,
    with the listed problems (AirflowFailException, no chained cause); nothing exists."""
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]
    conf = mutate(("node_types", 0), "cache.x9.huge")
    dag_run = dag.test(run_conf=conf)
    assert str(dag_run.state) == "failed"
    tis = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert str(tis["plan"].state) == "failed" and tis["plan"].try_number == 1
    assert "point.apply" not in tis or str(tis["point.apply"].state) != "success"
    out = "".join(capfd.readouterr())
    assert "node_types[0]: 'cache.x9.huge': not a local node type" in out
    assert "AirflowFailException" in out
    assert "During handling of the above exception" not in out
    # the report is a teardown of plan: with plan refused it never runs (no second error)
    assert str(tis["report"].state) == "upstream_failed"
    assert not results_dir.exists() or not any(results_dir.rglob("*"))


@pytest.mark.parametrize(
    "path, value",
    [
        (("name",), "hostile\n"),  # "$" in a regex also matches before a final newline
        (("workloads", 0, "name"), "w\n"),
        (("workloads", 0, "ratio"), "1:4\n"),
        (("workloads", 0, "ratio"), "\u0661:\u0664"),  # Arabic-Indic digits are \\d too
        (("workloads", 0, "key_pattern"), "R:R\n"),
        (("schedule",), "\u0661 * * * *"),
    ],
)
def test_regex_loopholes_are_closed(results_dir: Path, path, value) -> None:
    with pytest.raises(CampaignError) as err:
        steps.plan(mutate(path, value), "manual__hostile")
    assert path[-1] in str(err.value)


# ------------------------------------------------------------------ CLI and catalogue


def cli(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cachebench", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "plugins")},
    )


@pytest.mark.parametrize(
    "text, expect",
    [
        (yaml.safe_dump(mutate(("workloads", 0, "ratio"), "x:y")), "workloads[0].ratio"),
        (yaml.safe_dump({**VALID, "budget_usd": -1, "surprise": 1}), "surprise"),
        ("name: [unclosed\n", "cannot be read as YAML"),
        ("- a list\n- not a mapping\n", "expected a mapping"),
    ],
)
def test_cli_prints_problems_without_traceback(tmp_path: Path, results_dir, text, expect) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    out = cli(bad)
    assert out.returncode == 2, out
    assert expect in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not results_dir.exists()


def test_malformed_catalogue_row_surfaces_through_plan_with_its_line(
    tmp_path: Path, results_dir: Path, monkeypatch
) -> None:
    lines = node_catalogue.DEFAULT_SPECS_PATH.read_text().splitlines()
    lines[2] = lines[2].replace(lines[2].split(",")[3], "lots", 1)  # vcpu of row on line 3
    broken = tmp_path / "instance_specs.csv"
    broken.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(node_catalogue, "DEFAULT_SPECS_PATH", broken)
    with pytest.raises(CampaignError) as err:
        steps.plan(VALID, "manual__hostile")
    assert "line 3" in str(err.value) and "vcpu" in str(err.value)
    assert not results_dir.exists()
