//! The HTTP server under abuse, on loopback: slowloris, request and
//! connection floods, oversized, malformed and non-HTTP requests, unknown
//! methods, fuzzed paths, credentials; and the process's threads and RSS
//! under attack (in a child process, so other tests do not blur them).
//!
//! Each test starts a real `MetricsServer` on 127.0.0.1:0 with a published
//! snapshot holding a known body. Every loop is bounded in count and time;
//! the tests take a lock so their timings do not disturb each other (the
//! whole file runs in about 15 s). No privileges needed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use netprobe::http::auth::{base64, Credentials};
use netprobe::http::{MetricsServer, ServerConfig};
use netprobe::snapshot::{Published, Rendered, Snapshot};

const METRICS: &str = "# HELP netprobe_test 1\n# TYPE netprobe_test gauge\nnetprobe_test 42\n";
const STATUS: &str = "{\"test\":true}";
const SECRET: &str = "s3cr3t-Token-8f2b9c";

// ---------------------------------------------------------------------------
// Harness

/// One test at a time: their timings (and the slowloris latency bound)
/// must not depend on another test's flood.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    capture_logs();
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every log record of this process, at every level, so a test can check
/// that no secret reaches the log.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < 100_000 {
            v.push(format!("{} {}", r.level(), r.args()));
        }
    }
    fn flush(&self) {}
}

fn capture_logs() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        if log::set_logger(c).is_ok() {
            log::set_max_level(log::LevelFilter::Trace);
        }
        c
    })
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn published(metrics: String) -> Arc<Published> {
    let p = Published::new();
    let mut s = Snapshot::default();
    s.collection.collections_total = 1;
    s.collection.last_collection = now_secs();
    p.store(Rendered {
        snapshot: s,
        metrics,
        status: STATUS.into(),
    });
    p
}

fn start_with(config: ServerConfig, body: String) -> (MetricsServer, SocketAddr) {
    let config = ServerConfig {
        address: [127, 0, 0, 1].into(),
        port: 0,
        ..config
    };
    let mut server = MetricsServer::bind(&config).expect("binding 127.0.0.1:0");
    let workers = config.workers;
    server.start(workers, published(body), Duration::from_secs(3600));
    let addr = server.local_addr();
    (server, addr)
}

fn start(config: ServerConfig) -> (MetricsServer, SocketAddr) {
    start_with(config, METRICS.into())
}

#[derive(Debug, Default)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses one response from the front of `buf`: `None` until it is all
/// there (`eof` says no more bytes will come).
fn parse_response(buf: &[u8], eof: bool, head_request: bool) -> Option<(Resp, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).expect("response head is ASCII");
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut r = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_request {
        return Some((r, end));
    }
    if let Some(len) = r.header("Content-Length") {
        let len: usize = len.parse().unwrap();
        if buf.len() < end + len {
            return None;
        }
        r.body = buf[end..end + len].to_vec();
        return Some((r, end + len));
    }
    if r.header("Transfer-Encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        let mut at = end;
        loop {
            let line_end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[at..line_end]).unwrap().trim(), 16)
                    .unwrap();
            let data = line_end + 2;
            if buf.len() < data + size + 2 {
                return None;
            }
            if size == 0 {
                return Some((r, data + 2));
            }
            r.body.extend_from_slice(&buf[data..data + size]);
            at = data + size + 2;
        }
    }
    if eof {
        r.body = buf[end..].to_vec();
        return Some((r, buf.len()));
    }
    None
}

/// Reads one response (up to 5 s). `Err` if the server closed first.
fn read_response(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Result<Resp, String> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut chunk = [0u8; 16384];
    let mut eof = false;
    loop {
        if let Some((r, used)) = parse_response(buf, eof, head_request) {
            buf.drain(..used);
            return Ok(r);
        }
        if eof {
            return Err(format!("closed after {} bytes", buf.len()));
        }
        if Instant::now() > deadline {
            return Err("no response within 5 s".into());
        }
        match s.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// A TCP connection to `addr` (IPv4) from the local address `src`.
fn connect_from(src: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(dst) = addr else {
        panic!("{addr} is not IPv4");
    };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a new socket, owned by the TcpStream at once; bind and
    // connect get valid sockaddr_in values and their length.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(src, 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = sockaddr(*dst.ip(), dst.port());
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stream)
    }
}

/// Sends raw bytes on a new connection and reads one response.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Result<Resp, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(raw).map_err(|e| format!("write: {e}"))?;
    read_response(&mut s, &mut Vec::new(), raw.starts_with(b"HEAD "))
}

fn get(addr: SocketAddr, path: &str) -> Result<Resp, String> {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// A scrape of /metrics: its latency, after checking status and body (the
/// published page, then the server's own counters).
fn scrape(addr: SocketAddr) -> Duration {
    let t = Instant::now();
    let r = get(addr, "/metrics").unwrap_or_else(|e| panic!("scrape failed: {e}"));
    let took = t.elapsed();
    assert_eq!(r.status, 200, "scrape: {}", r.text());
    assert_metrics(&r);
    took
}

/// The body of a /metrics response: the published page, then the HTTP
/// server's own families.
fn assert_metrics(r: &Resp) {
    let text = r.text();
    assert!(
        text.starts_with(METRICS) && text.contains("\nnetprobe_http_requests_total "),
        "not a /metrics page: {text}"
    );
}

/// True once the server has closed `s` (EOF or reset), within `wait`.
fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue, // an error response before the close
            Err(e) => {
                return !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                )
            }
        }
    }
}

fn raise_nofile() {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid rlimit to fill and then pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max.min(8192) {
            r.rlim_cur = r.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Connections that each send one byte of a never-ending request head
/// every `every`, reconnecting when the server closes them, until `stop`.
fn slowloris(
    addr: SocketAddr,
    conns: usize,
    every: Duration,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let prefix = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Slow: ";
        let connect = || TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok();
        let mut socks: Vec<(Option<TcpStream>, usize)> =
            (0..conns).map(|_| (connect(), 0)).collect();
        let mut reconnects = 0u64;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            for (sock, pos) in socks.iter_mut() {
                let ok = match sock {
                    Some(s) => {
                        let byte = prefix.get(*pos).copied().unwrap_or(b'a');
                        s.write(&[byte]).is_ok()
                    }
                    None => false,
                };
                if ok {
                    *pos += 1;
                    sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    *sock = connect();
                    *pos = 0;
                    reconnects += 1;
                }
            }
            std::thread::sleep(every);
        }
        reconnects
    })
}

// ---------------------------------------------------------------------------
// Abuse

#[test]
fn slowloris_does_not_delay_a_scrape() {
    let _g = serial();
    raise_nofile();
    let (server, addr) = start(ServerConfig::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    // 300 connections, a byte every 200 ms each, for 3 s.
    let attack = slowloris(
        addr,
        300,
        Duration::from_millis(200),
        stop.clone(),
        sent.clone(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let mut latencies = Vec::new();
    let mut peak = (0, 0);
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        latencies.push(scrape(addr));
        let st = server.stats();
        peak = (peak.0.max(st.open_connections), peak.1.max(st.threads));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let reconnects = attack.join().unwrap();
    let st = server.stats();
    let max = *latencies.iter().max().unwrap();
    let p50 = percentile(&mut latencies, 0.5);
    eprintln!(
        "slowloris: {} scrapes, p50 {p50:?}, max {max:?}; attack sent {} bytes, {reconnects} reconnects; \
         server: {} evicted, peak {} open, peak {} threads",
        latencies.len(),
        sent.load(Ordering::Relaxed),
        st.evicted,
        peak.0,
        peak.1
    );
    assert!(
        max < Duration::from_millis(500),
        "a scrape took {max:?} under slowloris"
    );
    assert!(peak.0 <= 64 && peak.1 <= 64, "over the limit: {peak:?}");
    assert!(
        st.evicted > 0,
        "the slow connections filled the slots: some must have been closed"
    );
    server.shutdown();
}

#[test]
fn head_deadline_is_total_not_per_byte() {
    let _g = serial();
    let (server, addr) = start(ServerConfig {
        timeout: Duration::from_millis(1000),
        ..ServerConfig::default()
    });
    let mut s = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    let prefix = b"GET /metrics HTTP/1.1\r\nX: ";
    // A byte every 100 ms for up to 3 s: the server must answer 408 at ~1 s.
    for i in 0..30 {
        if s.write_all(&[*prefix.get(i).unwrap_or(&b'a')]).is_err() {
            break;
        }
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut b = [0u8; 1024];
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&b[..n]);
                break;
            }
            Err(_) => {}
        }
    }
    let r = read_response(&mut s, &mut buf, false).expect("a 408");
    let took = t.elapsed();
    assert_eq!(r.status, 408);
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(1800),
        "408 after {took:?}"
    );
    assert_eq!(server.stats().timed_out, 1);
    // An idle connection is closed without a word.
    let mut idle = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    assert!(closed_by_server(&mut idle, Duration::from_secs(3)));
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(rest.is_empty() && t.elapsed() < Duration::from_millis(1800));
}

#[test]
fn request_flood_is_answered_or_refused() {
    let _g = serial();
    raise_nofile();
    let (server, addr) = start(ServerConfig::default());
    let t = Instant::now();
    // 5000 requests over 8 threads: half on fresh connections, half on
    // one keep-alive connection per thread.
    let threads: Vec<_> = (0..8)
        .map(|n| {
            std::thread::spawn(move || {
                let (mut ok, mut refused, mut closed) = (0u32, 0u32, 0u32);
                let mut keep: Option<(TcpStream, Vec<u8>)> = None;
                for i in 0..625 {
                    let res = if (i + n) % 2 == 0 {
                        get(addr, "/metrics")
                    } else {
                        let (s, buf) = keep
                            .get_or_insert_with(|| (TcpStream::connect(addr).unwrap(), Vec::new()));
                        let r = s
                            .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
                            .map_err(|e| e.to_string())
                            .and_then(|_| read_response(s, buf, false));
                        if r.is_err() {
                            keep = None;
                        }
                        r
                    };
                    match res {
                        Ok(r) if r.status == 200 && r.body.starts_with(METRICS.as_bytes()) => {
                            ok += 1
                        }
                        Ok(r) if r.status == 503 => refused += 1,
                        Ok(r) => panic!("flood: unexpected {} {}", r.status, r.text()),
                        Err(_) => closed += 1,
                    }
                }
                (ok, refused, closed)
            })
        })
        .collect();
    let (mut ok, mut refused, mut closed) = (0, 0, 0);
    for h in threads {
        let (a, b, c) = h.join().unwrap();
        ok += a;
        refused += b;
        closed += c;
    }
    let took = t.elapsed();
    let st = server.stats();
    eprintln!(
        "flood: 5000 requests in {took:?} ({:.0}/s): {ok} ok, {refused} refused, {closed} closed; \
         {} threads, {} open after",
        5000.0 / took.as_secs_f64(),
        st.threads,
        st.open_connections
    );
    assert_eq!(ok + refused + closed, 5000);
    // Eight clients never fill 64 slots: everything is answered.
    assert_eq!(ok, 5000, "{refused} refused, {closed} closed");
    assert!(st.threads <= 64);
    assert!(scrape(addr) < Duration::from_millis(500));
}

#[test]
fn connection_flood_beyond_the_limit() {
    let _g = serial();
    raise_nofile();
    let (server, addr) = start(ServerConfig {
        max_connections: 8,
        ..ServerConfig::default()
    });
    // 200 connections that send nothing, far past the limit of 8.
    let mut idle: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert_eq!(idle.len(), 200, "loopback connects must succeed (backlog)");
    let took = scrape(addr);
    let st = server.stats();
    assert!(st.open_connections <= 8 && st.threads <= 8, "{st:?}");
    // All but the newest few were closed at once to make room.
    let closed = idle
        .iter_mut()
        .map(|s| closed_by_server(s, Duration::from_millis(50)))
        .filter(|&c| c)
        .count();
    eprintln!("connection flood: scrape in {took:?}; {closed}/200 idle connections closed; {st:?}");
    assert!(took < Duration::from_millis(500));
    assert!(
        closed >= 190,
        "only {closed} of 200 idle connections were closed"
    );
}

/// A client that asks for a 32 MiB body and never reads: its response
/// stays unsent.
fn hog(addr: SocketAddr) -> TcpStream {
    let mut hog = TcpStream::connect(addr).unwrap();
    hog.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    hog
}

#[test]
fn busy_slots_refuse_with_503_while_responses_are_young() {
    let _g = serial();
    // One slot, busy with a response started 200 ms ago: too young to
    // count as a slow reader (a tenth of the 60 s timeout), so a new
    // client gets 503 at once, and the slot serves again once it is free.
    let (server, addr) = start_with(
        ServerConfig {
            max_connections: 1,
            timeout: Duration::from_secs(60),
            ..ServerConfig::default()
        },
        "x".repeat(32 << 20),
    );
    let hog = hog(addr);
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = get(addr, "/healthz").expect("a 503 before the close");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    assert!(t.elapsed() < Duration::from_millis(500));
    let st = server.stats();
    // One slot: the address's share is the whole pool.
    assert_eq!(st.refused_busy + st.refused_source_limit, 1, "{st:?}");
    drop(hog);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(addr, "/healthz").unwrap().status, 200);
}

#[test]
fn slow_readers_are_evicted_for_new_clients_and_time_out() {
    let _g = serial();
    // One slot, a client that never reads: a tenth of the 1 s timeout on,
    // it is a slow reader and a new client takes its place.
    let (server, addr) = start_with(
        ServerConfig {
            max_connections: 1,
            timeout: Duration::from_secs(1),
            ..ServerConfig::default()
        },
        "x".repeat(32 << 20),
    );
    let mut h = hog(addr);
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = get(addr, "/healthz").unwrap();
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert!(closed_by_server(&mut h, Duration::from_secs(1)));
    let st = server.stats();
    assert_eq!((st.evicted_slow_readers, st.refused_busy), (1, 0), "{st:?}");
    // With room in the pool, a client that never reads is closed when the
    // timeout ends.
    drop(server);
    let (server, addr) = start_with(
        ServerConfig {
            max_connections: 4,
            timeout: Duration::from_secs(1),
            ..ServerConfig::default()
        },
        "x".repeat(32 << 20),
    );
    let mut h = hog(addr);
    std::thread::sleep(Duration::from_millis(1300));
    assert!(closed_by_server(&mut h, Duration::from_millis(500)));
    assert_eq!(server.stats().write_failures, 1);
}

#[test]
fn oversized_heads_get_431() {
    let _g = serial();
    let (server, addr) = start(ServerConfig::default());
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 16 * 1024));
    let r = exchange(addr, &big).expect("431");
    assert_eq!(r.status, 431);
    assert_eq!(r.header("Connection"), Some("close"));
    let many: String = (0..150).map(|i| format!("X-{i}: y\r\n")).collect();
    let r = exchange(addr, format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()).unwrap();
    assert_eq!(r.status, 431);
    // A long request line is the same.
    let r = exchange(
        addr,
        format!("GET /{} HTTP/1.1\r\n\r\n", "m".repeat(9000)).as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(server.stats().too_large, 3);
    scrape(addr);
}

#[test]
fn malformed_requests_get_400() {
    let _g = serial();
    let (server, addr) = start(ServerConfig::default());
    let cases: &[&[u8]] = &[
        b"GARBAGE\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n",
        // Not HTTP at all: answered at the first bytes, not after the deadline.
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        b"\x00\x00\x00\x00",
        b"SSH-2.0-OpenSSH_9.2\r\n",
    ];
    for raw in cases {
        let t = Instant::now();
        let r = exchange(addr, raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        assert_eq!(
            r.status,
            400,
            "{:?}: {}",
            String::from_utf8_lossy(raw),
            r.text()
        );
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{raw:?} took {:?}",
            t.elapsed()
        );
    }
    assert_eq!(
        exchange(addr, b"GET / HTTP/2.0\r\n\r\n").unwrap().status,
        505
    );
    assert_eq!(server.stats().bad_requests, cases.len() as u64 + 1);
    scrape(addr);
}

#[test]
fn unknown_methods_get_405() {
    let _g = serial();
    let (_server, addr) = start(ServerConfig::default());
    for m in [
        "FOO", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "CONNECT", "BREW",
    ] {
        let r = exchange(
            addr,
            format!("{m} /metrics HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("Allow"), Some("GET, HEAD"), "{m}");
    }
    // A body is never read: answered, then the connection closes.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let mut buf = Vec::new();
    let r = read_response(&mut s, &mut buf, false).unwrap();
    assert_eq!((r.status, r.header("Connection")), (405, Some("close")));
    assert!(closed_by_server(&mut s, Duration::from_secs(1)));
    // Unknown paths stay 404 whatever the method.
    assert_eq!(
        exchange(addr, b"FOO /nope HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap()
            .status,
        404
    );
}

#[test]
fn keep_alive_pipelining_and_head() {
    let _g = serial();
    let (_server, addr) = start(ServerConfig::default());
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\nGET /status HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    assert_metrics(&read_response(&mut s, &mut buf, false).unwrap());
    assert_eq!(
        read_response(&mut s, &mut buf, false).unwrap().text(),
        STATUS
    );
    s.write_all(b"HEAD /status HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut buf, true).unwrap();
    assert_eq!(
        (r.status, r.header("Content-Length")),
        (200, Some(STATUS.len().to_string().as_str()))
    );
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(
        read_response(&mut s, &mut buf, false).unwrap().text(),
        "ok\n"
    );
    assert!(closed_by_server(&mut s, Duration::from_secs(1)));
    // HTTP/1.0 closes after one response; absolute-form targets route by path.
    let r = exchange(addr, b"GET http://gw:8081/status HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!((r.status, r.text()), (200, STATUS.to_string()));
}

/// Deterministic xorshift: the same paths every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fuzzed_paths_get_a_sane_answer() {
    let _g = serial();
    let (server, addr) = start(ServerConfig::default());
    // Mostly pieces a path may hold; the last eight make it malformed.
    let pieces: &[&[u8]] = &[
        b"/",
        b"/",
        b"metrics",
        b"status",
        b"healthz",
        b"?",
        b"#",
        b"%2e",
        b"%00",
        b"..",
        b"//",
        b"a",
        b"=",
        b"*",
        b"http://h",
        b"~",
        b";",
        b"%",
        b"\xc3\xa9",
        b"\x00",
        b"\t",
        b" ",
        b"\r",
        b"\n",
        b"\x7f",
        b"\x1b",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut s: Option<(TcpStream, Vec<u8>)> = None;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..400 {
        let mut path = Vec::new();
        // One path in four may draw the malformed pieces.
        let n = if rng.below(4) == 0 {
            pieces.len()
        } else {
            pieces.len() - 8
        };
        if rng.below(4) != 0 {
            path.push(b'/');
        }
        for _ in 0..rng.below(8) + 1 {
            path.extend_from_slice(pieces[rng.below(n)]);
        }
        let mut raw = b"GET ".to_vec();
        raw.extend_from_slice(&path);
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: t\r\n\r\n");
        // What the server must answer, from the path alone.
        let clean = path.iter().all(|&b| (0x21..0x7f).contains(&b));
        let routable = clean && (path[0] == b'/' || path == b"*" || path.starts_with(b"http://"));
        let expect = if !routable {
            400
        } else {
            let p = netprobe::http::head::path_of(std::str::from_utf8(&path).unwrap());
            netprobe::http::route("GET", p)
                .map(|_| 200)
                .unwrap_or_else(|r| r.status)
        };
        let (conn, buf) = s.get_or_insert_with(|| (TcpStream::connect(addr).unwrap(), Vec::new()));
        conn.write_all(&raw).unwrap();
        let r = read_response(conn, buf, false)
            .unwrap_or_else(|e| panic!("{:?}: {e}", String::from_utf8_lossy(&path)));
        assert_eq!(r.status, expect, "{:?}", String::from_utf8_lossy(&path));
        *seen.entry(r.status).or_insert(0) += 1;
        if r.header("Connection") == Some("close") {
            s = None;
        }
    }
    eprintln!(
        "path fuzz: 400 paths, statuses {seen:?}; {:?}",
        server.stats()
    );
    scrape(addr);
}

// ---------------------------------------------------------------------------
// Credentials

fn authed(addr: SocketAddr, path: &str, auth: Option<&str>) -> Resp {
    let h = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{h}Connection: close\r\n\r\n").as_bytes(),
    )
    .unwrap()
}

fn assert_no_secret_logged(secrets: &[&str]) {
    let logs = capture_logs().0.lock().unwrap_or_else(|e| e.into_inner());
    for line in logs.iter() {
        for s in secrets {
            assert!(!line.contains(s), "a log line holds the secret: {line}");
        }
    }
}

#[test]
fn bearer_token_guards_metrics_not_healthz() {
    let _g = serial();
    let creds = Credentials::parse(&format!("# token for Prometheus\nBearer {SECRET}\n")).unwrap();
    assert!(!format!("{creds:?}").contains(SECRET));
    let (server, addr) = start(ServerConfig {
        auth: Some(Arc::new(creds)),
        ..ServerConfig::default()
    });
    for (auth, want) in [
        (None, 401),
        (Some("Bearer wrong".to_string()), 401),
        (Some(format!("Bearer {SECRET}x")), 401),
        (Some(format!("Basic {SECRET}")), 401),
        (Some(format!("Bearer {SECRET}")), 200),
        (Some(format!("bearer {SECRET}")), 200),
    ] {
        let r = authed(addr, "/metrics", auth.as_deref());
        assert_eq!(r.status, want, "{auth:?}");
        if want == 401 {
            assert_eq!(
                r.header("WWW-Authenticate"),
                Some("Bearer realm=\"netprobe\"")
            );
            assert!(!r.text().contains(SECRET));
        } else {
            assert_metrics(&r);
        }
    }
    assert_eq!(authed(addr, "/status", None).status, 401);
    assert_eq!(
        authed(addr, "/nope", None).status,
        401,
        "unknown paths must not reveal themselves"
    );
    assert_eq!(
        authed(addr, "/healthz", None).status,
        200,
        "/healthz stays open"
    );
    assert_eq!(server.stats().unauthorized, 6);
    drop(server);
    assert_no_secret_logged(&[SECRET]);
}

#[test]
fn basic_auth_guards_metrics() {
    let _g = serial();
    let line = format!("prometheus:{SECRET}");
    let (_server, addr) = start(ServerConfig {
        auth: Some(Arc::new(Credentials::parse(&line).unwrap())),
        ..ServerConfig::default()
    });
    let good = String::from_utf8(base64(line.as_bytes())).unwrap();
    let wrong = String::from_utf8(base64(b"prometheus:nope")).unwrap();
    let r = authed(addr, "/metrics", None);
    assert_eq!(
        (r.status, r.header("WWW-Authenticate")),
        (401, Some("Basic realm=\"netprobe\", charset=\"UTF-8\""))
    );
    assert_eq!(
        authed(addr, "/metrics", Some(&format!("Basic {wrong}"))).status,
        401
    );
    assert_eq!(
        authed(addr, "/metrics", Some(&format!("Bearer {good}"))).status,
        401
    );
    assert_eq!(
        authed(addr, "/metrics", Some(&format!("Basic {good}"))).status,
        200
    );
    assert_no_secret_logged(&[SECRET, &good]);
}

/// Runs the agent binary with `args` and returns (exit code, stdout +
/// stderr). The interface filter names a glob nothing matches, so even if
/// a run got past its expected failure it would watch no interface; it is
/// killed after 20 s.
fn run_agent(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_netprobe-agent"))
        .env_remove("NETWORK_INTERFACE")
        .env_remove("RUST_LOG")
        .args(["--interface-filter", "np-none-*"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting netprobe-agent");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut all = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut all)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut all)
        .unwrap();
    (status.code(), all)
}

#[test]
fn agent_refuses_bad_auth_files_with_exit_2_and_never_prints_the_secret() {
    let _g = serial();
    let dir = std::env::temp_dir().join(format!("netprobe-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases = [
        ("missing", None, "cannot open"),
        ("empty", Some(String::new()), "holds no credentials"),
        (
            "comments",
            Some("# nothing here\n\n".to_string()),
            "holds no credentials",
        ),
        ("no-colon", Some(format!("{SECRET}\n")), "neither"),
        (
            "two-lines",
            Some(format!("Bearer {SECRET}\nBearer {SECRET}\n")),
            "more than one",
        ),
        (
            "empty-token",
            Some("Bearer \n".to_string()),
            "not followed by a token",
        ),
        (
            "spaced-token",
            Some(format!("Bearer {SECRET} {SECRET}\n")),
            "without spaces",
        ),
    ];
    for (name, content, want) in cases {
        let path = dir.join(name);
        if let Some(c) = &content {
            std::fs::write(&path, c).unwrap();
        }
        let (code, stderr) = run_agent(&["--metrics-auth-file".as_ref(), path.as_os_str()]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{name}: the message must name the file: {stderr}"
        );
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(
            !stderr.contains(SECRET),
            "{name}: the secret was printed: {stderr}"
        );
    }
    // A good file, then a runtime failure (port in use) with every log on:
    // the secret is in neither output.
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.join("good");
    std::fs::write(&path, format!("Bearer {SECRET}\n")).unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let args = [
        "--listen-address",
        "127.0.0.1",
        "--metrics-port",
        &port,
        "--log-level",
        "trace",
    ];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    args.extend(["--metrics-auth-file".as_ref(), path.as_os_str()]);
    let (code, all) = run_agent(&args);
    assert_eq!(code, Some(1), "{all}");
    assert!(all.contains("cannot listen"), "{all}");
    assert!(!all.contains(SECRET), "the secret was printed: {all}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flags_bound_the_http_limits() {
    use argh::FromArgs;
    let a = netprobe::config::Args::from_args(&["netprobe-agent"], &[]).unwrap();
    assert_eq!(
        (
            a.http_max_connections,
            a.http_timeout,
            a.http_max_request_bytes
        ),
        (64, Duration::from_secs(5), 8192)
    );
    assert!(a.metrics_auth_file.is_none());
    let err = |l: &[&str]| {
        netprobe::config::Args::from_args(&["netprobe-agent"], l)
            .unwrap_err()
            .output
    };
    assert!(err(&["--http-max-connections", "0"]).contains("out of range"));
    assert!(err(&["--http-timeout", "10ms"]).contains("out of range"));
    assert!(err(&["--http-timeout", "5"]).contains("no unit"));
    assert!(err(&["--http-max-request-bytes", "100"]).contains("out of range"));
}

// ---------------------------------------------------------------------------
// Hardening (issue 19): slow readers that reconnect, bounded pipelining,
// repeated 401s, the Host field, logged query strings, exported counters.
// These use only what the server offered before, so they also run (and
// fail) against the code the issue was filed on.

/// Connects from a socket whose receive buffer is `rcvbuf` bytes, set
/// before the handshake so the window the server sees stays that small.
fn connect_small_window(addr: SocketAddr, rcvbuf: libc::c_int) -> std::io::Result<TcpStream> {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = addr else {
        unreachable!("the tests listen on 127.0.0.1")
    };
    // SAFETY: plain socket(2); the descriptor is owned by the TcpStream at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new socket nothing else owns.
    let s = unsafe { TcpStream::from_raw_fd(fd) };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(v4.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: valid option and address buffers of the sizes given.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &rcvbuf as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        libc::connect(
            fd,
            &sin as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(s)
}

/// The attack of issue 19: every `every`, a new connection (2 KiB receive
/// buffer) pipelines `depth` requests and never reads; connections stay
/// open until the server closes them (the newest 120 are kept, to bound
/// the test's descriptors). Runs until `stop` (20 s at most); returns how
/// many connections it opened.
fn reconnecting_slow_reader(
    addr: SocketAddr,
    every: Duration,
    depth: usize,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let pipeline = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".repeat(depth);
        let mut held = std::collections::VecDeque::new();
        let mut opened = 0;
        let t = Instant::now();
        while !stop.load(Ordering::Relaxed) && t.elapsed() < Duration::from_secs(20) {
            if let Ok(mut s) = connect_small_window(addr, 2048) {
                let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
                let _ = s.write_all(pipeline.as_bytes());
                held.push_back(s);
                opened += 1;
                if held.len() > 120 {
                    held.pop_front();
                }
            }
            std::thread::sleep(every);
        }
        opened
    })
}

/// 50 scrapes of /metrics, 100 ms apart, each on a new connection from
/// the same address as the attack; returns how many got 200, and every
/// outcome.
fn canary(
    addr: SocketAddr,
    auth: Option<&str>,
) -> (usize, std::collections::BTreeMap<String, usize>) {
    let h = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!("GET /metrics HTTP/1.1\r\nHost: t\r\n{h}Connection: close\r\n\r\n");
    let mut outcomes = std::collections::BTreeMap::new();
    for _ in 0..50 {
        let outcome = match exchange(addr, req.as_bytes()) {
            Ok(r) => r.status.to_string(),
            Err(e) => format!("error: {}", e.split(':').next().unwrap_or("")),
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    (outcomes.get("200").copied().unwrap_or(0), outcomes)
}

/// The issue's setup: 16 connections, a 2 s timeout, and a /metrics page
/// of 256 KiB, so a response does not fit the slow reader's window.
fn slow_reader_target(auth: Option<Arc<Credentials>>) -> (MetricsServer, SocketAddr) {
    start_with(
        ServerConfig {
            max_connections: 16,
            timeout: Duration::from_secs(2),
            auth,
            ..ServerConfig::default()
        },
        format!("{METRICS}{}", "# padding\n".repeat(256 * 1024 / 10)),
    )
}

#[test]
fn reconnecting_slow_readers_do_not_starve_scrapes() {
    let _g = serial();
    raise_nofile();
    let (server, addr) = slow_reader_target(None);
    let stop = Arc::new(AtomicBool::new(false));
    let attack = reconnecting_slow_reader(addr, Duration::from_millis(50), 200, stop.clone());
    std::thread::sleep(Duration::from_millis(1000));
    let (ok, outcomes) = canary(addr, None);
    stop.store(true, Ordering::Relaxed);
    let opened = attack.join().unwrap();
    eprintln!(
        "slow readers: {opened} attack connections; canary {ok}/50 answered {outcomes:?}; {:?}",
        server.stats()
    );
    assert!(
        ok >= 48,
        "only {ok} of 50 scrapes answered under the attack: {outcomes:?}"
    );
}

#[test]
fn reconnecting_slow_readers_without_credentials_do_not_starve_scrapes() {
    let _g = serial();
    raise_nofile();
    let creds = Credentials::parse(&format!("Bearer {SECRET}")).unwrap();
    let (server, addr) = slow_reader_target(Some(Arc::new(creds)));
    let stop = Arc::new(AtomicBool::new(false));
    // No token: every answer is a 401 of ~200 bytes, so 2000 of them (not
    // 200 pages of /metrics) outgrow the socket buffers here.
    let attack = reconnecting_slow_reader(addr, Duration::from_millis(50), 2000, stop.clone());
    std::thread::sleep(Duration::from_millis(1000));
    let (ok, outcomes) = canary(addr, Some(&format!("Bearer {SECRET}")));
    stop.store(true, Ordering::Relaxed);
    let opened = attack.join().unwrap();
    eprintln!(
        "slow readers, no token: {opened} attack connections; canary {ok}/50 answered {outcomes:?}; {:?}",
        server.stats()
    );
    assert!(
        ok >= 48,
        "only {ok} of 50 scrapes answered under the attack: {outcomes:?}"
    );
}

#[test]
fn pipelining_waits_for_each_response_to_be_taken() {
    let _g = serial();
    let (server, addr) = slow_reader_target(None);
    // 200 requests at once, nothing read: a response goes out only once
    // the client's kernel has acknowledged the one before, so what is
    // written is bounded by the client's receive buffer (2 KiB asked, the
    // kernel doubles it; each answer is ~150 bytes), not by the requests.
    let mut s = connect_small_window(addr, 2048).unwrap();
    s.write_all(
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
            .repeat(200)
            .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let held = server.stats().requests;
    drop(s);
    eprintln!("pipelining: {held} of 200 requests answered while none was read");
    assert!(
        held <= 40,
        "{held} responses written to a client that reads none"
    );
    // A client that reads gets all its pipelined answers.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
            .repeat(20)
            .as_bytes(),
    )
    .unwrap();
    let mut buf = Vec::new();
    for _ in 0..20 {
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
    }
}

#[test]
fn a_connection_is_closed_after_three_401s() {
    let _g = serial();
    let creds = Credentials::parse(&format!("Bearer {SECRET}")).unwrap();
    let (_server, addr) = start(ServerConfig {
        auth: Some(Arc::new(creds)),
        ..ServerConfig::default()
    });
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
            .repeat(10)
            .as_bytes(),
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    while let Ok(r) = read_response(&mut s, &mut buf, false) {
        got.push((r.status, r.header("Connection").map(str::to_string)));
    }
    assert_eq!(
        got,
        [(401, None), (401, None), (401, Some("close".to_string()))]
    );
    // With the credential, a connection stays open as long as it likes.
    let mut s = TcpStream::connect(addr).unwrap();
    let mut buf = Vec::new();
    for _ in 0..5 {
        s.write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {SECRET}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(read_response(&mut s, &mut buf, false).unwrap().status, 200);
    }
}

#[test]
fn http_1_1_needs_exactly_one_host() {
    let _g = serial();
    let (_server, addr) = start(ServerConfig::default());
    let status = |raw: &str| exchange(addr, raw.as_bytes()).unwrap().status;
    assert_eq!(status("GET /healthz HTTP/1.1\r\n\r\n"), 400, "no Host");
    assert_eq!(
        status("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        400,
        "two Host fields"
    );
    assert_eq!(
        status("GET /healthz HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"),
        400,
        "the same Host twice"
    );
    assert_eq!(
        status("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n"),
        200
    );
    assert_eq!(
        status("GET /healthz HTTP/1.0\r\n\r\n"),
        200,
        "HTTP/1.0 may omit it"
    );
    let r = exchange(addr, b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    assert!(r.text().contains("Host"), "{}", r.text());
    assert_eq!(r.header("Connection"), Some("close"));
}

#[test]
fn query_strings_are_never_logged() {
    let _g = serial();
    let (_server, addr) = start(ServerConfig::default());
    let secret = "q-8c1f0e-secret";
    let r = get(addr, &format!("/metrics?token={secret}")).unwrap();
    assert_eq!(r.status, 200);
    let r = get(addr, &format!("/nope?token={secret}")).unwrap();
    assert_eq!(r.status, 404);
    let logs = capture_logs().0.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        logs.iter().any(|l| l.contains("GET /metrics 200")),
        "the request is logged (debug)"
    );
    assert!(
        !logs.iter().any(|l| l.contains(secret)),
        "a query string was logged"
    );
}

/// The value of the sample `name` (with its labels, exactly) in a page.
fn sample(page: &str, name: &str) -> Option<u64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_export_the_refusal_counters() {
    let _g = serial();
    let creds = Credentials::parse(&format!("Bearer {SECRET}")).unwrap();
    let (_server, addr) = start(ServerConfig {
        auth: Some(Arc::new(creds)),
        max_connections: 2,
        ..ServerConfig::default()
    });
    assert_eq!(authed(addr, "/metrics", None).status, 401);
    let mut big = b"GET /metrics HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 16 * 1024));
    assert_eq!(exchange(addr, &big).unwrap().status, 431);
    assert_eq!(
        exchange(addr, b"GET / HTTP/1.1\r\n\r\n").unwrap().status,
        400
    );
    // Two idle connections fill the pool; a third takes an idle one's slot.
    let _idle: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = authed(addr, "/metrics", Some(&format!("Bearer {SECRET}")));
    assert_eq!(r.status, 200);
    let page = r.text();
    for (name, want) in [
        (
            "netprobe_http_requests_rejected_total{reason=\"unauthorized\"}",
            1,
        ),
        (
            "netprobe_http_requests_rejected_total{reason=\"too_large\"}",
            1,
        ),
        (
            "netprobe_http_requests_rejected_total{reason=\"malformed\"}",
            1,
        ),
        (
            "netprobe_http_connections_refused_total{reason=\"busy\"}",
            0,
        ),
    ] {
        assert_eq!(sample(&page, name), Some(want), "{name}\n{page}");
    }
    assert!(
        sample(
            &page,
            "netprobe_http_connections_evicted_total{reason=\"idle\"}"
        ) >= Some(2),
        "{page}"
    );
    assert!(
        sample(&page, "netprobe_http_connections_accepted_total") >= Some(7),
        "{page}"
    );
}

// ---------------------------------------------------------------------------
// Threads and RSS, and accept errors, in a child process

const CHILD_ENV: &str = "NETPROBE_HTTP_ABUSE_CHILD";

/// Not a test on its own: the server process of the two tests below,
/// started as `<this test binary> --exact child_server` with the variable
/// set. It prints `PORT n`, then obeys lines on stdin: `stats` prints the
/// server's counters, `hog` uses up every free descriptor, `free` gives
/// them back; EOF (or 60 s) ends it.
#[test]
fn child_server() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    if mode == "lowfd" || mode == "budget" {
        let r = libc::rlimit {
            rlim_cur: 256,
            rlim_max: 256,
        };
        // SAFETY: a valid rlimit; lowering our own limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
    }
    // "budget": far more connections allowed than descriptors exist.
    let config = ServerConfig {
        max_connections: if mode == "budget" { 4096 } else { 64 },
        ..ServerConfig::default()
    };
    // A 256 KiB body: each response is sizeable.
    let body = format!("{METRICS}{}", "# padding\n".repeat(256 * 1024 / 10));
    let (server, addr) = start_with(config, body);
    println!("PORT {}", addr.port());
    let mut hog: Vec<std::fs::File> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "stats" => println!("STATS {:?}", server.stats()),
            "hog" => {
                while let Ok(f) = std::fs::File::open("/dev/null") {
                    hog.push(f);
                }
                println!("HOGGED {}", hog.len());
            }
            "free" => {
                hog.clear();
                println!("FREED");
            }
            _ => {}
        }
        if Instant::now() > deadline {
            break;
        }
    }
    server.shutdown();
}

struct Child {
    proc: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    addr: SocketAddr,
}

impl Child {
    fn start(mode: &str) -> Child {
        let mut proc = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_server",
                "--nocapture",
                "--test-threads",
                "1",
                "-q",
            ])
            .env(CHILD_ENV, mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the child server");
        let mut out = BufReader::new(proc.stdout.take().unwrap());
        let port = loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child exited before listening"
            );
            if let Some(p) = line.trim().strip_prefix("PORT ") {
                break p.parse::<u16>().unwrap();
            }
        };
        Child {
            proc,
            out,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn command(&mut self, cmd: &str, reply: &str) -> String {
        writeln!(self.proc.stdin.as_mut().unwrap(), "{cmd}").unwrap();
        loop {
            let mut line = String::new();
            assert!(self.out.read_line(&mut line).unwrap() > 0, "child exited");
            if line.starts_with(reply) {
                return line;
            }
        }
    }

    /// (Threads, VmRSS in KiB) from /proc/PID/status.
    fn usage(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap()
        };
        (field("Threads:"), field("VmRSS:"))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        drop(self.proc.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.proc.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// A scrape from 127.0.0.2: the scraper is a host of its own, apart from
/// the attackers' 127.0.0.1, as Prometheus is in a real attack. (Sharing
/// the attackers' address, a scrape competes for their half of the pool:
/// under heavy CPU load their reconnections can evict it before its
/// request arrives, as the server is meant to do with any connection that
/// has sent nothing; slowloris_does_not_delay_a_scrape covers that case.)
fn scrape_any(addr: SocketAddr) -> Duration {
    let t = Instant::now();
    let mut s = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr)
        .unwrap_or_else(|e| panic!("connect from 127.0.0.2: {e}"));
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut s, &mut Vec::new(), false)
        .unwrap_or_else(|e| panic!("scrape failed: {e}"));
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with(METRICS));
    t.elapsed()
}

#[test]
fn threads_and_rss_stay_bounded_under_attack() {
    let _g = serial();
    raise_nofile();
    let child = Child::start("normal");
    let addr = child.addr;
    for _ in 0..20 {
        scrape_any(addr);
    }
    let before = child.usage();
    // Slowloris (300 connections) and a flood (4 threads x 300 requests
    // reading slowly: 64 KiB at a time with pauses) at once, for ~3 s.
    let stop = Arc::new(AtomicBool::new(false));
    let attack = slowloris(
        addr,
        300,
        Duration::from_millis(200),
        stop.clone(),
        Arc::new(AtomicU64::new(0)),
    );
    let flood: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(move || {
                let mut done = 0;
                let t = Instant::now();
                while done < 300 && t.elapsed() < Duration::from_secs(3) {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    if s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                        .is_ok()
                    {
                        let mut b = vec![0u8; 64 * 1024];
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        while let Ok(n) = s.read(&mut b) {
                            if n == 0 {
                                break;
                            }
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                    let _ = s.shutdown(Shutdown::Both);
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut peak = before;
    let mut lat = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        let u = child.usage();
        peak = (peak.0.max(u.0), peak.1.max(u.1));
        lat.push(scrape_any(addr));
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    attack.join().unwrap();
    let flooded: u32 = flood.into_iter().map(|h| h.join().unwrap()).sum();
    std::thread::sleep(Duration::from_millis(500));
    let after = child.usage();
    let max = *lat.iter().max().unwrap();
    eprintln!(
        "child server: threads {} before, {} peak, {} after; VmRSS {} KiB before, {} KiB peak, {} KiB after; \
         {flooded} flood requests; scrape max {max:?} over {} scrapes",
        before.0,
        peak.0,
        after.0,
        before.1,
        peak.1,
        after.1,
        lat.len()
    );
    // Threads: the harness's, the accept thread, and at most one per slot (64).
    assert!(
        peak.0 <= before.0 + 64,
        "threads grew from {} to {}",
        before.0,
        peak.0
    );
    // RSS: 64 connections x (8 KiB head + 16 KiB write buffer + stack) plus
    // allocator slack; 32 MiB is a generous bound.
    assert!(
        peak.1 <= before.1 + 32 * 1024,
        "RSS grew from {} to {} KiB",
        before.1,
        peak.1
    );
    // A scrape starved by the attack would wait for the 5 s timeout of a
    // slot; one second is far from that, and holds on a machine whose two
    // cores other jobs keep busy (500 ms did not: 530 ms seen with four
    // busy loops beside the attack's 1,200 responses of 256 KiB).
    assert!(max < Duration::from_secs(1), "a scrape took {max:?}");
}

#[test]
fn accept_errors_do_not_stop_the_server() {
    let _g = serial();
    let mut child = Child::start("lowfd");
    let addr = child.addr;
    scrape_any(addr);
    let hogged = child.command("hog", "HOGGED");
    // Out of descriptors: every connection is accepted with the reserve
    // and closed at once (or answered 503), never left hanging.
    let mut outcomes = std::collections::BTreeMap::new();
    for _ in 0..20 {
        let t = Instant::now();
        let outcome = match get(addr, "/metrics") {
            Ok(r) => r.status.to_string(),
            Err(_) => "closed".to_string(),
        };
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?}",
            t.elapsed()
        );
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    child.command("free", "FREED");
    let took = scrape_any(addr);
    let stats = child.command("stats", "STATS");
    eprintln!(
        "EMFILE: {} -> {outcomes:?}; then a scrape in {took:?}; {}",
        hogged.trim(),
        stats.trim()
    );
    assert!(
        !outcomes.contains_key("200"),
        "no descriptor should have been free: {outcomes:?}"
    );
    assert!(!stats.contains("accept_errors: 0,"), "{stats}");
}

#[test]
fn a_connection_flood_leaves_descriptors_for_the_rest() {
    let _g = serial();
    raise_nofile();
    // 256 descriptors and --http-max-connections 4096: the server must
    // take fewer connections than that, so the rest of the process (the
    // collector, in the agent) can still open files under a flood.
    let mut child = Child::start("budget");
    let addr = child.addr;
    let flood: Vec<TcpStream> = (0..600)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let hogged = child.command("hog", "HOGGED");
    let free: usize = hogged.trim().trim_start_matches("HOGGED ").parse().unwrap();
    child.command("free", "FREED");
    assert!(
        free >= 32,
        "only {free} descriptors left under a flood of {} connections",
        flood.len()
    );
    let took = scrape_any(addr);
    let stats = child.command("stats", "STATS");
    eprintln!(
        "descriptor budget: {} flood connections; {free} files could still be opened; scrape in {took:?}; {}",
        flood.len(),
        stats.trim()
    );
}

#[test]
fn shutdown_is_prompt_with_connections_open() {
    let _g = serial();
    let (server, addr) = start(ServerConfig::default());
    scrape(addr);
    // An idle keep-alive connection and a half-sent request stay open.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_response(&mut idle, &mut Vec::new(), false).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /met").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    server.shutdown();
    let took = t.elapsed();
    eprintln!("shutdown with 2 connections open: {took:?}");
    assert!(took < Duration::from_millis(500), "shutdown took {took:?}");
    assert!(closed_by_server(&mut idle, Duration::from_secs(1)));
    assert!(closed_by_server(&mut half, Duration::from_secs(1)));
    assert!(
        TcpStream::connect(addr).is_err(),
        "the listener must be closed"
    );
}
