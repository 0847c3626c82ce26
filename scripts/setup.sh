#!/usr/bin/env bash
# Installs what egressd needs to build, test, package and run its demo lab on Debian 12 (run as
# root): the Debian tools and the npm dependencies (which include the bun runtime itself).
# Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  wireguard-tools wireguard-go nftables iproute2 util-linux procps   # the daemon's host tools
  curl ncat python3-socks socat microsocks iperf3 tcpdump dnsmasq-base # test clients, bench, lab
  prometheus   # promtool, to check the /metrics exposition
  nix-bin      # nix-instantiate, to parse and evaluate the NixOS module
  # real HTTP-proxy clients (test/proxy/http-clients/): wget, Go's net/http, Python requests,
  # apt-ftparchive and dpkg-deb for the lab apt repository, tinyproxy as the known-good proxy
  wget golang-go python3-requests apt-utils dpkg-dev tinyproxy
  cloud-init   # `cloud-init schema`, to validate `egressd exit-config --format cloud-init`
  man-db groff-base lintian zsh fish   # the man pages, the .deb and the completions (test/docs, test/deb)
  dante-client bind9-dnsutils ldnsutils  # socksify wrapping drill and dig: SOCKS5 UDP ASSOCIATE clients
  openssl python3-cryptography git  # the test CA; the handshake probe's Python reference; git clone via the proxy
  dante-server gcc  # bench/ only (on demand): danted as a peer, cc to build bench/splice-relay.c
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No recommends: wireguard-tools would otherwise pull in a kernel image.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/bun --version >/dev/null
echo "setup: done (bun $(node_modules/.bin/bun --version))"
