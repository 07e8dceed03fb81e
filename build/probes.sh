#!/usr/bin/env bash
# Compiles every probes/*.bpf.c into probes/*.bpf.o. The objects are
# committed: the agent embeds them, so a plain `cargo build` needs no clang.
#
#   build/probes.sh          rebuild the objects in place
#   build/probes.sh --check  rebuild into a temp dir; fail, naming the file,
#                            if a committed object is missing or differs
#
# Output does not depend on the checkout path (prefix maps) and carries BTF
# but no DWARF (llvm-strip -g keeps .BTF and .BTF.ext).
# -mcpu=v3 (ALU32, JMP32) needs kernel 5.1+; the probes need 5.8 anyway.
set -euo pipefail

CLANG=${CLANG:-clang-14}
LLVM_STRIP=${LLVM_STRIP:-llvm-strip-14}
LLVM_OBJCOPY=${LLVM_OBJCOPY:-llvm-objcopy-14}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

for tool in "$CLANG" "$LLVM_STRIP" "$LLVM_OBJCOPY"; do
	if ! command -v "$tool" >/dev/null; then
		echo "build/probes.sh: $tool not found; run build/deps.sh (Debian: clang-14, llvm-14)" >&2
		exit 2
	fi
done

# Debian keeps <asm/types.h> under the multiarch directory, which a
# -target bpfel compile does not search.
multiarch=$("$CLANG" -print-multiarch)

# The probes need no C library: only kernel UAPI headers (linux/, asm/,
# asm-generic/), libbpf's (bpf/), the compiler's own and the project's.
# A libc header would tie the build to what a machine happens to have
# installed (glibc's <gnu/stubs.h> asks for the 32-bit stubs when it sees
# neither x86_64 nor i386).
allowed_roots=(
	"probes/include/" "/usr/include/linux/" "/usr/include/asm-generic/"
	"/usr/include/$multiarch/asm/" "/usr/include/bpf/" "$("$CLANG" -print-resource-dir)/include/"
)

# check_includes SRC: fail, naming the header and the chain of includes
# that pulled it in, if SRC reaches a header outside allowed_roots.
check_includes() {
	local src=$1 trace line depth path root ok bad=0
	local -a chain=("$src")
	# -H prints each header on stderr, one dot per nesting level. The
	# preprocessor stops at a missing header, which -H still shows.
	trace=$("$CLANG" -E -H -target bpfel -mcpu=v3 -I probes/include -idirafter "/usr/include/$multiarch" \
		"$src" -o /dev/null 2>&1 >/dev/null | grep -E '^\.+ ' || true)
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		depth=${line%%[!.]*}
		depth=${#depth}
		path=${line#* }
		chain=("${chain[@]:0:depth}" "$path")
		ok=0
		for root in "${allowed_roots[@]}"; do
			case "$path" in "$root"* | "./$root"*) ok=1 ;; esac
		done
		if [ "$ok" -eq 0 ]; then
			echo "build/probes.sh: $src includes $path, which is not a kernel UAPI, libbpf or project header:" >&2
			printf '    %s\n' "${chain[@]}" >&2
			bad=1
			break
		fi
	done <<<"$trace"
	return "$bad"
}

compile() { # compile SRC OUT
	"$CLANG" -O2 -g -target bpfel -mcpu=v3 -Wall -Werror \
		-I probes/include -idirafter "/usr/include/$multiarch" \
		-ffile-prefix-map="$root=." -fdebug-prefix-map="$root=." \
		-c "$1" -o "$2"
	"$LLVM_STRIP" -g "$2"
	# Line and function info (.BTF.ext) only annotate verifier messages with
	# source lines, and cost netprobe.bpf.o more than half its size (350 KB
	# of the appliance binary). Kept where CO-RE relocations live in it
	# (socket.bpf.o); NETPROBE_LINE_INFO=1 keeps it everywhere, for
	# debugging a verifier refusal.
	if [ "$(basename "$1")" != socket.bpf.c ] && [ -z "${NETPROBE_LINE_INFO:-}" ]; then
		"$LLVM_OBJCOPY" --remove-section .BTF.ext --remove-section .rel.BTF.ext "$2"
	fi
}

shopt -s nullglob
sources=(probes/*.bpf.c)
if [ ${#sources[@]} -eq 0 ]; then
	echo "build/probes.sh: no probes/*.bpf.c" >&2
	exit 2
fi

for src in "${sources[@]}"; do
	check_includes "$src" || {
		echo "build/probes.sh: take what the probe needs from a header that does not reach into the C library (write the struct out in probes/include, or use vmlinux.h)" >&2
		exit 1
	}
done

case "${1:-}" in
"")
	for src in "${sources[@]}"; do
		out=${src%.c}.o
		tmp=$out.tmp
		compile "$src" "$tmp"
		mv "$tmp" "$out"
		echo "built $out"
	done
	;;
--check)
	tmpdir=$(mktemp -d)
	trap 'rm -rf "$tmpdir"' EXIT
	stale=0
	for src in "${sources[@]}"; do
		out=${src%.c}.o
		fresh=$tmpdir/$(basename "$out")
		compile "$src" "$fresh"
		if [ ! -f "$out" ]; then
			echo "build/probes.sh --check: $out is missing: run build/probes.sh and commit it" >&2
			stale=1
		elif ! cmp -s "$fresh" "$out"; then
			echo "build/probes.sh --check: $out differs from a fresh build of $src: run build/probes.sh and commit it" >&2
			stale=1
		fi
	done
	for obj in probes/*.bpf.o; do
		if [ ! -f "${obj%.o}.c" ]; then
			echo "build/probes.sh --check: $obj has no source ${obj%.o}.c: remove it" >&2
			stale=1
		fi
	done
	[ "$stale" -eq 0 ] && echo "probes up to date (${#sources[@]} objects)"
	exit "$stale"
	;;
*)
	echo "usage: build/probes.sh [--check]" >&2
	exit 2
	;;
esac
