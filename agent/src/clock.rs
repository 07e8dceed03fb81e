//! The agent's clocks, one definition each: boot time in nanoseconds (the
//! probes' clock, `bpf_ktime_get_boot_ns`), Unix time in seconds (what
//! `/status` and the metrics show), and a reading of both at one instant
//! to convert the first into the second.

use std::time::{SystemTime, UNIX_EPOCH};

/// CLOCK_BOOTTIME in ns: the clock of `bpf_ktime_get_boot_ns()`, which
/// keeps counting through suspend.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer; CLOCK_BOOTTIME exists on every supported kernel.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `t` as Unix seconds (0 before the epoch).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// Now, as Unix seconds.
pub fn unix_now() -> f64 {
    unix_seconds(SystemTime::now())
}

/// Both clocks read at (nearly) one instant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Now {
    pub unix: f64,
    pub boot_ns: u64,
}

impl Now {
    pub fn read() -> Now {
        Now {
            unix: unix_now(),
            boot_ns: boottime_ns(),
        }
    }

    /// The Unix time of a boot-time stamp in the past.
    pub fn unix_of(&self, boot_ns: u64) -> f64 {
        self.unix - (self.boot_ns.saturating_sub(boot_ns) as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_boot_stamps_to_unix_time() {
        let now = Now {
            unix: 1_700_000_100.0,
            boot_ns: 50_000_000_000,
        };
        assert_eq!(now.unix_of(40_000_000_000), 1_700_000_090.0);
        // A stamp from the future (another CPU's clock) reads as now.
        assert_eq!(now.unix_of(60_000_000_000), 1_700_000_100.0);
        let a = boottime_ns();
        assert!(boottime_ns() >= a && a > 0);
        assert!(unix_now() > 1_600_000_000.0);
    }
}
