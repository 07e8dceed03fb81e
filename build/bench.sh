#!/usr/bin/env bash
# NetProbe against the tools users would pick instead, in one run, on the
# same namespaces and traffic: per-packet probe cost, throughput overhead,
# CPU and memory at a fixed packet rate, scrape cost, memory under a
# random-source flood, binary sizes. Prints Markdown tables and exits 0;
# nothing is asserted (a failure to run at all exits 1).
#
# Usage: build/bench.sh [--quick] [--build-static] [--only SECTION[,...]]  (root)
#   sections: probes live throughput rate scrape flood detect sizes
#   --quick   every section with tiny durations and one round (~1 min):
#             a smoke run that keeps the bench working; figures are rough
#   --build-static  also build the static musl agent (build/cross.sh) and
#             measure it beside the host build (otherwise only if present
#             and not older than the sources)
# Needs build/deps.sh and build/bench-deps.sh (peers, wrk). A missing peer
# is reported "not installed" and the rest is measured.
# Environment: CARGO_TARGET_DIR (default target/); NO_BUILD=1 uses the
# binaries already there.
#
# Method (docs/benchmarks.md, "Benchmarks against alternatives"):
# - Everything machine-speed dependent is printed as a ratio to a baseline
#   measured in the same run: configurations alternate in rounds
#   (A B C A B C ...), each round has its own baseline, and the ratio shown
#   is the median of the per-round ratios. Absolute numbers stand beside.
# - Baselines in the same run: `none` (nothing attached), empty programs
#   (probes/bench_empty.bpf.c) and a naive flow-accounting program
#   (probes/bench_naive.bpf.c: one LRU hash, no admission, the clock read
#   per packet, XDP and TC both counting), attached by `netprobe-bench attach`.
# - Traffic: two network namespaces joined by a veth pair, 198.18.0.1 (A,
#   sender) and 198.18.0.2 (B, watched); every monitor runs in B on B's
#   veth, bound to B's loopback. 64-byte frames come from `netprobe-bench
#   gen` (AF_PACKET, rate-limited, bounded in count and time) to UDP port 9
#   of B, where `netprobe-bench sink` holds a socket that never reads: the
#   kernel drops them at the socket, no ICMP answers. TCP comes from iperf3.
# - Every process the bench starts is stopped by its PID; on any exit the
#   namespaces (and whatever still runs in them) go away.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

QUICK=0
BUILD_STATIC=0
ONLY=all
usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--build-static) BUILD_STATIC=1 ;;
	--only)
		[ $# -ge 2 ] || { echo "bench: --only needs a section list" >&2; exit 2; }
		ONLY=$2
		shift
		;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
	esac
	shift
done
SECTIONS="probes live throughput rate scrape flood detect sizes"
for s in ${ONLY//,/ }; do
	[ "$s" = all ] || [[ " $SECTIONS " == *" $s "* ]] || { echo "bench: unknown section '$s' ($SECTIONS)" >&2; exit 2; }
done
want() { [ "$ONLY" = all ] || [[ ",$ONLY," == *",$1,"* ]]; }

[ "$(id -u)" -eq 0 ] || { echo "bench: run as root: it attaches BPF programs and creates network namespaces" >&2; exit 1; }
for t in ip iperf3 curl python3 awk pgrep; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing (run build/deps.sh and build/bench-deps.sh)" >&2; exit 1; }
done

# ---------------------------------------------------------------- sizes
# Durations and rounds. Full run: about 10 minutes on 2 cores.
if [ "$QUICK" -eq 1 ]; then
	PROBE_ARGS=(--repeat 50000 --packets 5000 --trials 1 --rounds 1)
	ROUNDS=1 LIVE_SECS=0.3 LIVE_WARM=0 TPUT_SECS=1 PPS_SECS=0.5 RATE_SECS=0.5 WRK_SECS=1 SCRAPES=10 SCRAPE_ROUNDS=1 FLOOD_SECS=0.5 SETTLE=0.2 FLOOD_SETTLE=0.5
else
	PROBE_ARGS=(--packets 100000 --trials 2 --rounds 5)
	ROUNDS=3 LIVE_SECS=2 LIVE_WARM=80000 TPUT_SECS=2 PPS_SECS=1.5 RATE_SECS=4 WRK_SECS=10 SCRAPES=60 SCRAPE_ROUNDS=2 FLOOD_SECS=5 SETTLE=0.5 FLOOD_SETTLE=1.5
fi
LIVE_RATE=100000  # pps in the live probe-cost section
FIXED_RATE=120000 # pps in the fixed-rate section
FLOWS=1000        # flows (source ports) of the fixed-rate traffic
FLOOD_RATE=100000 # pps of the random-source flood

# ---------------------------------------------------------------- build
TARGET_DIR=${CARGO_TARGET_DIR:-target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
AGENT=$TARGET_DIR/release/netprobe-agent
BENCH=$TARGET_DIR/release/netprobe-bench
if [ -z "${NO_BUILD:-}" ]; then
	echo "bench: building netprobe-agent and netprobe-bench (release)" >&2
	cargo build --locked --release --features testkit --bin netprobe-agent --bin netprobe-bench >&2
fi
for b in "$AGENT" "$BENCH"; do
	[ -x "$b" ] || { echo "bench: $b not found (cargo build --release)" >&2; exit 1; }
done
# The appliance build (static, musl) too, where build/cross.sh made one for
# this host's architecture that is not older than the sources.
if [ "$BUILD_STATIC" -eq 1 ]; then
	echo "bench: building the static agent (build/cross.sh $(uname -m))" >&2
	CARGO_TARGET_DIR=$TARGET_DIR bash build/cross.sh "$(uname -m)" >&2
fi
older_than_sources() { # older_than_sources BINARY: a source or probe object is newer
	[ -n "$(find agent Cargo.toml Cargo.lock probes -newer "$1" -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.lock' -o -name '*.bpf.o' \) -print -quit)" ]
}
AGENT_STATIC='' STATIC_NOTE="no static build for $(uname -m) (build/cross.sh, or --build-static)"
for d in "$TARGET_DIR" "$ROOT/target"; do
	f=$d/$(uname -m)-unknown-linux-musl/release/netprobe-agent
	[ -x "$f" ] || continue
	if older_than_sources "$f"; then
		STATIC_NOTE="$f is older than the sources, not measured (build/cross.sh, or --build-static)"
	else
		AGENT_STATIC=$f STATIC_NOTE="static build measured too (netprobe-static): $f"
	fi
	break
done

# ---------------------------------------------------------------- namespaces, processes, cleanup
ID=$$
NSA=npbench-a-$ID NSB=npbench-b-$ID
IFA=nba$ID IFB=nbb$ID
MACA=02:00:c6:12:00:01 MACB=02:00:c6:12:00:02
AGENT_PORT=18091 NE_PORT=19100 FNM_PORT=19209 NETFLOW_PORT=12055
WORK=$(mktemp -d /tmp/netprobe-bench.XXXXXX)
BG=()          # PIDs this script started and has not stopped yet
STATS_PID=     # the BPF_ENABLE_STATS holder, while a section needs it
SECONDS_START=$(date +%s)

alive() { # alive PID: running and not a zombie
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	[ "${s%% *}" != Z ]
}

stop_pid() { # stop_pid PID: SIGTERM, up to 5 s, then SIGKILL; reaped
	local p=$1 i
	if alive "$p"; then
		kill -TERM "$p" 2>/dev/null || true
		for i in $(seq 50); do alive "$p" || break; sleep 0.1; done
		alive "$p" && kill -KILL "$p" 2>/dev/null || true
	fi
	wait "$p" 2>/dev/null || true
	local keep=() q
	for q in "${BG[@]}"; do [ "$q" = "$p" ] || keep+=("$q"); done
	BG=("${keep[@]}")
}

cleanup() {
	local p
	set +e
	for p in "${BG[@]}"; do
		alive "$p" && kill -TERM "$p" 2>/dev/null
	done
	sleep 0.3
	for p in "${BG[@]}"; do
		alive "$p" && kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	# Anything a peer forked that is still in the namespaces, by PID.
	for ns in "$NSA" "$NSB"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
	done
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ina() { ip netns exec "$NSA" "$@"; }
inb() { ip netns exec "$NSB" "$@"; }

bg_start() { # bg_start LOG CMD...: start CMD in the background; PID in $LAST
	local log=$1
	shift
	"$@" >>"$log" 2>&1 &
	LAST=$!
	BG+=("$LAST")
}

setup_net() {
	ip netns add "$NSA"
	ip netns add "$NSB"
	ip link add "$IFA" netns "$NSA" address "$MACA" type veth peer name "$IFB" netns "$NSB" address "$MACB"
	for ns in "$NSA" "$NSB"; do
		# IPv4 only (no router solicitations or MLD in the counts); loose
		# source checks, as the random-source flood comes from 198.18.0.0/15.
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 \
			net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
		ip -n "$ns" link set lo up
	done
	ip -n "$NSA" addr add 198.18.0.1/24 dev "$IFA"
	ip -n "$NSB" addr add 198.18.0.2/24 dev "$IFB"
	ip -n "$NSA" link set "$IFA" up
	ip -n "$NSB" link set "$IFB" up
	# Static neighbours: no ARP during the measurements.
	ip -n "$NSA" neigh replace 198.18.0.2 lladdr "$MACB" dev "$IFA" nud permanent
	ip -n "$NSB" neigh replace 198.18.0.1 lladdr "$MACA" dev "$IFB" nud permanent
	bg_start "$WORK/sink.log" ip netns exec "$NSB" "$BENCH" sink --bind 198.18.0.2:9 --seconds 3600
	local i
	for i in $(seq 50); do grep -q '^sink on' "$WORK/sink.log" 2>/dev/null && break; sleep 0.1; done
	grep -q '^sink on' "$WORK/sink.log" || { cat "$WORK/sink.log" >&2; echo "bench: the UDP sink did not start" >&2; exit 1; }
}

# ---------------------------------------------------------------- numbers and tables
median() { # median NUMBERS...
	printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}
calc() { # calc EXPR [FORMAT]: awk arithmetic; n/a stays n/a
	case $1 in *n/a* | *nan*) echo n/a; return ;; esac
	awk "BEGIN { x = $1; printf \"${2:-%.2f}\", x }"
}
ratio() { # ratio A B -> A/B with 2 decimals, "n/a" when either is missing
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b }'
}
pct_change() { # pct_change RATIO -> "+12%" / "-17%"
	awk -v r="$1" 'BEGIN { if (r == "n/a" || r == "") print "n/a"; else printf "%+.0f%%", (r - 1) * 100 }'
}

# A table is a TSV file: header line, then rows. Printed as aligned Markdown.
table() { # table FILE
	awk -F'\t' '
		{ for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } if (NF > n) n = NF; rows = NR }
		END {
			for (r = 1; r <= rows; r++) {
				line = "|"
				for (i = 1; i <= n; i++) line = line sprintf(" %-" w[i] "s |", c[r, i])
				print line
				if (r == 1) { line = "|"; for (i = 1; i <= n; i++) { d = ""; for (k = 0; k < w[i] + 2; k++) d = d "-"; line = line d "|" } print line }
			}
		}' "$1"
}
row() { # row FILE FIELDS...: append one TSV row
	local f=$1
	shift
	local IFS=$'\t'
	echo "$*" >>"$f"
}
section() { printf '\n## %s\n\n' "$*"; }
note() { printf '%s\n' "$*"; }

# ---------------------------------------------------------------- probes of the system
host_cpu() { # "WALL_SECONDS IDLE_TICKS" for the whole host
	# Busy time is derived from idle time: /proc/stat's user and system
	# columns are tick-sampled, and with NO_HZ a sender that runs in short
	# bursts between ticks is almost never sampled (0.003 cores measured for
	# one using 0.3); idle time is measured exactly on NO_HZ kernels.
	echo "$(date +%s.%N) $(awk '/^cpu / { print $5 + $6; exit }' /proc/stat)"
}
busy_cores() { # busy_cores "W0 I0" "W1 I1" -> cores busy in between
	awk -v a="$1" -v b="$2" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		split(a, x, " "); split(b, y, " "); w = y[1] - x[1]
		if (w <= 0) print "n/a"; else printf "%.3f", n - (y[2] - x[2]) / hz / w }'
}
proc_tree() { # proc_tree PID: the PID and its children
	echo "$1"
	pgrep -P "$1" 2>/dev/null || true
}
cpu_ns() { # cpu_ns PIDS...: ns on CPU of every thread of these processes
	local p
	for p in "$@"; do cat /proc/"$p"/task/*/schedstat 2>/dev/null || true; done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
mem_kb() { # mem_kb FIELD PIDS...: VmRSS or VmHWM summed over processes
	local f=$1 p
	shift
	for p in "$@"; do grep "^$f:" /proc/"$p"/status 2>/dev/null || true; done | awk '{ s += $2 } END { printf "%.0f\n", s }'
}
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
rx_packets() { inb cat "/sys/class/net/$IFB/statistics/rx_packets"; }

gen() { # gen ARGS...: netprobe-bench gen from A to B's MAC; prints "SENT SECONDS CPU_NS"
	local out
	out=$(ina "$BENCH" gen --interface "$IFA" --dst-mac "$MACB" "$@")
	awk '/^sent/ { print $2, $5, $NF }' <<<"$out"
}
ksoftirqd_pids() { pgrep '^ksoftirqd/' || true; }

# ---------------------------------------------------------------- monitors
MON=none       # what runs now
MON_PID=       # its main PID
MON_NOTE=      # e.g. the XDP mode the agent picked

scrape() { inb curl -fsS --max-time 5 "http://127.0.0.1:$AGENT_PORT$1"; }
healthy() { scrape /healthz >/dev/null 2>&1; }
serving() { inb curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null; } # serving URL: answers in B

# ready TRIES DELAY CMD...: retries CMD every DELAY seconds, TRIES times or
# until MON_PID exits, then once more; the status is CMD's.
ready() {
	local n=$1 delay=$2 i
	shift 2
	for i in $(seq "$n"); do
		"$@" && return 0
		alive "$MON_PID" || break
		sleep "$delay"
	done
	"$@"
}

agent_start() { # agent_start ARGS...: netprobe-agent on B's veth, healthy
	bg_start "$WORK/agent.log" ip netns exec "$NSB" "${AGENT_BIN:-$AGENT}" --interface-filter "$IFB" \
		--listen-address 127.0.0.1 --metrics-port "$AGENT_PORT" --pin-path '' --collect-interval 1s "$@"
	MON_PID=$LAST
	ready 100 0.1 healthy || { tail -20 "$WORK/agent.log" >&2; echo "bench: netprobe-agent did not become healthy" >&2; exit 1; }
	scrape /status >"$WORK/status.json"
	MON_NOTE=$(python3 - "$WORK/status.json" "$IFB" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
(i,) = [x for x in s["interfaces"] if x["name"] == sys.argv[2]]
print(" ".join(f'{h["hook"]}={h["mode"]}' for h in i["hooks"]))
EOF
)
}

agent_prog_ids() {
	python3 - "$WORK/status.json" "$IFB" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
(i,) = [x for x in s["interfaces"] if x["name"] == sys.argv[2]]
print(" ".join(f'{h["hook"]}={h["program_id"]}' for h in i["hooks"]))
EOF
}

metric() { # metric NAME [FILE]: sum of NAME's samples in the last scrape
	awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { printf "%.0f\n", s }' "${2:-$WORK/metrics}"
}

attach_start() { # attach_start OBJECT MODE: empty/naive programs on B's veth
	: >"$WORK/attach.log"
	bg_start "$WORK/attach.log" ip netns exec "$NSB" "$BENCH" attach --object "$1" --interface "$IFB" --xdp-mode "$2" --seconds 3600
	MON_PID=$LAST
	ready 100 0.05 grep -q '^attached' "$WORK/attach.log" || { cat "$WORK/attach.log" >&2; echo "bench: attaching $1 ($2) failed" >&2; exit 1; }
	MON_NOTE="xdp=$2, tc"
}

have() { command -v "$1" >/dev/null; }
installed() { # installed MONITOR: its binary is there
	case $1 in
	softflowd) have softflowd && have softflowctl ;;
	pmacctd) have pmacctd && have pmacct ;;
	fastnetmon) have fastnetmon ;;
	node_exporter) have prometheus-node-exporter ;;
	*) true ;;
	esac
}

# Peers' configurations: minimal, on B's veth, anything they serve or
# export bound to B's loopback (which no traffic leaves).
#
# softflowd: NetFlow v9 export to a closed UDP port on loopback, default
#   flow table (8192 flows), foreground (-d), control socket for statistics.
# pmacctd: libpcap on the veth, the memory plugin (in-memory table queried
#   with `pmacct -s` over a local pipe), 5-tuple aggregation; nothing else.
# fastnetmon: AF_PACKET capture (its fanout, one worker per CPU), the
#   monitored network is B's /24, bans and the gRPC API off, usage report
#   off, Prometheus endpoint on loopback (read for its packet count).
# node_exporter: Debian's defaults (every default collector), loopback.
peer_start() { # peer_start NAME: start and wait until it is capturing
	local d=$WORK/$1
	rm -rf "$d"
	mkdir -p "$d"
	case $1 in
	softflowd)
		bg_start "$d/log" ip netns exec "$NSB" softflowd -d -i "$IFB" -v 9 -n "127.0.0.1:$NETFLOW_PORT" \
			-p "$d/pid" -c "$d/ctl"
		MON_PID=$LAST
		ready 100 0.05 test -S "$d/ctl"
		;;
	pmacctd)
		cat >"$d/pmacctd.conf" <<EOF
daemonize: false
pcap_interface: $IFB
plugins: memory
aggregate: src_host, dst_host, src_port, dst_port, proto
imt_path: $d/pipe
pidfile: $d/pid
EOF
		bg_start "$d/log" ip netns exec "$NSB" pmacctd -f "$d/pmacctd.conf"
		MON_PID=$LAST
		# imt_path is a Unix socket the client queries.
		ready 100 0.05 test -S "$d/pipe"
		;;
	fastnetmon)
		echo 198.18.0.0/24 >"$d/networks_list"
		: >"$d/networks_whitelist"
		cat >"$d/fastnetmon.conf" <<EOF
logging_local_syslog_logging = off
logging_remote_syslog_logging = off
disable_usage_report = on
enable_ban = off
enable_ban_ipv6 = off
enable_api = off
process_incoming_traffic = on
process_outgoing_traffic = on
networks_list_path = $d/networks_list
white_list_path = $d/networks_whitelist
monitor_local_ip_addresses = off
mirror_afpacket = on
interfaces = $IFB
prometheus = on
prometheus_host = 127.0.0.1
prometheus_port = $FNM_PORT
pid_path = $d/pid
cli_stats_file_path = $d/fastnetmon.dat
cli_stats_ipv6_file_path = $d/fastnetmon_ipv6.dat
EOF
		bg_start "$d/log" ip netns exec "$NSB" fastnetmon --configuration_file "$d/fastnetmon.conf" \
			--disable_pid_logic --log_to_console
		MON_PID=$LAST
		ready 150 0.1 serving "http://127.0.0.1:$FNM_PORT/metrics"
		;;
	node_exporter)
		bg_start "$d/log" ip netns exec "$NSB" prometheus-node-exporter --web.listen-address="127.0.0.1:$NE_PORT"
		MON_PID=$LAST
		ready 100 0.1 serving "http://127.0.0.1:$NE_PORT/metrics"
		;;
	esac || { tail -20 "$d/log" >&2; echo "bench: $1 did not start" >&2; exit 1; }
	MON_NOTE=
}

mon_start() { # mon_start NAME: none, netprobe, naive, or a peer
	MON=$1 MON_PID='' MON_NOTE=''
	case $1 in
	none) ;;
	netprobe) agent_start ;;
	netprobe-static) AGENT_BIN=$AGENT_STATIC agent_start ;;
	netprobe-off) agent_start --xdp-mode off ;;
	naive) attach_start naive generic ;;
	*) peer_start "$1" ;;
	esac
	# Let startup work (object loads, table allocation) settle.
	[ "$1" = none ] || sleep "$SETTLE"
}

mon_pids() { [ -n "$MON_PID" ] && proc_tree "$MON_PID" || true; }

mon_stop() {
	if [ -n "$MON_PID" ]; then
		local kids
		kids=$(pgrep -P "$MON_PID" 2>/dev/null || true)
		stop_pid "$MON_PID"
		# pmacctd's plugin exits with its core process; make sure, by PID.
		for k in $kids; do alive "$k" && kill -KILL "$k" 2>/dev/null || true; done
	fi
	MON=none MON_PID=
}

mon_count() { # packets the monitor reports now (since it started), or "-"
	local d=$WORK/$MON
	case $MON in
	netprobe | netprobe-static | netprobe-off)
		scrape /metrics >"$WORK/metrics"
		metric netprobe_interface_rx_packets_total
		;;
	softflowd) inb softflowctl -c "$d/ctl" statistics | awk -F': ' '/^Packets processed/ { print $2 }' ;;
	pmacctd) inb pmacct -p "$d/pipe" -s 2>/dev/null | awk 'NF >= 7 && $(NF - 1) ~ /^[0-9]+$/ { s += $(NF - 1) } END { printf "%.0f\n", s }' ;;
	fastnetmon) inb curl -fsS --max-time 5 "http://127.0.0.1:$FNM_PORT/metrics" | awk '$1 == "fastnetmon_total_simple_packets_processed" { print $2 }' ;;
	*) echo - ;;
	esac
}

mon_seen() { # mon_seen SENT: packets the monitor saw, once its counters caught up
	local n i
	case $MON in
	pmacctd) sleep 1.2 ;; # the memory plugin takes the core's buffers in batches
	esac
	# The agent publishes every collection (1 s), fastnetmon every second.
	for i in $(seq 25); do
		n=$(mon_count)
		[ "$n" = - ] || [ "${n:-0}" -ge "$1" ] || [ "$MON" = pmacctd ] || [ "$MON" = softflowd ] && break
		sleep 0.1
	done
	echo "$n"
}

mon_flows() { # flows the monitor tracks now, or "-"
	local d=$WORK/$MON
	case $MON in
	netprobe | netprobe-static | netprobe-off) scrape /metrics >"$WORK/metrics" && metric netprobe_flow_table_entries ;;
	softflowd) inb softflowctl -c "$d/ctl" statistics | awk -F': ' '/^Number of active flows/ { print $2 }' ;;
	pmacctd) inb pmacct -p "$d/pipe" -s 2>/dev/null | awk '/^For a total of/ { print $5 }' ;;
	fastnetmon) echo "- (per host)" ;;
	*) echo - ;;
	esac
}

stats_on() {
	: >"$WORK/stats.log"
	bg_start "$WORK/stats.log" "$BENCH" enable-stats --seconds 3600
	STATS_PID=$LAST
	local i
	for i in $(seq 50); do grep -q enabled "$WORK/stats.log" && break; sleep 0.05; done
	grep -q enabled "$WORK/stats.log" || { cat "$WORK/stats.log" >&2; echo "bench: BPF_ENABLE_STATS failed" >&2; exit 1; }
}
stats_off() { [ -z "$STATS_PID" ] || stop_pid "$STATS_PID"; STATS_PID=; }

prog_stats() { # prog_stats IDS...: "ID RUN_CNT RUN_TIME_NS" lines, then "maps N BYTES"
	"$BENCH" prog-stats "$@" | awk '$1 == "prog" { print $2, $4, $5 } $1 == "maps" { print }'
}
ns_per_run() { # ns_per_run ID BEFORE AFTER: run time per run between two prog_stats
	awk -v id="$1" -v b="$2" -v a="$3" 'BEGIN {
		n = split(b, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); if (f[1] == id) { c0 = f[2]; t0 = f[3] } }
		n = split(a, l, "\n"); for (i = 1; i <= n; i++) { split(l[i], f, " "); if (f[1] == id) { c1 = f[2]; t1 = f[3] } }
		if (c1 > c0) printf "%.1f", (t1 - t0) / (c1 - c0); else print "n/a" }'
}

# ---------------------------------------------------------------- sections
versions() {
	v() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }
	section "Setup"
	note "- $(date -u +%Y-%m-%dT%H:%MZ), kernel $(uname -r), $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	note "- netprobe $(git describe --always --dirty 2>/dev/null || echo '?'); softflowd $(v softflowd), pmacct $(v pmacct), fastnetmon $(v fastnetmon), node_exporter $(v prometheus-node-exporter), iperf3 $(v iperf3), wrk $(v wrk)"
	note "- $STATIC_NOTE"
	note "- $([ "$QUICK" -eq 1 ] && echo "QUICK run (smoke test: one round, tiny durations; figures are rough)" || echo "full run: $ROUNDS rounds per configuration, alternating")"
	note "- host load when starting: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the host adds noise; ratios are within one round)"
}

sec_probes() {
	section "Probe cost in BPF_PROG_TEST_RUN (ns per packet)"
	note 'NetProbe probes beside an empty program and the naive flow-accounting program (probes/bench_naive.bpf.c), same packets, same run; `netprobe-bench` '"${PROBE_ARGS[*]:-(defaults)}"'.'
	note ''
	note '```'
	"$BENCH" "${PROBE_ARGS[@]}" | tee "$WORK/probes.txt"
	note '```'
	# For the summary: "case config program ns empty net naive vsnaive ..."
	P_XDP=$(awk '$1 == "1flow-repeat" && $2 == "default" && $3 == "xdp" { print $4, $5, $7 }' "$WORK/probes.txt")
	P_TCI=$(awk '$1 == "1flow-repeat" && $2 == "default" && $3 == "tc_ingress" { print $4, $5, $7 }' "$WORK/probes.txt")
	P_RND=$(awk '$1 == "flood-tcp" && $2 == "default" && $3 == "xdp" { print $4, $5, $7 }' "$WORK/probes.txt")
}

sec_live() {
	section "Probe cost under live traffic (ns per packet, kernel run_time_ns / run_cnt)"
	local cfgs=(empty naive netprobe) pats=("1 flow" "1k flows" "random sources") c p
	declare -A NS
	stats_on
	for _ in $(seq "$ROUNDS"); do
		for c in "${cfgs[@]}"; do
			case $c in
			empty) attach_start empty generic ;;
			naive) attach_start naive generic ;;
			netprobe) agent_start ;;
			esac
			local ids
			if [ "$c" = netprobe ]; then
				ids=$(agent_prog_ids | tr ' ' '\n' | awk -F= '$1 == "xdp" || $1 == "tc_ingress" { print $1, $2 }')
			else
				ids=$(sed -n 's/^attached //p' "$WORK/attach.log" | tr ' ' '\n' | awk -F= '{ print $1, $2 }')
			fi
			local idlist
			idlist=$(awk '{ print $2 }' <<<"$ids" | tr '\n' ' ')
			for p in "${pats[@]}"; do
				local before after args
				case $p in
				"1 flow") args=(--flows 1) ;;
				"1k flows") args=(--flows 1000) ;;
				*) args=(--random) ;;
				esac
				# A sustained flood: measure once the flow tables are full.
				if [ "$p" = "random sources" ] && [ "$LIVE_WARM" -gt 0 ]; then
					gen --rate "$LIVE_RATE" --seconds 5 --count "$LIVE_WARM" --random >/dev/null
				fi
				# shellcheck disable=SC2086
				before=$(prog_stats $idlist)
				gen --rate "$LIVE_RATE" --seconds "$LIVE_SECS" --count $((LIVE_RATE * 10)) "${args[@]}" >/dev/null
				# shellcheck disable=SC2086
				after=$(prog_stats $idlist)
				local hook id
				while read -r hook id; do
					local d
					d=$(ns_per_run "$id" "$before" "$after")
					# tc of empty/naive is one program for both directions: its
					# egress runs are the few ARP-free packets B sends (none here).
					[ "$hook" = tc ] && hook=tc_ingress
					NS[$c,$p,$hook]="${NS[$c,$p,$hook]:-} $d"
				done <<<"$ids"
			done
			mon_stop
		done
	done
	stats_off
	local t=$WORK/live.tsv
	printf 'traffic\thook\tempty ns\tnaive ns\tnetprobe ns\tnetprobe / empty\tnetprobe / naive\n' >"$t"
	for p in "${pats[@]}"; do
		for hook in xdp tc_ingress; do
			local e n np
			# shellcheck disable=SC2086
			e=$(median ${NS[empty,$p,$hook]})
			# shellcheck disable=SC2086
			n=$(median ${NS[naive,$p,$hook]})
			# shellcheck disable=SC2086
			np=$(median ${NS[netprobe,$p,$hook]})
			row "$t" "$p" "$hook" "$e" "$n" "$np" "$(ratio "$np" "$e")" "$(ratio "$np" "$n")"
			if [ "$hook" = xdp ]; then
				case $p in "random sources") L_RND="$np $n" ;; "1k flows") L_1K="$np $n" ;; esac
			fi
		done
	done
	note "Programs attached to B's veth (XDP generic, TC), $LIVE_RATE pps of 64-byte UDP for ${LIVE_SECS} s per cell (random sources: after $LIVE_WARM unmeasured random-source packets, so the flow tables are full as in a sustained flood), BPF_ENABLE_STATS held for the section; median of $ROUNDS round(s). NetProbe's TC ingress leaves flows to XDP when XDP is attached; the naive program accounts them in both. The stats add two clock reads per run to every program alike."
	note ''
	table "$t"
}

sec_throughput() {
	section "Throughput overhead on veth (B receives; all hooks on B's veth)"
	local cfgs=(empty-generic netprobe-auto naive-generic netprobe-off netprobe-native) c
	# --quick: the code paths (agent modes, attach), not every configuration.
	[ "$QUICK" -eq 0 ] || cfgs=(netprobe-auto naive-generic netprobe-native)
	declare -A V R MODE
	: >"$WORK/iperf.log"
	bg_start "$WORK/iperf.log" ip netns exec "$NSB" iperf3 -s -p 5201
	local iperf_pid=$LAST
	sleep 0.3
	# One measurement: "TCP_GBITS TCP_CPU_S_PER_GB PPS CPU_NS_PER_PACKET".
	measure() {
		local out tcp='' rx0 rx1 got sent secs gcpu try
		for try in 1 2; do
			out=$(timeout $((TPUT_SECS + 20)) ip netns exec "$NSA" iperf3 -c 198.18.0.2 -p 5201 -t "$TPUT_SECS" -J) || true
			# Gbit/s received, and CPU seconds (client + server) per GB received.
			tcp=$(python3 -c '
import json, sys
e = json.load(sys.stdin)["end"]
r, c = e["sum_received"], e["cpu_utilization_percent"]
print(r["bits_per_second"] / 1e9, (c["host_total"] + c["remote_total"]) / 100 * r["seconds"] / (r["bytes"] / 1e9))' <<<"$out" 2>/dev/null) && break
			[ "$try" -eq 2 ] || sleep 1 # "the server is busy": the last test is still closing
		done
		[ -n "$tcp" ] || { echo "bench: iperf3 gave no result: $(grep -o '"error":.*' <<<"$out" || echo "$out" | tail -3)" >&2; return 1; }
		rx0=$(rx_packets)
		got=$(gen --rate 0 --seconds "$PPS_SECS" --count 100000000 --flows "$FLOWS")
		rx1=$(rx_packets)
		read -r sent secs gcpu <<<"$got"
		echo "$tcp $(awk -v n=$((rx1 - rx0)) -v s="$secs" -v c="$gcpu" -v k="$sent" 'BEGIN { printf "%.0f %.0f", n / s, c / k }')"
	}
	# none c1 none c2 none ... : each configuration against the mean of the
	# baselines measured just before and just after it.
	local prev cur i
	for _ in $(seq "$ROUNDS"); do
		prev=$(measure)
		V[none]="${V[none]:-}|$prev"
		for c in "${cfgs[@]}"; do
			MON_NOTE=
			case $c in
			netprobe-auto) agent_start --xdp-mode auto ;;
			netprobe-native) agent_start --xdp-mode native ;;
			netprobe-off) agent_start --xdp-mode off ;;
			naive-generic) attach_start naive generic ;;
			empty-generic) attach_start empty generic ;;
			esac
			MODE[$c]=${MON_NOTE:-"-"}
			local m
			m=$(measure)
			mon_stop
			cur=$(measure)
			V[none]="${V[none]}|$cur"
			V[$c]="${V[$c]:-}|$m"
			R[$c]="${R[$c]:-}|$(awk -v m="$m" -v a="$prev" -v b="$cur" 'BEGIN {
				split(m, x, " "); split(a, y, " "); split(b, z, " ")
				for (i = 1; i <= 4; i++) printf "%.4f ", x[i] / ((y[i] + z[i]) / 2) }')"
			prev=$cur
		done
	done
	stop_pid "$iperf_pid"
	col() { # col "|a b c d|a b c d..." N -> the Nth field of each
		tr '|' '\n' <<<"$1" | awk -v n="$2" 'NF { print $n }'
	}
	span() { # span VALUES... -> "median (min..max)" of ratios, as changes
		local m lo hi
		m=$(median "$@")
		lo=$(printf '%s\n' "$@" | sort -g | head -1)
		hi=$(printf '%s\n' "$@" | sort -g | tail -1)
		if [ $# -gt 1 ]; then
			printf '%s (%s..%s)' "$(pct_change "$m")" "$(pct_change "$lo")" "$(pct_change "$hi")"
		else
			pct_change "$m"
		fi
	}
	local t=$WORK/tput.tsv
	printf 'configuration\thooks\tTCP Gbit/s\tTCP vs none\tTCP CPU per GB vs none\t64-byte kpps\trate vs none\tCPU ns per packet\tCPU per packet vs none\n' >"$t"
	# shellcheck disable=SC2046
	row "$t" none - "$(calc "$(median $(col "${V[none]}" 1))")" - - "$(calc "$(median $(col "${V[none]}" 3)) / 1000" %.0f)" - \
		"$(median $(col "${V[none]}" 4))" -
	for c in "${cfgs[@]}"; do
		# shellcheck disable=SC2046
		row "$t" "$c" "${MODE[$c]}" "$(calc "$(median $(col "${V[$c]}" 1))")" "$(span $(col "${R[$c]}" 1))" \
			"$(span $(col "${R[$c]}" 2))" "$(calc "$(median $(col "${V[$c]}" 3)) / 1000" %.0f)" "$(span $(col "${R[$c]}" 3))" \
			"$(median $(col "${V[$c]}" 4))" "$(span $(col "${R[$c]}" 4))"
		# shellcheck disable=SC2046
		T[$c]="$(median $(col "${R[$c]}" 1)) $(median $(col "${R[$c]}" 3)) $(median $(col "${R[$c]}" 2)) $(median $(col "${R[$c]}" 4))"
	done
	note "Each configuration is measured between two runs with nothing attached (none, A, none, B, none, ...) and compared with their mean; $ROUNDS round(s); changes are the median over rounds, (min..max) beside. TCP: iperf3 A -> B for ${TPUT_SECS} s: B's rate, and the CPU time of both iperf3 ends (iperf3's own figure; on veth it includes the receive path) per GB. 64-byte: UDP from \`netprobe-bench gen\` as fast as one sender goes for ${PPS_SECS} s, $FLOWS flows: packets B's veth received per second, and the sender's CPU time per packet (on veth the whole receive path, XDP and TC included, runs in the sender's context). The CPU columns are the steadier ones on a shared host; TCP on 2 busy cores moves a lot between runs."
	note "empty-generic: programs that only return, so generic XDP's own cost shows apart from the program's. The agent's \`--xdp-mode auto\` picked: ${MODE[netprobe-auto]}."
	note ''
	table "$t"
}

sec_rate() {
	section "At a fixed rate: $((FIXED_RATE / 1000)) kpps of 64-byte UDP, $FLOWS flows, ${RATE_SECS} s"
	local cfgs=(none netprobe) c
	[ -z "$AGENT_STATIC" ] || cfgs+=(netprobe-static)
	cfgs+=(netprobe-off naive softflowd pmacctd fastnetmon)
	declare -A PATH_CPU BUSY OWN RSS HWM SENT SEEN
	for _ in $(seq "$ROUNDS"); do
		for c in "${cfgs[@]}"; do
			installed "$c" || continue
			mon_start "$c"
			local pids k0 k1 h0 h1 c0 c1 got sent secs gcpu
			pids=$(mon_pids)
			# The naive program's process only holds the attachment: no user-space side.
			[ "$c" != naive ] || pids=
			h0=$(host_cpu)
			# shellcheck disable=SC2086
			c0=$(cpu_ns $pids)
			# shellcheck disable=SC2046
			k0=$(cpu_ns $(ksoftirqd_pids))
			got=$(gen --rate "$FIXED_RATE" --seconds "$RATE_SECS" --count "$(calc "$FIXED_RATE * $RATE_SECS" %.0f)" --flows "$FLOWS")
			# shellcheck disable=SC2046
			k1=$(cpu_ns $(ksoftirqd_pids))
			# shellcheck disable=SC2086
			c1=$(cpu_ns $pids)
			h1=$(host_cpu)
			read -r sent secs gcpu <<<"$got"
			# Packet path: the sender (the receive path runs in its context
			# on veth), softirq deferred to ksoftirqd, and the monitor.
			PATH_CPU[$c]="${PATH_CPU[$c]:-} $(awk -v d=$((gcpu + k1 - k0 + c1 - c0)) -v s="$secs" 'BEGIN { printf "%.1f", d / s / 1e7 }')"
			BUSY[$c]="${BUSY[$c]:-} $(busy_cores "$h0" "$h1")"
			if [ -n "$pids" ]; then
				OWN[$c]="${OWN[$c]:-} $(awk -v d=$((c1 - c0)) -v s="$secs" 'BEGIN { printf "%.1f", d / s / 1e7 }')"
				# shellcheck disable=SC2086
				RSS[$c]="${RSS[$c]:-} $(mem_kb VmRSS $pids)"
				# shellcheck disable=SC2086
				HWM[$c]="${HWM[$c]:-} $(mem_kb VmHWM $pids)"
			fi
			SENT[$c]="${SENT[$c]:-} $(awk -v n="$sent" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')"
			local seen
			seen=$(mon_seen "$sent")
			[ "$seen" = - ] || SEEN[$c]="${SEEN[$c]:-} $(awk -v a="$seen" -v b="$sent" 'BEGIN { v = a / b * 100; if (v > 100) v = 100; printf "%.0f", v }')"
			mon_stop
		done
	done
	local t=$WORK/rate.tsv
	printf 'monitor\tsent kpps\tseen\tpacket-path CPU %%\textra vs none\tvs none\tmonitor process CPU %%\tRSS MB\tpeak RSS MB\thost busy cores\thost extra\n' >"$t"
	local -a pn bn
	read -r -a pn <<<"${PATH_CPU[none]:-}"
	read -r -a bn <<<"${BUSY[none]:-}"
	for c in "${cfgs[@]}"; do
		if ! installed "$c"; then
			row "$t" "$c" "not installed (build/bench-deps.sh)"
			continue
		fi
		local -a pv bv
		read -r -a pv <<<"${PATH_CPU[$c]}"
		read -r -a bv <<<"${BUSY[$c]}"
		local rr=() ex=() hx=() i
		for i in "${!pv[@]}"; do
			rr+=("$(ratio "${pv[$i]}" "${pn[$i]}")")
			ex+=("$(awk -v a="${pv[$i]}" -v b="${pn[$i]}" 'BEGIN { printf "%.1f", a - b }')")
			hx+=("$(awk -v a="${bv[$i]}" -v b="${bn[$i]}" 'BEGIN { printf "%.2f", a - b }')")
		done
		local own=- rss=- hwm=- seen=- exm hxm
		# shellcheck disable=SC2086
		[ -z "${OWN[$c]:-}" ] || own=$(median ${OWN[$c]})
		# shellcheck disable=SC2086
		[ -z "${RSS[$c]:-}" ] || rss=$(mb "$(median ${RSS[$c]})")
		# shellcheck disable=SC2086
		[ -z "${HWM[$c]:-}" ] || hwm=$(mb "$(median ${HWM[$c]})")
		# shellcheck disable=SC2086
		[ -z "${SEEN[$c]:-}" ] || seen="$(median ${SEEN[$c]})%"
		exm=$(median "${ex[@]}")
		hxm=$(median "${hx[@]}")
		R_EXTRA[$c]=$(printf '%+.1f' "$exm")
		if [ "$c" = none ]; then
			exm=- hxm=-
		else
			exm=$(printf '%+.1f' "$exm")
			# The spread over rounds, to read the differences against.
			[ ${#ex[@]} -lt 2 ] || exm="$exm ($(printf '%s\n' "${ex[@]}" | sort -g | head -1)..$(printf '%s\n' "${ex[@]}" | sort -g | tail -1))"
			hxm=$(printf '%+.2f' "$hxm")
		fi
		# shellcheck disable=SC2086
		row "$t" "$c" "$(calc "$(median ${SENT[$c]}) / 1000" %.1f)" "$seen" "$(median "${pv[@]}")" "$exm" \
			"$(calc "$(median "${rr[@]}")")" "$own" "$rss" "$hwm" "$(median "${bv[@]}")" "$hxm"
		R_OWN[$c]=$own R_RSS[$c]=$rss R_SEEN[$c]=$seen
	done
	note "Each monitor alone on B's veth, started fresh, in rounds (${cfgs[*]}, again ...); median of $ROUNDS round(s), differences and ratios per round against \`none\`."
	note "- packet-path CPU: % of one core spent on the traffic: the sender (on veth the receiver's softirq work, XDP, TC, the stack and the capture taps, runs in the sender's context), ksoftirqd, and the monitor's own threads (schedstat). Other work on the host does not count here."
	note "- monitor process CPU: the monitor's threads alone. NetProbe's and the naive program's per-packet work is in the kernel: it is in the packet-path column, not here."
	note "- host busy: all $(nproc) CPUs over the window, from /proc/stat (CPUs minus idle time), as the issue asks: it includes whatever else the host runs, so read it beside the packet-path column."
	note "- seen: packets the monitor reports over packets sent; sent below the target rate means the sender was starved of CPU."
	note "- netprobe: the agent as users run it on veth (\`--xdp-mode auto\`: generic XDP and TC); netprobe-off: \`--xdp-mode off\`, TC ingress and egress only."
	[ -z "$AGENT_STATIC" ] || note "- netprobe-static: the static musl build from build/cross.sh ($AGENT_STATIC, $(date -r "$AGENT_STATIC" -u +%Y-%m-%dT%H:%MZ)), musl's allocator."
	note ''
	table "$t"
}

sec_scrape() {
	section "Scrape cost: /metrics of netprobe-agent and node_exporter"
	local url_np="http://127.0.0.1:$AGENT_PORT/metrics" url_ne="http://127.0.0.1:$NE_PORT/metrics"
	local exporters=(netprobe) e
	[ -z "$AGENT_STATIC" ] || exporters+=(netprobe-static)
	installed node_exporter && exporters+=(node_exporter)
	declare -A LAT RPS CPUR PID URL RSSE HWME
	local ne_pid='' agent_now=''
	if installed node_exporter; then
		peer_start node_exporter
		ne_pid=$MON_PID
		PID[node_exporter]=$ne_pid URL[node_exporter]=$url_ne
	fi
	MON_PID=''
	use() { # use EXPORTER: one agent at a time (they share B's veth and port)
		case $1 in
		netprobe | netprobe-static)
			if [ "$agent_now" != "$1" ]; then
				[ -z "${PID[netprobe]:-}${PID[netprobe-static]:-}" ] || stop_pid "${PID[$agent_now]}"
				PID[netprobe]='' PID[netprobe-static]=''
				if [ "$1" = netprobe ]; then agent_start; else AGENT_BIN=$AGENT_STATIC agent_start; fi
				PID[$1]=$MON_PID URL[$1]=$url_np agent_now=$1
				MON_PID=''
				# Some traffic first, so the agent has flows and rates to show.
				gen --rate 50000 --seconds 1 --count 50000 --flows "$FLOWS" >/dev/null
				sleep 1.2
			fi
			;;
		esac
	}
	for _ in 1 2; do
		for e in "${exporters[@]}"; do
			use "$e"
			# One curl, keep-alive, SCRAPES/2 sequential scrapes; time of each.
			local args=() i
			for i in $(seq $((SCRAPES / 2))); do args+=(-o /dev/null "${URL[$e]}"); done
			LAT[$e]="${LAT[$e]:-} $(inb curl -fsS --max-time 60 -w '%{time_total}\n' "${args[@]}" | tr '\n' ' ')"
		done
	done
	local have_wrk=1
	have wrk || have_wrk=0
	for _ in $(seq "$SCRAPE_ROUNDS"); do
		for e in "${exporters[@]}"; do
			use "$e"
			if [ "$have_wrk" -eq 1 ]; then
				local c0 c1 out n
				c0=$(cpu_ns "${PID[$e]}")
				out=$(inb timeout $((WRK_SECS + 20)) wrk -t1 -c4 -d"${WRK_SECS}s" "${URL[$e]}")
				c1=$(cpu_ns "${PID[$e]}")
				n=$(awk '/requests in/ { print $1 }' <<<"$out")
				RPS[$e]="${RPS[$e]:-} $(awk '/^Requests\/sec/ { print $2 }' <<<"$out")"
				CPUR[$e]="${CPUR[$e]:-} $(awk -v d=$((c1 - c0)) -v n="$n" 'BEGIN { if (n > 0) printf "%.0f", d / n / 1000; else print "n/a" }')"
			fi
			inb curl -fsS --max-time 10 "${URL[$e]}" >"$WORK/$e.prom"
			RSSE[$e]=$(mem_kb VmRSS "${PID[$e]}") HWME[$e]=$(mem_kb VmHWM "${PID[$e]}")
		done
	done
	local t=$WORK/scrape.tsv
	printf 'exporter\tscrape ms (median)\treq/s (wrk -t1 -c4)\treq/s vs node_exporter\tCPU us per scrape\tseries\tbytes\tpromtool lint lines\tRSS MB\tpeak RSS MB\n' >"$t"
	local -a rn=()
	[ -z "${RPS[node_exporter]:-}" ] || read -r -a rn <<<"${RPS[node_exporter]}"
	for e in "${exporters[@]}"; do
		local series bytes lint
		series=$(grep -vc '^#' "$WORK/$e.prom" || true)
		bytes=$(wc -c <"$WORK/$e.prom")
		if have promtool; then
			lint=$( (promtool check metrics <"$WORK/$e.prom" 2>&1 || true) | grep -c . || true)
		else
			lint="n/a (no promtool)"
		fi
		local rps=n/a rvs=n/a cpur=n/a
		if [ "$have_wrk" -eq 1 ]; then
			local -a rv
			read -r -a rv <<<"${RPS[$e]}"
			rps=$(calc "$(median "${rv[@]}")" %.0f)
			# shellcheck disable=SC2086
			cpur=$(calc "$(median ${CPUR[$e]})" %.0f)
			if [ ${#rn[@]} -gt 0 ]; then
				local q=() i
				for i in "${!rv[@]}"; do q+=("$(ratio "${rv[$i]}" "${rn[$i]}")"); done
				rvs=$(calc "$(median "${q[@]}")" %.0f)
			fi
		fi
		local lat
		# shellcheck disable=SC2086
		lat=$(calc "$(median ${LAT[$e]}) * 1000" %.2f)
		row "$t" "$e" "$lat" "$rps" "$rvs" "$cpur" "$series" "$bytes" "$lint" "$(mb "${RSSE[$e]}")" "$(mb "${HWME[$e]}")"
		S_LAT[$e]=$lat S_RPS[$e]=$rps S_RSS[$e]=$(mb "${RSSE[$e]}") S_RR[$e]=$rvs
	done
	[ -z "$agent_now" ] || stop_pid "${PID[$agent_now]}"
	[ -z "$ne_pid" ] || stop_pid "$ne_pid"
	[ "$have_wrk" -eq 1 ] || note "wrk is not installed (build/bench-deps.sh): no requests per second."
	installed node_exporter || note "node_exporter is not installed (build/bench-deps.sh)."
	note "All in B, on B's loopback; the agent collects every 1 s (--collect-interval 1s) and watches one veth (one agent build at a time); node_exporter runs Debian's default collectors. scrape ms: $SCRAPES sequential scrapes over one keep-alive connection (curl), alternating; req/s: wrk -t1 -c4 -d${WRK_SECS}s, alternating, median of $SCRAPE_ROUNDS round(s), ratio per round. CPU us per scrape: the exporter's CPU time during wrk over its requests. RSS after the last wrk run."
	note ''
	table "$t"
}

sec_flood() {
	section "Memory under a random-source flood (${FLOOD_SECS} s at $((FLOOD_RATE / 1000)) kpps, sources random in 198.18.0.0/15, random ports)"
	local mons=(netprobe) m
	[ -z "$AGENT_STATIC" ] || mons+=(netprobe-static)
	mons+=(softflowd pmacctd fastnetmon)
	local t=$WORK/flood.tsv
	printf 'monitor\tpackets\tRSS before MB\tRSS after MB\tpeak RSS MB\tBPF maps MB\tflows tracked\n' >"$t"
	for m in "${mons[@]}"; do
		if ! installed "$m"; then
			row "$t" "$m" "not installed (build/bench-deps.sh)"
			continue
		fi
		mon_start "$m"
		local pids r0 r1 h got maps=- flows
		pids=$(mon_pids)
		# shellcheck disable=SC2086
		r0=$(mem_kb VmRSS $pids)
		got=$(gen --rate "$FLOOD_RATE" --seconds "$FLOOD_SECS" --count "$(calc "$FLOOD_RATE * $FLOOD_SECS" %.0f)" --random)
		sleep "$FLOOD_SETTLE" # a collection, a plugin flush
		# shellcheck disable=SC2086
		r1=$(mem_kb VmRSS $pids)
		# shellcheck disable=SC2086
		h=$(mem_kb VmHWM $pids)
		flows=$(mon_flows)
		if [ "$m" = netprobe ] || [ "$m" = netprobe-static ]; then
			local ids
			ids=$(agent_prog_ids | tr ' ' '\n' | cut -d= -f2 | tr '\n' ' ')
			# shellcheck disable=SC2086
			maps=$(mb "$(prog_stats $ids | awk '$1 == "maps" { printf "%.0f", $3 / 1024 }')")
			scrape /metrics >"$WORK/metrics"
			flows="$flows of $(metric netprobe_flow_table_capacity) ($(metric netprobe_flows_created_total) admitted, $(metric netprobe_flow_untracked_packets_total) packets not admitted)"
		fi
		F_MEM[$m]="$(mb "$r1")"
		[ "$maps" = - ] || F_MEM[$m]="${F_MEM[$m]} + $maps maps"
		row "$t" "$m" "${got%% *}" "$(mb "$r0")" "$(mb "$r1")" "$(mb "$h")" "$maps" "$flows"
		mon_stop
	done
	note "Each monitor alone, started fresh. NetProbe's flow table is a fixed-size LRU (--max-flows 65536) with a per-CPU admission bucket (--flow-admit-rate 20000/s, burst 5000); its kernel maps are allocated at load (BPF maps: fdinfo memlock of every map its programs use). softflowd's table is capped (-m, default 8192); pmacctd's memory plugin and fastnetmon grow with what they are given."
	note ''
	table "$t"
}

sec_detect() {
	section "Detection latency per attack kind"
	note "build/e2e-security.sh's attack phase (its own namespaces; nmap and hping3 from Debian, each under timeout): from launching the tool to the agent's alert record (reported_at in /status). The flood tools' rate depends on the host's load."
	note ''
	local t=$WORK/detect.tsv
	printf 'attack\tkind\tlatency s\n' >"$t"
	if PHASES=attacks bash build/e2e-security.sh "$AGENT" >"$WORK/detect.log" 2>&1; then :; else
		note "(e2e-security reported failures: see below)"
	fi
	grep -P '^e2e-security: latency\t' "$WORK/detect.log" | cut -f2- >>"$t" || true
	table "$t"
	grep -F 'FAIL:' "$WORK/detect.log" | head -5 || true
}

sec_sizes() {
	section "Binary sizes"
	local t=$WORK/sizes.tsv
	printf 'binary\tbuild\tsize MB\tshared libraries\n' >"$t"
	sz() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.2f", b / 1048576 }'; }
	libs() { (ldd "$1" 2>/dev/null || true) | grep -c '=>' || true; }
	row "$t" "netprobe-agent" "host $(uname -m), glibc, release profile" "$(sz "$AGENT")" "$(libs "$AGENT")"
	local arch triple found
	for arch in x86_64 aarch64; do
		triple=$arch-unknown-linux-musl
		found=
		for d in "$TARGET_DIR" "$ROOT/target"; do
			if [ -x "$d/$triple/release/netprobe-agent" ]; then found=$d/$triple/release/netprobe-agent; break; fi
		done
		if [ -n "$found" ]; then
			local age=''
			! older_than_sources "$found" || age=", older than the sources"
			row "$t" "netprobe-agent" "$triple (static$age)" "$(sz "$found")" 0
		else
			row "$t" "netprobe-agent" "$triple" "not built (run build/cross.sh)" "-"
		fi
	done
	local p b
	for p in softflowd pmacctd fastnetmon prometheus-node-exporter; do
		b=$(command -v "$p" || true)
		if [ -n "$b" ]; then
			row "$t" "$p" "Debian package" "$(sz "$b")" "$(libs "$b")"
		else
			row "$t" "$p" "not installed" "-" "-"
		fi
	done
	note "The agent embeds its BPF objects; the peers' sizes leave out their shared libraries (counted beside)."
	note ''
	table "$t"
}

summary() {
	section "Summary: NetProbe against the targets"
	local t=$WORK/summary.tsv
	printf 'what\ttarget to beat (issue #5)\tthis run: alternative\tthis run: NetProbe\tNetProbe better?\n' >"$t"
	better() { awk -v a="$1" -v b="$2" -v lower="${3:-1}" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || a == "-" || b == "-") print "n/a"; else if ((lower && a + 0 < b + 0) || (!lower && a + 0 > b + 0)) print "yes"; else print "no" }'; }
	if [ -n "${P_XDP:-}" ]; then
		local a b c
		read -r a b c <<<"$P_XDP"
		row "$t" "test-run ns/pkt, 1 flow, XDP" "naive ~115 (empty ~33)" "naive $c (empty $b)" "$a" "$(better "$a" "$c")"
		read -r a b c <<<"$P_TCI"
		row "$t" "test-run ns/pkt, 1 flow, TC ingress" "naive ~127 (empty ~43)" "naive $c (empty $b)" "$a" "$(better "$a" "$c")"
		read -r a b c <<<"$P_RND"
		row "$t" "test-run ns/pkt, random 5-tuple TCP flood, XDP" "-" "naive $c" "$a" "$(better "$a" "$c")"
	fi
	if [ -n "${L_RND:-}" ]; then
		local a c
		read -r a c <<<"$L_RND"
		row "$t" "live ns/pkt, random sources, XDP" "naive ~1000" "naive $c" "$a" "$(better "$a" "$c")"
		read -r a c <<<"$L_1K"
		row "$t" "live ns/pkt, 1k flows, XDP" "-" "naive $c" "$a" "$(better "$a" "$c")"
	fi
	if [ -n "${T[netprobe-auto]:-}" ]; then
		local t1 p1 c1 n1 t2 p2 c2 n2
		read -r t1 p1 c1 n1 <<<"${T[netprobe-auto]}"
		read -r t2 p2 c2 n2 <<<"${T[naive-generic]}"
		row "$t" "iperf3 TCP on veth: throughput; CPU per GB" "naive -17% throughput" "naive $(pct_change "$t2"); $(pct_change "$c2")" "$(pct_change "$t1"); $(pct_change "$c1")" "throughput $(better "$t1" "$t2" 0), CPU $(better "$c1" "$c2")"
		row "$t" "64-byte packets on veth: rate; CPU per packet" "naive -24% rate" "naive $(pct_change "$p2"); $(pct_change "$n2")" "$(pct_change "$p1"); $(pct_change "$n1")" "rate $(better "$p1" "$p2" 0), CPU $(better "$n1" "$n2")"
		read -r t2 p2 c2 n2 <<<"${T[netprobe-native]}"
		row "$t" "--xdp-mode auto (generic) vs native on veth: TCP throughput" "-" "native $(pct_change "$t2")" "auto $(pct_change "$t1")" "$(better "$t1" "$t2" 0)"
		if [ -n "${T[netprobe-off]:-}" ]; then
			read -r t2 p2 c2 n2 <<<"${T[netprobe-off]}"
			row "$t" "--xdp-mode auto vs off (TC only) on veth: TCP; CPU per packet" "-" "off $(pct_change "$t2"); $(pct_change "$n2")" "auto $(pct_change "$t1"); $(pct_change "$n1")" "TCP $(better "$t1" "$t2" 0), CPU $(better "$n1" "$n2")"
		fi
		if [ -n "${T[empty-generic]:-}" ]; then
			read -r t2 p2 c2 n2 <<<"${T[empty-generic]}"
			row "$t" "CPU per 64-byte packet: generic XDP alone (empty program)" "-" "empty generic $(pct_change "$n2")" "netprobe auto $(pct_change "$n1")" "-"
		fi
	fi
	if [ -n "${R_EXTRA[netprobe]:-}" ]; then
		local m tg np
		np="auto ${R_EXTRA[netprobe]} (${R_OWN[netprobe]})"
		[ -z "${R_EXTRA[netprobe-off]:-}" ] || np="$np, off ${R_EXTRA[netprobe-off]}"
		np="$np; ${R_RSS[netprobe]} MB"
		[ -z "${R_RSS[netprobe-static]:-}" ] || np="$np (static build ${R_RSS[netprobe-static]} MB)"
		for m in softflowd pmacctd fastnetmon; do
			[ -n "${R_EXTRA[$m]:-}" ] || continue
			case $m in softflowd) tg="6% CPU, 5 MB" ;; pmacctd) tg="a full core, 42 MB" ;; fastnetmon) tg="548 MB" ;; esac
			row "$t" "$((FIXED_RATE / 1000)) kpps: packet-path CPU over none, points of a core (monitor process); RSS" "$m: $tg" \
				"$m: ${R_EXTRA[$m]} (${R_OWN[$m]}); ${R_RSS[$m]} MB; seen ${R_SEEN[$m]}" "$np" \
				"CPU: auto $(better "${R_EXTRA[netprobe]}" "${R_EXTRA[$m]}"), off $(better "${R_EXTRA[netprobe-off]:-}" "${R_EXTRA[$m]}"); RSS $(better "${R_RSS[netprobe]}" "${R_RSS[$m]}") (static $(better "${R_RSS[netprobe-static]:-}" "${R_RSS[$m]}"))"
		done
	fi
	if [ -n "${F_MEM[netprobe]:-}" ]; then
		local m others=()
		for m in softflowd pmacctd fastnetmon; do [ -z "${F_MEM[$m]:-}" ] || others+=("$m ${F_MEM[$m]}"); done
		row "$t" "RSS MB after the random-source flood" "-" "$(IFS=';'; echo "${others[*]:-n/a}" | sed 's/;/; /g')" "${F_MEM[netprobe]}" "see the flood table"
	fi
	if [ -n "${S_LAT[netprobe]:-}" ] && [ -n "${S_LAT[node_exporter]:-}" ]; then
		local e
		for e in netprobe netprobe-static; do
			[ -n "${S_LAT[$e]:-}" ] || continue
			row "$t" "scrape ($e): ms; req/s (wrk -t1 -c4); RSS MB" "node_exporter ~11 ms, ~100 req/s, 22 MB" \
				"node_exporter ${S_LAT[node_exporter]} ms, ${S_RPS[node_exporter]} req/s, ${S_RSS[node_exporter]} MB" \
				"${S_LAT[$e]} ms, ${S_RPS[$e]} req/s (x${S_RR[$e]}), ${S_RSS[$e]} MB" \
				"ms $(better "${S_LAT[$e]}" "${S_LAT[node_exporter]}"), req/s $(better "${S_RPS[$e]}" "${S_RPS[node_exporter]}" 0), RSS $(better "${S_RSS[$e]}" "${S_RSS[node_exporter]}")"
		done
	fi
	if [ "$(wc -l <"$t")" -gt 1 ]; then
		note "Ratios and differences are within this run; absolute figures depend on the host."
		note ''
		table "$t"
	else
		note "(no section of the summary ran)"
	fi
}

# ---------------------------------------------------------------- main
declare -A R_EXTRA R_OWN R_RSS R_SEEN S_LAT S_RPS S_RSS S_RR F_MEM T
echo "# NetProbe benchmark against alternatives"
versions
setup_net
# Not `want x && sec_x`: errexit is off inside a function called from a list.
for s in $SECTIONS; do
	if want "$s"; then
		t0=$(date +%s)
		"sec_$s"
		echo "bench: $s took $(($(date +%s) - t0)) s" >&2
	fi
done
summary
echo
echo "bench: done in $(($(date +%s) - SECONDS_START)) s"
