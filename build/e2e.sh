#!/usr/bin/env bash
# End-to-end test: two network namespaces joined by a veth pair, the agent
# binary attached to one end, bounded IPv4 and IPv6 traffic both ways. The
# rx/tx packets and bytes in /metrics must equal the deltas of the kernel's
# /sys/class/net/<if>/statistics exactly; promtool validates the output;
# SIGTERM must leave nothing attached. Runs once per XDP mode.
#
# Usage: build/e2e.sh [path/to/netprobe-agent]   (root; see build/deps.sh)
set -euo pipefail

AGENT=${1:-target/release/netprobe-agent}
TEST=e2e NEEDS="promtool iperf3 ping"
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

traffic() {
	inb iperf3 -s -1 -D -p 5201 --logfile "$LOG/iperf-b.log"
	ina iperf3 -s -1 -D -p 5202 --logfile "$LOG/iperf-a.log"
	sleep 0.3
	ina ping -q -c 40 -i 0.01 -s 1200 198.18.0.2 >/dev/null
	ina ping -q -c 40 -i 0.01 2001:db8::2 >/dev/null
	inb ping -q -c 40 -i 0.01 198.18.0.1 >/dev/null
	inb ping -q -c 40 -i 0.01 -s 600 2001:db8::1 >/dev/null
	# Bounded TCP both ways (GSO/GRO paths), and small UDP datagrams.
	timeout 30 ip netns exec "$NSA" iperf3 -c 198.18.0.2 -p 5201 -n 8M >/dev/null
	timeout 30 ip netns exec "$NSB" iperf3 -c 2001:db8::1 -p 5202 -n 8M >/dev/null
	inb iperf3 -s -1 -D -p 5203 --logfile "$LOG/iperf-u.log"
	sleep 0.3
	timeout 30 ip netns exec "$NSA" iperf3 -u -c 2001:db8::2 -p 5203 -b 20M -l 64 -n 200K >/dev/null
}

run_mode() {
	local mode=$1
	echo "e2e: --xdp-mode $mode"
	# Every flow listed, so the small echo flows are there to check.
	start_agent --xdp-mode "$mode" --top-flows 100 || { fail "agent did not become healthy ($mode)"; return; }
	local before after
	before=$(stable_reading)
	traffic
	after=$(stable_reading)
	local kb ab ka aa
	kb=${before%%|*} ab=${before##*|} ka=${after%%|*} aa=${after##*|}
	# shellcheck disable=SC2086
	set -- $kb $ab $ka $aa
	local names=(rx_packets rx_bytes tx_packets tx_bytes) i kd=() ad=()
	for i in 0 1 2 3; do
		kd[i]=$((${@:$((i + 9)):1} - ${@:$((i + 1)):1}))
		ad[i]=$((${@:$((i + 13)):1} - ${@:$((i + 5)):1}))
	done
	# veth in native XDP mode receives through NAPI after eth_type_trans(),
	# so the kernel's rx_bytes leave out the 14-byte Ethernet header that
	# XDP sees: the agent's interface counters follow the kernel there
	# (manager::LinkHeader), and its per-hook counters keep the header.
	for i in 0 1 2 3; do
		local want=${kd[i]}
		if [ "${ad[i]}" -eq "$want" ] && [ "${kd[i]}" -gt 0 ]; then
			ok "$mode ${names[$i]}: agent delta ${ad[i]} = kernel delta ${kd[i]}"
		else
			fail "$mode ${names[$i]}: agent delta ${ad[i]} != kernel delta ${kd[i]} (expected $want)"
		fi
	done

	if [ "$mode" = auto ]; then
		# The agent's own process, as client libraries export it, and the
		# revision it was built from.
		local rss rev want_rev
		rss=$(awk '$1 == "process_resident_memory_bytes" { print $2 }' "$LOG/metrics")
		rev=$(grep -o 'netprobe_build_info{[^}]*revision="[^"]*"' "$LOG/metrics" | sed 's/.*revision="//; s/"$//')
		want_rev=$(git -C "$(dirname "$0")" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
		[ -n "$rss" ] && [ "${rss%.*}" -gt 1000000 ] && [ "$(awk '$1 == "process_open_fds" { print $2 }' "$LOG/metrics")" -gt 3 ] \
			&& ok "process_resident_memory_bytes $rss, process_open_fds and the other process_* families present" \
			|| fail "process_* metrics missing or empty: rss '$rss'"
		[ "$rev" = "$want_rev" ] && ok "netprobe_build_info revision=\"$rev\" is the commit built" \
			|| fail "netprobe_build_info revision '$rev', built from $want_rev"
	fi
	if promtool check metrics <"$LOG/metrics" >"$LOG/promtool" 2>&1; then
		ok "$mode promtool check metrics: clean"
	else
		fail "$mode promtool check metrics:"; cat "$LOG/promtool" >&2
	fi
	scrape /status >"$LOG/status.json"
	if python3 - "$LOG/status.json" "$IFA" "$mode" <<'EOF'; then ok "$mode /status: hooks, modes, program ids, top flows (exact rx/tx of IPv4 and IPv6 echo flows)"; else fail "$mode /status"; fi
import json, sys
s = json.load(open(sys.argv[1]))
ifname, mode = sys.argv[2], sys.argv[3]
(i,) = [x for x in s["interfaces"] if x["name"] == ifname]
hooks = {h["hook"]: h for h in i["hooks"]}
# auto attaches no XDP on veth (native would turn off the peer's GSO,
# generic this side's GRO): TC alone.
want = {"native": "native", "generic": "generic"}.get(mode)
assert set(hooks) == ({"xdp", "tc_ingress", "tc_egress"} if want else {"tc_ingress", "tc_egress"}), hooks
if want:
    assert hooks["xdp"]["mode"] == want, hooks["xdp"]
assert all(h["program_id"] > 0 for h in hooks.values())
assert i["rx_source"] == ("xdp" if want else "tc_ingress")
top = s["flow_table"]["top"]
assert 0 < len(top) <= 100, len(top)
addrs = {f["src"] for f in top} | {f["dst"] for f in top}
assert "198.18.0.2" in addrs and "2001:db8::1" in addrs, addrs
assert any(f["protocol"] == "tcp" and 5201 in (f["src_port"], f["dst_port"]) for f in top), top
assert s["flow_table"]["entries"] > 0 and s["collection"]["errors_total"] == 0
# The echo flows of the four pings, all four counters exact, both
# families: a flow is keyed as its packets are addressed, so what A sends
# is tx and what it receives is rx. Frame = Ethernet 14 + IP (20 or 40)
# + ICMP 8 + payload; ICMP type << 8 is the flow's source port.
def echo(proto, src, dst, icmp_type):
    (f,) = [f for f in top if f["protocol"] == proto and f["src"] == src and f["dst"] == dst and f["src_port"] == icmp_type << 8]
    return (f["rx_packets"], f["rx_bytes"], f["tx_packets"], f["tx_bytes"])
want = {
    ("icmp", "198.18.0.1", "198.18.0.2", 8): (0, 0, 40, 40 * (14 + 20 + 8 + 1200)),    # A pings B, -s 1200
    ("icmp", "198.18.0.2", "198.18.0.1", 0): (40, 40 * (14 + 20 + 8 + 1200), 0, 0),    # B's replies
    ("icmp", "198.18.0.2", "198.18.0.1", 8): (40, 40 * (14 + 20 + 8 + 56), 0, 0),      # B pings A
    ("icmp", "198.18.0.1", "198.18.0.2", 0): (0, 0, 40, 40 * (14 + 20 + 8 + 56)),
    ("icmpv6", "2001:db8::1", "2001:db8::2", 128): (0, 0, 40, 40 * (14 + 40 + 8 + 56)),  # A pings B over IPv6
    ("icmpv6", "2001:db8::2", "2001:db8::1", 129): (40, 40 * (14 + 40 + 8 + 56), 0, 0),
    ("icmpv6", "2001:db8::2", "2001:db8::1", 128): (40, 40 * (14 + 40 + 8 + 600), 0, 0), # B pings A, -s 600
    ("icmpv6", "2001:db8::1", "2001:db8::2", 129): (0, 0, 40, 40 * (14 + 40 + 8 + 600)),
}
for k, v in want.items():
    got = echo(*k)
    assert got == v, f"{k}: (rx_packets, rx_bytes, tx_packets, tx_bytes) = {got}, want {v}"
EOF
	local code=0 ids
	ids=$(agent_prog_ids)
	kill -TERM "$AGENT_PID"
	wait "$AGENT_PID" || code=$?
	AGENT_PID=
	[ "$code" -eq 0 ] && ok "$mode SIGTERM: exit 0" || fail "$mode SIGTERM: exit $code"
	local left
	left=$( (ina ip -d link show "$IFA" | grep -o 'prog/xdp[^ ]*' || true
		ina tc filter show dev "$IFA" ingress; ina tc filter show dev "$IFA" egress
) 2>/dev/null)
	# shellcheck disable=SC2086
	[ "$(progs_left $ids)" -eq 0 ] || left="$left programs of the agent still loaded ($ids)"
	# shellcheck disable=SC2086
	[ "$(set -- $ids; echo $#)" -ge 3 ] || fail "$mode: the agent held only these programs: $ids"
	[ -z "$left" ] && ok "$mode SIGTERM: no XDP program, TC filter or netprobe program left" \
		|| fail "$mode SIGTERM left: $left"
	grep -qi 'panic' "$LOG/agent.log" && fail "$mode agent log has a panic" || true
}

bad_input() {
	echo "e2e: bad input"
	rejects "--interface-filter nosuchif0" nosuchif0
	rejects "--bogus-flag" bogus-flag
	rejects "--collect-interval 5" collect-interval
	rejects "--xdp-mode turbo" xdp-mode
	rejects "--max-flows 0" max-flows
	rejects "--metrics-port 99999" metrics-port
}

setup_net
bad_input
for mode in ${E2E_MODES:-auto native generic off}; do
	run_mode "$mode"
done
echo "e2e: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
