#!/usr/bin/env bash
# Runs every test tier, as root, on a fresh machine:
#   1. build/deps.sh installs what the tests need (clang, bpftool, promtool, ...)
#   2. the committed probe objects must equal a fresh build (build/probes.sh --check)
#   3. cargo test: unit tests, golden files, and kernel tests (the real probes
#      through BPF_PROG_TEST_RUN)
#   4. build/e2e*.sh: the agent binary on a veth pair between two namespaces:
#      exact counters per XDP mode, restarts without losing counts, hotplug
#   5. the appliance: static x86_64 and aarch64 builds, aarch64 unit tests
#      under qemu-user, and a QEMU boot of each architecture's image
#   6. a short benchmark run, so the bench keeps working (figures not asserted)
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "test: FAIL: run as root: the kernel and end-to-end tiers load BPF programs" >&2; exit 1; }

step() { printf '\n=== %s\n' "$*"; }

step "dependencies"
bash build/deps.sh

step "probe objects match their sources"
bash build/probes.sh --check

step "cargo test (unit, golden, kernel)"
cargo test --locked --all-targets

step "end to end"
cargo build --locked --release --bin netprobe-agent
bash build/e2e.sh target/release/netprobe-agent
bash build/e2e-restart.sh target/release/netprobe-agent
bash build/e2e-hotplug.sh target/release/netprobe-agent
bash build/e2e-security.sh target/release/netprobe-agent
bash build/e2e-detect.sh target/release/netprobe-agent
bash build/e2e-sockets.sh target/release/netprobe-agent

step "appliance: static builds (x86_64 and aarch64 musl)"
bash build/cross.sh

step "appliance: unit and golden tests on aarch64 (qemu-aarch64-static)"
cargo test --locked --target aarch64-unknown-linux-musl --lib --test golden --test golden_sockets --test fuzz_parsers

step "appliance: boot test x86_64 (QEMU, TCG)"
bash build/boot-test.sh x86_64

step "appliance: boot test aarch64 (QEMU, TCG)"
bash build/boot-test.sh aarch64

step "benchmark smoke run"
cargo run --locked --release --bin netprobe-bench -- --quick
cargo run --locked --release --bin netprobe-sockbench -- --quick

echo
echo "test: all tiers passed"
