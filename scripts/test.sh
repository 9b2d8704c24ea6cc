#!/usr/bin/env bash
# Set everything up from a fresh checkout and run the test suite: lint, types, fast tests,
# then the slow tier (real node processes on 127.0.0.1). Exits non-zero on any failure,
# including pytest's exit 5 ("no tests collected").
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
PY=.venv/bin/python
status=0

run() {
    echo "+ $*"
    "$@"
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "FAILED (exit $rc): $*"
        status=1
    fi
    return 0
}

run "$PY" -m ruff check .
run "$PY" -m ruff format --check .
run "$PY" -m mypy .
# Fast tier: pure engines, codecs, storage, services, simulator seed range, in-process RPC.
run "$PY" -m pytest -q -m "not slow and not sim_long and not soak" -p no:cacheprovider
# The slow tier runs a real Prometheus server against a live node (Debian's package).
run bash scripts/install-prometheus.sh
# Slow tier: real node processes and sockets on 127.0.0.1.
run "$PY" -m pytest -q -m "slow" -p no:cacheprovider
exit $status
