//! The two rtnetlink questions that map a host-side interface to a pod's
//! network namespace, asked in the agent's own namespace (the host's, with
//! `hostNetwork`):
//!
//! - `RTM_GETLINK` (dump): every link with, for the host end of a veth (or
//!   any link whose other side lives in another namespace),
//!   `IFLA_LINK_NETNSID`, the id this namespace gives the peer's. Dumping
//!   also assigns ids to peers that had none.
//! - `RTM_GETNSID` with `NETNSA_PID`: the id this namespace gives the
//!   namespace of a process. The kernel looks the pid up itself
//!   (`get_net_ns_by_pid`), with no ptrace check and no capability, unlike
//!   opening `/proc/PID/ns/net` (which needs `CAP_SYS_PTRACE` for a process
//!   holding capabilities the agent lacks). The pid is read in the agent's
//!   pid namespace: the DaemonSet needs `hostPID`.
//!
//! Plain libc on a blocking socket with a receive timeout; the message
//! parsers are tested on literal bytes.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// `include/uapi/linux/net_namespace.h` (not in the libc crate).
const NETNSA_NSID: u16 = 1;
const NETNSA_PID: u16 = 2;
/// `NETNSA_NSID_NOT_ASSIGNED`
const NSID_NOT_ASSIGNED: i32 = -1;
const NLA_TYPE_MASK: u16 = 0x3fff;
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const RTGENMSG_LEN: usize = 4;

/// How long one answer may take before the question fails.
const RECV_TIMEOUT: Duration = Duration::from_secs(2);

/// One link as `RTM_GETLINK` describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`: `veth`, `netkit`, `bridge`, ...; `None` for
    /// physical devices.
    pub kind: Option<String>,
    /// The id of the namespace the link's other side lives in, when that
    /// is not this one.
    pub link_netnsid: Option<i32>,
}

/// A NETLINK_ROUTE socket for questions and their answers.
pub struct RouteSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl RouteSocket {
    /// # Errors
    /// The socket cannot be opened (no netlink in a restricted sandbox).
    pub fn open() -> io::Result<RouteSocket> {
        // SAFETY: plain syscalls; the fd is owned right after creation, and
        // the timeval outlives setsockopt.
        unsafe {
            let fd = libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            );
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            let tv = libc::timeval {
                tv_sec: RECV_TIMEOUT.as_secs() as _,
                tv_usec: 0,
            };
            if libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(RouteSocket {
                fd,
                seq: 0,
                buf: vec![0; 64 << 10],
            })
        }
    }

    /// Every link in the agent's network namespace.
    ///
    /// # Errors
    /// The kernel refuses the dump, or does not answer in time.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let mut body = vec![0u8; IFINFOMSG_LEN];
        // Skip the statistics: a third of each message, not needed here.
        put_attr(
            &mut body,
            libc::IFLA_EXT_MASK,
            &(libc::RTEXT_FILTER_SKIP_STATS as u32).to_ne_bytes(),
        );
        let seq = self.send(
            libc::RTM_GETLINK,
            (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            &body,
        )?;
        let mut links = Vec::new();
        self.receive(seq, |ty, payload| {
            if ty == libc::RTM_NEWLINK {
                links.extend(parse_link(payload));
            }
        })?;
        Ok(links)
    }

    /// The id the agent's namespace gives the network namespace of `pid`;
    /// `None` when the process is gone or its namespace has no id here
    /// (no link of this namespace leads into it; the agent's own namespace
    /// has none either).
    ///
    /// # Errors
    /// The kernel refuses the question, or does not answer in time.
    pub fn nsid_of_pid(&mut self, pid: u32) -> io::Result<Option<i32>> {
        let mut body = vec![0u8; RTGENMSG_LEN];
        put_attr(&mut body, NETNSA_PID, &pid.to_ne_bytes());
        let seq = self.send(libc::RTM_GETNSID, libc::NLM_F_REQUEST as u16, &body)?;
        let mut nsid = None;
        match self.receive(seq, |ty, payload| {
            if ty == libc::RTM_NEWNSID {
                nsid = parse_nsid(payload);
            }
        }) {
            Ok(()) => Ok(nsid.filter(|&id| id != NSID_NOT_ASSIGNED)),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, ty: u16, flags: u16, body: &[u8]) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&flags.to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: valid buffer and length; the kernel is the destination
        // of an unconnected netlink socket's send.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.seq)
    }

    /// Reads answers to `seq` until the dump's `NLMSG_DONE`, an error, or
    /// (for a single question) its one answer.
    fn receive(&mut self, seq: u32, mut each: impl FnMut(u16, &[u8])) -> io::Result<()> {
        loop {
            // SAFETY: valid buffer and length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut done = false;
            for m in Messages::new(&self.buf[..n as usize]) {
                if m.seq != seq {
                    continue; // a late answer to an earlier question
                }
                match m.ty {
                    t if t == libc::NLMSG_DONE as u16 => done = true,
                    t if t == libc::NLMSG_ERROR as u16 => {
                        let code = m
                            .payload
                            .get(..4)
                            .map_or(-libc::EPROTO, |b| i32::from_ne_bytes(b.try_into().unwrap()));
                        if code != 0 {
                            return Err(io::Error::from_raw_os_error(-code));
                        }
                        done = true; // an ACK
                    }
                    t => {
                        each(t, m.payload);
                        if m.flags & libc::NLM_F_MULTI as u16 == 0 {
                            done = true;
                        }
                    }
                }
            }
            if done {
                return Ok(());
            }
        }
    }
}

/// One netlink message of a datagram.
#[derive(Debug)]
pub struct Message<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// The messages of one datagram; stops at the first truncated one.
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub fn new(buf: &'a [u8]) -> Messages<'a> {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Message<'a>;
    fn next(&mut self) -> Option<Message<'a>> {
        let b = self.rest;
        if b.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
        if len < NLMSG_HDRLEN || len > b.len() {
            self.rest = &[];
            return None;
        }
        let m = Message {
            ty: u16::from_ne_bytes(b[4..6].try_into().unwrap()),
            flags: u16::from_ne_bytes(b[6..8].try_into().unwrap()),
            seq: u32::from_ne_bytes(b[8..12].try_into().unwrap()),
            payload: &b[NLMSG_HDRLEN..len],
        };
        self.rest = &b[align(len).min(b.len())..];
        Some(m)
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// Attributes (type without the nested/byte-order flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[align(len).min(b.len())..];
        Some((ty, payload))
    })
}

fn put_attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
    buf.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(payload);
    buf.resize(align(buf.len()), 0);
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn i32_of(b: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

/// An `RTM_NEWLINK` payload (ifinfomsg and attributes); `None` if short or
/// nameless.
pub fn parse_link(payload: &[u8]) -> Option<Link> {
    let hdr = payload.get(..IFINFOMSG_LEN)?;
    let ifindex = i32::from_ne_bytes(hdr[4..8].try_into().ok()?) as u32;
    let mut name = None;
    let mut kind = None;
    let mut link_netnsid = None;
    for (ty, p) in attrs(&payload[IFINFOMSG_LEN..]) {
        match ty {
            libc::IFLA_IFNAME => name = Some(c_string(p)),
            libc::IFLA_LINK_NETNSID => link_netnsid = i32_of(p),
            libc::IFLA_LINKINFO => {
                kind = attrs(p)
                    .find(|&(t, _)| t == libc::IFLA_INFO_KIND)
                    .map(|(_, k)| c_string(k));
            }
            _ => {}
        }
    }
    Some(Link {
        ifindex,
        name: name?,
        kind,
        link_netnsid: link_netnsid.filter(|&id| id >= 0),
    })
}

/// An `RTM_NEWNSID` payload's `NETNSA_NSID`.
pub fn parse_nsid(payload: &[u8]) -> Option<i32> {
    attrs(payload.get(RTGENMSG_LEN..)?)
        .find(|&(t, _)| t == NETNSA_NSID)
        .and_then(|(_, p)| i32_of(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_payload(ifindex: i32, name: &str, kind: Option<&str>, nsid: Option<i32>) -> Vec<u8> {
        let mut b = vec![0u8; IFINFOMSG_LEN];
        b[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        put_attr(&mut b, libc::IFLA_MTU, &1500u32.to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        put_attr(&mut b, libc::IFLA_IFNAME, &n);
        if let Some(k) = kind {
            let mut info = Vec::new();
            put_attr(&mut info, libc::IFLA_INFO_KIND, k.as_bytes());
            put_attr(&mut b, libc::IFLA_LINKINFO | 0x8000, &info); // NLA_F_NESTED
        }
        if let Some(id) = nsid {
            put_attr(&mut b, libc::IFLA_LINK_NETNSID, &id.to_ne_bytes());
        }
        b
    }

    fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m.resize(align(m.len()), 0);
        m
    }

    #[test]
    fn links_parse() {
        let veth = parse_link(&link_payload(7, "cali12ab", Some("veth"), Some(3))).unwrap();
        assert_eq!(
            veth,
            Link {
                ifindex: 7,
                name: "cali12ab".into(),
                kind: Some("veth".into()),
                link_netnsid: Some(3),
            }
        );
        let eth = parse_link(&link_payload(2, "eth0", None, None)).unwrap();
        assert_eq!(eth.kind, None);
        assert_eq!(eth.link_netnsid, None);
        // A negative id (never assigned) is no id.
        assert_eq!(
            parse_link(&link_payload(9, "v", Some("veth"), Some(-1)))
                .unwrap()
                .link_netnsid,
            None
        );
        assert_eq!(parse_link(&[0; 8]), None);
        // No name.
        assert_eq!(parse_link(&[0; IFINFOMSG_LEN]), None);
    }

    #[test]
    fn datagram_with_several_messages() {
        let mut d = message(libc::RTM_NEWLINK, 2, 5, &link_payload(1, "lo", None, None));
        d.extend(message(
            libc::RTM_NEWLINK,
            2,
            5,
            &link_payload(4, "veth1", Some("veth"), Some(0)),
        ));
        d.extend(message(libc::NLMSG_DONE as u16, 2, 5, &[0; 4]));
        let ms: Vec<_> = Messages::new(&d).collect();
        assert_eq!(ms.len(), 3);
        assert_eq!(parse_link(ms[1].payload).unwrap().link_netnsid, Some(0));
        assert_eq!(ms[2].ty, libc::NLMSG_DONE as u16);
        // A truncated tail ends the iteration.
        assert_eq!(Messages::new(&d[..d.len() - 2]).count(), 2);
    }

    #[test]
    fn nsid_answers() {
        let mut p = vec![0u8; RTGENMSG_LEN];
        put_attr(&mut p, NETNSA_NSID, &4i32.to_ne_bytes());
        assert_eq!(parse_nsid(&p), Some(4));
        assert_eq!(parse_nsid(&[0; RTGENMSG_LEN]), None);
        assert_eq!(parse_nsid(&[]), None);
    }

    /// The kernel answers the dump in this namespace: `lo` exists and is
    /// no pair end. (`RTM_GETNSID` is asked in tests/kernel_identity.rs:
    /// qemu-user, which runs the aarch64 unit tests, does not translate
    /// it and answers EOPNOTSUPP.)
    #[test]
    fn dumps_the_links() {
        let mut s = RouteSocket::open().expect("netlink route socket");
        let links = s.links().expect("RTM_GETLINK dump");
        let lo = links.iter().find(|l| l.name == "lo").expect("lo listed");
        assert_eq!(lo.ifindex, 1);
        assert_eq!(lo.link_netnsid, None);
    }
}
