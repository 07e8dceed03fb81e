//! The test-run table: ns per packet of each probe program, per traffic
//! case and probe configuration, beside the empty and naive programs.
//!
//! Cases (60-byte frames: 64 on the wire):
//! - `1flow-repeat`: one TCP packet, one `BPF_PROG_TEST_RUN` call with
//!   `--repeat` runs (after one call that creates the flow); the kernel
//!   reports the mean. Everything stays hot: the floor.
//! - `1flow`: the same packet, `--packets` calls of one run each. Each
//!   call's duration carries the same fixed share of timer reads and
//!   `local_bh_disable`/`enable` and is rounded down to whole ns, so the
//!   per-call cases are compared with the empty program measured over the
//!   same packets the same way ("net" is the difference).
//! - `1kflows`: 1000 flows cycled, after one round that creates them.
//! - `flood-tcp`, `flood-udp`: random 5-tuples (source, destination, both
//!   ports), TCP ACK or UDP, each packet once. A sustained flood, not its
//!   first second: an unmeasured warm-up of twice the admission burst
//!   drains the bucket first, as the live flood in `build/bench.sh` does.
//!   UDP from random ports also feeds the scan sketches on every packet.
//!
//! Configurations: `default` is the agent's defaults; `no-detect` turns the
//! detectors off (`--no-detect`), `no-filter` the flow_seen filter, and
//! `no-admit` the admission bucket (`--flow-admit-rate 0`). Each cell gets
//! a freshly loaded object (empty maps, full bucket) per trial and reports
//! the minimum over `--trials`: shared machines add bursts of noise that
//! only ever make a run slower. The thread is pinned to one CPU, so the
//! per-CPU bucket is the one that CPU's traffic would see.
//!
//! The summary's flood ratio is flood net ns over `1flow` net ns: the same
//! per-call method on both sides, measured back to back in each of
//! `--rounds` rounds (see `summary`).

use std::os::fd::{AsFd, BorrowedFd};

use aya::maps::{MapData, PerCpuHashMap};
use aya::Ebpf;
use netprobe::abi::{Hook, PacketStats, StatsKey};
use netprobe::detect::{DetectConfig, Global};
use netprobe::manager::ProbeConfig;
use netprobe::packet::{tcp, Frame};
use netprobe::probes;
use netprobe::testrun::{test_run, Context, TestRun};

use crate::objects::{bench_naive_object, load, Kind, Rng};
use crate::Args;

/// A program to measure: which probe, which baselines, what context.
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

const CONFIGS: [&str; 4] = ["default", "no-detect", "no-filter", "no-admit"];

/// The probe globals of a configuration: the agent's defaults, one changed.
fn globals(config: &str) -> Vec<(&'static str, Global)> {
    let mut g = DetectConfig::default().globals();
    let seen = probes::flow_seen_entries(ProbeConfig::default().max_flows);
    g.push((probes::GLOBAL_SEEN_MASK, Global::U32(seen - 1)));
    let set = |g: &mut Vec<(&'static str, Global)>, name: &'static str, v: Global| {
        g.retain(|(n, _)| *n != name);
        g.push((name, v));
    };
    match config {
        "no-detect" => set(&mut g, "cfg_detect", Global::U32(0)),
        "no-filter" => set(&mut g, probes::GLOBAL_SEEN_MASK, Global::U32(0)),
        "no-admit" => set(&mut g, probes::GLOBAL_FLOW_ADMIT_RATE, Global::U64(0)),
        _ => {}
    }
    g
}

/// How a case feeds its packets.
enum Feed {
    /// One packet, one call with `repeat` runs.
    Repeat,
    /// `warm` calls unmeasured, then `n` measured, cycling over the packets.
    Each { warm: usize, n: usize },
}

struct Case {
    name: &'static str,
    pkts: Vec<Vec<u8>>,
    feed: Feed,
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

fn fd<'a>(ebpf: &'a Ebpf, name: &str) -> BorrowedFd<'a> {
    ebpf.program(name).unwrap().fd().unwrap().as_fd()
}

/// Mean ns per packet of one program over one case (fresh state is the
/// caller's); `warmed` runs between the unmeasured and the measured calls.
fn measure(
    prog: BorrowedFd<'_>,
    kind: Kind,
    case: &Case,
    repeat: u32,
    mut warmed: impl FnMut() -> Result<(), String>,
) -> Result<f64, String> {
    let ctx = context(kind);
    let call = |pkt: &[u8], repeat: u32| {
        test_run(prog, &TestRun::new(pkt).repeat(repeat).context(ctx))
            .map(|o| u64::from(o.duration_ns))
            .map_err(|e| e.to_string())
    };
    match case.feed {
        Feed::Repeat => {
            call(&case.pkts[0], 1)?; // creates the flow
            warmed()?;
            Ok(call(&case.pkts[0], repeat)? as f64)
        }
        Feed::Each { warm, n } => {
            let len = case.pkts.len();
            for i in 0..warm {
                call(&case.pkts[i % len], 1)?;
            }
            warmed()?;
            let mut ns = Vec::with_capacity(n);
            for i in warm..warm + n {
                ns.push(call(&case.pkts[i % len], 1)?);
            }
            Ok(trimmed_mean(ns))
        }
    }
}

/// Calls dropped from the slow end of a per-call case, in thousandths.
const TRIM_PER_MILLE: usize = 10;

/// The mean of per-call durations without the slowest 1%. A timer
/// interrupt or the hypervisor taking the CPU lands inside some calls and
/// adds microseconds to each: a handful of them moved the plain mean by
/// tens of ns from run to run. The probe's own slow paths (a sampled
/// lookup, an admitted insert) are one packet in 16 or rarer, far more
/// than the 1% dropped, so they stay in.
fn trimmed_mean(mut ns: Vec<u64>) -> f64 {
    ns.sort_unstable();
    let keep = (ns.len() - ns.len() * TRIM_PER_MILLE / 1000).max(1);
    ns[..keep].iter().sum::<u64>() as f64 / keep as f64
}

/// (flows inserted, flows refused by admission) on ifindex 1 for a hook.
fn flow_counts(ebpf: &Ebpf, hook: Hook) -> Result<(u64, u64), String> {
    let map = ebpf
        .map(probes::MAP_PACKET_STATS)
        .ok_or("no packet_stats map")?;
    let m: PerCpuHashMap<&MapData, StatsKey, PacketStats> =
        PerCpuHashMap::try_from(map).map_err(|e| e.to_string())?;
    let key = StatsKey {
        ifindex: 1,
        hook: hook as u32,
    };
    let per_cpu = m.get(&key, 0).map_err(|e| e.to_string())?;
    let mut sum = PacketStats::default();
    per_cpu.iter().for_each(|v| sum.add(v));
    Ok((sum.flows_created, sum.flow_miss[0]))
}

fn tcp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    // Ethernet + IPv4 + TCP + 6 bytes: 60, 64 on the wire with the FCS.
    Frame::new()
        .ipv4(src, dst)
        .tcp(sport, dport, tcp::ACK)
        .payload(6)
        .bytes()
}

fn udp_packet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    // Ethernet + IPv4 + UDP + 18 bytes: 60 like the TCP ones.
    Frame::new()
        .ipv4(src, dst)
        .udp(sport, dport)
        .payload(18)
        .bytes()
}

/// `n` packets with random 5-tuples (never a zero first octet).
fn random_packets(
    rng: &mut Rng,
    n: usize,
    make: fn([u8; 4], [u8; 4], u16, u16) -> Vec<u8>,
) -> Vec<Vec<u8>> {
    (0..n)
        .map(|_| {
            let a = rng.next().to_be_bytes();
            let b = rng.next().to_be_bytes();
            make(
                [a[0] | 1, a[1], a[2], a[3]],
                [b[0] | 1, b[1], b[2], b[3]],
                u16::from_be_bytes([a[4], a[5]]),
                u16::from_be_bytes([b[4], b[5]]),
            )
        })
        .collect()
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

/// Unmeasured flood packets before the measured ones: twice the default
/// admission burst, so the bucket is empty when measuring starts.
fn flood_warm() -> usize {
    2 * ProbeConfig::default().flow_admit_burst as usize
}

fn cases(args: &Args) -> Vec<Case> {
    let n = args.packets as usize;
    let warm = flood_warm();
    let one = tcp_packet([192, 0, 2, 1], [198, 51, 100, 1], 40000, 443);
    let thousand = (0..1000u32)
        .map(|i| {
            tcp_packet(
                [10, 1, (i >> 8) as u8, i as u8],
                [198, 51, 100, 1],
                20000 + i as u16,
                443,
            )
        })
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    vec![
        Case {
            name: "1flow-repeat",
            pkts: vec![one.clone()],
            feed: Feed::Repeat,
        },
        Case {
            name: "1flow",
            pkts: vec![one],
            feed: Feed::Each { warm: 1, n },
        },
        Case {
            name: "1kflows",
            pkts: thousand,
            feed: Feed::Each { warm: 1000, n },
        },
        Case {
            name: "flood-tcp",
            pkts: random_packets(&mut rng, warm + n, tcp_packet),
            feed: Feed::Each { warm, n },
        },
        Case {
            name: "flood-udp",
            pkts: random_packets(&mut rng, warm + n, udp_packet),
            feed: Feed::Each { warm, n },
        },
    ]
}

/// min over trials of f, which loads what it needs fresh each time.
fn best(trials: u32, mut f: impl FnMut() -> Result<f64, String>) -> Result<f64, String> {
    let mut m = f64::INFINITY;
    for _ in 0..trials.max(1) {
        m = m.min(f()?);
    }
    Ok(m)
}

/// The probe object: `--object`, else the one built into the agent.
fn probe_object(args: &Args) -> Result<std::borrow::Cow<'static, [u8]>, String> {
    match &args.object {
        None => Ok(probes::netprobe_object().into()),
        Some(path) => std::fs::read(path)
            .map(Into::into)
            .map_err(|e| format!("reading {}: {e}", path.display())),
    }
}

pub fn run(args: &Args) -> Result<(), String> {
    let cpu = pin_cpu();
    let cases = cases(args);
    let object = probe_object(args)?;
    let empty = load(
        probes::bench_empty_object(),
        &[("bench_empty_xdp", Kind::Xdp), ("bench_empty_tc", Kind::Tc)],
        &[],
    )?;
    let naive_progs = [("bench_naive_xdp", Kind::Xdp), ("bench_naive_tc", Kind::Tc)];

    let uts = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "netprobe-bench: kernel {}, pinned to cpu {}, BPF_PROG_TEST_RUN, 60-byte packets{}",
        uts.trim(),
        cpu.map_or("-".to_string(), |c| c.to_string()),
        args.object
            .as_ref()
            .map_or(String::new(), |p| format!(", probes from {}", p.display())),
    );
    if args.summary_only {
        return summary(&cases, &empty, &object, args);
    }
    println!(
        "1flow-repeat: one call, repeat {}; per-call cases: {} measured calls, the \
         mean without the slowest 1% (floods after {} unmeasured); minimum \
         of {} trials; inserted/refused: new flows during the measured calls, last trial",
        args.repeat,
        args.packets,
        flood_warm(),
        args.trials.max(1)
    );
    println!();
    println!(
        "{:<13} {:<10} {:<11} {:>8} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "case",
        "config",
        "program",
        "ns/pkt",
        "empty ns",
        "net ns",
        "naive ns",
        "vs naive",
        "inserted",
        "refused"
    );

    for case in &cases {
        for t in TARGETS {
            let base = best(args.trials, || {
                measure(fd(&empty, t.empty), t.kind, case, args.repeat, || Ok(()))
            })?;
            let naive = best(args.trials, || {
                let obj = load(bench_naive_object(), &naive_progs, &[])?;
                measure(fd(&obj, t.naive), t.kind, case, args.repeat, || Ok(()))
            })?;
            for config in CONFIGS {
                let g = globals(config);
                let mut flows = (0, 0);
                let probe = best(args.trials, || {
                    let obj = load(&object, &[(t.prog, t.kind)], &g)?;
                    let mut before = (0, 0);
                    let ns = measure(fd(&obj, t.prog), t.kind, case, args.repeat, || {
                        before = flow_counts(&obj, t.hook)?;
                        Ok(())
                    })?;
                    let after = flow_counts(&obj, t.hook)?;
                    flows = (after.0 - before.0, after.1 - before.1);
                    Ok(ns)
                })?;
                println!(
                    "{:<13} {:<10} {:<11} {:>8.1} {:>9.1} {:>8.1} {:>9.1} {:>8.2}x {:>9} {:>9}",
                    case.name,
                    config,
                    t.label,
                    probe,
                    base,
                    probe - base,
                    naive,
                    probe / naive,
                    flows.0,
                    flows.1
                );
            }
        }
    }
    summary(&cases, &empty, &object, args)
}

/// Medians over `rounds` of figures measured back to back: shared hosts
/// drift by tens of percent within a minute, so two cells of the table
/// measured a minute apart make a poor ratio. Each round measures, for one
/// program, the empty program and the probe (default and no-detect, fresh
/// objects) on 1flow, flood-tcp and flood-udp in a row; the ratios are
/// formed within the round.
fn summary(cases: &[Case], empty: &Ebpf, object: &[u8], args: &Args) -> Result<(), String> {
    let rounds = args.rounds.max(1) as usize;
    let find = |name| cases.iter().find(|c| c.name == name).unwrap();
    let (one, tcp, udp) = (find("1flow"), find("flood-tcp"), find("flood-udp"));
    println!();
    println!(
        "summary: medians of {rounds} rounds, each measuring a program's cells back to back; \
         net ns (less the empty program, per call on both sides)"
    );
    println!(
        "{:<11} {:>7} {:>10} {:>10} {:>10} {:>10} | {:>9} {:>9} {:>9}",
        "program",
        "1flow",
        "flood-tcp",
        "tcp ratio",
        "flood-udp",
        "udp ratio",
        "1flow off",
        "tcp off",
        "udp off"
    );
    for t in TARGETS {
        // per round: [1flow, tcp, udp] net ns with detection on, then off
        let mut on = vec![Vec::new(); 3];
        let mut off = vec![Vec::new(); 3];
        let mut ratio = vec![Vec::new(); 2];
        for _ in 0..rounds {
            let mut net_on = [0.0; 3];
            for (i, case) in [one, tcp, udp].into_iter().enumerate() {
                let base = measure(fd(empty, t.empty), t.kind, case, args.repeat, || Ok(()))?;
                for (config, out) in [("default", &mut on), ("no-detect", &mut off)] {
                    let obj = load(object, &[(t.prog, t.kind)], &globals(config))?;
                    let ns =
                        measure(fd(&obj, t.prog), t.kind, case, args.repeat, || Ok(()))? - base;
                    out[i].push(ns);
                    if config == "default" {
                        net_on[i] = ns;
                    }
                }
            }
            ratio[0].push(net_on[1] / net_on[0]);
            ratio[1].push(net_on[2] / net_on[0]);
        }
        let m = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{:<11} {:>7.1} {:>10.1} {:>9.2}x {:>10.1} {:>9.2}x | {:>9.1} {:>9.1} {:>9.1}",
            t.label,
            m(&mut on[0]),
            m(&mut on[1]),
            m(&mut ratio[0]),
            m(&mut on[2]),
            m(&mut ratio[1]),
            m(&mut off[0]),
            m(&mut off[1]),
            m(&mut off[2])
        );
    }
    println!("(ratio: flood net ns over 1flow net ns of the same round; off: --no-detect)");
    Ok(())
}
