#!/usr/bin/env bash
# Installs what building the probes and every test tier need, from Debian's
# packages (Debian 12): a new machine has none of it. Idempotent and quiet:
# apt runs only when a package is missing.
set -euo pipefail

packages=(
	clang-14       # compiles probes/*.bpf.c (build/probes.sh)
	llvm-14        # llvm-strip-14 (build/probes.sh)
	libbpf-dev     # <bpf/bpf_helpers.h>, <bpf/bpf_endian.h>
	linux-libc-dev # <linux/*.h> uapi headers
	bpftool        # e2e: checks nothing is left loaded
	iproute2       # e2e: ip netns, veth, tc; kernel tier: ss -tnpie, the truth for connection owners
	procps         # e2e: sysctl (quiet IPv6 in the test namespaces)
	util-linux     # e2e-hardening: unshare, setpriv (as nobody), prlimit, mountpoint
	iputils-ping   # e2e traffic
	iperf3         # e2e traffic (bounded TCP and UDP); e2e-detect: downloads, speed tests, a VXLAN tunnel
	ethtool        # e2e-ifaces: TSO off on a veth (GSO segments counted after TC egress)
	curl           # e2e scrapes
	prometheus     # promtool check metrics; e2e-dashboards: a real Prometheus with the rules; e2e-export: the remote_write receiver
	nfdump         # e2e-export: nfcapd collects IPFIX, nfdump sums it per 5-tuple
	pmacct         # e2e-export: nfacctd, a second IPFIX decoder
	libfixbuf-tools # e2e-export: ipfixDump decodes IPFIX sent over TCP
	openssl        # e2e-export: a CA and certificate for the https receiver
	python3        # e2e: /status JSON checks; kernel tier and e2e: servers of build/sockets-traffic.py; build/detect-traffic.py
	nmap           # e2e-security, e2e-detect: port scans
	hping3         # e2e-security, e2e-detect: floods
	nftables       # e2e-sockets: drops one packet in ten (retransmits; no netem here); e2e-detect: the router's NAT
	gcc-aarch64-linux-gnu # linker for aarch64-unknown-linux-musl (build/cross.sh)
	qemu-user-static     # runner for the aarch64 unit/golden tests
	qemu-system-x86      # build/boot-test.sh x86_64
	qemu-system-arm      # build/boot-test.sh aarch64 (qemu-system-aarch64)
	cpio                 # initramfs (build/image.sh)
	xz-utils             # unpacks vmlinux from the bzImage, .ko.xz modules (build/image.sh)
	zstd                 # unpacks 6.12's zstd vmlinux (build/image.sh)
	debian-archive-keyring # verifies bullseye's and trixie's kernel packages (build/image.sh)
	make                 # build/kernel-openwrt.sh: the OpenWrt-style kernel
	gcc                  # build/kernel-openwrt.sh (x86_64; aarch64 with gcc-aarch64-linux-gnu)
	flex                 # build/kernel-openwrt.sh (kconfig)
	bison                # build/kernel-openwrt.sh (kconfig)
	bc                   # build/kernel-openwrt.sh (kernel headers' constants)
	libelf-dev           # build/kernel-openwrt.sh (x86_64's objtool)
	systemd              # build/init-check.sh: systemd-analyze verify and security on the unit
	wget                 # host-side scrapes (build/boot-test.sh)
	mmdebstrap           # build/cleanroom.sh: a fresh Debian root
	git                  # the revision the agent is built from (build.rs; e2e checks netprobe_build_info)
	chromium             # e2e-page: the live page in a headless browser (DevTools over a pipe)
	python3-venv         # build/k8s-tools.sh: kubernetes-validate in a venv
	runc                 # build/container-run.sh: the OCI runtime (before podman, so apt needs no crun)
	podman               # build/container-run.sh: builds and runs the agent's image
)

# node and npm: build/dash-schema.sh type-checks the Grafana dashboard with
# Grafana's own schema package from npm. A NodeSource nodejs already ships
# npm (and conflicts with Debian's npm package), so it is enough as it is.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -gt 0 ]; then
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	# --no-install-recommends keeps prometheus from pulling in a web stack.
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
