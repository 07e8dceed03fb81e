//! The socket layer's user-space state, without the kernel: decoding of
//! ring-buffer records into [`SocketEvent`]s, the histograms and the list of
//! recent failures they feed, and the ranking of current connections for
//! `/status`. Everything here is tested on literal data.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::Serialize;

use crate::abi::sock::{self, Conn, SockEvent, SockStats};
use crate::abi::FAMILY_IPV4;

/// Upper bounds (seconds) of the connection duration histogram.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
];
/// Upper bounds (seconds) of the smoothed RTT histogram.
pub const SRTT_BUCKETS: [f64; 13] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Closed after the close handshake began (FIN), however it finished.
    Normal,
    /// From ESTABLISHED or CLOSE-WAIT straight to CLOSE: reset, timeout or
    /// abort (the kernel's EstabResets).
    Aborted,
    /// Closed by its owner (or dropped by the listener) before the
    /// handshake finished, without an error.
    Abandoned,
    /// The handshake failed: refused, timed out, unreachable (AttemptFails).
    Failed,
}

impl Outcome {
    fn from_abi(v: u8) -> Option<Outcome> {
        match v {
            sock::CLOSE_NORMAL => Some(Outcome::Normal),
            sock::CLOSE_ABORTED => Some(Outcome::Aborted),
            sock::CLOSE_ABANDONED => Some(Outcome::Abandoned),
            sock::CLOSE_FAILED => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// What happened to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "outcome")]
pub enum EventKind {
    Closed(Outcome),
    ResetSent,
    ResetReceived,
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Open before the agent started, or a segment without a socket.
    #[default]
    Unknown,
    /// This host connected out.
    Active,
    /// This host accepted it.
    Passive,
}

impl Direction {
    fn from_abi(v: u8) -> Direction {
        match v {
            sock::DIR_ACTIVE => Direction::Active,
            sock::DIR_PASSIVE => Direction::Passive,
            _ => Direction::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Direction::Unknown => "unknown",
            Direction::Active => "active",
            Direction::Passive => "passive",
        }
    }
}

/// How a connection's owner (`pid`, `comm`) was found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerSource {
    /// Not known: open before the agent started and not learned, or the
    /// kernel had no memory for the socket's owner.
    #[default]
    Unknown,
    /// The process that called `connect()`.
    Connect,
    /// The process that accepted it, seen in its `accept()` (the accept
    /// probe, fexit/inet_csk_accept).
    Accept,
    /// The process that called `listen()` on its listener (or was learned
    /// holding the listener): not accepted yet, or the kernel has no accept
    /// probe.
    Listener,
    /// Learned at start from `/proc/PID/fd`: a process that held the socket
    /// then (the lowest pid, when several did).
    Learned,
}

impl OwnerSource {
    pub fn from_abi(v: u8) -> OwnerSource {
        match v {
            sock::OWNER_CONNECT => OwnerSource::Connect,
            sock::OWNER_ACCEPT => OwnerSource::Accept,
            sock::OWNER_LISTENER => OwnerSource::Listener,
            sock::OWNER_LEARNED => OwnerSource::Learned,
            _ => OwnerSource::Unknown,
        }
    }
}

/// A socket's owner as `/status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerInfo {
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub source: OwnerSource,
    pub cgroup_id: Option<u64>,
}

impl OwnerInfo {
    pub fn from_abi(o: &sock::Owner) -> OwnerInfo {
        let comm = sock::comm_str(&o.comm);
        OwnerInfo {
            pid: (o.pid != 0).then_some(o.pid),
            comm: (!comm.is_empty()).then_some(comm),
            source: OwnerSource::from_abi(o.source),
            cgroup_id: (o.cgroup_id != 0).then_some(o.cgroup_id),
        }
    }
}

/// One connection event, as handed to hooks (the security detectors) and
/// kept for `/status`. Times are boot-time nanoseconds (CLOCK_BOOTTIME).
#[derive(Clone, Debug, PartialEq)]
pub struct SocketEvent {
    pub kind: EventKind,
    pub family: &'static str,
    pub local: IpAddr,
    pub local_port: u16,
    pub remote: IpAddr,
    pub remote_port: u16,
    pub direction: Direction,
    /// The process that owns the connection (see [`OwnerSource`]: the
    /// record's owner, decoded with [`OwnerInfo::from_abi`]); `None` when
    /// not known.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// Network namespace inode (as `/proc/PID/ns/net`).
    pub netns: u32,
    /// TCP state the connection closed from, or was in at a reset
    /// (`none`: a segment no socket wanted).
    pub state: &'static str,
    /// The socket error at close (ECONNREFUSED, ETIMEDOUT, ...), 0 if none.
    pub error: u32,
    pub srtt_seconds: f64,
    pub retransmits: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub timestamp_ns: u64,
    /// 0 when the connection was not tracked.
    pub start_ns: u64,
    pub established_ns: u64,
    /// Open before the agent started: `start_ns` is when it was first seen.
    pub seeded: bool,
    pub was_established: bool,
}

impl SocketEvent {
    /// Decodes a ring-buffer record; `None` for a short or unknown one.
    pub fn decode(b: &[u8]) -> Option<SocketEvent> {
        let e = SockEvent::from_bytes(b)?;
        let kind = match e.kind {
            sock::EV_CLOSED => EventKind::Closed(Outcome::from_abi(e.outcome)?),
            sock::EV_RESET_SENT => EventKind::ResetSent,
            sock::EV_RESET_RECEIVED => EventKind::ResetReceived,
            _ => return None,
        };
        let owner = OwnerInfo::from_abi(&e.owner);
        Some(SocketEvent {
            kind,
            family: family_name(e.family),
            local: e.local_ip(),
            local_port: e.lport,
            remote: e.remote_ip(),
            remote_port: e.rport,
            direction: Direction::from_abi(e.direction),
            pid: owner.pid,
            comm: owner.comm,
            netns: e.netns,
            state: if e.state == 0 {
                "none"
            } else {
                sock::state_name(e.state)
            },
            error: e.error,
            srtt_seconds: e.srtt_us as f64 / 1e6,
            retransmits: e.retrans,
            bytes_sent: e.bytes_acked,
            bytes_received: e.bytes_received,
            timestamp_ns: e.timestamp_ns,
            start_ns: e.start_ns,
            established_ns: e.established_ns,
            seeded: e.flags & sock::F_SEEDED != 0,
            was_established: e.flags & sock::F_WAS_ESTAB != 0,
        })
    }

    /// Seconds from open to this event; `None` when the open was not seen.
    pub fn duration_seconds(&self) -> Option<f64> {
        (self.start_ns != 0 && !self.seeded)
            .then(|| self.timestamp_ns.saturating_sub(self.start_ns) as f64 / 1e9)
    }
}

/// A hook that sees every connection event, in order, on the collector's
/// thread (between collections). Meant for detectors of abnormal
/// connections (failed connects per process, resets to many peers); keep it
/// cheap, it runs inline.
pub type SocketEventHook = Box<dyn FnMut(&SocketEvent) + Send>;

/// A Prometheus histogram: counts per bucket (not cumulative), sum, count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub bounds: &'static [f64],
    /// One per bound, plus the +Inf bucket last.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, v: f64) {
        let i = self
            .bounds
            .iter()
            .position(|&b| v <= b)
            .unwrap_or(self.bounds.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// (upper bound, cumulative count) per bucket, +Inf last.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut acc = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, c)| {
                acc += c;
                (self.bounds.get(i).copied().unwrap_or(f64::INFINITY), acc)
            })
            .collect()
    }
}

/// A connection in `/status`: a current one, or a recent failure.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnEntry {
    pub family: &'static str,
    pub local: String,
    pub local_port: u16,
    pub remote: String,
    pub remote_port: u16,
    pub direction: Direction,
    pub state: &'static str,
    /// The process that owns it (thread group id, as the host's PID
    /// namespace numbers it) and its command name, as `ss -p` shows them.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// How the owner was found.
    pub owner_source: OwnerSource,
    /// The owner's cgroup (v2) id.
    pub cgroup_id: Option<u64>,
    pub netns: u32,
    /// Seconds since the connection opened (for a failure: how long it tried).
    pub duration_seconds: f64,
    /// Open before the agent started: the duration counts from the agent's
    /// first look at it.
    pub since_agent_start: bool,
    /// Acknowledged by the peer (tcp_sock.bytes_acked).
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Smoothed RTT; `None` before the first sample.
    pub srtt_seconds: Option<f64>,
    pub retransmits: u32,
    /// Failures: the socket error (`ECONNREFUSED`, `ETIMEDOUT`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ConnEntry {
    /// A current connection from its sock_conns entry.
    pub fn from_conn(c: &Conn, boot_now_ns: u64) -> ConnEntry {
        let owner = OwnerInfo::from_abi(&c.owner);
        ConnEntry {
            family: family_name(c.family),
            local: c.local_ip().to_string(),
            local_port: c.lport,
            remote: c.remote_ip().to_string(),
            remote_port: c.rport,
            direction: Direction::from_abi(c.direction),
            state: sock::state_name(c.state),
            pid: owner.pid,
            comm: owner.comm,
            owner_source: owner.source,
            cgroup_id: owner.cgroup_id,
            netns: c.netns,
            duration_seconds: boot_now_ns.saturating_sub(c.start_ns) as f64 / 1e9,
            since_agent_start: c.flags & sock::F_SEEDED != 0,
            bytes_sent: c.bytes_acked,
            bytes_received: c.bytes_received,
            srtt_seconds: (c.srtt_us != 0).then(|| c.srtt_us as f64 / 1e6),
            retransmits: c.retrans,
            error: None,
        }
    }

    /// A closed connection (a failure) from its event and the owner its
    /// record carried.
    pub fn from_event(e: &SocketEvent, owner: &OwnerInfo) -> ConnEntry {
        ConnEntry {
            family: e.family,
            local: e.local.to_string(),
            local_port: e.local_port,
            remote: e.remote.to_string(),
            remote_port: e.remote_port,
            direction: e.direction,
            state: e.state,
            pid: e.pid,
            comm: e.comm.clone(),
            owner_source: owner.source,
            cgroup_id: owner.cgroup_id,
            netns: e.netns,
            duration_seconds: e.duration_seconds().unwrap_or(0.0),
            since_agent_start: e.seeded,
            bytes_sent: e.bytes_sent,
            bytes_received: e.bytes_received,
            srtt_seconds: (e.srtt_seconds > 0.0).then_some(e.srtt_seconds),
            retransmits: e.retransmits,
            error: (e.error != 0).then(|| errno_name(e.error)),
        }
    }
}

/// The kernel's counters, summed over CPUs, by name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SocketCounters {
    /// ActiveOpens: connections this host opened (SYN sent).
    pub opened_active: u64,
    /// PassiveOpens: connections accepted from a listener.
    pub opened_passive: u64,
    /// AttemptFails: handshakes that failed.
    pub failed: u64,
    pub closed_normal: u64,
    /// EstabResets.
    pub closed_aborted: u64,
    pub closed_abandoned: u64,
    /// Connections in ESTABLISHED or CLOSE-WAIT (CurrEstab): every one, or
    /// only tracked ones without socket storage (see [`Owners`]).
    pub established: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
    /// RetransSegs.
    pub retransmitted_segments: u64,
    /// connect() calls that failed before their SYN (not opens).
    pub connect_aborted: u64,
    /// Connections not tracked because sock_conns was full.
    pub untracked: u64,
    /// Ring-buffer records the probes could not write.
    pub events_lost: u64,
    /// Sockets the kernel had no memory to give owner storage.
    pub storage_failed: u64,
    /// Accepts the system call probe had no room to hand over (more than
    /// --max-connections between two collections).
    pub accepts_unseen: u64,
}

impl SocketCounters {
    pub fn from_stats(s: &SockStats) -> SocketCounters {
        let c = &s.c;
        SocketCounters {
            opened_active: c[sock::ACTIVE_OPENS],
            opened_passive: c[sock::PASSIVE_OPENS],
            failed: c[sock::ATTEMPT_FAILS],
            closed_normal: c[sock::CLOSED_NORMAL],
            closed_aborted: c[sock::CLOSED_ABORTED],
            closed_abandoned: c[sock::CLOSED_ABANDONED],
            // Entries and exits are counted on different CPUs: the sum of
            // one reading can be caught between the two of an exit.
            established: c[sock::ESTAB_ENTERED].saturating_sub(c[sock::ESTAB_LEFT]),
            resets_sent: c[sock::RST_SENT],
            resets_received: c[sock::RST_RECEIVED],
            retransmitted_segments: c[sock::RETRANS_SEGS],
            connect_aborted: c[sock::CONNECT_ABORTED],
            untracked: c[sock::UNTRACKED],
            events_lost: c[sock::EVENTS_LOST],
            storage_failed: c[sock::STORAGE_FAILED],
            accepts_unseen: c[sock::ACCEPT_UNSEEN],
        }
    }
}

/// Tracked connections: fill level and the lists in `/status`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ConnTable {
    pub entries: u64,
    pub capacity: u64,
    /// Oldest current connections first, at most `--top-connections`.
    pub longest_lived: Vec<ConnEntry>,
    /// Current connections by bytes sent and received, at most `--top-connections`.
    pub busiest: Vec<ConnEntry>,
    /// Failed connection attempts, most recent first, at most `--top-connections`.
    pub recent_failures: Vec<ConnEntry>,
}

/// Which rules give connections their owners on this kernel.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Owners {
    /// Who accepted connections are given to: `accept` (the process that
    /// accepts each, from the accept probe), `listener` (the process that
    /// called `listen()` on its listener: no accept probe) or `none`
    /// (neither: only connect()'s process is known).
    pub accepted: &'static str,
    /// The accept probe: `fexit` (fexit/inet_csk_accept), `sys_exit` (the
    /// exit of accept() and accept4()) or `none`.
    pub accept_probe: &'static str,
    /// Owners and the established gauge are kept on each socket (socket
    /// storage, Linux 5.11+); `false`: only on connections in the table.
    pub socket_storage: bool,
    /// Sockets open before the agent started, and the owners learned for
    /// them from `/proc` at start.
    pub learned: Learned,
}

/// What learning at start found.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Learned {
    /// Listeners and connections given their owner.
    pub listeners: u64,
    pub connections: u64,
    /// Sockets whose owner was not found (held by no process this agent
    /// sees, closed meanwhile, or past a bound).
    pub not_found: u64,
    pub duration_seconds: f64,
    /// Why learning stopped early or did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
}

/// The socket layer in one snapshot: `/status` field `sockets`, and the
/// `netprobe_tcp_*` and `netprobe_socket_*` metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SocketSnapshot {
    /// The probes are loaded and attached.
    pub loaded: bool,
    /// Why not, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    /// `self` (the agent's network namespace) or `all`.
    pub netns: &'static str,
    /// Inode of the namespace counted with `self`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns_inode: Option<u32>,
    /// Bytes and RTT of current connections are refreshed each collection
    /// (the TCP iterator loaded; only in the agent's own namespace).
    pub live_stats: bool,
    /// The last failure reading the socket maps, if the last read failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub counters: SocketCounters,
    pub owners: Owners,
    pub connections: ConnTable,
    /// Ring-buffer records received.
    pub events_total: u64,
    #[serde(skip)]
    pub duration: Histogram,
    #[serde(skip)]
    pub srtt: Histogram,
}

impl SocketSnapshot {
    /// The snapshot of a socket layer that is not running.
    pub fn disabled(reason: impl Into<String>) -> SocketSnapshot {
        SocketSnapshot {
            disabled_reason: Some(reason.into()),
            netns: "self",
            duration: Histogram::new(&DURATION_BUCKETS),
            srtt: Histogram::new(&SRTT_BUCKETS),
            ..Default::default()
        }
    }
}

/// What the agent keeps from the event stream.
pub struct EventState {
    pub duration: Histogram,
    pub srtt: Histogram,
    pub failures: VecDeque<ConnEntry>,
    pub failures_cap: usize,
    pub received: u64,
    pub undecodable: u64,
    hooks: Vec<SocketEventHook>,
    /// Events kept for [`EventState::take_queued`], when enabled.
    queue: VecDeque<SocketEvent>,
    queue_cap: usize,
    /// Events the queue had no room for (its reader fell behind).
    pub queue_dropped: u64,
}

impl EventState {
    pub fn new(failures_cap: usize) -> EventState {
        EventState {
            duration: Histogram::new(&DURATION_BUCKETS),
            srtt: Histogram::new(&SRTT_BUCKETS),
            failures: VecDeque::with_capacity(failures_cap),
            failures_cap,
            received: 0,
            undecodable: 0,
            hooks: Vec::new(),
            queue: VecDeque::new(),
            queue_cap: 0,
            queue_dropped: 0,
        }
    }

    /// Keeps up to `cap` events for [`EventState::take_queued`] (0: off,
    /// the default): the pull-side alternative to a hook, for a reader on
    /// the same thread (the collector's detectors).
    pub fn enable_queue(&mut self, cap: usize) {
        self.queue_cap = cap;
        self.queue.truncate(cap);
    }

    /// The queued events, oldest first; the queue is empty afterwards.
    pub fn take_queued(&mut self) -> Vec<SocketEvent> {
        self.queue.drain(..).collect()
    }

    pub fn add_hook(&mut self, hook: SocketEventHook) {
        self.hooks.push(hook);
    }

    /// Takes one ring-buffer record.
    pub fn record(&mut self, bytes: &[u8]) {
        self.received += 1;
        match (SocketEvent::decode(bytes), SockEvent::from_bytes(bytes)) {
            (Some(e), Some(raw)) => self.apply(&e, &OwnerInfo::from_abi(&raw.owner)),
            _ => self.undecodable += 1,
        }
    }

    pub fn apply(&mut self, e: &SocketEvent, owner: &OwnerInfo) {
        if let EventKind::Closed(outcome) = e.kind {
            if e.was_established {
                if let Some(d) = e.duration_seconds() {
                    self.duration.observe(d);
                }
            }
            if e.srtt_seconds > 0.0 {
                self.srtt.observe(e.srtt_seconds);
            }
            if outcome == Outcome::Failed && self.failures_cap > 0 {
                if self.failures.len() == self.failures_cap {
                    self.failures.pop_back();
                }
                self.failures.push_front(ConnEntry::from_event(e, owner));
            }
        }
        for h in &mut self.hooks {
            h(e);
        }
        if self.queue_cap > 0 {
            if self.queue.len() < self.queue_cap {
                self.queue.push_back(e.clone());
            } else {
                self.queue_dropped += 1;
            }
        }
    }
}

/// The `n` longest-lived and the `n` busiest of `conns`.
pub fn rank(conns: &[Conn], n: usize, boot_now_ns: u64) -> (Vec<ConnEntry>, Vec<ConnEntry>) {
    let pick = |key: &dyn Fn(&Conn) -> (u64, u64)| -> Vec<ConnEntry> {
        let mut idx: Vec<usize> = (0..conns.len()).collect();
        let cmp = |a: &usize, b: &usize| key(&conns[*b]).cmp(&key(&conns[*a]));
        if n < idx.len() {
            idx.select_nth_unstable_by(n, cmp);
            idx.truncate(n);
        }
        idx.sort_by(cmp);
        idx.into_iter()
            .map(|i| ConnEntry::from_conn(&conns[i], boot_now_ns))
            .collect()
    };
    // Oldest first (smallest start); ties by port, for a stable order.
    let longest = pick(&|c| (u64::MAX - c.start_ns, u64::from(u16::MAX - c.lport)));
    let busiest = pick(&|c| {
        (
            c.bytes_acked.saturating_add(c.bytes_received),
            u64::from(u16::MAX - c.lport),
        )
    });
    (longest, busiest)
}

pub fn family_name(f: u8) -> &'static str {
    if f == FAMILY_IPV4 {
        "ipv4"
    } else {
        "ipv6"
    }
}

/// The symbolic name of a socket error (Linux numbering, the same on
/// x86_64 and arm64).
pub fn errno_name(e: u32) -> String {
    let name = match e as i32 {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNRESET => "ECONNRESET",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EHOSTDOWN => "EHOSTDOWN",
        libc::ENETDOWN => "ENETDOWN",
        libc::EPIPE => "EPIPE",
        libc::EPROTO => "EPROTO",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ENOPROTOOPT => "ENOPROTOOPT",
        libc::EACCES => "EACCES",
        libc::EPERM => "EPERM",
        _ => return format!("errno {e}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::FAMILY_IPV6;

    fn ipv4(a: [u8; 4]) -> [u32; 4] {
        [u32::from_ne_bytes(a), 0, 0, 0]
    }

    fn event(kind: u8, outcome: u8) -> SockEvent {
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        SockEvent {
            kind,
            family: FAMILY_IPV4,
            direction: sock::DIR_ACTIVE,
            outcome,
            state: sock::TCP_SYN_SENT,
            lport: 40000,
            rport: 443,
            netns: 4026531840,
            error: libc::ECONNREFUSED as u32,
            laddr: ipv4([198, 18, 0, 1]),
            raddr: ipv4([198, 18, 0, 2]),
            timestamp_ns: 5_000_000_000,
            start_ns: 4_000_000_000,
            owner: sock::Owner {
                pid: 42,
                source: sock::OWNER_CONNECT,
                cgroup_id: 7777,
                comm,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn bytes(e: &SockEvent) -> Vec<u8> {
        // SAFETY: plain old data of its own size.
        unsafe {
            std::slice::from_raw_parts(e as *const _ as *const u8, std::mem::size_of::<SockEvent>())
        }
        .to_vec()
    }

    #[test]
    fn decodes_a_refused_connect() {
        let e = SocketEvent::decode(&bytes(&event(sock::EV_CLOSED, sock::CLOSE_FAILED))).unwrap();
        assert_eq!(e.kind, EventKind::Closed(Outcome::Failed));
        assert_eq!(e.local.to_string(), "198.18.0.1");
        assert_eq!(e.remote.to_string(), "198.18.0.2");
        assert_eq!((e.local_port, e.remote_port), (40000, 443));
        assert_eq!(e.pid, Some(42));
        assert_eq!(e.comm.as_deref(), Some("curl"));
        assert_eq!(e.state, "syn_sent");
        assert_eq!(e.duration_seconds(), Some(1.0));
        let raw = event(sock::EV_CLOSED, sock::CLOSE_FAILED);
        let c = ConnEntry::from_event(&e, &OwnerInfo::from_abi(&raw.owner));
        assert_eq!(c.error.as_deref(), Some("ECONNREFUSED"));
        assert_eq!(c.owner_source, OwnerSource::Connect);
        assert_eq!(c.cgroup_id, Some(7777));
        assert_eq!(c.srtt_seconds, None);
        assert!(SocketEvent::decode(&bytes(&event(sock::EV_CLOSED, 0))).is_none());
        assert!(SocketEvent::decode(&bytes(&event(99, 0))).is_none());
        assert!(SocketEvent::decode(&[0u8; 10]).is_none());
    }

    #[test]
    fn histograms_and_failures_are_bounded() {
        let mut st = EventState::new(2);
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let s2 = seen.clone();
        st.add_hook(Box::new(move |_| {
            s2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }));
        for port in 0..5u16 {
            let mut e = event(sock::EV_CLOSED, sock::CLOSE_FAILED);
            e.lport = port;
            st.record(&bytes(&e));
        }
        let mut ok = event(sock::EV_CLOSED, sock::CLOSE_NORMAL);
        ok.flags = sock::F_WAS_ESTAB;
        ok.srtt_us = 1500;
        ok.error = 0;
        st.record(&bytes(&ok));
        st.record(&bytes(&event(sock::EV_RESET_RECEIVED, 0)));
        assert_eq!(st.received, 7);
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 7);
        assert_eq!(
            st.failures.iter().map(|f| f.local_port).collect::<Vec<_>>(),
            [4, 3]
        );
        assert_eq!(st.duration.count, 1);
        assert_eq!(st.duration.cumulative()[4], (1.0, 1)); // 1 s lands in le="1"
        assert_eq!(st.duration.cumulative()[3], (0.5, 0));
        assert_eq!(st.srtt.count, 1);
        assert_eq!(st.srtt.sum, 0.0015);
        assert_eq!(st.srtt.cumulative().last(), Some(&(f64::INFINITY, 1)));
    }

    #[test]
    fn queue_is_bounded_and_drained() {
        let mut st = EventState::new(0);
        st.record(&bytes(&event(sock::EV_RESET_SENT, 0)));
        assert!(st.take_queued().is_empty(), "off by default");
        st.enable_queue(2);
        for port in 1..=3u16 {
            let mut e = event(sock::EV_CLOSED, sock::CLOSE_FAILED);
            e.lport = port;
            st.record(&bytes(&e));
        }
        let q = st.take_queued();
        assert_eq!(q.iter().map(|e| e.local_port).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(st.queue_dropped, 1);
        assert!(st.take_queued().is_empty());
    }

    #[test]
    fn seeded_connections_have_no_duration() {
        let mut e = event(sock::EV_CLOSED, sock::CLOSE_NORMAL);
        e.flags = sock::F_SEEDED | sock::F_WAS_ESTAB;
        let d = SocketEvent::decode(&bytes(&e)).unwrap();
        assert_eq!(d.duration_seconds(), None);
        let mut st = EventState::new(0);
        st.apply(&d, &OwnerInfo::default());
        assert_eq!(st.duration.count, 0);
        assert!(st.failures.is_empty());
    }

    #[test]
    fn ranks_oldest_and_busiest() {
        let conns: Vec<Conn> = (0..50u16)
            .map(|i| Conn {
                start_ns: 1_000 + u64::from(i) * 10,
                bytes_acked: u64::from(i % 7) * 100,
                bytes_received: 1,
                lport: 1000 + i,
                family: FAMILY_IPV6,
                state: sock::TCP_ESTABLISHED,
                srtt_us: 250,
                ..Default::default()
            })
            .collect();
        let (old, busy) = rank(&conns, 3, 2_000);
        assert_eq!(
            old.iter().map(|c| c.local_port).collect::<Vec<_>>(),
            [1000, 1001, 1002]
        );
        assert_eq!(old[0].duration_seconds, 1e-6);
        assert_eq!(old[0].state, "established");
        assert_eq!(old[0].srtt_seconds, Some(0.00025));
        assert_eq!(old[0].local, "::");
        // i % 7 == 6: ports 1006, 1013, 1020, ...; ties broken by the lower port.
        assert_eq!(
            busy.iter().map(|c| c.local_port).collect::<Vec<_>>(),
            [1006, 1013, 1020]
        );
        let (none, _) = rank(&conns, 0, 0);
        assert!(none.is_empty());
        assert_eq!(rank(&conns[..2], 10, 0).0.len(), 2);
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(110), "ETIMEDOUT");
        assert_eq!(errno_name(111), "ECONNREFUSED");
        assert_eq!(errno_name(4242), "errno 4242");
    }
}
