"""CloudWatch AWS/ElastiCache metrics of every node of a replication group.

Nodes are the group's member clusters (describe_replication_groups); each is
asked with dimensions CacheClusterId=<member>, CacheNodeId=0001. Counters are
summed over the period, gauges averaged (the long table's convention).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

NAMESPACE = "AWS/ElastiCache"
PERIOD_S = 60
MAX_QUERIES = 500  # GetMetricData's limit per request
# metric -> (statistic, unit written to the long table)
METRICS: dict[str, tuple[str, str]] = {
    "CPUUtilization": ("Average", "Percent"),
    "EngineCPUUtilization": ("Average", "Percent"),
    "NetworkBytesIn": ("Sum", "Bytes"),
    "NetworkBytesOut": ("Sum", "Bytes"),
    "NetworkPacketsIn": ("Sum", "Count"),
    "NetworkPacketsOut": ("Sum", "Count"),
    "NetworkBandwidthInAllowanceExceeded": ("Sum", "Count"),
    "NetworkBandwidthOutAllowanceExceeded": ("Sum", "Count"),
    "NetworkPacketsPerSecondAllowanceExceeded": ("Sum", "Count"),
    "CurrConnections": ("Average", "Count"),
    "NewConnections": ("Sum", "Count"),
    "BytesUsedForCache": ("Average", "Bytes"),
    "DatabaseMemoryUsagePercentage": ("Average", "Percent"),
    "Evictions": ("Sum", "Count"),
    "CacheHits": ("Sum", "Count"),
    "CacheMisses": ("Sum", "Count"),
    "ReplicationLag": ("Average", "Seconds"),
    "GetTypeCmds": ("Sum", "Count"),
    "SetTypeCmds": ("Sum", "Count"),
}


def member_clusters(elasticache: Any, replication_group_id: str) -> tuple[str, list[str]]:
    """(status, member cluster ids) of a replication group."""
    rg = elasticache.describe_replication_groups(ReplicationGroupId=replication_group_id)
    group = rg["ReplicationGroups"][0]
    return group.get("Status", ""), sorted(group.get("MemberClusters", []))


def dimensions(node_id: str) -> list[dict[str, str]]:
    return [
        {"Name": "CacheClusterId", "Value": node_id},
        {"Name": "CacheNodeId", "Value": "0001"},
    ]


def window(start: float, end: float) -> tuple[datetime, datetime]:
    """[start, end] widened to whole periods (CloudWatch aligns datapoints on them)."""
    s = math.floor(start / PERIOD_S) * PERIOD_S
    e = max(math.ceil(end / PERIOD_S) * PERIOD_S, s + PERIOD_S)
    return datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)


def get_metric_data(
    cw: Any,
    queries: list[dict[str, Any]],
    start: datetime,
    end: datetime,
    batch: int = MAX_QUERIES,
) -> dict[str, list[tuple[datetime, float]]]:
    """Every datapoint of every query: batches of `batch` queries, each through boto3's
    paginator (one query's datapoints may span pages)."""
    out: dict[str, list[tuple[datetime, float]]] = {q["Id"]: [] for q in queries}
    pages = cw.get_paginator("get_metric_data")
    for i in range(0, len(queries), batch):
        for resp in pages.paginate(
            MetricDataQueries=queries[i : i + batch],
            StartTime=start,
            EndTime=end,
            ScanBy="TimestampAscending",
        ):
            for r in resp.get("MetricDataResults", []):
                out[r["Id"]].extend(zip(r.get("Timestamps", []), r.get("Values", []), strict=True))
    return out


def queries_for(
    node_ids: Iterable[str], metrics: dict[str, tuple[str, str]] | None = None
) -> tuple[list[dict[str, Any]], dict[str, tuple[str, str, str]]]:
    """GetMetricData queries for every (node, metric) and the map Id -> (node, metric, unit)."""
    metrics = metrics or METRICS
    queries, index = [], {}
    for n, node in enumerate(node_ids):
        for m, (name, (stat, unit)) in enumerate(metrics.items()):
            qid = f"n{n}m{m}"
            index[qid] = (node, name, unit)
            queries.append(
                {
                    "Id": qid,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": name,
                            "Dimensions": dimensions(node),
                        },
                        "Period": PERIOD_S,
                        "Stat": stat,
                    },
                    "ReturnData": True,
                }
            )
    return queries, index


def node_metrics(
    cw: Any,
    point_id: str,
    node_ids: list[str],
    start: float,
    end: float,
    batch: int = MAX_QUERIES,
):
    """The long metric table (models.METRIC_COLUMNS, period_s=60) of the nodes' window."""
    import pandas as pd

    from cachebench.report.export import normalize_metrics

    queries, index = queries_for(node_ids)
    t0, t1 = window(start, end)
    data = get_metric_data(cw, queries, t0, t1, batch=batch)
    rows = []
    for qid, points in data.items():
        node, metric, unit = index[qid]
        for ts, value in points:
            rows.append((ts, point_id, node, metric, float(value), unit, PERIOD_S))
    cols = ["timestamp", "point_id", "node_id", "metric", "value", "unit", "period_s"]
    frame = pd.DataFrame(rows, columns=cols)
    if not frame.empty:
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        frame = frame.sort_values(["timestamp", "node_id", "metric"], kind="stable")
    return normalize_metrics(frame)


def evictions_since(cw: Any, node_ids: list[str], start: float, now: float) -> float:
    """Evictions summed over the nodes from start to now (0 if CloudWatch has none yet)."""
    queries, _ = queries_for(node_ids, {"Evictions": METRICS["Evictions"]})
    t0, t1 = window(start, now)
    data = get_metric_data(cw, queries, t0, t1)
    return float(sum(v for points in data.values() for _, v in points))
