//! Pod and container identity from the node itself, with no API server and
//! no runtime socket: which pod (or plain container) a process, a cgroup id
//! or a host-side interface belongs to, and per-pod totals.
//!
//! Where each fact comes from (everything read under `--host-root`):
//!
//! | fact | source |
//! |---|---|
//! | pod uid, container id, runtime | cgroup names ([`cgroup_path`]), from a walk of the cgroup tree ([`cgroup_walk`]) or `/proc/PID/cgroup` |
//! | cgroup id (the probes' `bpf_get_current_cgroup_id`) | inode of the cgroup's directory (cgroup v2) |
//! | namespace, pod and container names | `/var/log/pods`, `/var/log/containers` ([`kubelet_logs`]) |
//! | plain container names | Docker's and Podman's state ([`runtime_names`]) |
//! | interface -> pod | `IFLA_LINK_NETNSID` of the host end matched with `RTM_GETNSID` of a pod process's pid ([`netlink`]) |
//!
//! Layout, leaves first: [`cgroup_path`], [`kubelet_logs`],
//! [`runtime_names`], [`netlink`], [`cgroup_walk`], [`cgroup_watch`] read
//! or parse one source each; [`model`] holds the view, [`index`] builds it
//! (pure), [`aggregate`] turns it and the counters into per-pod totals
//! (pure); [`PodIdentity`] ([`source`]) decides when to refresh and owns
//! the sockets. [`config`] has every bound. Nothing here imports the rest
//! of the agent.

pub mod aggregate;
pub mod cgroup_path;
pub mod cgroup_walk;
pub mod cgroup_watch;
pub mod config;
pub mod index;
pub mod kubelet_logs;
pub mod model;
pub mod netlink;
pub mod runtime_names;
pub mod source;

pub use aggregate::{aggregate, ConnRecord, IfaceCounters, Opened, PodLedger, PodRow, PodTotals};
pub use config::IdentityConfig;
pub use model::{
    ContainerInfo, InterfaceInfo, Lookup, PodIndex, PodInfo, UnmappedInterface, OTHER,
};
pub use source::{IdentityStats, PodIdentity, RefreshHints};
