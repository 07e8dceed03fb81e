//! A safe wrapper over `BPF_PROG_TEST_RUN`: runs a loaded XDP or TC program
//! on a packet in the kernel, without attaching it anywhere. The kernel
//! tests and `netprobe-bench` use it.
//!
//! Kernel behaviour worth knowing (read in `net/bpf/test_run.c`, seen on
//! Debian's 6.1 and on 6.18):
//! - A packet shorter than `ETH_HLEN` (14 bytes) is refused with `EINVAL`,
//!   by XDP and TC alike; so a frame shorter than an Ethernet header cannot
//!   be test-run. This wrapper passes such frames on and lets the kernel
//!   decide.
//! - TC on 6.18 (not 6.1) also refuses an untagged IPv4 frame shorter than
//!   14 + 20 bytes and an IPv6 one shorter than 14 + 40 (`EINVAL`); behind a
//!   VLAN tag they run.
//! - XDP: without a context the frame arrives on loopback (`ingress_ifindex`
//!   1). A context must have `data_end` equal to the packet length (set here)
//!   and its `ingress_ifindex` must name a device in the caller's network
//!   namespace (`ENODEV` otherwise); nothing is attached to it.
//! - TC (`__sk_buff`): `skb->ifindex` is loopback's (1) unless the context
//!   sets `ifindex` > 1 to an existing device. `skb->len` is the packet
//!   length and the whole packet is linear.
//! - `duration` is the time around the whole loop divided by `repeat`
//!   (rounded down), so it includes a share of two clock reads and of
//!   `local_bh_disable`/`enable` per run: compare it with an empty program
//!   measured the same way.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `BPF_PROG_TEST_RUN` command number (`enum bpf_cmd`).
const BPF_PROG_TEST_RUN: libc::c_long = 10;
/// Shortest packet the kernel test-runs (`ETH_HLEN`); see the module docs.
pub const MIN_PACKET_LEN: usize = 14;

/// The test-run member of `union bpf_attr`, with its tail padding spelled
/// out so no uninitialised byte reaches the kernel (it rejects nonzero
/// bytes past the fields it knows).
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    pad: u32,
}
const _: () = assert!(std::mem::size_of::<TestRunAttr>() == 80);

/// `struct xdp_md`, the XDP test-run context.
#[repr(C)]
#[derive(Default)]
struct XdpMd {
    data: u32,
    data_end: u32,
    data_meta: u32,
    ingress_ifindex: u32,
    rx_queue_index: u32,
    egress_ifindex: u32,
}

/// The leading fields of `struct __sk_buff` up to `ifindex`; the kernel
/// reads a shorter context as if the rest were zero.
#[repr(C)]
#[derive(Default)]
struct SkBuffHead {
    len: u32,
    pkt_type: u32,
    mark: u32,
    queue_mapping: u32,
    protocol: u32,
    vlan_present: u32,
    vlan_tci: u32,
    vlan_proto: u32,
    priority: u32,
    ingress_ifindex: u32,
    ifindex: u32,
}

/// The context a program runs with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Context {
    /// No context: the kernel's defaults (the loopback device).
    #[default]
    None,
    /// `struct xdp_md` for an XDP program. `ingress_ifindex` 0 means loopback.
    Xdp {
        ingress_ifindex: u32,
        rx_queue_index: u32,
    },
    /// `struct __sk_buff` for a TC program. `ifindex` 0 or 1 means loopback.
    Skb { ifindex: u32, mark: u32 },
    /// A TC egress packet the host forwards: it came in on
    /// `ingress_ifindex` (`skb->ingress_ifindex`; 0 for a packet the host
    /// sends itself, as `Skb`).
    SkbForwarded { ifindex: u32, ingress_ifindex: u32 },
}

/// One test run.
#[derive(Clone, Copy, Debug)]
pub struct TestRun<'a> {
    /// The packet, from the Ethernet header on.
    pub data: &'a [u8],
    /// Times the kernel runs the program on it (0 counts as 1).
    pub repeat: u32,
    pub context: Context,
}

impl<'a> TestRun<'a> {
    /// One run on `data` with the default context.
    pub fn new(data: &'a [u8]) -> Self {
        TestRun {
            data,
            repeat: 1,
            context: Context::None,
        }
    }

    pub fn repeat(mut self, repeat: u32) -> Self {
        self.repeat = repeat;
        self
    }

    pub fn context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }
}

/// What a test run returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's return value (e.g. `XDP_PASS` = 2, `TC_ACT_UNSPEC` = -1 as u32).
    pub retval: u32,
    /// Average nanoseconds per run, as the kernel reports it.
    pub duration_ns: u32,
    /// The packet after the last run.
    pub data_out: Vec<u8>,
}

/// Why a test run failed.
#[derive(Debug)]
pub enum TestRunError {
    /// The packet is longer than fits in a `u32`.
    PacketTooLong { len: usize },
    /// The `bpf(BPF_PROG_TEST_RUN)` call failed.
    Syscall { error: io::Error },
}

impl std::fmt::Display for TestRunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestRunError::PacketTooLong { len } => write!(f, "packet of {len} bytes is too long"),
            TestRunError::Syscall { error } => {
                let hint = match error.raw_os_error() {
                    Some(libc::EPERM) | Some(libc::EACCES) => {
                        " (needs CAP_BPF and CAP_NET_ADMIN, or root)"
                    }
                    Some(libc::ENODEV) => " (the context names an interface that does not exist)",
                    Some(libc::EINVAL) => {
                        " (packet under 14 bytes or over a page, or a context the program type does not take)"
                    }
                    _ => "",
                };
                write!(f, "bpf(BPF_PROG_TEST_RUN) failed: {error}{hint}")
            }
        }
    }
}

impl std::error::Error for TestRunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TestRunError::Syscall { error } => Some(error),
            TestRunError::PacketTooLong { .. } => None,
        }
    }
}

/// Runs the program `prog` (an XDP or TC program fd, e.g. from aya's
/// `ProgramFd::as_fd`) on `run.data`, `run.repeat` times, in the kernel.
///
/// The contexts used here (XDP `ingress_ifindex`, skb `ifindex`) are taken by
/// kernels 5.12 and later, Debian 12's 6.1 included.
///
/// # Errors
///
/// [`TestRunError::PacketTooLong`] past `u32`, and [`TestRunError::Syscall`]
/// if the kernel refuses: `EPERM` without privileges, `EINVAL` for a packet
/// under [`MIN_PACKET_LEN`] bytes or over about a page, or a context the
/// program type does not take, `ENODEV` for an unknown ifindex in the
/// context, `ENOSPC` if the program grew the packet past 4 KiB more.
pub fn test_run(prog: BorrowedFd<'_>, run: &TestRun<'_>) -> Result<TestRunOutput, TestRunError> {
    let len = run.data.len();
    let len32 = u32::try_from(len).map_err(|_| TestRunError::PacketTooLong { len })?;
    // Room for a program that grows the packet (XDP tail, skb change_tail).
    let mut out = vec![0u8; len + 4096];

    let mut xdp_ctx = XdpMd::default();
    let mut skb_ctx = SkBuffHead::default();
    let (ctx_ptr, ctx_size) = match run.context {
        Context::None => (0u64, 0u32),
        Context::Xdp {
            ingress_ifindex,
            rx_queue_index,
        } => {
            // The kernel wants data_end to be the packet length.
            xdp_ctx.data_end = len32;
            xdp_ctx.ingress_ifindex = ingress_ifindex;
            xdp_ctx.rx_queue_index = rx_queue_index;
            (
                &mut xdp_ctx as *mut XdpMd as u64,
                std::mem::size_of::<XdpMd>() as u32,
            )
        }
        Context::Skb { ifindex, mark } => {
            skb_ctx.ifindex = ifindex;
            skb_ctx.mark = mark;
            (
                &mut skb_ctx as *mut SkBuffHead as u64,
                std::mem::size_of::<SkBuffHead>() as u32,
            )
        }
        Context::SkbForwarded {
            ifindex,
            ingress_ifindex,
        } => {
            skb_ctx.ifindex = ifindex;
            skb_ctx.ingress_ifindex = ingress_ifindex;
            (
                &mut skb_ctx as *mut SkBuffHead as u64,
                std::mem::size_of::<SkBuffHead>() as u32,
            )
        }
    };

    let mut attr = TestRunAttr {
        prog_fd: prog.as_raw_fd() as u32,
        data_size_in: len32,
        data_size_out: out.len() as u32,
        data_in: run.data.as_ptr() as u64,
        data_out: out.as_mut_ptr() as u64,
        repeat: run.repeat,
        ctx_size_in: ctx_size,
        ctx_in: ctx_ptr,
        ..TestRunAttr::default()
    };
    // SAFETY: attr is a fully initialised bpf_attr prefix of the size we
    // pass; the pointers in it name live buffers (data, out, the context)
    // of the sizes given, which outlive the call; the kernel writes only
    // into out (up to data_size_out) and into attr.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &mut attr as *mut TestRunAttr,
            std::mem::size_of::<TestRunAttr>(),
        )
    };
    if rc < 0 {
        return Err(TestRunError::Syscall {
            error: io::Error::last_os_error(),
        });
    }
    out.truncate((attr.data_size_out as usize).min(out.len()));
    Ok(TestRunOutput {
        retval: attr.retval,
        duration_ns: attr.duration,
        data_out: out,
    })
}
