"""Local miniatures against known truth: what the kernel enforces, and what the report says.

Every campaign runs through the ad-hoc DAG (`dag.test()`) on real servers. The node
types are written for each test (a copy of the catalogue with rows whose limits are
the truth the test knows), so the expectations below are worked out from those rows
by hand, not from cachebench's code:

* network: a GET load above a node's baseline shows allowance-exceeded counts, the
  bucket runs out when bucket / (offered - baseline) says, then the node sends at
  its baseline;
* CPU, A/B: two node types that differ only in their CPU limit (2x): the larger is
  named the winner as often as the statistics promise, and the smaller never;
* CPU, A/A: the same limits deployed twice name no winner beyond the promised
  false-positive rate;
* what is refused without root or tools, what a plain node type still does, and a
  miniature cluster across namespaces; every test leaves no namespace, link,
  qdisc, cgroup or claim (leftovers.py).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from airflow.dag_processing.dagbag import DagBag
from leftovers import assert_nothing_left, kernel_objects
from scipy import stats as sps

from cachebench import catalogue as node_catalogue
from cachebench import pricing
from cachebench.report import stats
from cachebench.workspace import RunDir

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

# The rows of the truth (columns of include/instance_specs.csv). kt.small and kt.large
# differ only in their CPU limit (0.1 and 0.2 core; vcpu says which is larger); twin is
# kt.large again under another name; their network allowance (10 Gbps) is far above
# what they send. kt.net sends 1 KiB values from a quarter core against a 0.1 Gbps
# baseline (12.5 MB/s) and a 600 MB bucket.
NET_BASELINE_BPS = 0.1e9 / 8  # bytes per second
NET_BUCKET = 600e6  # bytes
TRUTH = [
    "local,local.kt.small,local,1,0.5,10,10,cache.t4g.micro,0.1,100,test: 0.1 core,test row",
    "local,local.kt.large,local,2,0.5,10,10,cache.t4g.micro,0.2,100,test: 0.2 core,test row",
    "local,local.kt.large-twin,local,2,0.5,10,10,cache.t4g.micro,0.2,100,test: kt.large,test row",
    "local,local.kt.net,local,2,0.5,0.1,5,cache.t4g.micro,0.25,600,test: 600 MB bucket,test row",
    "local,local.kt.wide,local,4,0.5,10,10,cache.t4g.micro,0.6,100,test: 0.6 core,test row",
]


@pytest.fixture
def truth(tmp_path: Path, monkeypatch) -> None:
    """The catalogue and price table with the truth's rows (plan, export and report read
    them in this process)."""
    catalogue = tmp_path / "instance_specs.csv"
    catalogue.write_text(node_catalogue.DEFAULT_SPECS_PATH.read_text() + "\n".join(TRUTH) + "\n")
    prices = tmp_path / "prices.csv"
    rows = [f"{e},local,{r.split(',')[1]},0,test row,2026-12-08" for r in TRUTH for e in ("redis",)]
    prices.write_text(pricing.DEFAULT_PRICES_PATH.read_text() + "\n".join(rows) + "\n")
    monkeypatch.setattr(node_catalogue, "DEFAULT_SPECS_PATH", catalogue)
    monkeypatch.setattr(pricing, "DEFAULT_PRICES_PATH", prices)


def campaign(name: str, node_types: list[str], workload: dict, repetitions: int) -> dict:
    return {
        "name": name,
        "target": "local",
        "engines": [{"engine": "redis", "versions": ["7.0"]}],
        "topologies": [{"cluster_mode": False}],
        "node_types": node_types,
        "workloads": [workload],
        "repetitions": repetitions,
        "budget_usd": 0,
        "max_points": 4,
    }


def run_campaign(fields: dict):
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["cachebench_adhoc"]
    dag_run = dag.test(run_conf=fields)
    return dag_run, RunDir.for_run(fields["name"], dag_run.run_id)


# ------------------------------------------------------------------ network


def test_network_allowance_runs_out_when_the_bucket_says(airflow_db, results_dir, truth) -> None:
    """GETs of 1 KiB values from a quarter core send far above a 0.1 Gbps baseline: the
    first allowance-exceeded count comes when bucket / (offered - baseline) says, and
    from then on the node sends at its baseline."""
    workload = {
        "name": "gets", "ratio": "0:1", "value_size": 1024, "key_space": 1000,
        "pipeline": 4, "clients": 8, "threads": 1, "warmup_seconds": 0, "duration_seconds": 20,
    }  # fmt: skip
    dag_run, run = run_campaign(campaign("kt-net", ["local.kt.net"], workload, 1))
    try:
        assert str(dag_run.state) == "success"
        rep = run.point("redis-7.0-single-local.kt.net-gets").rep(1).path
        load = json.loads((rep / "load.json").read_text())
        m = pd.read_parquet(rep / "metrics.parquet")
        out = m[m["metric"] == "NetworkBytesOut"].sort_values("timestamp")
        t = out["timestamp"].map(lambda ts: ts.timestamp()).to_numpy() - load["started_at"]
        sent = out["value"].to_numpy() / out["period_s"].to_numpy()  # bytes per second
        exceeded = m[m["metric"] == "NetworkBandwidthOutAllowanceExceeded"]
        assert exceeded["value"].sum() > 0, "the load above the baseline was never held back"
        first = min(
            ts.timestamp() - load["started_at"]
            for ts, v in zip(exceeded["timestamp"], exceeded["value"], strict=True)
            if v > 0
        )
        # offered: what the node sent while the bucket held tokens (whole seconds in the
        # window before the first period that was held back)
        burst = sent[(t >= 1) & (t <= first - 1)]
        assert len(burst) >= 4, (t, sent)
        offered = float(np.mean(burst))
        by_hand = NET_BUCKET / (offered - NET_BASELINE_BPS)
        # the first period held back, (first - 1 s, first], lies within 10% of that time
        assert by_hand * 0.9 <= first and first - 1.0 <= by_hand * 1.1, (first, by_hand, offered)
        # once empty: the baseline, and the throughput with it
        after = sent[(t >= first + 2) & (t <= load["elapsed_seconds"])]
        assert len(after) >= 3, (t, sent)
        assert np.mean(after) == pytest.approx(NET_BASELINE_BPS, rel=0.1), after
        ops = np.array([s["ops_per_sec"] for s in load["series"]])
        before_ops = ops[1 : int(first) - 1].mean()
        after_ops = ops[int(first) + 2 :].mean()
        assert after_ops == pytest.approx(before_ops * NET_BASELINE_BPS / offered, rel=0.15)
        # the report's network section, as on AWS
        summary = next(csv.DictReader(io.StringIO((run.path / "summary.csv").read_text())))
        assert float(summary["allowance_first_exceeded_s"]) == pytest.approx(first, abs=0.05)
        assert float(summary["seconds_above_baseline"]) >= int(first) - 1
        assert float(summary["peak_pct_of_baseline"]) > 100 * offered / NET_BASELINE_BPS * 0.9
        report = (run.path / "report.md").read_text()
        assert "the network burst allowance ran out" in report
        assert "miniatures of ElastiCache node types (local.kt.net of cache.t4g.micro)" in report
        print(
            f"network truth: offered {offered / 1e6:.2f} MB/s, bucket out after {first:.1f} s "
            f"(by hand {by_hand:.1f} s), then {np.mean(after) / 1e6:.2f} MB/s (baseline "
            f"{NET_BASELINE_BPS / 1e6:.2f}); ops/s {before_ops:,.0f} -> {after_ops:,.0f}"
        )
    finally:
        assert_nothing_left(run.path)


# ------------------------------------------------------------------ CPU: A/B and A/A

CPU_WORKLOAD = {
    "name": "mix", "ratio": "1:4", "value_size": 256, "key_space": 1000,
    "pipeline": 4, "clients": 8, "threads": 1, "warmup_seconds": 1, "duration_seconds": 2,
}  # fmt: skip
SMALL, LARGE, TWIN = "local.kt.small", "local.kt.large", "local.kt.large-twin"
PROMISED_FP = 0.05  # report/stats.py: a verdict at most 5% of the time when nothing differs
TRIALS = 4000


def runs_of(run: RunDir) -> pd.DataFrame:
    return pd.read_csv(run.path / "runs.csv")


def side(runs: pd.DataFrame, node_type: str, name: str, metric: str) -> stats.Side:
    mine = runs[(runs["node_type"] == node_type) & (runs["status"] == "ok")]
    return stats.Side(
        name=name,
        values=tuple(float(v) for v in mine[metric]),
        client_bound=tuple(bool(b) for b in mine["client_bound"]),
    )


def promised_power(a: stats.Side, b: stats.Side, seed: int = 0) -> float:
    """How often report/stats.py's compare names a the winner for a's effect over b, at
    their run counts and spreads (log-normal runs, as its notes assume)."""
    la, lb = np.log(a.values), np.log(b.values)
    effect, sa, sb = la.mean() - lb.mean(), la.std(ddof=1), lb.std(ddof=1)
    rng = np.random.default_rng(seed)
    wins = 0
    for _ in range(TRIALS):
        xa = np.exp(effect + rng.normal(0, sa, len(la)))
        xb = np.exp(rng.normal(0, sb, len(lb)))
        c = stats.compare(
            stats.Side(name="a", values=tuple(xa)),
            stats.Side(name="b", values=tuple(xb)),
            "throughput",
        )
        wins += c.winner == "a"
    return wins / TRIALS


def report_line(run: RunDir, a: str, b: str) -> str:
    """The report's node size sentence comparing a with b (the larger named first)."""
    lines = [ln for ln in (run.path / "report.md").read_text().splitlines() if f"{a} vs {b}:" in ln]
    assert len(lines) == 1, (a, b, lines)
    return lines[0]


def test_cpu_limit_ab_and_aa(airflow_db, results_dir, truth) -> None:
    """Two campaigns of kt.small (0.1 core), kt.large (0.2 core) and kt.large-twin (kt.large
    again), 3 runs each. A/B: every comparison of a 0.2-core side with a 0.1-core side names
    the 0.2-core one as often as the promised power says, never the 0.1-core one. A/A: the
    comparisons of equal limits (the twins in each report, each node type across the two
    campaigns) name winners no more often than the promised 5% allows."""
    runs, verdicts = {}, []
    try:
        for name in ("kt-cpu-1", "kt-cpu-2"):
            dag_run, run = run_campaign(campaign(name, [SMALL, LARGE, TWIN], CPU_WORKLOAD, 3))
            runs[name] = run
            assert str(dag_run.state) == "success"
        r1, r2 = (runs_of(r) for r in runs.values())
        bound = int(r1["client_bound"].sum() + r2["client_bound"].sum())
        assert bound == 0, "client-bound runs: the load generators, not the servers, were measured"
        # A/B: the reports' own node size verdicts, and the two campaigns crossed
        ab = []
        for run in runs.values():
            line = report_line(run, LARGE, SMALL)
            assert f"throughput: {SMALL} wins" not in line, line
            ab.append(f"throughput: {LARGE} wins" in line)
            verdicts.append(line)
        for big, small in ((r1, r2), (r2, r1)):
            c = stats.compare(
                side(big, LARGE, LARGE, "ops_per_sec"),
                side(small, SMALL, SMALL, "ops_per_sec"),
                "throughput",
            )
            assert c.winner != SMALL, c.sentence
            ab.append(c.winner == LARGE)
            verdicts.append(c.sentence)
        power = min(
            promised_power(side(r, LARGE, "a", "ops_per_sec"), side(r, SMALL, "b", "ops_per_sec"))
            for r in (r1, r2)
        )
        # as often as promised: fewer wins than this happen under 0.1% of the time
        need = int(sps.binom.ppf(0.001, len(ab), power))
        assert sum(ab) >= need, (sum(ab), len(ab), power, verdicts)
        # A/A: the twins in each report; each node type of one campaign against the other's
        aa = []
        for run in runs.values():
            line = report_line(run, TWIN, LARGE)
            aa.append(" wins" in line.split("; p99")[0])
            verdicts.append(line)
        for nt in (SMALL, LARGE, TWIN):
            c = stats.compare(
                side(r1, nt, f"{nt} #1", "ops_per_sec"),
                side(r2, nt, f"{nt} #2", "ops_per_sec"),
                "throughput",
            )
            aa.append(c.winner is not None)
            verdicts.append(c.sentence)
        # at most what chance gives at 5% each: more happens under 0.1% of the time
        allowed = int(sps.binom.ppf(0.999, len(aa), PROMISED_FP))
        assert sum(aa) <= allowed, (sum(aa), len(aa), verdicts)
        print(
            f"A/B: {sum(ab)}/{len(ab)} name the 0.2-core side (promised power {power:.3f}, "
            f"need {need}); A/A: {sum(aa)}/{len(aa)} winners (allowed {allowed})"
        )
        for v in verdicts:
            print("  ", v)
    finally:
        for run in runs.values():
            assert_nothing_left(run.path)


def test_load_held_to_the_cores_left_is_called_client_bound(airflow_db, results_dir, truth) -> None:
    """Three nodes of 0.6 core leave the load generators max(0.5, cores - 1.8) cores (its
    cgroup's quota): the saturation check reads that capacity and calls the run
    client-bound, as it must when the load generator, not the servers, is measured."""
    fields = campaign("kt-bound", ["local.kt.wide"], {**CPU_WORKLOAD, "name": "w"}, 1)
    fields["topologies"] = [{"cluster_mode": True, "shards": 3, "replicas": 0}]
    dag_run, run = run_campaign(fields)
    try:
        assert str(dag_run.state) == "success"
        rep = run.point("redis-7.0-c3r0-local.kt.wide-w").rep(1).path
        cpu = json.loads((rep / "cpu.json").read_text())
        quota = max(0.5, os.cpu_count() - 3 * 0.6)
        assert {g["capacity_cores"] for g in cpu["generators"]} == {min(1.0, quota)}
        (row,) = csv.DictReader(io.StringIO((run.path / "runs.csv").read_text()))
        assert row["client_bound"] == "True", row
        assert "load generator CPU p95" in row["client_bound_reason"]
    finally:
        assert_nothing_left(run.path)


# ------------------------------------------------------------------ refused, and still plain


VALIDATE = """
import json, os, sys
from cachebench import steps
from cachebench.campaign import CampaignError
out = {"euid": os.geteuid()}
for nts in (["local.t4g.micro", "local.micro"], ["local.micro"]):
    fields = {"name": "x", "target": "local", "engines": ["redis 7.0"], "topologies": ["single"],
              "node_types": nts, "workloads": [{"name": "w"}], "budget_usd": 0}
    try:
        steps.validate(fields)
        out[nts[0]] = []
    except CampaignError as e:
        out[nts[0]] = e.problems
print(json.dumps(out))
"""


def validate_in(prefix: list[str], tmp_path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins"), "CACHEBENCH_PRICES": "table"}
    done = subprocess.run(
        [*prefix, sys.executable, "-c", VALIDATE],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_plan_refuses_a_miniature_without_root_or_tools(tmp_path: Path) -> None:
    """Not root (a user namespace where this process is uid 65534), or root on a machine
    without tc and cgroups (a mount namespace that hides /usr/sbin and /sys/fs/cgroup): the
    miniature is refused, naming what is missing; the plain node type is not."""
    plain = "local.micro, local.small, local.medium (plain, unlimited)"
    user = validate_in(["unshare", "--user", "--map-user=65534", "--map-group=65534"], tmp_path)
    assert user["euid"] == 65534 and user["local.micro"] == []
    (problem,) = user["local.t4g.micro"]
    assert problem.startswith("node_types[0]: 'local.t4g.micro': a miniature")
    assert "needs root (running as uid 65534" in problem and problem.endswith(plain)
    hide = 'mount -t tmpfs none /usr/sbin && mount -t tmpfs none /sys/fs/cgroup && exec "$@"'
    bare = validate_in(["unshare", "--mount", "sh", "-c", hide, "sh"], tmp_path)
    assert bare["euid"] == 0 and bare["local.micro"] == []
    (problem,) = bare["local.t4g.micro"]
    assert "needs tc (" in problem and "cgroups: no tree with the cpu and memory" in problem
    assert "root" not in problem.split("allowed")[0]


UP_PLAIN = """
import json, sys, time
from cachebench.targets.local import servers
cfg = json.loads(sys.argv[1])
reg = servers.up(cfg)
import redis
pw = open(cfg["runtime_dir"] + "/auth").read().strip()
pong = redis.Redis(host=reg["host"], port=reg["nodes"][0]["port"], password=pw).ping()
down = servers.down(cfg["state_dir"])
got = {"host": reg["host"], "pong": pong, "left": down["left"], "busy": down["busy_ports"]}
print(json.dumps(got))
"""


def test_plain_node_type_still_runs_without_root(tmp_path: Path) -> None:
    """Where a miniature is refused (not root), a plain node type's server starts, answers
    on 127.0.0.1 and stops."""
    from cachebench import engines, procs

    port = next(p for p in range(52900, 52990) if procs.port_free(p))
    cfg = {
        "deployment_id": "plain", "campaign": "kt", "run_id": "r", "engine": "redis",
        "engine_version": "7.0", "server_binary": str(engines.server_binary("redis", "7.0")),
        "cluster_mode": False, "shards": 1, "replicas": 0, "base_port": port,
        "maxmemory_bytes": 64 << 20, "maxmemory_policy": "volatile-lru", "io_threads": 1,
        "state_dir": str(tmp_path / "d" / "server"), "runtime_dir": str(tmp_path / "rt" / "d"),
        "metrics_interval_seconds": 1, "expires_at": time.time() + 600,
    }  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugins")}
    done = subprocess.run(
        ["unshare", "--user", "--map-user=65534", "--map-group=65534",
         sys.executable, "-c", UP_PLAIN, json.dumps(cfg)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.splitlines()[-1])
    assert got == {"host": "127.0.0.1", "pong": True, "left": [], "busy": []}


# ------------------------------------------------------------------ a cluster across namespaces


def ip_json(*argv: str) -> list[dict]:
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    return json.loads(out or "[]")


def test_miniature_cluster_across_namespaces(tmp_path: Path) -> None:
    """A 2-shard, 1-replica cluster of local.t4g.micro through the Terraform module: each node
    in its own namespace, cgroup and token buckets, as the row says (worked out by hand:
    0.25 core = 2,500 us of a 10,000 us period, 0.5 GiB, 0.064 Gbps = 8,000,000 bytes/s,
    an 80 MB bucket); the nodes find each other and replicate through the bridge; nothing
    routes anywhere but the deployment's /27; destroy leaves no kernel object."""
    from cachebench import engines
    from cachebench.targets.local import claims, miniature, netns

    state = tmp_path / "d" / "server"
    key = miniature.key_of(state)
    block = netns.claim(claims.Owner(key=key, state_dir=str(state), expires_at=time.time() + 600))
    tfvars = {
        "deployment_id": "kt-cluster", "campaign": "kt", "run_id": "r", "engine": "valkey",
        "engine_version": "9.1", "server_binary": str(engines.server_binary("valkey", "9.1")),
        "cluster_mode": True, "shards": 2, "replicas": 1, "base_port": 27000,
        "maxmemory_bytes": 64 << 20, "io_threads": 1, "state_dir": str(state),
        "runtime_dir": str(tmp_path / "rt" / "d"), "python": sys.executable,
        "pythonpath": str(ROOT / "plugins"), "metrics_interval_seconds": 1,
        "expires_at": int(time.time()) + 600,
        "miniature": {
            "key": key, "mimics": "cache.t4g.micro", "subnet": netns.subnet_of(block),
            "cpu_limit_cores": 0.25, "memory_limit_bytes": 536870912, "load_cpu_cores": 1.0,
            "allowance": {"baseline_bps": 64000000, "burst_bps": 5000000000,
                          "bucket_bytes": 80000000},
        },
    }  # fmt: skip
    work = tmp_path / "tf"
    shutil.copytree(ROOT / "include" / "terraform" / "local", work)
    (work / "terraform.tfvars.json").write_text(json.dumps(tfvars))
    tf = ["terraform", f"-chdir={work}"]
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    try:
        for argv in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
            done = subprocess.run([*tf, *argv], capture_output=True, text=True, env=env)
            assert done.returncode == 0, done.stdout + done.stderr
        out = subprocess.run([*tf, "output", "-json"], capture_output=True, text=True, env=env)
        endpoint = json.loads(out.stdout)["endpoint"]["value"]
        reg = json.loads((state / "registry.json").read_text())
        base = netns.subnet_of(block).split("/")[0].rsplit(".", 1)
        hosts = [f"{base[0]}.{int(base[1]) + 2 + i}" for i in range(4)]
        assert [n["host"] for n in endpoint["nodes"]] == hosts  # Terraform and `up` agree
        assert [n["host"] for n in reg["nodes"]] == hosts
        held = kernel_objects({key})  # the subnet stays claimed while the servers run
        assert any(o.startswith(f"claim {netns.CLAIMS_DIR}/{block}.json") for o in held), held
        password = Path(tfvars["runtime_dir"], "auth").read_text().strip()
        for n in reg["nodes"]:
            c = redis.Redis(
                host=n["host"], port=n["port"], password=password, decode_responses=True
            )
            assert c.cluster("info")["cluster_state"] == "ok"
            seen = {
                line.split()[1].split("@")[0]
                for line in c.execute_command("CLUSTER", "NODES").splitlines()
            }
            assert seen == {f"{h}:{p}" for h, p in zip(hosts, range(27000, 27004), strict=True)}
            if n["role"] == "replica":
                assert c.info("replication")["master_link_status"] == "up"
            pid, nid = n["pid"], n["node_id"]
            assert f"cachebench-{key}/{nid}" in Path(f"/proc/{pid}/cgroup").read_text()
            ns = subprocess.run(
                ["ip", "netns", "identify", str(pid)], capture_output=True, text=True
            )
            assert ns.stdout.strip() == f"cachebench-{key}-{nid}"
            # what the kernel holds for it
            cpu = Path(f"/sys/fs/cgroup/cpu/cachebench-{key}/{nid}")
            if cpu.is_dir():  # cgroup v1 (this machine); v2 is checked in tests/unit
                assert (cpu / "cpu.cfs_quota_us").read_text().strip() == "2500"
                assert (cpu / "cpu.cfs_period_us").read_text().strip() == "10000"
                mem = Path(f"/sys/fs/cgroup/memory/cachebench-{key}/{nid}/memory.limit_in_bytes")
                assert mem.read_text().strip() == "536870912"
            (tbf,) = ip_json(
                "tc", "-n", f"cachebench-{key}-{nid}", "-j", "qdisc", "show", "dev", "eth0"
            )
            assert tbf["kind"] == "tbf" and tbf["options"]["rate"] == 8_000_000
            assert tbf["options"]["burst"] == 80_000_000
            routes = ip_json("ip", "-n", f"cachebench-{key}-{nid}", "-j", "route", "show")
            assert [r["dst"] for r in routes] == [netns.subnet_of(block)]  # no default route
        inbound = ip_json("tc", "-n", f"cachebench-{key}", "-j", "qdisc", "show")
        assert sorted(q["dev"] for q in inbound if q["kind"] == "tbf") == ["n1", "n2", "n3", "n4"]
        root_routes = ip_json("ip", "-j", "route", "show", "dev", f"cb-{key}")
        assert [r["dst"] for r in root_routes] == [netns.subnet_of(block)]
    finally:
        done = subprocess.run(
            [*tf, "destroy", "-auto-approve"], capture_output=True, text=True, env=env
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert kernel_objects({key}) == []
