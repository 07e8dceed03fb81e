//! Loads the probe object, attaches its programs to interfaces, and reads
//! its maps. The one owner of every kernel object the agent creates:
//! dropping the manager detaches and unloads everything.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

mod rtnl;

use aya::maps::{HashMap, MapData, PerCpuHashMap, RingBuf};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{NlOptions, SchedClassifierLink, TcAttachOptions, TcHandle};
use aya::programs::xdp::XdpLink;
use aya::programs::{tc, Link, MultiProgLink, SchedClassifier, TcAttachType, Xdp};
use aya::{Ebpf, EbpfLoader};
use log::{info, warn};

use crate::abi::{
    Counter, FlowKey, FlowStats, Hook, IfaceConfig, PacketStats, StatsKey, TcDeviceKey,
    IFACE_TX_SEGMENTS,
};
use crate::kernel::KernelVersion;
use crate::pins::held_link::{self, HeldLink};
use crate::pins::{MapCapacities, PinDir};
use crate::probes;

/// The clsact priority and handle NetProbe's TC filters own (kernels
/// before 6.6, without TCX). They are found, replaced and removed by these
/// alone, never by program name: kernels without BPF_EVENTS (OpenWrt's
/// usual build) load every program unnamed. 0x4e50 is "NP"; another
/// filter at this priority is refused, not shared.
pub const TC_PRIORITY: u16 = 0x4e50;
pub const TC_HANDLE: u32 = 0x4e50;

/// Set (to anything) only by tests: TC probes attach as clsact filters
/// through netlink even where the kernel has TCX, so the pre-6.6 path is
/// tested on the CI host's newer kernel.
pub const FORCE_CLSACT_ENV: &str = "NETPROBE_TEST_FORCE_CLSACT";

/// How XDP is attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// Native where the driver has it and it does not slow the device
    /// (not veth); TC alone elsewhere.
    Auto,
    Native,
    Generic,
    Off,
}

impl std::str::FromStr for XdpMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(XdpMode::Auto),
            "native" | "driver" => Ok(XdpMode::Native),
            "generic" | "skb" => Ok(XdpMode::Generic),
            "off" => Ok(XdpMode::Off),
            _ => Err(format!(
                "unknown XDP mode '{s}': expected auto, native, generic or off"
            )),
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdpMode::Auto => "auto",
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Off => "off",
        })
    }
}

/// Sizes and tunables fixed when the probes are loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    pub max_flows: u32,
    pub max_interfaces: u32,
    pub flow_admit_rate: u64,
    pub flow_admit_burst: u64,
    pub ringbuf_size: u32,
    pub xdp_mode: XdpMode,
    /// bpffs directory for maps and links that outlive the agent; `None`
    /// keeps everything in the process (gone when it exits).
    pub pin_path: Option<PathBuf>,
    /// Detection thresholds, lists and mitigation (`crate::detect`).
    pub detect: crate::detect::DetectConfig,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            max_flows: 65536,
            max_interfaces: 64,
            flow_admit_rate: 20_000,
            flow_admit_burst: 5_000,
            ringbuf_size: 256 * 1024,
            xdp_mode: XdpMode::Auto,
            pin_path: None,
            detect: crate::detect::DetectConfig::default(),
        }
    }
}

impl ProbeConfig {
    /// Entries of each kernel map, as created.
    pub fn capacities(&self) -> MapCapacities {
        MapCapacities {
            packet_stats: self.max_interfaces * Hook::ALL.len() as u32,
            tc_device_stats: self.max_interfaces * 4,
            iface_config: self.max_interfaces,
            flow_stats: self.max_flows,
        }
    }
}

#[derive(Debug)]
pub enum Error {
    /// The kernel refused the object: verifier, missing feature, or privileges.
    Load(aya::EbpfError),
    MissingProgram(&'static str),
    MissingMap(&'static str),
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    Program {
        program: &'static str,
        source: aya::programs::ProgramError,
    },
    Attach {
        interface: String,
        hook: Hook,
        source: aya::programs::ProgramError,
    },
    AlreadyAttached(String),
    /// The pin directory cannot be used.
    Pins(String),
    /// A detection map or list could not be set up (message names it).
    Detect(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Load(e) => write!(
                f,
                "loading the probes failed: {e:#} (needs root or CAP_BPF+CAP_NET_ADMIN+CAP_PERFMON, and Linux 5.8 or later)"
            ),
            Error::MissingProgram(p) => write!(f, "probe object has no program {p}"),
            Error::MissingMap(m) => write!(f, "probe object has no map {m}"),
            Error::Map { map, source } => write!(f, "map {map}: {source}"),
            Error::Program { program, source } => write!(f, "program {program}: {source}"),
            Error::Attach { interface, hook, source } => {
                write!(f, "attaching {} to {interface} failed: {source}", hook.name())?;
                if let aya::programs::ProgramError::SyscallError(e) = source {
                    write!(f, " ({})", e.io_error)?;
                }
                Ok(())
            }
            Error::AlreadyAttached(i) => write!(f, "{i} is already attached"),
            Error::Pins(m) | Error::Detect(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// What one interface received and sent, per the probes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkStats {
    pub interface: String,
    pub ifindex: u32,
    /// The hook whose counters are `rx`: XDP where attached, else TC ingress.
    pub rx_source: Hook,
    /// `rx` and `tx` follow the kernel's convention for the device
    /// ([`LinkHeader`]); `per_hook` holds what the probes saw.
    pub rx: Counter,
    pub tx: Counter,
    pub per_hook: Vec<(Hook, PacketStats)>,
}

/// How one hook is attached on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookAttachment {
    pub hook: Hook,
    /// `native` or `generic` for XDP; `tcx` or `clsact` for TC.
    pub mode: &'static str,
    /// `bpf_link` or `netlink`.
    pub method: &'static str,
    pub program_id: u32,
    /// Why the last check ([`Manager::check_hooks`]) found this probe no
    /// longer attached; `None` while it is.
    pub missing: Option<String>,
}

/// A hook's attachment as the manager holds it.
#[derive(Debug)]
enum HookLink {
    /// Owned by the agent: detached when dropped.
    Xdp(XdpLink),
    Tc(SchedClassifierLink),
    /// Pinned on bpffs (the pin's file name in `links`): lives until the
    /// pin is removed, across restarts. The agent holds it open too, so
    /// while it runs a removed pin does not detach it (and is put back).
    Pinned {
        name: String,
        held: HeldLink,
    },
}

/// What is attached on one interface.
#[derive(Debug)]
pub struct Attached {
    pub ifindex: u32,
    pub hooks: Vec<HookAttachment>,
    /// Where the kernel's own byte counters of this device leave out the
    /// Ethernet header (see [`LinkHeader`]).
    pub link_header: LinkHeader,
    /// Its iface_config flags (`IFACE_*`), as written to the map.
    iface_flags: u32,
    links: Vec<HookLink>,
}

/// Devices whose kernel byte counters leave out the 14-byte Ethernet
/// header that the probes see, per direction: the interface counters the
/// agent exports follow the kernel's (the per-hook counters keep what the
/// probes saw). Measured by build/e2e-ifaces.sh and build/e2e.sh: a
/// bridge counts received frames after the header is pulled, VXLAN both
/// ways, and a veth under native XDP received frames (its NAPI path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkHeader {
    pub rx_excluded: bool,
    pub tx_excluded: bool,
}

/// The Ethernet header length the kernel leaves out where [`LinkHeader`] says.
pub const ETH_HEADER_BYTES: u64 = 14;

impl LinkHeader {
    fn of(driver: Option<&str>, native_xdp: bool) -> LinkHeader {
        match driver {
            Some("bridge") => LinkHeader {
                rx_excluded: true,
                tx_excluded: false,
            },
            Some("vxlan") => LinkHeader {
                rx_excluded: true,
                tx_excluded: true,
            },
            Some("veth") if native_xdp => LinkHeader {
                rx_excluded: true,
                tx_excluded: false,
            },
            _ => LinkHeader::default(),
        }
    }

    /// `c` as the kernel's counter of that direction shows it.
    fn apply(excluded: bool, c: Counter) -> Counter {
        if !excluded {
            return c;
        }
        Counter {
            packets: c.packets,
            bytes: c.bytes.saturating_sub(ETH_HEADER_BYTES * c.packets),
        }
    }
}

/// Loaded probes and what they are attached to.
pub struct Manager {
    bpf: Ebpf,
    packet_stats: PerCpuHashMap<MapData, StatsKey, PacketStats>,
    flow_stats: HashMap<MapData, FlowKey, FlowStats>,
    tc_device_stats: PerCpuHashMap<MapData, TcDeviceKey, u64>,
    iface_config: HashMap<MapData, u32, IfaceConfig>,
    events: Option<RingBuf<MapData>>,
    detect_maps: Option<crate::detect::kernel::DetectMaps>,
    attached: BTreeMap<String, Attached>,
    config: ProbeConfig,
    kernel: KernelVersion,
    pins: Option<PinDir>,
    keep_on_exit: bool,
}

impl Manager {
    /// Loads the embedded probes with `config` and verifies every program.
    ///
    /// # Errors
    /// [`Error::Load`] when the kernel refuses a map or program.
    pub fn load(config: ProbeConfig) -> Result<Manager, Error> {
        raise_memlock_limit();
        let kernel = KernelVersion::current();
        let caps = config.capacities();
        let pins = match &config.pin_path {
            Some(p) => Some(PinDir::open(p, &caps).map_err(Error::Pins)?),
            None => None,
        };
        let mut loader = EbpfLoader::new();
        if let Some(pins) = &pins {
            for (name, ..) in crate::pins::pinned_maps(&caps) {
                loader.map_pin_path(name, pins.map_path(name));
            }
        }
        let detect_globals = config.detect.globals();
        for (name, g) in &detect_globals {
            match g {
                crate::detect::Global::U32(v) => loader.override_global(name, v, true),
                crate::detect::Global::U64(v) => loader.override_global(name, v, true),
            };
        }
        let d = &config.detect;
        let seen = probes::flow_seen_entries(caps.flow_stats);
        let mut bpf = loader
            .map_max_entries(probes::MAP_FLOW_SEEN, seen)
            .override_global(probes::GLOBAL_SEEN_MASK, &(seen - 1), true)
            .map_max_entries(probes::MAP_SCAN_STATE, d.scan_slots)
            .map_max_entries(probes::MAP_FLOOD_STATE, d.flood_slots)
            .map_max_entries(probes::MAP_BLOCKED_SOURCES, d.max_blocked)
            .map_max_entries(probes::MAP_BLOCKLIST, d.max_list_entries)
            .map_max_entries(probes::MAP_ALLOWLIST, d.max_list_entries)
            .map_max_entries(probes::MAP_PACKET_STATS, caps.packet_stats)
            .map_max_entries(probes::MAP_TC_DEVICE_STATS, caps.tc_device_stats)
            .map_max_entries(probes::MAP_IFACE_CONFIG, caps.iface_config)
            .map_max_entries(probes::MAP_FLOW_STATS, caps.flow_stats)
            .map_max_entries(probes::MAP_EVENTS, config.ringbuf_size)
            .override_global(
                probes::GLOBAL_FLOW_ADMIT_RATE,
                &config.flow_admit_rate,
                true,
            )
            .override_global(
                probes::GLOBAL_FLOW_ADMIT_BURST,
                &config.flow_admit_burst,
                true,
            )
            .load(probes::netprobe_object())
            .map_err(Error::Load)?;

        let xdp: &mut Xdp = program(&mut bpf, probes::PROG_XDP)?;
        xdp.load().map_err(|source| Error::Program {
            program: probes::PROG_XDP,
            source,
        })?;
        for name in [
            probes::PROG_TC_INGRESS,
            probes::PROG_TC_EGRESS,
            probes::PROG_L3_INGRESS,
            probes::PROG_L3_EGRESS,
            probes::PROG_TC_AFTER_XDP,
        ] {
            let p: &mut SchedClassifier = program(&mut bpf, name)?;
            p.load().map_err(|source| Error::Program {
                program: name,
                source,
            })?;
        }

        let packet_stats = typed_map(&mut bpf, probes::MAP_PACKET_STATS)?;
        let flow_stats = typed_map(&mut bpf, probes::MAP_FLOW_STATS)?;
        let tc_device_stats = typed_map(&mut bpf, probes::MAP_TC_DEVICE_STATS)?;
        let iface_config = typed_map(&mut bpf, probes::MAP_IFACE_CONFIG)?;
        let events = Some(typed_map(&mut bpf, probes::MAP_EVENTS)?);
        let mut detect_maps =
            crate::detect::kernel::DetectMaps::take(&mut bpf).map_err(Error::Detect)?;
        detect_maps
            .load_config(&config.detect)
            .map_err(Error::Detect)?;

        if !kernel.at_least(5, 9) {
            info!("kernel {kernel} has no bpf_link for XDP (5.9+): XDP attaches through netlink");
        }
        if !kernel.at_least(6, 6) {
            info!("kernel {kernel} has no TCX (6.6+): TC probes attach as clsact filters through netlink");
        }
        Ok(Manager {
            bpf,
            packet_stats,
            flow_stats,
            tc_device_stats,
            iface_config,
            events,
            detect_maps: Some(detect_maps),
            attached: BTreeMap::new(),
            config,
            kernel,
            pins,
            keep_on_exit: false,
        })
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// The ring buffer the probes send events through; taken once, by the
    /// task that drains it.
    pub fn take_events(&mut self) -> Option<RingBuf<MapData>> {
        self.events.take()
    }

    /// The detection maps (lists, blocks, counters); taken once, by the
    /// collector's alert engine.
    pub fn take_detect_maps(&mut self) -> Option<crate::detect::kernel::DetectMaps> {
        self.detect_maps.take()
    }

    /// Attaches XDP (per `xdp_mode`) and both TC hooks to `interface`.
    /// A hook that fails is detached again with the rest, so an interface is
    /// either fully watched or not at all; except XDP in `auto` mode, which
    /// is skipped with a warning when the device refuses both modes (another
    /// XDP program may own it), leaving TC ingress to count received packets.
    ///
    /// # Errors
    /// [`Error::Attach`] naming the interface and hook.
    pub fn attach(&mut self, interface: &str, ifindex: u32) -> Result<&Attached, Error> {
        if self.attached.contains_key(interface) {
            return Err(Error::AlreadyAttached(interface.to_string()));
        }
        let mut done = Attached {
            ifindex,
            hooks: Vec::new(),
            link_header: LinkHeader::default(),
            iface_flags: 0,
            links: Vec::new(),
        };
        match self.attach_hooks(interface, ifindex, &mut done) {
            Ok(()) => {
                let native_xdp = done
                    .hooks
                    .iter()
                    .any(|h| h.hook == Hook::Xdp && h.mode == "native");
                done.link_header =
                    LinkHeader::of(crate::netif::driver(interface).as_deref(), native_xdp);
                let modes: Vec<String> = done
                    .hooks
                    .iter()
                    .map(|h| format!("{}={}", h.hook.name(), h.mode))
                    .collect();
                info!(
                    "watching {interface} (ifindex {ifindex}): {}",
                    modes.join(" ")
                );
                Ok(self.attached.entry(interface.to_string()).or_insert(done))
            }
            Err(e) => {
                self.detach_links(interface, done);
                Err(e)
            }
        }
    }

    fn attach_hooks(
        &mut self,
        interface: &str,
        ifindex: u32,
        done: &mut Attached,
    ) -> Result<(), Error> {
        // An L3 device's packets start at the IP header: TC programs of
        // their own, and no XDP (generic XDP would turn GRO off, and the
        // TC hooks see every packet).
        let l3 = crate::netif::by_name(interface).is_ok_and(|i| i.is_l3());
        done.iface_flags = tx_segments_flag(interface);
        let xdp_mode = if l3 {
            XdpMode::Off
        } else {
            self.config.xdp_mode
        };
        if l3 && self.config.xdp_mode != XdpMode::Off {
            info!("{interface} is an L3 device (no link-layer header): counting with TC, no XDP");
        }
        // auto never takes generic XDP: the kernel skips GRO on a device
        // with a generic XDP program, which would make the device slower
        // than TC alone does (issue 20). Where native XDP is missing or
        // hurts, TC ingress counts received packets.
        let xdp_mode = if xdp_mode == XdpMode::Auto && native_xdp_hurts(interface) {
            XdpMode::Off
        } else {
            xdp_mode
        };
        if xdp_mode != XdpMode::Off {
            let tries: &[(aya::programs::XdpMode, &'static str)] = match xdp_mode {
                XdpMode::Auto | XdpMode::Native => &[(aya::programs::XdpMode::Driver, "native")],
                _ => &[(aya::programs::XdpMode::Skb, "generic")],
            };
            let mut last_err = None;
            for &(mode, name) in tries {
                match self.attach_xdp(ifindex, mode, name) {
                    Ok((link, method, program_id)) => {
                        done.links.push(link);
                        done.hooks.push(HookAttachment {
                            hook: Hook::Xdp,
                            mode: name,
                            method,
                            program_id,
                            missing: None,
                        });
                        last_err = None;
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
            }
            match (last_err, xdp_mode) {
                (None, _) => {}
                (Some(e), XdpMode::Auto) => info!(
                    "no native XDP on {interface} ({}); counting its received packets with TC ingress, \
                     which keeps GRO (--xdp-mode generic forces generic XDP)",
                    Error::Attach { interface: interface.into(), hook: Hook::Xdp, source: e }
                ),
                (Some(source), _) => {
                    return Err(Error::Attach { interface: interface.into(), hook: Hook::Xdp, source })
                }
            }
        }
        // Before TC attaches: its programs read these flags.
        self.set_iface_flags(ifindex, done.iface_flags)?;

        let tcx = self.tcx();
        // Where XDP counts and checks received packets, TC ingress only
        // counts what it sees (netprobe_tc_after_xdp).
        let xdp = done.hooks.iter().any(|h| h.hook == Hook::Xdp);
        for (hook, ethernet, l3_name, at) in TC_HOOKS {
            let name = match (hook, l3, xdp) {
                (Hook::TcIngress, false, true) => probes::PROG_TC_AFTER_XDP,
                (_, true, _) => l3_name,
                _ => ethernet,
            };
            let attached = if tcx {
                self.attach_tc(interface, ifindex, hook, name, at)
            } else {
                self.attach_clsact(interface, ifindex, name, at)
            };
            let (link, program_id) = attached.map_err(|source| Error::Attach {
                interface: interface.into(),
                hook,
                source,
            })?;
            done.links.push(link);
            done.hooks.push(HookAttachment {
                hook,
                mode: if tcx { "tcx" } else { "clsact" },
                method: if tcx { "bpf_link" } else { "netlink" },
                program_id,
                missing: None,
            });
        }
        Ok(())
    }

    /// Whether TC probes attach as TCX links (6.6+) rather than clsact
    /// filters; tests can force the latter ([`FORCE_CLSACT_ENV`]).
    fn tcx(&self) -> bool {
        self.kernel.at_least(6, 6) && std::env::var_os(FORCE_CLSACT_ENV).is_none()
    }

    /// Attaches XDP in `mode`, taking over a pinned link of an earlier
    /// agent when there is one (atomic program replacement: no packet is
    /// missed or counted twice).
    fn attach_xdp(
        &mut self,
        ifindex: u32,
        mode: aya::programs::XdpMode,
        mode_name: &'static str,
    ) -> Result<(HookLink, &'static str, u32), aya::programs::ProgramError> {
        let pin = self
            .pins
            .as_ref()
            .map(|p| p.link_path(ifindex, Hook::Xdp.name(), mode_name));
        if let Some(pins) = &self.pins {
            // A pin for this hook in the other mode is stale (mode changed).
            for other in ["native", "generic"].iter().filter(|m| **m != mode_name) {
                let name = PinDir::link_name(ifindex, Hook::Xdp.name(), other);
                if let Err(e) = pins.unpin_link(&name) {
                    warn!("removing the stale pin {name}: {e}");
                }
            }
        }
        let xdp: &mut Xdp =
            program(&mut self.bpf, probes::PROG_XDP).map_err(|_| missing_program())?;
        let program_id = xdp.info()?.id();
        if let Some(path) = pin.as_ref().filter(|p| p.exists()) {
            let taken = PinnedLink::from_pin(path)
                .map_err(|e| e.to_string())
                .and_then(|p| XdpLink::try_from(FdLink::from(p)).map_err(|e| e.to_string()))
                .and_then(|l| xdp.attach_to_link(l).map_err(|e| e.to_string()));
            match taken {
                Ok(id) => {
                    drop(xdp.take_link(id)?); // the pin keeps it
                    return Ok((held(path)?, "bpf_link", program_id));
                }
                Err(e) => {
                    info!(
                        "pinned XDP link {} is unusable ({e}); attaching anew",
                        path.display()
                    );
                    self.unpin_stale(path);
                }
            }
        }
        let xdp: &mut Xdp =
            program(&mut self.bpf, probes::PROG_XDP).map_err(|_| missing_program())?;
        let id = xdp.attach_to_if_index(ifindex, mode)?;
        let link = xdp.take_link(id)?;
        match pin {
            Some(path) => match FdLink::try_from(link) {
                Ok(fd) => {
                    let pinned = fd.pin(&path).map_err(|e| pin_error(&path, e))?;
                    let h = held(&path);
                    drop(pinned); // the pin (and now our own descriptor) keep it
                    Ok((h?, "bpf_link", program_id))
                }
                // A netlink attachment (before 5.9) cannot be pinned; it
                // stays attached to the device by itself.
                Err(_) => {
                    let id = xdp.attach_to_if_index(ifindex, mode)?;
                    Ok((HookLink::Xdp(xdp.take_link(id)?), "netlink", program_id))
                }
            },
            None => {
                let method = if self.kernel.at_least(5, 9) {
                    "bpf_link"
                } else {
                    "netlink"
                };
                Ok((HookLink::Xdp(link), method, program_id))
            }
        }
    }

    /// Attaches a TC program as a TCX link, taking over a pinned one when
    /// there is one.
    fn attach_tc(
        &mut self,
        interface: &str,
        ifindex: u32,
        hook: Hook,
        name: &'static str,
        at: TcAttachType,
    ) -> Result<(HookLink, u32), aya::programs::ProgramError> {
        let pin = self
            .pins
            .as_ref()
            .map(|p| p.link_path(ifindex, hook.name(), "tcx"));
        let p: &mut SchedClassifier =
            program(&mut self.bpf, name).map_err(|_| missing_program())?;
        let program_id = p.info()?.id();
        if let Some(path) = pin.as_ref().filter(|p| p.exists()) {
            let taken = PinnedLink::from_pin(path)
                .map_err(|e| e.to_string())
                .and_then(|l| {
                    SchedClassifierLink::try_from(FdLink::from(l)).map_err(|e| e.to_string())
                })
                .and_then(|l| p.attach_to_link(l).map_err(|e| e.to_string()));
            match taken {
                Ok(id) => {
                    drop(p.take_link(id)?);
                    return Ok((held(path)?, program_id));
                }
                Err(e) => {
                    info!(
                        "pinned TC link {} is unusable ({e}); attaching anew",
                        path.display()
                    );
                    self.unpin_stale(path);
                }
            }
        }
        let p: &mut SchedClassifier =
            program(&mut self.bpf, name).map_err(|_| missing_program())?;
        let id = p.attach_with_options(
            interface,
            at,
            TcAttachOptions::TcxOrder(aya::programs::LinkOrder::default()),
        )?;
        let link = p.take_link(id)?;
        match pin {
            Some(path) => {
                let fd = FdLink::try_from(link)
                    .map_err(|e| aya::programs::ProgramError::IOError(std::io::Error::other(e)))?;
                let pinned = fd.pin(&path).map_err(|e| pin_error(&path, e))?;
                let h = held(&path);
                drop(pinned);
                Ok((h?, program_id))
            }
            None => Ok((HookLink::Tc(link), program_id)),
        }
    }

    /// Attaches a TC program as the cls_bpf filter at [`TC_PRIORITY`] and
    /// [`TC_HANDLE`] on the clsact hook (kernels before 6.6). An earlier
    /// agent's filter there is replaced in place (netlink change: no packet
    /// missed or counted twice); filters of older NetProbe versions, found
    /// by name at other priorities, are removed; anything else holding the
    /// priority is refused with an error naming it.
    fn attach_clsact(
        &mut self,
        interface: &str,
        ifindex: u32,
        name: &'static str,
        at: TcAttachType,
    ) -> Result<(HookLink, u32), aya::programs::ProgramError> {
        use aya::programs::ProgramError;
        let io = |e: std::io::Error| ProgramError::IOError(e);
        // The qdisc may already be there (ours or another tool's); if it
        // cannot be added, the filter listing or attach below says why.
        let _ = tc::qdisc_add_clsact(interface);
        let filters = rtnl::clsact_filters(ifindex, at == TcAttachType::Egress).map_err(io)?;
        for f in legacy_filters(&filters, name) {
            SchedClassifierLink::attached(interface, at, f.priority, f.handle.into(), None)
                .map_err(io)?
                .detach()?;
            info!(
                "removed an older NetProbe version's {name} filter from {interface} (priority {})",
                f.priority
            );
        }
        let p: &mut SchedClassifier =
            program(&mut self.bpf, name).map_err(|_| missing_program())?;
        let program_id = p.info()?.id();
        let id = match rtnl::holder(&filters, TC_PRIORITY, TC_HANDLE, &tc_programs(at)) {
            rtnl::Holder::Other(what) => {
                return Err(io(std::io::Error::other(format!(
                    "clsact {} priority {TC_PRIORITY} on {interface} is held by {what}: NetProbe owns that \
                     priority (handle {TC_HANDLE:#x}); remove or move the other filter",
                    direction(at)
                ))))
            }
            rtnl::Holder::Us => p.attach_to_link(
                SchedClassifierLink::attached(
                    interface,
                    at,
                    TC_PRIORITY,
                    TcHandle::from(TC_HANDLE),
                    None,
                )
                .map_err(io)?,
            )?,
            rtnl::Holder::Nobody => p.attach_with_options(
                interface,
                at,
                TcAttachOptions::Netlink(NlOptions {
                    priority: TC_PRIORITY,
                    handle: TcHandle::from(TC_HANDLE),
                    classid: None,
                }),
            )?,
        };
        Ok((HookLink::Tc(p.take_link(id)?), program_id))
    }

    /// Removes a link pin that cannot be taken over, saying so if that fails.
    fn unpin_stale(&self, path: &std::path::Path) {
        let (Some(pins), Some(name)) = (&self.pins, path.file_name().and_then(|n| n.to_str()))
        else {
            return;
        };
        if let Err(e) = pins.unpin_link(name) {
            warn!("removing the unusable pin {}: {e}", path.display());
        }
    }

    /// On exit, leave every probe attached and pinned for the next agent
    /// (`--keep-on-exit`), instead of detaching and unpinning.
    pub fn set_keep_on_exit(&mut self, keep: bool) {
        self.keep_on_exit = keep;
    }

    /// Removes pinned links of interfaces this agent does not watch (gone,
    /// or no longer matching the filter). Call after the first sync.
    pub fn prune_pins(&mut self) {
        let watched: std::collections::HashSet<u32> =
            self.attached.values().map(|a| a.ifindex).collect();
        if let Some(pins) = &self.pins {
            let n = pins.prune_links(&|i| watched.contains(&i));
            if n > 0 {
                info!("removed {n} pinned links of interfaces no longer watched");
            }
        }
    }

    /// The pin directory in use, if any.
    pub fn pin_dir(&self) -> Option<&std::path::Path> {
        self.pins.as_ref().map(|p| p.state())
    }

    /// Detaches every hook from `interface` and drops its counters.
    /// Unknown names are ignored.
    pub fn detach(&mut self, interface: &str) {
        if let Some(a) = self.attached.remove(interface) {
            self.detach_links(interface, a);
        }
    }

    /// Detaches every interface.
    pub fn detach_all(&mut self) {
        let names: Vec<String> = self.attached.keys().cloned().collect();
        for n in names {
            self.detach(&n);
        }
    }

    fn detach_links(&mut self, interface: &str, a: Attached) {
        let _ = self.iface_config.remove(&a.ifindex);
        // A vanished interface took its hooks with it: nothing to undo, and
        // errors saying so are expected.
        let present = crate::netif::by_name(interface).is_ok_and(|i| i.ifindex == a.ifindex);
        for link in a.links {
            let detached = match link {
                HookLink::Xdp(l) => l.detach().map_err(|e| e.to_string()),
                HookLink::Tc(l) => l.detach().map_err(|e| e.to_string()),
                HookLink::Pinned { name, held } => {
                    let unpinned = match &self.pins {
                        Some(pins) => pins
                            .unpin_link(&name)
                            .map_err(|e| format!("unpinning and detaching {name}: {e}")),
                        None => Ok(()),
                    };
                    // Also when the pin was gone: our descriptor is then
                    // the link's last hold.
                    let detached = held.detach().map_err(|e| format!("detaching {name}: {e}"));
                    unpinned.and(detached)
                }
            };
            match detached {
                Err(e) if present => warn!("detaching a probe from {interface}: {e}"),
                Err(e) => log::debug!("detaching a probe from vanished {interface}: {e}"),
                Ok(()) => {}
            }
        }
        // Its counters go too, so interfaces that come and go cannot fill
        // the maps (--max-interfaces bounds the live ones).
        let stats: Vec<StatsKey> = self
            .packet_stats
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.ifindex == a.ifindex)
            .collect();
        for k in stats {
            let _ = self.packet_stats.remove(&k);
        }
        let dev: Vec<TcDeviceKey> = self
            .tc_device_stats
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.ifindex == a.ifindex)
            .collect();
        for k in dev {
            let _ = self.tc_device_stats.remove(&k);
        }
        info!("stopped watching {interface}");
    }

    /// Checks that every probe is still attached and marks those that are
    /// not ([`HookAttachment::missing`], which /healthz, /status and
    /// `netprobe_hook_attached` report); changes are logged once. XDP: the
    /// device still runs our program. TCX: our bpf_link is still on the
    /// device with our program (`bpftool link detach` or a vanished device
    /// clears it). clsact: our filter is still there with our program.
    /// A pinned link's pin that went missing (removed by hand: the agent
    /// holds the link open, so the probe stayed attached) is put back.
    pub fn check_hooks(&mut self) {
        let pins = self.pins.as_ref();
        for (interface, a) in self.attached.iter_mut() {
            for (h, link) in a.hooks.iter_mut().zip(&a.links) {
                if let (Some(pins), HookLink::Pinned { name, held }) = (pins, link) {
                    restore_pin(pins, name, held);
                }
                let missing = hook_missing(a.ifindex, h, link);
                match (&h.missing, &missing) {
                    (None, Some(why)) => warn!(
                        "probe {} on {interface} is no longer attached ({why}): it counts nothing; \
                         restart the agent to attach it again",
                        h.hook.name()
                    ),
                    (Some(_), None) => {
                        info!("probe {} on {interface} is attached again", h.hook.name())
                    }
                    _ => {}
                }
                h.missing = missing;
            }
        }
        // TSO may be switched at run time (ethtool -K): follow it.
        let changed: Vec<(u32, u32)> = self
            .attached
            .iter_mut()
            .filter_map(|(interface, a)| {
                let flags = (a.iface_flags & !IFACE_TX_SEGMENTS) | tx_segments_flag(interface);
                (flags != a.iface_flags).then(|| {
                    a.iface_flags = flags;
                    (a.ifindex, flags)
                })
            })
            .collect();
        for (ifindex, flags) in changed {
            if let Err(e) = self.set_iface_flags(ifindex, flags) {
                warn!("updating iface_config of ifindex {ifindex}: {e}");
            }
        }
    }

    /// Writes an interface's iface_config flags (none: no entry).
    fn set_iface_flags(&mut self, ifindex: u32, flags: u32) -> Result<(), Error> {
        if flags == 0 {
            let _ = self.iface_config.remove(&ifindex);
            return Ok(());
        }
        self.iface_config
            .insert(ifindex, IfaceConfig { flags, pad: 0 }, 0)
            .map_err(|source| Error::Map {
                map: probes::MAP_IFACE_CONFIG,
                source,
            })
    }

    /// Interfaces attached now, by name.
    pub fn attached(&self) -> &BTreeMap<String, Attached> {
        &self.attached
    }

    /// packet_stats summed over CPUs, one entry per interface and hook.
    pub fn packet_stats(&self) -> Result<Vec<(StatsKey, PacketStats)>, Error> {
        let err = |source| Error::Map {
            map: probes::MAP_PACKET_STATS,
            source,
        };
        let mut out = Vec::new();
        for item in self.packet_stats.iter() {
            let (k, per_cpu) = item.map_err(err)?;
            let mut sum = PacketStats::default();
            for v in per_cpu.iter() {
                sum.add(v);
            }
            out.push((k, sum));
        }
        Ok(out)
    }

    /// Counters of every attached interface: what the kernel maps say it
    /// received and sent, and the full counters of each hook.
    pub fn network_stats(&self) -> Result<Vec<NetworkStats>, Error> {
        let by_key: std::collections::HashMap<(u32, u32), PacketStats> = self
            .packet_stats()?
            .into_iter()
            .map(|(k, v)| ((k.ifindex, k.hook), v))
            .collect();
        Ok(self
            .attached
            .iter()
            .map(|(name, a)| {
                let get = |h: Hook| {
                    by_key
                        .get(&(a.ifindex, h as u32))
                        .copied()
                        .unwrap_or_default()
                };
                // XDP sees every received frame, before GRO merges them.
                let rx_source = if a.hooks.iter().any(|h| h.hook == Hook::Xdp) {
                    Hook::Xdp
                } else {
                    Hook::TcIngress
                };
                NetworkStats {
                    interface: name.clone(),
                    ifindex: a.ifindex,
                    rx_source,
                    rx: LinkHeader::apply(a.link_header.rx_excluded, get(rx_source).total),
                    tx: LinkHeader::apply(a.link_header.tx_excluded, get(Hook::TcEgress).total),
                    per_hook: a.hooks.iter().map(|h| (h.hook, get(h.hook))).collect(),
                }
            })
            .collect())
    }

    /// Entries in packet_stats (all interfaces, including detached ones
    /// not yet cleaned up).
    pub fn packet_stats_entries(&self) -> u64 {
        self.packet_stats.keys().filter(|k| k.is_ok()).count() as u64
    }

    /// tc_device_stats summed over CPUs.
    pub fn tc_device_stats(&self) -> Result<Vec<(TcDeviceKey, u64)>, Error> {
        let err = |source| Error::Map {
            map: probes::MAP_TC_DEVICE_STATS,
            source,
        };
        let mut out = Vec::new();
        for item in self.tc_device_stats.iter() {
            let (k, per_cpu) = item.map_err(err)?;
            out.push((k, per_cpu.iter().fold(0u64, |a, v| a.wrapping_add(*v))));
        }
        Ok(out)
    }

    /// Every flow in the table. Flows idle since before `expire_before_ns`
    /// (boot-time clock) are removed instead of returned, so the table holds
    /// live flows and not only what the LRU has not yet evicted.
    pub fn flows(&mut self, expire_before_ns: u64) -> Result<Vec<(FlowKey, FlowStats)>, Error> {
        let err = |source| Error::Map {
            map: probes::MAP_FLOW_STATS,
            source,
        };
        let mut live = Vec::new();
        let mut stale = Vec::new();
        for item in self.flow_stats.iter() {
            match item {
                Ok((k, v)) if v.last_seen_ns < expire_before_ns => stale.push(k),
                Ok(kv) => live.push(kv),
                // The LRU may evict the entry between the key walk and the read.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(e) => return Err(err(e)),
            }
        }
        for k in stale {
            let _ = self.flow_stats.remove(&k);
        }
        Ok(live)
    }

    /// Stops watching interfaces no longer present; returns their names.
    pub fn forget_vanished(&mut self, present: &dyn Fn(&str, u32) -> bool) -> Vec<String> {
        let gone: Vec<String> = self
            .attached
            .iter()
            .filter(|(n, a)| !present(n, a.ifindex))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            self.detach(n);
        }
        gone
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        if self.keep_on_exit {
            // Pinned links keep the programs running; netlink attachments
            // (older kernels) stay on their devices if not dropped.
            for (_, a) in std::mem::take(&mut self.attached) {
                for l in a.links {
                    match l {
                        HookLink::Xdp(l) => std::mem::forget(l),
                        HookLink::Tc(l) => std::mem::forget(l),
                        // The pin keeps it; our descriptor just closes.
                        HookLink::Pinned { .. } => {}
                    }
                }
            }
            if let Some(dir) = self.pin_dir() {
                info!(
                    "probes left attached and pinned in {} for the next start",
                    dir.display()
                );
            }
            return;
        }
        self.detach_all();
        if let Some(pins) = &self.pins {
            pins.remove_all();
        }
    }
}

/// The TC hooks: which program each runs (on Ethernet-like devices, on L3
/// devices) and where.
const TC_HOOKS: [(Hook, &str, &str, TcAttachType); 2] = [
    (
        Hook::TcIngress,
        probes::PROG_TC_INGRESS,
        probes::PROG_L3_INGRESS,
        TcAttachType::Ingress,
    ),
    (
        Hook::TcEgress,
        probes::PROG_TC_EGRESS,
        probes::PROG_L3_EGRESS,
        TcAttachType::Egress,
    ),
];

/// `IFACE_TX_SEGMENTS` when the device has no TSO (the kernel then cuts
/// GSO packets after TC egress and counts each segment), else 0.
fn tx_segments_flag(interface: &str) -> u32 {
    if crate::netif::tso_enabled(interface) == Some(false) {
        IFACE_TX_SEGMENTS
    } else {
        0
    }
}

/// Every program NetProbe may attach at `at` (Ethernet-like, L3, and on
/// ingress the one behind XDP).
fn tc_programs(at: TcAttachType) -> Vec<&'static str> {
    let (_, ethernet, l3, _) = TC_HOOKS[usize::from(at == TcAttachType::Egress)];
    let mut names = vec![ethernet, l3];
    if at != TcAttachType::Egress {
        names.push(probes::PROG_TC_AFTER_XDP);
    }
    names
}

fn direction(at: TcAttachType) -> &'static str {
    if at == TcAttachType::Egress {
        "egress"
    } else {
        "ingress"
    }
}

/// Filters an older NetProbe version attached (found by their program's
/// name, at a priority the kernel chose): anything running `name` that is
/// not at our priority.
fn legacy_filters<'a>(
    filters: &'a [rtnl::Filter],
    name: &'a str,
) -> impl Iterator<Item = &'a rtnl::Filter> {
    filters.iter().filter(move |f| {
        f.priority != TC_PRIORITY && f.handle != 0 && f.bpf_name.as_deref() == Some(name)
    })
}

/// Why `h` (held through `link`) is no longer attached to `ifindex`, or
/// `None` if it still is.
fn hook_missing(ifindex: u32, h: &HookAttachment, link: &HookLink) -> Option<String> {
    let ours = h.program_id;
    if h.hook == Hook::Xdp {
        return match rtnl::xdp_prog_ids(ifindex) {
            Ok(ids) if ids.contains(&ours) => None,
            Ok(ids) if ids.is_empty() => Some("the device runs no XDP program".into()),
            Ok(ids) => Some(format!(
                "the device runs XDP program {ids:?}, not ours ({ours})"
            )),
            Err(e) => Some(format!("querying the device: {e}")),
        };
    }
    let link_state = match link {
        HookLink::Pinned { held, .. } => Some(held.state()),
        HookLink::Tc(l) => match MultiProgLink::fd(l) {
            Ok(fd) => Some(held_link::fd_state(std::os::fd::AsRawFd::as_raw_fd(&fd))),
            Err(_) => None, // a clsact filter: no link
        },
        HookLink::Xdp(_) => None,
    };
    if let Some(state) = link_state {
        return match state {
            Ok(s) if s.ifindex == ifindex && s.prog_id == ours => None,
            Ok(s) if s.ifindex != ifindex => Some(format!(
                "its bpf_link {} was detached from the device",
                s.id
            )),
            Ok(s) => Some(format!(
                "its bpf_link {} runs program {}, not ours ({ours})",
                s.id, s.prog_id
            )),
            Err(e) => Some(format!("reading its bpf_link: {e}")),
        };
    }
    let egress = h.hook == Hook::TcEgress;
    match rtnl::clsact_filters(ifindex, egress) {
        Ok(filters) => {
            let at = filters
                .iter()
                .find(|f| f.priority == TC_PRIORITY && f.handle == TC_HANDLE);
            match at.and_then(|f| f.prog_id) {
                Some(id) if id == ours => None,
                Some(id) => Some(format!(
                    "the clsact filter at priority {TC_PRIORITY} runs program {id}, not ours ({ours})"
                )),
                None => Some(format!(
                    "no clsact filter at priority {TC_PRIORITY} handle {TC_HANDLE:#x}"
                )),
            }
        }
        Err(e) => Some(format!("listing the clsact filters: {e}")),
    }
}

/// Puts back the pin `name` of a link the agent holds, if it was removed
/// or replaced while the agent ran.
fn restore_pin(pins: &PinDir, name: &str, held: &HeldLink) {
    let path = pins.link_pin_path(name);
    let Ok(want) = held.state() else { return };
    let pinned = HeldLink::from_pin(&path).and_then(|p| p.state());
    let why = match pinned {
        Ok(s) if s.id == want.id => return,
        Ok(_) => {
            if let Err(e) = pins.unpin_link(name) {
                warn!(
                    "{} holds another link and cannot be removed: {e}",
                    path.display()
                );
                return;
            }
            "held another link"
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "was removed",
        Err(e) => {
            warn!("checking the pin {}: {e}", path.display());
            return;
        }
    };
    match held.pin(&path) {
        Ok(()) => warn!(
            "pin {} {why} while the agent ran; the probe stayed attached (the agent holds its link) \
             and is pinned again",
            path.display()
        ),
        Err(e) => warn!(
            "pin {} {why} while the agent ran and cannot be put back ({e}): the probe stays attached \
             while the agent runs, but a restart will attach it anew",
            path.display()
        ),
    }
}

/// Takes the link pinned at `path` into the agent's hands (see
/// [`HookLink::Pinned`]).
fn held(path: &std::path::Path) -> Result<HookLink, aya::programs::ProgramError> {
    let held = HeldLink::from_pin(path).map_err(|e| {
        aya::programs::ProgramError::IOError(std::io::Error::other(format!(
            "opening the pinned link {}: {e}",
            path.display()
        )))
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(HookLink::Pinned { name, held })
}

/// `--cleanup` on clsact: removes NetProbe's TC filters from every
/// interface (the one at [`TC_PRIORITY`]/[`TC_HANDLE`], and older versions'
/// found by name), on any kernel: they are netlink objects no pin holds.
/// Returns how many were removed.
///
/// # Errors
/// Every interface is tried; the error names each filter that could not
/// be listed or removed.
pub fn cleanup_filters() -> Result<usize, String> {
    let mut removed = 0;
    let mut failed = Vec::new();
    let interfaces = crate::netif::list().map_err(|e| format!("listing interfaces: {e}"))?;
    for i in interfaces {
        for (_, name, _, at) in TC_HOOKS {
            let filters = match rtnl::clsact_filters(i.ifindex, at == TcAttachType::Egress) {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::ENODEV) => continue,
                Err(e) => {
                    failed.push(format!("listing {} {} filters: {e}", i.name, direction(at)));
                    continue;
                }
            };
            let mine: Vec<&rtnl::Filter> =
                match rtnl::holder(&filters, TC_PRIORITY, TC_HANDLE, &tc_programs(at)) {
                    rtnl::Holder::Us => filters
                        .iter()
                        .filter(|f| f.priority == TC_PRIORITY && f.handle == TC_HANDLE)
                        .collect(),
                    rtnl::Holder::Other(what) => {
                        info!(
                            "{} {} priority {TC_PRIORITY} holds {what}, not NetProbe's: left alone",
                            i.name,
                            direction(at)
                        );
                        Vec::new()
                    }
                    rtnl::Holder::Nobody => Vec::new(),
                };
            for f in mine.into_iter().chain(legacy_filters(&filters, name)) {
                let detached =
                    SchedClassifierLink::attached(&i.name, at, f.priority, f.handle.into(), None)
                        .map_err(|e| e.to_string())
                        .and_then(|l| l.detach().map_err(|e| e.to_string()));
                match detached {
                    Ok(()) => {
                        removed += 1;
                        info!(
                            "removed the {name} filter from {} (priority {})",
                            i.name, f.priority
                        );
                    }
                    Err(e) => failed.push(format!(
                        "removing the {name} filter from {} (priority {}): {e}",
                        i.name, f.priority
                    )),
                }
            }
        }
    }
    if failed.is_empty() {
        Ok(removed)
    } else {
        Err(failed.join("; "))
    }
}

fn missing_program() -> aya::programs::ProgramError {
    aya::programs::ProgramError::IOError(std::io::Error::other(
        "program missing from the probe object",
    ))
}

fn pin_error(path: &std::path::Path, e: aya::pin::PinError) -> aya::programs::ProgramError {
    aya::programs::ProgramError::IOError(std::io::Error::other(format!(
        "pinning {}: {e}",
        path.display()
    )))
}

/// Drivers on which `auto` attaches no XDP although native works: native
/// XDP on veth moves the receive path to NAPI and turns off GSO on the
/// peer, which cuts TCP throughput through the pair, and generic XDP turns
/// GRO off; a monitor must not change the datapath it watches. TC ingress
/// counts received packets there.
fn native_xdp_hurts(interface: &str) -> bool {
    match crate::netif::driver(interface).as_deref() {
        Some("veth") => {
            info!("{interface} is a veth: auto mode counts with TC alone (XDP on veth slows the pair: native turns off the peer's GSO, generic this side's GRO)");
            true
        }
        _ => false,
    }
}

fn program<'a, T>(bpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, Error>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    bpf.program_mut(name)
        .ok_or(Error::MissingProgram(name))?
        .try_into()
        .map_err(|_| Error::MissingProgram(name))
}

fn typed_map<T>(bpf: &mut Ebpf, name: &'static str) -> Result<T, Error>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = bpf.take_map(name).ok_or(Error::MissingMap(name))?;
    T::try_from(map).map_err(|source| Error::Map { map: name, source })
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; lift it so map
/// sizes are bounded by the flags, not by a 64 KiB default.
fn raise_memlock_limit() {
    let rl = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rl) } != 0 {
        log::debug!(
            "setrlimit(RLIMIT_MEMLOCK): {}",
            std::io::Error::last_os_error()
        );
    }
}
