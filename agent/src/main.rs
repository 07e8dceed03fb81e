//! netprobe-agent: loads the probes, attaches them, collects, serves HTTP.

use std::process::ExitCode;
use std::time::Duration;

use log::{error, info};
use netprobe::collector::{Collector, CollectorConfig, Selection};
use netprobe::config::Args;
use netprobe::http::auth::Credentials;
use netprobe::http::{MetricsServer, ServerConfig};
use netprobe::manager::Manager;
use netprobe::sinks::Sinks;
use netprobe::snapshot::Published;
use netprobe::{kernel, netif};
use signal_hook::consts::{SIGINT, SIGTERM};

/// Exit codes: 0 clean stop, 1 runtime failure, 2 bad command line.
fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let strs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let args = match <Args as argh::FromArgs>::from_args(&["netprobe-agent"], &strs[1..]) {
        Ok(a) => a,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    print!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!("netprobe-agent: {}", early.output.trim_end());
                    eprintln!("Run netprobe-agent --help for usage.");
                    ExitCode::from(2)
                }
            };
        }
    };
    if args.version {
        println!("netprobe-agent {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    env_logger::Builder::new()
        .filter_level(args.log_level)
        .parse_default_env()
        .format_timestamp_secs()
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("netprobe-agent: {m}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(m)) => {
            error!("{m}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Runtime(String),
}

fn run(args: Args) -> Result<(), Failure> {
    if args.cleanup {
        return cleanup(&args);
    }
    raise_nofile_limit();
    let filter = args.interface_filter().map_err(Failure::Usage)?;
    if let Some(f) = &filter {
        for name in f.exact_names() {
            netif::by_name(name).map_err(|_| {
                Failure::Usage(format!(
                    "interface '{name}' does not exist (see `ip link show`)"
                ))
            })?;
        }
    }
    let auth = match &args.metrics_auth_file {
        Some(path) => Some(std::sync::Arc::new(
            Credentials::load(path).map_err(Failure::Usage)?,
        )),
        None => None,
    };
    // The sinks before anything is attached: a bad URL, CA file or spool
    // directory is a usage error.
    let sinks_config = args.sinks_config().map_err(Failure::Usage)?;
    let mut sinks = if sinks_config.is_empty() {
        None
    } else {
        Some(Sinks::start(&sinks_config).map_err(Failure::Usage)?)
    };
    let kv = kernel::KernelVersion::current();
    if kv < kernel::MINIMUM {
        return Err(Failure::Runtime(format!(
            "kernel {kv} is too old: NetProbe needs Linux {} or later (BPF ring buffer)",
            kernel::MINIMUM
        )));
    }

    // Bind first: a busy port fails before anything is attached.
    let server_config = ServerConfig {
        address: args.listen_address,
        port: args.metrics_port,
        workers: args.http_workers,
        max_connections: args.http_max_connections,
        timeout: args.http_timeout,
        max_request_bytes: args.http_max_request_bytes,
        auth,
    };
    let mut server = MetricsServer::bind(&server_config).map_err(Failure::Runtime)?;
    if !args.listen_address.is_loopback() && server_config.auth.is_none() {
        log::warn!(
            "serving /metrics and /status without credentials on {}: anyone who reaches it reads flows, \
             addresses and connection tables; set --metrics-auth-file, or listen on 127.0.0.1 or the LAN side only",
            args.listen_address
        );
    }

    let probe_config = args.probe_config().map_err(Failure::Usage)?;
    let mut manager =
        Manager::load(probe_config.clone()).map_err(|e| Failure::Runtime(e.to_string()))?;
    let detector =
        netprobe::detect::Detector::new(&probe_config.detect, manager.take_detect_maps());
    let selection = match filter.clone() {
        Some(f) => Selection::Filter(f),
        None => Selection::AllUp,
    };
    let published = Published::new();
    let mut collector = Collector::new(
        manager,
        CollectorConfig {
            interval: args.collect_interval,
            selection,
            top_flows: args.top_flows,
            flow_idle_timeout: args.flow_idle_timeout,
        },
        published.clone(),
    );
    collector.set_sockets(netprobe::sockets::SocketLayer::start(&args.socket_config()));
    release_load_memory();
    collector.set_detector(detector);
    let failures = collector.sync_interfaces();
    for (name, e) in &failures {
        // An interface the operator named must work; discovered ones may not.
        let named = filter
            .as_ref()
            .is_some_and(|f| f.exact_names().any(|n| n == name));
        if named {
            return Err(Failure::Runtime(e.to_string()));
        }
        log::warn!("not watching {name}: {e}");
    }
    collector.manager_mut().prune_pins();
    collector.manager_mut().set_keep_on_exit(args.keep_on_exit);
    if collector.manager().attached().is_empty() {
        log::warn!(
            "no interface matches yet; watching for new ones every {:?}",
            args.collect_interval
        );
    }
    collector
        .collect_once()
        .map_err(|e| Failure::Runtime(e.to_string()))?;

    let stale_after = args.collect_interval * 3 + Duration::from_secs(5);
    server.start(args.http_workers, published, stale_after);
    info!("serving http://{}/metrics and /status", server.local_addr());
    if let Some(mut s) = sinks.take() {
        if let Some(own) = server.own_metrics_source() {
            s.set_extra_metrics(Box::new(own));
        }
        collector.set_sink(Box::new(s));
    }

    let (tx, rx) = smol::channel::bounded::<i32>(1);
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| Failure::Runtime(format!("installing signal handlers: {e}")))?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let _ = tx.send_blocking(sig);
        }
    });
    let sig = smol::block_on(smol::future::or(
        async {
            collector.run().await;
            0
        },
        async { rx.recv().await.unwrap_or(0) },
    ));
    handle.close();
    // Writers flush their spool directories; IPFIX reports open flows.
    collector.shutdown_sink();
    if args.keep_on_exit {
        info!("signal {sig}: exiting; probes stay attached and pinned (--keep-on-exit)");
    } else {
        info!("signal {sig}: detaching and exiting");
    }
    drop(collector); // detaches and unpins everything, unless --keep-on-exit
    server.shutdown();
    Ok(())
}

/// `--cleanup`: removes what an earlier run left: NetProbe's clsact
/// filters on every interface (netlink objects no pin holds), then its pin
/// layout under `--pin-path` (removing a link's pin detaches it; programs
/// and maps go with their last reference). It refuses a `--pin-path` that
/// is not on a bpffs or fails the pin tree's checks, and touches nothing
/// outside NetProbe's layout.
fn cleanup(args: &Args) -> Result<(), Failure> {
    if args.pin_path.as_os_str().is_empty() {
        return Err(Failure::Usage("--cleanup needs a --pin-path".into()));
    }
    let filters = netprobe::manager::cleanup_filters();
    if let Ok(n) = &filters {
        info!("removed {n} clsact filters");
    }
    let root = &args.pin_path;
    let pins =
        netprobe::pins::cleanup(root).map_err(|e| Failure::Runtime(format!("--cleanup: {e}")))?;
    info!("removed {} pins under {}", pins.removed, root.display());
    if !pins.left.is_empty() {
        return Err(Failure::Runtime(format!(
            "--cleanup left what is not NetProbe's layout, or could not be removed: {}",
            pins.left.join("; ")
        )));
    }
    filters
        .map(drop)
        .map_err(|e| Failure::Runtime(format!("--cleanup: {e}")))
}

/// Raises the soft open-file limit to the hard one: HTTP connections take
/// one descriptor each, and `--http-max-connections` is then lowered to
/// what the limit leaves room for (`http::connection_budget`), never the
/// collector's share.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit; raising the soft
    // limit up to the hard one needs no privilege.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::debug!("raising RLIMIT_NOFILE: {}", std::io::Error::last_os_error());
            }
        }
    }
}

/// Loading parses the kernel's BTF (several MB) for CO-RE; it is freed
/// after, but glibc keeps freed heap mapped. Hand it back so the agent's
/// RSS is its steady state. (musl's allocator unmaps large frees itself.)
fn release_load_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free heap pages.
    unsafe {
        libc::malloc_trim(0);
    }
}
