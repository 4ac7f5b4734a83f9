#!/usr/bin/env bash
# The benchmark in one command: bash bench/run.sh [--peers] [--quick] [other `python -m bench` flags]
# Sets up what it needs (the project's .venv, smtp-sink, the Node peer with --peers), then
# measures and prints a table; results go to bench/results/ as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash bench/setup.sh "$@"
exec .venv/bin/python -m bench "$@"
