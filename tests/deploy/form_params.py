"""Campaign params for the deployment tests, as the cachebench_adhoc trigger form sends them."""

from __future__ import annotations

ADHOC = "cachebench_adhoc"


def workload(warmup: int, duration: int, name: str = "short", light: bool = False) -> dict:
    """`light`: one connection, no pipelining, for a load that only has to last (a run
    the test interrupts): about half the CPU of the usual 4 x 2, which the other test
    workers on these 2 cores need more."""
    return {
        "name": name,
        "ratio": "1:4",
        "value_size": 128,
        "key_space": 5000,
        "key_pattern": "R:R",
        "pipeline": 1 if light else 2,
        "clients": 1 if light else 4,
        "threads": 1,
        "warmup_seconds": warmup,
        "duration_seconds": duration,
        "rate_limit": None,
    }


def one_deployment(
    dep, name: str, warmup: int, duration: int, repetitions: int, light: bool = False
) -> dict:
    """The UI form's params for one Redis deployment measuring one workload."""
    return dep.ui_conf(
        ADHOC,
        name=name,
        engines=[{"engine": "redis", "versions": ["7.0"]}],
        topologies=[{"cluster_mode": False}],
        node_types=["local.micro"],
        workloads=[workload(warmup, duration, light=light)],
        repetitions=repetitions,
    )
