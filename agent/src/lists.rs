//! Blocklist and allowlist files (`--blocklist`, `--allowlist`): IPv4 and
//! IPv6 addresses or CIDRs, one per line; `#` starts a comment; blank lines
//! are skipped. Parsing is separate from loading so it is tested on text.

use std::net::IpAddr;
use std::path::Path;

/// One CIDR of a list file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The address with host bits cleared.
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, `x::y`, `x::y/n`.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                let n: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| format!("'{s}': prefix length '{p}' is not a number"))?;
                if n > max {
                    return Err(format!("'{s}': prefix length {n} is more than {max}"));
                }
                n
            }
            None => max,
        };
        Ok(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.addr
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            IpAddr::from((u32::from(a) & m).to_be_bytes())
        }
        IpAddr::V6(a) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            IpAddr::from((u128::from(a) & m).to_be_bytes())
        }
    }
}

/// Parses a list file's text; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Cidr>, String> {
    let mut out = Vec::new();
    // A set, not out.contains(): list files can have 100k lines.
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        let c = Cidr::parse(l).map_err(|e| format!("line {}: {e}", n + 1))?;
        if seen.insert(c) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Reads and parses a list file; errors name the file and line.
pub fn load(path: &Path, max: usize) -> Result<Vec<Cidr>, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let list = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if list.len() > max {
        return Err(format!(
            "{}: {} entries, more than the {max} the kernel trie holds",
            path.display(),
            list.len()
        ));
    }
    Ok(list)
}

/// Whether any entry of `list` contains `ip`.
pub fn contains(list: &[Cidr], ip: IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_cidrs_and_comments() {
        let l = parse(
            "# header\n198.18.0.0/15\n  2001:db8::/32  # doc\n\n203.0.113.7\n::1\n10.1.2.3/8\n",
        )
        .unwrap();
        let s: Vec<String> = l.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            s,
            [
                "198.18.0.0/15",
                "2001:db8::/32",
                "203.0.113.7/32",
                "::1/128",
                "10.0.0.0/8"
            ]
        );
        assert!(contains(&l, "198.19.255.1".parse().unwrap()));
        assert!(!contains(&l, "198.20.0.1".parse().unwrap()));
        assert!(contains(&l, "2001:db8:1::5".parse().unwrap()));
        assert!(
            !contains(&l, "::ffff:198.18.0.1".parse().unwrap()),
            "families do not mix"
        );
    }

    #[test]
    fn rejects_with_line_numbers() {
        assert_eq!(
            parse("1.2.3.4\nnot-an-ip\n").unwrap_err(),
            "line 2: 'not-an-ip' is not an IPv4 or IPv6 address"
        );
        assert!(parse("1.2.3.4/33").unwrap_err().contains("more than 32"));
        assert!(parse("::/129").unwrap_err().contains("more than 128"));
        assert!(parse("1.2.3.4/x").is_err());
        assert_eq!(parse("0.0.0.0/0").unwrap()[0].to_string(), "0.0.0.0/0");
        assert_eq!(parse("1.1.1.1\n1.1.1.1\n").unwrap().len(), 1);
    }
}
