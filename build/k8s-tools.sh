#!/usr/bin/env bash
# Installs the pinned tools build/k8s-check.sh validates the Kubernetes
# manifests with, into $NETPROBE_CACHE/k8s-tools (default build/.cache):
#   venv/   kubernetes-validate (PyPI; it ships the schemas of Kubernetes
#           1.25 to 1.37, so validation needs no network) with PyYAML
#   npm/    @kubernetes-models/prometheus-operator (the ServiceMonitor
#           CRD's validator and types) and typescript, pinned in
#           deploy/k8s-check/package-lock.json
# Needs python3 with venv, node and npm (build/deps.sh). Idempotent: a tool
# already at its pinned version is left alone. Prints the cache directory.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0

die() { echo "k8s-tools: FAIL: $*" >&2; exit 1; }
for t in python3 node npm; do
	command -v "$t" >/dev/null || die "$t is missing (run build/deps.sh)"
done

DIR=${NETPROBE_CACHE:-build/.cache}/k8s-tools
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)

if ! "$DIR/venv/bin/kubernetes-validate" --version 2>/dev/null | grep -qx "$KUBERNETES_VALIDATE_VERSION"; then
	rm -rf "$DIR/venv"
	python3 -m venv "$DIR/venv" >&2 || die "python3 -m venv (Debian: python3-venv, installed by build/deps.sh)"
	"$DIR/venv/bin/pip" install --quiet --disable-pip-version-check \
		"kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2 || die "pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

SRC=deploy/k8s-check
if ! cmp -s "$SRC/package-lock.json" "$DIR/npm/package-lock.json" || [ ! -x "$DIR/npm/node_modules/.bin/tsc" ]; then
	mkdir -p "$DIR/npm"
	cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/npm/"
	(cd "$DIR/npm" && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1) || die "npm ci in $DIR/npm"
fi
cp "$SRC/check-servicemonitor.mjs" "$DIR/npm/"
echo "$DIR"
