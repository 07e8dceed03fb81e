//! Pinned state under `--pin-path` (bpffs), so probes keep counting while
//! the agent restarts or is upgraded and the next agent continues from the
//! same counters.
//!
//! ```text
//! <pin-path>/abi-<hash>/maps/<map>                  counters: packet_stats, flow_stats, ...
//! <pin-path>/abi-<hash>/links/if<index>-<hook>-<mode>   bpf_links (XDP 5.9+, TCX 6.6+)
//! ```
//!
//! `<hash>` is taken from the ABI header the agent was built with: an agent
//! whose structs differ never reads another's maps; it removes the stale
//! directory instead (which detaches its links) and starts from zero.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use aya::maps::{MapInfo, MapType};
use log::{info, warn};

use crate::manager::MapCapacities;
use crate::probes;

/// Default `--pin-path`.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/netprobe";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// FNV-1a of the ABI header: changes whenever a shared struct does.
pub fn abi_hash() -> String {
    let header = include_str!("../../probes/include/netprobe.h");
    let mut h: u64 = 0xcbf29ce484222325;
    for b in header.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", h >> 32)
}

#[derive(Clone, Debug)]
pub struct PinDir {
    root: PathBuf,
    state: PathBuf,
}

/// The maps that outlive the agent, with the layout each must have.
pub fn pinned_maps(caps: &MapCapacities) -> [(&'static str, MapType, u32, u32, u32); 4] {
    use crate::abi::{FlowKey, FlowStats, IfaceConfig, PacketStats, StatsKey, TcDeviceKey};
    use std::mem::size_of;
    let s = |n: usize| n as u32;
    [
        (
            probes::MAP_PACKET_STATS,
            MapType::PerCpuHash,
            s(size_of::<StatsKey>()),
            s(size_of::<PacketStats>()),
            caps.packet_stats,
        ),
        (
            probes::MAP_FLOW_STATS,
            MapType::LruHash,
            s(size_of::<FlowKey>()),
            s(size_of::<FlowStats>()),
            caps.flow_stats,
        ),
        (
            probes::MAP_TC_DEVICE_STATS,
            MapType::PerCpuHash,
            s(size_of::<TcDeviceKey>()),
            8,
            caps.tc_device_stats,
        ),
        (
            probes::MAP_IFACE_CONFIG,
            MapType::Hash,
            4,
            s(size_of::<IfaceConfig>()),
            caps.iface_config,
        ),
    ]
}

impl PinDir {
    /// Prepares `root` for this agent: bpffs mounted (mounting
    /// /sys/fs/bpf if that is where it belongs), stale layouts removed, and
    /// pinned maps checked against `caps`.
    ///
    /// # Errors
    /// `root` is not on a bpffs and cannot be made so; the message says
    /// what to do.
    pub fn open(root: &Path, caps: &MapCapacities) -> Result<PinDir, String> {
        ensure_bpffs(root)?;
        let state = root.join(format!("abi-{}", abi_hash()));
        // Directories of other ABI versions: an older or newer agent's state.
        if let Ok(entries) = fs::read_dir(root) {
            for e in entries.flatten() {
                let p = e.path();
                if p != state && e.file_name().to_string_lossy().starts_with("abi-") {
                    info!(
                        "pinned state {} is from a probe build with another layout; removing it (its links detach)",
                        p.display()
                    );
                    remove_tree(&p);
                }
            }
        }
        let dir = PinDir {
            root: root.to_path_buf(),
            state,
        };
        if let Some(why) = dir.incompatible(caps) {
            info!(
                "pinned maps in {} do not fit this configuration ({why}); starting from zero",
                dir.state.display()
            );
            remove_tree(&dir.state);
        }
        for d in [dir.maps_dir(), dir.links_dir()] {
            fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
        }
        Ok(dir)
    }

    /// Why the pinned maps cannot be reused, or `None` if they can (or none
    /// are pinned).
    fn incompatible(&self, caps: &MapCapacities) -> Option<String> {
        for (name, kind, key, value, entries) in pinned_maps(caps) {
            let path = self.map_path(name);
            if !path.exists() {
                continue;
            }
            let info = match MapInfo::from_pin(&path) {
                Ok(i) => i,
                Err(e) => return Some(format!("{name}: {e}")),
            };
            let have = (
                info.map_type().ok(),
                info.key_size(),
                info.value_size(),
                info.max_entries(),
            );
            if have != (Some(kind), key, value, entries) {
                return Some(format!(
                    "{name}: type {:?} key {} value {} entries {}, want {kind:?} {key} {value} {entries}",
                    have.0, have.1, have.2, have.3
                ));
            }
        }
        None
    }

    pub fn state(&self) -> &Path {
        &self.state
    }

    fn maps_dir(&self) -> PathBuf {
        self.state.join("maps")
    }

    fn links_dir(&self) -> PathBuf {
        self.state.join("links")
    }

    pub fn map_path(&self, map: &str) -> PathBuf {
        self.maps_dir().join(map)
    }

    /// Where the link of `hook` on `ifindex` in `mode` is pinned.
    pub fn link_path(&self, ifindex: u32, hook: &str, mode: &str) -> PathBuf {
        self.links_dir().join(format!("if{ifindex}-{hook}-{mode}"))
    }

    /// Pinned links whose interface index is not in `keep`: interfaces
    /// gone or no longer wanted. Removing the pin detaches the link.
    pub fn prune_links(&self, keep: &dyn Fn(u32) -> bool) -> usize {
        let mut removed = 0;
        for e in fs::read_dir(self.links_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let ifindex = name
                .strip_prefix("if")
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse().ok());
            if ifindex.is_none_or(|i| !keep(i)) && fs::remove_file(e.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Removes everything pinned under the root: links detach, and maps
    /// are freed once no program uses them.
    pub fn remove_all(&self) {
        remove_tree(&self.root);
    }
}

/// Removes every pin under `root` (the whole `--pin-path`). The clsact
/// filters no pin holds are `manager::cleanup_filters`'.
pub fn cleanup(root: &Path) -> io::Result<usize> {
    if !root.exists() {
        return Ok(0);
    }
    let n = count_files(root);
    remove_tree(root);
    if root.exists() {
        return Err(io::Error::other(format!(
            "could not remove {}",
            root.display()
        )));
    }
    Ok(n)
}

fn count_files(p: &Path) -> usize {
    match fs::read_dir(p) {
        Ok(rd) => rd
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    count_files(&e.path())
                } else {
                    1
                }
            })
            .sum(),
        Err(_) => 0,
    }
}

/// rm -r for bpffs: links first, so nothing counts into maps being removed.
fn remove_tree(p: &Path) {
    let mut entries: Vec<PathBuf> = fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort_by_key(|e| !e.ends_with("links"));
    for e in entries {
        if e.is_dir() {
            remove_tree(&e);
        } else if let Err(err) = fs::remove_file(&e) {
            warn!("removing pin {}: {err}", e.display());
        }
    }
    let _ = fs::remove_dir(p);
}

fn is_bpffs(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs into a zeroed struct with a valid path.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Makes sure `root` can hold pins: its nearest existing ancestor must be
/// on a bpffs. /sys/fs/bpf is mounted when it is not (as systemd would).
fn ensure_bpffs(root: &Path) -> Result<(), String> {
    let mut probe = root;
    while !probe.exists() {
        probe = probe.parent().unwrap_or(Path::new("/"));
    }
    if is_bpffs(probe) {
        return Ok(());
    }
    let sysfs_bpf = Path::new("/sys/fs/bpf");
    if root.starts_with(sysfs_bpf) && sysfs_bpf.is_dir() {
        // SAFETY: static, NUL-terminated arguments.
        let rc = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                c"/sys/fs/bpf".as_ptr(),
                c"bpf".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc == 0 && is_bpffs(sysfs_bpf) {
            info!("mounted bpffs on /sys/fs/bpf");
            return Ok(());
        }
        return Err(format!(
            "bpffs is not mounted on /sys/fs/bpf and mounting it failed ({}): run `mount -t bpf bpf /sys/fs/bpf`, \
             or pass --pin-path '' to run without pinning",
            io::Error::last_os_error()
        ));
    }
    Err(format!(
        "--pin-path {} is not on a bpffs: mount one there (`mount -t bpf bpf DIR`), use a path under /sys/fs/bpf, \
         or pass --pin-path '' to run without pinning",
        root.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abi_hash_is_stable_hex() {
        let h = abi_hash();
        assert_eq!(h.len(), 8);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(h, abi_hash());
    }

    #[test]
    fn a_path_off_bpffs_is_refused_with_advice() {
        let e = ensure_bpffs(Path::new("/tmp/netprobe-not-bpffs/x")).unwrap_err();
        assert!(e.contains("mount -t bpf"), "{e}");
    }
}
