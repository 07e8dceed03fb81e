//! NetProbe: eBPF network monitor. The library behind `netprobe-agent`.
//!
//! - [`manager::Manager`] loads the probes, attaches them to interfaces and
//!   reads their maps.
//! - [`collector::Collector`] reads on an interval (or [`collect_once`]),
//!   computes rates and publishes a [`snapshot::Snapshot`].
//! - [`http::MetricsServer`] serves the latest snapshot as Prometheus text
//!   and JSON.
//!
//! [`collect_once`]: collector::Collector::collect_once

pub mod abi;
pub mod clock;
pub mod collector;
pub mod config;
pub mod detect;
pub mod export;
pub mod http;
pub mod identity;
pub mod interface_filter;
pub mod kernel;
pub mod linkwatch;
pub mod lists;
pub mod manager;
pub mod metrics;
pub mod netif;
#[cfg(feature = "testkit")]
pub mod packet;
pub mod pins;
pub mod probes;
pub mod process;
pub mod prom;
pub mod rates;
pub mod sinks;
pub mod snapshot;
pub mod sockets;
#[cfg(feature = "testkit")]
pub mod testrun;
pub mod units;
