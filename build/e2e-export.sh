#!/usr/bin/env bash
# The sinks against real receivers, as root, everything on 127.0.0.1 in a
# network namespace of its own (build/export-lib.sh has the receivers and
# the checks):
#   remote_write -> Prometheus (--web.enable-remote-write-receiver):
#     1. pushed samples come back exactly (values, timestamps, external label)
#     2. an outage of several push intervals leaves no gap
#     3. a spool smaller than the outage drops the oldest, counts them,
#        keeps the newest
#     4. a restart during an outage with a spool directory loses nothing,
#        even with a torn record appended to the spool file
#   IPFIX -> nfcapd (summed with nfdump) and nfacctd (pmacct) over UDP, and
#     over TCP into a file that ipfixDump (libfixbuf) decodes: known flows,
#     IPv4 and IPv6, TCP and UDP, both directions, add up exactly.
# A test driver pushes known data through the sinks
# (agent/examples/export_driver.rs): exact timestamps and values, a spool
# smaller than the outage, a torn spool record, https, TCP. The agent
# itself drives them in build/e2e-export-agent.sh. About 70 s, plus
# building the driver with https the first time.
# Usage: build/e2e-export.sh [DRIVER]   (default: builds the example)
set -euo pipefail
cd "$(dirname "$0")/.."
TEST=e2e-export

[ "$(id -u)" -eq 0 ] || { echo "$TEST: FAIL: needs root (network namespaces)" >&2; exit 1; }
for t in ip curl python3 openssl prometheus nfcapd nfdump nfacctd ipfixDump; do
	command -v "$t" >/dev/null || { echo "$TEST: FAIL: $t is missing (run build/deps.sh)" >&2; exit 1; }
done
DRIVER=${1:-}
if [ -z "$DRIVER" ]; then
	# With https, so the TLS path meets a real server too.
	cargo build --locked --quiet --example export_driver --features remote-write-https
	DRIVER=target/debug/examples/export_driver
fi
[ -x "$DRIVER" ] || { echo "$TEST: FAIL: driver $DRIVER not found" >&2; exit 1; }

EXP_NS=npexp-$$
EXP_DIR=$(mktemp -d /tmp/netprobe-e2e-export.XXXXXX)
DRIVER_PID=
PASSED=0 FAILED=0
ok() { echo "  ok: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "  FAIL: $*" >&2; FAILED=$((FAILED + 1)); }
# shellcheck source=build/export-lib.sh
source build/export-lib.sh

cleanup() {
	[ -z "$DRIVER_PID" ] || kill -KILL "$DRIVER_PID" 2>/dev/null || true
	exp_stop_all
	ip netns pids "$EXP_NS" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns del "$EXP_NS" 2>/dev/null || true
	rm -rf "$EXP_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$EXP_NS"
ip -n "$EXP_NS" link set lo up
start=$(date +%s)

# drive ARGS...: runs the driver in the namespace, its counters to $OUT.
drive() { timeout 120 ip netns exec "$EXP_NS" "$DRIVER" "$@" >"$OUT"; }
# counter NAME [LABEL]: a value from the driver's counters in $OUT.
counter() { awk -v n="$1" -v l="${2:-}" 'index($1, n "{") == 1 && index($1, l) { v = $2 } END { print v + 0 }' "$OUT"; }
# wait_progress N: until the background driver has pushed N collections.
wait_progress() { exp_wait 60 awk -v n="$1" '$1 >= n { f = 1 } END { exit !f }' "$EXP_DIR/progress"; }
rw() { echo --url "$(prom_write_url)" --label site=e2e --series 20 --interval-ms 500; }

echo "== remote_write -> Prometheus $(prometheus --version 2>&1 | head -1 | awk '{ print $3 }')"
prom_start

OUT=$EXP_DIR/rw1.out
# shellcheck disable=SC2046
drive remote-write $(rw) --collections 5 --series-offset 0 --expected "$EXP_DIR/rw1.exp"
prom_assert_exact "5 collections x 20 series" "$EXP_DIR/rw1.exp" 'netprobe_e2e_export_value{series=~"s[0-9]+",series!~"s[0-9]{3}"}' e2e
[ "$(counter netprobe_remote_write_samples_sent_total)" = 100 ] && ok "writer counted 100 samples sent" ||
	fail "writer counted $(counter netprobe_remote_write_samples_sent_total) samples sent, want 100"

# Outage: Prometheus down from the 3rd to the 11th push (4 s of 500 ms pushes).
OUT=$EXP_DIR/rw2.out
rm -f "$EXP_DIR/progress"
# shellcheck disable=SC2046
timeout 120 ip netns exec "$EXP_NS" "$DRIVER" remote-write $(rw) --collections 16 --series-offset 100 \
	--progress "$EXP_DIR/progress" --drain-timeout-s 60 --expected "$EXP_DIR/rw2.exp" >"$OUT" &
DRIVER_PID=$!
wait_progress 3
prom_stop
wait_progress 11
prom_start
wait "$DRIVER_PID"
DRIVER_PID=
prom_assert_exact "outage of 8 push intervals, no gap" "$EXP_DIR/rw2.exp" 'netprobe_e2e_export_value{series=~"s1[0-9]{2}"}' e2e
retried=$(counter netprobe_remote_write_samples_retried_total)
dropped=$(counter netprobe_remote_write_samples_dropped_total spool_full)
[ "$retried" -gt 0 ] && [ "$dropped" = 0 ] && ok "outage: $retried samples retried, none dropped" ||
	fail "outage: retried $retried, dropped $dropped"

# A spool of 3 collections through an outage of 10: the oldest go.
OUT=$EXP_DIR/rw3.out
rm -f "$EXP_DIR/progress"
# shellcheck disable=SC2046
timeout 120 ip netns exec "$EXP_NS" "$DRIVER" remote-write $(rw) --collections 16 --series-offset 200 \
	--spool-collections 3 --progress "$EXP_DIR/progress" --drain-timeout-s 60 --expected "$EXP_DIR/rw3.exp" >"$OUT" &
DRIVER_PID=$!
wait_progress 3
prom_stop
wait_progress 13
prom_start
wait "$DRIVER_PID"
DRIVER_PID=
prom_samples 'netprobe_e2e_export_value{series=~"s2[0-9]{2}"}' >"$EXP_DIR/rw3.actual"
dropped=$(counter netprobe_remote_write_samples_dropped_total spool_full)
# Collections present (value = series * 1e6 + collection): the oldest
# unsent ones are missing as one block, the newest are all there.
read -r missing extra gap newest < <(python3 - "$EXP_DIR/rw3.exp" "$EXP_DIR/rw3.actual" <<'PY'
import sys
exp = {(s, int(t), float(v)) for s, t, v in (l.split() for l in open(sys.argv[1]))}
act = {(s, int(t), float(v)) for s, t, v, _ in (l.split() for l in open(sys.argv[2]))}
coll = lambda x: int(x[2]) % 1000000
have = sorted({coll(x) for x in act})
gone = sorted({coll(x) for x in exp - act})
one_block = bool(gone) and gone == list(range(gone[0], gone[-1] + 1))
print(len(exp - act), len(act - exp), int(one_block), int(bool(have) and have[-1] == 15 and all(c in have for c in range(gone[-1] + 1, 16)) if gone else 0))
PY
)
if [ "$missing" -gt 0 ] && [ "$missing" = "$dropped" ] && [ "$extra" = 0 ] && [ "$gap" = 1 ] && [ "$newest" = 1 ]; then
	ok "small spool: $dropped oldest samples dropped and counted, the newest all delivered"
else
	fail "small spool: missing $missing, counted dropped $dropped, extra $extra, one block $gap, newest kept $newest"
fi

# Restart during an outage with a spool directory.
prom_stop
OUT=$EXP_DIR/rw4a.out
# shellcheck disable=SC2046
drive remote-write $(rw) --collections 6 --series-offset 300 --spool-dir "$EXP_DIR/spool" \
	--drain-timeout-s 0 --expected "$EXP_DIR/rw4a.exp"
segs=$(find "$EXP_DIR/spool" -name 'seg-*.rws' | wc -l)
[ "$segs" -gt 0 ] && [ "$(counter netprobe_remote_write_samples_dropped_total shutdown)" = 0 ] &&
	ok "shutdown during the outage: unsent samples in $segs spool file(s)" || fail "no spool file after shutdown"
# A torn record after the last good one (a crash mid-append) loses nothing.
printf 'NPRW\x10\x00\x00' >>"$(find "$EXP_DIR/spool" -name 'seg-*.rws' | sort | tail -1)"
prom_start
OUT=$EXP_DIR/rw4b.out
# shellcheck disable=SC2046
drive remote-write $(rw) --collections 3 --series-offset 300 --spool-dir "$EXP_DIR/spool" \
	--drain-timeout-s 60 --expected "$EXP_DIR/rw4b.exp"
cat "$EXP_DIR/rw4a.exp" "$EXP_DIR/rw4b.exp" >"$EXP_DIR/rw4.exp"
prom_assert_exact "restart with --remote-write-spool-dir during an outage" "$EXP_DIR/rw4.exp" 'netprobe_e2e_export_value{series=~"s3[0-9]{2}"}' e2e
[ "$(counter netprobe_remote_write_spool_corrupt_records_total)" = 1 ] && ok "the torn record was counted and skipped" ||
	fail "torn record: counted $(counter netprobe_remote_write_spool_corrupt_records_total), want 1"
[ "$(find "$EXP_DIR/spool" -name 'seg-*.rws' | wc -l)" = 0 ] && ok "spool directory empty once everything is sent" ||
	fail "spool files left: $(ls "$EXP_DIR/spool")"
prom_stop

echo "== remote_write over https (Prometheus --web.config.file, a CA made for the run)"
PROM_TLS=1
prom_start
OUT=$EXP_DIR/rw5.out
# shellcheck disable=SC2046
drive remote-write $(rw) --collections 3 --series-offset 400 --ca-file "$EXP_DIR/prom/ca.pem" \
	--expected "$EXP_DIR/rw5.exp"
prom_assert_exact "https with --remote-write-ca-file" "$EXP_DIR/rw5.exp" 'netprobe_e2e_export_value{series=~"s4[0-9]{2}"}' e2e
# Without the CA file the Mozilla roots do not know this certificate.
OUT=$EXP_DIR/rw6.out
# shellcheck disable=SC2046
drive remote-write $(rw) --collections 1 --series-offset 500 --drain-timeout-s 2 --expected "$EXP_DIR/rw6.exp"
sent=$(counter netprobe_remote_write_samples_sent_total)
retried=$(counter netprobe_remote_write_samples_retried_total)
[ "$sent" = 0 ] && [ "$retried" -gt 0 ] && ok "https to an unknown CA: refused, retried, nothing sent" ||
	fail "https to an unknown CA: sent $sent, retried $retried"
prom_stop
PROM_TLS=

echo "== IPFIX -> nfcapd/nfdump $(nfdump -V | awk '{ print $3 }')"
nfcapd_start
OUT=$EXP_DIR/ipfix1.out
drive ipfix --collector "127.0.0.1:$NFCAPD_PORT" --expected "$EXP_DIR/flows.exp"
sleep 0.5
nfcapd_stop
nfdump_sums >"$EXP_DIR/nfdump.sums"
exp_assert_sums "nfdump" "$EXP_DIR/flows.exp" "$EXP_DIR/nfdump.sums"
grep -q "Sequence Errors: 0, Bad Packets: 0" "$EXP_DIR/nfcapd.log" && ok "nfcapd: no sequence errors, no bad packets" ||
	fail "nfcapd: $(grep -E 'Sequence Errors|Bad' "$EXP_DIR/nfcapd.log" | tail -1)"

echo "== IPFIX -> nfacctd $(nfacctd -V 2>&1 | awk 'NR == 1 { print $5 }')"
nfacctd_start
OUT=$EXP_DIR/ipfix2.out
drive ipfix --collector "127.0.0.1:$NFACCTD_PORT" --expected "$EXP_DIR/flows.exp"
sleep 2.5 # two print refreshes
nfacctd_stop
nfacctd_sums >"$EXP_DIR/nfacctd.sums"
exp_assert_sums "nfacctd" "$EXP_DIR/flows.exp" "$EXP_DIR/nfacctd.sums"
# (Its print plugin logs an ERROR when the core stops first: not ours.)
complaints=$(grep -i 'malformed\|ERROR' "$EXP_DIR/nfacctd/log" | grep -v 'Core process \*seems\* gone' | head -3 || true)
[ -z "$complaints" ] && ok "nfacctd: no malformed or error log line" || fail "nfacctd: $complaints"

echo "== IPFIX over TCP -> ipfixDump $(ipfixDump -V 2>&1 | awk 'NR == 1 { print $3 }')"
tcp_capture_start 4741 "$EXP_DIR/tcp.ipfix"
OUT=$EXP_DIR/ipfix3.out
drive ipfix --collector "tcp://127.0.0.1:4741" --expected "$EXP_DIR/flows.exp"
tcp_capture_wait
ipfixdump_sums "$EXP_DIR/tcp.ipfix" >"$EXP_DIR/ipfixdump.sums"
exp_assert_sums "ipfixDump (TCP)" "$EXP_DIR/flows.exp" "$EXP_DIR/ipfixdump.sums"

echo
echo "$TEST: $PASSED passed, $FAILED failed in $(($(date +%s) - start)) s"
[ "$FAILED" -eq 0 ]
