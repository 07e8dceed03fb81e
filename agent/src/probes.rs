//! The probe objects, embedded at build time so a plain `cargo build` needs
//! no clang: `build/probes.sh` compiles `probes/*.bpf.c` into the committed
//! `probes/*.bpf.o` that these constants include.

/// Aligns included bytes: the ELF parser reads headers in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

macro_rules! include_object {
    ($name:literal) => {{
        static OBJ: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../probes/",
            $name
        )));
        &OBJ.0
    }};
}

/// XDP, TC ingress and TC egress probes (`probes/netprobe.bpf.c`).
pub fn netprobe_object() -> &'static [u8] {
    include_object!("netprobe.bpf.o")
}

/// Empty XDP and TC programs (`probes/bench_empty.bpf.c`): the benchmark's
/// baseline, measured in the same run.
pub fn bench_empty_object() -> &'static [u8] {
    include_object!("bench_empty.bpf.o")
}

/// The socket layer (`probes/socket.bpf.c`): BTF tracepoint programs and a
/// TCP iterator, relocated with CO-RE against the kernel's BTF at load.
pub fn socket_object() -> &'static [u8] {
    include_object!("socket.bpf.o")
}

/// Program names in the object (the kernel keeps the first 15 bytes).
pub const PROG_XDP: &str = "netprobe_xdp";
pub const PROG_TC_INGRESS: &str = "netprobe_tc_ingress";
pub const PROG_TC_EGRESS: &str = "netprobe_tc_egress";
/// TC ingress where XDP is attached: totals only.
pub const PROG_TC_AFTER_XDP: &str = "netprobe_tc_after_xdp";
/// TC programs of L3 devices, whose packets start at the IP header.
pub const PROG_L3_INGRESS: &str = "netprobe_l3_ingress";
pub const PROG_L3_EGRESS: &str = "netprobe_l3_egress";

/// Map names in the object.
pub const MAP_PACKET_STATS: &str = "packet_stats";
pub const MAP_FLOW_STATS: &str = "flow_stats";
pub const MAP_TC_DEVICE_STATS: &str = "tc_device_stats";
pub const MAP_IFACE_CONFIG: &str = "iface_config";
pub const MAP_ADMISSION: &str = "admission_state";
pub const MAP_EVENTS: &str = "events";
pub const MAP_FLOW_SEEN: &str = "flow_seen";

/// `const volatile` globals the loader sets before load.
pub const GLOBAL_FLOW_ADMIT_RATE: &str = "cfg_flow_admit_rate";
pub const GLOBAL_FLOW_ADMIT_BURST: &str = "cfg_flow_admit_burst";
pub const GLOBAL_SEEN_MASK: &str = "cfg_seen_mask";

/// Entries of `flow_seen` (8 one-byte stamps each) for a flow table of
/// `max_flows`: four stamps per flow, a power of two. Four keeps the filter
/// mostly empty while a flood churns the table at the admission rate, and
/// the default (65536 flows: 256 KiB) inside a core's L2 cache.
pub fn flow_seen_entries(max_flows: u32) -> u32 {
    (max_flows / 2).max(8).next_power_of_two()
}

/// Programs of the socket object, with the tracepoint each attaches to.
pub const PROG_SOCK_STATE: &str = "netprobe_sock_state";
pub const PROG_SOCK_RETRANS: &str = "netprobe_sock_retrans";
pub const PROG_SOCK_SYNACK: &str = "netprobe_sock_synack";
pub const PROG_SOCK_RST_OUT: &str = "netprobe_sock_rst_out";
pub const PROG_SOCK_RST_IN: &str = "netprobe_sock_rst_in";
pub const PROG_SOCK_ITER: &str = "netprobe_sock_iter";
pub const PROG_SOCK_LEARN: &str = "netprobe_sock_learn";
/// The accept probes: fexit on a kernel function, or else the raw
/// tracepoint of every system call's exit.
pub const PROG_SOCK_ACCEPT: &str = "netprobe_sock_accept";
pub const SOCK_ACCEPT_FUNCTION: &str = "inet_csk_accept";
pub const PROG_SOCK_ACCEPT_SYS: &str = "netprobe_sock_accept_sys";
pub const SOCK_ACCEPT_TRACEPOINT: &str = "sys_exit";
pub const SOCK_TRACEPOINTS: [(&str, &str); 5] = [
    (PROG_SOCK_STATE, "inet_sock_set_state"),
    (PROG_SOCK_RETRANS, "tcp_retransmit_skb"),
    (PROG_SOCK_SYNACK, "tcp_retransmit_synack"),
    (PROG_SOCK_RST_OUT, "tcp_send_reset"),
    (PROG_SOCK_RST_IN, "tcp_receive_reset"),
];

/// Maps of the socket object.
pub const MAP_SOCK_STATS: &str = "sock_stats";
pub const MAP_SOCK_CONNS: &str = "sock_conns";
pub const MAP_SOCK_EVENTS: &str = "sock_events";
pub const MAP_SOCK_SEED: &str = "sock_seed";

/// Network namespace the socket probes count (0: all).
pub const GLOBAL_SOCK_NETNS: &str = "cfg_netns";
/// 1: the probes keep owners on each socket (socket storage, 5.11+).
pub const GLOBAL_SOCK_STORAGE: &str = "cfg_storage";
/// accept() and accept4() system call numbers of the agent's architecture.
pub const GLOBAL_SOCK_NR_ACCEPT: &str = "cfg_nr_accept";
pub const GLOBAL_SOCK_NR_ACCEPT4: &str = "cfg_nr_accept4";
/// Handed-over owners of accepted connections (sized --max-connections).
pub const MAP_SOCK_ACCEPTED: &str = "sock_accepted";

/// Detection and mitigation maps (`probes/include/detect.h`).
pub const MAP_SCAN_STATE: &str = "scan_state";
pub const MAP_FLOOD_STATE: &str = "flood_state";
pub const MAP_IFACE_RATE: &str = "iface_rate";
pub const MAP_DETECT_STATS: &str = "detect_stats";
pub const MAP_BLOCKLIST: &str = "blocklist";
pub const MAP_ALLOWLIST: &str = "allowlist";
pub const MAP_BLOCKED_SOURCES: &str = "blocked_sources";
pub const MAP_ALLOWED_PORTS: &str = "allowed_ports";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_seen_holds_four_stamps_per_flow() {
        assert_eq!(
            flow_seen_entries(65536) * 8,
            65536 * 4,
            "256 KiB by default"
        );
        assert_eq!(
            flow_seen_entries(100_000),
            65536,
            "rounded up to a power of two"
        );
        assert_eq!(flow_seen_entries(16), 8, "never below one 64-byte line");
        assert!(flow_seen_entries(16 << 20).is_power_of_two());
    }
}
