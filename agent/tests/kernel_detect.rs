//! Kernel tier, detectors (`probes/include/detect.h`): the real probes fed
//! crafted packets through `BPF_PROG_TEST_RUN`, asserting the alert records
//! they write to the events ring: at which packet an alert comes, what it
//! says, and that it comes once. The agent's side of alerts (merging,
//! holding, blocking) has its own unit tests in `detect/engine.rs`; real
//! scans and floods from nmap and hping3 are `build/e2e-security.sh`.
//!
//! Every test sets the flood and scan windows to 2^60 ns, so one never
//! straddles a window boundary. Needs root, like the other kernel tests (ignored by a plain `cargo test`).

use netprobe::abi::detect::{self as kind, AlertEvent};
use netprobe::abi::Hook;
use netprobe::detect::Global;
use netprobe::packet::{tcp, Frame};

mod common;
use common::object::{LoadOptions, Probes};
use common::{pin_to_current_cpu, Prog, LO};

const SRC: [u8; 4] = [198, 18, 0, 1];
const DST: [u8; 4] = [198, 19, 0, 2];

/// The probes with one endless window and `globals` on top.
fn load(globals: &[(&'static str, Global)], admit: Option<(u64, u64)>) -> Probes {
    let mut g = vec![
        ("cfg_flood_window_ns", Global::U64(1 << 60)),
        ("cfg_scan_window_ns", Global::U64(1 << 60)),
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

fn tcp_to_dst(sport: u16, flags: u8) -> Vec<u8> {
    Frame::new().ipv4(SRC, DST).tcp(sport, 80, flags).bytes()
}

fn ip4(a: [u8; 4]) -> std::net::IpAddr {
    a.into()
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
        (a.kind, a.value, a.port, a.proto),
        (kind::UDP_FLOOD, 50, 53, 17)
    );
    assert_eq!((a.src_ip(), a.dst_ip()), (ip4(SRC), ip4(DST)));
    assert_eq!(a.window_ns, 1 << 60);
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn syn_flood_counts_syns_beyond_completed_handshakes() {
    let mut p = load(&[("cfg_syn_flood", Global::U32(20))], None);
    // 100 handshakes (SYN, then the ACK that completes it), each followed
    // by data: far more SYNs than the threshold, none of them half-open.
    let mut frames = Vec::new();
    for port in 1000..1100 {
        frames.push(tcp_to_dst(port, tcp::SYN));
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
    assert!(
        alerts.iter().all(|(_, a)| a.kind == kind::UDP_FLOOD),
        "one port, one host: no scan: {alerts:?}"
    );
    assert_eq!(p.stats(LO, Hook::Xdp).flows_created, 1);
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn vertical_and_horizontal_scans_alert_near_their_thresholds() {
    // The agent's defaults: 25 ports (23 sketch bits), 16 hosts (15 bits).
    let mut p = load(&[], None);
    let ports = run_watching(&mut p, (1..=200).map(|port| udp(SRC, DST, 40000, port)));
    assert_eq!(ports.len(), 1, "{ports:?}");
    let (at, a) = ports[0];
    assert_eq!((a.kind, a.src_ip()), (kind::SCAN_VERTICAL, ip4(SRC)));
    // Linear counting: 23 bits need at least 23 ports, about 25 on average.
    assert!(
        (23..=35).contains(&at),
        "vertical scan seen after {at} ports"
    );
    assert_eq!(a.value, 23);

    let other = [198, 18, 0, 9];
    let hosts = run_watching(
        &mut p,
        (1..=200u32).map(|h| udp(other, [198, 19, (h >> 8) as u8, h as u8], 40000, 161)),
    );
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    let (at, a) = hosts[0];
    assert_eq!((a.kind, a.src_ip()), (kind::SCAN_HORIZONTAL, ip4(other)));
    assert!(
        (15..=24).contains(&at),
        "horizontal scan seen after {at} hosts"
    );
    assert_eq!(a.value, 15);
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
