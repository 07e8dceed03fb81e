//! The exporter's view of each flow-table entry: what has been reported,
//! and when to cut the next record.
//!
//! The flow table counts cumulatively per entry; IPFIX wants delta counts
//! per record. Each observation compares an entry with what was last seen
//! and last exported. A record is cut when the flow
//! - goes idle (no packet for the idle timeout): `idleTimeout`;
//! - showed FIN or RST and had no packet since the previous read:
//!   `endOfFlow`;
//! - has been reported less recently than the active timeout:
//!   `activeTimeout` (the flow goes on);
//! - left the table before going idle (evicted by the LRU):
//!   `lackOfResources`, with the counts of the last read;
//! - is still open when the exporter stops: `forcedEnd`.
//!
//! Every cut reports exactly the counts since the previous cut, so the
//! deltas of a flow add up to what the table counted for it, up to its last
//! read: packets an entry gets between the last read and its eviction are
//! lost (the sink never sees them).
//!
//! One entry gives up to two records per cut, one per direction: rx as
//! `flowDirection` ingress with `ingressInterface`, tx as egress with
//! `egressInterface`. A packet that a host routes back out of the interface
//! it came in on is counted in both, and an IPFIX record has one pair of
//! counters; adding rx and tx would count it twice under one direction, and
//! would hide which way the bytes went. Records with no packets are not sent.
//!
//! `tcpControlBits` is the OR of the flags the entry has seen since it was
//! created (the table keeps no per-period flags).

use std::collections::HashMap;
use std::time::Duration;

use super::flow_table::{Direction, FlowCounters, FlowKey, FlowTable, TCP_FIN, TCP_RST};
use super::template::{EndReason, FlowRecord};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cum {
    rx_packets: u64,
    rx_bytes: u64,
    tx_packets: u64,
    tx_bytes: u64,
}

impl Cum {
    fn of(c: &FlowCounters) -> Cum {
        Cum {
            rx_packets: c.rx_packets,
            rx_bytes: c.rx_bytes,
            tx_packets: c.tx_packets,
            tx_bytes: c.tx_bytes,
        }
    }

    /// Every counter at least `o`'s: the same entry, grown (or not).
    fn covers(&self, o: &Cum) -> bool {
        self.rx_packets >= o.rx_packets
            && self.rx_bytes >= o.rx_bytes
            && self.tx_packets >= o.tx_packets
            && self.tx_bytes >= o.tx_bytes
    }
}

#[derive(Debug)]
struct Tracked {
    /// Tells one incarnation of a key from the next.
    first_seen_ns: u64,
    seen: Cum,
    exported: Cum,
    last_seen_ns: u64,
    tcp_flags: u8,
    /// Earliest the first unreported packet can have come (boot ns).
    period_start_ns: Option<u64>,
    /// When the last record was cut (boot ns): the active timeout counts
    /// from here.
    last_cut_ns: u64,
    /// Reported as ended (idle or end of flow): the next packet starts a
    /// new IPFIX flow.
    ended: bool,
    /// Observation that last saw the entry.
    generation: u64,
}

/// Expiry settings; [`Default`] holds the proposed flag defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// `--ipfix-active-timeout`: a long flow is reported at least this often.
    pub active: Duration,
    /// `--ipfix-idle-timeout`: a flow without packets this long has ended.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            active: Duration::from_secs(60),
            idle: Duration::from_secs(15),
        }
    }
}

#[derive(Debug)]
pub struct FlowCache {
    timeouts: Timeouts,
    tracked: HashMap<FlowKey, Tracked>,
    generation: u64,
    /// Boot ns of the previous observation.
    prev_read_ns: Option<u64>,
    /// Entries present at the first observation are reported from their
    /// counts then, not from zero (a restart that kept pinned maps).
    baseline_first: bool,
    /// Cuts so far, by reason.
    pub cuts: HashMap<EndReason, u64>,
}

impl FlowCache {
    pub fn new(timeouts: Timeouts, baseline_existing: bool) -> FlowCache {
        FlowCache {
            timeouts,
            tracked: HashMap::new(),
            generation: 0,
            prev_read_ns: None,
            baseline_first: baseline_existing,
            cuts: HashMap::new(),
        }
    }

    /// Entries tracked (bounded by the flow table's capacity: an entry is
    /// forgotten once it leaves the table).
    pub fn tracked(&self) -> usize {
        self.tracked.len()
    }

    /// Compares the table with the previous read and returns the records
    /// due now.
    pub fn observe(&mut self, table: &FlowTable) -> Vec<FlowRecord> {
        let now = table.read_at_boot_ns;
        let idle = self.timeouts.idle.as_nanos() as u64;
        let active = self.timeouts.active.as_nanos() as u64;
        let first_read = self.prev_read_ns.is_none();
        let prev_read = self.prev_read_ns.unwrap_or(0);
        self.generation += 1;
        let mut out = Vec::new();
        for e in &table.flows {
            let c = &e.counters;
            let cum = Cum::of(c);
            if let Some(t) = self.tracked.get(&e.key) {
                if t.first_seen_ns != c.first_seen_ns || !cum.covers(&t.seen) {
                    // The entry was removed and created again between reads:
                    // the old one's unreported counts end here.
                    let reason = if now.saturating_sub(t.last_seen_ns) >= idle {
                        EndReason::IdleTimeout
                    } else {
                        EndReason::LackOfResources
                    };
                    let mut t = self.tracked.remove(&e.key).expect("present");
                    if !t.ended || t.seen != t.exported {
                        cut(&mut out, &mut self.cuts, table, &e.key, &mut t, reason);
                    }
                }
            }
            let baseline = first_read && self.baseline_first;
            let t = self.tracked.entry(e.key).or_insert_with(|| Tracked {
                first_seen_ns: c.first_seen_ns,
                seen: if baseline { cum } else { Cum::default() },
                exported: if baseline { cum } else { Cum::default() },
                last_seen_ns: c.last_seen_ns,
                tcp_flags: c.tcp_flags,
                period_start_ns: None,
                last_cut_ns: if baseline { now } else { c.first_seen_ns },
                ended: false,
                generation: 0,
            });
            t.generation = self.generation;
            let grew = cum != t.seen;
            if grew {
                if t.period_start_ns.is_none() {
                    let start = if t.seen == Cum::default() {
                        c.first_seen_ns
                    } else {
                        prev_read.max(t.last_seen_ns).min(c.last_seen_ns)
                    };
                    t.period_start_ns = Some(start);
                }
                if t.ended {
                    t.ended = false;
                    t.last_cut_ns = t.period_start_ns.unwrap_or(now);
                }
                t.seen = cum;
                t.last_seen_ns = c.last_seen_ns;
            }
            t.tcp_flags = c.tcp_flags;
            if t.ended {
                continue;
            }
            let reason = if now.saturating_sub(t.last_seen_ns) >= idle {
                Some(EndReason::IdleTimeout)
            } else if !grew && !first_read && t.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
                Some(EndReason::EndOfFlow)
            } else if now.saturating_sub(t.last_cut_ns) >= active && t.seen != t.exported {
                Some(EndReason::ActiveTimeout)
            } else {
                None
            };
            if let Some(reason) = reason {
                cut(&mut out, &mut self.cuts, table, &e.key, t, reason);
                t.last_cut_ns = now;
                t.ended = reason != EndReason::ActiveTimeout;
            }
        }
        let generation = self.generation;
        let gone: Vec<FlowKey> = self
            .tracked
            .iter()
            .filter(|(_, t)| t.generation != generation)
            .map(|(k, _)| *k)
            .collect();
        for k in gone {
            let mut t = self.tracked.remove(&k).expect("present");
            if !t.ended || t.seen != t.exported {
                let reason = if now.saturating_sub(t.last_seen_ns) >= idle {
                    EndReason::IdleTimeout
                } else {
                    EndReason::LackOfResources
                };
                cut(&mut out, &mut self.cuts, table, &k, &mut t, reason);
            }
        }
        self.prev_read_ns = Some(now);
        out
    }

    /// Every unreported count, as `forcedEnd` records (at shutdown).
    pub fn finish(&mut self, table: &FlowTable) -> Vec<FlowRecord> {
        let mut out = self.observe(table);
        let mut keys: Vec<FlowKey> = self.tracked.keys().copied().collect();
        keys.sort_unstable();
        for k in keys {
            let mut t = self.tracked.remove(&k).expect("present");
            if !t.ended || t.seen != t.exported {
                cut(
                    &mut out,
                    &mut self.cuts,
                    table,
                    &k,
                    &mut t,
                    EndReason::ForcedEnd,
                );
            }
        }
        out
    }
}

/// Reports what `t` has counted since its last cut, one record per
/// direction that had packets.
fn cut(
    out: &mut Vec<FlowRecord>,
    cuts: &mut HashMap<EndReason, u64>,
    table: &FlowTable,
    k: &FlowKey,
    t: &mut Tracked,
    reason: EndReason,
) {
    let start = t.period_start_ns.take().unwrap_or(t.last_seen_ns);
    let d = [
        (
            Direction::Ingress,
            t.seen.rx_packets - t.exported.rx_packets,
            t.seen.rx_bytes - t.exported.rx_bytes,
        ),
        (
            Direction::Egress,
            t.seen.tx_packets - t.exported.tx_packets,
            t.seen.tx_bytes - t.exported.tx_bytes,
        ),
    ];
    t.exported = t.seen;
    *cuts.entry(reason).or_default() += 1;
    for (direction, packets, bytes) in d {
        if packets == 0 && bytes == 0 {
            continue;
        }
        out.push(FlowRecord {
            ifindex: k.ifindex,
            src: k.src,
            dst: k.dst,
            src_port: k.src_port,
            dst_port: k.dst_port,
            proto: k.proto,
            direction,
            packets,
            bytes,
            start_ms: table.unix_ms(start.min(t.last_seen_ns)),
            end_ms: table.unix_ms(t.last_seen_ns),
            tcp_flags: t.tcp_flags,
            end_reason: reason,
        });
    }
}
