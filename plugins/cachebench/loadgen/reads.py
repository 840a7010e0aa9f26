"""Where a workload's GETs go: the primary (default), or the replicas (read_from "replicas").

memtier_benchmark has no replica reads: it never sends READONLY, and in cluster
mode it routes every command to the slot's primary (cluster_client.cpp, from
CLUSTER SLOTS); with cluster mode off it talks to the one host it is given. So
reads from replicas are offered with cluster mode off only, by running each
generator as two processes at once: writers (SETs only) to the primary endpoint
and readers (GETs only) to a replica: ElastiCache's reader endpoint on aws
(which spreads connections over the replicas), a replica node locally
(generator g reads from replica g mod n). redis-benchmark, which already runs
one process per side, sends its GET side the same way. The plan refuses
read_from "replicas" where no replica can serve (CampaignSpec.check).
"""

from __future__ import annotations

from cachebench.models import Endpoint


def reader_endpoints(endpoint: Endpoint, generators: int) -> tuple[list[Endpoint], str]:
    """Where each generator's readers connect, and the label of where reads went.

    The reader endpoint when the endpoint has one (aws), else the replica nodes
    in turn (local). ValueError when there is neither.
    """
    if endpoint.cluster_mode:
        raise ValueError("read_from 'replicas': not with cluster mode on (refused in plan)")
    if endpoint.reader_host:
        reader = endpoint.model_copy(update={"host": endpoint.reader_host})
        return [reader] * generators, f"reader endpoint {endpoint.reader_host}"
    replicas = [n for n in endpoint.nodes if n.role == "replica"]
    if not replicas:
        raise ValueError(
            "read_from 'replicas': the endpoint has no reader_host and no replica node"
        )
    picked = [replicas[g % len(replicas)] for g in range(generators)]
    readers = [endpoint.model_copy(update={"host": n.host, "port": n.port}) for n in picked]
    used = sorted({n.node_id for n in picked})
    return readers, "replica nodes " + ", ".join(used)
