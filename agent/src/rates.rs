//! Per-second rates from two readings of a monotonic counter.

use std::time::{Duration, Instant};

/// One reading of an interface's counters, and when it was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reading {
    pub at: Instant,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Per-second rates between two readings, over the time measured between
/// them (never a nominal interval: a collection may come early, after a
/// link change, or late): `[rx_packets, tx_packets, rx_bytes, tx_bytes]`.
pub fn between(prev: &Reading, cur: &Reading) -> [f64; 4] {
    let dt = cur.at.saturating_duration_since(prev.at);
    [
        per_second(prev.rx_packets, cur.rx_packets, dt),
        per_second(prev.tx_packets, cur.tx_packets, dt),
        per_second(prev.rx_bytes, cur.rx_bytes, dt),
        per_second(prev.tx_bytes, cur.tx_bytes, dt),
    ]
}

/// Rate of a counter that went from `prev` to `cur` over `elapsed`.
/// A counter that went backwards was reset (the probes were reloaded):
/// count from zero, as Prometheus' rate() does.
pub fn per_second(prev: u64, cur: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0.0;
    }
    let delta = if cur >= prev { cur - prev } else { cur };
    delta as f64 / secs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(per_second(100, 600, Duration::from_secs(5)), 100.0);
        assert_eq!(per_second(0, 1, Duration::from_millis(500)), 2.0);
        assert_eq!(per_second(7, 7, Duration::from_secs(1)), 0.0);
        // Reset: counts from zero.
        assert_eq!(per_second(1000, 50, Duration::from_secs(10)), 5.0);
        assert_eq!(per_second(0, 10, Duration::ZERO), 0.0);
        // Large counters keep precision well past u32.
        assert_eq!(
            per_second(1 << 40, (1 << 40) + 3000, Duration::from_secs(3)),
            1000.0
        );
    }

    /// Issue 23: the rate divides by the time measured since the previous
    /// reading, not by the configured interval. 1000 packets 50 ms after
    /// the previous reading (an early collection after a link change, with
    /// a 5 s interval) are 20000/s, not 200/s.
    #[test]
    fn divides_by_the_elapsed_time_not_a_nominal_interval() {
        let r = per_second(5_000, 6_000, Duration::from_millis(50));
        assert!((r - 20_000.0).abs() < 1e-6, "{r}");
        // Sub-millisecond and odd elapsed times keep their precision.
        let r = per_second(0, 3, Duration::from_micros(1500));
        assert!((r - 2_000.0).abs() < 1e-6, "{r}");
        let r = per_second(0, 1_000, Duration::from_nanos(1_234_567_890));
        assert!((r - 1_000.0 / 1.234_567_89).abs() < 1e-6, "{r}");
    }

    /// The collector's path: two readings 50 ms apart, 1000 packets and
    /// 1.5 MB more received, 10 packets sent.
    #[test]
    fn between_readings_uses_the_time_between_them() {
        let t0 = Instant::now();
        let prev = Reading {
            at: t0,
            rx_packets: 5_000,
            rx_bytes: 1_000_000,
            tx_packets: 100,
            tx_bytes: 6_400,
        };
        let cur = Reading {
            at: t0 + Duration::from_millis(50),
            rx_packets: 6_000,
            rx_bytes: 2_500_000,
            tx_packets: 110,
            tx_bytes: 7_040,
        };
        let [rxp, txp, rxb, txb] = between(&prev, &cur);
        assert!((rxp - 20_000.0).abs() < 1e-6, "{rxp}");
        assert!((txp - 200.0).abs() < 1e-6, "{txp}");
        assert!((rxb - 30_000_000.0).abs() < 1e-3, "{rxb}");
        assert!((txb - 12_800.0).abs() < 1e-6, "{txb}");
        // Readings out of order (never expected): no rate, not a panic.
        assert_eq!(between(&cur, &prev), [0.0; 4]);
    }

    /// A counter that went back (probes reloaded, or a u64 wrap, which
    /// needs centuries at line rate) is a reset: the new reading counts
    /// from zero. Never a negative rate, never ~2^64.
    #[test]
    fn a_counter_that_went_back_counts_from_zero() {
        assert_eq!(per_second(1_000, 999, Duration::from_secs(1)), 999.0);
        assert_eq!(per_second(1_000, 0, Duration::from_secs(1)), 0.0);
        assert_eq!(per_second(u64::MAX, 10, Duration::from_secs(2)), 5.0);
        // Equal is no reset: nothing happened.
        assert_eq!(per_second(u64::MAX, u64::MAX, Duration::from_secs(1)), 0.0);
    }
}
