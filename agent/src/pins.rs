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
//!
//! Root reads and removes this tree, so it must be root's alone. Before
//! anything in it is read or removed, the pin root, every `abi-*`
//! directory and their `maps` and `links` are checked: real directories
//! (not symbolic links), owned by the agent's user, not writable by group
//! or others, holding only pins (regular files) in `maps` and `links`;
//! the agent refuses to start (and `--cleanup` to remove) with a message
//! saying what to fix otherwise. It creates the directories mode 0700
//! whatever the umask, and mounts bpffs (on /sys/fs/bpf only, when no
//! bpffs is there yet) with `mode=0700`. Removal never follows a link
//! ([`nofollow`]) and removes only that layout; anything else is left and
//! named.

pub(crate) mod held_link;
mod nofollow;

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::{Path, PathBuf};

use aya::maps::{MapInfo, MapType};
use log::{info, warn};

use crate::probes;
use held_link::HeldLink;
use nofollow::{Dir, Kind};

/// Entries of each kernel map, as created: a pinned map of another size
/// is not reused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MapCapacities {
    pub packet_stats: u32,
    pub tc_device_stats: u32,
    pub iface_config: u32,
    pub flow_stats: u32,
}

/// Default `--pin-path`.
pub const DEFAULT_PIN_PATH: &str = "/sys/fs/bpf/netprobe";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// FNV-1a of the packet probes' ABI headers, whose maps are pinned:
/// changes whenever a shared struct does.
pub fn abi_hash() -> String {
    let header = concat!(
        include_str!("../../probes/include/abi/types.h"),
        include_str!("../../probes/include/abi/packet.h")
    );
    let mut h: u64 = 0xcbf29ce484222325;
    for b in header.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{:08x}", h >> 32)
}

/// The pin tree in use: its paths, and its root and `links` directories
/// held open, so every removal works relative to the directories that
/// were checked, whatever is renamed meanwhile.
#[derive(Debug)]
pub struct PinDir {
    root: PathBuf,
    state: PathBuf,
    root_dir: Dir,
    links_dir: Dir,
}

/// Mode of every directory the agent creates in the pin tree.
const DIR_MODE: libc::mode_t = 0o700;
const STATE_PREFIX: &str = "abi-";
const MAPS: &str = "maps";
const LINKS: &str = "links";

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
    /// Prepares `root` for this agent: bpffs mounted (on /sys/fs/bpf, if
    /// that is where it belongs and none is there), the tree checked (see
    /// the module docs), stale layouts removed, and pinned maps checked
    /// against `caps`.
    ///
    /// # Errors
    /// `root` is not on a bpffs and cannot be made so, or the tree fails a
    /// check; the message says what to do.
    pub fn open(root: &Path, caps: &MapCapacities) -> Result<PinDir, String> {
        let root_dir = prepare_root(root)?;
        let state_name = OsString::from(format!("{STATE_PREFIX}{}", abi_hash()));
        // Directories of other ABI versions: an older or newer agent's state.
        for name in check_layout(&root_dir, root)? {
            if name != state_name {
                info!(
                    "pinned state {} is from a probe build with another layout; removing it (its links detach)",
                    root.join(&name).display()
                );
                let mut r = Removal::default();
                remove_layout(&root_dir, root, &name, &mut r);
                r.warn_left();
            }
        }
        let state = root.join(&state_name);
        if let Some(why) = incompatible(&state, caps) {
            info!(
                "pinned maps in {} do not fit this configuration ({why}); starting from zero",
                state.display()
            );
            let mut r = Removal::default();
            remove_layout(&root_dir, root, &state_name, &mut r);
            r.warn_left();
        }
        let make = |d: &Dir, name: &str, path: &Path| {
            d.make_dir(OsStr::new(name), DIR_MODE)
                .map_err(|e| format!("creating {}: {e}", path.join(name).display()))
        };
        let state_dir = root_dir
            .make_dir(&state_name, DIR_MODE)
            .map_err(|e| format!("creating {}: {e}", state.display()))?;
        make(&state_dir, MAPS, &state)?;
        let links_dir = make(&state_dir, LINKS, &state)?;
        Ok(PinDir {
            root: root.to_path_buf(),
            state,
            root_dir,
            links_dir,
        })
    }

    pub fn state(&self) -> &Path {
        &self.state
    }

    pub fn map_path(&self, map: &str) -> PathBuf {
        self.state.join(MAPS).join(map)
    }

    /// The file name of the link of `hook` on `ifindex` in `mode`.
    pub fn link_name(ifindex: u32, hook: &str, mode: &str) -> String {
        format!("if{ifindex}-{hook}-{mode}")
    }

    /// Where the link of `hook` on `ifindex` in `mode` is pinned.
    pub fn link_path(&self, ifindex: u32, hook: &str, mode: &str) -> PathBuf {
        self.link_pin_path(&Self::link_name(ifindex, hook, mode))
    }

    /// Where the link pin `name` is.
    pub fn link_pin_path(&self, name: &str) -> PathBuf {
        self.state.join(LINKS).join(name)
    }

    /// Removes the link pin `name` and detaches its link, now. A missing
    /// pin is not an error.
    pub fn unpin_link(&self, name: &str) -> io::Result<()> {
        let name = OsStr::new(name);
        let link = HeldLink::from_pin(&self.links_dir.proc_path(name)).ok();
        match self.links_dir.unlink_at(name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            r => r?,
        }
        link.map_or(Ok(()), |l| l.detach())
    }

    /// Pinned links whose interface index is not in `keep`: interfaces
    /// gone or no longer wanted. Removing the pin detaches the link.
    pub fn prune_links(&self, keep: &dyn Fn(u32) -> bool) -> usize {
        let mut removed = 0;
        for (name, kind) in self.links_dir.entries().unwrap_or_default() {
            let ifindex = name
                .to_str()
                .and_then(|n| n.strip_prefix("if"))
                .and_then(|r| r.split('-').next())
                .and_then(|n| n.parse().ok());
            if kind == Kind::File
                && ifindex.is_none_or(|i| !keep(i))
                && self.unpin_link(&name.to_string_lossy()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }

    /// Removes everything this layout pinned under the root: links detach,
    /// and maps are freed once no program uses them. Anything else found
    /// there is left, with a warning.
    pub fn remove_all(&self) {
        let mut r = Removal::default();
        for (name, kind) in self.root_dir.entries().unwrap_or_default() {
            if kind == Kind::Dir && is_state_name(&name) {
                remove_layout(&self.root_dir, &self.root, &name, &mut r);
            } else {
                r.left(&self.root.join(&name), "not part of NetProbe's layout");
            }
        }
        remove_root(&self.root, &mut r);
        r.warn_left();
    }
}

/// Why the pinned maps in `state` cannot be reused, or `None` if they can
/// (or none are pinned).
fn incompatible(state: &Path, caps: &MapCapacities) -> Option<String> {
    for (name, kind, key, value, entries) in pinned_maps(caps) {
        let path = state.join(MAPS).join(name);
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

/// What a removal did: pins removed, and what it left with why.
#[derive(Debug, Default)]
pub struct Removal {
    pub removed: usize,
    pub left: Vec<String>,
}

impl Removal {
    fn left(&mut self, path: &Path, why: &str) {
        self.left.push(format!("{}: {why}", path.display()));
    }

    fn warn_left(&self) {
        for l in &self.left {
            warn!("pin tree: left {l}");
        }
    }
}

/// `--cleanup`: removes every pin of NetProbe's layout under `root`, links
/// first, then the directories. Nothing outside that layout is touched.
///
/// # Errors
/// `root` is a symbolic link, not on a bpffs, or fails a check of the
/// tree (nothing is removed then); the message says what to fix.
pub fn cleanup(root: &Path) -> Result<Removal, String> {
    match nofollow::lstat(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Removal::default()),
        Err(e) => return Err(format!("{}: {e}", root.display())),
        Ok(_) => {}
    }
    let root_dir = open_dir(None, root)?;
    if !on_bpffs(&root_dir) {
        return Err(format!(
            "{} is not on a bpffs: --cleanup removes only pins and refuses to delete anything elsewhere; \
             give it the --pin-path the agent ran with",
            root.display()
        ));
    }
    check_dir(&root_dir, root)?;
    let mut r = Removal::default();
    let states = check_layout(&root_dir, root)?;
    for name in &states {
        remove_layout(&root_dir, root, name, &mut r);
    }
    for (name, _) in root_dir.entries().unwrap_or_default() {
        if !states.contains(&name) {
            r.left(&root.join(&name), "not part of NetProbe's layout");
        }
    }
    remove_root(root, &mut r);
    Ok(r)
}

fn is_state_name(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(STATE_PREFIX.as_bytes())
}

/// Opens the directory `path` (through `parent`, which holds it, if given)
/// without following a link, with a message saying what to fix.
fn open_dir(parent: Option<&Dir>, path: &Path) -> Result<Dir, String> {
    let name = path.file_name().unwrap_or_default();
    let opened = match parent {
        Some(p) => p.open_at(name),
        None => Dir::open(path),
    };
    opened.map_err(|e| {
        let kind = match parent {
            Some(p) => p.stat_at(name),
            None => nofollow::lstat(path),
        }
        .map(|st| nofollow::kind(&st));
        match kind {
            Ok(Kind::Symlink) => format!(
                "{} is a symbolic link: NetProbe never follows links in its pin tree; remove the link, \
                 and give --pin-path a real directory",
                path.display()
            ),
            Ok(Kind::File | Kind::Other) => format!(
                "{} is not a directory: remove it, or choose another --pin-path",
                path.display()
            ),
            _ => format!("opening {}: {e}", path.display()),
        }
    })
}

/// Refuses a directory of the pin tree that someone other than the agent's
/// user could change.
fn check_dir(dir: &Dir, path: &Path) -> Result<(), String> {
    let st = dir
        .stat()
        .map_err(|e| format!("checking {}: {e}", path.display()))?;
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if st.st_uid != uid {
        return Err(format!(
            "{} is owned by uid {}, not by uid {uid} that the agent runs as: its owner could plant links \
             or remove pins there. Check what it holds, then remove it (`rm -r`) or `chown -R {uid}:0` it",
            path.display(),
            st.st_uid
        ));
    }
    if st.st_mode & 0o022 != 0 {
        return Err(format!(
            "{} is writable by group or others (mode {:o}): they could plant links or remove pins there. \
             Check what it holds, then `chmod 700` it",
            path.display(),
            st.st_mode & 0o7777
        ));
    }
    Ok(())
}

/// Checks every `abi-*` directory under `root` and its `maps` and `links`
/// (and that those hold only pins); returns the `abi-*` names.
fn check_layout(root_dir: &Dir, root: &Path) -> Result<Vec<OsString>, String> {
    let entries = root_dir
        .entries()
        .map_err(|e| format!("listing {}: {e}", root.display()))?;
    let mut states = Vec::new();
    for (name, _) in entries.into_iter().filter(|(n, _)| is_state_name(n)) {
        let path = root.join(&name);
        let state = open_dir(Some(root_dir), &path)?;
        check_dir(&state, &path)?;
        for sub in [MAPS, LINKS] {
            let sub_path = path.join(sub);
            match state.stat_at(OsStr::new(sub)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(format!("checking {}: {e}", sub_path.display())),
                Ok(_) => {}
            }
            let d = open_dir(Some(&state), &sub_path)?;
            check_dir(&d, &sub_path)?;
            let entries = d
                .entries()
                .map_err(|e| format!("listing {}: {e}", sub_path.display()))?;
            if let Some((n, k)) = entries.iter().find(|(_, k)| *k != Kind::File) {
                return Err(format!(
                    "{} is a {}, not a pin: NetProbe never follows links in its pin tree; remove it",
                    sub_path.join(n).display(),
                    match k {
                        Kind::Symlink => "symbolic link",
                        Kind::Dir => "directory",
                        _ => "special file",
                    }
                ));
            }
        }
        states.push(name);
    }
    Ok(states)
}

/// Removes the layout `parent/name` (`links` pins first, so nothing counts
/// into maps being removed, then `maps`, then the directories); never
/// follows a link, and leaves (and records) anything else.
fn remove_layout(parent: &Dir, parent_path: &Path, name: &OsStr, r: &mut Removal) {
    let path = parent_path.join(name);
    let dir = match parent.open_at(name) {
        Ok(d) => d,
        Err(e) => return r.left(&path, &format!("not opened as a directory ({e})")),
    };
    let mut entries = dir.entries().unwrap_or_default();
    entries.sort_by_key(|(n, _)| n != LINKS);
    for (sub, kind) in entries {
        if kind == Kind::Dir && (sub == LINKS || sub == MAPS) {
            remove_pins(&dir, &path, &sub, r);
        } else {
            r.left(&path.join(&sub), "not part of NetProbe's layout");
        }
    }
    if let Err(e) = parent.rmdir_at(name) {
        r.left(&path, &format!("directory not removed ({e})"));
    }
}

fn remove_pins(parent: &Dir, parent_path: &Path, name: &OsStr, r: &mut Removal) {
    let path = parent_path.join(name);
    let dir = match parent.open_at(name) {
        Ok(d) => d,
        Err(e) => return r.left(&path, &format!("not opened as a directory ({e})")),
    };
    for (pin, kind) in dir.entries().unwrap_or_default() {
        // A link is detached as its pin goes, not when the kernel drops the
        // removed pin's reference later: a probe is off when this returns.
        let link = (kind == Kind::File && name == LINKS)
            .then(|| HeldLink::from_pin(&dir.proc_path(&pin)).ok())
            .flatten();
        if kind != Kind::File {
            r.left(&path.join(&pin), "not a pin");
        } else if let Err(e) = dir.unlink_at(&pin) {
            r.left(&path.join(&pin), &format!("not removed ({e})"));
        } else {
            r.removed += 1;
            if let Some(Err(e)) = link.map(|l| l.detach()) {
                warn!(
                    "detaching the link pinned at {}: {e}",
                    path.join(&pin).display()
                );
            }
        }
    }
    if let Err(e) = parent.rmdir_at(name) {
        r.left(&path, &format!("directory not removed ({e})"));
    }
}

/// Removes the (empty) pin root itself; rmdir(2) does not follow a final
/// link, so one put in its place stays.
fn remove_root(root: &Path, r: &mut Removal) {
    if let Err(e) = std::fs::remove_dir(root) {
        if r.left.is_empty() {
            r.left(root, &format!("directory not removed ({e})"));
        }
    }
}

fn on_bpffs(d: &Dir) -> bool {
    d.fs_type().is_ok_and(|t| t == BPF_FS_MAGIC)
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

const SYS_FS_BPF: &str = "/sys/fs/bpf";

/// Makes `root` a checked directory on a bpffs, created (mode 0700) if
/// missing, and returns it open. /sys/fs/bpf gets a bpffs (`mode=0700`, as
/// systemd mounts it) when `root` is below it and no bpffs is there yet:
/// never a second one over an existing bpffs.
fn prepare_root(root: &Path) -> Result<Dir, String> {
    let sys = Path::new(SYS_FS_BPF);
    if root.starts_with(sys) && sys.is_dir() && !is_bpffs(sys) {
        mount_sys_fs_bpf()?;
    }
    match nofollow::lstat(root) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_root(root)?,
        Err(e) => return Err(format!("--pin-path {}: {e}", root.display())),
    }
    let dir = open_dir(None, root)?;
    if !on_bpffs(&dir) {
        return Err(not_on_bpffs(root));
    }
    check_dir(&dir, root)?;
    check_parent(root)?;
    Ok(dir)
}

fn not_on_bpffs(root: &Path) -> String {
    format!(
        "--pin-path {} is not on a bpffs: mount one there (`mount -t bpf -o mode=0700 bpf DIR`), use a path \
         under /sys/fs/bpf, or pass --pin-path '' to run without pinning",
        root.display()
    )
}

/// Creates a missing pin root (and missing parents) mode 0700, if its
/// nearest existing ancestor is on a bpffs.
fn create_root(root: &Path) -> Result<(), String> {
    let mut probe = root;
    while let Some(parent) = probe.parent().filter(|p| !p.as_os_str().is_empty()) {
        probe = parent;
        if nofollow::lstat(probe).is_ok() {
            break;
        }
    }
    if !is_bpffs(probe) {
        return Err(not_on_bpffs(root));
    }
    let parent = root.parent().unwrap_or(Path::new("/"));
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(parent)
        .map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let name = root.file_name().unwrap_or_default();
    open_dir(None, parent)?
        .make_dir(name, DIR_MODE)
        .map(drop)
        .map_err(|e| format!("creating {}: {e}", root.display()))
}

/// Refuses a pin root whose parent lets someone else rename it away and
/// put something else in its place: a parent owned by another user than
/// root or the agent's, or writable by group or others without the sticky
/// bit (which a bpffs mounted without `mode=` has: 1777).
fn check_parent(root: &Path) -> Result<(), String> {
    let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(());
    };
    let st =
        std::fs::metadata(parent).map_err(|e| format!("checking {}: {e}", parent.display()))?;
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if st.uid() != 0 && st.uid() != uid {
        return Err(format!(
            "{} (the parent of --pin-path) is owned by uid {}, who could replace {}: choose a --pin-path \
             whose parent root owns",
            parent.display(),
            st.uid(),
            root.display()
        ));
    }
    if st.mode() & 0o022 != 0 && st.mode() & libc::S_ISVTX == 0 {
        return Err(format!(
            "{} (the parent of --pin-path) is writable by group or others without the sticky bit: they \
             could replace {}. `chmod go-w` or `chmod +t` it",
            parent.display(),
            root.display()
        ));
    }
    Ok(())
}

fn mount_sys_fs_bpf() -> Result<(), String> {
    // SAFETY: static, NUL-terminated arguments.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c"/sys/fs/bpf".as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if rc == 0 && is_bpffs(Path::new(SYS_FS_BPF)) {
        info!("mounted bpffs on /sys/fs/bpf (mode 0700)");
        return Ok(());
    }
    Err(format!(
        "bpffs is not mounted on /sys/fs/bpf and mounting it failed ({}): run \
         `mount -t bpf -o mode=0700 bpf /sys/fs/bpf`, or pass --pin-path '' to run without pinning",
        io::Error::last_os_error()
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
        let e = prepare_root(Path::new("/tmp/netprobe-not-bpffs/x")).unwrap_err();
        assert!(e.contains("mount -t bpf"), "{e}");
        assert!(!Path::new("/tmp/netprobe-not-bpffs").exists());
    }

    #[test]
    fn cleanup_refuses_a_directory_off_bpffs() {
        let d = std::env::temp_dir().join(format!("np-cleanup-{}", std::process::id()));
        std::fs::create_dir_all(d.join("abi-00000000/maps")).unwrap();
        std::fs::write(d.join("abi-00000000/maps/precious"), "x").unwrap();
        let e = cleanup(&d).unwrap_err();
        assert!(e.contains("not on a bpffs"), "{e}");
        assert!(d.join("abi-00000000/maps/precious").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
