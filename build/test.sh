#!/usr/bin/env bash
# Runs every test tier, as root, on a fresh Debian 12 machine with a Rust
# toolchain (see the README for what it needs and how long it takes):
#   1. build/deps.sh installs what the tests need (clang, bpftool, promtool, ...)
#   2. the clean room: build/deps.sh, the probe check and every command the
#      tests run, in a fresh minimal Debian 12 root (build/cleanroom.sh)
#   3. the fast tier (also alone: build/test.sh --fast, no root needed):
#      cargo fmt --check, cargo clippy -D warnings, and cargo test without
#      privileges (unit, golden, parsers, HTTP abuse; the kernel tier is
#      listed as ignored)
#   4. the committed probe objects must equal a fresh build (build/probes.sh --check)
#   5. the kernel tier: the real probes through BPF_PROG_TEST_RUN and the
#      socket probes on real connections (the tests `cargo test` ignores)
#   6. build/e2e*.sh: the agent binary on a veth pair between two namespaces:
#      exact counters per XDP mode, restarts without losing counts, hotplug,
#      the Grafana dashboard and Prometheus rules, the live page in Chromium;
#      build/e2e-export.sh: remote_write and IPFIX into real receivers;
#      build/k8s-check.sh: the Kubernetes manifests against their schemas
#   7. the appliance: static x86_64 and aarch64 builds (and the x86_64 one's
#      container image run under podman), aarch64 unit tests under
#      qemu-user, the init files checked (build/init-check.sh), and a QEMU
#      boot of each architecture's image
#   8. a short benchmark run, so the bench keeps working (figures not asserted)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*"; }

# The fast tier. As root it drops every capability first, so a kernel test
# that lacks its `#[ignore = "kernel tier: ..."]` fails here, as it would
# for a contributor without root.
fast() {
	step "fast: cargo fmt --check"
	cargo fmt --check
	step "fast: cargo clippy (all targets, warnings are errors)"
	cargo clippy --locked --all-targets --quiet -- -D warnings
	step "fast: cargo test without privileges (unit, golden, parsers, HTTP abuse)"
	local drop=()
	[ "$(id -u)" -eq 0 ] && drop=(setpriv --bounding-set -all --inh-caps -all --)
	"${drop[@]}" cargo test --locked --all-targets
}

case "${1:-}" in
--fast)
	start=$(date +%s)
	fast
	echo
	echo "test: fast tier passed in $(($(date +%s) - start)) s (the kernel, end-to-end and appliance tiers need root: sudo bash build/test.sh)"
	exit 0
	;;
"") ;;
*)
	echo "usage: build/test.sh [--fast]" >&2
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
cargo test --locked --all-targets -- --ignored --skip co_re_relocates_against_debian_6_1 --skip verifier_cost

step "end to end"
cargo build --locked --release --bin netprobe-agent
bash build/e2e.sh target/release/netprobe-agent
bash build/e2e-restart.sh target/release/netprobe-agent
bash build/e2e-hotplug.sh target/release/netprobe-agent
bash build/e2e-l3.sh target/release/netprobe-agent
bash build/e2e-security.sh target/release/netprobe-agent
bash build/e2e-hardening.sh target/release/netprobe-agent
bash build/e2e-detect.sh target/release/netprobe-agent
bash build/e2e-sockets.sh target/release/netprobe-agent
bash build/e2e-dashboards.sh target/release/netprobe-agent
bash build/e2e-page.sh target/release/netprobe-agent
bash build/e2e-export.sh # the sinks into Prometheus, nfcapd, nfacctd, ipfixDump (about 70 s)
bash build/k8s-check.sh target/release/netprobe-agent

step "appliance: static builds (x86_64 and aarch64 musl), and the x86_64 one's image under podman"
bash build/cross.sh
bash build/container-run.sh

step "appliance: unit and golden tests on aarch64 (qemu-aarch64-static)"
cargo test --locked --target aarch64-unknown-linux-musl --lib --test golden --test golden_sockets --test fuzz_parsers

step "appliance: init files (systemd-analyze verify and security, sh -n, the same flags from all three)"
bash build/init-check.sh target/release/netprobe-agent

step "appliance: boot test x86_64 (QEMU, TCG)"
bash build/boot-test.sh x86_64

step "appliance: boot test aarch64 (QEMU, TCG)"
bash build/boot-test.sh aarch64

step "benchmark smoke run"
cargo run --locked --release --bin netprobe-bench -- --quick
cargo run --locked --release --bin netprobe-sockbench -- --quick

echo
echo "test: all tiers passed"
