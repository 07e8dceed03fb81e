//! Prometheus remote_write 1.0: snappy-compressed protobuf `WriteRequest`s
//! POSTed to a receiver (Prometheus with `--web.enable-remote-write-receiver`,
//! VictoriaMetrics, Thanos Receive, Mimir, Cortex).
//!
//! Entry point: [`RemoteWriter`] (its doc says how it is driven). Layers,
//! leaves first: [`sample`] (the input), `proto` (the encoding), `chunk`
//! (bounded pieces), `spool` and `spool_dir` (what waits, in memory and on
//! disk), `backoff` and `client` (one request and when to retry it),
//! `stats`, then `writer`.

mod backoff;
mod chunk;
mod client;
pub mod exposition;
mod proto;
pub mod sample;
mod spool;
mod spool_dir;
mod stats;
mod writer;

pub use backoff::parse_retry_after;
pub use chunk::Limits;
pub use client::Authorization;
pub use sample::{ExternalLabels, Sample};
pub use spool_dir::SEGMENT_MAX_BYTES;
pub use stats::{SpoolGauges, Stats};
pub use writer::{RemoteWriteConfig, RemoteWriter};

/// Test helpers: decode a request body with prost (the oracle).
#[cfg(test)]
pub(crate) use proto::oracle;

#[cfg(test)]
mod writer_tests;
