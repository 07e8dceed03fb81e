//! Blocklist and allowlist files (`--blocklist`, `--allowlist`): IPv4 and
//! IPv6 addresses or CIDRs, one per line; `#` starts a comment; blank lines
//! are skipped. Parsing is separate from loading so it is tested on text.
//!
//! Errors name the file and the line number, never the line's text: a
//! list flag pointed at the wrong file (the auth token's, say) must not
//! print what that file holds. Only regular files are read, and at most
//! [`MAX_LINE_BYTES`] per entry the kernel can hold, so `/dev/zero` or a
//! FIFO gets an error at once instead of exhausting memory or hanging.

use std::io::Read;
use std::net::IpAddr;
use std::path::Path;

/// Bytes a list file may hold per entry the kernel trie has room for: an
/// IPv6 CIDR is at most 43, which leaves room for a comment on each line
/// (65536 entries: 16 MiB).
pub const MAX_LINE_BYTES: usize = 256;

/// One CIDR of a list file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The address with host bits cleared.
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d`, `a.b.c.d/n`, `x::y`, `x::y/n`. The error is a
    /// fixed phrase: it never quotes the input.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| "not an IPv4 or IPv6 address or CIDR".to_string())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                let n: u8 = p
                    .trim()
                    .parse()
                    .map_err(|_| "the prefix length is not a number".to_string())?;
                if n > max {
                    return Err(format!("prefix length {n} is more than {max}"));
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

/// Parses a list file's text; errors name the line (by number only).
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

/// Reads and parses a list file of at most `max` entries; errors name the
/// file and line.
pub fn load(path: &Path, max: usize) -> Result<Vec<Cidr>, String> {
    let limit = max.saturating_mul(MAX_LINE_BYTES) as u64;
    let raw = read_regular_file(path, limit).map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8(raw).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
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

/// Reads a regular file of at most `limit` bytes. Opening never blocks (a
/// FIFO would wait for a writer), and anything but a regular file is
/// refused before a byte is read.
///
/// # Errors
/// A phrase saying what is wrong, without the file's name or content.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    let t = meta.file_type();
    if !t.is_file() {
        let what = if t.is_fifo() {
            "a FIFO"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_dir() {
            "a directory"
        } else {
            "a special file"
        };
        return Err(format!("is {what}, not a regular file"));
    }
    if meta.len() > limit {
        return Err(format!(
            "is {} bytes, more than the {limit} allowed",
            meta.len()
        ));
    }
    let mut raw = Vec::with_capacity(meta.len() as usize);
    // The bound holds even if the file grows while it is read.
    file.take(limit + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read: {e}"))?;
    if raw.len() as u64 > limit {
        return Err(format!("is more than the {limit} bytes allowed"));
    }
    Ok(raw)
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
            "line 2: not an IPv4 or IPv6 address or CIDR"
        );
        // A secret in the wrong file is never echoed.
        let e = parse("Bearer s3cr3t-token\n").unwrap_err();
        assert!(!e.contains("s3cr3t") && !e.contains("Bearer"), "{e}");
        let e = parse("1.2.3.4/s3cr3t\n").unwrap_err();
        assert!(!e.contains("s3cr3t"), "{e}");
        assert!(parse("1.2.3.4/33").unwrap_err().contains("more than 32"));
        assert!(parse("::/129").unwrap_err().contains("more than 128"));
        assert!(parse("1.2.3.4/x").is_err());
        assert_eq!(parse("0.0.0.0/0").unwrap()[0].to_string(), "0.0.0.0/0");
        assert_eq!(parse("1.1.1.1\n1.1.1.1\n").unwrap().len(), 1);
    }

    #[test]
    fn only_bounded_regular_files_are_read() {
        let e = load(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.contains("a device, not a regular file"), "{e}");
        let e = load(Path::new("/"), 10).unwrap_err();
        assert!(e.contains("a directory"), "{e}");
        let dir = std::env::temp_dir().join(format!("np-lists-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path; mkfifo only creates the node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let t = std::time::Instant::now();
        let e = load(&fifo, 10).unwrap_err();
        assert!(e.contains("a FIFO") && t.elapsed().as_secs() < 2, "{e}");
        let big = dir.join("big");
        std::fs::write(&big, "1.2.3.4\n".repeat(400)).unwrap();
        let e = load(&big, 10).unwrap_err();
        assert!(e.contains("more than the 2560"), "{e}");
        assert_eq!(load(&big, 20).unwrap().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
