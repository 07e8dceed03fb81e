//! Sinks that carry NetProbe's data to fleet-wide stores (issue 14):
//!
//! - [`remote_write`]: Prometheus remote_write 1.0 pushes of every series
//!   `/metrics` shows, with a bounded spool (optionally kept on disk) so a
//!   receiver outage loses nothing until the spool is full, and then only
//!   the oldest samples, counted.
//! - [`ipfix`]: IPFIX (RFC 7011) flow export of the flow table, over UDP or
//!   TCP, with delta counts that add up to what the flow table counted.
//!
//! Both are self-contained: their inputs are small plain types of their own
//! ([`remote_write::Sample`], [`ipfix::FlowTable`]) that the agent fills
//! from each published snapshot. Neither reads a BPF map nor imports the
//! collector, the snapshot or the command line, so they never slow the
//! probes or the scrape path. Their own counters come out as
//! [`SinkMetric`]s for the one Prometheus text writer to render.
pub mod ipfix;
pub mod remote_write;
mod sink_metric;

pub use sink_metric::{MetricKind, SinkMetric};
