//! Per-pod totals from per-interface counters and per-connection records:
//! a pure function of the [`PodIndex`], this collection's inputs and the
//! previous [`PodLedger`], tested on literal data.
//!
//! - Traffic is the pod's host-side interfaces' counters, seen from the
//!   pod: what the host end sends (`tx`) the pod receives. They are
//!   cumulative, so a pod's traffic is the sum of its interfaces' current
//!   counters and equals their kernel statistics.
//! - Connection records are this collection's events (deltas), attributed
//!   by cgroup id, else by pid, and added to the pod's running totals.
//! - Pods past `--max-pods` are counted under `pod="_other"`, which also
//!   keeps the last totals of every overflow pod that went: `_other` never
//!   goes down, and the sum over all rows stays the sum over all pods seen.
//!   A named pod that went disappears with its series.

use std::collections::HashMap;

use serde::Serialize;

use super::model::{Lookup, PodIndex, PodInfo, OTHER};

/// One interface's cumulative counters, as the host sees them (its kernel
/// statistics or the probes' counts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IfaceCounters {
    pub ifindex: u32,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// The pod connected out.
    Active,
    /// The pod accepted it.
    Passive,
}

/// What the socket layer saw of one connection since the last collection.
/// The owner is its cgroup id where the probe had one, else its pid.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ConnRecord {
    /// cgroup v2 id of the owning process; 0 if unknown.
    pub cgroup_id: u64,
    /// Owning process (host pid namespace); 0 if unknown.
    pub pid: u32,
    /// The connection was opened (counted once per connection).
    pub opened: Option<Opened>,
    /// The handshake failed (refused, timed out, unreachable).
    pub failed: bool,
    pub resets_sent: u32,
    pub resets_received: u32,
    /// Segments retransmitted.
    pub retransmits: u64,
    /// A smoothed RTT sample, seconds.
    pub rtt_seconds: Option<f64>,
}

/// A pod's totals since it was first seen (traffic: since its interfaces
/// were created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct PodTotals {
    pub received_bytes: u64,
    pub received_packets: u64,
    pub sent_bytes: u64,
    pub sent_packets: u64,
    pub tcp_opens_active: u64,
    pub tcp_opens_passive: u64,
    pub tcp_failed: u64,
    pub tcp_resets_sent: u64,
    pub tcp_resets_received: u64,
    pub tcp_retransmits: u64,
    /// RTT summary: sum and count of the samples.
    pub rtt_seconds_sum: f64,
    pub rtt_count: u64,
}

impl PodTotals {
    fn add(&mut self, o: &PodTotals) {
        self.received_bytes += o.received_bytes;
        self.received_packets += o.received_packets;
        self.sent_bytes += o.sent_bytes;
        self.sent_packets += o.sent_packets;
        self.tcp_opens_active += o.tcp_opens_active;
        self.tcp_opens_passive += o.tcp_opens_passive;
        self.tcp_failed += o.tcp_failed;
        self.tcp_resets_sent += o.tcp_resets_sent;
        self.tcp_resets_received += o.tcp_resets_received;
        self.tcp_retransmits += o.tcp_retransmits;
        self.rtt_seconds_sum += o.rtt_seconds_sum;
        self.rtt_count += o.rtt_count;
    }

    fn add_interface(&mut self, c: &IfaceCounters) {
        // Host end's tx is what the pod receives.
        self.received_bytes += c.tx_bytes;
        self.received_packets += c.tx_packets;
        self.sent_bytes += c.rx_bytes;
        self.sent_packets += c.rx_packets;
    }

    fn add_connection(&mut self, r: &ConnRecord) {
        match r.opened {
            Some(Opened::Active) => self.tcp_opens_active += 1,
            Some(Opened::Passive) => self.tcp_opens_passive += 1,
            None => {}
        }
        self.tcp_failed += u64::from(r.failed);
        self.tcp_resets_sent += u64::from(r.resets_sent);
        self.tcp_resets_received += u64::from(r.resets_received);
        self.tcp_retransmits += r.retransmits;
        if let Some(rtt) = r.rtt_seconds {
            self.rtt_seconds_sum += rtt;
            self.rtt_count += 1;
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct PodEntry {
    /// Connection totals, accumulated.
    conns: PodTotals,
    /// Traffic as of the last collection (cumulative counters).
    traffic: PodTotals,
    overflow: bool,
}

/// The state carried from one collection to the next.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodLedger {
    pods: HashMap<String, PodEntry>,
    /// Totals of overflow pods that went.
    other_retired: PodTotals,
    /// Connection records that belong to no pod (host processes), since
    /// start.
    pub host_records_total: u64,
    /// Records of this collection whose owner the index did not know:
    /// created since its refresh. Pass to the next refresh; they are
    /// counted in `host_records_total`.
    pub unknown_owners: u64,
}

/// One row the metrics and `/status` render: a pod, or `_other`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PodRow {
    pub namespace: String,
    pub pod: String,
    /// `None` for `_other`.
    pub uid: Option<String>,
    pub totals: PodTotals,
}

/// This collection's ledger, from the last one and this collection's
/// inputs.
pub fn aggregate(
    index: &PodIndex,
    interfaces: &[IfaceCounters],
    conns: &[ConnRecord],
    prev: &PodLedger,
) -> PodLedger {
    let mut next = PodLedger {
        other_retired: prev.other_retired,
        host_records_total: prev.host_records_total,
        ..PodLedger::default()
    };
    for p in &index.pods {
        let mut e = prev.pods.get(&p.uid).cloned().unwrap_or_default();
        e.traffic = PodTotals::default();
        e.overflow = p.overflow;
        next.pods.insert(p.uid.clone(), e);
    }
    // Overflow pods that went leave their totals to _other.
    for (uid, e) in &prev.pods {
        if e.overflow && !next.pods.contains_key(uid) {
            next.other_retired.add(&e.conns);
            next.other_retired.add(&e.traffic);
        }
    }
    for c in interfaces {
        if let Some(p) = index.by_ifindex(c.ifindex) {
            entry(&mut next, p).traffic.add_interface(c);
        }
    }
    for r in conns {
        let by_cgroup = index.by_cgroup(r.cgroup_id);
        let lookup = match by_cgroup {
            Lookup::Pod(..) => by_cgroup,
            // A cgroup id the index has never seen is a new cgroup: the pid
            // may still tell (a process moved into a known container).
            _ => match index.by_pid(r.pid) {
                Lookup::NotAPod if by_cgroup == Lookup::Unknown => Lookup::Unknown,
                l => l,
            },
        };
        match lookup {
            Lookup::Pod(p, _) => entry(&mut next, p).conns.add_connection(r),
            Lookup::Unknown => {
                next.unknown_owners += 1;
                next.host_records_total += 1;
            }
            Lookup::NotAPod => next.host_records_total += 1,
        }
    }
    next
}

fn entry<'a>(ledger: &'a mut PodLedger, p: &PodInfo) -> &'a mut PodEntry {
    ledger.pods.entry(p.uid.clone()).or_default()
}

impl PodLedger {
    /// The rows to render: each named pod of `index` (its order), then
    /// `_other` when any pod ever overflowed.
    pub fn rows(&self, index: &PodIndex) -> Vec<PodRow> {
        let mut rows = Vec::new();
        let mut other = self.other_retired;
        let mut any_other = other != PodTotals::default();
        for p in &index.pods {
            let Some(e) = self.pods.get(&p.uid) else {
                continue;
            };
            let mut t = e.conns;
            t.add(&e.traffic);
            if p.overflow {
                other.add(&t);
                any_other = true;
            } else {
                rows.push(PodRow {
                    namespace: p.namespace.clone(),
                    pod: p.pod.clone(),
                    uid: Some(p.uid.clone()),
                    totals: t,
                });
            }
        }
        if any_other {
            rows.push(PodRow {
                namespace: OTHER.into(),
                pod: OTHER.into(),
                uid: None,
                totals: other,
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::cgroup_path::{CgroupOwner, ContainerRef, Runtime};
    use crate::identity::cgroup_walk::{OwnedCgroup, Walk};
    use crate::identity::index::{build, Found, Slots};
    use crate::identity::kubelet_logs::KubeletNames;
    use crate::identity::netlink::Link;

    /// Pods p1..pN (created in that order), each with one container
    /// (cgroup id 10*i, pid 100*i) and one veth (ifindex i, nsid i).
    fn index(pods: &[u32], max_pods: usize, slots: &mut Slots) -> PodIndex {
        let owned = pods
            .iter()
            .map(|&i| OwnedCgroup {
                path: format!("/kubepods/pod{i}/c"),
                id: Some(10 * i as u64),
                owner: CgroupOwner::Pod {
                    uid: format!("uid-{i}"),
                    container: Some(ContainerRef {
                        runtime: Runtime::Containerd,
                        id: format!("{i:064}"),
                    }),
                },
                pids: vec![100 * i],
            })
            .collect();
        let walk = Walk {
            owned,
            ids: pods.iter().map(|&i| 10 * i as u64).chain([1]).collect(),
            ..Walk::default()
        };
        let links: Vec<Link> = pods
            .iter()
            .map(|&i| Link {
                ifindex: i,
                name: format!("veth{i}"),
                kind: Some("veth".into()),
                link_netnsid: Some(i as i32),
            })
            .collect();
        let nsids = pods
            .iter()
            .map(|&i| (format!("uid-{i}"), i as i32))
            .collect();
        let found = Found {
            walk: &walk,
            kubelet: &KubeletNames::default(),
            runtime_names: &HashMap::new(),
            links: &links,
            nsids: &nsids,
        };
        build(&found, slots, max_pods)
    }

    fn iface(ifindex: u32, rx: u64, tx: u64) -> IfaceCounters {
        IfaceCounters {
            ifindex,
            rx_bytes: rx,
            rx_packets: rx / 100,
            tx_bytes: tx,
            tx_packets: tx / 100,
        }
    }

    fn row<'a>(rows: &'a [PodRow], pod: &str) -> &'a PodTotals {
        &rows.iter().find(|r| r.pod == pod).unwrap().totals
    }

    #[test]
    fn traffic_is_the_host_veth_seen_from_the_pod() {
        let ix = index(&[1, 2], 10, &mut Slots::default());
        let l = aggregate(
            &ix,
            &[iface(1, 1000, 5000), iface(2, 300, 0), iface(99, 7, 7)],
            &[],
            &PodLedger::default(),
        );
        let rows = l.rows(&ix);
        assert_eq!(rows.len(), 2, "no _other row without overflow");
        let p1 = row(&rows, "uid-1");
        assert_eq!((p1.received_bytes, p1.sent_bytes), (5000, 1000));
        assert_eq!((p1.received_packets, p1.sent_packets), (50, 10));
        assert_eq!(row(&rows, "uid-2").sent_bytes, 300);
    }

    #[test]
    fn connections_by_cgroup_then_pid() {
        let ix = index(&[1, 2], 10, &mut Slots::default());
        let rec = |cgroup_id, pid| ConnRecord {
            cgroup_id,
            pid,
            opened: Some(Opened::Active),
            retransmits: 2,
            rtt_seconds: Some(0.5),
            ..ConnRecord::default()
        };
        let conns = [
            rec(10, 0),   // pod 1 by cgroup
            rec(0, 200),  // pod 2 by pid
            rec(20, 100), // the cgroup id wins
            ConnRecord {
                cgroup_id: 10,
                opened: Some(Opened::Passive),
                failed: true,
                resets_sent: 1,
                resets_received: 2,
                ..ConnRecord::default()
            },
            rec(1, 0),     // a host cgroup
            rec(0, 0),     // no owner at all
            rec(555, 0),   // a cgroup created since the refresh
            rec(0, 4242),  // a pid not looked up yet
            rec(555, 100), // new cgroup, known pid: pod 1
        ];
        let l = aggregate(&ix, &[], &conns, &PodLedger::default());
        assert_eq!(l.unknown_owners, 2);
        assert_eq!(l.host_records_total, 4);
        let rows = l.rows(&ix);
        let p1 = row(&rows, "uid-1");
        assert_eq!((p1.tcp_opens_active, p1.tcp_opens_passive), (2, 1));
        assert_eq!(
            (p1.tcp_failed, p1.tcp_resets_sent, p1.tcp_resets_received),
            (1, 1, 2)
        );
        assert_eq!((p1.tcp_retransmits, p1.rtt_count), (4, 2));
        assert_eq!(p1.rtt_seconds_sum, 1.0);
        let p2 = row(&rows, "uid-2");
        assert_eq!((p2.tcp_opens_active, p2.tcp_retransmits), (2, 4));

        // Connection totals accumulate across collections.
        let l2 = aggregate(&ix, &[], &conns[..1], &l);
        assert_eq!(row(&l2.rows(&ix), "uid-1").tcp_opens_active, 3);
        assert_eq!(l2.unknown_owners, 0, "per collection");
        assert_eq!(l2.host_records_total, 4, "since start");
    }

    #[test]
    fn other_keeps_totals_intact() {
        let mut slots = Slots::default();
        let ix = index(&[1, 2, 3], 2, &mut slots);
        let ifaces = [iface(1, 100, 100), iface(2, 200, 200), iface(3, 300, 300)];
        let conns = [ConnRecord {
            pid: 300,
            opened: Some(Opened::Passive),
            ..ConnRecord::default()
        }];
        let l = aggregate(&ix, &ifaces, &conns, &PodLedger::default());
        let rows = l.rows(&ix);
        let names: Vec<_> = rows.iter().map(|r| r.pod.as_str()).collect();
        assert_eq!(names, ["uid-1", "uid-2", OTHER]);
        assert_eq!(rows[2].namespace, OTHER);
        assert_eq!(rows[2].uid, None);
        let other = row(&rows, OTHER);
        assert_eq!((other.sent_bytes, other.tcp_opens_passive), (300, 1));
        let sum: u64 = rows.iter().map(|r| r.totals.sent_bytes).sum();
        assert_eq!(sum, 600, "every byte in exactly one row");

        // Pod 3 goes: _other keeps its totals; a new pod 4 takes its
        // place in _other (pods 1 and 2 still hold the named places).
        let ix = index(&[1, 2, 4], 2, &mut slots);
        let l = aggregate(
            &ix,
            &[iface(1, 100, 100), iface(2, 200, 200), iface(4, 40, 0)],
            &[],
            &l,
        );
        let rows = l.rows(&ix);
        let other = row(&rows, OTHER);
        assert_eq!(other.sent_bytes, 340, "300 retired + 40 live");
        assert_eq!(other.tcp_opens_passive, 1);

        // Pod 1 goes: its series disappear, a new pod 5 takes its place.
        let ix = index(&[2, 4, 5], 2, &mut slots);
        let l = aggregate(
            &ix,
            &[iface(2, 200, 200), iface(4, 50, 0), iface(5, 9, 0)],
            &[],
            &l,
        );
        let names: Vec<_> = l.rows(&ix).iter().map(|r| r.pod.clone()).collect();
        assert_eq!(names, ["uid-2", "uid-5", OTHER]);
        assert_eq!(row(&l.rows(&ix), OTHER).sent_bytes, 350);
    }
}
