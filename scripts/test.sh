#!/usr/bin/env bash
# Set up, then lint and run every test (unit, DAG integrity, end to end on real servers).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
ruff check .
ruff format --check .
python -m pytest -q "$@"
