//! netprobe-bench: nanoseconds per packet of the NetProbe probes, measured
//! in the kernel with `BPF_PROG_TEST_RUN`, beside empty programs measured
//! the same way in the same run. Needs root; attaches nothing.
//!
//! Method:
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
//! - "inserted" / "refused": new flows the probe inserted, and new flows
//!   the admission bucket turned away, in the last trial.

use std::os::fd::{AsFd, BorrowedFd};
use std::process::ExitCode;

use argh::FromArgs;
use aya::maps::{MapData, PerCpuHashMap};
use aya::programs::{SchedClassifier, Xdp};
use aya::{Ebpf, EbpfLoader};
use netprobe::abi::{Hook, PacketStats, StatsKey};
use netprobe::packet::{tcp, Frame};
use netprobe::probes;
use netprobe::testrun::{test_run, Context, TestRun};

#[derive(FromArgs)]
/// Nanoseconds per packet of the NetProbe probes (BPF_PROG_TEST_RUN), beside empty programs.
struct Args {
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
    kind: Kind,
    hook: Hook,
}

const TARGETS: [Target; 3] = [
    Target {
        label: "xdp",
        prog: probes::PROG_XDP,
        empty: "bench_empty_xdp",
        kind: Kind::Xdp,
        hook: Hook::Xdp,
    },
    Target {
        label: "tc_ingress",
        prog: probes::PROG_TC_INGRESS,
        empty: "bench_empty_tc",
        kind: Kind::Tc,
        hook: Hook::TcIngress,
    },
    Target {
        label: "tc_egress",
        prog: probes::PROG_TC_EGRESS,
        empty: "bench_empty_tc",
        kind: Kind::Tc,
        hook: Hook::TcEgress,
    },
];

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

    let empty = load(
        probes::bench_empty_object(),
        &[("bench_empty_xdp", Kind::Xdp), ("bench_empty_tc", Kind::Tc)],
        None,
    )?;

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
        "{:<16} {:<9} {:<11} {:>8} {:>10} {:>7} {:>8} {:>9} {:>9}",
        "case",
        "admission",
        "program",
        "ns/pkt",
        "empty ns",
        "ratio",
        "net ns",
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
                let mut flows = (0, 0);
                for _ in 0..args.trials.max(1) {
                    let obj = load(probes::netprobe_object(), &[(t.prog, t.kind)], rate)?;
                    let (p, b) = match case {
                        Case::OneFlow => (
                            ns_repeat(fd(&obj, t.prog), t.kind, &one, args.repeat)?,
                            ns_repeat(fd(&empty, t.empty), t.kind, &one, args.repeat)?,
                        ),
                        Case::Cycle { warm } => {
                            ns_each(fd(&obj, t.prog), t.kind, &thousand, *warm)?;
                            (
                                ns_each(
                                    fd(&obj, t.prog),
                                    t.kind,
                                    &thousand,
                                    args.packets as usize,
                                )?,
                                ns_each(
                                    fd(&empty, t.empty),
                                    t.kind,
                                    &thousand,
                                    args.packets as usize,
                                )?,
                            )
                        }
                        Case::Once => (
                            ns_each(fd(&obj, t.prog), t.kind, &random, random.len())?,
                            ns_each(fd(&empty, t.empty), t.kind, &random, random.len())?,
                        ),
                    };
                    probe = probe.min(p);
                    base = base.min(b);
                    flows = flow_counts(&obj, t.hook)?;
                }
                println!(
                    "{:<16} {:<9} {:<11} {:>8.1} {:>10.1} {:>6.1}x {:>8.1} {:>9} {:>9}",
                    name,
                    admission,
                    t.label,
                    probe,
                    base,
                    if base > 0.0 { probe / base } else { f64::NAN },
                    probe - base,
                    flows.0,
                    flows.1
                );
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Args = argh::from_env();
    if args.quick {
        args.repeat = 100_000;
        args.packets = 20_000;
        args.random = 20_000;
        args.trials = 1;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netprobe-bench: {e} (needs root: CAP_BPF and CAP_NET_ADMIN)");
            ExitCode::from(1)
        }
    }
}
