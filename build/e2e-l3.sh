#!/usr/bin/env bash
# The agent on an L3 device (issue 20, item 1): a tun in a network namespace
# of the test's own, whose packets start at the IP header (as on wg, ppp,
# raw-IP LTE modems, ipip and gre). build/l3-traffic.py plays the far end:
# ICMP/ICMPv6 echo requests and UDP datagrams, IPv4 and IPv6, written into
# the tun; the kernel answers back through it. Checks:
#   1. the agent attaches the TC programs of L3 devices and no XDP;
#   2. every packet is parsed as what it is: per-family, per-protocol
#      counts equal what was sent and answered, no parse skips, and the
#      peers' flows are in /status with their real addresses; the IPv6
#      peer is in 2001:db8:800:4500::/64, whose bytes an Ethernet parse
#      reads as EtherType 0x0800 and an IPv4 header;
#   3. the agent's rx/tx packets and bytes equal the kernel's counters;
#   4. fail-open under mitigation: with --mitigate on and every IPv4
#      address on the --blocklist, IPv4 is dropped and every IPv6 echo is
#      still answered.
# Usage: build/e2e-l3.sh [path/to/netprobe-agent]   (root; about 20 s)
set -euo pipefail

AGENT=${1:-target/release/netprobe-agent}
TEST=e2e-l3
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"
TRAFFIC="python3 $(cd "$(dirname "$0")" && pwd)/l3-traffic.py"
IFA=npt$ID
L4=198.18.5.1 P4=198.18.5.2 L6=2001:db8:800:4500::1 P6=2001:db8:800:4500::2
N=200
start=$(date +%s)

ip netns add "$NSA"
ina sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
	net.ipv6.conf.default.dad_transmits=0 net.ipv6.conf.all.dad_transmits=0 \
	net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0 \
	net.ipv4.icmp_ratelimit=0 net.ipv6.icmp.ratelimit=0
ip -n "$NSA" link set lo up
ip -n "$NSA" tuntap add dev "$IFA" mode tun
ip -n "$NSA" addr add $L4/24 dev "$IFA"
ip -n "$NSA" addr add $L6/64 dev "$IFA" nodad
ip -n "$NSA" link set "$IFA" up

# traffic: the far end's run; its counts to $LOG/traffic.
traffic() {
	ina timeout 30 $TRAFFIC --dev "$IFA" --local4 $L4 --peer4 $P4 --local6 $L6 --peer6 $P6 \
		--count "$N" --timeout 10 >"$LOG/traffic"
}
count() { awk -v k="$1" '$1 == k { print $2 }' "$LOG/traffic"; }
# metric NAME LABELS: the sample of NAME{LABELS} in the last scrape.
metric() { awk -v m="$1{$2}" '$1 == m { print $2 }' "$LOG/metrics"; }

echo "$TEST: 1. attach"
INTERVAL=200ms start_agent --pin-path '' --top-flows 100 || { fail "agent did not start"; exit 1; }
scrape /metrics >"$LOG/metrics"
hooks=$(grep "^netprobe_hook_attached{interface=\"$IFA\"" "$LOG/metrics" | sed 's/.*hook="\([a-z_]*\)".*/\1/' | sort | tr '\n' ' ')
[ "$hooks" = "tc_egress tc_ingress " ] && ok "TC ingress and egress attached, no XDP ($hooks)" || fail "hooks: '$hooks'"
grep -q "$IFA is an L3 device" "$LOG/agent.log" && ok "the log says why: an L3 device" || fail "no L3 log line"

echo "$TEST: 2. parsed as what it is"
traffic
for k in echo4 echo6; do
	[ "$(count ${k}_answered)" = "$N" ] && ok "$N of $N $k requests answered" || fail "$k answered $(count ${k}_answered) of $N"
done
for k in udp4 udp6; do
	[ "$(count ${k}_received)" = "$N" ] && ok "$N of $N $k datagrams delivered" || fail "$k delivered $(count ${k}_received) of $N"
done
reading=$(stable_reading) || { fail "no stable reading"; exit 1; }
scrape /metrics >"$LOG/metrics"
scrape /status >"$LOG/status"
check() { # HOOK FAMILY PROTO WANT
	local got
	got=$(metric netprobe_hook_packets_total "interface=\"$IFA\",hook=\"$1\",family=\"$2\",protocol=\"$3\"")
	[ "${got:-0}" = "$4" ] && ok "$1 $2/$3: $4 packets" || fail "$1 $2/$3: ${got:-0} packets, want $4"
}
check tc_ingress ipv4 icmp $N
check tc_ingress ipv6 icmpv6 $N
check tc_ingress ipv4 udp $N
check tc_ingress ipv6 udp $N
check tc_egress ipv4 icmp $N
check tc_egress ipv6 icmpv6 $N
other=$(awk -v i="interface=\"$IFA\"" 'index($1, "netprobe_hook_packets_total{" i) && index($1, "family=\"other\"") { s += $2 } END { print s + 0 }' "$LOG/metrics")
[ "$other" = 0 ] && ok "no packet of family other" || fail "$other packets of family other"
skipped=$(awk -v i="interface=\"$IFA\"" 'index($1, "netprobe_parse_skipped_total{" i) { s += $2 } END { print s + 0 }' "$LOG/metrics")
[ "$skipped" = 0 ] && ok "no parse skip" || fail "$skipped parse skips: $(grep "^netprobe_parse_skipped_total{interface=\"$IFA\"" "$LOG/metrics" | tr '\n' ' ')"
python3 - "$LOG/status" "$P4" "$L4" "$P6" "$L6" "$N" <<'EOF' && ok "/status flows: $P4 -> $L4 icmp and $P6 -> $L6 icmpv6, $N packets each" || fail "/status flows lack the peers' echo flows"
import json, sys
p4, l4, p6, l6, n = sys.argv[2:7]
top = json.load(open(sys.argv[1]))["flow_table"]["top"]
def has(src, dst, proto):
    return any(f["src"] == src and f["dst"] == dst and f["protocol"] == proto and f["rx_packets"] == int(n) for f in top)
ok = has(p4, l4, "icmp") and has(p6, l6, "icmpv6")
if not ok:
    print(json.dumps(top, indent=1), file=sys.stderr)
sys.exit(0 if ok else 1)
EOF

echo "$TEST: 3. exact against the kernel"
IFS='|' read -r k a <<<"$reading"
[ "$k" = "$a" ] && ok "agent rx/tx packets and bytes equal the kernel's: $a" || fail "kernel $k, agent $a"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=

echo "$TEST: 4. fail-open under mitigation"
printf '0.0.0.0/0\n' >"$LOG/block.txt"
INTERVAL=200ms start_agent --pin-path '' --mitigate on --blocklist "$LOG/block.txt" || { fail "agent did not start"; exit 1; }
txdrop() { ina cat /sys/class/net/"$IFA"/statistics/tx_dropped; }
d0=$(txdrop)
traffic
lost=$(($(txdrop) - d0)) # replies the tun itself dropped (its queue), not the agent
[ "$(($(count echo6_answered) + lost))" = "$N" ] && ok "every IPv6 echo answered with all of IPv4 blocklisted ($(count echo6_answered), and $lost the tun's queue dropped)" \
	|| fail "IPv6 echo answered $(count echo6_answered) of $N ($lost dropped by the tun)"
[ "$(count udp6_received)" = "$N" ] && ok "every IPv6 datagram delivered ($N)" || fail "IPv6 datagrams delivered $(count udp6_received) of $N"
[ "$(count echo4_answered)" = 0 ] && [ "$(count udp4_received)" = 0 ] && ok "IPv4 dropped, as the blocklist says" \
	|| fail "IPv4 passed with 0.0.0.0/0 blocklisted: $(count echo4_answered) echo, $(count udp4_received) udp"
scrape /metrics >"$LOG/metrics"
dropped=$(metric netprobe_mitigation_packets_total 'rule="blocklist",action="dropped"')
[ "${dropped:-0}" = $((2 * N)) ] && ok "the agent dropped exactly the $((2 * N)) IPv4 packets" || fail "the agent dropped ${dropped:-0}, want $((2 * N))"

grep -qi 'panic' "$LOG/agent.log" && fail "agent log has a panic" || true
echo "$TEST: $PASSED passed, $FAILED failed in $(($(date +%s) - start)) s (logs: $LOG)"
[ "$FAILED" -eq 0 ]
