#!/usr/bin/env bash
# Set everything up from a fresh checkout, then run the main job: a local 4-node PBFT
# cluster (real processes on 127.0.0.1) under a short benchmark, and print its report.
# The report, results.json and plots land in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/seoulchain bench --nodes 4 --consensus pbft --duration 20 --out runs/demo "$@"
