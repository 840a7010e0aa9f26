"""Campaign params for the deployment tests, as the cachebench_adhoc trigger form sends them."""

from __future__ import annotations

ADHOC = "cachebench_adhoc"
# A light load's node type: a miniature whose server may use a quarter of a core (cgroup
# quota), so one connection's ping-pong takes about 0.5 core in all instead of 0.9 on the
# uncapped local.micro (measured: server and redis-benchmark, 15 s each way).
LIGHT_NODE = "local.t4g.micro"


def workload(warmup: int, duration: int, name: str = "short", light: bool = False) -> dict:
    """`light`: one connection, no pipelining, for a load that only has to last (a run
    the test interrupts): about half the CPU of the usual 4 x 2, which the other test
    workers on these 2 cores need more (run it on LIGHT_NODE for less still)."""
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
    """The UI form's params for one Redis deployment measuring one workload (a light one
    on LIGHT_NODE)."""
    return dep.ui_conf(
        ADHOC,
        name=name,
        engines=[{"engine": "redis", "versions": ["7.0"]}],
        topologies=[{"cluster_mode": False}],
        node_types=[LIGHT_NODE if light else "local.micro"],
        workloads=[workload(warmup, duration, light=light)],
        repetitions=repetitions,
    )
