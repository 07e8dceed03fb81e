//! Loads `probes/socket.bpf.o`, attaches its raw tracepoints, runs its TCP
//! iterator and reads its maps. Dropping [`SocketProbes`] detaches and
//! unloads everything.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, Iter};
use aya::{Btf, Ebpf, EbpfLoader};
use log::{debug, info, warn};

use super::model::{rank, ConnTable, EventState, SocketCounters, SocketEventHook, SocketSnapshot};
use super::{NetnsScope, SocketConfig};
use crate::abi::sock::{Conn, SockStats};
use crate::probes;

/// Where the kernel publishes its own BTF (CONFIG_DEBUG_INFO_BTF).
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug)]
pub enum SocketError {
    /// The kernel has no BTF: CO-RE cannot relocate the probes.
    NoBtf,
    Btf(aya::BtfError),
    /// The kernel refused the object (maps, relocations) or a program.
    Load(aya::EbpfError),
    MissingProgram(&'static str),
    MissingMap(&'static str),
    Program {
        program: &'static str,
        source: aya::programs::ProgramError,
    },
    Attach {
        tracepoint: &'static str,
        source: aya::programs::ProgramError,
    },
    Map {
        map: &'static str,
        source: aya::maps::MapError,
    },
    Iter(String),
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketError::NoBtf => {
                write!(f, "the kernel has no BTF ({KERNEL_BTF} is missing; it needs CONFIG_DEBUG_INFO_BTF=y)")
            }
            SocketError::Btf(e) => write!(f, "reading the kernel's BTF from {KERNEL_BTF}: {e}"),
            SocketError::Load(e) => {
                write!(f, "loading the socket probes failed: {e}")?;
                // aya's messages name the step; the cause is in the chain.
                let mut src = std::error::Error::source(e);
                while let Some(s) = src {
                    write!(f, ": {s}")?;
                    src = s.source();
                }
                Ok(())
            }
            SocketError::MissingProgram(p) => write!(f, "socket object has no program {p}"),
            SocketError::MissingMap(m) => write!(f, "socket object has no map {m}"),
            SocketError::Program { program, source } => {
                write!(f, "program {program}: {source}")?;
                if let aya::programs::ProgramError::LoadError { verifier_log, .. } = source {
                    let log = verifier_log.to_string();
                    let tail: Vec<&str> = log.lines().rev().take(3).collect();
                    write!(
                        f,
                        " (verifier: {})",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
                    )?;
                }
                Ok(())
            }
            SocketError::Attach { tracepoint, source } => {
                write!(f, "attaching to tracepoint {tracepoint} failed: {source}")?;
                if let aya::programs::ProgramError::SyscallError(e) = source {
                    write!(f, " ({})", e.io_error)?;
                }
                Ok(())
            }
            SocketError::Map { map, source } => write!(f, "map {map}: {source}"),
            SocketError::Iter(e) => write!(f, "TCP iterator: {e}"),
        }
    }
}

impl std::error::Error for SocketError {}

/// The loaded socket layer.
pub struct SocketProbes {
    bpf: Ebpf,
    stats: PerCpuArray<MapData, SockStats>,
    conns: HashMap<MapData, u64, Conn>,
    ring: Option<RingBuf<MapData>>,
    /// The TCP iterator loaded (5.9+): live bytes and RTT, and connections
    /// open before the agent started.
    iter_ready: bool,
    config: SocketConfig,
    netns_inode: Option<u32>,
    last_stats: SockStats,
    events: EventState,
}

impl SocketProbes {
    /// Loads the socket object with `config`, attaches every tracepoint and
    /// takes stock of the connections already open (iterator).
    ///
    /// # Errors
    /// [`SocketError::NoBtf`] on a kernel without BTF; otherwise the step
    /// that failed, naming the program, tracepoint or map.
    pub fn load(config: &SocketConfig) -> Result<SocketProbes, SocketError> {
        if !std::path::Path::new(KERNEL_BTF).exists() {
            return Err(SocketError::NoBtf);
        }
        let netns_inode = own_netns();
        let cfg_netns: u32 = match config.netns {
            NetnsScope::SelfNs => netns_inode.unwrap_or(0),
            NetnsScope::All => 0,
        };
        if config.netns == NetnsScope::SelfNs && netns_inode.is_none() {
            warn!("cannot read /proc/self/ns/net: the socket probes count every network namespace");
        }
        // The loader reads the kernel's BTF for the CO-RE relocations and
        // drops it after; the attach targets need it again below. One
        // parsed copy (~15 MB) at a time keeps the peak down.
        let mut bpf = EbpfLoader::new()
            .map_max_entries(probes::MAP_SOCK_CONNS, config.max_connections)
            .map_max_entries(probes::MAP_SOCK_EVENTS, config.ringbuf_size)
            .override_global(probes::GLOBAL_SOCK_NETNS, &cfg_netns, true)
            .load(probes::socket_object())
            .map_err(SocketError::Load)?;

        let btf = Btf::from_sys_fs().map_err(SocketError::Btf)?;
        for (name, tracepoint) in probes::SOCK_TRACEPOINTS {
            let p: &mut BtfTracePoint = program(&mut bpf, name)?;
            p.load(tracepoint, &btf)
                .map_err(|source| SocketError::Program {
                    program: name,
                    source,
                })?;
            p.attach()
                .map_err(|source| SocketError::Attach { tracepoint, source })?;
        }
        let iter_ready = {
            let p: &mut Iter = program(&mut bpf, probes::PROG_SOCK_ITER)?;
            match p.load("tcp", &btf) {
                Ok(()) => true,
                Err(source) => {
                    warn!(
                        "{}: no live bytes and RTT for current connections, no connections from before the start (needs Linux 5.9+)",
                        SocketError::Program { program: probes::PROG_SOCK_ITER, source }
                    );
                    false
                }
            }
        };
        let stats = typed_map(&mut bpf, probes::MAP_SOCK_STATS)?;
        let conns = typed_map(&mut bpf, probes::MAP_SOCK_CONNS)?;
        let ring = Some(typed_map(&mut bpf, probes::MAP_SOCK_EVENTS)?);
        let mut me = SocketProbes {
            bpf,
            stats,
            conns,
            ring,
            iter_ready,
            config: config.clone(),
            netns_inode,
            last_stats: SockStats::default(),
            events: EventState::new(config.top_connections),
        };
        if me.iter_ready {
            // Connections already open: tracked from now on.
            if let Err(e) = me.run_iter() {
                warn!("{e}");
            }
        }
        let scope = match (config.netns, cfg_netns) {
            (NetnsScope::All, _) | (_, 0) => "every network namespace".to_string(),
            (NetnsScope::SelfNs, n) => format!("network namespace {n} (the agent's)"),
        };
        info!(
            "socket probes attached to {} tracepoints, counting TCP in {scope}; {} connections already open",
            probes::SOCK_TRACEPOINTS.len(),
            me.conns.keys().filter(Result::is_ok).count()
        );
        Ok(me)
    }

    /// The ring buffer of connection events; taken once, by the task that
    /// drains it and hands each record to [`SocketProbes::handle_record`].
    pub fn take_ring(&mut self) -> Option<RingBuf<MapData>> {
        self.ring.take()
    }

    /// Takes one ring-buffer record.
    pub fn handle_record(&mut self, bytes: &[u8]) {
        self.events.record(bytes);
    }

    /// Drains `ring` (the one from [`SocketProbes::take_ring`]).
    pub fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(item) = ring.next() {
            self.events.record(&item);
        }
    }

    /// Registers a hook that sees every connection event (see
    /// [`SocketEventHook`]).
    pub fn add_hook(&mut self, hook: SocketEventHook) {
        self.events.add_hook(hook);
    }

    /// Keeps up to `cap` connection events for [`SocketProbes::take_events`]
    /// (off by default).
    pub fn enable_event_queue(&mut self, cap: usize) {
        self.events.enable_queue(cap);
    }

    /// Connection events since the last call, oldest first (after
    /// [`SocketProbes::enable_event_queue`]); events that did not fit are
    /// counted in [`SocketProbes::events_dropped`].
    pub fn take_events(&mut self) -> Vec<super::SocketEvent> {
        self.events.take_queued()
    }

    /// Events the queue of [`SocketProbes::take_events`] had no room for.
    pub fn events_dropped(&self) -> u64 {
        self.events.queue_dropped
    }

    /// The kernel counters, summed over CPUs.
    pub fn stats(&self) -> Result<SockStats, SocketError> {
        let per_cpu = self.stats.get(&0, 0).map_err(|source| SocketError::Map {
            map: probes::MAP_SOCK_STATS,
            source,
        })?;
        let mut sum = SockStats::default();
        for v in per_cpu.iter() {
            sum.add(v);
        }
        Ok(sum)
    }

    /// Every tracked connection.
    pub fn connections(&self) -> Result<Vec<Conn>, SocketError> {
        let mut out = Vec::new();
        for item in self.conns.iter() {
            match item {
                Ok((_, v)) => out.push(v),
                // Closed between the key walk and the read.
                Err(aya::maps::MapError::KeyNotFound) => continue,
                Err(source) => {
                    return Err(SocketError::Map {
                        map: probes::MAP_SOCK_CONNS,
                        source,
                    })
                }
            }
        }
        Ok(out)
    }

    /// Runs the TCP iterator once over the agent's namespace: refreshes
    /// bytes and RTT of tracked connections, tracks untracked ones.
    pub fn run_iter(&mut self) -> Result<(), SocketError> {
        let p: &mut Iter = program(&mut self.bpf, probes::PROG_SOCK_ITER)?;
        let err = |e: &dyn fmt::Display| SocketError::Iter(e.to_string());
        let id = p.attach().map_err(|e| err(&e))?;
        let link = p.take_link(id).map_err(|e| err(&e))?;
        let mut file = link.into_file().map_err(|e| err(&e))?;
        // The program writes nothing: each read walks sockets until the end.
        let mut buf = [0u8; 256];
        for _ in 0..1_000_000 {
            match file.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err(&e)),
            }
        }
        Err(SocketError::Iter("did not finish".into()))
    }

    /// The socket layer as of now: runs the iterator, reads the counters
    /// and the connection table. A failed read keeps the previous counters
    /// and is reported in `last_error`.
    pub fn snapshot(&mut self, boot_now_ns: u64) -> SocketSnapshot {
        let mut last_error = None;
        if self.iter_ready {
            if let Err(e) = self.run_iter() {
                debug!("{e}");
                last_error = Some(e.to_string());
            }
        }
        match self.stats() {
            Ok(s) => self.last_stats = s,
            Err(e) => last_error = Some(e.to_string()),
        }
        let conns = self.connections().unwrap_or_else(|e| {
            last_error = Some(e.to_string());
            Vec::new()
        });
        let (longest_lived, busiest) = rank(&conns, self.config.top_connections, boot_now_ns);
        SocketSnapshot {
            loaded: true,
            disabled_reason: None,
            netns: self.config.netns.name(),
            netns_inode: match self.config.netns {
                NetnsScope::SelfNs => self.netns_inode,
                NetnsScope::All => None,
            },
            live_stats: self.iter_ready,
            last_error,
            counters: SocketCounters::from_stats(&self.last_stats),
            connections: ConnTable {
                entries: conns.len() as u64,
                capacity: self.config.max_connections.into(),
                longest_lived,
                busiest,
                recent_failures: self.events.failures.iter().cloned().collect(),
            },
            events_total: self.events.received,
            duration: self.events.duration.clone(),
            srtt: self.events.srtt.clone(),
        }
    }
}

/// Inode of the calling thread's network namespace (the agent's), as the
/// probes see namespaces.
pub fn own_netns() -> Option<u32> {
    ["/proc/thread-self/ns/net", "/proc/self/ns/net"]
        .iter()
        .find_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.ino() as u32)
}

fn program<'a, T>(bpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, SocketError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    bpf.program_mut(name)
        .ok_or(SocketError::MissingProgram(name))?
        .try_into()
        .map_err(|_| SocketError::MissingProgram(name))
}

fn typed_map<T>(bpf: &mut Ebpf, name: &'static str) -> Result<T, SocketError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = bpf.take_map(name).ok_or(SocketError::MissingMap(name))?;
    T::try_from(map).map_err(|source| SocketError::Map { map: name, source })
}
