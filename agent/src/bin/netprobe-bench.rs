//! netprobe-bench: nanoseconds per packet of the NetProbe probes, measured
//! in the kernel with `BPF_PROG_TEST_RUN`, beside empty programs and a naive
//! flow-accounting program (`probes/bench_naive.bpf.c`) measured the same way
//! in the same run. Needs root; attaches nothing.
//!
//! Subcommands are the small tools `build/bench.sh` drives (see
//! `netprobe-bench help`): `attach` (the empty or naive programs on an
//! interface), `gen` (a bounded, rate-limited 64-byte UDP generator over
//! AF_PACKET), `sink` (a UDP socket that never reads), `enable-stats` (holds
//! `BPF_ENABLE_STATS` open) and `prog-stats` (run counts, run time and map
//! memory of programs by id).
//!
//! Method of the test-run table:
//! - "1 flow": one packet, one `BPF_PROG_TEST_RUN` call with `repeat` runs
//!   (after one run that creates the flow). The kernel reports the mean.
//! - "1k flows" and "random sources": `repeat` reuses one packet, so these
//!   loop over their packets with one call each (`repeat` 1) and add up the
//!   kernel's per-call durations. Each call's duration carries the same
//!   fixed share of timer reads and `local_bh_disable`/`enable`, and is
//!   rounded down to whole ns, so they are only compared with the empty
//!   program measured over the same packets the same way. "1k flows" runs
//!   one warm-up round (creating the flows) and then cycles; "random
//!   sources" feeds each of N random-source packets once, so every packet
//!   misses the flow table: with admission on, the token bucket turns most
//!   of them away (a lookup and no insert); with it off (rate 0) each one
//!   is an LRU insert, evicting once the table is full.
//! - Every (case, admission, program) cell gets a freshly loaded object:
//!   empty maps and a full admission bucket. The thread is pinned to one
//!   CPU, so the per-CPU bucket is the one that CPU's traffic would see.
//! - Each cell is the minimum over `--trials` measurements (a fresh object
//!   for each trial), as shared virtual machines add bursts of noise of
//!   tens of ns that only ever make a run slower.
//! - "net" is ns/pkt minus the empty program's: the probe's own cost.
//! - "naive ns": `bench_naive_xdp` for the XDP row, `bench_naive_tc` for
//!   the TC rows, fresh object per trial like the probe's; it has no
//!   admission, so the admission column does not change it. "vs naive" is
//!   ns/pkt over naive ns.
//! - "inserted" / "refused": new flows the probe inserted, and new flows
//!   the admission bucket turned away, in the last trial.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argh::FromArgs;
use aya::maps::{MapData, MapInfo, PerCpuHashMap};
use aya::programs::{tc, SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use netprobe::abi::{Hook, PacketStats, StatsKey};
use netprobe::kernel::KernelVersion;
use netprobe::packet::{tcp, Frame};
use netprobe::probes;
use netprobe::testrun::{test_run, Context, TestRun};

#[derive(FromArgs)]
/// Nanoseconds per packet of the NetProbe probes (BPF_PROG_TEST_RUN), beside
/// empty and naive programs; subcommands are build/bench.sh's tools.
struct Args {
    #[argh(subcommand)]
    cmd: Option<Cmd>,
    /// runs of the one-flow packet in one test-run call (default 1000000)
    #[argh(option, default = "1_000_000")]
    repeat: u32,
    /// packets fed in the 1k-flows case, one call each (default 200000)
    #[argh(option, default = "200_000")]
    packets: u32,
    /// distinct random-source packets in the flood case (default 100000)
    #[argh(option, default = "100_000")]
    random: u32,
    /// measurements per cell, the minimum is reported (default 3)
    #[argh(option, default = "3")]
    trials: u32,
    /// a smoke run in a few seconds: repeat 100000, packets 20000,
    /// random 20000, trials 1 (figures are rougher)
    #[argh(switch)]
    quick: bool,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Cmd {
    Attach(AttachCmd),
    Gen(GenCmd),
    Sink(SinkCmd),
    EnableStats(EnableStatsCmd),
    ProgStats(ProgStatsCmd),
}

#[derive(FromArgs)]
#[argh(subcommand, name = "attach")]
/// Attach the empty or naive programs to an interface (XDP, TC ingress and
/// egress) until SIGTERM/SIGINT or --seconds; prints their program ids.
struct AttachCmd {
    /// empty (probes/bench_empty.bpf.c) or naive (probes/bench_naive.bpf.c)
    #[argh(option)]
    object: String,
    /// interface to attach to
    #[argh(option)]
    interface: String,
    /// generic, native or off (TC only); default generic
    #[argh(option, default = "String::from(\"generic\")")]
    xdp_mode: String,
    /// detach and exit after this many seconds at most (default 900)
    #[argh(option, default = "900")]
    seconds: u64,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "gen")]
/// Send 64-byte IPv4/UDP frames through an AF_PACKET socket, bounded in
/// count and time, at a fixed rate (or as fast as it can); prints what it
/// sent and its own CPU time (schedstat).
struct GenCmd {
    /// interface to send on
    #[argh(option)]
    interface: String,
    /// destination MAC (the peer's), aa:bb:cc:dd:ee:ff
    #[argh(option)]
    dst_mac: String,
    /// source MAC; default the interface's own
    #[argh(option)]
    src_mac: Option<String>,
    /// source address of the fixed flows (default 198.18.0.1)
    #[argh(option, default = "Ipv4Addr::new(198, 18, 0, 1)")]
    src: Ipv4Addr,
    /// destination address (default 198.18.0.2)
    #[argh(option, default = "Ipv4Addr::new(198, 18, 0, 2)")]
    dst: Ipv4Addr,
    /// destination UDP port (default 9, discard)
    #[argh(option, default = "9")]
    dport: u16,
    /// packets per second; 0 sends as fast as it can (default 0)
    #[argh(option, default = "0")]
    rate: u64,
    /// packets to send at most (default 1000000)
    #[argh(option, default = "1_000_000")]
    count: u64,
    /// seconds to send at most (default 10)
    #[argh(option, default = "10.0")]
    seconds: f64,
    /// distinct flows (source ports) cycled through (default 1)
    #[argh(option, default = "1")]
    flows: u32,
    /// a random source address in 198.18.0.0/15 and source port per packet
    #[argh(switch)]
    random: bool,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "sink")]
/// Bind a UDP port with a tiny receive buffer and never read, so traffic to
/// it is dropped at the socket (no ICMP port unreachable), until
/// SIGTERM/SIGINT or --seconds.
struct SinkCmd {
    /// address:port to bind (e.g. 198.18.0.2:9)
    #[argh(option)]
    bind: SocketAddrV4,
    /// exit after this many seconds at most (default 900)
    #[argh(option, default = "900")]
    seconds: u64,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "enable-stats")]
/// Hold BPF_ENABLE_STATS (run time and count of every program) until
/// SIGTERM/SIGINT or --seconds; released when this process exits however it
/// exits, unlike the kernel.bpf_stats_enabled sysctl.
struct EnableStatsCmd {
    /// exit after this many seconds at most (default 900)
    #[argh(option, default = "900")]
    seconds: u64,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "prog-stats")]
/// Print `prog ID NAME RUN_CNT RUN_TIME_NS` for each program id, then
/// `maps N BYTES`: how many maps those programs use and their memory
/// (fdinfo memlock).
struct ProgStatsCmd {
    /// program ids
    #[argh(positional)]
    ids: Vec<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Xdp,
    Tc,
}

/// A program to measure: which object, which program, what context.
#[derive(Clone, Copy)]
struct Target {
    label: &'static str,
    prog: &'static str,
    empty: &'static str,
    naive: &'static str,
    kind: Kind,
    hook: Hook,
}

const TARGETS: [Target; 3] = [
    Target {
        label: "xdp",
        prog: probes::PROG_XDP,
        empty: "bench_empty_xdp",
        naive: "bench_naive_xdp",
        kind: Kind::Xdp,
        hook: Hook::Xdp,
    },
    Target {
        label: "tc_ingress",
        prog: probes::PROG_TC_INGRESS,
        empty: "bench_empty_tc",
        naive: "bench_naive_tc",
        kind: Kind::Tc,
        hook: Hook::TcIngress,
    },
    Target {
        label: "tc_egress",
        prog: probes::PROG_TC_EGRESS,
        empty: "bench_empty_tc",
        naive: "bench_naive_tc",
        kind: Kind::Tc,
        hook: Hook::TcEgress,
    },
];

/// Aligns included bytes: the ELF parser reads headers in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

/// The naive flow-accounting baseline (`probes/bench_naive.bpf.c`). Only
/// the bench uses it, so it is embedded here rather than in the library.
fn bench_naive_object() -> &'static [u8] {
    static OBJ: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../probes/bench_naive.bpf.o"
    )));
    &OBJ.0
}

fn context(kind: Kind) -> Context {
    match kind {
        Kind::Xdp => Context::Xdp {
            ingress_ifindex: 1,
            rx_queue_index: 0,
        },
        Kind::Tc => Context::Skb {
            ifindex: 1,
            mark: 0,
        },
    }
}

fn load(object: &[u8], progs: &[(&str, Kind)], admit_rate: Option<u64>) -> Result<Ebpf, String> {
    let mut loader = EbpfLoader::new();
    if let Some(rate) = &admit_rate {
        loader.override_global(probes::GLOBAL_FLOW_ADMIT_RATE, rate, true);
    }
    let mut ebpf = loader
        .load(object)
        .map_err(|e| format!("loading object: {e}"))?;
    for (name, kind) in progs {
        let p = ebpf
            .program_mut(name)
            .ok_or_else(|| format!("no program {name}"))?;
        let r = match kind {
            Kind::Xdp => <&mut Xdp>::try_from(p).map_err(|e| e.to_string())?.load(),
            Kind::Tc => <&mut SchedClassifier>::try_from(p)
                .map_err(|e| e.to_string())?
                .load(),
        };
        r.map_err(|e| format!("loading {name}: {e:?}"))?;
    }
    Ok(ebpf)
}

fn fd<'a>(ebpf: &'a Ebpf, name: &str) -> BorrowedFd<'a> {
    ebpf.program(name).unwrap().fd().unwrap().as_fd()
}

/// Mean ns per packet: one call with `repeat` runs of one packet.
fn ns_repeat(prog: BorrowedFd<'_>, kind: Kind, pkt: &[u8], repeat: u32) -> Result<f64, String> {
    let ctx = context(kind);
    test_run(prog, &TestRun::new(pkt).context(ctx)).map_err(|e| e.to_string())?; // warm-up
    let out = test_run(prog, &TestRun::new(pkt).repeat(repeat).context(ctx))
        .map_err(|e| e.to_string())?;
    Ok(f64::from(out.duration_ns))
}

/// Mean ns per packet: one call per packet, durations added up.
fn ns_each(
    prog: BorrowedFd<'_>,
    kind: Kind,
    pkts: &[Vec<u8>],
    total: usize,
) -> Result<f64, String> {
    let ctx = context(kind);
    let mut sum = 0u64;
    for i in 0..total {
        let out = test_run(prog, &TestRun::new(&pkts[i % pkts.len()]).context(ctx))
            .map_err(|e| e.to_string())?;
        sum += u64::from(out.duration_ns);
    }
    Ok(sum as f64 / total as f64)
}

/// (flows inserted, flows refused by admission) on ifindex 1 for a hook,
/// from the last trial's object.
fn flow_counts(ebpf: &Ebpf, hook: Hook) -> Result<(u64, u64), String> {
    let map = ebpf
        .map(probes::MAP_PACKET_STATS)
        .ok_or("no packet_stats map")?;
    let m: PerCpuHashMap<&MapData, StatsKey, PacketStats> =
        PerCpuHashMap::try_from(map).map_err(|e| e.to_string())?;
    let per_cpu = m
        .get(
            &StatsKey {
                ifindex: 1,
                hook: hook as u32,
            },
            0,
        )
        .map_err(|e| e.to_string())?;
    let mut sum = PacketStats::default();
    per_cpu.iter().for_each(|v| sum.add(v));
    Ok((sum.flows_created, sum.flow_miss[0]))
}

/// xorshift64*: repeatable pseudo-random sources without a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn flow_packet(src: [u8; 4], sport: u16) -> Vec<u8> {
    // 64 bytes on the wire less FCS: Ethernet + IPv4 + TCP + 6 bytes.
    Frame::new()
        .ipv4(src, [198, 51, 100, 1])
        .tcp(sport, 443, tcp::ACK)
        .payload(6)
        .bytes()
}

enum Case {
    OneFlow,
    Cycle { warm: usize },
    Once,
}

fn pin_cpu() -> Option<usize> {
    // SAFETY: libc calls on this thread's own affinity mask.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return None;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        (libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0)
            .then_some(cpu as usize)
    }
}

/// ns/pkt of one program on one case's packets (fresh state is the caller's).
fn measure(
    prog: BorrowedFd<'_>,
    kind: Kind,
    case: &Case,
    pkts: (&[u8], &[Vec<u8>], &[Vec<u8>]),
    args: &Args,
) -> Result<f64, String> {
    let (one, thousand, random) = pkts;
    match case {
        Case::OneFlow => ns_repeat(prog, kind, one, args.repeat),
        Case::Cycle { warm } => {
            ns_each(prog, kind, thousand, *warm)?;
            ns_each(prog, kind, thousand, args.packets as usize)
        }
        Case::Once => ns_each(prog, kind, random, random.len()),
    }
}

fn run(args: &Args) -> Result<(), String> {
    let cpu = pin_cpu();
    let one = flow_packet([192, 0, 2, 1], 40000);
    let thousand: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| flow_packet([10, 1, (i >> 8) as u8, i as u8], 20000 + i as u16))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let random: Vec<Vec<u8>> = (0..args.random)
        .map(|_| {
            let r = rng.next();
            flow_packet(
                [
                    (r >> 56) as u8 | 1,
                    (r >> 48) as u8,
                    (r >> 40) as u8,
                    (r >> 32) as u8,
                ],
                r as u16,
            )
        })
        .collect();
    let pkts = (&one[..], &thousand[..], &random[..]);

    let empty = load(
        probes::bench_empty_object(),
        &[("bench_empty_xdp", Kind::Xdp), ("bench_empty_tc", Kind::Tc)],
        None,
    )?;
    let naive_progs = [("bench_naive_xdp", Kind::Xdp), ("bench_naive_tc", Kind::Tc)];

    let uts = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "netprobe-bench: kernel {}, pinned to cpu {}, BPF_PROG_TEST_RUN, {}-byte packets",
        uts.trim(),
        cpu.map_or("-".to_string(), |c| c.to_string()),
        one.len()
    );
    println!(
        "1 flow: one call, repeat {}; 1k flows: {} calls over 1000 packets after a warm-up round; \
         random: {} distinct random-source packets, one call each; minimum of {} trials",
        args.repeat,
        args.packets,
        args.random,
        args.trials.max(1)
    );
    println!();
    println!(
        "{:<16} {:<9} {:<11} {:>8} {:>10} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "case",
        "admission",
        "program",
        "ns/pkt",
        "empty ns",
        "ratio",
        "net ns",
        "naive ns",
        "vs naive",
        "inserted",
        "refused"
    );

    let cases: [(&str, Case); 3] = [
        ("1 flow", Case::OneFlow),
        (
            "1k flows",
            Case::Cycle {
                warm: thousand.len(),
            },
        ),
        ("random sources", Case::Once),
    ];
    for (name, case) in &cases {
        for (admission, rate) in [("on", None), ("off", Some(0u64))] {
            for t in TARGETS {
                let mut probe = f64::INFINITY;
                let mut base = f64::INFINITY;
                let mut naive = f64::INFINITY;
                let mut flows = (0, 0);
                for _ in 0..args.trials.max(1) {
                    let obj = load(probes::netprobe_object(), &[(t.prog, t.kind)], rate)?;
                    let nobj = load(bench_naive_object(), &naive_progs, None)?;
                    probe = probe.min(measure(fd(&obj, t.prog), t.kind, case, pkts, args)?);
                    base = base.min(measure(fd(&empty, t.empty), t.kind, case, pkts, args)?);
                    naive = naive.min(measure(fd(&nobj, t.naive), t.kind, case, pkts, args)?);
                    flows = flow_counts(&obj, t.hook)?;
                }
                println!(
                    "{:<16} {:<9} {:<11} {:>8.1} {:>10.1} {:>6.1}x {:>8.1} {:>9.1} {:>8.2}x {:>9} {:>9}",
                    name,
                    admission,
                    t.label,
                    probe,
                    base,
                    if base > 0.0 { probe / base } else { f64::NAN },
                    probe - base,
                    naive,
                    if naive > 0.0 { probe / naive } else { f64::NAN },
                    flows.0,
                    flows.1
                );
            }
        }
    }
    Ok(())
}

/// Set by SIGTERM or SIGINT; the long-running subcommands poll it.
fn stop_flag() -> Result<Arc<AtomicBool>, String> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    Ok(stop)
}

/// Sleeps until the flag is set or `seconds` have passed.
fn wait(stop: &AtomicBool, seconds: u64) {
    let end = Instant::now() + Duration::from_secs(seconds);
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn attach(cmd: &AttachCmd) -> Result<(), String> {
    let stop = stop_flag()?;
    let (object, xdp_name, tc_name) = match cmd.object.as_str() {
        "empty" => (
            probes::bench_empty_object(),
            "bench_empty_xdp",
            "bench_empty_tc",
        ),
        "naive" => (bench_naive_object(), "bench_naive_xdp", "bench_naive_tc"),
        o => return Err(format!("--object {o}: expected empty or naive")),
    };
    let mode = match cmd.xdp_mode.as_str() {
        "generic" => Some(XdpMode::Skb),
        "native" => Some(XdpMode::Driver),
        "off" => None,
        m => return Err(format!("--xdp-mode {m}: expected generic, native or off")),
    };
    let mut progs = vec![(tc_name, Kind::Tc)];
    if mode.is_some() {
        progs.push((xdp_name, Kind::Xdp));
    }
    let mut ebpf = load(object, &progs, None)?;
    let mut ids = Vec::new();
    if let Some(mode) = mode {
        let xdp: &mut Xdp = ebpf
            .program_mut(xdp_name)
            .unwrap()
            .try_into()
            .map_err(|e| format!("{e}"))?;
        xdp.attach(&cmd.interface, mode).map_err(|e| {
            format!(
                "attaching {xdp_name} to {} ({}): {e}",
                cmd.interface, cmd.xdp_mode
            )
        })?;
        ids.push(format!(
            "xdp={}",
            xdp.info().map_err(|e| e.to_string())?.id()
        ));
    }
    if !KernelVersion::current().at_least(6, 6) {
        // Before TCX the TC programs need a clsact qdisc (it goes with the namespace).
        let _ = tc::qdisc_add_clsact(&cmd.interface);
    }
    let p: &mut SchedClassifier = ebpf
        .program_mut(tc_name)
        .unwrap()
        .try_into()
        .map_err(|e| format!("{e}"))?;
    for at in [TcAttachType::Ingress, TcAttachType::Egress] {
        p.attach(&cmd.interface, at)
            .map_err(|e| format!("attaching {tc_name} to {} ({at:?}): {e}", cmd.interface))?;
    }
    // One program serves both TC directions, so its run counts are both's.
    ids.push(format!("tc={}", p.info().map_err(|e| e.to_string())?.id()));
    println!("attached {}", ids.join(" "));
    std::io::stdout().flush().ok();
    wait(&stop, cmd.seconds);
    drop(ebpf); // closes the links: detached
    Ok(())
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("bad MAC address {s}"));
    }
    for (m, p) in mac.iter_mut().zip(parts) {
        *m = u8::from_str_radix(p, 16).map_err(|_| format!("bad MAC address {s}"))?;
    }
    Ok(mac)
}

/// RFC 1071 checksum of an IPv4 header.
fn ipv4_checksum(h: &[u8]) -> u16 {
    let mut sum: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

const FRAME_LEN: usize = 60; // 64 on the wire with the FCS
const IP_OFF: usize = 14;
const UDP_OFF: usize = 34;

fn template(src_mac: [u8; 6], dst_mac: [u8; 6], dst: Ipv4Addr, dport: u16) -> [u8; FRAME_LEN] {
    let mut f = [0u8; FRAME_LEN];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[IP_OFF..UDP_OFF];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((FRAME_LEN - IP_OFF) as u16).to_be_bytes());
    ip[6] = 0x40; // DF
    ip[8] = 64; // TTL
    ip[9] = 17; // UDP
    ip[16..20].copy_from_slice(&dst.octets());
    let udp = &mut f[UDP_OFF..];
    udp[2..4].copy_from_slice(&dport.to_be_bytes());
    udp[4..6].copy_from_slice(&((FRAME_LEN - UDP_OFF) as u16).to_be_bytes());
    // UDP checksum 0: none (IPv4).
    f
}

/// Sets the source address and port and the IPv4 header checksum.
fn set_source(f: &mut [u8; FRAME_LEN], src: [u8; 4], sport: u16) {
    f[IP_OFF + 12..IP_OFF + 16].copy_from_slice(&src);
    f[IP_OFF + 10..IP_OFF + 12].copy_from_slice(&[0, 0]);
    let c = ipv4_checksum(&f[IP_OFF..UDP_OFF]);
    f[IP_OFF + 10..IP_OFF + 12].copy_from_slice(&c.to_be_bytes());
    f[UDP_OFF..UDP_OFF + 2].copy_from_slice(&sport.to_be_bytes());
}

fn if_mac(interface: &str) -> Result<[u8; 6], String> {
    let p = format!("/sys/class/net/{interface}/address");
    let s = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
    parse_mac(s.trim())
}

fn gen(cmd: &GenCmd) -> Result<(), String> {
    const BATCH: usize = 32;
    let stop = stop_flag()?;
    let c_if = std::ffi::CString::new(cmd.interface.as_str()).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(c_if.as_ptr()) };
    if ifindex == 0 {
        return Err(format!("no interface {}", cmd.interface));
    }
    let src_mac = match &cmd.src_mac {
        Some(m) => parse_mac(m)?,
        None => if_mac(&cmd.interface)?,
    };
    let dst_mac = parse_mac(&cmd.dst_mac)?;
    // Protocol 0: this socket sends only, it receives nothing.
    // SAFETY: plain socket call; the fd is owned below.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(format!(
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: raw is a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: a zeroed sockaddr_ll with family, protocol and ifindex set.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: sll outlives the call and its size is passed.
    if unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    } != 0
    {
        return Err(format!(
            "binding to {}: {}",
            cmd.interface,
            std::io::Error::last_os_error()
        ));
    }
    let one: libc::c_int = 1;
    // Straight to the driver: no qdisc (veth has none anyway).
    // SAFETY: an int option.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            (&one as *const libc::c_int).cast(),
            4,
        )
    };

    let tpl = template(src_mac, dst_mac, cmd.dst, cmd.dport);
    let mut frames = [tpl; BATCH];
    let fixed_src = cmd.src.octets();
    let flows = u64::from(cmd.flows.max(1));
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ u64::from(std::process::id()));
    let start = Instant::now();
    let limit = Duration::from_secs_f64(cmd.seconds.max(0.0));
    let (mut sent, mut errors) = (0u64, 0u64);
    while sent < cmd.count && !stop.load(Ordering::Relaxed) {
        let elapsed = start.elapsed();
        if elapsed >= limit {
            break;
        }
        if cmd.rate > 0 {
            let due = Duration::from_secs_f64(sent as f64 / cmd.rate as f64);
            if due > elapsed {
                std::thread::sleep((due - elapsed).min(limit - elapsed));
                continue;
            }
        }
        let n = ((cmd.count - sent) as usize).min(BATCH);
        for (i, f) in frames.iter_mut().take(n).enumerate() {
            let seq = sent + i as u64;
            if cmd.random {
                let r = rng.next();
                // 198.18.0.0/15: 17 random bits.
                let a = 0xc612_0000u32 | ((r >> 40) as u32 & 0x1ffff);
                set_source(f, a.to_be_bytes(), 1024 + (r as u16 % 64000));
            } else {
                set_source(f, fixed_src, 10000 + (seq % flows) as u16);
            }
        }
        let mut iov: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            iov_base: frames[i].as_mut_ptr().cast(),
            iov_len: FRAME_LEN,
        });
        // SAFETY: zeroed mmsghdrs pointing at iovecs that outlive the call.
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: n <= BATCH initialised messages.
        let r = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if r < 0 {
            errors += 1;
            if errors > 1000 {
                return Err(format!(
                    "sendmmsg on {}: {}",
                    cmd.interface,
                    std::io::Error::last_os_error()
                ));
            }
            std::thread::sleep(Duration::from_micros(100));
            continue;
        }
        sent += r as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    // On veth the receiver's softirq work runs in the sender's context, so
    // this is the cost of the whole receive path (and the monitors' taps).
    let cpu_ns = std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    println!(
        "sent {sent} packets in {secs:.3} s: {:.0} pps (send errors {errors}), cpu_ns {cpu_ns}",
        sent as f64 / secs.max(1e-9)
    );
    Ok(())
}

fn sink(cmd: &SinkCmd) -> Result<(), String> {
    let stop = stop_flag()?;
    let sock = UdpSocket::bind(cmd.bind).map_err(|e| format!("binding {}: {e}", cmd.bind))?;
    let small: libc::c_int = 1; // the kernel rounds it up to its minimum
                                // SAFETY: an int option on our socket.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&small as *const libc::c_int).cast(),
            4,
        )
    };
    println!("sink on {}", cmd.bind);
    std::io::stdout().flush().ok();
    wait(&stop, cmd.seconds);
    Ok(())
}

fn enable_stats(cmd: &EnableStatsCmd) -> Result<(), String> {
    let stop = stop_flag()?;
    let _fd = aya::sys::enable_stats(aya::sys::Stats::RunTime)
        .map_err(|e| format!("BPF_ENABLE_STATS: {e}"))?;
    println!("stats enabled");
    std::io::stdout().flush().ok();
    wait(&stop, cmd.seconds);
    Ok(())
}

/// The memlock line of a BPF object's fdinfo: the memory it uses.
fn fdinfo_memlock(fd: BorrowedFd<'_>) -> u64 {
    std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("memlock:")
                    .map(|v| v.trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

fn prog_stats(cmd: &ProgStatsCmd) -> Result<(), String> {
    let mut maps = std::collections::BTreeSet::new();
    let mut found = std::collections::BTreeSet::new();
    for info in aya::programs::loaded_programs() {
        let Ok(info) = info else { continue };
        if !cmd.ids.contains(&info.id()) {
            continue;
        }
        found.insert(info.id());
        println!(
            "prog {} {} {} {}",
            info.id(),
            info.name_as_str().unwrap_or("-"),
            info.run_count(),
            info.run_time().as_nanos()
        );
        if let Ok(Some(ids)) = info.map_ids() {
            maps.extend(ids);
        }
    }
    for id in &cmd.ids {
        if !found.contains(id) {
            return Err(format!("no program with id {id}"));
        }
    }
    let mut bytes = 0u64;
    for id in &maps {
        let m = MapInfo::from_id(*id).map_err(|e| format!("map {id}: {e}"))?;
        let fd = m.fd().map_err(|e| format!("map {id}: {e}"))?;
        bytes += fdinfo_memlock(fd.as_fd());
    }
    println!("maps {} {bytes}", maps.len());
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Args = argh::from_env();
    let r = match &args.cmd {
        Some(Cmd::Attach(c)) => attach(c),
        Some(Cmd::Gen(c)) => gen(c),
        Some(Cmd::Sink(c)) => sink(c),
        Some(Cmd::EnableStats(c)) => enable_stats(c),
        Some(Cmd::ProgStats(c)) => prog_stats(c),
        None => {
            if args.quick {
                args.repeat = 100_000;
                args.packets = 20_000;
                args.random = 20_000;
                args.trials = 1;
            }
            run(&args)
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netprobe-bench: {e} (needs root: CAP_BPF and CAP_NET_ADMIN)");
            ExitCode::from(1)
        }
    }
}
