//! Cgroup change notifications: inotify on the directories where pods and
//! containers appear (creating or removing a cgroup is a `mkdir` or `rmdir`
//! there, which inotify reports on cgroupfs as on any file system). Like the
//! link watcher, events are not parsed: any of them asks for a new walk.

use std::collections::HashSet;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub struct CgroupWatch {
    fd: OwnedFd,
    watched: HashSet<PathBuf>,
    max_watches: usize,
}

impl CgroupWatch {
    /// At most `max_watches` directories are watched (the kernel's own
    /// limit, `fs.inotify.max_user_watches`, is shared with every other
    /// program of the user).
    ///
    /// # Errors
    /// inotify is not available (a kernel without `CONFIG_INOTIFY_USER`),
    /// or the per-user instance limit is reached.
    pub fn new(max_watches: usize) -> io::Result<CgroupWatch> {
        // SAFETY: a plain syscall; the fd is owned right after.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(CgroupWatch {
            // SAFETY: a fresh fd nobody else owns.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            watched: HashSet::new(),
            max_watches,
        })
    }

    /// Watches each of `dirs` not yet watched; returns how many could not
    /// be (over the bound, or refused by the kernel).
    pub fn watch<'a>(&mut self, dirs: impl IntoIterator<Item = &'a Path>) -> usize {
        let mut missed = 0;
        for d in dirs {
            if self.watched.contains(d) {
                continue;
            }
            if self.watched.len() >= self.max_watches || !self.add(d) {
                missed += 1;
                continue;
            }
            self.watched.insert(d.to_path_buf());
        }
        missed
    }

    fn add(&self, dir: &Path) -> bool {
        let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
            return false;
        };
        let mask = libc::IN_CREATE | libc::IN_DELETE | libc::IN_DELETE_SELF | libc::IN_ONLYDIR;
        // SAFETY: our inotify fd and a NUL-terminated path.
        unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) >= 0 }
    }

    /// Forgets the directories that no longer exist (the kernel dropped
    /// their watches with them), so their slots serve new ones.
    pub fn prune(&mut self) {
        self.watched.retain(|d| d.is_dir());
    }

    pub fn watched(&self) -> usize {
        self.watched.len()
    }

    /// Reads every pending event; returns whether there was any (an
    /// overflow counts).
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 4096];
        let mut any = false;
        loop {
            // SAFETY: valid buffer and length; non-blocking fd.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                any = true;
                continue;
            }
            return any;
        }
    }
}

impl AsFd for CgroupWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// inotify on a plain directory: the same calls as on cgroupfs
    /// (tests/kernel_identity.rs checks cgroupfs itself).
    #[test]
    fn sees_mkdir_and_rmdir_and_is_bounded() {
        let base = std::env::temp_dir().join(format!("np-watch-{}", std::process::id()));
        let (a, b) = (base.join("a"), base.join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let mut w = CgroupWatch::new(1).unwrap();
        assert!(!w.drain());
        assert_eq!(w.watch([a.as_path(), b.as_path()]), 1, "bound of 1");
        assert_eq!(w.watched(), 1);
        std::fs::create_dir(a.join("pod")).unwrap();
        assert!(w.drain());
        assert!(!w.drain());
        std::fs::remove_dir(a.join("pod")).unwrap();
        assert!(w.drain());
        std::fs::remove_dir(&a).unwrap();
        w.prune();
        assert_eq!(w.watched(), 0);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
