//! The identity layer's view of the node: pods (and plain containers) with
//! their containers and host-side interfaces, and the lookups that
//! attribute a cgroup id, a pid or an interface to one of them. Built by
//! [`super::index::build`]; read by [`super::aggregate`] and, for
//! `/status`, serialised as is.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// The pod label of everything beyond `--max-pods` (and its namespace
/// label).
pub const OTHER: &str = "_other";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    /// The runtime's id (64 hex digits).
    pub id: String,
    /// From the kubelet's log symlink, or the runtime's state for a plain
    /// container; `None` when neither names it (a pod's sandbox, whose
    /// `pause` process has no log).
    pub name: Option<String>,
    /// `containerd`, `cri-o`, `docker`, `podman`, or `cri` (a bare id under
    /// the kubelet's cgroupfs driver).
    pub runtime: &'static str,
    /// The container's cgroup and those below it (cgroup v2 ids).
    pub cgroup_ids: Vec<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InterfaceInfo {
    pub name: String,
    pub ifindex: u32,
    /// `veth`, `netkit`, ...
    pub kind: Option<String>,
}

/// A pod, or a plain container (Docker, Podman), which is shown as a pod
/// of one container in namespace `""`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PodInfo {
    /// The Kubernetes namespace (from `/var/log/pods`); `""` for a plain
    /// container, or for a pod the kubelet's log layout does not name.
    pub namespace: String,
    /// The pod's name; for a plain container its name, or its id's first
    /// 12 digits; for an unnamed pod its uid.
    pub pod: String,
    /// The pod's uid; for a plain container, its id.
    pub uid: String,
    /// `kubernetes`, or the runtime of a plain container.
    pub source: &'static str,
    pub containers: Vec<ContainerInfo>,
    /// Host-side interfaces whose other end is in the pod's network
    /// namespace.
    pub interfaces: Vec<InterfaceInfo>,
    /// Beyond `--max-pods`: counted under `pod="_other"`.
    pub overflow: bool,
}

impl PodInfo {
    /// The (namespace, pod) labels its series carry.
    pub fn labels(&self) -> (&str, &str) {
        if self.overflow {
            (OTHER, OTHER)
        } else {
            (&self.namespace, &self.pod)
        }
    }
}

/// A host interface whose other end is in another namespace (or a veth
/// with both ends here) that no pod accounts for: it stays a plain
/// interface, with the reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UnmappedInterface {
    pub name: String,
    pub ifindex: u32,
    pub kind: Option<String>,
    pub reason: &'static str,
}

pub const NO_POD_IN_PEER_NAMESPACE: &str =
    "its peer's network namespace holds no process of a known pod or container";
pub const PEER_IN_HOST_NAMESPACE: &str = "its peer is in the host's own network namespace";

/// What a cgroup id or a pid belongs to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lookup<'a> {
    Pod(&'a PodInfo, Option<&'a ContainerInfo>),
    /// Known, and not a pod's or container's (a host process or service).
    NotAPod,
    /// Not known as of the last refresh: a cgroup or process created since
    /// (tell the next [`refresh`](super::PodIdentity::refresh)).
    Unknown,
}

/// (pod index, container index in that pod)
pub(super) type Slot = (usize, Option<usize>);

/// Everything the last refresh found, with its lookups.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PodIndex {
    /// Named pods sorted by (namespace, pod), then the overflow pods.
    pub pods: Vec<PodInfo>,
    pub unmapped_interfaces: Vec<UnmappedInterface>,
    #[serde(skip)]
    pub(super) by_cgroup: HashMap<u64, Slot>,
    #[serde(skip)]
    pub(super) by_pid: HashMap<u32, Slot>,
    #[serde(skip)]
    pub(super) by_ifindex: HashMap<u32, usize>,
    /// Every cgroup id the walk saw, owned or not.
    #[serde(skip)]
    pub(super) known_cgroups: HashSet<u64>,
    /// Pids looked up since the walk that belong to no pod.
    #[serde(skip)]
    pub(super) host_pids: HashSet<u32>,
}

impl PodIndex {
    fn slot(&self, (p, c): Slot) -> Lookup<'_> {
        let pod = &self.pods[p];
        Lookup::Pod(pod, c.map(|c| &pod.containers[c]))
    }

    /// The pod of a cgroup v2 id (as `bpf_get_current_cgroup_id` returns
    /// it); 0 is no id.
    pub fn by_cgroup(&self, id: u64) -> Lookup<'_> {
        match self.by_cgroup.get(&id) {
            Some(&s) => self.slot(s),
            None if id != 0 && !self.known_cgroups.contains(&id) => Lookup::Unknown,
            None => Lookup::NotAPod,
        }
    }

    /// The pod of a process (host pid namespace); 0 is no pid.
    pub fn by_pid(&self, pid: u32) -> Lookup<'_> {
        match self.by_pid.get(&pid) {
            Some(&s) => self.slot(s),
            None if pid != 0 && !self.host_pids.contains(&pid) => Lookup::Unknown,
            None => Lookup::NotAPod,
        }
    }

    /// The pod of a host-side interface.
    pub fn by_ifindex(&self, ifindex: u32) -> Option<&PodInfo> {
        self.by_ifindex.get(&ifindex).map(|&p| &self.pods[p])
    }

    /// The pod with this uid (a plain container: this id).
    pub fn by_uid(&self, uid: &str) -> Option<&PodInfo> {
        self.pods.iter().find(|p| p.uid == uid)
    }

    /// Pods past `--max-pods`.
    pub fn overflow(&self) -> usize {
        self.pods.iter().filter(|p| p.overflow).count()
    }
}
