//! Command-line flags and the parsers behind their values. Every bound the
//! agent has is a flag here, with a default that suits a small gateway.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use argh::FromArgs;

use crate::detect::DetectConfig;
use crate::export::ipfix::{IpfixConfig, Timeouts};
use crate::export::remote_write::{Authorization, ExternalLabels, RemoteWriteConfig};
use crate::manager::ProbeConfig;
use crate::sinks::{spool_subdir, SinksConfig};
use crate::sockets::{SocketConfig, SocketFeatures};

/// Environment variable that supplies `--interface-filter` when the flag is absent.
pub const INTERFACE_ENV: &str = "NETWORK_INTERFACE";

#[derive(FromArgs, Debug, Clone)]
/// NetProbe agent: counts packets, bytes, protocols and flows with XDP and TC
/// probes and serves Prometheus metrics (/metrics) and JSON status (/status).
pub struct Args {
    /// TCP port of the HTTP server (default 8081)
    #[argh(option, default = "8081")]
    pub metrics_port: u16,

    /// address the HTTP server binds to (default 127.0.0.1: this host only;
    /// give a LAN address, 0.0.0.0 or :: to be scraped from elsewhere, best
    /// with --metrics-auth-file)
    #[argh(option, default = "IpAddr::from([127, 0, 0, 1])")]
    pub listen_address: IpAddr,

    /// how often the maps are read, e.g. 500ms, 5s, 1m (default 5s; 100ms to 1h)
    #[argh(
        option,
        default = "Duration::from_secs(5)",
        from_str_fn(parse_interval)
    )]
    pub collect_interval: Duration,

    /// comma-separated interface names or globs (ppp*, wlan?); default: the
    /// NETWORK_INTERFACE variable, else every interface that is up, not loopback
    #[argh(option)]
    pub interface_filter: Option<String>,

    /// XDP attach mode: auto (native XDP where the driver has it, except veth; elsewhere TC
    /// alone, which keeps GRO), native, generic (any device; turns its GRO off), off (TC alone)
    /// (default auto)
    #[argh(option, default = "XdpMode::Auto")]
    pub xdp_mode: XdpMode,

    /// size of the kernel flow table (LRU; default 65536 flows, ~100 B each)
    #[argh(option, default = "65536", from_str_fn(parse_max_flows))]
    pub max_flows: u32,

    /// how many flows /status lists, busiest first (default 10; 0 to 10000)
    #[argh(option, default = "10", from_str_fn(parse_top_flows))]
    pub top_flows: usize,

    /// how many interfaces the kernel maps have room for (default 64; 1 to 4096)
    #[argh(option, default = "64", from_str_fn(parse_max_interfaces))]
    pub max_interfaces: u32,

    /// new flows each CPU may add to the flow table per second, the flood
    /// guard (default 20000; 0 = unlimited)
    #[argh(option, default = "20000")]
    pub flow_admit_rate: u64,

    /// burst of new flows admitted at once per CPU (default 5000; at least 1)
    #[argh(option, default = "5000", from_str_fn(parse_admit_burst))]
    pub flow_admit_burst: u64,

    /// flows idle this long are removed from the flow table (default 5m)
    #[argh(
        option,
        default = "Duration::from_secs(300)",
        from_str_fn(parse_duration)
    )]
    pub flow_idle_timeout: Duration,

    /// size of the probe-to-agent event ring buffer in bytes, a power of two,
    /// at least 4096 (default 262144)
    #[argh(option, default = "262144", from_str_fn(parse_ringbuf_size))]
    pub ringbuf_size: u32,

    /// TCP socket-layer probes (tracepoints; need kernel BTF): auto (load
    /// them, run without them where the kernel cannot) or off (default auto)
    #[argh(option, default = "crate::sockets::SocketProbesMode::Auto")]
    pub socket_probes: crate::sockets::SocketProbesMode,

    /// network namespaces the socket layer counts: self (the agent's own)
    /// or all (default self)
    #[argh(option, default = "crate::sockets::NetnsScope::SelfNs")]
    pub socket_netns: crate::sockets::NetnsScope,

    /// size of the kernel TCP connection table (default 16384 connections,
    /// ~200 B each; 16 to 1048576)
    #[argh(option, default = "16384", from_str_fn(parse_max_connections))]
    pub max_connections: u32,

    /// how many connections each /status list shows: longest-lived,
    /// busiest, recent failures (default 10; 0 to 1000)
    #[argh(option, default = "10", from_str_fn(parse_top_connections))]
    pub top_connections: usize,

    /// how the socket layer finds the process that accepts a connection:
    /// fexit (fexit/inet_csk_accept where the kernel has BPF trampolines,
    /// else the listener's process), auto (fexit, else the exit of accept()
    /// and accept4(), which every system call on the host then passes, at
    /// about 110-140 ns each), syscall, or off (the listener's process)
    /// (default fexit)
    #[argh(option, default = "crate::sockets::AcceptProbeMode::Fexit")]
    pub socket_accept_probe: crate::sockets::AcceptProbeMode,

    /// time the socket layer may spend at start finding the processes of
    /// sockets already open, in /proc/*/fd as ss -p does (default 2s; 0 =
    /// not learned; up to 1m)
    #[argh(
        option,
        default = "Duration::from_secs(2)",
        from_str_fn(parse_socket_learn_timeout)
    )]
    pub socket_learn_timeout: Duration,

    /// HTTP threads kept ready; more start on demand up to
    /// --http-max-connections and stop after 5 s idle (default 2; 1 to 64)
    #[argh(option, default = "2", from_str_fn(parse_http_workers))]
    pub http_workers: usize,

    /// most HTTP connections open at once, half of them per client address,
    /// lowered to what the open-file limit allows; when full a new one
    /// replaces an idle one or a slow reader (default 64; 1 to 4096)
    #[argh(option, default = "64", from_str_fn(parse_http_max_connections))]
    pub http_max_connections: usize,

    /// time an HTTP client has to send its whole request head, and to take
    /// the response (default 5s; 100ms to 5m)
    #[argh(
        option,
        default = "Duration::from_secs(5)",
        from_str_fn(parse_http_timeout)
    )]
    pub http_timeout: Duration,

    /// largest HTTP request head in bytes; larger ones get 431 (default
    /// 8192; 1024 to 1048576)
    #[argh(option, default = "8192", from_str_fn(parse_http_max_request_bytes))]
    pub http_max_request_bytes: usize,

    /// file holding `Bearer TOKEN` or `USER:PASSWORD` that /metrics, /status
    /// and / then require (/healthz stays open); default: no auth
    #[argh(option)]
    pub metrics_auth_file: Option<std::path::PathBuf>,

    /// log level when RUST_LOG is unset: error, warn, info, debug, trace (default info)
    #[argh(option, default = "log::LevelFilter::Info")]
    pub log_level: log::LevelFilter,

    /// bpffs directory where maps and links are pinned so counting goes on
    /// across restarts (default /sys/fs/bpf/netprobe; '' disables pinning)
    #[argh(
        option,
        default = "std::path::PathBuf::from(crate::pins::DEFAULT_PIN_PATH)"
    )]
    pub pin_path: std::path::PathBuf,

    /// on SIGTERM/SIGINT leave the probes attached and pinned, so the next
    /// start continues their counts (init scripts use this); without it the
    /// agent detaches and unpins everything on exit
    #[argh(switch)]
    pub keep_on_exit: bool,

    /// remove every pin, link and program under --pin-path left by an
    /// earlier run, then exit
    #[argh(switch)]
    pub cleanup: bool,

    /// turn off scan, flood and abnormal-connection detection (on by default)
    #[argh(switch)]
    pub no_detect: bool,

    /// window of the scan detectors (default 2s; 10ms to 1m)
    #[argh(
        option,
        default = "Duration::from_secs(2)",
        from_str_fn(crate::detect::parse_window)
    )]
    pub scan_window: Duration,

    /// distinct destination ports one source failed to reach within
    /// --scan-window (refused, or unanswered after --scan-reply-timeout;
    /// answered connections do not count) that make a vertical scan
    /// (default 25; 0 = off; at most 200)
    #[argh(
        option,
        default = "25",
        from_str_fn(crate::detect::parse_scan_threshold)
    )]
    pub scan_ports: u32,

    /// distinct destination hosts one source failed to reach within
    /// --scan-window that make a horizontal scan (default 16; 0 = off; at
    /// most 200)
    #[argh(
        option,
        default = "16",
        from_str_fn(crate::detect::parse_scan_threshold)
    )]
    pub scan_hosts: u32,

    /// a connection attempt (SYN, first UDP datagram) not answered within
    /// this long counts as a failed one for the scan detectors (default
    /// 500ms; 10ms to 10s)
    #[argh(
        option,
        default = "Duration::from_millis(500)",
        from_str_fn(crate::detect::parse_reply_timeout)
    )]
    pub scan_reply_timeout: Duration,

    /// window of the flood detectors (default 100ms; 10ms to 1m)
    #[argh(
        option,
        default = "Duration::from_millis(100)",
        from_str_fn(crate::detect::parse_window)
    )]
    pub flood_window: Duration,

    /// SYNs per second toward one destination beyond its completed
    /// handshakes (half-open) that make a SYN flood (default 3000; k, M
    /// suffixes; 0 = off)
    #[argh(option, default = "3000", from_str_fn(crate::units::parse_rate))]
    pub syn_flood_rate: u64,

    /// unsolicited UDP packets per second toward one destination: replies
    /// and packets of two-way flows do not count (default 50000, 600
    /// Mbit/s of 1500-byte datagrams; k, M suffixes; 0 = off)
    #[argh(option, default = "50000", from_str_fn(crate::units::parse_rate))]
    pub udp_flood_rate: u64,

    /// unsolicited ICMP/ICMPv6 packets per second toward one destination:
    /// echo replies to its own pings do not count (default 2000; 0 = off)
    #[argh(option, default = "2000", from_str_fn(crate::units::parse_rate))]
    pub icmp_flood_rate: u64,

    /// unsolicited packets per second toward one destination, any protocol
    /// (default 0 = off)
    #[argh(option, default = "0", from_str_fn(crate::units::parse_rate))]
    pub dst_pps: u64,

    /// unsolicited bits per second toward one destination, e.g. 500M
    /// (default 0 = off)
    #[argh(option, default = "0", from_str_fn(crate::units::parse_rate))]
    pub dst_bps: u64,

    /// packets per second received on one interface (default 0 = off)
    #[argh(option, default = "0", from_str_fn(crate::units::parse_rate))]
    pub iface_pps: u64,

    /// bits per second received on one interface, e.g. 1G (default 0 = off)
    #[argh(option, default = "0", from_str_fn(crate::units::parse_rate))]
    pub iface_bps: u64,

    /// refusals per second toward one prober: RSTs answering its probes
    /// and ICMP unreachables (RSTs that end established connections do
    /// not count) (default 1000; 0 = off)
    #[argh(option, default = "1000", from_str_fn(crate::units::parse_rate))]
    pub closed_port_rate: u64,

    /// alert on connection attempts (SYN, first UDP datagram; never
    /// multicast or broadcast) to ports outside this list, e.g.
    /// 22,80,443,8000-8100 (default: no port policy)
    #[argh(option, from_str_fn(crate::detect::parse_ports))]
    pub allowed_ports: Option<Vec<u16>>,

    /// the networks on this side of the gateway, CIDRs separated by commas;
    /// `auto` stands for the default: the watched interfaces' own addresses
    /// and connected prefixes, plus 10/8, 172.16/12, 192.168/16, 100.64/10
    /// and fc00::/7. Alerts are about traffic from outside toward them;
    /// their addresses are never blocked (printed at start)
    #[argh(
        option,
        default = "crate::detect::home::HomeSpec::default()",
        from_str_fn(crate::detect::home::HomeSpec::parse)
    )]
    pub home_networks: crate::detect::home::HomeSpec,

    /// also alert (never block) on scans from home addresses and floods
    /// toward addresses outside the home networks, as low-severity
    /// outbound alerts (default: they raise nothing)
    #[argh(switch)]
    pub alert_outbound: bool,

    /// file of IPv4/IPv6 addresses or CIDRs, one per line (# comments):
    /// traffic from or to them raises an alert, and is dropped with --mitigate=on
    #[argh(option)]
    pub blocklist: Option<std::path::PathBuf>,

    /// file of addresses or CIDRs that are never dropped
    #[argh(option)]
    pub allowlist: Option<std::path::PathBuf>,

    /// off (default): never drop; dry-run: count what would be dropped; on:
    /// drop blocklisted sources, and a scan/flood source outside the home
    /// networks once it alone crossed a threshold in --block-after windows;
    /// its packets that answer a conversation this side started still pass
    #[argh(option, default = "crate::detect::Mitigate::Off")]
    pub mitigate: crate::detect::Mitigate,

    /// windows in which a source alone must cross a scan or flood
    /// threshold before it is blocked: the alert and its repeats (default
    /// 2; 2 to 10)
    #[argh(option, default = "2", from_str_fn(crate::detect::parse_block_after))]
    pub block_after: u32,

    /// how long a detected source stays blocked (default 60s)
    #[argh(
        option,
        default = "Duration::from_secs(60)",
        from_str_fn(parse_duration)
    )]
    pub block_duration: Duration,

    /// an alert stays active this long after its last threshold crossing (default 10s)
    #[argh(
        option,
        default = "Duration::from_secs(10)",
        from_str_fn(parse_duration)
    )]
    pub alert_hold: Duration,

    /// alerts the agent remembers, active and recent (default 256; 1 to 100000)
    #[argh(option, default = "256", from_str_fn(crate::detect::parse_max_alerts))]
    pub max_alerts: usize,

    /// sources blocked at once (default 4096; 1 to 1048576)
    #[argh(
        option,
        default = "4096",
        from_str_fn(crate::detect::parse_max_blocked)
    )]
    pub max_blocked: u32,

    /// window of the connection detectors, conn_failures and reset_peers (default 10s; 10ms to 1m)
    #[argh(
        option,
        default = "Duration::from_secs(10)",
        from_str_fn(crate::detect::parse_window)
    )]
    pub conn_window: Duration,

    /// distinct peers one process failed to connect to (refused, timed
    /// out, reset in the handshake) within --conn-window that raise a
    /// conn_failures alert; one peer failing again and again is a failing
    /// dependency, listed in /status failures (default 10; 0 = off; at
    /// most 1024)
    #[argh(
        option,
        default = "10",
        from_str_fn(crate::detect::parse_conn_fail_threshold)
    )]
    pub conn_fail_threshold: u32,

    /// distinct peers of TCP resets (sent or received) from one process, or
    /// one local address, within --conn-window that raise a reset_peers
    /// alert; resets with which a local socket ends a connection it had
    /// (a service stopping) do not count (default 10; 0 = off; at most 1024)
    #[argh(
        option,
        default = "10",
        from_str_fn(crate::detect::parse_reset_peers_threshold)
    )]
    pub reset_peers_threshold: u32,

    /// per-source scan slots in the kernel, a power of two (default 4096, 192 B each)
    #[argh(option, default = "4096", from_str_fn(crate::detect::parse_slots))]
    pub scan_slots: u32,

    /// per-destination flood counters in the kernel, a power of two (default 4096, 64 B each)
    #[argh(option, default = "4096", from_str_fn(crate::detect::parse_slots))]
    pub flood_slots: u32,

    /// seed of the detectors' slot hashes (default 0: a random one at
    /// each start; set it only to reproduce a test)
    #[argh(option, default = "0")]
    pub hash_seed: u64,

    /// a Prometheus remote_write receiver to push every series /metrics
    /// shows to, http(s)://HOST[:PORT]/PATH; repeat for a second receiver
    /// (at most 2; default: no pushes)
    #[argh(option)]
    pub remote_write_url: Vec<String>,

    /// how often the latest collection is pushed (default: --collect-interval;
    /// not shorter than it; at most 1h)
    #[argh(option, from_str_fn(parse_remote_write_interval))]
    pub remote_write_interval: Option<Duration>,

    /// external label every pushed series gets, NAME=VALUE (repeatable:
    /// site=..., gateway=...)
    #[argh(option)]
    pub remote_write_label: Vec<String>,

    /// file holding `Bearer TOKEN` or `USER:PASSWORD` sent to the receivers
    /// (same format as --metrics-auth-file; never logged)
    #[argh(option)]
    pub remote_write_auth_file: Option<std::path::PathBuf>,

    /// a PEM file of the CA certificates https receivers are checked against
    /// (default: the Mozilla roots; needs the remote-write-https build)
    #[argh(option)]
    pub remote_write_ca_file: Option<std::path::PathBuf>,

    /// time one push may take, connect to last byte (default 10s; 100ms to 5m)
    #[argh(
        option,
        default = "RemoteWriteConfig::default().timeout",
        from_str_fn(parse_remote_write_timeout)
    )]
    pub remote_write_timeout: Duration,

    /// bound on unsent samples kept per receiver while it is unreachable,
    /// in bytes; when full the oldest go first, counted (default 8388608;
    /// 65536 to 1073741824)
    #[argh(
        option,
        default = "RemoteWriteConfig::default().spool_bytes",
        from_str_fn(parse_remote_write_spool_bytes)
    )]
    pub remote_write_spool_bytes: usize,

    /// directory that keeps unsent samples across restarts (one
    /// subdirectory per receiver, written once a minute and at exit);
    /// default: memory only
    #[argh(option)]
    pub remote_write_spool_dir: Option<std::path::PathBuf>,

    /// an IPFIX collector to export every flow to: HOST:PORT (UDP) or
    /// tcp://HOST:PORT (default: no export)
    #[argh(option, from_str_fn(parse_ipfix_collector))]
    pub ipfix_collector: Option<crate::export::ipfix::Collector>,

    /// a long flow is reported at least this often (default 60s; 1s to 1h)
    #[argh(
        option,
        default = "Timeouts::default().active",
        from_str_fn(parse_ipfix_timeout)
    )]
    pub ipfix_active_timeout: Duration,

    /// a flow without packets this long has ended and is reported
    /// (default 15s; 1s to 1h)
    #[argh(
        option,
        default = "Timeouts::default().idle",
        from_str_fn(parse_ipfix_timeout)
    )]
    pub ipfix_idle_timeout: Duration,

    /// the IPFIX Observation Domain ID in every message (default 1)
    #[argh(option, default = "IpfixConfig::default().domain_id")]
    pub ipfix_domain_id: u32,

    /// over UDP, how often the templates are sent again (default 60s; 1s to 1h)
    #[argh(
        option,
        default = "IpfixConfig::default().template_refresh",
        from_str_fn(parse_ipfix_timeout)
    )]
    pub ipfix_template_refresh: Duration,

    /// largest IP packet an IPFIX message goes in, headers included
    /// (default 1500; at most 65535)
    #[argh(
        option,
        default = "IpfixConfig::default().mtu",
        from_str_fn(parse_ipfix_mtu)
    )]
    pub ipfix_mtu: usize,

    /// print the version and exit
    #[argh(switch)]
    pub version: bool,
}

impl Args {
    /// The interface filter in force: the flag, else `NETWORK_INTERFACE`.
    pub fn interface_filter(&self) -> Result<Option<InterfaceFilter>, String> {
        let raw = match &self.interface_filter {
            Some(s) => Some(s.clone()),
            None => std::env::var(INTERFACE_ENV)
                .ok()
                .filter(|s| !s.trim().is_empty()),
        };
        raw.map(|s| InterfaceFilter::parse(&s)).transpose()
    }
}

/// Each domain's configuration, built from the flags in one place: the
/// domains never see [`Args`].
impl Args {
    /// The packet probes' configuration, detection included.
    ///
    /// # Errors
    /// A bad `--interface-filter`, or a list file that is unreadable or
    /// has a bad line (the message names it).
    pub fn probe_config(&self) -> Result<ProbeConfig, String> {
        Ok(ProbeConfig {
            max_flows: self.max_flows,
            max_interfaces: self.max_interfaces,
            flow_admit_rate: self.flow_admit_rate,
            flow_admit_burst: self.flow_admit_burst,
            ringbuf_size: self.ringbuf_size,
            xdp_mode: self.xdp_mode,
            pin_path: Some(self.pin_path.clone()).filter(|p| !p.as_os_str().is_empty()),
            detect: self.detect_config()?,
        })
    }

    /// Detection: thresholds, home networks, lists (read from their files)
    /// and mitigation.
    ///
    /// # Errors
    /// As [`Args::probe_config`].
    pub fn detect_config(&self) -> Result<DetectConfig, String> {
        let d = DetectConfig::default();
        let max = d.max_list_entries as usize;
        let read = |p: &Option<std::path::PathBuf>| match p {
            Some(p) => crate::lists::load(p, max),
            None => Ok(Vec::new()),
        };
        Ok(DetectConfig {
            enabled: !self.no_detect,
            scan_window: self.scan_window,
            scan_ports: self.scan_ports,
            scan_hosts: self.scan_hosts,
            scan_reply_timeout: self.scan_reply_timeout,
            flood_window: self.flood_window,
            syn_flood_rate: self.syn_flood_rate,
            udp_flood_rate: self.udp_flood_rate,
            icmp_flood_rate: self.icmp_flood_rate,
            dst_pps: self.dst_pps,
            dst_bps: self.dst_bps,
            iface_pps: self.iface_pps,
            iface_bps: self.iface_bps,
            closed_port_rate: self.closed_port_rate,
            allowed_ports: self.allowed_ports.clone(),
            mitigate: self.mitigate,
            block_duration: self.block_duration,
            block_after: self.block_after,
            home: self.home_networks.clone(),
            home_interfaces: self.interface_filter()?,
            alert_outbound: self.alert_outbound,
            hash_seed: if self.hash_seed == 0 {
                crate::detect::random_seed()
            } else {
                self.hash_seed
            },
            scan_slots: self.scan_slots,
            flood_slots: self.flood_slots,
            max_blocked: self.max_blocked,
            alert_hold: self.alert_hold,
            max_alerts: self.max_alerts,
            blocklist: read(&self.blocklist)?,
            allowlist: read(&self.allowlist)?,
            conn_window: self.conn_window,
            conn_fail_threshold: self.conn_fail_threshold,
            reset_peers_threshold: self.reset_peers_threshold,
            ..d
        })
    }

    /// The sinks: remote_write receivers and the IPFIX collector.
    ///
    /// # Errors
    /// A bad flag value or an unreadable auth file; the message names the
    /// flag (the agent then exits with status 2).
    pub fn sinks_config(&self) -> Result<SinksConfig, String> {
        let a = self;
        if a.remote_write_url.len() > MAX_REMOTE_WRITE_URLS {
            return Err(format!(
                "--remote-write-url given {} times: at most {MAX_REMOTE_WRITE_URLS} receivers",
                a.remote_write_url.len()
            ));
        }
        let interval = a.remote_write_interval.unwrap_or(a.collect_interval);
        if interval < a.collect_interval {
            return Err(format!(
                "--remote-write-interval {interval:?} is shorter than --collect-interval {:?}: \
                 only collections can be pushed",
                a.collect_interval
            ));
        }
        let rw_flags_without_url = a.remote_write_interval.is_some()
            || !a.remote_write_label.is_empty()
            || a.remote_write_auth_file.is_some()
            || a.remote_write_ca_file.is_some()
            || a.remote_write_spool_dir.is_some();
        if a.remote_write_url.is_empty() && rw_flags_without_url {
            return Err("--remote-write-* flags need a --remote-write-url".into());
        }
        let external_labels = ExternalLabels::parse(&a.remote_write_label)?;
        let authorization = match &a.remote_write_auth_file {
            Some(p) => Some(Authorization::header(
                crate::http::auth::Credentials::load_for("--remote-write-auth-file", p)?
                    .header_value(),
            )),
            None => None,
        };
        let remote_write = a
            .remote_write_url
            .iter()
            .enumerate()
            .map(|(i, url)| RemoteWriteConfig {
                url: url.clone(),
                receiver: i.to_string(),
                external_labels: external_labels.clone(),
                authorization: authorization.clone(),
                ca_file: a.remote_write_ca_file.clone(),
                timeout: a.remote_write_timeout,
                spool_bytes: a.remote_write_spool_bytes,
                spool_dir: a
                    .remote_write_spool_dir
                    .as_ref()
                    .map(|d| spool_subdir(d, i)),
                ..RemoteWriteConfig::default()
            })
            .collect();
        let ipfix = match &a.ipfix_collector {
            Some(c) => {
                let config = IpfixConfig {
                    collector: c.clone(),
                    timeouts: Timeouts {
                        active: a.ipfix_active_timeout,
                        idle: a.ipfix_idle_timeout,
                    },
                    template_refresh: a.ipfix_template_refresh,
                    domain_id: a.ipfix_domain_id,
                    mtu: a.ipfix_mtu,
                    // With pins kept, the flow table outlives the agent; the
                    // previous run reported its counts up to its exit.
                    baseline_existing_flows: a.keep_on_exit,
                    ..IpfixConfig::default()
                };
                config.validate()?;
                Some(config)
            }
            None => None,
        };
        Ok(SinksConfig {
            remote_write,
            remote_write_interval: interval,
            collect_interval: a.collect_interval,
            ipfix,
        })
    }

    /// The TCP socket layer.
    pub fn socket_config(&self) -> SocketConfig {
        SocketConfig {
            mode: self.socket_probes,
            netns: self.socket_netns,
            max_connections: self.max_connections,
            top_connections: self.top_connections,
            ringbuf_size: self.ringbuf_size,
            learn_timeout: self.socket_learn_timeout,
            accept_probe: self.socket_accept_probe,
            features: SocketFeatures::default(),
        }
    }
}

pub use crate::interface_filter::{glob_match, InterfaceFilter};
pub use crate::manager::XdpMode;
pub use crate::units::parse_duration;

fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!(
            "collect interval '{s}' is out of range (100ms to 1h)"
        ));
    }
    Ok(d)
}

fn parse_in_range<T>(what: &str, s: &str, lo: T, hi: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    let v: T = s
        .trim()
        .parse()
        .map_err(|_| format!("{what} '{s}' is not a whole number"))?;
    if v < lo || v > hi {
        return Err(format!("{what} {v} is out of range ({lo} to {hi})"));
    }
    Ok(v)
}

fn parse_max_flows(s: &str) -> Result<u32, String> {
    parse_in_range("max flows", s, 16, 16 << 20)
}

fn parse_top_flows(s: &str) -> Result<usize, String> {
    parse_in_range("top flows", s, 0, 10_000)
}

fn parse_max_interfaces(s: &str) -> Result<u32, String> {
    parse_in_range("max interfaces", s, 1, 4096)
}

fn parse_admit_burst(s: &str) -> Result<u64, String> {
    parse_in_range("flow admit burst", s, 1, 1 << 30)
}

fn parse_http_workers(s: &str) -> Result<usize, String> {
    parse_in_range("HTTP workers", s, 1, 64)
}

fn parse_http_max_connections(s: &str) -> Result<usize, String> {
    parse_in_range("HTTP max connections", s, 1, 4096)
}

fn parse_http_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(300) {
        return Err(format!("HTTP timeout '{s}' is out of range (100ms to 5m)"));
    }
    Ok(d)
}

fn parse_http_max_request_bytes(s: &str) -> Result<usize, String> {
    parse_in_range("HTTP max request bytes", s, 1024, 1 << 20)
}

fn parse_max_connections(s: &str) -> Result<u32, String> {
    parse_in_range("max connections", s, 16, 1 << 20)
}

fn parse_top_connections(s: &str) -> Result<usize, String> {
    parse_in_range("top connections", s, 0, 1000)
}

fn parse_socket_learn_timeout(s: &str) -> Result<Duration, String> {
    let d = crate::units::parse_duration_or_zero(s)?;
    if d > Duration::from_secs(60) {
        return Err(format!(
            "socket learn timeout '{s}' is out of range (0 to 1m)"
        ));
    }
    Ok(d)
}

/// Most `--remote-write-url` flags.
pub const MAX_REMOTE_WRITE_URLS: usize = 2;

fn parse_remote_write_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!(
            "remote_write interval '{s}' is out of range (100ms to 1h)"
        ));
    }
    Ok(d)
}

fn parse_remote_write_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(300) {
        return Err(format!(
            "remote_write timeout '{s}' is out of range (100ms to 5m)"
        ));
    }
    Ok(d)
}

fn parse_remote_write_spool_bytes(s: &str) -> Result<usize, String> {
    parse_in_range("remote_write spool bytes", s, 64 << 10, 1 << 30)
}

fn parse_ipfix_collector(s: &str) -> Result<crate::export::ipfix::Collector, String> {
    crate::export::ipfix::Collector::parse(s)
}

fn parse_ipfix_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(format!("'{s}' is out of range (1s to 1h)"));
    }
    Ok(d)
}

fn parse_ipfix_mtu(s: &str) -> Result<usize, String> {
    // The lower bound is IpfixConfig::validate's (it knows the message sizes).
    parse_in_range("IPFIX MTU", s, 1, 65535)
}

fn parse_ringbuf_size(s: &str) -> Result<u32, String> {
    let v: u32 = parse_in_range("ring buffer size", s, 4096, 1 << 30)?;
    if !v.is_power_of_two() {
        return Err(format!(
            "ring buffer size {v} is not a power of two (e.g. 262144)"
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each setting's default is defined once: a flag left out gives what
    /// the domain's own `Default` holds (the pin path aside: the library's
    /// default pins nothing, the agent's flag pins under bpffs; the hash
    /// seed: 0 means a random one per start).
    #[test]
    fn no_flags_yield_every_domain_default() {
        let a = Args::from_args(&["netprobe-agent"], &[]).unwrap();
        assert!(
            std::env::var_os(INTERFACE_ENV).is_none(),
            "unset {INTERFACE_ENV} to run this test"
        );
        let mut probe = a.probe_config().unwrap();
        assert_ne!(probe.detect.hash_seed, 0, "a random seed was drawn");
        probe.detect.hash_seed = 0;
        assert_eq!(
            probe,
            ProbeConfig {
                pin_path: Some("/sys/fs/bpf/netprobe".into()),
                ..ProbeConfig::default()
            }
        );
        assert_eq!(a.socket_config(), SocketConfig::default());
        assert!(
            a.sinks_config().unwrap().is_empty(),
            "no sink without a flag"
        );
    }

    fn args(list: &[&str]) -> Result<Args, argh::EarlyExit> {
        Args::from_args(&["netprobe-agent"], list)
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in [
            "5",
            "",
            "s",
            "5x",
            "-5s",
            "5 s",
            "1e3s",
            "..s",
            "99999999h",
            "5sec",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad} accepted");
        }
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
    }

    #[test]
    fn interval_bounds() {
        assert!(parse_interval("50ms").is_err());
        assert!(parse_interval("2h").is_err());
        assert_eq!(parse_interval("100ms"), Ok(Duration::from_millis(100)));
    }

    #[test]
    fn defaults() {
        let a = args(&[]).unwrap();
        assert_eq!(a.metrics_port, 8081);
        assert_eq!(a.collect_interval, Duration::from_secs(5));
        assert_eq!(a.xdp_mode, XdpMode::Auto);
        assert_eq!(a.max_flows, 65536);
        assert_eq!(a.top_flows, 10);
        assert_eq!(a.listen_address.to_string(), "127.0.0.1");
    }

    #[test]
    fn flags_parse_and_reject() {
        let a = args(&[
            "--collect-interval",
            "500ms",
            "--xdp-mode",
            "generic",
            "--max-flows",
            "1024",
        ])
        .unwrap();
        assert_eq!(a.collect_interval, Duration::from_millis(500));
        assert_eq!(a.xdp_mode, XdpMode::Generic);
        assert_eq!(a.max_flows, 1024);
        let err = |l: &[&str]| args(l).unwrap_err().output;
        assert!(err(&["--bogus"]).contains("--bogus"));
        assert!(err(&["--collect-interval", "5"]).contains("no unit"));
        assert!(err(&["--xdp-mode", "turbo"]).contains("turbo"));
        assert!(args(&["--metrics-port", "70000"]).is_err());
        assert!(err(&["--ringbuf-size", "5000"]).contains("power of two"));
        assert!(err(&["--max-flows", "0"]).contains("out of range"));
        assert!(args(&["--listen-address", "not-an-ip"]).is_err());
    }

    #[test]
    fn filters() {
        let f = InterfaceFilter::parse("eth0, ppp*,wlan?").unwrap();
        assert!(f.matches("eth0"));
        assert!(!f.matches("eth1"));
        assert!(f.matches("ppp0") && f.matches("ppp") && f.matches("ppp12"));
        assert!(f.matches("wlan1") && !f.matches("wlan12"));
        assert_eq!(f.exact_names().collect::<Vec<_>>(), ["eth0"]);
        assert!(InterfaceFilter::parse("eth0,,eth1").is_err());
        assert!(InterfaceFilter::parse("a/b").is_err());
        assert!(InterfaceFilter::parse("0123456789abcdef").is_err());
    }

    #[test]
    fn glob_edge_cases() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(!glob_match(b"a*b*c", b"aXXbYY"));
        assert!(glob_match(b"**", b"anything"));
        // Pathological pattern stays fast.
        let s = vec![b'a'; 4000];
        assert!(!glob_match(b"*a*a*a*a*a*a*b", &s));
    }
}
