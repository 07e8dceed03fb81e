//! IPFIX (RFC 7011) flow export of the flow table, over UDP or TCP.
//!
//! Entry points: [`IpfixSink`] (its doc says how it is driven) and, without
//! a socket, [`IpfixExporter`]. Layers, leaves first: [`flow_table`] (the
//! input), `template` (Information Elements and record encoding), `cache`
//! (deltas and expiry: its doc says why one entry gives up to two records),
//! `message` (framing within the MTU, sequence numbers), `transport`,
//! `stats`, then `exporter`.

mod cache;
mod exporter;
pub mod flow_table;
mod message;
mod stats;
mod template;
mod transport;

pub use cache::Timeouts;
pub use exporter::{IpfixConfig, IpfixExporter, IpfixSink, IP_TRANSPORT_OVERHEAD};
pub use flow_table::{Direction, FlowCounters, FlowEntry, FlowKey, FlowTable, Unattributed};
pub use stats::Stats;
pub use template::{EndReason, FlowRecord};
pub use transport::Collector;

#[cfg(test)]
mod oracle_tests;
