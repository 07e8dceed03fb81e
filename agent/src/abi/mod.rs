//! Rust mirror of `probes/include/abi/packet.h` (and `abi/types.h`): every
//! map key, value and enum the packet probes share with the agent; the
//! detection and socket ABIs are in [`detect`] and [`sock`]. Layouts are
//! asserted here and with `_Static_assert` in the headers; aya checks key
//! and value sizes when a map is opened with these types, so a drift fails
//! the kernel tests.

use std::mem::size_of;

/// Where a probe runs (`enum np_hook`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum Hook {
    Xdp = 0,
    TcIngress = 1,
    TcEgress = 2,
}

impl Hook {
    pub const ALL: [Hook; 3] = [Hook::Xdp, Hook::TcIngress, Hook::TcEgress];

    pub fn from_u32(v: u32) -> Option<Hook> {
        Hook::ALL.into_iter().find(|h| *h as u32 == v)
    }

    /// Label value used in metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Xdp => "xdp",
            Hook::TcIngress => "tc_ingress",
            Hook::TcEgress => "tc_egress",
        }
    }
}

pub const FAMILY_MAX: usize = 2;
pub const L4_MAX: usize = 5;
pub const TCP_FLAG_MAX: usize = 4;
pub const SKIP_MAX: usize = 16;
pub const FLOW_MISS_MAX: usize = 2;

/// `enum np_family` label values, by index.
pub const FAMILY_NAMES: [&str; FAMILY_MAX] = ["ipv4", "ipv6"];
/// `enum np_l4` label values, by index.
pub const L4_NAMES: [&str; L4_MAX] = ["tcp", "udp", "icmp", "icmpv6", "other"];
/// `enum np_tcp_flag` label values, by index.
pub const TCP_FLAG_NAMES: [&str; TCP_FLAG_MAX] = ["syn", "synack", "fin", "rst"];
/// `enum np_flow_miss` label values, by index.
pub const FLOW_MISS_NAMES: [&str; FLOW_MISS_MAX] = ["not_admitted", "update_failed"];

/// `enum np_skip` label values, by index; `None` for unused slots
/// (index 0 is "parsed fully" and never counted).
pub const SKIP_NAMES: [Option<&str>; SKIP_MAX] = [
    None,
    Some("short_ethernet"),
    Some("short_vlan"),
    Some("vlan_depth"),
    Some("non_ip"),
    Some("short_ipv4"),
    Some("bad_ihl"),
    Some("bad_ip_version"),
    Some("short_ipv6"),
    Some("short_ipv6_exthdr"),
    Some("ipv6_exthdr_chain"),
    Some("fragment"),
    Some("short_l4"),
    Some("bad_tcp_doff"),
    None,
    None,
];

/// Skip reasons by their C names, for tests that build expectations.
pub mod skip {
    pub const SHORT_ETH: usize = 1;
    pub const SHORT_VLAN: usize = 2;
    pub const VLAN_DEPTH: usize = 3;
    pub const NON_IP: usize = 4;
    pub const SHORT_IPV4: usize = 5;
    pub const BAD_IHL: usize = 6;
    pub const BAD_VERSION: usize = 7;
    pub const SHORT_IPV6: usize = 8;
    pub const SHORT_EXTHDR: usize = 9;
    pub const EXTHDR_CHAIN: usize = 10;
    pub const FRAGMENT: usize = 11;
    pub const SHORT_L4: usize = 12;
    pub const BAD_TCP_DOFF: usize = 13;

    /// The reasons that stop before an IP header parsed: such a packet is
    /// counted in total and here only (not in l3 or non_ip).
    pub const EARLY: [usize; 7] = [
        SHORT_ETH,
        SHORT_VLAN,
        VLAN_DEPTH,
        SHORT_IPV4,
        BAD_IHL,
        BAD_VERSION,
        SHORT_IPV6,
    ];
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

impl Counter {
    pub fn add(&mut self, o: &Counter) {
        self.packets = self.packets.wrapping_add(o.packets);
        self.bytes = self.bytes.wrapping_add(o.bytes);
    }
}

/// `struct np_stats_key`: packet_stats key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StatsKey {
    pub ifindex: u32,
    pub hook: u32,
}

/// `struct np_packet_stats`: packet_stats value, one per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketStats {
    pub total: Counter,
    pub l3: [[Counter; L4_MAX]; FAMILY_MAX],
    pub non_ip: Counter,
    pub tcp_flags: [u64; TCP_FLAG_MAX],
    pub skip: [u64; SKIP_MAX],
    pub flow_miss: [u64; FLOW_MISS_MAX],
    pub flows_created: u64,
}

impl PacketStats {
    /// Adds another CPU's (or interval's) counters into this one.
    pub fn add(&mut self, o: &PacketStats) {
        self.total.add(&o.total);
        for (a, b) in self.l3.iter_mut().flatten().zip(o.l3.iter().flatten()) {
            a.add(b);
        }
        self.non_ip.add(&o.non_ip);
        add_all(&mut self.tcp_flags, &o.tcp_flags);
        add_all(&mut self.skip, &o.skip);
        add_all(&mut self.flow_miss, &o.flow_miss);
        self.flows_created = self.flows_created.wrapping_add(o.flows_created);
    }
}

fn add_all(a: &mut [u64], b: &[u64]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}

pub const DIR_INGRESS: u32 = 0;
pub const DIR_EGRESS: u32 = 1;
pub const STAT_PACKETS: u32 = 0;
pub const STAT_BYTES: u32 = 1;

/// `struct np_tc_device_key`: tc_device_stats key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcDeviceKey {
    pub ifindex: u32,
    pub direction: u32,
    pub stat_type: u32,
}

pub const FAMILY_IPV4: u8 = 0;
pub const FAMILY_IPV6: u8 = 1;

/// `struct np_flow_key`: flow_stats key.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub ifindex: u32,
    /// Network byte order; IPv4 in `saddr[0]`.
    pub saddr: [u32; 4],
    pub daddr: [u32; 4],
    pub sport: u16,
    pub dport: u16,
    pub family: u8,
    pub proto: u8,
    pub pad: [u8; 2],
}

impl FlowKey {
    pub fn src_ip(&self) -> std::net::IpAddr {
        ip_of(self.family, &self.saddr)
    }
    pub fn dst_ip(&self) -> std::net::IpAddr {
        ip_of(self.family, &self.daddr)
    }
}

fn ip_of(family: u8, a: &[u32; 4]) -> std::net::IpAddr {
    // The words hold bytes in network order; to_ne_bytes gives them back.
    let mut b = [0u8; 16];
    for (i, w) in a.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    if family == FAMILY_IPV4 {
        std::net::IpAddr::from([b[0], b[1], b[2], b[3]])
    } else {
        std::net::IpAddr::from(b)
    }
}

/// `struct np_flow_stats`: flow_stats value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub rx: Counter,
    pub tx: Counter,
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    pub tcp_flags: u32,
    /// `enum np_flow_flag`: [`FLOW_REPLY`], [`FLOW_TWOWAY`].
    pub flags: u32,
}

/// `enum np_flow_flag`: created after its reverse (the other side started).
pub const FLOW_REPLY: u32 = 1 << 0;
/// `enum np_flow_flag`: both directions carry traffic (a conversation).
pub const FLOW_TWOWAY: u32 = 1 << 1;

/// `enum np_iface_flag`: `NP_IFACE_TX_SEGMENTS`, the device has no TSO;
/// TC egress counts each segment of a GSO packet.
pub const IFACE_TX_SEGMENTS: u32 = 1 << 0;

/// `struct np_iface_config`: iface_config value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceConfig {
    pub flags: u32,
    pub pad: u32,
}

/// `struct np_admission`: admission_state value (per CPU).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// In 1e-9 tokens: one token is 1_000_000_000.
    pub tokens: u64,
    pub last_refill_ns: u64,
    /// Refusals not yet reported in an event.
    pub refused: u64,
    /// When this CPU last tried to emit an event.
    pub last_event_ns: u64,
}

/// `enum np_event_type`
pub const EVENT_FLOW_ADMISSION_LIMITED: u32 = 1;

/// `struct np_event`: ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub kind: u32,
    pub ifindex: u32,
    pub timestamp_ns: u64,
    pub value: u64,
}

impl Event {
    /// Reads an event from a ring-buffer record; `None` if it is short.
    pub fn from_bytes(b: &[u8]) -> Option<Event> {
        if b.len() < size_of::<Event>() {
            return None;
        }
        // SAFETY: length checked; Event is plain old data, read unaligned.
        Some(unsafe { std::ptr::read_unaligned(b.as_ptr() as *const Event) })
    }
}

// SAFETY: all of these are #[repr(C)] with fixed-width fields and no
// implicit padding (asserted below), so any byte pattern is valid.
unsafe impl aya::Pod for StatsKey {}
unsafe impl aya::Pod for PacketStats {}
unsafe impl aya::Pod for TcDeviceKey {}
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for FlowStats {}
unsafe impl aya::Pod for IfaceConfig {}
unsafe impl aya::Pod for Admission {}

const _: () = assert!(size_of::<Counter>() == 16);
const _: () = assert!(size_of::<StatsKey>() == 8);
const _: () = assert!(size_of::<PacketStats>() == 16 + 160 + 16 + 32 + 128 + 16 + 8);
const _: () = assert!(size_of::<TcDeviceKey>() == 12);
const _: () = assert!(size_of::<FlowKey>() == 44);
const _: () = assert!(size_of::<FlowStats>() == 56);
const _: () = assert!(size_of::<IfaceConfig>() == 8);
const _: () = assert!(size_of::<Admission>() == 32);
const _: () = assert!(size_of::<Event>() == 24);

pub mod detect;
pub mod sock;

/// The name of an IP protocol number in flows and alerts (the number
/// itself for the rest).
pub fn protocol_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        n => n.to_string(),
    }
}
