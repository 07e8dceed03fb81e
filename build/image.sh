#!/usr/bin/env bash
# Assembles a minimal bootable test image of the appliance for one
# architecture and kernel series, from Debian packages:
#   - the Debian kernel of the series (linux-image-<abi>-amd64 / -arm64),
#     which has BTF: 5.10 from bullseye (or bullseye-security), 6.1 from
#     bookworm, 6.12 from trixie; on x86_64 the uncompressed vmlinux is
#     unpacked from the bzImage (xz, zstd or gzip, as the kernel's config
#     says) so QEMU boots it through PVH without the slow in-guest
#     decompression
#   - busybox-static of the target architecture (init, sh, ip, wget, ...)
#     and bpftool with its libraries (the guest checks that --cleanup
#     leaves no program), both from bookworm whatever the kernel
#   - the kernel modules virtio-net and TC need, with their dependencies,
#     loaded in order by the guest's init (what is built in is skipped);
#     /lib/modules or merged-/usr /usr/lib/modules, plain or compressed
#     (.ko.xz, .ko.zst, .ko.gz: unpacked into the image)
#   - the overlay (rootfs/common, rootfs/sysvinit) and the static agent
#     (build/cross.sh) at /usr/sbin/netprobe-agent
#   - a test init: /etc/init.d/rcS starts the agent through
#     /etc/init.d/netprobe, and /usr/libexec/netprobe-selftest checks it
#     from inside the guest, printing NETPROBE-GUEST-* lines on the console
# The result is a kernel and an initramfs (newc cpio) in
# $CARGO_TARGET_DIR/appliance/ARCH-SERIES/ (default target/), with image.env
# for build/boot-test.sh. Downloads and unpacked packages are cached in
# build/.cache (NETPROBE_CACHE), so a rerun takes seconds.
#
# Bookworm packages come through the host's apt (a Debian 12 machine).
# Bullseye's and trixie's come through a private apt state in
# build/.cache/apt/SUITE whose sources are signed-by Debian's archive
# keyring (debian-archive-keyring): apt-get verifies the Release file's
# signature and every package's hash, as for the host's own packages.
#
# Usage: build/image.sh ARCH [SERIES]   ARCH: x86_64 (amd64) or aarch64 (arm64)
#   SERIES: 6.1 (default, Debian 12), 5.10 (Debian 11), 6.12 (Debian 13),
#     openwrt (6.1 built the OpenWrt way by build/kernel-openwrt.sh: no BTF,
#     no BPF_EVENTS, everything built in)
#   NETPROBE_AGENT=path  use this agent binary instead of running build/cross.sh
# Needs: apt-get (root, for arm64: dpkg --add-architecture arm64), cpio, xz,
# zstd.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "image: FAIL: $*" >&2; exit 1; }
log() { echo "image: $*"; }

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: build/image.sh x86_64|aarch64 [5.10|6.1|6.12|openwrt]"
case $1 in
x86_64 | amd64) ARCH=x86_64 DEBARCH=amd64 CONSOLE=ttyS0 TRIPLET=x86_64-linux-gnu LDSO=/lib64/ld-linux-x86-64.so.2 ;;
aarch64 | arm64) ARCH=aarch64 DEBARCH=arm64 CONSOLE=ttyAMA0 TRIPLET=aarch64-linux-gnu LDSO=/lib/ld-linux-aarch64.so.1 ;;
*) die "unknown architecture '$1' (x86_64 or aarch64)" ;;
esac
SERIES=${2:-6.1}
# The Debian release whose kernel is of the series, and its suites (the
# newest kernel is often in -security, formerly updates).
case $SERIES in
5.10) SUITE=bullseye ;;
6.1) SUITE=bookworm ;;
6.12) SUITE=trixie ;;
openwrt) SUITE=bookworm ;; # the OpenWrt-style 6.1 (build/kernel-openwrt.sh)
*) die "unknown kernel series '$SERIES' (5.10, 6.1, 6.12 or openwrt)" ;;
esac

# Modules the image needs: the virtio NIC (virtio_pci, virtio_net and
# through it net_failover, failover) and TC before 6.6 (sch_ingress holds
# clsact; cls_bpf). Dependencies are added from each module's modinfo.
WANT_MODULES=(virtio_pci virtio_net sch_ingress cls_bpf)

CACHE=${NETPROBE_CACHE:-build/.cache}
OUT=${CARGO_TARGET_DIR:-target}/appliance/$ARCH-$SERIES
for t in apt-get apt-cache dpkg dpkg-deb cpio xz zstd gzip; do
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

# The kernel's apt: the host's for bookworm, else a private state whose
# only sources are SUITE's (main, -updates, -security), signed-by Debian's
# archive keyring. Its lists are fetched once and again when a package is
# missing from them or from the archive.
KAPT=()
if [ "$SUITE" != bookworm ]; then
	KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -s "$KEYRING" ] || die "$KEYRING is missing (debian-archive-keyring, see build/deps.sh)"
	APTDIR=$CACHE/apt/$SUITE
	mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial"
	: >"$APTDIR/status"
	{
		echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian $SUITE main"
		echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian $SUITE-updates main"
		echo "deb [signed-by=$KEYRING] http://deb.debian.org/debian-security $SUITE-security main"
	} >"$APTDIR/sources.list"
	KAPT=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o Dir::Etc::SourceParts=/nonexistent
		-o "Dir::State::Lists=$APTDIR/lists" -o "Dir::State::status=$APTDIR/status"
		-o "Dir::Cache=$APTDIR/cache" -o APT::Architectures::=amd64 -o APT::Architectures::=arm64
		-o Acquire::Languages=none)
fi
kapt_update() {
	log "apt-get update ($SUITE${KAPT[*]:+, private state in build/.cache/apt/$SUITE})"
	apt-get "${KAPT[@]}" update -qq
}

# The kernel meta package names an ABI package and its exact version; every
# version the lists hold, newest first (a mirror may list a -security
# version whose file is not there yet: the next one is tried).
resolve_kernel() {
	apt-cache "${KAPT[@]}" show "linux-image-$DEBARCH:$DEBARCH" 2>/dev/null |
		awk '/^Package:/ { k = 0 }
			/^Depends:/ && !k {
				for (i = 2; i <= NF; i++) if ($i ~ /^linux-image-[0-9]/ && !k) {
					k = 1; v = $(i + 2); sub(/\)[,]?$/, "", v); print $i, v
				}
			}' | sort -u | sort -k2,2Vr || true
}
# One apt-cache call (each takes seconds) for the bookworm userland:
# busybox-static, bpftool and the libraries bpftool links (ldd: libelf,
# libz, libcap, libc), each candidate's version.
USERLAND=(busybox-static bpftool libelf1 zlib1g libcap2 libc6)
resolve_userland() {
	local p
	for p in "${USERLAND[@]}"; do printf '%s:%s ' "$p" "$DEBARCH"; done |
		xargs apt-cache show --no-all-versions 2>/dev/null |
		awk '/^Package:/ { p = $2 } /^Version:/ { gsub(/[-.+]/, "_", p); print "VER_" p "=" $2 }' || true
}
if [ "$SERIES" != openwrt ]; then
	KCANDS=$(resolve_kernel)
	[ -n "$KCANDS" ] || { kapt_update; KCANDS=$(resolve_kernel); }
	[ -n "$KCANDS" ] || die "cannot resolve linux-image-$DEBARCH ($SUITE) to a kernel package"
fi
UPKGS=$(resolve_userland)
if [ "$(grep -c '^VER_' <<<"$UPKGS")" -ne ${#USERLAND[@]} ]; then
	apt-get update -qq
	UPKGS=$(resolve_userland)
fi
declare -A UVER
for p in "${USERLAND[@]}"; do
	k=VER_${p//[-.+]/_}
	UVER[$p]=$(sed -n "s/^$k=//p" <<<"$UPKGS")
	[ -n "${UVER[$p]}" ] || die "no Debian package $p:$DEBARCH"
done

# deb_file PKG VERSION [APT-OPTIONS...]: the cached .deb of
# PKG:DEBARCH=VERSION, downloaded when missing; fails (1) when apt cannot
# get it.
deb_file() {
	local pkg=$1 ver=$2 file
	shift 2
	file=$CACHE/debs/${pkg}_${ver//:/%3a}_$DEBARCH.deb
	if [ ! -s "$file" ]; then
		log "downloading $pkg:$DEBARCH $ver" >&2
		(
			cd "$CACHE/debs"
			apt-get "$@" download -q=2 "$pkg:$DEBARCH=$ver" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2
		) || true
		[ -s "$file" ] || return 1
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

BBDEB=$(deb_file busybox-static "${UVER[busybox-static]}") || die "apt-get download busybox-static:$DEBARCH failed"
BBDIR=$(unpacked "$BBDEB")
ORDER=()
if [ "$SERIES" = openwrt ]; then
	# Built here once, cached by its configuration's hash; no modules.
	KBUILT=$(bash build/kernel-openwrt.sh "$ARCH" | tail -1) || die "build/kernel-openwrt.sh $ARCH failed"
	KVER=$(cat "$KBUILT/release")
	KPKG=linux-source-6.1 KVER_DEB="$(cat "$KBUILT/source-version") tinyconfig + build/kernel/openwrt-6.1.config"
	if [ "$ARCH" = x86_64 ]; then KERNEL=$KBUILT/vmlinux KERNEL_FORMAT=pvh; else KERNEL=$KBUILT/Image KERNEL_FORMAT=image; fi
	log "kernel $KVER ($KPKG $KVER_DEB), busybox-static ${UVER[busybox-static]}, bpftool ${UVER[bpftool]} ($DEBARCH)"
else
	KDEB=
	while read -r KPKG KVER_DEB; do
		KDEB=$(deb_file "$KPKG" "$KVER_DEB" "${KAPT[@]}") && break
		log "$KPKG $KVER_DEB is listed but cannot be downloaded: trying an older one" >&2
	done <<<"$KCANDS"
	[ -n "$KDEB" ] || die "no linux-image-$DEBARCH package of $SUITE could be downloaded ($(tr '\n' ' ' <<<"$KCANDS"))"
	KDIR=$(unpacked "$KDEB")
	# Merged /usr (trixie) installs modules under /usr/lib/modules.
	MODBASE=$KDIR/lib/modules
	[ -d "$MODBASE" ] || MODBASE=$KDIR/usr/lib/modules
	KVER=$(find "$MODBASE" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -1)
	[ -n "$KVER" ] || die "no modules directory in $KDEB"
	MODDIR=$MODBASE/$KVER
	log "kernel $KPKG $KVER_DEB ($SUITE), busybox-static ${UVER[busybox-static]}, bpftool ${UVER[bpftool]} ($DEBARCH)"

	# --- kernel -----------------------------------------------------------------
	VMLINUZ=$KDIR/boot/vmlinuz-$KVER
	[ -f "$VMLINUZ" ] || die "$VMLINUZ missing"
	if [ "$ARCH" = x86_64 ]; then
		# The bzImage decompresses itself in about 5 s under TCG; QEMU boots
		# the ELF vmlinux directly through its PVH entry (CONFIG_PVH), so
		# unpack it once (what scripts/extract-vmlinux does), with the
		# compressor the kernel's config names (6.12: zstd; 5.10, 6.1: xz).
		KERNEL=$CACHE/vmlinux-$KVER
		if [ ! -s "$KERNEL" ]; then
			grep -q '^CONFIG_PVH=y' "$KDIR/boot/config-$KVER" || die "$KVER has no CONFIG_PVH: QEMU cannot boot its vmlinux"
			comp=$(sed -n 's/^CONFIG_KERNEL_\(XZ\|ZSTD\|GZIP\)=y/\1/p' "$KDIR/boot/config-$KVER")
			case $comp in
			XZ) magic=$'\xfd7zXZ' unpack=(xz -dc) ;;
			ZSTD) magic=$'\x28\xb5\x2f\xfd' unpack=(zstd -dcq) ;;
			GZIP) magic=$'\x1f\x8b\x08' unpack=(gzip -dc) ;;
			*) die "$KVER: kernel compression '${comp:-unknown}' (want CONFIG_KERNEL_XZ, _ZSTD or _GZIP)" ;;
			esac
			# The first match that unpacks to an ELF file is the payload.
			for off in $(LC_ALL=C grep -abo "$magic" "$VMLINUZ" | head -5 | cut -d: -f1); do
				tail -c +$((off + 1)) "$VMLINUZ" | "${unpack[@]}" >"$KERNEL.tmp" 2>/dev/null || true
				head -c 4 "$KERNEL.tmp" | grep -q 'ELF' && break
			done
			head -c 4 "$KERNEL.tmp" 2>/dev/null | grep -q 'ELF' || die "unpacking the ${comp,,} vmlinux from $VMLINUZ failed"
			mv "$KERNEL.tmp" "$KERNEL"
		fi
		KERNEL_FORMAT=pvh
	else
		# arm64's vmlinuz is an uncompressed Image (5.10 to 6.12).
		KERNEL=$VMLINUZ
		KERNEL_FORMAT=image
		head -c 64 "$KERNEL" | tail -c 8 | grep -qa ARMd || die "$VMLINUZ is not an uncompressed arm64 Image"
	fi

	# --- modules ----------------------------------------------------------------
	# name -> path (relative to $MODDIR), names with - as _; compressed
	# modules (trixie: .ko.xz) are unpacked into $MODCACHE, as plain .ko.
	declare -A MODPATH
	while IFS= read -r p; do
		n=${p##*/}
		n=${n%.ko*}
		MODPATH[${n//-/_}]=$p
	done < <(cd "$MODDIR" && find kernel -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz')
	declare -A BUILTIN SEEN
	while IFS= read -r p; do
		n=${p##*/}
		n=${n%.ko}
		BUILTIN[${n//-/_}]=1
	done <"$MODDIR/modules.builtin"
	MODCACHE=$KDIR.ko
	# ko MODULE: the module's plain .ko file.
	ko() {
		local p=${MODPATH[$1]} out
		case $p in
		*.ko) echo "$MODDIR/$p" ;;
		*)
			out=$MODCACHE/${p%.*}
			if [ ! -s "$out" ]; then
				mkdir -p "${out%/*}"
				case $p in
				*.xz) xz -dc "$MODDIR/$p" ;;
				*.zst) zstd -dcq "$MODDIR/$p" ;;
				*.gz) gzip -dc "$MODDIR/$p" ;;
				esac >"$out.tmp" || die "unpacking $p failed"
				mv "$out.tmp" "$out"
			fi
			echo "$out"
			;;
		esac
	}

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
		deps=$(tr '\0' '\n' <"$(ko "$m")" | grep -a -m1 '^depends=' | cut -d= -f2 || true)
		for d in ${deps//,/ }; do add_module "$d"; done
		ORDER+=("$m")
	}
	BUILT_IN=()
	for m in "${WANT_MODULES[@]}"; do add_module "$m"; done
	log "modules to load: ${ORDER[*]}${BUILT_IN[*]:+ (built in: ${BUILT_IN[*]})}"
fi

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
	p=${MODPATH[$m]%.ko*}.ko
	install -D -m 0644 "$(ko "$m")" "$STAGE/lib/modules/$KVER/$p"
	echo "$p" >>"$STAGE/etc/netprobe-image/modules"
done

# bpftool and what it links (bookworm's, dynamic): the guest lists
# programs, maps and attachments after --cleanup with it.
mkdir -p "$STAGE/lib/$TRIPLET" "$STAGE${LDSO%/*}"
for p in bpftool libelf1 zlib1g libcap2 libc6; do
	d=$(unpacked "$(deb_file "$p" "${UVER[$p]}")") || die "apt-get download $p:$DEBARCH failed"
	case $p in
	bpftool) install -D -m 0755 "$d/usr/sbin/bpftool" "$STAGE/usr/sbin/bpftool" ;;
	libc6)
		cp -L "$d/lib/$TRIPLET/libc.so.6" "$STAGE/lib/$TRIPLET/"
		cp -L "$d/lib/$TRIPLET/${LDSO##*/}" "$STAGE$LDSO"
		;;
	*) find "$d" -name "lib*.so.[0-9]" -exec cp -L {} "$STAGE/lib/$TRIPLET/" \; ;;
	esac
done
for l in libelf.so.1 libz.so.1 libcap.so.2 libc.so.6; do
	[ -s "$STAGE/lib/$TRIPLET/$l" ] || die "$l for bpftool is missing"
done
touch "$STAGE/etc/netprobe-image/modules"
echo "$KVER" >"$STAGE/etc/netprobe-image/kernel"

# The operator's settings, as one would set them on an appliance.
cat >>"$STAGE/etc/default/netprobe" <<'EOF'

# Test image (build/image.sh): every address, so that build/boot-test.sh
# scrapes the guest from the host (QEMU user networking forwards to
# 10.0.2.15) and the self-test from inside it (127.0.0.1). XDP native, as
# the test expects on virtio_net: a failure to attach it is an error, not
# a fallback to TC alone.
NETWORK_INTERFACE="eth0"
NETPROBE_LISTEN="0.0.0.0"
NETPROBE_ARGS="--collect-interval 1s --xdp-mode native"
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
#   NETPROBE-GUEST-GATE: the agent, told the kernel is 5.4, refuses in one line
#   NETPROBE-GUEST-WAITING-<GATE>: the host checks the agent, then connects
#     to port 8099 (nc) to let the self-test go on (NETPROBE-GUEST-GO-<GATE>)
#       START    the host's checks of the undisturbed agent
#       TRAFFIC  after the restart: the host sends requests
#       RESPAWN  after the SIGKILL: the host checks the respawned agent
#   NETPROBE-GUEST-RESTART: /etc/init.d/netprobe restart, agent back
#   NETPROBE-GUEST-EXACT: eth0's rx and tx packets, agent against kernel,
#     from before the restart to after the host's traffic (equal: nothing
#     lost, nothing counted twice by a program left from the old agent)
#   NETPROBE-GUEST-RESPAWN: agent killed (SIGKILL), supervisor restarts it
#   NETPROBE-GUEST-CLEANUP: /etc/init.d/netprobe cleanup, then bpftool
#     lists no program, no map and no attachment on eth0, no pin is left
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
# gate NAME: wait for the host to connect to port 8099.
gate() {
	say "WAITING-$1: for a connection to port 8099"
	if timeout 180 nc -l -p 8099 </dev/null >/dev/null 2>&1; then
		say "GO-$1: uptime=$(up)"
	else
		say "GO-$1: nobody connected within 180 s, going on"
	fi
}
# counts: "kernel_rx kernel_tx agent_rx agent_tx" for eth0, read while eth0
# is quiet (the kernel's counts unchanged across two collections), or
# nothing after 20 tries. The agent is read over lo, which is not eth0.
counts() {
	s=/sys/class/net/eth0/statistics
	n=0
	while [ $n -lt 20 ]; do
		k1="$(cat $s/rx_packets) $(cat $s/tx_packets)"
		sleep 2.5
		a=$(timeout 10 wget -qO- "$URL/metrics" | awk '
			/^netprobe_interface_rx_packets_total[{]/ && /interface="eth0"/ { rx = $2 }
			/^netprobe_interface_tx_packets_total[{]/ && /interface="eth0"/ { tx = $2 }
			END { if (rx != "" && tx != "") print rx, tx }')
		k2="$(cat $s/rx_packets) $(cat $s/tx_packets)"
		[ "$k1" = "$k2" ] && [ -n "$a" ] && { echo "$k2 $a"; return 0; }
		n=$((n + 1))
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

# The version gate on this kernel's agent: with the release read as 5.4
# (a bind mount over osrelease, in a mount namespace of its own) it must
# refuse at once with one line and exit status 1.
echo 5.4.0-fake >/tmp/osrelease
out=$(unshare -m sh -c 'mount --bind /tmp/osrelease /proc/sys/kernel/osrelease &&
	exec timeout 20 /usr/sbin/netprobe-agent --listen-address 127.0.0.1 --metrics-port 8089' 2>&1)
rc=$?
if [ $rc -eq 1 ] && [ "$(echo "$out" | grep -c .)" -eq 1 ] && echo "$out" | grep -q 'needs Linux 5.8 or later'; then r=ok; else r=FAIL; fi
say "GATE: $r rc=$rc: $(echo "$out" | head -3 | tr '\n' ' ')"

gate START
before=$(counts)
/etc/init.d/netprobe restart >/dev/console 2>&1
if healthy; then say "RESTART: ok uptime=$(up)"; else say "RESTART: FAIL"; fi
gate TRAFFIC
after=$(counts)
if [ -z "$before" ] || [ -z "$after" ]; then
	say "EXACT: FAIL: eth0 never quiet (before: '$before', after: '$after')"
else
	# shellcheck disable=SC2086 # four numbers each
	set -- $before $after
	krx=$(($5 - $1)) ktx=$(($6 - $2)) arx=$(($7 - $3)) atx=$(($8 - $4))
	if [ $krx -gt 0 ] && [ $ktx -gt 0 ] && [ $arx -eq $krx ] && [ $atx -eq $ktx ]; then r=ok; else r=FAIL; fi
	say "EXACT: $r rx agent +$arx kernel +$krx, tx agent +$atx kernel +$ktx"
fi

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
gate RESPAWN

# bpftool net: xdp and tc (clsact filters); bookworm's bpftool 7.1 lists no
# TCX links, and needs /proc/self/ns/net (no NET_NS on the OpenWrt-style
# kernel: "n/a"). Whatever stays attached keeps its program, which bpftool
# prog lists.
left() {
	progs=$(bpftool prog show 2>&1 | grep -c '^[0-9]*:')
	maps=$(bpftool map show 2>&1 | grep -c '^[0-9]*:')
	if [ -e /proc/self/ns/net ]; then
		hooks=$(bpftool net show dev eth0 2>&1 | grep -c 'id [0-9]')
	else
		hooks=n/a
	fi
	pins=$(find /sys/fs/bpf -mindepth 1 2>/dev/null | wc -l)
}
# First with the agent stopped (--keep-on-exit): bpftool sees what it left.
/etc/init.d/netprobe stop >/dev/console 2>&1
left
kept="programs=$progs maps=$maps eth0_attachments=$hooks pins=$pins"
[ "$progs" -gt 0 ] && [ "$pins" -gt 0 ] && { [ "$hooks" = n/a ] || [ "$hooks" -ge 1 ]; } ||
	kept="$kept (bpftool sees nothing: broken?)"
/etc/init.d/netprobe cleanup >/dev/console 2>&1
rc=$?
left
case $kept in *broken*) r=FAIL ;; *) r=ok ;; esac
[ $rc -eq 0 ] && [ "$progs" -eq 0 ] && [ "$maps" -eq 0 ] && [ "$pins" -eq 0 ] && { [ "$hooks" = n/a ] || [ "$hooks" -eq 0 ]; } || r=FAIL
say "CLEANUP: $r rc=$rc programs=$progs maps=$maps eth0_attachments=$hooks pins=$pins (stopped: $kept)"
[ $r = ok ] || { bpftool prog show; bpftool net show dev eth0; find /sys/fs/bpf; } >/dev/console 2>&1
say "DONE uptime=$(up)"
EOF
chmod 0755 "$STAGE/init" "$STAGE/etc/init.d/rcS" "$STAGE/usr/libexec/netprobe-selftest"

# --- initramfs ---------------------------------------------------------------
INITRD=$OUT/initramfs.cpio.gz
(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -1 >"$INITRD.tmp"
mv "$INITRD.tmp" "$INITRD"

cat >"$OUT/image.env" <<EOF
ARCH=$ARCH
SERIES=$SERIES
KERNEL_PACKAGE="$KPKG $KVER_DEB ($SUITE)"
KERNEL=$KERNEL
KERNEL_FORMAT=$KERNEL_FORMAT
KERNEL_VERSION=$KVER
INITRD=$INITRD
CONSOLE=$CONSOLE
EOF
log "$ARCH image in $OUT: kernel $(basename "$KERNEL") ($KERNEL_FORMAT), initramfs $(($(stat -c %s "$INITRD") / 1024)) KiB, agent $(stat -c %s "$AGENT") bytes ($(($(date +%s) - start)) s)"
