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
    /// The device's link type (`ARPHRD_*`, `/sys/class/net/NAME/type`).
    pub link_type: u16,
}

impl Interface {
    /// Whether the device's packets start at the IP header, with no
    /// link-layer header: tun and wg (`ARPHRD_NONE`), ppp, raw-IP wwan,
    /// ipip, sit and gre. Anything else is parsed as Ethernet.
    pub fn is_l3(&self) -> bool {
        is_l3_link_type(self.link_type)
    }
}

/// See [`Interface::is_l3`].
pub fn is_l3_link_type(t: u16) -> bool {
    const ARPHRD_PPP: u16 = 512;
    const ARPHRD_RAWIP: u16 = 519;
    const ARPHRD_TUNNEL: u16 = 768;
    const ARPHRD_TUNNEL6: u16 = 769;
    const ARPHRD_SIT: u16 = 776;
    const ARPHRD_IPGRE: u16 = 778;
    const ARPHRD_IP6GRE: u16 = 823;
    const ARPHRD_NONE: u16 = 0xfffe;
    matches!(
        t,
        ARPHRD_PPP
            | ARPHRD_RAWIP
            | ARPHRD_TUNNEL
            | ARPHRD_TUNNEL6
            | ARPHRD_SIT
            | ARPHRD_IPGRE
            | ARPHRD_IP6GRE
            | ARPHRD_NONE
    )
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
    let link_type = read_u64(&dir.join("type"))? as u16;
    Ok(Interface {
        name: name.to_string(),
        ifindex,
        up: flags & IFF_UP != 0,
        loopback: flags & IFF_LOOPBACK != 0,
        link_type,
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
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: unexpected '{s}'", p.display()),
    )
}

/// Whether TCP segmentation offload (TSO) is on for the device (ethtool's
/// `tcp-segmentation-offload`), or `None` when the device does not say.
/// Without it the kernel cuts GSO packets in software after TC egress.
pub fn tso_enabled(name: &str) -> Option<bool> {
    const ETHTOOL_GTSO: u32 = 0x1e;
    #[repr(C)]
    struct Value {
        cmd: u32,
        data: u32,
    }
    let mut v = Value {
        cmd: ETHTOOL_GTSO,
        data: 0,
    };
    ethtool(name, (&mut v as *mut Value).cast()).then_some(v.data != 0)
}

/// The driver behind an interface (`veth`, `virtio_net`, `e1000e`, ...), as
/// `ethtool -i` reports it; `None` if the device does not say.
pub fn driver(name: &str) -> Option<String> {
    const ETHTOOL_GDRVINFO: u32 = 0x3;
    #[repr(C)]
    struct DrvInfo {
        cmd: u32,
        driver: [u8; 32],
        version: [u8; 32],
        fw_version: [u8; 32],
        bus_info: [u8; 32],
        erom_version: [u8; 32],
        reserved2: [u8; 12],
        n_priv_flags: u32,
        n_stats: u32,
        testinfo_len: u32,
        eedump_len: u32,
        regdump_len: u32,
    }
    // SAFETY: all-zero is valid for this plain struct.
    let mut info: DrvInfo = unsafe { std::mem::zeroed() };
    info.cmd = ETHTOOL_GDRVINFO;
    if !ethtool(name, (&mut info as *mut DrvInfo).cast()) {
        return None;
    }
    let end = info
        .driver
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.driver.len());
    Some(String::from_utf8_lossy(&info.driver[..end]).into_owned()).filter(|s| !s.is_empty())
}

/// One `SIOCETHTOOL` request on `name`: `data` points to the command's
/// structure, whose first field is the command. False when the device
/// does not answer it.
fn ethtool(name: &str, data: *mut libc::c_void) -> bool {
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut libc::c_void,
        pad: [u8; 16],
    }
    if name.len() >= libc::IFNAMSIZ {
        return false;
    }
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data,
        pad: [0; 16],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: a datagram socket for the ioctl, closed below; `req` and
    // what `data` points to outlive the call.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return false;
        }
        let rc = libc::ioctl(fd, SIOCETHTOOL as _, &mut req);
        libc::close(fd);
        rc == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_and_flagged() {
        let all = list().unwrap();
        let lo = all
            .iter()
            .find(|i| i.name == "lo")
            .expect("lo exists in every namespace");
        assert!(lo.loopback);
        assert_eq!(lo.ifindex, 1);
        assert!(by_name("no-such-if0").is_err());
        assert_eq!(driver("no-such-if0"), None);
    }
}
