#!/usr/bin/env bash
# Runs a proxy benchmark with the open-files limit raised as far as this shell may (10k proxied
# connections need 20k fds in the proxy). Usage: bench/run.sh [proxy-bench.ts flags]
#                                                  bench/run.sh idle-hold [idle-hold.ts flags]
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
command -v microsocks >/dev/null || { echo "microsocks is not installed (apt-get install microsocks)" >&2; exit 1; }
if [[ ${1:-} == idle-hold ]]; then
  shift
  exec node_modules/.bin/bun bench/idle-hold.ts "$@"
fi
exec node_modules/.bin/bun bench/proxy-bench.ts "$@"
