#!/usr/bin/env bash
# Interface kinds a gateway has, beyond a plain veth (issue 20): for each,
# the agent (default flags: --xdp-mode auto) watches the devices involved
# while bounded traffic crosses them (ping both families, a bulk TCP
# transfer each way), and its rx/tx packets and bytes are compared with
# the kernel's interface counters over the same quiet window. Each row is
# either exact or carries the difference this script documents (and
# asserts), so a change either way is seen. Prints the table that
# docs/interfaces.md quotes. Rows:
#   bridge      br0 in the agent's namespace, its port the veth
#   bridge-port the veth under br0
#   macvlan     a macvlan (bridge mode) over the veth
#   vxlan       VXLAN (UDP 4789) over the veth
#   veth-no-tso the veth with TSO off: the kernel segments after TC egress
#   (tun, the L3 case, is build/e2e-l3.sh)
# Usage: build/e2e-ifaces.sh [path/to/netprobe-agent]   (root; about 1 min)
set -euo pipefail

AGENT=${1:-target/release/netprobe-agent}
TEST=e2e-ifaces NEEDS="iperf3 ping ethtool"
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"
start=$(date +%s)
TABLE=$LOG/table

# What each row must show, per counter: "exact", or "+N/pkt" (the agent
# counts N more bytes per packet than the kernel), or "fewer" (the agent
# counts fewer: a super-packet counted once that the kernel counts per
# segment).
declare -A EXPECT=(
	[bridge.rx_packets]=exact [bridge.rx_bytes]=exact [bridge.tx_packets]=exact [bridge.tx_bytes]=exact
	[bridge-port.rx_packets]=exact [bridge-port.rx_bytes]=exact [bridge-port.tx_packets]=exact [bridge-port.tx_bytes]=exact
	[macvlan.rx_packets]=exact [macvlan.rx_bytes]=exact [macvlan.tx_packets]=exact [macvlan.tx_bytes]=exact
	[vxlan.rx_packets]=exact [vxlan.rx_bytes]=exact [vxlan.tx_packets]=exact [vxlan.tx_bytes]=exact
	[veth-no-tso.rx_packets]=exact [veth-no-tso.rx_bytes]=exact [veth-no-tso.tx_packets]=exact [veth-no-tso.tx_bytes]=exact
)

# counters DEV...: "dev rx_packets rx_bytes tx_packets tx_bytes" lines,
# from the kernel (k) or the agent's last scrape (a).
kernel_of() {
	local d
	for d in "$@"; do
		ina sh -c "cd /sys/class/net/$d/statistics && echo $d \$(cat rx_packets rx_bytes tx_packets tx_bytes)"
	done
}
agent_of() {
	local d
	scrape /metrics >"$LOG/metrics"
	for d in "$@"; do
		echo "$d $(for c in rx_packets rx_bytes tx_packets tx_bytes; do
			awk -v m="netprobe_interface_${c}_total{interface=\"$d\"}" '$1 == m { print $2 }' "$LOG/metrics"
		done | tr '\n' ' ')"
	done
}
# quiet DEV...: a reading both sides agree on (the agent unchanged across
# the kernel read): "kernel lines|agent lines".
quiet() {
	local a1 k a2
	for _ in $(seq 30); do
		sleep 0.5
		a1=$(agent_of "$@")
		k=$(kernel_of "$@")
		sleep 0.5
		a2=$(agent_of "$@")
		[ "$a1" = "$a2" ] && { echo "$k|$a1"; return 0; }
	done
	return 1
}

traffic() { # DST4 DST6 (addresses in the other namespace), from the agent's side and back
	inb iperf3 -s -1 -D -p 5201 --logfile "$LOG/iperf-b.log"
	ina iperf3 -s -1 -D -p 5202 --logfile "$LOG/iperf-a.log"
	sleep 0.3
	ina ping -q -c 50 -i 0.01 -s 1200 "$1" >/dev/null
	ina ping -q -c 50 -i 0.01 "$2" >/dev/null
	timeout 30 ip netns exec "$NSA" iperf3 -c "$1" -p 5201 -n 8M >/dev/null
	timeout 30 ip netns exec "$NSB" iperf3 -c "$3" -p 5202 -n 8M >/dev/null
}

# row NAME DEV HOOKS BEFORE AFTER: compares one device's deltas and checks
# them against EXPECT.
row() {
	local name=$1 dev=$2 hooks=$3 before=$4 after=$5 i c
	local kb ab ka aa
	kb=$(grep "^$dev " <<<"${before%%|*}") ab=$(grep "^$dev " <<<"${before##*|}")
	ka=$(grep "^$dev " <<<"${after%%|*}") aa=$(grep "^$dev " <<<"${after##*|}")
	read -r _ k0 k1 k2 k3 <<<"$kb"
	read -r _ a0 a1 a2 a3 <<<"$ab"
	read -r _ K0 K1 K2 K3 <<<"$ka"
	read -r _ A0 A1 A2 A3 <<<"$aa"
	local kd=($((K0 - k0)) $((K1 - k1)) $((K2 - k2)) $((K3 - k3)))
	local ad=($((A0 - a0)) $((A1 - a1)) $((A2 - a2)) $((A3 - a3)))
	local cells=() names=(rx_packets rx_bytes tx_packets tx_bytes)
	for i in 0 1 2 3; do
		c=${names[$i]}
		local diff=$((ad[i] - kd[i])) got want=${EXPECT[$name.$c]}
		local pkts=${kd[$((i / 2 * 2))]}
		if [ "$diff" -eq 0 ]; then
			got=exact
		elif [ "$want" = fewer ] && [ "$diff" -lt 0 ]; then
			got=fewer
		elif [ "$((i % 2))" -eq 1 ] && [ "$pkts" -gt 0 ] && [ "$((diff % pkts))" -eq 0 ]; then
			got="$(printf '%+d' $((diff / pkts)))/pkt"
		else
			got="off by $diff"
		fi
		if [ "${kd[i]}" -le 0 ]; then
			fail "$name ${c}: no traffic counted by the kernel"
		elif [ "$got" = "$want" ]; then
			ok "$name $c: $got (agent ${ad[i]}, kernel ${kd[i]})"
		else
			fail "$name $c: $got, documented: $want (agent ${ad[i]}, kernel ${kd[i]})"
		fi
		if [ "$got" = exact ]; then cells+=("exact (${kd[i]})"); else cells+=("$got: agent ${ad[i]}, kernel ${kd[i]}"); fi
	done
	echo "| $name | $hooks | ${cells[0]} | ${cells[1]} | ${cells[2]} | ${cells[3]} |" >>"$TABLE"
}

hooks_on() { # DEV: the hooks the agent attached there
	scrape /status | python3 -c 'import json, sys
d = sys.argv[1]
for i in json.load(sys.stdin)["interfaces"]:
    if i["name"] == d:
        print(" ".join(h["hook"] + "=" + h["mode"] for h in i["hooks"]))' "$1"
}

# scenario NAME: fresh namespaces and veth, then the scenario's own setup.
fresh() {
	[ -z "$AGENT_PID" ] || { kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=; }
	ip netns pids "$NSA" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns pids "$NSB" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
	setup_net
}

echo "| interface | hooks (auto) | rx packets | rx bytes | tx packets | tx bytes |" >"$TABLE"
echo "|---|---|---|---|---|---|" >>"$TABLE"

echo "$TEST: bridge over the veth"
fresh
ip -n "$NSA" addr flush dev "$IFA"
ip -n "$NSA" link add br0 type bridge
ip -n "$NSA" link set "$IFA" master br0
ip -n "$NSA" addr add $A4/24 dev br0
ip -n "$NSA" addr add $A6/64 dev br0 nodad
ip -n "$NSA" link set br0 up
sleep 1
FILTER="br0,$IFA" start_agent --pin-path '' || { fail "agent did not start"; exit 1; }
if grep -E "WARN.*(br0|$IFA)" "$LOG/agent.log" >"$LOG/warn"; then fail "warnings attaching a bridge and its port: $(head -2 "$LOG/warn")"; else ok "bridge and port attached without a warning"; fi
b=$(quiet br0 "$IFA") && traffic $B4 $B6 $A4 && a=$(quiet br0 "$IFA") || { fail "bridge: no quiet reading"; a=$b; }
row bridge br0 "$(hooks_on br0)" "$b" "$a"
row bridge-port "$IFA" "$(hooks_on "$IFA")" "$b" "$a"

echo "$TEST: macvlan over the veth"
fresh
ip -n "$NSA" addr flush dev "$IFA"
ip -n "$NSA" link add mv0 link "$IFA" type macvlan mode bridge
ip -n "$NSA" addr add $A4/24 dev mv0
ip -n "$NSA" addr add $A6/64 dev mv0 nodad
ip -n "$NSA" link set mv0 up
sleep 1
FILTER=mv0 start_agent --pin-path '' || { fail "agent did not start"; exit 1; }
b=$(quiet mv0) && traffic $B4 $B6 $A4 && a=$(quiet mv0) || { fail "macvlan: no quiet reading"; a=$b; }
row macvlan mv0 "$(hooks_on mv0)" "$b" "$a"

echo "$TEST: VXLAN over the veth"
fresh
ip -n "$NSA" link add vx0 type vxlan id 42 dstport 4789 local $A4 remote $B4 dev "$IFA"
ip -n "$NSB" link add vx0 type vxlan id 42 dstport 4789 local $B4 remote $A4 dev "$IFB"
ip -n "$NSA" addr add 198.18.7.1/24 dev vx0
ip -n "$NSB" addr add 198.18.7.2/24 dev vx0
ip -n "$NSA" addr add 2001:db8:7::1/64 dev vx0 nodad
ip -n "$NSB" addr add 2001:db8:7::2/64 dev vx0 nodad
ip -n "$NSA" link set vx0 up
ip -n "$NSB" link set vx0 up
sleep 1
FILTER=vx0 start_agent --pin-path '' || { fail "agent did not start"; exit 1; }
b=$(quiet vx0) && traffic 198.18.7.2 2001:db8:7::2 198.18.7.1 && a=$(quiet vx0) || { fail "vxlan: no quiet reading"; a=$b; }
row vxlan vx0 "$(hooks_on vx0)" "$b" "$a"

echo "$TEST: veth with TSO off"
fresh
ina ethtool -K "$IFA" tso off >/dev/null
start_agent --pin-path '' || { fail "agent did not start"; exit 1; }
b=$(quiet "$IFA") && traffic $B4 $B6 $A4 && a=$(quiet "$IFA") || { fail "veth-no-tso: no quiet reading"; a=$b; }
row veth-no-tso "$IFA" "$(hooks_on "$IFA")" "$b" "$a"

echo
cat "$TABLE"
grep -qi 'panic' "$LOG/agent.log" && fail "agent log has a panic" || true
echo "$TEST: $PASSED passed, $FAILED failed in $(($(date +%s) - start)) s (logs: $LOG)"
[ "$FAILED" -eq 0 ]
