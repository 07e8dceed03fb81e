//! Loads `probes/socket.bpf.o`, attaches its raw tracepoints and accept
//! probe, runs its TCP iterators and reads its maps. Dropping
//! [`SocketProbes`] detaches and unloads everything.

use std::collections::HashSet;
use std::fmt;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use aya::maps::{HashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::{BtfTracePoint, FExit, Iter};
use aya::{Btf, Ebpf, EbpfLoader};
use log::{debug, info, warn};

use super::learn;
use super::model::{
    rank, ConnTable, EventState, Learned, Owners, SocketCounters, SocketEventHook, SocketSnapshot,
};
use super::{AcceptProbeMode, NetnsScope, SocketConfig};
use crate::abi::sock::{self, Conn, LearnRecord, Owner, SockStats};
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
                write!(f, "attaching to {tracepoint} failed: {source}")?;
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
    seed: HashMap<MapData, u64, Owner>,
    /// The TCP iterator loaded (5.9+): live bytes and RTT, and connections
    /// open before the agent started.
    iter_ready: bool,
    owners: Owners,
    config: SocketConfig,
    netns_inode: Option<u32>,
    last_stats: SockStats,
    events: EventState,
}

impl SocketProbes {
    /// Loads the socket object with `config`, attaches every tracepoint and
    /// the accept probe, takes stock of the connections already open
    /// (iterator) and learns the owners of the sockets open before it.
    ///
    /// # Errors
    /// [`SocketError::NoBtf`] on a kernel without BTF; otherwise the step
    /// that failed, naming the program, tracepoint or map. A kernel without
    /// socket storage for tracing programs (before 5.11) or without the
    /// accept probe's trampoline is no error: the probes run without, and
    /// one log line says what that changes.
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
        let want_storage = config.features.socket_storage;
        let (mut bpf, btf, storage) = match attach(config, cfg_netns, want_storage) {
            Ok((bpf, btf)) => (bpf, btf, want_storage),
            // Without socket storage the verifier never sees its helpers
            // (cfg_storage prunes them): what a 5.9 or 5.10 kernel accepts.
            Err(first) if want_storage => match attach(config, cfg_netns, false) {
                Ok((bpf, btf)) => {
                    warn!(
                        "socket layer without socket storage ({first}; tracing programs use it from Linux 5.11): \
                         accepted connections get an owner only from the accept probe, and \
                         netprobe_tcp_connections_established counts only the connections in the table (--max-connections)"
                    );
                    (bpf, btf, false)
                }
                Err(_) => return Err(first),
            },
            Err(e) => return Err(e),
        };
        let accept_probe = attach_accept(&mut bpf, &btf, config.accept_probe, storage);
        let accepted = match (accept_probe, storage) {
            (Some(_), _) => "accept",
            (None, true) => "listener",
            (None, false) => "none",
        };
        let iter_ready = load_iter(&mut bpf, &btf, probes::PROG_SOCK_ITER).map_or_else(
            |e| {
                warn!("{e}: no live bytes and RTT for current connections, no connections from before the start (needs Linux 5.9+)");
                false
            },
            |()| true,
        );
        let learn_ready = iter_ready
            && !config.learn_timeout.is_zero()
            && load_iter(&mut bpf, &btf, probes::PROG_SOCK_LEARN)
                .map_err(|e| {
                    warn!("{e}: the owners of sockets open before the start are not learned")
                })
                .is_ok();
        drop(btf);
        let stats = typed_map(&mut bpf, probes::MAP_SOCK_STATS)?;
        let conns = typed_map(&mut bpf, probes::MAP_SOCK_CONNS)?;
        let ring = Some(typed_map(&mut bpf, probes::MAP_SOCK_EVENTS)?);
        let seed = typed_map(&mut bpf, probes::MAP_SOCK_SEED)?;
        let mut me = SocketProbes {
            bpf,
            stats,
            conns,
            ring,
            seed,
            iter_ready,
            owners: Owners {
                accepted,
                accept_probe: accept_probe.unwrap_or("none"),
                socket_storage: storage,
                learned: Learned::default(),
            },
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
        if learn_ready {
            me.owners.learned = me.learn();
        } else {
            me.owners.learned.incomplete = Some(if config.learn_timeout.is_zero() {
                "not learned (--socket-learn-timeout 0)".into()
            } else {
                "not learned: the kernel has no TCP iterator".into()
            });
        }
        let scope = match (config.netns, cfg_netns) {
            (NetnsScope::All, _) | (_, 0) => "every network namespace".to_string(),
            (NetnsScope::SelfNs, n) => format!("network namespace {n} (the agent's)"),
        };
        info!(
            "socket probes attached to {} tracepoints{}, counting TCP in {scope}; {} connections already open",
            probes::SOCK_TRACEPOINTS.len(),
            match accept_probe {
                Some("fexit") => " and fexit/inet_csk_accept",
                Some(_) => " and the exit of accept() and accept4()",
                None => "",
            },
            me.conns.keys().filter(Result::is_ok).count()
        );
        Ok(me)
    }

    /// Learns who holds the sockets open before the start: the learning
    /// iterator names those without an owner, `/proc` says which process
    /// holds each, and a second pass hands the owners to the probes.
    fn learn(&mut self) -> Learned {
        let started = Instant::now();
        let mut out = Learned::default();
        let wanted = match self.run_learn_iter() {
            Ok(w) => w,
            Err(e) => {
                warn!("{e}");
                out.incomplete = Some(e.to_string());
                return out;
            }
        };
        let mut truncated = 0;
        let inodes: HashSet<u64> = wanted
            .iter()
            .map(|r| r.inode)
            .filter(|_| {
                truncated += 1;
                truncated <= learn::MAX_SOCKETS
            })
            .collect();
        let truncated = truncated.saturating_sub(learn::MAX_SOCKETS);
        let scan = if inodes.is_empty() {
            learn::Scan::default()
        } else {
            learn::scan(
                std::path::Path::new("/proc"),
                &inodes,
                self.config.learn_timeout,
                learn::MAX_FDS,
            )
        };
        let mut seeded = Vec::new();
        for (inode, owner) in &scan.owners {
            match self.seed.insert(inode, owner, 0) {
                Ok(()) => seeded.push(*inode),
                Err(e) => debug!("sock_seed: {e}"),
            }
        }
        let left = if seeded.is_empty() {
            wanted.len()
        } else {
            match self.run_learn_iter() {
                Ok(left) => left.len(),
                Err(e) => {
                    out.incomplete = Some(e.to_string());
                    wanted.len()
                }
            }
        };
        for inode in &seeded {
            let _ = self.seed.remove(inode);
        }
        for r in wanted.iter().filter(|r| scan.owners.contains_key(&r.inode)) {
            if r.state == u32::from(sock::TCP_LISTEN) {
                out.listeners += 1;
            } else {
                out.connections += 1;
            }
        }
        out.not_found = (left + truncated) as u64;
        out.duration_seconds = started.elapsed().as_secs_f64();
        if out.incomplete.is_none() {
            out.incomplete = scan.stopped.clone().or_else(|| {
                (truncated > 0).then(|| {
                    format!(
                        "{truncated} sockets past the {} a start learns",
                        learn::MAX_SOCKETS
                    )
                })
            });
        }
        info!(
            "socket layer: learned the owners of {} listeners and {} connections open before the start from /proc in {:.0} ms ({} processes, {} descriptors read); {} not found{}",
            out.listeners,
            out.connections,
            out.duration_seconds * 1e3,
            scan.processes,
            scan.fds_read,
            out.not_found,
            out.incomplete.as_deref().map(|w| format!(" ({w})")).unwrap_or_default()
        );
        // Connections' table entries take their learned owner now.
        if let Err(e) = self.run_iter() {
            debug!("{e}");
        }
        out
    }

    /// Runs the learning iterator once: the sockets it found without an
    /// owner (and without a seed).
    fn run_learn_iter(&mut self) -> Result<Vec<LearnRecord>, SocketError> {
        // Bounded: the records of a few more sockets than a start learns.
        let limit = (learn::MAX_SOCKETS as u64 + 1) * std::mem::size_of::<LearnRecord>() as u64 * 4;
        let out = run_iter_program(&mut self.bpf, probes::PROG_SOCK_LEARN, limit)?;
        Ok(LearnRecord::parse_all(&out))
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
        // The program writes nothing.
        run_iter_program(&mut self.bpf, probes::PROG_SOCK_ITER, 0).map(|_| ())
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
            owners: self.owners.clone(),
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

/// Loads the object with `cfg_storage` as given and attaches the
/// tracepoints; the kernel's parsed BTF comes back for the other programs.
fn attach(
    config: &SocketConfig,
    cfg_netns: u32,
    storage: bool,
) -> Result<(Ebpf, Btf), SocketError> {
    // The loader reads the kernel's BTF for the CO-RE relocations and
    // drops it after; the attach targets need it again below. One parsed
    // copy (~15 MB) at a time keeps the peak down.
    let cfg_storage = u32::from(storage);
    let (nr_accept, nr_accept4) = (libc::SYS_accept as u32, libc::SYS_accept4 as u32);
    let mut bpf = EbpfLoader::new()
        .map_max_entries(probes::MAP_SOCK_CONNS, config.max_connections)
        .map_max_entries(probes::MAP_SOCK_ACCEPTED, config.max_connections)
        .map_max_entries(probes::MAP_SOCK_EVENTS, config.ringbuf_size)
        .override_global(probes::GLOBAL_SOCK_NETNS, &cfg_netns, true)
        .override_global(probes::GLOBAL_SOCK_STORAGE, &cfg_storage, true)
        .override_global(probes::GLOBAL_SOCK_NR_ACCEPT, &nr_accept, true)
        .override_global(probes::GLOBAL_SOCK_NR_ACCEPT4, &nr_accept4, true)
        .load(probes::socket_object())
        .map_err(SocketError::Load)?;
    let btf = Btf::from_sys_fs().map_err(SocketError::Btf)?;
    for (name, tracepoint) in probes::SOCK_TRACEPOINTS {
        attach_tracepoint(&mut bpf, &btf, name, tracepoint)?;
    }
    Ok((bpf, btf))
}

/// Loads and attaches the accept probe `mode` asks for, and says in one log
/// line what a kernel without it changes; the probe attached, if any
/// (`fexit` or `sys_exit`).
fn attach_accept(
    bpf: &mut Ebpf,
    btf: &Btf,
    mode: AcceptProbeMode,
    storage: bool,
) -> Option<&'static str> {
    let fallback = if storage {
        "accepted connections are given to the process that called listen() on their listener \
         (owner_source listener): wrong for pre-fork servers, SO_REUSEPORT groups of several \
         processes and servers that exec after listen()"
    } else {
        "accepted connections have no owner"
    };
    let fexit = match mode {
        AcceptProbeMode::Auto | AcceptProbeMode::Fexit => match attach_fexit(bpf, btf) {
            Ok(()) => return Some("fexit"),
            Err(e) => Some(e),
        },
        AcceptProbeMode::Syscall => None,
        AcceptProbeMode::Off => {
            info!("no accept probe (--socket-accept-probe off): {fallback}");
            return None;
        }
    };
    if mode == AcceptProbeMode::Fexit {
        let e = fexit.map(|e| e.to_string()).unwrap_or_default();
        warn!(
            "socket layer without an accept probe ({e}; --socket-accept-probe fexit): {fallback}"
        );
        return None;
    }
    let sys = attach_tracepoint(
        bpf,
        btf,
        probes::PROG_SOCK_ACCEPT_SYS,
        probes::SOCK_ACCEPT_TRACEPOINT,
    );
    match (sys, fexit) {
        (Ok(()), Some(e)) => {
            warn!(
                "socket layer: no BPF trampoline for the accept probe ({e}); accepted connections are \
                 attributed at the exit of accept() and accept4() instead, a tracepoint every system \
                 call then passes (netprobe-sockbench measures it; --socket-accept-probe fexit avoids \
                 it, leaving accepted connections to their listener's process)"
            );
            Some("sys_exit")
        }
        (Ok(()), None) => Some("sys_exit"),
        (Err(e), first) => {
            let first = first.map(|f| format!("{f}; ")).unwrap_or_default();
            warn!("socket layer without an accept probe ({first}{e}): {fallback}");
            None
        }
    }
}

/// fexit/inet_csk_accept: needs a BPF trampoline (x86_64 5.5+, arm64 with
/// ftrace direct calls; some kernels refuse them).
fn attach_fexit(bpf: &mut Ebpf, btf: &Btf) -> Result<(), SocketError> {
    let name = probes::PROG_SOCK_ACCEPT;
    let tracepoint = probes::SOCK_ACCEPT_FUNCTION;
    let p: &mut FExit = program(bpf, name)?;
    p.load(tracepoint, btf)
        .map_err(|source| SocketError::Program {
            program: name,
            source,
        })?;
    p.attach()
        .map_err(|source| SocketError::Attach { tracepoint, source })?;
    Ok(())
}

fn attach_tracepoint(
    bpf: &mut Ebpf,
    btf: &Btf,
    name: &'static str,
    tracepoint: &'static str,
) -> Result<(), SocketError> {
    let p: &mut BtfTracePoint = program(bpf, name)?;
    p.load(tracepoint, btf)
        .map_err(|source| SocketError::Program {
            program: name,
            source,
        })?;
    p.attach()
        .map_err(|source| SocketError::Attach { tracepoint, source })?;
    Ok(())
}

fn load_iter(bpf: &mut Ebpf, btf: &Btf, name: &'static str) -> Result<(), SocketError> {
    let p: &mut Iter = program(bpf, name)?;
    p.load("tcp", btf).map_err(|source| SocketError::Program {
        program: name,
        source,
    })
}

/// Runs the TCP iterator program `name` once and returns what it wrote, up
/// to `limit` bytes (reading stops there).
fn run_iter_program(
    bpf: &mut Ebpf,
    name: &'static str,
    limit: u64,
) -> Result<Vec<u8>, SocketError> {
    let p: &mut Iter = program(bpf, name)?;
    let err = |e: &dyn fmt::Display| SocketError::Iter(format!("{name}: {e}"));
    let id = p.attach().map_err(|e| err(&e))?;
    let link = p.take_link(id).map_err(|e| err(&e))?;
    let mut file = link.into_file().map_err(|e| err(&e))?;
    let mut out = Vec::new();
    // Each read walks sockets until its buffer fills or the walk ends.
    let mut buf = [0u8; 4096];
    for _ in 0..1_000_000 {
        match file.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) if (out.len() as u64) < limit => {
                out.extend_from_slice(&buf[..n.min((limit - out.len() as u64) as usize)])
            }
            Ok(_) => return Ok(out),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(&e)),
        }
    }
    Err(err(&"did not finish"))
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
