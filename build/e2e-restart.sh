#!/usr/bin/env bash
# Restarts without losing counts: traffic flows continuously while the agent
# is killed with SIGKILL and started again, then stopped with SIGTERM under
# --keep-on-exit and started again; afterwards /metrics must equal the
# kernel's interface counters exactly (no gap, nothing counted twice), and
# the flows in /status keep their first-seen times and every packet.
# Also: a changed map size replaces the pinned state with a log line,
# --cleanup removes every pin, link and program, and a plain SIGTERM
# leaves nothing behind.
#
# Usage: build/e2e-restart.sh [path/to/netprobe-agent]   (root)
set -euo pipefail

AGENT=${1:-target/release/netprobe-agent}
TEST=e2e-restart NEEDS="ping mountpoint"
# Generic XDP on the veth (auto attaches TC alone there): restarts take over pinned XDP links too.
XDP_MODE=generic
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

# A bpffs of the test's own, visible inside `ip netns exec` (which remounts
# /sys and so hides /sys/fs/bpf).
BPFFS=$LOG/bpffs
PIN=$BPFFS/netprobe
TRAFFIC_PIDS=()
cleanup_extra() {
	for p in "${TRAFFIC_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	[ -n "$AGENT_PID" ] && kill -KILL "$AGENT_PID" 2>/dev/null && AGENT_PID=
	rm -rf "$PIN" 2>/dev/null || true
	mountpoint -q "$BPFFS" && umount "$BPFFS"
	true
}

links_pinned() { find "$PIN" -path '*/links/*' -type f 2>/dev/null | wc -l; }

mkdir -p "$BPFFS"
mount -t bpf bpf "$BPFFS"
setup_net
echo "$TEST: pinned state in $PIN"

start_agent --pin-path "$PIN" || { fail "agent did not start"; exit 1; }
before=$(stable_reading)

# Continuous bounded traffic both ways for about 8 s: 0.01 s apart.
ina ping -q -c 800 -i 0.01 198.18.0.2 >/dev/null 2>&1 &
TRAFFIC_PIDS+=($!)
inb ping -q -c 800 -i 0.01 -s 1000 2001:db8::1 >/dev/null 2>&1 &
TRAFFIC_PIDS+=($!)
sleep 1
scrape /status >"$LOG/status-before.json"
t_before=$(date +%s.%N)

kill -KILL "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
n=$(links_pinned)
[ "$n" -eq 3 ] && ok "after SIGKILL: 3 links still pinned, probes still counting" || fail "after SIGKILL: $n links pinned"
sleep 1
start_agent --pin-path "$PIN" --keep-on-exit || { fail "agent did not restart after SIGKILL"; exit 1; }
grep -q 'taking over\|attaching anew' "$LOG/agent.log" && fail "restart did not take over the pinned links" || true
sleep 1

kill -TERM "$AGENT_PID"; code=0; wait "$AGENT_PID" || code=$?; AGENT_PID=
[ "$code" -eq 0 ] && ok "SIGTERM with --keep-on-exit: exit 0" || fail "SIGTERM with --keep-on-exit: exit $code"
n=$(links_pinned)
[ "$n" -eq 3 ] && ok "after SIGTERM --keep-on-exit: 3 links still pinned" || fail "after SIGTERM --keep-on-exit: $n links pinned"
sleep 1
start_agent --pin-path "$PIN" || { fail "agent did not restart after SIGTERM"; exit 1; }

for p in "${TRAFFIC_PIDS[@]}"; do wait "$p" || true; done
TRAFFIC_PIDS=()
after=$(stable_reading)
kb=${before%%|*} ab=${before##*|} ka=${after%%|*} aa=${after##*|}
# shellcheck disable=SC2086
set -- $kb $ab $ka $aa
names=(rx_packets rx_bytes tx_packets tx_bytes)
for i in 0 1 2 3; do
	kd=$((${@:$((i + 9)):1} - ${@:$((i + 1)):1}))
	ad=$((${@:$((i + 13)):1} - ${@:$((i + 5)):1}))
	if [ "$kd" -eq "$ad" ] && [ "$kd" -ge 800 ]; then
		ok "across SIGKILL and SIGTERM restarts ${names[$i]}: agent delta $ad = kernel delta $kd"
	else
		fail "across restarts ${names[$i]}: agent delta $ad != kernel delta $kd"
	fi
done

# The flow table is carried across both restarts too: the echo flows of
# the two pings (the busiest, so always in /status's top list) are still
# there, first seen at the same time (their age grew by the wall time
# between the readings), and hold every packet: 800 requests and 800
# replies each.
scrape /status >"$LOG/status-after.json"
if python3 - "$LOG/status-before.json" "$LOG/status-after.json" "$t_before" "$(date +%s.%N)" <<'EOF'
import json, sys
before, after = (json.load(open(p))["flow_table"]["top"] for p in sys.argv[1:3])
elapsed = float(sys.argv[4]) - float(sys.argv[3])
key = lambda f: (f["interface"], f["protocol"], f["src"], f["src_port"], f["dst"], f["dst_port"])
pk = lambda f: f["rx_packets"] + f["tx_packets"]
# ICMP type << 8 in src_port: echo request/reply 8/0 (IPv4), 128/129 (IPv6).
echo = {"icmp": (8 << 8, 0), "icmpv6": (128 << 8, 129 << 8)}
peer = {"icmp": "198.18.0.2", "icmpv6": "2001:db8::2"}
is_echo = lambda f: f["src_port"] in echo.get(f["protocol"], ()) and peer[f["protocol"]] in (f["src"], f["dst"])
was = [f for f in before if is_echo(f)]
assert len(was) == 4, f"before the SIGKILL: {len(was)} echo flows listed, want 4: {before}"
now = {key(f): f for f in after}
for f in was:
    g = now.get(key(f))
    assert g, f"flow {key(f)} lost across the restarts"
    grew = g["age_seconds"] - f["age_seconds"]
    assert abs(grew - elapsed) < 1.0, f"{key(f)}: age grew {grew:.2f} s over {elapsed:.2f} s: first seen not kept"
    assert pk(g) >= pk(f), f"{key(f)}: {pk(g)} packets after, {pk(f)} before"
for proto in echo:
    n = sum(pk(f) for f in after if f["protocol"] == proto and is_echo(f))
    assert n == 1600, f"{proto} echo flows with {peer[proto]}: {n} packets, want 1600"
print(f"4 echo flows kept over {elapsed:.1f} s, 1600 + 1600 packets")
EOF
then ok "flows carried across SIGKILL and SIGTERM restarts: first seen kept, every echo packet counted"
else fail "flows across restarts"; fi

# A different flow-table size cannot reuse the pinned maps.
ids=$(agent_prog_ids)
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; AGENT_PID=
# shellcheck disable=SC2086
n=$(progs_left $ids)
[ -z "$(ls -A "$PIN" 2>/dev/null)" ] && [ "$n" -eq 0 ] \
	&& ok "plain SIGTERM: no pin, link or netprobe program left" \
	|| fail "plain SIGTERM left: $(find "$PIN" 2>/dev/null | tr '\n' ' ') programs: $n"
start_agent --pin-path "$PIN" --keep-on-exit || { fail "agent did not start"; exit 1; }
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; AGENT_PID=
start_agent --pin-path "$PIN" --keep-on-exit --max-flows 4096 || { fail "agent did not start with a new size"; exit 1; }
ids=$(agent_prog_ids)
grep -q 'do not fit this configuration (flow_stats' "$LOG/agent.log" \
	&& ok "changed --max-flows: pinned state replaced, with a log line" \
	|| fail "changed --max-flows: no replacement log line"
n=$(links_pinned)
[ "$n" -eq 3 ] && ok "replaced state: 3 links pinned anew" || fail "replaced state: $n links pinned"
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; AGENT_PID=

# --cleanup removes what --keep-on-exit left.
# shellcheck disable=SC2086
[ "$(for id in $ids; do bpftool prog show id "$id" >/dev/null 2>&1 && echo; done | wc -l)" -ge 3 ] \
	|| fail "--keep-on-exit should have left the programs attached"
code=0
ina "$AGENT" --cleanup --pin-path "$PIN" >>"$LOG/agent.log" 2>&1 || code=$?
left=$( (find "$PIN" -type f 2>/dev/null; ina ip -d link show "$IFA" | grep -o 'prog/xdp[^ ]*') || true)
# shellcheck disable=SC2086
[ "$(progs_left $ids)" -eq 0 ] || left="$left programs of the agent still loaded ($ids)"
[ "$code" -eq 0 ] && [ -z "$left" ] && ok "--cleanup: exit 0, no pin, link or program left" \
	|| fail "--cleanup: exit $code, left: $left"

echo "$TEST: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
