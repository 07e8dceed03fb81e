//! Interface hotplug notifications: a NETLINK_ROUTE socket subscribed to
//! RTMGRP_LINK wakes the collector as soon as a link appears, changes or
//! goes, so a new interface is attached at once and not at the next poll.
//! Messages are not parsed: any of them triggers a resync from sysfs, which
//! stays the one source of truth (and the fallback if netlink overflows).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub struct LinkWatcher {
    fd: OwnedFd,
}

impl LinkWatcher {
    /// Opens the socket in this network namespace.
    ///
    /// # Errors
    /// The socket or bind fails (no netlink in a restricted sandbox).
    pub fn new() -> io::Result<LinkWatcher> {
        // SAFETY: plain syscalls; the fd is owned right after creation.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            addr.nl_groups = libc::RTMGRP_LINK as u32;
            let rc = libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            );
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(LinkWatcher { fd })
        }
    }

    /// Reads every pending notification; returns how many datagrams there
    /// were. An overflow (ENOBUFS) counts as one: a resync covers it.
    pub fn drain(&self) -> usize {
        let mut buf = [0u8; 8192];
        let mut n = 0;
        loop {
            // SAFETY: valid buffer and length; non-blocking socket.
            let r =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if r > 0 {
                n += 1;
                continue;
            }
            if r < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ENOBUFS) {
                n += 1;
                continue;
            }
            return n;
        }
    }
}

impl AsFd for LinkWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_and_drains_nothing_when_quiet() {
        let w = LinkWatcher::new().expect("netlink socket");
        // Nothing guaranteed pending; must not block.
        let _ = w.drain();
    }
}
