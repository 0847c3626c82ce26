#!/usr/bin/env bash
# Runs egressd's unit under a real systemd, on a kernel with WireGuard: Debian 12 (systemd 252) and
# Debian 13, each booted under qemu with Debian's own kernel, egressd installed from the .deb (or the
# bare binary and unit when no .deb is built), a lab exit inside the VM, and the checks in
# test/vm/run.sh. Prints one table and exits 1 if any check failed.
#
#   scripts/vm-test.sh [bookworm] [trixie]     # default: both, one after the other
#
# Images are built on first use (scripts/vm-image.sh, debootstrap) and cached in .cache/vm/. Each run
# boots a throwaway qcow2 overlay, so the cached image is never modified. No KVM needed: software
# emulation (TCG), which makes boots slow and throughput low; see README, "Testing under a real systemd".
# Environment: EGRESSD_VM_ACCEL (tcg; kvm where it works), EGRESSD_VM_CPUS (2), EGRESSD_VM_MEM (MiB, 1536), EGRESSD_VM_TIMEOUT (s per VM, 1500),
# EGRESSD_VM_PAYLOAD (deb | binary; default: the .deb when dist/ has one), EGRESSD_VM_OUT (results
# directory, default .cache/vm/last), EGRESSD_VM_UNIT (the unit file for the binary payload, default
# systemd/egressd.service). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

releases=("$@")
((${#releases[@]})) || releases=(bookworm trixie)
cpus=${EGRESSD_VM_CPUS:-2}
mem=${EGRESSD_VM_MEM:-1536}
vm_timeout=${EGRESSD_VM_TIMEOUT:-1500}
out=${EGRESSD_VM_OUT:-.cache/vm/last}

[[ $(id -u) == 0 ]] || { echo "vm-test: run as root (debootstrap, mkfs.ext4 -d of a root filesystem)" >&2; exit 2; }
missing=()
for tool in debootstrap qemu-system-x86_64 qemu-img mkfs.ext4 debugfs; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  echo "vm-test: missing ${missing[*]}; apt-get install debootstrap qemu-system-x86 qemu-utils e2fsprogs" >&2
  exit 2
fi
# TCG by default: the CI host's /dev/kvm exists but qemu aborts on it ("failed to set MSR 0x10a").
accel=${EGRESSD_VM_ACCEL:-tcg}
total_start=$SECONDS

# ---- what to install in the VM -------------------------------------------------------------------
payload=$(mktemp -d "${TMPDIR:-/tmp}/egressd-vm-payload.XXXXXX")
qemu_pid=
cleanup() {
  [[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null
  rm -rf "$payload"
}
trap cleanup EXIT
mkdir -p "$payload/pkg"
cp test/vm/run.sh test/vm/whoami.py "$payload/"
deb=$(ls -t dist/egressd_*_amd64.deb 2>/dev/null | head -n 1 || true)
mode=${EGRESSD_VM_PAYLOAD:-$([[ -n $deb ]] && echo deb || echo binary)}
case "$mode" in
  deb)
    [[ -n $deb ]] || { echo "vm-test: EGRESSD_VM_PAYLOAD=deb but dist/ has no egressd_*_amd64.deb (npm run deb)" >&2; exit 2; }
    cp "$deb" "$payload/pkg/"
    what="package $(basename "$deb")" ;;
  binary)
    [[ -x dist/egressd ]] || node_modules/.bin/bun run build >/dev/null
    cp dist/egressd "$payload/pkg/egressd"
    unit=${EGRESSD_VM_UNIT:-systemd/egressd.service}
    cp "$unit" "$payload/pkg/egressd.service"
    what="bare dist/egressd + $unit (no .deb)" ;;
  *) echo "vm-test: EGRESSD_VM_PAYLOAD must be deb or binary, not $mode" >&2; exit 2 ;;
esac
echo "vm-test: installing $what; accel $accel, $cpus vCPU, $mem MiB"

rm -rf "$out"
mkdir -p "$out"
summary=()
status=0

run_release() {
  local rel=$1 img=.cache/vm/$1 dir=$out/$1 t
  mkdir -p "$dir"
  t=$SECONDS
  if ! scripts/vm-image.sh "$rel"; then
    summary+=("$rel	image	fail	scripts/vm-image.sh $rel failed")
    return 1
  fi
  local image_s=$((SECONDS - t))
  summary+=("$rel	image	info	debootstrap $(cat "$img/debootstrap-seconds")s when built; this run $((image_s))s (cached: $([[ $image_s -lt 5 ]] && echo yes || echo no)), kernel $(cat "$img/kernel-version"), systemd $(cat "$img/systemd-version")")

  # A fresh overlay over the cached image and a payload disk that carries the results back out.
  qemu-img create -q -f qcow2 -F raw -b "$(realpath "$img/rootfs.img")" "$dir/overlay.qcow2"
  mkfs.ext4 -q -F -L egressd-test -d "$payload" "$dir/payload.img" 256M

  local start=$SECONDS booted=
  timeout "$vm_timeout" qemu-system-x86_64 -accel "$accel" -cpu max -smp "$cpus" -m "$mem" \
    -display none -monitor none -serial "file:$dir/console.log" -no-reboot -nic none \
    -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 panic=-1 net.ifnames=0 loglevel=4" \
    -drive "file=$dir/overlay.qcow2,if=virtio,format=qcow2" \
    -drive "file=$dir/payload.img,if=virtio,format=raw" &
  qemu_pid=$!
  while kill -0 "$qemu_pid" 2>/dev/null; do
    if [[ -z $booted ]] && grep -aq 'vm-test: boot:' "$dir/console.log" 2>/dev/null; then booted=$((SECONDS - start)); fi
    sleep 1
  done
  local rc=0
  wait "$qemu_pid" || rc=$?
  qemu_pid=
  local vm_s=$((SECONDS - start))
  ((rc == 124)) && summary+=("$rel	vm	fail	no poweroff within ${vm_timeout}s (EGRESSD_VM_TIMEOUT); see $dir/console.log")
  ((rc != 0 && rc != 124)) && summary+=("$rel	vm	fail	qemu exited $rc; see $dir/console.log")
  summary+=("$rel	vm	info	qemu start to test start ${booted:-?}s, whole VM run ${vm_s}s")

  debugfs -R "cat /results.tsv" "$dir/payload.img" > "$dir/results.tsv" 2>/dev/null || true
  (cd "$dir" && debugfs -R "rdump /logs ." payload.img >/dev/null 2>&1) || true
  rm -f "$dir/overlay.qcow2"
  if [[ ! -s $dir/results.tsv ]]; then
    summary+=("$rel	results	fail	the VM wrote no results; last console lines: $(tail -n 5 "$dir/console.log" | tr -d '\r' | tr '\n' ' ')")
    return 1
  fi
  grep -q '^done	' "$dir/results.tsv" || summary+=("$rel	results	fail	run.sh did not finish; see $dir/console.log")
  while IFS= read -r line; do summary+=("$rel	$line"); done < "$dir/results.tsv"
}

for rel in "${releases[@]}"; do
  case "$rel" in bookworm | trixie) ;; *) echo "vm-test: unknown release $rel (bookworm or trixie)" >&2; exit 2 ;; esac
  run_release "$rel" || true
done

echo
printf '%-9s %-28s %-5s %s\n' release check result detail
for row in "${summary[@]}"; do
  IFS=$'\t' read -r rel name res detail <<< "$row"
  printf '%-9s %-28s %-5s %s\n' "$rel" "$name" "$res" "$detail"
  [[ $res == fail ]] && status=1
done
echo
echo "vm-test: total ${SECONDS}s; results and logs in $out/<release>/ ($( ((status)) && echo FAILED || echo all checks passed))"
exit "$status"
