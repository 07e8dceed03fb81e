//! Test-only driver of the sinks (agent/src/export) for build/e2e-export.sh:
//! pushes known samples to a real remote_write receiver and a known flow
//! table to a real IPFIX collector, and writes what the receivers must then
//! hold. Not shipped; the agent drives the same APIs once they are wired.
//!
//! ```text
//! export_driver remote-write --url URL --collections K [--series N]
//!     [--interval-ms I] [--spool-bytes B] [--spool-dir D] [--progress FILE]
//!     [--drain-timeout-s S] [--expected FILE] [--series-offset J]
//!     [--label NAME=VALUE] [--spool-collections C] [--ca-file PEM]
//! export_driver ipfix --collector ADDR --expected FILE [--reads R]
//! export_driver bench [--flows F] [--series N] [--rounds R]
//! ```
//!
//! remote-write: collection i (0..K) pushes series j (0..N) of
//! `netprobe_e2e_export_value{series="sJ"}` with value J*1e6+i at the
//! collection's wall-clock time, one collection every I ms; then waits
//! until the spool is empty (or S seconds, 0: not at all), shuts the writer
//! down and prints its counters as `name{labels} value` lines. `--expected`
//! gets `series timestamp_ms value` lines of every sample pushed.
//! `--spool-collections C` sizes the spool to hold C collections.
//!
//! ipfix: a flow table of known flows (IPv4 and IPv6, TCP and UDP, both
//! directions, one over 4 GiB) grows over R reads 5 s apart in simulated
//! boot time (ending now), so active and idle timeouts cut records on the
//! way; then the exporter finishes. `--expected` gets
//! `proto src sport dst dport packets bytes` per 5-tuple.
//!
//! bench (run it with --release): CPU and bytes on the wire of both sinks,
//! each against a baseline measured in the same run; see `bench`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netprobe::export::ipfix::{
    Collector, FlowCounters, FlowEntry, FlowKey, FlowTable, IpfixConfig, IpfixSink,
};
use netprobe::export::remote_write::{ExternalLabels, RemoteWriteConfig, RemoteWriter, Sample};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("remote-write") => remote_write(&Flags::parse(&args[1..])),
        Some("ipfix") => ipfix(&Flags::parse(&args[1..])),
        Some("bench") => bench(&Flags::parse(&args[1..])),
        _ => Err("usage: export_driver remote-write|ipfix [--flag value]...".into()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("export_driver: {e}");
            ExitCode::from(1)
        }
    }
}

struct Flags(BTreeMap<String, String>);

impl Flags {
    fn parse(a: &[String]) -> Flags {
        let mut m = BTreeMap::new();
        for p in a.chunks(2) {
            let k = p[0].trim_start_matches("--").to_string();
            m.insert(k, p.get(1).cloned().unwrap_or_default());
        }
        Flags(m)
    }

    fn str(&self, k: &str) -> Result<&str, String> {
        self.0
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("--{k} is required"))
    }

    fn num(&self, k: &str, default: u64) -> Result<u64, String> {
        match self.0.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{k} {v}: not a number")),
        }
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn remote_write(f: &Flags) -> Result<(), String> {
    let collections = f.num("collections", 1)?;
    let series = f.num("series", 20)?;
    let offset = f.num("series-offset", 0)?;
    let interval = Duration::from_millis(f.num("interval-ms", 1000)?);
    let drain = Duration::from_secs(f.num("drain-timeout-s", 30)?);
    let labels: Vec<&str> = f.0.get("label").map(String::as_str).into_iter().collect();
    let mut config = RemoteWriteConfig {
        url: f.str("url")?.into(),
        external_labels: ExternalLabels::parse(&labels)?,
        spool_bytes: f.num("spool-bytes", 8 << 20)? as usize,
        spool_dir: f.0.get("spool-dir").map(Into::into),
        ca_file: f.0.get("ca-file").map(Into::into),
        min_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
        ..RemoteWriteConfig::default()
    };
    let collection = |i: u64, ts: i64| -> Vec<Sample> {
        (offset..offset + series)
            .map(|j| Sample {
                name: "netprobe_e2e_export_value".into(),
                labels: vec![("series".into(), format!("s{j}"))],
                value: (j * 1_000_000 + i) as f64,
                timestamp_ms: ts,
            })
            .collect()
    };
    if let Some(c) = f.0.get("spool-collections") {
        // A spool that holds this many collections: measured on a writer
        // that never sends (nothing listens on port 9 of a fresh namespace).
        let c: usize = c.parse().map_err(|_| "--spool-collections: not a number")?;
        let probe = RemoteWriter::new(RemoteWriteConfig {
            url: "http://127.0.0.1:9/".into(),
            spool_dir: None,
            ca_file: None,
            ..config.clone()
        })?;
        probe.push(&collection(0, unix_ms()));
        config.spool_bytes = probe.spool_gauges().bytes as usize * c + 16;
        println!("spool_bytes {}", config.spool_bytes);
    }
    let w = Arc::new(RemoteWriter::new(config)?);
    let w2 = w.clone();
    let sender = std::thread::spawn(move || w2.run());
    let mut expected = String::new();
    let started = Instant::now();
    for i in 0..collections {
        let ts = unix_ms();
        let batch = collection(i, ts);
        for s in &batch {
            let _ = writeln!(expected, "{} {} {}", s.labels[0].1, ts, s.value);
        }
        w.push(&batch);
        if let Some(p) = f.0.get("progress") {
            std::fs::write(p, format!("{}\n", i + 1)).map_err(|e| format!("{p}: {e}"))?;
        }
        let next = started + interval * (i as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let deadline = Instant::now() + drain;
    while w.spool_gauges().samples > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    w.shutdown();
    sender.join().map_err(|_| "sender thread panicked")?;
    if let Some(p) = f.0.get("expected") {
        std::fs::write(p, expected).map_err(|e| format!("{p}: {e}"))?;
    }
    for m in w.metrics() {
        let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{}{{{}}} {}", m.name, labels.join(","), m.value);
    }
    Ok(())
}

/// The known flows: (src, sport, dst, dport, proto, total packets, total
/// bytes, egress?). Each grows linearly over the reads.
type KnownFlow = (&'static str, u16, &'static str, u16, u8, u64, u64, bool);
const FLOWS: [KnownFlow; 8] = [
    (
        "198.18.0.1",
        40001,
        "198.18.0.2",
        5201,
        6,
        120_000,
        180_000_000,
        false,
    ),
    (
        "198.18.0.2",
        5201,
        "198.18.0.1",
        40001,
        6,
        60_000,
        3_960_000,
        true,
    ),
    (
        "198.18.0.1",
        40002,
        "198.18.0.2",
        53,
        17,
        3_000,
        240_000,
        false,
    ),
    (
        "198.18.0.2",
        53,
        "198.18.0.1",
        40002,
        17,
        3_000,
        480_000,
        true,
    ),
    (
        "2001:db8::1",
        40003,
        "2001:db8::2",
        443,
        6,
        3_000_000,
        4_500_000_000,
        false,
    ),
    (
        "2001:db8::2",
        443,
        "2001:db8::1",
        40003,
        6,
        1_000_000,
        86_000_000,
        true,
    ),
    (
        "2001:db8::1",
        40004,
        "2001:db8::2",
        4789,
        17,
        7_777,
        1_111_111,
        false,
    ),
    (
        "2001:db8::2",
        4789,
        "2001:db8::1",
        40004,
        17,
        5_555,
        999_999,
        true,
    ),
];

fn ipfix(f: &Flags) -> Result<(), String> {
    let reads = f.num("reads", 40)?.max(2);
    let config = IpfixConfig {
        collector: Collector::parse(f.str("collector")?)?,
        ..IpfixConfig::default()
    };
    let mut sink = IpfixSink::new(&config)?;
    const S: u64 = 1_000_000_000;
    // Simulated boot clock: read r at (100 + 5r) s, the last one now.
    let last_boot = (100 + 5 * reads) * S;
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let boot_to_unix_ns = now_ns - last_boot as i64;
    let table_at = |r: u64| -> FlowTable {
        let at = (100 + 5 * r) * S;
        let flows = FLOWS
            .iter()
            .map(|&(src, sport, dst, dport, proto, p, b, egress)| {
                // Linear growth that reaches the totals exactly at the last read.
                let (pk, by) = (p * r / reads, b * r / reads);
                let (rx, tx) = if egress {
                    ((0, 0), (pk, by))
                } else {
                    ((pk, by), (0, 0))
                };
                FlowEntry {
                    key: FlowKey {
                        ifindex: 7,
                        src: src.parse::<IpAddr>().unwrap(),
                        dst: dst.parse::<IpAddr>().unwrap(),
                        src_port: sport,
                        dst_port: dport,
                        proto,
                    },
                    counters: FlowCounters {
                        rx_packets: rx.0,
                        rx_bytes: rx.1,
                        tx_packets: tx.0,
                        tx_bytes: tx.1,
                        first_seen_ns: 100 * S + S / 2,
                        last_seen_ns: at - S / 10,
                        tcp_flags: if proto == 6 { 0x18 } else { 0 },
                    },
                }
            })
            .collect();
        FlowTable {
            read_at_boot_ns: at,
            boot_to_unix_ns,
            flows,
            unattributed: Vec::new(),
        }
    };
    for r in 1..reads {
        let t = table_at(r);
        sink.export(&t, SystemTime::now());
        // Pace the datagrams a little: a collector's socket buffer is finite.
        std::thread::sleep(Duration::from_millis(20));
    }
    sink.finish(&table_at(reads), SystemTime::now());
    let mut expected = String::new();
    for (src, sport, dst, dport, proto, p, b, _) in FLOWS {
        let _ = writeln!(expected, "{proto} {src} {sport} {dst} {dport} {p} {b}");
    }
    std::fs::write(f.str("expected")?, expected).map_err(|e| format!("--expected: {e}"))?;
    let s = sink.stats();
    println!(
        "records {} messages {} bytes {} templates {} send_errors {} dropped {}",
        s.flow_records, s.messages, s.bytes, s.templates, s.send_errors, s.records_dropped
    );
    if s.send_errors > 0 {
        return Err(format!("{} send errors", s.send_errors));
    }
    Ok(())
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The sinks' costs, each with a baseline from the same run:
/// - IPFIX: F flows (half IPv4, half IPv6, all growing) read every 5 s of
///   simulated time for R rounds with the default timeouts, exported over
///   UDP to a socket on 127.0.0.1 that a thread drains. Reported: CPU of
///   the exporting thread per 1,000 flows per second of flow records, bytes
///   on the wire per record (IP and UDP headers included), and the CPU of
///   the baseline, building the same FlowTable from the probes' ABI structs
///   (the read the agent does anyway).
/// - remote_write: N series pushed R times to a small HTTP receiver on
///   127.0.0.1 that discards what it reads. Reported: CPU of push (caller)
///   plus the sending thread per sample, bytes on the wire per sample, and
///   the baseline, the same samples rendered as Prometheus text (what a
///   scrape of them costs the agent).
fn bench(f: &Flags) -> Result<(), String> {
    bench_ipfix(f.num("flows", 10_000)?, f.num("rounds", 60)?)?;
    bench_remote_write(f.num("series", 500)?, f.num("rounds", 60)?)
}

fn bench_ipfix(flows: u64, rounds: u64) -> Result<(), String> {
    use netprobe::abi;
    const S: u64 = 1_000_000_000;
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = rx.local_addr().map_err(|e| e.to_string())?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let drained = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        let _ = rx.set_read_timeout(Some(Duration::from_millis(100)));
        let mut n = 0u64;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok(k) = rx.recv(&mut buf) {
                n += k as u64;
            }
        }
        n
    });
    let mut sink = IpfixSink::new(&IpfixConfig {
        collector: Collector::parse(&addr.to_string())?,
        ..IpfixConfig::default()
    })?;
    let keys: Vec<abi::FlowKey> = (0..flows)
        .map(|i| {
            let mut k = abi::FlowKey {
                ifindex: 2,
                sport: 1024 + (i % 60000) as u16,
                dport: 443,
                family: (i % 2) as u8,
                proto: if i % 3 == 0 { 17 } else { 6 },
                ..Default::default()
            };
            k.saddr = [0x0a00_0000 | i as u32, i as u32, 0, 1];
            k.daddr = [0x0b00_0000 | i as u32, 0, 0, 2];
            k
        })
        .collect();
    let (mut base_cpu, mut export_cpu) = (Duration::ZERO, Duration::ZERO);
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    for r in 1..=rounds {
        let at = (100 + 5 * r) * S;
        let t0 = thread_cpu();
        let table = FlowTable {
            read_at_boot_ns: at,
            boot_to_unix_ns: now_ns - ((100 + 5 * rounds) * S) as i64,
            flows: keys
                .iter()
                .enumerate()
                .map(|(i, k)| {
                    let v = abi::FlowStats {
                        rx: abi::Counter {
                            packets: r * 10 + i as u64 % 7,
                            bytes: r * 15_000,
                        },
                        first_seen_ns: 100 * S,
                        last_seen_ns: at - S,
                        ..Default::default()
                    };
                    FlowEntry::from_abi(k, &v)
                })
                .collect(),
            unattributed: Vec::new(),
        };
        let t1 = thread_cpu();
        sink.export(&table, SystemTime::now());
        let t2 = thread_cpu();
        base_cpu += t1 - t0;
        export_cpu += t2 - t1;
    }
    let s = sink.stats().clone();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let wire = drained.join().map_err(|_| "drain thread")?;
    if s.send_errors > 0 {
        return Err(format!("ipfix bench: {} send errors", s.send_errors));
    }
    let records = s.flow_records.max(1);
    let sim_secs = (5 * rounds) as f64;
    let per_1000_flows_per_s =
        export_cpu.as_secs_f64() / (records as f64 / sim_secs / 1000.0) / sim_secs;
    println!(
        "ipfix: {flows} flows, {rounds} reads 5 s apart: {} records in {} messages",
        s.flow_records, s.messages
    );
    println!(
        "ipfix: CPU {:.3} ms per read ({:.0} ns per table entry): {:.4} % of one core per 1,000 flows in the table read every 5 s; {:.4} % per 1,000 flow records exported per second",
        export_cpu.as_secs_f64() * 1e3 / rounds as f64,
        export_cpu.as_nanos() as f64 / (rounds * flows) as f64,
        export_cpu.as_secs_f64() / sim_secs / (flows as f64 / 1000.0) * 100.0,
        per_1000_flows_per_s * 100.0
    );
    println!(
        "ipfix: baseline (FlowTable from the ABI structs) {:.3} ms per read: exporter/baseline {:.2}",
        base_cpu.as_secs_f64() * 1e3 / rounds as f64,
        export_cpu.as_secs_f64() / base_cpu.as_secs_f64()
    );
    println!(
        "ipfix: {:.1} bytes on the wire per flow record (IPFIX {:.1} + IPv4/UDP headers {:.1}); the draining socket read {} of {} bytes (every flow cut at once: a burst past its buffer)",
        (s.bytes + 28 * s.messages) as f64 / records as f64,
        s.bytes as f64 / records as f64,
        (28 * s.messages) as f64 / records as f64,
        wire,
        s.bytes
    );
    Ok(())
}

fn bench_remote_write(series: u64, rounds: u64) -> Result<(), String> {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
    let wire = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let w2 = wire.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let w3 = w2.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let (mut len, mut head) = (0usize, 0usize);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        head += line.len();
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    w3.fetch_add((head + len) as u64, std::sync::atomic::Ordering::Relaxed);
                    let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
                }
            });
        }
    });
    let w = Arc::new(RemoteWriter::new(RemoteWriteConfig {
        url,
        external_labels: ExternalLabels::parse(&["site=bench", "gateway=gw-0001"])?,
        ..RemoteWriteConfig::default()
    })?);
    let w2 = w.clone();
    let sender = std::thread::spawn(move || {
        w2.run();
        thread_cpu()
    });
    let batch = |r: u64| -> Vec<Sample> {
        (0..series)
            .map(|j| Sample {
                name: format!("netprobe_bench_family{}_total", j % 25),
                labels: vec![
                    ("interface".into(), format!("eth{}", j / 25 % 4)),
                    ("hook".into(), "xdp".into()),
                    ("reason".into(), format!("r{}", j / 100)),
                ],
                value: (r * 1000 + j) as f64,
                timestamp_ms: 1_700_000_000_000 + r as i64 * 5000,
            })
            .collect()
    };
    let (mut push_cpu, mut text_cpu, mut text_bytes) = (Duration::ZERO, Duration::ZERO, 0usize);
    for r in 0..rounds {
        let b = batch(r);
        let t0 = thread_cpu();
        let mut text = String::with_capacity(64 * b.len());
        for s in &b {
            text.push_str(&s.name);
            text.push('{');
            for (i, (k, v)) in s.labels.iter().enumerate() {
                if i > 0 {
                    text.push(',');
                }
                let _ = write!(text, "{k}=\"{v}\"");
            }
            let _ = writeln!(text, "}} {}", s.value);
        }
        let t1 = thread_cpu();
        w.push(&b);
        let t2 = thread_cpu();
        text_cpu += t1 - t0;
        push_cpu += t2 - t1;
        text_bytes += std::hint::black_box(text).len();
        std::thread::sleep(Duration::from_millis(5));
    }
    while w.spool_gauges().samples > 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    w.shutdown();
    let send_cpu = sender.join().map_err(|_| "sender thread")?;
    let st = w.stats();
    let n = (series * rounds) as f64;
    println!(
        "remote_write: {} samples ({series} series x {rounds} pushes) in {} requests",
        st.sent, st.requests_accepted
    );
    println!(
        "remote_write: CPU {:.0} ns per sample (push {:.0} + send {:.0}); baseline (rendered as Prometheus text) {:.0} ns: ratio {:.2}",
        (push_cpu + send_cpu).as_nanos() as f64 / n,
        push_cpu.as_nanos() as f64 / n,
        send_cpu.as_nanos() as f64 / n,
        text_cpu.as_nanos() as f64 / n,
        (push_cpu + send_cpu).as_secs_f64() / text_cpu.as_secs_f64()
    );
    println!(
        "remote_write: {:.2} bytes on the wire per sample (HTTP headers included, TCP/IP not); as text {:.1}",
        wire.load(std::sync::atomic::Ordering::Relaxed) as f64 / n,
        text_bytes as f64 / n
    );
    Ok(())
}
