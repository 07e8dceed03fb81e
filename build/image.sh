#!/usr/bin/env bash
# Assembles a minimal bootable test image of the appliance for one
# architecture, from Debian bookworm packages:
#   - the Debian kernel (linux-image-<abi>-amd64 / -arm64, 6.1), which has
#     BTF; on x86_64 the uncompressed vmlinux is unpacked from the bzImage
#     so QEMU boots it through PVH without the slow in-guest decompression
#   - busybox-static of the target architecture (init, sh, ip, wget, ...)
#   - the kernel modules virtio-net and TC need, with their dependencies,
#     loaded in order by the guest's init (what is built in is skipped)
#   - the overlay (rootfs/common, rootfs/sysvinit) and the static agent
#     (build/cross.sh) at /usr/sbin/netprobe-agent
#   - a test init: /etc/init.d/rcS starts the agent through
#     /etc/init.d/netprobe, and /usr/libexec/netprobe-selftest checks it
#     from inside the guest, printing NETPROBE-GUEST-* lines on the console
# The result is a kernel and an initramfs (newc cpio) in
# $CARGO_TARGET_DIR/appliance/ARCH/ (default target/), with image.env for
# build/boot-test.sh. Downloads and unpacked packages are cached in
# build/.cache (NETPROBE_CACHE), so a rerun takes seconds.
#
# Usage: build/image.sh ARCH            ARCH: x86_64 (amd64) or aarch64 (arm64)
#   NETPROBE_AGENT=path  use this agent binary instead of running build/cross.sh
# Needs: apt-get (root, for arm64: dpkg --add-architecture arm64), cpio, xz.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "image: FAIL: $*" >&2; exit 1; }
log() { echo "image: $*"; }

[ $# -eq 1 ] || die "usage: build/image.sh x86_64|aarch64"
case $1 in
x86_64 | amd64) ARCH=x86_64 DEBARCH=amd64 CONSOLE=ttyS0 ;;
aarch64 | arm64) ARCH=aarch64 DEBARCH=arm64 CONSOLE=ttyAMA0 ;;
*) die "unknown architecture '$1' (x86_64 or aarch64)" ;;
esac

# Modules the image needs: the virtio NIC (virtio_pci, virtio_net and
# through it net_failover, failover) and TC before 6.6 (sch_ingress holds
# clsact; cls_bpf). Dependencies are added from each module's modinfo.
WANT_MODULES=(virtio_pci virtio_net sch_ingress cls_bpf)

CACHE=${NETPROBE_CACHE:-build/.cache}
OUT=${CARGO_TARGET_DIR:-target}/appliance/$ARCH
for t in apt-get apt-cache dpkg dpkg-deb cpio xz gzip; do
	command -v "$t" >/dev/null || die "$t is missing"
done
mkdir -p "$CACHE/debs" "$OUT"
CACHE=$(cd "$CACHE" && pwd)
OUT=$(cd "$OUT" && pwd)
start=$(date +%s)

# --- the agent --------------------------------------------------------------
if [ -n "${NETPROBE_AGENT:-}" ]; then
	AGENT=$NETPROBE_AGENT
else
	bash build/cross.sh "$ARCH" | grep '^cross: .*bytes' || die "build/cross.sh $ARCH failed"
	AGENT=$(bash build/cross.sh --print-path "$ARCH")
fi
[ -x "$AGENT" ] || die "agent binary $AGENT not found"

# --- Debian packages ---------------------------------------------------------
if [ "$DEBARCH" != "$(dpkg --print-architecture)" ] &&
	! dpkg --print-foreign-architectures | grep -qx "$DEBARCH"; then
	log "dpkg --add-architecture $DEBARCH"
	dpkg --add-architecture "$DEBARCH"
	apt-get update -qq
fi

# One apt-cache call (each takes seconds): the kernel meta package names the
# current ABI package and its exact version; busybox-static's candidate.
resolve() {
	apt-cache show --no-all-versions "linux-image-$DEBARCH:$DEBARCH" "busybox-static:$DEBARCH" 2>/dev/null |
		awk '/^Package:/ { p = $2 }
			p == "busybox-static" && /^Version:/ { print "BB_VER=" $2 }
			p ~ /^linux-image-/ && /^Depends:/ && !k {
				for (i = 2; i <= NF; i++) if ($i ~ /^linux-image-[0-9]/ && !k) {
					k = 1; print "KPKG=" $i; v = $(i + 2); sub(/\)[,]?$/, "", v); print "KVER_DEB=" v
				}
			}'
}
PKGS=$(resolve)
if ! grep -q '^KPKG=' <<<"$PKGS" || ! grep -q '^BB_VER=' <<<"$PKGS"; then
	apt-get update -qq
	PKGS=$(resolve)
fi
KPKG=$(sed -n 's/^KPKG=//p' <<<"$PKGS")
KVER_DEB=$(sed -n 's/^KVER_DEB=//p' <<<"$PKGS")
BB_VER=$(sed -n 's/^BB_VER=//p' <<<"$PKGS")
if [ -z "$KPKG" ] || [ -z "$KVER_DEB" ]; then die "cannot resolve linux-image-$DEBARCH to a kernel package"; fi
[ -n "$BB_VER" ] || die "no Debian package busybox-static:$DEBARCH"

# deb_file PKG VERSION: the cached .deb of PKG:DEBARCH=VERSION, downloaded
# when missing.
deb_file() {
	local pkg=$1 ver=$2 file
	file=$CACHE/debs/${pkg}_${ver//:/%3a}_$DEBARCH.deb
	if [ ! -s "$file" ]; then
		log "downloading $pkg:$DEBARCH $ver" >&2
		(
			cd "$CACHE/debs"
			apt-get download -q=2 "$pkg:$DEBARCH=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2
		) || true
		[ -s "$file" ] || die "apt-get download $pkg:$DEBARCH=$ver failed"
	fi
	echo "$file"
}

# unpacked DEB: the directory DEB is unpacked in (once).
unpacked() {
	[ -s "$1" ] || die "no package file '$1'"
	local dir
	dir=$CACHE/unpacked/$(basename "$1" .deb)
	if [ ! -e "$dir/.done" ]; then
		rm -rf "$dir"
		mkdir -p "$dir"
		dpkg-deb -x "$1" "$dir"
		touch "$dir/.done"
	fi
	echo "$dir"
}

KDEB=$(deb_file "$KPKG" "$KVER_DEB")
BBDEB=$(deb_file busybox-static "$BB_VER")
KDIR=$(unpacked "$KDEB")
BBDIR=$(unpacked "$BBDEB")
KVER=$(find "$KDIR/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -1)
MODDIR=$KDIR/lib/modules/$KVER
log "kernel $KPKG $KVER_DEB, busybox-static $BB_VER ($DEBARCH)"

# --- kernel -----------------------------------------------------------------
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "$VMLINUZ missing"
if [ "$ARCH" = x86_64 ]; then
	# The bzImage decompresses itself in about 5 s under TCG; QEMU boots
	# the ELF vmlinux directly through its PVH entry (CONFIG_PVH), so
	# unpack it once (what scripts/extract-vmlinux does).
	KERNEL=$CACHE/vmlinux-$KVER
	if [ ! -s "$KERNEL" ]; then
		off=$(grep -abo $'\xfd7zXZ\x00' "$VMLINUZ" | head -1 | cut -d: -f1 || true)
		[ -n "$off" ] || die "no xz payload in $VMLINUZ (CONFIG_KERNEL_XZ?)"
		tail -c +$((off + 1)) "$VMLINUZ" | xz -dc >"$KERNEL.tmp" 2>/dev/null || true
		head -c 4 "$KERNEL.tmp" | grep -q 'ELF' || die "unpacking vmlinux from $VMLINUZ failed"
		mv "$KERNEL.tmp" "$KERNEL"
	fi
	KERNEL_FORMAT=pvh
else
	# arm64's vmlinuz is an uncompressed Image.
	KERNEL=$VMLINUZ
	KERNEL_FORMAT=image
fi

# --- modules ----------------------------------------------------------------
# name -> path (relative to $MODDIR), names with - as _.
declare -A MODPATH
while IFS= read -r p; do
	n=${p##*/}
	n=${n%.ko}
	MODPATH[${n//-/_}]=$p
done < <(cd "$MODDIR" && find kernel -name '*.ko')
declare -A BUILTIN SEEN
while IFS= read -r p; do
	n=${p##*/}
	n=${n%.ko}
	BUILTIN[${n//-/_}]=1
done <"$MODDIR/modules.builtin"

ORDER=()
add_module() {
	local m=${1//-/_} deps d
	[ -z "${SEEN[$m]:-}" ] || return 0
	SEEN[$m]=1
	if [ -n "${BUILTIN[$m]:-}" ]; then
		BUILT_IN+=("$m")
		return 0
	fi
	[ -n "${MODPATH[$m]:-}" ] || die "module $m is neither built into $KVER nor shipped as a module"
	deps=$(tr '\0' '\n' <"$MODDIR/${MODPATH[$m]}" | grep -a -m1 '^depends=' | cut -d= -f2 || true)
	for d in ${deps//,/ }; do add_module "$d"; done
	ORDER+=("$m")
}
BUILT_IN=()
for m in "${WANT_MODULES[@]}"; do add_module "$m"; done
log "modules to load: ${ORDER[*]}${BUILT_IN[*]:+ (built in: ${BUILT_IN[*]})}"

# --- root filesystem ---------------------------------------------------------
STAGE=$OUT/rootfs
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,usr/libexec,proc,sys,dev,run,tmp,root,etc/netprobe-image,var/log}
ln -s ../run "$STAGE/var/run"
install -m 0755 "$BBDIR/bin/busybox" "$STAGE/bin/busybox"
ln -s busybox "$STAGE/bin/sh"
cp -a rootfs/common/. rootfs/sysvinit/. "$STAGE/"
install -m 0755 "$AGENT" "$STAGE/usr/sbin/netprobe-agent"

for m in "${ORDER[@]}"; do
	install -D -m 0644 "$MODDIR/${MODPATH[$m]}" "$STAGE/lib/modules/$KVER/${MODPATH[$m]}"
	echo "${MODPATH[$m]}" >>"$STAGE/etc/netprobe-image/modules"
done
touch "$STAGE/etc/netprobe-image/modules"
echo "$KVER" >"$STAGE/etc/netprobe-image/kernel"

# The operator's settings, as one would set them on an appliance.
cat >>"$STAGE/etc/default/netprobe" <<'EOF'

# Test image (build/image.sh): every address, so that build/boot-test.sh
# scrapes the guest from the host (QEMU user networking forwards to
# 10.0.2.15) and the self-test from inside it (127.0.0.1).
NETWORK_INTERFACE="eth0"
NETPROBE_LISTEN="0.0.0.0"
NETPROBE_ARGS="--collect-interval 1s"
NETPROBE_RESPAWN_DELAY=1
EOF

echo netprobe >"$STAGE/etc/hostname"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$STAGE/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$STAGE/etc/group"

cat >"$STAGE/init" <<'EOF'
#!/bin/sh
# Kernel's first process: applet links, then busybox init (/etc/inittab).
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
exec /sbin/init
EOF

cat >"$STAGE/etc/inittab" <<'EOF'
::sysinit:/etc/init.d/rcS
::once:/usr/libexec/netprobe-selftest
::askfirst:-/bin/sh
::shutdown:/etc/init.d/netprobe stop
::ctrlaltdel:/sbin/reboot
EOF

cat >"$STAGE/etc/init.d/rcS" <<'EOF'
#!/bin/sh
# Test image boot: file systems, modules, network (QEMU user networking:
# 10.0.2.15, gateway 10.0.2.2), syslog on the console, then the agent.
grep -q ' /proc ' /proc/mounts 2>/dev/null || mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t bpf -o mode=0700 bpf /sys/fs/bpf
hostname -F /etc/hostname
kver=$(cat /etc/netprobe-image/kernel)
while read -r ko; do
	insmod "/lib/modules/$kver/$ko" || echo "NETPROBE-GUEST-ERROR: insmod $ko failed"
done </etc/netprobe-image/modules
ip link set lo up
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
syslogd -O /dev/console
/etc/init.d/netprobe start
EOF

cat >"$STAGE/usr/libexec/netprobe-selftest" <<'EOF'
#!/bin/sh
# Checks from inside the guest, the way an operator would, with markers on
# the console that build/boot-test.sh reads:
#   NETPROBE-GUEST-SCRAPE: busybox wget of /metrics (line count)
#   NETPROBE-GUEST-STATUS: /etc/init.d/netprobe status
#   NETPROBE-GUEST-WAITING: the host checks the undisturbed agent, then
#     connects to port 8099 (nc) to let the self-test go on
#   NETPROBE-GUEST-RESTART: /etc/init.d/netprobe restart, agent back
#   NETPROBE-GUEST-RESPAWN: agent killed (SIGKILL), supervisor restarts it
#   NETPROBE-GUEST-DONE
# Off with netprobe.selftest=0 on the kernel command line (boot-test.sh --shell).
grep -q 'netprobe.selftest=0' /proc/cmdline && exit 0
URL=http://127.0.0.1:8081
PIDS=/var/run/netprobe-agent.pid
say() { echo "NETPROBE-GUEST-$*" >/dev/console; }
up() { cut -d' ' -f1 /proc/uptime; }
healthy() {
	i=0
	while [ $i -lt 240 ]; do
		# (timeout, not wget -T: busybox 1.35's wget crashes on -T.)
		timeout 3 wget -qO- "$URL/healthz" >/dev/null 2>&1 && return 0
		sleep 0.25
		i=$((i + 1))
	done
	return 1
}

if healthy; then
	timeout 10 wget -qO /tmp/metrics "$URL/metrics"
	say "SCRAPE: ok lines=$(wc -l </tmp/metrics) bytes=$(wc -c </tmp/metrics) uptime=$(up)"
else
	say "SCRAPE: FAIL: no answer from $URL/healthz within 60 s (uptime $(up))"
fi

st=$(/etc/init.d/netprobe status)
say "STATUS: rc=$? $st"

say "WAITING: for a connection to port 8099"
if timeout 180 nc -l -p 8099 </dev/null >/dev/null 2>&1; then
	say "GO: uptime=$(up)"
else
	say "GO: nobody connected within 180 s, going on"
fi

/etc/init.d/netprobe restart >/dev/console 2>&1
if healthy; then say "RESTART: ok uptime=$(up)"; else say "RESTART: FAIL"; fi

old=$(cat $PIDS 2>/dev/null)
kill -KILL "$old" 2>/dev/null
i=0
new=
while [ $i -lt 120 ]; do
	sleep 0.25
	i=$((i + 1))
	new=$(cat $PIDS 2>/dev/null) || continue
	[ -n "$new" ] && [ "$new" != "$old" ] && break
done
if [ -n "$new" ] && [ "$new" != "$old" ] && healthy; then
	say "RESPAWN: ok old=$old new=$new uptime=$(up)"
else
	say "RESPAWN: FAIL old=$old new=$new"
fi
say "DONE uptime=$(up)"
EOF
chmod 0755 "$STAGE/init" "$STAGE/etc/init.d/rcS" "$STAGE/usr/libexec/netprobe-selftest"

# --- initramfs ---------------------------------------------------------------
INITRD=$OUT/initramfs.cpio.gz
(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$INITRD.tmp"
mv "$INITRD.tmp" "$INITRD"

cat >"$OUT/image.env" <<EOF
ARCH=$ARCH
KERNEL=$KERNEL
KERNEL_FORMAT=$KERNEL_FORMAT
KERNEL_VERSION=$KVER
INITRD=$INITRD
CONSOLE=$CONSOLE
EOF
log "$ARCH image in $OUT: kernel $(basename "$KERNEL") ($KERNEL_FORMAT), initramfs $(($(stat -c %s "$INITRD") / 1024)) KiB, agent $(stat -c %s "$AGENT") bytes ($(($(date +%s) - start)) s)"
