//! netprobe-bench: nanoseconds per packet of the NetProbe probes, measured
//! in the kernel with `BPF_PROG_TEST_RUN`, beside empty programs and a naive
//! flow-accounting program (`probes/bench_naive.bpf.c`) measured the same way
//! in the same run (`probe_cost.rs` has the method). Needs root; attaches
//! nothing.
//!
//! Subcommands are the small tools `build/bench.sh` drives (`tools.rs`).

mod objects;
mod probe_cost;
mod tools;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;

use argh::FromArgs;

#[derive(FromArgs)]
/// Nanoseconds per packet of the NetProbe probes (BPF_PROG_TEST_RUN), beside
/// empty and naive programs; subcommands are build/bench.sh's tools.
pub struct Args {
    #[argh(subcommand)]
    cmd: Option<Cmd>,
    /// runs of the one-flow packet in one test-run call (default 1000000)
    #[argh(option, default = "1_000_000")]
    repeat: u32,
    /// calls (one packet each) measured in the per-call cases: 1 flow,
    /// 1k flows and each random flood (default 100000)
    #[argh(option, default = "100_000")]
    packets: u32,
    /// measurements per cell, the minimum is reported (default 3)
    #[argh(option, default = "3")]
    trials: u32,
    /// rounds of the summary, the median is reported (default 5)
    #[argh(option, default = "5")]
    rounds: u32,
    /// a smoke run in a few seconds: repeat 100000, packets 10000,
    /// trials 1, rounds 1 (figures are rougher)
    #[argh(switch)]
    quick: bool,
    /// print only the summary (skip the table)
    #[argh(switch)]
    summary_only: bool,
    /// measure this probe object instead of the built-in one, e.g. a
    /// modified probes/netprobe.bpf.o, to compare a change in the same way
    #[argh(option)]
    object: Option<std::path::PathBuf>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
pub enum Cmd {
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
pub struct AttachCmd {
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
pub struct GenCmd {
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
pub struct SinkCmd {
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
pub struct EnableStatsCmd {
    /// exit after this many seconds at most (default 900)
    #[argh(option, default = "900")]
    seconds: u64,
}

#[derive(FromArgs)]
#[argh(subcommand, name = "prog-stats")]
/// Print `prog ID NAME RUN_CNT RUN_TIME_NS` for each program id, then
/// `maps N BYTES`: how many maps those programs use and their memory
/// (fdinfo memlock).
pub struct ProgStatsCmd {
    /// program ids
    #[argh(positional)]
    ids: Vec<u32>,
}

fn main() -> ExitCode {
    let mut args: Args = argh::from_env();
    let r = match &args.cmd {
        Some(Cmd::Attach(c)) => tools::attach(c),
        Some(Cmd::Gen(c)) => tools::gen(c),
        Some(Cmd::Sink(c)) => tools::sink(c),
        Some(Cmd::EnableStats(c)) => tools::enable_stats(c),
        Some(Cmd::ProgStats(c)) => tools::prog_stats(c),
        None => {
            if args.quick {
                args.repeat = 100_000;
                args.packets = 10_000;
                args.trials = 1;
                args.rounds = 1;
            }
            probe_cost::run(&args)
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
