//! Renders a snapshot as Prometheus text exposition format 0.0.4.
//! Labels are bounded: interface, hook, family, protocol, flag, reason,
//! mode; never addresses or ports.

use crate::abi::{FAMILY_NAMES, FLOW_MISS_NAMES, L4_NAMES, SKIP_NAMES, TCP_FLAG_NAMES};
use crate::snapshot::Snapshot;

use crate::prom::Family;
pub use crate::prom::CONTENT_TYPE;

/// The whole /metrics page for one snapshot.
pub fn render(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096 + s.interfaces.len() * 8192);
    let o = &mut out;

    // The design's names, exactly: interface totals and rates.
    type Pick = fn(&crate::snapshot::InterfaceSnapshot) -> u64;
    let totals: [(&'static str, &str, Pick); 4] = [
        (
            "netprobe_interface_rx_packets_total",
            "Packets received on the interface.",
            |i| i.rx.packets,
        ),
        (
            "netprobe_interface_tx_packets_total",
            "Packets sent on the interface.",
            |i| i.tx.packets,
        ),
        (
            "netprobe_interface_rx_bytes_total",
            "Bytes received on the interface, Ethernet header included.",
            |i| i.rx.bytes,
        ),
        (
            "netprobe_interface_tx_bytes_total",
            "Bytes sent on the interface, Ethernet header included.",
            |i| i.tx.bytes,
        ),
    ];
    for (name, help, pick) in totals {
        let mut f = Family::new(o, name, "counter", help);
        for i in &s.interfaces {
            f.sample(&[("interface", &i.name)], pick(i));
        }
    }
    type PickRate = fn(&crate::snapshot::Rates) -> f64;
    let rates: [(&'static str, &str, PickRate); 4] = [
        (
            "netprobe_interface_rx_packets_rate",
            "Packets received per second over the last collect interval.",
            |r| r.rx_packets,
        ),
        (
            "netprobe_interface_tx_packets_rate",
            "Packets sent per second over the last collect interval.",
            |r| r.tx_packets,
        ),
        (
            "netprobe_interface_rx_bytes_rate",
            "Bytes received per second over the last collect interval.",
            |r| r.rx_bytes,
        ),
        (
            "netprobe_interface_tx_bytes_rate",
            "Bytes sent per second over the last collect interval.",
            |r| r.tx_bytes,
        ),
    ];
    for (name, help, pick) in rates {
        let mut f = Family::new(o, name, "gauge", help);
        for i in &s.interfaces {
            f.sample(&[("interface", &i.name)], pick(&i.rates));
        }
    }

    let mut f = Family::new(
        o,
        "netprobe_hook_attached",
        "gauge",
        "1 for each probe attached, by interface, hook and attach mode; 0 once a check found it detached.",
    );
    for i in &s.interfaces {
        for h in &i.hooks {
            f.sample(
                &[("interface", &i.name), ("hook", h.hook), ("mode", h.mode)],
                u64::from(h.attached),
            );
        }
    }

    // Per hook: protocol breakdown, TCP flags, parser skip reasons.
    let mut f = Family::new(
        o,
        "netprobe_hook_packets_total",
        "counter",
        "Packets seen by each probe, by address family and L4 protocol (family=\"other\": not IP).",
    );
    for i in &s.interfaces {
        for (hook, st) in &i.per_hook {
            for (fi, fam) in FAMILY_NAMES.iter().enumerate() {
                for (li, l4) in L4_NAMES.iter().enumerate() {
                    if valid_pair(fi, li) {
                        f.sample(
                            &[
                                ("interface", &i.name),
                                ("hook", hook),
                                ("family", fam),
                                ("protocol", l4),
                            ],
                            st.l3[fi][li].packets,
                        );
                    }
                }
            }
            f.sample(
                &[
                    ("interface", &i.name),
                    ("hook", hook),
                    ("family", "other"),
                    ("protocol", "other"),
                ],
                st.non_ip.packets,
            );
        }
    }
    let mut f = Family::new(
        o,
        "netprobe_hook_bytes_total",
        "counter",
        "Bytes seen by each probe, by address family and L4 protocol (family=\"other\": not IP).",
    );
    for i in &s.interfaces {
        for (hook, st) in &i.per_hook {
            for (fi, fam) in FAMILY_NAMES.iter().enumerate() {
                for (li, l4) in L4_NAMES.iter().enumerate() {
                    if valid_pair(fi, li) {
                        f.sample(
                            &[
                                ("interface", &i.name),
                                ("hook", hook),
                                ("family", fam),
                                ("protocol", l4),
                            ],
                            st.l3[fi][li].bytes,
                        );
                    }
                }
            }
            f.sample(
                &[
                    ("interface", &i.name),
                    ("hook", hook),
                    ("family", "other"),
                    ("protocol", "other"),
                ],
                st.non_ip.bytes,
            );
        }
    }
    let mut f = Family::new(
        o,
        "netprobe_tcp_flags_total",
        "counter",
        "TCP segments by flag: syn (SYN without ACK), synack, fin, rst.",
    );
    for i in &s.interfaces {
        for (hook, st) in &i.per_hook {
            for (fl, name) in TCP_FLAG_NAMES.iter().enumerate() {
                f.sample(
                    &[("interface", &i.name), ("hook", hook), ("flag", name)],
                    st.tcp_flags[fl],
                );
            }
        }
    }
    let mut f = Family::new(
        o,
        "netprobe_parse_skipped_total",
        "counter",
        "Packets the parser stopped early on, by reason; they passed untouched.",
    );
    for i in &s.interfaces {
        for (hook, st) in &i.per_hook {
            for (r, name) in SKIP_NAMES.iter().enumerate() {
                if let Some(name) = name {
                    f.sample(
                        &[("interface", &i.name), ("hook", hook), ("reason", name)],
                        st.skip[r],
                    );
                }
            }
        }
    }

    // Flow table.
    let mut f = Family::new(
        o,
        "netprobe_flows_created_total",
        "counter",
        "Entries added to the kernel flow table.",
    );
    for i in &s.interfaces {
        for (hook, st) in &i.per_hook {
            f.sample(&[("interface", &i.name), ("hook", hook)], st.flows_created);
        }
    }
    let mut f = Family::new(o, "netprobe_flow_untracked_packets_total", "counter",
        "Packets not attributed to a flow: not_admitted (new-flow budget spent, flood guard), update_failed.");
    for i in &s.interfaces {
        for (hook, st) in &i.per_hook {
            for (r, name) in FLOW_MISS_NAMES.iter().enumerate() {
                f.sample(
                    &[("interface", &i.name), ("hook", hook), ("reason", name)],
                    st.flow_miss[r],
                );
            }
        }
    }
    Family::new(
        o,
        "netprobe_flow_table_entries",
        "gauge",
        "Flows in the kernel flow table.",
    )
    .sample(&[], s.flow_table.entries);
    Family::new(
        o,
        "netprobe_flow_table_capacity",
        "gauge",
        "Size of the kernel flow table (--max-flows).",
    )
    .sample(&[], s.flow_table.capacity);
    let mut f = Family::new(
        o,
        "netprobe_map_entries",
        "gauge",
        "Entries in each kernel map.",
    );
    for m in &s.maps {
        f.sample(&[("map", m.name)], m.entries);
    }
    let mut f = Family::new(
        o,
        "netprobe_map_capacity",
        "gauge",
        "Maximum entries of each kernel map.",
    );
    for m in &s.maps {
        f.sample(&[("map", m.name)], m.capacity);
    }
    Family::new(
        o,
        "netprobe_events_total",
        "counter",
        "Events received from the probes' ring buffer.",
    )
    .sample(&[], s.events.received_total);
    Family::new(
        o,
        "netprobe_flow_admission_limited_total",
        "counter",
        "Times a CPU ran out of new-flow budget (one event per CPU per second at most).",
    )
    .sample(&[], s.events.flow_admission_limited_total);

    if let Some(sockets) = &s.sockets {
        crate::sockets::render_metrics(sockets, o);
    }

    crate::detect::render::render_metrics(o, &s.security);

    // The agent itself.
    let t = &s.interface_changes_total;
    Family::new(
        o,
        "netprobe_interface_changes_total",
        "counter",
        "Interfaces attached, vanished (dropped from the metrics), or refused (attach failed).",
    )
    .sample(&[("change", "attached")], t.attached)
    .sample(&[("change", "vanished")], t.vanished)
    .sample(&[("change", "refused")], t.refused);
    let c = &s.collection;
    Family::new(
        o,
        "netprobe_collect_duration_seconds",
        "gauge",
        "Time the last read of the kernel maps took.",
    )
    .sample(&[], c.duration_seconds);
    Family::new(
        o,
        "netprobe_collect_interval_seconds",
        "gauge",
        "Configured collect interval.",
    )
    .sample(&[], c.interval_seconds);
    Family::new(
        o,
        "netprobe_collections_total",
        "counter",
        "Reads of the kernel maps.",
    )
    .sample(&[], c.collections_total);
    Family::new(
        o,
        "netprobe_collect_errors_total",
        "counter",
        "Reads of the kernel maps that failed.",
    )
    .sample(&[], c.errors_total);
    Family::new(
        o,
        "netprobe_last_collect_timestamp_seconds",
        "gauge",
        "Unix time of the last read of the kernel maps.",
    )
    .sample(&[], c.last_collection);
    Family::new(
        o,
        "netprobe_start_time_seconds",
        "gauge",
        "Unix time the agent started.",
    )
    .sample(&[], s.started_at);
    Family::new(
        o,
        "netprobe_build_info",
        "gauge",
        "Always 1; labels give the agent version, its git revision and the kernel.",
    )
    .sample(
        &[
            ("version", s.version),
            ("revision", s.revision),
            ("kernel", &s.kernel_release),
            ("arch", s.arch),
        ],
        1u64,
    );
    render_process(o, &s.process);
    if let Some(e) = &s.export {
        render_sink_metrics(o, &e.metrics);
    }
    out
}

/// The sinks' own metrics (crate::export), each family once with all its
/// samples, in the order the families first appear.
fn render_sink_metrics(o: &mut String, ms: &[crate::export::SinkMetric]) {
    let mut done: Vec<&str> = Vec::new();
    for first in ms {
        if done.contains(&first.name) {
            continue;
        }
        done.push(first.name);
        let kind = match first.kind {
            crate::export::MetricKind::Counter => "counter",
            crate::export::MetricKind::Gauge => "gauge",
        };
        let mut f = Family::new(o, first.name, kind, first.help);
        for m in ms.iter().filter(|m| m.name == first.name) {
            let labels: Vec<(&str, &str)> =
                m.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            f.sample(&labels, m.value);
        }
    }
}

/// The agent's own process, named as the Prometheus client libraries name
/// it, so standard dashboards and alerts find it.
fn render_process(o: &mut String, p: &crate::process::ProcessStats) {
    Family::new(
        o,
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
    )
    .sample(&[], p.cpu_seconds);
    Family::new(
        o,
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
    )
    .sample(&[], p.resident_memory_bytes);
    Family::new(
        o,
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
    )
    .sample(&[], p.virtual_memory_bytes);
    Family::new(
        o,
        "process_open_fds",
        "gauge",
        "Number of open file descriptors.",
    )
    .sample(&[], p.open_fds);
    Family::new(
        o,
        "process_max_fds",
        "gauge",
        "Maximum number of open file descriptors.",
    )
    .sample(&[], p.max_fds);
    Family::new(
        o,
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
    )
    .sample(&[], p.start_time_seconds);
}

/// ICMP belongs to IPv4 and ICMPv6 to IPv6: the other pairs cannot occur
/// (the probe counts them as "other") so they are not exported.
fn valid_pair(family: usize, l4: usize) -> bool {
    !matches!((family, l4), (0, 3) | (1, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_metrics_come_out_one_family_at_a_time() {
        use crate::export::{MetricKind, SinkMetric};
        let m = |r: &str, name, v| SinkMetric {
            name,
            help: "h.",
            kind: MetricKind::Counter,
            labels: vec![("receiver", r.to_string())],
            value: v,
        };
        let snap = Snapshot {
            export: Some(crate::snapshot::ExportStatus {
                metrics: vec![
                    m("0", "a_total", 1.0),
                    m("0", "b_total", 2.0),
                    m("1", "a_total", 3.0),
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        let out = render(&snap);
        let tail = &out[out.find("# HELP a_total").unwrap()..];
        assert_eq!(
            tail,
            "# HELP a_total h.\n# TYPE a_total counter\na_total{receiver=\"0\"} 1\na_total{receiver=\"1\"} 3\n\
             # HELP b_total h.\n# TYPE b_total counter\nb_total{receiver=\"0\"} 2\n"
        );
    }
}
