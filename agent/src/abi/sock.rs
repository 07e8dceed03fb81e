//! Socket layer (`probes/socket.bpf.c`): Rust mirror of
//! `probes/include/abi/sock.h`.

use std::mem::size_of;

/// `enum np_tcp_state`: TCP states as the kernel numbers them.
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_SYN_SENT: u8 = 2;
pub const TCP_SYN_RECV: u8 = 3;
pub const TCP_FIN_WAIT1: u8 = 4;
pub const TCP_FIN_WAIT2: u8 = 5;
pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_CLOSE_WAIT: u8 = 8;
pub const TCP_LAST_ACK: u8 = 9;
pub const TCP_LISTEN: u8 = 10;
pub const TCP_CLOSING: u8 = 11;
pub const TCP_NEW_SYN_RECV: u8 = 12;

/// Name of a TCP state, as in `ss` (lower case); `unknown` otherwise.
pub fn state_name(s: u8) -> &'static str {
    match s {
        TCP_ESTABLISHED => "established",
        TCP_SYN_SENT => "syn_sent",
        TCP_SYN_RECV => "syn_recv",
        TCP_FIN_WAIT1 => "fin_wait1",
        TCP_FIN_WAIT2 => "fin_wait2",
        TCP_TIME_WAIT => "time_wait",
        TCP_CLOSE => "close",
        TCP_CLOSE_WAIT => "close_wait",
        TCP_LAST_ACK => "last_ack",
        TCP_LISTEN => "listen",
        TCP_CLOSING => "closing",
        TCP_NEW_SYN_RECV => "new_syn_recv",
        _ => "unknown",
    }
}

/// `enum np_sock_counter`: indices of [`SockStats::c`].
pub const ACTIVE_OPENS: usize = 0;
pub const PASSIVE_OPENS: usize = 1;
pub const ATTEMPT_FAILS: usize = 2;
pub const CLOSED_NORMAL: usize = 3;
pub const CLOSED_ABORTED: usize = 4;
pub const CLOSED_ABANDONED: usize = 5;
pub const ESTAB_ENTERED: usize = 6;
pub const ESTAB_LEFT: usize = 7;
pub const RST_SENT: usize = 8;
pub const RST_RECEIVED: usize = 9;
pub const RETRANS_SEGS: usize = 10;
pub const CONNECT_ABORTED: usize = 11;
pub const UNTRACKED: usize = 12;
pub const EVENTS_LOST: usize = 13;
pub const STORAGE_FAILED: usize = 14;
pub const ACCEPT_UNSEEN: usize = 15;
pub const COUNTER_MAX: usize = 16;

/// `struct np_sock_stats`: sock_stats value, one per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockStats {
    pub c: [u64; COUNTER_MAX],
}

impl SockStats {
    pub fn add(&mut self, o: &SockStats) {
        super::add_all(&mut self.c, &o.c);
    }
}

/// `enum np_conn_direction`
pub const DIR_UNKNOWN: u8 = 0;
pub const DIR_ACTIVE: u8 = 1;
pub const DIR_PASSIVE: u8 = 2;

/// `enum np_owner_source`: how a socket's owner was found.
pub const OWNER_UNKNOWN: u8 = 0;
pub const OWNER_CONNECT: u8 = 1;
pub const OWNER_ACCEPT: u8 = 2;
pub const OWNER_LISTENER: u8 = 3;
pub const OWNER_LEARNED: u8 = 4;

/// `struct np_owner`: who holds a socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    /// cgroup v2 id; 0 when unknown.
    pub cgroup_id: u64,
    /// Thread group id (host PID namespace); 0 when unknown.
    pub pid: u32,
    /// `OWNER_*`.
    pub source: u8,
    pub pad: [u8; 3],
    /// The process's command name, NUL-padded.
    pub comm: [u8; 16],
}

/// `struct np_learn_record`: a socket whose owner is not known, written by
/// the learning iterator to its output.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LearnRecord {
    pub inode: u64,
    /// `TCP_*` state.
    pub state: u32,
    pub pad: u32,
}

impl LearnRecord {
    /// The records in an iterator's output, in order; a short tail is
    /// ignored.
    pub fn parse_all(b: &[u8]) -> Vec<LearnRecord> {
        b.chunks_exact(size_of::<LearnRecord>())
            // SAFETY: a full chunk; LearnRecord is plain old data, read unaligned.
            .map(|c| unsafe { std::ptr::read_unaligned(c.as_ptr() as *const LearnRecord) })
            .collect()
    }
}

/// `enum np_conn_flag`
pub const F_ESTAB: u8 = 1 << 0;
pub const F_SEEDED: u8 = 1 << 1;
pub const F_RETRANS_BASE: u8 = 1 << 2;
pub const F_WAS_ESTAB: u8 = 1 << 3;

/// `struct np_conn`: sock_conns value, keyed by the socket address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    pub start_ns: u64,
    pub established_ns: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub updated_ns: u64,
    pub netns: u32,
    /// Network byte order; IPv4 in `laddr[0]`.
    pub laddr: [u32; 4],
    pub raddr: [u32; 4],
    pub lport: u16,
    pub rport: u16,
    pub family: u8,
    pub direction: u8,
    pub state: u8,
    pub flags: u8,
    pub srtt_us: u32,
    pub retrans: u32,
    pub retrans_seen: u32,
    pub owner: Owner,
}

impl Conn {
    pub fn local_ip(&self) -> std::net::IpAddr {
        super::ip_of(self.family, &self.laddr)
    }
    pub fn remote_ip(&self) -> std::net::IpAddr {
        super::ip_of(self.family, &self.raddr)
    }
}

/// `enum np_sock_event_type`
pub const EV_CLOSED: u8 = 1;
pub const EV_RESET_SENT: u8 = 2;
pub const EV_RESET_RECEIVED: u8 = 3;

/// `enum np_close_outcome`
pub const CLOSE_NORMAL: u8 = 1;
pub const CLOSE_ABORTED: u8 = 2;
pub const CLOSE_ABANDONED: u8 = 3;
pub const CLOSE_FAILED: u8 = 4;

/// `struct np_sock_event`: sock_events ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockEvent {
    pub kind: u8,
    pub family: u8,
    pub direction: u8,
    pub outcome: u8,
    pub state: u8,
    pub flags: u8,
    pub lport: u16,
    pub rport: u16,
    pub pad: u16,
    pub netns: u32,
    pub error: u32,
    pub srtt_us: u32,
    pub retrans: u32,
    pub pad2: u32,
    pub laddr: [u32; 4],
    pub raddr: [u32; 4],
    pub timestamp_ns: u64,
    pub start_ns: u64,
    pub established_ns: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub owner: Owner,
}

impl SockEvent {
    /// Reads an event from a ring-buffer record; `None` if it is short.
    pub fn from_bytes(b: &[u8]) -> Option<SockEvent> {
        if b.len() < size_of::<SockEvent>() {
            return None;
        }
        // SAFETY: length checked; SockEvent is plain old data, read unaligned.
        Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const SockEvent) })
    }
    pub fn local_ip(&self) -> std::net::IpAddr {
        super::ip_of(self.family, &self.laddr)
    }
    pub fn remote_ip(&self) -> std::net::IpAddr {
        super::ip_of(self.family, &self.raddr)
    }
}

/// A NUL-padded kernel command name as text.
pub fn comm_str(c: &[u8; 16]) -> String {
    let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
    String::from_utf8_lossy(&c[..end]).into_owned()
}

// SAFETY: #[repr(C)], fixed-width fields, no implicit padding (asserted).
unsafe impl aya::Pod for SockStats {}
unsafe impl aya::Pod for Owner {}
unsafe impl aya::Pod for Conn {}
unsafe impl aya::Pod for SockEvent {}

const _: () = assert!(size_of::<SockStats>() == 128);
const _: () = assert!(size_of::<Owner>() == 32);
const _: () = assert!(size_of::<LearnRecord>() == 16);
const _: () = assert!(size_of::<Conn>() == 128);
const _: () = assert!(std::mem::offset_of!(Conn, owner) == 96);
const _: () = assert!(size_of::<SockEvent>() == 136);
const _: () = assert!(std::mem::offset_of!(SockEvent, owner) == 104);
