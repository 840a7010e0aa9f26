"""A known state before every run: flush the data set, then write every key the load will use.

The keys are the load tool's own: memtier_benchmark's ``memtier-<n>`` for n in
1..key_space (``--key-minimum=1 --key-maximum=key_space``), redis-benchmark's
``key:<n as 12 digits>`` for n in 0..key_space-1 (``-r key_space``). In
cluster mode redis-benchmark puts a hash tag in every key so that it lands on
the primary its connection is pinned to (``key:{06S}:000000000042``); the tag
of each primary is read off the tool itself, by a short probe run, rather than
rebuilt from its source.

Values are ``value_size`` bytes, so GETs hit from the first second of the
warm-up and the memory in use is the workload's from the start. Where the keys
of a primary are a numbered sequence (single node, or redis-benchmark's tag
per primary) a short Lua script writes them on the server, LUA_BATCH keys a
call, so a 50,000-key prefill takes a fraction of a second instead of seconds
of client-side work; otherwise (memtier's keys in cluster mode, spread over
every slot) writes go in pipelines straight to the primary owning each key's
slot. Replicas are then waited for (WAIT), so reads sent to them hit too.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator

import redis
from redis.crc import key_slot

from cachebench.loadgen.auth import AUTH_ENV
from cachebench.loadgen.memtier import MEMTIER
from cachebench.loadgen.redis_benchmark import REDIS_BENCHMARK, redis_benchmark_argv
from cachebench.models import Endpoint, Node, PrefillResult, Workload
from cachebench.redis_conn import connect

BATCH = 1000  # keys per pipeline round trip
LUA_BATCH = 50_000  # keys per server-side call: short enough never to block the server long
FILL = """local v = ARGV[3]
for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  redis.call('SET', string.format(ARGV[4], i), v)
end
return tonumber(ARGV[2]) - tonumber(ARGV[1]) + 1"""
WAIT_REPLICAS_MS = 10_000
TIMEOUT_S = 10.0


class PrefillError(RuntimeError):
    pass


def _client(node: Node, password: str) -> redis.Redis:
    return connect(node.host, node.port, password, TIMEOUT_S, decode_responses=False)


def primaries(endpoint: Endpoint) -> list[Node]:
    found = [n for n in endpoint.nodes if n.role == "primary"]
    if not found:
        raise PrefillError("the endpoint lists no primary node")
    return found


def flush(endpoint: Endpoint, password: str) -> None:
    """FLUSHALL on every primary (replicas follow through replication)."""
    for node in primaries(endpoint):
        with _client(node, password) as c:
            c.flushall()


def _slot_owners(endpoint: Endpoint, password: str) -> list[tuple[int, int, Node]]:
    """(first slot, last slot, primary) from CLUSTER SLOTS."""
    by_port = {(n.host, n.port): n for n in primaries(endpoint)}
    with _client(primaries(endpoint)[0], password) as c:
        rows = c.execute_command("CLUSTER SLOTS")
    owners = []
    for row in rows:
        first, last, master = int(row[0]), int(row[1]), row[2]
        host = master[0].decode() if isinstance(master[0], bytes) else master[0]
        node = by_port.get((host, int(master[1])))
        if node is None:
            raise PrefillError(f"CLUSTER SLOTS names {host}:{master[1]}, not a primary we know")
        owners.append((first, last, node))
    return owners


def redis_benchmark_tags(endpoint: Endpoint, password: str) -> dict[str, str]:
    """Each primary's hash tag, as redis-benchmark --cluster writes it (node id -> tag)."""
    nodes = primaries(endpoint)
    probe = Workload(name="probe", key_space=1, value_size=1, clients=len(nodes), threads=1)
    argv = redis_benchmark_argv(
        probe,
        endpoint,
        side="set",
        clients=len(nodes),
        requests=len(nodes) * 4,
        password_env=bool(password),
    )
    env = {**os.environ, AUTH_ENV: password} if password else dict(os.environ)
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise PrefillError(f"redis-benchmark probe failed: {done.stderr.strip()[-300:]}")
    tags: dict[str, str] = {}
    for node in nodes:
        with _client(node, password) as c:
            keys = [k.decode() for k in c.scan_iter(match="key:{*}:*", count=100)]
        if not keys:
            raise PrefillError(f"redis-benchmark wrote no key on primary {node.node_id}")
        tags[node.node_id] = keys[0][len("key:{") : keys[0].rindex("}:")]
    return tags


def _sequence(tool: str, workload: Workload) -> tuple[str, int, int]:
    """(printf format of the tool's keys, first number, last number)."""
    if tool == MEMTIER:
        return "memtier-%d", 1, workload.key_space
    if tool == REDIS_BENCHMARK:
        return "key:%012d", 0, workload.key_space - 1
    raise PrefillError(f"no key layout known for {tool!r}")


def _fill(node: Node, password: str, fmt: str, first: int, last: int, value: bytes) -> int:
    """Write keys fmt % first .. fmt % last on node, server-side."""
    written = 0
    with _client(node, password) as c:
        script = c.register_script(FILL)
        for lo in range(first, last + 1, LUA_BATCH):
            hi = min(lo + LUA_BATCH - 1, last)
            written += int(script(keys=[], args=[lo, hi, value, fmt]))
    return written


def _keys(tool: str, workload: Workload) -> Iterator[str]:
    fmt, first, last = _sequence(tool, workload)
    return (fmt % n for n in range(first, last + 1))


def _batches(keys: Iterator[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for k in keys:
        batch.append(k)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _write(node: Node, password: str, keys: Iterator[str], value: bytes) -> int:
    written = 0
    with _client(node, password) as c:
        for batch in _batches(keys):
            pipe = c.pipeline(transaction=False)
            for k in batch:
                pipe.set(k, value)
            pipe.execute()
            written += len(batch)
    return written


def _wait_replicas(endpoint: Endpoint, password: str) -> list[str]:
    notes = []
    for node in primaries(endpoint):
        replicas = [n for n in endpoint.nodes if n.role == "replica" and n.shard == node.shard]
        if not replicas:
            continue
        with _client(node, password) as c:
            acked = int(c.execute_command("WAIT", len(replicas), WAIT_REPLICAS_MS))
        if acked < len(replicas):
            notes.append(
                f"primary {node.node_id}: {acked} of {len(replicas)} replicas had the data "
                f"after {WAIT_REPLICAS_MS} ms"
            )
    return notes


def prefill(endpoint: Endpoint, password: str, workload: Workload, tool: str) -> PrefillResult:
    """Flush, then write every key of workload's key space as tool names it."""
    t0 = time.time()
    flush(endpoint, password)
    value = b"x" * workload.value_size
    written = 0
    fmt, first, last = _sequence(tool, workload)
    if not endpoint.cluster_mode:
        written = _fill(primaries(endpoint)[0], password, fmt, first, last, value)
    elif tool == REDIS_BENCHMARK:
        tags = redis_benchmark_tags(endpoint, password)
        for node in primaries(endpoint):
            tagged = fmt.replace("key:", f"key:{{{tags[node.node_id]}}}:", 1)
            written += _fill(node, password, tagged, first, last, value)
    else:
        owners = _slot_owners(endpoint, password)
        per_node: dict[str, list[str]] = {}
        nodes: dict[str, Node] = {}
        for k in _keys(tool, workload):
            slot = key_slot(k.encode())
            node = next(n for first, last, n in owners if first <= slot <= last)
            per_node.setdefault(node.node_id, []).append(k)
            nodes[node.node_id] = node
        for node_id, keys in per_node.items():
            written += _write(nodes[node_id], password, iter(keys), value)
    notes = _wait_replicas(endpoint, password)
    return PrefillResult(
        tool="redis-py pipelines"
        if endpoint.cluster_mode and tool == MEMTIER
        else "Lua on the server",
        keys=written,
        value_size=workload.value_size,
        seconds=round(time.time() - t0, 3),
        started_at=t0,
        notes=notes,
    )
