//! The identity layer's settings and bounds, each with its default, in one
//! place. `--host-root` and `--max-pods` are the flags; the other bounds
//! follow from `--max-pods` ([`IdentityConfig::new`]) and can be set
//! directly by a library user.

use std::path::PathBuf;
use std::time::Duration;

/// `--host-root`: where the host's `/proc`, `/sys/fs/cgroup` and `/var`
/// are (the DaemonSet mounts them under `/host`).
pub const DEFAULT_HOST_ROOT: &str = "/";
/// `--max-pods`: pods (and plain containers) counted by name; more go to
/// `pod="_other"`. Above Kubernetes' default of 110 pods per node.
pub const DEFAULT_MAX_PODS: usize = 256;
/// The range `--max-pods` accepts.
pub const MAX_PODS_RANGE: (usize, usize) = (1, 65536);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    pub host_root: PathBuf,
    pub max_pods: usize,
    /// Cgroup directories walked at most per refresh (a node has about 10
    /// per pod plus a few hundred of its own).
    pub max_cgroups: usize,
    /// Pids read from `cgroup.procs` at most per refresh.
    pub max_pids: usize,
    /// Names read at most from each of `/var/log/pods` and
    /// `/var/log/containers`.
    pub max_log_entries: usize,
    /// Cgroup directories watched with inotify at most.
    pub max_watches: usize,
    /// `/proc/PID/cgroup` files read at most per
    /// [`learn_pids`](super::PodIdentity::learn_pids) call.
    pub max_pid_lookups: usize,
    /// A full refresh at least this often, whatever the notifications say
    /// (the safety net for a missed or overflowed one).
    pub rescan_after: Duration,
    /// A refresh at most this often (notifications and unknown owners are
    /// coalesced).
    pub min_rescan_interval: Duration,
}

impl IdentityConfig {
    /// The bounds that follow from `max_pods`.
    pub fn new(host_root: impl Into<PathBuf>, max_pods: usize) -> IdentityConfig {
        IdentityConfig {
            host_root: host_root.into(),
            max_pods,
            max_cgroups: 1024 + 64 * max_pods,
            max_pids: 65536,
            max_log_entries: 1024 + 32 * max_pods,
            max_watches: 64 + 2 * max_pods,
            max_pid_lookups: 256,
            rescan_after: Duration::from_secs(60),
            min_rescan_interval: Duration::from_secs(1),
        }
    }
}

impl Default for IdentityConfig {
    fn default() -> IdentityConfig {
        IdentityConfig::new(DEFAULT_HOST_ROOT, DEFAULT_MAX_PODS)
    }
}

/// Parses `--max-pods`.
///
/// # Errors
/// Not a whole number, or outside [`MAX_PODS_RANGE`].
pub fn parse_max_pods(s: &str) -> Result<usize, String> {
    let (lo, hi) = MAX_PODS_RANGE;
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("max pods '{s}' is not a whole number"))?;
    if !(lo..=hi).contains(&v) {
        return Err(format!("max pods {v} is out of range ({lo} to {hi})"));
    }
    Ok(v)
}

/// Parses `--host-root`: an existing directory.
///
/// # Errors
/// The path is not a directory.
pub fn parse_host_root(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if !p.is_dir() {
        return Err(format!("host root '{s}' is not a directory"));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_parsing() {
        let c = IdentityConfig::default();
        assert_eq!(c.host_root, PathBuf::from("/"));
        assert_eq!(c.max_pods, 256);
        assert_eq!(c.max_cgroups, 1024 + 64 * 256);
        assert_eq!(parse_max_pods("2"), Ok(2));
        assert!(parse_max_pods("0")
            .unwrap_err()
            .contains("out of range (1 to 65536)"));
        assert!(parse_max_pods("x")
            .unwrap_err()
            .contains("not a whole number"));
        assert!(parse_host_root("/").is_ok());
        assert!(parse_host_root("/nonexistent-host-root")
            .unwrap_err()
            .contains("not a directory"));
    }
}
