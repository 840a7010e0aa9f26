"""Every colour of a run's figures, in one place: one per configuration, and the verdicts'.

A configuration is what a reader chooses between: engine and version, topology and
node type (a point less its workload, so a configuration keeps its colour across
workloads). :func:`assign` gives each its colour in the campaign's order, the same in
the summary figures, the per-run dashboards, the explorable charts and the report's
tables, from Okabe and Ito's colour-blind-safe palette ("Color Universal Design",
2008; black is left for reference lines). Past seven configurations the colours
repeat: the labels still name each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from matplotlib.colors import to_hex, to_rgb

#: Okabe-Ito, without black (reference lines), most distinct first.
CONFIGURATION_COLOURS = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#E69F00",  # orange
    "#F0E442",  # yellow
)
#: The decision figure's verdict colours (each with its word): a winner named, no
#: significant difference, and a verdict withheld (client-bound runs, not enough data).
VERDICT_COLOURS = {"verdict": "#0072B2", "no_difference": "#7F7F7F", "withheld": "#D55E00"}
#: Reference lines: the no-change line, a node type's baseline (burst: BURST).
REFERENCE = "#000000"
BURST = "#E69F00"
#: The min_effect_pct band of the decision figure.
BAND = "#E5E5E5"


def configuration(row: Mapping[str, Any]) -> str:
    """A point's configuration label: "redis 7.0, single, local.t4g.micro"."""
    return f"{row['engine']} {row['version']}, {row['topology']}, {row['node_type']}"


def assign(configurations: Iterable[str]) -> dict[str, str]:
    """Each configuration's colour, in the order they first come."""
    names = list(dict.fromkeys(configurations))
    return {c: CONFIGURATION_COLOURS[i % len(CONFIGURATION_COLOURS)] for i, c in enumerate(names)}


def shades(colour: str, n: int) -> list[str]:
    """``n`` shades of one colour, darkest first (the nodes of one configuration's
    dashboard): mixed with black then white, so each stays of its configuration's hue."""
    if n <= 1:
        return [colour]
    rgb = to_rgb(colour)
    out = []
    for k in range(n):
        t = -0.35 + 0.85 * k / (n - 1)  # -0.35: towards black, +0.5: towards white
        mixed = [c * (1 + t) if t < 0 else c + (1 - c) * t for c in rgb]
        out.append(to_hex(mixed).upper())
    return out
