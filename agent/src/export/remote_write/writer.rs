//! [`RemoteWriter`]: one receiver's queue, spool and sending thread.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::backoff::Backoff;
use super::chunk::{self, Chunk, Limits};
use super::client::{Authorization, Client, Outcome};
use super::sample::{ExternalLabels, Sample};
use super::spool::Spool;
use super::spool_dir::SpoolDir;
use super::stats::{SpoolGauges, Stats};
use crate::export::SinkMetric;

/// One receiver's settings. [`Default`] holds the proposed flag defaults.
#[derive(Clone, Debug)]
pub struct RemoteWriteConfig {
    /// `--remote-write-url`: http(s)://HOST[:PORT]/api/v1/write.
    pub url: String,
    /// This receiver's `receiver` label in the writer's own metrics: its
    /// position among the `--remote-write-url` flags ("0", "1"), never
    /// the URL (it may hold a secret).
    pub receiver: String,
    /// `--remote-write-label`.
    pub external_labels: ExternalLabels,
    /// From `--remote-write-auth-file`.
    pub authorization: Option<Authorization>,
    /// `--remote-write-ca-file`.
    pub ca_file: Option<PathBuf>,
    /// `--remote-write-timeout`: one whole request, connect to last byte.
    pub timeout: Duration,
    /// Samples and uncompressed bytes per request.
    pub limits: Limits,
    /// `--remote-write-spool-bytes`: the bound on unsent samples.
    pub spool_bytes: usize,
    /// `--remote-write-spool-dir`: keep the spool across restarts.
    pub spool_dir: Option<PathBuf>,
    /// How often unsent chunks are written to the spool directory (and at
    /// shutdown). A crash loses at most this much of an outage.
    pub spool_flush_interval: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: String::new(),
            receiver: "0".into(),
            external_labels: ExternalLabels::default(),
            authorization: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
            limits: Limits::default(),
            spool_bytes: 8 << 20,
            spool_dir: None,
            spool_flush_interval: Duration::from_secs(60),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            retry_after_cap: Duration::from_secs(300),
        }
    }
}

/// Pushes samples to one Prometheus remote_write receiver.
///
/// How it is driven: create it once per `--remote-write-url`, run
/// [`RemoteWriter::run`] in a thread of its own, and call
/// [`RemoteWriter::push`] with every series of each published snapshot
/// (every `--remote-write-interval`). `push` only encodes and queues: it
/// never waits for the network, so a dead receiver cannot slow the caller.
/// The queue (the spool) is bounded in bytes; when full, the oldest samples
/// are dropped and counted. [`RemoteWriter::shutdown`] stops `run`, which
/// then writes what is unsent to the spool directory, if there is one.
pub struct RemoteWriter {
    config: RemoteWriteConfig,
    client: Client,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    spool: Spool,
    dir: Option<SpoolDir>,
    next_id: u64,
    /// The request on the wire: its chunks' ids and sample counts.
    in_flight: Vec<(u64, u32)>,
    /// Samples of in-flight chunks the spool dropped meanwhile: they count
    /// as sent or dropped when the request's answer comes.
    in_flight_evicted: u64,
    /// After a rejected multi-chunk request, chunks up to this id are sent
    /// one by one, so one bad chunk cannot take the others with it.
    singly_through: Option<u64>,
    stop: bool,
    stats: Stats,
    last_flush: Instant,
}

impl RemoteWriter {
    /// Sets up the client and, with a spool directory, loads what an earlier
    /// run left unsent (oldest dropped if it exceeds the bound).
    ///
    /// # Errors
    /// A bad URL or CA file, or a spool directory that cannot be created or
    /// read; the message names the flag.
    pub fn new(config: RemoteWriteConfig) -> Result<RemoteWriter, String> {
        let client = Client::new(
            &config.url,
            config.authorization.clone(),
            config.ca_file.as_deref(),
            config.timeout,
        )?;
        let mut state = State {
            spool: Spool::new(config.spool_bytes),
            dir: None,
            next_id: 0,
            in_flight: Vec::new(),
            in_flight_evicted: 0,
            singly_through: None,
            stop: false,
            stats: Stats::default(),
            last_flush: Instant::now(),
        };
        if let Some(d) = &config.spool_dir {
            let (dir, loaded) = SpoolDir::open(d, &mut state.next_id)?;
            state.dir = Some(dir);
            state.stats.spool_corrupt_records = loaded.corrupt_records;
            let n = loaded.chunks.iter().map(|c| c.samples as u64).sum::<u64>();
            if n > 0 {
                log::info!(
                    "remote_write {}: {n} unsent samples from {}",
                    config.receiver,
                    d.display()
                );
            }
            for c in loaded.chunks {
                state.enqueue(c);
            }
        }
        Ok(RemoteWriter {
            config,
            client,
            state: Mutex::new(state),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues samples (with the external labels) for sending. Cheap and
    /// non-blocking: encoding happens here, sending in [`RemoteWriter::run`].
    pub fn push(&self, samples: &[Sample]) {
        let mut ids = 0;
        let chunks = chunk::encode(
            samples,
            &self.config.external_labels,
            self.config.limits,
            &mut ids,
        );
        let mut st = self.lock();
        for mut c in chunks {
            c.id = st.next_id;
            st.next_id += 1;
            st.enqueue(c);
        }
        drop(st);
        self.wake.notify_all();
    }

    /// Sends until [`RemoteWriter::shutdown`]; run it in its own thread.
    /// Oldest samples first, so each series reaches the receiver in time
    /// order; failed requests are retried after a backoff, forever, while
    /// the spool bound decides what is kept.
    pub fn run(&self) {
        let mut backoff = Backoff::new(self.config.min_backoff, self.config.max_backoff);
        let mut failing_since: Option<Instant> = None;
        let mut st = self.lock();
        while !st.stop {
            st = self.flush_if_due(st);
            if st.spool.is_empty() {
                let wait = self.config.spool_flush_interval.min(Duration::from_secs(1));
                st = self.wait(st, wait);
                continue;
            }
            let (in_flight, body) = {
                let mut batch: Vec<&Chunk> = st.spool.front_batch(self.config.limits);
                if st.singly_through.is_some_and(|last| batch[0].id <= last) {
                    batch.truncate(1);
                }
                let ids: Vec<(u64, u32)> = batch.iter().map(|c| (c.id, c.samples)).collect();
                (ids, chunk::merge(&batch))
            };
            if st.singly_through.is_some_and(|last| in_flight[0].0 > last) {
                st.singly_through = None;
            }
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    // Only a spool file damaged in a way its CRC missed.
                    log::warn!("remote_write {}: {e}; dropped", self.config.receiver);
                    st.stats.spool_corrupt_records += 1;
                    st.remove_through(in_flight[0].0);
                    continue;
                }
            };
            st.in_flight = in_flight;
            st.in_flight_evicted = 0;
            drop(st);

            let started = Instant::now();
            let outcome = self.client.post(&body);
            let took = started.elapsed().as_secs_f64();

            st = self.lock();
            st.stats.last_push_seconds = took;
            st.stats.push_seconds_total += took;
            let in_flight = std::mem::take(&mut st.in_flight);
            let evicted = std::mem::take(&mut st.in_flight_evicted);
            let samples: u64 = in_flight.iter().map(|(_, n)| *n as u64).sum();
            let last = in_flight.last().map_or(0, |(id, _)| *id);
            match outcome {
                Outcome::Accepted => {
                    st.stats.requests_accepted += 1;
                    st.stats.sent += samples;
                    st.stats.last_success_unix = crate::clock::unix_now();
                    st.remove_through(last);
                    backoff.reset();
                    if let Some(since) = failing_since.take() {
                        log::info!(
                            "remote_write {}: receiver back after {:.1} s",
                            self.config.receiver,
                            since.elapsed().as_secs_f64()
                        );
                    }
                }
                Outcome::Retry { why, retry_after } => {
                    st.stats.requests_retried += 1;
                    st.stats.retried += samples - evicted;
                    st.stats.dropped_spool_full += evicted;
                    if failing_since.is_none() {
                        failing_since = Some(Instant::now());
                        log::warn!(
                            "remote_write {}: {why}; retrying with backoff, spooling up to {} bytes",
                            self.config.receiver,
                            self.config.spool_bytes
                        );
                    }
                    let delay = backoff.next(retry_after, self.config.retry_after_cap);
                    let until = Instant::now() + delay;
                    while !st.stop && Instant::now() < until {
                        let left = until.saturating_duration_since(Instant::now());
                        st = self.flush_if_due(st);
                        st = self.wait(st, left.min(Duration::from_secs(1)));
                    }
                }
                Outcome::Rejected { status, .. } if in_flight.len() > 1 => {
                    log::debug!(
                        "remote_write {}: HTTP {status} for {} chunks; sending them one by one",
                        self.config.receiver,
                        in_flight.len()
                    );
                    st.stats.requests_rejected += 1;
                    st.singly_through = Some(last);
                    // Chunks the spool dropped meanwhile are not resent.
                    st.stats.dropped_spool_full += evicted;
                }
                Outcome::Rejected { why, .. } => {
                    st.stats.requests_rejected += 1;
                    st.stats.failed += samples;
                    st.remove_through(last);
                    log::warn!(
                        "remote_write {}: {why}; {samples} samples dropped",
                        self.config.receiver
                    );
                }
            }
        }
        self.finish(st);
    }

    /// Waits on the condition variable for at most `d` (a push or a stop
    /// wakes it early).
    fn wait<'a>(&'a self, st: MutexGuard<'a, State>, d: Duration) -> MutexGuard<'a, State> {
        self.wake
            .wait_timeout(st, d)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    fn flush_if_due<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        if st.dir.is_some() && st.last_flush.elapsed() >= self.config.spool_flush_interval {
            st.flush(&self.config.receiver);
        }
        st
    }

    /// At the end of `run`: unsent chunks go to the spool directory, or are
    /// counted as dropped without one.
    fn finish(&self, mut st: MutexGuard<'_, State>) {
        if st.dir.is_some() {
            st.flush(&self.config.receiver);
            let n = st.spool.samples();
            if n > 0 {
                log::info!(
                    "remote_write {}: {n} unsent samples kept in the spool directory",
                    self.config.receiver
                );
            }
        } else {
            let n = st.spool.samples();
            st.stats.dropped_shutdown += n;
            st.spool.pop_through(u64::MAX);
            if n > 0 {
                log::warn!(
                    "remote_write {}: {n} unsent samples lost at shutdown (no --remote-write-spool-dir)",
                    self.config.receiver
                );
            }
        }
    }

    /// Makes [`RemoteWriter::run`] return: at once when idle or backing off,
    /// else when the request on the wire ends (within the timeout).
    pub fn shutdown(&self) {
        self.lock().stop = true;
        self.wake.notify_all();
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn spool_gauges(&self) -> SpoolGauges {
        let st = self.lock();
        SpoolGauges {
            bytes: st.spool.bytes() as u64,
            max_bytes: st.spool.max_bytes() as u64,
            samples: st.spool.samples(),
            disk_bytes: st.dir.as_ref().map_or(0, |d| d.disk_bytes()),
            oldest_age_seconds: st.spool.oldest_ms().map_or(0.0, |ms| {
                ((crate::clock::unix_now() * 1000.0) as i64 - ms).max(0) as f64 / 1000.0
            }),
        }
    }

    /// The writer's own metrics, for `/metrics` (and so for the next push).
    pub fn metrics(&self) -> Vec<SinkMetric> {
        let g = self.spool_gauges();
        self.stats().metrics(&self.config.receiver, g)
    }
}

impl State {
    /// Adds a chunk to the spool and accounts for the oldest it pushes out.
    fn enqueue(&mut self, c: Chunk) {
        for old in self.spool.push(c) {
            if let Some(seg) = old.segment {
                if let Some(d) = self.dir.as_mut() {
                    d.release(seg);
                }
            }
            if self.in_flight.iter().any(|(id, _)| *id == old.id) {
                self.in_flight_evicted += old.samples as u64;
            } else {
                self.stats.dropped_spool_full += old.samples as u64;
            }
        }
    }

    /// Removes chunks up to `last` after their request's answer.
    fn remove_through(&mut self, last: u64) {
        for c in self.spool.pop_through(last) {
            if let (Some(seg), Some(d)) = (c.segment, self.dir.as_mut()) {
                d.release(seg);
            }
        }
    }

    /// Writes unsent chunks to the spool directory and its cursor.
    fn flush(&mut self, receiver: &str) {
        self.last_flush = Instant::now();
        let Some(dir) = self.dir.as_mut() else {
            return;
        };
        let unsaved: Vec<&mut Chunk> = self.spool.unsaved().collect();
        let res = if unsaved.is_empty() {
            Ok(())
        } else {
            dir.save(unsaved)
        };
        if let Err(e) = res.and_then(|()| dir.sync_cursor()) {
            self.stats.spool_write_errors += 1;
            log::warn!("remote_write {receiver}: spool directory: {e}");
        }
    }
}
