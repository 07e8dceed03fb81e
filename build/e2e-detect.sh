#!/usr/bin/env bash
# End-to-end detection test on a gateway: does NetProbe leave everyday
# traffic alone and still catch every attack within a second?
#
#   LAN ($NSL) ── $IFC ═ $IFL ── router ($NSA: the agent, forwarding,
#   NAT for the .160/27 users) ── $IFA ═ $IFB ── WAN ($NSB: ~500 server,
#   peer and attacker addresses on its loopback)
#
# The agent watches both router interfaces with the default home networks
# (auto: the router's addresses and connected prefixes, private ranges).
#  1. The benign corpus, once with the agent's defaults (no alert) and once
#     with --mitigate on (no block, every connection and datagram
#     completes): the everyday traffic of issue 21's table, issue 20's
#     busy tunnel, and IPv6. Each row bounded in count and time.
#  2. The attack corpus from the WAN (SYN, FIN, NULL, Xmas and UDP scans,
#     a sweep, closed-port probing, single-source and spoofed SYN, UDP and
#     ICMP floods; IPv4 and IPv6): each alert visible in /status within 1 s
#     of the attack's first packet on the wire (stamped by a sniffer on the
#     router), and each source that can be named blocked.
#  3. Prints the confusion matrix (rows x detectors, blocks) that
#     docs/detection.md shows.
# Addresses: 198.18.0.0/15 and 2001:db8::/32 only; every tool under timeout.
#
# Usage: build/e2e-detect.sh [path/to/netprobe-agent]   (root; about 5 min)
# PHASES="attacks" (any of benign-defaults benign-mitigate attacks; default
# all three), ROWS='*sweep*,IPv6*' (globs: only the rows they match).
set -euo pipefail

AGENT=${1:-target/release/netprobe-agent}
TEST=e2e-detect NEEDS="nmap hping3 iperf3 nft"
INTERVAL=1s
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

TRAFFIC="python3 $(cd "$(dirname "$0")" && pwd)/detect-traffic.py"
NSL=npe2e-l-$ID IFL=npl$ID IFC=npc$ID
FILTER="$IFA,$IFL"
BG_PIDS=()
MATRIX=() # one line per row: phase<TAB>row<TAB>alerts<TAB>blocks<TAB>outcome

cleanup_extra() {
	for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	[ -n "${ATTACK_PID:-}" ] && kill -KILL -- "-$ATTACK_PID" 2>/dev/null || true
	ip netns pids "$NSL" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns del "$NSL" 2>/dev/null || true
}

inl() { ip netns exec "$NSL" "$@"; }
bg() { # bg NS CMD...: a server for the whole run, killed on exit
	local ns=$1
	shift
	ip netns exec "$ns" "$@" >>"$LOG/servers.log" 2>&1 &
	BG_PIDS+=($!)
}

# ---- topology -----------------------------------------------------------------

setup_router_net() {
	ip netns add "$NSA"
	ip netns add "$NSB"
	ip netns add "$NSL"
	ip link add "$IFA" netns "$NSA" type veth peer name "$IFB" netns "$NSB"
	ip link add "$IFL" netns "$NSA" type veth peer name "$IFC" netns "$NSL"
	for ns in "$NSA" "$NSB" "$NSL"; do
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
			net.ipv6.conf.default.dad_transmits=0 net.ipv6.conf.all.dad_transmits=0 \
			net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0
		ip -n "$ns" link set lo up
	done
	ip netns exec "$NSA" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	{
		echo "addr add 198.18.1.1/24 dev $IFL"
		echo "addr add 2001:db8:1::1/64 dev $IFL nodad"
		echo "addr add 198.19.255.1/30 dev $IFA"
		echo "addr add 2001:db8:ff::1/64 dev $IFA nodad"
		echo "link set $IFL up"
		echo "link set $IFA up"
		echo "route add default via 198.19.255.2"
		echo "route add default via 2001:db8:ff::2"
	} | ip -n "$NSA" -batch -
	{
		echo "addr add 198.18.1.10/24 dev $IFC"
		for i in $(seq 11 59) 100 $(seq 101 140) $(seq 160 191); do echo "addr add 198.18.1.$i/24 dev $IFC"; done
		for i in $(seq 16 47) 256 $(seq 257 296); do printf 'addr add 2001:db8:1::%x/64 dev %s nodad\n' "$i" "$IFC"; done
		echo "link set $IFC up"
		echo "route add default via 198.18.1.1"
		echo "route add default via 2001:db8:1::1"
	} | ip -n "$NSL" -batch -
	{
		echo "addr add 198.19.255.2/30 dev $IFB"
		echo "addr add 2001:db8:ff::2/64 dev $IFB nodad"
		# Servers, devices, peers and attackers, outside the home networks.
		for n in 1 3 5 9 13 66; do for i in $(seq 1 50); do echo "addr add 198.19.$n.$i/32 dev lo"; done; done
		for n in 4 6 7 8 10 12 14; do for i in $(seq 1 50); do echo "addr add 198.19.$n.$i/32 dev lo"; done; done
		for i in $(seq 1 200); do echo "addr add 198.19.11.$i/32 dev lo"; done
		for i in $(seq 1 40); do printf 'addr add 2001:db8:2::%x/128 dev lo\n' "$i"; done
		for i in $(seq 1 30); do printf 'addr add 2001:db8:66::%x/128 dev lo\n' "$i"; done
		echo "link set $IFB up"
		echo "route add 198.18.1.0/24 via 198.19.255.1"
		echo "route add 2001:db8:1::/64 via 2001:db8:ff::1"
		# Spoofed flood sources: their answers go nowhere.
		echo "route add blackhole 198.19.128.0/17"
		echo "route add blackhole 2001:db8:8000::/33"
	} | ip -n "$NSB" -batch -
	# 30 users behind one address (the router's WAN address).
	ip netns exec "$NSA" nft -f - <<-EOF
		table ip npe2e_nat {
			chain post { type nat hook postrouting priority srcnat; ip saddr 198.18.1.160/27 oifname "$IFA" masquerade; }
		}
	EOF
	# A VXLAN tunnel across the router: LAN 198.18.1.20 <-> WAN 198.19.14.1.
	ip -n "$NSL" link add vx$ID type vxlan id 42 local 198.18.1.20 remote 198.19.14.1 dstport 4789
	ip -n "$NSB" link add vx$ID type vxlan id 42 local 198.19.14.1 remote 198.18.1.20 dstport 4789
	ip -n "$NSL" addr add 198.18.200.1/30 dev vx$ID
	ip -n "$NSB" addr add 198.18.200.2/30 dev vx$ID
	ip -n "$NSL" link set vx$ID up
	ip -n "$NSB" link set vx$ID up

	# WAN servers (the closed ports stay closed: 873, 6882).
	bg "$NSB" $TRAFFIC serve-tcp --ports 80,443,10250,6881,9100-9129
	bg "$NSB" $TRAFFIC serve-udp --ports 53,161,1900
	ip netns exec "$NSB" iperf3 -s -D -B 198.19.8.1 -p 5201 --logfile "$LOG/iperf-w1.log"
	ip netns exec "$NSB" iperf3 -s -D -B 198.19.8.2 -p 5202 --logfile "$LOG/iperf-w2.log"
	ip netns exec "$NSB" iperf3 -s -D -B 198.18.200.2 -p 5203 --logfile "$LOG/iperf-vx.log"
	# LAN servers: a web server, a BitTorrent client's listener, a UDP service.
	bg "$NSL" $TRAFFIC serve-tcp --ports 8080,6881
	inl iperf3 -s -D -B 198.18.1.100 -p 5204 --logfile "$LOG/iperf-l.log"
	WAN_MAC=$(ip netns exec "$NSA" cat "/sys/class/net/$IFA/address")
	for _ in $(seq 50); do inl ping -c1 -W1 198.19.1.1 >/dev/null 2>&1 && break; sleep 0.1; done
	inl ping -c1 -W1 -6 2001:db8:2::1 >/dev/null 2>&1 || true
}

# ---- reading /status ------------------------------------------------------------

# since T: "kind:source" of every alert reported at or after T, and "block:ADDR"
# of every block since T, space-separated ("-" for none).
since() {
	scrape /status | python3 -c '
import json, sys
t = float(sys.argv[1])
s = json.load(sys.stdin)["security"]
out = ["%s:%s" % (a["kind"], a["source"] or "-") for a in s["alerts_active"] + s["alerts_recent"] if a["reported_at"] >= t - 0.001]
out += ["block:%s" % b["source"] for b in s["blocked_sources"] if b["since"] >= t - 0.001]
print(" ".join(sorted(set(out))) or "-")' "$1"
}

now() { date +%s.%N; }

# wanted NAME: the row matches one of the globs in ROWS (comma-separated).
wanted() {
	local g
	[ -z "${ROWS:-}" ] && return 0
	IFS=, read -ra globs <<<"$ROWS"
	for g in "${globs[@]}"; do
		# shellcheck disable=SC2053 # a glob on purpose
		[[ $1 == $g ]] && return 0
	done
	return 1
}

# ---- the benign corpus ------------------------------------------------------------

# row NAME CHECK NS CMD...: runs CMD (its last output line is JSON) in NS,
# bounded; CHECK, a Python expression over r (that JSON), says whether every
# connection and datagram completed. Records the alerts and blocks that
# came while it ran (and in the 1.5 s after: the reply timeout, the ring).
row() {
	local name=$1 check=$2 ns=$3 t0 res got ok
	shift 3
	wanted "$name" || return 0
	t0=$(now)
	res=$(timeout 40 ip netns exec "$ns" "$@" 2>>"$LOG/rows.err" | tail -1) || true
	sleep 1.5
	got=$(since "$t0")
	if python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if ($check) else 1)" "$res" 2>/dev/null; then
		ok=completed
	else
		ok="INCOMPLETE $res"
	fi
	MATRIX+=("$PHASE	$name	$got	$ok	$res")
	if [ "$got" = "-" ] && [ "$ok" = completed ]; then
		ok "$PHASE: $name: no alert, no block, all completed ($res)"
	else
		fail "$PHASE: $name: alerts/blocks: $got; $ok"
	fi
}

# iperf_row NAME NS ARGS...: iperf3 as a row (its own completion check).
iperf_row() {
	local name=$1 ns=$2 t0 got out rc=0
	shift 2
	wanted "$name" || return 0
	t0=$(now)
	out=$(timeout 30 ip netns exec "$ns" iperf3 "$@" --json 2>>"$LOG/rows.err") || rc=$?
	sleep 1.5
	got=$(since "$t0")
	local summary
	summary=$(python3 -c '
import json, sys
r = json.loads(sys.argv[1]); e = r.get("end", {})
s = e.get("sum", e.get("sum_received", e.get("sum_sent", {})))
print("%s Mbit/s, %s packets, lost %s" % (round(s.get("bits_per_second", 0) / 1e6), s.get("packets", "-"), s.get("lost_packets", 0)))' "$out" 2>/dev/null || echo "no result")
	MATRIX+=("$PHASE	$name	$got	$([ $rc -eq 0 ] && echo completed || echo "INCOMPLETE rc=$rc")	$summary")
	if [ "$got" = "-" ] && [ $rc -eq 0 ]; then
		ok "$PHASE: $name: no alert, no block, completed ($summary)"
	else
		fail "$PHASE: $name: alerts/blocks: $got; iperf3 rc=$rc ($summary)"
	fi
}

ALL_TCP="r['ok'] == r['tried']"
ALL_UDP="r['answered'] == r['tried']"

benign_corpus() {
	# Issue 21's table, each row from its own LAN address.
	row "page load: 60 TCP to 40 servers :443 in 2 s" "$ALL_TCP" "$NSL" \
		$TRAFFIC connect --src 198.18.1.10 --to '198.19.1.1-40:443;198.19.1.1-20:443' --seconds 2
	row "LAN resolver: 40 upstreams :53 in 1.5 s" "$ALL_UDP" "$NSL" \
		$TRAFFIC query --src 198.18.1.11 --to '198.19.1.1-40:53' --seconds 1.5
	row "SSDP discovery, then HTTP to 30 devices" "$ALL_TCP" "$NSL" sh -c "{
			$TRAFFIC chatter --src 198.18.1.12 --rounds 2 --seconds 0.2 >/dev/null
			$TRAFFIC query --src 198.18.1.12 --to '198.19.3.1-30:1900' --seconds 0.5
			$TRAFFIC connect --src 198.18.1.12 --to '198.19.3.1-30:80' --seconds 1; } | $TRAFFIC merge"
	row "Prometheus: ports 9100-9129 of one host, 3 rounds 1 s apart" "$ALL_TCP" "$NSL" \
		$TRAFFIC connect --src 198.18.1.13 --to '198.19.4.1:9100-9129' --repeat 3 --seconds 3
	row "Kubernetes: scrape 40 pod IPs :10250" "$ALL_TCP" "$NSL" \
		$TRAFFIC connect --src 198.18.1.14 --to '198.19.5.1-40:10250' --seconds 1
	row "SNMP poll of 50 hosts :161" "$ALL_UDP" "$NSL" \
		$TRAFFIC query --src 198.18.1.14 --to '198.19.6.1-50:161' --seconds 1
	row "traceroute: UDP 33434+ and TCP :80, 2 hops" \
		"r['udp_answered'] == r['udp_tried'] and r['tcp_done'] == r['tcp_tried']" "$NSL" \
		$TRAFFIC traceroute --host 198.19.7.1 --port 80 --hops 2
	iperf_row "QUIC-like download: UDP 1200 B at 290 Mbit/s, 2 s" "$NSL" \
		-c 198.19.8.1 -p 5201 -B 198.18.1.16 -u -R -b 290M -l 1200 -t 2
	iperf_row "speed test LAN to WAN: UDP 1200 B at 345 Mbit/s, 2 s" "$NSL" \
		-c 198.19.8.2 -p 5202 -B 198.18.1.17 -u -b 345M -l 1200 -t 2
	row "30 users behind one NAT address: DNS and HTTP" "$ALL_TCP" "$NSL" sh -c "{
			$TRAFFIC query --src $(seq -s, -f '198.18.1.%g' 160 189) --to '198.19.1.1-30:53' --seconds 1
			$TRAFFIC connect --src $(seq -s, -f '198.18.1.%g' 160 189) --to '198.19.9.1-30:80' --seconds 1; } | $TRAFFIC merge"
	row "web server whose clients close with RST, 700 conn/s for 2 s" \
		"r['ok'] >= 0.98 * r['tried']" "$NSB" \
		$TRAFFIC rst-clients --host 198.18.1.100 --port 8080 --src "$(seq -s, -f '198.19.10.%g' 1 10)" --rate 700 --seconds 2 --rst
	row "BitTorrent: 200 peers, half closed; 20 peers connect in" \
		"r['ok'] == 120 and r['refused'] == 100" "$NSL" sh -c "{
			$TRAFFIC connect --src 198.18.1.18 --to '198.19.11.1-100:6881;198.19.11.101-200:6882' --seconds 2 &
			ip netns exec $NSB $TRAFFIC connect --src $(seq -s, -f '198.19.11.%g' 1 20) --to '198.18.1.18:6881' --repeat 20 --seconds 1
			wait; } | $TRAFFIC merge"
	row "backup job on the router retrying a refused service 30 times" \
		"r['refused'] == r['tried']" "$NSA" \
		$TRAFFIC retry --host 198.19.12.1 --port 873 --count 30 --seconds 3
	keepalive_row
	row "mDNS/SSDP/LLMNR/DHCP chatter from 30 devices" "r['sent'] > 0" "$NSL" \
		$TRAFFIC chatter --src "$(seq -s, -f '198.18.1.%g' 30 59)" --iface6 "$IFC" --seconds 2 --rounds 10
	row "DNS burst: 3000 queries in 1 s to one resolver" "$ALL_UDP" "$NSL" \
		$TRAFFIC query --src 198.18.1.19 --to '198.19.1.1:53' --repeat 3000 --seconds 1
	row "flash crowd: 4000 connections in about a second to a LAN server" \
		"r['ok'] >= 0.98 * r['tried']" "$NSB" \
		$TRAFFIC rst-clients --host 198.18.1.100 --port 8080 --src "$(seq -s, -f '198.19.13.%g' 1 50)" --rate 4000 --seconds 1 --parallel 32
	row "IPv6 RS, NS and MLD bursts" "r['sent'] == 300" "$NSL" \
		$TRAFFIC nd --iface "$IFC" --target 2001:db8:1::1 --count 100 --seconds 1
	iperf_row "VXLAN tunnel: iperf3 TCP at line rate, 2 s (issue 20)" "$NSL" \
		-c 198.18.200.2 -p 5203 -t 2
	iperf_row "bulk UDP both ways, started from the WAN, 2 s" "$NSB" \
		-c 198.18.1.100 -p 5204 -B 198.19.8.3 -u --bidir -b 200M -l 1200 -t 2
	row "IPv6 page load: 60 TCP to 40 servers :443" "$ALL_TCP" "$NSL" \
		$TRAFFIC connect --src 2001:db8:1::10 --to '2001:db8:2::1-40:443;2001:db8:2::1-20:443' --seconds 2
	row "IPv6 LAN resolver: 40 upstreams :53" "$ALL_UDP" "$NSL" \
		$TRAFFIC query --src 2001:db8:1::11 --to '2001:db8:2::1-40:53' --seconds 1.5
}

# A service on the router resets its 30 keep-alive clients and restarts.
keepalive_row() {
	local t0 got res srv ok
	wanted "service restart" || return 0
	t0=$(now)
	rm -f "$LOG/ka.ready"
	ip netns exec "$NSA" timeout 20 $TRAFFIC keepalive-server --host 198.18.1.1 --port 9000 --clients 30 \
		--ready "$LOG/ka.ready" >"$LOG/ka-server.json" 2>>"$LOG/rows.err" &
	srv=$!
	for _ in $(seq 50); do [ -e "$LOG/ka.ready" ] && break; sleep 0.1; done
	res=$(timeout 20 ip netns exec "$NSL" $TRAFFIC keepalive-clients --host 198.18.1.1 --port 9000 --clients 30 \
		--src "$(seq -s, -f '198.18.1.%g' 21 29)" 2>>"$LOG/rows.err" | tail -1) || true
	wait "$srv" || true
	sleep 1.5
	got=$(since "$t0")
	if python3 -c "import json,sys; r=json.loads(sys.argv[1]); sys.exit(0 if r['reset'] == 30 and r['reconnected'] == 30 else 1)" "$res" 2>/dev/null; then
		ok=completed
	else
		ok="INCOMPLETE"
	fi
	MATRIX+=("$PHASE	service restart resetting 30 keep-alive clients	$got	$ok	$res")
	if [ "$got" = "-" ] && [ "$ok" = completed ]; then
		ok "$PHASE: service restart: no alert, no block, all reset and reconnected ($res)"
	else
		fail "$PHASE: service restart: alerts/blocks: $got; $ok $res"
	fi
}

# ---- the attack corpus ------------------------------------------------------------

LATENCIES=()

# attack NAME KIND SOURCE TARGET BLOCK SNIFF CMD...: CMD runs in the WAN
# namespace (bounded). SNIFF: the source address or prefix the sniffer on
# the router's WAN interface waits for (t0: the attack's first packet, by
# the kernel's receive timestamp). KIND must show in /status from SOURCE
# ("many" for spoofed) toward TARGET ("" for any) within 1 s of t0;
# BLOCK=yes: the source must be blocked too (a block needs the alert to
# repeat). The tool stops once that is seen.
attack() {
	local name=$1 kind=$2 src=$3 target=$4 block=$5 sniff=$6 pid spid wpid t0 res seen rep blocked lat reported
	shift 6
	wanted "$name" || return 0
	rm -f "$LOG/sniff.ready" "$LOG/watch.ready"
	ip netns exec "$NSA" $TRAFFIC sniff --iface "$IFA" --src "$sniff" --ready "$LOG/sniff.ready" --timeout 15 \
		>"$LOG/sniff.out" 2>>"$LOG/rows.err" &
	spid=$!
	ip netns exec "$NSA" $TRAFFIC watch --port "$PORT" --kind "$kind" --source "$src" --target "$target" \
		$([ "$block" = yes ] && echo --blocked) --ready "$LOG/watch.ready" --timeout 12 \
		>"$LOG/watch.out" 2>>"$LOG/rows.err" &
	wpid=$!
	for _ in $(seq 100); do [ -e "$LOG/sniff.ready" ] && [ -e "$LOG/watch.ready" ] && break; sleep 0.05; done
	# Its own session, so the whole tool (a flood's senders too) stops below.
	setsid ip netns exec "$NSB" "$@" >"$LOG/attack.log" 2>&1 &
	ATTACK_PID=$!
	echo "== $name: $*" >>"$LOG/attacks.log"
	pid=$ATTACK_PID
	wait "$wpid" 2>/dev/null || true
	# Seen (and blocked): no need to let the tool run its course.
	kill -TERM -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	kill -TERM "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	cat "$LOG/attack.log" >>"$LOG/attacks.log"
	t0=$(head -1 "$LOG/sniff.out" 2>/dev/null || true)
	res=$(tail -1 "$LOG/watch.out" 2>/dev/null || true)
	read -r seen rep blocked <<<"$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(*("-" if r[k] is None else "%.6f" % r[k] for k in ("seen", "reported", "blocked")))' "$res" 2>/dev/null || echo "- - -")"
	if [ "$seen" = "-" ] || [ -z "$t0" ]; then
		fail "attacks: $name: no $kind alert from $src in /status (first packet: ${t0:-not seen}; $(head -c 300 "$LOG/attack.log" | tr '\n' ' '))"
		MATRIX+=("attacks	$name	MISSED $kind	-	-")
		return
	fi
	lat=$(awk -v a="$seen" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
	reported=$(awk -v a="$rep" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
	if awk -v l="$lat" 'BEGIN { exit !(l < 1.0) }'; then
		ok "attacks: $name: $kind from $src in /status ${lat}s after its first packet (the agent had it at ${reported}s)"
	else
		fail "attacks: $name: $kind from $src in /status ${lat}s after its first packet, over 1 s (the agent had it at ${reported}s)"
	fi
	if [ "$block" = yes ]; then
		[ "$blocked" != "-" ] && ok "attacks: $name: $src blocked" || fail "attacks: $name: $src not blocked"
	fi
	LATENCIES+=("$name	$kind	$lat")
	MATRIX+=("attacks	$name	$kind:$src	${lat}s	$([ "$block" = yes ] && { [ "$blocked" != "-" ] && echo "blocked" || echo "NOT blocked"; } || echo "n/a (no single source)")")
	sleep 1
}

# A process on the router (the socket layer watches the agent's own
# namespace) failing to reach 12 distinct peers: conn_failures, naming it.
local_failures() {
	local name="a router process failing to reach 12 peers" t0 res seen wpid
	wanted "$name" || return 0
	rm -f "$LOG/watch.ready"
	ip netns exec "$NSA" $TRAFFIC watch --port "$PORT" --kind conn_failures --source 'python3[*' \
		--ready "$LOG/watch.ready" --timeout 10 >"$LOG/watch.out" 2>>"$LOG/rows.err" &
	wpid=$!
	for _ in $(seq 100); do [ -e "$LOG/watch.ready" ] && break; sleep 0.05; done
	t0=$(now)
	timeout 10 ip netns exec "$NSA" $TRAFFIC connect --to '198.19.12.1-12:873' --seconds 0.5 >>"$LOG/attacks.log" 2>&1 || true
	wait "$wpid" 2>/dev/null || true
	res=$(tail -1 "$LOG/watch.out")
	seen=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); print("-" if r["seen"] is None else "%.3f" % (r["seen"] - float(sys.argv[2])))' "$res" "$t0" 2>/dev/null || echo -)
	if [ "$seen" != "-" ]; then
		ok "attacks: $name: conn_failures naming python3[pid] in /status ${seen}s after it started"
		MATRIX+=("attacks	$name	conn_failures:python3	${seen}s	n/a (a local process: alert only)")
	else
		fail "attacks: $name: no conn_failures alert"
		MATRIX+=("attacks	$name	MISSED conn_failures	-	-")
	fi
}

attack_corpus() {
	local v=198.18.1 w=198.19.66
	local nm="timeout 8 nmap -n -Pn -T4 --max-retries 1 -e $IFB"
	# Scans run 6 s: a block needs the alert in two 2 s windows.
	attack "nmap -sS (SYN scan)" scan_vertical $w.1 $v.101 yes $w.1 \
		$nm -sS -p 1-65535 -S $w.1 --host-timeout 6s $v.101
	attack "nmap -sF (FIN scan)" scan_vertical $w.2 $v.102 yes $w.2 \
		$nm -sF -p 1-65535 -S $w.2 --host-timeout 6s $v.102
	attack "nmap -sN (NULL scan)" scan_vertical $w.3 $v.103 yes $w.3 \
		$nm -sN -p 1-65535 -S $w.3 --host-timeout 6s $v.103
	attack "nmap -sX (Xmas scan)" scan_vertical $w.4 $v.104 yes $w.4 \
		$nm -sX -p 1-65535 -S $w.4 --host-timeout 6s $v.104
	attack "nmap -sU (UDP scan, default ICMP rate limit)" scan_vertical $w.5 $v.105 yes $w.5 \
		$nm -sU -p 1-2000 --max-retries 0 --min-rate 200 -S $w.5 --host-timeout 6s $v.105
	attack "nmap sweep of 40 LAN hosts :80" scan_horizontal $w.6 "" no $w.6 \
		$nm -sS -p 80,443 -S $w.6 "$v.101-140"
	attack "closed-port probing: 2000 SYN/s to closed ports" closed_ports $w.7 $v.107 no $w.7 \
		timeout 4 hping3 -q -S -p ++1 -i u500 -a $w.7 $v.107
	attack "SYN flood, one source" syn_flood $w.8 $v.100 yes $w.8 \
		timeout 4 hping3 -q -S -p 8080 --flood -a $w.8 $v.100
	attack "SYN flood, spoofed sources" syn_flood many $v.108 no 198.19.128.0/17 \
		$TRAFFIC flood --iface "$IFB" --dst-mac "$WAN_MAC" --dst $v.108 --port 8080 --kind syn --src-net 198.19.128.0/17 --random --seconds 3
	attack "UDP flood, spoofed sources" udp_flood many $v.109 no 198.19.128.0/17 \
		$TRAFFIC flood --iface "$IFB" --dst-mac "$WAN_MAC" --dst $v.109 --port 53 --kind udp --src-net 198.19.128.0/17 --random --seconds 3
	attack "ICMP flood, spoofed sources" icmp_flood many $v.110 no 198.19.128.0/17 \
		$TRAFFIC flood --iface "$IFB" --dst-mac "$WAN_MAC" --dst $v.110 --kind icmp --src-net 198.19.128.0/17 --random --seconds 3
	attack "ICMP flood, one source" icmp_flood $w.9 $v.111 yes $w.9 \
		timeout 4 hping3 -q --icmp --flood -a $w.9 $v.111
	local_failures
	local v6=2001:db8:1:: w6=2001:db8:66::
	attack "IPv6 nmap -sS" scan_vertical ${w6}11 ${v6}101 yes ${w6}11 \
		$nm -6 -sS -p 1-65535 -S ${w6}11 --host-timeout 6s ${v6}101
	attack "IPv6 nmap -sX" scan_vertical ${w6}12 ${v6}102 yes ${w6}12 \
		$nm -6 -sX -p 1-65535 -S ${w6}12 --host-timeout 6s ${v6}102
	attack "IPv6 nmap -sU" scan_vertical ${w6}13 ${v6}103 yes ${w6}13 \
		$nm -6 -sU -p 1-2000 --max-retries 0 --min-rate 200 -S ${w6}13 --host-timeout 6s ${v6}103
	attack "IPv6 SYN flood, spoofed sources" syn_flood many ${v6}104 no 2001:db8:8000::/33 \
		$TRAFFIC flood --iface "$IFB" --dst-mac "$WAN_MAC" --dst ${v6}104 --port 8080 --kind syn --src-net 2001:db8:8000::/33 --random --seconds 3
	attack "IPv6 UDP flood, spoofed sources" udp_flood many ${v6}105 no 2001:db8:8000::/33 \
		$TRAFFIC flood --iface "$IFB" --dst-mac "$WAN_MAC" --dst ${v6}105 --port 53 --kind udp --src-net 2001:db8:8000::/33 --random --seconds 3
	attack "IPv6 ICMP flood, spoofed sources" icmp_flood many ${v6}106 no 2001:db8:8000::/33 \
		$TRAFFIC flood --iface "$IFB" --dst-mac "$WAN_MAC" --dst ${v6}106 --kind icmp --src-net 2001:db8:8000::/33 --random --seconds 3
}

# ---- the matrix -------------------------------------------------------------------

print_matrix() {
	printf '%s\n' "${MATRIX[@]}" | python3 -c '
import sys
kinds = ["scan_vertical", "scan_horizontal", "closed_ports", "syn_flood", "udp_flood",
         "icmp_flood", "conn_failures", "reset_peers"]
short = ["scan_v", "scan_h", "closed", "syn", "udp", "icmp", "connfail", "resets"]
rows = [l.rstrip("\n").split("\t") for l in sys.stdin if l.strip()]
print("e2e-detect: confusion matrix (alerts per detector; blocks; outcome)")
print("| phase | traffic | " + " | ".join(short) + " | other | blocks | outcome |")
print("|---|---|" + "---|" * (len(short) + 3))
tp = fn = fp = tn = fb = 0
for r in rows:
    phase, name, got, outcome = r[0], r[1], r[2], r[3]
    items = [] if got in ("-", "") else got.split()
    if phase == "attacks":
        k = got.split(":")[0] if not got.startswith("MISSED") else ""
        cells = ["1" if kk == k else "" for kk in kinds]
        detected = bool(k)
        tp += detected; fn += not detected
        blocks = r[4] if len(r) > 4 else "-"
        print("| %s | %s | %s | | %s | %s |" % (phase, name, " | ".join(cells), blocks.replace("blocked:", ""), outcome))
        continue
    alerts = [i for i in items if not i.startswith("block:")]
    blocks = [i for i in items if i.startswith("block:")]
    cells = [str(sum(1 for a in alerts if a.split(":")[0] == kk) or "") for kk in kinds]
    other = sum(1 for a in alerts if a.split(":")[0] not in kinds)
    fp += bool(alerts); tn += not alerts; fb += bool(blocks)
    print("| %s | %s | %s | %s | %s | %s |" % (phase, name, " | ".join(cells), other or "", len(blocks) or "", outcome))
print()
print("e2e-detect: benign rows alerted %d of %d, blocked %d; attack rows detected %d of %d" % (fp, fp + tn, fb, tp, tp + fn))'
}

# ---- run --------------------------------------------------------------------------

T_START=$(date +%s)
setup_router_net
for phase in ${PHASES:-benign-defaults benign-mitigate attacks}; do
	case $phase in
	benign-defaults)
		echo "e2e-detect: benign corpus, agent defaults"
		PHASE=defaults
		start_agent --pin-path '' || { fail "agent did not start"; break; }
		grep -m1 'home networks' "$LOG/agent.log" | sed 's/^/e2e-detect: /' || fail "the agent did not print its home networks"
		benign_corpus
		kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
		;;
	benign-mitigate)
		echo "e2e-detect: benign corpus, --mitigate on"
		PHASE=mitigate
		start_agent --pin-path '' --mitigate on || { fail "agent did not start"; break; }
		benign_corpus
		scrape /status | python3 -c '
import json, sys
c = json.load(sys.stdin)["security"]["counters"]
sys.exit(0 if c["dropped_detected"] == 0 else 1)' && ok "mitigate: nothing dropped" || fail "mitigate: packets dropped during the benign corpus"
		kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
		;;
	attacks)
		echo "e2e-detect: attack corpus, --mitigate on"
		# The default --collect-interval: alerts show in /status as they
		# come (they are processed between collections, see e2e-security.sh).
		INTERVAL=5s start_agent --pin-path '' --mitigate on || { fail "agent did not start"; break; }
		attack_corpus
		kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=
		;;
	*) fail "unknown phase '$phase' (benign-defaults, benign-mitigate, attacks)" ;;
	esac
done
print_matrix
for l in "${LATENCIES[@]}"; do printf 'e2e-detect: latency\t%s\n' "$l"; done
echo "e2e-detect: $PASSED passed, $FAILED failed in $(($(date +%s) - T_START)) s"
[ "$FAILED" -eq 0 ]
