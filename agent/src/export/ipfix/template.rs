//! The exporter's templates (RFC 7011 section 3.4) with IANA Information
//! Elements, and how one record is written under each.
//!
//! - 256: IPv4 flows, 257: IPv6 flows (one record per flow-table entry and
//!   direction, see `cache`);
//! - 258/259: options records (section 3.4.2.2) of packets and bytes that
//!   crossed an interface without being attributed to any flow, scoped by
//!   observation domain and interface; 259 is for probes that count packets
//!   only. `ignoredPacketTotalCount`/`ignoredOctetTotalCount` are the
//!   metering-reliability IEs of RFC 7011 section 4.2.
//!
//! No VLAN ids: the flow key (`struct np_flow_key`) has none today.

use std::net::IpAddr;

use super::flow_table::{Direction, Unattributed};

/// IANA IPFIX Information Element ids used here.
pub mod ie {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const TCP_CONTROL_BITS: u16 = 6;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const INGRESS_INTERFACE: u16 = 10;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const EGRESS_INTERFACE: u16 = 14;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    pub const ICMP_TYPE_CODE_IPV4: u16 = 32;
    pub const FLOW_DIRECTION: u16 = 61;
    pub const FLOW_END_REASON: u16 = 136;
    pub const ICMP_TYPE_CODE_IPV6: u16 = 139;
    pub const OBSERVATION_DOMAIN_ID: u16 = 149;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
    pub const IGNORED_PACKET_TOTAL_COUNT: u16 = 164;
    pub const IGNORED_OCTET_TOTAL_COUNT: u16 = 165;
}

pub const TEMPLATE_IPV4: u16 = 256;
pub const TEMPLATE_IPV6: u16 = 257;
pub const TEMPLATE_UNATTRIBUTED: u16 = 258;
pub const TEMPLATE_UNATTRIBUTED_PACKETS: u16 = 259;

/// Set ids (section 3.3.2).
pub const SET_TEMPLATE: u16 = 2;
pub const SET_OPTIONS_TEMPLATE: u16 = 3;

/// Templates declared by [`template_sets`].
pub const TEMPLATE_COUNT: u64 = 4;

/// IPFIX `flowEndReason` (IANA registry): why a record was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndReason {
    /// No packet for the idle timeout.
    IdleTimeout = 1,
    /// Still active after the active timeout: a periodic report.
    ActiveTimeout = 2,
    /// TCP FIN or RST seen and the flow went quiet.
    EndOfFlow = 3,
    /// The exporter stopped (agent shutdown).
    ForcedEnd = 4,
    /// The entry left the flow table before going idle (table full).
    LackOfResources = 5,
}

impl EndReason {
    pub const ALL: [EndReason; 5] = [
        EndReason::IdleTimeout,
        EndReason::ActiveTimeout,
        EndReason::EndOfFlow,
        EndReason::ForcedEnd,
        EndReason::LackOfResources,
    ];

    /// Metric label value.
    pub fn name(self) -> &'static str {
        match self {
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::ActiveTimeout => "active_timeout",
            EndReason::EndOfFlow => "end_of_flow",
            EndReason::ForcedEnd => "forced_end",
            EndReason::LackOfResources => "evicted",
        }
    }
}

/// One exported flow record: one direction of one flow-table entry over
/// one reporting period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub ifindex: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub proto: u8,
    pub direction: Direction,
    pub packets: u64,
    pub bytes: u64,
    /// Unix ms of the first and last packet of the period.
    pub start_ms: u64,
    pub end_ms: u64,
    pub tcp_flags: u8,
    pub end_reason: EndReason,
}

/// (IE id, length) lists of the templates.
const FLOW_V4: [(u16, u16); 15] = flow_fields(
    ie::SOURCE_IPV4_ADDRESS,
    ie::DESTINATION_IPV4_ADDRESS,
    4,
    ie::ICMP_TYPE_CODE_IPV4,
);
const FLOW_V6: [(u16, u16); 15] = flow_fields(
    ie::SOURCE_IPV6_ADDRESS,
    ie::DESTINATION_IPV6_ADDRESS,
    16,
    ie::ICMP_TYPE_CODE_IPV6,
);

const fn flow_fields(src: u16, dst: u16, addr_len: u16, icmp: u16) -> [(u16, u16); 15] {
    [
        (src, addr_len),
        (dst, addr_len),
        (ie::SOURCE_TRANSPORT_PORT, 2),
        (ie::DESTINATION_TRANSPORT_PORT, 2),
        (ie::PROTOCOL_IDENTIFIER, 1),
        (icmp, 2),
        (ie::TCP_CONTROL_BITS, 2),
        (ie::INGRESS_INTERFACE, 4),
        (ie::EGRESS_INTERFACE, 4),
        (ie::FLOW_DIRECTION, 1),
        (ie::OCTET_DELTA_COUNT, 8),
        (ie::PACKET_DELTA_COUNT, 8),
        (ie::FLOW_START_MILLISECONDS, 8),
        (ie::FLOW_END_MILLISECONDS, 8),
        (ie::FLOW_END_REASON, 1),
    ]
}

const UNATTRIBUTED_SCOPE: [(u16, u16); 3] = [
    (ie::OBSERVATION_DOMAIN_ID, 4),
    (ie::INGRESS_INTERFACE, 4),
    (ie::EGRESS_INTERFACE, 4),
];
const UNATTRIBUTED: [(u16, u16); 5] = [
    UNATTRIBUTED_SCOPE[0],
    UNATTRIBUTED_SCOPE[1],
    UNATTRIBUTED_SCOPE[2],
    (ie::IGNORED_PACKET_TOTAL_COUNT, 8),
    (ie::IGNORED_OCTET_TOTAL_COUNT, 8),
];

const fn record_len(fields: &[(u16, u16)]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < fields.len() {
        n += fields[i].1 as usize;
        i += 1;
    }
    n
}

pub const FLOW_V4_LEN: usize = record_len(&FLOW_V4);
pub const FLOW_V6_LEN: usize = record_len(&FLOW_V6);
pub const UNATTRIBUTED_LEN: usize = record_len(&UNATTRIBUTED);
pub const UNATTRIBUTED_PACKETS_LEN: usize = UNATTRIBUTED_LEN - 8;

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_fields(out: &mut Vec<u8>, fields: &[(u16, u16)]) {
    for (id, len) in fields {
        put16(out, *id);
        put16(out, *len);
    }
}

/// The Template Set and Options Template Set that declare every template.
pub fn template_sets() -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let start = out.len();
    put16(&mut out, SET_TEMPLATE);
    put16(&mut out, 0);
    for (id, fields) in [(TEMPLATE_IPV4, &FLOW_V4), (TEMPLATE_IPV6, &FLOW_V6)] {
        put16(&mut out, id);
        put16(&mut out, fields.len() as u16);
        put_fields(&mut out, fields);
    }
    let len = (out.len() - start) as u16;
    out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());

    // One Options Template Set per template: pmacct 1.7 (nfacctd) misreads
    // the second of two options templates that share a set (it steps over
    // a 26-byte template as if it were 28 bytes long).
    for (id, n) in [
        (TEMPLATE_UNATTRIBUTED, UNATTRIBUTED.len()),
        (TEMPLATE_UNATTRIBUTED_PACKETS, UNATTRIBUTED.len() - 1),
    ] {
        let start = out.len();
        put16(&mut out, SET_OPTIONS_TEMPLATE);
        put16(&mut out, 0);
        put16(&mut out, id);
        put16(&mut out, n as u16);
        put16(&mut out, UNATTRIBUTED_SCOPE.len() as u16);
        put_fields(&mut out, &UNATTRIBUTED[..n]);
        let len = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    out
}

/// The template a flow record goes under, and its length there.
pub fn flow_template(r: &FlowRecord) -> (u16, usize) {
    match r.src {
        IpAddr::V4(_) => (TEMPLATE_IPV4, FLOW_V4_LEN),
        IpAddr::V6(_) => (TEMPLATE_IPV6, FLOW_V6_LEN),
    }
}

fn is_icmp(proto: u8) -> bool {
    proto == 1 || proto == 58
}

/// Writes a flow record under its template (see [`flow_template`]).
pub fn put_flow(out: &mut Vec<u8>, r: &FlowRecord) {
    for a in [r.src, r.dst] {
        match a {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    let icmp = is_icmp(r.proto);
    put16(out, if icmp { 0 } else { r.src_port });
    put16(out, if icmp { 0 } else { r.dst_port });
    out.push(r.proto);
    put16(out, if icmp { r.src_port } else { 0 });
    put16(out, r.tcp_flags as u16);
    let (ingress, egress) = match r.direction {
        Direction::Ingress => (r.ifindex, 0),
        Direction::Egress => (0, r.ifindex),
    };
    out.extend_from_slice(&ingress.to_be_bytes());
    out.extend_from_slice(&egress.to_be_bytes());
    out.push(r.direction as u8);
    out.extend_from_slice(&r.bytes.to_be_bytes());
    out.extend_from_slice(&r.packets.to_be_bytes());
    out.extend_from_slice(&r.start_ms.to_be_bytes());
    out.extend_from_slice(&r.end_ms.to_be_bytes());
    out.push(r.end_reason as u8);
}

/// The template an options record goes under, and its length there.
pub fn unattributed_template(u: &Unattributed) -> (u16, usize) {
    match u.bytes {
        Some(_) => (TEMPLATE_UNATTRIBUTED, UNATTRIBUTED_LEN),
        None => (TEMPLATE_UNATTRIBUTED_PACKETS, UNATTRIBUTED_PACKETS_LEN),
    }
}

pub fn put_unattributed(out: &mut Vec<u8>, domain_id: u32, u: &Unattributed) {
    let (ingress, egress) = match u.direction {
        Direction::Ingress => (u.ifindex, 0),
        Direction::Egress => (0, u.ifindex),
    };
    for v in [domain_id, ingress, egress] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&u.packets.to_be_bytes());
    if let Some(b) = u.bytes {
        out.extend_from_slice(&b.to_be_bytes());
    }
}
