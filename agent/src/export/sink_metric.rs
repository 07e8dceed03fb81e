//! A sink's own counters and gauges as plain values, so the agent's one
//! Prometheus text writer renders them beside the rest of `/metrics`
//! (and remote_write pushes them like any other series).

/// Prometheus metric type of a [`SinkMetric`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

/// One sample of a sink's own metrics. Samples of one family share `name`,
/// `help` and `kind` and come out next to each other.
#[derive(Clone, Debug, PartialEq)]
pub struct SinkMetric {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    /// Bounded label values: a receiver's index, a reason, never a URL.
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl SinkMetric {
    pub(crate) fn new(
        name: &'static str,
        kind: MetricKind,
        help: &'static str,
        labels: &[(&'static str, &str)],
        value: f64,
    ) -> SinkMetric {
        SinkMetric {
            name,
            help,
            kind,
            labels: labels.iter().map(|(k, v)| (*k, v.to_string())).collect(),
            value,
        }
    }
}
