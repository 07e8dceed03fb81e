//! `ss -tnpie` as the truth for process attribution: its `users:` list is
//! read from every process's `/proc/PID/fd` at the moment it runs. Run from
//! the test's thread, it sees the test's network namespace.

use std::net::SocketAddr;
use std::process::Command;

use netprobe::sockets::ConnEntry;

/// One socket as `ss -tnpiea` shows it.
#[derive(Clone, Debug)]
pub struct SsSocket {
    pub state: String,
    pub local: SocketAddr,
    /// `None` for a listener (`*` or `0.0.0.0:*`).
    pub peer: Option<SocketAddr>,
    /// (command name, pid) of every process holding the socket.
    pub users: Vec<(String, u32)>,
    pub inode: u64,
}

/// Every TCP socket of the calling thread's network namespace.
pub fn sockets() -> Vec<SsSocket> {
    let out = Command::new("ss")
        .args(["-tnpieaH"])
        .output()
        .expect("running ss (iproute2; build/deps.sh installs it)");
    assert!(out.status.success(), "ss -tnpieaH: {:?}", out);
    parse(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `ss -tnpieaH` output: one line per socket, then (-i) an indented
/// line of TCP info, skipped.
pub fn parse(text: &str) -> Vec<SsSocket> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(char::is_whitespace))
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 5 {
                return None;
            }
            Some(SsSocket {
                state: f[0].to_string(),
                local: address(f[3])?,
                peer: address(f[4]),
                users: users(line),
                inode: line
                    .split_whitespace()
                    .find_map(|t| t.strip_prefix("ino:"))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            })
        })
        .collect()
}

fn address(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Some(a);
    }
    // `*:7105` and `0.0.0.0:*` are wildcards; an interface scope
    // (`127.0.0.1%lo:7105`) is not used by these tests.
    None
}

/// `users:(("srv-one",pid=12,fd=3),("srv-one",pid=13,fd=3))`
fn users(line: &str) -> Vec<(String, u32)> {
    let Some(start) = line.find("users:((") else {
        return Vec::new();
    };
    let rest = &line[start + "users:((".len()..];
    let end = rest.find("))").unwrap_or(rest.len());
    rest[..end]
        .split("),(")
        .filter_map(|u| {
            let u = u.strip_prefix('"')?;
            let (comm, tail) = u.split_once("\",pid=")?;
            let pid = tail.split(',').next()?.parse().ok()?;
            Some((comm.to_string(), pid))
        })
        .collect()
}

/// How the agent's owners compare with ss for one row.
#[derive(Debug, Default)]
pub struct Verdict {
    pub right: usize,
    pub total: usize,
    /// One line per connection the agent got wrong.
    pub wrong: Vec<String>,
}

impl Verdict {
    pub fn all_right(&self) -> bool {
        self.total > 0 && self.right == self.total
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} right", self.right, self.total)?;
        for w in self.wrong.iter().take(5) {
            write!(f, "\n    {w}")?;
        }
        Ok(())
    }
}

/// The established connections whose local port is `port` (the server side
/// of a row's connections): right when the agent's pid is one of the
/// processes ss names and its command name is that process's.
pub fn compare(agent: &[ConnEntry], ss: &[SsSocket], port: u16) -> Verdict {
    let mut v = Verdict::default();
    for s in ss
        .iter()
        .filter(|s| s.state == "ESTAB" && s.local.port() == port)
    {
        v.total += 1;
        let peer = s.peer.expect("an established socket has a peer");
        let Some(c) = agent.iter().find(|c| {
            c.local_port == port
                && c.remote_port == peer.port()
                && c.local.parse().ok() == Some(s.local.ip())
                && c.remote.parse().ok() == Some(peer.ip())
        }) else {
            v.wrong
                .push(format!("{} <- {peer}: not in the agent's table", s.local));
            continue;
        };
        let right = s
            .users
            .iter()
            .any(|(comm, pid)| Some(*pid) == c.pid && Some(comm.as_str()) == c.comm.as_deref());
        if right {
            v.right += 1;
        } else {
            v.wrong.push(format!(
                "{} <- {peer}: agent {:?}[{:?}], ss {:?}",
                s.local, c.comm, c.pid, s.users
            ));
        }
    }
    v
}

#[test]
fn parses_ss_lines() {
    let text = "ESTAB 0      0      127.0.0.1:7105 127.0.0.1:40000 users:((\"srv-one\",pid=12,fd=3),(\"srv one\",pid=13,fd=4)) uid:0 ino:4242 sk:1 cgroup:/ <->\n\
\t cubic wscale:7,7 rto:204\n\
LISTEN 0      4096   [::]:7106 [::]:* users:((\"srv-two\",pid=14,fd=3)) ino:77 sk:2 cgroup:/ v6only:1 <->\n\
ESTAB 0 0 [::ffff:127.0.0.1]:7106 [::ffff:127.0.0.1]:50000 ino:0 sk:3 <->\n";
    let s = parse(text);
    assert_eq!(s.len(), 3);
    assert_eq!(s[0].local, "127.0.0.1:7105".parse().unwrap());
    assert_eq!(
        s[0].users,
        [("srv-one".to_string(), 12), ("srv one".to_string(), 13)]
    );
    assert_eq!(s[0].inode, 4242);
    assert_eq!(s[1].state, "LISTEN");
    assert_eq!(s[1].peer, None);
    assert!(s[2].users.is_empty());
    assert_eq!(s[2].local.ip().to_string(), "::ffff:127.0.0.1");
}
