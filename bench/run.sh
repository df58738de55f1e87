#!/usr/bin/env bash
# Runs the benchmarks and prints markdown tables (`make bench`; docs/performance.md).
# Installs wrk from Debian's packages when it is missing. Quick smoke run:
#   BENCH_DURATION=2 BENCH_RUNS=1 bash bench/run.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-.venv/bin/python}"

if ! command -v wrk >/dev/null 2>&1; then
    echo "wrk is missing: installing it with apt-get" >&2
    as_root=()
    if [ "$(id -u)" -ne 0 ]; then
        as_root=(sudo)
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

if ! command -v taskset >/dev/null 2>&1; then
    echo "error: taskset (util-linux) is required to pin the processes to cores" >&2
    exit 2
fi

exec "$PYTHON" -m bench "$@"
