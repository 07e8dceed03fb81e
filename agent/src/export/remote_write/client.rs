//! One remote_write HTTP POST, and what its answer means for the spool.
//! ureq (blocking, no async runtime to share); https with rustls only when
//! built with the `remote-write-https` feature.

use std::fmt;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::backoff::parse_retry_after;

/// The `Authorization` header value a receiver requires. Never logged:
/// `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Authorization(String);

impl fmt::Debug for Authorization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Authorization(<redacted>)")
    }
}

impl Authorization {
    pub fn bearer(token: &str) -> Authorization {
        Authorization(format!("Bearer {token}"))
    }

    pub fn basic(user: &str, password: &str) -> Authorization {
        Authorization(format!(
            "Basic {}",
            base64(format!("{user}:{password}").as_bytes())
        ))
    }
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What became of one POST.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the receiver has the samples.
    Accepted,
    /// Network error, timeout, 5xx or 429: send the same samples again later.
    Retry {
        why: String,
        retry_after: Option<Duration>,
    },
    /// Any other status: the receiver will never take these samples.
    Rejected { status: u16, why: String },
}

pub struct Client {
    agent: ureq::Agent,
    url: String,
    authorization: Option<Authorization>,
}

/// Largest error body read back (for the log line).
const MAX_ERROR_BODY: u64 = 512;

impl Client {
    /// # Errors
    /// The URL is not http(s)://, https without the `remote-write-https`
    /// feature, or an unreadable or empty CA file; the message names it.
    pub fn new(
        url: &str,
        authorization: Option<Authorization>,
        ca_file: Option<&Path>,
        timeout: Duration,
    ) -> Result<Client, String> {
        let https = url.starts_with("https://");
        if !https && !url.starts_with("http://") {
            return Err(format!(
                "--remote-write-url {url:?}: expected http://HOST[:PORT]/PATH or https://..."
            ));
        }
        if https && !cfg!(feature = "remote-write-https") {
            return Err(format!(
                "--remote-write-url {url:?}: this build has no https (cargo feature remote-write-https)"
            ));
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(concat!("netprobe/", env!("CARGO_PKG_VERSION")))
            .max_redirects(0)
            .max_idle_connections(1);
        let config = with_tls(config, ca_file)?.build();
        Ok(Client {
            agent: config.into(),
            url: url.to_string(),
            authorization,
        })
    }

    /// POSTs one snappy-compressed WriteRequest.
    pub fn post(&self, body: &[u8]) -> Outcome {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0");
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", &a.0);
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    why: e.to_string(),
                    retry_after: None,
                }
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Read what is left so the connection can be reused; keep the start
        // of an error body for the log.
        let mut text = Vec::new();
        let _ = resp
            .body_mut()
            .as_reader()
            .take(if (200..300).contains(&status) {
                0
            } else {
                MAX_ERROR_BODY
            })
            .read_to_end(&mut text);
        let why = || {
            let t = String::from_utf8_lossy(&text);
            format!("HTTP {status}: {}", t.trim())
        };
        match status {
            200..=299 => Outcome::Accepted,
            429 | 500..=599 => Outcome::Retry {
                why: why(),
                retry_after,
            },
            _ => Outcome::Rejected { status, why: why() },
        }
    }
}

type ConfigBuilder = ureq::config::ConfigBuilder<ureq::typestate::AgentScope>;

#[cfg(feature = "remote-write-https")]
fn with_tls(b: ConfigBuilder, ca_file: Option<&Path>) -> Result<ConfigBuilder, String> {
    use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};
    let Some(path) = ca_file else {
        return Ok(b);
    };
    let what = format!("--remote-write-ca-file {}", path.display());
    let pem = std::fs::read(path).map_err(|e| format!("{what}: {e}"))?;
    let certs: Vec<_> = parse_pem(&pem)
        .filter_map(|i| match i {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificate in it"));
    }
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&certs))
        .build();
    Ok(b.tls_config(tls))
}

#[cfg(not(feature = "remote-write-https"))]
fn with_tls(b: ConfigBuilder, ca_file: Option<&Path>) -> Result<ConfigBuilder, String> {
    match ca_file {
        Some(p) => Err(format!(
            "--remote-write-ca-file {}: this build has no https (cargo feature remote-write-https)",
            p.display()
        )),
        None => Ok(b),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_values_and_redaction() {
        assert_eq!(
            Authorization::basic("Aladdin", "open sesame").0,
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(Authorization::basic("a", "b").0, "Basic YTpi");
        assert_eq!(Authorization::basic("ab", "c").0, "Basic YWI6Yw==");
        assert_eq!(Authorization::bearer("t0k").0, "Bearer t0k");
        assert!(!format!("{:?}", Authorization::bearer("secret")).contains("secret"));
    }

    #[test]
    fn bad_urls_are_refused_by_name() {
        let e = Client::new("ftp://x/", None, None, Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(
            e.contains("--remote-write-url") && e.contains("ftp://x/"),
            "{e}"
        );
        if !cfg!(feature = "remote-write-https") {
            let e = Client::new("https://x/", None, None, Duration::from_secs(1))
                .err()
                .unwrap();
            assert!(e.contains("remote-write-https"), "{e}");
        }
    }
}
