# Real receivers for the sinks (sourced, not run): Prometheus with its
# remote_write receiver, nfcapd + nfdump and nfacctd (pmacct) as IPFIX
# collectors, each on 127.0.0.1 inside the network namespace $EXP_NS, with
# their files under $EXP_DIR; and the checks that compare what they hold
# with what was sent. build/e2e-export.sh drives them from the sinks'
# test driver; once the agent runs the sinks, the same functions serve a
# run of the agent on a veth pair (receivers in the agent's namespace).
# The sourcing script sets EXP_NS and EXP_DIR, defines ok/fail, and calls
# exp_stop_all on exit.

PROM_PORT=${PROM_PORT:-19090}
NFCAPD_PORT=${NFCAPD_PORT:-4739}
NFACCTD_PORT=${NFACCTD_PORT:-4740}
PROM_PID= NFCAPD_PID= NFACCTD_PID= TCPCAP_PID=

exp_in() { ip netns exec "$EXP_NS" "$@"; }

# exp_wait SECONDS COMMAND...: retries COMMAND every 0.2 s until it succeeds.
exp_wait() {
	local end=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# Stops one receiver (TERM, then KILL after 10 s) by its variable's name.
exp_stop() {
	local pid=${!1}
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	printf -v "$1" '%s' ""
}

exp_stop_all() {
	exp_stop PROM_PID
	exp_stop NFCAPD_PID
	exp_stop NFACCTD_PID
	exp_stop TCPCAP_PID
}

# --- Prometheus ---------------------------------------------------------

# PROM_TLS=1 serves https with a certificate for 127.0.0.1 from a CA made
# for the run ($EXP_DIR/prom/ca.pem); set it before prom_start.
PROM_TLS=${PROM_TLS:-}
prom_url() { echo "http${PROM_TLS:+s}://127.0.0.1:$PROM_PORT"; }
prom_write_url() { echo "$(prom_url)/api/v1/write"; }
prom_curl() { exp_in curl -fsS --max-time 10 ${PROM_TLS:+--cacert "$EXP_DIR/prom/ca.pem"} "$@"; }

# A CA and a server certificate for 127.0.0.1 signed by it (openssl).
prom_make_certs() {
	local d=$EXP_DIR/prom
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
		-subj /CN=netprobe-e2e-ca -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
		-keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$d/san.ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 1 -extfile "$d/san.ext" -out "$d/server.pem" 2>/dev/null
	printf 'tls_server_config:\n  cert_file: %s\n  key_file: %s\n' "$d/server.pem" "$d/server.key" >"$d/web.yml"
}

# Starts Prometheus (or again, on the same data directory) and waits until
# it is ready.
prom_start() {
	mkdir -p "$EXP_DIR/prom"
	printf 'global:\n  scrape_interval: 1m\n' >"$EXP_DIR/prom/prometheus.yml"
	local web=()
	if [ -n "$PROM_TLS" ]; then
		[ -e "$EXP_DIR/prom/web.yml" ] || prom_make_certs
		web=(--web.config.file="$EXP_DIR/prom/web.yml")
	fi
	ip netns exec "$EXP_NS" prometheus --config.file="$EXP_DIR/prom/prometheus.yml" \
		--storage.tsdb.path="$EXP_DIR/prom/data" --web.listen-address="127.0.0.1:$PROM_PORT" \
		--web.enable-remote-write-receiver --log.level=warn "${web[@]}" >>"$EXP_DIR/prom/log" 2>&1 &
	PROM_PID=$!
	exp_wait 60 prom_curl "$(prom_url)/-/ready" ||
		{ tail -20 "$EXP_DIR/prom/log" >&2; echo "prometheus did not get ready" >&2; return 1; }
}

prom_stop() { exp_stop PROM_PID; }

# prom_samples SELECTOR: every raw sample of the last hour as
# `series timestamp_ms value site` lines.
prom_samples() {
	prom_curl -G "$(prom_url)/api/v1/query" --data-urlencode "query=$1[1h]" |
		python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["status"] == "success", d
for r in d["data"]["result"]:
    m = r["metric"]
    for ts, v in r["values"]:
        print(m.get("series", "-"), round(float(ts) * 1000), v, m.get("site", "-"))
'
}

# prom_compare EXPECTED ACTUAL [SITE]: prints `missing extra` counts of
# (series, timestamp, value) samples and fails when an actual sample lacks
# the external label site=SITE.
prom_compare() {
	python3 - "$1" "$2" "${3:--}" <<'PY'
import sys
exp = {(s, int(t), float(v)) for s, t, v in (l.split() for l in open(sys.argv[1]))}
act, bad_site = set(), 0
for l in open(sys.argv[2]):
    s, t, v, site = l.split()
    act.add((s, int(t), float(v)))
    bad_site += site != sys.argv[3]
print(len(exp - act), len(act - exp), bad_site)
PY
}

# prom_assert_exact WHAT EXPECTED SELECTOR [SITE]: Prometheus holds exactly
# the expected samples (values and timestamps), each with the site label.
prom_assert_exact() {
	local what=$1 exp=$2 sel=$3 site=${4:--} got
	prom_samples "$sel" >"$exp.actual"
	read -r missing extra bad_site < <(prom_compare "$exp" "$exp.actual" "$site")
	got=$(wc -l <"$exp.actual")
	if [ "$missing" -eq 0 ] && [ "$extra" -eq 0 ] && [ "$bad_site" -eq 0 ]; then
		ok "$what: Prometheus holds exactly the $got samples pushed (values and timestamps)"
	else
		fail "$what: $missing samples missing, $extra unexpected, $bad_site without site=$site (of $(wc -l <"$exp") pushed)"
	fi
}

# --- nfcapd / nfdump ----------------------------------------------------

nfcapd_start() {
	mkdir -p "$EXP_DIR/nfcapd"
	ip netns exec "$EXP_NS" nfcapd -w "$EXP_DIR/nfcapd" -b 127.0.0.1 -p "$NFCAPD_PORT" -t 60 \
		>>"$EXP_DIR/nfcapd.log" 2>&1 &
	NFCAPD_PID=$!
	exp_wait 10 grep -q "Startup nfcapd" "$EXP_DIR/nfcapd.log" || { echo "nfcapd did not start" >&2; return 1; }
}

# Stopping nfcapd writes its current file.
nfcapd_stop() { exp_stop NFCAPD_PID; }

# nfdump_sums: `proto src sport dst dport packets bytes` per 5-tuple, sorted.
nfdump_sums() {
	nfdump -R "$EXP_DIR/nfcapd" -q -N -A proto,srcip,srcport,dstip,dstport \
		-o "fmt:%pr %sa %sp %da %dp %pkt %byt" | awk 'NF == 7 { print $1, $2, $3, $4, $5, $6, $7 }' | sort
}

# --- nfacctd (pmacct) ---------------------------------------------------

nfacctd_start() {
	mkdir -p "$EXP_DIR/nfacctd"
	cat >"$EXP_DIR/nfacctd/nfacctd.conf" <<CONF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $NFACCTD_PORT
nfacctd_time_new: true
logfile: $EXP_DIR/nfacctd/log
plugins: print[e2e]
aggregate[e2e]: proto, src_host, src_port, dst_host, dst_port
print_output[e2e]: csv
print_output_file[e2e]: $EXP_DIR/nfacctd/flows.csv
print_output_file_append[e2e]: true
print_refresh_time[e2e]: 1
CONF
	ip netns exec "$EXP_NS" nfacctd -f "$EXP_DIR/nfacctd/nfacctd.conf" >>"$EXP_DIR/nfacctd/out" 2>&1 &
	NFACCTD_PID=$!
	exp_wait 10 grep -q "Purging cache" "$EXP_DIR/nfacctd/log" || { echo "nfacctd did not start" >&2; return 1; }
}

nfacctd_stop() { exp_stop NFACCTD_PID; }

# nfacctd_sums: the print plugin's CSV rows (one file, appended every
# refresh) summed per 5-tuple, in nfdump_sums' format.
nfacctd_sums() {
	awk -F, 'NR > 1 && $1 != "SRC_IP" {
		p = $5 == "tcp" ? 6 : $5 == "udp" ? 17 : $5 == "icmp" ? 1 : $5 == "ipv6-icmp" ? 58 : $5
		k = p " " $1 " " $3 " " $2 " " $4; pk[k] += $6; by[k] += $7
	} END { for (k in pk) printf "%s %.0f %.0f\n", k, pk[k], by[k] }' "$EXP_DIR/nfacctd/flows.csv" | sort
}

# --- IPFIX over TCP: the byte stream kept as an IPFIX file, decoded by ---
# --- ipfixDump (libfixbuf, CERT NetSA): no packaged collector takes TCP --

# tcp_capture_start PORT FILE: accepts one connection and writes what it
# carries to FILE until the peer closes (or 5 s of silence, or 120 s).
tcp_capture_start() {
	rm -f "$2" "$2.ready"
	ip netns exec "$EXP_NS" python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(1)
s.settimeout(120)
open(sys.argv[2] + ".ready", "w").close()
c, _ = s.accept()
c.settimeout(5)
end = time.time() + 120
with open(sys.argv[2], "wb") as f:
    while time.time() < end:
        try:
            b = c.recv(65536)
        except socket.timeout:
            break
        if not b:
            break
        f.write(b)
' "$1" "$2" &
	TCPCAP_PID=$!
	exp_wait 10 test -e "$2.ready" || { echo "TCP capture did not start" >&2; return 1; }
}

tcp_capture_wait() { wait "$TCPCAP_PID"; TCPCAP_PID=; }

# ipfixdump_sums FILE: ipfixDump's data records summed per 5-tuple, in
# nfdump_sums' format.
ipfixdump_sums() {
	ipfixDump -i "$1" -d | python3 -c '
import collections, ipaddress, sys
sums = collections.defaultdict(lambda: [0, 0])
rec = {}
def flush():
    if "octetDeltaCount" in rec:
        src = rec.get("sourceIPv4Address") or rec["sourceIPv6Address"]
        dst = rec.get("destinationIPv4Address") or rec["destinationIPv6Address"]
        src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        k = (rec["protocolIdentifier"], src, rec["sourceTransportPort"], dst, rec["destinationTransportPort"])
        sums[k][0] += int(rec["packetDeltaCount"])
        sums[k][1] += int(rec["octetDeltaCount"])
    rec.clear()
for line in sys.stdin:
    if line.startswith("--- "):
        flush()
    elif " : " in line and line.strip().startswith("("):
        name, value = line.strip().split(" : ", 1)
        rec[name.split()[-1]] = value.strip()
flush()
for k, (p, b) in sums.items():
    print(*k, p, b)
' | sort
}

# exp_assert_sums WHAT EXPECTED ACTUAL: the per-5-tuple sums are equal.
exp_assert_sums() {
	if diff <(sort "$2") <(sort "$3") >"$3.diff"; then
		ok "$1: per-5-tuple packets and bytes equal the $(wc -l <"$2") known flows"
	else
		fail "$1: sums differ (< expected, > decoded):"
		cat "$3.diff" >&2
	fi
}
