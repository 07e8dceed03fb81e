#!/usr/bin/env bash
# Boots the appliance test image (build/image.sh) of one architecture and
# kernel series under QEMU (TCG, no KVM) and checks the agent from the host
# and from inside the guest. What the agent should do follows the kernel:
#   - /metrics and /status answer through a host forward on 127.0.0.1
#     (boot-to-first-scrape time is printed)
#   - XDP (native, on virtio_net; a bpf_link from 5.9, netlink before) and
#     TC ingress/egress (TCX links from 6.6, clsact filters before) are
#     attached: /status hooks and netprobe_hook_attached
#   - the socket layer's CO-RE probes load (every Debian kernel has BTF);
#     on the OpenWrt-style kernel, which has none, the agent says so in one
#     line and carries on
#   - N requests from the host show up: rx/tx packets and SYNs on eth0 grow
#     by at least N
#   - inside the guest, busybox wget scrapes /metrics and the init script
#     reports it running (console markers); the agent refuses, in one line,
#     a kernel that reads as 5.4 (below 5.8: a bind mount over osrelease in
#     a mount namespace); then, each time the host lets
#     it go on through a second forwarded port, the guest restarts the
#     agent (--keep-on-exit) and, after N more requests from the host,
#     compares eth0's rx and tx packets with the kernel's since before the
#     restart (equal: nothing lost or counted twice); it SIGKILLs the
#     agent, the supervisor respawns it, which attaches everything again
#     and carries on the pinned counts; last, `/etc/init.d/netprobe
#     cleanup` must leave no program, map, attachment or pin (bpftool)
#   - the boot's figures on one line, "boot-test: result ...", which
#     build/kernel-table.sh turns into the docs' table
# QEMU uses user networking with restrict=on: the guest reaches nothing
# outside; only the two forwarded ports come in. Every wait is bounded, and
# the QEMU process is killed on exit.
#
# Usage: build/boot-test.sh ARCH [SERIES] [--shell]    ARCH: x86_64 or aarch64
#   SERIES          the kernel (build/image.sh): 6.1 (default), 5.10, 6.12,
#                   openwrt (6.1 without BTF or BPF_EVENTS: the socket layer
#                   must say once that it is off, and nothing else changes)
#   --shell         boot the image with the console on this terminal (Ctrl-A X
#                   quits) and the agent on a forwarded port; no checks
#   NETPROBE_NO_BUILD=1   boot the image as built, without build/image.sh first
#   BOOT_TIMEOUT=240      seconds allowed from QEMU start to the guest self-test end
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "boot-test: FAIL: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: build/boot-test.sh x86_64|aarch64 [5.10|6.1|6.12|openwrt] [--shell]"
case $1 in
x86_64 | amd64) ARCH=x86_64 ;;
aarch64 | arm64) ARCH=aarch64 ;;
*) die "unknown architecture '$1' (x86_64 or aarch64)" ;;
esac
shift
SERIES=6.1 SHELL_MODE=
for a in "$@"; do
	case $a in
	--shell) SHELL_MODE=1 ;;
	5.10 | 6.1 | 6.12 | openwrt) SERIES=$a ;;
	*) die "unknown argument '$a' (a kernel series 5.10, 6.1, 6.12, openwrt, or --shell)" ;;
	esac
done
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}
N_REQUESTS=50

for t in qemu-system-$ARCH wget python3; do
	command -v "$t" >/dev/null || die "$t is missing (see build/deps.sh)"
done

OUT=${CARGO_TARGET_DIR:-target}/appliance/$ARCH-$SERIES
T_SCRIPT=$(date +%s.%N)
if [ -z "${NETPROBE_NO_BUILD:-}" ]; then
	bash build/image.sh "$ARCH" "$SERIES"
fi
[ -f "$OUT/image.env" ] || die "no image in $OUT (run build/image.sh $ARCH $SERIES)"
# shellcheck disable=SC1091
. "$OUT/image.env"

# What the agent should attach on this kernel.
KMAJOR=${KERNEL_VERSION%%.*}
KMINOR=${KERNEL_VERSION#*.}
KMINOR=${KMINOR%%[!0-9]*}
kernel_at_least() { [ "$KMAJOR" -gt "$1" ] || { [ "$KMAJOR" -eq "$1" ] && [ "$KMINOR" -ge "$2" ]; }; }
XDP_METHOD=netlink TC_MODE=clsact TC_METHOD=netlink
kernel_at_least 5 9 && XDP_METHOD=bpf_link
kernel_at_least 6 6 && TC_MODE=tcx TC_METHOD=bpf_link
# Every Debian kernel has BTF; the OpenWrt-style one has none.
HAS_BTF=1
[ "$SERIES" = openwrt ] && HAS_BTF=

# A port nothing listens on (QEMU fails to start if it is taken meanwhile;
# the caller retries).
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	die "no free port found"
}

# qemu_cmd PORT CTL_PORT [KERNEL_ARGS]: sets QEMU to the command line that
# boots the image with the guest's port 8081 forwarded to 127.0.0.1:PORT and
# the self-test's control port 8099 to 127.0.0.1:CTL_PORT.
qemu_cmd() {
	local port=$1 ctl=$2 extra=${3:-}
	QEMU=()
	case $ARCH in
	x86_64)
		# PVH boot of the ELF vmlinux (image.env KERNEL_FORMAT=pvh). RDRAND
		# makes the guest's random pool ready at once; the plain qemu64 CPU
		# reaches the agent about 1 s sooner under TCG than -cpu max.
		# shellcheck disable=SC2054 # a QEMU CPU model with a feature
		QEMU=(qemu-system-x86_64 -M pc -cpu qemu64,+rdrand)
		;;
	aarch64)
		QEMU=(qemu-system-aarch64 -M virt -cpu cortex-a57)
		;;
	esac
	# shellcheck disable=SC2054 # commas belong to QEMU's option syntax
	QEMU+=(-smp 2 -m 512 -nodefaults -no-reboot -display none
		-kernel "$KERNEL" -initrd "$INITRD" -append "console=$CONSOLE quiet panic=-1${extra:+ $extra}"
		-netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:8081,hostfwd=tcp:127.0.0.1:$ctl-:8099"
		# No option ROM: the kernel is loaded directly, nothing network-boots.
		-device virtio-net-pci,netdev=net0,romfile=)
}

if [ -n "$SHELL_MODE" ]; then
	port=$(free_port)
	echo "boot-test: $ARCH console below (Ctrl-A X quits); the agent answers on http://127.0.0.1:$port/metrics"
	# The guest's self-test (restart, SIGKILL) stays off.
	qemu_cmd "$port" "$(free_port)" netprobe.selftest=0
	exec "${QEMU[@]}" -serial mon:stdio
fi

QEMU_PID=
WORK=$(mktemp -d /tmp/netprobe-boot.XXXXXX)
CONSOLE_LOG=$WORK/console.log
KEEP=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill -TERM "$QEMU_PID" 2>/dev/null || true
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
	fi
	if [ -n "$KEEP" ]; then echo "boot-test: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASSED=0 FAILED=0
ok() { echo "  ok: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "  FAIL: $*" >&2; FAILED=$((FAILED + 1)); KEEP=1; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }
get() { wget -qO- -T 3 -t 1 "http://127.0.0.1:$PORT$1"; }
# marker NAME: the guest's NETPROBE-GUEST-NAME line (other console output,
# such as busybox init's prompt, may precede it on the line).
marker() { grep -a -o "NETPROBE-GUEST-$1.*" "$CONSOLE_LOG" 2>/dev/null | head -1 | tr -d '\r' || true; }

# wait_for COND SECONDS: runs COND every 0.25 s until it succeeds (0), the
# time is up, QEMU exits or the guest panics (1).
wait_for() {
	local end=$(($(date +%s) + $2))
	while [ "$(date +%s)" -lt "$end" ]; do
		eval "$1" && return 0
		kill -0 "$QEMU_PID" 2>/dev/null || return 1
		grep -aq 'Kernel panic' "$CONSOLE_LOG" && return 1
		sleep 0.25
	done
	return 1
}
finish() {
	if [ "$FAILED" -gt 0 ]; then
		echo "--- console (last 60 lines)" >&2
		tail -60 "$CONSOLE_LOG" >&2
	fi
	echo "boot-test: $ARCH: boot to first scrape ${FIRST_SCRAPE:--} s"
	echo "boot-test: $PASSED passed, $FAILED failed"
	# One line per boot for build/kernel-table.sh.
	echo "boot-test: result series=$SERIES arch=$ARCH kernel=$KERNEL_VERSION package=\"${KERNEL_PACKAGE:-}\" passed=$PASSED failed=$FAILED first_scrape=${FIRST_SCRAPE:--} boot_wall=$(secs "$T_START" "$(now)") total_wall=$(secs "$T_SCRIPT" "$(now)") reboots=${REBOOTS:-0}"
	[ "$FAILED" -eq 0 ]
	exit
}

# --- boot ----------------------------------------------------------------
T_START=$(now)
echo "boot-test: $ARCH: kernel $KERNEL_VERSION ($KERNEL_FORMAT; expect XDP $XDP_METHOD, TC $TC_MODE), $(basename "$INITRD")"
# start_qemu: boots the image, console in $CONSOLE_LOG (QEMU fails to start
# when a port is taken meanwhile: new ports, up to three times).
start_qemu() {
	for _ in 1 2 3; do
		PORT=$(free_port)
		CTL_PORT=$(free_port)
		: >"$CONSOLE_LOG"
		T0=$(now)
		qemu_cmd "$PORT" "$CTL_PORT"
		"${QEMU[@]}" -serial "file:$CONSOLE_LOG" >"$WORK/qemu.log" 2>&1 </dev/null &
		QEMU_PID=$!
		sleep 0.5
		kill -0 "$QEMU_PID" 2>/dev/null && break
		wait "$QEMU_PID" 2>/dev/null || true
		QEMU_PID=
		grep -q 'host forwarding' "$WORK/qemu.log" || { cat "$WORK/qemu.log" >&2; die "QEMU did not start"; }
	done
	[ -n "$QEMU_PID" ] || die "QEMU did not start: $(cat "$WORK/qemu.log")"
	echo "boot-test: QEMU pid $QEMU_PID; guest port 8081 on 127.0.0.1:$PORT, control port 8099 on 127.0.0.1:$CTL_PORT"
}
stop_qemu() {
	kill -KILL "$QEMU_PID" 2>/dev/null || true
	wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=
}

# First scrape from the host: the boot-to-first-scrape time. A guest kernel
# that panics before userspace gets one more boot, said on the result line
# (seen once in ten boots of 6.12 on x86_64: "Oops: int3" in code the
# kernel was patching at boot, under multi-threaded TCG).
FIRST_SCRAPE= REBOOTS=0
for attempt in 1 2; do
	start_qemu
	# shellcheck disable=SC2016 # evaluated by wait_for
	if wait_for 'wget -qO "$WORK/metrics0" -T 0.5 -t 1 "http://127.0.0.1:$PORT/metrics" 2>/dev/null && [ -s "$WORK/metrics0" ]' "$BOOT_TIMEOUT"; then
		FIRST_SCRAPE=$(secs "$T0" "$(now)")
		ok "/metrics answered from the host ${FIRST_SCRAPE} s after QEMU started"
		break
	fi
	if [ "$attempt" = 1 ] && grep -aq 'Kernel panic' "$CONSOLE_LOG" && ! grep -aq 'NETPROBE-GUEST' "$CONSOLE_LOG"; then
		echo "boot-test: the guest kernel panicked before userspace ($(grep -a -m1 -o 'Oops: .*\|BUG: .*\|Kernel panic.*' "$CONSOLE_LOG" | tr -d '\r')); booting once more" >&2
		cp "$CONSOLE_LOG" "$WORK/console-panic.log"
		REBOOTS=1 KEEP=1
		stop_qemu
		continue
	fi
	fail "/metrics never answered from the host within ${BOOT_TIMEOUT} s"
	finish
done

# --- checks from the host, the agent undisturbed ------------------------------
# check_status FILE: eth0 has XDP (native) and TC ingress/egress, attached
# as this kernel allows.
check_status() {
	python3 - "$1" "$ARCH" "$XDP_METHOD" "$TC_MODE" "$TC_METHOD" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
arch, xdp_method, tc_mode, tc_method = sys.argv[2:]
assert s["arch"] == arch, s["arch"]
(eth0,) = [i for i in s["interfaces"] if i["name"] == "eth0"]
hooks = {h["hook"]: h for h in eth0["hooks"]}
assert set(hooks) == {"xdp", "tc_ingress", "tc_egress"}, hooks
assert hooks["xdp"]["mode"] == "native", hooks["xdp"]
assert hooks["xdp"]["method"] == xdp_method, hooks["xdp"]
for h in ("tc_ingress", "tc_egress"):
    assert hooks[h]["mode"] == tc_mode and hooks[h]["method"] == tc_method, hooks[h]
assert all(h["program_id"] > 0 for h in hooks.values()), hooks
assert eth0["rx_source"] == "xdp", eth0["rx_source"]
EOF
}
HOOKS="xdp (native, $XDP_METHOD), tc_ingress and tc_egress ($TC_MODE, $TC_METHOD)"
if get /status >"$WORK/status.json" && check_status "$WORK/status.json"; then
	ok "/status: eth0 hooks $HOOKS; arch $ARCH"
else
	fail "/status: $(head -c 2000 "$WORK/status.json")"
fi

# sample NAME LABEL...: values of the NAME samples of the last scrape that
# carry every LABEL (label="value"), whatever their order.
sample() {
	local name=$1
	shift
	awk -v n="$name{" -v want="$*" 'BEGIN { k = split(want, w, " ") }
		index($1, n) == 1 { for (i = 1; i <= k; i++) if (index($1, w[i]) == 0) next; print $2 }' "$WORK/metrics_now"
}
get /metrics >"$WORK/metrics_now" || fail "/metrics did not answer"
missing=
for hm in xdp/native "tc_ingress/$TC_MODE" "tc_egress/$TC_MODE"; do
	v=$(sample netprobe_hook_attached 'interface="eth0"' "hook=\"${hm%/*}\"" "mode=\"${hm#*/}\"")
	[ "$v" = 1 ] || missing="$missing $hm"
done
if [ -z "$missing" ]; then
	ok "netprobe_hook_attached is 1 for eth0 xdp/native, tc_ingress/$TC_MODE, tc_egress/$TC_MODE"
else
	fail "netprobe_hook_attached not 1 for eth0:$missing: $(grep '^netprobe_hook_attached' "$WORK/metrics_now" | tr '\n' ' ')"
fi
if [ -n "$(sample netprobe_build_info "arch=\"$ARCH\"")" ]; then
	ok "netprobe_build_info arch=\"$ARCH\""
else
	fail "netprobe_build_info: $(grep '^netprobe_build_info' "$WORK/metrics_now")"
fi

# The socket layer: its CO-RE object relocated and attached on the guest's
# kernel (every Debian kernel has BTF), which proves CO-RE across kernel
# versions.
loaded=$(awk '$1 == "netprobe_socket_probes_loaded" { print $2 }' "$WORK/metrics_now")
if [ -n "$HAS_BTF" ]; then
	if [ "$loaded" = 1 ]; then
		ok "netprobe_socket_probes_loaded 1 on $(grep -o 'kernel="[^"]*"' "$WORK/metrics_now" | head -1)"
	else
		fail "socket probes not loaded: $(grep '^netprobe_socket_probes_loaded' "$WORK/metrics_now") (/status sockets.disabled_reason says why)"
	fi
else
	# No BTF: the first agent's log (on the console through syslog, before
	# the self-test's first gate) names the reason in exactly one line.
	said=$(awk '/NETPROBE-GUEST-WAITING-START/ { exit } /socket layer|BTF/' "$CONSOLE_LOG" | tr -d '\r')
	if [ "$loaded" = 0 ] && [ "$(grep -c . <<<"$said")" -eq 1 ] && grep -q 'socket layer disabled: the kernel has no BTF' <<<"$said"; then
		ok "no BTF: netprobe_socket_probes_loaded 0, one log line: ${said#*netprobe: }"
	else
		fail "no BTF: netprobe_socket_probes_loaded '${loaded:-}', want 0, and one 'socket layer disabled: the kernel has no BTF' line; the log says: ${said:-nothing}"
	fi
fi
passive0=$(sample netprobe_tcp_connections_opened_total 'direction="passive"')

# Traffic: N requests from the host are at least N packets each way and N
# SYNs on eth0 (each is a new TCP connection through the forward).
counters() {
	get /metrics >"$WORK/metrics_now" || return 1
	echo "$(sample netprobe_interface_rx_packets_total 'interface="eth0"')" \
		"$(sample netprobe_interface_tx_packets_total 'interface="eth0"')" \
		"$(sample netprobe_tcp_flags_total 'interface="eth0"' 'hook="xdp"' 'flag="syn"')"
}
read -r rx0 tx0 syn0 < <(counters) || true
for _ in $(seq "$N_REQUESTS"); do get /healthz >/dev/null || true; done
drx=0 dtx=0 dsyn=0
for _ in $(seq 40); do
	sleep 0.5
	read -r rx1 tx1 syn1 < <(counters) || continue
	drx=$((${rx1:-0} - ${rx0:-0})) dtx=$((${tx1:-0} - ${tx0:-0})) dsyn=$((${syn1:-0} - ${syn0:-0}))
	[ "$drx" -ge "$N_REQUESTS" ] && [ "$dtx" -ge "$N_REQUESTS" ] && [ "$dsyn" -ge "$N_REQUESTS" ] && break
done
if [ -n "${rx0:-}" ] && [ "$drx" -ge "$N_REQUESTS" ] && [ "$dtx" -ge "$N_REQUESTS" ] && [ "$dsyn" -ge "$N_REQUESTS" ]; then
	ok "$N_REQUESTS requests from the host: eth0 rx packets +$drx, tx packets +$dtx, SYNs (xdp) +$dsyn"
else
	fail "$N_REQUESTS requests from the host: eth0 rx packets +$drx, tx packets +$dtx, SYNs +$dsyn (want >= $N_REQUESTS each; before: rx=${rx0:-?} tx=${tx0:-?} syn=${syn0:-?})"
fi

passive1=$(sample netprobe_tcp_connections_opened_total 'direction="passive"')
if [ -z "$HAS_BTF" ]; then
	# The socket layer counts connections; without it there is nothing.
	if [ "${passive1:-0}" = 0 ]; then
		ok "no BTF: no passive opens counted (netprobe_tcp_connections_opened_total ${passive1:-absent})"
	else
		fail "no BTF, yet netprobe_tcp_connections_opened_total{direction=\"passive\"} is $passive1"
	fi
elif [ $((${passive1:-0} - ${passive0:-0})) -ge "$N_REQUESTS" ]; then
	ok "$N_REQUESTS requests from the host: netprobe_tcp_connections_opened_total{direction=\"passive\"} +$((passive1 - passive0))"
else
	fail "passive opens grew by $((${passive1:-0} - ${passive0:-0})), want >= $N_REQUESTS"
fi

# Counts before the guest restarts and kills the agent: with the maps
# pinned (--keep-on-exit in the init script), they must carry on.
read -r rx_kept _ _ < <(counters) || true

# --- checks from inside the guest (console markers) -------------------------
# The self-test scraped and asked for the status, then waits on its control
# port at each gate; a connection lets it go on.
# gate NAME: waits for the guest's WAITING-NAME marker, then connects.
gate() {
	# shellcheck disable=SC2016 # evaluated by wait_for
	if ! wait_for "[ -n \"\$(marker WAITING-$1)\" ]" "$BOOT_TIMEOUT"; then
		fail "the guest self-test never reached its $1 gate (no NETPROBE-GUEST-WAITING-$1; QEMU $(kill -0 "$QEMU_PID" 2>/dev/null && echo running || echo exited))"
		finish
	fi
	# shellcheck disable=SC2016 # evaluated by wait_for
	wait_for '(exec 3<>"/dev/tcp/127.0.0.1/$CTL_PORT") 2>/dev/null; sleep 0.5; [ -n "$(marker GO-'"$1"')" ]' 30 ||
		fail "the guest did not take the go-ahead at its $1 gate"
}
gate START
# After the restart: traffic for the guest's exact comparison.
gate_traffic() {
	# shellcheck disable=SC2016 # evaluated by wait_for
	wait_for '[ -n "$(marker WAITING-TRAFFIC)" ]' "$BOOT_TIMEOUT" || return 0
	for _ in $(seq "$N_REQUESTS"); do get /healthz >/dev/null || true; done
}
gate_traffic
gate TRAFFIC
# After the SIGKILL: the respawned agent attached everything again and
# took over the counts.
gate_respawn_checks() {
	# shellcheck disable=SC2016 # evaluated by wait_for
	wait_for '[ -n "$(marker WAITING-RESPAWN)" ]' "$BOOT_TIMEOUT" || return 0
	if get /status >"$WORK/status2.json" && check_status "$WORK/status2.json"; then
		ok "after the respawn: /status lists eth0 $HOOKS again"
	else
		fail "after the respawn: /status: $(head -c 2000 "$WORK/status2.json")"
	fi
	read -r rx_now _ _ < <(counters) || true
	if [ -n "${rx_kept:-}" ] && [ -n "${rx_now:-}" ] && [ "$rx_now" -ge "$rx_kept" ]; then
		ok "counts carried over the restart and the SIGKILL: eth0 rx packets $rx_kept before, $rx_now after"
	else
		fail "counts did not carry over the restart and the SIGKILL: eth0 rx packets ${rx_kept:-?} before, ${rx_now:-?} after"
	fi
}
gate_respawn_checks
gate RESPAWN
# shellcheck disable=SC2016 # evaluated by wait_for
if ! wait_for '[ -n "$(marker DONE)" ]' "$BOOT_TIMEOUT"; then
	fail "the guest self-test did not finish within ${BOOT_TIMEOUT} s (QEMU $(kill -0 "$QEMU_PID" 2>/dev/null && echo running || echo exited))"
	finish
fi
echo "boot-test: guest self-test done $(secs "$T0" "$(now)") s after QEMU started"
for m in SCRAPE STATUS GATE RESTART EXACT RESPAWN CLEANUP; do
	line=$(marker "$m:")
	case $line in
	"NETPROBE-GUEST-$m: ok"* | "NETPROBE-GUEST-STATUS: rc=0 "*) ok "guest: ${line#NETPROBE-GUEST-}" ;;
	*) fail "guest: ${line:-no $m marker}" ;;
	esac
done
lines=$(marker SCRAPE: | sed -n 's/.* lines=\([0-9]*\).*/\1/p')
if [ "${lines:-0}" -ge 20 ]; then
	ok "guest: busybox wget -qO- http://127.0.0.1:8081/metrics returned $lines lines"
else
	fail "guest: busybox wget of /metrics returned ${lines:-no} lines"
fi
errors=$(grep -a -o 'NETPROBE-GUEST-ERROR.*' "$CONSOLE_LOG" || true)
[ -z "$errors" ] || fail "guest: $errors"
finish
