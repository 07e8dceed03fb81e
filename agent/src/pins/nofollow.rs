//! Directory handles that never follow a symbolic link. The pin tree is
//! checked, walked and removed with `openat`/`fstatat`/`unlinkat` relative
//! to directories opened with `O_NOFOLLOW`, so a link planted anywhere in
//! it, or a directory swapped under the agent, can never make root read or
//! delete anything outside the tree.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

const OPEN_DIR: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;

/// What a directory entry is, from its own inode (never a link's target).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Dir,
    /// A regular file: what every bpffs pin (map, link, program) is.
    File,
    Symlink,
    Other,
}

/// An open directory.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn kind_of(mode: libc::mode_t) -> Kind {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFREG => Kind::File,
        libc::S_IFLNK => Kind::Symlink,
        _ => Kind::Other,
    }
}

impl Dir {
    /// Opens `path` as a directory; fails (`ENOTDIR` or `ELOOP`) if its
    /// last component is a symbolic link or not a directory.
    pub fn open(path: &Path) -> io::Result<Dir> {
        let c = cstr(path.as_os_str())?;
        // SAFETY: a valid NUL-terminated path; the fd is owned at once.
        let fd = check(unsafe { libc::open(c.as_ptr(), OPEN_DIR) })?;
        // SAFETY: fd was just opened and is owned by nothing else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the entry `name` of this directory, under the same rules.
    pub fn open_at(&self, name: &OsStr) -> io::Result<Dir> {
        let c = cstr(name)?;
        // SAFETY: a valid directory fd and NUL-terminated name.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), OPEN_DIR) })?;
        // SAFETY: fd was just opened and is owned by nothing else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// This directory's own status.
    pub fn stat(&self) -> io::Result<libc::stat> {
        // SAFETY: a zeroed stat is a valid out-buffer; the fd is open.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            check(libc::fstat(self.fd.as_raw_fd(), &mut st))?;
            Ok(st)
        }
    }

    /// The status of entry `name` itself (a link is not followed).
    pub fn stat_at(&self, name: &OsStr) -> io::Result<libc::stat> {
        let c = cstr(name)?;
        // SAFETY: as in `stat`, with a NUL-terminated name.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            check(libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            ))?;
            Ok(st)
        }
    }

    /// The file-system magic number (`statfs.f_type`) this directory is on.
    pub fn fs_type(&self) -> io::Result<i64> {
        // SAFETY: a zeroed statfs is a valid out-buffer; the fd is open.
        unsafe {
            let mut st: libc::statfs = std::mem::zeroed();
            check(libc::fstatfs(self.fd.as_raw_fd(), &mut st))?;
            Ok(st.f_type as i64)
        }
    }

    /// The entries (without `.` and `..`) and what each is.
    pub fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        // A fresh open of "." rather than dup(): a dup shares the read
        // offset, so a second listing would start at the end.
        let dot = self.open_at(OsStr::new("."))?;
        let raw = dot.fd.as_raw_fd();
        // SAFETY: fdopendir takes over the fd on success; on failure we
        // still own it and OwnedFd closes it.
        let dir = unsafe { libc::fdopendir(raw) };
        if dir.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(dot);
        let mut out = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; cleared to tell the end of the
            // listing (NULL, errno 0) from an error (NULL, errno set).
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: dir is a valid DIR* until closedir below.
            let ent = unsafe { libc::readdir(dir) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                break if e.raw_os_error() == Some(0) {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            // SAFETY: readdir returned a valid entry with a NUL-terminated name.
            let (name, d_type) = unsafe {
                (
                    CStr::from_ptr((*ent).d_name.as_ptr()).to_bytes().to_vec(),
                    (*ent).d_type,
                )
            };
            if name == b"." || name == b".." {
                continue;
            }
            let name = OsString::from_vec(name);
            let kind = match d_type {
                libc::DT_DIR => Kind::Dir,
                libc::DT_REG => Kind::File,
                libc::DT_LNK => Kind::Symlink,
                libc::DT_UNKNOWN => match self.stat_at(&name) {
                    Ok(st) => kind_of(st.st_mode),
                    Err(_) => continue, // gone meanwhile
                },
                _ => Kind::Other,
            };
            out.push((name, kind));
        };
        // SAFETY: dir came from fdopendir and is closed once.
        unsafe { libc::closedir(dir) };
        result.map(|()| out)
    }

    /// Removes the entry `name` if it is not a directory (a link is
    /// removed itself, never its target).
    pub fn unlink_at(&self, name: &OsStr) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: a valid directory fd and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// Removes the empty directory `name` (a link named so is not touched:
    /// `ENOTDIR`).
    pub fn rmdir_at(&self, name: &OsStr) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: a valid directory fd and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) })
            .map(drop)
    }

    /// Creates the directory `name` (if missing) and opens it with exactly
    /// `mode`, whatever the umask.
    pub fn make_dir(&self, name: &OsStr, mode: libc::mode_t) -> io::Result<Dir> {
        let c = cstr(name)?;
        // SAFETY: a valid directory fd and NUL-terminated name.
        let rc = unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode) };
        let created = match check(rc) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        let d = self.open_at(name)?;
        if created {
            d.chmod(mode)?;
        }
        Ok(d)
    }

    /// A path naming the entry `name` of this very directory, through
    /// /proc/self/fd: for calls that take only a path (bpf(2) BPF_OBJ_GET
    /// before Linux 6.5), without resolving the directory's path again.
    pub fn proc_path(&self, name: &OsStr) -> std::path::PathBuf {
        Path::new("/proc/self/fd")
            .join(self.fd.as_raw_fd().to_string())
            .join(name)
    }

    pub fn chmod(&self, mode: libc::mode_t) -> io::Result<()> {
        // SAFETY: a valid fd.
        check(unsafe { libc::fchmod(self.fd.as_raw_fd(), mode) }).map(drop)
    }
}

/// The status of `path` itself (a final symbolic link is not followed).
pub fn lstat(path: &Path) -> io::Result<libc::stat> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: a zeroed stat is a valid out-buffer; c is NUL-terminated.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        check(libc::lstat(c.as_ptr(), &mut st))?;
        Ok(st)
    }
}

pub fn kind(st: &libc::stat) -> Kind {
    kind_of(st.st_mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("np-nofollow-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn never_follows_a_link() {
        let d = scratch("link");
        let target = d.join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("precious"), "x").unwrap();
        std::os::unix::fs::symlink(&target, d.join("trap")).unwrap();
        let dir = Dir::open(&d).unwrap();
        let e = dir.open_at(OsStr::new("trap")).unwrap_err();
        assert!(
            matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)),
            "{e}"
        );
        assert!(Dir::open(&d.join("trap")).is_err());
        let mut listed = dir.entries().unwrap();
        listed.sort();
        assert_eq!(
            listed,
            [
                (OsString::from("target"), Kind::Dir),
                (OsString::from("trap"), Kind::Symlink)
            ]
        );
        // rmdir of a link refuses; unlink removes the link, not the target.
        assert!(dir.rmdir_at(OsStr::new("trap")).is_err());
        dir.unlink_at(OsStr::new("trap")).unwrap();
        assert!(target.join("precious").exists());
        // A second listing sees the change (no shared offset).
        assert_eq!(dir.entries().unwrap().len(), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn make_dir_ignores_the_umask() {
        // 0777 asked: any umask (022 by default) would strip bits.
        let d = scratch("mode");
        let made = Dir::open(&d).unwrap().make_dir(OsStr::new("sub"), 0o777);
        let st = made.unwrap().stat().unwrap();
        assert_eq!(st.st_mode & 0o7777, 0o777);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
