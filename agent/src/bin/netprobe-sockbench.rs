//! netprobe-sockbench: what the socket-layer probes cost per TCP connection.
//! A loopback connect/accept/close loop runs in a private network namespace
//! (so nothing else shares its counters), in trials of fixed length,
//! alternating without and with the socket probes attached (loaded fresh
//! for each "with" trial; loading is not timed). It prints connections per
//! second of each trial, the medians, their ratio and the difference as
//! microseconds per connection. It asserts nothing.
//!
//! Each connection: connect(), accept(), the client closes, the server
//! closes: ten TCP state changes and one connection event per side, the
//! whole lifecycle the probes follow. Each trial also times a loop of a
//! trivial system call (getppid): where the kernel has no BPF trampoline,
//! the accept probe sits on the exit of every system call
//! (`--accept-probe`, as the agent's `--socket-accept-probe`). The namespace reuses TIME-WAIT ports
//! (net.ipv4.tcp_tw_reuse=1), so the loop never runs out of them. While the
//! probes are attached a thread drains their ring buffer every 10 ms, as
//! the agent would. Needs root.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argh::FromArgs;
use netprobe::sockets::{
    AcceptProbeMode, NetnsScope, SocketConfig, SocketEvent, SocketProbes, SocketProbesMode,
};

#[derive(FromArgs)]
/// Cost of the NetProbe socket probes per TCP connection (loopback
/// connect/accept/close, with and without the probes, alternated).
struct Args {
    /// seconds per trial (default 2)
    #[argh(option, default = "2.0")]
    seconds: f64,
    /// trials of each kind (default 5)
    #[argh(option, default = "5")]
    trials: usize,
    /// a short smoke run: 2 trials of 0.3 s each
    #[argh(switch)]
    quick: bool,
    /// the accept probe: auto, fexit, syscall or off (default auto)
    #[argh(option, default = "AcceptProbeMode::Auto")]
    accept_probe: AcceptProbeMode,
}

fn main() -> ExitCode {
    let mut args: Args = argh::from_env();
    if args.quick {
        args.seconds = 0.3;
        args.trials = 2;
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netprobe-sockbench: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    private_namespace()?;
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("listen: {e}"))?;
    let trial = Duration::from_secs_f64(args.seconds);
    // Warm up: the first connections pay for caches and allocations.
    connect_loop(&listener, Duration::from_millis(200))?;

    let config = SocketConfig {
        mode: SocketProbesMode::Auto,
        netns: NetnsScope::SelfNs,
        max_connections: 16384,
        top_connections: 10,
        ringbuf_size: 1 << 20,
        accept_probe: args.accept_probe,
        ..SocketConfig::default()
    };
    println!(
        "netprobe-sockbench: loopback connect/accept/close, {} trials of {:.1} s each way, alternated, private network namespace",
        args.trials, args.seconds
    );
    println!(
        "{:>5}  {:>6}  {:>10}  {:>8}  {:>11}",
        "trial", "probes", "conns/s", "events", "syscall ns"
    );
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let (mut sys_off, mut sys_on) = (Vec::new(), Vec::new());
    let mut accept_probe = "none";
    let (mut events_total, mut lost_total, mut opens_total) = (0u64, 0u64, 0u64);
    for t in 1..=args.trials {
        let n = connect_loop(&listener, trial)?;
        let rate = n as f64 / args.seconds;
        let ns = syscall_ns(trial / 4);
        println!("{t:>5}  {:>6}  {rate:>10.0}  {:>8}  {ns:>11.1}", "off", "-");
        off.push(rate);
        sys_off.push(ns);

        let mut probes = SocketProbes::load(&config).map_err(|e| e.to_string())?;
        accept_probe = probes.snapshot(0).owners.accept_probe;
        let mut ring = probes.take_ring().ok_or("the socket ring buffer is gone")?;
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(AtomicU64::new(0));
        let drainer = {
            let (stop, events) = (stop.clone(), events.clone());
            std::thread::spawn(move || {
                let drain = |ring: &mut aya::maps::RingBuf<aya::maps::MapData>| {
                    while let Some(item) = ring.next() {
                        if SocketEvent::decode(&item).is_some() {
                            events.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    drain(&mut ring);
                    std::thread::sleep(Duration::from_millis(10));
                }
                drain(&mut ring);
            })
        };
        let before = probes.stats().map_err(|e| e.to_string())?;
        let n = connect_loop(&listener, trial)?;
        let after = probes.stats().map_err(|e| e.to_string())?;
        stop.store(true, Ordering::Relaxed);
        let _ = drainer.join();
        let rate = n as f64 / args.seconds;
        let ev = events.load(Ordering::Relaxed);
        let ns = syscall_ns(trial / 4);
        println!("{t:>5}  {:>6}  {rate:>10.0}  {ev:>8}  {ns:>11.1}", "on");
        on.push(rate);
        sys_on.push(ns);
        use netprobe::abi::sock::{ACTIVE_OPENS, EVENTS_LOST};
        opens_total += after.c[ACTIVE_OPENS] - before.c[ACTIVE_OPENS];
        lost_total += after.c[EVENTS_LOST] - before.c[EVENTS_LOST];
        events_total += ev;
        drop(probes); // detaches before the next "off" trial
    }
    let (m_off, m_on) = (median(&mut off), median(&mut on));
    println!(
        "median: {m_off:.0} conns/s without, {m_on:.0} with: ratio {:.3} ({:+.1}%), {:.2} µs more per connection",
        m_on / m_off,
        (m_on / m_off - 1.0) * 100.0,
        (1e6 / m_on) - (1e6 / m_off)
    );
    let (s_off, s_on) = (median(&mut sys_off), median(&mut sys_on));
    println!(
        "median system call (getppid): {s_off:.1} ns without, {s_on:.1} ns with: ratio {:.3}, {:+.1} ns per call (accept probe: {accept_probe})",
        s_on / s_off,
        s_on - s_off
    );
    println!(
        "with the probes: {opens_total} active opens counted, {events_total} connection events received, {lost_total} lost"
    );
    Ok(())
}

/// Nanoseconds per getppid() system call, timed over `d`.
fn syscall_ns(d: Duration) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < d {
        for _ in 0..1000 {
            // SAFETY: getppid takes no argument and cannot fail.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
        n += 1000;
    }
    start.elapsed().as_nanos() as f64 / n as f64
}

/// Connections completed in `d`: connect, accept, client close, server close.
fn connect_loop(l: &TcpListener, d: Duration) -> Result<u64, String> {
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let end = Instant::now() + d;
    let mut n = 0u64;
    let mut buf = [0u8; 1];
    while Instant::now() < end {
        let c = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        let (mut a, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
        drop(c);
        // Wait for the client's FIN, so the server closes from CLOSE-WAIT.
        let _ = a.read(&mut buf);
        drop(a);
        n += 1;
    }
    Ok(n)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Moves the process (single-threaded still) into a new network namespace
/// with loopback up and TIME-WAIT ports reusable.
fn private_namespace() -> Result<(), String> {
    // SAFETY: called before any thread is started.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(format!(
            "unshare(CLONE_NEWNET): {} (run as root)",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: plain ioctls on a socket of the new namespace.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        if fd < 0 || libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr) != 0 {
            return Err("reading the flags of lo".into());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr) != 0 {
            return Err("bringing lo up".into());
        }
        libc::close(fd);
    }
    for (path, value) in [
        ("/proc/sys/net/ipv4/tcp_tw_reuse", "1"),
        ("/proc/sys/net/ipv4/ip_local_port_range", "1024 65535"),
    ] {
        std::fs::write(path, value).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}
