#!/usr/bin/env bash
# Installs what egressd needs to build, test and run its demo lab on Debian 12 (run as root):
# the Debian tools, npm dependencies (which include the bun runtime itself), and, when the host's
# systemd is older than 253, a private copy of systemd-analyze that understands Type=notify-reload.
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

# systemd 252 (Debian 12) does not know Type=notify-reload; the unit tests verify with 254 from
# bookworm-backports, unpacked under .cache/ and never installed over the host's systemd.
sd_version=$(systemd-analyze --version 2>/dev/null | awk 'NR==1 {print $2}')
if [[ "${sd_version:-0}" -lt 253 && ! -x .cache/systemd/usr/bin/systemd-analyze ]]; then
  echo "setup: unpacking systemd-analyze 254 from bookworm-backports into .cache/systemd"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "deb http://deb.debian.org/debian bookworm-backports main" > "$tmp/bpo.list"
  apt_bpo=(-o "Dir::Etc::sourcelist=$tmp/bpo.list" -o "Dir::Etc::sourceparts=-" -o "APT::Get::List-Cleanup=0")
  apt-get "${apt_bpo[@]}" update -qq
  (cd "$tmp" && apt-get "${apt_bpo[@]}" download -qq systemd/bookworm-backports libsystemd-shared/bookworm-backports 2>/dev/null)
  mkdir -p .cache/systemd
  for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" .cache/systemd; done
fi

npm ci --no-audit --no-fund --loglevel=error
node_modules/.bin/bun --version >/dev/null
echo "setup: done (bun $(node_modules/.bin/bun --version))"
