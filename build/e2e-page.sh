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
# The agent serves the page at / (compiled in) with a Content-Security-
# Policy that lets nothing load from elsewhere; with --metrics-auth-file
# it asks for the same credential as /metrics.
#
# Usage: build/e2e-page.sh [path/to/netprobe-agent]   (root)
set -euo pipefail

AGENT=${1:-target/release/netprobe-agent}
TEST=e2e-page NEEDS="chromium iperf3 nmap"
INTERVAL=1s
# shellcheck source=build/e2e-lib.sh
. "$(dirname "$0")/e2e-lib.sh"
REPO=$(cd "$(dirname "$0")/.." && pwd)
PAGE_URL=http://127.0.0.1:$PORT/
start=$(date +%s)

TRAFFIC_PID=
cleanup_extra() {
	for p in $TRAFFIC_PID; do
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
# With a credential, the page asks for it as /metrics does.
printf 'viewer:page secret\n' >"$LOG/auth"
chmod 600 "$LOG/auth"
start_agent --pin-path '' --metrics-auth-file "$LOG/auth" || { fail "agent did not start"; exit 1; }
code=$(ina curl -s -o /dev/null -w '%{http_code}' "$PAGE_URL")
with=$(ina curl -s -o /dev/null -w '%{http_code}' -u 'viewer:page secret' "$PAGE_URL")
[ "$code" = 401 ] && [ "$with" = 200 ] && ok "with --metrics-auth-file, / answers 401 without the credential and 200 with it" \
	|| fail "with --metrics-auth-file, / answered $code without the credential, $with with it"
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=

# The home side is this namespace alone: the scanner shares its /24, which
# --home-networks auto counts as home, and a home host's scan is no alert.
start_agent --pin-path '' --home-networks "$A4,$A6" || { fail "agent did not start"; exit 1; }
ina curl -fsS -D "$LOG/page.headers" -o "$LOG/page.html" "$PAGE_URL" || fail "GET / failed"
cmp -s "$LOG/page.html" "$REPO/agent/assets/index.html" && ok "GET / serves agent/assets/index.html as it is" \
	|| fail "GET / does not serve agent/assets/index.html"
for h in "Content-Type: text/html; charset=utf-8" "Content-Security-Policy: default-src 'none'" "X-Content-Type-Options: nosniff" "Cache-Control: no-cache"; do
	grep -qiF "$h" "$LOG/page.headers" && ok "GET / sends $h" || fail "GET / lacks $h: $(tr '\r\n' '  ' <"$LOG/page.headers")"
done

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
