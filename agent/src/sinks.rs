//! The agent's remote_write and IPFIX sinks (crate::export) fed from the
//! collector: the glue between the flags, each collection and the sinks.
//!
//! - remote_write: one [`RemoteWriter`] and sending thread per
//!   `--remote-write-url`. Every `--remote-write-interval` the published
//!   `/metrics` text (the snapshot's rendering, plus the HTTP server's own
//!   counters) is read back into samples, stamped with the collection
//!   time, and queued. Queueing never waits for the network.
//! - IPFIX: one [`IpfixSink`] in a thread of its own (a TCP collector may
//!   block a send). Each collection hands it the whole flow table through a
//!   one-slot mailbox: a read it has not taken yet is replaced by the newer
//!   one (counts are cumulative, so nothing is lost but resolution).
//!
//! Imports point down: this module reads the flags (`config`) and serves
//! the collector; `export` knows neither.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use crate::abi::Hook;
use crate::collector::{FlowRead, Sink};
use crate::export::ipfix::{
    Collector, Direction, FlowEntry, FlowTable, IpfixConfig, IpfixSink, Unattributed,
};
use crate::export::remote_write::{exposition, RemoteWriteConfig, RemoteWriter};
use crate::export::SinkMetric;
use crate::snapshot::{ExportStatus, IpfixStatus, RemoteWriteStatus, Rendered};

/// What the flags ask of the sinks.
#[derive(Clone, Debug, Default)]
pub struct SinksConfig {
    /// One per `--remote-write-url`, in order.
    pub remote_write: Vec<RemoteWriteConfig>,
    pub remote_write_interval: Duration,
    pub collect_interval: Duration,
    pub ipfix: Option<IpfixConfig>,
}

impl SinksConfig {
    pub fn is_empty(&self) -> bool {
        self.remote_write.is_empty() && self.ipfix.is_none()
    }
}

/// Receiver `i`'s spool directory under `--remote-write-spool-dir`.
pub(crate) fn spool_subdir(dir: &std::path::Path, i: usize) -> PathBuf {
    dir.join(format!("receiver-{i}"))
}

/// `scheme://host:port` of a URL: what `/status` may show.
fn endpoint(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}")
}

struct Writer {
    writer: Arc<RemoteWriter>,
    thread: Option<JoinHandle<()>>,
    endpoint: String,
}

/// The IPFIX thread's mailbox.
#[derive(Default)]
struct Mailbox {
    table: Option<FlowTable>,
    stop: bool,
    /// Reads replaced before the thread took them.
    superseded: u64,
}

struct Ipfix {
    mailbox: Arc<(Mutex<Mailbox>, Condvar)>,
    /// The sink's counters after its last export.
    stats: Arc<Mutex<(IpfixStatus, Vec<SinkMetric>)>>,
    thread: Option<JoinHandle<()>>,
}

/// The running sinks; the collector's [`Sink`].
pub struct Sinks {
    writers: Vec<Writer>,
    interval: Duration,
    collect_interval: Duration,
    /// Collection time of the last push, Unix seconds.
    last_push: Option<f64>,
    /// Scrape-time metrics `/metrics` appends (the HTTP server's own).
    extra: Option<Box<dyn Fn() -> String + Send>>,
    ipfix: Option<Ipfix>,
    parse_errors: u64,
}

impl Sinks {
    /// Starts the writers' threads and the IPFIX thread.
    ///
    /// # Errors
    /// A bad URL or CA file, a spool directory that cannot be opened, or a
    /// UDP collector that does not resolve; the message names the flag.
    pub fn start(config: &SinksConfig) -> Result<Sinks, String> {
        let mut writers = Vec::new();
        for c in &config.remote_write {
            let writer = Arc::new(RemoteWriter::new(c.clone())?);
            let w = writer.clone();
            let thread = std::thread::Builder::new()
                .name(format!("remote-write-{}", c.receiver))
                .spawn(move || w.run())
                .map_err(|e| format!("starting the remote_write thread: {e}"))?;
            log::info!(
                "remote_write {}: pushing to {} every {:?}",
                c.receiver,
                endpoint(&c.url),
                config.remote_write_interval
            );
            writers.push(Writer {
                writer,
                thread: Some(thread),
                endpoint: endpoint(&c.url),
            });
        }
        let ipfix = match &config.ipfix {
            Some(c) => Some(Ipfix::start(c)?),
            None => None,
        };
        Ok(Sinks {
            writers,
            interval: config.remote_write_interval,
            collect_interval: config.collect_interval,
            last_push: None,
            extra: None,
            ipfix,
            parse_errors: 0,
        })
    }

    /// Text appended to each pushed rendering (as `/metrics` appends the
    /// HTTP server's counters at scrape time).
    pub fn set_extra_metrics(&mut self, f: Box<dyn Fn() -> String + Send>) {
        self.extra = Some(f);
    }

    fn push(&mut self, r: &Rendered) {
        let at = r.snapshot.collection.last_collection;
        // Collections come every collect interval, not exactly: half of
        // one is the tolerance.
        let due = self
            .last_push
            .is_none_or(|t| at - t >= (self.interval - self.collect_interval / 2).as_secs_f64());
        if self.writers.is_empty() || !due {
            return;
        }
        self.last_push = Some(at);
        let ts = (at * 1000.0).round() as i64;
        let mut samples = match exposition::parse(&r.metrics, ts) {
            Ok(s) => s,
            Err(e) => {
                self.parse_errors += 1;
                log::warn!("remote_write: skipping a push: {e}");
                return;
            }
        };
        if let Some(extra) = &self.extra {
            match exposition::parse(&extra(), ts) {
                Ok(s) => samples.extend(s),
                Err(e) => log::warn!("remote_write: HTTP server metrics left out: {e}"),
            }
        }
        for w in &self.writers {
            w.writer.push(&samples);
        }
    }
}

impl Ipfix {
    fn start(config: &IpfixConfig) -> Result<Ipfix, String> {
        let mut sink = IpfixSink::new(config)?;
        let collector = match &config.collector {
            Collector::Udp(a) => format!("udp://{a}"),
            Collector::Tcp(a) => format!("tcp://{a}"),
        };
        log::info!("ipfix: exporting flows to {collector}");
        let mailbox: Arc<(Mutex<Mailbox>, Condvar)> = Arc::default();
        let stats = Arc::new(Mutex::new((
            IpfixStatus {
                collector,
                ..IpfixStatus::default()
            },
            sink.metrics(),
        )));
        let (mb, st) = (mailbox.clone(), stats.clone());
        let thread = std::thread::Builder::new()
            .name("ipfix".into())
            .spawn(move || {
                let mut last: Option<FlowTable> = None;
                loop {
                    let (table, stop) = {
                        let (m, cv) = &*mb;
                        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
                        while g.table.is_none() && !g.stop {
                            g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
                        }
                        (g.table.take(), g.stop)
                    };
                    if stop {
                        if let Some(t) = table.or(last) {
                            sink.finish(&t, SystemTime::now());
                        }
                        publish_ipfix_stats(&st, &sink);
                        return;
                    }
                    if let Some(t) = table {
                        sink.export(&t, SystemTime::now());
                        publish_ipfix_stats(&st, &sink);
                        last = Some(t);
                    }
                }
            })
            .map_err(|e| format!("starting the IPFIX thread: {e}"))?;
        Ok(Ipfix {
            mailbox,
            stats,
            thread: Some(thread),
        })
    }

    fn offer(&self, table: FlowTable) {
        let (m, cv) = &*self.mailbox;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        if g.table.replace(table).is_some() {
            g.superseded += 1;
        }
        drop(g);
        cv.notify_one();
    }

    fn stop(&mut self) {
        let (m, cv) = &*self.mailbox;
        m.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        cv.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn publish_ipfix_stats(to: &Mutex<(IpfixStatus, Vec<SinkMetric>)>, sink: &IpfixSink) {
    let s = sink.stats();
    let mut g = to.lock().unwrap_or_else(|e| e.into_inner());
    g.0.flow_records = s.flow_records;
    g.0.messages = s.messages;
    g.0.records_dropped = s.records_dropped;
    g.0.send_errors = s.send_errors;
    g.1 = sink.metrics();
}

/// The flow table of one collection in the IPFIX sink's terms, with the
/// packets no flow entry holds (flood guard, failed updates) per interface
/// and direction, from the same snapshot's hook counters.
pub fn flow_table(r: &Rendered, flows: &FlowRead<'_>) -> FlowTable {
    let mut unattributed = Vec::new();
    for i in &r.snapshot.interfaces {
        for (hook, direction) in [
            (i.rx_source, Direction::Ingress),
            (Hook::TcEgress.name(), Direction::Egress),
        ] {
            if let Some((_, st)) = i.per_hook.iter().find(|(h, _)| *h == hook) {
                unattributed.push(Unattributed {
                    ifindex: i.ifindex,
                    direction,
                    packets: st.flow_miss.iter().sum(),
                    bytes: None,
                });
            }
        }
    }
    let unix_ns = (flows.at.unix * 1e9) as i128;
    FlowTable {
        read_at_boot_ns: flows.at.boot_ns,
        boot_to_unix_ns: (unix_ns - flows.at.boot_ns as i128) as i64,
        flows: flows
            .flows
            .iter()
            .map(|(k, v)| FlowEntry::from_abi(k, v))
            .collect(),
        unattributed,
    }
}

impl Sink for Sinks {
    fn status(&self) -> ExportStatus {
        let mut metrics = Vec::new();
        let mut remote_write = Vec::new();
        for w in &self.writers {
            let st = w.writer.stats();
            let g = w.writer.spool_gauges();
            metrics.extend(w.writer.metrics());
            remote_write.push(RemoteWriteStatus {
                receiver: remote_write.len().to_string(),
                endpoint: w.endpoint.clone(),
                last_success: st.last_success_unix,
                samples_sent: st.sent,
                spool_bytes: g.bytes,
                spool_samples: g.samples,
                samples_dropped: st.dropped_spool_full + st.dropped_shutdown + st.failed,
            });
        }
        let ipfix = self.ipfix.as_ref().map(|x| {
            let g = x.stats.lock().unwrap_or_else(|e| e.into_inner());
            metrics.extend(g.1.iter().cloned());
            g.0.clone()
        });
        ExportStatus {
            remote_write,
            ipfix,
            metrics,
        }
    }

    fn collected(&mut self, published: &Arc<Rendered>, flows: FlowRead<'_>) {
        if let Some(x) = &self.ipfix {
            x.offer(flow_table(published, &flows));
        }
        self.push(published);
    }

    fn shutdown(&mut self) {
        for w in &self.writers {
            w.writer.shutdown();
        }
        for w in &mut self.writers {
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
        if let Some(x) = self.ipfix.as_mut() {
            x.stop();
        }
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Args;
    use crate::export::ipfix::Timeouts;
    use crate::export::remote_write::Authorization;

    fn args(list: &[&str]) -> Args {
        <Args as argh::FromArgs>::from_args(&["netprobe-agent"], list).unwrap()
    }

    #[test]
    fn defaults_come_from_the_sinks() {
        let c = args(&[]).sinks_config().unwrap();
        assert!(c.is_empty());
        let c = args(&[
            "--collect-interval",
            "2s",
            "--remote-write-url",
            "http://127.0.0.1:9090/api/v1/write",
            "--ipfix-collector",
            "127.0.0.1:4739",
        ])
        .sinks_config()
        .unwrap();
        let d = RemoteWriteConfig::default();
        assert_eq!(c.remote_write_interval, Duration::from_secs(2));
        assert_eq!(c.remote_write[0].timeout, d.timeout);
        assert_eq!(c.remote_write[0].spool_bytes, d.spool_bytes);
        let i = c.ipfix.unwrap();
        let di = IpfixConfig::default();
        assert_eq!(i.timeouts, Timeouts::default());
        assert_eq!((i.mtu, i.domain_id), (di.mtu, di.domain_id));
        assert_eq!(i.template_refresh, di.template_refresh);
    }

    #[test]
    fn flags_set_every_field() {
        let c = args(&[
            "--remote-write-url",
            "http://a:1/w",
            "--remote-write-url",
            "http://b:2/w",
            "--remote-write-interval",
            "10s",
            "--remote-write-label",
            "site=lab",
            "--remote-write-label",
            "gateway=gw1",
            "--remote-write-timeout",
            "3s",
            "--remote-write-spool-bytes",
            "100000",
            "--remote-write-spool-dir",
            "/var/lib/np",
            "--ipfix-collector",
            "tcp://127.0.0.1:4739",
            "--ipfix-active-timeout",
            "30s",
            "--ipfix-idle-timeout",
            "5s",
            "--ipfix-domain-id",
            "7",
            "--ipfix-template-refresh",
            "20s",
            "--ipfix-mtu",
            "1400",
        ])
        .sinks_config()
        .unwrap();
        assert_eq!(c.remote_write.len(), 2);
        assert_eq!(c.remote_write_interval, Duration::from_secs(10));
        let r = &c.remote_write[1];
        assert_eq!((r.url.as_str(), r.receiver.as_str()), ("http://b:2/w", "1"));
        assert_eq!(r.external_labels.pairs().len(), 2);
        assert_eq!(r.timeout, Duration::from_secs(3));
        assert_eq!(r.spool_bytes, 100_000);
        assert_eq!(
            r.spool_dir.as_deref(),
            Some(std::path::Path::new("/var/lib/np/receiver-1"))
        );
        let i = c.ipfix.unwrap();
        assert_eq!(i.collector, Collector::Tcp("127.0.0.1:4739".into()));
        assert_eq!(i.timeouts.active, Duration::from_secs(30));
        assert_eq!(i.timeouts.idle, Duration::from_secs(5));
        assert_eq!((i.domain_id, i.mtu), (7, 1400));
        assert_eq!(i.template_refresh, Duration::from_secs(20));
    }

    #[test]
    fn bad_values_name_their_flag() {
        let parse_err = |l: &[&str]| {
            <Args as argh::FromArgs>::from_args(&["netprobe-agent"], l)
                .unwrap_err()
                .output
        };
        for (flag, bad) in [
            ("--remote-write-timeout", "0s"),
            ("--remote-write-spool-bytes", "10"),
            ("--remote-write-interval", "5"),
            ("--ipfix-collector", "nohost"),
            ("--ipfix-active-timeout", "0s"),
            ("--ipfix-idle-timeout", "2h"),
            ("--ipfix-template-refresh", "x"),
            ("--ipfix-mtu", "70000"),
            ("--ipfix-domain-id", "-1"),
        ] {
            let e = parse_err(&[flag, bad]);
            assert!(e.contains(flag), "{flag} {bad}: {e}");
        }
        let cfg_err = |l: &[&str]| args(l).sinks_config().unwrap_err();
        let url = "http://127.0.0.1:1/w";
        let e = cfg_err(&[
            "--remote-write-url",
            url,
            "--remote-write-url",
            url,
            "--remote-write-url",
            url,
        ]);
        assert!(
            e.contains("--remote-write-url") && e.contains("at most 2"),
            "{e}"
        );
        let e = cfg_err(&["--remote-write-url", url, "--remote-write-label", "1x=y"]);
        assert!(e.contains("--remote-write-label"), "{e}");
        let e = cfg_err(&["--remote-write-url", url, "--remote-write-interval", "1s"]);
        assert!(e.contains("--remote-write-interval"), "{e}");
        let e = cfg_err(&["--remote-write-label", "a=b"]);
        assert!(e.contains("--remote-write-url"), "{e}");
        let e = cfg_err(&["--ipfix-collector", "127.0.0.1:4739", "--ipfix-mtu", "100"]);
        assert!(e.contains("--ipfix-mtu"), "{e}");
        let e = cfg_err(&[
            "--remote-write-url",
            url,
            "--remote-write-auth-file",
            "/nonexistent/np-auth",
        ]);
        assert!(e.contains("--remote-write-auth-file"), "{e}");
    }

    #[test]
    fn auth_file_becomes_the_header_and_is_not_shown() {
        let dir = std::env::temp_dir().join(format!("np-sinks-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("auth");
        std::fs::write(&f, "# receiver\nBearer s3cret-token\n").unwrap();
        let c = args(&[
            "--remote-write-url",
            "http://127.0.0.1:1/w",
            "--remote-write-auth-file",
            f.to_str().unwrap(),
        ])
        .sinks_config()
        .unwrap();
        let a = c.remote_write[0].authorization.clone().unwrap();
        assert_eq!(a, Authorization::bearer("s3cret-token"));
        assert!(!format!("{c:?}").contains("s3cret"));
        std::fs::write(&f, "user:pa:ss\n").unwrap();
        let c = args(&[
            "--remote-write-url",
            "http://127.0.0.1:1/w",
            "--remote-write-auth-file",
            f.to_str().unwrap(),
        ])
        .sinks_config()
        .unwrap();
        assert_eq!(
            c.remote_write[0].authorization,
            Some(Authorization::basic("user", "pa:ss"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn endpoint_hides_paths_queries_and_userinfo() {
        assert_eq!(
            endpoint("https://u:p@vm.example:8428/api/v1/write?token=x"),
            "https://vm.example:8428"
        );
        assert_eq!(
            endpoint("http://127.0.0.1:9090/api/v1/write"),
            "http://127.0.0.1:9090"
        );
    }

    /// What remote_write pushes is exactly what /metrics shows: the golden
    /// page, read back and written again line by line, is the same text.
    #[test]
    fn pushed_samples_are_the_metrics_page() {
        let page = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/golden/metrics.prom"
        ))
        .unwrap();
        let mut tricky = String::new();
        crate::prom::Family::new(&mut tricky, "netprobe_x", "gauge", "x.")
            .sample(&[("comm", "a\"b\\c\nd,e}f=\"g")], 1u64)
            .sample(&[], f64::NAN);
        for text in [page.as_str(), tricky.as_str()] {
            let samples = exposition::parse(text, 1).unwrap();
            let mut again = String::new();
            for s in &samples {
                let labels: Vec<(&str, &str)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let name: &'static str = Box::leak(s.name.clone().into_boxed_str());
                let mut f = String::new();
                crate::prom::Family::new(&mut f, name, "gauge", "").sample(&labels, s.value);
                again.push_str(f.lines().last().unwrap());
                again.push('\n');
            }
            let want: String = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(again, want);
            assert!(samples.len() > 1);
        }
    }
}
