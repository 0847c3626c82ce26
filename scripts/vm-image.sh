#!/usr/bin/env bash
# Builds a bootable Debian root filesystem image for the real-systemd test (scripts/vm-test.sh):
#   scripts/vm-image.sh bookworm|trixie
# debootstrap from the same Debian mirror this machine's apt uses, Debian's own kernel (which has the
# WireGuard module, unlike the CI host's), then a raw ext4 image made with mkfs.ext4 -d (no loop mount
# needed) plus the kernel and initrd copied out for qemu -kernel/-initrd. The result is cached under
# .cache/vm/<release>/, keyed by a hash of this script, so a rerun is instant and a change here rebuilds.
# Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

release=${1:?usage: scripts/vm-image.sh bookworm|trixie}
case "$release" in bookworm | trixie) ;; *) echo "vm-image: unknown release $release (bookworm or trixie)" >&2; exit 2 ;; esac

# What the test needs inside the VM: a real systemd as PID 1 with udev and D-Bus, Debian's kernel
# (and initramfs-tools, so it can find a virtio root), the daemon's host tools, and the lab's clients.
PACKAGES=(
  systemd-sysv udev dbus kmod linux-image-amd64 initramfs-tools
  wireguard-tools wireguard-go nftables iproute2 procps
  curl python3 iperf3 adduser
)
# The debootstrap tree is cached on its own (.cache/vm/<release>/root, keyed by release, mirror and
# package list), because it is the slow part; the image is rebuilt from it whenever this script changes.
out=.cache/vm/$release
key=$(sha256sum "$0" | cut -c1-16)
if [[ -f $out/key && $(cat "$out/key") == "$key" && -f $out/rootfs.img && -f $out/vmlinuz && -f $out/initrd.img ]]; then
  echo "vm-image: $release is cached in $out"
  exit 0
fi

# The Debian mirror this machine's apt uses (deb822 .sources or one-line .list), else deb.debian.org.
mirror=${EGRESSD_VM_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
  grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)}
mirror=${mirror:-http://deb.debian.org/debian}
root_key=$(echo "$release $mirror ${PACKAGES[*]}" | sha256sum | cut -c1-16)
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/egressd-vm-$release.XXXXXX")
cleanup() {
  # debootstrap may leave proc/sys mounted in the target when it fails half-way.
  for m in proc sys dev/pts dev; do mountpoint -q "$work/root/$m" 2>/dev/null && umount -l "$work/root/$m" || true; done
  rm -rf "$work"
}
trap cleanup EXIT

started=$SECONDS
if [[ -f $out/root.key && $(cat "$out/root.key") == "$root_key" && -d $out/root ]]; then
  echo "vm-image: reusing the debootstrap tree in $out/root"
else
  echo "vm-image: building $release from $mirror (debootstrap; a few minutes)"
  include=$(IFS=,; echo "${PACKAGES[*]}")
  if ! debootstrap --variant=minbase --include="$include" "$release" "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1; then
    tail -n 30 "$work/debootstrap.log" >&2
    [[ -f $work/root/debootstrap/debootstrap.log ]] && tail -n 30 "$work/root/debootstrap/debootstrap.log" >&2
    echo "vm-image: debootstrap of $release failed" >&2
    exit 1
  fi
  rm -rf "$out/root" "$out/root.key"
  mv "$work/root" "$out/root"
  echo "$((SECONDS - started))" > "$out/debootstrap-seconds"
  echo "$root_key" > "$out/root.key"
fi

r=$out/root
echo "egressd-vm-$release" > "$r/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 egressd-vm-%s\n::1 localhost\n' "$release" > "$r/etc/hosts"
# /dev/vda is this image; /dev/vdb carries the test payload in and the results out. The runner mounts
# vdb itself: the kernel node exists at once, while dev-vdb.device waits for udev's coldplug, which
# under emulation on a loaded host took longer than a minute.
cat > "$r/etc/fstab" <<'EOF'
/dev/vda / ext4 rw,errors=remount-ro 0 1
EOF
mkdir -p "$r/test"
# The runner: a generic unit that runs /test/run.sh from the payload disk once the system is up, with
# its output on the serial console, and powers the VM off however the script ends.
cat > "$r/etc/systemd/system/egressd-vm-runner.service" <<'EOF'
[Unit]
Description=egressd VM test runner (/test/run.sh)
After=multi-user.target
ConditionPathExists=/dev/vdb
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
ExecStartPre=/bin/mount -o rw /dev/vdb /test
ExecStart=/bin/bash /test/run.sh
ExecStopPost=-/bin/umount /test
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=40min

[Install]
WantedBy=multi-user.target
EOF
systemctl --root="$r" set-default multi-user.target >/dev/null 2>&1
# Nothing else should compete for the emulated CPU during the test.
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer \
  man-db.timer systemd-tmpfiles-clean.timer getty@tty1.service iperf3.service; do
  systemctl --root="$r" mask "$u" >/dev/null 2>&1 || true
done
# A fixed machine-id would make every run share one journal identity; an empty one is filled at boot.
: > "$r/etc/machine-id"
rm -rf "$r/var/cache/apt/archives/"*.deb "$r/var/lib/apt/lists/"*
# Only the runner is enabled: no egressd unit from an earlier image version.
rm -f "$r/etc/systemd/system/multi-user.target.wants/egressd.service"
systemctl --quiet --root="$r" enable egressd-vm-runner.service

kernel=$(ls "$r"/boot/vmlinuz-* | sort -V | tail -n 1)
initrd=$(ls "$r"/boot/initrd.img-* | sort -V | tail -n 1)
grep -q '^CONFIG_WIREGUARD=[ym]' "$r"/boot/config-* || { echo "vm-image: the $release kernel has no WireGuard" >&2; exit 1; }

mkdir -p "$work/out"
cp "$kernel" "$work/out/vmlinuz"
cp "$initrd" "$work/out/initrd.img"
basename "$kernel" | sed 's/^vmlinuz-//' > "$work/out/kernel-version"
chroot "$r" dpkg-query -W -f='${Version}\n' systemd > "$work/out/systemd-version"
# mkfs.ext4 -d copies owners, modes, xattrs and hard links from the directory: no mount, no loop device.
mkfs.ext4 -q -F -L egressd-vm -d "$r" "$work/out/rootfs.img" 3G
cp "$out/debootstrap-seconds" "$work/out/"
echo "$key" > "$work/out/key"

rm -f "$out/rootfs.img" "$out/key"
mv "$work/out/"* "$out/"
echo "vm-image: $release ready in $out (debootstrap $(cat "$out/debootstrap-seconds")s, total $((SECONDS - started))s," \
  "kernel $(cat "$out/kernel-version"), systemd $(cat "$out/systemd-version"))"
