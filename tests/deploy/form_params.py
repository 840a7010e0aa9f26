"""Campaign params for the deployment tests, as the cachebench_adhoc trigger form sends them."""

from __future__ import annotations

ADHOC = "cachebench_adhoc"


def workload(warmup: int, duration: int, name: str = "short") -> dict:
    return {
        "name": name,
        "ratio": "1:4",
        "value_size": 128,
        "key_space": 5000,
        "key_pattern": "R:R",
        "pipeline": 2,
        "clients": 4,
        "threads": 1,
        "warmup_seconds": warmup,
        "duration_seconds": duration,
        "rate_limit": None,
    }


def one_deployment(dep, name: str, warmup: int, duration: int, repetitions: int) -> dict:
    """The UI form's params for one Redis deployment measuring one workload."""
    return dep.ui_conf(
        ADHOC,
        name=name,
        engines=[{"engine": "redis", "versions": ["7.0"]}],
        topologies=[{"cluster_mode": False}],
        node_types=["local.micro"],
        workloads=[workload(warmup, duration)],
        repetitions=repetitions,
    )
