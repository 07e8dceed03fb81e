//! The IPFIX sink's own counters, as `/metrics` shows them.

use std::collections::HashMap;

use super::template::EndReason;
use crate::export::{MetricKind, SinkMetric};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Flow records framed for sending.
    pub flow_records: u64,
    /// Options records (unattributed packets) framed for sending.
    pub options_records: u64,
    /// Records in messages that could not be sent.
    pub records_dropped: u64,
    /// Messages and bytes sent.
    pub messages: u64,
    pub bytes: u64,
    /// Templates sent (4 per template refresh or session start).
    pub templates: u64,
    pub send_errors: u64,
    /// Flow records cut, by reason (a flow's periodic reports included).
    pub cuts: HashMap<EndReason, u64>,
    pub tracked_flows: u64,
}

impl Stats {
    pub fn metrics(&self) -> Vec<SinkMetric> {
        use MetricKind::{Counter, Gauge};
        let m = |name, kind, help, labels: &[(&'static str, &str)], v: u64| {
            SinkMetric::new(name, kind, help, labels, v as f64)
        };
        let mut out = vec![
            m(
                "netprobe_ipfix_records_total",
                Counter,
                "IPFIX data records exported, by kind (flow, options).",
                &[("kind", "flow")],
                self.flow_records,
            ),
            m(
                "netprobe_ipfix_records_total",
                Counter,
                "IPFIX data records exported, by kind (flow, options).",
                &[("kind", "options")],
                self.options_records,
            ),
            m(
                "netprobe_ipfix_records_dropped_total",
                Counter,
                "IPFIX records in messages that could not be sent.",
                &[],
                self.records_dropped,
            ),
            m(
                "netprobe_ipfix_messages_total",
                Counter,
                "IPFIX messages sent.",
                &[],
                self.messages,
            ),
            m(
                "netprobe_ipfix_bytes_total",
                Counter,
                "Bytes of IPFIX messages sent (without IP and transport headers).",
                &[],
                self.bytes,
            ),
            m(
                "netprobe_ipfix_templates_total",
                Counter,
                "IPFIX templates sent (session starts and refreshes).",
                &[],
                self.templates,
            ),
            m(
                "netprobe_ipfix_send_errors_total",
                Counter,
                "Failed IPFIX sends and TCP connects.",
                &[],
                self.send_errors,
            ),
            m(
                "netprobe_ipfix_tracked_flows",
                Gauge,
                "Flow-table entries the exporter tracks.",
                &[],
                self.tracked_flows,
            ),
        ];
        for r in EndReason::ALL {
            out.push(m(
                "netprobe_ipfix_flows_expired_total",
                Counter,
                "Flow records cut, by flowEndReason (active_timeout: a periodic report of a flow that goes on).",
                &[("reason", r.name())],
                self.cuts.get(&r).copied().unwrap_or(0),
            ));
        }
        out
    }
}
