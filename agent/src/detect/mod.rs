//! Scan, flood and abnormal-connection detection: the agent side.
//!
//! The probes (`probes/include/detect.h`) keep windowed counters in fixed
//! arrays and write one alert record per key, kind and window to the events
//! ring buffer when a threshold is crossed. [`engine::Engine`] turns those
//! records into alerts (dedup, active/recent, bounded), keeps apart what
//! home hosts do themselves ([`home`]), logs one `warn!` per new alert, and
//! decides mitigation; [`kernel::DetectMaps`] applies its decisions to the
//! kernel maps. `docs/detection.md` has the rules.

pub mod engine;
pub mod hash;
pub mod home;
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
    /// Distinct destination ports one source failed to reach per scan window.
    pub scan_ports: u32,
    /// Distinct destination hosts one source failed to reach per scan window.
    pub scan_hosts: u32,
    /// An attempt unanswered this long has failed.
    pub scan_reply_timeout: Duration,
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
    /// Windows in which a source alone crossed a threshold before a block.
    pub block_after: u32,
    /// The home side (`--home-networks`) and the interfaces whose
    /// addresses `auto` stands for.
    pub home: home::HomeSpec,
    pub home_interfaces: Option<crate::interface_filter::InterfaceFilter>,
    /// Alert (never block) on what home hosts do themselves.
    pub alert_outbound: bool,
    /// Seed of the probes' slot hashes (0 in the flags: random).
    pub hash_seed: u64,
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
            scan_reply_timeout: Duration::from_millis(500),
            flood_window: Duration::from_millis(100),
            syn_flood_rate: 3000,
            udp_flood_rate: 50_000,
            icmp_flood_rate: 2000,
            dst_pps: 0,
            dst_bps: 0,
            iface_pps: 0,
            iface_bps: 0,
            closed_port_rate: 1000,
            allowed_ports: None,
            mitigate: Mitigate::Off,
            block_duration: Duration::from_secs(60),
            block_after: 2,
            home: home::HomeSpec::default(),
            home_interfaces: None,
            alert_outbound: false,
            hash_seed: 0,
            scan_slots: 4096,
            flood_slots: 4096,
            max_blocked: 4096,
            max_list_entries: 65536,
            alert_hold: Duration::from_secs(10),
            max_alerts: 256,
            blocklist: Vec::new(),
            allowlist: Vec::new(),
            conn_window: Duration::from_secs(10),
            conn_fail_threshold: 10,
            reset_peers_threshold: 10,
        }
    }
}

/// Ticks of the probes' pending-attempt clock (2^20 ns, `NP_TICK_SHIFT`).
pub fn reply_ticks(d: Duration) -> u32 {
    (d.as_nanos() >> 20).clamp(1, u128::from(u16::MAX / 2)) as u32
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
            // One sketch bit per distinct failure, never more: N bits set
            // means at least N distinct ports (hosts) failed.
            ("cfg_scan_ports", Global::U32(self.scan_ports)),
            ("cfg_scan_hosts", Global::U32(self.scan_hosts)),
            (
                "cfg_reply_ticks",
                Global::U32(reply_ticks(self.scan_reply_timeout)),
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
            ("cfg_hash_seed", Global::U64(self.hash_seed)),
        ]
    }

    /// Thresholds of the blockable kinds as the probes count them per
    /// window: a source is blocked only when its own count reached them.
    pub fn window_thresholds(&self) -> [u64; k::KIND_MAX] {
        let fw = self.flood_window;
        let mut t = [0u64; k::KIND_MAX];
        t[k::SCAN_VERTICAL as usize] = u64::from(self.scan_ports);
        t[k::SCAN_HORIZONTAL as usize] = u64::from(self.scan_hosts);
        t[k::SYN_FLOOD as usize] = per_window(self.syn_flood_rate, fw);
        t[k::UDP_FLOOD as usize] = per_window(self.udp_flood_rate, fw);
        t[k::ICMP_FLOOD as usize] = per_window(self.icmp_flood_rate, fw);
        t[k::DST_PPS as usize] = per_window(self.dst_pps, fw);
        t[k::DST_BPS as usize] = per_window(self.dst_bps / 8, fw);
        t
    }
}

/// A random seed for the probes' slot hashes, from the kernel (getrandom).
pub fn random_seed() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    if n != b.len() as isize {
        // Never seen on 3.17+; still better than a fixed seed.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return (t.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32) | 1;
    }
    u64::from_ne_bytes(b) | 1
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
    let d = crate::units::parse_duration(s)?;
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
        let g = DetectConfig::default().globals();
        assert!(g.contains(&("cfg_syn_flood", Global::U32(300))));
        assert!(
            g.contains(&("cfg_scan_hosts", Global::U32(16))),
            "16 means 16"
        );
        assert!(g.contains(&("cfg_scan_ports", Global::U32(25))));
        assert!(g.contains(&("cfg_reply_ticks", Global::U32(476))));
        assert!(g.contains(&("cfg_udp_flood", Global::U32(5000))));
        let t = DetectConfig::default().window_thresholds();
        assert_eq!(t[k::SYN_FLOOD as usize], 300);
        assert_eq!(t[k::SCAN_HORIZONTAL as usize], 16);
        assert!(
            g.contains(&("cfg_mitigate", Global::U32(0))),
            "off by default"
        );
        assert!(g.contains(&("cfg_lists", Global::U32(0))));
    }

    /// A rate that does not divide into whole counts per window rounds
    /// up (3001/s over 100 ms is 301, not 300: the threshold is never
    /// below the rate asked for); bit rates become bytes.
    #[test]
    fn per_window_thresholds_round_up_and_bits_become_bytes() {
        let w = Duration::from_millis(100);
        assert_eq!(per_window(3001, w), 301);
        assert_eq!(per_window(3009, w), 301);
        assert_eq!(per_window(1, Duration::from_millis(10)), 1);
        let cfg = DetectConfig {
            dst_pps: 1000,
            dst_bps: 8_000_000,
            iface_pps: 20_000,
            iface_bps: 80_000_000,
            ..Default::default()
        };
        let t = cfg.window_thresholds();
        assert_eq!(t[k::DST_PPS as usize], 100);
        assert_eq!(t[k::DST_BPS as usize], 100_000);
        assert_eq!(t[k::ICMP_FLOOD as usize], 200);
        assert_eq!(t[k::SCAN_VERTICAL as usize], 25);
        let g = cfg.globals();
        assert!(g.contains(&("cfg_dst_bytes", Global::U64(100_000))));
        assert!(g.contains(&("cfg_iface_bytes", Global::U64(1_000_000))));
        assert!(g.contains(&("cfg_iface_pps", Global::U32(2000))));
        assert!(g.contains(&("cfg_closed_ports", Global::U32(100))));
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
        assert!(parse_scan_threshold("201").is_err() && parse_scan_threshold("0") == Ok(0));
        assert!(parse_block_after("1").is_err() && parse_block_after("2") == Ok(2));
        assert!(parse_reply_timeout("5ms").is_err() && parse_reply_timeout("1s").is_ok());
    }
}

/// `--scan-ports`, `--scan-hosts`: 0 (off) to 200 (the sketch has 256 bits).
pub fn parse_scan_threshold(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(v) if v <= 200 => Ok(v),
        _ => Err(format!(
            "scan threshold '{s}' is not a whole number from 0 to 200"
        )),
    }
}

/// `--scan-reply-timeout`: 10ms to 10s.
pub fn parse_reply_timeout(s: &str) -> Result<Duration, String> {
    let d = crate::units::parse_duration(s)?;
    if d < Duration::from_millis(10) || d > Duration::from_secs(10) {
        return Err(format!(
            "scan reply timeout '{s}' is out of range (10ms to 10s)"
        ));
    }
    Ok(d)
}

/// `--block-after`: 2 to 10 windows (a block always needs a repeat).
pub fn parse_block_after(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(v) if (2..=10).contains(&v) => Ok(v),
        _ => Err(format!(
            "block after '{s}' is not a whole number from 2 to 10"
        )),
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

/// `--conn-fail-threshold`: 0 (off) to 1024 (the peers are kept per process).
pub fn parse_conn_fail_threshold(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(v) if v <= 1024 => Ok(v),
        _ => Err(format!(
            "connection failure threshold '{s}' is not a whole number from 0 to 1024"
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
    /// The engine's part.
    pub fn engine(&self) -> engine::EngineConfig {
        engine::EngineConfig {
            hold: self.alert_hold,
            max_alerts: self.max_alerts,
            mitigate: self.mitigate,
            block_duration: self.block_duration,
            block_after: self.block_after,
            thresholds: self.window_thresholds(),
            alert_outbound: self.alert_outbound,
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
    /// The engine with the home networks read from the interfaces now
    /// (logged: alerts and blocks depend on them).
    pub fn new(cfg: &DetectConfig, maps: Option<kernel::DetectMaps>) -> Detector {
        let mut engine = engine::Engine::new(cfg.engine());
        let home = home::Home::new(cfg.home.clone(), cfg.home_interfaces.clone());
        if cfg.enabled {
            log::info!("{}", home.describe());
        }
        engine.set_home(home);
        Detector {
            engine,
            maps,
            enabled: cfg.enabled,
            mitigate: cfg.mitigate,
            received: 0,
        }
    }

    /// One alert record from the ring buffer: alert, log, block at once.
    /// True when it raised a new alert or decided a block (worth showing
    /// in /status before the next collection).
    pub fn ingest(&mut self, ev: &k::AlertEvent) -> bool {
        self.received += 1;
        let raised: u64 = self.engine.raised().iter().sum();
        let actions = self.engine.ingest(ev, crate::clock::Now::read());
        if let Some(m) = self.maps.as_mut() {
            m.apply(&actions);
        }
        !actions.is_empty() || self.engine.raised().iter().sum::<u64>() != raised
    }

    /// Connection events from the socket layer, for the connection
    /// detectors (nothing with --no-detect).
    pub fn ingest_sockets(&mut self, events: &[crate::sockets::SocketEvent]) {
        if !self.enabled || events.is_empty() {
            return;
        }
        let now = crate::clock::Now::read();
        for e in events {
            self.engine.ingest_conn(e, now);
        }
    }

    /// Expires alerts and blocks, reads the kernel counters; for a snapshot.
    /// Reads the home networks again (interfaces come and go).
    pub fn snapshot(&mut self) -> render::SecuritySnapshot {
        if self.enabled {
            let mut home = self.engine.home().clone();
            if home.refresh() {
                log::info!("{}", home.describe());
            }
            self.engine.set_home(home);
        }
        let unblock = self.engine.tick(crate::clock::Now::read());
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
                        answers_passed: c[k::PASS_ANSWER],
                        scan_untracked: c[k::SCAN_UNTRACKED],
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
        s.outbound = *self.engine.outbound_suppressed();
        s.home_networks = self
            .engine
            .home()
            .nets()
            .iter()
            .map(|c| c.to_string())
            .collect();
        s
    }
}
