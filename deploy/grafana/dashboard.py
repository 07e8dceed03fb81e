#!/usr/bin/env python3
"""Writes deploy/grafana/netprobe.json, the NetProbe Grafana dashboard.

The dashboard is generated so that every panel has the same shape (one
place sets units, legends and layout) and so that the test can read the
same panel list: build/e2e-dashboards.sh runs `dashboard.py --check`
(the committed JSON must equal this script's output), validates it
against Grafana's own schema (@grafana/schema, build/dash-schema.sh), and
sends every panel query to a real Prometheus.

Queries use rate()/increase() over the `_total` counters, never the
`netprobe_*_rate` gauges: those are the agent's rate over its own last
collect interval, sampled at whatever moment Prometheus scrapes, so a
graph of them aliases (a 5 s burst between two 15 s scrapes is lost)
while rate() over a counter counts every packet.

Usage: deploy/grafana/dashboard.py           write netprobe.json
       deploy/grafana/dashboard.py --check   fail if netprobe.json differs
       deploy/grafana/dashboard.py --queries print "title<TAB>refId<TAB>expr"
"""

import json
import pathlib
import sys

OUT = pathlib.Path(__file__).resolve().parent / "netprobe.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
IF = 'instance=~"$instance", interface=~"$interface"'
RI = "$__rate_interval"

# Received traffic per hook is counted twice where XDP and TC ingress are
# both attached: the XDP series win, TC ingress stands in where no XDP is
# attached (--xdp-mode off), as the agent's own rx_source does.
def rx_hooks(metric, extra=""):
    sel = IF + extra
    return (
        f'rate({metric}{{{sel}, hook="xdp"}}[{RI}]) or ignoring(hook) '
        f'rate({metric}{{{sel}, hook="tc_ingress"}}[{RI}])'
    )


def target(expr, legend, ref, fmt=None):
    t = {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}
    if fmt:
        t["format"] = fmt
    return t


class Layout:
    """Places panels left to right in rows of 24 grid units."""

    def __init__(self):
        self.panels = []
        self.x = 0
        self.y = 0
        self.h = 0
        self.next_id = 1

    def _id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def row(self, title):
        self._newline()
        self.panels.append(
            {"type": "row", "id": self._id(), "title": title, "collapsed": False, "panels": [],
             "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}}
        )
        self.y += 1

    def _newline(self):
        if self.x:
            self.y += self.h
            self.x = self.h = 0

    def add(self, panel, w, h):
        if self.x + w > 24:
            self._newline()
        panel["id"] = self._id()
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel["datasource"] = DS
        self.panels.append(panel)
        self.x += w
        self.h = max(self.h, h)


def timeseries(title, desc, targets, unit, stack=False, bars=False, overrides=None):
    custom = {
        "drawStyle": "bars" if bars else "line",
        "lineWidth": 1,
        "fillOpacity": 60 if bars else 10,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
        "axisPlacement": "auto",
    }
    return {
        "type": "timeseries",
        "title": title,
        "description": desc,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": custom, "color": {"mode": "palette-classic"}},
            "overrides": overrides or [],
        },
        "options": {
            "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom", "calcs": []},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, desc, expr, unit, legend="", thresholds=None):
    steps = thresholds or [{"color": "green", "value": None}]
    return {
        "type": "stat",
        "title": title,
        "description": desc,
        "targets": [target(expr, legend, "A")],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "color": {"mode": "thresholds"},
                "thresholds": {"mode": "absolute", "steps": steps},
            },
            "overrides": [],
        },
        "options": {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "auto",
            "orientation": "auto",
            "wideLayout": True,
            "showPercentChange": False,
            "percentChangeColorMode": "standard",
        },
    }


def heatmap(title, desc, metric, unit):
    return {
        "type": "heatmap",
        "title": title,
        "description": desc,
        "targets": [
            target(f"sum by (le) (increase({metric}_bucket{{{SEL}}}[{RI}]))", "{{le}}", "A", "heatmap")
        ],
        "fieldConfig": {"defaults": {"custom": {"hideFrom": {"legend": False, "tooltip": False, "viz": False},
                                                 "scaleDistribution": {"type": "linear"}}},
                        "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"exponent": 0.5, "fill": "dark-orange", "mode": "scheme", "reverse": False,
                      "scale": "exponential", "scheme": "Oranges", "steps": 64},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
            "filterValues": {"le": 1e-9},
            "legend": {"show": True},
            "rowsFrame": {"layout": "auto"},
            "showValue": "never",
            "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
            "yAxis": {"axisPlacement": "left", "reverse": False, "unit": unit},
        },
    }


def negative_tx():
    """Transmit below the axis, receive above: one panel reads as both."""
    return [{
        "matcher": {"id": "byRegexp", "options": ".* tx$"},
        "properties": [{"id": "custom.transform", "value": "negative-Y"}],
    }]


def build():
    L = Layout()

    L.row("Overview")
    L.add(stat("Agent up", "1 when Prometheus' last scrape of the agent succeeded.",
               f'up{{job=~"$job", {SEL}}}', "none",
               thresholds=[{"color": "red", "value": None}, {"color": "green", "value": 1}]), 3, 4)
    version = stat("Version", "Agent version and the git commit it was built from (netprobe_build_info).",
                   f"netprobe_build_info{{{SEL}}}", "none", legend="{{version}} {{revision}}")
    version["options"]["textMode"] = "name"
    version["options"]["graphMode"] = "none"
    L.add(version, 4, 4)
    L.add(stat("Hooks attached", "Probes attached now (XDP, TC ingress, TC egress per interface); "
               "a drop means a probe was detached.",
               f"sum(netprobe_hook_attached{{{IF}}})", "none"), 3, 4)
    L.add(stat("Alerts active", "Detection alerts active now, all kinds.",
               f"sum(netprobe_alerts_active{{{SEL}}})", "none",
               thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]), 3, 4)
    L.add(stat("Flow table fill", "Flows in the kernel flow table over its size (--max-flows).",
               f"netprobe_flow_table_entries{{{SEL}}} / netprobe_flow_table_capacity{{{SEL}}}", "percentunit",
               thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 0.8},
                           {"color": "red", "value": 0.95}]), 3, 4)
    L.add(stat("Received", "Bits per second received on the selected interfaces.",
               f"sum(rate(netprobe_interface_rx_bytes_total{{{IF}}}[{RI}])) * 8", "bps"), 4, 4)
    L.add(stat("Sent", "Bits per second sent on the selected interfaces.",
               f"sum(rate(netprobe_interface_tx_bytes_total{{{IF}}}[{RI}])) * 8", "bps"), 4, 4)

    L.row("Traffic")
    L.add(timeseries("Throughput per interface",
                     "Bits per second, received above the axis and sent below, from the byte counters "
                     "(Ethernet header included, as the kernel's interface counters count).",
                     [target(f"rate(netprobe_interface_rx_bytes_total{{{IF}}}[{RI}]) * 8", "{{interface}} rx", "A"),
                      target(f"rate(netprobe_interface_tx_bytes_total{{{IF}}}[{RI}]) * 8", "{{interface}} tx", "B")],
                     "bps", overrides=negative_tx()), 12, 8)
    L.add(timeseries("Packets per interface", "Packets per second, received above the axis and sent below.",
                     [target(f"rate(netprobe_interface_rx_packets_total{{{IF}}}[{RI}])", "{{interface}} rx", "A"),
                      target(f"rate(netprobe_interface_tx_packets_total{{{IF}}}[{RI}])", "{{interface}} tx", "B")],
                     "pps", overrides=negative_tx()), 12, 8)
    L.add(timeseries("Received by protocol",
                     "Bits per second received, by address family and L4 protocol (family other: not IP). "
                     "Counted by XDP where attached, else by TC ingress.",
                     [target(f"sum by (family, protocol) ({rx_hooks('netprobe_hook_bytes_total')}) * 8",
                             "{{family}} {{protocol}}", "A")], "bps", stack=True), 12, 8)
    L.add(timeseries("Sent by protocol", "Bits per second sent (TC egress), by address family and L4 protocol.",
                     [target(f'sum by (family, protocol) (rate(netprobe_hook_bytes_total{{{IF}, hook="tc_egress"}}[{RI}])) * 8',
                             "{{family}} {{protocol}}", "A")], "bps", stack=True), 12, 8)
    L.add(timeseries("TCP flags",
                     "TCP segments per second by flag: syn (SYN without ACK), synack, fin, rst. "
                     "Many SYNs with few SYN-ACKs back is a scan or a SYN flood.",
                     [target(f"sum by (flag) ({rx_hooks('netprobe_tcp_flags_total')})", "{{flag}} rx", "A"),
                      target(f'sum by (flag) (rate(netprobe_tcp_flags_total{{{IF}, hook="tc_egress"}}[{RI}]))',
                             "{{flag}} tx", "B")], "pps", overrides=negative_tx()), 12, 8)
    L.add(timeseries("Parse skips",
                     "Packets per second the parser stopped early on, by hook and reason; they passed "
                     "untouched. non_ip is ARP and the like; the others are malformed or unusual packets.",
                     [target(f"sum by (hook, reason) (rate(netprobe_parse_skipped_total{{{IF}}}[{RI}]))",
                             "{{hook}} {{reason}}", "A")], "pps"), 12, 8)

    L.row("Flow table")
    L.add(timeseries("Table fill",
                     "Fill of the kernel flow table (--max-flows) and of every kernel map. The flow table "
                     "is an LRU: full means old flows are evicted early, not that traffic is lost.",
                     [target(f"netprobe_flow_table_entries{{{SEL}}} / netprobe_flow_table_capacity{{{SEL}}}",
                             "flow table", "A"),
                      target(f"netprobe_map_entries{{{SEL}}} / netprobe_map_capacity{{{SEL}}}", "{{map}}", "B")],
                     "percentunit"), 8, 8)
    L.add(timeseries("Flows created",
                     "New entries per second in the flow table, by interface and hook.",
                     [target(f"sum by (interface, hook) (rate(netprobe_flows_created_total{{{IF}}}[{RI}]))",
                             "{{interface}} {{hook}}", "A")], "ops"), 8, 8)
    L.add(timeseries("Flow admission",
                     "Packets per second without a flow entry: not_admitted (a CPU's new-flow budget, "
                     "--flow-admit-rate, was spent: the flood guard), update_failed; and how often a CPU "
                     "ran out of budget.",
                     [target(f"sum by (reason) (rate(netprobe_flow_untracked_packets_total{{{IF}}}[{RI}]))",
                             "untracked {{reason}}", "A"),
                      target(f"rate(netprobe_flow_admission_limited_total{{{SEL}}}[{RI}])",
                             "budget exhausted", "B")], "pps"), 8, 8)

    L.row("Security")
    L.add(timeseries("Alerts raised by kind",
                     "New alerts per interval by kind (one per source and target, not per packet). "
                     "/status lists them with source and target.",
                     [target(f"sum by (kind) (increase(netprobe_alerts_total{{{SEL}}}[{RI}]))", "{{kind}}", "A")],
                     "none", bars=True, stack=True), 8, 8)
    L.add(timeseries("Alerts active by kind", "Alerts active now (--alert-hold after their last crossing).",
                     [target(f"sum by (kind) (netprobe_alerts_active{{{SEL}}})", "{{kind}}", "A")],
                     "none", stack=True), 8, 8)
    L.add(timeseries("Mitigation",
                     "Packets per second matched by mitigation: dropped (--mitigate=on) or would_drop "
                     "(dry-run), by rule; allowlisted packets that a block matched; sources blocked now.",
                     [target(f"sum by (rule, action) (rate(netprobe_mitigation_packets_total{{{SEL}}}[{RI}]))",
                             "{{action}} {{rule}}", "A"),
                      target(f"rate(netprobe_allowlist_passed_total{{{SEL}}}[{RI}])", "allowlist passed", "B"),
                      target(f"netprobe_blocked_sources{{{SEL}}}", "sources blocked", "C")], "pps",
                     overrides=[{"matcher": {"id": "byName", "options": "sources blocked"},
                                 "properties": [{"id": "unit", "value": "none"},
                                                {"id": "custom.axisPlacement", "value": "right"}]}]), 8, 8)

    L.row("TCP connections (socket layer)")
    L.add(timeseries("Connections opened, failed, closed",
                     "Per second: opened (active: this host connected; passive: accepted), failed "
                     "handshakes, closed by reason. Equal to the kernel's SNMP counters.",
                     [target(f"sum by (direction) (rate(netprobe_tcp_connections_opened_total{{{SEL}}}[{RI}]))",
                             "opened {{direction}}", "A"),
                      target(f"rate(netprobe_tcp_connections_failed_total{{{SEL}}}[{RI}])", "failed", "B"),
                      target(f"sum by (reason) (rate(netprobe_tcp_connections_closed_total{{{SEL}}}[{RI}]))",
                             "closed {{reason}}", "C")], "ops"), 8, 8)
    L.add(timeseries("Connections established",
                     "Connections in ESTABLISHED or CLOSE-WAIT (CurrEstab) and the fill of the kernel "
                     "connection table.",
                     [target(f"netprobe_tcp_connections_established{{{SEL}}}", "established", "A"),
                      target(f"netprobe_tcp_connections_tracked{{{SEL}}}", "tracked", "B"),
                      target(f"netprobe_tcp_connections_tracked_capacity{{{SEL}}}", "table size", "C")],
                     "none"), 8, 8)
    L.add(timeseries("Retransmits and resets",
                     "Segments retransmitted per second (RetransSegs), and resets sent and received.",
                     [target(f"rate(netprobe_tcp_retransmitted_segments_total{{{SEL}}}[{RI}])", "retransmitted", "A"),
                      target(f"sum by (direction) (rate(netprobe_tcp_resets_total{{{SEL}}}[{RI}]))",
                             "rst {{direction}}", "B")], "pps"), 8, 8)
    L.add(timeseries("Retransmit and failure ratios",
                     "Retransmitted segments over TCP packets sent (TC egress, selected interfaces; an "
                     "upper bound where GSO sends several segments as one packet), and failed handshakes "
                     "over active opens. The alerts NetProbeTCPRetransmitsHigh and "
                     "NetProbeTCPConnectFailuresHigh use the same ratios.",
                     [target(f"sum(rate(netprobe_tcp_retransmitted_segments_total{{{SEL}}}[{RI}])) / "
                             f'sum(rate(netprobe_hook_packets_total{{{IF}, hook="tc_egress", protocol="tcp"}}[{RI}]))',
                             "retransmit ratio", "A"),
                      target(f"sum(rate(netprobe_tcp_connections_failed_total{{{SEL}}}[{RI}])) / "
                             f'sum(rate(netprobe_tcp_connections_opened_total{{{SEL}, direction="active"}}[{RI}]))',
                             "connect failure ratio", "B")], "percentunit"), 8, 8)
    L.add(heatmap("RTT at close",
                  "Smoothed round-trip time of TCP connections when they closed (netprobe_tcp_srtt_seconds, "
                  "buckets 100 µs to 1 s): connections closed per bucket and interval.",
                  "netprobe_tcp_srtt_seconds", "s"), 8, 8)
    L.add(heatmap("Connection duration",
                  "Lifetime of closed connections that were established (buckets 1 ms to 1 h).",
                  "netprobe_tcp_connection_duration_seconds", "s"), 8, 8)

    L.row("Pods (netprobe_pod_*: empty until the per-pod issue lands)")
    L.add(timeseries("Pod throughput",
                     "Bits per second per pod, received above the axis and sent below, from the pod's "
                     "host-side veth. Empty until the agent exports netprobe_pod_* (issue 15).",
                     [target(f'sum by (namespace, pod) (rate(netprobe_pod_rx_bytes_total{{{SEL}, namespace=~"$namespace"}}[{RI}])) * 8',
                             "{{namespace}}/{{pod}} rx", "A"),
                      target(f'sum by (namespace, pod) (rate(netprobe_pod_tx_bytes_total{{{SEL}, namespace=~"$namespace"}}[{RI}])) * 8',
                             "{{namespace}}/{{pod}} tx", "B")], "bps", overrides=negative_tx()), 8, 8)
    L.add(timeseries("Pod TCP connections",
                     "Connections opened and failed per second per pod.",
                     [target(f'sum by (namespace, pod) (rate(netprobe_pod_tcp_connections_opened_total{{{SEL}, namespace=~"$namespace"}}[{RI}]))',
                             "{{namespace}}/{{pod}} opened", "A"),
                      target(f'sum by (namespace, pod) (rate(netprobe_pod_tcp_connections_failed_total{{{SEL}, namespace=~"$namespace"}}[{RI}]))',
                             "{{namespace}}/{{pod}} failed", "B")], "ops"), 8, 8)
    L.add(timeseries("Pod retransmits",
                     "Segments retransmitted per second per pod.",
                     [target(f'sum by (namespace, pod) (rate(netprobe_pod_tcp_retransmitted_segments_total{{{SEL}, namespace=~"$namespace"}}[{RI}]))',
                             "{{namespace}}/{{pod}}", "A")], "pps"), 8, 8)

    L.row("Agent health")
    L.add(timeseries("Collect duration",
                     "Time the last read of the kernel maps took, against the collect interval. "
                     "A duration near the interval means the agent cannot keep up.",
                     [target(f"netprobe_collect_duration_seconds{{{SEL}}}", "duration", "A"),
                      target(f"netprobe_collect_interval_seconds{{{SEL}}}", "interval", "B")], "s"), 6, 8)
    L.add(timeseries("Collections and errors",
                     "Reads of the kernel maps per second, and failed reads (see /status "
                     "collection.last_error).",
                     [target(f"rate(netprobe_collections_total{{{SEL}}}[{RI}])", "collections", "A"),
                      target(f"rate(netprobe_collect_errors_total{{{SEL}}}[{RI}])", "errors", "B")], "ops"), 6, 8)
    L.add(timeseries("Ring buffers",
                     "Events per second from the probes' ring buffers, and events lost because a ring was "
                     "full (raise --ringbuf-size).",
                     [target(f"rate(netprobe_events_total{{{SEL}}}[{RI}])", "packet probes", "A"),
                      target(f"rate(netprobe_socket_events_total{{{SEL}}}[{RI}])", "socket layer", "B"),
                      target(f"rate(netprobe_alert_events_lost_total{{{SEL}}}[{RI}])", "alert records lost", "C"),
                      target(f"rate(netprobe_socket_events_lost_total{{{SEL}}}[{RI}])", "socket events lost", "D")],
                     "ops"), 6, 8)
    L.add(timeseries("HTTP refusals",
                     "Requests and connections the agent's HTTP server refused or cut, by reason "
                     "(busy, idle evictions, malformed, too large, unauthorized): a client misbehaving "
                     "or the port exposed to more than Prometheus.",
                     [target(f"sum by (reason) (rate(netprobe_http_requests_rejected_total{{{SEL}}}[{RI}]))",
                             "rejected {{reason}}", "A"),
                      target(f"sum by (reason) (rate(netprobe_http_connections_refused_total{{{SEL}}}[{RI}]))",
                             "refused {{reason}}", "B"),
                      target(f"sum by (reason) (rate(netprobe_http_connections_evicted_total{{{SEL}}}[{RI}]))",
                             "evicted {{reason}}", "C")], "ops"), 6, 8)
    L.add(timeseries("Agent CPU and memory",
                     "CPU seconds per second and resident memory of the agent process (process_* "
                     "metrics, read from /proc/self).",
                     [target(f"rate(process_cpu_seconds_total{{job=~\"$job\", {SEL}}}[{RI}])", "cpu", "A"),
                      target(f"process_resident_memory_bytes{{job=~\"$job\", {SEL}}}", "rss", "B")], "percentunit",
                     overrides=[{"matcher": {"id": "byName", "options": "rss"},
                                 "properties": [{"id": "unit", "value": "bytes"},
                                                {"id": "custom.axisPlacement", "value": "right"}]}]), 12, 8)
    L.add(timeseries("Interface changes",
                     "Interfaces attached, vanished or refused (attach failed) per interval.",
                     [target(f"sum by (change) (increase(netprobe_interface_changes_total{{{SEL}}}[{RI}]))",
                             "{{change}}", "A")], "none", bars=True), 12, 8)
    return L.panels


def variables():
    def query_var(name, label, query, multi, include_all, all_value=None):
        v = {
            "type": "query", "name": name, "label": label, "datasource": DS,
            "query": {"query": query, "refId": f"{name}-query", "qryType": 1},
            "refresh": 2, "sort": 1, "multi": multi, "includeAll": include_all,
            "options": [], "hide": 0, "regex": "", "skipUrlSync": False,
        }
        if all_value is not None:
            v["allValue"] = all_value
        return v

    return [
        {"type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
         "options": [], "hide": 0, "refresh": 1, "regex": "", "skipUrlSync": False,
         "multi": False, "includeAll": False},
        query_var("job", "Job", "label_values(netprobe_build_info, job)", True, True, ".+"),
        query_var("instance", "Agent", 'label_values(netprobe_build_info{job=~"$job"}, instance)', False, False),
        query_var("interface", "Interface",
                  'label_values(netprobe_interface_rx_bytes_total{instance=~"$instance"}, interface)',
                  True, True, ".+"),
        query_var("namespace", "Pod namespace",
                  'label_values(netprobe_pod_rx_bytes_total{instance=~"$instance"}, namespace)',
                  True, True, ".*"),
    ]


def dashboard():
    return {
        "title": "NetProbe",
        "uid": "netprobe",
        "description": "NetProbe eBPF network monitor: traffic, flows, detection, TCP health and the "
                       "agent itself. Rates are rate() over the _total counters.",
        "tags": ["netprobe", "network", "ebpf"],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"}, "enable": True,
            "hide": True, "iconColor": "rgba(0, 211, 255, 1)", "name": "Annotations & Alerts", "type": "dashboard",
        }]},
        "templating": {"list": variables()},
        "panels": build(),
    }


def text():
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def queries():
    """(panel title, refId, expr) for every query, rows skipped."""
    for p in dashboard()["panels"]:
        for t in p.get("targets", []):
            yield p["title"], t["refId"], t["expr"]


def main(argv):
    if argv == ["--check"]:
        if not OUT.exists() or OUT.read_text() != text():
            print(f"dashboard: {OUT} differs from deploy/grafana/dashboard.py's output: run it", file=sys.stderr)
            return 1
        return 0
    if argv == ["--queries"]:
        for title, ref, expr in queries():
            print(f"{title}\t{ref}\t{expr}")
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    OUT.write_text(text())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
