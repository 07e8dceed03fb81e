#!/usr/bin/env bash
# End-to-end hardening tests (issue 19), the agent on one end of a veth pair
# as in the other e2e scripts, in a private mount namespace of its own (the
# script re-runs itself under `unshare -m --propagation private`), with a
# bpffs it mounts (mode 1777, as a bpffs mounted without mode= is), so that
# user nobody can plant things in it as on a misconfigured host:
#
#  1. the pin tree: symbolic links planted (as nobody, or in a tree opened
#     up while the agent runs) never make the agent delete through them: at
#     startup (stale abi-*), at exit (no --keep-on-exit) and in --cleanup;
#     a tree owned by another user, writable by others, or a link is
#     refused with a message; --cleanup refuses a directory off bpffs and
#     removes only NetProbe's layout; the agent mounts /sys/fs/bpf with
#     mode=0700 and never stacks a second bpffs on it;
#  2. probes: link pins removed by user nobody while the agent runs detach
#     nothing (counts stay exact) and come back; a probe really detached
#     (bpftool link detach, tc filter del) shows in /healthz (503),
#     /status and netprobe_hook_attached (0);
#  3. clsact (forced on this kernel with NETPROBE_TEST_FORCE_CLSACT, which
#     only tests set): the filters are owned by priority 20048 and handle
#     0x4e50; a restart counts tx exactly once; another filter at that
#     priority is refused by name; --cleanup leaves no filter;
#  4. inputs and defaults: list and auth files must be bounded regular files
#     (/dev/zero, FIFOs, oversized files refused at once; a token file given
#     as a blocklist is not echoed); the default listen address is
#     127.0.0.1; the open-file limit is raised to its hard value and
#     --http-max-connections lowered to what it leaves room for, so a
#     connection flood never costs the collector a descriptor;
#  5. one client address holds at most half the HTTP pool: its flood never
#     closes another address's idle keep-alive connections.
#
# Usage: build/e2e-hardening.sh [path/to/netprobe-agent]   (root; ~45 s)
# SECTIONS="pins probes clsact inputs share" (the default) runs those parts.
set -euo pipefail

if [ -z "${NETPROBE_E2E_PRIVATE_MOUNTS:-}" ]; then
	exec unshare -m --propagation private env NETPROBE_E2E_PRIVATE_MOUNTS=1 bash "$0" "$@"
fi

AGENT=${1:-target/release/netprobe-agent}
TEST=e2e-hardening NEEDS="ping setpriv prlimit mountpoint ss timeout mkfifo"
# Generic XDP on the veth (auto attaches TC alone there): pins, links and detaches of XDP are checked too.
XDP_MODE=generic
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

# A directory user nobody can reach (LOG is root's only), with the bpffs.
PUB=$(mktemp -d /tmp/netprobe-hardening.XXXXXX)
chmod 755 "$PUB"
B=$PUB/bpffs
VICTIM=$LOG/victim
SECRET=hardening-s3cr3t-Token-4d2a
cleanup_extra() {
	[ -n "$AGENT_PID" ] && kill -KILL "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
	AGENT_PID=
	mountpoint -q "$B" && umount "$B"
	rm -rf "$PUB"
	true
}

as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# plant_victim: root's files that no removal may reach, one of them 0600.
plant_victim() {
	rm -rf "$VICTIM"
	mkdir -p "$VICTIM/sub"
	echo precious >"$VICTIM/secret"
	chmod 600 "$VICTIM/secret"
	echo precious >"$VICTIM/sub/file"
}
victim_intact() { [ -f "$VICTIM/secret" ] && [ -f "$VICTIM/sub/file" ]; }

state_of() { find "$1" -mindepth 1 -maxdepth 1 -name 'abi-*' -printf '%f\n' 2>/dev/null | head -1; }
count_pins() { find "$1" -type f 2>/dev/null | wc -l || true; }

# capture CMD...: runs CMD; OUT is its output, OUT_CODE its exit status.
capture() {
	OUT_CODE=0
	"$@" >"$LOG/out" 2>&1 || OUT_CODE=$?
	OUT=$(cat "$LOG/out")
}

# run_once ARGS...: the agent in $NSA for 8 s at most, through capture.
run_once() {
	capture timeout 8 ip netns exec "$NSA" "$AGENT" --interface-filter "$IFA" --listen-address 127.0.0.1 \
		--metrics-port "$PORT" --collect-interval 200ms "$@"
}

stop_agent() {
	kill -TERM "$AGENT_PID" 2>/dev/null || true
	wait "$AGENT_PID" 2>/dev/null || true
	AGENT_PID=
}

# expect_refusal NAME CODE PATTERN: the last run_once exited CODE and said PATTERN.
expect_refusal() {
	if [ "$OUT_CODE" -eq "$2" ] && grep -q -- "$3" <<<"$OUT"; then
		ok "$1: exit $2, '$3'"
	else
		fail "$1: exit $OUT_CODE (want $2 and '$3'): $(tail -3 <<<"$OUT" | tr '\n' ' ')"
	fi
}

check_victim() {
	if victim_intact; then ok "$1: the link's target is untouched"; else fail "$1: files behind the planted link were deleted"; fi
}

# hook_value HOOK: netprobe_hook_attached of HOOK on $IFA in the last scrape.
hook_value() { awk -v h="hook=\"$1\"" -v i="interface=\"$IFA\"" '$1 ~ /^netprobe_hook_attached\{/ && index($1, h) && index($1, i) { print $2 }' "$LOG/metrics"; }

# status_hooks: "hook mode attached" per hook of $IFA in /status.
status_hooks() {
	scrape /status | python3 -c '
import json, sys
for i in json.load(sys.stdin)["interfaces"]:
    if i["name"] == sys.argv[1]:
        for h in i["hooks"]:
            print(h["hook"], h["mode"], h.get("attached", "absent"), h["program_id"])' "$IFA"
}

# deltas BEFORE AFTER MIN WHAT: agent and kernel moved alike by >= MIN.
deltas() {
	local kb=${1%%|*} ab=${1##*|} ka=${2%%|*} aa=${2##*|} i kd ad names=(rx_packets rx_bytes tx_packets tx_bytes)
	# shellcheck disable=SC2086
	set -- $kb $ab $ka $aa "$3" "$4"
	for i in 0 2; do
		kd=$((${@:$((i + 9)):1} - ${@:$((i + 1)):1}))
		ad=$((${@:$((i + 13)):1} - ${@:$((i + 5)):1}))
		if [ "$kd" -eq "$ad" ] && [ "$kd" -ge "${17}" ]; then
			ok "${18} ${names[$i]}: agent delta $ad = kernel delta $kd"
		else
			fail "${18} ${names[$i]}: agent delta $ad != kernel delta $kd (want >= ${17})"
		fi
	done
}

traffic() { # traffic N: N pings each way, 10 ms apart
	ina ping -q -c "$1" -i 0.01 198.18.0.2 >/dev/null 2>&1 || true
	inb ping -q -c "$1" -i 0.01 198.18.0.1 >/dev/null 2>&1 || true
}

mkdir -p "$B"
mount -t bpf bpf "$B"
setup_net
echo "$TEST: bpffs $B (mode $(stat -c %a "$B")), agent $AGENT"

# --- 1. the pin tree ---------------------------------------------------------
pins() {
echo "$TEST: symbolic links and foreign trees in the pin tree"
plant_victim
as_nobody mkdir "$B/by-nobody"
as_nobody ln -s "$VICTIM" "$B/by-nobody/abi-00000000"
run_once --pin-path "$B/by-nobody"
expect_refusal "startup, a pin root made by nobody holding abi-00000000 -> root's files" 1 "owned by uid 65534"
check_victim "startup, a pin root made by nobody"

plant_victim
mkdir -m 700 "$B/linked-abi"
ln -s "$VICTIM" "$B/linked-abi/abi-00000000"
run_once --pin-path "$B/linked-abi"
expect_refusal "startup, abi-00000000 a symbolic link in root's tree" 1 "is a symbolic link"
check_victim "startup, abi-00000000 a symbolic link"

plant_victim
mkdir -m 700 "$B/linked-maps" "$B/linked-maps/abi-00000000"
ln -s "$VICTIM" "$B/linked-maps/abi-00000000/maps"
run_once --pin-path "$B/linked-maps"
expect_refusal "startup, a stale layout's maps a symbolic link" 1 "is a symbolic link"
check_victim "startup, maps a symbolic link"

mkdir -m 777 "$B/open"
run_once --pin-path "$B/open"
expect_refusal "startup, a pin root writable by everyone" 1 "writable by group or others"

# Exit without --keep-on-exit, with links planted while the agent ran (its
# tree opened up meanwhile: by mistake, or by someone with root).
plant_victim
start_agent --pin-path "$B/run" || { fail "agent did not start"; exit 1; }
state=$(state_of "$B/run")
[ "$(stat -c %a "$B/run" "$B/run/$state/maps" 2>&1 | tr '\n' ' ')" = "700 700 " ] \
	&& ok "the agent created its pin tree mode 0700" \
	|| fail "pin tree modes: $(stat -c '%n %a' "$B/run" "$B/run/$state" "$B/run/$state/maps" 2>&1 | tr '\n' ' ')"
chmod 777 "$B/run" "$B/run/$state" "$B/run/$state/maps" || true
as_nobody ln -s "$VICTIM" "$B/run/abi-11111111"
as_nobody ln -s "$VICTIM" "$B/run/$state/maps/zz-planted"
stop_agent
check_victim "exit without --keep-on-exit, links planted while it ran"
left=$(count_pins "$B/run")
[ "$left" -eq 0 ] && grep -q 'pin tree: left .*zz-planted' "$LOG/agent.log" \
	&& ok "exit: every pin removed, the planted links left and named in the log" \
	|| fail "exit: $left pins left, or no log line for the planted links"
rm -rf "$B/run"

# --cleanup: a pin root that is a link, a directory off bpffs, foreign files.
plant_victim
as_nobody ln -s "$VICTIM" "$B/linked-root"
capture timeout 8 ip netns exec "$NSA" "$AGENT" --cleanup --pin-path "$B/linked-root"
expect_refusal "--cleanup of a pin root that is a symbolic link (made by nobody)" 1 "is a symbolic link"
check_victim "--cleanup of a linked pin root"

mkdir -p "$LOG/plain/abi-00000000/maps"
echo keep >"$LOG/plain/abi-00000000/maps/packet_stats"
capture timeout 8 ip netns exec "$NSA" "$AGENT" --cleanup --pin-path "$LOG/plain"
expect_refusal "--cleanup of a directory not on bpffs" 1 "not on a bpffs"
[ -f "$LOG/plain/abi-00000000/maps/packet_stats" ] && ok "--cleanup off bpffs: nothing removed" \
	|| fail "--cleanup off bpffs deleted files"

start_agent --pin-path "$B/kept" --keep-on-exit || { fail "agent did not start"; exit 1; }
ids=$(agent_prog_ids)
stop_agent
mkdir "$B/kept/other-tool" # bpffs holds directories, links and pins only
capture timeout 8 ip netns exec "$NSA" "$AGENT" --cleanup --pin-path "$B/kept"
# At once: --cleanup detaches the links, not only their pins.
xdp=$(ina ip -d link show "$IFA" | grep -c 'prog/xdp' || true)
pins=$(count_pins "$B/kept")
# shellcheck disable=SC2086
n=$(progs_left $ids)
if [ "$OUT_CODE" -eq 1 ] && grep -q "other-tool: not part of NetProbe's layout" <<<"$OUT" && [ -d "$B/kept/other-tool" ] \
	&& [ "$pins" -eq 0 ] && [ "$xdp" -eq 0 ] && [ "$n" -eq 0 ]; then
	ok "--cleanup removes NetProbe's pins (links detached at once, programs go), leaves another tool's directory and names it (exit 1)"
else
	fail "--cleanup with another tool's directory: exit $OUT_CODE, $pins pins, $xdp XDP and $n programs left, other-tool $([ -d "$B/kept/other-tool" ] && echo kept || echo deleted): $OUT"
fi
rm -rf "$B/kept"

# The agent's own bpffs on /sys/fs/bpf (`ip netns exec` gives it a fresh
# sysfs without one): mode 0700 (the kernel adds the sticky bit to a
# bpffs root: 1700). And never a second one over a bpffs.
start_agent || { fail "agent did not start with the default --pin-path"; exit 1; }
mode=$(stat -c %a "/proc/$AGENT_PID/root/sys/fs/bpf" || true)
opts=$(awk '$5 == "/sys/fs/bpf" { print $NF }' "/proc/$AGENT_PID/mountinfo")
stop_agent
[ "$mode" = 1700 ] && grep -q 'mode=700' <<<"$opts" \
	&& ok "/sys/fs/bpf mounted by the agent: mode 0700 ($opts)" \
	|| fail "/sys/fs/bpf mounted by the agent: mode $mode, options $opts"
cat >"$LOG/stacked.sh" <<EOF
mount -t bpf -o mode=0700 bpf /sys/fs/bpf
ln -s /tmp /sys/fs/bpf/netprobe
timeout 8 "\$@"
rc=\$?
awk '\$5 == "/sys/fs/bpf"' /proc/self/mountinfo | wc -l >"$LOG/bpf-mounts"
exit \$rc
EOF
capture ip netns exec "$NSA" unshare -m --propagation private sh "$LOG/stacked.sh" "$AGENT" --interface-filter "$IFA" \
	--listen-address 127.0.0.1 --metrics-port "$PORT"
expect_refusal "/sys/fs/bpf/netprobe a link off bpffs, /sys/fs/bpf a bpffs" 1 "is a symbolic link"
[ "$(cat "$LOG/bpf-mounts")" -eq 1 ] && ok "no second bpffs stacked on /sys/fs/bpf" \
	|| fail "$(cat "$LOG/bpf-mounts") bpffs mounts on /sys/fs/bpf"

}

# --- 2. probes removed or detached by others ----------------------------------
probes() {
echo "$TEST: link pins removed by user nobody, probes detached by hand"
start_agent --pin-path "$B/health" || { fail "agent did not start"; exit 1; }
before=$(stable_reading)
state=$(state_of "$B/health")
chmod 777 "$B/health" "$B/health/$state" "$B/health/$state/links" || true
as_nobody sh -c "rm -f $B/health/$state/links/*"
sleep 1
traffic 100
after=$(stable_reading)
deltas "$before" "$after" 100 "link pins removed by nobody:"
n=$(count_pins "$B/health/$state/links")
[ "$n" -eq 3 ] && grep -q 'was removed while the agent ran.*pinned again' "$LOG/agent.log" \
	&& ok "the 3 link pins are back, with a log line" || fail "$n link pins after removal"
code=$(ina curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz")
[ "$code" = 200 ] && ok "pins removed, probes held: /healthz 200" || fail "pins removed: /healthz $code"

stop_agent

# Probes detached for real (unpinned links this time): XDP and tc_egress.
start_agent --pin-path '' || { fail "agent did not start"; exit 1; }
for hook in xdp tc_egress; do
	id=$(status_hooks | awk -v h="$hook" '$1 == h { print $4 }')
	link=$(bpftool -j link show | python3 -c '
import json, sys
print(next((l["id"] for l in json.load(sys.stdin) if l.get("prog_id") == int(sys.argv[1])), ""))' "$id")
	[ -n "$link" ] && bpftool link detach id "$link" || fail "no bpf_link runs $hook (program $id)"
done
sleep 0.6
body=$(ina curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT/healthz" | tr '\n' ' ')
scrape /metrics >"$LOG/metrics"
st=$(status_hooks | awk '{ printf "%s=%s ", $1, $3 }')
if [[ "$body" == *"xdp on $IFA"*"tc_egress on $IFA"*" 503" ]] && [ "$(hook_value xdp)" = 0 ] \
	&& [ "$(hook_value tc_egress)" = 0 ] && [ "$(hook_value tc_ingress)" = 1 ] \
	&& [ "$st" = "xdp=False tc_ingress=True tc_egress=False " ]; then
	ok "bpftool link detach of xdp and tc_egress: /healthz 503 ($body), netprobe_hook_attached 0, /status attached false"
else
	fail "bpftool link detach of xdp and tc_egress: /healthz '$body', metric $(hook_value xdp)/$(hook_value tc_egress), /status $st"
fi
stop_agent
rm -rf "$B/health"

}

# --- 3. clsact filters, owned by priority and handle --------------------------
clsact() {
echo "$TEST: clsact (forced with NETPROBE_TEST_FORCE_CLSACT on this kernel)"
export NETPROBE_TEST_FORCE_CLSACT=1
# filters DIRECTION: cls_bpf filters (not their classifier's own line).
filters() { ina tc filter show dev "$IFA" "$1" | grep -c ' bpf .*handle ' || true; }
start_agent --pin-path "$B/cls" --keep-on-exit || { fail "agent did not start"; exit 1; }
modes=$(status_hooks | awk '$1 != "xdp" { print $2 }' | sort -u | tr -d '\n')
[ "$modes" = clsact ] && ok "TC probes attached as clsact filters" || fail "TC modes: $modes"
prio=$(ina tc filter show dev "$IFA" egress | awk '/ bpf / { for (i = 1; i < NF; i++) if ($i == "pref") print $(i + 1) }' | sort -u)
handle=$(ina tc filter show dev "$IFA" egress | grep -o 'handle 0x[0-9a-f]*' | sort -u || true)
[ "$prio" = 20048 ] && [ "$handle" = "handle 0x4e50" ] && ok "egress filter at pref 20048, handle 0x4e50" \
	|| fail "egress filter at pref '$prio', '$handle'"
before=$(stable_reading)
ina ping -q -c 300 -i 0.01 198.18.0.2 >/dev/null 2>&1 &
pid=$!
sleep 1
stop_agent
start_agent --pin-path "$B/cls" --keep-on-exit || { fail "agent did not restart"; exit 1; }
wait "$pid" || true
after=$(stable_reading)
deltas "$before" "$after" 300 "clsact, across a --keep-on-exit restart:"
[ "$(filters ingress) $(filters egress)" = "1 1" ] && ok "one filter per direction after the restart" \
	|| fail "filters after the restart: ingress $(filters ingress), egress $(filters egress)"
ina tc filter del dev "$IFA" ingress pref 20048 || true
sleep 0.6
body=$(ina curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT/healthz" | tr '\n' ' ')
scrape /metrics >"$LOG/metrics"
[[ "$body" == *"tc_ingress on $IFA"*" 503" ]] && [ "$(hook_value tc_ingress)" = 0 ] \
	&& ok "tc filter del of tc_ingress: /healthz 503, netprobe_hook_attached 0" \
	|| fail "tc filter del of tc_ingress: /healthz '$body', metric $(hook_value tc_ingress)"
stop_agent
capture timeout 8 ip netns exec "$NSA" "$AGENT" --cleanup --pin-path "$B/cls"
[ "$OUT_CODE" -eq 0 ] && [ "$(filters ingress) $(filters egress)" = "0 0" ] && [ ! -e "$B/cls" ] \
	&& ok "--cleanup: exit 0, no clsact filter and no pin left" \
	|| fail "--cleanup: exit $OUT_CODE, filters $(filters ingress)/$(filters egress), pins $(count_pins "$B/cls"): $OUT"
ina tc qdisc add dev "$IFA" clsact 2>/dev/null || true
ina tc filter add dev "$IFA" ingress pref 20048 protocol all u32 match u32 0 0
run_once --pin-path ''
expect_refusal "another tool's filter at priority 20048" 1 "held by a 'u32' filter"
[ "$(ina tc filter show dev "$IFA" ingress | grep -c ' u32 ')" -ge 1 ] && ok "the other tool's filter is left alone" \
	|| fail "the other tool's filter was removed"
ina tc qdisc del dev "$IFA" clsact
unset NETPROBE_TEST_FORCE_CLSACT

}

# --- 4. inputs and defaults ---------------------------------------------------
inputs() {
echo "$TEST: list and auth files, listen address, open-file limit"
mkfifo "$LOG/fifo"
printf 'Bearer %s\n' "$SECRET" >"$LOG/token"
head -c $((17 << 20)) /dev/zero | tr '\0' '\n' >"$LOG/huge"
for c in "--blocklist /dev/zero|a device, not a regular file" "--blocklist $LOG/fifo|a FIFO" \
	"--allowlist $LOG/fifo|a FIFO" "--metrics-auth-file $LOG/fifo|a FIFO" \
	"--allowlist $LOG/huge|more than the" "--blocklist $LOG|a directory"; do
	t0=$(date +%s%N)
	# shellcheck disable=SC2086 # the flag and its value
	capture prlimit --as=$((2 << 30)) -- timeout 10 ip netns exec "$NSA" "$AGENT" --interface-filter "$IFA" \
		--listen-address 127.0.0.1 --metrics-port "$PORT" --pin-path '' ${c%%|*}
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ "$OUT_CODE" -eq 2 ] && grep -q -- "${c##*|}" <<<"$OUT" && [ "$ms" -lt 5000 ]; then
		ok "${c%%|*}: exit 2 in ${ms} ms, '${c##*|}'"
	else
		fail "${c%%|*}: exit $OUT_CODE after ${ms} ms: $(tail -2 <<<"$OUT" | tr '\n' ' ')"
	fi
done
capture timeout 10 ip netns exec "$NSA" "$AGENT" --interface-filter "$IFA" --listen-address 127.0.0.1 \
	--metrics-port "$PORT" --pin-path '' --blocklist "$LOG/token"
[ "$OUT_CODE" -eq 2 ] && grep -q 'line 1' <<<"$OUT" && ! grep -q "$SECRET" <<<"$OUT" \
	&& ok "--blocklist given the token file: exit 2, the line named by number, the token not printed" \
	|| fail "--blocklist given the token file: exit $OUT_CODE: $OUT"

# The default address: this host only.
ip netns exec "$NSA" "$AGENT" --interface-filter "$IFA" --metrics-port "$PORT" --pin-path '' \
	--collect-interval 200ms >>"$LOG/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 50); do scrape /healthz >/dev/null 2>&1 && break; sleep 0.1; done
bound=$(ina ss -Hltn "sport = :$PORT" | awk '{ print $4 }' | tr '\n' ' ')
if [ "$bound" = "127.0.0.1:$PORT " ] && ! inb curl -s -o /dev/null --max-time 2 "http://198.18.0.1:$PORT/healthz"; then
	ok "no --listen-address: listens on 127.0.0.1 only, not reachable from the peer"
else
	fail "no --listen-address: listens on '$bound'"
fi
stop_agent
ip netns exec "$NSA" "$AGENT" --interface-filter "$IFA" --listen-address 0.0.0.0 --metrics-port "$PORT" \
	--pin-path '' >>"$LOG/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 50); do scrape /healthz >/dev/null 2>&1 && break; sleep 0.1; done
stop_agent
grep -q 'serving /metrics and /status without credentials on 0.0.0.0' "$LOG/agent.log" \
	&& ok "--listen-address 0.0.0.0 without --metrics-auth-file: a warning says so" \
	|| fail "no warning for 0.0.0.0 without credentials"

# The open-file limit: soft raised to hard; a flood never reaches the collector.
AGENT_WRAP="prlimit --nofile=64:160" start_agent --pin-path '' --http-max-connections 1024 \
	|| { fail "agent did not start under a low open-file limit"; exit 1; }
soft=$(awk '/^Max open files/ { print $4 }' "/proc/$AGENT_PID/limits")
grep -q 'more than the open-file limit leaves room for' "$LOG/agent.log" && [ "$soft" = 160 ] \
	&& ok "open-file limit raised to its hard value (160); --http-max-connections 1024 lowered, with a warning" \
	|| fail "open-file limit: soft $soft, or no warning"
scrape /metrics >"$LOG/metrics"
e0=$(awk '$1 == "netprobe_collect_errors_total" { print $2 }' "$LOG/metrics")
held=$(ina python3 -c '
import socket, sys, time
socks = []
for _ in range(400):
    try:
        socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1))
    except OSError:
        pass
time.sleep(3)
print(len(socks))' "$PORT")
sleep 0.5
scrape /metrics >"$LOG/metrics" || true
e1=$(awk '$1 == "netprobe_collect_errors_total" { print $2 }' "$LOG/metrics")
stop_agent
if [ -n "$e1" ] && [ "$e1" = "$e0" ] && ! grep -q 'Too many open files' "$LOG/agent.log"; then
	ok "a flood of $held connections under a 160-file limit: no collection failed, no EMFILE"
else
	fail "flood of $held connections: collect errors $e0 -> ${e1:-no scrape}; $(grep -m1 'Too many open files' "$LOG/agent.log")"
fi
}

# --- 5. one client address cannot take the whole HTTP pool -------------------
share() {
echo "$TEST: an address's share of the HTTP pool (the peer at $B4 floods, a scraper on $A4 keeps its connections)"
ip netns exec "$NSA" "$AGENT" --interface-filter "$IFA" --listen-address "$A4" --metrics-port "$PORT" --pin-path '' \
	--http-max-connections 8 --http-timeout 10s >>"$LOG/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 50); do ina curl -fsS -o /dev/null --max-time 1 "http://$A4:$PORT/healthz" 2>/dev/null && break; sleep 0.1; done
# The scraper: 3 keep-alive connections, a request on each, then idle
# while the flood runs, then a second request on each.
ina python3 -c '
import socket, sys, time
def ask(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    return s.recv(4096).startswith(b"HTTP/1.1 200")
conns = [socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) for _ in range(3)]
first = sum(ask(c) for c in conns)
time.sleep(3)
second = 0
for c in conns:
    try:
        second += ask(c)
    except OSError:
        pass
print(first, second)' "$A4" "$PORT" >"$LOG/scraper" 2>&1 &
local scraper=$!
sleep 0.5
held=$(inb python3 -c '
import socket, sys, time
socks = []
for _ in range(50):
    try:
        socks.append(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1))
    except OSError:
        pass
    time.sleep(0.02)
time.sleep(1.5)
print(len(socks))' "$A4" "$PORT")
wait "$scraper" || true
stop_agent
if [ "$(cat "$LOG/scraper")" = "3 3" ]; then
	ok "a flood of $held connections from $B4 (8 allowed, 4 per address): the scraper's 3 idle keep-alive connections all answer again"
else
	fail "flood of $held connections from $B4: the scraper's connections answered '$(cat "$LOG/scraper")' (want '3 3')"
fi
}

for section in ${SECTIONS:-pins probes clsact inputs share}; do
	"$section"
done
echo "$TEST: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
