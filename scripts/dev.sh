#!/usr/bin/env bash
# Set up (if needed) and run Postbox for development: private Redis, SMTP inbox, API, worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/postbox dev "$@"
