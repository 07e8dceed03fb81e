#!/usr/bin/env bash
# Builds the agent's image from Containerfile with podman and runs it as
# deploy/agent.yaml does (the host's network namespace, every capability
# dropped but BPF, PERFMON and NET_ADMIN, read-only root and host mounts,
# a bpffs for the pins) until /metrics answers with the traffic of a veth.
# The "host" network is a namespace this script creates, joined by a veth
# pair to a second one, so nothing touches the machine's own interfaces.
# Also shows that the default seccomp profile refuses the agent (bpf() is
# allowed there only with CAP_SYS_ADMIN), the reason the manifest sets
# seccompProfile Unconfined. Prints the agent's RSS for the manifest's
# resources. About 15 s once the static binary is built.
#
# Usage: build/container-run.sh [BINARY]   (default: build/cross.sh x86_64's)
#
# The OCI runtime is runc, with explicit --ulimit values: see
# docs/kubernetes.md, "Running the image with podman", for why podman's
# defaults (and crun on a hybrid cgroup host) fail on machines whose
# capability bounding set lacks CAP_SYS_RESOURCE.
set -euo pipefail
cd "$(dirname "$0")/.."

TEST=container-run
die() { echo "$TEST: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (podman, namespaces, bpffs)"
for t in podman runc ip curl; do
	command -v "$t" >/dev/null || die "$t is missing (run build/deps.sh)"
done
BIN=${1:-$(bash build/cross.sh --print-path x86_64)}
[ -x "$BIN" ] || die "$BIN not found: bash build/cross.sh x86_64"

ID=$$
IMAGE=localhost/netprobe-agent:test-$ID
NAME=netprobe-ctr-$ID
NSA=npctr-a-$ID NSB=npctr-b-$ID IFA=npca$ID IFB=npcb$ID
PORT=18181
WORK=$(mktemp -d /tmp/netprobe-ctr.XXXXXX)
BPFFS=$WORK/bpffs
PASSED=0 FAILED=0
ok() { echo "  ok: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "  FAIL: $*" >&2; FAILED=$((FAILED + 1)); }

cleanup() {
	podman rm -f --time 2 "$NAME" >/dev/null 2>&1 || true
	podman rm -f --time 2 "$NAME-seccomp" >/dev/null 2>&1 || true
	podman rmi -f "$IMAGE" >/dev/null 2>&1 || true
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSB" 2>/dev/null || true
	umount "$BPFFS" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Limits no higher than podman's own (it lowers its RLIMIT_NPROC to 32768
# at start): where CAP_SYS_RESOURCE is missing, nothing may raise them.
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=1048576
NPROC=$(ulimit -Hu)
[ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ] && NPROC=32768
PODMAN=(podman --runtime runc)

echo "$TEST: podman build (FROM scratch, $(stat -c %s "$BIN") byte binary)"
mkdir -p "$WORK/ctx" "$BPFFS"
cp "$BIN" "$WORK/ctx/netprobe-agent"
"${PODMAN[@]}" build -q -f Containerfile -t "$IMAGE" "$WORK/ctx" >/dev/null
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
ok "image built: $size bytes"

ip netns add "$NSA"
ip netns add "$NSB"
ip link add "$IFA" netns "$NSA" type veth peer name "$IFB" netns "$NSB"
ip -n "$NSA" addr add 198.18.42.1/24 dev "$IFA"
ip -n "$NSB" addr add 198.18.42.2/24 dev "$IFB"
for ns in "$NSA" "$NSB"; do
	ip -n "$ns" link set lo up
done
ip -n "$NSA" link set "$IFA" up
ip -n "$NSB" link set "$IFB" up
mount -t bpf bpf "$BPFFS"

# run NAME [EXTRA...]: the manifest's container, in $NSA.
run() {
	local name=$1
	shift
	"${PODMAN[@]}" run -d --name "$name" \
		--network "ns:/run/netns/$NSA" \
		--cap-drop all --cap-add BPF,PERFMON,NET_ADMIN \
		--security-opt no-new-privileges \
		--read-only \
		--ulimit "nofile=$NOFILE:$NOFILE" --ulimit "nproc=$NPROC:$NPROC" \
		-v "$BPFFS:/sys/fs/bpf" \
		-v /proc:/host/proc:ro \
		-v /sys/fs/cgroup:/host/sys/fs/cgroup:ro \
		"$@" \
		"$IMAGE" \
		--listen-address 0.0.0.0 --metrics-port "$PORT" --pin-path /sys/fs/bpf/netprobe \
		--interface-filter "$IFA" --collect-interval 1s >/dev/null
}

echo "$TEST: the default seccomp profile"
run "$NAME-seccomp"
code=$(podman wait "$NAME-seccomp" 2>/dev/null || echo "?")
log=$(podman logs "$NAME-seccomp" 2>&1 | tail -3)
if [ "$code" != 0 ] && grep -q "failed to create map" <<<"$log"; then
	ok "refused, exit $code: $(tail -1 <<<"$log")"
else
	fail "the default seccomp profile did not stop the agent (exit $code): $log"
fi

echo "$TEST: seccomp unconfined, as deploy/agent.yaml"
run "$NAME" --security-opt seccomp=unconfined
up=
for _ in $(seq 100); do
	if ip netns exec "$NSA" curl -fsS --max-time 2 "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; then
		up=1
		break
	fi
	[ "$(podman inspect --format '{{.State.Running}}' "$NAME")" = true ] || break
	sleep 0.2
done
if [ -z "$up" ]; then
	podman logs "$NAME" >&2 || true
	die "the agent in the container did not answer /healthz"
fi
ok "/healthz answers"
ip netns exec "$NSB" ping -q -c 20 -i 0.05 -w 5 198.18.42.1 >/dev/null
sleep 2.5 # two collections at --collect-interval 1s
metrics=$(ip netns exec "$NSA" curl -fsS --max-time 5 "http://127.0.0.1:$PORT/metrics")
rx=$(awk -v s="netprobe_interface_rx_packets_total{interface=\"$IFA\"}" '$1 == s { print $2 }' <<<"$metrics")
if [ -n "$rx" ] && [ "${rx%.*}" -ge 20 ]; then
	ok "/metrics answers: $IFA received $rx packets (20 pings sent)"
else
	fail "/metrics: no rx count of 20 or more for $IFA: '${rx:-none}'"
fi
caps=$(podman inspect --format '{{.EffectiveCaps}}' "$NAME")
ok "effective capabilities: $caps"
pid=$(podman inspect --format '{{.State.Pid}}' "$NAME")
rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status")
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
ok "agent RSS ${rss} KiB, peak ${hwm} KiB (one interface)"
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
t0=$(ticks)
sleep 5
cpu=$(( ($(ticks) - t0) * 1000 / $(getconf CLK_TCK) / 5 ))
ok "agent CPU ${cpu} millicores over 5 s at --collect-interval 1s"
# The container's memory cgroup also holds the BPF maps the agent created
# (charged to it since Linux 5.11): what the manifest's limit must cover.
mem=$(awk -F: '$2 == "memory" || $2 == "" { print $3; exit }' "/proc/$pid/cgroup")
for f in "/sys/fs/cgroup/memory$mem/memory.max_usage_in_bytes" "/sys/fs/cgroup$mem/memory.peak"; do
	if [ -r "$f" ]; then
		ok "container memory cgroup peak $(($(cat "$f") / 1024)) KiB (process and BPF maps: $f)"
		break
	fi
done

echo
echo "$TEST: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
