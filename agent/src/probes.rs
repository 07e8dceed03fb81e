//! The probe objects, embedded at build time so a plain `cargo build` needs
//! no clang: `build/probes.sh` compiles `probes/*.bpf.c` into the committed
//! `probes/*.bpf.o` that these constants include.

/// Aligns included bytes: the ELF parser reads headers in place.
#[repr(C, align(8))]
struct Aligned<B: ?Sized>(B);

macro_rules! include_object {
    ($name:literal) => {{
        static OBJ: &Aligned<[u8]> =
            &Aligned(*include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../probes/", $name)));
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

/// Program names in the object (the kernel keeps the first 15 bytes).
pub const PROG_XDP: &str = "netprobe_xdp";
pub const PROG_TC_INGRESS: &str = "netprobe_tc_ingress";
pub const PROG_TC_EGRESS: &str = "netprobe_tc_egress";

/// Map names in the object.
pub const MAP_PACKET_STATS: &str = "packet_stats";
pub const MAP_FLOW_STATS: &str = "flow_stats";
pub const MAP_TC_DEVICE_STATS: &str = "tc_device_stats";
pub const MAP_IFACE_CONFIG: &str = "iface_config";
pub const MAP_ADMISSION: &str = "admission_state";
pub const MAP_EVENTS: &str = "events";

/// `const volatile` globals the loader sets before load.
pub const GLOBAL_FLOW_ADMIT_RATE: &str = "cfg_flow_admit_rate";
pub const GLOBAL_FLOW_ADMIT_BURST: &str = "cfg_flow_admit_burst";
