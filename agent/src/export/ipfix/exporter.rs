//! [`IpfixExporter`] turns flow-table reads into IPFIX messages;
//! [`IpfixSink`] sends them to the collector and counts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::cache::{FlowCache, Timeouts};
use super::flow_table::{FlowTable, Unattributed};
use super::message::{Contents, Framer, MIN_MESSAGE_LEN};
use super::stats::Stats;
use super::template::FlowRecord;
use super::transport::{Collector, Transport};
use crate::export::SinkMetric;

/// IP and transport headers a message must leave room for within the MTU
/// (IPv6 40 + TCP 20; UDP needs 8).
pub const IP_TRANSPORT_OVERHEAD: usize = 60;

/// Settings; [`Default`] holds the proposed flag defaults.
#[derive(Clone, Debug)]
pub struct IpfixConfig {
    /// `--ipfix-collector`.
    pub collector: Collector,
    /// `--ipfix-active-timeout`, `--ipfix-idle-timeout`.
    pub timeouts: Timeouts,
    /// `--ipfix-template-refresh`: UDP resends the templates this often
    /// (RFC 7011 section 8.4); TCP sends them once per connection.
    pub template_refresh: Duration,
    /// `--ipfix-domain-id`: the Observation Domain ID in every header.
    pub domain_id: u32,
    /// `--ipfix-mtu`: every message fits in one packet of this size with
    /// its IP and transport headers ([`IP_TRANSPORT_OVERHEAD`]).
    pub mtu: usize,
    /// TCP connect and write timeout.
    pub send_timeout: Duration,
    /// Report entries already in the table at the first read from their
    /// counts then, not from zero: for a restart that kept the pinned flow
    /// table, whose earlier counts the previous run exported.
    pub baseline_existing_flows: bool,
}

impl Default for IpfixConfig {
    fn default() -> Self {
        IpfixConfig {
            collector: Collector::Udp(String::new()),
            timeouts: Timeouts::default(),
            template_refresh: Duration::from_secs(60),
            domain_id: 1,
            mtu: 1500,
            send_timeout: Duration::from_secs(5),
            baseline_existing_flows: false,
        }
    }
}

impl IpfixConfig {
    /// # Errors
    /// An MTU too small for a message with templates and one record, or an
    /// active timeout of zero; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        let min = MIN_MESSAGE_LEN + IP_TRANSPORT_OVERHEAD;
        if self.mtu < min || self.mtu > 65535 {
            return Err(format!("--ipfix-mtu {}: must be {min}..=65535", self.mtu));
        }
        if self.timeouts.active.is_zero() || self.timeouts.idle.is_zero() {
            return Err("--ipfix-active-timeout and --ipfix-idle-timeout must be > 0".into());
        }
        Ok(())
    }
}

/// The exporting process without a socket: flow-table reads in, IPFIX
/// messages out. Pure, so tests and the bench drive it directly.
pub struct IpfixExporter {
    cache: FlowCache,
    framer: Framer,
    template_refresh: Option<Duration>,
    /// When the templates were last sent in this session.
    templates_sent_at: Option<SystemTime>,
    /// The unattributed counts last sent.
    unattributed_sent: Vec<Unattributed>,
    pub stats: Stats,
}

impl IpfixExporter {
    /// `template_refresh`: `Some` for UDP (resend on that interval), `None`
    /// for TCP (once per session).
    pub fn new(config: &IpfixConfig, template_refresh: Option<Duration>) -> IpfixExporter {
        IpfixExporter {
            cache: FlowCache::new(config.timeouts, config.baseline_existing_flows),
            framer: Framer::new(config.domain_id, config.mtu - IP_TRANSPORT_OVERHEAD),
            template_refresh,
            templates_sent_at: None,
            unattributed_sent: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// A new transport session: templates first, sequence numbers from 0.
    pub fn new_session(&mut self) {
        self.framer.restart();
        self.templates_sent_at = None;
    }

    /// Compares this read of the flow table with the previous one and
    /// returns the messages to send now (none when nothing is due). `now`
    /// stamps the messages' export time.
    pub fn observe(&mut self, table: &FlowTable, now: SystemTime) -> Vec<Vec<u8>> {
        let flows = self.cache.observe(table);
        self.frame(&flows, &table.unattributed, now)
    }

    /// At shutdown: every flow still open, as `forcedEnd` records.
    pub fn finish(&mut self, table: &FlowTable, now: SystemTime) -> Vec<Vec<u8>> {
        let flows = self.cache.finish(table);
        self.frame(&flows, &table.unattributed, now)
    }

    fn frame(
        &mut self,
        flows: &[FlowRecord],
        unattributed: &[Unattributed],
        now: SystemTime,
    ) -> Vec<Vec<u8>> {
        self.stats.cuts = self.cache.cuts.clone();
        self.stats.tracked_flows = self.cache.tracked() as u64;
        let templates = match (self.templates_sent_at, self.template_refresh) {
            (None, _) => true,
            (Some(at), Some(every)) => now.duration_since(at).unwrap_or_default() >= every,
            (Some(_), None) => false,
        };
        // Options records when the counts moved, and with every template
        // refresh (a collector that restarted learns them again).
        let unattributed: &[Unattributed] = if templates || unattributed != self.unattributed_sent {
            self.unattributed_sent = unattributed.to_vec();
            unattributed
        } else {
            &[]
        };
        if flows.is_empty() && unattributed.is_empty() && !templates {
            return Vec::new();
        }
        let export_time = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as u32;
        let msgs = self.framer.frame(
            &Contents {
                templates,
                flows,
                unattributed,
            },
            export_time,
        );
        if templates {
            self.templates_sent_at = Some(now);
            self.stats.templates += super::template::TEMPLATE_COUNT;
        }
        self.stats.flow_records += flows.len() as u64;
        self.stats.options_records += unattributed.len() as u64;
        msgs
    }

    /// The next message's sequence number.
    pub fn sequence(&self) -> u32 {
        self.framer.sequence()
    }
}

/// The IPFIX sink: one exporter and its transport.
///
/// How it is driven: create it once at start-up; after each collection,
/// from a thread of its own (it may block up to the send timeout on TCP),
/// call [`IpfixSink::export`] with the full flow table of the published
/// snapshot; at shutdown, [`IpfixSink::finish`] with the last table.
/// Export on every collection, not on an interval of its own: the timeouts
/// are then honoured to within one `--collect-interval`. Pass only complete
/// reads: an entry missing from a table counts as evicted (its last counts
/// are reported and it is forgotten), so after a failed read skip the call.
pub struct IpfixSink {
    exporter: IpfixExporter,
    transport: Transport,
    collector: Collector,
    /// Log a send failure once per streak.
    failing: bool,
}

impl IpfixSink {
    /// # Errors
    /// A bad setting ([`IpfixConfig::validate`]) or a UDP collector that does
    /// not resolve; the message names the flag.
    pub fn new(config: &IpfixConfig) -> Result<IpfixSink, String> {
        config.validate()?;
        let transport = Transport::open(&config.collector, config.send_timeout)?;
        let refresh = transport.is_udp().then_some(config.template_refresh);
        Ok(IpfixSink {
            exporter: IpfixExporter::new(config, refresh),
            transport,
            collector: config.collector.clone(),
            failing: false,
        })
    }

    pub fn export(&mut self, table: &FlowTable, now: SystemTime) {
        self.session();
        let msgs = self.exporter.observe(table, now);
        self.send(msgs);
    }

    pub fn finish(&mut self, table: &FlowTable, now: SystemTime) {
        self.session();
        let msgs = self.exporter.finish(table, now);
        self.send(msgs);
    }

    fn session(&mut self) {
        match self.transport.ensure_session() {
            Ok(true) => self.exporter.new_session(),
            Ok(false) => {}
            Err(e) => self.failed(&e),
        }
    }

    fn send(&mut self, msgs: Vec<Vec<u8>>) {
        let mut broken = false;
        for m in msgs {
            let records = records_in(&m);
            if broken {
                self.exporter.stats.records_dropped += records;
                continue;
            }
            match self.transport.send(&m) {
                Ok(()) => {
                    self.exporter.stats.messages += 1;
                    self.exporter.stats.bytes += m.len() as u64;
                    if self.failing {
                        self.failing = false;
                        log::info!("ipfix: sending to {:?} again", self.collector);
                    }
                }
                Err(e) => {
                    self.exporter.stats.records_dropped += records;
                    self.failed(&e);
                    // A broken TCP session loses the rest of this export;
                    // UDP tries every message.
                    broken = !self.transport.is_udp();
                }
            }
        }
    }

    fn failed(&mut self, e: &str) {
        self.exporter.stats.send_errors += 1;
        if !self.failing {
            self.failing = true;
            log::warn!(
                "ipfix: cannot send to {:?}: {e}; records are counted as dropped until it works",
                self.collector
            );
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.exporter.stats
    }

    pub fn metrics(&self) -> Vec<SinkMetric> {
        self.exporter.stats.metrics()
    }
}

/// Data records in a message the framer built: every data set's length
/// over its record length.
fn records_in(m: &[u8]) -> u64 {
    use super::message::HEADER_LEN;
    use super::template as t;
    let mut at = HEADER_LEN;
    let mut n = 0;
    while at + 4 <= m.len() {
        let id = u16::from_be_bytes([m[at], m[at + 1]]);
        let len = u16::from_be_bytes([m[at + 2], m[at + 3]]) as usize;
        let rec = match id {
            t::TEMPLATE_IPV4 => t::FLOW_V4_LEN,
            t::TEMPLATE_IPV6 => t::FLOW_V6_LEN,
            t::TEMPLATE_UNATTRIBUTED => t::UNATTRIBUTED_LEN,
            t::TEMPLATE_UNATTRIBUTED_PACKETS => t::UNATTRIBUTED_PACKETS_LEN,
            _ => 0,
        };
        n += len.saturating_sub(4).checked_div(rec).unwrap_or(0) as u64;
        at += len.max(4);
    }
    n
}
