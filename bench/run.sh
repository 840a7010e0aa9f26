#!/usr/bin/env bash
# Set up, then measure the harness (fidelity, observer cost, orchestration, parse, export).
# Everything it makes (Airflow home, results, servers' files) lives in one temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
work="$(mktemp -d -t cachebench-bench-XXXXXX)"
trap 'rm -rf "$work"' EXIT
export AIRFLOW_HOME="$work/airflow" CACHEBENCH_RESULTS="$work/results"
export CACHEBENCH_PORT_FIRST="${CACHEBENCH_PORT_FIRST:-50000}"
mkdir -p "$AIRFLOW_HOME"
python bench/run.py "$@"
