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
	iproute2       # e2e: ip netns, veth, tc
	iputils-ping   # e2e traffic
	iperf3         # e2e traffic (bounded TCP and UDP); e2e-detect: downloads, speed tests, a VXLAN tunnel
	curl           # e2e scrapes
	prometheus     # promtool check metrics
	python3        # e2e: /status JSON checks; build/detect-traffic.py (e2e-detect, e2e-security)
	nmap           # e2e-security, e2e-detect: port scans
	hping3         # e2e-security, e2e-detect: floods
	nftables       # e2e-sockets: drops one packet in ten (retransmits; no netem here); e2e-detect: the router's NAT
	gcc-aarch64-linux-gnu # linker for aarch64-unknown-linux-musl (build/cross.sh)
	qemu-user-static     # runner for the aarch64 unit/golden tests
	qemu-system-x86      # build/boot-test.sh x86_64
	qemu-system-arm      # build/boot-test.sh aarch64 (qemu-system-aarch64)
	cpio                 # initramfs (build/image.sh)
	xz-utils             # unpacks vmlinux from the bzImage (build/image.sh)
	wget                 # host-side scrapes (build/boot-test.sh)
)

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
