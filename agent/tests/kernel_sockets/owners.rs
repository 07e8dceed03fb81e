//! Who owns a connection: each row of issue 22's table, with real server
//! processes (build/sockets-traffic.py `owners`) and real connections in
//! the test's own network namespace, the agent's owner of every accepted
//! connection compared with `ss -tnpie` at the same moment.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use netprobe::clock::boottime_ns;
use netprobe::sockets::{AcceptProbeMode, ConnEntry, OwnerSource, SocketConfig, SocketProbes};

use super::ss::{self, Verdict};

fn traffic_py() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../build/sockets-traffic.py")
}

/// A server process (and its children) of `sockets-traffic.py owners`,
/// killed as a process group when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts `owners ADDR PORT NAME OPTS...` and waits (10 s at most) for
    /// it to listen.
    pub fn start(addr: &str, port: u16, name: &str, opts: &[&str]) -> Server {
        let mut child = Command::new("python3")
            .arg(traffic_py())
            .args(["owners", addr, &port.to_string(), name])
            .args(opts)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("starting python3 (build/deps.sh installs it)");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let server = Server { child };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(l) if l.trim() == "ready" => server,
            other => panic!("server {name} on {addr}:{port} {opts:?} did not start: {other:?}"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server's process group and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        // SAFETY: signals the process group this server leads.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` connections to `to`, held open by the caller.
pub fn connect_n(to: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            TcpStream::connect_timeout(&to, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connection {i} to {to}: {e}"))
        })
        .collect()
}

/// Waits (10 s at most) until `n` established sockets on local `port` are
/// held by a process (accepted), as ss sees them.
pub fn wait_accepted(port: u16, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = ss::sockets()
            .iter()
            .filter(|s| s.state == "ESTAB" && s.local.port() == port && !s.users.is_empty())
            .count();
        if held == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{held} of {n} connections on port {port} accepted after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The agent's connections, then ss, at the same moment (nothing opens or
/// closes in between: every connection is held).
pub fn owners_now(probes: &mut SocketProbes) -> (Vec<ConnEntry>, Vec<ss::SsSocket>) {
    let now = boottime_ns();
    probes.snapshot(now); // runs the iterator: what a collection sees
    let conns = probes
        .connections()
        .unwrap_or_else(|e| panic!("reading the connection table: {e}"))
        .iter()
        .map(|c| ConnEntry::from_conn(c, now))
        .collect();
    (conns, ss::sockets())
}

/// Compares the server side of `port`, prints the row's figure, and checks
/// that every one of those connections was seen accepted.
pub fn row(probes: &mut SocketProbes, name: &str, port: u16) -> Verdict {
    let (agent, truth) = owners_now(probes);
    let v = ss::compare(&agent, &truth, port);
    eprintln!("row {name}: {v}");
    let src = sources(&agent, port);
    assert!(
        src.iter().all(|&s| s == OwnerSource::Accept),
        "{name}: owner sources {src:?}"
    );
    v
}

/// The owner sources of the agent's server-side connections on `port`.
fn sources(agent: &[ConnEntry], port: u16) -> Vec<OwnerSource> {
    agent
        .iter()
        .filter(|c| c.local_port == port && c.state == "established")
        .map(|c| c.owner_source)
        .collect()
}

fn count(v: &[OwnerSource], s: OwnerSource) -> usize {
    v.iter().filter(|&&x| x == s).count()
}

/// A cgroup (v2) of its own for a test's server, removed when dropped
/// (after the processes in it are gone).
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    fn new(name: &str) -> TestCgroup {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = mounts
            .lines()
            .find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                (right.split_whitespace().next()? == "cgroup2")
                    .then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
            })
            .expect("no cgroup v2 mounted: the owner tests put a server in a cgroup of its own");
        let dir = root.join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        TestCgroup { dir }
    }

    fn add(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("moving {pid} into {}: {e}", self.dir.display()));
    }

    /// The cgroup's id, as bpf_get_current_cgroup_id() gives it.
    fn id(&self) -> u64 {
        std::fs::metadata(&self.dir).unwrap().ino()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Killed processes leave their cgroup a moment after.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("cgroup {} left behind", self.dir.display());
    }
}

fn with_accept_probe(mode: AcceptProbeMode) -> SocketConfig {
    SocketConfig {
        accept_probe: mode,
        ..super::config()
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Adds `cidr` to `lo` of the calling thread's namespace.
fn add_address(cidr: &str) {
    let st = Command::new("ip")
        .args(["addr", "add", cidr, "dev", "lo"])
        .status()
        .expect("running ip (iproute2)");
    assert!(st.success(), "ip addr add {cidr} dev lo");
}

/// A server (in a cgroup of its own) listening before the agent starts,
/// with five connections accepted before and five after: the first five
/// learned from /proc, the others seen accepted, all with the cgroup the
/// kernel gives the process.
#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn listener_before_agent_start() {
    super::require_privileges();
    super::in_private_netns("np-own-before", || {
        let cgroup = TestCgroup::new("np-own-before");
        let srv = Server::start("127.0.0.1", 7101, "np-early", &[]);
        cgroup.add(srv.pid());
        let mut held = connect_n(addr("127.0.0.1:7101"), 5);
        wait_accepted(7101, 5);
        let mut probes = super::load(super::config());
        let learned = probes.snapshot(boottime_ns()).owners.learned;
        eprintln!("learned at start: {learned:?}");
        // Both ends of the five: this test process is the client.
        assert_eq!(
            (learned.listeners, learned.connections),
            (1, 10),
            "{learned:?}"
        );
        held.extend(connect_n(addr("127.0.0.1:7101"), 5));
        wait_accepted(7101, 10);
        let (agent, truth) = owners_now(&mut probes);
        let v = ss::compare(&agent, &truth, 7101);
        eprintln!("row listener before agent start: {v}");
        assert!(v.all_right() && v.total == 10, "{v}");
        let src = sources(&agent, 7101);
        assert_eq!(
            (
                count(&src, OwnerSource::Learned),
                count(&src, OwnerSource::Accept)
            ),
            (5, 5),
            "{src:?}"
        );
        let cgroups: Vec<Option<u64>> = agent
            .iter()
            .filter(|c| c.local_port == 7101)
            .map(|c| c.cgroup_id)
            .collect();
        assert!(
            cgroups.iter().all(|&c| c == Some(cgroup.id())),
            "cgroup ids {cgroups:?}, the server's cgroup is {}",
            cgroup.id()
        );
        drop(srv);
    });
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn same_port_on_two_addresses() {
    super::require_privileges();
    super::in_private_netns("np-own-2addr", || {
        add_address("198.18.130.1/32");
        let mut probes = super::load(super::config());
        let _one = Server::start("198.18.130.1", 7105, "srv-one", &[]);
        let _two = Server::start("127.0.0.1", 7105, "srv-two", &[]);
        let _a = connect_n(addr("198.18.130.1:7105"), 11);
        let _b = connect_n(addr("127.0.0.1:7105"), 10);
        wait_accepted(7105, 21);
        let v = row(&mut probes, "same port on two addresses", 7105);
        assert!(v.all_right() && v.total == 21, "{v}");
    });
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn v4_and_v6_only_on_the_same_port() {
    super::require_privileges();
    super::in_private_netns("np-own-v6only", || {
        let mut probes = super::load(super::config());
        let _one = Server::start("0.0.0.0", 7106, "srv-one", &[]);
        let _two = Server::start("::", 7106, "srv-two", &["v6only"]);
        let _a = connect_n(addr("127.0.0.1:7106"), 11);
        let _b = connect_n(addr("[::1]:7106"), 10);
        wait_accepted(7106, 21);
        let v = row(&mut probes, "v4 and v6-only on the same port", 7106);
        assert!(v.all_right() && v.total == 21, "{v}");
    });
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn reuseport_two_processes() {
    super::require_privileges();
    super::in_private_netns("np-own-reuse", || {
        let mut probes = super::load(super::config());
        let one = Server::start("127.0.0.1", 7107, "np-rp-one", &["reuseport"]);
        let two = Server::start("127.0.0.1", 7107, "np-rp-two", &["reuseport"]);
        let _c = connect_n(addr("127.0.0.1:7107"), 16);
        wait_accepted(7107, 16);
        let (agent, truth) = owners_now(&mut probes);
        let v = ss::compare(&agent, &truth, 7107);
        eprintln!("row SO_REUSEPORT, two processes: {v}");
        // Both got some: otherwise the row proves nothing.
        for srv in [&one, &two] {
            assert!(
                truth.iter().any(|s| s.local.port() == 7107
                    && s.state == "ESTAB"
                    && s.users.iter().any(|u| u.1 == srv.pid())),
                "the kernel gave process {} none of the 16 connections",
                srv.pid()
            );
        }
        assert!(v.all_right() && v.total == 16, "{v}");
    });
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn reuseport_after_the_last_listener_exits() {
    super::require_privileges();
    super::in_private_netns("np-own-reuse-exit", || {
        let mut probes = super::load(super::config());
        let _one = Server::start("127.0.0.1", 7108, "np-rp-stays", &["reuseport"]);
        let two = Server::start("127.0.0.1", 7108, "np-rp-exits", &["reuseport"]);
        two.stop();
        let _c = connect_n(addr("127.0.0.1:7108"), 8);
        wait_accepted(7108, 8);
        let v = row(
            &mut probes,
            "SO_REUSEPORT after the last listener exits",
            7108,
        );
        assert!(v.all_right() && v.total == 8, "{v}");
    });
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn pre_fork_server() {
    super::require_privileges();
    super::in_private_netns("np-own-prefork", || {
        let mut probes = super::load(super::config());
        let _srv = Server::start("127.0.0.1", 7109, "np-prefork", &["prefork=4"]);
        let _c = connect_n(addr("127.0.0.1:7109"), 16);
        wait_accepted(7109, 16);
        let v = row(&mut probes, "pre-fork server", 7109);
        assert!(v.all_right() && v.total == 16, "{v}");
    });
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn listen_then_exec() {
    super::require_privileges();
    super::in_private_netns("np-own-exec", || {
        let mut probes = super::load(super::config());
        let _srv = Server::start("127.0.0.1", 7110, "np-pre-exec", &["exec"]);
        let _c = connect_n(addr("127.0.0.1:7110"), 16);
        wait_accepted(7110, 16);
        let v = row(&mut probes, "listen, then exec", 7110);
        assert!(v.all_right() && v.total == 16, "{v}");
    });
}

/// The cases that were right before: two servers on different ports, a
/// thread pool, IPv6, dual stack; and the connecting side.
#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn ports_threads_ipv6_dual_stack() {
    super::require_privileges();
    super::in_private_netns("np-own-plain", || {
        let mut probes = super::load(super::config());
        let _a = Server::start("127.0.0.1", 7111, "np-port-a", &[]);
        let _b = Server::start("127.0.0.1", 7112, "np-port-b", &[]);
        let _pool = Server::start("127.0.0.1", 7113, "np-pool", &["threads=4"]);
        let _v6 = Server::start("::1", 7114, "np-v6", &["v6only"]);
        let _dual = Server::start("::", 7115, "np-dual", &[]);
        let mut held = Vec::new();
        for (to, n) in [
            ("127.0.0.1:7111", 4),
            ("127.0.0.1:7112", 4),
            ("127.0.0.1:7113", 8),
            ("[::1]:7114", 4),
            ("127.0.0.1:7115", 4),
            ("[::1]:7115", 4),
        ] {
            held.extend(connect_n(addr(to), n));
        }
        for (port, n) in [(7111, 4), (7112, 4), (7113, 8), (7114, 4), (7115, 8)] {
            wait_accepted(port, n);
        }
        let (agent, truth) = owners_now(&mut probes);
        for (port, n, what) in [
            (7111, 4, "port a"),
            (7112, 4, "port b"),
            (7113, 8, "thread pool"),
            (7114, 4, "IPv6"),
            (7115, 8, "dual stack"),
        ] {
            let v = ss::compare(&agent, &truth, port);
            eprintln!("row {what}: {v}");
            assert!(v.all_right() && v.total == n, "{what}: {v}");
        }
        // The connecting side: this test process, as ss names it.
        let mut client = Verdict::default();
        for h in &held {
            let port = h.local_addr().unwrap().port();
            let v = ss::compare(&agent, &truth, port);
            client.total += v.total;
            client.right += v.right;
            client.wrong.extend(v.wrong);
        }
        eprintln!("row connecting side: {client}");
        assert!(client.all_right() && client.total == held.len(), "{client}");
    });
}

/// A server that forks after accept, the child serving: only a /proc
/// lookup sees the child. The agent shows the process that accepted the
/// connection (the parent), as documented in docs/sockets.md.
#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn fork_after_accept_shows_the_accepting_process() {
    super::require_privileges();
    super::in_private_netns("np-own-forker", || {
        let mut probes = super::load(super::config());
        let srv = Server::start("127.0.0.1", 7116, "np-forker", &["fork-after-accept"]);
        let _c = connect_n(addr("127.0.0.1:7116"), 8);
        // Until every connection is the child's alone (the parent closed).
        let deadline = Instant::now() + Duration::from_secs(10);
        while ss::sockets()
            .iter()
            .filter(|s| s.state == "ESTAB" && s.local.port() == 7116)
            .filter(|s| s.users.len() == 1 && s.users[0].1 != srv.pid())
            .count()
            < 8
        {
            assert!(Instant::now() < deadline, "the children did not take over");
            std::thread::sleep(Duration::from_millis(20));
        }
        let (agent, truth) = owners_now(&mut probes);
        let v = ss::compare(&agent, &truth, 7116);
        let mine: Vec<&ConnEntry> = agent
            .iter()
            .filter(|c| c.local_port == 7116 && c.state == "established")
            .collect();
        eprintln!(
            "row fork after accept (child serves): the agent shows the accepting process for {}/8, ss the serving child ({} of them match the agent)",
            mine.iter()
                .filter(|c| c.pid == Some(srv.pid()) && c.owner_source == OwnerSource::Accept)
                .count(),
            v.right
        );
        assert_eq!(mine.len(), 8);
        for c in mine {
            assert_eq!(c.pid, Some(srv.pid()), "{c:?}");
            assert_eq!(c.comm.as_deref(), Some("np-forker"));
            assert_eq!(c.owner_source, OwnerSource::Accept);
        }
        assert_eq!(v.right, 0, "ss shows the children: {v}");
    });
}

/// Without an accept probe (--socket-accept-probe off, or a kernel with
/// neither): each connection keeps its own listener's owner. Right for
/// every row where the listener's process accepts (SO_REUSEPORT groups,
/// same port on other addresses, listeners learned at start); a pre-fork
/// server's connections show the parent, as the log line says.
#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn without_accept_probe_connections_keep_their_listeners_owner() {
    super::require_privileges();
    super::in_private_netns("np-own-noaccept", || {
        let early = Server::start("127.0.0.1", 7121, "np-early", &[]);
        let mut probes = super::load(with_accept_probe(AcceptProbeMode::Off));
        let snap = probes.snapshot(boottime_ns());
        assert_eq!(
            (snap.owners.accepted, snap.owners.accept_probe),
            ("listener", "none")
        );
        let _one = Server::start("127.0.0.1", 7122, "np-rp-one", &["reuseport"]);
        let _two = Server::start("127.0.0.1", 7122, "np-rp-two", &["reuseport"]);
        let prefork = Server::start("127.0.0.1", 7123, "np-prefork", &["prefork=4"]);
        let mut held = connect_n(addr("127.0.0.1:7121"), 4);
        held.extend(connect_n(addr("127.0.0.1:7122"), 16));
        held.extend(connect_n(addr("127.0.0.1:7123"), 8));
        for (port, n) in [(7121, 4), (7122, 16), (7123, 8)] {
            wait_accepted(port, n);
        }
        let (agent, truth) = owners_now(&mut probes);
        for (port, what) in [(7121, "learned listener"), (7122, "SO_REUSEPORT")] {
            let v = ss::compare(&agent, &truth, port);
            eprintln!("row {what}, no accept probe: {v}");
            assert!(v.all_right(), "{what}: {v}");
            assert!(sources(&agent, port)
                .iter()
                .all(|&s| s == OwnerSource::Listener));
        }
        let pre: Vec<&ConnEntry> = agent.iter().filter(|c| c.local_port == 7123).collect();
        eprintln!(
            "row pre-fork, no accept probe: {}/8 show the listening parent",
            pre.iter().filter(|c| c.pid == Some(prefork.pid())).count()
        );
        assert!(pre.len() == 8 && pre.iter().all(|c| c.pid == Some(prefork.pid())));
        assert!(early.pid() > 0);
    });
}

/// Without socket storage (kernels before 5.11): the accept probe writes
/// owners into the connection table, and the established gauge counts
/// tracked connections (all of them here: the table has room).
#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn without_socket_storage() {
    super::require_privileges();
    super::in_private_netns("np-own-nostorage", || {
        let mut config = super::config();
        config.features.socket_storage = false;
        let mut probes = super::load(config);
        let _srv = Server::start("127.0.0.1", 7124, "np-prefork", &["prefork=4"]);
        let _c = connect_n(addr("127.0.0.1:7124"), 16);
        wait_accepted(7124, 16);
        let snap = probes.snapshot(boottime_ns());
        assert!(!snap.owners.socket_storage);
        assert_eq!(snap.owners.accepted, "accept");
        assert_eq!(snap.counters.established, super::snmp()["CurrEstab"] as u64);
        let v = row(&mut probes, "pre-fork, no socket storage", 7124);
        assert!(v.all_right() && v.total == 16, "{v}");
    });
}
