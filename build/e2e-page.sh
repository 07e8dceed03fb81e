#!/usr/bin/env bash
# End-to-end test of the live page (agent/assets/index.html) in a real
# browser: headless Chromium from Debian, driven over the DevTools protocol
# (build/page-cdp.py), against the agent on the test's veth pair with
# bounded iperf3 traffic and an nmap scan from the other namespace.
# Asserts: no console error, the interface name and non-zero rates shown,
# the scan alert shown, busiest flows and topology drawn, the screenshot
# not blank; then the agent is stopped and the page must say "stale since
# HH:MM:SS" with no number left standing. The screenshots are kept (paths
# printed); PAGE_SHOT=path also copies the live one there, after watching
# the page for PAGE_SETTLE seconds (docs/img/page.png: PAGE_SETTLE=30).
#
# The agent does not serve the page yet: build/page-serve.py serves the
# asset and passes /status on to the agent, with the headers the agent is
# to send. Once GET / serves the page, PAGE_URL below becomes the agent's
# own http://127.0.0.1:$PORT/ and page-serve.py goes.
#
# Usage: build/e2e-page.sh [path/to/netprobe-agent]   (root)
set -euo pipefail

AGENT=${1:-target/release/netprobe-agent}
TEST=e2e-page NEEDS="chromium iperf3 nmap"
INTERVAL=1s
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"
REPO=$(cd "$(dirname "$0")/.." && pwd)
PAGE_PORT=18090
PAGE_URL=http://127.0.0.1:$PAGE_PORT/
start=$(date +%s)

SERVE_PID= TRAFFIC_PID=
cleanup_extra() {
	for p in $TRAFFIC_PID $SERVE_PID; do
		kill -TERM "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

size=$(wc -c <"$REPO/agent/assets/index.html")
[ "$size" -le 61440 ] && ok "index.html is $size bytes (limit 60 KiB), one file" || fail "index.html is $size bytes, over 60 KiB"
# Self-contained: nothing fetched from elsewhere (the CSP below would also
# refuse it, and the browser would log an error).
if grep -qiE '(src|href)=["'"'"']?(https?:)?//|@import|url\(' "$REPO/agent/assets/index.html"; then
	fail "index.html refers to an external asset"
else
	ok "index.html refers to no external asset"
fi

setup_net
start_agent --pin-path '' || { fail "agent did not start"; exit 1; }
ip netns exec "$NSA" python3 "$REPO/build/page-serve.py" "$REPO/agent/assets/index.html" "$PAGE_PORT" "$PORT" &
SERVE_PID=$!
for _ in $(seq 50); do ina curl -fsS -o /dev/null "$PAGE_URL" 2>/dev/null && break; sleep 0.1; done

# Traffic both ways for as long as the browser watches (bounded: 40 s at
# 20 Mbit/s), and a scan from the other namespace once the page is up.
inb iperf3 -s -1 -D -p 5201 --logfile "$LOG/iperf-b.log"
sleep 0.3
(timeout 45 ip netns exec "$NSA" iperf3 -c 198.18.0.2 -p 5201 -t 40 -b 20M --bidir >/dev/null 2>&1 || true) &
TRAFFIC_PID=$!
(sleep 4; timeout 60 ip netns exec "$NSB" nmap -n -Pn -sS -p 1-1000 -T4 198.18.0.1 >"$LOG/nmap.log" 2>&1 || true) &

shot=$LOG/page.png
code=0
ip netns exec "$NSA" python3 "$REPO/build/page-cdp.py" --url "$PAGE_URL" --interface "$IFA" --alert scan_vertical \
	--screenshot "$shot" --stop-pid "$AGENT_PID" --timeout 40 --settle "${PAGE_SETTLE:-2}" >"$LOG/cdp.out" 2>&1 || code=$?
cat "$LOG/cdp.out"
PASSED=$((PASSED + $(grep -c '^  ok:' "$LOG/cdp.out" || true)))
FAILED=$((FAILED + $(grep -c '^  FAIL:' "$LOG/cdp.out" || true)))
[ "$code" -eq 0 ] || grep -q '^  FAIL:' "$LOG/cdp.out" || fail "page-cdp.py exited with $code"
wait "$AGENT_PID" 2>/dev/null || true
AGENT_PID=
if [ -n "${PAGE_SHOT:-}" ] && [ -s "$shot" ]; then cp "$shot" "$PAGE_SHOT"; fi

grep -qi 'panic' "$LOG/agent.log" && fail "agent log has a panic" || true
echo "e2e-page: screenshots: $shot and ${shot%.png}-stale.png"
echo "e2e-page: $PASSED passed, $FAILED failed in $(($(date +%s) - start)) s"
[ "$FAILED" -eq 0 ]
