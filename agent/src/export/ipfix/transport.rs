//! Where IPFIX messages go: a UDP socket, or a TCP connection that is
//! re-established (with a backoff) after it breaks. Each TCP connection is
//! a new transport session: templates first, sequence numbers from 0.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

/// `--ipfix-collector`: `HOST:PORT` (UDP) or `tcp://HOST:PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Collector {
    Udp(String),
    Tcp(String),
}

impl Collector {
    /// # Errors
    /// Not `HOST:PORT`, `udp://HOST:PORT` or `tcp://HOST:PORT`.
    pub fn parse(s: &str) -> Result<Collector, String> {
        let (tcp, hp) = if let Some(r) = s.strip_prefix("tcp://") {
            (true, r)
        } else {
            (false, s.strip_prefix("udp://").unwrap_or(s))
        };
        let ok = hp
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!(
                "--ipfix-collector {s:?}: expected HOST:PORT (UDP) or tcp://HOST:PORT"
            ));
        }
        Ok(if tcp {
            Collector::Tcp(hp.into())
        } else {
            Collector::Udp(hp.into())
        })
    }

    fn resolve(hp: &str) -> std::io::Result<SocketAddr> {
        hp.to_socket_addrs()?.next().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, format!("{hp}: no address"))
        })
    }
}

pub enum Transport {
    Udp(UdpSocket),
    Tcp(TcpSession),
}

pub struct TcpSession {
    target: String,
    stream: Option<TcpStream>,
    timeout: Duration,
    retry_at: Instant,
    backoff: Duration,
}

/// TCP reconnect backoff bounds.
const TCP_BACKOFF_MIN: Duration = Duration::from_secs(1);
const TCP_BACKOFF_MAX: Duration = Duration::from_secs(60);

impl Transport {
    /// Opens the UDP socket (no traffic yet), or prepares the TCP session
    /// (connected on first use).
    ///
    /// # Errors
    /// The UDP collector's name does not resolve, or the socket cannot be
    /// opened.
    pub fn open(c: &Collector, timeout: Duration) -> Result<Transport, String> {
        match c {
            Collector::Udp(hp) => {
                let what = |e: std::io::Error| format!("--ipfix-collector {hp}: {e}");
                let to = Collector::resolve(hp).map_err(what)?;
                let any: SocketAddr = if to.is_ipv4() {
                    "0.0.0.0:0".parse().unwrap()
                } else {
                    "[::]:0".parse().unwrap()
                };
                let s = UdpSocket::bind(any).map_err(what)?;
                s.connect(to).map_err(what)?;
                Ok(Transport::Udp(s))
            }
            Collector::Tcp(hp) => Ok(Transport::Tcp(TcpSession {
                target: hp.clone(),
                stream: None,
                timeout,
                retry_at: Instant::now(),
                backoff: TCP_BACKOFF_MIN,
            })),
        }
    }

    pub fn is_udp(&self) -> bool {
        matches!(self, Transport::Udp(_))
    }

    /// TCP: connects if not connected and the backoff allows. `Ok(true)`
    /// when this began a new session. UDP: always `Ok(false)`.
    ///
    /// # Errors
    /// The TCP connection could not be made (the caller counts it).
    pub fn ensure_session(&mut self) -> Result<bool, String> {
        let Transport::Tcp(t) = self else {
            return Ok(false);
        };
        if t.stream.is_some() {
            return Ok(false);
        }
        if Instant::now() < t.retry_at {
            return Err(format!("{}: reconnect backing off", t.target));
        }
        let res = Collector::resolve(&t.target)
            .and_then(|a| TcpStream::connect_timeout(&a, t.timeout))
            .and_then(|s| {
                s.set_write_timeout(Some(t.timeout))?;
                s.set_nodelay(true)?;
                Ok(s)
            });
        match res {
            Ok(s) => {
                t.stream = Some(s);
                t.backoff = TCP_BACKOFF_MIN;
                Ok(true)
            }
            Err(e) => {
                t.retry_at = Instant::now() + t.backoff;
                t.backoff = (t.backoff * 2).min(TCP_BACKOFF_MAX);
                Err(format!("{}: {e}", t.target))
            }
        }
    }

    /// Sends one message.
    ///
    /// # Errors
    /// The send failed; a TCP session is closed (the next export reconnects).
    pub fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        match self {
            Transport::Udp(s) => match s.send(msg) {
                Ok(n) if n == msg.len() => Ok(()),
                Ok(n) => Err(format!("short UDP send: {n} of {} bytes", msg.len())),
                Err(e) => Err(e.to_string()),
            },
            Transport::Tcp(t) => {
                let Some(s) = t.stream.as_mut() else {
                    return Err(format!("{}: not connected", t.target));
                };
                s.write_all(msg).map_err(|e| {
                    t.stream = None;
                    t.retry_at = Instant::now();
                    format!("{}: {e}", t.target)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_collectors_and_names_bad_ones() {
        assert_eq!(
            Collector::parse("127.0.0.1:4739").unwrap(),
            Collector::Udp("127.0.0.1:4739".into())
        );
        assert_eq!(
            Collector::parse("udp://[2001:db8::1]:4739").unwrap(),
            Collector::Udp("[2001:db8::1]:4739".into())
        );
        assert_eq!(
            Collector::parse("tcp://collector.example:4739").unwrap(),
            Collector::Tcp("collector.example:4739".into())
        );
        for bad in ["", "host", "host:0", ":4739", "tcp://host:x", "host:70000"] {
            let e = Collector::parse(bad).unwrap_err();
            assert!(e.contains("--ipfix-collector"), "{bad}: {e}");
        }
    }
}
