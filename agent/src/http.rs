//! The HTTP server: a routing table from method and path to a handler, a
//! 404/405 fallback, and a few worker threads sharing one listener. Handlers
//! only copy the latest published rendering; they never touch a BPF map.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, Server};

use crate::snapshot::Published;

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub address: IpAddr,
    pub port: u16,
    pub workers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { address: IpAddr::from([0, 0, 0, 0]), port: 8081, workers: 2 }
    }
}

/// What a path serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Index,
    Metrics,
    Status,
    Healthz,
}

const ROUTES: &[(&str, Route)] =
    &[("/", Route::Index), ("/metrics", Route::Metrics), ("/status", Route::Status), ("/healthz", Route::Healthz)];

/// A response before it is written: status, content type, body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    fn text(status: u16, body: impl Into<String>) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", body: body.into() }
    }
}

/// Routes a request line: GET and HEAD on known paths, 405 for other
/// methods on them, 404 for anything else. The query string is ignored.
pub fn route(method: &str, url: &str) -> Result<Route, Reply> {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let Some(&(_, r)) = ROUTES.iter().find(|(p, _)| *p == path) else {
        return Err(Reply::text(404, "not found: try /metrics, /status or /healthz\n"));
    };
    match method {
        "GET" | "HEAD" => Ok(r),
        _ => Err(Reply::text(405, format!("method {method} not allowed: use GET\n"))),
    }
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
            body: "<html><head><title>NetProbe</title></head><body><h1>NetProbe</h1>\
                   <p><a href=\"/metrics\">/metrics</a> <a href=\"/status\">/status</a> \
                   <a href=\"/healthz\">/healthz</a></p></body></html>\n"
                .into(),
        },
        Route::Metrics => Reply { status: 200, content_type: crate::metrics::CONTENT_TYPE, body: latest.metrics.clone() },
        Route::Status => Reply { status: 200, content_type: "application/json", body: latest.status.clone() },
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
                Reply::text(503, format!("stale: last collection {:.0}s ago\n", now - c.last_collection))
            } else {
                Reply::text(200, "ok\n")
            }
        }
    }
}

pub struct MetricsServer {
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
    local: SocketAddr,
}

impl MetricsServer {
    /// Binds the listener; serves nothing until [`MetricsServer::start`].
    ///
    /// # Errors
    /// The address is in use or not available on this host.
    pub fn bind(config: &ServerConfig) -> Result<MetricsServer, String> {
        let addr = SocketAddr::new(config.address, config.port);
        let server = Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = server.server_addr().to_ip().unwrap_or(addr);
        Ok(MetricsServer { server: Arc::new(server), workers: Vec::new(), local })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts `workers` threads answering from `published`. A collection
    /// older than `stale_after` makes /healthz answer 503.
    pub fn start(&mut self, workers: usize, published: Arc<Published>, stale_after: Duration) {
        for n in 0..workers.max(1) {
            let server = self.server.clone();
            let published = published.clone();
            let h = std::thread::Builder::new()
                .name(format!("http-{n}"))
                .spawn(move || {
                    while let Ok(rq) = server.recv() {
                        serve(rq, &published, stale_after);
                    }
                })
                .expect("spawning an HTTP worker thread");
            self.workers.push(h);
        }
    }

    /// Stops the workers and closes the listener.
    pub fn shutdown(mut self) {
        for _ in &self.workers {
            self.server.unblock();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

fn serve(rq: Request, published: &Published, stale_after: Duration) {
    let method = match rq.method() {
        Method::Get => "GET",
        Method::Head => "HEAD",
        m => m.as_str(),
    }
    .to_string();
    let reply = respond(&method, rq.url(), published, stale_after);
    let mut resp = Response::from_string(reply.body)
        .with_status_code(reply.status)
        .with_header(header("Content-Type", reply.content_type));
    if reply.status == 405 {
        resp = resp.with_header(header("Allow", "GET, HEAD"));
    }
    if let Err(e) = rq.respond(resp) {
        log::debug!("writing HTTP response: {e}");
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
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
    }

    #[test]
    fn healthz_reports_startup_then_ok() {
        let p = Published::default();
        let r = respond("GET", "/healthz", &p, Duration::from_secs(15));
        assert_eq!(r.status, 503);
        let mut s = crate::snapshot::Snapshot::default();
        s.collection.collections_total = 1;
        s.collection.last_collection =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        p.store(crate::snapshot::Rendered { snapshot: s.clone(), metrics: "m\n".into(), status: "{}".into() });
        assert_eq!(respond("GET", "/healthz", &p, Duration::from_secs(15)).status, 200);
        assert_eq!(respond("GET", "/metrics", &p, Duration::from_secs(15)).body, "m\n");
        s.collection.last_collection -= 60.0;
        p.store(crate::snapshot::Rendered { snapshot: s, metrics: String::new(), status: String::new() });
        assert_eq!(respond("GET", "/healthz", &p, Duration::from_secs(15)).status, 503);
    }
}
