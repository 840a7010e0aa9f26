"""What must be equal for two runs of a point to be compared: the point's fingerprint.

A point's numbers move when what was measured changes, not only when the server got
slower; so two campaign runs of a point are compared only when these are all equal:

* the workload (every field: ratio, sizes, key space and pattern, pipeline, clients,
  threads, warm-up, duration, rate limit, where reads go);
* the load tool and its major version (memtier_benchmark 2 vs redis-benchmark 7);
* the engine and its version as the campaign asks for it (``7.0``, ``9.1``): a patch
  release the servers report (7.0.15 vs 7.0.11) is what a regression may come from, so
  it is provenance, shown beside the verdict, not a reason to compare nothing;
* the node type, the topology and the number of load generators;
* the node type's catalogue row (include/instance_specs.csv: vCPU, memory, network
  baseline, burst and bucket, and for a miniature what it mimics and its CPU limit):
  the same name with other limits is another machine;
* the region on aws; locally the host (its name, CPU model and cores): numbers of two
  machines are two machines'.

Left out on purpose: repetitions (the comparison's level follows the run counts), the
kernel and cachebench's own version (provenance), prices (not performance).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import Field

from cachebench.models import Point, Strict, Workload

LENGTH = 16  # hex digits of the digest: plenty for one campaign's history


class CatalogueRow(Strict):
    """The node type's row of include/instance_specs.csv, its limits only (not its prose)."""

    vcpu: int | None = None
    memory_gib: float | None = None
    network_baseline_gbps: float | None = None
    network_burst_gbps: float | None = None
    mimics: str | None = None
    cpu_limit_cores: float | None = None
    network_bucket_mb: float | None = None


class HostId(Strict):
    hostname: str
    cpu_model: str
    cores: int


class Fingerprint(Strict):
    target: str
    engine: str
    version: str = Field(description="as the campaign asks for it")
    topology: str
    node_type: str
    load_generators: int
    workload: Workload
    load_tool: str
    load_tool_major: str = Field(description="'' when no version line was recorded")
    catalogue: CatalogueRow | None = Field(description="None: not in the catalogue")
    region: str | None = Field(None, description="aws: the campaign's region")
    host: HostId | None = Field(None, description="local: the machine")

    @property
    def digest(self) -> str:
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:LENGTH]


def major_version(tool_version: str) -> str:
    """'redis-benchmark 7.0.15' -> '7'; 'memtier_benchmark 2.1.0' -> '2'; '' when none."""
    m = re.search(r"(?<![\d.])(\d+)\.\d+", tool_version or "")
    return m[1] if m else ""


def of_point(
    point: Point,
    *,
    load_tool: str,
    tool_version: str,
    spec: Any = None,
    region: str | None = None,
    host: Any = None,
) -> Fingerprint:
    """The fingerprint of ``point`` as one campaign run measured it.

    ``spec``: its catalogue row (specs.InstanceSpec) or None; ``host``: the run's
    provenance.Host (local) or None.
    """
    row = None
    if spec is not None:
        row = CatalogueRow(**{k: getattr(spec, k) for k in CatalogueRow.model_fields})
    machine = None
    if point.target == "local" and host is not None:
        machine = HostId(hostname=host.hostname, cpu_model=host.cpu_model, cores=host.cores)
    return Fingerprint(
        target=point.target,
        engine=point.engine,
        version=point.version,
        topology=point.topology.label,
        node_type=point.node_type,
        load_generators=point.load_generators,
        workload=point.workload,
        load_tool=load_tool,
        load_tool_major=major_version(tool_version),
        catalogue=row,
        region=region if point.target == "aws" else None,
        host=machine,
    )


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out |= _flat(v, f"{prefix}{k}.")
        return out
    return {prefix.rstrip("."): data}


def differences(then: Fingerprint, now: Fingerprint) -> list[str]:
    """What differs, one 'field: then X, now Y' each ([] when comparable)."""
    a, b = _flat(then.model_dump(mode="json")), _flat(now.model_dump(mode="json"))
    out = []
    for key in dict.fromkeys([*a, *b]):
        if a.get(key) != b.get(key):
            out.append(f"{key}: then {_show(a.get(key))}, now {_show(b.get(key))}")
    return out


def _show(v: Any) -> str:
    return "none" if v is None else json.dumps(v) if not isinstance(v, str) else repr(v)
