//! Detection and mitigation (`probes/include/detect.h`): Rust mirror of
//! `probes/include/abi/detect.h`.

use std::mem::size_of;
use std::net::IpAddr;

/// `NP_EVENT_ALERT`: an [`AlertEvent`] record in the events ring.
pub const EVENT_ALERT: u32 = 2;

/// `enum np_alert_kind`
pub const SCAN_VERTICAL: u32 = 1;
pub const SCAN_HORIZONTAL: u32 = 2;
pub const SYN_FLOOD: u32 = 3;
pub const UDP_FLOOD: u32 = 4;
pub const ICMP_FLOOD: u32 = 5;
pub const DST_PPS: u32 = 6;
pub const DST_BPS: u32 = 7;
pub const IFACE_PPS: u32 = 8;
pub const IFACE_BPS: u32 = 9;
pub const CLOSED_PORTS: u32 = 10;
pub const PORT_POLICY: u32 = 11;
pub const BLOCKLIST: u32 = 12;
pub const KIND_MAX: usize = 16;

/// `enum np_detect_counter`: indices of [`DetectStats::c`].
pub const EVENTS_SENT: usize = 0;
pub const EVENTS_LOST: usize = 1;
pub const DROP_LIST: usize = 2;
pub const DROP_BLOCKED: usize = 3;
pub const DRY_LIST: usize = 4;
pub const DRY_BLOCKED: usize = 5;
pub const ALLOWED: usize = 6;
pub const SYN_FAST: usize = 7;
pub const SCAN_UNTRACKED: usize = 8;
pub const PASS_ANSWER: usize = 9;
pub const COUNTER_MAX: usize = 16;

/// `NP_SPOOFED_SOURCES`: a flood whose source sketch has more bits set
/// comes from many (random or spoofed) sources; no source is named.
pub const SPOOFED_SOURCES: u32 = 4;

/// `struct np_alert_event`: ring-buffer record of type [`EVENT_ALERT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertEvent {
    pub event_type: u32,
    pub ifindex: u32,
    pub timestamp_ns: u64,
    pub value: u64,
    pub kind: u32,
    pub family: u8,
    pub proto: u8,
    pub port: u16,
    /// Network byte order; IPv4 in `src[0]`.
    pub src: [u32; 4],
    pub dst: [u32; 4],
    pub window_ns: u64,
    /// Floods: bits set in a 64-bit sketch of sources.
    pub sources: u32,
    /// The named source's own share of `value` (0: no source named).
    pub own: u32,
}

impl AlertEvent {
    /// Reads an alert from a ring-buffer record; `None` if it is short.
    pub fn from_bytes(b: &[u8]) -> Option<AlertEvent> {
        if b.len() < size_of::<AlertEvent>() {
            return None;
        }
        // SAFETY: length checked; AlertEvent is plain old data, read unaligned.
        Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const AlertEvent) })
    }
    /// The named source; `None` when the probe named none (many or
    /// unattributed sources: `src` is all zero).
    pub fn src_ip(&self) -> Option<IpAddr> {
        (self.src != [0; 4]).then(|| super::ip_of(self.family, &self.src))
    }
    pub fn dst_ip(&self) -> IpAddr {
        super::ip_of(self.family, &self.dst)
    }
}

/// `struct np_detect_stats`: detect_stats value, one per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectStats {
    pub c: [u64; COUNTER_MAX],
}

impl DetectStats {
    pub fn add(&mut self, o: &DetectStats) {
        super::add_all(&mut self.c, &o.c);
    }
}

/// `struct np_lpm_key`: an address or prefix; IPv4 as `::ffff:a.b.c.d`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LpmKey {
    pub prefixlen: u32,
    pub addr: [u32; 4],
}

impl LpmKey {
    /// The key of `ip/prefix` (prefix in the address's own family).
    pub fn new(ip: IpAddr, prefix: u8) -> LpmKey {
        let (bytes, plen) = match ip {
            IpAddr::V4(a) => (a.to_ipv6_mapped().octets(), u32::from(prefix) + 96),
            IpAddr::V6(a) => (a.octets(), u32::from(prefix)),
        };
        let mut addr = [0u32; 4];
        for (i, w) in addr.iter_mut().enumerate() {
            *w = u32::from_ne_bytes([
                bytes[i * 4],
                bytes[i * 4 + 1],
                bytes[i * 4 + 2],
                bytes[i * 4 + 3],
            ]);
        }
        LpmKey {
            prefixlen: plen,
            addr,
        }
    }
}

/// `struct np_rule`: blocklist/allowlist value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rule {
    pub hits: u64,
    pub last_event_ns: u64,
}

/// `struct np_block`: blocked_sources value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Block {
    pub expires_ns: u64,
    pub hits: u64,
    pub kind: u32,
    pub pad: u32,
}

// SAFETY: #[repr(C)], fixed-width fields, no implicit padding (asserted).
unsafe impl aya::Pod for DetectStats {}
unsafe impl aya::Pod for LpmKey {}
unsafe impl aya::Pod for Rule {}
unsafe impl aya::Pod for Block {}

const _: () = assert!(size_of::<AlertEvent>() == 80);
const _: () = assert!(size_of::<DetectStats>() == 128);
const _: () = assert!(size_of::<LpmKey>() == 20);
const _: () = assert!(size_of::<Rule>() == 16);
const _: () = assert!(size_of::<Block>() == 24);
