#!/usr/bin/env bash
# Set up (if needed), check and test Postbox: ruff, mypy, then pytest against real services.
# pytest's own exit code is kept: 5 (no tests collected) fails the run like any other error.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check postbox tests bench clients
.venv/bin/ruff format --check postbox tests bench clients
.venv/bin/mypy postbox
.venv/bin/mypy clients/python/postbox_client
.venv/bin/lint-imports
exec .venv/bin/pytest "$@"
