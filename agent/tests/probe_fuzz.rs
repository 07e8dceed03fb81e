//! Fuzzing the probes: random and mutated frames through the real
//! `netprobe.bpf.o` with `BPF_PROG_TEST_RUN`, a few thousand per program,
//! from a fixed seed (so a failure replays; `NETPROBE_FUZZ_SEED` and
//! `NETPROBE_FUZZ_FRAMES` change it).
//!
//! Every frame must pass (XDP_PASS, TC_ACT_UNSPEC) and leave unchanged.
//! Afterwards the counters must add up to exactly what was fed: packets
//! and bytes equal the frames the kernel ran; every packet lands in
//! exactly one class (an IP family and L4 protocol, non-IP, or an early
//! skip reason); the flow table holds every IP packet that was not
//! counted as a flow miss; TC's device counters match too.
//!
//! The kernel refuses some frames before the program runs (EINVAL): any
//! frame under 14 bytes, and on 6.18 TC an untagged IPv4 frame under
//! 14 + 20 bytes or IPv6 under 14 + 40. Those are counted apart, must be
//! exactly the frames predicted, and must change no counter.
//!
//! Needs root (CAP_BPF and CAP_NET_ADMIN), like `kernel_probes.rs`.

use aya::maps::{HashMap, MapData};
use netprobe::abi::{self, skip, Counter, FlowKey, FlowStats};
use netprobe::packet::{self, tcp, ExtHdr, Frame};
use netprobe::probes;
use netprobe::testrun::{test_run, TestRun, TestRunError, MIN_PACKET_LEN};

mod common;
use common::object::{LoadOptions, Probes};
use common::{Prog, LO};

const DEFAULT_SEED: u64 = 0x6e65_7470_726f_6265; // "netprobe"
const DEFAULT_FRAMES: usize = 3000;

/// The object with the flood guard off, so every IP packet may create a
/// flow, and all three programs loaded.
fn load() -> Probes {
    Probes::load_with(LoadOptions {
        admit_rate: Some(0),
        ..Default::default()
    })
}

/// (entries, packets, bytes) of the flow table in one direction.
fn flow_totals(p: &Probes, tx: bool) -> (u64, u64, u64) {
    let m: HashMap<&MapData, FlowKey, FlowStats> =
        HashMap::try_from(p.map(probes::MAP_FLOW_STATS)).unwrap();
    let (mut n, mut p, mut b) = (0, 0, 0);
    for item in m.iter() {
        let (k, v) = item.expect("iterating flow_stats");
        assert_eq!(k.ifindex, LO);
        let c = if tx { v.tx } else { v.rx };
        n += 1;
        p += c.packets;
        b += c.bytes;
    }
    (n, p, b)
}

/// Deterministic xorshift64*.
struct Rng(u64);

impl Rng {
    /// Seeds through splitmix64, so nearby seeds give unrelated streams.
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)).max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A well-formed frame with random layers: tags, IPv4 (options, IHL,
/// fragments) or IPv6 (extension-header chains), any L4, or non-IP.
fn random_frame(r: &mut Rng) -> Vec<u8> {
    let mut f = Frame::new();
    for _ in 0..[0, 0, 0, 1, 1, 2, 3][r.below(7)] {
        f = if r.chance(30) {
            f.qinq(r.below(4096) as u16)
        } else {
            f.vlan(r.below(4096) as u16)
        };
    }
    let v4 = |r: &mut Rng| {
        [
            r.next() as u8,
            r.next() as u8,
            r.next() as u8,
            r.next() as u8,
        ]
    };
    match r.below(10) {
        0 => return f.arp().build().bytes,
        1 => {
            return f
                .ethertype(r.next() as u16)
                .payload(r.below(64))
                .build()
                .bytes
        }
        2..=5 => {
            f = f.ipv4(v4(r), v4(r));
            if r.chance(15) {
                let n = r.below(41);
                f = f.ipv4_options(&r.bytes(n));
            }
            if r.chance(10) {
                f = f.ipv4_ihl(r.below(16) as u8);
            }
            if r.chance(15) {
                f = f.ipv4_fragment(r.below(3) as u16 * r.below(8192) as u16, r.chance(50));
            }
        }
        _ => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&r.bytes(16));
            let mut b = [0u8; 16];
            b.copy_from_slice(&r.bytes(16));
            f = f.ipv6(a, b);
            for _ in 0..[0, 0, 1, 2, 3, 6, 7, 9][r.below(8)] {
                let len8 = r.below(3) as u8;
                f = f.ipv6_ext(match r.below(5) {
                    0 => ExtHdr::HopByHop { len8 },
                    1 => ExtHdr::Routing { len8 },
                    2 => ExtHdr::DestOpts { len8 },
                    3 => ExtHdr::Fragment {
                        offset: if r.chance(50) {
                            0
                        } else {
                            r.below(8192) as u16
                        },
                        more: r.chance(50),
                    },
                    _ => ExtHdr::Ah {
                        len4: r.below(4) as u8,
                    },
                });
            }
        }
    }
    if r.chance(5) {
        f = f.ip_version(r.below(16) as u8);
    }
    let (sp, dp) = (r.next() as u16, r.next() as u16);
    f = match r.below(6) {
        0 | 1 => {
            let flags = r.next() as u8 & (tcp::SYN | tcp::ACK | tcp::FIN | tcp::RST | tcp::PSH);
            let f = f.tcp(sp, dp, flags);
            if r.chance(10) {
                f.tcp_doff(r.below(16) as u8)
            } else {
                f
            }
        }
        2 => f.udp(sp, dp),
        3 => f.icmp(r.next() as u8, r.next() as u8),
        4 => f.icmpv6(r.next() as u8, r.next() as u8),
        _ => f.ip_proto(r.next() as u8),
    };
    f.payload(r.below(200)).build().bytes
}

/// One fuzz input: random bytes, a random frame, or a frame cut and
/// mutated (bytes flipped, an ethertype or next header swapped).
fn fuzz_frame(r: &mut Rng) -> Vec<u8> {
    match r.below(10) {
        0 | 1 => {
            let n = r.below(160);
            r.bytes(n)
        }
        2..=4 => random_frame(r),
        _ => {
            let mut b = random_frame(r);
            if r.chance(50) {
                let cut = r.below(b.len() + 1);
                b.truncate(cut);
            }
            for _ in 0..1 + r.below(4) {
                if b.is_empty() {
                    break;
                }
                // Mostly in the headers, where the parser looks.
                let span = if r.chance(80) {
                    b.len().min(96)
                } else {
                    b.len()
                };
                let i = r.below(span);
                b[i] = r.next() as u8;
            }
            if r.chance(20) && b.len() >= 14 {
                let t = [
                    packet::ETH_P_IP,
                    packet::ETH_P_IPV6,
                    packet::ETH_P_8021Q,
                    packet::ETH_P_8021AD,
                ][r.below(4)];
                b[12..14].copy_from_slice(&t.to_be_bytes());
            }
            b
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fuzz(prog: Prog) {
    // A different stream per program, all from one seed.
    let seed = env_or("NETPROBE_FUZZ_SEED", DEFAULT_SEED)
        .wrapping_add((prog as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let frames = env_or("NETPROBE_FUZZ_FRAMES", DEFAULT_FRAMES);
    let p = load();
    let fd = p.fd(prog);
    let mut r = Rng::new(seed);
    let (mut ran, mut ran_bytes, mut short, mut short_l3) = (0u64, 0u64, 0u64, 0u64);
    for n in 0..frames {
        let frame = fuzz_frame(&mut r);
        let what = || {
            format!(
                "{} frame #{n} (seed {seed:#x}, {} bytes: {:02x?})",
                prog.name(),
                frame.len(),
                &frame[..frame.len().min(64)]
            )
        };
        match test_run(fd, &TestRun::new(&frame).context(prog.context(LO))) {
            Ok(out) => {
                assert_eq!(out.retval, prog.pass(), "{}: verdict", what());
                assert_eq!(
                    out.data_out,
                    frame,
                    "{}: the frame must leave unchanged",
                    what()
                );
                ran += 1;
                ran_bytes += frame.len() as u64;
            }
            Err(TestRunError::Syscall { error }) if error.raw_os_error() == Some(libc::EINVAL) => {
                assert!(
                    prog.kernel_may_refuse(&frame),
                    "{}: refused (EINVAL) but should run",
                    what()
                );
                if frame.len() < MIN_PACKET_LEN {
                    short += 1;
                } else {
                    short_l3 += 1;
                }
            }
            Err(e) => panic!("{}: {e}", what()),
        }
    }

    let s = p.stats(LO, prog.hook());
    eprintln!(
        "{}: {frames} frames, {ran} ran ({ran_bytes} bytes), refused {short} under 14 bytes and {short_l3} \
         short untagged IPv4/IPv6; flows created {}, misses {:?}, skips {:?}",
        prog.name(),
        s.flows_created,
        s.flow_miss,
        s.skip
    );
    assert_eq!(ran + short + short_l3, frames as u64);
    assert_eq!(
        s.total,
        Counter {
            packets: ran,
            bytes: ran_bytes
        },
        "totals must equal the frames run"
    );

    // Every packet is in exactly one class.
    let ip: Counter = s.l3.iter().flatten().fold(Counter::default(), |mut a, c| {
        a.add(c);
        a
    });
    let early: u64 = skip::EARLY.iter().map(|&r| s.skip[r]).sum();
    assert_eq!(
        ip.packets + s.non_ip.packets + early,
        ran,
        "classes must add up: ip {ip:?}, non-ip {:?}, early {early}",
        s.non_ip
    );
    assert_eq!(s.skip[skip::NON_IP], s.non_ip.packets);
    assert!(ip.bytes + s.non_ip.bytes <= ran_bytes);
    assert_eq!(s.skip[0], 0, "reason 0 is unused");
    assert!(
        s.skip[skip::BAD_TCP_DOFF + 1..].iter().all(|&c| c == 0),
        "no reason past the last: {:?}",
        s.skip
    );
    // At most syn-or-synack, fin and rst per TCP packet.
    assert!(s.tcp_flags.iter().sum::<u64>() <= 3 * (s.l3[0][0].packets + s.l3[1][0].packets));

    // The flow table holds every IP packet that is not a flow miss.
    let (entries, flow_packets, flow_bytes) = flow_totals(&p, prog.is_tx());
    let misses: u64 = s.flow_miss.iter().sum();
    assert_eq!(
        flow_packets + misses,
        ip.packets,
        "flow packets {flow_packets} + misses {misses} != IP packets"
    );
    assert!(flow_bytes <= ip.bytes);
    assert_eq!(
        entries, s.flows_created,
        "flows created must equal the entries (nothing evicted)"
    );

    if let Some(dir) = prog.tc_direction() {
        assert_eq!(p.tc_device(LO, dir, abi::STAT_PACKETS), ran);
        assert_eq!(p.tc_device(LO, dir, abi::STAT_BYTES), ran_bytes);
    }
    assert!(
        short > 0 && ran > frames as u64 / 2,
        "the mix must exercise refusals and runs"
    );
    if prog != Prog::Xdp {
        assert!(
            short_l3 > 0,
            "the mix must include short untagged IP frames"
        );
    }
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn fuzz_xdp() {
    fuzz(Prog::Xdp);
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn fuzz_tc_ingress() {
    fuzz(Prog::TcIngress);
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn fuzz_tc_egress() {
    fuzz(Prog::TcEgress);
}
