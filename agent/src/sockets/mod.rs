//! The socket layer: TCP connection lifecycle, failures, resets,
//! retransmits and RTT from the kernel's TCP tracepoints
//! (`probes/socket.bpf.c`), counted like the kernel's own SNMP counters.
//!
//! - [`SocketLayer::start`] loads the probes per the flags, or says in one
//!   log line why the socket layer is off; XDP and TC are not affected.
//! - The collector drains the probes' ring buffer ([`SocketProbes::drain`])
//!   and takes a [`SocketSnapshot`] each collection: `/status` field
//!   `sockets`, and [`render_metrics`].
//! - Detectors of abnormal connections (many failed connects from one
//!   process, resets to many peers) see every [`SocketEvent`] with the
//!   process, the peer and the outcome: through a hook
//!   ([`SocketProbes::add_hook`], called inline on the collector's thread)
//!   or a bounded queue they pull after each drain
//!   ([`SocketProbes::enable_event_queue`], [`SocketProbes::take_events`]).
//!   Events reach the agent when the ring is a quarter full or at the next
//!   collection, whichever comes first.
//!
//! Owners: each connection carries the process that owns it, kept on the
//! socket itself: `connect()`'s caller, the process that accepts it (the
//! accept probe) or, until then and on kernels without that probe, the
//! process that called `listen()` on its listener. Sockets open before
//! the agent started are learned once from `/proc` ([`learn`]). `/status`
//! says per connection which rule applied (`owner_source`). See
//! docs/sockets.md.
//!
//! Namespaces: by default only the agent's own network namespace is
//! counted (`--socket-netns self`), so the counters are that namespace's
//! `/proc/net/snmp`; `--socket-netns all` counts every namespace together.
//! The iterator that refreshes bytes and RTT of open connections, and finds
//! those open before the start, walks only the agent's namespace.

mod kernel;
pub mod learn;
pub mod model;
mod render;

use std::fmt;
use std::time::Duration;

pub use kernel::{own_netns, SocketError, SocketProbes, KERNEL_BTF};
pub use model::{
    ConnEntry, Direction, EventKind, Outcome, OwnerSource, SocketEvent, SocketEventHook,
    SocketSnapshot,
};
pub use render::render_metrics;

use log::{info, warn};

/// `--socket-probes`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketProbesMode {
    /// Load them; without BTF or when the kernel refuses, run without.
    Auto,
    Off,
}

impl std::str::FromStr for SocketProbesMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" | "on" => Ok(SocketProbesMode::Auto),
            "off" => Ok(SocketProbesMode::Off),
            _ => Err(format!(
                "unknown socket probes mode '{s}': expected auto or off"
            )),
        }
    }
}

impl fmt::Display for SocketProbesMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SocketProbesMode::Auto => "auto",
            SocketProbesMode::Off => "off",
        })
    }
}

/// `--socket-accept-probe`: how the process that accepts a connection is
/// found (it owns the connection from then on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcceptProbeMode {
    /// fexit/inet_csk_accept where the kernel has BPF trampolines, else the
    /// exit of accept() and accept4() (every system call passes it).
    Auto,
    /// fexit only; without it, the listener's owner.
    Fexit,
    /// The system call exit only.
    Syscall,
    /// No accept probe: accepted connections keep their listener's owner.
    Off,
}

impl std::str::FromStr for AcceptProbeMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AcceptProbeMode::Auto),
            "fexit" => Ok(AcceptProbeMode::Fexit),
            "syscall" => Ok(AcceptProbeMode::Syscall),
            "off" => Ok(AcceptProbeMode::Off),
            _ => Err(format!(
                "unknown accept probe '{s}': expected auto, fexit, syscall or off"
            )),
        }
    }
}

impl fmt::Display for AcceptProbeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AcceptProbeMode::Auto => "auto",
            AcceptProbeMode::Fexit => "fexit",
            AcceptProbeMode::Syscall => "syscall",
            AcceptProbeMode::Off => "off",
        })
    }
}

/// `--socket-netns`: which network namespaces the socket layer counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetnsScope {
    /// The agent's own (its `/proc/net/snmp`).
    SelfNs,
    /// Every namespace, together.
    All,
}

impl NetnsScope {
    pub fn name(self) -> &'static str {
        match self {
            NetnsScope::SelfNs => "self",
            NetnsScope::All => "all",
        }
    }
}

impl std::str::FromStr for NetnsScope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "self" => Ok(NetnsScope::SelfNs),
            "all" => Ok(NetnsScope::All),
            _ => Err(format!(
                "unknown socket namespace scope '{s}': expected self or all"
            )),
        }
    }
}

impl fmt::Display for NetnsScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Sizes and choices fixed when the socket probes load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketConfig {
    pub mode: SocketProbesMode,
    pub netns: NetnsScope,
    /// Entries of the kernel connection table.
    pub max_connections: u32,
    /// Length of each list in `/status`.
    pub top_connections: usize,
    /// Bytes of the connection-event ring buffer (power of two).
    pub ringbuf_size: u32,
    /// Time allowed at start to learn the owners of sockets already open
    /// (zero: not learned).
    pub learn_timeout: Duration,
    pub accept_probe: AcceptProbeMode,
    pub features: SocketFeatures,
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            mode: SocketProbesMode::Auto,
            netns: NetnsScope::SelfNs,
            max_connections: 16384,
            top_connections: 10,
            ringbuf_size: 256 * 1024,
            learn_timeout: Duration::from_secs(2),
            // Not Auto: its fallback taxes every system call on the host
            // to name a process a listener's owner names well enough.
            accept_probe: AcceptProbeMode::Fexit,
            features: SocketFeatures::default(),
        }
    }
}

/// Kernel features the socket layer uses where the kernel has them (all by
/// default). Turning one off runs, on this kernel, the fallback an older
/// one gets: the kernel tests do, to check those paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketFeatures {
    /// Socket storage in tracing programs (5.11+): owners and the
    /// established gauge kept on each socket.
    pub socket_storage: bool,
}

impl Default for SocketFeatures {
    fn default() -> Self {
        SocketFeatures {
            socket_storage: true,
        }
    }
}

/// The socket layer as the collector holds it.
pub enum SocketLayer {
    Loaded(Box<SocketProbes>),
    /// Not running, and why (shown in `/status`).
    Disabled(String),
}

impl SocketLayer {
    /// Loads the socket probes unless `--socket-probes off`. Never fails:
    /// without BTF, or when the kernel refuses them, the agent runs without
    /// the socket layer and says so in one log line.
    pub fn start(config: &SocketConfig) -> SocketLayer {
        if config.mode == SocketProbesMode::Off {
            info!("socket probes off (--socket-probes off)");
            return SocketLayer::Disabled("off (--socket-probes off)".into());
        }
        // Loading parses the kernel's BTF (megabytes, freed after): the
        // agent hands the freed heap back (main.rs, release_load_memory).
        match SocketProbes::load(config) {
            Ok(p) => SocketLayer::Loaded(Box::new(p)),
            Err(e) => {
                warn!("socket layer disabled: {e}; XDP and TC probes keep working");
                SocketLayer::Disabled(e.to_string())
            }
        }
    }

    pub fn probes_mut(&mut self) -> Option<&mut SocketProbes> {
        match self {
            SocketLayer::Loaded(p) => Some(p),
            SocketLayer::Disabled(_) => None,
        }
    }

    /// The layer's snapshot for this collection.
    pub fn snapshot(&mut self, boot_now_ns: u64) -> SocketSnapshot {
        match self {
            SocketLayer::Loaded(p) => p.snapshot(boot_now_ns),
            SocketLayer::Disabled(why) => SocketSnapshot::disabled(why.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse() {
        assert_eq!("auto".parse(), Ok(SocketProbesMode::Auto));
        assert_eq!("off".parse(), Ok(SocketProbesMode::Off));
        assert!("maybe"
            .parse::<SocketProbesMode>()
            .unwrap_err()
            .contains("maybe"));
        assert_eq!("syscall".parse(), Ok(AcceptProbeMode::Syscall));
        assert_eq!("off".parse(), Ok(AcceptProbeMode::Off));
        assert!("kprobe"
            .parse::<AcceptProbeMode>()
            .unwrap_err()
            .contains("fexit"));
        assert_eq!("self".parse(), Ok(NetnsScope::SelfNs));
        assert_eq!("all".parse(), Ok(NetnsScope::All));
        assert!("host".parse::<NetnsScope>().is_err());
    }

    #[test]
    fn off_is_disabled_without_touching_the_kernel() {
        let cfg = SocketConfig {
            mode: SocketProbesMode::Off,
            ..Default::default()
        };
        let mut l = SocketLayer::start(&cfg);
        assert!(l.probes_mut().is_none());
        let s = l.snapshot(0);
        assert!(!s.loaded);
        assert!(s.disabled_reason.unwrap().contains("--socket-probes off"));
    }
}
