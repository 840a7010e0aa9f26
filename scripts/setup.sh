#!/usr/bin/env bash
# Idempotent set-up on Debian: server packages, then a virtualenv with the pinned requirements.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-benchmark >/dev/null || need_apt+=(redis-tools)
# local miniatures (include/instance_specs.csv's local.t4g.*): ip and tc, nsenter
[ -x /usr/sbin/tc ] || [ -x /sbin/tc ] || need_apt+=(iproute2)
command -v nsenter >/dev/null || need_apt+=(util-linux)
# tests/deploy runs a real Airflow deployment on a private PostgreSQL cluster (initdb/pg_ctl)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
# tests/deploy/test_trigger_form.py drives the UI's trigger form in Debian's headless Chromium
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
# uv installs the pinned requirements in seconds where pip takes about a minute (on a
# fresh clone, most of the set-up); pip is the fallback if uv cannot be had or fails.
# --compile-bytecode, as pip does: where PYTHONDONTWRITEBYTECODE is set (this machine),
# no process would ever write a .pyc, and each would compile every module it imports.
UV_VERSION=0.13.10
install() {  # install <venv> <requirements file>
  if { [ -x .venv/bin/uv ] || .venv/bin/pip install -q "uv==$UV_VERSION"; } &&
    .venv/bin/uv pip install -q --compile-bytecode --python "$1/bin/python" -r "$2"; then
    return
  fi
  echo "setup: uv could not install $2 into $1; pip instead" >&2
  "$1/bin/pip" install -q -r "$2"
}

[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  install .venv requirements-dev.txt
  echo "$want" > "$stamp"
fi

# checkov (tests/aws scans include/terraform/aws*) lives in its own venv: it pins an
# older boto3 than requirements.txt. Required: without it the scan would not run (in CI,
# CI=true, its test fails rather than skips), so a failed install fails the set-up.
ck_want=$(sha256sum requirements-checkov.txt | cut -d' ' -f1)
if [ "$(cat .venv-checkov/.requirements.sha 2>/dev/null)" != "$ck_want" ]; then
  [ -x .venv-checkov/bin/python ] || "$PY" -m venv .venv-checkov
  install .venv-checkov requirements-checkov.txt
  .venv-checkov/bin/checkov --version >/dev/null
  echo "$ck_want" > .venv-checkov/.requirements.sha
fi
