#!/usr/bin/env bash
# The clean-room tier: proves that build/deps.sh installs everything the
# tests use, on a Debian 12 root that has nothing else.
#
#   1. a minimal Debian 12 root (mmdebstrap --variant=minbase, Debian's own
#      packages), built once into a cached tarball; every run unpacks a
#      fresh copy of it
#   2. build/deps.sh inside it, twice (the second run must install nothing)
#   3. build/probes.sh --check inside it: the committed objects equal a
#      build with only what deps.sh installed
#   4. every external command the test scripts run (build/tools-used.py,
#      read on this machine, where the tests ran) is present in the root
#
# The Rust toolchain is the one thing the README asks for besides root and
# Debian's archive; this tier does not build the agent in the root (the
# other tiers build it on the host with the same toolchain).
#
# Everything runs in a private mount namespace, so the root's mounts go
# when it ends, however it ends; the unpacked root is then removed. Left
# behind: the cache in $NETPROBE_CACHE/cleanroom (base tarball and the
# .debs deps.sh downloaded), whose size is printed.
#
# Usage: build/cleanroom.sh   (root; network access to deb.debian.org)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

die() { echo "cleanroom: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (chroot, mounts)"
for t in mmdebstrap unshare chroot tar python3; do
	command -v "$t" >/dev/null || die "$t is missing (run build/deps.sh)"
done

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
CACHE=${NETPROBE_CACHE:-build/.cache}/cleanroom
mkdir -p "$CACHE/debs"
CACHE=$(cd "$CACHE" && pwd -P)
BASE=$CACHE/$SUITE-minbase.tar
start=$(date +%s)

if [ ! -f "$BASE" ]; then
	echo "cleanroom: building the base root ($SUITE, minbase) into $BASE"
	mmdebstrap --quiet --variant=minbase --format=tar "$SUITE" "$BASE.tmp" \
		"deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" \
		"deb http://deb.debian.org/debian-security $SUITE-security main"
	mv "$BASE.tmp" "$BASE"
fi

WORK=$(mktemp -d "$CACHE/run.XXXXXX")
cleanup() {
	# The mounts lived in the namespace of the unshare below and are gone;
	# --one-file-system refuses to cross into anything still mounted.
	rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

python3 build/tools-used.py >"$WORK/tools.txt"
[ -s "$WORK/tools.txt" ] || die "build/tools-used.py listed no commands"

ROOT=$WORK/root
mkdir "$ROOT"
tar -xf "$BASE" -C "$ROOT"

# Inside: the repository read-only at /src, deps.sh's downloads cached.
inside=$(
	cat <<'EOF'
set -euo pipefail
cd /src
echo "cleanroom: build/deps.sh in a fresh $(. /etc/os-release; echo "$PRETTY_NAME") root"
bash build/deps.sh
again=$(bash build/deps.sh 2>&1)
[ -z "$again" ] || { echo "cleanroom: FAIL: a second build/deps.sh still did something: $again" >&2; exit 1; }
bash build/probes.sh --check
missing=()
while read -r t; do
	command -v "$t" >/dev/null || missing+=("$t")
done </tools.txt
if [ ${#missing[@]} -gt 0 ]; then
	echo "cleanroom: FAIL: the tests run ${missing[*]}, which build/deps.sh does not install" >&2
	exit 1
fi
echo "cleanroom: all $(wc -l </tools.txt) commands the tests run are installed"
EOF
)
cp "$WORK/tools.txt" "$ROOT/tools.txt"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/src"
unshare --mount --propagation private bash -euo pipefail -c '
	root=$1 repo=$2 debs=$3 script=$4
	mount --bind "$repo" "$root/src"
	mount -o remount,bind,ro "$root/src"
	mount --bind "$debs" "$root/var/cache/apt/archives"
	mount -t proc proc "$root/proc"
	mount --rbind /dev "$root/dev"
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
		bash -c "$script"
' cleanroom "$ROOT" "$REPO" "$CACHE/debs" "$inside"

echo "cleanroom: passed in $(($(date +%s) - start)) s; cache $CACHE: $(du -sh "$CACHE" | cut -f1)"
