//! Test-only driver of the sinks (agent/src/export) for build/e2e-export.sh:
//! pushes known samples to a real remote_write receiver and a known flow
//! table to a real IPFIX collector, and writes what the receivers must then
//! hold. Not shipped; the agent drives the same APIs once they are wired.
//!
//! ```text
//! export_driver remote-write --url URL --collections K [--series N]
//!     [--interval-ms I] [--spool-bytes B] [--spool-dir D] [--progress FILE]
//!     [--drain-timeout-s S] [--expected FILE] [--series-offset J]
//!     [--label NAME=VALUE] [--spool-collections C]
//! export_driver ipfix --collector ADDR --expected FILE [--reads R]
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
