#!/usr/bin/env bash
# Checks the three init files of rootfs/ without booting them:
#   1. systemd: `systemd-analyze verify` passes on netprobe.service, in a
#      scratch root holding the unit, the agent binary it runs and the
#      host's own systemd units (targets it orders against); `systemd-analyze
#      security` rates it, and its exposure must stay at or below
#      MAX_EXPOSURE (docs/appliance.md quotes the figure printed here)
#   2. syntax: `sh -n` on the sysvinit and the procd script
#   3. the same command line from all three: each is run against the same
#      /etc/default/netprobe with a stand-in agent that prints its arguments
#      and NETWORK_INTERFACE (the sysvinit script's supervisor for real;
#      procd's start_service with procd_* functions that record what they
#      are given; systemd's ExecStart expanded as systemd does it, ${VAR}
#      as one word, $VAR split at white space, from EnvironmentFile=)
# The sysvinit script is also boot-tested (build/boot-test.sh); the procd
# script runs on nothing here, not on OpenWrt either.
#
# Usage: build/init-check.sh [AGENT]   AGENT: the binary systemd-analyze
#   verify finds at /usr/sbin/netprobe-agent (default: target/release/netprobe-agent;
#   any executable file does)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "init-check: FAIL: $*" >&2; exit 1; }
for t in systemd-analyze sh python3; do
	command -v "$t" >/dev/null || die "$t is missing (run build/deps.sh)"
done
UNIT=rootfs/systemd/usr/lib/systemd/system/netprobe.service
SYSV=rootfs/sysvinit/etc/init.d/netprobe
PROCD=rootfs/procd/etc/init.d/netprobe
DEFAULTS=rootfs/common/etc/default/netprobe
AGENT=${1:-target/release/netprobe-agent}
MAX_EXPOSURE=${MAX_EXPOSURE:-2.5}
[ -x "$AGENT" ] || die "no agent binary at $AGENT (cargo build --release, or pass one)"

WORK=$(mktemp -d /tmp/netprobe-init.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
PASSED=0
ok() { echo "  ok: $*"; PASSED=$((PASSED + 1)); }

# --- 1. systemd -------------------------------------------------------------
ROOT=$WORK/root
mkdir -p "$ROOT/usr/lib/systemd/system" "$ROOT/usr/sbin" "$ROOT/etc/default"
cp -a /usr/lib/systemd/system/. "$ROOT/usr/lib/systemd/system/"
cp "$UNIT" "$ROOT/usr/lib/systemd/system/netprobe.service"
cp "$DEFAULTS" "$ROOT/etc/default/netprobe"
install -m 0755 "$AGENT" "$ROOT/usr/sbin/netprobe-agent"
if ! out=$(systemd-analyze verify --man=no --root="$ROOT" netprobe.service 2>&1) || [ -n "$out" ]; then
	die "systemd-analyze verify $UNIT: ${out:-non-zero exit}"
fi
ok "systemd-analyze verify $UNIT: no findings"
systemd-analyze security --offline=yes --root="$ROOT" netprobe.service >"$WORK/security.txt" 2>&1 ||
	die "systemd-analyze security: $(tail -5 "$WORK/security.txt")"
line=$(grep -a 'Overall exposure level' "$WORK/security.txt" | tr -d '\r')
score=$(sed -n 's/.*netprobe.service: \([0-9.]*\) \([A-Z]*\).*/\1 \2/p' <<<"$line")
[ -n "$score" ] || die "no exposure level in systemd-analyze security's output: $(tail -3 "$WORK/security.txt")"
awk -v s="${score% *}" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }' ||
	die "systemd-analyze security: exposure $score, above $MAX_EXPOSURE: $(grep -a '✗' "$WORK/security.txt" | head -20)"
ok "systemd-analyze security: exposure $score (at most $MAX_EXPOSURE; systemd $(systemd-analyze --version | head -1 | awk '{ print $2 }'))"

# --- 2. syntax ----------------------------------------------------------------
for f in "$SYSV" "$PROCD"; do
	sh -n "$f" || die "sh -n $f"
done
ok "sh -n: $SYSV, $PROCD"


# --- 3. the same command line ---------------------------------------------------
# Settings that tell the three apart if one drops or splits a word.
cat >"$WORK/defaults" <<'DEF'
NETWORK_INTERFACE="eth0,ppp*"
NETPROBE_LISTEN="192.0.2.1"
NETPROBE_ARGS="--collect-interval 10s --xdp-mode native"
DEF
# The stand-in agent: one argument a line, then the interface setting.
cat >"$WORK/agent" <<STUB
#!/bin/sh
for a in "\$@"; do echo "arg \$a"; done >"$WORK/\$NETPROBE_FLAVOUR.out"
echo "env NETWORK_INTERFACE=\${NETWORK_INTERFACE-<unset>}" >>"$WORK/\$NETPROBE_FLAVOUR.out"
exit 2
STUB
chmod 0755 "$WORK/agent"

# sysvinit: its supervisor runs the agent, which exits 2 (no restart).
NETPROBE_FLAVOUR=sysvinit NETPROBE_DAEMON=$WORK/agent NETPROBE_DEFAULTS=$WORK/defaults NETPROBE_RUNDIR=$WORK \
	sh "$SYSV" _supervise >/dev/null 2>&1 || true
# procd: start_service with the procd_* calls recorded (command: one word a
# line; env: VAR=value lines), then the command run as procd would, with
# that environment and nothing else of the script's.
NETPROBE_FLAVOUR=procd WORK=$WORK PROCD=$PROCD sh -c '
	procd_open_instance() { :; }
	procd_close_instance() { :; }
	procd_set_param() {
		what=$1
		shift
		case $what in
		command) printf "%s\n" "$@" >"$WORK/procd.cmd" ;;
		env) printf "%s\n" "$@" >"$WORK/procd.env" ;;
		esac
	}
	. "$PROCD"
	DEFAULTS=$WORK/defaults
	start_service
' && NETPROBE_FLAVOUR=procd WORK=$WORK sh -c '
	[ -f "$WORK/procd.env" ] && while IFS= read -r e; do export "$e"; done <"$WORK/procd.env"
	set --
	while IFS= read -r a; do set -- "$@" "$a"; done <"$WORK/procd.cmd"
	shift
	exec "$WORK/agent" "$@"
' || true
# systemd: ExecStart, expanded from Environment= and EnvironmentFile=.
python3 - "$UNIT" "$WORK/defaults" "$WORK/systemd.out" <<'PY'
import re, shlex, sys
unit, defaults, out = sys.argv[1:]
env, execstart = {}, None
for line in open(unit):
    line = line.strip()
    if line.startswith("Environment="):
        k, v = line[len("Environment="):].split("=", 1)
        env[k] = v
    elif line.startswith("ExecStart="):
        execstart = line[len("ExecStart="):]
for line in open(defaults):  # EnvironmentFile= (loaded after Environment=)
    m = re.match(r'^([A-Za-z_][A-Za-z0-9_]*)=(.*)$', line.strip())
    if m:
        env[m.group(1)] = shlex.split(m.group(2))[0] if m.group(2) else ""
argv = []
for word in shlex.split(execstart):
    m = re.fullmatch(r'\$([A-Za-z_][A-Za-z0-9_]*)', word)
    if m:  # $VAR alone: split at white space into words
        argv += env.get(m.group(1), "").split()
        continue
    argv.append(re.sub(r'\$\{([A-Za-z_][A-Za-z0-9_]*)\}', lambda m: env.get(m.group(1), ""), word))
with open(out, "w") as f:
    for a in argv[1:]:
        f.write(f"arg {a}\n")
    f.write(f"env NETWORK_INTERFACE={env.get('NETWORK_INTERFACE', '<unset>')}\n")
PY
for f in sysvinit procd systemd; do
	[ -s "$WORK/$f.out" ] || die "$f: the stand-in agent never ran"
done
for f in procd systemd; do
	diff -u "$WORK/sysvinit.out" "$WORK/$f.out" >&2 || die "$f passes other arguments or settings than sysvinit (diff above)"
done
grep -qx 'arg --keep-on-exit' "$WORK/sysvinit.out" || die "no --keep-on-exit in the init files' command line"
ok "the same command line from all three: $(sed -n 's/^arg //p' "$WORK/sysvinit.out" | tr '\n' ' ')and $(tail -1 "$WORK/sysvinit.out" | sed 's/^env //')"

echo "init-check: $PASSED passed"
