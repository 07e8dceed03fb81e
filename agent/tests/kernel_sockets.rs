//! Kernel tier for the socket layer: the real `socket.bpf.o`, loaded and
//! attached to the TCP tracepoints, while real TCP connections run over
//! loopback in a private network namespace (this test thread's own). The
//! probes count only that namespace, so their counters must equal the
//! deltas of its `/proc/net/snmp` exactly.
//!
//! Needs root (CAP_BPF/CAP_PERFMON or CAP_SYS_ADMIN, and CAP_NET_ADMIN for
//! the namespace) and a kernel with BTF: a plain `cargo test` lists these
//! tests as ignored (the kernel tier); build/test.sh runs them, and without
//! privileges or BTF every test fails saying so.
//!
//! `co_re_relocates_against_debian_6_1` is ignored by default: it needs the
//! BTF of Debian's 6.1 kernels, which `build/vmlinux.sh --btf` extracts to
//! build/.cache/btf (build/e2e-sockets.sh runs both).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use netprobe::clock::boottime_ns;
use netprobe::sockets::{
    AcceptProbeMode, EventKind, NetnsScope, Outcome, OwnerSource, SocketConfig, SocketEvent,
    SocketProbes, SocketProbesMode, KERNEL_BTF,
};

mod common;
#[path = "kernel_sockets/owners.rs"]
mod owners;
#[path = "kernel_sockets/ss.rs"]
mod ss;

fn require_privileges() {
    common::require_privileges(
        "socket kernel tests (loading tracing programs, creating a network namespace)",
    );
    assert!(
        std::path::Path::new(KERNEL_BTF).exists(),
        "the socket probes need kernel BTF ({KERNEL_BTF}); this kernel has none"
    );
}

/// Runs `f` on a thread of its own in a new network namespace with `lo` up.
fn in_private_netns<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // SAFETY: unshare affects only this thread.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(
                r,
                0,
                "unshare(CLONE_NEWNET): {}",
                std::io::Error::last_os_error()
            );
            lo_up();
            f()
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn lo_up() {
    // SAFETY: plain ioctls on a socket of this thread's namespace.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        assert!(fd >= 0);
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            ifr.ifr_name[i] = *b as libc::c_char;
        }
        assert_eq!(libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut ifr), 0);
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        assert_eq!(
            libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &ifr),
            0,
            "bringing lo up"
        );
        libc::close(fd);
    }
    // IPv6 ::1 appears with lo up; wait for it (bounded).
    for _ in 0..50 {
        if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("::1 did not come up on lo");
}

/// The Tcp: line of this thread's namespace.
pub fn snmp() -> HashMap<String, i64> {
    let text = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("Tcp:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    lines[0][1..]
        .iter()
        .zip(&lines[1][1..])
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: valid fd and option buffer.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
}

/// One connection through `l`: `n` bytes each way, then an orderly close
/// (client first).
fn exchange(l: &TcpListener, n: usize) {
    let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut a, _) = l.accept().unwrap();
    let buf = vec![7u8; n];
    c.write_all(&buf).unwrap();
    let mut got = vec![0u8; n];
    a.read_exact(&mut got).unwrap();
    a.write_all(&buf).unwrap();
    c.read_exact(&mut got).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(a.read(&mut got).unwrap(), 0);
    drop(a);
    drop(c);
}

/// A port of `ip` nothing listens on.
fn closed_port(ip: std::net::IpAddr) -> SocketAddr {
    let l = TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

fn config() -> SocketConfig {
    SocketConfig {
        mode: SocketProbesMode::Auto,
        netns: NetnsScope::SelfNs,
        max_connections: 1024,
        top_connections: 8,
        ringbuf_size: 1 << 20,
        // The rows of the owner tests need an accept probe on every kernel;
        // this host refuses fexit, so Auto falls back to the syscall exit.
        accept_probe: AcceptProbeMode::Auto,
        ..SocketConfig::default()
    }
}

/// This process's command name, as `ss -p` and `/proc/PID/stat` show it.
fn process_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap()
        .trim_end()
        .to_string()
}

fn load(config: SocketConfig) -> SocketProbes {
    SocketProbes::load(&config).unwrap_or_else(|e| panic!("loading the socket probes: {e}"))
}

/// Raises this process's open-file limit to its hard limit (the tests hold
/// a few thousand sockets).
fn raise_nofile() -> u64 {
    // SAFETY: plain get/setrlimit on this process.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut l), 0);
        l.rlim_cur = l.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &l), 0);
        l.rlim_cur
    }
}

fn delta(a: &HashMap<String, i64>, b: &HashMap<String, i64>, k: &str) -> u64 {
    (b[k] - a[k]) as u64
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn counts_equal_snmp_in_a_private_namespace() {
    require_privileges();
    in_private_netns("np-sock-test", || {
        let mut probes = SocketProbes::load(&config()).unwrap_or_else(|e| panic!("{e}"));
        let mut ring = probes.take_ring().unwrap();
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<SocketEvent>::new()));
        let sink = events.clone();
        probes.add_hook(Box::new(move |e| sink.lock().unwrap().push(e.clone())));
        let k0 = snmp();
        let s0 = probes.snapshot(boottime_ns()).counters;
        assert_eq!(
            s0.opened_active + s0.opened_passive,
            0,
            "a new namespace has no connections"
        );

        let l4 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let l6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
        for i in 0..12 {
            exchange(if i % 2 == 0 { &l4 } else { &l6 }, 1000 + i * 100);
        }

        // Held open: the established gauge and the lists in /status.
        let mut held = Vec::new();
        for (i, l) in [&l4, &l6, &l4].into_iter().enumerate() {
            let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (mut a, _) = l.accept().unwrap();
            let n = 20_000 * (i + 1);
            c.write_all(&vec![1u8; n]).unwrap();
            let mut got = vec![0u8; n];
            a.read_exact(&mut got).unwrap();
            held.push((c, a, n));
        }
        std::thread::sleep(Duration::from_millis(50)); // let the last ACKs in
        let snap = probes.snapshot(boottime_ns());
        let k_held = snmp();
        assert_eq!(
            snap.counters.established, k_held["CurrEstab"] as u64,
            "established gauge vs CurrEstab"
        );
        assert_eq!(snap.counters.established, 6);
        assert_eq!(snap.connections.entries, 6, "{:?}", snap.connections);
        let busiest = &snap.connections.busiest;
        assert_eq!(busiest.len(), 6);
        // bytes_acked counts the SYN too, as `ss -i` shows it.
        assert_eq!(
            busiest[0].bytes_sent.max(busiest[0].bytes_received),
            60_001,
            "{busiest:?}"
        );
        let client = busiest
            .iter()
            .find(|c| c.bytes_sent == 60_001)
            .expect("the client side of the busiest");
        assert_eq!(client.direction, netprobe::sockets::Direction::Active);
        assert_eq!(client.pid, Some(std::process::id()));
        // The process's name (its main thread's, as ss -p shows it), not
        // this thread's.
        assert_eq!(client.comm.as_deref(), Some(process_comm().as_str()));
        assert_eq!(client.owner_source, OwnerSource::Connect);
        assert!(
            client.srtt_seconds.is_some_and(|s| s > 0.0 && s < 1.0),
            "{client:?}"
        );
        let server = busiest.iter().find(|c| c.bytes_received == 60_000).unwrap();
        assert_eq!(server.direction, netprobe::sockets::Direction::Passive);
        assert_eq!(server.local_port, l4.local_addr().unwrap().port());
        assert_eq!(
            server.pid,
            Some(std::process::id()),
            "passive: the accepting process"
        );
        assert_eq!(server.owner_source, OwnerSource::Accept);
        let longest = &snap.connections.longest_lived;
        assert!(
            longest
                .windows(2)
                .all(|w| w[0].duration_seconds >= w[1].duration_seconds),
            "{longest:?}"
        );

        // Refused (no listener): a failure and a reset each way.
        for ip in [
            Ipv4Addr::LOCALHOST.into(),
            Ipv6Addr::LOCALHOST.into(),
            Ipv4Addr::LOCALHOST.into(),
        ] {
            let e = TcpStream::connect(closed_port(ip)).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        // Reset by the server (SO_LINGER 0) and by the client.
        for rst_by_server in [true, false] {
            let c = TcpStream::connect(l4.local_addr().unwrap()).unwrap();
            let (a, _) = l4.accept().unwrap();
            let (closer, mut other) = if rst_by_server { (a, c) } else { (c, a) };
            set_linger_zero(&closer);
            drop(closer);
            other
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let e = other.read(&mut [0u8; 4]).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
        }
        for (c, a, _) in held.drain(..) {
            drop(c);
            drop(a);
        }
        std::thread::sleep(Duration::from_millis(100));
        let k1 = snmp();
        let s1 = probes.snapshot(boottime_ns()).counters;
        probes.drain(&mut ring);

        let pairs = [
            ("ActiveOpens", s1.opened_active),
            ("PassiveOpens", s1.opened_passive),
            ("AttemptFails", s1.failed),
            ("EstabResets", s1.closed_aborted),
            ("RetransSegs", s1.retransmitted_segments),
        ];
        for (k, v) in pairs {
            assert_eq!(
                v,
                delta(&k0, &k1, k),
                "{k}: probes {v}, /proc/net/snmp delta {}",
                delta(&k0, &k1, k)
            );
            eprintln!(
                "ok: {k}: probes {v} = /proc/net/snmp delta {}",
                delta(&k0, &k1, k)
            );
        }
        assert_eq!(
            (s1.opened_active, s1.opened_passive, s1.failed),
            (20, 17, 3)
        );
        // Kernels from 6.10 trace every RST they count in OutRsts; older ones
        // only those sent from a full socket.
        let outrsts = delta(&k0, &k1, "OutRsts");
        assert!(
            s1.resets_sent <= outrsts && s1.resets_sent >= 2,
            "resets sent {} vs OutRsts {outrsts}",
            s1.resets_sent
        );
        assert_eq!(s1.resets_received, 5, "3 refused + 2 aborted connections");
        assert_eq!(s1.established, k1["CurrEstab"] as u64);
        assert_eq!(s1.established, 0);
        assert_eq!(s1.events_lost, 0);

        let evs = events.lock().unwrap();
        let closed: Vec<&SocketEvent> = evs
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Closed(_)))
            .collect();
        assert_eq!(
            closed.len() as u64,
            s1.opened_active + s1.opened_passive,
            "one close event per connection"
        );
        let failed: Vec<&&SocketEvent> = closed
            .iter()
            .filter(|e| e.kind == EventKind::Closed(Outcome::Failed))
            .collect();
        assert_eq!(failed.len(), 3);
        for f in &failed {
            assert_eq!(f.error, libc::ECONNREFUSED as u32);
            assert_eq!(f.pid, Some(std::process::id()));
            assert_eq!(f.comm.as_deref(), Some(process_comm().as_str()));
            assert_ne!(f.local_port, 0, "{f:?}");
            assert_eq!(f.state, "syn_sent");
        }
        assert_eq!(failed.iter().filter(|f| f.family == "ipv6").count(), 1);
        let resets_in = evs
            .iter()
            .filter(|e| e.kind == EventKind::ResetReceived)
            .count();
        assert_eq!(resets_in, 5);
        let srtt = closed.iter().filter(|e| e.srtt_seconds > 0.0).count();
        assert!(srtt >= 30, "RTT samples at close: {srtt}");
        let snap = probes.snapshot(boottime_ns());
        assert_eq!(snap.connections.recent_failures.len(), 3);
        assert_eq!(
            snap.connections.recent_failures[0].error.as_deref(),
            Some("ECONNREFUSED")
        );
        assert_eq!(
            snap.connections.entries, 0,
            "every connection closed: the table is empty"
        );
        assert!(snap.srtt.count >= 30 && snap.duration.count >= 30);

        // Another namespace's connections are not counted.
        in_private_netns("np-sock-other", || {
            let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            for _ in 0..3 {
                exchange(&l, 10);
            }
            let _ = TcpStream::connect(closed_port(Ipv4Addr::LOCALHOST.into()));
        });
        let s2 = probes.snapshot(boottime_ns()).counters;
        assert_eq!(s2, s1, "connections of another namespace were counted");
    });
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn connections_open_before_load_are_found() {
    require_privileges();
    in_private_netns("np-sock-seed", || {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut a, _) = l.accept().unwrap();
        c.write_all(&[3u8; 5000]).unwrap();
        let mut got = [0u8; 5000];
        a.read_exact(&mut got).unwrap();

        let mut probes = SocketProbes::load(&config()).unwrap_or_else(|e| panic!("{e}"));
        let snap = probes.snapshot(boottime_ns());
        assert_eq!(
            snap.counters.established, 2,
            "both ends, found by the iterator"
        );
        assert_eq!(snmp()["CurrEstab"], 2);
        assert!(snap.live_stats);
        let mut conns = snap.connections.longest_lived.clone();
        conns.sort_by_key(|c| c.bytes_sent);
        assert_eq!(conns.len(), 2);
        assert!(conns
            .iter()
            .all(|c| c.since_agent_start && c.direction == netprobe::sockets::Direction::Unknown));
        // Their owner, learned from /proc: this process holds both ends.
        assert!(
            conns.iter().all(|c| c.pid == Some(std::process::id())
                && c.comm.as_deref() == Some(process_comm().as_str())
                && c.owner_source == OwnerSource::Learned),
            "{conns:?}"
        );
        assert_eq!(conns[1].bytes_sent, 5001);
        assert_eq!(conns[0].bytes_received, 5000);
        // Closing them is counted once, without opens the probes never saw.
        drop(c);
        drop(a);
        std::thread::sleep(Duration::from_millis(50));
        let s = probes.snapshot(boottime_ns()).counters;
        assert_eq!(s.established, 0);
        assert_eq!(s.opened_active + s.opened_passive, 0);
        assert_eq!(s.closed_normal, 2);
    });
}

/// The established gauge counts every socket, not only those the bounded
/// connection table holds: with the table overflowed (64 entries, 900
/// established sockets, 100 of them open before the probes loaded) it
/// still equals CurrEstab, while connections come and go.
#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn established_gauge_equals_currestab_with_the_table_full() {
    require_privileges();
    let pairs_before = 50;
    let pairs_after = 400;
    let limit = raise_nofile();
    assert!(
        limit > 2 * (pairs_before + pairs_after) as u64 + 100,
        "the open-file limit ({limit}) is too low for this test"
    );
    in_private_netns("np-sock-gauge", move || {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let pair = |l: &TcpListener| {
            let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
            let (a, _) = l.accept().unwrap();
            (c, a)
        };
        let mut held: Vec<(TcpStream, TcpStream)> = (0..pairs_before).map(|_| pair(&l)).collect();
        let mut probes = load(SocketConfig {
            max_connections: 64,
            ..config()
        });
        held.extend((0..pairs_after).map(|_| pair(&l)));
        std::thread::sleep(Duration::from_millis(50));
        let check = |probes: &mut SocketProbes, when: &str| {
            let snap = probes.snapshot(boottime_ns());
            let kernel = snmp()["CurrEstab"] as u64;
            eprintln!(
                "{when}: netprobe_tcp_connections_established {} vs CurrEstab {kernel}; table {}/{}, {} untracked",
                snap.counters.established,
                snap.connections.entries,
                snap.connections.capacity,
                snap.counters.untracked
            );
            assert_eq!(
                snap.counters.established, kernel,
                "{when}: gauge vs CurrEstab"
            );
            snap
        };
        let snap = check(&mut probes, "held");
        assert_eq!(
            snap.counters.established,
            2 * (pairs_before + pairs_after) as u64
        );
        assert_eq!(snap.connections.entries, 64, "the table is full");
        assert!(snap.counters.untracked > 0);
        // Close a third (both ends), some opened before the load, some after.
        let mut i = 0;
        held.retain(|_| {
            i += 1;
            i % 3 != 0
        });
        std::thread::sleep(Duration::from_millis(100));
        check(&mut probes, "a third closed");
        // Half-close the rest from one side: CLOSE-WAIT still counts.
        for (c, _) in &held {
            c.shutdown(Shutdown::Write).unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
        check(&mut probes, "half closed");
        held.clear();
        std::thread::sleep(Duration::from_millis(100));
        let snap = check(&mut probes, "all closed");
        assert_eq!(snap.counters.established, 0);
    });
}

/// CO-RE: every kernel type and field the probes read resolves against
/// the BTF of Debian's 6.1 kernels on both architectures (the appliance's
/// kernel), as it does against the running kernel above.
#[test]
#[ignore = "needs build/vmlinux.sh --btf (Debian kernel BTF in build/.cache/btf); build/e2e-sockets.sh runs it"]
fn co_re_relocates_against_debian_6_1() {
    require_privileges();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/.cache/btf");
    for arch in ["x86_64", "arm64"] {
        let path = dir.join(format!("debian-6.1-{arch}.btf"));
        assert!(
            path.exists(),
            "{} is missing: run build/vmlinux.sh --btf",
            path.display()
        );
        let btf = aya::Btf::parse_file(&path, aya::Endianness::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The attach targets: each tracepoint's BTF prototype and the TCP
        // iterator (names in the BTF string section).
        let raw = std::fs::read(&path).unwrap();
        let has = |name: &str| {
            raw.windows(name.len() + 2).any(|w| {
                w[0] == 0 && &w[1..=name.len()] == name.as_bytes() && w[name.len() + 1] == 0
            })
        };
        for (_, tp) in netprobe::probes::SOCK_TRACEPOINTS {
            assert!(
                has(&format!("btf_trace_{tp}")),
                "{}: no tracepoint {tp}",
                path.display()
            );
        }
        assert!(has("bpf_iter_tcp"), "{}: no TCP iterator", path.display());
        // The accept probes: the kernel function fexit attaches to, the
        // raw tracepoint of the system call exit, and the register that
        // names the system call there on this architecture.
        for name in [
            netprobe::probes::SOCK_ACCEPT_FUNCTION.to_string(),
            format!("btf_trace_{}", netprobe::probes::SOCK_ACCEPT_TRACEPOINT),
            (if arch == "x86_64" {
                "orig_ax"
            } else {
                "syscallno"
            })
            .to_string(),
        ] {
            assert!(has(&name), "{}: no {name}", path.display());
        }
        // Relocation happens in load(), before any program reaches the kernel.
        match aya::EbpfLoader::new()
            .btf(Some(&btf))
            .load(netprobe::probes::socket_object())
        {
            Ok(_) => eprintln!("ok: socket.bpf.o relocates against {}", path.display()),
            Err(e) => {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg += &format!(": {s}");
                    src = s.source();
                }
                panic!("relocating against {}: {msg}", path.display());
            }
        }
    }
}
