"""The decisions of a report: who wins, by how much, and how sure that is, as data.

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
dimension. A best is named only when it is significantly ahead of every other
point of its workload; otherwise the answer lists the points it cannot tell apart.

Everything is one :class:`Decisions` model, written as ``decisions.json`` in the
run's folder: the report's templates, its decision figure, its blog snippets and
the CLI's headlines all read it. Each section is a question; its ``rows`` are the
comparisons behind it (one row each of the decision figure, grouped by ``group``),
its ``answers`` the lines of the report's one-screen summary, in words a reader of
a blog post understands.
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from itertools import pairwise, product
from pathlib import Path
from typing import Literal

import pandas as pd

from cachebench.models import Strict
from cachebench.report import stats
from cachebench.report.palette import configuration

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
FILE = "decisions.json"
#: Each section's question, as a reader would ask it ("" for the stability notes).
ASKS = {
    "best": "Which configuration is best?",
    "engine": "Redis or Valkey?",
    "topology": "Single node or cluster?",
    "node_size": "Which node size?",
    "slo": "Which meet the p99 objective?",
    "stability": "",
    "nothing": "",
}


class Row(Strict):
    """One comparison: a row of the decision figure (a ratio a / b with its interval)."""

    section: str
    group: str  # the figure's group heading: "Redis vs Valkey: throughput"
    label: str  # "Valkey 9.1 vs Redis 7.0, local.t4g.micro"
    a_point: str | None = None  # point ids; None for another run's (e.g. a baseline)
    b_point: str | None = None
    verdict_word: str  # "Valkey 9.1 better", "no significant difference", "withheld: ..."
    withheld: bool  # client-bound runs or not enough data: no verdict could be given
    comparison: stats.Comparison


class Answer(Strict):
    """One line of the report's one-screen summary."""

    subject: str  # what was compared: "Valkey 9.1 vs Redis 7.0, throughput, local.t4g.micro"
    answer: str  # the winner, "no clear difference", "cannot tell apart: ...", "no answer"
    by_how_much: str = ""  # "18.3% more throughput than Redis 7.0" (the winner's gain)
    interval: str = ""  # "+9.1% to +28.0%, 95.3% interval" (of by_how_much's change)
    why_not: str = ""  # plain words; "" when answered
    configurations: tuple[str, ...] = ()  # configurations the answer names (their colours)


class Section(Strict):
    """One question of the report: its headline, the sentences backing it, its summary
    lines and the comparisons behind them."""

    key: str
    title: str
    ask: str = ""
    headline: str
    details: tuple[str, ...] = ()
    answers: tuple[Answer, ...] = ()
    rows: tuple[Row, ...] = ()


class Caveat(Strict):
    """One cause that limits what the numbers mean, and every deployment or point it
    applies to."""

    cause: str
    text: str
    applies_to: tuple[str, ...] = ()


class Configuration(Strict):
    """A configuration (a point less its workload), its colour in every figure, its points."""

    label: str
    colour: str
    points: tuple[str, ...] = ()


class Decisions(Strict):
    """``decisions.json``: everything the report decided, for its templates and the CLI."""

    schema_version: Literal[1] = 1
    campaign: str = ""
    min_effect_pct: float
    slo_p99_ms: float | None = None
    configurations: tuple[Configuration, ...] = ()
    caveats: tuple[Caveat, ...] = ()
    sections: tuple[Section, ...]
    multiplicity: stats.Multiplicity
    slo: dict[str, stats.SloCheck] = {}

    @property
    def rows(self) -> list[Row]:
        return [r for s in self.sections for r in s.rows]

    @property
    def comparisons(self) -> list[stats.Comparison]:
        return [r.comparison for r in self.rows]

    def colours(self) -> dict[str, str]:
        """Each configuration's colour, by its label."""
        return {c.label: c.colour for c in self.configurations}

    def write(self, run_dir: Path) -> Path:
        path = Path(run_dir) / FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def read(cls, run_dir: Path) -> Decisions:
        return cls.model_validate_json((Path(run_dir) / FILE).read_text())


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


class _Short:
    """Short names of points for the figure and the summary: only the dimensions that
    vary across the campaign's points."""

    def __init__(self, ok: pd.DataFrame):
        self.vary = {c for c in ("engine", "version", "topology", "node_type", "workload")
                     if ok[c].nunique() > 1}  # fmt: skip

    def __call__(self, row: pd.Series, drop: str = "") -> str:
        parts = []
        if {"engine", "version"} & self.vary and drop != "engine":
            parts.append(f"{row['engine']} {row['version']}")
        parts += [str(row[c]) for c in ("topology", "node_type", "workload")
                  if c in self.vary and c != drop]  # fmt: skip
        return ", ".join(parts)


def _turned(c: stats.Comparison, as_measured: bool = False) -> bool:
    """Whether the summary states ``c`` from b's side: b won, so say what b gains."""
    return c.verdict == "b_better" and not as_measured


def change_words(c: stats.Comparison, than: str = "", as_measured: bool = False) -> str:
    """'18.3% more throughput', '20.0% lower p99 latency', or '': the winner's against the
    other's (b's against a's when b won), else (or ``as_measured``) a's against b's."""
    if c.ratio is None:
        return ""
    ratio = 1 / c.ratio if _turned(c, as_measured) else c.ratio
    up = ratio >= 1
    if stats.HIGHER_IS_BETTER[c.metric]:
        way = "more" if up else "less"
    else:
        way = "higher" if up else "lower"
    text = f"{100 * abs(ratio - 1):.1f}% {way} {stats.METRIC_LABELS[c.metric]}"
    return f"{text} than {than}" if than else text


def interval_words(c: stats.Comparison, as_measured: bool = False) -> str:
    """'+9.1% to +28.0%, 95.3% interval' (the side :func:`change_words` takes), or ''."""
    iv = c.interval
    if iv is None:
        return ""
    low, high = (1 / iv.high, 1 / iv.low) if _turned(c, as_measured) else (iv.low, iv.high)
    level = stats.level_text(iv.level)
    return f"{stats.pct_text(low)} to {stats.pct_text(high)}, {level} interval"


def _pair_change(c: stats.Comparison) -> str:
    """A pair's 'by how much': the winner's gain over the other, or what a measured
    against b when there is no winner."""
    if c.winner is not None:
        return change_words(c, c.a if _turned(c) else c.b)
    if c.ratio is None:
        return ""
    return f"{c.a}: {change_words(c, c.b)} (measured)"


def why_not_words(c: stats.Comparison) -> str:
    """Why a comparison names no winner, in words a reader of a blog post understands;
    '' when it names one."""
    runs = f"{c.n_a} and {c.n_b} runs"
    if c.verdict == "client_bound":
        k = c.client_bound_runs
        return (
            f"in {k} of the {c.n_a + c.n_b} runs the load generator, not the server, was the "
            "bottleneck: those runs measured the load generator"
        )
    if c.verdict == "not_enough_data":
        if min(c.n_a, c.n_b) < 2:
            return f"too few runs to tell ({runs}; at least 2 on each side are needed)"
        return "every run gave the same number, so how much runs vary is unknown"
    if c.verdict == "no_significant_difference":
        if c.interval is not None and c.interval.excludes(1.0):
            return (
                f"the difference is smaller than the {c.min_effect_pct:g}% this campaign "
                "counts as a difference (min_effect_pct)"
            )
        return f"too close to call: the {runs} vary more than they differ"
    return ""


def answer_words(c: stats.Comparison) -> str:
    """The summary's answer cell: the winner, or why there is none in two words."""
    if c.winner is not None:
        return c.winner
    if c.verdict == "no_significant_difference":
        under = c.interval is not None and c.interval.excludes(1.0)
        return f"no difference over {c.min_effect_pct:g}%" if under else "no clear difference"
    return "no answer"


def _verdict_word(c: stats.Comparison, name_a: str, name_b: str) -> str:
    """The decision figure's word for a row (its points by their short names)."""
    if c.verdict in ("a_better", "b_better"):
        return f"{name_a if c.verdict == 'a_better' else name_b} better"
    if c.verdict == "client_bound":
        return "withheld: client-bound"
    if c.verdict == "not_enough_data":
        return "withheld: too few runs"
    return answer_words(c)


class _Comparer:
    def __init__(self, ev: Evidence, min_effect_pct: float, priced: bool, short: _Short):
        self.ev, self.min_effect, self.priced, self.short = ev, min_effect_pct, priced, short

    def metrics(self) -> tuple[tuple[str, str, str, str], ...]:
        return METRICS if self.priced else METRICS[:2]

    def compare(self, a: pd.Series, b: pd.Series, name_a: str, name_b: str, metric: str,
                column: str) -> stats.Comparison:  # fmt: skip
        return stats.compare(
            self.ev.side(a["point_id"], column, name_a),
            self.ev.side(b["point_id"], column, name_b),
            metric,  # type: ignore[arg-type]
            self.min_effect,
        )

    def row(self, section: str, group: str, label: str, a: pd.Series, b: pd.Series,
            c: stats.Comparison, names: tuple[str, str] | None = None) -> Row:  # fmt: skip
        return Row(
            section=section,
            group=group,
            label=label,
            a_point=a["point_id"],
            b_point=b["point_id"],
            verdict_word=_verdict_word(c, *(names or (c.a, c.b))),
            withheld=c.verdict in ("client_bound", "not_enough_data"),
            comparison=c,
        )


class _Pairs:
    """A pairwise section (engine, topology, node size): its sentences, rows and answers."""

    def __init__(self, cmp: _Comparer, key: str, title: str, vary: str):
        self.cmp, self.key, self.title, self.vary = cmp, key, title, vary
        self.found: list[stats.Comparison] = []
        self.details: list[str] = []
        self.rows: list[Row] = []
        self.answers: list[Answer] = []
        self.pairs = 0

    def add(self, a: pd.Series, b: pd.Series, name_a: str, name_b: str, extra: str = "") -> None:
        """a vs b on every metric: one sentence, a row and an answer per metric."""
        self.pairs += 1
        cmp = self.cmp
        found = [cmp.compare(a, b, name_a, name_b, m, col) for m, col, _, _ in cmp.metrics()]
        parts = [c.sentence.split(": ", 1)[1].rstrip(".") for c in found]
        words = [f"{stats.METRIC_LABELS[c.metric]}: {p}" for c, p in zip(found, parts, strict=True)]
        ctx = _context(a, (self.vary,))
        self.details.append(f"[{ctx}] {name_a} vs {name_b}: " + "; ".join(words) + extra + ".")
        where = cmp.short(a, drop=self.vary)
        label = f"{name_a} vs {name_b}" + (f", {where}" if where else "")
        for c in found:
            what = stats.METRIC_LABELS[c.metric]
            lower = "" if stats.HIGHER_IS_BETTER[c.metric] else " (lower is better)"
            self.rows.append(cmp.row(self.key, f"{self.title}: {what}{lower}", label, a, b, c))
            self.answers.append(
                Answer(
                    subject=f"{name_a} vs {name_b}, {what}" + (f", {where}" if where else ""),
                    answer=answer_words(c),
                    by_how_much=_pair_change(c),
                    interval=interval_words(c),
                    why_not=why_not_words(c),
                    configurations=(configuration(a), configuration(b)),
                )
            )
        self.found += found

    def section(self, names: tuple[str, str], what: str, none: str) -> Section:
        if not self.pairs:
            return Section(key=self.key, title=self.title, ask=ASKS[self.key], headline=none)
        return Section(
            key=self.key,
            title=self.title,
            ask=ASKS[self.key],
            headline=_tally(self.found, *names, what, self.pairs),
            details=tuple(self.details),
            answers=tuple(self.answers),
            rows=tuple(self.rows),
        )


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
    """Best throughput, p99 and ops per dollar per workload: the point with the best mean,
    against every other point. It is named best only when it is significantly ahead of
    all of them; otherwise the answer names the points it cannot tell apart from it."""
    workloads = list(dict.fromkeys(ok["workload"]))
    best = _Best(cmp)
    for wl in workloads:
        d = ok[ok["workload"] == wl]
        best.start(wl, several=len(workloads) > 1)
        for metric, col, unit, fmt in cmp.metrics():
            pool, among = d, ""
            if metric == "ops_per_dollar" and slo:
                pool = d[
                    d["point_id"].map(lambda p: slo.get(p) is not None and slo[p].status == "meets")
                ]
                among = " among the points that meet the p99 objective"
                if pool.empty:
                    best.details.append(
                        f"{best.prefix}Ops per dollar: no point meets the p99 objective."
                    )
                    continue
            if ranked := _ranked(pool, col, metric, cmp.ev):
                best.add(ranked, metric, col, _value(ranked[0][1], ranked[0][2], unit, fmt), among)
    if len(workloads) > 1:
        head = (
            f"{len(workloads)} workloads: winners are given per workload below "
            "(absolute numbers are not comparable across workloads)."
        )
    else:
        head = "; ".join(best.heads) + "." if best.heads else "Nothing to rank."
        head = head[0].upper() + head[1:]
    return Section(
        key="best",
        title="Best overall",
        ask=ASKS["best"],
        headline=head,
        details=tuple(best.details),
        answers=tuple(best.answers),
        rows=tuple(best.rows),
    )


class _Best:
    """The best section's sentences, headline parts, rows and answers, one ranking at a
    time."""

    def __init__(self, cmp: _Comparer):
        self.cmp = cmp
        self.prefix = self.suffix = ""
        self.details: list[str] = []
        self.heads: list[str] = []
        self.rows: list[Row] = []
        self.answers: list[Answer] = []

    def start(self, wl: str, *, several: bool) -> None:
        """The rankings of workload wl follow: named in every sentence when there are several."""
        self.prefix = f"[{wl}] " if several else ""
        self.suffix = f" ({wl})" if several else ""

    def add(self, ranked: list, metric: str, col: str, value: str, among: str) -> None:
        """The top of `ranked` (best mean first; `value` its mean as shown) on metric."""
        top = ranked[0][0]
        what = stats.METRIC_LABELS[metric]
        subject = f"Best {what}{among}{self.suffix}"
        if len(ranked) == 1:
            self._alone(top, what, value, among, subject)
            return
        found = [
            self.cmp.compare(top, other, top["label"], other["label"], metric, col)
            for other, _, _ in ranked[1:]
        ]
        self._rows(top, ranked, found, metric, what)
        tied = [o for (o, _, _), c in zip(ranked[1:], found, strict=True)
                if c.verdict != "a_better"]  # fmt: skip
        if tied:
            self._tied(top, tied, found, metric, what, value, among, subject)
        else:
            self._ahead(top, ranked[1][0], found, what, value, among, subject)

    def _alone(self, top: pd.Series, what: str, value: str, among: str, subject: str) -> None:
        self.details.append(
            f"{self.prefix}Best {what}{among}: {top['label']}, {value} (no other point to compare)."
        )
        self.heads.append(f"best {what}: {top['label']} (alone)")
        self.answers.append(
            Answer(
                subject=subject,
                answer=configuration(top),
                why_not="the only point measured: nothing to compare it with",
                configurations=(configuration(top),),
            )
        )

    def _rows(
        self,
        top: pd.Series,
        ranked: list,
        found: list[stats.Comparison],
        metric: str,
        what: str,
    ) -> None:
        """A row per other point, under "Best ...: <top> against"."""
        lower = "" if stats.HIGHER_IS_BETTER[metric] else ", lower is better"
        group = f"Best {what}{self.suffix}: {self.cmp.short(top) or top['label']} against{lower}"
        for (other, _, _), c in zip(ranked[1:], found, strict=True):
            short = self.cmp.short(other) or str(other["label"])
            names = ("clearly", short)  # under "Best ...: <top> against": "clearly better"
            self.rows.append(self.cmp.row("best", group, short, top, other, c, names))

    def _ahead(
        self,
        top: pd.Series,
        second: pd.Series,
        found: list[stats.Comparison],
        what: str,
        value: str,
        among: str,
        subject: str,
    ) -> None:
        """top is significantly ahead of every other point."""
        runner = found[0]
        self.details.append(
            f"{self.prefix}Best {what}{among}: {top['label']}, {value}. Against the runner-up: "
            f"{runner.sentence}"
        )
        self.details += [f"{self.prefix}Against {c.b}: {c.sentence}" for c in found[1:]]
        self.heads.append(f"best {what}: {top['label']}, significantly ahead of the others")
        self.answers.append(
            Answer(
                subject=subject,
                answer=configuration(top),
                by_how_much=change_words(runner, f"the runner-up, {configuration(second)}"),
                interval=interval_words(runner),
                configurations=(configuration(top), configuration(second)),
            )
        )

    def _tied(
        self,
        top: pd.Series,
        tied: list[pd.Series],
        found: list[stats.Comparison],
        metric: str,
        what: str,
        value: str,
        among: str,
        subject: str,
    ) -> None:
        """top has the best mean but is not significantly ahead of the points in `tied`."""
        runner = found[0]
        why = next(c for c in found if c.verdict != "a_better")
        names = [top, *tied]
        top_mean = "Highest mean" if stats.HIGHER_IS_BETTER[metric] else "Lowest mean"
        self.details.append(
            f"{self.prefix}{top_mean} {what}{among}: {top['label']}, {value}, but not "
            f"significantly ahead of {len(tied)} other point{'s' if len(tied) != 1 else ''}. "
            f"Against the runner-up: {runner.sentence}"
        )
        self.details += [f"{self.prefix}Against {c.b}: {c.sentence}" for c in found[1:]]
        self.heads.append(
            f"best {what}: cannot tell apart " + "; ".join(str(n["label"]) for n in names)
        )
        self.answers.append(
            Answer(
                subject=subject,
                answer="cannot tell apart: " + "; ".join(configuration(n) for n in names),
                by_how_much=f"{top_mean.lower()}, "
                + change_words(runner, "the runner-up", as_measured=True),
                interval=interval_words(runner, as_measured=True),
                why_not=why_not_words(why),
                configurations=tuple(configuration(n) for n in names),
            )
        )


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
    pairs = _Pairs(cmp, "engine", "Redis vs Valkey", "engine")
    for g in _groups(ok, "engine", ignore=("version",)):
        for (_, v), (_, r) in product(
            g[g["engine"] == "valkey"].iterrows(), g[g["engine"] == "redis"].iterrows()
        ):
            pairs.add(v, r, f"Valkey {v['version']}", f"Redis {r['version']}")
    return pairs.section(
        ("Valkey", "Redis"), "Valkey vs Redis", "No pair of points differs only by engine."
    )


def topology_section(ok: pd.DataFrame, cmp: _Comparer) -> Section:
    """Cluster vs cluster-mode-off on points that differ only by topology."""
    pairs = _Pairs(cmp, "topology", "Single node vs cluster", "topology")
    for g in _groups(ok, "topology"):
        clusters = g[g["cluster_mode"].astype(bool)]
        singles = g[~g["cluster_mode"].astype(bool)]
        for (_, c), (_, s) in product(clusters.iterrows(), singles.iterrows()):
            name_c = f"{c['topology']} ({int(c['nodes'])} nodes)"
            name_s = f"{s['topology']} ({int(s['nodes'])} node{'s' if s['nodes'] != 1 else ''})"
            pairs.add(c, s, name_c, name_s)
    return pairs.section(
        ("cluster", "single node"),
        "Cluster vs single node",
        "No pair of points differs only by topology.",
    )


def _size_key(row: pd.Series) -> tuple:
    vals = [row.get("vcpu"), row.get("memory_gib"), row.get("price_usd_hour_node")]
    return (*[(0, v) if _finite(v) else (1, 0) for v in vals], row["node_type"])


def node_size_section(ok: pd.DataFrame, cmp: _Comparer) -> Section:
    """Each node type vs the next smaller one, on points that differ only by node type."""
    pairs = _Pairs(cmp, "node_size", "Node size", "node_type")
    for g in _groups(ok, "node_type"):
        rows = sorted((r for _, r in g.iterrows()), key=_size_key)
        for small, big in pairwise(rows):
            if small["node_type"] == big["node_type"]:
                continue
            cb, cs = big.get("cluster_usd_hour"), small.get("cluster_usd_hour")
            price = ""
            if _finite(cb) and _finite(cs) and cs:
                price = f"; price {cb / cs:.2f}x (${cb:.3f} vs ${cs:.3f}/h)"
            pairs.add(big, small, big["node_type"], small["node_type"], price)
    return pairs.section(
        ("the larger node type", "the smaller node type"),
        "Node size",
        "No pair of points differs only by node type.",
    )


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
    meets = [row for _, row in ok.iterrows() if checks[row["point_id"]].status == "meets"]
    open_ = counts["undecided"] + counts["not_enough_data"]
    answer = Answer(
        subject=f"p99 under {slo:g} ms",
        answer="; ".join(str(r["label"]) for r in meets) if meets else "none",
        why_not=(
            f"{open_} point{'s' if open_ != 1 else ''} undecided: the interval of "
            f"{'their' if open_ != 1 else 'its'} runs' p99 straddles the objective, or there are "
            "too few runs"
            if open_
            else ""
        ),
        configurations=tuple(configuration(r) for r in meets),
    )
    return Section(key="slo", title="Latency objective", ask=ASKS["slo"], headline=head,
                   details=tuple(details), answers=(answer,))  # fmt: skip


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
    return Section(key="stability", title="Stability", headline=head, details=tuple(details))


def decide(
    ok: pd.DataFrame,
    runs: pd.DataFrame,
    min_effect_pct: float = 2.0,
    slo_p99_ms: float | None = None,
) -> Decisions:
    """All decision sections for the points with results (``label`` column added if absent).

    The campaign's name, its configurations' colours and its caveats are the report's
    to add (``model_copy``)."""
    if ok.empty:
        nothing = Section(
            key="nothing",
            title="Nothing finished",
            headline="No point finished, so there is nothing to compare.",
        )
        return Decisions(
            min_effect_pct=min_effect_pct,
            slo_p99_ms=slo_p99_ms,
            sections=(nothing,),
            multiplicity=stats.multiplicity([]),
        )
    ok = ok.copy()
    if "label" not in ok:
        ok["label"] = ok.apply(label, axis=1)
    ev = Evidence(runs)
    priced = bool(pd.to_numeric(ok["ops_per_dollar"], errors="coerce").notna().any())
    cmp = _Comparer(ev, min_effect_pct, priced, _Short(ok))
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
    made = [r.comparison for s in sections for r in s.rows]
    return Decisions(
        min_effect_pct=min_effect_pct,
        slo_p99_ms=slo_p99_ms,
        sections=tuple(sections),
        multiplicity=stats.multiplicity(made),
        slo=checks,
    )
