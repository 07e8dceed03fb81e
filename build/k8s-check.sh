#!/usr/bin/env bash
# Checks the Kubernetes deployment files (no cluster needed, about 10 s
# once build/k8s-tools.sh has installed its pinned tools):
#   1. deploy/agent.yaml against Kubernetes $K8S_VERSION's schemas, strict
#      (unknown fields fail), with kubernetes-validate;
#   2. deploy/servicemonitor.yaml against the Prometheus Operator's
#      ServiceMonitor CRD: its generated validator (types, patterns,
#      required) and, for unknown fields, its TypeScript types under tsc;
#   3. a misspelt copy of each must fail (the checks can fail);
#   4. the names the README's and docs/kubernetes.md's kubectl commands use
#      exist in the manifests: `kubectl apply -f FILE`, `kubectl get pods -l
#      app=NAME` (a pod template with that label), `kubectl port-forward
#      service/NAME LOCAL:PORT` (a Service with that port, selecting those
#      pods);
#   5. what docs/kubernetes.md promises of the DaemonSet: host network and
#      PID namespace, not privileged, exactly the measured capabilities,
#      probes on /healthz, --listen-address set, host paths read-only but
#      bpffs, scrape annotations on the metrics port;
#   6. with an agent binary: every argument the DaemonSet passes is a flag
#      of `AGENT --help`.
#
# Usage: build/k8s-check.sh [AGENT]
set -euo pipefail
cd "$(dirname "$0")/.."

# The Kubernetes version the manifests are validated against.
K8S_VERSION=1.31.0

TOOLS=$(bash build/k8s-tools.sh)
PY=$TOOLS/venv/bin/python
KV=$TOOLS/venv/bin/kubernetes-validate
AGENT=${1:-}
TMP=$(mktemp -d /tmp/netprobe-k8s.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
PASSED=0 FAILED=0
ok() { echo "  ok: $*"; PASSED=$((PASSED + 1)); }
fail() { echo "  FAIL: $*" >&2; FAILED=$((FAILED + 1)); }

echo "k8s-check: deploy/agent.yaml against Kubernetes $K8S_VERSION (kubernetes-validate $("$KV" --version), strict)"
validate_k8s() { "$KV" --strict --kubernetes-version "$K8S_VERSION" "$1" 2>&1; }
out=$(validate_k8s deploy/agent.yaml) && code=0 || code=$?
if [ "$code" -eq 0 ] && ! grep -qE '^(WARN|ERROR)' <<<"$out" && [ "$(grep -c '^INFO .* passed' <<<"$out")" -eq 4 ]; then
	ok "Namespace, ServiceAccount, DaemonSet and Service valid"
else
	fail "deploy/agent.yaml: $out"
fi
sed 's/^\(      \)hostNetwork:/\1hostNetwrk:/' deploy/agent.yaml >"$TMP/misspelt.yaml"
out=$(validate_k8s "$TMP/misspelt.yaml") || true
if grep -q "'hostNetwrk' was unexpected" <<<"$out"; then
	ok "a misspelt field (hostNetwrk) is refused"
else
	fail "a misspelt field passed validation"
fi

echo "k8s-check: deploy/servicemonitor.yaml against the ServiceMonitor CRD (@kubernetes-models/prometheus-operator $(node -p "require('$TOOLS/npm/node_modules/@kubernetes-models/prometheus-operator/package.json').version"))"
# check_sm FILE: the CRD's validator, then tsc for unknown fields.
check_sm() {
	"$PY" -c 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))' "$1" \
		| node "$TOOLS/npm/check-servicemonitor.mjs" 2>&1 || return 1
	"$PY" - "$1" >"$TOOLS/npm/servicemonitor.ts" <<'EOF'
import json, sys, yaml
print("import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';")
for i, d in enumerate(yaml.safe_load_all(open(sys.argv[1]))):
    print(f"export const sm{i} = {json.dumps(d)} satisfies IServiceMonitor;")
EOF
	(cd "$TOOLS/npm" && node node_modules/typescript/bin/tsc --noEmit --strict --skipLibCheck \
		--target es2022 --module nodenext --moduleResolution nodenext servicemonitor.ts) 2>&1
}
if out=$(check_sm deploy/servicemonitor.yaml); then
	ok "ServiceMonitor valid, no unknown field"
else
	fail "deploy/servicemonitor.yaml: $out"
fi
sed 's/scrapeTimeout:/scrapeTimout:/' deploy/servicemonitor.yaml >"$TMP/sm-field.yaml"
sed 's/interval: 15s/interval: fifteen/' deploy/servicemonitor.yaml >"$TMP/sm-value.yaml"
if out=$(check_sm "$TMP/sm-field.yaml"); then fail "a misspelt field passed"; else ok "a misspelt field (scrapeTimout) is refused"; fi
if out=$(check_sm "$TMP/sm-value.yaml"); then fail "a bad duration passed"; else ok "a bad duration (interval: fifteen) is refused"; fi

echo "k8s-check: kubectl commands in README.md and docs/kubernetes.md, and the DaemonSet's promises"
help=
if [ -n "$AGENT" ]; then
	help=$("$AGENT" --help 2>&1) || true
	[ -n "$help" ] || fail "$AGENT --help printed nothing"
fi
K8S_CHECK_COUNT=$TMP/count HELP=$help "$PY" - README.md docs/kubernetes.md <<'EOF' || true
import os, re, sys, yaml

def load(path):
    return [d for d in yaml.safe_load_all(open(path)) if d]

errors, oks = [], []
commands = []
# Commands: lines of fenced code blocks, and inline code spans.
for doc in sys.argv[1:]:
    fenced = False
    for line in open(doc):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced and line.strip().startswith("kubectl "):
            commands.append((doc, line.split("#")[0].strip()))
        elif not fenced:
            commands += [(doc, m) for m in re.findall(r"`(kubectl [^`]+)`", line)]
if not any(d == "docs/kubernetes.md" for d, _ in commands):
    errors.append("docs/kubernetes.md has no kubectl command")
manifests = {}
for doc, cmd in commands:
    words = cmd.split()
    if words[1:3] == ["apply", "-f"]:
        path = words[3]
        if not os.path.isfile(path):
            errors.append(f"{doc}: `{cmd}`: {path} does not exist")
            continue
        manifests[path] = load(path)
        oks.append(f"{doc}: `{cmd}`: {path} exists")
objs = [o for objs in manifests.values() for o in objs]
templates = [o["spec"]["template"] for o in objs if o["kind"] in ("DaemonSet", "Deployment", "StatefulSet")]
for doc, cmd in commands:
    words = cmd.split()
    if words[1:3] == ["get", "pods"] and "-l" in words:
        k, v = words[words.index("-l") + 1].split("=", 1)
        if any(t["metadata"]["labels"].get(k) == v for t in templates):
            oks.append(f"{doc}: `{cmd}`: a pod template is labelled {k}={v}")
        else:
            errors.append(f"{doc}: `{cmd}`: no pod template labelled {k}={v}")
    if words[1:2] == ["port-forward"]:
        try:
            kind, name = words[2].split("/", 1)
            port = int(words[3].split(":")[-1])
        except (IndexError, ValueError):
            errors.append(f"{doc}: `{cmd}`: not 'kubectl port-forward service/NAME LOCAL:PORT'")
            continue
        svc = [o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == name]
        if kind not in ("service", "svc") or not svc:
            errors.append(f"{doc}: `{cmd}`: no Service {name} in {sorted(manifests)}")
            continue
        spec = svc[0]["spec"]
        selects = any(all(t["metadata"]["labels"].get(k) == v for k, v in spec["selector"].items()) for t in templates)
        if port in [p["port"] for p in spec["ports"]] and selects:
            oks.append(f"{doc}: `{cmd}`: Service {name} has port {port} and selects the agent's pods")
        else:
            errors.append(f"{doc}: `{cmd}`: Service {name} lacks port {port} or selects no pod template")

# What docs/kubernetes.md promises of the DaemonSet.
ds = [o for o in load("deploy/agent.yaml") if o["kind"] == "DaemonSet"][0]
pod = ds["spec"]["template"]["spec"]
c = pod["containers"][0]
sc = c["securityContext"]
args = c["args"]
mounts = {m["name"]: m for m in c["volumeMounts"]}
paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"]}
ann = ds["spec"]["template"]["metadata"]["annotations"]
port = {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"]
checks = {
    "hostNetwork and hostPID": pod.get("hostNetwork") is True and pod.get("hostPID") is True,
    "not privileged, no privilege escalation": sc.get("privileged") is False and sc.get("allowPrivilegeEscalation") is False,
    "capabilities: drop ALL, add exactly BPF, PERFMON, NET_ADMIN": sc["capabilities"] == {"drop": ["ALL"], "add": ["BPF", "PERFMON", "NET_ADMIN"]},
    "liveness and readiness on /healthz": c["livenessProbe"]["httpGet"]["path"] == "/healthz" == c["readinessProbe"]["httpGet"]["path"],
    "--listen-address set explicitly": "--listen-address" in args[:-1],
    "--metrics-port matches the metrics port": "--metrics-port" in args[:-1] and args[args.index("--metrics-port") + 1] == str(port),
    "host paths read-only except bpffs": all(m.get("readOnly") for n, m in mounts.items() if n != "bpffs") and paths["bpffs"] == "/sys/fs/bpf",
    "scrape annotations on the metrics port": ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/port") == str(port),
    "rolling update": ds["spec"]["updateStrategy"]["type"] == "RollingUpdate",
    "tolerates every taint": {"operator": "Exists"} in pod["tolerations"],
    "memory request and limit": "memory" in c["resources"]["requests"] and "memory" in c["resources"]["limits"],
}
for what, good in checks.items():
    (oks if good else errors).append(f"DaemonSet: {what}")
help_text = os.environ.get("HELP", "")
if help_text:
    for flag in [a for a in args if a.startswith("-")]:
        if "=" in flag:
            errors.append(f"DaemonSet argument {flag}: the agent's parser (argh) takes '--flag value', not '--flag=value'")
        elif re.search(rf"(^|\s){re.escape(flag)}\b", help_text):
            oks.append(f"DaemonSet argument {flag}: the agent has it")
        else:
            errors.append(f"DaemonSet argument {flag}: not a flag of the agent (--help)")
for o in oks:
    print(f"  ok: {o}")
for e in errors:
    print(f"  FAIL: {e}", file=sys.stderr)
with open(os.environ["K8S_CHECK_COUNT"], "w") as f:
    f.write(f"{len(oks)} {len(errors)}\n")
EOF
if read -r p f <"$TMP/count"; then
	PASSED=$((PASSED + p)) FAILED=$((FAILED + f))
else
	fail "the command and DaemonSet checks did not run to the end"
fi
echo
echo "k8s-check: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
