//! The small tools `build/bench.sh` drives: `attach`, `gen`, `sink`,
//! `enable-stats` and `prog-stats` (see `netprobe-bench help`).

use std::io::Write;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::maps::MapInfo;
use aya::programs::{tc, SchedClassifier, TcAttachType, Xdp, XdpMode};
use netprobe::kernel::KernelVersion;
use netprobe::probes;

use crate::objects::{bench_naive_object, load, Kind, Rng};
use crate::{AttachCmd, EnableStatsCmd, GenCmd, ProgStatsCmd, SinkCmd};

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

pub fn attach(cmd: &AttachCmd) -> Result<(), String> {
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
    let mut ebpf = load(object, &progs, &[])?;
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

pub fn gen(cmd: &GenCmd) -> Result<(), String> {
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

pub fn sink(cmd: &SinkCmd) -> Result<(), String> {
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

pub fn enable_stats(cmd: &EnableStatsCmd) -> Result<(), String> {
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

pub fn prog_stats(cmd: &ProgStatsCmd) -> Result<(), String> {
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
