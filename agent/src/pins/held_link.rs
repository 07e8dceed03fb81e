//! A pinned bpf_link that the agent also holds open. While it runs,
//! removing the pin (by anyone who can write the pin directory) then does
//! not detach the probe, and the agent can see that the pin went and put it
//! back. aya keeps its link descriptors private, so the bpf(2) commands
//! this needs are made here; none needs more than the pin's file
//! permissions (`BPF_*_GET_FD_BY_ID` would need CAP_SYS_ADMIN).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_LINK_DETACH: libc::c_long = 34;

/// `bpf_attr` for `BPF_OBJ_PIN` and `BPF_OBJ_GET`.
#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
}

/// `bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_link_info`: type, id, program id, then (at 16,
/// the union's 8-byte alignment) the device index of an XDP or TCX link,
/// 0 once the link is detached.
#[repr(C, align(8))]
#[derive(Default)]
struct LinkInfo {
    kind: u32,
    id: u32,
    prog_id: u32,
    _pad: u32,
    ifindex: u32,
    _attach_type: u32,
}

/// What the kernel says of a link now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub id: u32,
    pub prog_id: u32,
    /// The device an XDP or TCX link is attached to; 0 once detached
    /// (`bpftool link detach`, or the device went away).
    pub ifindex: u32,
}

fn sys_bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: attr is a valid, initialised bpf_attr prefix of the given size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn path_cstr(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// A descriptor of a link, held by the agent.
#[derive(Debug)]
pub struct HeldLink {
    fd: OwnedFd,
}

impl HeldLink {
    /// Opens the object pinned at `path`.
    pub fn from_pin(path: &Path) -> io::Result<HeldLink> {
        let c = path_cstr(path)?;
        let mut attr = ObjAttr {
            pathname: c.as_ptr() as u64,
            ..ObjAttr::default()
        };
        let fd = sys_bpf(BPF_OBJ_GET, &mut attr)? as libc::c_int;
        // SAFETY: BPF_OBJ_GET returned a new descriptor that nothing else owns.
        Ok(HeldLink {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Pins the link at `path` (again).
    pub fn pin(&self, path: &Path) -> io::Result<()> {
        pin_fd(self.fd.as_raw_fd(), path)
    }

    pub fn state(&self) -> io::Result<LinkState> {
        fd_state(self.fd.as_raw_fd())
    }

    /// Detaches the link now (Linux 5.9+), whoever else holds it. Without
    /// this a link goes when its last reference does, and the last one a
    /// removed pin drops is put from an RCU callback, later.
    pub fn detach(&self) -> io::Result<()> {
        let mut link_fd = self.fd.as_raw_fd() as u32;
        sys_bpf(BPF_LINK_DETACH, &mut link_fd).map(drop)
    }
}

fn pin_fd(fd: libc::c_int, path: &Path) -> io::Result<()> {
    let c = path_cstr(path)?;
    let mut attr = ObjAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd as u32,
        file_flags: 0,
    };
    sys_bpf(BPF_OBJ_PIN, &mut attr).map(drop)
}

/// What the kernel says of the link behind `fd`.
pub fn fd_state(fd: libc::c_int) -> io::Result<LinkState> {
    let mut info = LinkInfo::default();
    let mut attr = InfoAttr {
        bpf_fd: fd as u32,
        info_len: std::mem::size_of::<LinkInfo>() as u32,
        info: &mut info as *mut LinkInfo as u64,
    };
    sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(LinkState {
        id: info.id,
        prog_id: info.prog_id,
        ifindex: info.ifindex,
    })
}

const _: () = assert!(std::mem::size_of::<LinkInfo>() == 24);
const _: () = assert!(std::mem::offset_of!(LinkInfo, ifindex) == 16);
