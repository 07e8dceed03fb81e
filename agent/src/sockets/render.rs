//! The socket layer's metrics, Prometheus text format 0.0.4. Labels are
//! bounded: direction, reason; never addresses, ports or processes.

use super::model::{Histogram, SocketSnapshot};
use crate::prom::{header as family, one, sample, Family};

/// A histogram family: cumulative buckets, sum and count.
fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let mut f = Family::new(out, name, "histogram", help);
    for (le, count) in h.cumulative() {
        let le = if le.is_finite() {
            le.to_string()
        } else {
            "+Inf".to_string()
        };
        f.sample_suffixed("_bucket", &[("le", &le)], count);
    }
    f.sample_suffixed("_sum", &[], h.sum);
    f.sample_suffixed("_count", &[], h.count);
}

/// Appends the socket layer's metrics to `out`. A layer that is not loaded
/// shows only `netprobe_socket_probes_loaded 0`.
pub fn render_metrics(s: &SocketSnapshot, out: &mut String) {
    one(
        out,
        "netprobe_socket_probes_loaded",
        "gauge",
        "1 when the socket-layer probes (TCP tracepoints) are loaded and attached.",
        u64::from(s.loaded),
    );
    if !s.loaded {
        return;
    }
    let c = &s.counters;
    family(
        out,
        "netprobe_tcp_connections_opened_total",
        "counter",
        "TCP connections opened: active (this host connected, SNMP ActiveOpens), passive (accepted, PassiveOpens).",
    );
    sample(
        out,
        "netprobe_tcp_connections_opened_total",
        &[("direction", "active")],
        c.opened_active,
    );
    sample(
        out,
        "netprobe_tcp_connections_opened_total",
        &[("direction", "passive")],
        c.opened_passive,
    );
    one(
        out,
        "netprobe_tcp_connections_failed_total",
        "counter",
        "TCP connection attempts that failed in the handshake: refused, timed out, unreachable (SNMP AttemptFails).",
        c.failed,
    );
    family(out, "netprobe_tcp_connections_closed_total", "counter",
        "TCP connections closed: normal (after the close handshake began), aborted (from established, by a reset, timeout or abort: SNMP EstabResets), abandoned (closed by their owner during the handshake).");
    sample(
        out,
        "netprobe_tcp_connections_closed_total",
        &[("reason", "normal")],
        c.closed_normal,
    );
    sample(
        out,
        "netprobe_tcp_connections_closed_total",
        &[("reason", "aborted")],
        c.closed_aborted,
    );
    sample(
        out,
        "netprobe_tcp_connections_closed_total",
        &[("reason", "abandoned")],
        c.closed_abandoned,
    );
    one(
        out,
        "netprobe_tcp_connections_established",
        "gauge",
        "TCP connections in ESTABLISHED or CLOSE-WAIT (SNMP CurrEstab), whether the connection table holds them or not.",
        c.established,
    );
    family(
        out,
        "netprobe_tcp_resets_total",
        "counter",
        "TCP resets (RST) sent and received.",
    );
    sample(
        out,
        "netprobe_tcp_resets_total",
        &[("direction", "sent")],
        c.resets_sent,
    );
    sample(
        out,
        "netprobe_tcp_resets_total",
        &[("direction", "received")],
        c.resets_received,
    );
    one(
        out,
        "netprobe_tcp_retransmitted_segments_total",
        "counter",
        "TCP segments retransmitted, SYN-ACKs included (SNMP RetransSegs).",
        c.retransmitted_segments,
    );
    one(
        out,
        "netprobe_tcp_connect_aborted_total",
        "counter",
        "connect() calls that failed before sending their SYN (no local port, no route); not counted as opened.",
        c.connect_aborted,
    );
    histogram(
        out,
        "netprobe_tcp_connection_duration_seconds",
        "Lifetime of closed TCP connections that were established, from the SYN or accept to close.",
        &s.duration,
    );
    histogram(
        out,
        "netprobe_tcp_srtt_seconds",
        "Smoothed round-trip time of TCP connections when they closed.",
        &s.srtt,
    );
    one(
        out,
        "netprobe_tcp_connections_tracked",
        "gauge",
        "Connections in the kernel connection table (sock_conns).",
        s.connections.entries,
    );
    one(
        out,
        "netprobe_tcp_connections_tracked_capacity",
        "gauge",
        "Size of the kernel connection table (--max-connections).",
        s.connections.capacity,
    );
    one(
        out,
        "netprobe_tcp_connections_untracked_total",
        "counter",
        "Connections not tracked because the connection table was full (counted, not listed).",
        c.untracked,
    );
    one(
        out,
        "netprobe_socket_events_total",
        "counter",
        "Connection events received from the socket probes' ring buffer.",
        s.events_total,
    );
    one(
        out,
        "netprobe_socket_events_lost_total",
        "counter",
        "Connection events the probes dropped because the ring buffer was full.",
        c.events_lost,
    );
    one(
        out,
        "netprobe_socket_owner_storage_failed_total",
        "counter",
        "TCP sockets the kernel had no memory to give owner storage: owner unknown, and the established gauge missed them until the next collection.",
        c.storage_failed,
    );
    one(
        out,
        "netprobe_socket_accepts_unseen_total",
        "counter",
        "Accepted connections whose accepting process the system call probe had no room to record (more than --max-connections accepts between two collections): they keep their listener's process.",
        c.accepts_unseen,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::model::{SocketSnapshot, DURATION_BUCKETS};

    #[test]
    fn disabled_layer_renders_one_line() {
        let mut out = String::new();
        render_metrics(&SocketSnapshot::disabled("off"), &mut out);
        assert!(out.ends_with("netprobe_socket_probes_loaded 0\n"), "{out}");
        assert_eq!(out.lines().filter(|l| !l.starts_with('#')).count(), 1);
    }

    #[test]
    fn histogram_lines() {
        let mut h = Histogram::new(&DURATION_BUCKETS);
        h.observe(0.002);
        h.observe(7200.0);
        let mut out = String::new();
        histogram(&mut out, "x_seconds", "help", &h);
        assert!(out.contains("x_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(out.contains("x_seconds_bucket{le=\"0.01\"} 1\n"));
        assert!(out.contains("x_seconds_bucket{le=\"3600\"} 1\n"));
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(out.contains("x_seconds_sum 7200.002\n"));
        assert!(out.contains("x_seconds_count 2\n"));
    }
}
