//! Learning, at start, which processes hold the sockets that were open
//! before the agent: the probes name each such socket by the inode of its
//! file (the `netprobe_sock_learn` iterator), and the agent finds those
//! inodes once among every process's descriptors, `/proc/PID/fd/N ->
//! socket:[INODE]`, as `ss -p` does. Reading is separate from parsing:
//! [`parse_socket_link`] and [`parse_cgroup`] are tested on literal text.
//!
//! Bounded in time (`--socket-learn-timeout`) and in the descriptors read
//! ([`MAX_FDS`]); the probes' seed table holds at most [`MAX_SOCKETS`].

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::abi::sock::{Owner, OWNER_LEARNED};

/// Descriptor links read at most in one scan: the kernel's default
/// `fs.nr_open` (one process's limit), so one process with a full table
/// can be read, while a host with millions of descriptors stops here even
/// under a long `--socket-learn-timeout` (a link costs 5 to 20 µs).
pub const MAX_FDS: usize = 1 << 20;

/// Owners handed to the probes at most (entries of `sock_seed`, allocated
/// only while learning, ~100 B each): the sockets of a busy node; more are
/// left unknown and counted in `not_found`.
pub const MAX_SOCKETS: usize = 65536;

/// Where cgroup v2 is mounted: the unified hierarchy of a hybrid (v1 + v2)
/// host first.
const CGROUP2_MOUNTS: [&str; 2] = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"];

/// statfs f_type of cgroup v2 (include/uapi/linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The cgroup v2 mount among [`CGROUP2_MOUNTS`], if any.
fn cgroup2_mount() -> Option<&'static str> {
    CGROUP2_MOUNTS.into_iter().find(|m| {
        let Ok(path) = std::ffi::CString::new(*m) else {
            return false;
        };
        // SAFETY: a NUL-terminated path and a zeroed statfs to fill.
        unsafe {
            let mut st: libc::statfs = std::mem::zeroed();
            libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC
        }
    })
}

/// What a scan of `/proc` found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Owner of each wanted inode found (the lowest pid, when several
    /// processes hold it: a fork shares its parent's descriptors).
    pub owners: HashMap<u64, Owner>,
    pub processes: usize,
    pub fds_read: usize,
    /// Why the scan stopped before reading every process, if it did.
    pub stopped: Option<String>,
}

/// The inode a descriptor link names, if it is a socket:
/// `socket:[4242]` -> 4242.
pub fn parse_socket_link(target: &OsStr) -> Option<u64> {
    let s = target.as_bytes();
    let inner = s.strip_prefix(b"socket:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(inner).ok()?.parse().ok()
}

/// The cgroup v2 path of a process from its `/proc/PID/cgroup` (the
/// `0::PATH` line).
pub fn parse_cgroup(text: &str) -> Option<&str> {
    text.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The owner of `pid` as the probes would have recorded it: its command
/// name and cgroup v2 id (the inode of its cgroup directory, which is the
/// id on 64-bit kernels).
fn owner_of(proc_root: &Path, pid: u32, cgroup2: Option<&str>) -> Owner {
    let dir = proc_root.join(pid.to_string());
    let mut o = Owner {
        pid,
        source: OWNER_LEARNED,
        ..Default::default()
    };
    if let Ok(comm) = std::fs::read(dir.join("comm")) {
        let name = comm.strip_suffix(b"\n").unwrap_or(&comm);
        let n = name.len().min(o.comm.len() - 1);
        o.comm[..n].copy_from_slice(&name[..n]);
    }
    if let (Some(mount), Some(path)) = (
        cgroup2,
        std::fs::read_to_string(dir.join("cgroup"))
            .ok()
            .as_deref()
            .and_then(parse_cgroup),
    ) {
        o.cgroup_id = std::fs::metadata(format!("{mount}{path}")).map_or(0, |md| md.ino());
    }
    o
}

/// Finds the processes holding `wanted` socket inodes under `proc_root`
/// (`/proc`), in ascending pid order, until every one is found, `budget`
/// runs out or `max_fds` links have been read.
pub fn scan(proc_root: &Path, wanted: &HashSet<u64>, budget: Duration, max_fds: usize) -> Scan {
    let start = Instant::now();
    let mut out = Scan::default();
    let mut pids: Vec<u32> = match std::fs::read_dir(proc_root) {
        Ok(d) => d
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(e) => {
            out.stopped = Some(format!("cannot read {}: {e}", proc_root.display()));
            return out;
        }
    };
    pids.sort_unstable();
    let cgroup2 = cgroup2_mount();
    'pids: for pid in pids {
        if out.owners.len() == wanted.len() {
            break;
        }
        if start.elapsed() > budget {
            out.stopped = Some(format!(
                "--socket-learn-timeout ({budget:?}) ran out after {} processes",
                out.processes
            ));
            break;
        }
        out.processes += 1;
        // A process that exited, or one this agent may not inspect.
        let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else {
            continue;
        };
        let mut owner = None;
        for fd in fds.flatten() {
            if out.fds_read == max_fds {
                out.stopped = Some(format!(
                    "read {max_fds} descriptors, the most one scan reads"
                ));
                break 'pids;
            }
            out.fds_read += 1;
            let Some(inode) = std::fs::read_link(fd.path())
                .ok()
                .and_then(|t| parse_socket_link(t.as_os_str()))
            else {
                continue;
            };
            if wanted.contains(&inode) && !out.owners.contains_key(&inode) {
                let o = *owner.get_or_insert_with(|| owner_of(proc_root, pid, cgroup2));
                out.owners.insert(inode, o);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::sock::comm_str;

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link(OsStr::new("socket:[4242]")), Some(4242));
        assert_eq!(parse_socket_link(OsStr::new("socket:[]")), None);
        assert_eq!(parse_socket_link(OsStr::new("pipe:[4242]")), None);
        assert_eq!(parse_socket_link(OsStr::new("/dev/null")), None);
        assert_eq!(parse_socket_link(OsStr::new("socket:[12")), None);
    }

    #[test]
    fn cgroup_lines() {
        assert_eq!(
            parse_cgroup("0::/system.slice/nginx.service\n"),
            Some("/system.slice/nginx.service")
        );
        // Hybrid hierarchy: v1 controllers first.
        assert_eq!(
            parse_cgroup("12:cpu,cpuacct:/x\n1:name=systemd:/y\n0::/user.slice\n"),
            Some("/user.slice")
        );
        assert_eq!(parse_cgroup("12:cpu,cpuacct:/x\n"), None);
    }

    /// A fake /proc: two processes share socket 11 (a fork), one holds 12.
    #[test]
    fn scans_a_proc_tree() {
        let root = std::env::temp_dir().join(format!("np-learn-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (pid, comm, links) in [
            (40u32, "srv-child", vec!["socket:[11]", "socket:[99]"]),
            (
                7,
                "srv-parent",
                vec!["/dev/null", "socket:[11]", "socket:[12]"],
            ),
            (8, "other", vec!["pipe:[5]"]),
        ] {
            let fd = root.join(pid.to_string()).join("fd");
            std::fs::create_dir_all(&fd).unwrap();
            std::fs::write(root.join(pid.to_string()).join("comm"), format!("{comm}\n")).unwrap();
            for (i, l) in links.iter().enumerate() {
                std::os::unix::fs::symlink(l, fd.join(i.to_string())).unwrap();
            }
        }
        std::fs::create_dir_all(root.join("self")).unwrap(); // not a pid
        let wanted: HashSet<u64> = [11, 12, 13].into();
        let s = scan(&root, &wanted, Duration::from_secs(5), MAX_FDS);
        assert_eq!(s.owners.len(), 2);
        assert_eq!(s.owners[&11].pid, 7, "the lowest pid of the two holders");
        assert_eq!(comm_str(&s.owners[&11].comm), "srv-parent");
        assert_eq!(s.owners[&12].source, OWNER_LEARNED);
        assert_eq!(s.processes, 3, "13 is not held: every process is read");
        assert!(s.stopped.is_none());

        let few = scan(&root, &wanted, Duration::from_secs(5), 2);
        assert!(few.stopped.unwrap().contains("2 descriptors"));
        let none = scan(&root, &wanted, Duration::ZERO, MAX_FDS);
        assert!(none.stopped.unwrap().contains("ran out"));
        assert!(scan(
            &root.join("missing"),
            &wanted,
            Duration::from_secs(1),
            MAX_FDS
        )
        .stopped
        .unwrap()
        .contains("cannot read"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
