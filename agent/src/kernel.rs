//! The running kernel's version, for feature fallbacks and clear errors.

use std::fmt;

/// Major and minor version of a Linux release string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    pub major: u32,
    pub minor: u32,
}

/// Oldest kernel NetProbe supports: the BPF ring buffer arrived in 5.8.
pub const MINIMUM: KernelVersion = KernelVersion { major: 5, minor: 8 };

impl KernelVersion {
    /// Parses `6.1.0-27-arm64`, `5.10.0`, `6.18.44-fc`.
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let mut it = release.split(|c: char| !c.is_ascii_digit());
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        Some(KernelVersion { major, minor })
    }

    /// The running kernel; 0.0 when it cannot be read, so that every
    /// feature check falls back to the oldest method.
    pub fn current() -> KernelVersion {
        KernelVersion::parse(&release()).unwrap_or(KernelVersion { major: 0, minor: 0 })
    }

    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        *self >= KernelVersion { major, minor }
    }
}

impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The running kernel's release string (`uname -r`).
pub fn release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases() {
        assert_eq!(
            KernelVersion::parse("6.1.0-27-arm64"),
            Some(KernelVersion { major: 6, minor: 1 })
        );
        assert_eq!(
            KernelVersion::parse("6.18.44-fc-v782"),
            Some(KernelVersion {
                major: 6,
                minor: 18
            })
        );
        assert_eq!(
            KernelVersion::parse("5.8"),
            Some(KernelVersion { major: 5, minor: 8 })
        );
        assert_eq!(KernelVersion::parse("garbage"), None);
        let v = KernelVersion::parse("5.10.0").unwrap();
        assert!(v.at_least(5, 9) && v.at_least(5, 10) && !v.at_least(6, 6));
        assert!(KernelVersion::parse("4.19.0").unwrap() < MINIMUM);
    }

    /// The version gate (`main.rs`: the agent refuses to start, in one line
    /// naming MINIMUM, when the running kernel is older). Below 5.8 refused,
    /// from 5.8 on accepted, whatever the distribution's suffix; a release
    /// that cannot be read counts as 0.0 and is refused too. The boot test
    /// runs the binary against a faked 5.4 release (build/image.sh, GATE).
    #[test]
    fn version_gate_refuses_below_5_8() {
        assert_eq!(MINIMUM.to_string(), "5.8");
        for refused in [
            "5.7.19",
            "5.4.0-150-generic",
            "4.19.0-27-amd64",
            "4.14.336",
            "3.10.0-1160.el7.x86_64",
        ] {
            let v = KernelVersion::parse(refused).unwrap();
            assert!(v < MINIMUM, "{refused} must be refused");
        }
        for accepted in [
            "5.8.0",
            "5.10.0-46-amd64",
            "5.15.167", // OpenWrt 23.05
            "6.1.0-57-arm64",
            "6.6.73", // OpenWrt 24.10
            "6.12.118+deb13-amd64",
            "6.1.192-netprobe-openwrt",
            "10.0.0",
        ] {
            let v = KernelVersion::parse(accepted).unwrap();
            assert!(v >= MINIMUM, "{accepted} must be accepted");
        }
        // Minor numbers compare as numbers, not text: 5.10 is newer than 5.8.
        assert!(KernelVersion::parse("5.10").unwrap() > KernelVersion::parse("5.8").unwrap());
        // What current() falls back to when osrelease cannot be read.
        assert!(KernelVersion { major: 0, minor: 0 } < MINIMUM);
        assert_eq!(KernelVersion::parse(""), None);
        assert_eq!(KernelVersion::parse("6"), None);
    }
}
