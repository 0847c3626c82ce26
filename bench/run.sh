#!/usr/bin/env bash
# Runs a proxy benchmark with the open-files limit raised as far as this shell may (10k proxied
# connections need 20k fds in the proxy). Usage: bench/run.sh [proxy-bench.ts flags]
#                                                  bench/run.sh idle-hold [idle-hold.ts flags]
#                                                  bench/run.sh tunnel [tunnel-throughput.ts flags] (root)
set -euo pipefail
cd "$(dirname "$0")/.."
ulimit -n "$(ulimit -Hn)"
need() { command -v "$1" >/dev/null || { echo "bench: $1 is not installed (apt-get install $2)" >&2; exit 1; }; }
if [[ ${1:-} == tunnel ]]; then
  shift
  need iperf3 iperf3
  need wireguard-go wireguard-go
  exec node_modules/.bin/bun bench/tunnel-throughput.ts "$@"
fi
need microsocks microsocks
need danted dante-server
need cc gcc
if [[ ${1:-} == idle-hold ]]; then
  shift
  exec node_modules/.bin/bun bench/idle-hold.ts "$@"
fi
exec node_modules/.bin/bun bench/proxy-bench.ts "$@"
