#!/usr/bin/env bash
# Validates deploy/grafana/netprobe.json against Grafana's own schema:
# @grafana/schema (the TypeScript types Grafana generates from its CUE
# dashboard and panel kinds) and the TypeScript compiler, both pinned in
# deploy/grafana/schema-check/package-lock.json. No Grafana runs here (it is
# not in Debian's archive), so the compiler checks what Grafana's types say:
#   - the dashboard object against Dashboard (templating, panels, field
#     configs, thresholds, annotations), extra or misspelt keys included;
#   - each panel's options and custom field config against its plugin's
#     Options and FieldConfig (timeseries, stat, heatmap).
# Grafana's enums are spelt as their JSON values ("absolute", not
# ThresholdsMode.Absolute). Then a structural check of what the types cannot
# see: known panel types, unique ids, a non-overlapping 24-column grid,
# every query on the ${datasource} variable, every $variable defined.
#
# Usage: build/dash-schema.sh   (node and npm: build/deps.sh; the npm
# packages are cached in $NETPROBE_CACHE/dash-schema, 33 MB)
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "dash-schema: FAIL: $*" >&2; exit 1; }
for t in node npm python3; do
	command -v "$t" >/dev/null || die "$t is missing (run build/deps.sh)"
done

python3 deploy/grafana/dashboard.py --check || die "regenerate the dashboard"

SRC=deploy/grafana/schema-check
DIR=${NETPROBE_CACHE:-build/.cache}/dash-schema
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)
if ! cmp -s "$SRC/package-lock.json" "$DIR/package-lock.json" || [ ! -x "$DIR/node_modules/.bin/tsc" ]; then
	cp "$SRC/package.json" "$SRC/package-lock.json" "$DIR/"
	(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci in $DIR"
fi

python3 - "$DIR/check.ts" deploy/grafana/netprobe.json <<'EOF'
import json, sys
out, src = sys.argv[1], sys.argv[2]
d = json.load(open(src))
plugin = {
    "timeseries": "timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen",
    "stat": "stat/panelcfg/x/StatPanelCfg_types.gen",
    "heatmap": "heatmap/panelcfg/x/HeatmapPanelCfg_types.gen",
}
lines = [
    "import type { Dashboard } from '@grafana/schema';",
]
for name, path in plugin.items():
    lines.append(f"import type * as {name} from '@grafana/schema/dist/esm/raw/composable/{path}';")
lines += [
    "// Grafana's types as JSON spells them: enums by their values.",
    "type J<T> = T extends string ? `${T}` : T extends (infer U)[] ? J<U>[]",
    "  : T extends object ? { [K in keyof T]: J<T[K]> } : T;",
    f"export const dashboard = {json.dumps(d)} satisfies J<Dashboard>;",
]
for p in d["panels"]:
    t = p["type"]
    if t == "row":
        continue
    lines.append(f"export const options_{p['id']} = {json.dumps(p['options'])} satisfies J<{t}.Options>;")
    custom = p["fieldConfig"]["defaults"].get("custom")
    if custom is not None:
        lines.append(f"export const custom_{p['id']} = {json.dumps(custom)} satisfies J<{t}.FieldConfig>;")
open(out, "w").write("\n".join(lines) + "\n")
EOF

(cd "$DIR" && node node_modules/typescript/bin/tsc --noEmit --strict --skipLibCheck --target es2022 \
	--module nodenext --moduleResolution nodenext check.ts) >"$DIR/tsc.log" 2>&1 \
	|| { cat "$DIR/tsc.log" >&2; die "netprobe.json does not match Grafana's schema (@grafana/schema $(node -p "require('$DIR/node_modules/@grafana/schema/package.json').version"))"; }

python3 - deploy/grafana/netprobe.json <<'EOF'
import json, re, sys
d = json.load(open(sys.argv[1]))
errors = []
assert d["schemaVersion"] >= 36, "schemaVersion of Grafana 9 or older"
names = {v["name"] for v in d["templating"]["list"]}
builtin = {"__rate_interval", "__interval", "__range"}
ids, cells = set(), {}
for p in d["panels"]:
    if p["id"] in ids:
        errors.append(f"duplicate panel id {p['id']}")
    ids.add(p["id"])
    if p["type"] not in ("row", "timeseries", "stat", "heatmap"):
        errors.append(f"{p['title']}: unknown panel type {p['type']}")
    g = p["gridPos"]
    if g["x"] < 0 or g["x"] + g["w"] > 24:
        errors.append(f"{p['title']}: outside the 24-column grid")
    for x in range(g["x"], g["x"] + g["w"]):
        for y in range(g["y"], g["y"] + g["h"]):
            if (x, y) in cells:
                errors.append(f"{p['title']} overlaps {cells[(x, y)]}")
                break
            cells[(x, y)] = p["title"]
    if p["type"] == "row":
        continue
    if not p.get("targets"):
        errors.append(f"{p['title']}: no query")
    for t in p.get("targets", []):
        if t["datasource"] != {"type": "prometheus", "uid": "${datasource}"}:
            errors.append(f"{p['title']} {t['refId']}: not on the datasource variable")
        for v in re.findall(r"\$\{?(\w+)", t["expr"]):
            if v not in names and v not in builtin:
                errors.append(f"{p['title']} {t['refId']}: undefined variable ${v}")
        if re.search(r"netprobe_\w+_rate\b", t["expr"]):
            errors.append(f"{p['title']} {t['refId']}: uses a _rate gauge; use rate() over the _total counter")
if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"dash-schema: {len(ids)} panels, {len(names)} variables: grid, datasource and variables consistent")
EOF
echo "dash-schema: netprobe.json matches @grafana/schema $(node -p "require('$DIR/node_modules/@grafana/schema/package.json').version") (Dashboard, and each panel's Options and FieldConfig)"
