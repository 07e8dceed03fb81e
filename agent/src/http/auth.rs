//! `--metrics-auth-file`: one credential that `/metrics`, `/status` and
//! `/` then require (`/healthz` stays open, so a load balancer or kubelet
//! probe needs no secret; it reveals only "ok" or why collection stalls).
//!
//! File format (UTF-8, at most 64 KiB): blank lines and lines starting with
//! `#` are ignored; exactly one other line holds the credential, either
//!
//! - `Bearer TOKEN`: clients send `Authorization: Bearer TOKEN`; TOKEN is
//!   visible ASCII without spaces (a line whose first word is `Bearer` is
//!   always read as a token), or
//! - `USER:PASSWORD`: HTTP basic auth; USER is not empty and has no `:`,
//!   PASSWORD is the rest of the line (it may hold `:`; not empty).
//!
//! The secret is compared in constant time, never logged and never put in
//! an error message; `Debug` prints it as `<redacted>`, and its bytes are
//! zeroed when the credential is dropped.

use std::fmt;
use std::path::Path;

/// Largest auth file read.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Longest bearer token or basic-auth line.
const MAX_SECRET_BYTES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Basic,
}

/// The one credential the server accepts.
#[derive(Clone)]
pub struct Credentials {
    scheme: Scheme,
    /// What must follow the scheme in `Authorization`: the token, or
    /// base64("USER:PASSWORD"). Zeroed on drop.
    expected: Vec<u8>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("scheme", &self.scheme)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl Drop for Credentials {
    fn drop(&mut self) {
        for b in self.expected.iter_mut() {
            // SAFETY: b is a valid, aligned &mut u8; a volatile write keeps
            // the compiler from dropping the zeroing as a dead store.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl Credentials {
    /// Reads and parses an auth file. The error names the file and what is
    /// wrong with it, never its content.
    ///
    /// # Errors
    /// The file is missing, unreadable, not a regular file, larger than
    /// 64 KiB, not UTF-8,
    /// empty, or its line is not in one of the two formats.
    pub fn load(path: &Path) -> Result<Credentials, String> {
        Credentials::load_for("--metrics-auth-file", path)
    }

    /// [`Credentials::load`] for another flag (`--remote-write-auth-file`):
    /// errors name `flag`.
    ///
    /// # Errors
    /// As [`Credentials::load`].
    pub fn load_for(flag: &str, path: &Path) -> Result<Credentials, String> {
        let what = format!("{flag} {}", path.display());
        // A regular file only: a FIFO would hang the start, a device would
        // be read without end.
        let mut raw = crate::lists::read_regular_file(path, MAX_FILE_BYTES).map_err(|e| {
            if e.contains("more than") {
                format!(
                    "{what}: larger than {} KiB; it should hold one line",
                    MAX_FILE_BYTES / 1024
                )
            } else {
                format!("{what}: {e}")
            }
        })?;
        let parsed = std::str::from_utf8(&raw)
            .map_err(|_| format!("{what}: not UTF-8 text"))
            .and_then(|text| Credentials::parse(text).map_err(|why| format!("{what}: {why}")));
        raw.iter_mut().for_each(|b| *b = 0);
        let creds = parsed?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                if meta.permissions().mode() & 0o077 != 0 {
                    log::warn!("{what} is readable by group or others: chmod 600 it");
                }
            }
        }
        Ok(creds)
    }

    /// Parses the content of an auth file (see the module docs). The error
    /// is a fixed phrase; it never quotes the input.
    ///
    /// # Errors
    /// No credential line, more than one, or one in neither format.
    pub fn parse(text: &str) -> Result<Credentials, &'static str> {
        let mut lines = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        let line = lines
            .next()
            .ok_or("holds no credentials: write one line, `Bearer TOKEN` or `USER:PASSWORD`")?;
        if lines.next().is_some() {
            return Err(
                "holds more than one credential line: keep one (`Bearer TOKEN` or `USER:PASSWORD`)",
            );
        }
        let line = line.trim_matches([' ', '\t']);
        if line.len() > MAX_SECRET_BYTES {
            return Err("credential line is longer than 4096 bytes");
        }
        if line.chars().any(char::is_control) {
            return Err("credential line holds a control character");
        }
        let (scheme, rest) = match line.split_once([' ', '\t']) {
            Some((s, rest)) => (s, Some(rest)),
            None => (line, None),
        };
        // A line whose first word is `Bearer` is a token, even if it holds ':'.
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = rest.unwrap_or("").trim_matches([' ', '\t']);
            if token.is_empty() {
                return Err("`Bearer` is not followed by a token");
            }
            if !token.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                return Err("bearer token must be visible ASCII without spaces");
            }
            return Ok(Credentials {
                scheme: Scheme::Bearer,
                expected: token.as_bytes().to_vec(),
            });
        }
        let (user, password) = line
            .split_once(':')
            .ok_or("is neither `Bearer TOKEN` nor `USER:PASSWORD` (no ':' found)")?;
        if user.is_empty() {
            return Err("basic-auth user name is empty (expected `USER:PASSWORD`)");
        }
        if password.is_empty() {
            return Err("basic-auth password is empty (expected `USER:PASSWORD`)");
        }
        Ok(Credentials {
            scheme: Scheme::Basic,
            expected: base64(line.as_bytes()),
        })
    }

    /// The `Authorization` header value a client sends with this
    /// credential (remote_write pushes). Holds the secret: never log it.
    pub fn header_value(&self) -> String {
        let secret = String::from_utf8_lossy(&self.expected);
        match self.scheme {
            Scheme::Bearer => format!("Bearer {secret}"),
            Scheme::Basic => format!("Basic {secret}"),
        }
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self) -> &'static str {
        match self.scheme {
            Scheme::Bearer => "Bearer realm=\"netprobe\"",
            Scheme::Basic => "Basic realm=\"netprobe\", charset=\"UTF-8\"",
        }
    }

    /// Whether an `Authorization` header value carries this credential.
    /// The scheme name is case-insensitive; the secret is compared in time
    /// that depends only on the expected secret's length.
    pub fn check(&self, authorization: Option<&str>) -> bool {
        let Some(value) = authorization else {
            return false;
        };
        let value = value.trim_matches([' ', '\t']);
        let (scheme, given) = value.split_once([' ', '\t']).unwrap_or((value, ""));
        let scheme_ok = match self.scheme {
            Scheme::Bearer => scheme.eq_ignore_ascii_case("bearer"),
            Scheme::Basic => scheme.eq_ignore_ascii_case("basic"),
        };
        let secret_ok =
            constant_time_eq(given.trim_matches([' ', '\t']).as_bytes(), &self.expected);
        scheme_ok & secret_ok
    }
}

/// Compares `given` with `expected` touching every byte of `expected`
/// whatever `given` holds, so the time reveals neither where they differ
/// nor (beyond `expected`'s own length) how long the secret is.
pub fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = (given.len() ^ expected.len()) as u64;
    for (i, &e) in expected.iter().enumerate() {
        let g = given.get(i).copied().unwrap_or(0);
        diff |= u64::from(g ^ e);
    }
    std::hint::black_box(diff) == 0
}

/// Standard base64 with padding (RFC 4648), as HTTP basic auth sends it.
/// Encoding the expected credentials once means no decoder parses what a
/// client sends.
pub fn base64(data: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * k)) as usize & 63]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
        ] {
            assert_eq!(base64(i.as_bytes()), o.as_bytes());
        }
        assert_eq!(
            base64(b"Aladdin:open sesame"),
            b"QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn bearer() {
        let c = Credentials::parse("# scrape token\n\nBearer s3cr3t-T0ken\n").unwrap();
        assert_eq!(c.scheme(), Scheme::Bearer);
        assert!(c.check(Some("Bearer s3cr3t-T0ken")));
        assert!(c.check(Some("bearer  s3cr3t-T0ken ")));
        assert!(!c.check(Some("Bearer s3cr3t-T0ke")));
        assert!(!c.check(Some("Bearer s3cr3t-T0kenX")));
        assert!(!c.check(Some("Basic s3cr3t-T0ken")));
        assert!(!c.check(Some("s3cr3t-T0ken")));
        assert!(!c.check(None));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn basic() {
        let c = Credentials::parse("prom:pa:ss word\r\n").unwrap();
        assert_eq!(c.scheme(), Scheme::Basic);
        let good = format!(
            "Basic {}",
            String::from_utf8(base64(b"prom:pa:ss word")).unwrap()
        );
        assert!(c.check(Some(&good)));
        assert!(!c.check(Some(&good.replace("Basic", "Bearer"))));
        assert!(!c.check(Some("Basic cHJvbTpwYXNz")));
        assert!(c.challenge().starts_with("Basic realm="));
    }

    #[test]
    fn refusals_never_quote_the_secret() {
        for bad in [
            "",
            "\n# only a comment\n",
            "Bearer",
            "Bearer   ",
            "hunter2",
            ":hunter2",
            "hunter2:",
            "a:b\nc:d",
            "Bearer hunter2 hunter2",
            "Bearer hun\u{7}ter2",
        ] {
            let e = Credentials::parse(bad).unwrap_err();
            assert!(!e.contains("hunter2"), "{bad:?} -> {e}");
        }
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"abc\0", b"abc"));
        assert!(constant_time_eq(b"", b""));
    }

    /// Visible ASCII without space: every byte a bearer token may hold.
    fn visible() -> impl Iterator<Item = u8> {
        0x21u8..0x7f
    }

    /// A token of `len` visible bytes, varied so no two neighbours match.
    fn token(len: usize) -> String {
        (0..len)
            .map(|i| char::from(0x21 + (i * 7 % 94) as u8))
            .collect()
    }

    /// Issue 23: a token compared on its length and first 8 bytes only
    /// passed every test. A wrong token of the right length is refused
    /// whichever byte differs, and whatever it differs by; the right one
    /// passes.
    #[test]
    fn bearer_same_length_token_differing_at_any_one_byte_is_refused() {
        for len in [1, 2, 7, 8, 9, 16, 31, 32, 33, 64, 100] {
            let good = token(len);
            let c = Credentials::parse(&format!("Bearer {good}")).unwrap();
            assert!(c.check(Some(&format!("Bearer {good}"))), "len {len}");
            for i in 0..len {
                for b in visible().filter(|&b| b != good.as_bytes()[i]) {
                    let mut bad = good.clone().into_bytes();
                    bad[i] = b;
                    let bad = String::from_utf8(bad).unwrap();
                    assert!(
                        !c.check(Some(&format!("Bearer {bad}"))),
                        "len {len}: byte {i} changed to {b:#x} was accepted"
                    );
                }
            }
        }
        // The longest token the file allows: the last byte counts too.
        let good = token(MAX_SECRET_BYTES - "Bearer ".len());
        let c = Credentials::parse(&format!("Bearer {good}")).unwrap();
        assert!(c.check(Some(&format!("Bearer {good}"))));
        for i in [0, 8, 9, 1000, good.len() / 2, good.len() - 1] {
            let mut bad = good.clone().into_bytes();
            bad[i] = if bad[i] == b'x' { b'y' } else { b'x' };
            let bad = String::from_utf8(bad).unwrap();
            assert!(!c.check(Some(&format!("Bearer {bad}"))), "byte {i}");
        }
    }

    /// The same for basic auth, on both sides of the encoding: any one
    /// byte of `USER:PASSWORD` changed, and any one base64 character of
    /// the header changed, is refused.
    #[test]
    fn basic_same_length_credential_differing_at_any_one_byte_is_refused() {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for line in [
            "u:p",
            "prom:pa:ss word",
            "scraper:0123456789abcdefghijklmnop",
        ] {
            let c = Credentials::parse(line).unwrap();
            let header =
                |plain: &[u8]| format!("Basic {}", String::from_utf8(base64(plain)).unwrap());
            assert!(c.check(Some(&header(line.as_bytes()))), "{line}");
            for i in 0..line.len() {
                for b in visible().filter(|&b| b != line.as_bytes()[i]) {
                    let mut bad = line.as_bytes().to_vec();
                    bad[i] = b;
                    assert!(
                        !c.check(Some(&header(&bad))),
                        "{line}: byte {i} changed to {b:#x} was accepted"
                    );
                }
            }
            let good = base64(line.as_bytes());
            for i in 0..good.len() {
                for &b in alphabet.iter().chain(b"=").filter(|&&b| b != good[i]) {
                    let mut bad = good.clone();
                    bad[i] = b;
                    let bad = format!("Basic {}", String::from_utf8(bad).unwrap());
                    assert!(!c.check(Some(&bad)), "{line}: base64 char {i} -> {b:#x}");
                }
            }
        }
    }

    /// What can be tested of the constant-time comparison without timing
    /// it: differences are accumulated over every byte, so none can hide
    /// another (two equal differences cancel under `^=`, a later equal
    /// byte overwrites an earlier difference under `=`), every bit of a
    /// byte counts, and a length difference counts even when one is a
    /// prefix of the other.
    #[test]
    fn constant_time_eq_accumulates_every_difference() {
        let good: Vec<u8> = token(40).into_bytes();
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert!(!constant_time_eq(&bad, &good), "byte {i} bit {bit}");
            }
            for j in i + 1..good.len() {
                // The same difference twice, and a difference followed by
                // equal bytes: both refused.
                let mut bad = good.clone();
                bad[i] ^= 0x01;
                bad[j] ^= 0x01;
                assert!(!constant_time_eq(&bad, &good), "bytes {i} and {j}");
            }
        }
        for cut in 0..good.len() {
            assert!(!constant_time_eq(&good[..cut], &good), "prefix of {cut}");
        }
        // Longer by any amount, including multiples of 256 (a length
        // difference folded into a byte would vanish).
        for extra in [1, 255, 256, 512, 65536] {
            let mut longer = good.clone();
            longer.resize(good.len() + extra, 0);
            assert!(!constant_time_eq(&longer, &good), "{extra} more");
            assert!(!constant_time_eq(&good, &longer), "{extra} fewer");
        }
        // A given shorter than the secret whose missing tail the code
        // reads as zeros: the length still refuses it.
        assert!(!constant_time_eq(b"ab", b"ab\0"));
        assert!(constant_time_eq(&good, &good.clone()));
    }
}
