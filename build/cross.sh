#!/usr/bin/env bash
# Static, stripped netprobe-agent binaries for the appliance targets:
#   x86_64   -> x86_64-unknown-linux-musl
#   aarch64  -> aarch64-unknown-linux-musl (linker aarch64-linux-gnu-gcc,
#               set in .cargo/config.toml)
# The release profile (Cargo.toml) is size-tuned: opt-level "s", LTO, one
# codegen unit, panic = "abort", strip. Binaries land in
# $CARGO_TARGET_DIR/<triple>/release/netprobe-agent (default target/).
#
# Usage: build/cross.sh [x86_64|aarch64|all]...   (default: all)
#        build/cross.sh --print-path ARCH         (path of ARCH's binary)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "cross: FAIL: $*" >&2; exit 1; }

triple_of() {
	case $1 in
	x86_64 | amd64) echo x86_64-unknown-linux-musl ;;
	aarch64 | arm64) echo aarch64-unknown-linux-musl ;;
	*) die "unknown architecture '$1' (x86_64 or aarch64)" ;;
	esac
}

TARGET_DIR=${CARGO_TARGET_DIR:-target}
bin_path() { echo "$TARGET_DIR/$(triple_of "$1")/release/netprobe-agent"; }

if [ "${1:-}" = --print-path ]; then
	[ $# -eq 2 ] || die "usage: build/cross.sh --print-path ARCH"
	bin_path "$2"
	exit 0
fi

archs=("$@")
[ ${#archs[@]} -gt 0 ] || archs=(all)
[ "${archs[*]}" = all ] && archs=(x86_64 aarch64)

targets=()
for a in "${archs[@]}"; do
	t=$(triple_of "$a")
	targets+=(--target "$t")
	if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$t"; then
		echo "cross: rustup target add $t"
		rustup target add "$t" >/dev/null
	fi
	if [ "$t" = aarch64-unknown-linux-musl ]; then
		command -v aarch64-linux-gnu-gcc >/dev/null ||
			die "aarch64-linux-gnu-gcc is missing (apt-get install gcc-aarch64-linux-gnu)"
	fi
done

start=$(date +%s)
cargo build --locked --release --bin netprobe-agent "${targets[@]}"
echo "cross: built in $(($(date +%s) - start)) s"

for a in "${archs[@]}"; do
	b=$(bin_path "$a")
	[ -x "$b" ] || die "$b was not produced"
	# Static: no program interpreter, no shared libraries.
	if readelf -lW "$b" | grep -q 'INTERP\|Requesting program interpreter'; then
		die "$b is dynamically linked"
	fi
	if readelf -dW "$b" 2>/dev/null | grep -q NEEDED; then
		die "$b needs shared libraries: $(readelf -dW "$b" | grep NEEDED)"
	fi
	# Stripped: no symbol table (the profile strips; this catches a change).
	if readelf -SW "$b" | grep -q '\.symtab'; then
		die "$b is not stripped"
	fi
	size=$(stat -c %s "$b")
	printf 'cross: %-28s %s  %d bytes (%d KiB), static, stripped\n' \
		"$(triple_of "$a")" "$b" "$size" $(((size + 1023) / 1024))
done
