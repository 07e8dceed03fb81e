//! The HTTP server's own counters as Prometheus metrics, appended to each
//! /metrics response (they are the server's, as of the scrape; the rest of
//! the page is the collector's snapshot).

use super::ServerStats;
use crate::prom::Family;

/// Renders `s` into `out`.
pub fn render(out: &mut String, s: &ServerStats) {
    Family::new(
        out,
        "netprobe_http_connections_accepted_total",
        "counter",
        "HTTP connections accepted (then served, or refused).",
    )
    .sample(&[], s.accepted);
    Family::new(
        out,
        "netprobe_http_connections_refused_total",
        "counter",
        "HTTP connections answered 503 and closed at once: busy (the pool was full) or \
         source_limit (their address held half the pool), with no idle connection or slow reader to evict.",
    )
    .sample(&[("reason", "busy")], s.refused_busy)
    .sample(&[("reason", "source_limit")], s.refused_source_limit);
    Family::new(
        out,
        "netprobe_http_connections_evicted_total",
        "counter",
        "HTTP connections closed to make room for a new one: idle (waiting longest for a request) or \
         slow_reader (a response not taken after a tenth of --http-timeout).",
    )
    .sample(&[("reason", "idle")], s.evicted)
    .sample(&[("reason", "slow_reader")], s.evicted_slow_readers);
    Family::new(
        out,
        "netprobe_http_connections_closed_total",
        "counter",
        "HTTP connections the server closed for cause: unauthorized (repeated 401s) or \
         response_not_taken (not read within --http-timeout, or the client went away).",
    )
    .sample(&[("reason", "unauthorized")], s.closed_unauthorized)
    .sample(&[("reason", "response_not_taken")], s.write_failures);
    Family::new(
        out,
        "netprobe_http_requests_total",
        "counter",
        "HTTP requests answered, any status.",
    )
    .sample(&[], s.requests);
    Family::new(
        out,
        "netprobe_http_requests_rejected_total",
        "counter",
        "HTTP requests refused: timeout (408), too_large (431), malformed (400, 505), unauthorized (401).",
    )
    .sample(&[("reason", "timeout")], s.timed_out)
    .sample(&[("reason", "too_large")], s.too_large)
    .sample(&[("reason", "malformed")], s.bad_requests)
    .sample(&[("reason", "unauthorized")], s.unauthorized);
    Family::new(
        out,
        "netprobe_http_accept_errors_total",
        "counter",
        "accept() failures of the HTTP listener (it carries on after each).",
    )
    .sample(&[], s.accept_errors);
    Family::new(
        out,
        "netprobe_http_connections_open",
        "gauge",
        "HTTP connections open now.",
    )
    .sample(&[], s.open_connections as u64);
    Family::new(
        out,
        "netprobe_http_threads",
        "gauge",
        "HTTP connection threads alive now.",
    )
    .sample(&[], s.threads as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_counter_once() {
        let mut out = String::new();
        render(
            &mut out,
            &ServerStats {
                accepted: 9,
                refused_source_limit: 2,
                evicted_slow_readers: 3,
                closed_unauthorized: 1,
                open_connections: 4,
                ..ServerStats::default()
            },
        );
        for line in [
            "netprobe_http_connections_accepted_total 9",
            "netprobe_http_connections_refused_total{reason=\"source_limit\"} 2",
            "netprobe_http_connections_evicted_total{reason=\"slow_reader\"} 3",
            "netprobe_http_connections_closed_total{reason=\"unauthorized\"} 1",
            "netprobe_http_connections_open 4",
        ] {
            assert_eq!(
                out.lines().filter(|l| *l == line).count(),
                1,
                "{line}\n{out}"
            );
        }
        assert_eq!(out.matches("# TYPE").count(), 9);
    }
}
