#!/usr/bin/env bash
# Builds the OpenWrt-style test kernel for one architecture: Linux 6.1 from
# Debian's linux-source-6.1 (bookworm, through the host's apt, so verified
# by Debian's archive keyring), `make tinyconfig`, the committed fragment
# build/kernel/openwrt-6.1.config, `make olddefconfig`. No BTF, no
# BPF_EVENTS, no modules. The kernel is built once and cached in
# build/.cache/kernels/ under a key that hashes the fragment, this script,
# the source package's version and the architecture: a change to any of
# them builds anew. The build tree is removed afterwards; the cache keeps
# the kernel, its .config, its release string and the build's log and time.
#
# Usage: build/kernel-openwrt.sh ARCH     ARCH: x86_64 or aarch64
#   prints the cached kernel's directory last (kernel, config, release, seconds)
# Needs: apt-get, make, gcc, flex, bison, bc, libelf-dev (x86_64's objtool),
# gcc-aarch64-linux-gnu (aarch64), xz (build/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "kernel-openwrt: FAIL: $*" >&2; exit 1; }
log() { echo "kernel-openwrt: $*" >&2; }

[ $# -eq 1 ] || die "usage: build/kernel-openwrt.sh x86_64|aarch64"
case $1 in
x86_64 | amd64) ARCH=x86_64 KARCH=x86_64 CROSS= TARGET=vmlinux ;;
aarch64 | arm64) ARCH=aarch64 KARCH=arm64 CROSS=aarch64-linux-gnu- TARGET=Image ;;
*) die "unknown architecture '$1' (x86_64 or aarch64)" ;;
esac
FRAGMENT=build/kernel/openwrt-6.1.config
for t in apt-get apt-cache dpkg-deb make gcc flex bison bc xz tar sha256sum ${CROSS:+${CROSS}gcc}; do
	command -v "$t" >/dev/null || die "$t is missing (run build/deps.sh)"
done
CACHE=${NETPROBE_CACHE:-build/.cache}
mkdir -p "$CACHE/debs" "$CACHE/kernels" "$CACHE/src"
CACHE=$(cd "$CACHE" && pwd)

SRCVER=$(apt-cache show --no-all-versions linux-source-6.1 2>/dev/null | sed -n 's/^Version: //p' | head -1)
[ -n "$SRCVER" ] || { apt-get update -qq; SRCVER=$(apt-cache show --no-all-versions linux-source-6.1 2>/dev/null | sed -n 's/^Version: //p' | head -1); }
[ -n "$SRCVER" ] || die "no Debian package linux-source-6.1"

# The fragment for this architecture: common lines, and lines marked with
# it, without the mark.
frag() {
	awk -v arch="$ARCH" '/^[[:space:]]*$/ { next } /^# CONFIG_/ { print; next } /^#/ { next }
		match($0, / *\([a-z0-9_]+\)$/) {
			m = substr($0, RSTART); sub(/^ *\(/, "", m); sub(/\)$/, "", m)
			if (m != arch) next
			$0 = substr($0, 1, RSTART - 1)
		}
		{ print }' "$FRAGMENT"
}
KEY=$( { frag; sha256sum <"$0"; echo "$SRCVER $ARCH"; } | sha256sum | cut -c1-12)
DEST=$CACHE/kernels/openwrt-6.1-$ARCH-$KEY
if [ -s "$DEST/$TARGET" ] && [ -s "$DEST/source-version" ]; then
	log "cached: $DEST ($(cat "$DEST/release"), built in $(cat "$DEST/seconds") s)"
	echo "$DEST"
	exit 0
fi

# --- source: linux-source-6.1, unpacked once ---------------------------------
DEB=$CACHE/debs/linux-source-6.1_${SRCVER//:/%3a}_all.deb
if [ ! -s "$DEB" ]; then
	log "downloading linux-source-6.1 $SRCVER (about 140 MB)"
	(cd "$CACHE/debs" && apt-get download -q=2 "linux-source-6.1=$SRCVER" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || true
	[ -s "$DEB" ] || die "apt-get download linux-source-6.1=$SRCVER failed"
fi
SRC=$CACHE/src/linux-source-6.1-$SRCVER
if [ ! -e "$SRC/.done" ]; then
	log "unpacking linux-source-6.1 $SRCVER"
	rm -rf "$SRC"
	mkdir -p "$SRC"
	dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/src/linux-source-6.1.tar.xz | tar -xJ -C "$SRC" --strip-components=1
	[ -f "$SRC/Makefile" ] || die "no kernel tree in $DEB"
	touch "$SRC/.done"
fi

# --- configure and build -------------------------------------------------------
BUILD=$(mktemp -d "$CACHE/kernels/build-$ARCH.XXXXXX")
trap 'rm -rf "$BUILD"' EXIT
MK=(make -C "$SRC" O="$BUILD" ARCH="$KARCH" ${CROSS:+CROSS_COMPILE=$CROSS} -s)
start=$(date +%s)
frag >"$BUILD/fragment.config"
"${MK[@]}" tinyconfig >/dev/null
(cd "$BUILD" && KCONFIG_CONFIG=.config "$SRC/scripts/kconfig/merge_config.sh" -m -O "$BUILD" .config fragment.config >/dev/null)
"${MK[@]}" olddefconfig >/dev/null
# Every line of the fragment holds in the final .config.
bad=
while IFS= read -r line; do
	case $line in
	"# CONFIG_"*" is not set")
		sym=${line#"# "}
		sym=${sym%% *}
		grep -qE "^$sym=[ym]" "$BUILD/.config" && bad="$bad $sym(on)"
		;;
	CONFIG_*) grep -qxF "$line" "$BUILD/.config" || bad="$bad ${line%%=*}(not set)" ;;
	esac
done <"$BUILD/fragment.config"
[ -z "$bad" ] || die "the fragment did not take:$bad (see its dependencies in make menuconfig)"
log "building Linux $SRCVER ($ARCH, tinyconfig + $FRAGMENT) with $(nproc) jobs"
"${MK[@]}" -j"$(nproc)" "$TARGET" >"$BUILD/build.log" 2>&1 || { tail -30 "$BUILD/build.log" >&2; die "the kernel build failed"; }
secs=$(($(date +%s) - start))

mkdir -p "$DEST.tmp"
case $TARGET in
vmlinux) cp "$BUILD/vmlinux" "$DEST.tmp/vmlinux" ;;
Image) cp "$BUILD/arch/arm64/boot/Image" "$DEST.tmp/Image" ;;
esac
cp "$BUILD/.config" "$DEST.tmp/config"
cp "$BUILD/build.log" "$DEST.tmp/build.log"
"${MK[@]}" kernelrelease >"$DEST.tmp/release"
echo "$secs" >"$DEST.tmp/seconds"
echo "$SRCVER" >"$DEST.tmp/source-version"
rm -rf "$DEST"
mv "$DEST.tmp" "$DEST"
log "built $(cat "$DEST/release") for $ARCH in $secs s: $DEST ($TARGET $(($(stat -c %s "$DEST/$TARGET") / 1024)) KiB)"
echo "$DEST"
