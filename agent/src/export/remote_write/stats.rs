//! The remote_write sink's own counters, as `/metrics` shows them.

use crate::export::{MetricKind, SinkMetric};

/// Counters of one receiver's writer. Samples are counted once each:
/// sent, failed (rejected by the receiver), or dropped by the agent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Accepted by the receiver (2xx).
    pub sent: u64,
    /// Rejected for good by the receiver (4xx other than 429).
    pub failed: u64,
    /// In attempts that failed and were (or will be) tried again.
    pub retried: u64,
    /// Dropped because the spool was full: the oldest go first.
    pub dropped_spool_full: u64,
    /// Unsent at shutdown without a spool directory to keep them.
    pub dropped_shutdown: u64,
    /// Damaged records found in spool files and skipped.
    pub spool_corrupt_records: u64,
    /// Spool file writes that failed (the chunks stay in memory).
    pub spool_write_errors: u64,
    pub requests_accepted: u64,
    pub requests_retried: u64,
    pub requests_rejected: u64,
    /// Unix seconds of the last accepted request (0: none yet).
    pub last_success_unix: f64,
    /// Duration of the last request, seconds.
    pub last_push_seconds: f64,
    /// Sum of every request's duration, seconds.
    pub push_seconds_total: f64,
}

/// Gauges read from the spool when the metrics are taken.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SpoolGauges {
    pub bytes: u64,
    pub max_bytes: u64,
    pub samples: u64,
    pub disk_bytes: u64,
    /// Age of the oldest unsent sample, seconds (0: spool empty).
    pub oldest_age_seconds: f64,
}

impl Stats {
    pub fn metrics(&self, receiver: &str, spool: SpoolGauges) -> Vec<SinkMetric> {
        use MetricKind::{Counter, Gauge};
        let r = [("receiver", receiver)];
        let m = |name, kind, help, v: f64| SinkMetric::new(name, kind, help, &r, v);
        let dropped = |reason, v: u64| {
            SinkMetric::new(
                "netprobe_remote_write_samples_dropped_total",
                Counter,
                "Samples the agent dropped unsent, by reason (spool_full: oldest first; shutdown: no spool directory).",
                &[("receiver", receiver), ("reason", reason)],
                v as f64,
            )
        };
        let requests = |result, v: u64| {
            SinkMetric::new(
                "netprobe_remote_write_requests_total",
                Counter,
                "remote_write requests by result (accepted, retried, rejected).",
                &[("receiver", receiver), ("result", result)],
                v as f64,
            )
        };
        vec![
            m(
                "netprobe_remote_write_samples_sent_total",
                Counter,
                "Samples the receiver accepted.",
                self.sent as f64,
            ),
            m(
                "netprobe_remote_write_samples_failed_total",
                Counter,
                "Samples the receiver rejected for good (HTTP 4xx other than 429).",
                self.failed as f64,
            ),
            m(
                "netprobe_remote_write_samples_retried_total",
                Counter,
                "Samples in requests that failed and were retried (network error, 5xx, 429).",
                self.retried as f64,
            ),
            dropped("spool_full", self.dropped_spool_full),
            dropped("shutdown", self.dropped_shutdown),
            m(
                "netprobe_remote_write_spool_corrupt_records_total",
                Counter,
                "Damaged records skipped in spool files (a torn write).",
                self.spool_corrupt_records as f64,
            ),
            m(
                "netprobe_remote_write_spool_write_errors_total",
                Counter,
                "Spool file writes that failed; the samples stay in memory.",
                self.spool_write_errors as f64,
            ),
            requests("accepted", self.requests_accepted),
            requests("retried", self.requests_retried),
            requests("rejected", self.requests_rejected),
            m(
                "netprobe_remote_write_spool_bytes",
                Gauge,
                "Bytes of unsent samples in the spool (compressed, with bookkeeping).",
                spool.bytes as f64,
            ),
            m(
                "netprobe_remote_write_spool_max_bytes",
                Gauge,
                "The spool's bound (--remote-write-spool-bytes).",
                spool.max_bytes as f64,
            ),
            m(
                "netprobe_remote_write_spool_samples",
                Gauge,
                "Unsent samples in the spool.",
                spool.samples as f64,
            ),
            m(
                "netprobe_remote_write_spool_disk_bytes",
                Gauge,
                "Bytes of spool files in --remote-write-spool-dir.",
                spool.disk_bytes as f64,
            ),
            m(
                "netprobe_remote_write_oldest_sample_age_seconds",
                Gauge,
                "Age of the oldest unsent sample (0: nothing waits).",
                spool.oldest_age_seconds,
            ),
            m(
                "netprobe_remote_write_last_success_timestamp_seconds",
                Gauge,
                "Unix time of the last accepted request (0: none yet).",
                self.last_success_unix,
            ),
            m(
                "netprobe_remote_write_last_push_duration_seconds",
                Gauge,
                "Duration of the last remote_write request.",
                self.last_push_seconds,
            ),
            m(
                "netprobe_remote_write_push_duration_seconds_total",
                Counter,
                "Time spent in remote_write requests.",
                self.push_seconds_total,
            ),
        ]
    }
}
