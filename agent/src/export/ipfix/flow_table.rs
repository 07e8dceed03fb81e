//! The IPFIX exporter's input: the flow table as of one read, in plain
//! types the agent fills from its snapshot (or straight from the ABI's
//! [`crate::abi::FlowKey`]/[`crate::abi::FlowStats`] with
//! [`FlowEntry::from_abi`]).

use std::net::IpAddr;

/// TCP flag bits as the probe ORs them into `tcp_flags`.
pub const TCP_FIN: u8 = 0x01;
pub const TCP_RST: u8 = 0x04;

/// One flow-table key: a 5-tuple as seen on one interface. Not
/// canonicalised: the two directions of a connection are two keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub ifindex: u32,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// For ICMP and ICMPv6, `type << 8 | code` (the probe's encoding); the
    /// exporter sends it as `icmpTypeCodeIPv4/IPv6` with ports 0.
    pub src_port: u16,
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// Cumulative counters of one flow-table entry since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowCounters {
    /// Received on the key's interface (XDP, or TC ingress).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Sent on the key's interface (TC egress).
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Boot-time ns (CLOCK_BOOTTIME) of the first and last packet.
    pub first_seen_ns: u64,
    pub last_seen_ns: u64,
    /// OR of the TCP flag bytes seen (FIN 0x01, SYN 0x02, RST 0x04, ...).
    pub tcp_flags: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    pub key: FlowKey,
    pub counters: FlowCounters,
}

impl FlowEntry {
    /// From the probes' flow_stats key and value.
    pub fn from_abi(k: &crate::abi::FlowKey, v: &crate::abi::FlowStats) -> FlowEntry {
        FlowEntry {
            key: FlowKey {
                ifindex: k.ifindex,
                src: k.src_ip(),
                dst: k.dst_ip(),
                src_port: k.sport,
                dst_port: k.dport,
                proto: k.proto,
            },
            counters: FlowCounters {
                rx_packets: v.rx.packets,
                rx_bytes: v.rx.bytes,
                tx_packets: v.tx.packets,
                tx_bytes: v.tx.bytes,
                first_seen_ns: v.first_seen_ns,
                last_seen_ns: v.last_seen_ns,
                tcp_flags: v.tcp_flags as u8,
            },
        }
    }
}

/// Which way packets crossed the interface: IPFIX `flowDirection`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    Ingress = 0,
    Egress = 1,
}

/// Packets (and bytes, where the probe counts them) that crossed an
/// interface but are in no flow entry: the flood guard did not admit a new
/// flow, or the table update failed. Cumulative since the probes loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unattributed {
    pub ifindex: u32,
    pub direction: Direction,
    pub packets: u64,
    /// `None` while the probe counts only packets (np_packet_stats.flow_miss
    /// has no bytes today).
    pub bytes: Option<u64>,
}

/// The whole flow table as of one read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlowTable {
    /// Boot-time ns (CLOCK_BOOTTIME) when the table was read.
    pub read_at_boot_ns: u64,
    /// Unix ns minus boot-time ns at that read: added to a boot-time stamp
    /// it gives Unix time.
    pub boot_to_unix_ns: i64,
    pub flows: Vec<FlowEntry>,
    pub unattributed: Vec<Unattributed>,
}

impl FlowTable {
    /// Unix milliseconds of a boot-time stamp.
    pub fn unix_ms(&self, boot_ns: u64) -> u64 {
        ((boot_ns as i128 + self.boot_to_unix_ns as i128).max(0) / 1_000_000) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_abi_keeps_addresses_ports_and_counters() {
        let mut k = crate::abi::FlowKey {
            ifindex: 7,
            sport: 40000,
            dport: 443,
            family: crate::abi::FAMILY_IPV4,
            proto: 6,
            ..Default::default()
        };
        k.saddr[0] = u32::from_ne_bytes([198, 18, 0, 1]);
        k.daddr[0] = u32::from_ne_bytes([198, 18, 0, 2]);
        let v = crate::abi::FlowStats {
            rx: crate::abi::Counter {
                packets: 3,
                bytes: 300,
            },
            tx: crate::abi::Counter {
                packets: 1,
                bytes: 60,
            },
            first_seen_ns: 10,
            last_seen_ns: 20,
            tcp_flags: 0x12,
            flags: 0,
        };
        let e = FlowEntry::from_abi(&k, &v);
        assert_eq!(e.key.src, "198.18.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(e.key.dst, "198.18.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(
            (e.key.src_port, e.key.dst_port, e.key.proto),
            (40000, 443, 6)
        );
        assert_eq!((e.counters.rx_bytes, e.counters.tx_packets), (300, 1));
        assert_eq!(e.counters.tcp_flags, 0x12);
        let t = FlowTable {
            boot_to_unix_ns: 1_700_000_000_000_000_000,
            ..Default::default()
        };
        assert_eq!(t.unix_ms(5_000_000), 1_700_000_000_005);
    }
}
