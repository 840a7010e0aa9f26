"""The "Decision" section: who wins, and by how much, in plain sentences.

Works on the successful rows of ``summary.csv`` (one per point). Pairwise
comparisons only match points that are equal on every other dimension.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from itertools import pairwise, product

import pandas as pd

#: What identifies a point's configuration (version follows engine).
DIMENSIONS = [
    "target",
    "engine",
    "version",
    "topology",
    "node_type",
    "workload",
    "load_generators",
]
ENGINE_NAMES = {"redis": "Redis", "valkey": "Valkey"}


@dataclass
class Section:
    """One decision topic: a headline and the sentences backing it."""

    title: str
    headline: str
    details: list[str] = field(default_factory=list)


def label(row: pd.Series | dict) -> str:
    """Human label of a point: engine version, topology, node type, workload."""
    parts = (f"{row['engine']} {row['version']}", row["topology"], row["node_type"])
    return ", ".join([*parts, row["workload"]])


def _finite(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def more(a: float, b: float) -> str:
    """How much larger ``a`` is than ``b``: '+12.3%' or '2.50x'."""
    if not b:
        return "n/a"
    r = a / b
    return f"{r:.2f}x" if r >= 2 else f"+{(r - 1) * 100:.1f}%"


def less(a: float, b: float) -> str:
    """How much smaller ``a`` is than ``b``, as '12.3% lower'."""
    return f"{(1 - a / b) * 100:.1f}% lower" if b else "n/a"


def _runner_up(
    df: pd.DataFrame, col: str, high: bool, what: str, unit: str, fmt: str, prefix: str
) -> str | None:
    d = df[df[col].map(_finite)].sort_values(col, ascending=not high, kind="stable")
    if d.empty:
        return None
    best = d.iloc[0]
    head = f"{prefix}Best {what}: {best['label']} with {best[col]:{fmt}} {unit}"
    if len(d) == 1:
        return head + " (no other point to compare)."
    nxt = d.iloc[1]
    if best[col] == nxt[col]:
        return f"{head}, tied with {nxt['label']}."
    gap = more(best[col], nxt[col]).lstrip("+") + " more" if high else less(best[col], nxt[col])
    return f"{head}, {gap} than the runner-up {nxt['label']} ({nxt[col]:{fmt}} {unit})."


def best_section(ok: pd.DataFrame) -> Section:
    """Best throughput, p99 and ops per dollar (per workload when there are several)."""
    details: list[str] = []
    winners: list[str] = []
    workloads = list(dict.fromkeys(ok["workload"]))
    for wl in workloads:
        d = ok[ok["workload"] == wl]
        prefix = f"[{wl}] " if len(workloads) > 1 else ""
        for col, high, what, unit, fmt in (
            ("ops_per_sec", True, "throughput", "ops/s", ",.0f"),
            ("p99_ms", False, "p99 latency", "ms", ".3f"),
            ("mops_per_dollar", True, "ops per dollar", "M ops/$", ",.1f"),
        ):
            s = _runner_up(d, col, high, what, unit, fmt, prefix)
            if s is None and col == "mops_per_dollar":
                s = f"{prefix}Ops per dollar: no price known for these node types."
            elif s is not None:
                top = d.loc[d[col].map(_finite)].sort_values(col, ascending=not high).iloc[0]
                winners.append(f"{what}: {top['label']} ({top[col]:{fmt}} {unit})")
            if s:
                details.append(s)
    if len(workloads) > 1:
        head = (
            f"{len(workloads)} workloads: winners are given per workload below "
            "(absolute numbers are not comparable across workloads)."
        )
    else:
        head = "Winners by " + "; ".join(winners) + "."
    return Section("Best overall", head, details)


def _groups(ok: pd.DataFrame, vary: str, ignore: tuple[str, ...] = ()) -> list[pd.DataFrame]:
    """Groups of points equal on every dimension except ``vary`` (and ``ignore``)."""
    key = [c for c in DIMENSIONS if c != vary and c not in ignore]
    return [g for _, g in ok.groupby(key, sort=False, dropna=False) if g[vary].nunique() > 1]


def _context(row: pd.Series, vary: tuple[str, ...]) -> str:
    parts = [
        f"{row['engine']} {row['version']}" if "engine" not in vary else None,
        row["topology"] if "topology" not in vary else None,
        row["node_type"] if "node_type" not in vary else None,
        row["workload"],
    ]
    return ", ".join(str(p) for p in parts if p is not None)


def compare(a: pd.Series, b: pd.Series, name_a: str, name_b: str, ctx: str) -> str:
    """One sentence: ``a`` vs ``b`` on throughput, p99 and (when priced) ops per dollar."""
    oa, ob = a["ops_per_sec"], b["ops_per_sec"]
    win = name_a if oa >= ob else name_b
    s = (
        f"[{ctx}] {name_a} vs {name_b}: {win} wins throughput by "
        f"{more(max(oa, ob), min(oa, ob))} ({oa:,.0f} vs {ob:,.0f} ops/s)"
    )
    pa_, pb = a["p99_ms"], b["p99_ms"]
    if _finite(pa_) and _finite(pb):
        low = name_a if pa_ <= pb else name_b
        s += f"; p99 {pa_:.3f} vs {pb:.3f} ms ({low} {less(min(pa_, pb), max(pa_, pb))})"
    da, db = a.get("mops_per_dollar"), b.get("mops_per_dollar")
    if _finite(da) and _finite(db):
        cheap = name_a if da >= db else name_b
        s += f"; ops per dollar {da:,.1f} vs {db:,.1f} M ({cheap} {more(max(da, db), min(da, db))})"
    return s + "."


def _tally(pairs: list[tuple[pd.Series, pd.Series]], name_a: str, name_b: str, what: str) -> str:
    """Headline over pairs (a, b): who wins on throughput, how often and by how much."""
    n = len(pairs)
    gains = pd.Series(
        [a["ops_per_sec"] / b["ops_per_sec"] - 1 for a, b in pairs if b["ops_per_sec"]]
    )
    med = gains.median() * 100 if len(gains) else float("nan")
    leader = name_a if med >= 0 else name_b
    s = (
        f"{what} ({n} matched pair{'s' if n != 1 else ''}): {leader} wins on throughput; "
        f"{name_a} is higher in {int((gains > 0).sum())} of {n} (median {med:+.1f}%), "
        f"has lower p99 in {sum(a['p99_ms'] < b['p99_ms'] for a, b in pairs)} of {n}"
    )
    priced = [
        (a, b) for a, b in pairs if _finite(a["mops_per_dollar"]) and _finite(b["mops_per_dollar"])
    ]
    if priced:
        better = sum(a["mops_per_dollar"] > b["mops_per_dollar"] for a, b in priced)
        s += f" and better ops per dollar in {better} of {len(priced)}"
    return s + "."


def engine_section(ok: pd.DataFrame) -> Section:
    """Valkey vs Redis on points that differ only by engine (and its version)."""
    pairs, details = [], []
    for g in _groups(ok, "engine", ignore=("version",)):
        for (_, v), (_, r) in product(
            g[g["engine"] == "valkey"].iterrows(), g[g["engine"] == "redis"].iterrows()
        ):
            pairs.append((v, r))
            ctx = _context(v, ("engine",))
            details.append(compare(v, r, f"Valkey {v['version']}", f"Redis {r['version']}", ctx))
    if not pairs:
        return Section("Redis vs Valkey", "No pair of points differs only by engine.")
    return Section("Redis vs Valkey", _tally(pairs, "Valkey", "Redis", "Valkey vs Redis"), details)


def topology_section(ok: pd.DataFrame) -> Section:
    """Cluster vs cluster-mode-off on points that differ only by topology."""
    pairs, details = [], []
    for g in _groups(ok, "topology"):
        clusters, singles = (
            g[g["cluster_mode"].astype(bool)],
            g[~g["cluster_mode"].astype(bool)],
        )
        for (_, c), (_, s) in product(clusters.iterrows(), singles.iterrows()):
            pairs.append((c, s))
            name_c = f"{c['topology']} ({c['nodes']} nodes)"
            name_s = f"{s['topology']} ({s['nodes']} node{'s' if s['nodes'] != 1 else ''})"
            details.append(compare(c, s, name_c, name_s, _context(c, ("topology",))))
    if not pairs:
        return Section("Single node vs cluster", "No pair of points differs only by topology.")
    head = _tally(pairs, "cluster", "single node", "Cluster vs single node")
    return Section("Single node vs cluster", head, details)


def _size_key(row: pd.Series) -> tuple:
    vals = [row.get("vcpu"), row.get("memory_gib"), row.get("price_usd_hour_node")]
    return (*[(0, v) if _finite(v) else (1, 0) for v in vals], row["node_type"])


def node_size_section(ok: pd.DataFrame) -> Section:
    """Each node type vs the next smaller one, on points that differ only by node type."""
    pairs, details = [], []
    for g in _groups(ok, "node_type"):
        rows = sorted((r for _, r in g.iterrows()), key=_size_key)
        for small, big in pairwise(rows):
            if small["node_type"] == big["node_type"]:
                continue
            pairs.append((big, small))
            line = compare(
                big,
                small,
                big["node_type"],
                small["node_type"],
                _context(big, ("node_type",)),
            )
            cb, cs = big.get("cluster_usd_hour"), small.get("cluster_usd_hour")
            if _finite(cb) and _finite(cs) and cs:
                line = line[:-1] + f"; price {more(cb, cs)} (${cb:.3f} vs ${cs:.3f}/h)."
            details.append(line)
    if not pairs:
        return Section("Node size", "No pair of points differs only by node type.")
    head = _tally(pairs, "the larger node type", "the smaller node type", "Node size")
    return Section("Node size", head, details)


def decide(ok: pd.DataFrame) -> list[Section]:
    """All decision sections for the successful points (``label`` column added if absent)."""
    if ok.empty:
        return [Section("Nothing finished", "No point finished, so there is nothing to compare.")]
    ok = ok.copy()
    if "label" not in ok:
        ok["label"] = ok.apply(label, axis=1)
    ok["mops_per_dollar"] = pd.to_numeric(ok["ops_per_dollar"], errors="coerce") / 1e6
    return [
        best_section(ok),
        engine_section(ok),
        topology_section(ok),
        node_size_section(ok),
    ]
