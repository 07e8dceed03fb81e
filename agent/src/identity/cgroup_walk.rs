//! Walks the host's cgroup tree (under the host root) and lists every
//! cgroup that belongs to a pod or a container, with its id and the
//! processes in it.
//!
//! The cgroup id is the inode number of the cgroup's directory, which is
//! what `bpf_get_current_cgroup_id()` returns on 64-bit kernels (both are
//! the kernfs node id); `readdir` gives it without a `stat`. Only cgroup v2
//! ids mean anything to the probes: on a hybrid host whose unified
//! hierarchy holds no pod or container (the kubelet's cgroupfs driver
//! writes only the v1 controllers), the first v1 hierarchy that does is
//! walked instead, and its cgroups are matched by pid only.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirEntryExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::cgroup_path::{parse_path, CgroupOwner};

/// Where cgroup v2 may be mounted, relative to the host root: the unified
/// hierarchy of a hybrid host first.
const V2_MOUNTS: [&str; 2] = ["sys/fs/cgroup/unified", "sys/fs/cgroup"];
/// v1 hierarchies the kubelet and the runtimes write, in the order tried.
const V1_MOUNTS: [&str; 5] = [
    "sys/fs/cgroup/pids",
    "sys/fs/cgroup/memory",
    "sys/fs/cgroup/cpu,cpuacct",
    "sys/fs/cgroup/cpu",
    "sys/fs/cgroup/systemd",
];
/// Directories under which containers appear outside Kubernetes; watched
/// (with every `kubepods` directory) so a new container is seen at once.
const RUNTIME_PARENTS: [&str; 5] = [
    "system.slice",
    "machine.slice",
    "docker",
    "libpod_parent",
    "machine",
];

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;

/// A mounted cgroup hierarchy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub root: PathBuf,
    /// cgroup v2: its ids are the probes' cgroup ids.
    pub v2: bool,
}

/// The cgroup hierarchies under `host_root`: cgroup v2 first, then the v1
/// ones the kubelet writes. Empty when none is mounted there.
pub fn hierarchies(host_root: &Path) -> Vec<Hierarchy> {
    let v2 = V2_MOUNTS
        .iter()
        .map(|m| host_root.join(m))
        .find(|p| fs_type(p) == Some(CGROUP2_SUPER_MAGIC))
        .map(|root| Hierarchy { root, v2: true });
    let v1 = V1_MOUNTS
        .iter()
        .map(|m| host_root.join(m))
        .filter(|p| fs_type(p) == Some(CGROUP_SUPER_MAGIC))
        .map(|root| Hierarchy { root, v2: false });
    v2.into_iter().chain(v1).collect()
}

fn fs_type(p: &Path) -> Option<i64> {
    let c = CString::new(p.as_os_str().as_bytes()).ok()?;
    // SAFETY: a NUL-terminated path and a zeroed statfs for the kernel to
    // fill.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        (libc::statfs(c.as_ptr(), &mut st) == 0).then_some(st.f_type as i64)
    }
}

/// Bounds of one walk.
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    /// Directories visited at most; the rest of the tree is left unread.
    pub max_dirs: usize,
    /// Pids read from `cgroup.procs` files at most, over the whole walk.
    pub max_pids: usize,
}

/// A cgroup that belongs to a pod or a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedCgroup {
    /// Relative to the hierarchy's root, with a leading `/`, as
    /// `/proc/PID/cgroup` shows it to a process at the root.
    pub path: String,
    /// The cgroup id (v2 only).
    pub id: Option<u64>,
    pub owner: CgroupOwner,
    /// Processes in it, as `cgroup.procs` lists them (the reader's pid
    /// namespace).
    pub pids: Vec<u32>,
}

/// What one walk found.
#[derive(Clone, Debug, Default)]
pub struct Walk {
    pub hierarchy: Option<Hierarchy>,
    pub owned: Vec<OwnedCgroup>,
    /// The id of every cgroup v2 directory visited, owned or not (for a v1
    /// walk, those of the v2 hierarchy walked before it): an id outside
    /// this set is a cgroup created since.
    pub ids: HashSet<u64>,
    pub dirs: usize,
    /// The walk stopped at `max_dirs` or `max_pids`.
    pub truncated: bool,
    /// Directories to watch for new and removed children: the root, every
    /// directory with `kubepods` in its path that is not inside a
    /// container, and the runtimes' parents ([`RUNTIME_PARENTS`]).
    pub watch: Vec<PathBuf>,
}

/// Walks the first hierarchy that holds a pod or container (cgroup v2
/// first); with none, the walk of the v2 hierarchy (or of nothing). A v1
/// walk carries the v2 hierarchy's ids in [`Walk::ids`].
///
/// # Errors
/// The root of a hierarchy cannot be read.
pub fn walk_host(host_root: &Path, limits: WalkLimits) -> io::Result<Walk> {
    let mut first: Option<Walk> = None;
    for h in hierarchies(host_root) {
        let mut w = walk(&h, limits)?;
        if !w.owned.is_empty() {
            // A v1 walk keeps the v2 ids: the probes' ids of host cgroups
            // are then known (not a pod's) rather than new.
            if let Some(v2) = first.filter(|_| !h.v2) {
                w.ids = v2.ids;
            }
            return Ok(w);
        }
        first.get_or_insert(w);
    }
    Ok(first.unwrap_or_default())
}

/// Walks one hierarchy, depth first, within `limits`.
///
/// # Errors
/// Its root cannot be read.
pub fn walk(h: &Hierarchy, limits: WalkLimits) -> io::Result<Walk> {
    let mut out = Walk {
        hierarchy: Some(h.clone()),
        ..Walk::default()
    };
    let root_ino = fs::metadata(&h.root)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", h.root.display())))?
        .ino();
    let mut pids_left = limits.max_pids;
    // (directory, its path relative to the root, its inode)
    let mut stack = vec![(h.root.clone(), String::new(), root_ino)];
    while let Some((dir, rel, ino)) = stack.pop() {
        if out.dirs == limits.max_dirs {
            out.truncated = true;
            break;
        }
        out.dirs += 1;
        if h.v2 {
            out.ids.insert(ino);
        }
        let owner = parse_path(&rel);
        let in_container = owner.as_ref().is_some_and(|o| o.container().is_some());
        if !in_container && wants_watch(&rel) {
            out.watch.push(dir.clone());
        }
        if let Some(owner) = owner {
            let pids = read_pids(&dir.join("cgroup.procs"), &mut pids_left);
            out.truncated |= pids_left == 0;
            out.owned.push(OwnedCgroup {
                path: if rel.is_empty() {
                    "/".into()
                } else {
                    rel.clone()
                },
                id: h.v2.then_some(ino),
                owner,
                pids,
            });
        }
        // A cgroup removed since its parent was read: skip it.
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Some(name) = e.file_name().to_str().map(str::to_string) else {
                continue;
            };
            stack.push((e.path(), format!("{rel}/{name}"), e.ino()));
        }
    }
    Ok(out)
}

fn wants_watch(rel: &str) -> bool {
    rel.is_empty()
        || rel.contains("kubepods")
        || rel
            .rsplit('/')
            .next()
            .is_some_and(|last| RUNTIME_PARENTS.contains(&last))
}

/// Pids in a `cgroup.procs` file, taking at most `left` of them.
fn read_pids(path: &Path, left: &mut usize) -> Vec<u32> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let pids: Vec<u32> = text
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        // 0: a process outside the reader's pid namespace.
        .filter(|&p| p != 0)
        .take(*left)
        .collect();
    *left -= pids.len();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_rule() {
        assert!(wants_watch(""));
        assert!(wants_watch("/kubepods.slice/kubepods-burstable.slice"));
        assert!(wants_watch(
            "/kubepods/besteffort/pod6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"
        ));
        assert!(wants_watch("/system.slice"));
        assert!(wants_watch("/docker"));
        assert!(!wants_watch("/system.slice/sshd.service"));
        assert!(!wants_watch("/user.slice"));
    }

    #[test]
    fn no_hierarchy_under_a_plain_directory() {
        let dir = std::env::temp_dir();
        assert!(hierarchies(&dir).is_empty());
        let w = walk_host(
            &dir,
            WalkLimits {
                max_dirs: 10,
                max_pids: 10,
            },
        )
        .unwrap();
        assert!(w.hierarchy.is_none() && w.owned.is_empty() && w.dirs == 0);
    }

    #[test]
    fn pids_are_bounded() {
        let dir = std::env::temp_dir().join(format!("np-procs-{}", std::process::id()));
        fs::write(&dir, "12\n0\n34\n56\n").unwrap();
        let mut left = 2;
        assert_eq!(read_pids(&dir, &mut left), vec![12, 34]);
        assert_eq!(left, 0);
        assert!(read_pids(&dir, &mut left).is_empty());
        fs::remove_file(&dir).unwrap();
    }
}
