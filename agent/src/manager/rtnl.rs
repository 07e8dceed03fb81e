//! Route-netlink queries the manager needs and aya 0.14 does not offer:
//! the filters on a clsact hook with their priority, handle and program
//! (so the agent owns its filters by priority and handle, whatever name
//! the kernel gave the program), and the XDP programs a device runs.
//! Reading the socket is separate from parsing, which is tested on bytes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLA_TYPE_MASK: u16 = 0x3fff;
const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_BPF_NAME: u16 = 7;
const TCA_BPF_ID: u16 = 11;
const IFLA_XDP: u16 = 43;
/// IFLA_XDP_PROG_ID, then the per-mode DRV, SKB and HW program ids.
const IFLA_XDP_PROG_IDS: [u16; 4] = [4, 5, 6, 7];
const TC_H_CLSACT_INGRESS: u32 = 0xffff_fff2;
const TC_H_CLSACT_EGRESS: u32 = 0xffff_fff3;
const NLMSG_HDR: usize = 16;
const TCMSG: usize = 20;
const IFINFOMSG: usize = 16;
/// A reply slower than this means the kernel is wedged: give up.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// One entry of a clsact hook's filter list. Each priority also lists its
/// classifier once with handle 0 (no program).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub priority: u16,
    pub handle: u32,
    /// Classifier kind: `bpf` for cls_bpf, else `u32`, `flower`, ...
    pub kind: String,
    /// The name given at attach time (`TCA_BPF_NAME`); empty or absent
    /// when the program was loaded unnamed.
    pub bpf_name: Option<String>,
    pub prog_id: Option<u32>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain socket(2); the fd is owned at once.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a new descriptor nothing else owns.
        let s = Socket(unsafe { OwnedFd::from_raw_fd(fd) });
        let tv = libc::timeval {
            // time_t is deprecated in the libc crate on musl: inferred here.
            tv_sec: RECV_TIMEOUT.as_secs().try_into().unwrap_or(2),
            tv_usec: 0,
        };
        // SAFETY: a valid timeval of the size given.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        Ok(s)
    }

    /// Sends `req` and returns every reply message (type, payload) up to
    /// NLMSG_DONE, or the one reply of a non-dump request.
    fn request(&self, req: &[u8], dump: bool) -> io::Result<Vec<Message>> {
        // SAFETY: req is a valid buffer of the length given.
        let sent = unsafe { libc::send(self.0.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: buf is valid for its length.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let (msgs, done) = split_messages(&buf[..n as usize])?;
            out.extend(msgs);
            if done || !dump {
                return Ok(out);
            }
        }
    }
}

/// A netlink message: its type and payload.
type Message = (u16, Vec<u8>);

/// Splits a datagram into messages; true once NLMSG_DONE came. An
/// NLMSG_ERROR with an error code is returned as that error.
fn split_messages(mut b: &[u8]) -> io::Result<(Vec<Message>, bool)> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes(b[0..4].try_into().unwrap_or_default()) as usize;
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        if len < NLMSG_HDR || len > b.len() {
            return Err(io::Error::other("truncated netlink message"));
        }
        let payload = &b[NLMSG_HDR..len];
        match kind {
            NLMSG_DONE => return Ok((out, true)),
            NLMSG_ERROR => {
                let code = payload
                    .get(0..4)
                    .map(|c| i32::from_ne_bytes(c.try_into().unwrap_or_default()))
                    .unwrap_or(0);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                return Ok((out, true));
            }
            _ => out.push((kind, payload.to_vec())),
        }
        b = &b[align4(len).min(b.len())..];
    }
    Ok((out, false))
}

/// Iterates the attributes (type without flags, payload) in `b`.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((kind, data))
    })
}

fn c_string(d: &[u8]) -> String {
    let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

fn u32_of(d: &[u8]) -> Option<u32> {
    d.get(0..4)
        .map(|c| u32::from_ne_bytes(c.try_into().unwrap_or_default()))
}

fn header(len: usize, kind: u16, flags: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m
}

/// Parses one RTM_NEWTFILTER payload (tcmsg, then attributes).
fn parse_filter(p: &[u8]) -> Option<Filter> {
    if p.len() < TCMSG {
        return None;
    }
    let word = |at: usize| u32::from_ne_bytes(p[at..at + 4].try_into().unwrap_or_default());
    let mut f = Filter {
        handle: word(8),
        priority: (word(16) >> 16) as u16,
        ..Filter::default()
    };
    for (kind, data) in attrs(&p[TCMSG..]) {
        match kind {
            TCA_KIND => f.kind = c_string(data),
            TCA_OPTIONS => {
                for (k, d) in attrs(data) {
                    match k {
                        TCA_BPF_NAME => f.bpf_name = Some(c_string(d)),
                        TCA_BPF_ID => f.prog_id = u32_of(d),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Some(f)
}

/// The filters on the clsact ingress or egress hook of `ifindex`; empty
/// when the device has no clsact qdisc.
///
/// # Errors
/// The netlink request failed (the device is gone: `ENODEV`).
pub fn clsact_filters(ifindex: u32, egress: bool) -> io::Result<Vec<Filter>> {
    let len = NLMSG_HDR + TCMSG;
    let mut req = header(len, RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP);
    req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    req.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // handle: all
    let parent = if egress {
        TC_H_CLSACT_EGRESS
    } else {
        TC_H_CLSACT_INGRESS
    };
    req.extend_from_slice(&parent.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes()); // info: any priority and protocol
    let replies = match Socket::open()?.request(&req, true) {
        // No clsact qdisc on the device: no filters.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(Vec::new()),
        r => r?,
    };
    Ok(replies
        .iter()
        .filter(|(k, _)| *k == RTM_NEWTFILTER)
        .filter_map(|(_, p)| parse_filter(p))
        .collect())
}

/// The XDP programs attached to `ifindex` (one per mode at most).
///
/// # Errors
/// The netlink request failed (the device is gone: `ENODEV`).
pub fn xdp_prog_ids(ifindex: u32) -> io::Result<Vec<u32>> {
    let len = NLMSG_HDR + IFINFOMSG;
    let mut req = header(len, RTM_GETLINK, NLM_F_REQUEST);
    req.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    req.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    req.extend_from_slice(&[0u8; 8]); // flags, change
    let replies = Socket::open()?.request(&req, false)?;
    let link = replies
        .iter()
        .find(|(k, _)| *k == RTM_NEWLINK)
        .ok_or_else(|| io::Error::other("no RTM_NEWLINK reply"))?;
    Ok(parse_xdp_ids(&link.1))
}

fn parse_xdp_ids(p: &[u8]) -> Vec<u32> {
    let mut ids = Vec::new();
    for (kind, data) in attrs(p.get(IFINFOMSG..).unwrap_or(&[])) {
        if kind == IFLA_XDP {
            for (k, d) in attrs(data) {
                if let Some(id) = u32_of(d).filter(|_| IFLA_XDP_PROG_IDS.contains(&k)) {
                    if id != 0 && !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
        }
    }
    ids
}

/// Who holds a clsact priority.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Nothing there.
    Nobody,
    /// A cls_bpf filter at our handle whose program is unnamed or has one
    /// of our names: an earlier agent's (take it over).
    Us,
    /// Something else: what it is.
    Other(String),
}

/// Who holds `priority` among `filters`, given the handle we use there and
/// the names our programs may carry (the empty name counts as ours: kernels
/// without BPF_EVENTS load every program unnamed).
pub fn holder(filters: &[Filter], priority: u16, handle: u32, names: &[&str]) -> Holder {
    let mut ours = false;
    for f in filters.iter().filter(|f| f.priority == priority) {
        if f.kind != "bpf" {
            return Holder::Other(format!("a '{}' filter", f.kind));
        }
        if f.handle == 0 {
            continue; // the classifier's own entry
        }
        let name = f.bpf_name.as_deref().unwrap_or("");
        if f.handle != handle || !(name.is_empty() || names.contains(&name)) {
            return Holder::Other(format!(
                "a bpf filter with handle {:#x} running '{name}' (program id {})",
                f.handle,
                f.prog_id.unwrap_or(0)
            ));
        }
        ours = true;
    }
    if ours {
        Holder::Us
    } else {
        Holder::Nobody
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, data: &[u8]) -> Vec<u8> {
        let mut a = Vec::new();
        a.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(data);
        a.resize(align4(a.len()), 0);
        a
    }

    fn filter_msg(prio: u16, handle: u32, kind: &str, name: Option<&str>, id: u32) -> Vec<u8> {
        let mut p = vec![0u8; 4];
        p.extend_from_slice(&7i32.to_ne_bytes());
        p.extend_from_slice(&handle.to_ne_bytes());
        p.extend_from_slice(&TC_H_CLSACT_INGRESS.to_ne_bytes());
        p.extend_from_slice(&((u32::from(prio) << 16) | 0x0300).to_ne_bytes());
        p.extend(attr(TCA_KIND, format!("{kind}\0").as_bytes()));
        if let Some(n) = name {
            let mut opts = attr(TCA_BPF_NAME, format!("{n}\0").as_bytes());
            opts.extend(attr(TCA_BPF_ID, &id.to_ne_bytes()));
            p.extend(attr(TCA_OPTIONS | 0x8000, &opts));
        }
        p
    }

    #[test]
    fn parses_filters_and_messages() {
        let head = filter_msg(20048, 0, "bpf", None, 0);
        let ours = filter_msg(20048, 0x4e50, "bpf", Some(""), 42);
        let mut dgram = Vec::new();
        for p in [&head, &ours] {
            let mut m = header(NLMSG_HDR + p.len(), RTM_NEWTFILTER, 0);
            m.extend_from_slice(p);
            dgram.extend(m);
        }
        dgram.extend(header(NLMSG_HDR + 4, NLMSG_DONE, 0));
        dgram.extend_from_slice(&[0; 4]);
        let (msgs, done) = split_messages(&dgram).unwrap();
        assert!(done);
        let f: Vec<Filter> = msgs.iter().filter_map(|(_, p)| parse_filter(p)).collect();
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].priority, f[0].handle, f[0].kind.as_str()),
            (20048, 0, "bpf")
        );
        assert_eq!(
            (f[1].handle, f[1].bpf_name.as_deref(), f[1].prog_id),
            (0x4e50, Some(""), Some(42))
        );
        let mut err = header(NLMSG_HDR + 4, NLMSG_ERROR, 0);
        err.extend_from_slice(&(-libc::ENODEV).to_ne_bytes());
        assert_eq!(
            split_messages(&err).unwrap_err().raw_os_error(),
            Some(libc::ENODEV)
        );
        assert!(split_messages(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn parses_xdp_program_ids() {
        let mut p = vec![0u8; IFINFOMSG];
        p.extend(attr(3, b"eth0\0"));
        let mut x = attr(2, &[1]);
        x.extend(attr(4, &77u32.to_ne_bytes()));
        p.extend(attr(IFLA_XDP | 0x8000, &x));
        assert_eq!(parse_xdp_ids(&p), [77]);
        assert!(parse_xdp_ids(&p[..IFINFOMSG]).is_empty());
    }

    #[test]
    fn who_holds_a_priority() {
        let f = |prio, handle, kind: &str, name: Option<&str>| Filter {
            priority: prio,
            handle,
            kind: kind.into(),
            bpf_name: name.map(Into::into),
            prog_id: Some(9),
        };
        let names = ["netprobe_tc_ingress"];
        let h = |l: &[Filter]| holder(l, 100, 0x4e50, &names);
        assert_eq!(h(&[]), Holder::Nobody);
        assert_eq!(h(&[f(1, 1, "u32", None)]), Holder::Nobody);
        assert_eq!(h(&[f(100, 0, "bpf", None)]), Holder::Nobody);
        assert_eq!(h(&[f(100, 0x4e50, "bpf", Some(""))]), Holder::Us);
        assert_eq!(
            h(&[f(100, 0x4e50, "bpf", Some("netprobe_tc_ingress"))]),
            Holder::Us
        );
        assert!(matches!(h(&[f(100, 0, "u32", None)]), Holder::Other(w) if w.contains("u32")));
        assert!(matches!(h(&[f(100, 1, "bpf", Some(""))]), Holder::Other(w) if w.contains("0x1")));
        assert!(matches!(
            h(&[f(100, 0x4e50, "bpf", Some("cilium"))]),
            Holder::Other(w) if w.contains("cilium")
        ));
    }
}
