//! The home side (`--home-networks`): the networks on this side of the
//! gateway. Scans and floods are about traffic from outside toward them;
//! what home hosts do themselves (a browser, a resolver, a BitTorrent
//! client) raises no alert unless `--alert-outbound` asks, and a home
//! address is never blocked.
//!
//! `auto` (the default) stands for the watched interfaces' own addresses
//! and connected prefixes (read with getifaddrs, again at each collection
//! so interfaces that come later count), plus the private ranges below.

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::interface_filter::InterfaceFilter;
use crate::lists::Cidr;

/// RFC 1918, CGNAT (RFC 6598) and unique local (RFC 4193) prefixes.
pub const PRIVATE: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// `--home-networks`: `auto`, CIDRs, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeSpec {
    pub auto: bool,
    pub cidrs: Vec<Cidr>,
}

impl Default for HomeSpec {
    fn default() -> Self {
        HomeSpec {
            auto: true,
            cidrs: Vec::new(),
        }
    }
}

impl HomeSpec {
    /// Parses `auto,203.0.113.0/24,2001:db8::/48`.
    pub fn parse(s: &str) -> Result<HomeSpec, String> {
        let mut spec = HomeSpec {
            auto: false,
            cidrs: Vec::new(),
        };
        for part in s.split(',').map(str::trim) {
            match part {
                "" => return Err(format!("home networks '{s}' have an empty entry")),
                "auto" => spec.auto = true,
                p => {
                    let c = Cidr::parse(p).map_err(|e| format!("home networks: {e}"))?;
                    if !spec.cidrs.contains(&c) {
                        spec.cidrs.push(c);
                    }
                }
            }
        }
        Ok(spec)
    }
}

/// An address of a local interface, as getifaddrs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceAddr {
    pub interface: String,
    pub up: bool,
    pub loopback: bool,
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Whether the collector watches this interface (as
/// `collector::Selection`: the filter, else every interface up and not
/// loopback).
fn watched(a: &IfaceAddr, filter: Option<&InterfaceFilter>) -> bool {
    match filter {
        Some(f) => f.matches(&a.interface),
        None => a.up && !a.loopback,
    }
}

/// The home networks of `spec` given the local addresses: each watched
/// interface's address (a host route) and its connected prefix.
pub fn resolve(
    spec: &HomeSpec,
    addrs: &[IfaceAddr],
    filter: Option<&InterfaceFilter>,
) -> Vec<Cidr> {
    let mut out: Vec<Cidr> = spec.cidrs.clone();
    let mut add = |c: Cidr| {
        if !out.contains(&c) {
            out.push(c);
        }
    };
    if spec.auto {
        for a in addrs.iter().filter(|a| watched(a, filter)) {
            let host = if a.addr.is_ipv4() { 32 } else { 128 };
            for prefix in [host, a.prefix] {
                if let Ok(c) = Cidr::parse(&format!("{}/{prefix}", a.addr)) {
                    add(c);
                }
            }
        }
        for p in PRIVATE {
            add(Cidr::parse(p).expect("built-in prefix"));
        }
    }
    out
}

/// Every address of every local interface (getifaddrs).
///
/// # Errors
/// getifaddrs failed.
pub fn local_addresses() -> std::io::Result<Vec<IfaceAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills head with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a NUL-terminated name; sockaddrs of the family they say.
        let (name, addr, mask) = unsafe {
            let name = CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned();
            let family = i32::from((*ifa.ifa_addr).sa_family);
            match family {
                libc::AF_INET => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let m = if ifa.ifa_netmask.is_null() {
                        u32::MAX
                    } else {
                        (*(ifa.ifa_netmask as *const libc::sockaddr_in))
                            .sin_addr
                            .s_addr
                    };
                    (
                        name,
                        IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))),
                        m.count_ones() as u8,
                    )
                }
                libc::AF_INET6 => {
                    let a = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let m = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        (*(ifa.ifa_netmask as *const libc::sockaddr_in6))
                            .sin6_addr
                            .s6_addr
                            .iter()
                            .map(|b| b.count_ones())
                            .sum::<u32>()
                    };
                    (
                        name,
                        IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)),
                        m as u8,
                    )
                }
                _ => continue,
            }
        };
        out.push(IfaceAddr {
            interface: name,
            up: ifa.ifa_flags & libc::IFF_UP as u32 != 0,
            loopback: ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0,
            addr,
            prefix: mask,
        });
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The home networks in force, refreshed from the interfaces.
#[derive(Clone, Debug, Default)]
pub struct Home {
    spec: HomeSpec,
    filter: Option<InterfaceFilter>,
    nets: Vec<Cidr>,
}

impl Home {
    pub fn new(spec: HomeSpec, filter: Option<InterfaceFilter>) -> Home {
        let mut h = Home {
            spec,
            filter,
            nets: Vec::new(),
        };
        h.refresh();
        h
    }

    /// A fixed list (tests): no interface is read.
    pub fn fixed(nets: Vec<Cidr>) -> Home {
        Home {
            spec: HomeSpec {
                auto: false,
                cidrs: nets.clone(),
            },
            filter: None,
            nets,
        }
    }

    /// Reads the interfaces again (with `auto`); true when the list changed.
    pub fn refresh(&mut self) -> bool {
        let addrs = if self.spec.auto {
            local_addresses().unwrap_or_else(|e| {
                log::warn!("home networks: reading interface addresses: {e}");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        let nets = resolve(&self.spec, &addrs, self.filter.as_ref());
        let changed = nets != self.nets;
        self.nets = nets;
        changed
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        crate::lists::contains(&self.nets, ip)
    }

    pub fn nets(&self) -> &[Cidr] {
        &self.nets
    }

    /// One line for the log.
    pub fn describe(&self) -> String {
        let list: Vec<String> = self.nets.iter().map(Cidr::to_string).collect();
        format!(
            "home networks{}: {}",
            if self.spec.auto {
                " (auto: watched interfaces, private ranges)"
            } else {
                ""
            },
            if list.is_empty() {
                "none".to_string()
            } else {
                list.join(", ")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(interface: &str, addr: &str, prefix: u8) -> IfaceAddr {
        IfaceAddr {
            interface: interface.into(),
            up: true,
            loopback: interface == "lo",
            addr: addr.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn auto_takes_watched_addresses_prefixes_and_private_ranges() {
        let addrs = [
            a("lo", "127.0.0.1", 8),
            a("lan0", "198.18.1.1", 24),
            a("wan0", "198.19.255.1", 30),
            a("lan0", "2001:db8:1::1", 64),
            a("other", "198.51.100.1", 24),
        ];
        let filter = InterfaceFilter::parse("lan0,wan0").unwrap();
        let nets = resolve(&HomeSpec::default(), &addrs, Some(&filter));
        let s: Vec<String> = nets.iter().map(Cidr::to_string).collect();
        assert_eq!(
            s,
            [
                "198.18.1.1/32",
                "198.18.1.0/24",
                "198.19.255.1/32",
                "198.19.255.0/30",
                "2001:db8:1::1/128",
                "2001:db8:1::/64",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "100.64.0.0/10",
                "fc00::/7"
            ]
        );
        let h = Home::fixed(nets);
        assert!(h.contains("198.18.1.77".parse().unwrap()));
        assert!(h.contains("100.127.0.1".parse().unwrap()));
        assert!(h.contains("fd00::1".parse().unwrap()));
        assert!(!h.contains("198.19.1.1".parse().unwrap()));
        assert!(!h.contains("198.51.100.1".parse().unwrap()), "not watched");
        assert!(
            !h.contains("127.0.0.1".parse().unwrap()),
            "loopback is not watched"
        );
        // Without a filter: every interface up and not loopback.
        let all = resolve(&HomeSpec::default(), &addrs, None);
        assert!(all.contains(&Cidr::parse("198.51.100.0/24").unwrap()));
        assert!(!all.contains(&Cidr::parse("127.0.0.0/8").unwrap()));
    }

    #[test]
    fn an_explicit_list_replaces_auto_unless_it_names_it() {
        let s = HomeSpec::parse("198.18.0.1, 2001:db8::/48").unwrap();
        assert!(!s.auto);
        let nets = resolve(&s, &[a("lan0", "198.18.1.1", 24)], None);
        assert_eq!(nets.len(), 2);
        let s = HomeSpec::parse("auto,203.0.113.0/24").unwrap();
        assert!(s.auto && s.cidrs.len() == 1);
        assert!(HomeSpec::parse("auto,,1.2.3.4").is_err());
        assert!(HomeSpec::parse("1.2.3.4/33").unwrap_err().contains("33"));
    }

    #[test]
    fn local_addresses_include_loopback() {
        let l = local_addresses().unwrap();
        assert!(l.iter().any(|a| a.loopback), "{l:?}");
    }
}
