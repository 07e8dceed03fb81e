#!/usr/bin/env bash
# Runs every test tier, as root, on a fresh Debian 12 machine with a Rust
# toolchain (see the README for what it needs and how long it takes):
#   1. build/deps.sh installs what the tests need (clang, bpftool, promtool, ...)
#   2. the clean room: build/deps.sh, the probe check and every command the
#      tests run, in a fresh minimal Debian 12 root (build/cleanroom.sh)
#   3. the fast tier (also alone: build/test.sh --fast, no root needed):
#      the layer check (build/layers.py), cargo fmt --check, cargo clippy -D warnings, and cargo test without
#      privileges (unit, golden, parsers, HTTP abuse; the kernel tier is
#      listed as ignored)
#   4. the committed probe objects must equal a fresh build (build/probes.sh --check)
#   5. the kernel tier: the real probes through BPF_PROG_TEST_RUN and the
#      socket probes on real connections (the tests `cargo test` ignores)
#   6. build/e2e*.sh: the agent binary on a veth pair between two namespaces:
#      exact counters per XDP mode, restarts without losing counts, hotplug,
#      the Grafana dashboard and Prometheus rules, the live page in Chromium;
#      build/e2e-export.sh: remote_write and IPFIX into real receivers;
#      build/e2e-export-agent.sh: the agent's own sinks, on a veth pair;
#      build/k8s-check.sh: the Kubernetes manifests against their schemas
#   7. the appliance: static x86_64 and aarch64 builds (and the x86_64 one's
#      container image run under podman), aarch64 unit tests under
#      qemu-user, the init files checked (build/init-check.sh), and QEMU
#      boots of each architecture's image on every kernel of the matrix:
#      Linux 5.10, 6.1 and 6.12 from Debian and the OpenWrt-style 6.1
#      (--kernels 6.1 or NETPROBE_KERNELS=6.1: Debian's 6.1 alone)
#   8. a short benchmark run, so the bench keeps working (figures not asserted)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

# The fast tier. As root it drops every capability first, so a kernel test
# that lacks its `#[ignore = "kernel tier: ..."]` fails here, as it would
# for a contributor without root.
fast() {
	step "fast: imports point one way (build/layers.py: no cycle, leaves import nothing)"
	python3 build/layers.py --self-test
	step "fast: cargo fmt --check"
	cargo fmt --check
	step "fast: cargo clippy (all targets, warnings are errors)"
	cargo clippy --locked --all-targets --features testkit --quiet -- -D warnings
	step "fast: cargo test without privileges (unit, golden, parsers, HTTP abuse)"
	local drop=()
	[ "$(id -u)" -eq 0 ] && drop=(setpriv --bounding-set -all --inh-caps -all --)
	"${drop[@]}" cargo test --locked --all-targets --features testkit
}

case "${1:-}" in
--fast)
	start=$(date +%s)
	fast
	echo
	echo "test: fast tier passed in $(($(date +%s) - start)) s (the kernel, end-to-end and appliance tiers need root: sudo bash build/test.sh)"
	exit 0
	;;
--kernels)
	# The boot tests' kernels: all (the default) or 6.1 (also NETPROBE_KERNELS).
	case ${2:-} in
	all | 6.1) NETPROBE_KERNELS=$2 ;;
	*) echo "usage: build/test.sh [--fast | --kernels all|6.1]" >&2; exit 2 ;;
	esac
	;;
"") ;;
*)
	echo "usage: build/test.sh [--fast | --kernels all|6.1]" >&2
	exit 2
	;;
esac

[ "$(id -u)" -eq 0 ] || { echo "test: FAIL: run as root: the kernel and end-to-end tiers load BPF programs (build/test.sh --fast runs the rest without root)" >&2; exit 1; }

# What is worth keeping between runs (Debian packages and kernels, the
# clean-room base root, kernel BTF) lives outside the checkout, so a fresh
# clone reuses it: build/.cache points there unless it already exists.
if [ ! -e build/.cache ]; then
	mkdir -p "${NETPROBE_CACHE:-/var/cache/netprobe}"
	ln -s "${NETPROBE_CACHE:-/var/cache/netprobe}" build/.cache
fi

step "dependencies"
bash build/deps.sh

step "clean room: build/deps.sh on a fresh Debian 12 root"
bash build/cleanroom.sh

fast

step "probe objects match their sources"
bash build/probes.sh --check

step "kernel tier (cargo test -- --ignored: real probes, root)"
# co_re_relocates_against_debian_6_1 needs Debian's kernel BTF, which
# build/e2e-sockets.sh fetches and then runs it; verifier_cost is a tool
# that prints figures, not a test.
cargo test --locked --all-targets --features testkit -- --ignored --skip co_re_relocates_against_debian_6_1 --skip verifier_cost

step "end to end"
cargo build --locked --release --bin netprobe-agent
bash build/e2e.sh target/release/netprobe-agent
bash build/e2e-restart.sh target/release/netprobe-agent
bash build/e2e-hotplug.sh target/release/netprobe-agent
bash build/e2e-l3.sh target/release/netprobe-agent
bash build/e2e-ifaces.sh target/release/netprobe-agent
bash build/e2e-security.sh target/release/netprobe-agent
bash build/e2e-hardening.sh target/release/netprobe-agent
bash build/e2e-detect.sh target/release/netprobe-agent
bash build/e2e-sockets.sh target/release/netprobe-agent
bash build/e2e-dashboards.sh target/release/netprobe-agent
bash build/e2e-page.sh target/release/netprobe-agent
bash build/e2e-export.sh # the sinks into Prometheus, nfcapd, nfacctd, ipfixDump (about 70 s)
bash build/e2e-export-agent.sh target/release/netprobe-agent # the agent itself pushing and exporting (about 70 s)
bash build/k8s-check.sh target/release/netprobe-agent

step "appliance: static builds (x86_64 and aarch64 musl), and the x86_64 one's image under podman"
bash build/cross.sh
bash build/container-run.sh

step "appliance: unit and golden tests on aarch64 (qemu-aarch64-static)"
# qemu-user emulates /proc/self/stat with its memory fields at 0: the
# live read of the agent's own process figures is checked natively (the
# fast tier) and through e2e.sh's process_* metrics, not under emulation.
cargo test --locked --target aarch64-unknown-linux-musl --lib --test golden --test golden_sockets --test fuzz_parsers \
	-- --skip process::tests::reads_this_process

step "appliance: init files (systemd-analyze verify and security, sh -n, the same flags from all three)"
bash build/init-check.sh target/release/netprobe-agent

# The kernel matrix (docs/appliance.md): Debian 11's 5.10, 12's 6.1 and
# 13's 6.12 and the OpenWrt-style 6.1 (no BTF, no BPF_EVENTS), each on both
# architectures, one boot at a time (about 5 minutes more than 6.1 alone;
# a fresh cache first builds the OpenWrt-style kernels). build/kernel-table.sh
# prints the docs' table from the boots' result lines.
BOOTS=(x86_64/6.1 aarch64/6.1)
if [ "${NETPROBE_KERNELS:-all}" = all ]; then
	BOOTS+=(x86_64/5.10 aarch64/5.10 x86_64/6.12 aarch64/6.12 x86_64/openwrt aarch64/openwrt)
fi
mkdir -p target/appliance
: >target/appliance/boot-results.txt
for boot in "${BOOTS[@]}"; do
	step "appliance: boot test ${boot%/*}, kernel ${boot#*/} (QEMU, TCG)"
	bash build/boot-test.sh "${boot%/*}" "${boot#*/}" | tee -a target/appliance/boot-results.txt
done
step "appliance: the kernel matrix"
bash build/kernel-table.sh target/appliance/boot-results.txt

step "benchmark smoke run"
cargo run --locked --release --features testkit --bin netprobe-bench -- --quick
cargo run --locked --release --bin netprobe-sockbench -- --quick

echo
echo "test: all tiers passed"
