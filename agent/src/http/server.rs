//! The guarded front door: our own accept loop, a bounded pool of
//! connection threads, deadlines on every read and write, a share of the
//! pool per client address, and eviction of the slowest client when the
//! pool (or an address's share) is full. tiny_http writes the responses
//! (`Response::raw_print`) and parses the header fields.
//!
//! Every connection admitted holds a slot until it closes, and slots never
//! exceed `max_connections`. Threads never exceed `max_connections` either:
//! a thread serves one connection at a time, one is started only when more
//! connections wait than threads idle, and idle threads beyond
//! `min_threads` stop after `IDLE_EXIT` without work.

use std::collections::VecDeque;
use std::io::{self, BufWriter, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::{HTTPVersion, Header, Method, Response, StatusCode};

use super::auth::Credentials;
use super::head::{cannot_be_request, has_request_bytes, parse_head, HeadScanner};
use super::{needs_auth, respond, route_path, Body, Reply};
use crate::snapshot::Published;

/// Idle threads beyond `min_threads` stop after this long without work.
const IDLE_EXIT: Duration = Duration::from_secs(5);
/// How long a new connection waits for an evicted one to free its slot.
const EVICT_WAIT: Duration = Duration::from_millis(200);
/// Back-off after an accept error that more accepting cannot fix.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// How often the accept loop looks at the stop flag.
const POLL_MS: libc::c_int = 100;
/// After an error response: time and bytes to drain before closing, so
/// the close sends FIN rather than RST and the client reads the error.
const LINGER: Duration = Duration::from_millis(100);
const LINGER_BYTES: usize = 64 * 1024;
/// Error responses get at most this long to be written.
const ERROR_WRITE: Duration = Duration::from_secs(1);
/// Stack of a connection thread; it holds a 4 KiB read buffer and
/// tiny_http's 8 KiB copy buffer.
const THREAD_STACK: usize = 256 * 1024;
/// How often the accept loop logs a summary of what it refused.
const SUMMARY_EVERY: Duration = Duration::from_secs(10);
/// 401s one connection gets before it is closed: a client without the
/// credential cannot hold a slot with pipelined requests, and a client
/// that has it needs one try.
pub const MAX_UNAUTHORIZED: u32 = 3;
/// A response the client has not taken (acknowledged) this share of
/// `--http-timeout` after it started makes its connection evictable when
/// the pool or its address's share is full: a scraper on a LAN takes a
/// /metrics in milliseconds, a client that does not read would hold the
/// slot for the whole timeout.
const SLOW_READER_AFTER: u32 = 10;
/// How often a connection whose client pipelines checks whether the client
/// has taken a response before it reads the next request: from the first
/// value, doubling up to the second (a client that reads promptly acks
/// within microseconds on a LAN).
const TAKEN_POLL: (Duration, Duration) = (Duration::from_micros(100), Duration::from_millis(5));

pub(super) struct Limits {
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_per_source: usize,
    pub timeout: Duration,
    pub max_request_bytes: usize,
    pub min_threads: usize,
}

impl Limits {
    /// The share of the pool one address may hold: half, so one client
    /// (or one attacker) can never take every slot from the others.
    pub fn per_source(max_connections: usize) -> usize {
        (max_connections / 2).max(1)
    }
}

/// What the server did and refused since it started, and what it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Connections accepted (admitted or refused).
    pub accepted: u64,
    /// Connections refused with 503 because every slot was busy responding
    /// (none idle, none a slow reader).
    pub refused_busy: u64,
    /// Connections refused with 503 because their address held its share
    /// of the pool, none of it idle or a slow reader.
    pub refused_source_limit: u64,
    /// Connections closed to make room: the one waiting longest for its head.
    pub evicted: u64,
    /// Connections closed to make room: a response not taken after a tenth
    /// of the timeout (the oldest such).
    pub evicted_slow_readers: u64,
    /// Requests answered (any status, errors included).
    pub requests: u64,
    /// 408: part of a head came, not all of it, within the timeout.
    pub timed_out: u64,
    /// 431: head larger than the limit, or too many header fields.
    pub too_large: u64,
    /// 400 and 505: malformed heads.
    pub bad_requests: u64,
    /// 401: missing or wrong credentials.
    pub unauthorized: u64,
    /// Connections closed after `MAX_UNAUTHORIZED` 401s.
    pub closed_unauthorized: u64,
    /// Responses not taken within the timeout (or the client went away).
    pub write_failures: u64,
    /// `accept()` failures (the loop carried on after each).
    pub accept_errors: u64,
    /// Connections open now.
    pub open_connections: usize,
    /// Connection threads alive now (the accept thread not counted).
    pub threads: usize,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    refused_busy: AtomicU64,
    refused_source_limit: AtomicU64,
    evicted: AtomicU64,
    evicted_slow_readers: AtomicU64,
    requests: AtomicU64,
    timed_out: AtomicU64,
    too_large: AtomicU64,
    bad_requests: AtomicU64,
    unauthorized: AtomicU64,
    closed_unauthorized: AtomicU64,
    write_failures: AtomicU64,
    accept_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What an admitted connection is doing, for eviction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head, since then.
    Waiting(Instant),
    /// Answering: a response started then and is not yet taken whole;
    /// true for the connection's last response (its slot frees after it).
    Writing(Instant, bool),
    /// Chosen for eviction; its thread is closing it.
    Evicted,
}

/// An admitted connection.
struct Slot {
    id: u64,
    stream: Arc<TcpStream>,
    /// The client's address, whose share of the pool it counts against.
    source: Option<IpAddr>,
    phase: Phase,
    /// Admitted but no thread has taken it yet.
    queued: bool,
}

struct Job {
    id: u64,
    stream: Arc<TcpStream>,
    peer: Option<SocketAddr>,
    accepted_at: Instant,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    next_id: u64,
    next_thread: u64,
}

pub(super) struct Shared {
    limits: Limits,
    published: Arc<Published>,
    stale_after: Duration,
    auth: Option<Arc<Credentials>>,
    state: Mutex<State>,
    /// Threads wait here for a queued connection.
    work: Condvar,
    /// The accept thread (eviction) and `stop` wait here for slots and
    /// threads to go away.
    freed: Condvar,
    stop: AtomicBool,
    counters: Counters,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(super) fn new(
        limits: Limits,
        published: Arc<Published>,
        stale_after: Duration,
        auth: Option<Arc<Credentials>>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            limits,
            published,
            stale_after,
            auth,
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            freed: Condvar::new(),
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        })
    }

    pub(super) fn stats(&self) -> ServerStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let st = lock(&self.state);
        ServerStats {
            accepted: get(&c.accepted),
            refused_busy: get(&c.refused_busy),
            refused_source_limit: get(&c.refused_source_limit),
            evicted: get(&c.evicted),
            evicted_slow_readers: get(&c.evicted_slow_readers),
            requests: get(&c.requests),
            timed_out: get(&c.timed_out),
            too_large: get(&c.too_large),
            bad_requests: get(&c.bad_requests),
            unauthorized: get(&c.unauthorized),
            closed_unauthorized: get(&c.closed_unauthorized),
            write_failures: get(&c.write_failures),
            accept_errors: get(&c.accept_errors),
            open_connections: st.slots.len(),
            threads: st.threads,
        }
    }

    /// Stops the accept loop, closes every connection, and waits (bounded)
    /// for the connection threads to end.
    pub(super) fn stop(&self, accept: Option<JoinHandle<()>>) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = accept {
            let _ = h.join();
        }
        let st = lock(&self.state);
        for s in &st.slots {
            let _ = s.stream.shutdown(Shutdown::Both);
        }
        self.work.notify_all();
        let (st, waited) = self
            .freed
            .wait_timeout_while(st, Duration::from_secs(2), |st| st.threads > 0)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() {
            log::warn!(
                "HTTP: {} connection threads still running at shutdown",
                st.threads
            );
        }
    }

    /// Takes a new connection in, making room if its address holds its
    /// share of the slots (among that address's own connections), or if
    /// the slots are full.
    fn admit(self: &Arc<Self>, stream: TcpStream, peer: Option<SocketAddr>) {
        bump(&self.counters.accepted);
        let stream = Arc::new(stream);
        let accepted_at = Instant::now();
        let source = peer.map(|p| p.ip());
        let from_source = |st: &State| st.slots.iter().filter(|s| s.source == source).count();
        let mut st = lock(&self.state);
        if source.is_some() && from_source(&st) >= self.limits.max_per_source {
            st = self.make_room(st, source);
            st = self.wait_for_last(st, source, |st| {
                from_source(st) >= self.limits.max_per_source
            });
            if from_source(&st) >= self.limits.max_per_source {
                drop(st);
                bump(&self.counters.refused_source_limit);
                refuse(
                    &stream,
                    "busy: too many connections from your address, retry shortly\n",
                );
                return;
            }
        }
        if st.slots.len() >= self.limits.max_connections {
            st = self.make_room(st, None);
            st = self.wait_for_last(st, None, |st| st.slots.len() >= self.limits.max_connections);
            if st.slots.len() >= self.limits.max_connections {
                drop(st);
                bump(&self.counters.refused_busy);
                refuse(&stream, "busy: too many connections, retry shortly\n");
                return;
            }
        }
        let id = st.next_id;
        st.next_id += 1;
        st.slots.push(Slot {
            id,
            stream: stream.clone(),
            source,
            phase: Phase::Waiting(accepted_at),
            queued: true,
        });
        st.queue.push_back(Job {
            id,
            stream,
            peer,
            accepted_at,
        });
        if st.queue.len() > st.idle && st.threads < self.limits.max_connections {
            self.spawn_thread(&mut st);
        }
        self.work.notify_one();
    }

    /// Closes one connection (of `source` only, if given) and waits
    /// (briefly) for its slot to be freed: of the connections waiting for a
    /// request head and the slow readers (a response the client has not
    /// taken a tenth of the timeout after it started), the one waiting or
    /// stalled longest. A connection busy with a response its client takes
    /// is never evicted.
    fn make_room<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        source: Option<IpAddr>,
    ) -> MutexGuard<'a, State> {
        let now = Instant::now();
        let slow_after = self.limits.timeout / SLOW_READER_AFTER;
        let victim = st
            .slots
            .iter()
            .filter(|s| source.is_none() || s.source == source)
            .filter_map(|s| match s.phase {
                // A head that has arrived but not been read yet (the
                // connection is queued for a thread, or its thread has not
                // run) is a client that sent its request at once: not idle.
                Phase::Waiting(t) if !head_pending(&s.stream) => {
                    Some((t, s.id, &self.counters.evicted))
                }
                Phase::Writing(t, _) if now - t >= slow_after && unsent_bytes(&s.stream) > 0 => {
                    Some((t, s.id, &self.counters.evicted_slow_readers))
                }
                _ => None,
            })
            .min_by_key(|(t, id, _)| (*t, *id))
            .map(|(_, id, counter)| (id, counter));
        let Some((id, counter)) = victim else {
            return st;
        };
        bump(counter);
        let Some(i) = st.slots.iter().position(|s| s.id == id) else {
            return st;
        };
        let slot = &mut st.slots[i];
        slot.phase = Phase::Evicted;
        let _ = slot.stream.shutdown(Shutdown::Both);
        if slot.queued {
            st.slots.swap_remove(i);
            st.queue.retain(|j| j.id != id);
            return st;
        }
        // Its thread sees the socket shut (EOF, or a failed write) at once
        // and frees the slot.
        self.freed
            .wait_timeout_while(st, EVICT_WAIT, |st| st.slots.iter().any(|s| s.id == id))
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// While `full`, waits (briefly) for a connection (of `source`, if
    /// given) that is writing its last response to close: a client that
    /// opens its next connection as soon as it has read the previous
    /// answer is not refused because the server has not freed that slot
    /// yet.
    fn wait_for_last<'a>(
        &self,
        st: MutexGuard<'a, State>,
        source: Option<IpAddr>,
        full: impl Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        let closing = st.slots.iter().any(|s| {
            (source.is_none() || s.source == source) && matches!(s.phase, Phase::Writing(_, true))
        });
        if !full(&st) || !closing {
            return st;
        }
        self.freed
            .wait_timeout_while(st, EVICT_WAIT, |st| full(st))
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    fn spawn_thread(self: &Arc<Self>, st: &mut State) {
        let shared = self.clone();
        let n = st.next_thread;
        let spawned = std::thread::Builder::new()
            .name(format!("http-{n}"))
            .stack_size(THREAD_STACK)
            .spawn(move || shared.worker());
        match spawned {
            Ok(_) => {
                st.threads += 1;
                st.next_thread += 1;
            }
            // The connection stays queued for a running thread.
            Err(e) => log::warn!("HTTP: cannot start a connection thread: {e}"),
        }
    }

    /// A connection thread: serves queued connections one at a time.
    fn worker(self: Arc<Self>) {
        let mut st = lock(&self.state);
        loop {
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            if let Some(job) = st.queue.pop_front() {
                if let Some(s) = st.slots.iter_mut().find(|s| s.id == job.id) {
                    s.queued = false;
                }
                drop(st);
                self.serve(&job);
                st = lock(&self.state);
                st.slots.retain(|s| s.id != job.id);
                self.freed.notify_all();
                continue;
            }
            st.idle += 1;
            let (guard, wait) = self
                .work
                .wait_timeout(st, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            st = guard;
            st.idle -= 1;
            if wait.timed_out() && st.queue.is_empty() && st.threads > self.limits.min_threads {
                break;
            }
        }
        st.threads -= 1;
        self.freed.notify_all();
    }

    /// Counts a response not taken in time (or a client gone), unless the
    /// connection was evicted (counted as that).
    fn write_failed(&self, id: u64) {
        let st = lock(&self.state);
        if st
            .slots
            .iter()
            .any(|s| s.id == id && s.phase != Phase::Evicted)
        {
            bump(&self.counters.write_failures);
        }
    }

    /// Marks the response being written as the connection's last.
    fn mark_last(&self, id: u64) {
        let mut st = lock(&self.state);
        if let Some(s) = st.slots.iter_mut().find(|s| s.id == id) {
            if let Phase::Writing(t, _) = s.phase {
                s.phase = Phase::Writing(t, true);
            }
        }
    }

    fn set_phase(&self, id: u64, phase: Phase) {
        let mut st = lock(&self.state);
        if let Some(s) = st
            .slots
            .iter_mut()
            .find(|s| s.id == id && s.phase != Phase::Evicted)
        {
            s.phase = phase;
        }
    }

    /// Serves one connection: requests until the client closes, asks to
    /// close, errs, or idles past the timeout.
    fn serve(&self, job: &Job) {
        let stream: &TcpStream = &job.stream;
        let _ = stream.set_nodelay(true);
        let timeout = self.limits.timeout;
        let mut buf = Vec::with_capacity(1024.min(self.limits.max_request_bytes));
        let mut deadline = job.accepted_at + timeout;
        let mut unauthorized = 0;
        loop {
            let mut scan = HeadScanner::default();
            let end = match read_head(
                stream,
                &mut buf,
                &mut scan,
                deadline,
                self.limits.max_request_bytes,
            ) {
                Ok(end) => end,
                Err(HeadRead::Closed) => return,
                Err(HeadRead::TimedOut) => {
                    // An idle connection just closes; a partial request hears why.
                    if has_request_bytes(&buf) {
                        bump(&self.counters.timed_out);
                        self.send_error(job.id, stream, 408, "request head not received in time\n");
                    }
                    return;
                }
                Err(HeadRead::NotHttp) => {
                    bump(&self.counters.bad_requests);
                    self.send_error(
                        job.id,
                        stream,
                        400,
                        "bad request: not an HTTP/1.x request\n",
                    );
                    return;
                }
                Err(HeadRead::TooLarge) => {
                    bump(&self.counters.too_large);
                    self.send_error(job.id, stream, 431, "request head too large\n");
                    return;
                }
            };
            let started = Instant::now();
            self.set_phase(job.id, Phase::Writing(started, false));
            let response_deadline = started + timeout;
            let keep_alive = self.answer(job, &buf[..end], response_deadline, &mut unauthorized);
            if !keep_alive || self.stop.load(Ordering::Acquire) {
                return;
            }
            // Bounded pipelining: when the client has already sent more
            // (it pipelines), the next request waits until the client has
            // taken this response whole, so a client that sends many and
            // reads none gets one response in flight, not one per request.
            // A client that waits for each answer sends its next request
            // only after reading this one: no wait then.
            let pipelined = buf.len() > end || readable_now(stream);
            if pipelined && !wait_taken(stream, response_deadline) {
                self.write_failed(job.id);
                return;
            }
            buf.drain(..end);
            let now = Instant::now();
            deadline = now + timeout;
            self.set_phase(job.id, Phase::Waiting(now));
        }
    }

    /// Answers one complete head, the response due by `deadline`;
    /// `unauthorized` counts this connection's 401s. Returns whether the
    /// connection stays open.
    fn answer(&self, job: &Job, head: &[u8], deadline: Instant, unauthorized: &mut u32) -> bool {
        let stream: &TcpStream = &job.stream;
        let req = parse_head(head)
            .and_then(|r| r.check_host().map(|()| r))
            .and_then(|r| r.has_body().map(|b| (r, b)));
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                if e.status() == 431 {
                    bump(&self.counters.too_large);
                } else {
                    bump(&self.counters.bad_requests);
                }
                self.send_error(job.id, stream, e.status(), &format!("{e}\n"));
                return false;
            }
        };
        let (req, has_body) = req;
        bump(&self.counters.requests);
        let path = req.path();
        let method = req.method.as_str();
        let mut keep_alive = req.keep_alive() && !has_body;
        let mut reply = match &self.auth {
            Some(creds) if needs_auth(path) && !creds.check(req.header("Authorization")) => {
                bump(&self.counters.unauthorized);
                *unauthorized += 1;
                if *unauthorized >= MAX_UNAUTHORIZED && keep_alive {
                    bump(&self.counters.closed_unauthorized);
                    keep_alive = false;
                }
                Reply::text(
                    401,
                    "unauthorized: send the credentials in --metrics-auth-file\n",
                )
            }
            _ => respond(method, path, &self.published, self.stale_after),
        };
        if let Body::Metrics(_, own) = &mut reply.body {
            // The server's own counters, as of this scrape.
            super::server_metrics::render(own, &self.stats());
        }
        if !keep_alive {
            self.mark_last(job.id);
        }
        // HTTP/1.0 closes by default; HTTP/1.1 is told.
        let announce_close = !keep_alive && req.version == HTTPVersion(1, 1);
        let status = reply.status;
        let written = write_reply(
            stream,
            reply,
            self.challenge(),
            &req.version,
            &req.headers,
            req.method == Method::Head,
            announce_close,
            deadline,
        );
        // The path only: a query string may carry what a client did not
        // mean to have logged.
        let logged = route_path(path);
        log::debug!(
            "HTTP {method} {} {status} from {}",
            logged.get(..logged.len().min(200)).unwrap_or(""),
            job.peer.map(|p| p.to_string()).unwrap_or_default()
        );
        if let Err(e) = written {
            self.write_failed(job.id);
            log::debug!("HTTP: writing the response: {e}");
            return false;
        }
        if has_body {
            linger_close(stream);
        }
        keep_alive
    }

    fn challenge(&self) -> Option<&'static str> {
        self.auth.as_ref().map(|c| c.challenge())
    }

    /// Writes an error response (with `Connection: close`) and closes gently.
    fn send_error(&self, id: u64, stream: &TcpStream, status: u16, message: &str) {
        self.set_phase(id, Phase::Writing(Instant::now(), true));
        bump(&self.counters.requests);
        let deadline = Instant::now() + ERROR_WRITE.min(self.limits.timeout);
        let reply = Reply::text(status, message);
        if write_reply(
            stream,
            reply,
            None,
            &HTTPVersion(1, 1),
            &[],
            false,
            true,
            deadline,
        )
        .is_err()
        {
            bump(&self.counters.write_failures);
        }
        linger_close(stream);
    }
}

/// Starts the accept thread.
pub(super) fn start(shared: Arc<Shared>, listener: TcpListener) -> JoinHandle<()> {
    {
        let mut st = lock(&shared.state);
        for _ in 0..shared.limits.min_threads {
            shared.spawn_thread(&mut st);
        }
    }
    std::thread::Builder::new()
        .name("http-accept".into())
        .spawn(move || accept_loop(&shared, &listener))
        .expect("spawning the HTTP accept thread")
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    if let Err(e) = listener.set_nonblocking(true) {
        log::warn!(
            "HTTP: cannot make the listener non-blocking ({e}); shutdown may wait for a connection"
        );
    }
    // A descriptor kept in reserve: when accept() fails with EMFILE, it is
    // released to accept and close the pending connection, so the client
    // is told at once instead of hanging in the backlog.
    let mut reserve = std::fs::File::open("/dev/null").ok();
    let mut summary = Summary::new(shared);
    while !shared.stop.load(Ordering::Acquire) {
        summary.maybe_log(shared);
        match listener.accept() {
            Ok((stream, peer)) => {
                if stream.set_nonblocking(false).is_err() {
                    continue;
                }
                shared.admit(stream, Some(peer));
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => wait_readable(listener),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                bump(&shared.counters.accept_errors);
                summary.last_accept_error = Some(e.to_string());
                match e.raw_os_error() {
                    Some(libc::EMFILE) | Some(libc::ENFILE) => {
                        drop(reserve.take());
                        if let Ok((s, _)) = listener.accept() {
                            refuse(&s, "busy: out of file descriptors, retry shortly\n");
                        }
                        reserve = std::fs::File::open("/dev/null").ok();
                        std::thread::sleep(ACCEPT_BACKOFF);
                    }
                    Some(libc::ENOBUFS) | Some(libc::ENOMEM) => {
                        std::thread::sleep(ACCEPT_BACKOFF * 10)
                    }
                    // ECONNABORTED, EPROTO, EPERM (firewall) ...: that
                    // connection is gone; the next may be fine.
                    _ => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
    }
}

/// Logs, at most every 10 s, what the server refused since the last line.
struct Summary {
    at: Instant,
    last: ServerStats,
    last_accept_error: Option<String>,
}

impl Summary {
    fn new(shared: &Shared) -> Summary {
        Summary {
            at: Instant::now(),
            last: shared.stats(),
            last_accept_error: None,
        }
    }

    fn maybe_log(&mut self, shared: &Shared) {
        if self.at.elapsed() < SUMMARY_EVERY {
            return;
        }
        let now = shared.stats();
        let d = |f: fn(&ServerStats) -> u64| f(&now) - f(&self.last);
        let parts = [
            (d(|s| s.refused_busy), "refused (all busy)"),
            (
                d(|s| s.refused_source_limit),
                "refused (their address held its share)",
            ),
            (d(|s| s.evicted), "idle connections closed to make room"),
            (
                d(|s| s.evicted_slow_readers),
                "slow readers closed to make room",
            ),
            (
                d(|s| s.closed_unauthorized),
                "connections closed after repeated 401s",
            ),
            (d(|s| s.timed_out), "request heads timed out"),
            (d(|s| s.too_large), "too large"),
            (d(|s| s.bad_requests), "malformed"),
            (d(|s| s.unauthorized), "unauthorized"),
            (d(|s| s.accept_errors), "accept errors"),
        ];
        let said: Vec<String> = parts
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, what)| format!("{n} {what}"))
            .collect();
        if !said.is_empty() {
            let err = self
                .last_accept_error
                .take()
                .map(|e| format!(" (last accept error: {e})"))
                .unwrap_or_default();
            log::warn!(
                "HTTP in the last {}s: {}{err}; {} connections open",
                self.at.elapsed().as_secs(),
                said.join(", "),
                now.open_connections
            );
        }
        self.at = Instant::now();
        self.last = now;
    }
}

fn wait_readable(listener: &TcpListener) {
    let mut fds = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut fds, 1, POLL_MS) };
}

#[derive(Debug, PartialEq, Eq)]
enum HeadRead {
    /// EOF or a socket error (eviction and shutdown look like this too).
    Closed,
    TimedOut,
    TooLarge,
    /// The first bytes cannot start an HTTP request (TLS, binary junk).
    NotHttp,
}

/// Reads until `buf` holds a whole head, within `deadline` and
/// `max_bytes`. Bytes past the head (a pipelined request) stay in `buf`.
fn read_head(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    scan: &mut HeadScanner,
    deadline: Instant,
    max_bytes: usize,
) -> Result<usize, HeadRead> {
    let mut chunk = [0u8; 4096];
    let mut reader = stream;
    loop {
        if let Some(end) = scan.find_end(buf) {
            return Ok(end);
        }
        if buf.len() >= max_bytes {
            return Err(HeadRead::TooLarge);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HeadRead::TimedOut);
        }
        // The remaining time, not a fresh timeout: a byte now and then
        // does not extend the deadline.
        if stream.set_read_timeout(Some(deadline - now)).is_err() {
            return Err(HeadRead::Closed);
        }
        let want = chunk.len().min(max_bytes - buf.len());
        match reader.read(&mut chunk[..want]) {
            Ok(0) => return Err(HeadRead::Closed),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if cannot_be_request(buf) {
                    return Err(HeadRead::NotHttp);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return Err(HeadRead::Closed),
        }
    }
}

/// A writer that fails once `deadline` passes, however the client reads.
struct DeadlineWriter<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
}

impl Write for DeadlineWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not take the response in time",
            ));
        }
        self.stream.set_write_timeout(Some(self.deadline - now))?;
        let mut w = self.stream;
        w.write(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("static header is valid")
}

/// Writes `reply` with tiny_http. `announce_close` adds `Connection: close`
/// (tiny_http's `Response` refuses that header, so it is inserted after
/// the status line as the response streams out).
#[allow(clippy::too_many_arguments)]
fn write_reply(
    stream: &TcpStream,
    reply: Reply,
    challenge: Option<&'static str>,
    version: &HTTPVersion,
    request_headers: &[Header],
    head_only: bool,
    announce_close: bool,
    deadline: Instant,
) -> io::Result<()> {
    let mut headers = vec![header("Content-Type", reply.content_type)];
    headers.extend(reply.headers.iter().map(|(n, v)| header(n, v)));
    match reply.status {
        405 => headers.push(header("Allow", "GET, HEAD")),
        401 => headers.push(header(
            "WWW-Authenticate",
            challenge.unwrap_or("Bearer realm=\"netprobe\""),
        )),
        503 => headers.push(header("Retry-After", "1")),
        _ => {}
    }
    let len = reply.body.len();
    let response = Response::new(
        StatusCode(reply.status),
        headers,
        reply.body.into_reader(),
        Some(len),
        None,
    );
    let out = BufWriter::with_capacity(16 * 1024, DeadlineWriter { stream, deadline });
    let mut w = CloseAfterStatusLine {
        inner: out,
        pending: announce_close,
    };
    response.raw_print(&mut w, version.clone(), request_headers, head_only, None)?;
    w.inner.flush()
}

/// Passes a response through, inserting `Connection: close` after its
/// status line (the first LF) if `pending`.
struct CloseAfterStatusLine<W: Write> {
    inner: W,
    pending: bool,
}

impl<W: Write> Write for CloseAfterStatusLine<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.pending {
            return self.inner.write(data);
        }
        match data.iter().position(|&b| b == b'\n') {
            None => self.inner.write(data),
            Some(i) => {
                self.inner.write_all(&data[..=i])?;
                self.inner.write_all(b"Connection: close\r\n")?;
                self.pending = false;
                Ok(i + 1)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes written to `stream` that its client has not acknowledged yet
/// (`SIOCOUTQ`); 0 if that cannot be told.
fn unsent_bytes(stream: &TcpStream) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: TIOCOUTQ (SIOCOUTQ) writes one int for a TCP socket.
    let rc = unsafe { libc::ioctl(stream.as_raw_fd(), libc::TIOCOUTQ, &mut n) };
    if rc == 0 {
        n.max(0) as usize
    } else {
        0
    }
}

/// The poll(2) events `stream` has now, without waiting.
fn poll_now(stream: &TcpStream, events: libc::c_short) -> libc::c_short {
    let mut fds = libc::pollfd {
        fd: stream.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    if unsafe { libc::poll(&mut fds, 1, 0) } > 0 {
        fds.revents
    } else {
        0
    }
}

/// Whether the bytes the client has sent and the server not yet read end a
/// request head (a blank line), peeked without taking them. Bounded to one
/// 8 KiB peek; a head past that is read (and refused) by its thread.
fn head_pending(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: a valid buffer and length; MSG_PEEK leaves the bytes queued.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    let pending = &buf[..n.max(0) as usize];
    pending.windows(4).any(|w| w == b"\r\n\r\n") || pending.windows(2).any(|w| w == b"\n\n")
}

/// Whether the client has sent bytes not read yet.
fn readable_now(stream: &TcpStream) -> bool {
    poll_now(stream, libc::POLLIN) & libc::POLLIN != 0
}

/// Waits until the client has acknowledged everything written to
/// `stream`, until `deadline`. False if it did not, or the connection was
/// shut meanwhile (eviction, shutdown).
fn wait_taken(stream: &TcpStream, deadline: Instant) -> bool {
    let mut pause = TAKEN_POLL.0;
    loop {
        if unsent_bytes(stream) == 0 {
            return true;
        }
        let now = Instant::now();
        // No events asked: only a hang-up or an error is reported.
        if now >= deadline || poll_now(stream, 0) & (libc::POLLHUP | libc::POLLERR) != 0 {
            return false;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(TAKEN_POLL.1);
    }
}

/// Ends the connection after an error: no more writes, then read and
/// discard what the client still sends (bounded in time and bytes), so
/// the close does not reset the connection before the client reads.
fn linger_close(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER;
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    let mut reader = stream;
    while drained < LINGER_BYTES {
        let now = Instant::now();
        if now >= deadline || stream.set_read_timeout(Some(deadline - now)).is_err() {
            break;
        }
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Refuses a connection from the accept thread without ever blocking it:
/// a non-blocking 503 (best effort) with `body`, and a close.
fn refuse(stream: &TcpStream, body: &str) {
    let _ = stream.set_nonblocking(true);
    let mut sink = [0u8; 4096];
    let mut reader = stream;
    let _ = reader.read(&mut sink);
    let mut bytes = CloseAfterStatusLine {
        inner: Vec::with_capacity(256),
        pending: true,
    };
    let response = Response::new(
        StatusCode(503),
        vec![
            header("Content-Type", "text/plain; charset=utf-8"),
            header("Retry-After", "1"),
        ],
        body.as_bytes(),
        Some(body.len()),
        None,
    );
    if response
        .raw_print(&mut bytes, HTTPVersion(1, 1), &[], false, None)
        .is_ok()
    {
        let mut w = stream;
        let _ = w.write(&bytes.inner);
    }
    let _ = stream.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_connection_close_after_the_status_line() {
        let mut w = CloseAfterStatusLine {
            inner: Vec::new(),
            pending: true,
        };
        // In pieces, as write! hands them over.
        for piece in ["HTTP/1.1 ", "400 Bad Request\r", "\nA: b\r\n", "\r\nbody\n"] {
            w.write_all(piece.as_bytes()).unwrap();
        }
        assert_eq!(
            w.inner,
            b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nA: b\r\n\r\nbody\n"
        );
        let mut w = CloseAfterStatusLine {
            inner: Vec::new(),
            pending: false,
        };
        w.write_all(b"HTTP/1.1 200 OK\r\n\r\n").unwrap();
        assert_eq!(w.inner, b"HTTP/1.1 200 OK\r\n\r\n");
    }
}
