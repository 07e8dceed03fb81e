//! [`PodIdentity`]: the stateful side of the identity layer. It owns the
//! netlink socket and the cgroup watch, decides when a refresh is due, runs
//! it (walk, names, links, namespace ids, then [`index::build`]), and keeps
//! the last [`PodIndex`] for lookups between refreshes.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use log::{info, warn};
use serde::Serialize;

use super::cgroup_path::{parse_proc_cgroup, Runtime};
use super::cgroup_walk::{self, Walk, WalkLimits};
use super::cgroup_watch::CgroupWatch;
use super::config::IdentityConfig;
use super::index::{self, pids_by_pod, pod_key, Found, Slots};
use super::kubelet_logs;
use super::model::PodIndex;
use super::netlink::RouteSocket;
use super::runtime_names;

/// Namespace-id questions asked at most per pod (one live process is
/// enough; more only when the first ones exited meanwhile).
const NSID_TRIES_PER_POD: usize = 4;

/// What changed since the last call, as the caller knows it.
#[derive(Clone, Copy, Debug, Default)]
pub struct RefreshHints {
    /// The link watcher saw a link appear, change or go.
    pub links_changed: bool,
    /// Connection records whose owner the index did not know
    /// ([`PodLedger::unknown_owners`](super::PodLedger::unknown_owners)).
    pub unknown_owners: u64,
}

/// How the identity layer is doing, for `/status` and metrics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IdentityStats {
    /// The cgroup hierarchy walked, and whether its ids are cgroup v2 ids.
    pub hierarchy: Option<String>,
    pub cgroup_v2: bool,
    pub refreshes_total: u64,
    pub refresh_errors_total: u64,
    pub last_error: Option<String>,
    /// How long the last refresh took.
    pub last_refresh_duration_seconds: f64,
    pub cgroups_walked: usize,
    /// A bound (cgroups, pids, log entries) cut the last refresh short.
    pub truncated: bool,
    pub watched_dirs: usize,
    /// Directories that should be watched but are not (over the bound).
    pub unwatched_dirs: usize,
    /// Pods with no process the agent can see (without `hostPID`, none):
    /// their interfaces cannot be mapped.
    pub pods_without_visible_process: usize,
    pub pid_lookups_total: u64,
}

/// The pod identity of the node, refreshed on demand.
///
/// # How to drive it
/// Once per collection, on the collector's thread:
/// 1. [`refresh`](Self::refresh) with the link watcher's news and the last
///    aggregation's count of unknown owners. It returns at once (no I/O)
///    unless something changed: cgroups created or removed under the
///    watched directories (inotify), links changed, owners unknown, or
///    [`IdentityConfig::rescan_after`] passed since the last refresh. A
///    refresh walks the cgroup tree once, lists links once and asks one
///    namespace id per pod: about a millisecond per 10 pods (see
///    docs/kubernetes.md); at most one per
///    [`IdentityConfig::min_rescan_interval`].
/// 2. Optionally [`learn_pids`](Self::learn_pids) with the pids of
///    connection records that carry no cgroup id.
/// 3. [`aggregate`](super::aggregate) with [`index`](Self::index), the
///    interfaces' counters and the connection records, then render the
///    rows and [`stats`](Self::stats).
///
/// For a prompt refresh, poll [`watch_fd`](Self::watch_fd) next to the
/// link watcher's socket: it becomes readable when a cgroup under a
/// watched directory is created or removed.
pub struct PodIdentity {
    config: IdentityConfig,
    route: RouteSocket,
    watch: Option<CgroupWatch>,
    slots: Slots,
    index: PodIndex,
    /// Docker names by id, kept while the container lives.
    docker_names: HashMap<String, Option<String>>,
    last_refresh: Option<Instant>,
    pending: bool,
    stats: IdentityStats,
}

impl PodIdentity {
    /// Opens the netlink socket and the cgroup watch; refreshes nothing
    /// yet.
    ///
    /// # Errors
    /// The netlink socket cannot be opened. A missing inotify is not an
    /// error: it is logged once and refreshes then come from links,
    /// unknown owners and [`IdentityConfig::rescan_after`].
    pub fn new(config: IdentityConfig) -> io::Result<PodIdentity> {
        let route = RouteSocket::open()?;
        let watch = match CgroupWatch::new(config.max_watches) {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(
                    "pod identity: no cgroup notifications ({e}); new pods are found on link changes and every {:?}",
                    config.rescan_after
                );
                None
            }
        };
        Ok(PodIdentity {
            config,
            route,
            watch,
            slots: Slots::default(),
            index: PodIndex::default(),
            docker_names: HashMap::new(),
            last_refresh: None,
            pending: true,
            stats: IdentityStats::default(),
        })
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    pub fn index(&self) -> &PodIndex {
        &self.index
    }

    pub fn stats(&self) -> &IdentityStats {
        &self.stats
    }

    /// Readable when a watched cgroup directory changed.
    pub fn watch_fd(&self) -> Option<BorrowedFd<'_>> {
        self.watch.as_ref().map(|w| w.as_fd())
    }

    /// Refreshes if something changed (see the type's documentation);
    /// returns whether it did. On error the last index stays.
    ///
    /// # Errors
    /// The cgroup hierarchy or a kubelet directory cannot be read, or the
    /// kernel does not answer the link dump.
    pub fn refresh(&mut self, hints: RefreshHints) -> io::Result<bool> {
        let notified = self.watch.as_ref().is_some_and(|w| w.drain());
        self.pending |= notified || hints.links_changed || hints.unknown_owners > 0;
        let now = Instant::now();
        let age = self.last_refresh.map(|t| now.duration_since(t));
        let due = match age {
            None => true,
            Some(a) if a >= self.config.rescan_after => true,
            Some(a) => self.pending && a >= self.config.min_rescan_interval,
        };
        if !due {
            return Ok(false);
        }
        self.last_refresh = Some(now);
        self.pending = false;
        self.stats.refreshes_total += 1;
        match self.rebuild() {
            Ok(()) => {
                self.stats.last_error = None;
                self.stats.last_refresh_duration_seconds = now.elapsed().as_secs_f64();
                Ok(true)
            }
            Err(e) => {
                self.stats.refresh_errors_total += 1;
                self.stats.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Forces a refresh at the next [`refresh`](Self::refresh), whatever
    /// the interval.
    pub fn invalidate(&mut self) {
        self.last_refresh = None;
    }

    fn rebuild(&mut self) -> io::Result<()> {
        let c = &self.config;
        let walk = cgroup_walk::walk_host(
            &c.host_root,
            WalkLimits {
                max_dirs: c.max_cgroups,
                max_pids: c.max_pids,
            },
        )?;
        let kubelet = kubelet_logs::read(&c.host_root, c.max_log_entries)?;
        let runtime_names = self.runtime_names(&walk);
        // The dump first: it assigns ids to peer namespaces that had none.
        let links = self.route.links()?;
        let mut nsids = HashMap::new();
        let mut without_process = 0;
        for (key, pids) in pids_by_pod(&walk) {
            if pids.is_empty() {
                without_process += 1;
            }
            for &pid in pids.iter().take(NSID_TRIES_PER_POD) {
                if let Some(id) = self.route.nsid_of_pid(pid)? {
                    nsids.insert(key, id);
                    break;
                }
            }
        }
        let found = Found {
            walk: &walk,
            kubelet: &kubelet,
            runtime_names: &runtime_names,
            links: &links,
            nsids: &nsids,
        };
        let index = index::build(&found, &mut self.slots, self.config.max_pods);

        let s = &mut self.stats;
        if let Some(w) = &mut self.watch {
            w.prune();
            let missed = w.watch(walk.watch.iter().map(|p| p.as_path()));
            // Once, when it starts.
            if missed > 0 && s.unwatched_dirs == 0 {
                warn!(
                    "pod identity: {missed} cgroup directories not watched (the bound of {} or fs.inotify.max_user_watches); changes there are seen within {:?}",
                    self.config.max_watches, self.config.rescan_after
                );
            }
            s.unwatched_dirs = missed;
            s.watched_dirs = w.watched();
        }
        let hierarchy = walk
            .hierarchy
            .as_ref()
            .map(|h| h.root.display().to_string());
        if hierarchy != s.hierarchy || s.refreshes_total == 1 {
            match &hierarchy {
                Some(h) => info!(
                    "pod identity: cgroups from {h} ({})",
                    if walk.hierarchy.as_ref().is_some_and(|h| h.v2) {
                        "cgroup v2: connections are matched by cgroup id and pid"
                    } else {
                        "cgroup v1: connections are matched by pid only"
                    }
                ),
                None => warn!(
                    "pod identity: no cgroup hierarchy under {}/sys/fs/cgroup; no pod or container can be named",
                    self.config.host_root.display()
                ),
            }
        }
        s.cgroup_v2 = walk.hierarchy.as_ref().is_some_and(|h| h.v2);
        s.hierarchy = hierarchy;
        s.cgroups_walked = walk.dirs;
        s.truncated = walk.truncated || kubelet.truncated;
        s.pods_without_visible_process = without_process;
        self.index = index;
        Ok(())
    }

    /// Names of the plain Docker and Podman containers in `walk`.
    fn runtime_names(&mut self, walk: &Walk) -> HashMap<String, String> {
        let root = self.config.host_root.clone();
        let mut live = HashSet::new();
        let mut out = HashMap::new();
        let mut podman = None;
        for c in &walk.owned {
            let Some(r) = c.owner.container() else {
                continue;
            };
            match r.runtime {
                Runtime::Docker => {
                    live.insert(r.id.clone());
                    let name = self
                        .docker_names
                        .entry(r.id.clone())
                        .or_insert_with(|| runtime_names::docker_name(&root, &r.id));
                    if let Some(n) = name {
                        out.insert(r.id.clone(), n.clone());
                    }
                }
                Runtime::Podman => {
                    let all = podman.get_or_insert_with(|| runtime_names::podman_names(&root));
                    if let Some(n) = all.get(&r.id) {
                        out.insert(r.id.clone(), n.clone());
                    }
                }
                _ => {}
            }
        }
        self.docker_names.retain(|id, _| live.contains(id));
        out
    }

    /// Resolves pids the index does not know by reading their
    /// `/proc/PID/cgroup` (at most [`IdentityConfig::max_pid_lookups`] per
    /// call); returns how many were read. A process of a container the
    /// last refresh did not see asks for a refresh.
    pub fn learn_pids(&mut self, pids: impl IntoIterator<Item = u32>) -> usize {
        let mut read = 0;
        let proc = self.config.host_root.join("proc");
        for pid in pids {
            if pid == 0
                || self.index.by_pid.contains_key(&pid)
                || self.index.host_pids.contains(&pid)
            {
                continue;
            }
            if read == self.config.max_pid_lookups {
                break;
            }
            read += 1;
            // A process that exited already: nothing to learn.
            let Ok(text) = fs::read_to_string(proc.join(pid.to_string()).join("cgroup")) else {
                continue;
            };
            let Some(owner) = parse_proc_cgroup(&text).owner() else {
                if self.index.host_pids.len() < self.config.max_pids {
                    self.index.host_pids.insert(pid);
                }
                continue;
            };
            let key = pod_key(&owner);
            let container = owner.container();
            let slot = self.index.pods.iter().position(|p| p.uid == key).map(|p| {
                let c = container.and_then(|r| {
                    self.index.pods[p]
                        .containers
                        .iter()
                        .position(|c| c.id == r.id)
                });
                (p, c)
            });
            match slot {
                Some(s) if container.is_none() || s.1.is_some() => {
                    if self.index.by_pid.len() < self.config.max_pids {
                        self.index.by_pid.insert(pid, s);
                    }
                }
                _ => self.pending = true,
            }
        }
        self.stats.pid_lookups_total += read as u64;
        read
    }
}
