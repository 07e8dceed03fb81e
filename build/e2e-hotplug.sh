#!/usr/bin/env bash
# Interface hotplug: the agent watches `hp*` while a veth named hp0 is
# created and deleted 100 times. Every creation must be attached (all three
# hooks in /metrics) and every deletion dropped from /metrics, each within
# 1 s; afterwards no program or link has leaked and the agent's memory has
# not grown. The collect interval is 30 s, far longer than the limit, so
# only the netlink path (linkwatch) can meet it: polling at the next
# collection would not.
#
# Usage: build/e2e-hotplug.sh [path/to/netprobe-agent] [cycles]   (root)
set -euo pipefail

AGENT=${1:-target/release/netprobe-agent}
CYCLES=${2:-100}
TEST=e2e-hotplug
# Generic XDP on the veth (auto attaches TC alone there): all three hooks follow a hotplugged veth.
XDP_MODE=generic
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"

hooks_of() { scrape /metrics | grep -c "^netprobe_hook_attached{interface=\"$1\"" || true; }
# links_of IDS: links that run any of the program ids given (ours).
links_of() { bpftool link show | awk -v ids=" $* " '/prog [0-9]+/ { for (i = 1; i < NF; i++) if ($i == "prog" && index(ids, " " $(i + 1) " ")) n++ } END { print n + 0 }'; }
prog_ids() { scrape /status | python3 -c 'import json, sys; print(" ".join(str(h["program_id"]) for i in json.load(sys.stdin)["interfaces"] for h in i["hooks"]))'; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$AGENT_PID/status"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# until_hooks IF N: waits (at most 1 s) for N hooks.
until_hooks() {
	local t0 t
	t0=$(now_ms)
	while [ "$(hooks_of "$1")" -ne "$2" ]; do
		t=$(now_ms)
		[ $((t - t0)) -lt 1000 ] || return 1
		sleep 0.02
	done
	echo $(($(now_ms) - t0))
}

setup_net
FILTER='hp*' INTERVAL=30s start_agent || { fail "agent did not start"; exit 1; }
rss10=0 attach_ms=() detach_ms=() missed=0
for i in $(seq "$CYCLES"); do
	ina ip link add hp0 type veth peer name hq0
	if ms=$(until_hooks hp0 3); then attach_ms+=("$ms"); else missed=$((missed + 1)); fi
	[ "$i" -eq 1 ] && ids=$(prog_ids) && attached_links=$(links_of $ids)
	ina ip link del hp0
	if ms=$(until_hooks hp0 0); then detach_ms+=("$ms"); else missed=$((missed + 1)); fi
	[ "$i" -eq 10 ] && rss10=$(rss_kb)
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR ? a[int((NR + 1) / 2)] : "n/a") }'; }
[ "$missed" -eq 0 ] \
	&& ok "$CYCLES create/delete cycles followed: attach median $(median "${attach_ms[@]}") ms, removal median $(median "${detach_ms[@]}") ms" \
	|| fail "$missed of $((2 * CYCLES)) changes not followed within 1 s"
sleep 0.5
# shellcheck disable=SC2086
left=$(links_of $ids)
[ "$attached_links" -eq 3 ] && [ "$left" -eq 0 ] \
	&& ok "no leak: 3 links while hp0 existed, $left links of our programs ($ids) after $CYCLES deletions" \
	|| fail "links of our programs ($ids): $attached_links while attached, $left after the loop"
rss=$(rss_kb)
[ "$rss" -le $((rss10 + 1024)) ] \
	&& ok "memory flat: RSS $rss10 kB after 10 cycles, $rss kB after $CYCLES" \
	|| fail "memory grew: RSS $rss10 kB after 10 cycles, $rss kB after $CYCLES"
scrape /status | python3 -c '
import json, sys
s = json.load(sys.stdin)
ch = s["interface_changes"]
assert len(ch) <= 32, len(ch)
assert {c["change"] for c in ch} == {"attached", "vanished"}, ch[-4:]
assert all(c["interface"] == "hp0" for c in ch)
' && ok "/status lists the recent attach and vanish events (bounded to 32)" || fail "/status interface_changes"

echo "$TEST: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
