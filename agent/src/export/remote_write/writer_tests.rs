//! RemoteWriter against a small HTTP receiver on 127.0.0.1 that answers
//! with scripted statuses and decodes every body with prost (the oracle).
//! The real Prometheus runs in build/e2e-export.sh.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::oracle;
use super::*;

/// What the receiver saw: (timestamp, value) of every accepted sample of
/// series `m`, and the headers of the last request.
#[derive(Default)]
struct Seen {
    accepted: Vec<(i64, f64)>,
    requests: usize,
    headers: Vec<String>,
}

struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
    /// Statuses to answer with, in order; then 204 for ever.
    script: Arc<Mutex<VecDeque<(u16, &'static str)>>>,
}

fn receiver() -> Receiver {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let script = Arc::new(Mutex::new(VecDeque::new()));
    let (s2, sc2) = (seen.clone(), script.clone());
    thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let line = line.trim_end().to_string();
                if line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                headers.push(line);
            }
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let (status, extra) = sc2.lock().unwrap().pop_front().unwrap_or((204, ""));
            {
                let mut s = s2.lock().unwrap();
                s.requests += 1;
                s.headers = headers;
                if status / 100 == 2 {
                    for ts in oracle::decode(&body).timeseries {
                        let sm = &ts.samples[0];
                        s.accepted.push((sm.timestamp, sm.value));
                    }
                }
            }
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\n{extra}Content-Length: 2\r\nConnection: close\r\n\r\nno"
            );
        }
    });
    Receiver { url, seen, script }
}

fn samples(ts: i64, n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            name: "m".into(),
            labels: vec![("i".into(), i.to_string())],
            value: ts as f64 + i as f64 / 1000.0,
            timestamp_ms: ts,
        })
        .collect()
}

fn config(url: &str) -> RemoteWriteConfig {
    RemoteWriteConfig {
        url: url.into(),
        timeout: Duration::from_secs(2),
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        ..RemoteWriteConfig::default()
    }
}

/// Runs the writer in a thread until `done` holds (or 10 s pass), then
/// shuts it down and joins it.
fn run_until(w: &Arc<RemoteWriter>, done: impl Fn(&RemoteWriter) -> bool) {
    let w2 = w.clone();
    let t = thread::spawn(move || w2.run());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(w) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    w.shutdown();
    t.join().unwrap();
    assert!(done(w), "condition not met within 10 s: {:?}", w.stats());
}

#[test]
fn retries_5xx_and_429_then_delivers_everything_in_order() {
    let rx = receiver();
    rx.script
        .lock()
        .unwrap()
        .extend([(503, ""), (429, "Retry-After: 0\r\n"), (500, "")]);
    let mut c = config(&rx.url);
    c.external_labels = ExternalLabels::parse(&["site=lab"]).unwrap();
    let w = Arc::new(RemoteWriter::new(c).unwrap());
    for ts in [1000, 2000, 3000] {
        w.push(&samples(ts, 5));
    }
    run_until(&w, |w| w.stats().sent == 15);
    let s = w.stats();
    assert_eq!((s.failed, s.dropped_spool_full), (0, 0));
    assert_eq!(s.requests_retried, 3);
    assert!(s.retried >= 15, "{s:?}");
    assert!(s.last_success_unix > 0.0);
    let seen = rx.seen.lock().unwrap();
    let ts: Vec<i64> = seen.accepted.iter().map(|a| a.0).collect();
    let mut sorted = ts.clone();
    sorted.sort();
    assert_eq!(ts, sorted, "oldest first");
    assert_eq!(ts.len(), 15);
    let h = seen.headers.join("\n").to_ascii_lowercase();
    for want in [
        "content-encoding: snappy",
        "content-type: application/x-protobuf",
        "x-prometheus-remote-write-version: 0.1.0",
    ] {
        assert!(h.contains(want), "{want} missing in {h}");
    }
}

#[test]
fn other_4xx_drops_and_counts_only_the_bad_chunk() {
    let rx = receiver();
    // Two chunks queued before the writer starts: merged into one request,
    // rejected; then sent one by one: the first is rejected again, the
    // second accepted.
    rx.script.lock().unwrap().extend([(400, ""), (400, "")]);
    let w = Arc::new(RemoteWriter::new(config(&rx.url)).unwrap());
    w.push(&samples(1000, 3));
    w.push(&samples(2000, 4));
    run_until(&w, |w| w.stats().sent == 4);
    let s = w.stats();
    assert_eq!((s.failed, s.requests_rejected), (3, 2));
    assert_eq!(rx.seen.lock().unwrap().accepted.len(), 4);
}

#[test]
fn a_full_spool_drops_the_oldest_and_keeps_the_newest() {
    // No receiver at all: nothing listens on this port.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = config(&format!("http://{port}/api/v1/write"));
    let one = chunk::encode(&samples(1000, 10), &c.external_labels, c.limits, &mut 0)[0].bytes();
    c.spool_bytes = 3 * one + one / 2;
    let w = RemoteWriter::new(c).unwrap();
    for i in 0..10 {
        w.push(&samples(1000 * (i + 1), 10));
    }
    let (s, g) = (w.stats(), w.spool_gauges());
    assert_eq!(s.dropped_spool_full, 70);
    assert_eq!(g.samples, 30);
    assert!(g.bytes <= g.max_bytes);
    assert!(g.oldest_age_seconds > 0.0);
    // Shutdown without a spool directory: the rest is counted lost.
    let w = Arc::new(w);
    run_until(&w, |_| true);
    assert_eq!(w.stats().dropped_shutdown, 30);
}

#[test]
fn the_spool_directory_keeps_unsent_samples_across_a_restart() {
    let dir = std::env::temp_dir().join(format!("np-rw-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = config(&format!("http://{dead}/api/v1/write"));
    c.spool_dir = Some(dir.clone());
    let w = Arc::new(RemoteWriter::new(c.clone()).unwrap());
    for ts in [1000, 2000, 3000] {
        w.push(&samples(ts, 5));
    }
    run_until(&w, |w| w.stats().requests_retried >= 1);
    assert_eq!(w.stats().dropped_shutdown, 0);
    drop(w);

    let rx = receiver();
    c.url = rx.url.clone();
    let w = Arc::new(RemoteWriter::new(c).unwrap());
    assert_eq!(w.spool_gauges().samples, 15);
    w.push(&samples(4000, 5));
    run_until(&w, |w| w.stats().sent == 20);
    let ts: Vec<i64> = rx
        .seen
        .lock()
        .unwrap()
        .accepted
        .iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(ts.len(), 20);
    assert!(ts.windows(2).all(|p| p[0] <= p[1]), "{ts:?}");
    // Everything sent: no spool file is left.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metrics_cover_every_counter_with_bounded_labels() {
    let w = RemoteWriter::new(config("http://127.0.0.1:9/api/v1/write")).unwrap();
    let m = w.metrics();
    for name in [
        "netprobe_remote_write_samples_sent_total",
        "netprobe_remote_write_samples_failed_total",
        "netprobe_remote_write_samples_retried_total",
        "netprobe_remote_write_samples_dropped_total",
        "netprobe_remote_write_spool_bytes",
        "netprobe_remote_write_oldest_sample_age_seconds",
        "netprobe_remote_write_last_success_timestamp_seconds",
        "netprobe_remote_write_last_push_duration_seconds",
    ] {
        assert!(m.iter().any(|s| s.name == name), "{name}");
    }
    for s in &m {
        assert!(s
            .labels
            .iter()
            .all(|(k, _)| ["receiver", "reason", "result"].contains(k)));
        assert!(
            s.name.ends_with("_total") == (s.kind == crate::export::MetricKind::Counter),
            "{}",
            s.name
        );
    }
}
