//! The immutable view the collector publishes after each read of the maps.
//! HTTP handlers only ever see a snapshot, never a BPF map, so a scrape costs
//! the same however often it comes. Serialised as-is for `/status`.

use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::abi::{Counter, PacketStats};

#[derive(Clone, Debug, Default, Serialize)]
pub struct Snapshot {
    pub version: &'static str,
    /// Git commit the agent was built from (`unknown` outside git).
    pub revision: &'static str,
    /// CPU architecture the agent was built for.
    pub arch: &'static str,
    pub kernel_release: String,
    /// Unix time the agent started, seconds.
    pub started_at: f64,
    /// Seconds since start, as of this collection.
    pub uptime_seconds: f64,
    /// The agent's own CPU, memory and descriptors (`process_*` metrics).
    pub process: crate::process::ProcessStats,
    pub collection: CollectionInfo,
    pub interfaces: Vec<InterfaceSnapshot>,
    pub maps: Vec<MapFill>,
    pub flow_table: FlowTable,
    pub events: EventCounters,
    /// Recent interface changes, newest last (bounded).
    pub interface_changes: Vec<InterfaceChange>,
    /// Interface changes since start: attached, vanished, refused.
    pub interface_changes_total: ChangeCounters,
    /// Alerts, blocks and detection counters (crate::detect).
    pub security: crate::detect::render::SecuritySnapshot,
    /// The TCP socket layer (agent/src/sockets); absent when the library
    /// user did not set one up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sockets: Option<crate::sockets::SocketSnapshot>,
    /// The remote_write and IPFIX sinks (crate::sinks); absent when none
    /// is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportStatus>,
}

/// The sinks' state as of a collection: a short `/status` section, and
/// their own metrics for `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExportStatus {
    pub remote_write: Vec<RemoteWriteStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipfix: Option<IpfixStatus>,
    /// Rendered by `metrics::render` beside the rest.
    #[serde(skip)]
    pub metrics: Vec<crate::export::SinkMetric>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RemoteWriteStatus {
    /// Position among the `--remote-write-url` flags (the `receiver` label).
    pub receiver: String,
    /// Scheme, host and port only: a path or query may hold a secret.
    pub endpoint: String,
    /// Unix time of the last accepted push, seconds (0: none yet).
    pub last_success: f64,
    pub samples_sent: u64,
    pub spool_bytes: u64,
    pub spool_samples: u64,
    /// Dropped unsent (spool full, shutdown) or rejected by the receiver.
    pub samples_dropped: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct IpfixStatus {
    pub collector: String,
    pub flow_records: u64,
    pub messages: u64,
    pub records_dropped: u64,
    pub send_errors: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChangeCounters {
    pub attached: u64,
    pub vanished: u64,
    pub refused: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct InterfaceChange {
    /// Unix time, seconds.
    pub at: f64,
    pub interface: String,
    pub ifindex: u32,
    /// `attached`, `vanished` or `refused`.
    pub change: &'static str,
    /// Why an attach was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CollectionInfo {
    pub interval_seconds: f64,
    /// Unix time of this collection, seconds.
    pub last_collection: f64,
    pub duration_seconds: f64,
    pub collections_total: u64,
    pub errors_total: u64,
    /// The most recent failure, if the last collection failed.
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct HookInfo {
    pub hook: &'static str,
    pub mode: &'static str,
    pub method: &'static str,
    pub program_id: u32,
    /// False once a check found the probe detached (by hand, or by another
    /// tool): it counts nothing, and /healthz says so.
    pub attached: bool,
    /// Why it is not attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    pub rx_packets: f64,
    pub tx_packets: f64,
    pub rx_bytes: f64,
    pub tx_bytes: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct InterfaceSnapshot {
    pub name: String,
    pub ifindex: u32,
    pub hooks: Vec<HookInfo>,
    /// Which hook's counters are the interface's received packets:
    /// `xdp` where XDP is attached (it sees every frame before GRO),
    /// else `tc_ingress`.
    pub rx_source: &'static str,
    pub rx: Counter,
    pub tx: Counter,
    pub rates: Rates,
    /// Full counters per hook, summed over CPUs.
    #[serde(skip)]
    pub per_hook: Vec<(&'static str, PacketStats)>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct MapFill {
    pub name: &'static str,
    pub entries: u64,
    pub capacity: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct FlowTable {
    pub entries: u64,
    pub capacity: u64,
    /// Busiest flows by bytes, at most `--top-flows`.
    pub top: Vec<FlowEntry>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct FlowEntry {
    pub interface: String,
    pub family: &'static str,
    pub protocol: String,
    pub src: String,
    pub src_port: u16,
    pub dst: String,
    pub dst_port: u16,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Seconds since the flow was first and last seen.
    pub age_seconds: f64,
    pub idle_seconds: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct EventCounters {
    /// Ring-buffer events received, all kinds.
    pub received_total: u64,
    /// Times a CPU ran out of new-flow budget (flood guard engaged).
    pub flow_admission_limited_total: u64,
}

/// A snapshot with its two renderings, made once per collection.
#[derive(Debug, Default)]
pub struct Rendered {
    pub snapshot: Snapshot,
    pub metrics: String,
    pub status: String,
}

/// Where the collector publishes and handlers read: readers clone an `Arc`
/// under a read lock held for nanoseconds.
#[derive(Debug, Default)]
pub struct Published {
    latest: RwLock<Arc<Rendered>>,
}

impl Published {
    pub fn new() -> Arc<Published> {
        Arc::new(Published::default())
    }

    pub fn store(&self, r: Rendered) {
        let r = Arc::new(r);
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = r;
    }

    pub fn load(&self) -> Arc<Rendered> {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
