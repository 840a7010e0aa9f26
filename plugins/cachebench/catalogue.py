"""The node type catalogue: what each (target, node_type) pair provides.

The catalogue lives in ``include/instance_specs.csv`` (one row per node type,
header on line 1). It is read with the :mod:`csv` module, not pandas, because
this module is imported while Airflow parses DAGs and must stay cheap. Parsed
catalogues are cached per file path and modification time, so an edited file
is picked up without restarting anything.

Every malformed row raises :class:`SpecsError`, whose message names the file,
the 1-based line number and the offending column.

A local row that names the AWS node type it ``mimics`` is a **miniature** of it:
its servers run with the kernel enforcing its ``cpu_limit_cores`` (a cgroup CPU
quota), its ``memory_gib`` (a cgroup memory limit) and, when it has a network
baseline, a token bucket per node (tc): ``network_baseline_gbps`` refills it,
``network_bucket_mb`` (decimal megabytes) is its size, ``network_burst_gbps`` the
most it lets through while it holds tokens. ``scaled`` says what was scaled from
the mimicked type and how the bucket was sized (cachebench.targets.local.miniature).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import pydantic

__all__ = [
    "COLUMNS",
    "DEFAULT_SPECS_PATH",
    "KNOWN_TARGETS",
    "InstanceSpec",
    "SpecsError",
    "load_instance_specs",
    "node_types_for",
]

#: <repo>/include/instance_specs.csv, from <repo>/plugins/cachebench/catalogue.py.
DEFAULT_SPECS_PATH: Path = Path(__file__).resolve().parents[2] / "include" / "instance_specs.csv"

#: The header row, exactly and in this order.
COLUMNS: tuple[str, ...] = (
    "target",
    "node_type",
    "family",
    "vcpu",
    "memory_gib",
    "network_baseline_gbps",
    "network_burst_gbps",
    "mimics",
    "cpu_limit_cores",
    "network_bucket_mb",
    "scaled",
    "source",
)

#: Targets a row may name; kept in step with ``cachebench.models.Target``.
KNOWN_TARGETS: tuple[str, ...] = ("aws", "local")

SpecKey = tuple[str, str]
Specs = dict[SpecKey, "InstanceSpec"]


class InstanceSpec(pydantic.BaseModel, frozen=True):
    """One node type: its size and network allowance (prices: :mod:`cachebench.pricing`).

    Network figures are ``None`` where there is no documented limit (a plain
    ``local`` node on loopback). A size without burst has burst equal to baseline.
    A miniature (``mimics`` set, local only) also has its CPU limit, and its token
    bucket's size when it has a network baseline.
    """

    target: str
    node_type: str
    family: str
    vcpu: int
    memory_gib: float
    network_baseline_gbps: float | None
    network_burst_gbps: float | None
    mimics: str | None = None
    cpu_limit_cores: float | None = None
    network_bucket_mb: float | None = None
    scaled: str | None = None
    source: str

    @property
    def miniature(self) -> bool:
        """A local node type whose limits the kernel enforces (cgroups, tc)."""
        return self.mimics is not None


class SpecsError(ValueError):
    """A malformed catalogue row; the message names file, line and column."""

    def __init__(self, path: Path, line: int, column: str, problem: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.problem = problem
        super().__init__(f"{path}: line {line}: column {column!r}: {problem}")


# resolved path -> ((mtime_ns, size), parsed catalogue)
_CACHE: dict[Path, tuple[tuple[int, int], Specs]] = {}


def load_instance_specs(
    path: Path | None = None,
) -> dict[tuple[str, str], InstanceSpec]:
    """Load the catalogue, keyed by ``(target, node_type)``, in file order.

    Cached per path and modification time; each call returns a fresh dict
    (the specs themselves are frozen). Raises :class:`SpecsError` for a
    malformed file and :class:`OSError` if it cannot be read.
    """
    resolved = Path(path if path is not None else DEFAULT_SPECS_PATH).resolve()
    st = os.stat(resolved)
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _CACHE.get(resolved)
    if hit is not None and hit[0] == stamp:
        return dict(hit[1])
    specs = _parse(resolved)
    _CACHE[resolved] = (stamp, specs)
    return dict(specs)


def node_types_for(
    target: str, specs: dict[tuple[str, str], InstanceSpec] | None = None
) -> list[str]:
    """Node types of ``target`` in catalogue order (the shipped file if ``specs`` is None)."""
    if target not in KNOWN_TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {KNOWN_TARGETS}")
    catalogue = load_instance_specs() if specs is None else specs
    return [node_type for (t, node_type) in catalogue if t == target]


def _parse(path: Path) -> Specs:
    """Read and validate every row of ``path``."""
    specs: Specs = {}
    first_line: dict[SpecKey, int] = {}
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise SpecsError(path, 1, "header", "file is empty; expected a header row")
        _check_header(path, [h.strip() for h in header])
        for row in reader:
            line = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue  # blank line
            spec = _parse_row(path, line, row)
            key = (spec.target, spec.node_type)
            if key in first_line:
                raise SpecsError(
                    path,
                    line,
                    "node_type",
                    f"duplicate ({spec.target}, {spec.node_type}); "
                    f"first defined on line {first_line[key]}",
                )
            first_line[key] = line
            specs[key] = spec
    for key, spec in specs.items():
        if spec.mimics is not None and ("aws", spec.mimics) not in specs:
            raise SpecsError(
                path,
                first_line[key],
                "mimics",
                f"{spec.mimics!r} is not an aws node type of this catalogue",
            )
    return specs


def _check_header(path: Path, header: list[str]) -> None:
    """Refuse a header that is not exactly :data:`COLUMNS`."""
    if len(header) != len(COLUMNS):
        raise SpecsError(
            path,
            1,
            "header",
            f"expected {len(COLUMNS)} columns {list(COLUMNS)}, got {len(header)}: {header}",
        )
    for want, got in zip(COLUMNS, header, strict=True):
        if want != got:
            raise SpecsError(path, 1, want, f"header has {got!r} where {want!r} belongs")


def _parse_row(path: Path, line: int, row: list[str]) -> InstanceSpec:
    """Turn one data row into an :class:`InstanceSpec`, or raise :class:`SpecsError`."""
    if len(row) != len(COLUMNS):
        raise SpecsError(
            path,
            line,
            "row",
            f"expected {len(COLUMNS)} columns, got {len(row)} (quote fields containing commas)",
        )
    cells = _Cells(
        path, line, {name: cell.strip() for name, cell in zip(COLUMNS, row, strict=True)}
    )
    for column in ("target", "node_type", "family", "source"):
        cells.text(column)
    if cells.raw["target"] not in KNOWN_TARGETS:
        raise cells.fail(
            "target",
            f"unknown target {cells.raw['target']!r}; expected one of {KNOWN_TARGETS}",
        )
    vcpu = cells.whole("vcpu")
    memory = cells.number("memory_gib")
    baseline = cells.optional_number("network_baseline_gbps")
    burst = cells.optional_number("network_burst_gbps")
    _check_network(cells, baseline, burst)
    spec = InstanceSpec(
        target=cells.raw["target"],
        node_type=cells.raw["node_type"],
        family=cells.raw["family"],
        vcpu=vcpu,
        memory_gib=memory,
        network_baseline_gbps=baseline,
        network_burst_gbps=burst,
        mimics=cells.raw["mimics"] or None,
        cpu_limit_cores=cells.optional_number("cpu_limit_cores"),
        network_bucket_mb=cells.optional_number("network_bucket_mb"),
        scaled=cells.raw["scaled"] or None,
        source=cells.raw["source"],
    )
    if spec.miniature:
        _check_miniature(cells, spec)
    else:
        _check_not_miniature(cells, spec)
    return spec


@dataclass(frozen=True)
class _Cells:
    """One row's stripped cells by column, read with errors naming file, line and column."""

    path: Path
    line: int
    raw: dict[str, str]

    def fail(self, column: str, problem: str) -> SpecsError:
        return SpecsError(self.path, self.line, column, problem)

    def text(self, column: str) -> str:
        if not self.raw[column]:
            raise self.fail(column, "must not be empty")
        return self.raw[column]

    def whole(self, column: str) -> int:
        raw = self.raw[column]
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(column, f"{raw!r} is not a whole number") from None
        if value < 1:
            raise self.fail(column, f"{value} must be at least 1")
        return value

    def number(self, column: str) -> float:
        """A finite number greater than 0."""
        raw = self.text(column)
        try:
            value = float(raw)
        except ValueError:
            raise self.fail(column, f"{raw!r} is not a number") from None
        if not math.isfinite(value):
            raise self.fail(column, f"{raw!r} is not a finite number")
        if value < 0:
            raise self.fail(column, f"{raw} must not be negative")
        if value == 0:
            raise self.fail(column, "must be greater than 0")
        return value

    def optional_number(self, column: str) -> float | None:
        return self.number(column) if self.raw[column] else None


def _check_network(cells: _Cells, baseline: float | None, burst: float | None) -> None:
    """Burst comes with a baseline and is not below it."""
    if burst is not None and baseline is None:
        raise cells.fail("network_burst_gbps", "set without network_baseline_gbps")
    if burst is not None and baseline is not None and burst < baseline:
        raise cells.fail(
            "network_burst_gbps",
            f"burst {burst:g} is below baseline {baseline:g} (use baseline when there is no burst)",
        )


def _check_not_miniature(cells: _Cells, spec: InstanceSpec) -> None:
    """A row without mimics has none of a miniature's columns."""
    for column in ("cpu_limit_cores", "network_bucket_mb", "scaled"):
        if getattr(spec, column) is not None:
            raise cells.fail(column, "only a miniature (a local row with mimics) has it")


def _check_miniature(cells: _Cells, spec: InstanceSpec) -> None:
    """A miniature is local and has every limit the kernel enforces for it."""
    baseline, bucket = spec.network_baseline_gbps, spec.network_bucket_mb
    cpu_limit = spec.cpu_limit_cores
    if spec.target != "local":
        raise cells.fail("mimics", "only a local node type can be a miniature")
    if cpu_limit is None:
        raise cells.fail("cpu_limit_cores", "a miniature needs its CPU limit (cores, e.g. 0.25)")
    if cpu_limit < 0.1:
        raise cells.fail("cpu_limit_cores", f"{cpu_limit:g} is below 0.1 (the smallest CPU quota)")
    if baseline is not None and bucket is None:
        raise cells.fail(
            "network_bucket_mb", "a miniature with a network baseline needs its bucket"
        )
    if baseline is None and bucket is not None:
        raise cells.fail("network_bucket_mb", "set without network_baseline_gbps")
    if baseline is not None and spec.network_burst_gbps is None:
        raise cells.fail("network_burst_gbps", "a miniature with a baseline needs its burst rate")
    if spec.scaled is None:
        raise cells.fail("scaled", "a miniature must say what was scaled and how")
