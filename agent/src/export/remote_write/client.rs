//! One remote_write HTTP POST, and what its answer means for the spool.
//!
//! A small HTTP/1.1 client of its own, blocking, one kept-alive connection:
//! it only ever sends one kind of request and reads a status, two headers
//! and a short body. ureq did the same for 260 KiB more binary (measured:
//! docs/fleets.md). https (rustls, ring, the Mozilla roots or
//! `--remote-write-ca-file`) only with the `remote-write-https` feature.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use super::backoff::parse_retry_after;

/// The `Authorization` header value a receiver requires. Never logged:
/// `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization(String);

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorization(<redacted>)")
    }
}

impl Authorization {
    pub fn bearer(token: &str) -> Authorization {
        Authorization(format!("Bearer {token}"))
    }

    /// A header value as is (`Bearer TOKEN`, `Basic BASE64`), e.g. from
    /// the agent's auth-file parser.
    pub fn header(value: String) -> Authorization {
        Authorization(value)
    }

    pub fn basic(user: &str, password: &str) -> Authorization {
        Authorization(format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        ))
    }
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What became of one POST.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the receiver has the samples.
    Accepted,
    /// Network error, timeout, 5xx or 429: send the same samples again later.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Any other status: the receiver will never take these samples.
    Rejected { status: u16, why: String },
}

/// Where requests go, from the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    https: bool,
    /// Host as written (brackets stripped from IPv6), for TLS names.
    host: String,
    port: u16,
    /// Path and query.
    path: String,
    /// The `Host` header.
    authority: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let bad = |why: &str| format!("--remote-write-url {url:?}: {why}");
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("expected http://HOST[:PORT]/PATH or https://..."));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(bad(
                "credentials in the URL are not supported: use --remote-write-auth-file",
            ));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (h, p.parse().map_err(|_| bad("bad port"))?),
                None if after.is_empty() => (h, default_port),
                None => return Err(bad("bad host")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
                None => (authority, default_port),
            }
        };
        if host.is_empty() || port == 0 || path.contains(char::is_whitespace) {
            return Err(bad("bad host, port or path"));
        }
        Ok(Target {
            https,
            host: host.to_string(),
            port,
            path: path.to_string(),
            authority: authority.to_string(),
        })
    }
}

pub struct Client {
    target: Target,
    authorization: Option<Authorization>,
    timeout: Duration,
    #[cfg(feature = "remote-write-https")]
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// The kept-alive connection, if any.
    conn: Mutex<Option<Conn>>,
}

/// Longest response head read; larger answers are treated as broken.
const MAX_HEAD: usize = 16 * 1024;
/// Longest response body read to keep the connection; past it the
/// connection is closed instead.
const MAX_BODY: usize = 64 * 1024;
/// Start of an error body kept for the log line.
const MAX_ERROR_TEXT: usize = 512;

impl Client {
    /// # Errors
    /// The URL is not http(s)://HOST[:PORT]/PATH, https without the
    /// `remote-write-https` feature, or an unreadable or empty CA file; the
    /// message names the flag.
    pub fn new(
        url: &str,
        authorization: Option<Authorization>,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Client, String> {
        let target = Target::parse(url)?;
        #[cfg(feature = "remote-write-https")]
        let tls = if target.https || ca_file.is_some() {
            Some(tls::config(ca_file)?)
        } else {
            None
        };
        #[cfg(not(feature = "remote-write-https"))]
        {
            if target.https {
                return Err(format!(
                    "--remote-write-url {url:?}: this build has no https (cargo feature remote-write-https)"
                ));
            }
            if let Some(p) = ca_file {
                return Err(format!(
                    "--remote-write-ca-file {}: this build has no https (cargo feature remote-write-https)",
                    p.display()
                ));
            }
        }
        Ok(Client {
            target,
            authorization,
            timeout,
            #[cfg(feature = "remote-write-https")]
            tls,
            conn: Mutex::new(None),
        })
    }

    /// POSTs one snappy-compressed WriteRequest, within the timeout.
    pub fn post(&self, body: &[u8]) -> Outcome {
        let deadline = Instant::now() + self.timeout;
        let mut slot = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // A kept-alive connection the receiver closed meanwhile fails before
        // any answer: try once more on a new one.
        let reused = slot.is_some();
        let mut res = self.exchange(&mut slot, body, deadline);
        if reused && matches!(res, Err(Failure::BeforeAnswer(_))) {
            *slot = None;
            res = self.exchange(&mut slot, body, deadline);
        }
        let (status, retry_after, text) = match res {
            Ok(r) => r,
            Err(Failure::BeforeAnswer(e) | Failure::Broken(e)) => {
                *slot = None;
                return Outcome::Retry {
                    why: e,
                    retry_after: None,
                };
            }
        };
        let why = || format!("HTTP {status}: {}", text.trim());
        match status {
            200..=299 => Outcome::Accepted,
            429 | 500..=599 => Outcome::Retry {
                why: why(),
                retry_after,
            },
            _ => Outcome::Rejected { status, why: why() },
        }
    }

    fn connect(&self, deadline: Instant) -> Result<Conn, String> {
        let t = &self.target;
        let addrs = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|e| format!("{}: {e}", t.authority))?;
        let mut last = format!("{}: no address", t.authority);
        for a in addrs {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{}: timed out", t.authority));
            }
            match TcpStream::connect_timeout(&a, left) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    #[cfg(feature = "remote-write-https")]
                    if let Some(cfg) = &self.tls {
                        return tls::wrap(cfg, &t.host, s).map(|s| Conn::Tls(Box::new(s)));
                    }
                    return Ok(Conn::Plain(s));
                }
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        Err(last)
    }

    /// One request and its answer: (status, Retry-After, start of the body).
    fn exchange(
        &self,
        slot: &mut Option<Conn>,
        body: &[u8],
        deadline: Instant,
    ) -> Result<(u16, Option<Duration>, String), Failure> {
        if slot.is_none() {
            *slot = Some(self.connect(deadline).map_err(Failure::Broken)?);
        }
        let conn = slot.as_mut().expect("connected");
        let t = &self.target;
        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: netprobe/{}\r\n\
             Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\n\
             X-Prometheus-Remote-Write-Version: 0.1.0\r\nContent-Length: {}\r\n",
            t.path,
            t.authority,
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        if let Some(a) = &self.authorization {
            head.push_str("Authorization: ");
            head.push_str(&a.0);
            head.push_str("\r\n");
        }
        head.push_str("\r\n");
        conn.set_deadline(deadline)
            .map_err(|e| Failure::Broken(e.to_string()))?;
        let sent = conn
            .write_all(head.as_bytes())
            .and_then(|()| conn.write_all(body))
            .and_then(|()| conn.flush());
        if let Err(e) = sent {
            *slot = None;
            return Err(Failure::BeforeAnswer(e.to_string()));
        }
        let answer = read_answer(conn, deadline);
        match answer {
            Ok((resp, keep)) => {
                if !keep {
                    *slot = None;
                }
                Ok(resp)
            }
            Err(e) => {
                *slot = None;
                Err(e)
            }
        }
    }
}

enum Failure {
    /// Nothing came back (a stale kept-alive connection looks like this).
    BeforeAnswer(String),
    Broken(String),
}

/// Reads the response head and body; says whether the connection can be
/// kept for the next request.
#[allow(clippy::type_complexity)]
fn read_answer(
    conn: &mut Conn,
    deadline: Instant,
) -> Result<((u16, Option<Duration>, String), bool), Failure> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(Failure::Broken("response head too long".into()));
        }
        conn.set_deadline(deadline)
            .map_err(|e| Failure::Broken(e.to_string()))?;
        match conn.read(&mut chunk) {
            Ok(0) if buf.is_empty() => {
                return Err(Failure::BeforeAnswer("connection closed".into()))
            }
            Ok(0) => return Err(Failure::Broken("connection closed mid-answer".into())),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(Failure::BeforeAnswer(e.to_string())),
            Err(e) => return Err(Failure::Broken(e.to_string())),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status: u16 = match (version.starts_with("HTTP/1."), parts.next().map(str::parse)) {
        (true, Some(Ok(s))) if (100..600).contains(&s) => s,
        _ => return Err(Failure::Broken(format!("bad status line {status_line:?}"))),
    };
    let (mut length, mut chunked, mut close) = (None, false, version == "HTTP/1.0");
    let mut retry_after = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            "connection" => close |= v.eq_ignore_ascii_case("close"),
            "retry-after" => retry_after = parse_retry_after(v, SystemTime::now()),
            _ => {}
        }
    }
    let mut body = buf.split_off(head_end);
    let mut read_more = |body: &mut Vec<u8>| -> Result<bool, Failure> {
        conn.set_deadline(deadline)
            .map_err(|e| Failure::Broken(e.to_string()))?;
        match conn.read(&mut chunk) {
            Ok(0) => Ok(false),
            Ok(n) => {
                body.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e) => Err(Failure::Broken(e.to_string())),
        }
    };
    let keep;
    if status == 204 || status == 304 || status < 200 {
        // No body by definition (RFC 9110).
        keep = !close;
        body.clear();
    } else if chunked {
        // Read until the last chunk (bounded), then decode what is kept.
        while find(&body, b"\r\n0\r\n").is_none() && !body.starts_with(b"0\r\n") {
            if body.len() > MAX_BODY || !read_more(&mut body)? {
                return Ok(((status, retry_after, text_of(&body)), false));
            }
        }
        keep = !close;
        body = dechunk(&body);
    } else if let Some(n) = length {
        if n > MAX_BODY {
            return Ok(((status, retry_after, text_of(&body)), false));
        }
        while body.len() < n {
            if !read_more(&mut body)? {
                return Err(Failure::Broken("connection closed mid-body".into()));
            }
        }
        keep = !close && body.len() == n;
    } else {
        // No framing: the body ends with the connection.
        while body.len() <= MAX_BODY && read_more(&mut body)? {}
        keep = false;
    }
    Ok(((status, retry_after, text_of(&body)), keep))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn text_of(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_ERROR_TEXT)]).into_owned()
}

/// The data of a chunked body (stops at the last chunk or at damage).
fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = find(b, b"\r\n") {
        let size = std::str::from_utf8(&b[..i])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        match size {
            Some(n) if n > 0 && b.len() >= i + 2 + n => {
                out.extend_from_slice(&b[i + 2..i + 2 + n]);
                b = &b[(i + 4 + n).min(b.len())..];
            }
            _ => break,
        }
    }
    out
}

/// A connection, plain or TLS.
enum Conn {
    Plain(TcpStream),
    #[cfg(feature = "remote-write-https")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            #[cfg(feature = "remote-write-https")]
            Conn::Tls(s) => s.get_ref(),
        }
    }

    /// Socket timeouts from what is left until `deadline`.
    fn set_deadline(&self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"));
        }
        self.tcp().set_read_timeout(Some(left))?;
        self.tcp().set_write_timeout(Some(left))
    }
}

impl Read for Conn {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(b),
            #[cfg(feature = "remote-write-https")]
            Conn::Tls(s) => s.read(b),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(b),
            #[cfg(feature = "remote-write-https")]
            Conn::Tls(s) => s.write(b),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            #[cfg(feature = "remote-write-https")]
            Conn::Tls(s) => s.flush(),
        }
    }
}

#[cfg(feature = "remote-write-https")]
mod tls {
    use std::net::TcpStream;
    use std::path::Path;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    /// TLS 1.2 and 1.3 with ring; the Mozilla roots, or only the CA file's.
    pub fn config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                let what = format!("--remote-write-ca-file {}", path.display());
                let certs =
                    CertificateDer::pem_file_iter(path).map_err(|e| format!("{what}: {e}"))?;
                for c in certs {
                    let c = c.map_err(|e| format!("{what}: {e}"))?;
                    roots.add(c).map_err(|e| format!("{what}: {e}"))?;
                }
                if roots.is_empty() {
                    return Err(format!("{what}: no PEM certificate in it"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(cfg))
    }

    pub fn wrap(
        cfg: &Arc<rustls::ClientConfig>,
        host: &str,
        s: TcpStream,
    ) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, String> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| format!("{host}: {e}"))?;
        let conn =
            rustls::ClientConnection::new(cfg.clone(), name).map_err(|e| format!("TLS: {e}"))?;
        Ok(rustls::StreamOwned::new(conn, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_values_and_redaction() {
        assert_eq!(
            Authorization::basic("Aladdin", "open sesame").0,
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(Authorization::basic("a", "b").0, "Basic YTpi");
        assert_eq!(Authorization::basic("ab", "c").0, "Basic YWI6Yw==");
        assert_eq!(Authorization::bearer("t0k").0, "Bearer t0k");
        assert!(!format!("{:?}", Authorization::bearer("secret")).contains("secret"));
    }

    #[test]
    fn parses_urls() {
        let t = Target::parse("http://127.0.0.1:9090/api/v1/write").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9090, "/api/v1/write")
        );
        let t = Target::parse("https://[2001:db8::1]/push?x=1").unwrap();
        assert!(t.https);
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("2001:db8::1", 443, "/push?x=1")
        );
        assert_eq!(t.authority, "[2001:db8::1]");
        let t = Target::parse("http://vm").unwrap();
        assert_eq!((t.port, t.path.as_str()), (80, "/"));
        for bad in [
            "http://",
            "http://:80/",
            "http://h:x/",
            "http://u:p@h/",
            "http://[::1/",
            "http://h:0/",
        ] {
            assert!(
                Target::parse(bad)
                    .unwrap_err()
                    .contains("--remote-write-url"),
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }

    /// A receiver on 127.0.0.1 that answers each request on a connection
    /// with the next of `answers`, then closes it; returns the URL and how
    /// many connections it accepted.
    fn server(
        answers: Vec<Vec<&'static str>>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::BufRead;
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
        let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c2 = conns.clone();
        std::thread::spawn(move || {
            for per_conn in answers {
                let (mut s, _) = l.accept().unwrap();
                c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut r = std::io::BufReader::new(s.try_clone().unwrap());
                for a in per_conn {
                    let mut len = 0;
                    loop {
                        let mut line = String::new();
                        r.read_line(&mut line).unwrap();
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                    s.write_all(a.as_bytes()).unwrap();
                }
            }
        });
        (url, conns)
    }

    #[test]
    fn keeps_the_connection_and_reads_every_framing() {
        let (url, conns) = server(vec![
            vec![
                "HTTP/1.1 204 No Content\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                "HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\nRetry-After: 7\r\n\r\n4\r\nbusy\r\n0\r\n\r\n",
                "HTTP/1.1 400 Bad\r\nContent-Length: 9\r\n\r\nbad label",
            ],
            // The receiver closed the kept connection: a new one, unseen.
            vec!["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"],
            vec!["HTTP/1.0 200 OK\r\n\r\nbody until close"],
        ]);
        let c = Client::new(
            &url,
            Some(Authorization::bearer("t")),
            None,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(c.post(b"x"), Outcome::Accepted);
        assert_eq!(c.post(b"xy"), Outcome::Accepted);
        assert_eq!(
            c.post(b"x"),
            Outcome::Retry {
                why: "HTTP 503: busy".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            c.post(b"x"),
            Outcome::Rejected {
                status: 400,
                why: "HTTP 400: bad label".into()
            }
        );
        assert_eq!(
            conns.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one kept connection"
        );
        assert_eq!(c.post(b"x"), Outcome::Accepted);
        assert_eq!(c.post(b"x"), Outcome::Accepted);
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
        // Nothing listens any more: a retry, not a hang.
        assert!(matches!(c.post(b"x"), Outcome::Retry { .. }));
    }

    #[test]
    fn a_silent_receiver_times_out() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let c = Client::new(&url, None, None, Duration::from_millis(300)).unwrap();
        let t = Instant::now();
        assert!(matches!(c.post(b"x"), Outcome::Retry { .. }));
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        drop(l);
    }

    #[test]
    fn bad_urls_are_refused_by_name() {
        let e = Client::new("ftp://x/", None, None, Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            e.contains("--remote-write-url") && e.contains("ftp://x/"),
            "{e}"
        );
        if !cfg!(feature = "remote-write-https") {
            let e = Client::new("https://x/", None, None, Duration::from_secs(1))
                .err()
                .unwrap();
            assert!(e.contains("remote-write-https"), "{e}");
        }
    }
}
