//! Crafts Ethernet frames for the kernel tests and the bench: VLAN and QinQ
//! tags, IPv4 (options, fragments), IPv6 (extension-header chains), TCP,
//! UDP, ICMP and ICMPv6. Checksums are left zero: the probes never check
//! them. Each frame records where its headers sit ([`Layer`]), so a test can
//! cut it inside any header and know which one it cut.
//!
//! ```
//! use netprobe::packet::{Frame, tcp};
//! let f = Frame::new()
//!     .vlan(100)
//!     .ipv4([10, 0, 0, 1], [10, 0, 0, 2])
//!     .tcp(1234, 80, tcp::SYN)
//!     .payload(10)
//!     .build();
//! assert_eq!(f.bytes.len(), 14 + 4 + 20 + 20 + 10);
//! ```

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;

pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_GRE: u8 = 47;
pub const IPPROTO_ESP: u8 = 50;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_NONE: u8 = 59;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// TCP flag bits (byte 13 of the header).
pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// An IPv6 extension header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtHdr {
    /// Hop-by-hop options, `len8` extra 8-byte units (hdrlen field).
    HopByHop { len8: u8 },
    /// Routing header, `len8` extra 8-byte units.
    Routing { len8: u8 },
    /// Destination options, `len8` extra 8-byte units.
    DestOpts { len8: u8 },
    /// Fragment header: offset in 8-byte units, more-fragments flag.
    Fragment { offset: u16, more: bool },
    /// Authentication header, `len4` = payload length field ((len + 2) * 4 bytes).
    Ah { len4: u8 },
}

impl ExtHdr {
    /// The next-header value that names this header.
    pub fn proto(self) -> u8 {
        match self {
            ExtHdr::HopByHop { .. } => IPPROTO_HOPOPTS,
            ExtHdr::Routing { .. } => IPPROTO_ROUTING,
            ExtHdr::DestOpts { .. } => IPPROTO_DSTOPTS,
            ExtHdr::Fragment { .. } => IPPROTO_FRAGMENT,
            ExtHdr::Ah { .. } => IPPROTO_AH,
        }
    }

    /// Its length in bytes.
    pub fn size(self) -> usize {
        match self {
            ExtHdr::HopByHop { len8 } | ExtHdr::Routing { len8 } | ExtHdr::DestOpts { len8 } => {
                (len8 as usize + 1) * 8
            }
            ExtHdr::Fragment { .. } => 8,
            ExtHdr::Ah { len4 } => (len4 as usize + 2) * 4,
        }
    }
}

/// What a header in a built frame is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Ethernet,
    Vlan,
    /// IPv4 header including options.
    Ipv4,
    Ipv6,
    Ext(ExtHdr),
    Tcp,
    Udp,
    Icmp,
    Icmpv6,
    /// Bytes after the headers (payload, or a non-IP body such as ARP).
    Payload,
}

/// One header of a built frame: bytes `start..start + len`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layer {
    pub kind: LayerKind,
    pub start: usize,
    pub len: usize,
}

impl Layer {
    pub fn end(&self) -> usize {
        self.start + self.len
    }
}

/// A built frame and where its headers are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Built {
    pub bytes: Vec<u8>,
    pub layers: Vec<Layer>,
}

#[derive(Clone, Debug)]
enum L3 {
    None,
    Ipv4 {
        src: [u8; 4],
        dst: [u8; 4],
        options: Vec<u8>,
        frag_offset: u16,
        more_fragments: bool,
        ihl: Option<u8>,
        version: u8,
        proto: Option<u8>,
    },
    Ipv6 {
        src: [u8; 16],
        dst: [u8; 16],
        ext: Vec<ExtHdr>,
        version: u8,
        proto: Option<u8>,
    },
}

#[derive(Clone, Debug)]
enum L4 {
    None,
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
        doff: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        ty: u8,
        code: u8,
    },
    Icmpv6 {
        ty: u8,
        code: u8,
    },
}

/// A frame under construction. Layers are added outside in; `build`
/// writes them.
#[derive(Clone, Debug)]
pub struct Frame {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    tags: Vec<(u16, u16)>,
    ethertype: Option<u16>,
    l3: L3,
    l4: L4,
    payload: Vec<u8>,
}

impl Default for Frame {
    fn default() -> Self {
        Frame::new()
    }
}

impl Frame {
    pub fn new() -> Self {
        Frame {
            dst_mac: [0x02, 0, 0, 0, 0, 0x02],
            src_mac: [0x02, 0, 0, 0, 0, 0x01],
            tags: Vec::new(),
            ethertype: None,
            l3: L3::None,
            l4: L4::None,
            payload: Vec::new(),
        }
    }

    /// Sets the destination MAC (default 02:00:00:00:00:02, unicast).
    pub fn dst_mac(mut self, mac: [u8; 6]) -> Self {
        self.dst_mac = mac;
        self
    }

    /// Adds an 802.1Q tag (after any tags already added).
    pub fn vlan(self, vid: u16) -> Self {
        self.tag(ETH_P_8021Q, vid)
    }

    /// Adds an 802.1ad (QinQ service) tag.
    pub fn qinq(self, vid: u16) -> Self {
        self.tag(ETH_P_8021AD, vid)
    }

    /// Adds a tag with any TPID.
    pub fn tag(mut self, tpid: u16, vid: u16) -> Self {
        self.tags.push((tpid, vid & 0x0fff));
        self
    }

    /// Sets the innermost ethertype, overriding the one the L3 implies
    /// (a frame without L3 and without this gets 0x88b5, local experimental).
    pub fn ethertype(mut self, ethertype: u16) -> Self {
        self.ethertype = Some(ethertype);
        self
    }

    /// An ARP request body (ethertype 0x0806, 28 bytes).
    pub fn arp(self) -> Self {
        let mut body = vec![0, 1, 0x08, 0, 6, 4, 0, 1];
        body.extend_from_slice(&[0x02, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        self.ethertype(ETH_P_ARP).payload_bytes(&body)
    }

    pub fn ipv4(mut self, src: [u8; 4], dst: [u8; 4]) -> Self {
        self.l3 = L3::Ipv4 {
            src,
            dst,
            options: Vec::new(),
            frag_offset: 0,
            more_fragments: false,
            ihl: None,
            version: 4,
            proto: None,
        };
        self
    }

    pub fn ipv6(mut self, src: [u8; 16], dst: [u8; 16]) -> Self {
        self.l3 = L3::Ipv6 {
            src,
            dst,
            ext: Vec::new(),
            version: 6,
            proto: None,
        };
        self
    }

    /// IPv4 options (padded with zeros, end-of-list, to 4 bytes).
    pub fn ipv4_options(mut self, opts: &[u8]) -> Self {
        if let L3::Ipv4 { options, .. } = &mut self.l3 {
            options.extend_from_slice(opts);
            while options.len() % 4 != 0 {
                options.push(0);
            }
        }
        self
    }

    /// IPv4 fragment fields: offset in 8-byte units, more-fragments flag.
    pub fn ipv4_fragment(mut self, offset: u16, more: bool) -> Self {
        if let L3::Ipv4 {
            frag_offset,
            more_fragments,
            ..
        } = &mut self.l3
        {
            *frag_offset = offset & 0x1fff;
            *more_fragments = more;
        }
        self
    }

    /// Writes this IHL instead of the real one (the header stays 20 bytes
    /// plus options).
    pub fn ipv4_ihl(mut self, value: u8) -> Self {
        if let L3::Ipv4 { ihl, .. } = &mut self.l3 {
            *ihl = Some(value & 0x0f);
        }
        self
    }

    /// Writes this IP version nibble instead of 4 or 6.
    pub fn ip_version(mut self, value: u8) -> Self {
        match &mut self.l3 {
            L3::Ipv4 { version, .. } | L3::Ipv6 { version, .. } => *version = value & 0x0f,
            L3::None => {}
        }
        self
    }

    /// The IP protocol / last next-header, for an L4 this builder does not
    /// write (e.g. GRE, ESP): the bytes after the IP header are payload.
    pub fn ip_proto(mut self, value: u8) -> Self {
        match &mut self.l3 {
            L3::Ipv4 { proto, .. } | L3::Ipv6 { proto, .. } => *proto = Some(value),
            L3::None => {}
        }
        self
    }

    /// Appends an IPv6 extension header to the chain.
    pub fn ipv6_ext(mut self, h: ExtHdr) -> Self {
        if let L3::Ipv6 { ext, .. } = &mut self.l3 {
            ext.push(h);
        }
        self
    }

    pub fn tcp(mut self, sport: u16, dport: u16, flags: u8) -> Self {
        self.l4 = L4::Tcp {
            sport,
            dport,
            flags,
            doff: 5,
        };
        self
    }

    /// Writes this TCP data offset (the header stays 20 bytes).
    pub fn tcp_doff(mut self, value: u8) -> Self {
        if let L4::Tcp { doff, .. } = &mut self.l4 {
            *doff = value & 0x0f;
        }
        self
    }

    pub fn udp(mut self, sport: u16, dport: u16) -> Self {
        self.l4 = L4::Udp { sport, dport };
        self
    }

    pub fn icmp(mut self, ty: u8, code: u8) -> Self {
        self.l4 = L4::Icmp { ty, code };
        self
    }

    pub fn icmpv6(mut self, ty: u8, code: u8) -> Self {
        self.l4 = L4::Icmpv6 { ty, code };
        self
    }

    /// Appends `len` payload bytes (a counting pattern).
    pub fn payload(mut self, len: usize) -> Self {
        self.payload.extend((0..len).map(|i| i as u8));
        self
    }

    pub fn payload_bytes(mut self, bytes: &[u8]) -> Self {
        self.payload.extend_from_slice(bytes);
        self
    }

    fn l4_proto(&self) -> Option<u8> {
        match self.l4 {
            L4::None => None,
            L4::Tcp { .. } => Some(IPPROTO_TCP),
            L4::Udp { .. } => Some(IPPROTO_UDP),
            L4::Icmp { .. } => Some(IPPROTO_ICMP),
            L4::Icmpv6 { .. } => Some(IPPROTO_ICMPV6),
        }
    }

    fn l4_bytes(&self) -> (Option<LayerKind>, Vec<u8>) {
        match self.l4 {
            L4::None => (None, Vec::new()),
            L4::Tcp {
                sport,
                dport,
                flags,
                doff,
            } => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                h[4..8].copy_from_slice(&1u32.to_be_bytes()); // seq
                h[12] = doff << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&64240u16.to_be_bytes()); // window
                (Some(LayerKind::Tcp), h)
            }
            L4::Udp { sport, dport } => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sport.to_be_bytes());
                h[2..4].copy_from_slice(&dport.to_be_bytes());
                let len = (8 + self.payload.len()) as u16;
                h[4..6].copy_from_slice(&len.to_be_bytes());
                (Some(LayerKind::Udp), h)
            }
            L4::Icmp { ty, code } => (Some(LayerKind::Icmp), vec![ty, code, 0, 0, 0, 1, 0, 1]),
            L4::Icmpv6 { ty, code } => (Some(LayerKind::Icmpv6), vec![ty, code, 0, 0, 0, 1, 0, 1]),
        }
    }

    /// Writes the frame.
    pub fn build(&self) -> Built {
        let mut b = Vec::with_capacity(128);
        let mut layers = Vec::new();
        let mut push = |b: &mut Vec<u8>, kind: LayerKind, bytes: &[u8]| {
            layers.push(Layer {
                kind,
                start: b.len(),
                len: bytes.len(),
            });
            b.extend_from_slice(bytes);
        };

        let (l4_kind, l4) = self.l4_bytes();
        let l4_len = l4.len() + self.payload.len();

        let inner_type = self.ethertype.unwrap_or(match self.l3 {
            L3::None => 0x88b5,
            L3::Ipv4 { .. } => ETH_P_IP,
            L3::Ipv6 { .. } => ETH_P_IPV6,
        });
        // Each ethertype field names what follows it.
        let mut types: Vec<u16> = self.tags.iter().map(|t| t.0).collect();
        types.push(inner_type);

        let mut eth = Vec::with_capacity(14);
        eth.extend_from_slice(&self.dst_mac);
        eth.extend_from_slice(&self.src_mac);
        eth.extend_from_slice(&types[0].to_be_bytes());
        push(&mut b, LayerKind::Ethernet, &eth);
        for (i, (_, vid)) in self.tags.iter().enumerate() {
            let mut t = Vec::with_capacity(4);
            t.extend_from_slice(&vid.to_be_bytes());
            t.extend_from_slice(&types[i + 1].to_be_bytes());
            push(&mut b, LayerKind::Vlan, &t);
        }

        match &self.l3 {
            L3::None => {}
            L3::Ipv4 {
                src,
                dst,
                options,
                frag_offset,
                more_fragments,
                ihl,
                version,
                proto,
            } => {
                let hlen = 20 + options.len();
                let mut h = vec![0u8; 20];
                let ihl = ihl.unwrap_or((hlen / 4) as u8);
                h[0] = version << 4 | ihl;
                let total = (hlen + l4_len) as u16;
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
                let frag = frag_offset | if *more_fragments { 0x2000 } else { 0 };
                h[6..8].copy_from_slice(&frag.to_be_bytes());
                h[8] = 64;
                h[9] = proto.or(self.l4_proto()).unwrap_or(IPPROTO_NONE);
                h[12..16].copy_from_slice(src);
                h[16..20].copy_from_slice(dst);
                h.extend_from_slice(options);
                push(&mut b, LayerKind::Ipv4, &h);
            }
            L3::Ipv6 {
                src,
                dst,
                ext,
                version,
                proto,
            } => {
                let last = proto.or(self.l4_proto()).unwrap_or(IPPROTO_NONE);
                // Next-header values: the fixed header names ext[0], ...
                let mut next: Vec<u8> = ext.iter().map(|e| e.proto()).collect();
                next.push(last);
                let ext_len: usize = ext.iter().map(|e| e.size()).sum();
                let mut h = vec![0u8; 40];
                h[0] = version << 4;
                h[4..6].copy_from_slice(&((ext_len + l4_len) as u16).to_be_bytes());
                h[6] = next[0];
                h[7] = 64;
                h[8..24].copy_from_slice(src);
                h[24..40].copy_from_slice(dst);
                push(&mut b, LayerKind::Ipv6, &h);
                for (i, e) in ext.iter().enumerate() {
                    let mut x = vec![0u8; e.size()];
                    x[0] = next[i + 1];
                    match *e {
                        ExtHdr::HopByHop { len8 }
                        | ExtHdr::Routing { len8 }
                        | ExtHdr::DestOpts { len8 } => {
                            x[1] = len8;
                            if matches!(e, ExtHdr::HopByHop { .. } | ExtHdr::DestOpts { .. }) {
                                // One PadN option filling the rest.
                                x[2] = 1;
                                x[3] = (e.size() - 4) as u8;
                            }
                        }
                        ExtHdr::Fragment { offset, more } => {
                            let v = (offset << 3) | u16::from(more);
                            x[2..4].copy_from_slice(&v.to_be_bytes());
                            x[4..8].copy_from_slice(&0xabcdu32.to_be_bytes());
                        }
                        ExtHdr::Ah { len4 } => x[1] = len4,
                    }
                    push(&mut b, LayerKind::Ext(*e), &x);
                }
            }
        }

        if let Some(kind) = l4_kind {
            push(&mut b, kind, &l4);
        }
        if !self.payload.is_empty() {
            push(&mut b, LayerKind::Payload, &self.payload);
        }
        Built { bytes: b, layers }
    }

    /// Shorthand for `build().bytes`.
    pub fn bytes(&self) -> Vec<u8> {
        self.build().bytes
    }
}

/// An IPv6 address from eight 16-bit groups.
pub fn ipv6_addr(groups: [u16; 8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    for (i, g) in groups.iter().enumerate() {
        a[i * 2..i * 2 + 2].copy_from_slice(&g.to_be_bytes());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_tcp_layout() {
        let f = Frame::new()
            .vlan(5)
            .ipv4([1, 2, 3, 4], [5, 6, 7, 8])
            .tcp(1, 2, tcp::SYN)
            .build();
        assert_eq!(f.bytes.len(), 14 + 4 + 20 + 20);
        assert_eq!(&f.bytes[12..14], &ETH_P_8021Q.to_be_bytes());
        assert_eq!(&f.bytes[16..18], &ETH_P_IP.to_be_bytes());
        assert_eq!(f.bytes[18], 0x45);
        assert_eq!(f.bytes[18 + 9], IPPROTO_TCP);
        assert_eq!(f.bytes[38 + 13], tcp::SYN);
        let kinds: Vec<_> = f.layers.iter().map(|l| l.kind).collect();
        assert_eq!(
            kinds,
            [
                LayerKind::Ethernet,
                LayerKind::Vlan,
                LayerKind::Ipv4,
                LayerKind::Tcp
            ]
        );
    }

    #[test]
    fn ipv6_chain_next_headers() {
        let f = Frame::new()
            .ipv6(
                ipv6_addr([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
                ipv6_addr([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]),
            )
            .ipv6_ext(ExtHdr::HopByHop { len8: 0 })
            .ipv6_ext(ExtHdr::Fragment {
                offset: 0,
                more: true,
            })
            .udp(53, 53)
            .build();
        assert_eq!(f.bytes[14 + 6], IPPROTO_HOPOPTS);
        assert_eq!(f.bytes[54], IPPROTO_FRAGMENT);
        assert_eq!(f.bytes[62], IPPROTO_UDP);
        assert_eq!(f.bytes.len(), 14 + 40 + 8 + 8 + 8);
    }

    #[test]
    fn ipv4_options_and_fragment() {
        let f = Frame::new()
            .ipv4([1; 4], [2; 4])
            .ipv4_options(&[1, 1, 1])
            .ipv4_fragment(3, true)
            .build();
        assert_eq!(f.bytes[14], 0x46);
        assert_eq!(u16::from_be_bytes([f.bytes[20], f.bytes[21]]), 0x2003);
    }
}
