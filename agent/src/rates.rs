//! Per-second rates from two readings of a monotonic counter.

use std::time::Duration;

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
}
