"""A node's network allowance as a kernel token bucket (tc tbf), and its counters.

ElastiCache nodes are EC2 instances whose bandwidth works as a token bucket:
tokens come in at the baseline rate, traffic above it spends them (at most at the
burst rate) until the bucket is empty; then packets are queued or dropped and the
NetworkBandwidth{In,Out}AllowanceExceeded counters rise. tbf is that bucket:

    rate      the baseline (tokens per second)
    burst     the bucket's size in bytes
    peakrate  the burst rate (a second, small bucket: MIN_PEAK_BUCKET bytes)
    limit     the queue behind an empty bucket; beyond it packets are dropped

Its counters, per direction of a node: ``bytes``/``packets`` the interface carried
(what left the qdisc), ``overlimits`` the times a packet had to wait for tokens
and ``drops`` the packets the full queue refused: their sum is what ElastiCache
counts as allowance exceeded (packets queued or dropped above the allowance).
"""

from __future__ import annotations

import json
import subprocess

from pydantic import Field

from cachebench.models import Strict
from cachebench.targets.local.netns import tool

# The peak bucket must hold a whole burst of back-to-back segments (GSO: 64 KiB each),
# or tbf counts an overlimit for traffic far below the peak rate; 1 MiB measured clean.
MIN_PEAK_BUCKET = 1 << 20
QUEUE_S = 0.1  # the queue behind an empty bucket: 100 ms of the baseline
MIN_QUEUE = 256 << 10


class ShapingError(RuntimeError):
    """A qdisc could not be set or read; the message says which."""


class Allowance(Strict):
    """One direction of a node's network allowance."""

    baseline_bps: int = Field(gt=0, description="bits per second the bucket refills at")
    burst_bps: int = Field(gt=0, description="the most it sends while it holds tokens")
    bucket_bytes: int = Field(gt=0)

    @property
    def tbf(self) -> list[str]:
        """tc's arguments for this allowance (after `tbf`)."""
        queue = max(MIN_QUEUE, round(self.baseline_bps / 8 * QUEUE_S))
        args = ["rate", f"{self.baseline_bps}bit", "burst", str(self.bucket_bytes)]
        args += ["limit", str(queue)]
        if self.burst_bps > self.baseline_bps:
            args += ["peakrate", f"{self.burst_bps}bit", "mtu", str(MIN_PEAK_BUCKET)]
        return args

    def empties_after_s(self, offered_bytes_per_s: float) -> float | None:
        """Seconds a full bucket lasts at a steady offered rate (None: it never empties)."""
        drain = offered_bytes_per_s - self.baseline_bps / 8
        return self.bucket_bytes / drain if drain > 0 else None


class Counters(Strict):
    """A tbf qdisc's counters (cumulative since it was set), as `tc -s` shows them."""

    bytes: int
    packets: int
    drops: int
    overlimits: int
    requeues: int = 0
    backlog: int = 0
    qlen: int = 0

    @property
    def exceeded(self) -> int:
        """Packets that waited for tokens or were dropped: the allowance-exceeded count."""
        return self.overlimits + self.drops


def _tc(*argv: str) -> str:
    done = subprocess.run(
        [tool("tc") or "tc", *argv],
        capture_output=True,
        text=True,
        timeout=10,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise ShapingError(f"tc {' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def apply(netns: str, dev: str, allowance: Allowance) -> None:
    """Shape dev's egress in netns to the allowance (replacing whatever qdisc it had)."""
    _tc("-n", netns, "qdisc", "replace", "dev", dev, "root", "tbf", *allowance.tbf)


def read(netns: str) -> dict[str, Counters]:
    """Every tbf qdisc of netns by its device, with its counters."""
    out = {}
    for q in json.loads(_tc("-n", netns, "-s", "-j", "qdisc", "show") or "[]"):
        if q.get("kind") == "tbf" and q.get("dev"):
            out[q["dev"]] = Counters.model_validate({k: q.get(k, 0) for k in Counters.model_fields})
    return out


def qdiscs(netns: str | None = None) -> list[dict]:
    """Every qdisc of netns (None: the root namespace), as tc -j shows them."""
    return json.loads(_tc(*(["-n", netns] if netns else []), "-j", "qdisc", "show") or "[]")
