#!/usr/bin/env bash
# Set up, then run the example campaign (Redis vs Valkey on miniatures of two node sizes) on this
# machine through its Airflow DAG, and print where the report is.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
campaign="${1:-include/campaigns/redis-vs-valkey-local.yaml}"
python -m cachebench run "$campaign"
