//! The collector: on every interval it follows the interfaces (attaching
//! new matches, forgetting vanished ones), reads the maps once, computes
//! rates, and publishes an immutable snapshot with its renderings.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use log::{debug, warn};

use crate::abi::{FlowKey, FlowStats, Hook, FAMILY_IPV4};
use crate::clock::{boottime_ns, unix_seconds, Now};
use crate::interface_filter::InterfaceFilter;
use crate::manager::{Error, Manager};
use crate::snapshot::{
    ChangeCounters, CollectionInfo, EventCounters, ExportStatus, FlowEntry, FlowTable, HookInfo,
    InterfaceChange, InterfaceSnapshot, MapFill, Published, Rates, Rendered, Snapshot,
};
use crate::{metrics, netif, probes, rates};

/// What a sink gets after each collection besides the published snapshot:
/// the whole flow table as read (not only the top flows `/status` lists).
pub struct FlowRead<'a> {
    pub flows: &'a [(FlowKey, FlowStats)],
    /// Both clocks, read just after the flow table.
    pub at: Now,
}

/// A consumer of every collection other than the HTTP server: the
/// remote_write and IPFIX sinks (`crate::sinks`). It sees only published
/// data and never a BPF map.
pub trait Sink: Send {
    /// The sink's part of the snapshot about to be published.
    fn status(&self) -> ExportStatus;
    /// After each successful collection. It must not block on the network:
    /// the collector waits for it.
    fn collected(&mut self, published: &Arc<Rendered>, flows: FlowRead<'_>);
    /// At exit: stop, flushing what can be kept.
    fn shutdown(&mut self);
}

/// The whole flow table as read from the kernel.
type FlowList = Vec<(FlowKey, FlowStats)>;

/// Which interfaces to watch.
#[derive(Clone, Debug, Default)]
pub enum Selection {
    /// Every interface that is up and not loopback.
    #[default]
    AllUp,
    /// Names and globs from `--interface-filter`.
    Filter(InterfaceFilter),
}

impl Selection {
    fn wants(&self, i: &netif::Interface) -> bool {
        match self {
            Selection::AllUp => i.up && !i.loopback,
            Selection::Filter(f) => f.matches(&i.name),
        }
    }
}

#[derive(Clone, Debug)]
pub struct CollectorConfig {
    pub interval: Duration,
    pub selection: Selection,
    pub top_flows: usize,
    pub flow_idle_timeout: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            interval: Duration::from_secs(5),
            selection: Selection::AllUp,
            top_flows: 10,
            flow_idle_timeout: Duration::from_secs(300),
        }
    }
}

pub struct Collector {
    manager: Manager,
    config: CollectorConfig,
    published: Arc<Published>,
    started: SystemTime,
    kernel_release: String,
    /// Last reading per interface, for rates.
    previous: HashMap<String, rates::Reading>,
    /// (name, ifindex) pairs that refused to attach; not retried until the
    /// interface is re-created, so a bad device logs once, not every interval.
    refused: HashSet<(String, u32)>,
    collections: u64,
    errors: u64,
    events: EventCounters,
    /// Alert engine and detection maps (crate::detect).
    security: crate::detect::Detector,
    changes: std::collections::VecDeque<InterfaceChange>,
    change_totals: ChangeCounters,
    /// The TCP socket layer, when set up (`set_sockets`).
    sockets: Option<crate::sockets::SocketLayer>,
    /// The remote_write and IPFIX sinks, when configured (`set_sink`).
    sink: Option<Box<dyn Sink>>,
    /// Republications for new alerts: the second they count in, and how
    /// many (see `publish_new_alerts`).
    alert_published: (Option<Instant>, u32),
}

/// Interface changes /status keeps.
const MAX_CHANGES: usize = 32;

impl Collector {
    pub fn new(manager: Manager, config: CollectorConfig, published: Arc<Published>) -> Collector {
        Collector {
            manager,
            config,
            published,
            started: SystemTime::now(),
            kernel_release: crate::kernel::release(),
            previous: HashMap::new(),
            refused: HashSet::new(),
            collections: 0,
            errors: 0,
            events: EventCounters::default(),
            security: crate::detect::Detector::default(),
            alert_published: (None, 0),
            changes: std::collections::VecDeque::new(),
            change_totals: ChangeCounters::default(),
            sockets: None,
            sink: None,
        }
    }

    /// Hands every later collection to `sink` as well.
    pub fn set_sink(&mut self, sink: Box<dyn Sink>) {
        self.sink = Some(sink);
    }

    /// Stops the sink (see [`Sink::shutdown`]); call before dropping the
    /// collector.
    pub fn shutdown_sink(&mut self) {
        if let Some(mut s) = self.sink.take() {
            s.shutdown();
        }
    }

    pub fn interval(&self) -> Duration {
        self.config.interval
    }

    pub fn set_interval(&mut self, d: Duration) {
        self.config.interval = d;
    }

    pub fn manager(&self) -> &Manager {
        &self.manager
    }

    /// Sets up detection: the engine and the maps it writes.
    pub fn set_detector(&mut self, d: crate::detect::Detector) {
        self.security = d;
    }

    pub fn manager_mut(&mut self) -> &mut Manager {
        &mut self.manager
    }

    /// Hands the socket layer to the collector: its snapshot goes into each
    /// collection and its ring buffer is drained in `run`. Its connection
    /// events are queued (bounded) for the security detector's connection
    /// detectors, which take them after each drain.
    pub fn set_sockets(&mut self, mut sockets: crate::sockets::SocketLayer) {
        if let Some(p) = sockets.probes_mut() {
            p.enable_event_queue(SOCKET_EVENT_QUEUE);
        }
        self.sockets = Some(sockets);
    }

    /// Hands the connection events queued since the last call to the
    /// security detector (failed connects per process, resets to many peers).
    fn feed_connection_events(&mut self) {
        if let Some(p) = self.sockets.as_mut().and_then(|s| s.probes_mut()) {
            let events = p.take_events();
            self.security.ingest_sockets(&events);
        }
    }

    pub fn sockets_mut(&mut self) -> Option<&mut crate::sockets::SocketLayer> {
        self.sockets.as_mut()
    }

    /// Attaches to wanted interfaces not yet watched and forgets vanished
    /// ones (or ones re-created under the same name with a new index).
    /// Returns the attach errors of this pass, by interface.
    pub fn sync_interfaces(&mut self) -> Vec<(String, Error)> {
        let present = match netif::list() {
            Ok(l) => l,
            Err(e) => {
                warn!("listing interfaces: {e}");
                return Vec::new();
            }
        };
        let index: HashMap<&str, u32> = present
            .iter()
            .map(|i| (i.name.as_str(), i.ifindex))
            .collect();
        let before: HashMap<String, u32> = self
            .manager
            .attached()
            .iter()
            .map(|(n, a)| (n.clone(), a.ifindex))
            .collect();
        for gone in self
            .manager
            .forget_vanished(&|n, ifx| index.get(n) == Some(&ifx))
        {
            self.previous.remove(&gone);
            let ifindex = before.get(&gone).copied().unwrap_or(0);
            self.record_change(&gone, ifindex, "vanished", None);
        }
        self.refused
            .retain(|(n, ifx)| index.get(n.as_str()) == Some(ifx));
        let mut failures = Vec::new();
        let wanted: Vec<&netif::Interface> = present
            .iter()
            .filter(|i| self.config.selection.wants(i))
            .collect();
        for i in wanted {
            let key = (i.name.clone(), i.ifindex);
            if self.manager.attached().contains_key(&i.name) || self.refused.contains(&key) {
                continue;
            }
            match self.manager.attach(&i.name, i.ifindex) {
                Ok(_) => self.record_change(&i.name, i.ifindex, "attached", None),
                Err(e) => {
                    self.record_change(&i.name, i.ifindex, "refused", Some(e.to_string()));
                    self.refused.insert(key);
                    failures.push((i.name.clone(), e));
                }
            }
        }
        failures
    }

    fn record_change(
        &mut self,
        interface: &str,
        ifindex: u32,
        change: &'static str,
        error: Option<String>,
    ) {
        match change {
            "attached" => self.change_totals.attached += 1,
            "vanished" => self.change_totals.vanished += 1,
            _ => self.change_totals.refused += 1,
        }
        if self.changes.len() == MAX_CHANGES {
            self.changes.pop_front();
        }
        let at = unix_seconds(SystemTime::now());
        self.changes.push_back(InterfaceChange {
            at,
            interface: interface.to_string(),
            ifindex,
            change,
            error,
        });
    }

    /// Reads the maps once, publishes the snapshot and returns it.
    ///
    /// # Errors
    /// A failed map read; the previous snapshot stays published with the
    /// error counted and shown in /status.
    pub fn collect_once(&mut self) -> Result<Arc<Rendered>, Error> {
        let t0 = Instant::now();
        self.collections += 1;
        let result = self.read();
        let duration = t0.elapsed();
        let (mut snap, flows, at) = match result {
            Ok(s) => s,
            Err(e) => {
                self.errors += 1;
                let mut s = self.published.load().snapshot.clone();
                s.collection.last_error = Some(e.to_string());
                s.collection.errors_total = self.errors;
                s.collection.collections_total = self.collections;
                self.publish(s);
                return Err(e);
            }
        };
        snap.collection.duration_seconds = duration.as_secs_f64();
        snap.export = self.sink.as_ref().map(|s| s.status());
        self.publish(snap);
        let published = self.published.load();
        if let Some(s) = self.sink.as_mut() {
            s.collected(&published, FlowRead { flows: &flows, at });
        }
        Ok(published)
    }

    fn publish(&self, snapshot: Snapshot) {
        let metrics = metrics::render(&snapshot);
        let status = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
        self.published.store(Rendered {
            snapshot,
            metrics,
            status,
        });
    }

    /// One read of the maps: the snapshot, the whole flow table, and when
    /// it was read.
    fn read(&mut self) -> Result<(Snapshot, FlowList, Now), Error> {
        self.manager.check_hooks();
        let now = Instant::now();
        let wall = unix_seconds(SystemTime::now());
        let stats = self.manager.network_stats()?;
        let stats_entries = self.manager.packet_stats_entries();
        let tc_entries = self.manager.tc_device_stats()?.len() as u64;
        let boot_now = boottime_ns();
        let idle_ns = self.config.flow_idle_timeout.as_nanos() as u64;
        let flows = self.manager.flows(boot_now.saturating_sub(idle_ns))?;
        let flows_read_at = Now::read();

        let mut names: HashMap<u32, String> = HashMap::new();
        let mut interfaces = Vec::new();
        for st in stats {
            let att = &self.manager.attached()[&st.interface];
            names.insert(st.ifindex, st.interface.clone());
            let (rx, tx) = (st.rx, st.tx);
            let reading = rates::Reading {
                at: now,
                rx_packets: rx.packets,
                rx_bytes: rx.bytes,
                tx_packets: tx.packets,
                tx_bytes: tx.bytes,
            };
            let rates = match self.previous.get(&st.interface) {
                Some(prev) => {
                    let [rx_packets, tx_packets, rx_bytes, tx_bytes] =
                        rates::between(prev, &reading);
                    Rates {
                        rx_packets,
                        tx_packets,
                        rx_bytes,
                        tx_bytes,
                    }
                }
                None => Rates::default(),
            };
            self.previous.insert(st.interface.clone(), reading);
            interfaces.push(InterfaceSnapshot {
                hooks: att
                    .hooks
                    .iter()
                    .map(|h| HookInfo {
                        hook: h.hook.name(),
                        mode: h.mode,
                        method: h.method,
                        program_id: h.program_id,
                        attached: h.missing.is_none(),
                        problem: h.missing.clone(),
                    })
                    .collect(),
                rx_source: st.rx_source.name(),
                rx,
                tx,
                rates,
                per_hook: st.per_hook.iter().map(|(h, p)| (h.name(), *p)).collect(),
                name: st.interface,
                ifindex: st.ifindex,
            });
        }

        let caps = self.manager.config().capacities();
        let flow_entries = flows.len() as u64;
        let top = top_flows(&flows, self.config.top_flows, boot_now, &names);
        let snapshot = Snapshot {
            version: env!("CARGO_PKG_VERSION"),
            revision: env!("NETPROBE_REVISION"),
            process: crate::process::ProcessStats::read(),
            arch: std::env::consts::ARCH,
            kernel_release: self.kernel_release.clone(),
            started_at: unix_seconds(self.started),
            uptime_seconds: self.started.elapsed().unwrap_or_default().as_secs_f64(),
            collection: CollectionInfo {
                interval_seconds: self.config.interval.as_secs_f64(),
                last_collection: wall,
                duration_seconds: 0.0,
                collections_total: self.collections,
                errors_total: self.errors,
                last_error: None,
            },
            interfaces,
            maps: vec![
                MapFill {
                    name: probes::MAP_PACKET_STATS,
                    entries: stats_entries,
                    capacity: caps.packet_stats.into(),
                },
                MapFill {
                    name: probes::MAP_FLOW_STATS,
                    entries: flow_entries,
                    capacity: caps.flow_stats.into(),
                },
                MapFill {
                    name: probes::MAP_TC_DEVICE_STATS,
                    entries: tc_entries,
                    capacity: caps.tc_device_stats.into(),
                },
                MapFill {
                    name: probes::MAP_IFACE_CONFIG,
                    entries: self
                        .manager
                        .attached()
                        .values()
                        .filter(|a| a.hooks.iter().any(|h| h.hook == Hook::Xdp))
                        .count() as u64,
                    capacity: caps.iface_config.into(),
                },
            ],
            flow_table: FlowTable {
                entries: flow_entries,
                capacity: caps.flow_stats.into(),
                top,
            },
            events: self.events.clone(),
            interface_changes: self.changes.iter().cloned().collect(),
            interface_changes_total: self.change_totals,
            security: self.security.snapshot(),
            sockets: self.sockets.as_mut().map(|s| s.snapshot(boot_now)),
            export: None,
        };
        Ok((snapshot, flows, flows_read_at))
    }

    /// Counts one ring-buffer event.
    pub fn record_event(&mut self, ev: &crate::abi::Event) {
        self.events.received_total += 1;
        if ev.kind == crate::abi::EVENT_FLOW_ADMISSION_LIMITED {
            self.events.flow_admission_limited_total += 1;
            debug!(
                "flow admission limited on a CPU: {} packets without a new flow entry",
                ev.value
            );
        }
    }

    /// Runs until cancelled: sync interfaces and collect once per interval;
    /// between collections, handle ring-buffer events as they arrive and
    /// resync interfaces as soon as netlink reports a link change.
    pub async fn run(&mut self) {
        let mut events = self
            .manager
            .take_events()
            .and_then(|rb| match smol::Async::new(rb) {
                Ok(a) => Some(a),
                Err(e) => {
                    warn!("probe events disabled: cannot poll the ring buffer: {e}");
                    None
                }
            });
        let mut links = match crate::linkwatch::LinkWatcher::new().and_then(smol::Async::new) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(
                    "no netlink link notifications ({e}): new interfaces are found every {:?}",
                    self.config.interval
                );
                None
            }
        };
        let mut sock_ring = self
            .sockets
            .as_mut()
            .and_then(|s| s.probes_mut())
            .and_then(|p| p.take_ring())
            .and_then(|rb| match smol::Async::new(rb) {
                Ok(a) => Some(a),
                Err(e) => {
                    warn!("connection events disabled: cannot poll the socket ring buffer: {e}");
                    None
                }
            });
        loop {
            self.sync_and_report();
            // The socket probes wake the agent only when their ring fills
            // up: take what came since, so the snapshot includes it.
            if let (Some(r), Some(p)) = (
                sock_ring.as_mut(),
                self.sockets.as_mut().and_then(|s| s.probes_mut()),
            ) {
                // SAFETY: the ring buffer is only read here; its fd stays open.
                p.drain(unsafe { r.get_mut() });
            }
            self.feed_connection_events();
            if let Err(e) = self.collect_once() {
                warn!("collection failed: {e}");
            }
            let deadline = Instant::now() + self.config.interval;
            loop {
                let timer = async {
                    smol::Timer::at(deadline).await;
                    Wake::Timer
                };
                let ev = async {
                    match &events {
                        Some(e) => Wake::Events(e.readable().await),
                        None => smol::future::pending().await,
                    }
                };
                let ln = async {
                    match &links {
                        Some(l) => Wake::Links(l.readable().await),
                        None => smol::future::pending().await,
                    }
                };
                let sk = async {
                    match &sock_ring {
                        Some(r) => Wake::Sockets(r.readable().await),
                        None => smol::future::pending().await,
                    }
                };
                match smol::future::or(timer, smol::future::or(ev, smol::future::or(ln, sk))).await
                {
                    Wake::Timer => break,
                    Wake::Events(Ok(())) => {
                        if let Some(ev) = events.as_mut() {
                            self.drain(ev);
                        }
                    }
                    Wake::Events(Err(e)) => {
                        warn!("probe events disabled: polling the ring buffer failed: {e}");
                        events = None;
                    }
                    Wake::Links(Ok(())) => {
                        if links.as_ref().is_some_and(|l| l.get_ref().drain() > 0)
                            && self.sync_and_report()
                        {
                            // Publish at once so /metrics follows the change.
                            if let Err(e) = self.collect_once() {
                                warn!("collection failed: {e}");
                            }
                        }
                    }
                    Wake::Links(Err(e)) => {
                        warn!("netlink link notifications stopped ({e}); polling every interval");
                        links = None;
                    }
                    Wake::Sockets(Ok(())) => {
                        if let (Some(r), Some(p)) = (
                            sock_ring.as_mut(),
                            self.sockets.as_mut().and_then(|s| s.probes_mut()),
                        ) {
                            // SAFETY: the ring buffer is only read here; its fd stays open.
                            p.drain(unsafe { r.get_mut() });
                        }
                        self.feed_connection_events();
                    }
                    Wake::Sockets(Err(e)) => {
                        warn!("connection events disabled: polling the socket ring buffer failed: {e}");
                        sock_ring = None;
                    }
                }
            }
        }
    }

    /// Syncs interfaces and logs attach failures; true if anything changed.
    fn sync_and_report(&mut self) -> bool {
        let before: Vec<(String, u32)> = self
            .manager
            .attached()
            .iter()
            .map(|(n, a)| (n.clone(), a.ifindex))
            .collect();
        for (name, e) in self.sync_interfaces() {
            warn!("not watching {name}: {e}");
        }
        let after: Vec<(String, u32)> = self
            .manager
            .attached()
            .iter()
            .map(|(n, a)| (n.clone(), a.ifindex))
            .collect();
        before != after
    }

    fn drain(&mut self, ring: &mut smol::Async<aya::maps::RingBuf<aya::maps::MapData>>) {
        // SAFETY: the ring buffer is only read here; its fd stays open.
        let rb = unsafe { ring.get_mut() };
        let mut raised = false;
        while let Some(item) = rb.next() {
            if let Some(ev) = crate::abi::Event::from_bytes(&item) {
                let alert = (ev.kind == crate::abi::detect::EVENT_ALERT)
                    .then(|| crate::abi::detect::AlertEvent::from_bytes(&item))
                    .flatten();
                drop(item);
                self.record_event(&ev);
                if let Some(a) = alert {
                    raised |= self.security.ingest(&a);
                }
            }
        }
        if raised {
            self.publish_new_alerts();
        }
    }

    /// A new alert or block shows in /status at once, not at the next
    /// collection: the last snapshot is republished with a fresh security
    /// part, at most ALERT_PUBLISH_PER_SECOND times a second (beyond that,
    /// a storm of new alerts waits for the next collection).
    fn publish_new_alerts(&mut self) {
        const ALERT_PUBLISH_PER_SECOND: u32 = 10;
        let (start, n) = &mut self.alert_published;
        if start.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            *start = Some(Instant::now());
            *n = 0;
        }
        if *n >= ALERT_PUBLISH_PER_SECOND {
            return;
        }
        *n += 1;
        let mut s = self.published.load().snapshot.clone();
        s.security = self.security.snapshot();
        self.publish(s);
    }
}

/// Connection events held between two drains for the security detector;
/// a wake comes when the socket ring is a quarter full, so this is ample.
const SOCKET_EVENT_QUEUE: usize = 8192;

/// What woke the collector between collections.
enum Wake {
    Timer,
    Events(std::io::Result<()>),
    Links(std::io::Result<()>),
    Sockets(std::io::Result<()>),
}

/// The `n` busiest flows by total bytes, busiest first.
pub fn top_flows(
    flows: &[(FlowKey, FlowStats)],
    n: usize,
    boot_now_ns: u64,
    names: &HashMap<u32, String>,
) -> Vec<FlowEntry> {
    let mut idx: Vec<usize> = (0..flows.len()).collect();
    let bytes = |i: usize| flows[i].1.rx.bytes.saturating_add(flows[i].1.tx.bytes);
    // Partial selection first: O(len) instead of sorting the whole table.
    if n < idx.len() {
        idx.select_nth_unstable_by(n, |&a, &b| bytes(b).cmp(&bytes(a)));
        idx.truncate(n);
    }
    idx.sort_by(|&a, &b| {
        bytes(b)
            .cmp(&bytes(a))
            .then(flows[a].0.sport.cmp(&flows[b].0.sport))
    });
    idx.into_iter()
        .map(|i| {
            let (k, v) = &flows[i];
            FlowEntry {
                interface: names
                    .get(&k.ifindex)
                    .cloned()
                    .unwrap_or_else(|| format!("ifindex{}", k.ifindex)),
                family: if k.family == FAMILY_IPV4 {
                    "ipv4"
                } else {
                    "ipv6"
                },
                protocol: crate::abi::protocol_name(k.proto),
                src: k.src_ip().to_string(),
                src_port: k.sport,
                dst: k.dst_ip().to_string(),
                dst_port: k.dport,
                rx_packets: v.rx.packets,
                rx_bytes: v.rx.bytes,
                tx_packets: v.tx.packets,
                tx_bytes: v.tx.bytes,
                age_seconds: boot_now_ns.saturating_sub(v.first_seen_ns) as f64 / 1e9,
                idle_seconds: boot_now_ns.saturating_sub(v.last_seen_ns) as f64 / 1e9,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Counter;

    fn flow(sport: u16, rx: u64, tx: u64) -> (FlowKey, FlowStats) {
        let mut k = FlowKey {
            ifindex: 2,
            sport,
            dport: 80,
            proto: 6,
            ..Default::default()
        };
        k.saddr[0] = u32::from_ne_bytes([198, 18, 0, 1]);
        k.daddr[0] = u32::from_ne_bytes([198, 18, 0, 2]);
        let v = FlowStats {
            rx: Counter {
                packets: 1,
                bytes: rx,
            },
            tx: Counter {
                packets: 1,
                bytes: tx,
            },
            first_seen_ns: 1_000_000_000,
            last_seen_ns: 3_000_000_000,
            ..Default::default()
        };
        (k, v)
    }

    #[test]
    fn top_flows_are_busiest_first_and_bounded() {
        let flows: Vec<_> = (0..100u16)
            .map(|i| flow(1000 + i, i as u64 * 10, 5))
            .collect();
        let names = HashMap::from([(2, "veth0".to_string())]);
        let top = top_flows(&flows, 3, 4_000_000_000, &names);
        assert_eq!(top.len(), 3);
        assert_eq!(
            top.iter().map(|f| f.src_port).collect::<Vec<_>>(),
            [1099, 1098, 1097]
        );
        assert_eq!(top[0].src, "198.18.0.1");
        assert_eq!(top[0].dst, "198.18.0.2");
        assert_eq!(top[0].interface, "veth0");
        assert_eq!(top[0].protocol, "tcp");
        assert_eq!(top[0].age_seconds, 3.0);
        assert_eq!(top[0].idle_seconds, 1.0);
        assert!(top_flows(&flows, 0, 0, &names).is_empty());
        assert_eq!(top_flows(&flows[..2], 10, 0, &names).len(), 2);
    }

    #[test]
    fn selection() {
        let up = netif::Interface {
            name: "eth0".into(),
            ifindex: 2,
            up: true,
            loopback: false,
            link_type: 1,
        };
        let lo = netif::Interface {
            name: "lo".into(),
            ifindex: 1,
            up: true,
            loopback: true,
            link_type: 772,
        };
        let down = netif::Interface {
            name: "eth1".into(),
            ifindex: 3,
            up: false,
            loopback: false,
            link_type: 1,
        };
        assert!(Selection::AllUp.wants(&up));
        assert!(!Selection::AllUp.wants(&lo));
        assert!(!Selection::AllUp.wants(&down));
        let f = Selection::Filter(InterfaceFilter::parse("eth*,lo").unwrap());
        assert!(f.wants(&down) && f.wants(&lo));
    }
}
