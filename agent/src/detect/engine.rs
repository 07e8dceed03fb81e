//! The alert engine: turns the probes' alert records into deduplicated
//! alerts (active while records keep coming, then recent), counts them per
//! kind, and decides which sources to block. Pure: no maps, no clock of its
//! own, so it is tested on synthetic event streams.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use log::warn;
use serde::Serialize;

use super::{kind_name, Mitigate};
use crate::abi::detect::{self as k, AlertEvent};
use crate::lists::Cidr;

/// Flood records whose source sketch has more bits than this come from
/// many sources: random or spoofed, so no single source is named or blocked.
pub const SPOOFED_SOURCES: u32 = 4;

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub hold: Duration,
    pub max_alerts: usize,
    pub mitigate: Mitigate,
    pub block_duration: Duration,
    pub max_blocked: usize,
    pub allowlist: Vec<Cidr>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            hold: Duration::from_secs(10),
            max_alerts: 256,
            mitigate: Mitigate::Off,
            block_duration: Duration::from_secs(60),
            max_blocked: 4096,
            allowlist: Vec::new(),
        }
    }
}

/// The two clocks at one instant: Unix seconds and boot-time ns (the probes').
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub unix: f64,
    pub boot_ns: u64,
}

impl Clock {
    pub fn now() -> Clock {
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        Clock { unix, boot_ns: crate::collector::boottime_ns() }
    }
    fn unix_of(&self, boot_ns: u64) -> f64 {
        self.unix - (self.boot_ns.saturating_sub(boot_ns) as f64 / 1e9)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Target {
    Addr(IpAddr),
    Interface(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: u32,
    source: Option<IpAddr>,
    target: Target,
}

/// One alert, as /status shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub kind: &'static str,
    /// Source address; `many` for floods from random or spoofed sources,
    /// empty for interface totals.
    pub source: String,
    /// Destination address, or `interface:<ifindex>`.
    pub target: String,
    /// Destination port of the packet that crossed (scans: the port swept).
    pub port: u16,
    pub protocol: String,
    /// Count in the last window that crossed the threshold (scans: distinct
    /// ports or hosts, estimated).
    pub count: u64,
    /// That count per second of window.
    pub rate: f64,
    /// Unix seconds: first and last threshold crossing (kernel time).
    pub first_seen: f64,
    pub last_seen: f64,
    /// Unix seconds the agent learnt of it (the first record's arrival).
    pub reported_at: f64,
    pub active: bool,
    /// Alert records folded into this alert.
    pub records: u64,
    pub interface_ifindex: u32,
    /// Whether the source was blocked (or would be, in dry-run).
    pub mitigated: bool,
}

/// A source the engine decided to block.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BlockDecision {
    pub source: String,
    pub kind: &'static str,
    /// Unix seconds.
    pub since: f64,
    pub expires: f64,
    #[serde(skip)]
    pub addr: IpAddr,
    #[serde(skip)]
    pub expires_boot_ns: u64,
    /// Packets matched in the kernel (dropped when mitigate=on), from the map.
    pub hits: u64,
}

/// What the caller must do in the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Block { source: IpAddr, kind: u32, expires_boot_ns: u64 },
    Unblock { source: IpAddr },
}

#[derive(Debug, Default)]
pub struct Engine {
    cfg: EngineConfig,
    alerts: HashMap<Key, Alert>,
    raised: [u64; k::KIND_MAX],
    records: u64,
    blocks: HashMap<IpAddr, BlockDecision>,
}

fn protocol(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}

fn blockable(kind: u32) -> bool {
    matches!(
        kind,
        k::SCAN_VERTICAL | k::SCAN_HORIZONTAL | k::SYN_FLOOD | k::UDP_FLOOD | k::ICMP_FLOOD | k::DST_PPS | k::DST_BPS
    )
}

fn flood(kind: u32) -> bool {
    matches!(kind, k::SYN_FLOOD | k::UDP_FLOOD | k::ICMP_FLOOD | k::DST_PPS | k::DST_BPS)
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine { cfg, ..Default::default() }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Folds one alert record in; logs a new alert; returns blocks to apply.
    pub fn ingest(&mut self, ev: &AlertEvent, now: Clock) -> Vec<Action> {
        self.records += 1;
        let kind = ev.kind;
        let spoofed = flood(kind) && ev.sources > SPOOFED_SOURCES;
        let iface = matches!(kind, k::IFACE_PPS | k::IFACE_BPS);
        let source = if spoofed || iface { None } else { Some(ev.src_ip()) };
        let target = if iface { Target::Interface(ev.ifindex) } else { Target::Addr(ev.dst_ip()) };
        let key = Key { kind, source, target };
        let seen = now.unix_of(ev.timestamp_ns);
        let rate = if ev.window_ns > 0 { ev.value as f64 / (ev.window_ns as f64 / 1e9) } else { 0.0 };
        let mut actions = Vec::new();

        if let Some(a) = self.alerts.get_mut(&key) {
            a.last_seen = a.last_seen.max(seen);
            a.count = ev.value;
            a.rate = rate;
            a.records += 1;
            if !a.active {
                a.active = true;
            }
        } else {
            if self.alerts.len() >= self.cfg.max_alerts.max(1) {
                self.evict_one();
            }
            if let Some(slot) = self.raised.get_mut(kind as usize) {
                *slot += 1;
            }
            let a = Alert {
                kind: kind_name(kind),
                source: match (source, spoofed, iface) {
                    (Some(ip), ..) => ip.to_string(),
                    (None, true, _) => "many".into(),
                    _ => String::new(),
                },
                target: match target {
                    Target::Addr(ip) => ip.to_string(),
                    Target::Interface(i) => format!("interface:{i}"),
                },
                port: ev.port,
                protocol: protocol(ev.proto),
                count: ev.value,
                rate,
                first_seen: seen,
                last_seen: seen,
                reported_at: now.unix,
                active: true,
                records: 1,
                interface_ifindex: ev.ifindex,
                mitigated: false,
            };
            warn!(
                "alert {}: source {} target {} port {} {}: {} in {:?} ({:.0}/s){}",
                a.kind,
                if a.source.is_empty() { "-" } else { &a.source },
                a.target,
                a.port,
                a.protocol,
                a.count,
                Duration::from_nanos(ev.window_ns),
                a.rate,
                if spoofed { " from many (random or spoofed) sources" } else { "" }
            );
            self.alerts.insert(key, a);
        }

        if let (Some(src), true, false) = (source, blockable(kind), self.cfg.mitigate == Mitigate::Off) {
            if !crate::lists::contains(&self.cfg.allowlist, src) {
                let expires_boot_ns = now.boot_ns + self.cfg.block_duration.as_nanos() as u64;
                let fresh = !self.blocks.contains_key(&src);
                if fresh && self.blocks.len() >= self.cfg.max_blocked {
                    // Full: the block closest to expiry makes room.
                    if let Some(old) = self.blocks.values().min_by_key(|b| b.expires_boot_ns).map(|b| b.addr) {
                        self.blocks.remove(&old);
                        actions.push(Action::Unblock { source: old });
                    }
                }
                let b = self.blocks.entry(src).or_insert_with(|| BlockDecision {
                    source: src.to_string(),
                    kind: kind_name(kind),
                    since: now.unix,
                    expires: 0.0,
                    addr: src,
                    expires_boot_ns: 0,
                    hits: 0,
                });
                b.expires_boot_ns = expires_boot_ns;
                b.expires = now.unix + self.cfg.block_duration.as_secs_f64();
                if fresh {
                    warn!(
                        "{} {src} for {:?} ({})",
                        if self.cfg.mitigate == Mitigate::On { "blocking" } else { "dry-run: would block" },
                        self.cfg.block_duration,
                        kind_name(kind)
                    );
                }
                if let Some(a) = self.alerts.get_mut(&key) {
                    a.mitigated = true;
                }
                actions.push(Action::Block { source: src, kind, expires_boot_ns });
            }
        }
        actions
    }

    fn evict_one(&mut self) {
        // The oldest inactive alert, else the oldest.
        let victim = self
            .alerts
            .iter()
            .min_by(|a, b| (a.1.active, a.1.last_seen).partial_cmp(&(b.1.active, b.1.last_seen)).unwrap_or(std::cmp::Ordering::Equal))
            .map(|(k, _)| *k);
        if let Some(v) = victim {
            self.alerts.remove(&v);
        }
    }

    /// Marks alerts inactive after the hold time and ends expired blocks.
    pub fn tick(&mut self, now: Clock) -> Vec<Action> {
        let hold = self.cfg.hold.as_secs_f64();
        for a in self.alerts.values_mut() {
            a.active = now.unix - a.last_seen < hold;
        }
        let expired: Vec<IpAddr> =
            self.blocks.values().filter(|b| b.expires_boot_ns <= now.boot_ns).map(|b| b.addr).collect();
        expired
            .into_iter()
            .map(|ip| {
                self.blocks.remove(&ip);
                Action::Unblock { source: ip }
            })
            .collect()
    }

    /// Kernel hit counts of the blocks, by source.
    pub fn set_block_hits(&mut self, hits: &HashMap<IpAddr, u64>) {
        for b in self.blocks.values_mut() {
            if let Some(h) = hits.get(&b.addr) {
                b.hits = *h;
            }
        }
    }

    pub fn records_total(&self) -> u64 {
        self.records
    }

    /// Alerts raised per kind since start (index: kind).
    pub fn raised(&self) -> &[u64; k::KIND_MAX] {
        &self.raised
    }

    /// Active alerts per kind (index: kind).
    pub fn active_by_kind(&self) -> [u64; k::KIND_MAX] {
        let mut out = [0; k::KIND_MAX];
        for (key, a) in &self.alerts {
            if a.active {
                if let Some(s) = out.get_mut(key.kind as usize) {
                    *s += 1;
                }
            }
        }
        out
    }

    /// Alerts, active first, then most recent first.
    pub fn alerts(&self) -> Vec<Alert> {
        let mut v: Vec<Alert> = self.alerts.values().cloned().collect();
        v.sort_by(|a, b| b.active.cmp(&a.active).then(b.last_seen.partial_cmp(&a.last_seen).unwrap_or(std::cmp::Ordering::Equal)));
        v
    }

    pub fn blocks(&self) -> Vec<BlockDecision> {
        let mut v: Vec<BlockDecision> = self.blocks.values().cloned().collect();
        v.sort_by(|a, b| a.since.partial_cmp(&b.since).unwrap_or(std::cmp::Ordering::Equal));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::FAMILY_IPV4;

    fn v4(a: [u8; 4]) -> [u32; 4] {
        [u32::from_ne_bytes(a), 0, 0, 0]
    }

    fn ev(kind: u32, src: [u8; 4], dst: [u8; 4], t_ms: u64, value: u64, sources: u32) -> AlertEvent {
        AlertEvent {
            event_type: k::EVENT_ALERT,
            ifindex: 7,
            timestamp_ns: t_ms * 1_000_000,
            value,
            kind,
            family: FAMILY_IPV4,
            proto: 6,
            port: 80,
            src: v4(src),
            dst: v4(dst),
            window_ns: 100_000_000,
            sources,
            pad: 0,
        }
    }

    fn at(ms: u64) -> Clock {
        Clock { unix: 1_000_000.0 + ms as f64 / 1e3, boot_ns: ms * 1_000_000 }
    }

    const A: [u8; 4] = [198, 18, 0, 2];
    const V: [u8; 4] = [198, 18, 0, 1];

    #[test]
    fn one_alert_per_key_however_many_records() {
        let mut e = Engine::new(EngineConfig::default());
        for i in 0..50 {
            assert!(e.ingest(&ev(k::SYN_FLOOD, A, V, 100 * i, 400, 1), at(100 * i + 1)).is_empty(), "off: no blocks");
        }
        let al = e.alerts();
        assert_eq!(al.len(), 1);
        let a = &al[0];
        assert_eq!((a.kind, a.source.as_str(), a.target.as_str(), a.port), ("syn_flood", "198.18.0.2", "198.18.0.1", 80));
        assert_eq!(a.records, 50);
        assert_eq!(a.rate, 4000.0);
        assert_eq!(a.first_seen, 1_000_000.0);
        assert!((a.last_seen - 1_000_004.9).abs() < 1e-6);
        assert!(a.active && !a.mitigated);
        assert_eq!(e.raised()[k::SYN_FLOOD as usize], 1);
        assert_eq!(e.active_by_kind()[k::SYN_FLOOD as usize], 1);
        assert_eq!(e.records_total(), 50);
    }

    #[test]
    fn alerts_go_inactive_after_the_hold_and_come_back() {
        let mut e = Engine::new(EngineConfig::default());
        e.ingest(&ev(k::SCAN_VERTICAL, A, V, 0, 23, 0), at(1));
        e.tick(at(9_000));
        assert!(e.alerts()[0].active);
        e.tick(at(10_001));
        assert!(!e.alerts()[0].active);
        assert_eq!(e.active_by_kind()[k::SCAN_VERTICAL as usize], 0);
        e.ingest(&ev(k::SCAN_VERTICAL, A, V, 20_000, 30, 0), at(20_001));
        assert!(e.alerts()[0].active);
        assert_eq!(e.raised()[k::SCAN_VERTICAL as usize], 1, "the same alert again, not a new one");
    }

    #[test]
    fn spoofed_floods_name_no_source_and_block_nothing() {
        let mut e = Engine::new(EngineConfig { mitigate: Mitigate::On, ..Default::default() });
        for i in 0..200u8 {
            let acts = e.ingest(&ev(k::SYN_FLOOD, [10, 0, i, 1], V, u64::from(i), 300, 60), at(u64::from(i)));
            assert!(acts.is_empty());
        }
        let al = e.alerts();
        assert_eq!(al.len(), 1, "random sources fold into one alert");
        assert_eq!(al[0].source, "many");
        assert!(e.blocks().is_empty());
    }

    #[test]
    fn mitigation_blocks_the_source_not_the_allowlist_and_expires() {
        let allow = crate::lists::parse("198.18.0.3\n").unwrap();
        let mut e = Engine::new(EngineConfig { mitigate: Mitigate::On, allowlist: allow, ..Default::default() });
        let acts = e.ingest(&ev(k::UDP_FLOOD, A, V, 0, 5000, 1), at(0));
        assert_eq!(acts, [Action::Block { source: "198.18.0.2".parse().unwrap(), kind: k::UDP_FLOOD, expires_boot_ns: 60_000_000_000 }]);
        assert!(e.alerts()[0].mitigated);
        assert!(e.ingest(&ev(k::SCAN_VERTICAL, [198, 18, 0, 3], V, 0, 30, 0), at(0)).is_empty(), "allowlisted");
        assert!(e.ingest(&ev(k::CLOSED_PORTS, A, V, 0, 300, 0), at(0)).is_empty(), "not a blockable kind");
        assert_eq!(e.blocks().len(), 1);
        assert!(e.tick(at(59_000)).is_empty());
        assert_eq!(e.tick(at(60_000)), [Action::Unblock { source: "198.18.0.2".parse().unwrap() }]);
        assert!(e.blocks().is_empty());
    }

    #[test]
    fn off_never_blocks_and_dry_run_decides_the_same_as_on() {
        let mut off = Engine::new(EngineConfig::default());
        assert!(off.ingest(&ev(k::SCAN_HORIZONTAL, A, V, 0, 16, 0), at(0)).is_empty());
        let mut dry = Engine::new(EngineConfig { mitigate: Mitigate::DryRun, ..Default::default() });
        assert_eq!(dry.ingest(&ev(k::SCAN_HORIZONTAL, A, V, 0, 16, 0), at(0)).len(), 1);
    }

    #[test]
    fn alerts_and_blocks_stay_bounded_under_random_scanners() {
        let mut e = Engine::new(EngineConfig { mitigate: Mitigate::On, max_alerts: 32, max_blocked: 8, ..Default::default() });
        for i in 0..10_000u32 {
            let b = i.to_be_bytes();
            e.ingest(&ev(k::SCAN_VERTICAL, [10, b[1], b[2], b[3]], V, u64::from(i), 30, 0), at(u64::from(i)));
        }
        assert_eq!(e.alerts().len(), 32);
        assert_eq!(e.blocks().len(), 8);
        assert_eq!(e.raised()[k::SCAN_VERTICAL as usize], 10_000);
    }

    #[test]
    fn interface_alerts_target_the_interface() {
        let mut e = Engine::new(EngineConfig::default());
        e.ingest(&ev(k::IFACE_PPS, A, V, 0, 1, 0), at(0));
        e.ingest(&ev(k::IFACE_PPS, V, A, 0, 1, 0), at(0));
        let al = e.alerts();
        assert_eq!(al.len(), 1);
        assert_eq!((al[0].source.as_str(), al[0].target.as_str()), ("", "interface:7"));
    }
}
