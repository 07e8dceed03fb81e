# Shared by the end-to-end scripts (sourced, not run): two network
# namespaces joined by a veth pair, the agent started in the first, scrapes
# from inside it, and readings both sides agree on. Sourcing scripts set
# AGENT and TEST (a name for messages) first; set -euo pipefail is theirs.
# Addresses: A4=198.18.0.1/24 and A6=2001:db8::1/64 on $IFA (namespace
# $NSA), B4 (.2) and B6 (::2) on $IFB ($NSB). NEEDS: tools beyond the
# common ones; AGENT_WRAP: a command the agent runs under; XDP_MODE: its
# --xdp-mode (auto attaches no XDP on veth: TC alone). Everything is
# removed on exit, even on failure.

[ "$(id -u)" -eq 0 ] || { echo "$TEST: FAIL: needs root (CAP_BPF, CAP_NET_ADMIN) to attach probes" >&2; exit 1; }
[ -x "$AGENT" ] || { echo "$TEST: FAIL: agent binary $AGENT not found (cargo build --release)" >&2; exit 1; }
for t in ip tc bpftool curl python3 ${NEEDS:-}; do
	command -v "$t" >/dev/null || { echo "$TEST: FAIL: $t is missing (run build/deps.sh)" >&2; exit 1; }
done

ID=$$
NSA=npe2e-a-$ID NSB=npe2e-b-$ID
IFA=npa$ID IFB=npb$ID
PORT=18081
A4=198.18.0.1 B4=198.18.0.2 A6=2001:db8::1 B6=2001:db8::2
LOG=$(mktemp -d /tmp/netprobe-e2e.XXXXXX)
AGENT_PID=
PASSED=0 FAILED=0

# Scripts may define cleanup_extra (called first on exit).
cleanup() {
	declare -F cleanup_extra >/dev/null && cleanup_extra
	if [ -n "$AGENT_PID" ]; then
		kill -KILL "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
	ip netns pids "$NSB" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns pids "$NSA" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "  ok: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "  FAIL: $*" >&2; FAILED=$((FAILED + 1)); }
ina() { ip netns exec "$NSA" "$@"; }
inb() { ip netns exec "$NSB" "$@"; }
scrape() { ina curl -fsS --max-time 5 "http://127.0.0.1:$PORT$1"; }

# rejects "ARGS" CULPRIT: the agent, given ARGS, exits 2 with a message
# that names CULPRIT.
rejects() {
	local out code=0
	# shellcheck disable=SC2086
	out=$(ina "$AGENT" $1 2>&1) || code=$?
	if [ "$code" -eq 2 ] && grep -q -- "$2" <<<"$out"; then
		ok "'$1' -> exit 2, names '$2'"
	else
		fail "'$1' -> exit $code: $out"
	fi
}

setup_net() {
	ip netns add "$NSA"
	ip netns add "$NSB"
	ip link add "$IFA" netns "$NSA" type veth peer name "$IFB" netns "$NSB"
	for ns in "$NSA" "$NSB"; do
		# Quiet IPv6: no router solicitations or DAD probes racing the counters.
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
			net.ipv6.conf.default.router_solicitations=0 net.ipv6.conf.all.router_solicitations=0 \
			net.ipv6.conf.default.dad_transmits=0 net.ipv6.conf.all.dad_transmits=0
		ip -n "$ns" link set lo up
	done
	ip -n "$NSA" addr add $A4/24 dev "$IFA"
	ip -n "$NSB" addr add $B4/24 dev "$IFB"
	ip -n "$NSA" addr add $A6/64 dev "$IFA" nodad
	ip -n "$NSB" addr add $B6/64 dev "$IFB" nodad
	ip -n "$NSA" link set "$IFA" up
	ip -n "$NSB" link set "$IFB" up
	sleep 1
}

start_agent() {
	# Not through ina(): a function in the background is a subshell, and
	# the signal must reach the agent itself.
	ip netns exec "$NSA" ${AGENT_WRAP:-} "$AGENT" --interface-filter "${FILTER:-$IFA}" --listen-address 127.0.0.1 --metrics-port "$PORT" \
		--collect-interval "${INTERVAL:-200ms}" ${XDP_MODE:+--xdp-mode "$XDP_MODE"} "$@" >>"$LOG/agent.log" 2>&1 &
	AGENT_PID=$!
	for _ in $(seq 50); do
		scrape /healthz >/dev/null 2>&1 && return 0
		kill -0 "$AGENT_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$LOG/agent.log" >&2
	return 1
}

# value NAME: the sample of NAME{interface="$IFA"} in the last scrape.
value() { awk -v m="$1{interface=\"$IFA\"}" '$1 == m { print $2 }' "$LOG/metrics"; }

kernel_stats() {
	local d=/sys/class/net/$IFA/statistics
	ina sh -c "echo \$(cat $d/rx_packets) \$(cat $d/rx_bytes) \$(cat $d/tx_packets) \$(cat $d/tx_bytes)"
}

agent_stats() {
	scrape /metrics >"$LOG/metrics"
	echo "$(value netprobe_interface_rx_packets_total) $(value netprobe_interface_rx_bytes_total)" \
		"$(value netprobe_interface_tx_packets_total) $(value netprobe_interface_tx_bytes_total)"
}

# A reading both sides agree on: the agent's counters unchanged across a
# kernel read means no packet slipped in between. Bounded retries.
stable_reading() {
	local a1 k a2
	for _ in $(seq 30); do
		sleep 0.5
		a1=$(agent_stats)
		k=$(kernel_stats)
		sleep 0.5
		a2=$(agent_stats)
		if [ "$a1" = "$a2" ]; then
			echo "$k|$a1"
			return 0
		fi
	done
	echo "$TEST: traffic never went quiet" >&2
	return 1
}


# The BPF program ids the running agent holds (from its fds' fdinfo), so
# leak checks look at this agent's programs and not at other processes'.
# A descriptor may close while the scan runs (grep would then exit 2 and,
# under pipefail, abort the caller): read each file on its own, ignoring
# the ones gone.
agent_prog_ids() {
	local f
	for f in /proc/"$AGENT_PID"/fdinfo/*; do
		sed -n 's/^prog_id:[[:space:]]*//p' "$f" 2>/dev/null || true
	done | sort -u | tr '\n' ' '
}

# progs_left IDS: how many of these program ids are still loaded, after
# giving the kernel up to 3 s to free released ones (programs go after an
# RCU grace period, links after a deferred put).
progs_left() {
	local n id
	for _ in $(seq 30); do
		n=0
		for id in "$@"; do
			bpftool prog show id "$id" >/dev/null 2>&1 && n=$((n + 1))
		done
		[ "$n" -eq 0 ] && break
		sleep 0.1
	done
	echo "$n"
}
