"""Tests for the node type catalogue (include/instance_specs.csv + cachebench.catalogue)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args

import pydantic
import pytest

from cachebench.catalogue import (
    COLUMNS,
    DEFAULT_SPECS_PATH,
    KNOWN_TARGETS,
    InstanceSpec,
    SpecsError,
    load_instance_specs,
    node_types_for,
)

HEADER = ",".join(COLUMNS)
GOOD_AWS = "aws,cache.r7g.large,r7g,2,13.07,0.937,12.5,,,,,doc"
GOOD_LOCAL = "local,local.micro,local,1,0.25,,,,,,,local process on 127.0.0.1"
REQUIRED_FAMILIES = {"t4g", "m6g", "m7g", "r6g", "r7g"}


def write_csv(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    """Write a catalogue with ``header`` on line 1 and ``rows`` from line 2."""
    path = tmp_path / "specs.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


# --- the shipped catalogue -------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> dict[tuple[str, str], InstanceSpec]:
    return load_instance_specs()


def test_default_path_points_at_include() -> None:
    assert DEFAULT_SPECS_PATH.name == "instance_specs.csv"
    assert DEFAULT_SPECS_PATH.parent.name == "include"
    assert DEFAULT_SPECS_PATH.is_file()


def test_shipped_header_is_exact() -> None:
    first = DEFAULT_SPECS_PATH.read_text(encoding="utf-8").splitlines()[0]
    assert first == HEADER


def test_shipped_csv_loads(shipped: dict[tuple[str, str], InstanceSpec]) -> None:
    assert shipped
    for (target, node_type), spec in shipped.items():
        assert (spec.target, spec.node_type) == (target, node_type)
        assert spec.source


def test_shipped_has_required_families(
    shipped: dict[tuple[str, str], InstanceSpec],
) -> None:
    families = {spec.family for spec in shipped.values() if spec.target == "aws"}
    assert families >= REQUIRED_FAMILIES
    for family in REQUIRED_FAMILIES:
        for spec in shipped.values():
            if spec.family == family:
                assert spec.node_type.startswith(f"cache.{family}.")


def test_shipped_t4g_sizes(shipped: dict[tuple[str, str], InstanceSpec]) -> None:
    t4g = [n for n in node_types_for("aws", shipped) if n.startswith("cache.t4g.")]
    assert t4g == ["cache.t4g.micro", "cache.t4g.small", "cache.t4g.medium"]


@pytest.mark.parametrize("family", ["m6g", "m7g", "r6g", "r7g"])
def test_shipped_graviton_sizes(shipped: dict[tuple[str, str], InstanceSpec], family: str) -> None:
    sizes = ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge"]
    have = [n for n in node_types_for("aws", shipped) if n.startswith(f"cache.{family}.")]
    assert have == [f"cache.{family}.{s}" for s in sizes]


def test_shipped_local_rows(shipped: dict[tuple[str, str], InstanceSpec]) -> None:
    assert node_types_for("local", shipped) == [
        "local.micro",
        "local.small",
        "local.medium",
        "local.t4g.micro",
        "local.t4g.small",
        "local.t4g.medium",
    ]
    expected = {
        "local.micro": (1, 0.25),
        "local.small": (1, 1.0),
        "local.medium": (2, 4.0),
    }
    for node_type, (vcpu, memory) in expected.items():
        spec = shipped[("local", node_type)]
        assert (spec.vcpu, spec.memory_gib) == (vcpu, memory)
        assert spec.network_baseline_gbps is None
        assert spec.network_burst_gbps is None
        assert not spec.miniature and spec.cpu_limit_cores is None
        assert spec.source == "local process on 127.0.0.1"


@pytest.mark.parametrize("size", ["micro", "small", "medium"])
def test_shipped_miniatures_mimic_their_aws_row(
    shipped: dict[tuple[str, str], InstanceSpec], size: str
) -> None:
    """A miniature keeps the mimicked type's memory and network figures; its CPU is 2 vCPU x
    1/8 core, and its bucket 10 s of its baseline (the row says so)."""
    mini, aws = shipped[("local", f"local.t4g.{size}")], shipped[("aws", f"cache.t4g.{size}")]
    assert mini.miniature and mini.mimics == aws.node_type
    assert (mini.vcpu, mini.memory_gib) == (aws.vcpu, aws.memory_gib)
    assert (mini.network_baseline_gbps, mini.network_burst_gbps) == (
        aws.network_baseline_gbps,
        aws.network_burst_gbps,
    )
    assert mini.cpu_limit_cores == 0.25
    bucket_mb = {"micro": 80, "small": 160, "medium": 320}[size]  # Gbps x 1000 / 8 x 10 s
    assert mini.network_bucket_mb == bucket_mb
    assert "10 s of the baseline" in mini.scaled and f"{bucket_mb} MB" in mini.scaled


def test_shipped_aws_rows_are_complete(
    shipped: dict[tuple[str, str], InstanceSpec],
) -> None:
    aws = [spec for spec in shipped.values() if spec.target == "aws"]
    assert aws
    for spec in aws:
        assert spec.network_baseline_gbps is not None and spec.network_baseline_gbps > 0
        assert spec.network_burst_gbps is not None
        assert spec.network_burst_gbps >= spec.network_baseline_gbps, spec.node_type
        assert spec.vcpu >= 2
        assert spec.memory_gib > 0


def test_shipped_known_figures(shipped: dict[tuple[str, str], InstanceSpec]) -> None:
    """Spot checks against the ElastiCache 'Supported node types' page."""
    r7g = shipped[("aws", "cache.r7g.large")]
    assert (r7g.vcpu, r7g.memory_gib) == (2, 13.07)
    assert (r7g.network_baseline_gbps, r7g.network_burst_gbps) == (0.937, 12.5)
    fixed = shipped[("aws", "cache.r6g.16xlarge")]
    assert fixed.network_baseline_gbps == fixed.network_burst_gbps == 25
    micro = shipped[("aws", "cache.t4g.micro")]
    assert (micro.memory_gib, micro.network_baseline_gbps) == (0.5, 0.064)


def test_known_targets_match_models() -> None:
    from cachebench.models import Target

    assert set(KNOWN_TARGETS) == set(get_args(Target))


def test_specs_are_frozen(shipped: dict[tuple[str, str], InstanceSpec]) -> None:
    spec = shipped[("local", "local.micro")]
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        spec.vcpu = 8  # type: ignore[misc]


# --- loader behaviour ------------------------------------------------------


def test_minimal_file_loads(tmp_path: Path) -> None:
    specs = load_instance_specs(write_csv(tmp_path, GOOD_AWS, "", GOOD_LOCAL))
    assert list(specs) == [("aws", "cache.r7g.large"), ("local", "local.micro")]
    assert specs[("local", "local.micro")].network_baseline_gbps is None


def test_quoted_source_with_commas(tmp_path: Path) -> None:
    row = 'aws,cache.t4g.micro,t4g,2,0.5,0.064,5,,,,,"page A, page B"'
    specs = load_instance_specs(write_csv(tmp_path, row))
    assert specs[("aws", "cache.t4g.micro")].source == "page A, page B"


def test_cache_follows_mtime(tmp_path: Path) -> None:
    path = write_csv(tmp_path, GOOD_AWS)
    first = load_instance_specs(path)
    assert load_instance_specs(path) == first
    assert load_instance_specs(path) is not first  # callers get their own dict
    write_csv(tmp_path, GOOD_AWS, GOOD_LOCAL)  # same path, now two rows
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert len(load_instance_specs(path)) == 2


def test_node_types_for_unknown_target() -> None:
    with pytest.raises(ValueError, match="gcp"):
        node_types_for("gcp", {})


# --- malformed files -------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("aws,cache.r7g.large,r7g,2,13.07,0.937,12.5", "row"),
        ("aws,cache.r7g.large,r7g,2,13.07,0.937,12.5,,,,,doc,extra", "row"),
        ("aws,cache.r7g.large,r7g,two,13.07,0.937,12.5,,,,,doc", "vcpu"),
        ("aws,cache.r7g.large,r7g,2.5,13.07,0.937,12.5,,,,,doc", "vcpu"),
        ("aws,cache.r7g.large,r7g,0,13.07,0.937,12.5,,,,,doc", "vcpu"),
        ("aws,cache.r7g.large,r7g,-2,13.07,0.937,12.5,,,,,doc", "vcpu"),
        ("aws,cache.r7g.large,r7g,2,-13.07,0.937,12.5,,,,,doc", "memory_gib"),
        ("aws,cache.r7g.large,r7g,2,,0.937,12.5,,,,,doc", "memory_gib"),
        ("aws,cache.r7g.large,r7g,2,lots,0.937,12.5,,,,,doc", "memory_gib"),
        ("aws,cache.r7g.large,r7g,2,13.07,-1,12.5,,,,,doc", "network_baseline_gbps"),
        ("aws,cache.r7g.large,r7g,2,13.07,nan,12.5,,,,,doc", "network_baseline_gbps"),
        ("aws,cache.r7g.large,r7g,2,13.07,0.937,0.5,,,,,doc", "network_burst_gbps"),
        ("aws,cache.r7g.large,r7g,2,13.07,,12.5,,,,,doc", "network_burst_gbps"),
        ("gcp,cache.r7g.large,r7g,2,13.07,0.937,12.5,,,,,doc", "target"),
        ("aws,,r7g,2,13.07,0.937,12.5,,,,,doc", "node_type"),
        ("aws,cache.r7g.large,r7g,2,13.07,0.937,12.5,,,,,", "source"),
    ],
)
def test_malformed_row_names_line_and_column(tmp_path: Path, row: str, column: str) -> None:
    path = write_csv(tmp_path, GOOD_LOCAL, row)  # the bad row is on line 3
    with pytest.raises(SpecsError) as info:
        load_instance_specs(path)
    err = info.value
    assert (err.line, err.column) == (3, column)
    message = str(err)
    assert str(path) in message
    assert "line 3" in message
    assert repr(column) in message


MINI = "local,local.mini,local,2,0.5,0.064,5,cache.r7g.large,0.25,80,CPU x 1/8,doc"


@pytest.mark.parametrize(
    ("row", "column", "problem"),
    [
        (MINI.replace(",0.25,", ",,"), "cpu_limit_cores", "needs its CPU limit"),
        (MINI.replace(",80,", ",,"), "network_bucket_mb", "needs its bucket"),
        (MINI.replace(",5,", ",,"), "network_burst_gbps", "needs its burst rate"),
        (MINI.replace(",CPU x 1/8,", ",,"), "scaled", "what was scaled"),
        (MINI.replace("cache.r7g.large", "cache.x9.huge"), "mimics", "not an aws node type"),
        (MINI.replace("local,", "aws,", 1), "mimics", "only a local node type"),
        ("local,local.x,local,1,0.25,,,,0.5,,,doc", "cpu_limit_cores", "only a miniature"),
    ],
)
def test_malformed_miniature(tmp_path: Path, row: str, column: str, problem: str) -> None:
    path = write_csv(tmp_path, GOOD_AWS, row)
    with pytest.raises(SpecsError, match=problem) as info:
        load_instance_specs(path)
    assert (info.value.line, info.value.column) == (3, column)


def test_miniature_without_network_limit(tmp_path: Path) -> None:
    """CPU and memory limits only: no baseline, no bucket, no shaper."""
    row = "local,local.cpu,local,2,0.5,,,cache.r7g.large,0.1,,CPU only,doc"
    spec = load_instance_specs(write_csv(tmp_path, GOOD_AWS, row))[("local", "local.cpu")]
    assert spec.miniature and spec.network_baseline_gbps is None and spec.cpu_limit_cores == 0.1


def test_malformed_line_number_counts_blank_lines(tmp_path: Path) -> None:
    bad = "aws,cache.r7g.large,r7g,x,13.07,0.937,12.5,,,,,doc"
    path = write_csv(tmp_path, GOOD_LOCAL, "", "", bad)  # header, good, blank, blank, bad
    with pytest.raises(SpecsError, match=r"line 5: column 'vcpu'"):
        load_instance_specs(path)


def test_duplicate_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path, GOOD_AWS, GOOD_LOCAL, GOOD_AWS)
    with pytest.raises(SpecsError) as info:
        load_instance_specs(path)
    assert (info.value.line, info.value.column) == (4, "node_type")
    assert "duplicate" in str(info.value)
    assert "line 2" in str(info.value)  # where it was first defined


def test_same_node_type_on_two_targets_is_fine(tmp_path: Path) -> None:
    other = GOOD_AWS.replace("aws,", "local,", 1)
    specs = load_instance_specs(write_csv(tmp_path, GOOD_AWS, other))
    assert len(specs) == 2


@pytest.mark.parametrize(
    ("header", "column"),
    [
        (HEADER.replace("memory_gib", "memory_gb"), "memory_gib"),
        (HEADER + ",extra", "header"),
        (",".join(COLUMNS[:-1]), "header"),
    ],
)
def test_bad_header_is_line_1(tmp_path: Path, header: str, column: str) -> None:
    path = write_csv(tmp_path, GOOD_LOCAL, header=header)
    with pytest.raises(SpecsError) as info:
        load_instance_specs(path)
    assert (info.value.line, info.value.column) == (1, column)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(SpecsError, match="line 1"):
        load_instance_specs(path)


def test_specs_error_is_value_error() -> None:
    assert issubclass(SpecsError, ValueError)
