//! Network interfaces as sysfs shows them: names, indexes, flags, and the
//! kernel's own counters (the reference the probes are tested against).

use std::fs;
use std::io;
use std::path::Path;

const SYS_CLASS_NET: &str = "/sys/class/net";
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub ifindex: u32,
    pub up: bool,
    pub loopback: bool,
}

/// Every interface in this network namespace, sorted by name.
pub fn list() -> io::Result<Vec<Interface>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(SYS_CLASS_NET)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        // An interface can vanish between readdir and read: skip it.
        if let Ok(i) = by_name(&name) {
            out.push(i);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// One interface by name.
///
/// # Errors
/// `NotFound` when no interface has that name.
pub fn by_name(name: &str) -> io::Result<Interface> {
    let dir = Path::new(SYS_CLASS_NET).join(name);
    let ifindex = read_u64(&dir.join("ifindex"))? as u32;
    let flags = read_hex(&dir.join("flags"))?;
    Ok(Interface {
        name: name.to_string(),
        ifindex,
        up: flags & IFF_UP != 0,
        loopback: flags & IFF_LOOPBACK != 0,
    })
}

/// The kernel's interface counters (`/sys/class/net/NAME/statistics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

pub fn kernel_stats(name: &str) -> io::Result<KernelStats> {
    let dir = Path::new(SYS_CLASS_NET).join(name).join("statistics");
    Ok(KernelStats {
        rx_packets: read_u64(&dir.join("rx_packets"))?,
        rx_bytes: read_u64(&dir.join("rx_bytes"))?,
        tx_packets: read_u64(&dir.join("tx_packets"))?,
        tx_bytes: read_u64(&dir.join("tx_bytes"))?,
    })
}

fn read_trimmed(p: &Path) -> io::Result<String> {
    Ok(fs::read_to_string(p)?.trim().to_string())
}

fn read_u64(p: &Path) -> io::Result<u64> {
    let s = read_trimmed(p)?;
    s.parse().map_err(|_| invalid(p, &s))
}

fn read_hex(p: &Path) -> io::Result<u32> {
    let s = read_trimmed(p)?;
    u32::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| invalid(p, &s))
}

fn invalid(p: &Path, s: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{}: unexpected '{s}'", p.display()))
}

/// The running kernel's release string (`uname -r`).
pub fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_and_flagged() {
        let all = list().unwrap();
        let lo = all.iter().find(|i| i.name == "lo").expect("lo exists in every namespace");
        assert!(lo.loopback);
        assert_eq!(lo.ifindex, 1);
        assert!(by_name("no-such-if0").is_err());
    }
}
