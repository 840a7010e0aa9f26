"""Sample INFO from every local node and write CloudWatch-named metrics.

    python -m cachebench.targets.local.agent --state-dir DIR

Every `metrics_interval_seconds` it sends one INFO (the sections below) per node
over one kept-open connection and appends rows to <state_dir>/metrics.csv. It
stops by itself when every server is gone, when the expiry passed or when the
password file disappears (`down` removes it; it lives in the registry's runtime_dir,
outside the results folder).

Names and units follow ElastiCache's CloudWatch host/engine metrics. Counters
become per-period counts (from the second sample on); gauges are instantaneous.
CPUUtilization counts every server thread (so it can exceed 100 with io-threads);
EngineCPUUtilization only the main thread.

A miniature's nodes (cachebench.targets.local.miniature) are measured as ElastiCache
measures its nodes: CPU in percent of the node's CPU allowance (its cgroup
quota), and the network from its shaped interface, not from INFO: NetworkBytesIn/
Out and NetworkPacketsIn/Out as its token buckets passed them, and
NetworkBandwidthIn/OutAllowanceExceeded the packets each bucket queued or dropped
(tbf's overlimits + drops, cachebench.targets.local.shaping).
"""

from __future__ import annotations

import argparse
import csv
import signal
import sys
import time
from pathlib import Path
from typing import Any

from cachebench import procs
from cachebench.targets.local import miniature
from cachebench.targets.local.config import RegisteredNode, Registry, read_registry

# Same as cachebench.models.METRIC_COLUMNS (not imported: the agent stays light).
COLUMNS = ["timestamp", "point_id", "node_id", "metric", "value", "unit", "period_s"]
SECTIONS = (
    "server",
    "clients",
    "memory",
    "stats",
    "replication",
    "cpu",
    "commandstats",
    "keyspace",
)
# Plain string reads and writes (ElastiCache sums all read/write-type commands).
GET_COMMANDS = frozenset({"get", "mget", "getrange", "substr", "strlen", "lcs"})
SET_COMMANDS = frozenset(
    {
        "set",
        "mset",
        "msetnx",
        "setnx",
        "setex",
        "psetex",
        "setrange",
        "append",
        "getset",
        "getdel",
        "getex",
        "incr",
        "incrby",
        "incrbyfloat",
        "decr",
        "decrby",
    }
)

Row = dict[str, Any]


def parse_info(text: str) -> dict[str, Any]:
    """INFO text -> dict shaped like redis-py's (k=v,k=v values become dicts)."""

    def scalar(v: str):
        try:
            return float(v) if "." in v else int(v)
        except ValueError:
            return v

    out: dict[str, Any] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split(":", 1)
        if "=" in value:
            out[key] = {k: scalar(v) for k, _, v in (p.partition("=") for p in value.split(","))}
        else:
            out[key] = scalar(value)
    return out


def _num(info: dict[str, Any], key: str) -> float | None:
    v = info.get(key)
    if isinstance(v, bool) or v is None:
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def _calls(info: dict[str, Any], commands: frozenset[str]) -> float:
    total = 0.0
    for name in commands:
        stat = info.get(f"cmdstat_{name}")
        if isinstance(stat, dict):
            total += float(stat.get("calls", 0))
        elif isinstance(stat, str):
            total += float(parse_info(f"x:{stat}")["x"].get("calls", 0))
    return total


def _keys(info: dict[str, Any]) -> float:
    total = 0.0
    for key, val in info.items():
        if key.startswith("db") and key[2:].isdigit():
            if isinstance(val, str):
                val = parse_info(f"x:{val}")["x"]
            if isinstance(val, dict):
                total += float(val.get("keys", 0))
    return total


def metrics_from_info(
    prev: dict[str, Any] | None,
    cur: dict[str, Any],
    dt: float,
    node_id: str,
    maxmemory: int,
    cpu_cores: float | None = None,
) -> list[Row]:
    """Rows {node_id, metric, value, unit, period_s} from two INFO snapshots dt s apart.

    prev=None (first sample) yields only the gauges. A counter that went
    backwards (server restart) yields no row for that period. cpu_cores: the node's
    CPU allowance (a miniature's quota): CPU in percent of it, else of one core.
    """
    period = round(dt, 3) if prev is not None else 0.0
    measured = _gauges(cur, maxmemory)
    if prev is not None and dt > 0:
        measured += _counters(prev, cur, dt, cpu_cores)
    return [
        {
            "node_id": node_id,
            "metric": metric,
            "value": round(float(value), 6),
            "unit": unit,
            "period_s": period,
        }
        for metric, value, unit in measured
        if value is not None
    ]


# (metric, value or None when INFO does not give it, unit)
Measured = list[tuple[str, float | None, str]]


def _gauges(cur: dict[str, Any], maxmemory: int) -> Measured:
    """The instantaneous metrics of one INFO snapshot."""
    used = _num(cur, "used_memory")
    limit = maxmemory or _num(cur, "maxmemory") or 0
    usage = 100.0 * used / limit if used is not None and limit > 0 else None
    return [
        ("CurrConnections", _num(cur, "connected_clients"), "Count"),
        ("BytesUsedForCache", used, "Bytes"),
        ("DatabaseMemoryUsagePercentage", usage, "Percent"),
        ("CurrItems", _keys(cur), "Count"),
        ("IsMaster", 1.0 if cur.get("role") == "master" else 0.0, "Count"),
    ]


def _counters(
    prev: dict[str, Any], cur: dict[str, Any], dt: float, cpu_cores: float | None
) -> Measured:
    """The per-period metrics between two INFO snapshots dt s apart (dt > 0)."""

    def delta(key: str) -> float | None:
        a, b = _num(prev, key), _num(cur, key)
        if a is None or b is None or b < a:
            return None
        return b - a

    def cpu(*keys: str) -> float | None:
        ds = [delta(k) for k in keys]
        if any(d is None for d in ds):
            return None
        return 100.0 * sum(ds) / dt / (cpu_cores or 1.0)  # type: ignore[arg-type]

    def calls(commands: frozenset[str]) -> float | None:
        d = _calls(cur, commands) - _calls(prev, commands)
        return d if d >= 0 else None

    measured: Measured = [
        ("CPUUtilization", cpu("used_cpu_sys", "used_cpu_user"), "Percent"),
        (
            "EngineCPUUtilization",
            cpu("used_cpu_sys_main_thread", "used_cpu_user_main_thread"),
            "Percent",
        ),
        ("NetworkBytesIn", delta("total_net_input_bytes"), "Bytes"),
        ("NetworkBytesOut", delta("total_net_output_bytes"), "Bytes"),
        ("NewConnections", delta("total_connections_received"), "Count"),
        ("Evictions", delta("evicted_keys"), "Count"),
        ("CacheHits", delta("keyspace_hits"), "Count"),
        ("CacheMisses", delta("keyspace_misses"), "Count"),
        ("GetTypeCmds", calls(GET_COMMANDS), "Count"),
        ("SetTypeCmds", calls(SET_COMMANDS), "Count"),
    ]
    if cur.get("role") == "master" and (_num(cur, "connected_slaves") or 0) > 0:
        measured.append(("ReplicationBytes", delta("master_repl_offset"), "Bytes"))
    return measured


INFO_NETWORK = frozenset({"NetworkBytesIn", "NetworkBytesOut"})


def metrics_from_shaper(
    prev: miniature.NodeSample, cur: miniature.NodeSample, dt: float, node_id: str
) -> list[Row]:
    """A miniature node's network rows for the period between two shaper samples."""
    rows: list[Row] = []
    for direction, a, b in (("In", prev.into, cur.into), ("Out", prev.out, cur.out)):
        for metric, value in (
            (f"NetworkBytes{direction}", b.bytes - a.bytes),
            (f"NetworkPackets{direction}", b.packets - a.packets),
            (f"NetworkBandwidth{direction}AllowanceExceeded", b.exceeded - a.exceeded),
        ):
            if value >= 0:  # a counter that went back (qdisc replaced) says nothing
                unit = "Bytes" if metric.startswith("NetworkBytes") else "Count"
                rows.append(
                    {
                        "node_id": node_id,
                        "metric": metric,
                        "value": float(value),
                        "unit": unit,
                        "period_s": round(dt, 3),
                    }
                )
    return rows


def sample_dt(prev: dict[str, Any], cur: dict[str, Any], fallback: float) -> float:
    """Seconds between two snapshots by the server's clock when it reports one."""
    a, b = _num(prev, "server_time_usec"), _num(cur, "server_time_usec")
    if a is not None and b is not None and b > a:
        return (b - a) / 1e6
    return fallback


def _emit(out: Any, now: float, point_id: str, rows: list[Row]) -> None:
    for r in rows:
        out.writerow(
            [
                f"{now:.3f}",
                point_id,
                r["node_id"],
                r["metric"],
                r["value"],
                r["unit"],
                r["period_s"],
            ]
        )


class _Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise _Stop()


def _wait_registry(state_dir: Path, wait_s: float = 10.0) -> Registry | None:
    """The registry `up` writes right after starting this agent (None if it never comes)."""
    deadline = time.monotonic() + wait_s
    reg = read_registry(state_dir)
    while reg is None and time.monotonic() < deadline:
        time.sleep(0.1)
        reg = read_registry(state_dir)
    return reg


class _Sampler:
    """One INFO connection per node and the previous sample of each, for the rates."""

    def __init__(self, reg: Registry, password: str, mini: miniature.Provisioned | None):
        self.reg, self.password, self.mini = reg, password, mini
        self.cpu_cores = mini.miniature.cpu_limit_cores if mini else None
        self.conns: dict[str, Any] = {}
        self.prev: dict[str, tuple[dict[str, Any], float]] = {}
        self.shaped: tuple[dict[str, miniature.NodeSample], float] | None = None

    def servers(self, out: Any, alive: list[RegisteredNode]) -> None:
        """A row per metric of each live node's INFO (rates against its previous one)."""
        import redis

        from cachebench.redis_conn import connect

        for n in alive:
            try:
                if n.node_id not in self.conns:
                    self.conns[n.node_id] = connect(n.host, n.port, self.password)
                info = self.conns[n.node_id].execute_command("INFO", *SECTIONS)
            except redis.RedisError:
                if (conn := self.conns.pop(n.node_id, None)) is not None:
                    conn.close()
                self.prev.pop(n.node_id, None)
                continue
            now, mono = time.time(), time.monotonic()
            if isinstance(info, str):
                info = parse_info(info)
            before = self.prev.get(n.node_id)
            dt = sample_dt(before[0], info, mono - before[1]) if before else 0.0
            rows = metrics_from_info(
                before[0] if before else None,
                info,
                dt,
                n.node_id,
                self.reg.maxmemory_bytes,
                self.cpu_cores,
            )
            if self.mini is not None:  # its network: the shaped interface's, below
                rows = [r for r in rows if r["metric"] not in INFO_NETWORK]
            _emit(out, now, self.reg.deployment_id, rows)
            self.prev[n.node_id] = (info, mono)

    def shaping(self, out: Any) -> None:
        """A miniature's network, as its token buckets counted it."""
        if self.mini is None:
            return
        now, mono = time.time(), time.monotonic()
        current = miniature.sample(self.mini)
        for nid, cur in current.items():
            if self.shaped is not None and nid in self.shaped[0]:
                dt = mono - self.shaped[1]
                rows = metrics_from_shaper(self.shaped[0][nid], cur, dt, nid)
                _emit(out, now, self.reg.deployment_id, rows)
        self.shaped = (current, mono)


def _why_stop(reg: Registry, auth: Path, alive: list[RegisteredNode]) -> str | None:
    if time.time() >= reg.expires_at:
        return "expiry passed"
    if not auth.exists():
        return "auth file gone (down)"
    if not alive:
        return "every server is gone"
    return None


def run(state_dir: Path) -> int:
    reg = _wait_registry(state_dir)
    auth = Path(reg.runtime_dir) / "auth" if reg else None
    if reg is None or auth is None or not auth.exists():
        print("agent: no registry or auth file; exiting", flush=True)
        return 1
    sampler = _Sampler(reg, auth.read_text().strip(), miniature.provisioned(state_dir))
    path = state_dir / "metrics.csv"
    new = not path.exists() or path.stat().st_size == 0
    interval = reg.metrics_interval_seconds
    print(
        f"agent: sampling {len(reg.nodes)} nodes every {interval:g} s into {path}",
        flush=True,
    )
    with open(path, "a", newline="") as fh:
        out = csv.writer(fh)
        if new:
            out.writerow(COLUMNS)
            fh.flush()
        next_tick = time.monotonic()
        while True:
            alive = [n for n in reg.nodes if procs.pid_alive(n.pid)]
            if why := _why_stop(reg, auth, alive):
                print(f"agent: {why}; exiting", flush=True)
                return 0
            sampler.servers(out, alive)
            sampler.shaping(out)
            fh.flush()
            next_tick += interval
            pause = next_tick - time.monotonic()
            if pause < 0:  # fell behind (suspended?): do not burst to catch up
                next_tick = time.monotonic()
                pause = 0
            time.sleep(pause)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cachebench.targets.local.agent")
    ap.add_argument("--state-dir", required=True, type=Path)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        return run(args.state_dir.resolve())
    except _Stop:
        print("agent: stopped by signal", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
