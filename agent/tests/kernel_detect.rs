//! Kernel tier, detectors (`probes/include/detect.h`): the real probes fed
//! crafted packets through `BPF_PROG_TEST_RUN`, asserting the alert records
//! they write to the events ring: at which packet an alert comes, what it
//! says, and that it comes once. The agent's side of alerts (merging,
//! holding, blocking) has its own unit tests in `detect/engine.rs`; real
//! scans, floods and everyday traffic are `build/e2e-detect.sh` and
//! `build/e2e-security.sh`.
//!
//! Every test sets the flood and scan windows to 2^60 ns, so one never
//! straddles a window boundary, and a fixed hash seed, so the sketch bits
//! of the ports and hosts it picks are known (`detect::hash` mirrors the
//! probes' hashes). Needs root, like the other kernel tests (ignored by a
//! plain `cargo test`).

use std::net::IpAddr;
use std::time::Duration;

use netprobe::abi::detect::{self as kind, AlertEvent};
use netprobe::abi::Hook;
use netprobe::detect::{hash, Global};
use netprobe::packet::{ipv6_addr, tcp, Frame};
use netprobe::testrun::Context;

mod common;
use common::object::{LoadOptions, Probes};
use common::{pin_to_current_cpu, Prog, LO, TC_ACT_UNSPEC, XDP_PASS};

const SRC: [u8; 4] = [198, 18, 0, 1];
const DST: [u8; 4] = [198, 19, 0, 2];
const SEED: u64 = 0x5eed_0000_1234_5678;
const XDP_DROP: u32 = 1;

/// The probes with one endless window, a fixed seed and `globals` on top.
fn load(globals: &[(&'static str, Global)], admit: Option<(u64, u64)>) -> Probes {
    let mut g = vec![
        ("cfg_flood_window_ns", Global::U64(1 << 60)),
        ("cfg_scan_window_ns", Global::U64(1 << 60)),
        ("cfg_hash_seed", Global::U64(SEED)),
    ];
    g.extend_from_slice(globals);
    Probes::load_with(LoadOptions {
        admit_rate: admit.map(|a| a.0),
        admit_burst: admit.map(|a| a.1),
        globals: g,
        ..Default::default()
    })
}

fn udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    Frame::new().ipv4(src, dst).udp(sport, dport).bytes()
}

fn tcp4(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    Frame::new().ipv4(src, dst).tcp(sport, dport, flags).bytes()
}

fn tcp_to_dst(sport: u16, flags: u8) -> Vec<u8> {
    tcp4(SRC, DST, sport, 80, flags)
}

/// An ICMP error of `ty`/`code` from `from` to `to` quoting `quoted`
/// (a frame whose IP header and first L4 bytes are quoted).
fn icmp_error(from: [u8; 4], to: [u8; 4], ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
    Frame::new()
        .ipv4(from, to)
        .icmp(ty, code)
        .payload_bytes(&quoted[14..])
        .bytes()
}

fn ip4(a: [u8; 4]) -> IpAddr {
    a.into()
}

fn host(i: u32) -> [u8; 4] {
    [198, 19, (i >> 8) as u8, i as u8]
}

/// `n` ports from 1000 up whose scan-sketch bits differ under SEED: `n`
/// distinct failures set exactly `n` bits.
fn distinct_ports(n: usize) -> Vec<u16> {
    let mut used = std::collections::HashSet::new();
    (1000u16..)
        .filter(|p| used.insert(hash::port_bit(SEED, *p)))
        .take(n)
        .collect()
}

/// `n` hosts (`host(i)`) whose scan-sketch bits differ under SEED.
fn distinct_hosts(n: usize) -> Vec<[u8; 4]> {
    let mut used = std::collections::HashSet::new();
    (1u32..)
        .map(host)
        .filter(|h| used.insert(hash::host_bit(SEED, ip4(*h))))
        .take(n)
        .collect()
}

/// Runs `frames` one at a time through XDP; the 1-based index of each
/// frame after which alerts appeared, with the alerts.
fn run_watching(
    p: &mut Probes,
    frames: impl IntoIterator<Item = Vec<u8>>,
) -> Vec<(usize, AlertEvent)> {
    let mut out = Vec::new();
    for (i, f) in frames.into_iter().enumerate() {
        p.run(Prog::Xdp, &f, LO);
        out.extend(p.alerts().into_iter().map(|a| (i + 1, a)));
    }
    out
}

fn kinds(alerts: &[(usize, AlertEvent)]) -> Vec<u32> {
    alerts.iter().map(|(_, a)| a.kind).collect()
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn udp_flood_alerts_once_at_the_threshold() {
    let mut p = load(&[("cfg_udp_flood", Global::U32(50))], None);
    let alerts = run_watching(&mut p, (0..200).map(|_| udp(SRC, DST, 40000, 53)));
    assert_eq!(
        alerts.len(),
        1,
        "one alert per key, kind and window: {alerts:?}"
    );
    let (at, a) = alerts[0];
    assert_eq!(at, 50, "on the packet that reaches the threshold");
    assert_eq!(
        (a.kind, a.value, a.port, a.proto, a.own),
        (kind::UDP_FLOOD, 50, 53, 17, 50)
    );
    assert_eq!((a.src_ip(), a.dst_ip()), (Some(ip4(SRC)), ip4(DST)));
    assert_eq!(a.window_ns, 1 << 60);
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn syn_flood_counts_syns_beyond_completed_handshakes() {
    let mut p = load(&[("cfg_syn_flood", Global::U32(20))], None);
    // 100 handshakes (SYN, the SYN-ACK, the ACK that completes it), each
    // followed by data: far more SYNs than the threshold, none of them
    // half-open. (The SYN-ACK makes the flow two-way before the ACK.)
    let mut frames = Vec::new();
    for port in 1000..1100 {
        frames.push(tcp_to_dst(port, tcp::SYN));
        frames.push(tcp4(DST, SRC, 80, port, tcp::SYN | tcp::ACK));
        frames.push(tcp_to_dst(port, tcp::ACK));
        frames.push(tcp_to_dst(port, tcp::ACK | tcp::PSH));
    }
    assert!(
        run_watching(&mut p, frames).is_empty(),
        "completed handshakes are no flood"
    );

    // Then SYNs that never complete, each hidden among 50 ACKs of the
    // established flows: the ACKs must not cancel them out.
    let mut frames = Vec::new();
    for port in 2000..2030 {
        frames.push(tcp_to_dst(port, tcp::SYN));
        frames.extend((0..50).map(|i| tcp_to_dst(1000 + i, tcp::ACK)));
    }
    let alerts = run_watching(&mut p, frames);
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let (at, a) = alerts[0];
    assert_eq!(at, 19 * 51 + 1, "on the 20th half-open SYN");
    assert_eq!((a.kind, a.value, a.port), (kind::SYN_FLOOD, 20, 80));
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn random_source_flood_feeds_the_detectors_sampled_and_weighted() {
    // Admission admits one flow, then refuses: every later packet is a new
    // flow with the bucket empty, which netprobe.bpf.c samples one in 4
    // (NP_FLOOD_DETECT_EVERY) with weight 4.
    let mut p = load(&[("cfg_udp_flood", Global::U32(400))], Some((1, 1)));
    pin_to_current_cpu();
    let sources = (0..800u32).map(|i| [198, 18, (i >> 8) as u8 + 1, i as u8]);
    let alerts = run_watching(&mut p, sources.map(|s| udp(s, DST, 40000, 53)));
    let floods: Vec<_> = alerts
        .iter()
        .filter(|(_, a)| a.kind == kind::UDP_FLOOD)
        .collect();
    assert_eq!(floods.len(), 1, "{alerts:?}");
    let (at, a) = *floods[0];
    // 1 admitted packet, then steps of 4: counts 1, 5, 9, ...
    assert_eq!((a.value - 1) % 4, 0, "weighted samples, value {}", a.value);
    assert!((400..404).contains(&a.value), "value {}", a.value);
    assert!(
        at.abs_diff(400) <= 8,
        "alert after packet {at}, expected near 400"
    );
    assert!(
        a.sources >= 32,
        "random sources fill the source sketch: {} of 64 bits",
        a.sources
    );
    assert_eq!(
        (a.src_ip(), a.own),
        (None, 0),
        "many sources: none is named"
    );
    assert!(
        alerts.iter().all(|(_, a)| a.kind == kind::UDP_FLOOD),
        "one port, one host: no scan: {alerts:?}"
    );
    assert_eq!(p.stats(LO, Hook::Xdp).flows_created, 1);
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn answered_attempts_never_feed_the_scan_sketches() {
    // A short reply timeout, so the later attempts judge the earlier ones.
    let mut p = load(
        &[
            ("cfg_reply_ticks", Global::U32(2)),
            ("cfg_scan_ports", Global::U32(5)),
            ("cfg_scan_hosts", Global::U32(5)),
        ],
        None,
    );
    // 60 connections to 40 hosts, 3 ports each (a page load), each SYN
    // answered by a SYN-ACK; 40 UDP queries to 40 hosts, each answered.
    let mut frames = Vec::new();
    for i in 0..60u32 {
        let h = host(i % 40);
        let dport = [443, 80, 8443][i as usize % 3];
        frames.push(tcp4(SRC, h, 30000 + i as u16, dport, tcp::SYN));
        frames.push(tcp4(h, SRC, dport, 30000 + i as u16, tcp::SYN | tcp::ACK));
        frames.push(tcp4(SRC, h, 30000 + i as u16, dport, tcp::ACK));
    }
    for i in 0..40u32 {
        frames.push(udp(SRC, host(i), 40000 + i as u16, 53));
        frames.push(udp(host(i), SRC, 53, 40000 + i as u16));
    }
    let mut alerts = Vec::new();
    for f in frames {
        p.run(Prog::Xdp, &f, LO);
        std::thread::sleep(Duration::from_millis(1));
        alerts.extend(p.alerts());
    }
    // Past the timeout, new attempts judge every pending one: none failed.
    std::thread::sleep(Duration::from_millis(20));
    for i in 0..3u32 {
        p.run(Prog::Xdp, &udp(SRC, host(100 + i), 50000, 7), LO);
    }
    alerts.extend(p.alerts());
    assert!(alerts.is_empty(), "answered: {alerts:?}");

    // The same attempts unanswered: a scan of hosts and ports.
    let other = [198, 18, 0, 9];
    let ports = distinct_ports(6);
    let mut alerts = Vec::new();
    for i in 0..40u32 {
        let dport = ports[i as usize % 6];
        p.run(
            Prog::Xdp,
            &tcp4(other, host(i), 30000 + i as u16, dport, tcp::SYN),
            LO,
        );
        std::thread::sleep(Duration::from_millis(10));
        alerts.extend(p.alerts());
    }
    let k = alerts.iter().map(|a| a.kind).collect::<Vec<_>>();
    assert!(
        k.contains(&kind::SCAN_HORIZONTAL) && k.contains(&kind::SCAN_VERTICAL),
        "unanswered: {alerts:?}"
    );
    assert!(alerts.iter().all(|a| a.src_ip() == Some(ip4(other))));
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn refused_probes_count_at_exactly_the_threshold() {
    // 25 means 25: RSTs answering SYNs on 24 distinct ports raise nothing,
    // the 25th raises scan_vertical naming the prober.
    let ports = distinct_ports(25);
    let mut p = load(&[], None);
    let mut frames = Vec::new();
    for port in &ports {
        frames.push(tcp4(SRC, DST, 40000, *port, tcp::SYN));
        frames.push(tcp4(DST, SRC, *port, 40000, tcp::RST | tcp::ACK));
    }
    let alerts = run_watching(&mut p, frames);
    assert_eq!(kinds(&alerts), [kind::SCAN_VERTICAL], "{alerts:?}");
    let (at, a) = alerts[0];
    assert_eq!(at, 50, "on the 25th refusal");
    assert_eq!(
        (a.value, a.own, a.src_ip(), a.dst_ip(), a.port),
        (25, 25, Some(ip4(SRC)), ip4(DST), ports[24])
    );

    // 16 means 16, for hosts: refused UDP probes (ICMP port unreachable).
    let hosts = distinct_hosts(16);
    let prober = [198, 18, 0, 7];
    let mut frames = Vec::new();
    for h in &hosts {
        let probe = udp(prober, *h, 41000, 161);
        frames.push(probe.clone());
        frames.push(icmp_error(*h, prober, 3, 3, &probe));
    }
    let alerts = run_watching(&mut p, frames);
    assert_eq!(kinds(&alerts), [kind::SCAN_HORIZONTAL], "{alerts:?}");
    let (at, a) = alerts[0];
    assert_eq!(at, 32, "on the 16th refusal");
    assert_eq!(
        (a.value, a.src_ip(), a.proto, a.port),
        (16, Some(ip4(prober)), 17, 161)
    );
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn unanswered_attempts_fail_after_the_reply_timeout_or_when_too_many_wait() {
    let ports = distinct_ports(8);
    // Timeout: ~2 ms. Each attempt judges the ones before it, so the 8th
    // failure is counted when the 9th attempt comes.
    let mut p = load(
        &[
            ("cfg_reply_ticks", Global::U32(2)),
            ("cfg_scan_ports", Global::U32(8)),
        ],
        None,
    );
    let mut alerts = Vec::new();
    for (i, port) in ports.iter().chain([&9999]).enumerate() {
        p.run(Prog::Xdp, &udp(SRC, DST, 40000, *port), LO);
        std::thread::sleep(Duration::from_millis(10));
        alerts.extend(p.alerts().into_iter().map(|a| (i + 1, a)));
    }
    assert_eq!(kinds(&alerts), [kind::SCAN_VERTICAL], "{alerts:?}");
    assert_eq!((alerts[0].0, alerts[0].1.value), (9, 8));

    // A long timeout: 12 attempts wait (NP_PENDING); beyond that, each new
    // one counts the oldest as failed.
    let mut p = load(&[("cfg_scan_ports", Global::U32(8))], None);
    let ports = distinct_ports(20);
    let alerts = run_watching(&mut p, ports.iter().map(|port| udp(SRC, DST, 40000, *port)));
    assert_eq!(kinds(&alerts), [kind::SCAN_VERTICAL], "{alerts:?}");
    assert_eq!(alerts[0].0, 12 + 8, "the 8th overflow");
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn fin_null_and_xmas_probes_are_failures_as_they_are() {
    let ports = distinct_ports(25);
    let mut p = load(&[], None);
    let flags = [tcp::FIN, 0, tcp::FIN | tcp::PSH | 0x20]; // FIN, NULL, Xmas (FIN PSH URG)
    let alerts = run_watching(
        &mut p,
        ports
            .iter()
            .enumerate()
            .map(|(i, port)| tcp4(SRC, DST, 40000, *port, flags[i % 3])),
    );
    assert_eq!(kinds(&alerts), [kind::SCAN_VERTICAL], "{alerts:?}");
    assert_eq!(alerts[0].0, 25);
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn multicast_and_broadcast_never_feed_the_scan_sketches_or_the_port_policy() {
    let mut p = load(
        &[
            ("cfg_reply_ticks", Global::U32(1)),
            ("cfg_scan_ports", Global::U32(2)),
            ("cfg_scan_hosts", Global::U32(2)),
            ("cfg_port_policy", Global::U32(1)), // no port allowed
        ],
        None,
    );
    let m6 = |g: u16| ipv6_addr([0xff02, 0, 0, 0, 0, 0, 0, g]);
    let s6 = ipv6_addr([0x2001, 0xdb8, 1, 0, 0, 0, 0, 9]);
    let mut frames = Vec::new();
    for port in 1..=30u16 {
        frames.push(udp(SRC, [224, 0, 0, 251], 5353, port)); // mDNS
        frames.push(udp(SRC, [239, 255, 255, 250], 40000, port)); // SSDP
        frames.push(udp(SRC, [255, 255, 255, 255], 68, port)); // DHCP
        frames.push(Frame::new().ipv6(s6, m6(0xfb)).udp(5353, port).bytes());
        // A subnet-directed broadcast: a unicast-looking address, the
        // broadcast MAC.
        frames.push(
            Frame::new()
                .dst_mac([0xff; 6])
                .ipv4(SRC, [198, 18, 0, 255])
                .udp(137, port)
                .bytes(),
        );
        frames.push(tcp4(SRC, [224, 0, 0, 9], 40000, port, tcp::SYN));
    }
    let mut alerts = Vec::new();
    for f in frames {
        p.run(Prog::Xdp, &f, LO);
        std::thread::sleep(Duration::from_millis(2));
        alerts.extend(p.alerts());
    }
    assert!(alerts.is_empty(), "{alerts:?}");
    // The same to one unicast host: the port policy and a scan.
    let alerts = run_watching(&mut p, (1..=30u16).map(|port| udp(SRC, DST, 40000, port)));
    assert!(kinds(&alerts).contains(&kind::PORT_POLICY), "{alerts:?}");
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn a_collision_in_the_scan_slots_never_blames_the_other_source() {
    // Issue 19's scan variant: an attacker picks an address sharing the
    // victim's slot, fills it, and lets the victim's one probe cross. With
    // a slot that belongs to one source, the victim is not counted there.
    let slots = 4096;
    let attacker: [u8; 4] = [198, 18, 0, 2];
    let victim: [u8; 4] = (3u32..)
        .map(|i| [198, 18, (i >> 8) as u8, i as u8])
        .find(|v| {
            hash::scan_slot(SEED, ip4(*v), slots) == hash::scan_slot(SEED, ip4(attacker), slots)
        })
        .unwrap();
    let ports = distinct_ports(25);
    let mut p = load(&[], None);
    // 24 refused probes from the attacker: one short of the threshold.
    let mut frames = Vec::new();
    for port in &ports[..24] {
        frames.push(tcp4(attacker, DST, 40000, *port, tcp::SYN));
        frames.push(tcp4(DST, attacker, *port, 40000, tcp::RST | tcp::ACK));
    }
    // One probe from the victim, refused, on the 25th port.
    frames.push(tcp4(victim, DST, 40000, ports[24], tcp::SYN));
    frames.push(tcp4(DST, victim, ports[24], 40000, tcp::RST | tcp::ACK));
    let alerts = run_watching(&mut p, frames);
    assert!(alerts.is_empty(), "{alerts:?}");
    assert!(p.detect_stats().c[kind::SCAN_UNTRACKED] >= 1);
    // The mirror agrees with the probes: the slot is the attacker's.
    let idx = hash::scan_slot(SEED, ip4(attacker), slots);
    assert_eq!(p.scan_slot_owner(idx), hash::addr_hash(SEED, ip4(attacker)));

    // Another seed: the two no longer share a slot (this pair, this seed).
    let seed2 = SEED ^ 0xdead_beef;
    assert_ne!(
        hash::scan_slot(seed2, ip4(victim), slots),
        hash::scan_slot(seed2, ip4(attacker), slots)
    );
    let p = load(&[("cfg_hash_seed", Global::U64(seed2))], None);
    p.run(Prog::Xdp, &tcp4(victim, DST, 40000, 80, tcp::SYN), LO);
    let idx = hash::scan_slot(seed2, ip4(victim), slots);
    assert_eq!(p.scan_slot_owner(idx), hash::addr_hash(seed2, ip4(victim)));
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn a_flood_alert_names_only_a_source_with_its_own_count() {
    // Issue 19: 299 SYNs from one address, then one from another: the
    // second is never named; the first is, with its own count, when its
    // next SYN comes.
    let a = [198, 18, 0, 2];
    let b = [198, 18, 0, 3];
    let mut p = load(&[("cfg_syn_flood", Global::U32(300))], None);
    let mut frames: Vec<Vec<u8>> = (0..299u16)
        .map(|i| tcp4(a, DST, 10000 + i, 80, tcp::SYN))
        .collect();
    frames.push(tcp4(b, DST, 20000, 80, tcp::SYN));
    assert!(run_watching(&mut p, frames).is_empty());
    let alerts = run_watching(&mut p, [tcp4(a, DST, 10299, 80, tcp::SYN)]);
    assert_eq!(kinds(&alerts), [kind::SYN_FLOOD], "{alerts:?}");
    let e = alerts[0].1;
    assert_eq!((e.src_ip(), e.value, e.own), (Some(ip4(a)), 301, 300));
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn two_way_flows_are_not_floods() {
    let mut p = load(&[("cfg_udp_flood", Global::U32(50))], None);
    // A download: the client asks, the server streams back (replies).
    let mut frames = vec![udp(SRC, DST, 40000, 443)];
    frames.extend((0..500).map(|_| udp(DST, SRC, 443, 40000)));
    // A bidirectional transfer the remote side started: its packets after
    // the answer are not counted either.
    frames.push(udp(DST, SRC, 5000, 5201));
    frames.push(udp(SRC, DST, 5201, 5000));
    frames.extend((0..500).map(|_| udp(DST, SRC, 5000, 5201)));
    // A tunnel whose directions use their own source ports (VXLAN): the
    // other side sends to the same destination port.
    frames.push(udp(SRC, DST, 51111, 4789));
    frames.extend((0..500).map(|_| udp(DST, SRC, 52222, 4789)));
    let alerts = run_watching(&mut p, frames);
    assert!(alerts.is_empty(), "{alerts:?}");
    // One-way UDP from the same peer is still counted.
    let alerts = run_watching(&mut p, (0..60).map(|i| udp(DST, SRC, 6000 + i, 9)));
    assert_eq!(kinds(&alerts), [kind::UDP_FLOOD], "{alerts:?}");

    // Pings (keyed without the echo id): the replies to this side's own
    // pings are exempt, an echo request flood counts though answered.
    let ping = |from: [u8; 4], to: [u8; 4], ty: u8| Frame::new().ipv4(from, to).icmp(ty, 0).bytes();
    let mut p = load(&[("cfg_icmp_flood", Global::U32(50))], None);
    let mut frames = vec![ping(SRC, DST, 8)];
    frames.extend((0..200).map(|_| ping(DST, SRC, 0)));
    assert!(run_watching(&mut p, frames).is_empty());
    let flooder = [198, 19, 9, 9];
    let alerts = run_watching(
        &mut p,
        (0..60).flat_map(|_| [ping(flooder, SRC, 8), ping(SRC, flooder, 0)]),
    );
    assert_eq!(kinds(&alerts), [kind::ICMP_FLOOD], "{alerts:?}");
    assert_eq!(alerts[0].1.src_ip(), Some(ip4(flooder)));
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn closed_ports_counts_refusals_not_resets_of_connections() {
    let mut p = load(&[("cfg_closed_ports", Global::U32(20))], None);
    // 100 connections established and then reset by the server (a web
    // server whose clients or itself close with RST): no refusal.
    let mut frames = Vec::new();
    for i in 0..100u16 {
        frames.push(tcp4(SRC, DST, 30000 + i, 80, tcp::SYN));
        frames.push(tcp4(DST, SRC, 80, 30000 + i, tcp::SYN | tcp::ACK));
        frames.push(tcp4(SRC, DST, 30000 + i, 80, tcp::ACK));
        frames.push(tcp4(DST, SRC, 80, 30000 + i, tcp::RST | tcp::ACK));
        frames.push(tcp4(SRC, DST, 30000 + i, 80, tcp::RST));
    }
    // ICMP fragmentation needed is path MTU discovery, not a refusal.
    let big = udp(SRC, DST, 40000, 4500);
    frames.extend((0..50).map(|_| icmp_error(DST, SRC, 3, 4, &big)));
    assert!(run_watching(&mut p, frames).is_empty());
    // 19 refused SYNs, then the 20th: closed_ports toward the prober.
    let frames = (0..20u16).flat_map(|i| {
        [
            tcp4(SRC, DST, 40000, 7000 + i, tcp::SYN),
            tcp4(DST, SRC, 7000 + i, 40000, tcp::RST | tcp::ACK),
        ]
    });
    let alerts = run_watching(&mut p, frames);
    let closed: Vec<_> = alerts
        .iter()
        .filter(|(_, a)| a.kind == kind::CLOSED_PORTS)
        .collect();
    assert_eq!(closed.len(), 1, "{alerts:?}");
    assert_eq!(closed[0].0, 40, "on the 20th refusal");
    assert_eq!(closed[0].1.src_ip(), Some(ip4(SRC)), "the prober");
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn a_blocked_source_still_answers_conversations_this_side_started() {
    let mut p = load(&[("cfg_mitigate", Global::U32(2))], None);
    let blocked = [198, 19, 7, 7];
    p.block(ip4(blocked));
    // What it starts is dropped: a SYN, a UDP datagram.
    let r = p.run(Prog::Xdp, &tcp4(blocked, SRC, 40000, 22, tcp::SYN), LO);
    assert_eq!(r.retval, XDP_DROP);
    let r = p.run(Prog::Xdp, &udp(blocked, SRC, 40000, 53), LO);
    assert_eq!(r.retval, XDP_DROP);
    // This side connects to it (TC egress: what the host sends): its
    // SYN-ACK, and what follows, pass.
    p.run(
        Prog::TcEgress,
        &tcp4(SRC, blocked, 50000, 443, tcp::SYN),
        LO,
    );
    for flags in [tcp::SYN | tcp::ACK, tcp::ACK, tcp::ACK | tcp::PSH] {
        let r = p.run(Prog::Xdp, &tcp4(blocked, SRC, 443, 50000, flags), LO);
        assert_eq!(r.retval, XDP_PASS, "flags {flags:#x}");
    }
    let c = p.detect_stats().c;
    assert_eq!((c[kind::DROP_BLOCKED], c[kind::PASS_ANSWER]), (2, 3));
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn a_forwarded_packet_feeds_the_detectors_once() {
    // Refusals the host forwards from a watched interface were counted
    // when they came in (ingress); TC egress counts only what the host
    // sends itself (or forwards from an interface it does not watch).
    let mut p = load(&[("cfg_closed_ports", Global::U32(10))], None);
    // Lo is watched: its TC ingress probe has seen a packet.
    p.run(Prog::TcIngress, &udp(SRC, DST, 1, 2), LO);
    let egress = |p: &mut Probes, ingress: u32, n: u16, base: u16| {
        let mut alerts = Vec::new();
        for i in 0..n {
            let ctx = Context::SkbForwarded {
                ifindex: LO,
                ingress_ifindex: ingress,
            };
            // The probe goes out, the RST comes back: both leave through egress.
            p.run_ctx(
                Prog::TcEgress,
                &tcp4(DST, SRC, 40000, base + i, tcp::SYN),
                ctx,
            );
            let r = p.run_ctx(
                Prog::TcEgress,
                &tcp4(SRC, DST, base + i, 40000, tcp::RST | tcp::ACK),
                ctx,
            );
            assert_eq!(r.retval, TC_ACT_UNSPEC);
            alerts.extend(p.alerts());
        }
        alerts
    };
    let forwarded = egress(&mut p, LO, 30, 1000);
    assert!(forwarded.is_empty(), "{forwarded:?}");
    let own = egress(&mut p, 0, 10, 2000);
    assert!(own.iter().any(|a| a.kind == kind::CLOSED_PORTS), "{own:?}");
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn detection_off_writes_nothing() {
    let mut p = load(
        &[
            ("cfg_detect", Global::U32(0)),
            ("cfg_udp_flood", Global::U32(5)),
        ],
        None,
    );
    let alerts = run_watching(&mut p, (1..=100).map(|port| udp(SRC, DST, 40000, port)));
    assert!(alerts.is_empty(), "{alerts:?}");
    assert_eq!(p.stats(LO, Hook::Xdp).total.packets, 100);
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn the_verifier_accepts_every_detector_and_mitigation_at_once() {
    // The widest configuration: every detector, both lists, mitigation on.
    // (The default one is kernel_probes' verifier_accepts_all_programs.)
    let t = std::time::Instant::now();
    let _ = load(
        &[
            ("cfg_mitigate", Global::U32(2)),
            ("cfg_lists", Global::U32(3)),
            ("cfg_port_policy", Global::U32(1)),
            ("cfg_dst_pps", Global::U32(10)),
            ("cfg_dst_bytes", Global::U64(10_000)),
            ("cfg_iface_pps", Global::U32(10)),
            ("cfg_iface_bytes", Global::U64(10_000)),
        ],
        None,
    );
    eprintln!("loaded and verified in {:?}", t.elapsed());
}

/// Not a test: prints the verifier's instruction counts of an object
/// (NP_OBJECT, default the built-in) for the default and the widest
/// configuration. `cargo test --test kernel_detect verifier_cost -- --ignored --nocapture`
#[test]
#[ignore]
fn verifier_cost() {
    use aya::programs::{SchedClassifier, Xdp};
    let path = std::env::var("NP_OBJECT").ok();
    let bytes = match &path {
        Some(p) => std::fs::read(p).unwrap(),
        None => netprobe::probes::netprobe_object().to_vec(),
    };
    let wide: Vec<(&str, Global)> = vec![
        ("cfg_mitigate", Global::U32(2)),
        ("cfg_lists", Global::U32(3)),
        ("cfg_port_policy", Global::U32(1)),
        ("cfg_dst_pps", Global::U32(10)),
        ("cfg_dst_bytes", Global::U64(10_000)),
    ];
    for (name, g) in [("default", vec![]), ("widest", wide)] {
        if std::env::var_os("NP_DEFAULT_ONLY").is_some() && name != "default" {
            continue;
        }
        let mut loader = aya::EbpfLoader::new();
        for (n, v) in &g {
            match v {
                Global::U32(x) => loader.override_global(n, x, true),
                Global::U64(x) => loader.override_global(n, x, true),
            };
        }
        let mut ebpf = loader.load(&bytes).unwrap();
        for prog in Prog::ALL {
            let t = std::time::Instant::now();
            let pr = ebpf.program_mut(prog.name()).unwrap();
            let r = match prog {
                Prog::Xdp => <&mut Xdp>::try_from(pr).unwrap().load(),
                _ => <&mut SchedClassifier>::try_from(pr).unwrap().load(),
            };
            let el = t.elapsed();
            let n = r
                .ok()
                .and_then(|_| ebpf.program(prog.name()).unwrap().info().ok())
                .and_then(|i| i.verified_instruction_count());
            eprintln!("{name:8} {:20} verified_insns {n:?} in {el:?}", prog.name());
        }
    }
}
