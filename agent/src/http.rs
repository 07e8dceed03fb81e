//! The HTTP server: a routing table from method and path to a handler, a
//! 404/405 fallback, and a guarded front door. Handlers only share the
//! latest published rendering; they never touch a BPF map.
//!
//! tiny_http parses the header fields and writes every response
//! (`Response::raw_print`: status line, `Date`, `Content-Length` or chunked
//! encoding, HEAD without a body). Its `Server` is not used: its accept
//! thread starts one thread per connection without bound, sets no socket
//! timeouts, reads a request line of any length, and stops accepting for
//! good after one `accept()` error (EMFILE under a connection flood). The
//! [`server`] module does those parts instead, with bounds; see
//! [`MetricsServer`] for what they are.

pub mod auth;
pub mod head;
mod server;
mod server_metrics;

use std::borrow::Cow;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::snapshot::{Published, Rendered};

pub use server::{ServerStats, MAX_UNAUTHORIZED};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub address: IpAddr,
    pub port: u16,
    /// Threads kept ready to answer; more start on demand, up to
    /// `max_connections`, and stop after 5 s idle.
    pub workers: usize,
    /// Connections open at once (each has one thread while open); one
    /// client address may hold half of them. Lowered at start to what the
    /// open-file limit allows ([`connection_budget`]).
    pub max_connections: usize,
    /// Time a client has to send a whole request head, and to take a whole
    /// response; also how long an idle keep-alive connection stays open.
    pub timeout: Duration,
    /// Largest request head, request line and header fields together.
    pub max_request_bytes: usize,
    /// Credentials `/`, `/metrics` and `/status` require; `/healthz` stays open.
    pub auth: Option<Arc<auth::Credentials>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            address: IpAddr::from([127, 0, 0, 1]),
            port: 8081,
            workers: 2,
            max_connections: 64,
            timeout: Duration::from_secs(5),
            max_request_bytes: 8192,
            auth: None,
        }
    }
}

/// Pending connections the kernel queues before `accept()`.
const LISTEN_BACKLOG: libc::c_int = 1024;

/// What a path serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Index,
    Metrics,
    Status,
    Healthz,
}

const ROUTES: &[(&str, Route)] = &[
    ("/", Route::Index),
    ("/metrics", Route::Metrics),
    ("/status", Route::Status),
    ("/healthz", Route::Healthz),
];

/// A response body: owned text, or one rendering of a published snapshot,
/// shared rather than copied (a large `/status` costs no copy per scrape,
/// and many slow scrapes hold the same few snapshots).
#[derive(Clone, Debug)]
pub enum Body {
    Text(String),
    /// The live page ([`PAGE`]), compiled in.
    Page,
    /// The snapshot's metrics, then the HTTP server's own counters
    /// (rendered per scrape, a few hundred bytes: they change between
    /// collections).
    Metrics(Arc<Rendered>, String),
    Status(Arc<Rendered>),
}

impl Body {
    fn parts(&self) -> [&str; 2] {
        match self {
            Body::Text(s) => [s, ""],
            Body::Page => [PAGE, ""],
            Body::Metrics(r, own) => [&r.metrics, own],
            Body::Status(r) => [&r.status, ""],
        }
    }

    pub fn len(&self) -> usize {
        self.parts().iter().map(|p| p.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole body as one text.
    pub fn text(&self) -> Cow<'_, str> {
        match self.parts() {
            [a, ""] => Cow::Borrowed(a),
            [a, b] => Cow::Owned(format!("{a}{b}")),
        }
    }

    /// Reads the body without copying it whole.
    pub fn into_reader(self) -> BodyReader {
        BodyReader { body: self, at: 0 }
    }
}

/// [`Body::into_reader`].
pub struct BodyReader {
    body: Body,
    at: usize,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let mut at = self.at;
        for part in self.body.parts() {
            if at < part.len() {
                let n = out.len().min(part.len() - at);
                out[..n].copy_from_slice(&part.as_bytes()[at..at + n]);
                self.at += n;
                return Ok(n);
            }
            at -= part.len();
        }
        Ok(0)
    }
}

impl PartialEq for Body {
    fn eq(&self, other: &Body) -> bool {
        self.text() == other.text()
    }
}

impl Eq for Body {}

/// A response before it is written: status, content type, header fields
/// of its own (beyond those the status implies), body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: &'static [(&'static str, &'static str)],
    pub body: Body,
}

impl Reply {
    pub fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: &[],
            body: Body::Text(body.into()),
        }
    }
}

/// The live page (agent/assets/index.html): one self-contained file that
/// polls `status` from the same origin.
pub const PAGE: &str = include_str!("../assets/index.html");

/// The page's header fields: nothing from elsewhere may load or run (no
/// external asset, inline script and style only, fetches to this origin),
/// no framing, no caching of a page whose numbers change.
const PAGE_HEADERS: &[(&str, &str)] = &[
    ("Cache-Control", "no-cache"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
         img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
];

/// The path of a target without its query string or fragment.
pub(crate) fn route_path(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or("")
}

/// Routes a request line: GET and HEAD on known paths, 405 for other
/// methods on them, 404 for anything else. The query string is ignored.
pub fn route(method: &str, url: &str) -> Result<Route, Reply> {
    let path = route_path(url);
    let Some(&(_, r)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return Err(Reply::text(
            404,
            "not found: try /metrics, /status or /healthz\n",
        ));
    };
    match method {
        "GET" | "HEAD" => Ok(r),
        _ => Err(Reply::text(
            405,
            format!("method {method} not allowed: use GET\n"),
        )),
    }
}

/// Whether a target needs credentials when an auth file is set: all but
/// `/healthz`, unknown paths included (a 404 would tell what exists).
pub fn needs_auth(url: &str) -> bool {
    route_path(url) != "/healthz"
}

/// Answers a request from the latest published rendering.
pub fn respond(method: &str, url: &str, published: &Published, stale_after: Duration) -> Reply {
    let r = match route(method, url) {
        Ok(r) => r,
        Err(reply) => return reply,
    };
    let latest = published.load();
    match r {
        Route::Index => Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            headers: PAGE_HEADERS,
            body: Body::Page,
        },
        Route::Metrics => Reply {
            status: 200,
            content_type: crate::prom::CONTENT_TYPE,
            headers: &[],
            body: Body::Metrics(latest, String::new()),
        },
        Route::Status => Reply {
            status: 200,
            content_type: "application/json",
            headers: &[("Cache-Control", "no-store")],
            body: Body::Status(latest),
        },
        Route::Healthz => {
            let c = &latest.snapshot.collection;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64();
            if c.collections_total == 0 {
                Reply::text(503, "starting: no collection yet\n")
            } else if let Some(e) = &c.last_error {
                Reply::text(503, format!("last collection failed: {e}\n"))
            } else if now - c.last_collection > stale_after.as_secs_f64() {
                Reply::text(
                    503,
                    format!(
                        "stale: last collection {:.0}s ago\n",
                        now - c.last_collection
                    ),
                )
            } else if let Some(lost) = detached_hooks(&latest.snapshot) {
                Reply::text(503, format!("probes detached: {lost}\n"))
            } else {
                Reply::text(200, "ok\n")
            }
        }
    }
}

/// The probes a check found detached, as `hook on interface (why)`, or
/// `None` when every probe is attached.
fn detached_hooks(s: &crate::snapshot::Snapshot) -> Option<String> {
    let lost: Vec<String> = s
        .interfaces
        .iter()
        .flat_map(|i| {
            i.hooks.iter().filter(|h| !h.attached).map(move |h| {
                format!(
                    "{} on {} ({})",
                    h.hook,
                    i.name,
                    h.problem.as_deref().unwrap_or("detached")
                )
            })
        })
        .collect();
    (!lost.is_empty()).then(|| lost.join(", "))
}

/// The HTTP server, with bounds on everything a client controls:
///
/// - at most `max_connections` open at once (no more than the open-file
///   limit leaves room for), one thread each (plus one accept thread), and
///   at most half of them from one client address. When the pool, or an
///   address's half, is full, a new connection takes the place of the one
///   (of that address, for its half) that has waited longest for its
///   request head (a slow or idle client: one that sends its request at
///   once never waits), else of the oldest slow reader (a response not
///   taken after a tenth of `timeout`); if there is neither it gets `503`
///   and is closed;
/// - pipelining is bounded: the next request on a connection is not read
///   until the client has taken the previous response whole;
/// - a connection is closed after [`MAX_UNAUTHORIZED`] 401s;
/// - an HTTP/1.1 request needs exactly one `Host` field (`400` otherwise);
/// - a request head must arrive whole within `timeout` of the connection
///   (or of the previous response): a total deadline, so a byte now and
///   then does not extend it (`408` if part of a request came);
/// - a head larger than `max_request_bytes` gets `431`, a malformed one
///   `400`, a body is never read (the connection closes after the answer);
/// - a response must be taken within `timeout`, or the connection closes;
/// - `accept()` errors never stop the server: on EMFILE/ENFILE it closes
///   the pending connection with a reserved descriptor and backs off
///   10 ms; on other errors it backs off or carries on.
///
/// Keep-alive works for HTTP/1.1 with the same limits per request.
pub struct MetricsServer {
    listener: Option<TcpListener>,
    local: SocketAddr,
    config: ServerConfig,
    shared: Option<Arc<server::Shared>>,
    accept: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds the listener; serves nothing until [`MetricsServer::start`].
    ///
    /// # Errors
    /// The address is in use or not available on this host.
    pub fn bind(config: &ServerConfig) -> Result<MetricsServer, String> {
        let addr = SocketAddr::new(config.address, config.port);
        let listener =
            TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        // std listens with a backlog of 128; under a connect flood a full
        // backlog makes a scraper's SYN wait for a retransmit (1 s), so
        // allow more (the kernel caps it at net.core.somaxconn). A second
        // listen() on a listening socket only changes the backlog.
        // SAFETY: a valid listening socket descriptor we own.
        unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), LISTEN_BACKLOG) };
        let local = listener.local_addr().unwrap_or(addr);
        Ok(MetricsServer {
            listener: Some(listener),
            local,
            config: config.clone(),
            shared: None,
            accept: None,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts answering from `published`, with `workers` threads kept
    /// ready. A collection older than `stale_after` makes /healthz answer
    /// 503. Calling it twice does nothing the second time.
    pub fn start(&mut self, workers: usize, published: Arc<Published>, stale_after: Duration) {
        let Some(listener) = self.listener.take() else {
            return;
        };
        let max_connections = connection_budget(self.config.max_connections.max(1));
        let limits = server::Limits {
            max_connections,
            max_per_source: server::Limits::per_source(max_connections),
            timeout: self.config.timeout.max(Duration::from_millis(1)),
            max_request_bytes: self.config.max_request_bytes.max(64),
            min_threads: workers.clamp(1, max_connections),
        };
        let shared = server::Shared::new(limits, published, stale_after, self.config.auth.clone());
        self.accept = Some(server::start(shared.clone(), listener));
        self.shared = Some(shared);
    }

    /// Counters of what the server did and refused, and what it holds now.
    pub fn stats(&self) -> ServerStats {
        self.shared.as_ref().map(|s| s.stats()).unwrap_or_default()
    }

    /// The server's own counters as Prometheus text, as a scrape appends
    /// them, readable from another thread (remote_write pushes them too).
    /// `None` before [`MetricsServer::start`].
    pub fn own_metrics_source(&self) -> Option<impl Fn() -> String + Send + 'static> {
        let shared = self.shared.clone()?;
        Some(move || {
            let mut out = String::new();
            server_metrics::render(&mut out, &shared.stats());
            out
        })
    }

    /// Stops accepting, closes every connection and waits (at most about
    /// two seconds) for the threads to end.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(shared) = self.shared.take() {
            shared.stop(self.accept.take());
        }
    }
}

/// Descriptors kept free for all but HTTP connections: the collector's
/// netlink sockets and sysfs reads each interval, BPF objects, logging.
/// A connection flood must never make those fail with EMFILE.
pub const RESERVED_FDS: usize = 64;

/// How many connections the open-file limit (`RLIMIT_NOFILE`, soft) leaves
/// room for, at most `wanted`: each takes a descriptor, and
/// [`RESERVED_FDS`] plus the descriptors open now (maps, programs, the
/// listener) stay free for the rest of the agent. Logs when it lowers it.
pub fn connection_budget(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return wanted;
    }
    let soft = lim.rlim_cur as usize;
    let open = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(RESERVED_FDS);
    // One more for the accept loop's spare descriptor.
    let room = soft.saturating_sub(open + RESERVED_FDS + 1).max(1);
    if room < wanted {
        log::warn!(
            "--http-max-connections {wanted} is more than the open-file limit leaves room for \
             ({soft} files, {open} open now, {RESERVED_FDS} kept for the collector): serving at most \
             {room} connections; raise the limit (ulimit -n, LimitNOFILE=) to allow more"
        );
        return room;
    }
    wanted
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        assert_eq!(route("GET", "/metrics"), Ok(Route::Metrics));
        assert_eq!(route("HEAD", "/metrics?x=1"), Ok(Route::Metrics));
        assert_eq!(route("GET", "/status"), Ok(Route::Status));
        assert_eq!(route("GET", "/healthz"), Ok(Route::Healthz));
        assert_eq!(route("GET", "/"), Ok(Route::Index));
        assert_eq!(route("GET", "/nope").unwrap_err().status, 404);
        assert_eq!(route("GET", "/metrics/").unwrap_err().status, 404);
        assert_eq!(route("POST", "/metrics").unwrap_err().status, 405);
        assert_eq!(route("DELETE", "/status").unwrap_err().status, 405);
        assert_eq!(route("POST", "/nope").unwrap_err().status, 404);
        assert!(needs_auth("/metrics") && needs_auth("/nope") && needs_auth("/"));
        assert!(!needs_auth("/healthz") && !needs_auth("/healthz?x"));
    }

    #[test]
    fn healthz_reports_startup_then_ok() {
        let p = Published::default();
        let r = respond("GET", "/healthz", &p, Duration::from_secs(15));
        assert_eq!(r.status, 503);
        let mut s = crate::snapshot::Snapshot::default();
        s.collection.collections_total = 1;
        s.collection.last_collection = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        p.store(crate::snapshot::Rendered {
            snapshot: s.clone(),
            metrics: "m\n".into(),
            status: "{}".into(),
        });
        assert_eq!(
            respond("GET", "/healthz", &p, Duration::from_secs(15)).status,
            200
        );
        assert_eq!(
            respond("GET", "/metrics", &p, Duration::from_secs(15))
                .body
                .text(),
            "m\n"
        );
        assert_eq!(
            respond("GET", "/status", &p, Duration::from_secs(15))
                .body
                .text(),
            "{}"
        );
        s.collection.last_collection -= 60.0;
        p.store(crate::snapshot::Rendered {
            snapshot: s,
            metrics: String::new(),
            status: String::new(),
        });
        assert_eq!(
            respond("GET", "/healthz", &p, Duration::from_secs(15)).status,
            503
        );
    }
}
