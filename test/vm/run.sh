#!/bin/bash
# Runs INSIDE the test VM (started by egressd-vm-runner.service once the system is up; see
# scripts/vm-test.sh). /test is the payload disk: this script, the package (or the bare binary and
# unit), and the results it writes back: results.tsv (one check a line: name, pass|fail|info,
# detail) and logs/. Every check is against the real thing: PID 1 is the release's systemd, the
# tunnel is the release's kernel WireGuard module, the exit is a kernel WireGuard peer in a network
# namespace, and the requests are curl's.
#
# Lab, all inside this VM (documentation ranges and 10.x only):
#   pod ns   lan 10.1.0.2/24 ── lan 10.1.0.1/24  VM root ns: egressd under systemd (the gateway)
#                                wan 192.0.2.2/24 ── gw 192.0.2.1/24   inet ns (ISP + "internet")
#                                                    lo 203.0.113.10   whoami :8080, files :8081, iperf3
#   exit ns  wan 198.51.100.2/24 ─────────────────── exit 198.51.100.1/24
#            wg0 10.100.0.1/24 (kernel WireGuard, masquerade out of wan)
# A request that leaves through the tunnel reaches 203.0.113.10 from 198.51.100.2 (the exit); one that
# leaks reaches it from 192.0.2.2 (the "home" address).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export SYSTEMD_PAGER= SYSTEMD_COLORS=0

T=/test
RES=$T/results.tsv
LOGS=$T/logs
mkdir -p "$LOGS"
: > "$RES"
HOME_IP=192.0.2.2
EXIT_IP=198.51.100.2
HOST=203.0.113.10
PROXY=10.1.0.1:1080
CONFIG=/etc/egressd/config.json
failures=0

say() { echo "vm-test: $*"; }
# result NAME pass|fail|info DETAIL...
result() {
  local name=$1 status=$2
  shift 2
  printf '%s\t%s\t%s\n' "$name" "$status" "$*" >> "$RES"
  echo "RESULT $name $status $*"
  [[ $status == fail ]] && failures=$((failures + 1))
  sync
  return 0
}
check() { # check NAME DETAIL -- COMMAND...: pass when COMMAND succeeds
  local name=$1 detail=$2
  shift 3
  if "$@"; then result "$name" pass "$detail"; else result "$name" fail "$detail"; fi
}
mono_us() { awk '{printf "%d", $1 * 1000000}' /proc/uptime; }
prop() { systemctl show -P "$2" "$1"; }
journal_since() { journalctl --no-pager -o short-monotonic --since "@$1" "${@:2}"; }
# Waits up to $2 seconds for command "$3..." to succeed.
wait_for() {
  local what=$1 limit=$2
  shift 2
  local end=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS >= end)) && { say "gave up waiting for $what after ${limit}s"; return 1; }
    sleep 0.5
  done
}
pod_curl() { ip netns exec pod curl -sS --max-time 30 --socks5-hostname "$1" "http://$HOST:8080/"; }

# ---------------------------------------------------------------------------------------------------
# systemd-analyze refuses while this unit is still part of the boot transaction; the manager's
# monotonic timestamps say the same: kernel (and initrd) until PID 1, then PID 1 until multi-user.
userspace_us=$(systemctl show -P UserspaceTimestampMonotonic)
multiuser_us=$(systemctl show -P ActiveEnterTimestampMonotonic multi-user.target)
boot="kernel+initrd $(awk -v u="$userspace_us" 'BEGIN {printf "%.1f", u / 1e6}')s, userspace to multi-user.target $(awk -v a="$userspace_us" -v b="$multiuser_us" 'BEGIN {printf "%.1f", (b - a) / 1e6}')s, test start at uptime $(cut -d' ' -f1 /proc/uptime)s"
say "boot: $boot"
result release info "$(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r), systemd $(systemctl --version | awk 'NR==1 {print $2}')"
result boot-time info "$boot"

# ---- install ---------------------------------------------------------------------------------------
deb=$(ls "$T"/pkg/egressd_*.deb 2>/dev/null | head -n 1)
if [[ -n $deb ]]; then
  t=$SECONDS
  if dpkg -i "$deb" > "$LOGS/dpkg.log" 2>&1; then
    result install pass "dpkg -i $(basename "$deb") in $((SECONDS - t))s"
  else
    result install fail "dpkg -i $(basename "$deb"): $(tail -n 3 "$LOGS/dpkg.log" | tr '\n' ' ')"
  fi
  # The package may start the unit at once; with no config yet that start fails by design.
  systemctl stop egressd.service 2>/dev/null
  systemctl reset-failed egressd.service 2>/dev/null
else
  # No package yet: the bare binary and the repository's unit, installed as the README says.
  install -m 0755 "$T/pkg/egressd" /usr/local/bin/egressd
  install -m 0644 "$T/pkg/egressd.service" /etc/systemd/system/egressd.service
  id egressd >/dev/null 2>&1 || useradd --system --user-group --no-create-home --shell /usr/sbin/nologin egressd
  # The layout the package's tmpfiles.d makes: the daemon's group may read the config, not the key.
  install -d -m 0750 -o root -g egressd /etc/egressd
  systemctl daemon-reload
  result install info "no .deb in the payload: bare binary in /usr/local/bin and the repository's unit in /etc/systemd/system"
fi
unit_path=$(prop egressd.service FragmentPath)
cp "$unit_path" "$LOGS/egressd.service" 2>/dev/null
bin=$(command -v egressd)
result installed info "unit $unit_path, binary $bin, $("$bin" version 2>&1 | head -n 1)"
# systemd logs a unit file it cannot fully parse when it loads it: that is the 252 notify-reload bug.
parse_warnings=$(journalctl -b --no-pager -o cat _PID=1 | grep -F "$(basename "$unit_path")" | grep -iE 'failed to parse|unknown (key|lvalue|section)|ignoring' | sort -u)
if [[ -z $parse_warnings ]]; then
  result unit-parses pass "PID 1 logged no parse warnings for $(basename "$unit_path") (Type=$(prop egressd.service Type))"
else
  result unit-parses fail "$(echo "$parse_warnings" | tr '\n' ';')"
fi

# ---- lab -------------------------------------------------------------------------------------------
lab() {
  set -e
  modprobe wireguard
  for n in inet exit pod; do ip netns add "$n"; ip -n "$n" link set lo up; done
  ip link add wan type veth peer name gw netns inet
  ip link add lan type veth peer name lan netns pod
  ip -n exit link add wan type veth peer name exit netns inet
  ip address add $HOME_IP/24 dev wan
  ip address add 10.1.0.1/24 dev lan
  ip -n pod address add 10.1.0.2/24 dev lan
  ip -n inet address add 192.0.2.1/24 dev gw
  ip -n inet address add 198.51.100.1/24 dev exit
  ip -n inet address add $HOST/32 dev lo
  ip -n exit address add $EXIT_IP/24 dev wan
  ip link set wan up; ip link set lan up
  ip -n pod link set lan up; ip -n inet link set gw up; ip -n inet link set exit up; ip -n exit link set wan up
  ip route add default via 192.0.2.1
  ip -n pod route add default via 10.1.0.1
  ip -n exit route add default via 198.51.100.1
  ip netns exec inet sysctl -q -w net.ipv4.ip_forward=1
  ip netns exec exit sysctl -q -w net.ipv4.ip_forward=1
  # The exit: a kernel WireGuard peer for the gateway, masquerading tunnel traffic out of its WAN.
  umask 077
  wg genkey > /root/exit.key
  ip -n exit link add wg0 type wireguard
  ip netns exec exit wg set wg0 listen-port 51820 private-key /root/exit.key \
    peer "$(egressd pubkey < /etc/egressd/private-key)" allowed-ips 10.100.0.2/32
  ip -n exit address add 10.100.0.1/24 dev wg0
  ip -n exit link set wg0 up
  ip netns exec exit nft -f - <<'EOF'
table inet lab_exit {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "wan" masquerade
	}
}
EOF
  # The "internet" host: what-is-my-IP, a large file, and an iperf3 server.
  mkdir -p /srv/files
  head -c $((32 * 1024 * 1024)) /dev/urandom > /srv/files/32M
  ip netns exec inet python3 "$T/whoami.py" $HOST 8080 > "$LOGS/whoami.log" 2>&1 &
  ip netns exec inet python3 -m http.server --bind $HOST --directory /srv/files 8081 > "$LOGS/files.log" 2>&1 &
  ip netns exec inet iperf3 -s -B $HOST -D --logfile "$LOGS/iperf3-server.log"
  umask 022
  set +e
}
# A package may have made the key already; it must never be replaced.
[[ -s /etc/egressd/private-key ]] || egressd genkey --output /etc/egressd/private-key
if (lab) > "$LOGS/lab.log" 2>&1 && wait_for whoami 20 curl -sf --max-time 2 "http://$HOST:8080/"; then
  direct=$(curl -sS --max-time 5 "http://$HOST:8080/")
  # Direct traffic from the gateway shows the home address: the what-is-my-IP answer tells paths apart.
  if [[ $direct == "$HOME_IP" ]]; then result lab pass "exit wg0 is kernel WireGuard; a direct request shows $direct"; else result lab fail "direct request showed '$direct', not $HOME_IP"; fi
else
  result lab fail "$(tail -n 5 "$LOGS/lab.log" | tr '\n' ' ')"
fi
exit_pub=$(ip netns exec exit wg show wg0 public-key)

write_config() { # write_config IMPLEMENTATION [LISTEN JSON list members] [extra proxy JSON members]
  local listen=${2:-"\"$PROXY\""}
  cat > "$CONFIG" <<EOF
{
  "interface": { "addresses": ["10.100.0.2/32"], "implementation": "$1" },
  "exit": { "name": "vm-exit", "publicKey": "$exit_pub", "endpoint": "$EXIT_IP:51820" },
  "proxy": { "listen": [$listen], "allowClients": ["10.1.0.0/24"]${3:-} },
  "metrics": { "listen": "10.1.0.1:9586" }
}
EOF
  chgrp egressd "$CONFIG" && chmod 0640 "$CONFIG"
}

wg_links() { ip -d link show type wireguard 2>/dev/null | grep -c '^[0-9]*:'; }
teardown_state() { # prints what egressd left behind; empty when clean
  ip -o link show type wireguard 2>/dev/null | awk -F': ' '{print "wireguard link " $2}'
  nft list table inet egressd >/dev/null 2>&1 && echo "nft table inet egressd"
  ip rule show | grep -E 'fwmark|lookup 51820' | sed 's/^/ip rule /'
  ip -6 rule show | grep -E 'fwmark|lookup 51820' | sed 's/^/ip -6 rule /'
  ip route show table 51820 2>/dev/null | sed 's/^/route table 51820: /'
}

start_and_check() { # start_and_check LABEL IMPLEMENTATION
  local label=$1 impl=$2 t0 st rc
  write_config "$impl"
  systemctl reset-failed egressd.service 2>/dev/null
  t0=$(date +%s)
  st=$(mono_us)
  timeout 180 systemctl start egressd.service
  rc=$?
  local took=$(( ($(mono_us) - st) / 1000 ))
  local state="$(prop egressd.service ActiveState)/$(prop egressd.service SubState)" type=$(prop egressd.service Type)
  local exec_us=$(prop egressd.service ExecMainStartTimestampMonotonic) active_us=$(prop egressd.service ActiveEnterTimestampMonotonic)
  local ready_ms=$(( (active_us - exec_us) / 1000 ))
  journal_since "$t0" -u egressd.service > "$LOGS/start-$label.log"
  if [[ $rc == 0 && $state == active/running && $type == notify* ]]; then
    result "$label:active-after-ready" pass "Type=$type, $state; systemctl start ${took} ms; ExecMainStart->active (READY=1) ${ready_ms} ms; status: $(prop egressd.service StatusText)"
  else
    result "$label:active-after-ready" fail "systemctl start rc=$rc, Type=$type, $state, ExecMainStart->active ${ready_ms} ms; journal: $(grep -vi 'debug' "$LOGS/start-$label.log" | tail -n 6 | tr '\n' ' ')"
  fi
  local links=$(ip -d link show type wireguard 2>/dev/null) status_impl
  # egressd status gives up after 10 s; under emulation on a loaded host one query can take that long.
  local try
  for try in 1 2 3; do
    egressd status --json > "$LOGS/status-$label.json" 2> "$LOGS/status-$label.err" && break
    sleep 2
  done
  status_impl=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["tunnel"]["implementation"])' < "$LOGS/status-$label.json" 2>/dev/null ||
    echo "unknown ($(tail -n 1 "$LOGS/status-$label.err"))")
  if echo "$links" | grep -q 'wg-egress' && ! pgrep -x wireguard-go >/dev/null && [[ $status_impl == kernel ]]; then
    result "$label:kernel-wireguard" pass "wg-egress is a kernel wireguard link (ip -d link: $(echo "$links" | grep -o 'wireguard' | head -n 1)), no wireguard-go process, status says implementation=$status_impl"
  else
    result "$label:kernel-wireguard" fail "links: $(echo "$links" | tr '\n' ' ') wireguard-go pids: $(pgrep -x wireguard-go | tr '\n' ' ') status implementation=$status_impl"
  fi
  local seen
  seen=$(pod_curl "$PROXY" 2>&1)
  if [[ $seen == "$EXIT_IP" ]]; then
    result "$label:egress-via-exit" pass "curl --socks5-hostname $PROXY from the pod namespace: the internet host saw $seen (the exit)"
  else
    result "$label:egress-via-exit" fail "the internet host saw '$seen', expected $EXIT_IP"
  fi
}

# ---- kernel ----------------------------------------------------------------------------------------
start_and_check kernel kernel
sleep 3

# Reload: a good config (a second listener) is applied, a bad one refused with a non-zero exit, and
# a download running through the proxy meanwhile (whoami.py's /slow: 120 KiB over a minute, longer
# than a reload takes under emulation) is not cut.
t0=$(date +%s)
ip netns exec pod curl -sS --max-time 300 -o /dev/null -w '%{size_download}' \
  --socks5-hostname "$PROXY" "http://$HOST:8080/slow" > "$LOGS/live-download.txt" 2>&1 &
live=$!
sleep 3
write_config kernel "\"$PROXY\", \"10.1.0.1:1081\""
reload_out=$(timeout 120 systemctl reload egressd.service 2>&1)
rc=$?
kill -0 "$live" 2>/dev/null && live_during=yes || live_during=no
seen=$(pod_curl 10.1.0.1:1081 2>&1)
pid_before=$(prop egressd.service MainPID)
if [[ $rc == 0 && $seen == "$EXIT_IP" ]]; then
  result reload-good pass "systemctl reload rc=0; the new listener 10.1.0.1:1081 answers, via the exit"
else
  result reload-good fail "systemctl reload rc=$rc ($reload_out); new listener gave '$seen'; journal: $(journal_since "$t0" -u egressd.service -o cat | tail -n 4 | tr '\n' ' ')"
fi
wait "$live"
live_size=$(cat "$LOGS/live-download.txt")
# rc is the good reload's: a download merely outlasting a refused reload proves nothing.
if [[ $rc == 0 && $live_during == yes && $live_size == $((120 * 1024)) ]]; then
  result reload-keeps-connections pass "a download through the proxy (120 KiB over 60 s) was in flight across the reload and got all $live_size bytes"
else
  result reload-keeps-connections fail "reload rc=$rc; download in flight when the reload returned: $live_during; it got '$live_size' of $((120 * 1024)) bytes"
fi
t0=$(date +%s)
write_config kernel "\"$PROXY\", \"10.1.0.1:1081\"" ', "maxConnections": 0'
reload_out=$(timeout 120 systemctl reload egressd.service 2>&1)
rc=$?
sleep 1
refusal=$(journal_since "$t0" -u egressd.service -o cat | grep -iE 'refus|maxConnections' | head -n 3 | tr '\n' ' ')
state="$(prop egressd.service ActiveState)/$(prop egressd.service SubState)"
seen=$(pod_curl "$PROXY" 2>&1)
if [[ $rc != 0 && -n $refusal && $state == active/running && $seen == "$EXIT_IP" ]]; then
  result reload-bad pass "systemctl reload rc=$rc: ${reload_out//$'\n'/ }; journal: $refusal; still $state and serving"
else
  result reload-bad fail "systemctl reload rc=$rc (${reload_out//$'\n'/ }); journal: ${refusal:-nothing about the refusal}; $state; proxy gave '$seen'"
fi
journal_since "$t0" -u egressd.service > "$LOGS/reload.log"
write_config kernel

# Throughput through kernel WireGuard: a 32 MiB download through the proxy, and raw TCP as the
# daemon's uid (its traffic is the only traffic marked into the tunnel), both under TCG emulation.
speed=$(ip netns exec pod curl -sS --max-time 300 -o /dev/null -w '%{size_download} %{speed_download} %{time_total}' \
  --socks5-hostname "$PROXY" "http://$HOST:8081/32M" 2>&1)
read -r size bps secs <<< "$speed"
if [[ ${size:-0} == $((32 * 1024 * 1024)) ]]; then
  result throughput-proxy pass "32 MiB via SOCKS5 + kernel WireGuard in ${secs}s: $(awk -v b="$bps" 'BEGIN {printf "%.1f", b / 1048576}') MiB/s"
else
  result throughput-proxy fail "download through the proxy: $speed"
fi
iperf_tunnel=$(setpriv --reuid=egressd --regid=egressd --clear-groups iperf3 -c $HOST -t 8 -f m 2>&1 | grep -E 'receiver' | awk '{print $(NF-2), $(NF-1)}')
iperf_direct=$(iperf3 -c $HOST -t 8 -f m 2>&1 | grep -E 'receiver' | awk '{print $(NF-2), $(NF-1)}')
if [[ -n $iperf_tunnel ]]; then
  result throughput-iperf3 info "as uid egressd through kernel WireGuard: $iperf_tunnel; root, direct (no tunnel): $iperf_direct"
else
  result throughput-iperf3 fail "iperf3 as uid egressd printed no receiver line"
fi

# Watchdog: a daemon frozen with SIGSTOP stops pinging; systemd must kill and restart it.
pid=$(prop egressd.service MainPID)
t0=$(date +%s)
st=$(mono_us)
kill -STOP "$pid"
restarted() { local p; p=$(prop egressd.service MainPID); [[ $p != 0 && $p != "$pid" && $(prop egressd.service ActiveState) == active ]]; }
if wait_for "a restart after SIGSTOP" 150 restarted; then
  # From the manager's timestamps, not from this poll, which lags under emulation.
  ready_us=$(prop egressd.service ActiveEnterTimestampMonotonic)
  took=$(( (ready_us - st) / 1000 ))
  new_start_ms=$(( (ready_us - $(prop egressd.service ExecMainStartTimestampMonotonic)) / 1000 ))
  seen=$(pod_curl "$PROXY" 2>&1)
  wd=$(journal_since "$t0" -o cat | grep -iE 'watchdog' | head -n 2 | tr '\n' ' ')
  if [[ $seen == "$EXIT_IP" ]]; then
    result watchdog pass "SIGSTOP pid $pid -> new pid $(prop egressd.service MainPID) ready ${took} ms after SIGSTOP (WatchdogSec=$(prop egressd.service WatchdogUSec); the new process took ${new_start_ms} ms from exec to READY=1); egress via exit again; journal: $wd"
  else
    result watchdog fail "restarted in ${took} ms but the proxy then gave '$seen'"
  fi
else
  result watchdog fail "pid $pid not restarted within 150 s: $(prop egressd.service ActiveState)/$(prop egressd.service SubState), WatchdogUSec=$(prop egressd.service WatchdogUSec); journal: $(journal_since "$t0" -o cat -u egressd.service | tail -n 4 | tr '\n' ' ')"
  kill -CONT "$pid" 2>/dev/null
fi
journal_since "$t0" > "$LOGS/watchdog.log"

# Stop: the interface, the nft table and the ip rules all go.
st=$(mono_us)
timeout 120 systemctl stop egressd.service
rc=$?
took=$(( ($(mono_us) - st) / 1000 ))
left=$(teardown_state)
if [[ $rc == 0 && -z $left ]]; then
  result stop-teardown pass "systemctl stop in ${took} ms; no wireguard link, no table inet egressd, no fwmark rules, table 51820 empty"
else
  result stop-teardown fail "systemctl stop rc=$rc; left behind: $(echo "$left" | tr '\n' ';')"
fi

# ---- auto: picks the kernel module ----------------------------------------------------------------
start_and_check auto auto
timeout 120 systemctl stop egressd.service
left=$(teardown_state)
[[ -z $left ]] || result auto:stop-teardown fail "left behind: $(echo "$left" | tr '\n' ';')"

# ---- sandbox exposure of the installed unit --------------------------------------------------------
systemd-analyze security --no-pager egressd.service > "$LOGS/security.txt" 2>&1
exposure=$(grep -o 'Overall exposure level for egressd.service: .*' "$LOGS/security.txt" | sed 's/.*: //')
if [[ -n $exposure ]]; then
  result security info "systemd-analyze security: $exposure"
else
  result security fail "systemd-analyze security printed no exposure: $(tail -n 2 "$LOGS/security.txt" | tr '\n' ' ')"
fi

journalctl -b --no-pager -o short-monotonic > "$LOGS/journal.txt" 2>&1
result done info "$failures failed checks; test time ${SECONDS}s in the VM"
sync
say "finished: $failures failed"
exit 0
