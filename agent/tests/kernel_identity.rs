//! Kernel tier for the identity layer: a Kubernetes node built for real,
//! since no kubelet can run here.
//!
//! Each test runs on a thread of its own in a new network namespace (the
//! node's: it holds the host ends of the veth pairs, and the identity
//! layer asks its questions there) and a private mount namespace (the
//! host root's bind mounts live and die with it). In it:
//! - real cgroup v2 directories, named as the kubelet (systemd or cgroupfs
//!   driver) and containerd or CRI-O name them, under a directory of this
//!   test in the host's cgroup2 hierarchy, bind-mounted as the host root's
//!   `sys/fs/cgroup` (a hybrid test mounts a named cgroup v1 hierarchy);
//! - per pod, a sandbox process that creates the pod's network namespace,
//!   joined to the node by a veth pair, and container processes started
//!   inside their cgroups and that namespace (joined before `exec`, as a
//!   runtime does);
//! - the kubelet's `/var/log/pods` and `/var/log/containers` layout (or
//!   Docker's and Podman's state) under a temporary host root, with the
//!   host's `/proc` bind-mounted into it.
//!
//! Traffic stays between the pods and the node's namespace (198.18.0.0/15),
//! bounded. Processes, cgroups, mounts and namespaces go on every exit path
//! (`Node`'s `Drop`; a run killed outright leaves cgroup directories that
//! the next run removes).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use netprobe::identity::model::{NO_POD_IN_PEER_NAMESPACE, PEER_IN_HOST_NAMESPACE};
use netprobe::identity::netlink::RouteSocket;
use netprobe::identity::{
    aggregate, ConnRecord, IdentityConfig, IfaceCounters, Lookup, Opened, PodIdentity, PodIndex,
    PodInfo, PodLedger, RefreshHints, OTHER,
};

const CGROUP2: &str = "/sys/fs/cgroup/unified";
const CGROUP2_PURE: &str = "/sys/fs/cgroup";
const BASE_PREFIX: &str = "netprobe-identity-";

fn require_privileges() {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| cap_eff & (1u64 << bit) != 0;
    assert!(
        has(CAP_SYS_ADMIN) && has(CAP_NET_ADMIN),
        "identity kernel tests (namespaces, cgroups, bind mounts) need CAP_SYS_ADMIN and \
         CAP_NET_ADMIN; this process has CapEff={cap_eff:#x}. Run as root: \
         sudo -E cargo test --test kernel_identity -- --ignored"
    );
}

/// The host's cgroup2 mount: the unified hierarchy of a hybrid host, or
/// /sys/fs/cgroup itself.
fn cgroup2_mount() -> &'static str {
    for m in [CGROUP2, CGROUP2_PURE] {
        if fs::read_to_string("/proc/self/mounts")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(m) && l.split(' ').nth(2) == Some("cgroup2"))
        {
            return m;
        }
    }
    panic!("no cgroup2 hierarchy mounted at {CGROUP2} or {CGROUP2_PURE}");
}

/// Runs `f` on a thread of its own, in a new network namespace (the
/// node's) and a private mount namespace.
fn on_node<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    require_privileges();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // SAFETY: unshare and mount affect only this thread.
            unsafe {
                let r = libc::unshare(libc::CLONE_NEWNET | libc::CLONE_NEWNS);
                assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
                let r = libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                );
                assert_eq!(r, 0, "mount --make-rprivate /");
            }
            run(&["ip", "link", "set", "lo", "up"]);
            f()
        })
        .unwrap()
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Runs a command in the node's namespaces; panics with its stderr.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command in the network namespace of `pid`.
fn run_in(pid: u32, args: &[&str]) -> String {
    let pid = pid.to_string();
    let mut all = vec!["nsenter", "-t", &pid, "-n", "--"];
    all.extend_from_slice(args);
    run(&all)
}

/// The cgroup id as the kernel exports it (`name_to_handle_at`, the id
/// `bpf_get_current_cgroup_id` returns), to check it against the inode
/// number the identity layer reads.
fn kernel_cgroup_id(dir: &Path) -> u64 {
    #[repr(C)]
    struct Handle {
        bytes: u32,
        ty: i32,
        id: [u8; 8],
    }
    let mut h = Handle {
        bytes: 8,
        ty: 0,
        id: [0; 8],
    };
    let mut mount_id = 0;
    let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: a handle buffer of the size announced in `bytes`.
    let r = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            (&mut h as *mut Handle).cast(),
            &mut mount_id,
            0,
        )
    };
    assert_eq!(
        r,
        0,
        "name_to_handle_at {}: {}",
        dir.display(),
        std::io::Error::last_os_error()
    );
    u64::from_ne_bytes(h.id)
}

/// The node namespace's interface counters (`/proc/thread-self/net/dev`:
/// this thread's namespace, which /sys/class/net is not).
fn net_dev() -> HashMap<String, IfaceCounters> {
    let text = fs::read_to_string("/proc/thread-self/net/dev").unwrap();
    let mut out = HashMap::new();
    for line in text.lines().skip(2) {
        let (name, rest) = line.split_once(':').unwrap();
        let v: Vec<u64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        let ifindex: u32 = fs_ifindex(name.trim());
        out.insert(
            name.trim().to_string(),
            IfaceCounters {
                ifindex,
                rx_bytes: v[0],
                rx_packets: v[1],
                tx_bytes: v[8],
                tx_packets: v[9],
            },
        );
    }
    out
}

fn fs_ifindex(name: &str) -> u32 {
    let c = CString::new(name).unwrap();
    // SAFETY: a NUL-terminated name; resolved in this thread's namespace.
    unsafe { libc::if_nametoindex(c.as_ptr()) }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Driver {
    Systemd,
    Cgroupfs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runtime {
    Containerd,
    CriO,
}

/// How a container's process joins its network namespace.
#[derive(Clone, Copy)]
enum Netns {
    New,
    Join(RawFd),
}

struct TestContainer {
    name: Option<&'static str>,
    id: String,
    dir: PathBuf,
    pid: u32,
}

struct TestPod {
    namespace: &'static str,
    name: &'static str,
    uid: String,
    host_if: String,
    /// The sandbox's (pause) pid: its namespace is the pod's.
    sandbox_pid: u32,
    containers: Vec<TestContainer>,
    /// Monitor processes (CRI-O's conmon): the pod's, no container's.
    monitor_pids: Vec<u32>,
    /// The pod's address; the node's end is `.1` of the same /24.
    addr: String,
}

/// A node: the test's host root, cgroup base directory and processes.
struct Node {
    tag: String,
    /// The temporary host root.
    root: PathBuf,
    /// This test's directory in the real cgroup hierarchy.
    base: PathBuf,
    /// Directories created under `base`, in creation order.
    dirs: Vec<PathBuf>,
    mounts: Vec<PathBuf>,
    children: Vec<Child>,
    /// The pods' /24s are 198.18.<net>.0.
    next_net: u32,
    next_id: u32,
    /// A named cgroup v1 hierarchy mounted by this test, if any.
    v1_name: Option<String>,
}

impl Node {
    /// A node whose cgroups are cgroup v2 directories.
    fn v2(test: &str) -> Node {
        let parent = PathBuf::from(cgroup2_mount());
        let mut n = Node::new(test, &parent);
        n.bind(&n.base.clone(), "sys/fs/cgroup");
        n
    }

    /// A hybrid node whose kubelet writes only a v1 hierarchy: a named
    /// one, mounted where a hybrid host has `name=systemd`, with no cgroup2
    /// under the host root.
    fn v1(test: &str) -> Node {
        let tag = format!("{BASE_PREFIX}{}-{test}", std::process::id());
        let mnt = std::env::temp_dir().join(format!("{tag}-v1"));
        fs::create_dir_all(&mnt).unwrap();
        let name = format!("np{}{test}", std::process::id());
        let c = CString::new(mnt.as_os_str().as_bytes()).unwrap();
        let opts = CString::new(format!("none,name={name}")).unwrap();
        // SAFETY: NUL-terminated strings; the mount is this thread's.
        let r = unsafe {
            libc::mount(
                c"cgroup".as_ptr(),
                c.as_ptr(),
                c"cgroup".as_ptr(),
                0,
                opts.as_ptr().cast(),
            )
        };
        assert_eq!(
            r,
            0,
            "mount cgroup v1 name={name}: {}",
            std::io::Error::last_os_error()
        );
        let mut n = Node::new(test, &mnt);
        n.mounts.insert(0, mnt);
        n.v1_name = Some(name);
        fs::create_dir_all(n.root.join("sys/fs/cgroup/systemd")).unwrap();
        n.bind(&n.base.clone(), "sys/fs/cgroup/systemd");
        // The hybrid host's unified hierarchy, holding no pod.
        let unified = Path::new(cgroup2_mount()).join(format!("{tag}-unified"));
        fs::create_dir(&unified).unwrap();
        n.dirs.insert(0, unified.clone());
        fs::create_dir_all(n.root.join("sys/fs/cgroup/unified")).unwrap();
        n.bind(&unified, "sys/fs/cgroup/unified");
        n
    }

    fn new(test: &str, cgroup_parent: &Path) -> Node {
        sweep_stale(cgroup_parent);
        let tag = format!("{BASE_PREFIX}{}-{test}", std::process::id());
        let root = std::env::temp_dir().join(format!("{tag}-root"));
        let _ = fs::remove_dir_all(&root);
        for d in [
            "proc",
            "sys/fs/cgroup",
            "var/log/pods",
            "var/log/containers",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        let base = cgroup_parent.join(&tag);
        fs::create_dir(&base).unwrap_or_else(|e| panic!("mkdir {}: {e}", base.display()));
        let mut n = Node {
            tag,
            root,
            base,
            dirs: Vec::new(),
            mounts: Vec::new(),
            children: Vec::new(),
            next_net: 1,
            next_id: 1,
            v1_name: None,
        };
        n.bind(Path::new("/proc"), "proc");
        n
    }

    fn bind(&mut self, from: &Path, to: &str) {
        let target = self.root.join(to);
        let (f, t) = (
            CString::new(from.as_os_str().as_bytes()).unwrap(),
            CString::new(target.as_os_str().as_bytes()).unwrap(),
        );
        // SAFETY: NUL-terminated paths; the mount is this thread's.
        let r = unsafe {
            libc::mount(
                f.as_ptr(),
                t.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            )
        };
        assert_eq!(r, 0, "bind {} on {}", from.display(), target.display());
        self.mounts.push(target);
    }

    fn config(&self, max_pods: usize) -> IdentityConfig {
        IdentityConfig {
            min_rescan_interval: Duration::ZERO,
            ..IdentityConfig::new(&self.root, max_pods)
        }
    }

    /// `mkdir -p` under the base, remembering what it created.
    fn mkdirs(&mut self, rel: &str) -> PathBuf {
        let mut p = self.base.clone();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            p = p.join(c);
            if !p.exists() {
                fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                self.dirs.push(p.clone());
            }
        }
        p
    }

    /// A unique 64-hex container id.
    fn container_id(&mut self) -> String {
        self.next_id += 1;
        format!(
            "{:016x}{:048x}",
            std::process::id(),
            u64::from(self.next_id) << 8 | 0xc
        )
    }

    /// A unique pod uid.
    fn pod_uid(&mut self) -> String {
        self.next_id += 1;
        format!(
            "{:08x}-0000-4000-8000-{:012x}",
            std::process::id(),
            self.next_id
        )
    }

    /// Starts `argv` inside cgroup `dir` and the given network namespace,
    /// both joined before `exec` as a runtime does.
    fn spawn_in(&mut self, dir: &Path, netns: Netns, argv: &[&str]) -> u32 {
        let procs = CString::new(dir.join("cgroup.procs").as_os_str().as_bytes()).unwrap();
        let mut cmd = Command::new(argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec; the
        // strings were built before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let w = libc::write(fd, b"0".as_ptr().cast(), 1);
                libc::close(fd);
                if w != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                let r = match netns {
                    Netns::New => libc::unshare(libc::CLONE_NEWNET),
                    Netns::Join(fd) => libc::setns(fd, libc::CLONE_NEWNET),
                };
                if r != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {argv:?} in {}: {e}", dir.display()));
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// A network namespace with no pod in it, joined to the node by a
    /// veth pair whose host end is `host_if`; returns its holder's pid.
    fn sandbox_netns(&mut self, dir: &Path, host_if: &str) -> u32 {
        let pid = self.spawn_in(dir, Netns::New, &["sleep", "600"]);
        // The veth needs the namespace, which exists once unshare ran.
        wait_until("sandbox namespace", || {
            fs::read_link(format!("/proc/{pid}/ns/net")).ok()
                != fs::read_link("/proc/thread-self/ns/net").ok()
        });
        let p = pid.to_string();
        run(&[
            "ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", &p,
        ]);
        run(&["ip", "link", "set", host_if, "up"]);
        pid
    }

    /// A pod as the kubelet and its runtime lay it out: the pod cgroup, a
    /// sandbox container holding the network namespace (veth pair to the
    /// node, addresses), the containers, the log layout.
    fn add_pod(
        &mut self,
        driver: Driver,
        runtime: Runtime,
        qos: &str,
        (namespace, name): (&'static str, &'static str),
        containers: &[(&'static str, &[&str])],
    ) -> TestPod {
        let uid = self.pod_uid();
        let pod_rel = match (driver, qos) {
            (Driver::Systemd, "guaranteed") => {
                format!("kubepods.slice/kubepods-pod{}.slice", uid.replace('-', "_"))
            }
            (Driver::Systemd, q) => format!(
                "kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{}.slice",
                uid.replace('-', "_")
            ),
            (Driver::Cgroupfs, "guaranteed") => format!("kubepods/pod{uid}"),
            (Driver::Cgroupfs, q) => format!("kubepods/{q}/pod{uid}"),
        };
        self.mkdirs(&pod_rel);
        let scope = |id: &str| match (driver, runtime) {
            (Driver::Systemd, Runtime::Containerd) => format!("cri-containerd-{id}.scope"),
            (Driver::Systemd, Runtime::CriO) => format!("crio-{id}.scope"),
            (Driver::Cgroupfs, Runtime::Containerd) => id.to_string(),
            (Driver::Cgroupfs, Runtime::CriO) => format!("crio-{id}"),
        };
        let net = self.next_net;
        self.next_net += 1;
        let host_if = format!("np{}{}", std::process::id() % 100_000, net);
        let sandbox_id = self.container_id();
        let sandbox_dir = self.mkdirs(&format!("{pod_rel}/{}", scope(&sandbox_id)));
        let sandbox_pid = self.sandbox_netns(&sandbox_dir, &host_if);
        let addr = format!("198.18.{net}.2");
        run(&[
            "ip",
            "addr",
            "add",
            &format!("198.18.{net}.1/24"),
            "dev",
            &host_if,
        ]);
        run_in(
            sandbox_pid,
            &["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"],
        );
        run_in(sandbox_pid, &["ip", "link", "set", "eth0", "up"]);
        run_in(sandbox_pid, &["ip", "link", "set", "lo", "up"]);

        let mut monitor_pids = Vec::new();
        if runtime == Runtime::CriO && driver == Driver::Systemd {
            // conmon, in the pod's cgroup but no container's.
            let dir = self.mkdirs(&format!("{pod_rel}/crio-conmon-{sandbox_id}.scope"));
            let fd = ns_fd(sandbox_pid);
            monitor_pids.push(self.spawn_in(&dir, Netns::Join(fd.as_raw_fd()), &["sleep", "600"]));
        }
        let mut out = vec![TestContainer {
            name: None,
            id: sandbox_id,
            dir: sandbox_dir,
            pid: sandbox_pid,
        }];
        let pod_dir_name = format!("{namespace}_{name}_{uid}");
        for &(cname, argv) in containers {
            let id = self.container_id();
            let dir = self.mkdirs(&format!("{pod_rel}/{}", scope(&id)));
            let fd = ns_fd(sandbox_pid);
            let pid = self.spawn_in(&dir, Netns::Join(fd.as_raw_fd()), argv);
            // The kubelet's log layout.
            let logdir = self
                .root
                .join("var/log/pods")
                .join(&pod_dir_name)
                .join(cname);
            fs::create_dir_all(&logdir).unwrap();
            fs::write(logdir.join("0.log"), "").unwrap();
            std::os::unix::fs::symlink(
                format!("/var/log/pods/{pod_dir_name}/{cname}/0.log"),
                self.root
                    .join("var/log/containers")
                    .join(format!("{name}_{namespace}_{cname}-{id}.log")),
            )
            .unwrap();
            out.push(TestContainer {
                name: Some(cname),
                id,
                dir,
                pid,
            });
        }
        TestPod {
            namespace,
            name,
            uid,
            host_if,
            sandbox_pid,
            containers: out,
            monitor_pids,
            addr,
        }
    }

    /// Deletes a pod as the kubelet does: its processes are killed (so its
    /// network namespace and the veth go), then its cgroups removed.
    fn delete_pod(&mut self, pod: &TestPod) {
        let pids: Vec<u32> = pod
            .containers
            .iter()
            .map(|c| c.pid)
            .chain(pod.monitor_pids.iter().copied())
            .collect();
        for c in self.children.iter_mut().filter(|c| pids.contains(&c.id())) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.retain(|c| !pids.contains(&c.id()));
        wait_until("the pod's veth to go with its namespace", || {
            fs_ifindex(&pod.host_if) == 0
        });
        let pod_dir = pod.containers[0].dir.parent().unwrap().to_path_buf();
        let mine: Vec<PathBuf> = self
            .dirs
            .iter()
            .filter(|d| d.starts_with(&pod_dir))
            .cloned()
            .collect();
        for d in mine.iter().rev() {
            rmdir_retry(d);
        }
        self.dirs.retain(|d| !d.starts_with(&pod_dir));
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.dirs.iter().rev() {
            rmdir_retry(d);
        }
        rmdir_retry(&self.base);
        // The host root's mounts first, then the v1 hierarchy's (first).
        for m in self.mounts.iter().rev() {
            let c = CString::new(m.as_os_str().as_bytes()).unwrap();
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
        if let Some(v1) = self.mounts.first().filter(|_| self.v1_name.is_some()) {
            let _ = fs::remove_dir(v1);
        }
        // Only once nothing is mounted below it.
        let mounts = fs::read_to_string("/proc/thread-self/mounts").unwrap_or_default();
        let root = self.root.to_string_lossy().into_owned();
        if !mounts.contains(&root) {
            let _ = fs::remove_dir_all(&self.root);
        } else {
            eprintln!("{}: left {root}: still mounted", self.tag);
        }
    }
}

/// A cgroup is removable once its last process is reaped, which can lag
/// the kill by a moment.
fn rmdir_retry(d: &Path) {
    for _ in 0..50 {
        match fs::remove_dir(d) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    eprintln!("could not remove cgroup {}", d.display());
}

/// Removes cgroup directories that runs killed outright left (their pid is
/// gone), deepest first; populated ones stay.
fn sweep_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(BASE_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let mut dirs = Vec::new();
        let mut stack = vec![e.path()];
        while let Some(d) = stack.pop() {
            for c in fs::read_dir(&d).into_iter().flatten().flatten() {
                if c.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(c.path());
                }
            }
            dirs.push(d);
        }
        for d in dirs.iter().rev() {
            let _ = fs::remove_dir(d);
        }
    }
}

fn ns_fd(pid: u32) -> fs::File {
    fs::File::open(format!("/proc/{pid}/ns/net")).unwrap()
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Bounded traffic: `count` pings from the pod to the node's end.
fn ping_from(pod: &TestPod, count: u32) {
    let (net, _) = pod.addr.rsplit_once('.').unwrap();
    let node = format!("{net}.1");
    let c = count.to_string();
    run_in(
        pod.sandbox_pid,
        &["ping", "-q", "-c", &c, "-i", "0.05", "-w", "5", &node],
    );
}

fn pod_of<'a>(ix: &'a PodIndex, p: &TestPod) -> &'a PodInfo {
    ix.by_uid(&p.uid)
        .unwrap_or_else(|| panic!("pod {} ({}) not resolved: {:#?}", p.name, p.uid, ix.pods))
}

/// Every pod, container and interface of `pods` resolved as laid out.
fn assert_resolved(ix: &PodIndex, pods: &[&TestPod], runtime: &str, v2: bool) {
    for p in pods {
        let info = pod_of(ix, p);
        assert_eq!(
            (info.namespace.as_str(), info.pod.as_str()),
            (p.namespace, p.name)
        );
        assert_eq!(info.source, "kubernetes");
        assert!(!info.overflow);
        let ifs: Vec<&str> = info.interfaces.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(ifs, [p.host_if.as_str()], "{}'s interfaces", p.name);
        assert_eq!(info.interfaces[0].kind.as_deref(), Some("veth"));
        assert_eq!(
            ix.by_ifindex(fs_ifindex(&p.host_if)).map(|x| &x.uid),
            Some(&p.uid)
        );
        assert_eq!(
            info.containers.len(),
            p.containers.len(),
            "{}'s containers",
            p.name
        );
        for c in &p.containers {
            let ci = info
                .containers
                .iter()
                .find(|x| x.id == c.id)
                .unwrap_or_else(|| panic!("container {} of {} missing", c.id, p.name));
            assert_eq!(ci.name.as_deref(), c.name, "container {}", c.id);
            assert_eq!(ci.runtime, runtime);
            if v2 {
                // The inode the walk read is the kernel's cgroup id.
                assert_eq!(ci.cgroup_ids, [kernel_cgroup_id(&c.dir)]);
                assert!(
                    matches!(ix.by_cgroup(ci.cgroup_ids[0]), Lookup::Pod(x, Some(y)) if x.uid == p.uid && y.id == c.id)
                );
            } else {
                assert!(ci.cgroup_ids.is_empty(), "v1 ids are not the probes'");
            }
            assert!(
                matches!(ix.by_pid(c.pid), Lookup::Pod(x, Some(y)) if x.uid == p.uid && y.id == c.id),
                "pid {} of {}/{}",
                c.pid,
                p.name,
                c.id
            );
        }
        for &m in &p.monitor_pids {
            assert!(matches!(ix.by_pid(m), Lookup::Pod(x, None) if x.uid == p.uid));
        }
    }
}

/// The pids holding TCP connections in `pod`'s namespace, as `ss -p`
/// reports them.
fn tcp_owner_pids(pod: &TestPod) -> Vec<u32> {
    let out = run_in(pod.sandbox_pid, &["ss", "-tnpH", "state", "established"]);
    out.split("pid=")
        .skip(1)
        .filter_map(|s| s.split(',').next()?.parse().ok())
        .collect()
}

fn kubelet_node(driver: Driver, test: &'static str) {
    on_node(test, move || {
        let mut node = Node::v2(test);
        let listener = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let web = node.add_pod(
            driver,
            Runtime::Containerd,
            "burstable",
            ("shop", "web"),
            &[
                (
                    "nginx",
                    &[
                        "bash",
                        "-c",
                        &format!("exec 3<>/dev/tcp/198.18.1.1/{port}; exec sleep 600"),
                    ],
                ),
                ("istio-proxy", &["sleep", "600"]),
            ],
        );
        let db = node.add_pod(
            driver,
            Runtime::Containerd,
            "besteffort",
            ("data", "pg-0"),
            &[("postgres", &["sleep", "600"])],
        );
        let api = node.add_pod(
            driver,
            Runtime::CriO,
            "guaranteed",
            ("shop", "api"),
            &[("app", &["sleep", "600"])],
        );
        // Unmappable: a namespace holding no pod's process, a veth pair
        // with both ends on the node; a bridge is no pair end at all.
        let host_dir = node.mkdirs("system.slice/stray.service");
        let stray = format!("nps{}", std::process::id() % 100_000);
        node.sandbox_netns(&host_dir, &stray);
        let (pair_a, pair_b) = (
            format!("npa{}", std::process::id() % 100_000),
            format!("npb{}", std::process::id() % 100_000),
        );
        run(&[
            "ip", "link", "add", &pair_a, "type", "veth", "peer", "name", &pair_b,
        ]);
        let bridge = format!("npbr{}", std::process::id() % 100_000);
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);

        // The namespace-id question on its own: a pod's sandbox has an id
        // here (its veth's peer); the machine's namespace (this process's
        // main thread), which no link of the node's leads to, and a pid
        // that does not exist have none.
        let mut route = RouteSocket::open().unwrap();
        let links = route.links().unwrap();
        let nsid = route.nsid_of_pid(web.sandbox_pid).unwrap();
        assert!(nsid.is_some());
        let veth = links.iter().find(|l| l.name == web.host_if).unwrap();
        assert_eq!(veth.link_netnsid, nsid);
        assert_eq!(route.nsid_of_pid(std::process::id()).unwrap(), None);
        assert_eq!(route.nsid_of_pid(1 << 30).unwrap(), None, "no such pid");

        let mut id = PodIdentity::new(node.config(256)).unwrap();
        assert!(
            id.refresh(RefreshHints::default()).unwrap(),
            "first refresh"
        );
        let started = Instant::now();
        assert!(
            !id.refresh(RefreshHints::default()).unwrap(),
            "nothing changed: no refresh"
        );
        let idle = started.elapsed();
        let crio = "cri-o";
        let containerd = if driver == Driver::Systemd {
            "containerd"
        } else {
            "cri"
        };
        let ix = id.index();
        assert_eq!(ix.pods.len(), 3, "{:#?}", ix.pods);
        assert_resolved(ix, &[&web, &db], containerd, true);
        assert_resolved(ix, &[&api], crio, true);
        let stats = id.stats();
        assert!(stats.cgroup_v2 && !stats.truncated, "{stats:?}");
        assert_eq!(stats.pods_without_visible_process, 0);
        assert!(stats.watched_dirs >= 4, "{stats:?}");

        let unmapped: HashMap<&str, &str> = ix
            .unmapped_interfaces
            .iter()
            .map(|u| (u.name.as_str(), u.reason))
            .collect();
        assert_eq!(
            unmapped.get(stray.as_str()),
            Some(&NO_POD_IN_PEER_NAMESPACE)
        );
        assert_eq!(unmapped.get(pair_a.as_str()), Some(&PEER_IN_HOST_NAMESPACE));
        assert_eq!(unmapped.get(pair_b.as_str()), Some(&PEER_IN_HOST_NAMESPACE));
        assert_eq!(unmapped.len(), 3, "{unmapped:?}");
        for i in [&stray, &pair_a, &bridge] {
            assert!(ix.by_ifindex(fs_ifindex(i)).is_none(), "{i} stays plain");
        }

        // Traffic and connections land on the right pod. Web's nginx holds
        // a connection to the node; ss names its pid.
        ping_from(&web, 7);
        ping_from(&db, 3);
        let owners = tcp_owner_pids(&web);
        assert_eq!(owners, [web.containers[1].pid], "ss -p in web's namespace");
        // A process started in a container after the refresh: found through
        // its /proc/PID/cgroup.
        let late_dir = web.containers[2].dir.clone();
        let fd = ns_fd(web.sandbox_pid);
        let late = node.spawn_in(&late_dir, Netns::Join(fd.as_raw_fd()), &["sleep", "600"]);
        assert_eq!(id.index().by_pid(late), Lookup::Unknown);
        assert_eq!(id.learn_pids([late, std::process::id()]), 2);
        assert!(
            matches!(id.index().by_pid(late), Lookup::Pod(p, Some(c)) if p.uid == web.uid && c.id == web.containers[2].id)
        );
        assert_eq!(id.index().by_pid(std::process::id()), Lookup::NotAPod);

        let dev = net_dev();
        let ifaces: Vec<IfaceCounters> = dev.values().copied().collect();
        let conns = [
            ConnRecord {
                pid: owners[0],
                opened: Some(Opened::Active),
                rtt_seconds: Some(0.001),
                ..ConnRecord::default()
            },
            ConnRecord {
                pid: late,
                failed: true,
                ..ConnRecord::default()
            },
            ConnRecord {
                cgroup_id: kernel_cgroup_id(&db.containers[1].dir),
                opened: Some(Opened::Passive),
                retransmits: 3,
                ..ConnRecord::default()
            },
            ConnRecord {
                pid: std::process::id(),
                opened: Some(Opened::Active),
                ..ConnRecord::default()
            },
        ];
        let ledger = aggregate(id.index(), &ifaces, &conns, &PodLedger::default());
        let rows = ledger.rows(id.index());
        assert_eq!(rows.len(), 3, "three pods, no _other");
        for p in [&web, &db, &api] {
            let t = &rows.iter().find(|r| r.pod == p.name).unwrap().totals;
            let k = &dev[&p.host_if];
            assert_eq!(
                (
                    t.sent_bytes,
                    t.sent_packets,
                    t.received_bytes,
                    t.received_packets
                ),
                (k.rx_bytes, k.rx_packets, k.tx_bytes, k.tx_packets),
                "{}: the host veth's kernel counters, seen from the pod",
                p.name
            );
        }
        let t = |name: &str| rows.iter().find(|r| r.pod == name).unwrap().totals;
        assert!(t("web").sent_packets >= 7 && t("pg-0").sent_packets >= 3);
        assert_eq!((t("web").tcp_opens_active, t("web").tcp_failed), (1, 1));
        assert_eq!(
            (t("pg-0").tcp_opens_passive, t("pg-0").tcp_retransmits),
            (1, 3)
        );
        assert_eq!(t("api").tcp_opens_active + t("api").tcp_opens_passive, 0);
        assert_eq!((ledger.host_records_total, ledger.unknown_owners), (1, 0));

        // A new pod: its cgroups alone (inotify) prompt the next refresh.
        let cache = node.add_pod(
            driver,
            Runtime::Containerd,
            "burstable",
            ("shop", "cache"),
            &[("redis", &["sleep", "600"])],
        );
        assert!(id.refresh(RefreshHints::default()).unwrap(), "cgroup watch");
        assert_resolved(id.index(), &[&cache], containerd, true);

        // db is deleted: gone at the next refresh, with its interface.
        let db_if = fs_ifindex(&db.host_if);
        node.delete_pod(&db);
        assert!(id.refresh(RefreshHints::default()).unwrap(), "cgroup watch");
        let ix = id.index();
        assert!(ix.by_uid(&db.uid).is_none(), "deleted pod still listed");
        assert!(ix.by_ifindex(db_if).is_none());
        assert!(ix.unmapped_interfaces.iter().all(|u| u.name != db.host_if));
        assert_eq!(ix.pods.len(), 3);
        assert_resolved(ix, &[&web, &cache], containerd, true);
        let ledger = aggregate(ix, &[], &[], &ledger);
        assert!(ledger.rows(ix).iter().all(|r| r.pod != "pg-0"));
        eprintln!(
            "{test}: last refresh {:.2} ms, idle refresh {:.1} µs",
            id.stats().last_refresh_duration_seconds * 1e3,
            idle.as_secs_f64() * 1e6
        );
        drop(listener);
    })
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn kubelet_systemd_driver_pods_resolve() {
    kubelet_node(Driver::Systemd, "sd");
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn kubelet_cgroupfs_driver_pods_resolve() {
    kubelet_node(Driver::Cgroupfs, "cf");
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn max_pods_two_of_three_puts_the_third_in_other() {
    on_node("mp", || {
        let mut node = Node::v2("mp");
        let pods: Vec<TestPod> = [("a", "one"), ("a", "two"), ("b", "three")]
            .into_iter()
            .map(|n| {
                node.add_pod(
                    Driver::Systemd,
                    Runtime::Containerd,
                    "besteffort",
                    n,
                    &[("c", &["sleep", "600"])],
                )
            })
            .collect();
        let mut id = PodIdentity::new(node.config(2)).unwrap();
        id.refresh(RefreshHints::default()).unwrap();
        let ix = id.index();
        let labels: Vec<_> = ix.pods.iter().map(|p| p.labels()).collect();
        assert_eq!(labels, [("a", "one"), ("a", "two"), (OTHER, OTHER)]);
        assert!(pod_of(ix, &pods[2]).overflow, "the newest pod overflows");
        for (i, p) in pods.iter().enumerate() {
            ping_from(p, 2 + i as u32);
        }
        let dev = net_dev();
        let ifaces: Vec<IfaceCounters> = dev.values().copied().collect();
        let conns = [ConnRecord {
            pid: pods[2].containers[1].pid,
            opened: Some(Opened::Active),
            ..ConnRecord::default()
        }];
        let ledger = aggregate(ix, &ifaces, &conns, &PodLedger::default());
        let rows = ledger.rows(ix);
        assert_eq!(rows.len(), 3);
        let other = rows.iter().find(|r| r.pod == OTHER).unwrap();
        let third = &dev[&pods[2].host_if];
        assert_eq!(
            (other.totals.sent_bytes, other.totals.received_bytes),
            (third.rx_bytes, third.tx_bytes)
        );
        assert_eq!(other.totals.tcp_opens_active, 1);
        let all: u64 = pods.iter().map(|p| dev[&p.host_if].rx_bytes).sum();
        let rows_sum: u64 = rows.iter().map(|r| r.totals.sent_bytes).sum();
        assert_eq!(rows_sum, all, "totals intact");
    })
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn plain_containers_without_kubernetes() {
    on_node("pc", || {
        let mut node = Node::v2("pc");
        // Docker (systemd and cgroupfs drivers) and rootful Podman, each
        // with its own namespace and veth, and no kubelet layout at all.
        fs::remove_dir_all(node.root.join("var/log")).unwrap();
        let mut made = Vec::new();
        for (i, (rel, runtime, name)) in [
            ("system.slice/docker-{id}.scope", "docker", Some("web")),
            ("docker/{id}", "docker", Some("db")),
            ("machine.slice/libpod-{id}.scope", "podman", Some("cache")),
            ("system.slice/docker-{id}.scope", "docker", None),
        ]
        .into_iter()
        .enumerate()
        {
            let id = node.container_id();
            let dir = node.mkdirs(&rel.replace("{id}", &id));
            let host_if = format!("npc{}{i}", std::process::id() % 100_000);
            let pid = node.sandbox_netns(&dir, &host_if);
            match (runtime, name) {
                ("docker", Some(n)) => {
                    let d = node.root.join("var/lib/docker/containers").join(&id);
                    fs::create_dir_all(&d).unwrap();
                    fs::write(
                        d.join("config.v2.json"),
                        format!(r#"{{"ID":"{id}","Name":"/{n}","State":{{"Running":true}}}}"#),
                    )
                    .unwrap();
                }
                ("podman", Some(n)) => {
                    let f = node
                        .root
                        .join("var/lib/containers/storage/overlay-containers/containers.json");
                    fs::create_dir_all(f.parent().unwrap()).unwrap();
                    fs::write(f, format!(r#"[{{"id":"{id}","names":["{n}"]}}]"#)).unwrap();
                }
                _ => {} // a container whose state is unreadable
            }
            made.push((id, dir, host_if, runtime, name, pid));
        }
        let mut id = PodIdentity::new(node.config(256)).unwrap();
        id.refresh(RefreshHints::default()).unwrap();
        let ix = id.index();
        assert_eq!(ix.pods.len(), 4, "{:#?}", ix.pods);
        for (cid, dir, host_if, runtime, name, pid) in &made {
            let p = ix.by_uid(cid).unwrap();
            let shown = name.map_or(cid[..12].to_string(), str::to_string);
            assert_eq!((p.namespace.as_str(), p.pod.as_str()), ("", shown.as_str()));
            assert_eq!(p.source, *runtime);
            assert_eq!(p.containers.len(), 1);
            assert_eq!(p.containers[0].name.as_deref(), *name);
            assert_eq!(p.containers[0].cgroup_ids, [kernel_cgroup_id(dir)]);
            assert_eq!(p.interfaces.len(), 1);
            assert_eq!(&p.interfaces[0].name, host_if);
            assert!(matches!(ix.by_pid(*pid), Lookup::Pod(x, Some(_)) if &x.uid == cid));
        }
    })
}

#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn hybrid_host_with_pods_only_in_cgroup_v1() {
    on_node("v1", || {
        let mut node = Node::v1("v1");
        let web = node.add_pod(
            Driver::Cgroupfs,
            Runtime::Containerd,
            "burstable",
            ("shop", "web"),
            &[("nginx", &["sleep", "600"])],
        );
        let mut id = PodIdentity::new(node.config(256)).unwrap();
        id.refresh(RefreshHints::default()).unwrap();
        assert!(!id.stats().cgroup_v2, "{:?}", id.stats());
        assert_resolved(id.index(), &[&web], "cri", false);
        // The probes' ids are v2 ids: a host cgroup's is known, no pod's,
        // so connections fall back to their pid instead of asking for a
        // refresh every time.
        let unified = id
            .stats()
            .hierarchy
            .clone()
            .unwrap()
            .replace("/systemd", "/unified");
        let host_id = kernel_cgroup_id(Path::new(&unified));
        assert_eq!(id.index().by_cgroup(host_id), Lookup::NotAPod);
        // /proc/PID/cgroup names the pod on the v1 line only.
        let text = fs::read_to_string(format!("/proc/{}/cgroup", web.containers[1].pid)).unwrap();
        let name = node.v1_name.clone().unwrap();
        assert!(text.contains(&format!(":name={name}:/")), "{text}");
    })
}

/// Refresh cost with 100 pods' worth of layout (a sandbox and a container
/// each, a veth per pod); prints the figures docs/kubernetes.md quotes.
#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn hundred_pods_refresh_cost() {
    on_node("hp", || {
        const PODS: usize = 100;
        let mut node = Node::v2("hp");
        let mut uids = Vec::new();
        let mut batch = String::new();
        let mut host_ifs = Vec::new();
        for i in 0..PODS {
            let uid = node.pod_uid();
            let pod = format!(
                "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
                uid.replace('-', "_")
            );
            let (sid, cid) = (node.container_id(), node.container_id());
            let sdir = node.mkdirs(&format!("{pod}/cri-containerd-{sid}.scope"));
            let cdir = node.mkdirs(&format!("{pod}/cri-containerd-{cid}.scope"));
            let spid = node.spawn_in(&sdir, Netns::New, &["sleep", "600"]);
            wait_until("sandbox namespace", || {
                fs::read_link(format!("/proc/{spid}/ns/net")).ok()
                    != fs::read_link("/proc/thread-self/ns/net").ok()
            });
            let fd = ns_fd(spid);
            node.spawn_in(&cdir, Netns::Join(fd.as_raw_fd()), &["sleep", "600"]);
            let host_if = format!("nph{}x{i}", std::process::id() % 10_000);
            batch += &format!("link add {host_if} type veth peer name eth0 netns {spid}\n");
            host_ifs.push(host_if);
            let pd = format!("ns{}_pod-{i}_{uid}", i % 7);
            fs::create_dir_all(node.root.join("var/log/pods").join(&pd).join("app")).unwrap();
            std::os::unix::fs::symlink(
                format!("/var/log/pods/{pd}/app/0.log"),
                node.root
                    .join("var/log/containers")
                    .join(format!("pod-{i}_ns{}_app-{cid}.log", i % 7)),
            )
            .unwrap();
            uids.push(uid);
        }
        let f = std::env::temp_dir().join(format!("{}-batch", node.tag));
        fs::write(&f, batch).unwrap();
        run(&["ip", "-batch", f.to_str().unwrap()]);
        fs::remove_file(&f).unwrap();

        let mut id = PodIdentity::new(node.config(256)).unwrap();
        let mut times = Vec::new();
        for _ in 0..5 {
            id.invalidate();
            let t = Instant::now();
            assert!(id.refresh(RefreshHints::default()).unwrap());
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let t = Instant::now();
        for _ in 0..1000 {
            assert!(!id.refresh(RefreshHints::default()).unwrap());
        }
        let idle_us = t.elapsed().as_secs_f64() * 1e3;
        let ix = id.index();
        assert_eq!(ix.pods.len(), PODS);
        for (uid, host_if) in uids.iter().zip(&host_ifs) {
            let p = ix.by_uid(uid).unwrap();
            assert_eq!(p.interfaces.len(), 1);
            assert_eq!(&p.interfaces[0].name, host_if);
            assert_eq!(p.containers.len(), 2);
        }
        times.sort_by(f64::total_cmp);
        eprintln!(
            "identity refresh with {PODS} pods ({} cgroups walked, {} watched): median {:.2} ms, \
             min {:.2} ms, max {:.2} ms; refresh with nothing changed {:.2} µs",
            id.stats().cgroups_walked,
            id.stats().watched_dirs,
            times[2],
            times[0],
            times[4],
            idle_us
        );
    })
}

/// Keeps only `caps` (bit numbers) in this thread's effective and
/// permitted sets.
fn keep_only_capabilities(caps: &[u32]) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut data = [Data::default(); 2];
    for &c in caps {
        let d = &mut data[(c / 32) as usize];
        d.effective |= 1 << (c % 32);
        d.permitted |= 1 << (c % 32);
    }
    let hdr = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    // SAFETY: a version-3 header and its two data words; capset changes
    // only this thread's capabilities.
    let r = unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) };
    assert_eq!(r, 0, "capset: {}", std::io::Error::last_os_error());
}

/// The identity layer works with exactly the capabilities deploy/agent.yaml
/// grants (BPF, PERFMON, NET_ADMIN), while the other way to a pod's
/// namespace, /proc/PID/ns/net, is refused without CAP_SYS_PTRACE.
#[test]
#[ignore = "kernel tier: loads BPF programs as root; build/test.sh runs it, or: sudo -E cargo test -- --ignored"]
fn identity_needs_only_the_manifests_capabilities() {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_PERFMON: u32 = 38;
    const CAP_BPF: u32 = 39;
    on_node("cp", || {
        let mut node = Node::v2("cp");
        let web = node.add_pod(
            Driver::Systemd,
            Runtime::Containerd,
            "burstable",
            ("shop", "web"),
            &[("nginx", &["sleep", "600"])],
        );
        let config = node.config(256);
        let pid = web.containers[1].pid;
        // A thread of the node's namespaces (threads share the creating
        // thread's) whose capabilities are the manifest's.
        let (index, ns_link) = std::thread::spawn(move || {
            keep_only_capabilities(&[CAP_NET_ADMIN, CAP_PERFMON, CAP_BPF]);
            let status = fs::read_to_string("/proc/thread-self/status").unwrap();
            assert!(status.contains("CapEff:\t000000c000001000"), "{status}");
            let ns_link = fs::read_link(format!("/proc/{pid}/ns/net")).map_err(|e| e.kind());
            let mut id = PodIdentity::new(config).unwrap();
            id.refresh(RefreshHints::default()).unwrap();
            (id.index().clone(), ns_link)
        })
        .join()
        .unwrap();
        assert_eq!(ns_link, Err(std::io::ErrorKind::PermissionDenied));
        assert_resolved(&index, &[&web], "containerd", true);
    })
}
