#!/usr/bin/env bash
# Installs what build/bench.sh needs beyond build/deps.sh: the tools it
# compares NetProbe with, and its load generators, all from Debian's
# packages (Debian 12). Idempotent and quiet: apt runs only when a package
# is missing. No service is started: the bench runs each peer itself, in
# its own network namespace, and stops it by PID.
set -euo pipefail

packages=(
	softflowd                # flow accounting over libpcap (NetFlow export)
	pmacct                   # pmacctd with the memory plugin
	fastnetmon               # flood detection over AF_PACKET
	prometheus-node-exporter # interface counters for Prometheus
	wrk                      # HTTP load for the scrape benchmark
	iperf3                   # TCP throughput
	prometheus               # promtool check metrics
	iproute2                 # ip netns, veth
	curl                     # scrapes
	python3                  # JSON from /status and iperf3 -J
	procps                   # pgrep -P (pmacctd's plugin process)
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

# Peers that ship a service; the bench starts its own instances.
services=(fastnetmon prometheus-node-exporter)

if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "bench-deps: run as root to install ${missing[*]}" >&2; exit 1; }
	echo "bench-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Keep apt from starting the peers' services (fastnetmon's default
	# configuration would sniff every interface and report usage): a
	# temporary policy-rc.d, unless the host has one of its own.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		trap 'rm -f "$policy"' EXIT
		printf '#!/bin/sh\n# build/bench-deps.sh: no service starts during its install\nexit 101\n' >"$policy"
		chmod 755 "$policy"
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# Nor at the next boot: only for services this run installed.
	if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		for s in "${services[@]}"; do
			if printf '%s\n' "${missing[@]}" | grep -qx "$s"; then
				systemctl disable --now --quiet "$s" 2>/dev/null || true
				echo "bench-deps: disabled the $s service (the bench runs its own)"
			fi
		done
	fi
fi
