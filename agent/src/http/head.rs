//! Request heads: framing (where a head ends in the bytes read so far) and
//! parsing (request line and header fields). Pure functions on bytes, so
//! they are unit-tested and fuzzed without a socket (`tests/fuzz_parsers.rs`).
//!
//! The field-level parsing is tiny_http's own (`Method::from_str`,
//! `Header::from_str`, `HTTPVersion`); what this adds is what tiny_http's
//! connection reader lacks: a bound on everything (head size is bounded by
//! the caller, header count here) and one strict request-line shape, so a
//! malformed request gets a 400 instead of an unbounded read.

use std::fmt;
use std::str::FromStr;

use tiny_http::{HTTPVersion, Header, Method};

/// Most header fields one request may carry; more answer 431.
pub const MAX_HEADERS: usize = 100;
/// Longest method token accepted (the longest registered method is 17 bytes).
pub const MAX_METHOD_LEN: usize = 32;

/// Finds the end of a request head in a buffer that grows as bytes arrive.
///
/// It resumes where the previous call stopped, so a head that trickles in
/// a byte at a time costs linear time, not quadratic. Empty lines before
/// the request line are skipped, as RFC 9112 section 2.2 asks; a bare LF
/// ends a line as well as CRLF does.
#[derive(Clone, Debug, Default)]
pub struct HeadScanner {
    pos: usize,
    line_start: usize,
    seen_line: bool,
}

impl HeadScanner {
    /// The length of the head in `buf` (through its blank line), once it
    /// has all arrived. `buf` must only have grown since the last call.
    pub fn find_end(&mut self, buf: &[u8]) -> Option<usize> {
        while self.pos < buf.len() {
            let i = self.pos;
            self.pos += 1;
            if buf[i] != b'\n' {
                continue;
            }
            let line = strip_cr(&buf[self.line_start..i]);
            self.line_start = i + 1;
            if !line.is_empty() {
                self.seen_line = true;
            } else if self.seen_line {
                return Some(i + 1);
            }
        }
        None
    }
}

/// Whether `buf` holds any of a request yet (leading empty lines do not count).
pub fn has_request_bytes(buf: &[u8]) -> bool {
    buf.iter().any(|&b| b != b'\r' && b != b'\n')
}

/// Whether the bytes so far already cannot start a request: the first
/// word (the method) holds a byte outside `tchar` or is too long. A TLS
/// handshake or other protocol on the port gets its 400 at once instead
/// of holding a connection until the deadline.
///
/// It looks at the first 64 bytes only, so calling it after every read
/// costs constant time.
pub fn cannot_be_request(buf: &[u8]) -> bool {
    let buf = &buf[..buf.len().min(64)];
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let method = buf[start..].split(|&b| b == b' ').next().unwrap_or(&[]);
    let complete = start + method.len() < buf.len();
    method.len() > MAX_METHOD_LEN
        || method.iter().any(|&b| !is_tchar(b))
        || complete && method.is_empty()
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line {
        [rest @ .., b'\r'] => rest,
        _ => line,
    }
}

/// A parsed request head.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub method: Method,
    /// The request target as sent (origin form `/path?query`; an absolute
    /// form `http://host/path` is reduced to its path by [`RequestHead::path`]).
    pub target: String,
    pub version: HTTPVersion,
    pub headers: Vec<Header>,
}

/// Why a head was refused, and the status that says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// 400: the request line or a header line is malformed; the reason is
    /// a fixed phrase (never a copy of the input).
    BadRequest(&'static str),
    /// 431: more than [`MAX_HEADERS`] header fields.
    TooManyHeaders,
    /// 505: an HTTP version other than 1.0 and 1.1.
    VersionNotSupported,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::BadRequest(_) => 400,
            HeadError::TooManyHeaders => 431,
            HeadError::VersionNotSupported => 505,
        }
    }
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::BadRequest(why) => write!(f, "bad request: {why}"),
            HeadError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header fields"),
            HeadError::VersionNotSupported => f.write_str("only HTTP/1.0 and HTTP/1.1 are served"),
        }
    }
}

/// `tchar` of RFC 9110 section 5.6.2: the characters of a method or field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a complete head (as delimited by [`HeadScanner::find_end`]).
///
/// # Errors
/// [`HeadError`] with the status to answer: 400 for a malformed request
/// line or header line (bytes outside ASCII, control characters, obsolete
/// line folding, a bad method token or target), 431 for too many header
/// fields, 505 for an HTTP version other than 1.0 or 1.1.
pub fn parse_head(head: &[u8]) -> Result<RequestHead, HeadError> {
    use HeadError::BadRequest;
    if !head.is_ascii() {
        return Err(BadRequest("bytes outside ASCII"));
    }
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(strip_cr)
        .skip_while(|l| l.is_empty());
    let request_line = lines.next().ok_or(BadRequest("no request line"))?;
    let (method, target, version) = parse_request_line(request_line)?;

    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(BadRequest("control character in a header line"));
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(BadRequest("obsolete line folding"));
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or(BadRequest("header line without ':'"))?;
        if colon == 0 || !line[..colon].iter().all(|&b| is_tchar(b)) {
            return Err(BadRequest("bad header field name"));
        }
        if headers.len() == MAX_HEADERS {
            return Err(HeadError::TooManyHeaders);
        }
        // ASCII checked above, so this is valid UTF-8.
        let text = std::str::from_utf8(line).map_err(|_| BadRequest("bytes outside ASCII"))?;
        headers.push(Header::from_str(text).map_err(|()| BadRequest("bad header line"))?);
    }
    Ok(RequestHead {
        method,
        target,
        version,
        headers,
    })
}

fn parse_request_line(line: &[u8]) -> Result<(Method, String, HTTPVersion), HeadError> {
    use HeadError::BadRequest;
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest("request line is not METHOD TARGET VERSION"));
    };
    if method.is_empty() || method.len() > MAX_METHOD_LEN || !method.iter().all(|&b| is_tchar(b)) {
        return Err(BadRequest("bad method"));
    }
    if target.is_empty() || !target.iter().all(|&b| (0x21..0x7f).contains(&b)) {
        return Err(BadRequest("bad request target"));
    }
    if !(target[0] == b'/'
        || target == b"*"
        || target.starts_with(b"http://")
        || target.starts_with(b"https://"))
    {
        return Err(BadRequest("request target is not a path"));
    }
    let version = match version {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(HeadError::VersionNotSupported)
        }
        _ => return Err(BadRequest("bad HTTP version")),
    };
    // All three are ASCII (checked by the caller), so these cannot fail.
    let method = std::str::from_utf8(method)
        .ok()
        .and_then(|m| Method::from_str(m).ok())
        .ok_or(BadRequest("bad method"))?;
    let target =
        String::from_utf8(target.to_vec()).map_err(|_| BadRequest("bad request target"))?;
    Ok((method, target, version))
}

impl RequestHead {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    }

    /// The path the target names: the absolute form loses its scheme and
    /// authority; the query string stays (routing ignores it).
    pub fn path(&self) -> &str {
        path_of(&self.target)
    }

    /// RFC 9112 section 3.2: an HTTP/1.1 request carries exactly one
    /// `Host` field, an HTTP/1.0 one at most one, and its value is an
    /// authority (`host[:port]`, possibly empty), nothing else.
    ///
    /// # Errors
    /// 400 naming the problem (never quoting the value).
    pub fn check_host(&self) -> Result<(), HeadError> {
        let mut hosts = self.headers.iter().filter(|h| h.field.equiv("Host"));
        let first = hosts.next();
        if hosts.next().is_some() {
            return Err(HeadError::BadRequest("more than one Host header field"));
        }
        match first {
            None if self.version == HTTPVersion(1, 1) => Err(HeadError::BadRequest(
                "HTTP/1.1 request without a Host header field",
            )),
            Some(h) if !is_authority(h.value.as_str()) => {
                Err(HeadError::BadRequest("Host is not a host name or address"))
            }
            _ => Ok(()),
        }
    }

    /// Whether the client sent a body (or means to): we never read one, so
    /// the connection closes after the response.
    ///
    /// # Errors
    /// A `Content-Length` that is not a number (400).
    pub fn has_body(&self) -> Result<bool, HeadError> {
        if self.header("Transfer-Encoding").is_some() {
            return Ok(true);
        }
        let mut body = false;
        for h in self
            .headers
            .iter()
            .filter(|h| h.field.equiv("Content-Length"))
        {
            let v = h.value.as_str();
            if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HeadError::BadRequest("bad Content-Length"));
            }
            body |= v.bytes().any(|b| b != b'0');
        }
        Ok(body)
    }

    /// Whether the connection may carry another request after this one:
    /// HTTP/1.1 without `Connection: close`. HTTP/1.0 always closes (the
    /// response writer cannot echo `Connection: keep-alive`).
    pub fn keep_alive(&self) -> bool {
        if self.version != HTTPVersion(1, 1) {
            return false;
        }
        !self
            .headers
            .iter()
            .filter(|h| h.field.equiv("Connection"))
            .any(|h| {
                h.value
                    .as_str()
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close"))
            })
    }
}

/// Whether `v` can be a `Host` value: `uri-host [":" port]` of RFC 3986
/// (a registered name, an IPv4 address, or an IPv6 literal in brackets),
/// checked at the character level.
fn is_authority(v: &str) -> bool {
    v.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%:[]".contains(&b))
}

/// The path part of a request target (`http://host:80/x?y` → `/x?y`,
/// `http://host` → `/`).
pub fn path_of(target: &str) -> &str {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"));
    match rest {
        Some(r) => match r.find(['/', '?']) {
            Some(i) if r.as_bytes()[i] == b'/' => &r[i..],
            _ => "/",
        },
        None => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(chunks: &[&[u8]]) -> Option<usize> {
        let mut s = HeadScanner::default();
        let mut buf = Vec::new();
        let mut found = None;
        for c in chunks {
            buf.extend_from_slice(c);
            found = s.find_end(&buf);
            if found.is_some() {
                break;
            }
        }
        found
    }

    #[test]
    fn framing() {
        assert_eq!(end(&[b"GET / HTTP/1.1\r\n\r\n"]), Some(18));
        assert_eq!(end(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET"]), Some(27));
        assert_eq!(end(&[b"GET / HTTP/1.1\n\n"]), Some(16));
        assert_eq!(end(&[b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]), Some(22));
        assert_eq!(end(&[b"GET / HTTP/1.1\r\nHost: x\r\n"]), None);
        let bytes = b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
        let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(end(&one_by_one), Some(bytes.len()));
        assert!(!has_request_bytes(b"\r\n\r\n") && has_request_bytes(b"\r\nG"));
        for ok in [
            &b""[..],
            b"\r\n",
            b"GE",
            b"GET",
            b"GET ",
            b"GET /x HTTP/1.1\r\n",
            b"\r\nBREW /",
        ] {
            assert!(!cannot_be_request(ok), "{ok:?}");
        }
        for bad in [
            &b"\x16\x03\x01\x02\x00"[..],
            b"GET\r\n",
            b" GET /",
            b"{\"a\": 1}",
            &[b'A'; 33],
        ] {
            assert!(cannot_be_request(bad), "{bad:?}");
        }
    }

    #[test]
    fn parses_a_scrape() {
        let h = parse_head(b"GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n")
            .unwrap();
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path(), "/metrics?x=1");
        assert_eq!(h.version, HTTPVersion(1, 1));
        assert_eq!(h.header("host"), Some("127.0.0.1"));
        assert!(h.keep_alive());
        assert_eq!(h.has_body(), Ok(false));
        assert_eq!(h.check_host(), Ok(()));
        let h = parse_head(b"HEAD http://gw:8081/status HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!(h.check_host(), Ok(()), "HTTP/1.0 needs no Host");
        assert_eq!((&h.method, h.path()), (&Method::Head, "/status"));
        assert!(!h.keep_alive());
        let h = parse_head(
            b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
        assert!(!h.keep_alive());
        assert_eq!(h.has_body(), Ok(true));
        assert_eq!(
            parse_head(b"BREW /pot HTTP/1.1\r\n\r\n")
                .unwrap()
                .method
                .as_str(),
            "BREW"
        );
    }

    #[test]
    fn refuses_malformed_heads() {
        let status = |h: &[u8]| parse_head(h).map(|_| 200).unwrap_or_else(|e| e.status());
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 x\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET metrics HTTP/1.1\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTX/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nNo colon\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n",
            b"GET / HTTP/1.1\r\nA b: c\r\n\r\n",
            b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert_eq!(status(bad), 400, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 505);
        let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            431
        );
        let h = parse_head(b"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n").unwrap();
        assert_eq!(
            h.has_body(),
            Err(HeadError::BadRequest("bad Content-Length"))
        );
    }

    #[test]
    fn exactly_one_host_on_http_1_1() {
        let host = |h: &[u8]| parse_head(h).unwrap().check_host();
        for ok in [
            &b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8081\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nhost: gw.lan\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: [2001:db8::1]:8081\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
            b"GET / HTTP/1.0\r\nHost: gw\r\n\r\n",
        ] {
            assert_eq!(host(ok), Ok(()), "{:?}", String::from_utf8_lossy(ok));
        }
        for (bad, why) in [
            (&b"GET / HTTP/1.1\r\n\r\n"[..], "without a Host"),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
                "more than one",
            ),
            (
                b"GET / HTTP/1.0\r\nHost: a\r\nHOST: b\r\n\r\n",
                "more than one",
            ),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "not a host"),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "not a host"),
        ] {
            let e = host(bad).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(why), "{e}");
        }
    }

    #[test]
    fn paths() {
        assert_eq!(path_of("/metrics"), "/metrics");
        assert_eq!(path_of("http://h:1/metrics?a"), "/metrics?a");
        assert_eq!(path_of("http://h"), "/");
        assert_eq!(path_of("https://h?x/y"), "/");
        assert_eq!(path_of("*"), "*");
    }
}
