//! Scan, flood and abnormal-connection detection: the agent side.
//!
//! The probes (`probes/include/detect.h`) keep windowed counters in fixed
//! arrays and write one alert record per key, kind and window to the events
//! ring buffer when a threshold is crossed. [`engine::Engine`] turns those
//! records into alerts (dedup, active/recent, bounded), logs one `warn!`
//! per new alert, and decides mitigation; [`kernel::DetectMaps`] applies
//! its decisions to the kernel maps.

pub mod engine;
pub mod kernel;
pub mod render;

use std::time::Duration;

use crate::abi::detect as k;

/// `--mitigate`: nothing is dropped unless the operator says `on`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mitigate {
    #[default]
    Off,
    DryRun,
    On,
}

impl std::str::FromStr for Mitigate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Mitigate::Off),
            "dry-run" => Ok(Mitigate::DryRun),
            "on" => Ok(Mitigate::On),
            _ => Err(format!(
                "unknown mitigate mode '{s}': expected off, dry-run or on"
            )),
        }
    }
}

impl Mitigate {
    pub fn name(self) -> &'static str {
        match self {
            Mitigate::Off => "off",
            Mitigate::DryRun => "dry-run",
            Mitigate::On => "on",
        }
    }
    /// Value of the probes' `cfg_mitigate`.
    pub fn probe_value(self) -> u32 {
        match self {
            Mitigate::Off => 0,
            Mitigate::DryRun => 1,
            Mitigate::On => 2,
        }
    }
}

/// Kinds the agent raises itself from the socket layer's connection
/// events (not probe records): failed outbound connects from one process,
/// and resets involving many peers.
pub const CONN_FAILURES: u32 = 13;
pub const RESET_PEERS: u32 = 14;

/// Metric label and JSON name of an alert kind (bounded set).
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        k::SCAN_VERTICAL => "scan_vertical",
        k::SCAN_HORIZONTAL => "scan_horizontal",
        k::SYN_FLOOD => "syn_flood",
        k::UDP_FLOOD => "udp_flood",
        k::ICMP_FLOOD => "icmp_flood",
        k::DST_PPS => "dst_pps",
        k::DST_BPS => "dst_bps",
        k::IFACE_PPS => "iface_pps",
        k::IFACE_BPS => "iface_bps",
        k::CLOSED_PORTS => "closed_ports",
        k::PORT_POLICY => "port_policy",
        k::BLOCKLIST => "blocklist",
        CONN_FAILURES => "conn_failures",
        RESET_PEERS => "reset_peers",
        _ => "unknown",
    }
}

/// Every kind (the probes' and the agent's own), in label order.
pub const KINDS: [u32; 14] = [
    k::SCAN_VERTICAL,
    k::SCAN_HORIZONTAL,
    k::SYN_FLOOD,
    k::UDP_FLOOD,
    k::ICMP_FLOOD,
    k::DST_PPS,
    k::DST_BPS,
    k::IFACE_PPS,
    k::IFACE_BPS,
    k::CLOSED_PORTS,
    k::PORT_POLICY,
    k::BLOCKLIST,
    CONN_FAILURES,
    RESET_PEERS,
];

/// Thresholds, windows and sizes, from the flags. Rates are per second;
/// the probes get counts per window.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectConfig {
    pub enabled: bool,
    pub scan_window: Duration,
    /// Distinct destination ports from one source per scan window.
    pub scan_ports: u32,
    /// Distinct destination hosts from one source per scan window.
    pub scan_hosts: u32,
    pub flood_window: Duration,
    pub syn_flood_rate: u64,
    pub udp_flood_rate: u64,
    pub icmp_flood_rate: u64,
    pub dst_pps: u64,
    pub dst_bps: u64,
    pub iface_pps: u64,
    pub iface_bps: u64,
    pub closed_port_rate: u64,
    /// `--allowed-ports`: alert on connections to other ports.
    pub allowed_ports: Option<Vec<u16>>,
    pub mitigate: Mitigate,
    pub block_duration: Duration,
    pub scan_slots: u32,
    pub flood_slots: u32,
    pub max_blocked: u32,
    pub max_list_entries: u32,
    /// An alert stays active this long after its last event.
    pub alert_hold: Duration,
    pub max_alerts: usize,
    /// The lists' rules, parsed (`lists.rs`); loaded into the tries.
    pub blocklist: Vec<crate::lists::Cidr>,
    pub allowlist: Vec<crate::lists::Cidr>,
    /// Window of the connection detectors.
    pub conn_window: Duration,
    /// Failed outbound connects from one process per conn window (0 = off).
    pub conn_fail_threshold: u32,
    /// Distinct peers of resets per process or host per conn window (0 = off).
    pub reset_peers_threshold: u32,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            enabled: true,
            scan_window: Duration::from_secs(2),
            scan_ports: 25,
            scan_hosts: 16,
            flood_window: Duration::from_millis(100),
            syn_flood_rate: 3000,
            udp_flood_rate: 20_000,
            icmp_flood_rate: 2000,
            dst_pps: 0,
            dst_bps: 0,
            iface_pps: 0,
            iface_bps: 0,
            closed_port_rate: 1000,
            allowed_ports: None,
            mitigate: Mitigate::Off,
            block_duration: Duration::from_secs(60),
            scan_slots: 8192,
            flood_slots: 4096,
            max_blocked: 4096,
            max_list_entries: 65536,
            alert_hold: Duration::from_secs(10),
            max_alerts: 256,
            blocklist: Vec::new(),
            allowlist: Vec::new(),
            conn_window: Duration::from_secs(10),
            conn_fail_threshold: 20,
            reset_peers_threshold: 10,
        }
    }
}

/// Bits of the probes' 256-bit linear-counting sketch expected set after
/// `n` distinct values: m(1 - e^(-n/m)), rounded down, at least 1.
pub fn sketch_bits(n: u32) -> u32 {
    if n == 0 {
        return 0;
    }
    let m = 256.0f64;
    ((m * (1.0 - (-(f64::from(n)) / m).exp())).floor() as u32).clamp(1, 256)
}

/// A per-second rate as a count per window (0 stays 0: disabled).
pub fn per_window(rate: u64, window: Duration) -> u64 {
    if rate == 0 {
        return 0;
    }
    ((rate as f64 * window.as_secs_f64()).ceil() as u64).max(1)
}

impl DetectConfig {
    /// The `const volatile` globals of the probes, by name, as u64 or u32.
    pub fn globals(&self) -> Vec<(&'static str, Global)> {
        let fw = self.flood_window;
        let w32 = |r: u64| Global::U32(per_window(r, fw).min(u64::from(u32::MAX)) as u32);
        let lists =
            u32::from(!self.blocklist.is_empty()) | (u32::from(!self.allowlist.is_empty()) << 1);
        vec![
            ("cfg_detect", Global::U32(u32::from(self.enabled))),
            (
                "cfg_scan_window_ns",
                Global::U64(self.scan_window.as_nanos() as u64),
            ),
            (
                "cfg_scan_port_bits",
                Global::U32(sketch_bits(self.scan_ports)),
            ),
            (
                "cfg_scan_host_bits",
                Global::U32(sketch_bits(self.scan_hosts)),
            ),
            ("cfg_flood_window_ns", Global::U64(fw.as_nanos() as u64)),
            ("cfg_syn_flood", w32(self.syn_flood_rate)),
            ("cfg_udp_flood", w32(self.udp_flood_rate)),
            ("cfg_icmp_flood", w32(self.icmp_flood_rate)),
            ("cfg_dst_pps", w32(self.dst_pps)),
            (
                "cfg_dst_bytes",
                Global::U64(per_window(self.dst_bps / 8, fw)),
            ),
            ("cfg_iface_pps", w32(self.iface_pps)),
            (
                "cfg_iface_bytes",
                Global::U64(per_window(self.iface_bps / 8, fw)),
            ),
            ("cfg_closed_ports", w32(self.closed_port_rate)),
            (
                "cfg_port_policy",
                Global::U32(u32::from(self.allowed_ports.is_some())),
            ),
            ("cfg_lists", Global::U32(lists)),
            ("cfg_mitigate", Global::U32(self.mitigate.probe_value())),
            ("cfg_scan_mask", Global::U32(self.scan_slots - 1)),
            ("cfg_flood_mask", Global::U32(self.flood_slots - 1)),
        ]
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    U32(u32),
    U64(u64),
}

/// `--allowed-ports 22,80,443,8000-8100`.
pub fn parse_ports(s: &str) -> Result<Vec<u16>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let lo: u16 = a
            .trim()
            .parse()
            .map_err(|_| format!("port '{part}' is not a number from 0 to 65535"))?;
        let hi: u16 = b
            .trim()
            .parse()
            .map_err(|_| format!("port '{part}' is not a number from 0 to 65535"))?;
        if lo > hi {
            return Err(format!("port range '{part}' is backwards"));
        }
        out.extend(lo..=hi);
    }
    if out.is_empty() {
        return Err(format!("allowed ports '{s}' is empty"));
    }
    Ok(out)
}

/// A power of two in range, for the sketch tables.
pub fn parse_slots(s: &str) -> Result<u32, String> {
    let v: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("table size '{s}' is not a whole number"))?;
    if !(64..=1 << 22).contains(&v) || !v.is_power_of_two() {
        return Err(format!(
            "table size {v} must be a power of two from 64 to 4194304"
        ));
    }
    Ok(v)
}

/// A window: 10ms to 1m.
pub fn parse_window(s: &str) -> Result<Duration, String> {
    let d = crate::config::parse_duration(s)?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(60) {
        return Err(format!("window '{s}' is out of range (10ms to 1m)"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_become_window_counts_and_sketch_bits() {
        assert_eq!(per_window(3000, Duration::from_millis(100)), 300);
        assert_eq!(per_window(1, Duration::from_millis(100)), 1);
        assert_eq!(per_window(0, Duration::from_millis(100)), 0);
        assert_eq!(sketch_bits(25), 23);
        assert_eq!(sketch_bits(16), 15);
        assert_eq!(sketch_bits(1), 1);
        assert_eq!(sketch_bits(100_000), 256);
        let g = DetectConfig::default().globals();
        assert!(g.contains(&("cfg_syn_flood", Global::U32(300))));
        assert!(
            g.contains(&("cfg_mitigate", Global::U32(0))),
            "off by default"
        );
        assert!(g.contains(&("cfg_lists", Global::U32(0))));
    }

    #[test]
    fn flags_values() {
        assert_eq!(
            parse_ports("22, 80,8000-8002").unwrap(),
            [22, 80, 8000, 8001, 8002]
        );
        assert!(
            parse_ports("70000").is_err()
                && parse_ports("9-3").is_err()
                && parse_ports("").is_err()
        );
        assert_eq!("dry-run".parse::<Mitigate>(), Ok(Mitigate::DryRun));
        assert!("yes".parse::<Mitigate>().is_err());
        assert_eq!(parse_slots("4096"), Ok(4096));
        assert!(parse_slots("1000").is_err());
        assert!(parse_window("5ms").is_err() && parse_window("100ms").is_ok());
    }
}

pub fn parse_max_alerts(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(v) if (1..=100_000).contains(&v) => Ok(v),
        _ => Err(format!(
            "max alerts '{s}' is not a whole number from 1 to 100000"
        )),
    }
}

/// `--conn-fail-threshold`: 0 (off) to 100000.
pub fn parse_conn_fail_threshold(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(v) if v <= 100_000 => Ok(v),
        _ => Err(format!(
            "connection failure threshold '{s}' is not a whole number from 0 to 100000"
        )),
    }
}

/// `--reset-peers-threshold`: 0 (off) to 1024 (the peers are kept per process).
pub fn parse_reset_peers_threshold(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(v) if v <= 1024 => Ok(v),
        _ => Err(format!(
            "reset peers threshold '{s}' is not a whole number from 0 to 1024"
        )),
    }
}

pub fn parse_max_blocked(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(v) if (1..=1 << 20).contains(&v) => Ok(v),
        _ => Err(format!(
            "max blocked '{s}' is not a whole number from 1 to 1048576"
        )),
    }
}

impl std::fmt::Display for Mitigate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl DetectConfig {
    /// From the flags, reading the list files.
    ///
    /// # Errors
    /// A list file is unreadable or has a bad line (the message names it).
    pub fn from_args(a: &crate::config::Args) -> Result<DetectConfig, String> {
        let d = DetectConfig::default();
        let max = d.max_list_entries as usize;
        let read = |p: &Option<std::path::PathBuf>| match p {
            Some(p) => crate::lists::load(p, max),
            None => Ok(Vec::new()),
        };
        Ok(DetectConfig {
            enabled: !a.no_detect,
            scan_window: a.scan_window,
            scan_ports: a.scan_ports,
            scan_hosts: a.scan_hosts,
            flood_window: a.flood_window,
            syn_flood_rate: a.syn_flood_rate,
            udp_flood_rate: a.udp_flood_rate,
            icmp_flood_rate: a.icmp_flood_rate,
            dst_pps: a.dst_pps,
            dst_bps: a.dst_bps,
            iface_pps: a.iface_pps,
            iface_bps: a.iface_bps,
            closed_port_rate: a.closed_port_rate,
            allowed_ports: a.allowed_ports.clone(),
            mitigate: a.mitigate,
            block_duration: a.block_duration,
            scan_slots: a.scan_slots,
            flood_slots: a.flood_slots,
            max_blocked: a.max_blocked,
            alert_hold: a.alert_hold,
            max_alerts: a.max_alerts,
            blocklist: read(&a.blocklist)?,
            allowlist: read(&a.allowlist)?,
            conn_window: a.conn_window,
            conn_fail_threshold: a.conn_fail_threshold,
            reset_peers_threshold: a.reset_peers_threshold,
            ..d
        })
    }

    /// The engine's part.
    pub fn engine(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            hold: self.alert_hold,
            max_alerts: self.max_alerts,
            mitigate: self.mitigate,
            block_duration: self.block_duration,
            max_blocked: self.max_blocked as usize,
            allowlist: self.allowlist.clone(),
            conn_window: self.conn_window,
            conn_fail_threshold: self.conn_fail_threshold,
            reset_peers_threshold: self.reset_peers_threshold,
            ..Default::default()
        }
    }
}

/// The engine with its kernel maps: what the collector holds.
#[derive(Default)]
pub struct Detector {
    engine: engine::Engine,
    maps: Option<kernel::DetectMaps>,
    enabled: bool,
    mitigate: Mitigate,
    received: u64,
}

impl Detector {
    pub fn new(cfg: &DetectConfig, maps: Option<kernel::DetectMaps>) -> Detector {
        Detector {
            engine: engine::Engine::new(cfg.engine()),
            maps,
            enabled: cfg.enabled,
            mitigate: cfg.mitigate,
            received: 0,
        }
    }

    /// One alert record from the ring buffer: alert, log, block at once.
    pub fn ingest(&mut self, ev: &k::AlertEvent) {
        self.received += 1;
        let actions = self.engine.ingest(ev, engine::Clock::now());
        if let Some(m) = self.maps.as_mut() {
            m.apply(&actions);
        }
    }

    /// Connection events from the socket layer, for the connection
    /// detectors (nothing with --no-detect).
    pub fn ingest_sockets(&mut self, events: &[crate::sockets::SocketEvent]) {
        if !self.enabled || events.is_empty() {
            return;
        }
        let now = engine::Clock::now();
        for e in events {
            self.engine.ingest_conn(e, now);
        }
    }

    /// Expires alerts and blocks, reads the kernel counters; for a snapshot.
    pub fn snapshot(&mut self) -> render::SecuritySnapshot {
        let unblock = self.engine.tick(engine::Clock::now());
        let mut s = render::SecuritySnapshot {
            detection: self.enabled,
            mitigate: self.mitigate.name(),
            ..Default::default()
        };
        if let Some(m) = self.maps.as_mut() {
            m.apply(&unblock);
            match m.read() {
                Ok(r) => {
                    self.engine.set_block_hits(&r.block_hits);
                    let c = &r.stats.c;
                    s.counters = render::SecurityCounters {
                        events_sent: c[k::EVENTS_SENT],
                        events_lost: c[k::EVENTS_LOST],
                        events_received: 0,
                        dropped_blocklist: c[k::DROP_LIST],
                        dropped_detected: c[k::DROP_BLOCKED],
                        would_drop_blocklist: c[k::DRY_LIST],
                        would_drop_detected: c[k::DRY_BLOCKED],
                        allowlist_passed: c[k::ALLOWED],
                    };
                    s.rules = r.rules;
                }
                Err(e) => log::warn!("reading detection counters: {e}"),
            }
        }
        s.counters.events_received = self.received;
        s.set_alerts(self.engine.alerts());
        s.blocked_sources = self
            .engine
            .blocks()
            .into_iter()
            .take(render::MAX_ALERTS_SHOWN)
            .collect();
        s.raised = *self.engine.raised();
        s.active = self.engine.active_by_kind();
        s
    }
}
