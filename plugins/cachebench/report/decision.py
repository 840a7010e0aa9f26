"""The "Decision" section: who wins, by how much, and how sure that is.

Works on the points that have results (``summary.csv`` rows) and their runs
(``runs.csv`` rows: one value per repetition). Every claim rests on the runs'
values through :mod:`cachebench.report.stats`: a point is compared with another
by the ratio of their runs' (geometric) means with its interval at the level the
two run counts need (95% to 99.4%, see stats.verdict_alpha), and a winner is named
only when that interval excludes no change and the effect is larger than
``min_effect_pct``; otherwise the sentence says why not ("no significant
difference" with the interval, or "not enough data for a verdict"). Runs that
measured their load generator rather than the server (client-bound) keep any
comparison they are part of from naming a winner; runs whose load generator CPU is
unknown (no cpu.json) are named in the comparison's sentence and in the stability
section. Pairwise comparisons only match points that are equal on every other
dimension.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise, product

import pandas as pd

from cachebench.report import stats

#: What identifies a point's configuration (version follows engine).
DIMENSIONS = ["target", "engine", "version", "topology", "node_type", "workload", "load_generators"]
ENGINE_NAMES = {"redis": "Redis", "valkey": "Valkey"}
#: (stats metric, runs.csv column, unit, format) of every comparison.
METRICS = (
    ("throughput", "ops_per_sec", "ops/s", ",.0f"),
    ("p99", "p99_ms", "ms", ".3f"),
    ("ops_per_dollar", "ops_per_dollar", "ops/$", ",.0f"),
)
VERDICT_WORDS = {
    "a_better": "{a} better",
    "b_better": "{b} better",
    "no_significant_difference": "no significant difference",
    "not_enough_data": "not enough data",
    "client_bound": "no verdict (client-bound runs)",
}


@dataclass
class Section:
    """One decision topic: a headline and the sentences backing it."""

    title: str
    headline: str
    details: list[str] = field(default_factory=list)


@dataclass
class Decision:
    sections: list[Section]
    comparisons: list[stats.Comparison]
    multiplicity: stats.Multiplicity
    slo: dict[str, stats.SloCheck]


def label(row: pd.Series | dict) -> str:
    """Human label of a point: engine version, topology, node type, workload."""
    parts = (f"{row['engine']} {row['version']}", row["topology"], row["node_type"])
    return ", ".join([*parts, row["workload"]])


def _finite(x: object) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


class Evidence:
    """Each point's per-run values of a metric, and which of its runs were client-bound."""

    def __init__(self, runs: pd.DataFrame):
        ok = runs[runs["status"] == "ok"].sort_values(["point_id", "repetition"])
        self._by_point = {pid: g for pid, g in ok.groupby("point_id", sort=False)}

    def side(self, point_id: str, column: str, name: str) -> stats.Side:
        g = self._by_point.get(point_id)
        if g is None:
            return stats.Side(name=name, values=())
        values = tuple(float(v) if _finite(v) else None for v in g[column])
        bound = tuple(bool(b) for b in g.get("client_bound", pd.Series(False, index=g.index)))
        known = tuple(bool(k) for k in g.get("load_cpu_known", pd.Series(True, index=g.index)))
        return stats.Side(name=name, values=values, client_bound=bound, cpu_known=known)

    def point(self, point_id: str, column: str) -> stats.PointStats:
        side = self.side(point_id, column, point_id)
        values = [v for v in side.values if v is not None and v > 0]
        return stats.point_stats(values, column)


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


class _Comparer:
    def __init__(self, ev: Evidence, min_effect_pct: float, priced: bool):
        self.ev, self.min_effect, self.priced = ev, min_effect_pct, priced
        self.made: list[stats.Comparison] = []

    def metrics(self) -> tuple[tuple[str, str, str, str], ...]:
        return METRICS if self.priced else METRICS[:2]

    def compare(self, a: pd.Series, b: pd.Series, name_a: str, name_b: str, metric: str,
                column: str) -> stats.Comparison:  # fmt: skip
        c = stats.compare(
            self.ev.side(a["point_id"], column, name_a),
            self.ev.side(b["point_id"], column, name_b),
            metric,  # type: ignore[arg-type]
            self.min_effect,
        )
        self.made.append(c)
        return c

    def pair(self, a: pd.Series, b: pd.Series, name_a: str, name_b: str, ctx: str) -> tuple:
        """One sentence over every metric of a vs b, and the comparisons made."""
        found = [self.compare(a, b, name_a, name_b, m, col) for m, col, _, _ in self.metrics()]
        parts = [c.sentence.split(": ", 1)[1].rstrip(".") for c in found]
        words = [f"{stats.METRIC_LABELS[c.metric]}: {p}" for c, p in zip(found, parts, strict=True)]
        return f"[{ctx}] {name_a} vs {name_b}: " + "; ".join(words) + ".", found


def _tally(found: list[stats.Comparison], name_a: str, name_b: str, what: str, pairs: int) -> str:
    counts = Counter(VERDICT_WORDS[c.verdict].format(a=name_a, b=name_b) for c in found)
    order = [f"{name_a} better", f"{name_b} better", "no significant difference",
             "not enough data", "no verdict (client-bound runs)"]  # fmt: skip
    said = ", ".join(f"{k} in {counts[k]}" for k in order if counts[k])
    n = len(found)
    return (
        f"{what} ({pairs} matched pair{'s' if pairs != 1 else ''}, {n} comparison"
        f"{'s' if n != 1 else ''}): {said}."
    )


def best_section(ok: pd.DataFrame, cmp: _Comparer, slo: dict[str, stats.SloCheck]) -> Section:
    """Best throughput, p99 and ops per dollar per workload, each against its runner-up."""
    details: list[str] = []
    heads: list[str] = []
    workloads = list(dict.fromkeys(ok["workload"]))
    for wl in workloads:
        d = ok[ok["workload"] == wl]
        prefix = f"[{wl}] " if len(workloads) > 1 else ""
        for metric, col, unit, fmt in cmp.metrics():
            pool = d
            among = ""
            if metric == "ops_per_dollar" and slo:
                pool = d[
                    d["point_id"].map(lambda p: slo.get(p) is not None and slo[p].status == "meets")
                ]
                among = " among the points that meet the p99 objective"
                if pool.empty:
                    details.append(f"{prefix}Ops per dollar: no point meets the p99 objective.")
                    continue
            ranked = _ranked(pool, col, metric, cmp.ev)
            if not ranked:
                continue
            best, mean, ps = ranked[0]
            what = stats.METRIC_LABELS[metric]
            head = f"{prefix}Best {what}{among}: {best['label']}, {_value(mean, ps, unit, fmt)}"
            if len(ranked) == 1:
                details.append(head + " (no other point to compare).")
                heads.append(f"{what}: {best['label']} (alone)")
                continue
            runner = ranked[1][0]
            c = cmp.compare(best, runner, best["label"], runner["label"], metric, col)
            details.append(f"{head}. Against the runner-up: {c.sentence}")
            verdict = "a clear winner" if c.winner else VERDICT_WORDS[c.verdict].format(a="", b="")
            heads.append(f"{what}: {best['label']} ({verdict})")
    if len(workloads) > 1:
        head = (
            f"{len(workloads)} workloads: winners are given per workload below "
            "(absolute numbers are not comparable across workloads)."
        )
    else:
        head = "Highest mean " + "; ".join(heads) + "." if heads else "Nothing to rank."
    return Section("Best overall", head, details)


def _ranked(d: pd.DataFrame, col: str, metric: str, ev: Evidence) -> list:
    out = []
    for _, row in d.iterrows():
        ps = ev.point(row["point_id"], col)
        if ps.mean is not None:
            out.append((row, ps.mean, ps))
    return sorted(out, key=lambda t: t[1], reverse=stats.HIGHER_IS_BETTER[metric])


def _value(mean: float, ps: stats.PointStats, unit: str, fmt: str) -> str:
    text = f"{mean:{fmt}} {unit}"
    if ps.interval is not None:
        text += f" (95% interval {ps.interval.low:{fmt}} to {ps.interval.high:{fmt}})"
    return text + f", {ps.n} run{'s' if ps.n != 1 else ''}"


def engine_section(ok: pd.DataFrame, cmp: _Comparer) -> Section:
    """Valkey vs Redis on points that differ only by engine (and its version)."""
    found, details, pairs = [], [], 0
    for g in _groups(ok, "engine", ignore=("version",)):
        for (_, v), (_, r) in product(
            g[g["engine"] == "valkey"].iterrows(), g[g["engine"] == "redis"].iterrows()
        ):
            pairs += 1
            line, made = cmp.pair(
                v, r, f"Valkey {v['version']}", f"Redis {r['version']}", _context(v, ("engine",))
            )
            details.append(line)
            found += made
    if not pairs:
        return Section("Redis vs Valkey", "No pair of points differs only by engine.")
    return Section("Redis vs Valkey", _tally(found, "Valkey", "Redis", "Valkey vs Redis", pairs),
                   details)  # fmt: skip


def topology_section(ok: pd.DataFrame, cmp: _Comparer) -> Section:
    """Cluster vs cluster-mode-off on points that differ only by topology."""
    found, details, pairs = [], [], 0
    for g in _groups(ok, "topology"):
        clusters = g[g["cluster_mode"].astype(bool)]
        singles = g[~g["cluster_mode"].astype(bool)]
        for (_, c), (_, s) in product(clusters.iterrows(), singles.iterrows()):
            pairs += 1
            name_c = f"{c['topology']} ({int(c['nodes'])} nodes)"
            name_s = f"{s['topology']} ({int(s['nodes'])} node{'s' if s['nodes'] != 1 else ''})"
            line, made = cmp.pair(c, s, name_c, name_s, _context(c, ("topology",)))
            details.append(line)
            found += made
    if not pairs:
        return Section("Single node vs cluster", "No pair of points differs only by topology.")
    head = _tally(found, "cluster", "single node", "Cluster vs single node", pairs)
    return Section("Single node vs cluster", head, details)


def _size_key(row: pd.Series) -> tuple:
    vals = [row.get("vcpu"), row.get("memory_gib"), row.get("price_usd_hour_node")]
    return (*[(0, v) if _finite(v) else (1, 0) for v in vals], row["node_type"])


def node_size_section(ok: pd.DataFrame, cmp: _Comparer) -> Section:
    """Each node type vs the next smaller one, on points that differ only by node type."""
    found, details, pairs = [], [], 0
    for g in _groups(ok, "node_type"):
        rows = sorted((r for _, r in g.iterrows()), key=_size_key)
        for small, big in pairwise(rows):
            if small["node_type"] == big["node_type"]:
                continue
            pairs += 1
            line, made = cmp.pair(
                big, small, big["node_type"], small["node_type"], _context(big, ("node_type",))
            )
            cb, cs = big.get("cluster_usd_hour"), small.get("cluster_usd_hour")
            if _finite(cb) and _finite(cs) and cs:
                line = line[:-1] + f"; price {cb / cs:.2f}x (${cb:.3f} vs ${cs:.3f}/h)."
            details.append(line)
            found += made
    if not pairs:
        return Section("Node size", "No pair of points differs only by node type.")
    head = _tally(found, "the larger node type", "the smaller node type", "Node size", pairs)
    return Section("Node size", head, details)


def slo_checks(ok: pd.DataFrame, ev: Evidence, slo_p99_ms: float | None) -> dict:
    if slo_p99_ms is None:
        return {}
    return {pid: stats.slo_check(ev.point(pid, "p99_ms"), slo_p99_ms) for pid in ok["point_id"]}


def slo_section(ok: pd.DataFrame, checks: dict[str, stats.SloCheck], ev: Evidence) -> Section:
    slo = next(iter(checks.values())).slo_p99_ms
    details = [f"{row['label']}: {checks[row['point_id']].sentence}" for _, row in ok.iterrows()]
    counts = Counter(c.status for c in checks.values())
    ranked = stats.rank_within_slo({p: ev.point(p, "ops_per_dollar") for p in checks}, checks)
    names = dict(zip(ok["point_id"], ok["label"], strict=True))
    head = (
        f"p99 objective {slo:g} ms: {counts['meets']} point(s) meet it, {counts['misses']} miss "
        f"it, {counts['undecided'] + counts['not_enough_data']} undecided or without enough "
        "data."
    )
    if ranked:
        head += (
            " By ops per dollar among those that meet it: "
            + ", ".join(names[p] for p in ranked)
            + "."
        )
    return Section("Latency objective", head, details)


def stability_section(ok: pd.DataFrame, runs: pd.DataFrame, ev: Evidence) -> Section | None:
    """Points whose repetitions disagree, runs that measured their load generator, and
    runs whose load generator CPU is unknown."""
    details = []
    for _, row in ok.iterrows():
        ps = ev.point(row["point_id"], "ops_per_sec")
        if ps.unstable:
            details.append(f"{row['label']}: {'; '.join(ps.reasons)}.")
    measured = runs[runs["status"] == "ok"]
    bound = measured[measured.get("client_bound", False).astype(bool)]
    for _, r in bound.iterrows():
        details.append(
            f"{label(r)} rep {int(r['repetition'])}: {r['client_bound_reason']}; kept out of "
            "winner claims."
        )
    known = measured.get("load_cpu_known", pd.Series(True, index=measured.index))
    unknown = measured[~known.astype(bool)]
    for _, r in unknown.iterrows():
        if not bool(r.get("client_bound", False)):
            details.append(
                f"{label(r)} rep {int(r['repetition'])}: load generator CPU unknown (no "
                "cpu.json); its comparisons say so."
            )
    if not details:
        return None
    n_unstable = sum("unstable" in d for d in details)
    head = (
        f"{n_unstable} point(s) unstable, {len(bound)} client-bound run(s), {len(unknown)} "
        "run(s) with load generator CPU unknown: their comparisons carry wide intervals, no "
        "verdict or that caveat."
    )
    return Section("Stability", head, details)


def decide(
    ok: pd.DataFrame,
    runs: pd.DataFrame,
    min_effect_pct: float = 2.0,
    slo_p99_ms: float | None = None,
) -> Decision:
    """All decision sections for the points with results (``label`` column added if absent)."""
    if ok.empty:
        empty = stats.multiplicity([])
        return Decision(
            [Section("Nothing finished", "No point finished, so there is nothing to compare.")],
            [],
            empty,
            {},
        )
    ok = ok.copy()
    if "label" not in ok:
        ok["label"] = ok.apply(label, axis=1)
    ev = Evidence(runs)
    priced = bool(pd.to_numeric(ok["ops_per_dollar"], errors="coerce").notna().any())
    cmp = _Comparer(ev, min_effect_pct, priced)
    checks = slo_checks(ok, ev, slo_p99_ms)
    sections = [
        best_section(ok, cmp, checks),
        engine_section(ok, cmp),
        topology_section(ok, cmp),
        node_size_section(ok, cmp),
    ]
    if checks:
        sections.append(slo_section(ok, checks, ev))
    if (stab := stability_section(ok, runs, ev)) is not None:
        sections.append(stab)
    return Decision(sections, cmp.made, stats.multiplicity(cmp.made), checks)
