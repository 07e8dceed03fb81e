#!/usr/bin/env bash
# The real agent's sinks into real receivers, as root: the agent on a veth
# pair between two namespaces (build/e2e-lib.sh), Prometheus, nfcapd and
# nfacctd on 127.0.0.1 in the agent's namespace (build/export-lib.sh).
#   remote_write -> Prometheus:
#     a. netprobe_interface_rx_packets_total equals the kernel's interface
#        counter once traffic stops, with the external label
#     b. Prometheus down for several push intervals while traffic flows:
#        afterwards a sample for every collection, none missing, and the
#        final value still exact
#     c. the agent stopped during an outage and started again with the same
#        --remote-write-spool-dir: what it had spooled reaches Prometheus
#   IPFIX -> nfcapd (run 1) and nfacctd (run 2): known UDP datagrams and
#     pings, IPv4 and IPv6, both directions, summed per 5-tuple equal what
#     was sent, and what /status shows.
# About 90 s. Usage: build/e2e-export-agent.sh [AGENT]
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=e2e-export-agent
AGENT=${1:-target/release/netprobe-agent}
NEEDS="prometheus nfcapd nfdump nfacctd ping"
# shellcheck source=build/e2e-lib.sh
source build/e2e-lib.sh
EXP_NS=$NSA
EXP_DIR=$LOG
# shellcheck source=build/export-lib.sh
source build/export-lib.sh
cleanup_extra() { exp_stop_all; }
INTERVAL=1s
SPOOL=$LOG/spool
start=$(date +%s)

setup_net
prom_start
nfcapd_start
nfacctd_start

# The agent with both sinks; IPFIX to port $1. Pins in a directory of the
# run's own (none: a fresh flow table each start).
run_agent() {
	start_agent --pin-path "" --socket-probes off --no-detect --top-flows 1000 \
		--remote-write-url "$(prom_write_url)" --remote-write-label site=e2e \
		--remote-write-spool-dir "$SPOOL" --ipfix-collector "127.0.0.1:$1" --ipfix-idle-timeout 2s
}
stop_agent() {
	kill -TERM "$AGENT_PID"
	local code=0
	timeout 30 tail --pid="$AGENT_PID" -f /dev/null || code=$?
	wait "$AGENT_PID" || code=$?
	AGENT_PID=
	[ "$code" -eq 0 ] && ok "agent stopped cleanly on SIGTERM" || fail "agent exit $code on SIGTERM"
}
metric() { scrape /metrics | awk -v m="$1" '$1 == m { print $2 }'; }

# --- known traffic ----------------------------------------------------------
# udp NS SRC SPORT DST DPORT COUNT SIZE: COUNT datagrams of SIZE payload
# bytes, received by a socket in the other namespace (no ICMP errors), and
# their flow line (bytes as the probes count them: Ethernet header included).
EXPECTED=$LOG/flows.exp
: >"$EXPECTED"
udp() {
	local ns=$1 src=$2 sport=$3 dst=$4 dport=$5 n=$6 size=$7 other hdr
	[ "$ns" = "$NSA" ] && other=$NSB || other=$NSA
	ip netns exec "$other" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[1])))
s.settimeout(3)
open(sys.argv[2], "w").close()
try:
    while True:
        s.recv(65536)
except socket.timeout:
    pass
' "$dport" "$LOG/rx-$dport" &
	exp_wait 5 test -e "$LOG/rx-$dport"
	ip netns exec "$ns" python3 -c '
import socket, sys, time
src, sport, dst, dport, n, size = sys.argv[1:]
fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((src, int(sport)))
for i in range(int(n)):
    s.sendto(b"x" * int(size), (dst, int(dport)))
    time.sleep(0.002)
' "$src" "$sport" "$dst" "$dport" "$n" "$size"
	[[ $dst == *:* ]] && hdr=62 || hdr=42
	echo "17 $src $sport $dst $dport $n $((n * (size + hdr)))" >>"$EXPECTED"
}
# pings COUNT: from B to A, IPv4 and IPv6 (56-byte payload): echo
# requests in, replies out; the totals are kept to add up at the end.
PING4=0 PING6=0
pings() {
	inb ping -4 -q -c "$1" -i 0.1 -W 2 $A4 >/dev/null
	inb ping -6 -q -c "$1" -i 0.1 -W 2 $A6 >/dev/null
	PING4=$((PING4 + $1)) PING6=$((PING6 + $1))
}
# The IPv4 echo flows (98-byte frames). ICMPv6 is left out of the sums:
# neighbour discovery between the same two addresses shares its key, and
# the decoders show no ICMP type to tell it from the echoes.
ping_lines() {
	echo "1 $B4 - $A4 - $PING4 $((PING4 * 98))"
	echo "1 $A4 - $B4 - $PING4 $((PING4 * 98))"
}
# known FILE: the sums of the known flows only: UDP, and ICMPv4 summed per
# address pair (ports: -).
known() {
	awk '$1 == 17 { print } $1 == 1 { k = $1 " " $2 " - " $4 " -"; p[k] += $6; b[k] += $7 }
		END { for (k in p) print k, p[k], b[k] }' "$1" | sort
}

# prom_series SELECTOR: `timestamp_ms value` of every raw sample of the
# last 10 minutes, oldest first.
prom_series() {
	prom_curl -G "$(prom_url)/api/v1/query" --data-urlencode "query=$1[10m]" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for r in d["data"]["result"]:
    for ts, v in r["values"]:
        print(round(float(ts) * 1000), v)
' | sort -n
}
RX="netprobe_interface_rx_packets_total{interface=\"$IFA\"}"
# gaps FILE FROM_MS TO_MS: samples in the window, and the longest step
# between consecutive ones (ms).
gaps() { awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b { if (n++) { d = $1 - p; if (d > m) m = d } p = $1 } END { print n + 0, m + 0 }' "$1"; }
# quiet_reading: like e2e-lib's stable_reading, for a 1 s collect
# interval: the agent's counters unchanged from before a kernel read to a
# collection made after it.
quiet_reading() {
	local a1 k a2
	for _ in $(seq 15); do
		a1=$(agent_stats)
		k=$(kernel_stats)
		sleep 2.2
		a2=$(agent_stats)
		if [ "$a1" = "$a2" ]; then
			echo "$k|$a1"
			return 0
		fi
	done
	echo "$TEST: traffic never went quiet" >&2
	return 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# drained: the spool of receiver 0 is empty.
drained() { [ "$(metric 'netprobe_remote_write_spool_samples{receiver="0"}')" = 0 ]; }

echo "== run 1: remote_write -> Prometheus, IPFIX -> nfcapd"
run_agent "$NFCAPD_PORT" || { fail "agent did not start"; exit 1; }
# The kernel counted the link's packets before the agent attached: compare
# from a reading both agree on (as build/e2e.sh does).
reading=$(quiet_reading)
OFF=$((${reading%% *} - $(cut -d'|' -f2 <<<"$reading" | cut -d' ' -f1)))
udp "$NSB" $B4 40001 $A4 5001 200 100
udp "$NSA" $A4 40002 $B4 5002 50 300
udp "$NSB" $B6 40003 $A6 5003 120 700
udp "$NSA" $A6 40004 $B6 5004 30 40
pings 20

# a. Exact once quiet, through Prometheus.
reading=$(quiet_reading)
krx=$((${reading%% *} - OFF))
arx=$(cut -d'|' -f2 <<<"$reading" | cut -d' ' -f1)
[ "$krx" = "$arx" ] && ok "agent rx_packets $arx = kernel $krx (since the agent attached)" || fail "agent rx_packets $arx, kernel $krx"
prx() { prom_curl -G "$(prom_url)/api/v1/query" --data-urlencode "query=$RX" |
	python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1], r[0]["metric"].get("site","-")) if r else print("- -")'; }
prom_equals() { [ "$(prx | cut -d' ' -f1)" = "$1" ]; }
exp_wait 15 prom_equals "$krx" || true
read -r prom_v prom_site < <(prx)
[ "$prom_v" = "$krx" ] && [ "$prom_site" = e2e ] &&
	ok "Prometheus /api/v1/query $RX = $prom_v = kernel rx_packets, site=$prom_site" ||
	fail "Prometheus has $prom_v (site=$prom_site), kernel rx_packets $krx"

# /status shows the UDP flows with the counts sent.
scrape /status | python3 -c '
import json, sys
for f in json.load(sys.stdin)["flow_table"]["top"]:
    if f["protocol"] == "udp":
        if f["rx_packets"]: print(17, f["src"], f["src_port"], f["dst"], f["dst_port"], f["rx_packets"], f["rx_bytes"])
        if f["tx_packets"]: print(17, f["src"], f["src_port"], f["dst"], f["dst_port"], f["tx_packets"], f["tx_bytes"])
' | sort >"$LOG/status.udp"
exp_assert_sums "/status flows" "$EXPECTED" "$LOG/status.udp"

# b. Outage of several push intervals while traffic flows.
inb ping -4 -q -c 100 -i 0.1 -W 2 $A4 >/dev/null &
bg=$!
sleep 2
prom_stop
out_from=$(now_ms)
sleep 6
out_to=$(now_ms)
prom_start
wait "$bg"
PING4=$((PING4 + 100))
exp_wait 60 drained || fail "spool not drained 60 s after the outage"
reading=$(quiet_reading)
krx=$((${reading%% *} - OFF))
arx=$(cut -d'|' -f2 <<<"$reading" | cut -d' ' -f1)
[ "$krx" = "$arx" ] && ok "after the outage agent rx_packets $arx = kernel $krx" || fail "after the outage agent rx_packets $arx, kernel $krx"
exp_wait 15 prom_equals "$krx" || true
prom_series "$RX" >"$LOG/outage.series"
read -r n longest < <(gaps "$LOG/outage.series" $((out_from - 3000)) $((out_to + 3000)))
want=$(((out_to - out_from + 6000) / 1000 - 1))
if [ "$n" -ge "$want" ] && [ "$longest" -le 1500 ]; then
	ok "outage of $(((out_to - out_from) / 1000)) s: $n samples around it, none more than ${longest} ms apart (collect interval 1 s)"
else
	fail "outage: $n samples (want >= $want), longest step $longest ms"
fi
read -r prom_v _ < <(prx)
[ "$prom_v" = "$krx" ] && ok "after the outage Prometheus = kernel rx_packets $krx" ||
	fail "after the outage Prometheus $prom_v, kernel $krx"
retried=$(metric 'netprobe_remote_write_samples_retried_total{receiver="0"}')
dropped=$(metric 'netprobe_remote_write_samples_dropped_total{receiver="0",reason="spool_full"}')
[ "${retried:-0}" -gt 0 ] && [ "$dropped" = 0 ] && ok "outage: $retried samples retried, none dropped" ||
	fail "outage: retried $retried, dropped $dropped"

# c. Stop the agent during an outage; the spool directory keeps the rest.
prom_stop
c_from=$(now_ms)
pings 10
sleep 3
stop_agent
c_to=$(now_ms)
kept=$(sed -n 's/.*remote_write 0: \([0-9]*\) unsent samples kept in the spool directory.*/\1/p' "$LOG/agent.log" | tail -1)
segs=$(find "$SPOOL" -name 'seg-*.rws' | wc -l)
[ "${kept:-0}" -gt 0 ] && [ "$segs" -gt 0 ] && ok "stopped during the outage: $kept samples kept in $segs spool file(s)" ||
	fail "no samples kept at stop (kept '$kept', $segs files)"

# IPFIX run 1: every flow was reported by the stop (forcedEnd at the latest).
sleep 0.5
nfcapd_stop
ping_lines >>"$EXPECTED"
known "$EXPECTED" >"$LOG/run1.exp"
nfdump_sums >"$LOG/nfdump.all"
known "$LOG/nfdump.all" >"$LOG/nfdump.sums"
exp_assert_sums "IPFIX -> nfdump" "$LOG/run1.exp" "$LOG/nfdump.sums"
grep -q "Sequence Errors: 0, Bad Packets: 0" "$LOG/nfcapd.log" && ok "nfcapd: no sequence errors, no bad packets" ||
	fail "nfcapd: $(grep -E 'Sequence Errors|Bad' "$LOG/nfcapd.log" | tail -1)"

echo "== run 2: the same spool directory, IPFIX -> nfacctd"
: >"$EXPECTED"
PING4=0 PING6=0
run_agent "$NFACCTD_PORT" || { fail "agent did not restart"; exit 1; }
loaded=$(sed -n 's/.*remote_write 0: \([0-9]*\) unsent samples from .*/\1/p' "$LOG/agent.log" | tail -1)
[ "${loaded:-0}" = "$kept" ] && ok "restart: $loaded spooled samples loaded" || fail "restart loaded '$loaded', $kept were kept"
prom_start
udp "$NSB" $B4 40011 $A4 5011 150 200
udp "$NSA" $A6 40012 $B6 5012 70 1000
pings 15
exp_wait 60 drained || fail "spool not drained 60 s after Prometheus came back"
sleep 2
prom_series "$RX" >"$LOG/restart.series"
read -r n longest < <(gaps "$LOG/restart.series" $((c_from - 2000)) $((c_to - 1500)))
want=$(((c_to - c_from) / 1000 - 2))
if [ "$n" -ge "$want" ] && [ "$longest" -le 1500 ]; then
	ok "restart during an outage: the stopped run's $n collections in the outage all in Prometheus, steps <= ${longest} ms"
else
	fail "restart: $n samples of the stopped run's outage (want >= $want), longest step $longest ms"
fi
sent=$(metric 'netprobe_remote_write_samples_sent_total{receiver="0"}')
[ "${sent:-0}" -ge "$kept" ] && ok "run 2 sent $sent samples (>= the $kept spooled)" || fail "run 2 sent $sent, spooled $kept"
[ "$(find "$SPOOL" -name 'seg-*.rws' | wc -l)" = 0 ] && ok "spool directory empty once everything is sent" ||
	fail "spool files left: $(find "$SPOOL" -name 'seg-*.rws')"
stop_agent
sleep 2.5 # two print refreshes
nfacctd_stop
ping_lines >>"$EXPECTED"
known "$EXPECTED" >"$LOG/run2.exp"
nfacctd_sums >"$LOG/nfacctd.all"
known "$LOG/nfacctd.all" >"$LOG/nfacctd.sums"
exp_assert_sums "IPFIX -> nfacctd" "$LOG/run2.exp" "$LOG/nfacctd.sums"

echo
echo "$TEST: $PASSED passed, $FAILED failed in $(($(date +%s) - start)) s"
[ "$FAILED" -eq 0 ] || { echo "logs: $LOG" >&2; }
[ "$FAILED" -eq 0 ]
