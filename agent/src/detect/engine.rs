//! The alert engine: turns the probes' alert records into deduplicated
//! alerts (active while records keep coming, then recent), counts them per
//! kind, and decides which sources to block. Pure: no maps, no clock of its
//! own, so it is tested on synthetic event streams.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use log::warn;
use serde::Serialize;

use super::{kind_name, Mitigate, CONN_FAILURES, RESET_PEERS};
use crate::abi::detect::{self as k, AlertEvent};
use crate::lists::Cidr;
use crate::sockets::{Direction, EventKind, Outcome, SocketEvent};

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
    /// Window of the connection detectors (conn_failures, reset_peers).
    pub conn_window: Duration,
    /// Failed outbound connects from one process per window (0 = off).
    pub conn_fail_threshold: u32,
    /// Distinct peers of resets, per process or host, per window (0 = off).
    pub reset_peers_threshold: u32,
    /// Processes (or local addresses) the connection detectors track at once.
    pub max_conn_procs: usize,
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
            conn_window: Duration::from_secs(10),
            conn_fail_threshold: 20,
            reset_peers_threshold: 10,
            max_conn_procs: 1024,
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
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        Clock {
            unix,
            boot_ns: crate::collector::boottime_ns(),
        }
    }
    fn unix_of(&self, boot_ns: u64) -> f64 {
        self.unix - (self.boot_ns.saturating_sub(boot_ns) as f64 / 1e9)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Target {
    Addr(IpAddr),
    Interface(u32),
    /// Many peers (connection detectors).
    Many,
}

impl Target {
    /// As `/status` shows it.
    fn label(&self) -> String {
        match self {
            Target::Addr(ip) => ip.to_string(),
            Target::Interface(i) => format!("interface:{i}"),
            Target::Many => "many".into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: u32,
    source: Option<IpAddr>,
    /// Local process of the connection detectors (0: none, or by address).
    pid: u32,
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
    Block {
        source: IpAddr,
        kind: u32,
        expires_boot_ns: u64,
    },
    Unblock {
        source: IpAddr,
    },
}

#[derive(Debug, Default)]
pub struct Engine {
    cfg: EngineConfig,
    alerts: HashMap<Key, Alert>,
    raised: [u64; k::KIND_MAX],
    records: u64,
    blocks: HashMap<IpAddr, BlockDecision>,
    /// Windowed state of the connection detectors (bounded: max_conn_procs).
    procs: HashMap<ProcKey, ProcState>,
}

/// Who the connection detectors count for: the process, or the local
/// address when the kernel did not say which process (e.g. a RST sent for
/// a segment no socket wanted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ProcKey {
    Pid(u32),
    Local(IpAddr),
}

#[derive(Debug, Default)]
struct ProcState {
    /// `comm[pid]`, or the local address.
    label: String,
    last_ns: u64,
    fail_start: u64,
    fails: u64,
    fail_peer: Option<(IpAddr, u16)>,
    fail_many: bool,
    fail_alerted: bool,
    reset_start: u64,
    resets: u64,
    /// Distinct peers this window, at most the threshold.
    reset_peers: Vec<IpAddr>,
    reset_alerted: bool,
}

fn blockable(kind: u32) -> bool {
    matches!(
        kind,
        k::SCAN_VERTICAL
            | k::SCAN_HORIZONTAL
            | k::SYN_FLOOD
            | k::UDP_FLOOD
            | k::ICMP_FLOOD
            | k::DST_PPS
            | k::DST_BPS
    )
}

fn flood(kind: u32) -> bool {
    matches!(
        kind,
        k::SYN_FLOOD | k::UDP_FLOOD | k::ICMP_FLOOD | k::DST_PPS | k::DST_BPS
    )
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Engine {
        Engine {
            cfg,
            ..Default::default()
        }
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
        let source = if spoofed || iface {
            None
        } else {
            Some(ev.src_ip())
        };
        let target = if iface {
            Target::Interface(ev.ifindex)
        } else {
            Target::Addr(ev.dst_ip())
        };
        let key = Key {
            kind,
            source,
            pid: 0,
            target,
        };
        let seen = now.unix_of(ev.timestamp_ns);
        let rate = if ev.window_ns > 0 {
            ev.value as f64 / (ev.window_ns as f64 / 1e9)
        } else {
            0.0
        };
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
            self.make_room_for_new(kind);
            let a = Alert {
                kind: kind_name(kind),
                source: match (source, spoofed, iface) {
                    (Some(ip), ..) => ip.to_string(),
                    (None, true, _) => "many".into(),
                    _ => String::new(),
                },
                target: target.label(),
                port: ev.port,
                protocol: crate::abi::protocol_name(ev.proto),
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
                if spoofed {
                    " from many (random or spoofed) sources"
                } else {
                    ""
                }
            );
            self.alerts.insert(key, a);
        }

        if let (Some(src), true, false) =
            (source, blockable(kind), self.cfg.mitigate == Mitigate::Off)
        {
            if !crate::lists::contains(&self.cfg.allowlist, src) {
                let expires_boot_ns = now.boot_ns + self.cfg.block_duration.as_nanos() as u64;
                let fresh = !self.blocks.contains_key(&src);
                if fresh && self.blocks.len() >= self.cfg.max_blocked {
                    // Full: the block closest to expiry makes room.
                    if let Some(old) = self
                        .blocks
                        .values()
                        .min_by_key(|b| b.expires_boot_ns)
                        .map(|b| b.addr)
                    {
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
                        if self.cfg.mitigate == Mitigate::On {
                            "blocking"
                        } else {
                            "dry-run: would block"
                        },
                        self.cfg.block_duration,
                        kind_name(kind)
                    );
                }
                if let Some(a) = self.alerts.get_mut(&key) {
                    a.mitigated = true;
                }
                actions.push(Action::Block {
                    source: src,
                    kind,
                    expires_boot_ns,
                });
            }
        }
        actions
    }

    /// Folds one connection event into the connection detectors: failed
    /// outbound connects per process (`conn_failures`) and resets to or from
    /// distinct peers per process or host (`reset_peers`). Windows are
    /// tumbling, per process, on the events' kernel time; each crossing
    /// raises (or refreshes) one alert per window.
    pub fn ingest_conn(&mut self, ev: &SocketEvent, now: Clock) {
        let fail_thr = u64::from(self.cfg.conn_fail_threshold);
        let reset_thr = self.cfg.reset_peers_threshold as usize;
        let failure = fail_thr > 0
            && ev.kind == EventKind::Closed(Outcome::Failed)
            && ev.direction != Direction::Passive;
        let reset =
            reset_thr > 0 && matches!(ev.kind, EventKind::ResetSent | EventKind::ResetReceived);
        if !failure && !reset {
            return;
        }
        let key = match ev.pid {
            Some(p) => ProcKey::Pid(p),
            None => ProcKey::Local(ev.local),
        };
        if !self.procs.contains_key(&key) && self.procs.len() >= self.cfg.max_conn_procs.max(1) {
            // Full: the process seen least recently makes room.
            if let Some(old) = self
                .procs
                .iter()
                .min_by_key(|(_, s)| s.last_ns)
                .map(|(k, _)| *k)
            {
                self.procs.remove(&old);
            }
        }
        let window = self.cfg.conn_window.as_nanos() as u64;
        let t = ev.timestamp_ns;
        let st = self.procs.entry(key).or_insert_with(|| ProcState {
            label: match (ev.pid, &ev.comm) {
                (Some(p), Some(c)) => format!("{c}[{p}]"),
                (Some(p), None) => format!("[{p}]"),
                _ => ev.local.to_string(),
            },
            ..Default::default()
        });
        st.last_ns = st.last_ns.max(t);
        let mut raise = Vec::new();
        if failure {
            if st.fails == 0 || t.saturating_sub(st.fail_start) >= window {
                st.fail_start = t;
                st.fails = 0;
                st.fail_peer = None;
                st.fail_many = false;
                st.fail_alerted = false;
            }
            st.fails += 1;
            match st.fail_peer {
                None => st.fail_peer = Some((ev.remote, ev.remote_port)),
                Some((ip, _)) if ip != ev.remote => st.fail_many = true,
                _ => {}
            }
            if st.fails >= fail_thr {
                let (target, port) = match (st.fail_many, st.fail_peer) {
                    (false, Some((ip, p))) => (Target::Addr(ip), p),
                    _ => (Target::Many, 0),
                };
                raise.push((CONN_FAILURES, target, port, st.fails, !st.fail_alerted));
                st.fail_alerted = true;
            }
        }
        if reset {
            if st.resets == 0 || t.saturating_sub(st.reset_start) >= window {
                st.reset_start = t;
                st.resets = 0;
                st.reset_peers.clear();
                st.reset_alerted = false;
            }
            st.resets += 1;
            if st.reset_peers.len() < reset_thr && !st.reset_peers.contains(&ev.remote) {
                st.reset_peers.push(ev.remote);
            }
            if st.reset_peers.len() >= reset_thr {
                raise.push((
                    RESET_PEERS,
                    Target::Many,
                    0,
                    st.reset_peers.len() as u64,
                    !st.reset_alerted,
                ));
                st.reset_alerted = true;
            }
        }
        if raise.is_empty() {
            return;
        }
        let label = st.label.clone();
        let (pid, source) = match key {
            ProcKey::Pid(p) => (p, None),
            ProcKey::Local(ip) => (0, Some(ip)),
        };
        let seen = now.unix_of(t);
        let secs = self.cfg.conn_window.as_secs_f64();
        for (kind, target, port, count, crossing) in raise {
            let key = Key {
                kind,
                source,
                pid,
                target,
            };
            let rate = if secs > 0.0 { count as f64 / secs } else { 0.0 };
            if let Some(a) = self.alerts.get_mut(&key) {
                a.last_seen = a.last_seen.max(seen);
                a.count = count;
                a.rate = rate;
                a.active = true;
                if crossing {
                    a.records += 1;
                }
                continue;
            }
            if !crossing {
                // Evicted since this window's crossing: not raised again.
                continue;
            }
            self.make_room_for_new(kind);
            let a = Alert {
                kind: kind_name(kind),
                source: label.clone(),
                target: target.label(),
                port,
                protocol: "tcp".into(),
                count,
                rate,
                first_seen: seen,
                last_seen: seen,
                reported_at: now.unix,
                active: true,
                records: 1,
                interface_ifindex: 0,
                mitigated: false,
            };
            warn!(
                "alert {}: source {} target {}{}: {} {} in {:?}",
                a.kind,
                a.source,
                a.target,
                if port != 0 {
                    format!(" port {port}")
                } else {
                    String::new()
                },
                a.count,
                if kind == CONN_FAILURES {
                    "failed outbound connections"
                } else {
                    "distinct peers with resets"
                },
                self.cfg.conn_window
            );
            self.alerts.insert(key, a);
        }
    }

    /// Connection-detector entries held now (bounded by max_conn_procs).
    pub fn conn_procs(&self) -> usize {
        self.procs.len()
    }

    /// A new alert of `kind` is coming: evicts one if the list is full and
    /// counts it as raised.
    fn make_room_for_new(&mut self, kind: u32) {
        if self.alerts.len() >= self.cfg.max_alerts.max(1) {
            self.evict_one();
        }
        if let Some(slot) = self.raised.get_mut(kind as usize) {
            *slot += 1;
        }
    }

    fn evict_one(&mut self) {
        // The oldest inactive alert, else the oldest.
        let victim = self
            .alerts
            .iter()
            .min_by(|a, b| {
                (a.1.active, a.1.last_seen)
                    .partial_cmp(&(b.1.active, b.1.last_seen))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
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
        // Connection-detector state whose windows are long over.
        let stale = 2 * self.cfg.conn_window.as_nanos() as u64;
        self.procs
            .retain(|_, s| now.boot_ns.saturating_sub(s.last_ns) < stale);
        let expired: Vec<IpAddr> = self
            .blocks
            .values()
            .filter(|b| b.expires_boot_ns <= now.boot_ns)
            .map(|b| b.addr)
            .collect();
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
        v.sort_by(|a, b| {
            b.active.cmp(&a.active).then(
                b.last_seen
                    .partial_cmp(&a.last_seen)
                    .unwrap_or(std::cmp::Ordering::Equal),
            )
        });
        v
    }

    pub fn blocks(&self) -> Vec<BlockDecision> {
        let mut v: Vec<BlockDecision> = self.blocks.values().cloned().collect();
        v.sort_by(|a, b| {
            a.since
                .partial_cmp(&b.since)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
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

    fn ev(
        kind: u32,
        src: [u8; 4],
        dst: [u8; 4],
        t_ms: u64,
        value: u64,
        sources: u32,
    ) -> AlertEvent {
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
        Clock {
            unix: 1_000_000.0 + ms as f64 / 1e3,
            boot_ns: ms * 1_000_000,
        }
    }

    const A: [u8; 4] = [198, 18, 0, 2];
    const V: [u8; 4] = [198, 18, 0, 1];
    const B: [u8; 4] = [198, 18, 1, 2];

    #[test]
    fn one_alert_per_key_however_many_records() {
        let mut e = Engine::new(EngineConfig::default());
        for i in 0..50 {
            assert!(
                e.ingest(&ev(k::SYN_FLOOD, A, V, 100 * i, 400, 1), at(100 * i + 1))
                    .is_empty(),
                "off: no blocks"
            );
        }
        let al = e.alerts();
        assert_eq!(al.len(), 1);
        let a = &al[0];
        assert_eq!(
            (a.kind, a.source.as_str(), a.target.as_str(), a.port),
            ("syn_flood", "198.18.0.2", "198.18.0.1", 80)
        );
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
        assert_eq!(
            e.raised()[k::SCAN_VERTICAL as usize],
            1,
            "the same alert again, not a new one"
        );
    }

    #[test]
    fn spoofed_floods_name_no_source_and_block_nothing() {
        let mut e = Engine::new(EngineConfig {
            mitigate: Mitigate::On,
            ..Default::default()
        });
        for i in 0..200u8 {
            let acts = e.ingest(
                &ev(k::SYN_FLOOD, [10, 0, i, 1], V, u64::from(i), 300, 60),
                at(u64::from(i)),
            );
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
        let mut e = Engine::new(EngineConfig {
            mitigate: Mitigate::On,
            allowlist: allow,
            ..Default::default()
        });
        let acts = e.ingest(&ev(k::UDP_FLOOD, A, V, 0, 5000, 1), at(0));
        assert_eq!(
            acts,
            [Action::Block {
                source: "198.18.0.2".parse().unwrap(),
                kind: k::UDP_FLOOD,
                expires_boot_ns: 60_000_000_000
            }]
        );
        assert!(e.alerts()[0].mitigated);
        assert!(
            e.ingest(&ev(k::SCAN_VERTICAL, [198, 18, 0, 3], V, 0, 30, 0), at(0))
                .is_empty(),
            "allowlisted"
        );
        assert!(
            e.ingest(&ev(k::CLOSED_PORTS, A, V, 0, 300, 0), at(0))
                .is_empty(),
            "not a blockable kind"
        );
        assert_eq!(e.blocks().len(), 1);
        assert!(e.tick(at(59_000)).is_empty());
        assert_eq!(
            e.tick(at(60_000)),
            [Action::Unblock {
                source: "198.18.0.2".parse().unwrap()
            }]
        );
        assert!(e.blocks().is_empty());
    }

    #[test]
    fn off_never_blocks_and_dry_run_decides_the_same_as_on() {
        let mut off = Engine::new(EngineConfig::default());
        assert!(off
            .ingest(&ev(k::SCAN_HORIZONTAL, A, V, 0, 16, 0), at(0))
            .is_empty());
        let mut dry = Engine::new(EngineConfig {
            mitigate: Mitigate::DryRun,
            ..Default::default()
        });
        assert_eq!(
            dry.ingest(&ev(k::SCAN_HORIZONTAL, A, V, 0, 16, 0), at(0))
                .len(),
            1
        );
    }

    #[test]
    fn alerts_and_blocks_stay_bounded_under_random_scanners() {
        let mut e = Engine::new(EngineConfig {
            mitigate: Mitigate::On,
            max_alerts: 32,
            max_blocked: 8,
            ..Default::default()
        });
        for i in 0..10_000u32 {
            let b = i.to_be_bytes();
            e.ingest(
                &ev(
                    k::SCAN_VERTICAL,
                    [10, b[1], b[2], b[3]],
                    V,
                    u64::from(i),
                    30,
                    0,
                ),
                at(u64::from(i)),
            );
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
        assert_eq!(
            (al[0].source.as_str(), al[0].target.as_str()),
            ("", "interface:7")
        );
    }

    fn conn(kind: EventKind, pid: Option<u32>, peer: [u8; 4], t_ms: u64) -> SocketEvent {
        SocketEvent {
            kind,
            family: "ipv4",
            local: "198.18.1.1".parse().unwrap(),
            local_port: 40000,
            remote: IpAddr::from(peer),
            remote_port: 7009,
            direction: Direction::Active,
            pid,
            comm: Some("curl".into()),
            netns: 1,
            state: "syn_sent",
            error: 111,
            srtt_seconds: 0.0,
            retransmits: 0,
            bytes_sent: 0,
            bytes_received: 0,
            timestamp_ns: t_ms * 1_000_000,
            start_ns: 0,
            established_ns: 0,
            seeded: false,
            was_established: false,
        }
    }

    const REFUSED: EventKind = EventKind::Closed(Outcome::Failed);

    #[test]
    fn many_refused_connects_from_one_process_raise_one_conn_failures_alert() {
        let mut e = Engine::new(EngineConfig::default());
        for i in 0..25 {
            e.ingest_conn(&conn(REFUSED, Some(42), B, 100 * i), at(100 * i));
        }
        let al = e.alerts();
        assert_eq!(al.len(), 1);
        let a = &al[0];
        assert_eq!(
            (a.kind, a.source.as_str(), a.target.as_str(), a.port),
            ("conn_failures", "curl[42]", "198.18.1.2", 7009)
        );
        assert_eq!((a.count, a.records), (25, 1));
        assert_eq!(e.raised()[CONN_FAILURES as usize], 1);
        assert_eq!(e.active_by_kind()[CONN_FAILURES as usize], 1);
        // Other peers: the target is many.
        let mut e = Engine::new(EngineConfig::default());
        for i in 0..25u8 {
            e.ingest_conn(
                &conn(REFUSED, Some(42), [198, 18, 1, i], u64::from(i)),
                at(u64::from(i)),
            );
        }
        assert_eq!(e.alerts()[0].target, "many");
    }

    #[test]
    fn few_failures_or_failures_spread_over_windows_raise_nothing() {
        let mut e = Engine::new(EngineConfig::default());
        for i in 0..5 {
            e.ingest_conn(&conn(REFUSED, Some(42), B, i), at(i));
        }
        // 25 more, one every second: never 20 within 10s.
        for i in 0..25 {
            e.ingest_conn(&conn(REFUSED, Some(43), B, 1000 * i), at(1000 * i));
        }
        // Accepted connections that failed are not outbound.
        let mut inbound = conn(REFUSED, Some(44), B, 0);
        inbound.direction = Direction::Passive;
        for _ in 0..30 {
            e.ingest_conn(&inbound, at(0));
        }
        assert!(e.alerts().is_empty());
    }

    #[test]
    fn resets_to_many_peers_raise_reset_peers_but_not_to_one() {
        let mut e = Engine::new(EngineConfig::default());
        for i in 0..12u8 {
            let kind = if i % 2 == 0 {
                EventKind::ResetSent
            } else {
                EventKind::ResetReceived
            };
            e.ingest_conn(
                &conn(kind, None, [198, 18, 1, 10 + i], u64::from(i)),
                at(u64::from(i)),
            );
        }
        let al = e.alerts();
        assert_eq!(al.len(), 1);
        assert_eq!(
            (al[0].kind, al[0].source.as_str(), al[0].target.as_str()),
            ("reset_peers", "198.18.1.1", "many")
        );
        assert_eq!(al[0].count, 10);
        let mut e = Engine::new(EngineConfig::default());
        for i in 0..200 {
            e.ingest_conn(&conn(EventKind::ResetReceived, Some(7), B, i), at(i));
        }
        assert!(e.alerts().is_empty());
    }

    #[test]
    fn connection_state_stays_bounded_under_many_processes() {
        let mut e = Engine::new(EngineConfig {
            max_alerts: 32,
            ..Default::default()
        });
        for pid in 0..10_000u32 {
            for j in 0..2 {
                e.ingest_conn(
                    &conn(REFUSED, Some(pid + 1), B, u64::from(pid)),
                    at(u64::from(pid) + j),
                );
            }
        }
        assert_eq!(e.conn_procs(), 1024);
        assert!(e.alerts().is_empty());
        e.tick(at(10_000 + 20_001));
        assert_eq!(e.conn_procs(), 0, "stale windows are dropped");
        // Alerts bounded as well.
        let mut e = Engine::new(EngineConfig {
            conn_fail_threshold: 1,
            max_alerts: 32,
            ..Default::default()
        });
        for pid in 0..10_000u32 {
            e.ingest_conn(
                &conn(REFUSED, Some(pid + 1), B, u64::from(pid)),
                at(u64::from(pid)),
            );
        }
        assert_eq!(e.alerts().len(), 32);
        assert_eq!(e.conn_procs(), 1024);
        assert_eq!(e.raised()[CONN_FAILURES as usize], 10_000);
    }
}
