#!/usr/bin/env bash
# Installs what Postbox needs on a Debian/Ubuntu machine with Python 3.11, idempotently:
# Debian's redis-server (bullmq needs >= 7.0.8), chromium and nodejs (for tests), a virtualenv in
# .venv with the pinned requirements, and Postbox and its Python client in editable mode.
# Safe to run again; fast when done.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  # policy-rc.d 101 keeps the package from starting the system Redis service: Postbox
  # starts its own private redis-server processes and never uses the system one.
  local made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d'
    made_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  if [ -n "$made_policy" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
}

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if ! command -v redis-server >/dev/null; then
  echo "setup: installing Debian's redis-server"
  apt_install redis-server
fi
if ! command -v chromium >/dev/null; then
  echo "setup: installing Debian's chromium (the dashboard test drives it headless)"
  apt_install chromium
fi
if [ ! -x /usr/lib/postgresql/15/bin/initdb ]; then
  # The history tests make private clusters with initdb/pg_ctl; the system one is never used.
  echo "setup: installing Debian's postgresql (the history tests run private clusters)"
  apt_install postgresql
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON"
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    apt_install python3-venv
    "$PYTHON" -m venv .venv
  fi
fi
stamp=.venv/.postbox-requirements
wanted=$(cat requirements.txt requirements-dev.txt pyproject.toml clients/python/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setup: installing Python requirements"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  # The Python client (its httpx is pinned in requirements-dev.txt).
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e clients/python
  echo "$wanted" > "$stamp"
fi
if ! command -v curl >/dev/null; then
  echo "setup: installing Debian's curl (a test sends with it)"
  apt_install curl
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: installing Debian's nodejs and npm (the interop tests run Node clients)"
  apt_install nodejs npm
fi
# Node BullMQ and Bull Board for tests/integration/test_node_interop.py.
source scripts/node_packages.sh
install_node_packages tests/node tests/node/.modules "the Node interop test's packages"
