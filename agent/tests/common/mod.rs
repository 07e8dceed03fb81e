//! What the kernel-tier tests share: the privilege check that makes them
//! fail loudly (never pass silently) without root, and the three packet
//! programs with their test-run context and pass verdict.
//!
//! Every kernel-tier test carries `#[ignore = "kernel tier: ..."]`, so a
//! plain, unprivileged `cargo test` lists it as ignored with that reason
//! instead of failing; build/test.sh runs them with `--include-ignored`.
//! `build/test.sh --fast` runs `cargo test` without capabilities, so a
//! kernel test that lacks the attribute fails there.
#![allow(dead_code)] // each test binary uses its own subset

pub mod object;

use netprobe::abi::Hook;
use netprobe::packet;
use netprobe::probes;
use netprobe::testrun::{Context, MIN_PACKET_LEN};

pub const LO: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const TC_ACT_UNSPEC: u32 = -1i32 as u32;

/// Fails the test unless this process may load BPF programs: CAP_BPF (or
/// CAP_SYS_ADMIN) and CAP_NET_ADMIN. `what` says what needs them; the hint
/// names this test binary.
pub fn require_privileges(what: &str) {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let status = std::fs::read_to_string("/proc/self/status")
        .expect("kernel tests: cannot read /proc/self/status to check capabilities");
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    // cargo names test binaries NAME-HASH.
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("NAME");
    let test = stem.rsplit_once('-').map_or(stem, |(name, _)| name);
    assert!(
        (has(CAP_BPF) || has(CAP_SYS_ADMIN)) && (has(CAP_NET_ADMIN) || has(CAP_SYS_ADMIN)),
        "{what} needs CAP_BPF (or CAP_SYS_ADMIN) and CAP_NET_ADMIN; this process has \
         CapEff={cap_eff:#x}. Run as root: sudo -E cargo test --test {test}"
    );
}

/// The packet programs of netprobe.bpf.o: the three that parse (`ALL`),
/// and TC ingress behind XDP, which only counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prog {
    Xdp,
    TcIngress,
    TcEgress,
    TcAfterXdp,
}

impl Prog {
    pub const ALL: [Prog; 3] = [Prog::Xdp, Prog::TcIngress, Prog::TcEgress];

    pub fn name(self) -> &'static str {
        match self {
            Prog::Xdp => probes::PROG_XDP,
            Prog::TcIngress => probes::PROG_TC_INGRESS,
            Prog::TcEgress => probes::PROG_TC_EGRESS,
            Prog::TcAfterXdp => probes::PROG_TC_AFTER_XDP,
        }
    }

    pub fn hook(self) -> Hook {
        match self {
            Prog::Xdp => Hook::Xdp,
            Prog::TcIngress | Prog::TcAfterXdp => Hook::TcIngress,
            Prog::TcEgress => Hook::TcEgress,
        }
    }

    /// Test-run context naming `ifindex` as the receiving device.
    pub fn context(self, ifindex: u32) -> Context {
        match self {
            Prog::Xdp => Context::Xdp {
                ingress_ifindex: ifindex,
                rx_queue_index: 0,
            },
            _ => Context::Skb { ifindex, mark: 0 },
        }
    }

    /// tc_device_stats direction of a TC program; `None` for XDP.
    pub fn tc_direction(self) -> Option<u32> {
        match self {
            Prog::Xdp => None,
            Prog::TcIngress | Prog::TcAfterXdp => Some(netprobe::abi::DIR_INGRESS),
            Prog::TcEgress => Some(netprobe::abi::DIR_EGRESS),
        }
    }

    /// Whether the program counts sent packets (flow `tx`).
    pub fn is_tx(self) -> bool {
        self == Prog::TcEgress
    }

    /// The verdict that lets a packet go on.
    pub fn pass(self) -> u32 {
        match self {
            Prog::Xdp => XDP_PASS,
            _ => TC_ACT_UNSPEC,
        }
    }

    /// Whether the kernel may refuse to test-run this frame: under 14
    /// bytes always; and for skb programs on 6.18 (6.1 runs them) an
    /// untagged IPv4 frame shorter than 14 + 20 bytes or IPv6 shorter than
    /// 14 + 40. A VLAN tag hides the L3 from that check, so those reasons
    /// still run on TC.
    pub fn kernel_may_refuse(self, bytes: &[u8]) -> bool {
        if bytes.len() < MIN_PACKET_LEN {
            return true;
        }
        if self == Prog::Xdp {
            return false;
        }
        match u16::from_be_bytes([bytes[12], bytes[13]]) {
            packet::ETH_P_IP => bytes.len() < 14 + 20,
            packet::ETH_P_IPV6 => bytes.len() < 14 + 40,
            _ => false,
        }
    }
}

/// Pins this thread to the CPU it runs on, so per-CPU state (the admission
/// bucket) is the one its test runs see; returns the CPU.
pub fn pin_to_current_cpu() -> usize {
    // SAFETY: plain libc calls on this thread's own affinity.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu failed");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0
        );
        cpu as usize
    }
}
