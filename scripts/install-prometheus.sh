#!/usr/bin/env bash
# Install a Prometheus server and promtool for `seoulchain bench --prometheus`.
#
# Does nothing if both `prometheus` and `promtool` are already on PATH. Otherwise installs
# Debian's `prometheus` package (which ships both) with apt-get; needs root, or sudo.
# The package's own service is not started by this script: the bench runs its own server on
# 127.0.0.1 with its data under the run directory, and stops it at teardown.
# Exit status: 0 when both tools are on PATH afterwards, 1 otherwise (with the reason).
set -euo pipefail

have_tools() {
    command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

if have_tools; then
    echo "install-prometheus: already installed: $(command -v prometheus), $(command -v promtool)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-prometheus: no apt-get here; install Prometheus by hand" \
        "(https://prometheus.io/download/) and put prometheus and promtool on PATH" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-prometheus: need root (or sudo) to run apt-get" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d exit 101 keeps dpkg from starting the packaged prometheus service: the bench
# runs its own server, and a system one would hold port 9090 for no reason.
POLICY=/usr/sbin/policy-rc.d
CREATED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    CREATED_POLICY=1
fi
cleanup() {
    if [ "$CREATED_POLICY" -eq 1 ]; then
        $SUDO rm -f "$POLICY"
    fi
}
trap cleanup EXIT

$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends prometheus

if have_tools; then
    echo "install-prometheus: installed $(prometheus --version 2>&1 | head -n 1)"
    exit 0
fi
echo "install-prometheus: apt-get finished but prometheus/promtool are not on PATH" >&2
exit 1
