//! The agent's own process figures, as Prometheus client libraries export
//! them (`process_*`): CPU time, memory, descriptors, start time, read
//! from `/proc/self`. Reading is separate from parsing, which is tested
//! on literal text.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ProcessStats {
    /// User and system CPU time, seconds.
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    /// The soft RLIMIT_NOFILE.
    pub max_fds: u64,
    /// Unix time the process started, seconds.
    pub start_time_seconds: f64,
}

impl ProcessStats {
    /// This process now; fields that cannot be read stay 0.
    pub fn read() -> ProcessStats {
        // SAFETY: sysconf has no preconditions.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let btime = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s))
            .unwrap_or(0);
        let mut p =
            parse_stat(&stat, ticks.max(1) as u64, page.max(1) as u64, btime).unwrap_or_default();
        p.open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit to fill.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            p.max_fds = lim.rlim_cur;
        }
        p
    }
}

/// `btime` of `/proc/stat`: boot time, Unix seconds.
fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// CPU time, memory and start time from `/proc/self/stat` (proc(5)):
/// the fields after the command name, which may hold spaces and ')'.
fn parse_stat(
    stat: &str,
    ticks_per_second: u64,
    page_size: u64,
    boot_time: u64,
) -> Option<ProcessStats> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is f[N - 3].
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let ticks = ticks_per_second as f64;
    Some(ProcessStats {
        cpu_seconds: (num(14)? + num(15)?) as f64 / ticks,
        virtual_memory_bytes: num(23)?,
        resident_memory_bytes: num(24)? * page_size,
        start_time_seconds: boot_time as f64 + num(22)? as f64 / ticks,
        ..ProcessStats::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_self_stat_with_a_tricky_name() {
        // utime 150, stime 50, starttime 12345, vsize 10 MiB, rss 300 pages
        let stat = "4242 (net) probe (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 50 0 0 20 0 3 0 12345 10485760 300 18446744073709551615";
        let p = parse_stat(stat, 100, 4096, 1_700_000_000).unwrap();
        assert_eq!(p.cpu_seconds, 2.0);
        assert_eq!(p.resident_memory_bytes, 300 * 4096);
        assert_eq!(p.virtual_memory_bytes, 10 << 20);
        assert_eq!(p.start_time_seconds, 1_700_000_123.45);
    }

    #[test]
    fn reads_this_process() {
        let p = ProcessStats::read();
        assert!(p.resident_memory_bytes > 0 && p.open_fds >= 3 && p.max_fds >= p.open_fds);
        assert!(p.start_time_seconds > 1_600_000_000.0, "{p:?}");
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
    }
}
