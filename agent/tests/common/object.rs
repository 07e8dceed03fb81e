//! The real `netprobe.bpf.o`, loaded with aya for `BPF_PROG_TEST_RUN`, and
//! readers of its maps. Nothing is attached or pinned; aya closes the
//! programs and maps when `Probes` drops.

use std::os::fd::{AsFd, BorrowedFd};

use aya::maps::{Array, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf};
use aya::programs::{SchedClassifier, Xdp};
use aya::{Ebpf, EbpfLoader};
use netprobe::abi::detect::{self, AlertEvent};
use netprobe::abi::{
    self, Admission, FlowKey, FlowStats, Hook, IfaceConfig, PacketStats, StatsKey, TcDeviceKey,
};
use netprobe::detect::Global;
use netprobe::probes;
use netprobe::testrun::{test_run, Context, TestRun, TestRunOutput};

use super::Prog;

/// The loaded object. Dropping it closes every program and map.
pub struct Probes {
    pub ebpf: Ebpf,
}

#[derive(Default)]
pub struct LoadOptions {
    pub admit_rate: Option<u64>,
    pub admit_burst: Option<u64>,
    pub max_entries: Vec<(&'static str, u32)>,
    /// Probe globals to override, as the agent's flags would.
    pub globals: Vec<(&'static str, Global)>,
}

impl Probes {
    pub fn load() -> Probes {
        Probes::load_with(LoadOptions::default())
    }

    pub fn load_with(opts: LoadOptions) -> Probes {
        super::require_privileges("kernel tests (loading XDP/TC programs, BPF_PROG_TEST_RUN)");
        let mut loader = EbpfLoader::new();
        if let Some(rate) = &opts.admit_rate {
            loader.override_global(probes::GLOBAL_FLOW_ADMIT_RATE, rate, true);
        }
        if let Some(burst) = &opts.admit_burst {
            loader.override_global(probes::GLOBAL_FLOW_ADMIT_BURST, burst, true);
        }
        for (name, g) in &opts.globals {
            match g {
                Global::U32(v) => loader.override_global(name, v, true),
                Global::U64(v) => loader.override_global(name, v, true),
            };
        }
        for (name, n) in &opts.max_entries {
            loader.map_max_entries(name, *n);
        }
        let mut ebpf = loader
            .load(probes::netprobe_object())
            .unwrap_or_else(|e| panic!("loading netprobe.bpf.o (maps, relocations): {e:?}"));
        for prog in Prog::ALL.into_iter().chain([Prog::TcAfterXdp]) {
            let program = ebpf
                .program_mut(prog.name())
                .unwrap_or_else(|| panic!("netprobe.bpf.o has no program {}", prog.name()));
            let result = match prog {
                Prog::Xdp => <&mut Xdp>::try_from(program).expect("XDP program").load(),
                _ => <&mut SchedClassifier>::try_from(program)
                    .expect("classifier")
                    .load(),
            };
            if let Err(e) = result {
                panic!("the verifier rejected {}: {e:?}", prog.name());
            }
        }
        Probes { ebpf }
    }

    pub fn fd(&self, prog: Prog) -> BorrowedFd<'_> {
        self.ebpf
            .program(prog.name())
            .unwrap()
            .fd()
            .unwrap()
            .as_fd()
    }

    pub fn run(&self, prog: Prog, bytes: &[u8], ifindex: u32) -> TestRunOutput {
        let run = TestRun::new(bytes).context(prog.context(ifindex));
        test_run(self.fd(prog), &run)
            .unwrap_or_else(|e| panic!("{} on {} bytes: {e}", prog.name(), bytes.len()))
    }

    /// One run with an explicit context (e.g. a forwarded TC egress packet).
    pub fn run_ctx(&self, prog: Prog, bytes: &[u8], ctx: Context) -> TestRunOutput {
        let run = TestRun::new(bytes).context(ctx);
        test_run(self.fd(prog), &run)
            .unwrap_or_else(|e| panic!("{} on {} bytes: {e}", prog.name(), bytes.len()))
    }

    pub fn map(&self, name: &str) -> &Map {
        self.ebpf
            .map(name)
            .unwrap_or_else(|| panic!("netprobe.bpf.o has no map {name}"))
    }

    /// packet_stats for (ifindex, hook), summed over CPUs; zero if absent.
    pub fn stats(&self, ifindex: u32, hook: Hook) -> PacketStats {
        let m: PerCpuHashMap<&MapData, StatsKey, PacketStats> =
            PerCpuHashMap::try_from(self.map(probes::MAP_PACKET_STATS)).unwrap();
        let mut sum = PacketStats::default();
        match m.get(
            &StatsKey {
                ifindex,
                hook: hook as u32,
            },
            0,
        ) {
            Ok(per_cpu) => per_cpu.iter().for_each(|v| sum.add(v)),
            Err(MapError::KeyNotFound) => {}
            Err(e) => panic!("reading packet_stats: {e}"),
        }
        sum
    }

    pub fn tc_device(&self, ifindex: u32, direction: u32, stat_type: u32) -> u64 {
        let m: PerCpuHashMap<&MapData, TcDeviceKey, u64> =
            PerCpuHashMap::try_from(self.map(probes::MAP_TC_DEVICE_STATS)).unwrap();
        match m.get(
            &TcDeviceKey {
                ifindex,
                direction,
                stat_type,
            },
            0,
        ) {
            Ok(per_cpu) => per_cpu.iter().sum(),
            Err(MapError::KeyNotFound) => 0,
            Err(e) => panic!("reading tc_device_stats: {e}"),
        }
    }

    pub fn flow(&self, key: &FlowKey) -> Option<FlowStats> {
        let m: HashMap<&MapData, FlowKey, FlowStats> =
            HashMap::try_from(self.map(probes::MAP_FLOW_STATS)).unwrap();
        match m.get(key, 0) {
            Ok(v) => Some(v),
            Err(MapError::KeyNotFound) => None,
            Err(e) => panic!("reading flow_stats: {e}"),
        }
    }

    pub fn flow_count(&self) -> usize {
        let m: HashMap<&MapData, FlowKey, FlowStats> =
            HashMap::try_from(self.map(probes::MAP_FLOW_STATS)).unwrap();
        m.keys().count()
    }

    pub fn set_iface_flags(&mut self, ifindex: u32, flags: u32) {
        let map = self.ebpf.map_mut(probes::MAP_IFACE_CONFIG).unwrap();
        let mut m: HashMap<&mut MapData, u32, IfaceConfig> = HashMap::try_from(map).unwrap();
        m.insert(ifindex, IfaceConfig { flags, pad: 0 }, 0)
            .expect("writing iface_config");
    }

    pub fn events(&mut self) -> Vec<abi::Event> {
        let map = self.ebpf.map_mut(probes::MAP_EVENTS).unwrap();
        let mut ring = RingBuf::try_from(map).expect("events is a ring buffer");
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            out.push(abi::Event::from_bytes(&item).expect("event record too short"));
        }
        out
    }

    /// Drains the events ring and keeps the alert records.
    pub fn alerts(&mut self) -> Vec<AlertEvent> {
        let map = self.ebpf.map_mut(probes::MAP_EVENTS).unwrap();
        let mut ring = RingBuf::try_from(map).expect("events is a ring buffer");
        let mut out = Vec::new();
        while let Some(item) = ring.next() {
            let ev = abi::Event::from_bytes(&item).expect("event record too short");
            if ev.kind == detect::EVENT_ALERT {
                out.push(AlertEvent::from_bytes(&item).expect("alert record too short"));
            }
        }
        out
    }

    /// detect_stats summed over CPUs.
    pub fn detect_stats(&self) -> detect::DetectStats {
        let m: PerCpuArray<&MapData, detect::DetectStats> =
            PerCpuArray::try_from(self.map(probes::MAP_DETECT_STATS)).unwrap();
        let mut sum = detect::DetectStats::default();
        for v in m.get(&0, 0).expect("reading detect_stats").iter() {
            sum.add(v);
        }
        sum
    }

    /// Blocks `ip` (as the agent does after an alert), until forever.
    pub fn block(&mut self, ip: std::net::IpAddr) {
        let map = self.ebpf.map_mut(probes::MAP_BLOCKED_SOURCES).unwrap();
        let mut m: HashMap<&mut MapData, detect::LpmKey, detect::Block> =
            HashMap::try_from(map).unwrap();
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        let b = detect::Block {
            expires_ns: u64::MAX,
            hits: 0,
            kind: detect::SCAN_VERTICAL,
            pad: 0,
        };
        m.insert(detect::LpmKey::new(ip, prefix), b, 0)
            .expect("writing blocked_sources");
    }

    /// The owner hash of scan_state slot `idx` (its second word; the slot
    /// is probe-private, `struct np_scan_slot`).
    pub fn scan_slot_owner(&self, idx: u32) -> u64 {
        let m: Array<&MapData, [u64; 24]> =
            Array::try_from(self.map(probes::MAP_SCAN_STATE)).unwrap();
        m.get(&idx, 0).expect("reading scan_state")[1]
    }

    pub fn admission(&self, cpu: usize) -> Admission {
        let m: PerCpuArray<&MapData, Admission> =
            PerCpuArray::try_from(self.map(probes::MAP_ADMISSION)).unwrap();
        m.get(&0, 0).expect("reading admission_state")[cpu]
    }
}
