#!/usr/bin/env bash
# Builds dist/egressd_<version>_<arch>.deb with dpkg-deb alone (no debhelper): the binary, the unit,
# sysusers.d and tmpfiles.d files, example configs, man pages and completions. The version is
# package.json's; the maintainer scripts are packaging/deb/. Run: npm run deb
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(node_modules/.bin/bun -e 'console.log(require("./package.json").version)')
arch=$(dpkg --print-architecture)
out=dist/egressd_${version}_${arch}.deb
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
umask 022

# Everything the package holds must exist: a missing man page or completion fails the build.
for f in man/egressd.1 man/egressd.json.5 completions/egressd.bash completions/_egressd completions/egressd.fish \
  systemd/egressd.service systemd/egressd.sysusers systemd/egressd.tmpfiles LICENSE CHANGELOG.md README.md; do
  [[ -f $f ]] || { echo "build-deb: $f is missing (man pages and completions: npm run man)" >&2; exit 1; }
done
compgen -G 'examples/*.json' >/dev/null || { echo "build-deb: no examples/*.json" >&2; exit 1; }

mkdir -p "$root/usr/bin"
BUN=node_modules/.bin/bun bash scripts/build.sh "$root/usr/bin/egressd" >/dev/null
chmod 0755 "$root/usr/bin/egressd"

# The unit as shipped in the repository names /usr/local/bin (a manual install); the package's
# binary is /usr/bin/egressd.
install -D -m 0644 /dev/null "$root/lib/systemd/system/egressd.service"
sed 's#/usr/local/bin/egressd#/usr/bin/egressd#g' systemd/egressd.service >"$root/lib/systemd/system/egressd.service"
grep -q '^ExecStart=/usr/bin/egressd run ' "$root/lib/systemd/system/egressd.service"
install -D -m 0644 systemd/egressd.sysusers "$root/usr/lib/sysusers.d/egressd.conf"
install -D -m 0644 systemd/egressd.tmpfiles "$root/usr/lib/tmpfiles.d/egressd.conf"

doc=$root/usr/share/doc/egressd
install -D -m 0644 README.md "$doc/README.md"
install -d -m 0755 "$doc/examples"
install -m 0644 examples/* "$doc/examples/"
gzip -9n -c CHANGELOG.md >"$doc/changelog.gz"
# Debian's own changelog, in its format: one entry for this build.
{
  echo "egressd ($version) unstable; urgency=medium"
  echo
  echo "  * Upstream release $version; see changelog.gz."
  echo
  echo " -- egressd authors <egressd@localhost>  $(date -R -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")"
} | gzip -9n >"$doc/changelog.Debian.gz"
{
  echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
  echo "Upstream-Name: egressd"
  echo
  echo "Files: *"
  echo "Copyright: 2026 the egressd authors"
  echo "License: MIT"
  echo " The executable also holds the Bun runtime (MIT), which statically links JavaScriptCore"
  echo " (LGPL-2) and other components under their own licenses, listed at"
  echo " https://bun.sh/docs/project/licensing, and the npm packages zod and @noble/* (MIT)."
  echo
  echo "License: MIT"
  # LICENSE without its title and copyright lines, in the format's continuation style.
  sed -n '/^Permission/,$p' LICENSE | sed 's/^$/./; s/^/ /'
} >"$doc/copyright"

install -D -m 0644 /dev/null "$root/usr/share/man/man1/egressd.1.gz"
gzip -9n -c man/egressd.1 >"$root/usr/share/man/man1/egressd.1.gz"
install -D -m 0644 /dev/null "$root/usr/share/man/man5/egressd.json.5.gz"
gzip -9n -c man/egressd.json.5 >"$root/usr/share/man/man5/egressd.json.5.gz"
install -D -m 0644 completions/egressd.bash "$root/usr/share/bash-completion/completions/egressd"
install -D -m 0644 completions/_egressd "$root/usr/share/zsh/vendor-completions/_egressd"
install -D -m 0644 completions/egressd.fish "$root/usr/share/fish/vendor_completions.d/egressd.fish"

install -D -m 0644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/egressd"

install -d -m 0755 "$root/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: egressd
Version: $version
Architecture: $arch
Maintainer: egressd authors <egressd@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.17), wireguard-tools, nftables, iproute2, passwd
Recommends: systemd (>= 252)
Suggests: wireguard-go
Section: net
Priority: optional
Description: WireGuard egress gateway: a SOCKS5 proxy whose traffic leaves through a VPS
 egressd runs a SOCKS5 proxy on LAN addresses and sends its traffic, and
 only its traffic, through a WireGuard tunnel to an exit host: fwmark
 policy routing for its own uid, a kill switch and an nftables leak
 guard, DNS through the tunnel, and Prometheus metrics. It uses the
 kernel's WireGuard, or wireguard-go when the kernel has none.
 .
 The package installs no config: start from /usr/share/doc/egressd/examples.
CONTROL

mkdir -p dist
dpkg-deb --build --root-owner-group -Zgzip "$root" "$out" >/dev/null
echo "$out"
