//! The alert engine: turns the probes' alert records into deduplicated
//! alerts (active while records keep coming, then recent), counts them per
//! kind, and decides which sources to block. Pure: no maps, no clock of its
//! own, so it is tested on synthetic event streams.
//!
//! The block rule (`--mitigate on` or `dry-run`): a source is blocked when
//! 1. the alert is a scan or flood kind and names it (the probes name a
//!    source only with its own count: a scan slot counts one source's
//!    failures, a flood alert names the source with most of the packets);
//! 2. its own count alone reached the kind's threshold, in at least
//!    `--block-after` windows (the first alert and a repeat);
//! 3. it is outside the home networks and not on the allowlist.
//!
//! What home hosts do themselves (scans from a home address, floods toward
//! an address outside) is not an alert at all unless `--alert-outbound`,
//! and then an outbound alert that never blocks. A block never cuts a
//! conversation this side started: the probes let the blocked source's
//! answers to it through.

use crate::clock::Now;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use log::warn;
use serde::Serialize;

use super::home::Home;
use super::{kind_name, Mitigate, CONN_FAILURES, RESET_PEERS};
use crate::abi::detect::{self as k, AlertEvent, SPOOFED_SOURCES};
use crate::lists::Cidr;
use crate::sockets::{Direction, EventKind, Outcome, SocketEvent};

#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub hold: Duration,
    pub max_alerts: usize,
    pub mitigate: Mitigate,
    pub block_duration: Duration,
    /// Windows in which a source alone crossed a threshold before a block.
    pub block_after: u32,
    /// Per kind, the count per window a source alone must reach to be
    /// blocked (`DetectConfig::window_thresholds`; 0: never blocked).
    pub thresholds: [u64; k::KIND_MAX],
    /// Raise (never block) alerts about home hosts' own behaviour.
    pub alert_outbound: bool,
    pub max_blocked: usize,
    pub allowlist: Vec<Cidr>,
    /// Window of the connection detectors (conn_failures, reset_peers).
    pub conn_window: Duration,
    /// Distinct peers one process failed to reach per window (0 = off).
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
            block_after: 2,
            thresholds: super::DetectConfig::default().window_thresholds(),
            alert_outbound: false,
            max_blocked: 4096,
            allowlist: Vec::new(),
            conn_window: Duration::from_secs(10),
            conn_fail_threshold: 10,
            reset_peers_threshold: 10,
            max_conn_procs: 1024,
        }
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
    /// `unattributed` for floods from a few none of which the probes
    /// could name, empty for interface totals.
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
    /// The named source's own share of `count` in the last record.
    pub own: u64,
    /// Windows in which the named source alone reached the threshold.
    pub windows: u32,
    /// A home host's own behaviour (`--alert-outbound`): low severity,
    /// never blocked.
    pub outbound: bool,
    pub interface_ifindex: u32,
    /// Whether the source was blocked (or would be, in dry-run).
    pub mitigated: bool,
    /// Window number of the last record that counted in `windows`.
    #[serde(skip)]
    last_window: u64,
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
    home: Home,
    alerts: HashMap<Key, Alert>,
    raised: [u64; k::KIND_MAX],
    /// Records about home hosts' own behaviour, not raised (per kind).
    outbound: [u64; k::KIND_MAX],
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
    /// Distinct peers that failed this window, at most the threshold.
    fail_peers: Vec<IpAddr>,
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

/// Kinds whose source is the one probing (its failures, its refusals).
fn probing(kind: u32) -> bool {
    matches!(
        kind,
        k::SCAN_VERTICAL | k::SCAN_HORIZONTAL | k::CLOSED_PORTS | k::PORT_POLICY
    )
}

/// TCP states in which a reset the local side sends ends a connection it
/// had (its owner closing, or a service stopping), not a refusal.
fn closing_state(state: &str) -> bool {
    matches!(
        state,
        "established"
            | "close_wait"
            | "fin_wait1"
            | "fin_wait2"
            | "last_ack"
            | "closing"
            | "time_wait"
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

    /// The home networks alerts and blocks are decided against.
    pub fn set_home(&mut self, home: Home) {
        self.home = home;
    }

    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Records about home hosts' own behaviour not raised, per kind.
    pub fn outbound_suppressed(&self) -> &[u64; k::KIND_MAX] {
        &self.outbound
    }

    /// A home host's own behaviour: it probes, or it sends a flood's worth
    /// of traffic toward an address outside the home networks.
    fn is_outbound(&self, kind: u32, source: Option<IpAddr>, target: IpAddr) -> bool {
        if probing(kind) {
            source.is_some_and(|s| self.home.contains(s))
        } else if flood(kind) {
            !self.home.contains(target)
        } else {
            false
        }
    }

    /// Folds one alert record in; logs a new alert; returns blocks to apply.
    pub fn ingest(&mut self, ev: &AlertEvent, now: Now) -> Vec<Action> {
        self.records += 1;
        let kind = ev.kind;
        let iface = matches!(kind, k::IFACE_PPS | k::IFACE_BPS);
        let source = if iface { None } else { ev.src_ip() };
        let spoofed = flood(kind) && source.is_none() && ev.sources > SPOOFED_SOURCES;
        let outbound = self.is_outbound(kind, source, ev.dst_ip());
        if outbound && !self.cfg.alert_outbound {
            if let Some(n) = self.outbound.get_mut(kind as usize) {
                *n += 1;
            }
            return Vec::new();
        }
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
        let thr = self.cfg.thresholds.get(kind as usize).copied().unwrap_or(0);
        // The source alone reached the threshold in this record's window.
        let attributed = source.is_some() && thr > 0 && u64::from(ev.own) >= thr;
        let window = ev.timestamp_ns / ev.window_ns.max(1);
        let mut actions = Vec::new();

        if let Some(a) = self.alerts.get_mut(&key) {
            a.last_seen = a.last_seen.max(seen);
            a.count = ev.value;
            a.own = u64::from(ev.own);
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
                    (None, false, false) => "unattributed".into(),
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
                own: u64::from(ev.own),
                windows: 0,
                outbound,
                interface_ifindex: ev.ifindex,
                mitigated: false,
                last_window: u64::MAX,
            };
            warn!(
                "alert {}{}: source {} target {} port {} {}: {} in {:?} ({:.0}/s){}",
                a.kind,
                if outbound { " (outbound)" } else { "" },
                if a.source.is_empty() { "-" } else { &a.source },
                a.target,
                a.port,
                a.protocol,
                a.count,
                Duration::from_nanos(ev.window_ns),
                a.rate,
                match (spoofed, a.source.as_str()) {
                    (true, _) => " from many (random or spoofed) sources".to_string(),
                    (false, "unattributed") =>
                        " from a few sources, none of them alone over the threshold".to_string(),
                    _ if u64::from(ev.own) < ev.value && source.is_some() => {
                        format!(", {} of them its own", ev.own)
                    }
                    _ => String::new(),
                }
            );
            self.alerts.insert(key, a);
        }
        let windows = match self.alerts.get_mut(&key) {
            Some(a) if attributed && a.last_window != window => {
                a.last_window = window;
                a.windows += 1;
                a.windows
            }
            Some(a) => a.windows,
            None => 0,
        };

        let Some(src) = source else {
            return actions;
        };
        if outbound
            || !blockable(kind)
            || self.cfg.mitigate == Mitigate::Off
            || windows < self.cfg.block_after.max(1)
            || self.home.contains(src)
            || crate::lists::contains(&self.cfg.allowlist, src)
        {
            return actions;
        }
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
                "{} {src} for {:?} ({}: over the threshold by its own count in {windows} windows)",
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
        actions
    }

    /// Folds one connection event into the connection detectors: distinct
    /// peers one process failed to connect to (`conn_failures`; one peer
    /// failing again and again is a failing dependency, which the socket
    /// layer lists in /status failures) and resets to or from distinct
    /// peers per process or host (`reset_peers`; not the resets with which
    /// a local socket ends a connection it had, as a service that stops
    /// does). Windows are tumbling, per process, on the events' kernel
    /// time; each crossing raises (or refreshes) one alert per window.
    pub fn ingest_conn(&mut self, ev: &SocketEvent, now: Now) {
        let fail_thr = self.cfg.conn_fail_threshold as usize;
        let reset_thr = self.cfg.reset_peers_threshold as usize;
        let failure = fail_thr > 0
            && ev.kind == EventKind::Closed(Outcome::Failed)
            && ev.direction != Direction::Passive;
        let reset = reset_thr > 0
            && match ev.kind {
                EventKind::ResetSent => !closing_state(ev.state),
                EventKind::ResetReceived => true,
                EventKind::Closed(_) => false,
            };
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
            if st.fail_peers.is_empty() || t.saturating_sub(st.fail_start) >= window {
                st.fail_start = t;
                st.fail_peers.clear();
                st.fail_alerted = false;
            }
            if st.fail_peers.len() < fail_thr && !st.fail_peers.contains(&ev.remote) {
                st.fail_peers.push(ev.remote);
            }
            if st.fail_peers.len() >= fail_thr {
                raise.push((
                    CONN_FAILURES,
                    Target::Many,
                    0,
                    st.fail_peers.len() as u64,
                    !st.fail_alerted,
                ));
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
                own: count,
                windows: 0,
                outbound: false,
                interface_ifindex: 0,
                mitigated: false,
                last_window: u64::MAX,
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
                    "distinct peers failed to connect to"
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
    pub fn tick(&mut self, now: Now) -> Vec<Action> {
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

    /// A record as the probes write it: `src` all zero names no source;
    /// a named source's own count is `value` unless `own` says otherwise.
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
            own: if src == [0; 4] { 0 } else { value as u32 },
        }
    }

    fn own(mut e: AlertEvent, own: u32) -> AlertEvent {
        e.own = own;
        e
    }

    fn at(ms: u64) -> Now {
        Now {
            unix: 1_000_000.0 + ms as f64 / 1e3,
            boot_ns: ms * 1_000_000,
        }
    }

    const A: [u8; 4] = [198, 18, 0, 2];
    const V: [u8; 4] = [198, 18, 0, 1];
    const B: [u8; 4] = [198, 18, 1, 2];
    /// In the home networks of `engine`.
    const LAN: [u8; 4] = [198, 18, 9, 7];
    const NOBODY: [u8; 4] = [0; 4];

    /// An engine whose home networks are V and 198.18.9.0/24.
    fn engine(cfg: EngineConfig) -> Engine {
        let mut e = Engine::new(cfg);
        e.set_home(Home::fixed(
            crate::lists::parse("198.18.0.1\n198.18.9.0/24\n").unwrap(),
        ));
        e
    }

    fn on() -> EngineConfig {
        EngineConfig {
            mitigate: Mitigate::On,
            ..Default::default()
        }
    }

    fn block_of(ip: [u8; 4], kind: u32, at_ms: u64) -> Action {
        Action::Block {
            source: IpAddr::from(ip),
            kind,
            expires_boot_ns: (at_ms + 60_000) * 1_000_000,
        }
    }

    #[test]
    fn one_alert_per_key_however_many_records() {
        let mut e = engine(EngineConfig::default());
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
        assert_eq!((a.records, a.own, a.windows), (50, 400, 50));
        assert_eq!(a.rate, 4000.0);
        assert_eq!(a.first_seen, 1_000_000.0);
        assert!((a.last_seen - 1_000_004.9).abs() < 1e-6);
        assert!(a.active && !a.mitigated && !a.outbound);
        assert_eq!(e.raised()[k::SYN_FLOOD as usize], 1);
        assert_eq!(e.active_by_kind()[k::SYN_FLOOD as usize], 1);
        assert_eq!(e.records_total(), 50);
    }

    #[test]
    fn alerts_go_inactive_after_the_hold_and_come_back() {
        let mut e = engine(EngineConfig::default());
        e.ingest(&ev(k::SCAN_VERTICAL, A, V, 0, 25, 0), at(1));
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
    fn floods_without_a_named_source_block_nothing() {
        let mut e = engine(on());
        for i in 0..200u64 {
            assert!(e
                .ingest(&ev(k::SYN_FLOOD, NOBODY, V, i * 100, 300, 60), at(i * 100))
                .is_empty());
        }
        // A few sources, none of them alone over the threshold.
        for i in 0..10u64 {
            assert!(e
                .ingest(
                    &ev(k::UDP_FLOOD, NOBODY, V, i * 100, 10_000, 2),
                    at(i * 100)
                )
                .is_empty());
        }
        let al = e.alerts();
        let sources: Vec<(&str, &str)> = al.iter().map(|a| (a.kind, a.source.as_str())).collect();
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert!(sources.contains(&("syn_flood", "many")));
        assert!(sources.contains(&("udp_flood", "unattributed")));
        assert!(e.blocks().is_empty());
    }

    #[test]
    fn a_block_needs_the_sources_own_count_in_two_windows() {
        let mut e = engine(on());
        // First window: an alert, no block.
        assert!(e
            .ingest(&ev(k::UDP_FLOOD, A, V, 0, 5000, 1), at(0))
            .is_empty());
        // Another record in the same window is no repeat.
        assert!(e
            .ingest(&ev(k::UDP_FLOOD, A, V, 50, 6000, 1), at(50))
            .is_empty());
        assert!(!e.alerts()[0].mitigated);
        // The next window: blocked.
        assert_eq!(
            e.ingest(&ev(k::UDP_FLOOD, A, V, 150, 5000, 1), at(150)),
            [block_of(A, k::UDP_FLOOD, 150)]
        );
        assert!(e.alerts()[0].mitigated);
        assert_eq!(e.alerts()[0].windows, 2);
        assert_eq!(e.blocks().len(), 1);
        assert!(e.tick(at(59_000)).is_empty());
        assert_eq!(
            e.tick(at(60_150)),
            [Action::Unblock {
                source: IpAddr::from(A)
            }]
        );
        assert!(e.blocks().is_empty());
    }

    #[test]
    fn a_source_below_the_threshold_by_its_own_count_is_never_blocked() {
        // Issue 19: 299 SYNs from A, one from B; the probes name A with its
        // own 299 (the candidate), or nobody. Neither is blocked, however
        // often it repeats.
        let mut e = engine(on());
        for w in 0..10u64 {
            let acts = e.ingest(
                &own(ev(k::SYN_FLOOD, A, V, w * 100, 300, 2), 299),
                at(w * 100),
            );
            assert!(acts.is_empty(), "window {w}: {acts:?}");
        }
        let a = &e.alerts()[0];
        assert_eq!(
            (a.source.as_str(), a.own, a.windows),
            ("198.18.0.2", 299, 0)
        );
        assert!(!a.mitigated);
        // Scans: the probes' count is the source's own.
        let mut e = engine(on());
        e.ingest(&own(ev(k::SCAN_HORIZONTAL, B, V, 0, 16, 0), 15), at(0));
        assert!(e
            .ingest(
                &own(ev(k::SCAN_HORIZONTAL, B, V, 2000, 16, 0), 15),
                at(2000)
            )
            .is_empty());
    }

    #[test]
    fn home_hosts_own_behaviour_raises_nothing_by_default() {
        let mut e = engine(on());
        // A LAN client failing to reach 40 servers (BitTorrent), refused
        // (closed ports), and uploading toward the outside (speed test).
        for w in 0..5u64 {
            e.ingest(
                &ev(k::SCAN_HORIZONTAL, LAN, B, w * 2000, 40, 0),
                at(w * 2000),
            );
            e.ingest(&ev(k::CLOSED_PORTS, LAN, B, w * 2000, 200, 0), at(w * 2000));
            e.ingest(&ev(k::UDP_FLOOD, LAN, B, w * 100, 9000, 1), at(w * 100));
        }
        assert!(e.alerts().is_empty());
        assert!(e.blocks().is_empty());
        let out = e.outbound_suppressed();
        assert_eq!(
            (
                out[k::SCAN_HORIZONTAL as usize],
                out[k::CLOSED_PORTS as usize],
                out[k::UDP_FLOOD as usize]
            ),
            (5, 5, 5)
        );
        // --alert-outbound: alerts, marked outbound, never a block.
        let mut e = engine(EngineConfig {
            alert_outbound: true,
            ..on()
        });
        for w in 0..5u64 {
            assert!(e
                .ingest(
                    &ev(k::SCAN_HORIZONTAL, LAN, B, w * 2000, 40, 0),
                    at(w * 2000)
                )
                .is_empty());
        }
        assert!(e.alerts()[0].outbound);
        // A home address flooding a home address: an alert, never a block.
        let mut e = engine(on());
        for w in 0..5u64 {
            assert!(e
                .ingest(&ev(k::UDP_FLOOD, LAN, V, w * 100, 9000, 1), at(w * 100))
                .is_empty());
        }
        assert_eq!(e.alerts().len(), 1);
    }

    #[test]
    fn the_allowlist_and_alert_only_kinds_are_never_blocked() {
        let allow = crate::lists::parse("198.18.0.3\n").unwrap();
        let mut e = engine(EngineConfig {
            allowlist: allow,
            ..on()
        });
        for w in 0..5u64 {
            assert!(e
                .ingest(
                    &ev(k::SCAN_VERTICAL, [198, 18, 0, 3], V, w * 2000, 30, 0),
                    at(w * 2000)
                )
                .is_empty());
            assert!(e
                .ingest(&ev(k::CLOSED_PORTS, A, V, w * 2000, 300, 0), at(w * 2000))
                .is_empty());
        }
        assert!(e.blocks().is_empty());
    }

    #[test]
    fn off_never_blocks_and_dry_run_decides_the_same_as_on() {
        let run = |m: Mitigate| {
            let mut e = engine(EngineConfig {
                mitigate: m,
                ..Default::default()
            });
            let mut n = 0;
            for w in 0..3u64 {
                n += e
                    .ingest(&ev(k::SCAN_HORIZONTAL, A, V, w * 2000, 16, 0), at(w * 2000))
                    .len();
            }
            n
        };
        assert_eq!(run(Mitigate::Off), 0);
        assert_eq!(run(Mitigate::DryRun), 2);
        assert_eq!(run(Mitigate::On), 2);
    }

    #[test]
    fn alerts_and_blocks_stay_bounded_under_random_scanners() {
        let mut e = engine(EngineConfig {
            max_alerts: 32,
            max_blocked: 8,
            ..on()
        });
        for i in 0..10_000u32 {
            let b = i.to_be_bytes();
            for w in 0..2u64 {
                e.ingest(
                    &ev(
                        k::SCAN_VERTICAL,
                        [10, b[1], b[2], b[3]],
                        V,
                        u64::from(i) + w * 2000,
                        30,
                        0,
                    ),
                    at(u64::from(i)),
                );
            }
        }
        assert_eq!(e.alerts().len(), 32);
        assert!(e.blocks().len() <= 8);
        assert_eq!(e.raised()[k::SCAN_VERTICAL as usize], 10_000);
    }

    #[test]
    fn interface_alerts_target_the_interface() {
        let mut e = engine(EngineConfig::default());
        e.ingest(&ev(k::IFACE_PPS, NOBODY, V, 0, 1, 0), at(0));
        e.ingest(&ev(k::IFACE_PPS, NOBODY, A, 0, 1, 0), at(0));
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
    fn conn_failures_counts_distinct_peers_not_retries() {
        // A backup job retrying one refused service 30 times: a failing
        // dependency, not an alert.
        let mut e = engine(EngineConfig::default());
        for i in 0..30 {
            e.ingest_conn(&conn(REFUSED, Some(42), B, 100 * i), at(100 * i));
        }
        assert!(e.alerts().is_empty());
        // One process failing to reach 12 peers: alert at the 10th.
        let mut e = engine(EngineConfig::default());
        for i in 0..12u8 {
            e.ingest_conn(
                &conn(REFUSED, Some(42), [198, 18, 1, i], u64::from(i)),
                at(u64::from(i)),
            );
            assert_eq!(
                e.alerts().len(),
                usize::from(i >= 9),
                "after {} peers",
                i + 1
            );
        }
        let a = &e.alerts()[0];
        assert_eq!(
            (a.kind, a.source.as_str(), a.target.as_str(), a.count),
            ("conn_failures", "curl[42]", "many", 10)
        );
        assert_eq!(e.raised()[CONN_FAILURES as usize], 1);
    }

    #[test]
    fn failures_spread_over_windows_or_inbound_raise_nothing() {
        let mut e = engine(EngineConfig::default());
        // 25 peers, one every 1.2 s: never 10 within one 10 s window.
        for i in 0..25u8 {
            e.ingest_conn(
                &conn(REFUSED, Some(43), [198, 18, 1, i], 1200 * u64::from(i)),
                at(1200 * u64::from(i)),
            );
        }
        // Accepted connections that failed are not outbound.
        for i in 0..30u8 {
            let mut inbound = conn(REFUSED, Some(44), [198, 18, 2, i], 0);
            inbound.direction = Direction::Passive;
            e.ingest_conn(&inbound, at(0));
        }
        assert!(e.alerts().is_empty());
    }

    #[test]
    fn resets_to_many_peers_raise_reset_peers_but_not_to_one() {
        let mut e = engine(EngineConfig::default());
        for i in 0..12u8 {
            let kind = if i % 2 == 0 {
                EventKind::ResetSent
            } else {
                EventKind::ResetReceived
            };
            let mut c = conn(kind, None, [198, 18, 1, 10 + i], u64::from(i));
            c.state = "none"; // a segment no socket wanted
            e.ingest_conn(&c, at(u64::from(i)));
        }
        let al = e.alerts();
        assert_eq!(al.len(), 1);
        assert_eq!(
            (al[0].kind, al[0].source.as_str(), al[0].target.as_str()),
            ("reset_peers", "198.18.1.1", "many")
        );
        assert_eq!(al[0].count, 10);
        let mut e = engine(EngineConfig::default());
        for i in 0..200 {
            e.ingest_conn(&conn(EventKind::ResetReceived, Some(7), B, i), at(i));
        }
        assert!(e.alerts().is_empty());
    }

    #[test]
    fn a_service_that_stops_resetting_its_clients_is_no_reset_peers_alert() {
        let mut e = engine(EngineConfig::default());
        for (i, state) in [
            "established",
            "close_wait",
            "fin_wait1",
            "last_ack",
            "time_wait",
        ]
        .iter()
        .cycle()
        .take(30)
        .enumerate()
        {
            let mut c = conn(
                EventKind::ResetSent,
                Some(99),
                [198, 18, 3, i as u8],
                i as u64,
            );
            c.direction = Direction::Passive;
            c.state = state;
            e.ingest_conn(&c, at(i as u64));
        }
        assert!(e.alerts().is_empty());
    }

    #[test]
    fn connection_state_stays_bounded_under_many_processes() {
        let mut e = engine(EngineConfig {
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
        let mut e = engine(EngineConfig {
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

    // Issue 23: each threshold at exactly N (acts) and N-1 (does not).

    const BLOCKABLE: [u32; 7] = [
        k::SCAN_VERTICAL,
        k::SCAN_HORIZONTAL,
        k::SYN_FLOOD,
        k::UDP_FLOOD,
        k::ICMP_FLOOD,
        k::DST_PPS,
        k::DST_BPS,
    ];

    /// Records of `kind` from A in consecutive windows with the source's
    /// own count `own`; the actions of each.
    fn windows_of(e: &mut Engine, kind: u32, own_count: u32, n: u64) -> Vec<Vec<Action>> {
        (0..n)
            .map(|w| {
                let t = w * 100 + 50;
                e.ingest(
                    &own(ev(kind, A, V, t, u64::from(own_count) + 5, 1), own_count),
                    at(t),
                )
            })
            .collect()
    }

    #[test]
    fn each_blockable_kind_blocks_at_its_threshold_by_own_count_not_one_below() {
        for (i, kind) in BLOCKABLE.into_iter().enumerate() {
            let n = 7 + 3 * i as u32;
            let mut cfg = on();
            cfg.thresholds = [0; k::KIND_MAX];
            cfg.thresholds[kind as usize] = u64::from(n);
            let mut e = engine(cfg.clone());
            let acts = windows_of(&mut e, kind, n - 1, 5);
            assert!(
                acts.iter().all(Vec::is_empty),
                "kind {kind} at N-1: {acts:?}"
            );
            assert_eq!(e.alerts()[0].windows, 0, "kind {kind}");
            let mut e = engine(cfg.clone());
            let acts = windows_of(&mut e, kind, n, 2);
            assert!(acts[0].is_empty(), "kind {kind}: one window is no block");
            assert_eq!(acts[1], [block_of(A, kind, 150)], "kind {kind} at N");
            // Threshold 0 (the kind's rate is off): never blocked.
            cfg.thresholds[kind as usize] = 0;
            let mut e = engine(cfg);
            let acts = windows_of(&mut e, kind, u32::MAX, 5);
            assert!(acts.iter().all(Vec::is_empty), "kind {kind} at 0");
        }
    }

    #[test]
    fn a_block_comes_in_exactly_the_block_after_th_window() {
        for after in 2..=6u32 {
            let mut e = engine(EngineConfig {
                block_after: after,
                ..on()
            });
            let acts = windows_of(&mut e, k::UDP_FLOOD, 5000, u64::from(after));
            for (w, a) in acts.iter().enumerate() {
                assert_eq!(
                    a.len(),
                    usize::from(w + 1 == after as usize),
                    "block_after {after}, window {}: {a:?}",
                    w + 1
                );
            }
        }
    }

    #[test]
    fn many_sources_means_more_than_spoofed_sources() {
        let mut e = engine(EngineConfig::default());
        e.ingest(&ev(k::SYN_FLOOD, NOBODY, V, 0, 300, SPOOFED_SOURCES), at(0));
        e.ingest(
            &ev(k::UDP_FLOOD, NOBODY, V, 0, 300, SPOOFED_SOURCES + 1),
            at(0),
        );
        let mut got: Vec<(&str, String)> =
            e.alerts().into_iter().map(|a| (a.kind, a.source)).collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("syn_flood", "unattributed".to_string()),
                ("udp_flood", "many".to_string())
            ]
        );
    }

    #[test]
    fn an_alert_is_active_until_exactly_the_hold() {
        let mut e = engine(EngineConfig::default());
        e.ingest(&ev(k::SCAN_VERTICAL, A, V, 0, 25, 0), at(0));
        e.tick(at(9_999));
        assert!(e.alerts()[0].active, "hold - 1 ms");
        e.tick(at(10_000));
        assert!(!e.alerts()[0].active, "hold");
    }

    #[test]
    fn a_block_ends_at_exactly_its_expiry() {
        let mut e = engine(on());
        windows_of(&mut e, k::UDP_FLOOD, 5000, 2);
        let expires = (150 + 60_000) * 1_000_000;
        let now = |boot_ns| Now {
            unix: 2_000_000.0,
            boot_ns,
        };
        assert!(e.tick(now(expires - 1)).is_empty(), "1 ns before");
        assert_eq!(
            e.tick(now(expires)),
            [Action::Unblock {
                source: IpAddr::from(A)
            }]
        );
    }

    #[test]
    fn the_blocked_set_holds_exactly_max_blocked() {
        let mut e = engine(EngineConfig {
            max_blocked: 4,
            ..on()
        });
        // Two windows over the threshold from `src` at `t`: the second's actions.
        fn block(e: &mut Engine, src: [u8; 4], t: u64) -> Vec<Action> {
            e.ingest(&ev(k::SCAN_VERTICAL, src, V, t, 30, 0), at(t));
            e.ingest(&ev(k::SCAN_VERTICAL, src, V, t + 100, 30, 0), at(t + 100))
        }
        for i in 0..4u8 {
            let acts = block(&mut e, [10, 0, 0, i], 1000 * u64::from(i));
            assert_eq!(acts.len(), 1, "source {i}: {acts:?}");
        }
        assert_eq!(e.blocks().len(), 4, "4 fit");
        // The 5th unblocks the one closest to expiry, the first.
        let acts = block(&mut e, [10, 0, 0, 9], 9000);
        assert_eq!(
            acts[0],
            Action::Unblock {
                source: IpAddr::from([10, 0, 0, 0])
            }
        );
        assert_eq!(e.blocks().len(), 4);
    }

    /// Failures of one process, at `t_ns`, to distinct peers.
    fn failures(e: &mut Engine, peers: std::ops::Range<u8>, t_ns: u64) {
        for p in peers {
            let mut c = conn(REFUSED, Some(42), [198, 18, 1, p], 0);
            c.timestamp_ns = t_ns;
            e.ingest_conn(&c, at(t_ns / 1_000_000));
        }
    }

    #[test]
    fn conn_failures_alert_at_exactly_the_threshold_for_any_threshold() {
        for thr in [1u32, 2, 3, 10, 64] {
            let mut e = engine(EngineConfig {
                conn_fail_threshold: thr,
                ..Default::default()
            });
            for p in 0..thr as u8 + 2 {
                failures(&mut e, p..p + 1, u64::from(p));
                assert_eq!(
                    e.alerts().len(),
                    usize::from(u32::from(p) + 1 >= thr),
                    "threshold {thr}, after {} peers",
                    p + 1
                );
            }
            assert_eq!(e.alerts()[0].count, u64::from(thr));
        }
        // 0: off.
        let mut e = engine(EngineConfig {
            conn_fail_threshold: 0,
            ..Default::default()
        });
        failures(&mut e, 0..100, 0);
        assert!(e.alerts().is_empty());
    }

    #[test]
    fn reset_peers_alert_at_exactly_the_threshold_for_any_threshold() {
        for thr in [1u32, 2, 3, 10, 64] {
            let mut e = engine(EngineConfig {
                reset_peers_threshold: thr,
                ..Default::default()
            });
            for p in 0..thr as u8 + 2 {
                let c = conn(
                    EventKind::ResetReceived,
                    Some(7),
                    [198, 18, 2, p],
                    u64::from(p),
                );
                e.ingest_conn(&c, at(u64::from(p)));
                assert_eq!(
                    e.alerts().len(),
                    usize::from(u32::from(p) + 1 >= thr),
                    "threshold {thr}, after {} peers",
                    p + 1
                );
            }
            assert_eq!(e.alerts()[0].count, u64::from(thr));
        }
    }

    #[test]
    fn a_conn_window_ends_at_exactly_its_length() {
        let window = EngineConfig::default().conn_window.as_nanos() as u64;
        // The 10th peer 1 ns before the window ends: alert.
        let mut e = engine(EngineConfig::default());
        failures(&mut e, 0..9, 0);
        failures(&mut e, 9..10, window - 1);
        assert_eq!(e.alerts().len(), 1);
        // At exactly the window's end it starts a new window: 1 peer.
        let mut e = engine(EngineConfig::default());
        failures(&mut e, 0..9, 0);
        failures(&mut e, 9..10, window);
        assert!(e.alerts().is_empty());
        failures(&mut e, 10..18, window);
        assert!(e.alerts().is_empty(), "9 peers in the new window");
        failures(&mut e, 18..19, window);
        assert_eq!(e.alerts().len(), 1, "10 in the new window");
    }

    #[test]
    fn a_reset_window_ends_at_exactly_its_length() {
        let window = EngineConfig::default().conn_window.as_nanos() as u64;
        let resets = |e: &mut Engine, peers: std::ops::Range<u8>, t_ns: u64| {
            for p in peers {
                let mut c = conn(EventKind::ResetReceived, Some(7), [198, 18, 2, p], 0);
                c.timestamp_ns = t_ns;
                e.ingest_conn(&c, at(t_ns / 1_000_000));
            }
        };
        let mut e = engine(EngineConfig::default());
        resets(&mut e, 0..9, 0);
        resets(&mut e, 9..10, window - 1);
        assert_eq!(e.alerts().len(), 1, "10th peer 1 ns before the end");
        let mut e = engine(EngineConfig::default());
        resets(&mut e, 0..9, 0);
        resets(&mut e, 9..18, window);
        assert!(e.alerts().is_empty(), "9 peers in the new window");
        resets(&mut e, 18..19, window);
        assert_eq!(e.alerts().len(), 1, "10 in the new window");
    }

    #[test]
    fn conn_state_is_dropped_at_exactly_two_windows_idle() {
        let stale = 2 * EngineConfig::default().conn_window.as_nanos() as u64;
        let mut e = engine(EngineConfig::default());
        failures(&mut e, 0..1, 1_000_000);
        let now = |boot_ns| Now {
            unix: 2_000_000.0,
            boot_ns,
        };
        e.tick(now(1_000_000 + stale - 1));
        assert_eq!(e.conn_procs(), 1, "1 ns before");
        e.tick(now(1_000_000 + stale));
        assert_eq!(e.conn_procs(), 0);
    }
}
