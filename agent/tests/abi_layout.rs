//! The C/Rust ABI cannot drift: every `#[repr(C)]` struct the agent
//! mirrors (agent/src/abi) is checked, field by field, against the layout
//! the compiler gave the C struct in the committed objects' BTF. A field
//! moved, resized, renamed or swapped on either side fails here, even when
//! the struct's size stays the same; `build/probes.sh --check` keeps the
//! objects equal to their sources. Needs no privileges.

use std::collections::HashMap;
use std::mem::{offset_of, size_of};

use netprobe::abi::detect::{AlertEvent, Block, DetectStats, LpmKey, Rule};
use netprobe::abi::sock::{Conn, LearnRecord, Owner, SockEvent, SockStats};
use netprobe::abi::{
    Admission, Counter, Event, FlowKey, FlowStats, IfaceConfig, PacketStats, StatsKey, TcDeviceKey,
};
use netprobe::probes;

/// A Rust mirror: its C name, size and fields (Rust name, C name, offset).
struct Mirror {
    rust: &'static str,
    c: &'static str,
    size: usize,
    fields: Vec<(&'static str, &'static str, usize)>,
}

/// `mirror!(Type, "np_type", [field, rust_field => "c_field", ...])`
macro_rules! mirror {
    ($t:ty, $c:literal, [$($f:ident $(=> $cf:literal)?),* $(,)?]) => {
        Mirror {
            rust: stringify!($t),
            c: $c,
            size: size_of::<$t>(),
            fields: vec![$((stringify!($f), mirror!(@c $f $($cf)?), offset_of!($t, $f))),*],
        }
    };
    (@c $f:ident) => { stringify!($f) };
    (@c $f:ident $cf:literal) => { $cf };
}

fn packet_mirrors() -> Vec<Mirror> {
    vec![
        mirror!(Counter, "np_counter", [packets, bytes]),
        mirror!(StatsKey, "np_stats_key", [ifindex, hook]),
        mirror!(
            PacketStats,
            "np_packet_stats",
            [total, l3, non_ip, tcp_flags, skip, flow_miss, flows_created]
        ),
        mirror!(
            TcDeviceKey,
            "np_tc_device_key",
            [ifindex, direction, stat_type]
        ),
        mirror!(
            FlowKey,
            "np_flow_key",
            [ifindex, saddr, daddr, sport, dport, family, proto, pad]
        ),
        mirror!(
            FlowStats,
            "np_flow_stats",
            [rx, tx, first_seen_ns, last_seen_ns, tcp_flags, flags]
        ),
        mirror!(IfaceConfig, "np_iface_config", [flags, pad]),
        mirror!(
            Admission,
            "np_admission",
            [tokens, last_refill_ns, refused, last_event_ns]
        ),
        mirror!(Event, "np_event", [kind => "type", ifindex, timestamp_ns, value]),
        mirror!(
            AlertEvent,
            "np_alert_event",
            [
                event_type => "type",
                ifindex,
                timestamp_ns,
                value,
                kind,
                family,
                proto,
                port,
                src,
                dst,
                window_ns,
                sources,
                own
            ]
        ),
        mirror!(DetectStats, "np_detect_stats", [c]),
        mirror!(LpmKey, "np_lpm_key", [prefixlen, addr]),
        mirror!(Rule, "np_rule", [hits, last_event_ns]),
        mirror!(Block, "np_block", [expires_ns, hits, kind, pad]),
    ]
}

fn socket_mirrors() -> Vec<Mirror> {
    vec![
        mirror!(SockStats, "np_sock_stats", [c]),
        mirror!(Owner, "np_owner", [cgroup_id, pid, source, pad, comm]),
        mirror!(LearnRecord, "np_learn_record", [inode, state, pad]),
        mirror!(
            Conn,
            "np_conn",
            [
                start_ns,
                established_ns,
                bytes_acked,
                bytes_received,
                updated_ns,
                netns,
                laddr,
                raddr,
                lport,
                rport,
                family,
                direction,
                state,
                flags,
                srtt_us,
                retrans,
                retrans_seen,
                owner
            ]
        ),
        mirror!(
            SockEvent,
            "np_sock_event",
            [
                kind => "type",
                family,
                direction,
                outcome,
                state,
                flags,
                lport,
                rport,
                pad,
                netns,
                error,
                srtt_us,
                retrans,
                pad2,
                laddr,
                raddr,
                timestamp_ns,
                start_ns,
                established_ns,
                bytes_acked,
                bytes_received,
                owner
            ]
        ),
    ]
}

/// A C struct as BTF records it: size, and members (name, byte offset).
#[derive(Debug)]
struct CStruct {
    size: usize,
    members: Vec<(String, usize)>,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes(b[o..o + 2].try_into().unwrap())
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// The bytes of the section `name` of a little-endian ELF64 object.
fn section<'a>(elf: &'a [u8], name: &str) -> &'a [u8] {
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF object");
    let (shoff, shentsize) = (u64_at(elf, 0x28) as usize, u16_at(elf, 0x3a) as usize);
    let (shnum, shstrndx) = (u16_at(elf, 0x3c) as usize, u16_at(elf, 0x3e) as usize);
    let header = |i: usize| &elf[shoff + i * shentsize..shoff + (i + 1) * shentsize];
    let strtab = header(shstrndx);
    let strs = &elf[u64_at(strtab, 24) as usize..][..u64_at(strtab, 32) as usize];
    for i in 0..shnum {
        let h = header(i);
        let n = u32_at(h, 0) as usize;
        let end = strs[n..].iter().position(|&c| c == 0).unwrap();
        if &strs[n..n + end] == name.as_bytes() {
            return &elf[u64_at(h, 24) as usize..][..u64_at(h, 32) as usize];
        }
    }
    panic!("no {name} section");
}

/// Every named struct in a BTF blob.
fn btf_structs(btf: &[u8]) -> HashMap<String, CStruct> {
    assert_eq!(u16_at(btf, 0), 0xeb9f, "BTF magic");
    let hdr_len = u32_at(btf, 4) as usize;
    let (type_off, type_len) = (u32_at(btf, 8) as usize, u32_at(btf, 12) as usize);
    let str_off = u32_at(btf, 16) as usize;
    let strs = &btf[hdr_len + str_off..];
    let name = |off: u32| {
        let s = &strs[off as usize..];
        String::from_utf8_lossy(&s[..s.iter().position(|&c| c == 0).unwrap()]).into_owned()
    };
    let types = &btf[hdr_len + type_off..hdr_len + type_off + type_len];
    let mut out = HashMap::new();
    let mut at = 0;
    while at < types.len() {
        let (name_off, info, size) = (
            u32_at(types, at),
            u32_at(types, at + 4),
            u32_at(types, at + 8),
        );
        let (vlen, kind, kind_flag) = (
            (info & 0xffff) as usize,
            (info >> 24) & 0x1f,
            info >> 31 != 0,
        );
        at += 12;
        // What follows each kind (linux/btf.h).
        let extra = match kind {
            1 | 14 | 17 => 4,        // INT, VAR, DECL_TAG
            3 => 12,                 // ARRAY
            4 | 5 | 15 => 12 * vlen, // STRUCT, UNION, DATASEC
            6 | 13 => 8 * vlen,      // ENUM, FUNC_PROTO
            19 => 12 * vlen,         // ENUM64
            _ => 0,
        };
        if kind == 4 && name_off != 0 {
            let members = (0..vlen)
                .map(|i| {
                    let m = at + i * 12;
                    let bits = u32_at(types, m + 8);
                    // With kind_flag, the low 24 bits are the bit offset.
                    let bits = if kind_flag { bits & 0xff_ffff } else { bits };
                    // A bitfield (kernel types only) has no byte offset.
                    let at = if bits % 8 == 0 {
                        bits as usize / 8
                    } else {
                        usize::MAX
                    };
                    (name(u32_at(types, m)), at)
                })
                .collect();
            out.insert(
                name(name_off),
                CStruct {
                    size: size as usize,
                    members,
                },
            );
        }
        at += extra;
    }
    out
}

fn check(object: &[u8], what: &str, mirrors: Vec<Mirror>) -> Vec<&'static str> {
    let structs = btf_structs(section(object, ".BTF"));
    let mut checked = Vec::new();
    for m in mirrors {
        let c = structs
            .get(m.c)
            .unwrap_or_else(|| panic!("{what}: struct {} is not in the object's BTF", m.c));
        let want: Vec<(&str, usize)> = m.fields.iter().map(|(_, c, o)| (*c, *o)).collect();
        let have: Vec<(&str, usize)> = c.members.iter().map(|(n, o)| (n.as_str(), *o)).collect();
        assert_eq!(
            have, want,
            "{what}: struct {} (C, BTF) and {} (Rust) differ: (field, offset) pairs",
            m.c, m.rust
        );
        assert_eq!(
            c.size, m.size,
            "{what}: struct {} is {} bytes, {} is {}",
            m.c, c.size, m.rust, m.size
        );
        checked.push(m.rust);
    }
    checked
}

#[test]
fn every_abi_struct_matches_the_objects_btf() {
    let mut checked = check(
        probes::netprobe_object(),
        "netprobe.bpf.o",
        packet_mirrors(),
    );
    checked.extend(check(
        probes::socket_object(),
        "socket.bpf.o",
        socket_mirrors(),
    ));

    // And no mirror is left out: every #[repr(C)] struct under agent/src/abi.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/abi");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut repr_c = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("#[repr(C") {
                repr_c = true;
            } else if let Some(rest) = line.strip_prefix("pub struct ").filter(|_| repr_c) {
                let name = rest.split([' ', '{', '(']).next().unwrap();
                assert!(
                    checked.contains(&name),
                    "#[repr(C)] struct {name} (agent/src/abi) has no layout check here"
                );
                repr_c = false;
            } else if !line.starts_with("#[") && !line.starts_with("///") {
                repr_c = false;
            }
        }
    }
}
