"""Metric mapping of the local agent: INFO snapshots -> CloudWatch-named rows."""

from __future__ import annotations

import pytest

from cachebench.models import METRIC_COLUMNS
from cachebench.targets.local.agent import COLUMNS, metrics_from_info, parse_info, sample_dt

INFO_1 = """\
# Server
redis_version:7.2.4
server_time_usec:1000000000
# Clients
connected_clients:3
# Memory
used_memory:1000000
maxmemory:0
# Stats
total_connections_received:10
total_net_input_bytes:5000
total_net_output_bytes:9000
evicted_keys:1
keyspace_hits:100
keyspace_misses:20
# Replication
role:master
connected_slaves:1
slave0:ip=127.0.0.1,port=27001,state=online,offset=100,lag=0
master_repl_offset:1000
# CPU
used_cpu_sys:1.000000
used_cpu_user:2.000000
used_cpu_sys_main_thread:0.500000
used_cpu_user_main_thread:1.000000
# Commandstats
cmdstat_get:calls=50,usec=100,usec_per_call=2.00,rejected_calls=0,failed_calls=0
cmdstat_mget:calls=5,usec=10,usec_per_call=2.00,rejected_calls=0,failed_calls=0
cmdstat_set:calls=30,usec=100,usec_per_call=3.33,rejected_calls=0,failed_calls=0
cmdstat_info:calls=7,usec=700,usec_per_call=100.00,rejected_calls=0,failed_calls=0
# Keyspace
db0:keys=40,expires=0,avg_ttl=0
"""

INFO_2 = (
    INFO_1.replace("server_time_usec:1000000000", "server_time_usec:1002000000")
    .replace("connected_clients:3", "connected_clients:5")
    .replace("used_memory:1000000", "used_memory:1500000")
    .replace("total_connections_received:10", "total_connections_received:14")
    .replace("total_net_input_bytes:5000", "total_net_input_bytes:7000")
    .replace("total_net_output_bytes:9000", "total_net_output_bytes:19000")
    .replace("evicted_keys:1", "evicted_keys:4")
    .replace("keyspace_hits:100", "keyspace_hits:160")
    .replace("keyspace_misses:20", "keyspace_misses:25")
    .replace("master_repl_offset:1000", "master_repl_offset:3048")
    .replace("used_cpu_sys:1.000000", "used_cpu_sys:1.300000")
    .replace("used_cpu_user:2.000000", "used_cpu_user:2.500000")
    .replace("used_cpu_sys_main_thread:0.500000", "used_cpu_sys_main_thread:0.700000")
    .replace("used_cpu_user_main_thread:1.000000", "used_cpu_user_main_thread:1.200000")
    .replace("cmdstat_get:calls=50", "cmdstat_get:calls=110")
    .replace("cmdstat_set:calls=30", "cmdstat_set:calls=36")
    .replace("cmdstat_info:calls=7", "cmdstat_info:calls=9")
    .replace("db0:keys=40", "db0:keys=46")
    + "cmdstat_mset:calls=2,usec=10,usec_per_call=5.00,rejected_calls=0,failed_calls=0\n"
    + "db1:keys=4,expires=0,avg_ttl=0\n"
)


def by_metric(rows):
    out = {}
    for r in rows:
        assert r["metric"] not in out, f"duplicate {r['metric']}"
        out[r["metric"]] = r
    return out


def test_columns_match_models():
    assert COLUMNS == METRIC_COLUMNS


def test_parse_info_shapes():
    info = parse_info(INFO_1)
    assert info["used_memory"] == 1000000
    assert info["used_cpu_sys"] == 1.0
    assert info["role"] == "master"
    assert info["cmdstat_get"]["calls"] == 50
    assert info["db0"] == {"keys": 40, "expires": 0, "avg_ttl": 0}


def test_first_sample_gauges_only():
    rows = metrics_from_info(None, parse_info(INFO_1), 0.0, "0001-001", maxmemory=4_000_000)
    m = by_metric(rows)
    assert set(m) == {
        "CurrConnections",
        "BytesUsedForCache",
        "DatabaseMemoryUsagePercentage",
        "CurrItems",
        "IsMaster",
    }
    assert m["CurrConnections"]["value"] == 3
    assert m["BytesUsedForCache"] == {
        "node_id": "0001-001",
        "metric": "BytesUsedForCache",
        "value": 1000000.0,
        "unit": "Bytes",
        "period_s": 0.0,
    }
    assert m["DatabaseMemoryUsagePercentage"]["value"] == pytest.approx(25.0)
    assert m["CurrItems"]["value"] == 40
    assert m["IsMaster"]["value"] == 1


def test_two_snapshots():
    prev, cur = parse_info(INFO_1), parse_info(INFO_2)
    dt = sample_dt(prev, cur, fallback=99.0)
    assert dt == pytest.approx(2.0)
    m = by_metric(metrics_from_info(prev, cur, dt, "0001-001", maxmemory=3_000_000))
    assert m["CPUUtilization"]["value"] == pytest.approx(100 * 0.8 / 2)  # 40 %
    assert m["CPUUtilization"]["unit"] == "Percent"
    assert m["EngineCPUUtilization"]["value"] == pytest.approx(100 * 0.4 / 2)  # 20 %
    assert m["NetworkBytesIn"]["value"] == 2000
    assert m["NetworkBytesOut"]["value"] == 10000
    assert m["NetworkBytesIn"]["unit"] == "Bytes"
    assert m["NewConnections"]["value"] == 4
    assert m["CurrConnections"]["value"] == 5
    assert m["Evictions"]["value"] == 3
    assert m["CacheHits"]["value"] == 60
    assert m["CacheMisses"]["value"] == 5
    assert m["GetTypeCmds"]["value"] == 60  # get +60, mget +0; INFO is not counted
    assert m["SetTypeCmds"]["value"] == 8  # set +6, mset appears with 2
    assert m["CurrItems"]["value"] == 50  # db0 + db1
    assert m["BytesUsedForCache"]["value"] == 1500000
    assert m["DatabaseMemoryUsagePercentage"]["value"] == pytest.approx(50.0)
    assert m["ReplicationBytes"]["value"] == 2048
    assert m["IsMaster"]["value"] == 1
    assert {r["period_s"] for r in m.values()} == {2.0}
    assert {r["node_id"] for r in m.values()} == {"0001-001"}
    units = {r["metric"]: r["unit"] for r in m.values()}
    assert units["CacheHits"] == units["CurrItems"] == "Count"


def test_replica_has_no_replication_bytes_and_is_not_master():
    replica = INFO_1.replace("role:master", "role:slave").replace("connected_slaves:1", "")
    replica2 = INFO_2.replace("role:master", "role:slave").replace("connected_slaves:1", "")
    m = by_metric(metrics_from_info(parse_info(replica), parse_info(replica2), 2.0, "0001-002", 0))
    assert "ReplicationBytes" not in m
    assert m["IsMaster"]["value"] == 0


def test_no_maxmemory_no_percentage():
    m = by_metric(metrics_from_info(None, parse_info(INFO_1), 0.0, "n", maxmemory=0))
    assert "DatabaseMemoryUsagePercentage" not in m


def test_maxmemory_from_info_when_not_given():
    info = parse_info(INFO_1.replace("maxmemory:0", "maxmemory:2000000"))
    m = by_metric(metrics_from_info(None, info, 0.0, "n", maxmemory=0))
    assert m["DatabaseMemoryUsagePercentage"]["value"] == pytest.approx(50.0)


def test_counter_reset_skips_rates():
    # cur older than prev: the server restarted between samples.
    m = by_metric(metrics_from_info(parse_info(INFO_2), parse_info(INFO_1), 1.0, "n", 0))
    for metric in ("CPUUtilization", "NetworkBytesIn", "CacheHits", "GetTypeCmds"):
        assert metric not in m
    assert m["CurrConnections"]["value"] == 3


def test_accepts_redis_py_parsed_info():
    from redis._parsers.helpers import parse_info as redis_parse

    ours = metrics_from_info(parse_info(INFO_1), parse_info(INFO_2), 2.0, "n", 3_000_000)
    theirs = metrics_from_info(redis_parse(INFO_1), redis_parse(INFO_2), 2.0, "n", 3_000_000)
    assert ours == theirs


def test_sample_dt_falls_back_without_server_time():
    a = parse_info(INFO_1.replace("server_time_usec:1000000000\n", ""))
    assert sample_dt(a, parse_info(INFO_2), fallback=1.5) == 1.5
