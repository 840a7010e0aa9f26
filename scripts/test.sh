#!/usr/bin/env bash
# Set up, then lint and run every test (unit, DAG integrity, end to end on real servers).
# pytest runs on 4 workers (pytest-xdist): the tests that load the machine on two of them
# (their loads one at a time: the machine's load lock), the real Airflow deployment's on
# one, the real aws module's applies on one, the rest go to whichever is free
# (tests/conftest.py: the groups; docs/testing.md: why four).
# CACHEBENCH_TEST_WORKERS=0 runs everything in one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
ruff check .
ruff format --check .
python -m pytest -q -n "${CACHEBENCH_TEST_WORKERS:-4}" --dist loadgroup "$@"
