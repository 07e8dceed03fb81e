//! What a cgroup path says about its owner: the pod uid and container id
//! that the kubelet and the container runtimes write into the names of the
//! cgroups they create. Pure text parsing, tested on literal paths.
//!
//! | who | path |
//! |---|---|
//! | kubelet, systemd driver | `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope` (uid with `_` for `-`; Guaranteed pods sit directly under `kubepods.slice`) |
//! | kubelet, cgroupfs driver | `kubepods/<qos>/pod<uid>/<id>` (Guaranteed: `kubepods/pod<uid>/<id>`) |
//! | CRI-O | `crio-<id>.scope` (systemd), `crio-<id>` (cgroupfs); `crio-conmon-<id>.scope` is its monitor, not the container |
//! | Docker | `docker-<id>.scope` (systemd), `/docker/<id>` (cgroupfs) |
//! | Podman | `libpod-<id>.scope` (systemd), `libpod_parent/libpod-<id>` (cgroupfs); `libpod-conmon-<id>.scope` is its monitor |
//!
//! Anything below a container's cgroup belongs to that container (a runtime
//! or systemd inside the container may create sub-cgroups). A path seen
//! from inside a cgroup namespace starts with `/..` components; they are
//! skipped, and a cgroupfs `pod<uid>` is then accepted without its
//! `kubepods` ancestor, which the namespace hides.

use std::fmt;

/// The runtime that named a container's cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    Containerd,
    CriO,
    Docker,
    Podman,
    /// A bare 64-hex id under a kubelet cgroupfs pod: containerd names its
    /// cgroups so there, but the name does not say which runtime it was.
    Cri,
}

impl Runtime {
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
            Runtime::Cri => "cri",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A container as its cgroup names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerRef {
    pub runtime: Runtime,
    /// 64 lower-case hex digits, as the runtime's own tools print it.
    pub id: String,
}

/// Who a cgroup belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupOwner {
    /// A Kubernetes pod's cgroup, or one of its containers' (`None`: the
    /// pod's own cgroup, or a runtime monitor such as CRI-O's conmon).
    Pod {
        uid: String,
        container: Option<ContainerRef>,
    },
    /// A container outside Kubernetes (Docker, Podman).
    Container(ContainerRef),
}

impl CgroupOwner {
    pub fn container(&self) -> Option<&ContainerRef> {
        match self {
            CgroupOwner::Pod { container, .. } => container.as_ref(),
            CgroupOwner::Container(c) => Some(c),
        }
    }
}

/// Parses a cgroup path (as in `/proc/PID/cgroup`, or relative to the
/// hierarchy's root); `None` when it names no pod and no container.
pub fn parse_path(path: &str) -> Option<CgroupOwner> {
    let mut pod: Option<String> = None;
    let mut seen_kubepods = false;
    // Components hidden by a cgroup namespace (`/../..`).
    let mut relative = false;
    let mut parent = "";
    for c in path.split('/') {
        match c {
            "" | "." => continue,
            ".." => {
                relative = true;
                continue;
            }
            _ => {}
        }
        if pod.is_none() {
            if let Some(uid) = pod_component(c, seen_kubepods || relative) {
                pod = Some(uid);
                parent = c;
                continue;
            }
        }
        match container_component(c, parent, pod.is_some()) {
            Component::Container(container) => {
                return Some(match pod {
                    Some(uid) => CgroupOwner::Pod {
                        uid,
                        container: Some(container),
                    },
                    None => CgroupOwner::Container(container),
                });
            }
            // A monitor's cgroup: the pod's, but no container's; nothing
            // below it is a container either.
            Component::Monitor => break,
            Component::Other => {}
        }
        seen_kubepods |= c.contains("kubepods");
        parent = c;
    }
    pod.map(|uid| CgroupOwner::Pod {
        uid,
        container: None,
    })
}

/// The pod uid in a pod cgroup's name: `kubepods-<qos>-pod<uid>.slice`
/// (systemd: `_` stands for `-`) or `pod<uid>` (cgroupfs, which needs a
/// `kubepods` ancestor or a namespace-relative path).
fn pod_component(c: &str, cgroupfs_ok: bool) -> Option<String> {
    if let Some(stem) = c.strip_suffix(".slice") {
        let (prefix, uid) = stem.rsplit_once("-pod")?;
        if !prefix.contains("kubepods") {
            return None;
        }
        let uid = uid.replace('_', "-");
        return is_pod_uid(&uid).then_some(uid);
    }
    let uid = c.strip_prefix("pod")?;
    (cgroupfs_ok && is_pod_uid(uid)).then(|| uid.to_string())
}

/// A UUID (`8-4-4-4-12` hex), or the 32-hex hash the kubelet gives static
/// pods.
fn is_pod_uid(s: &str) -> bool {
    let hex = s.bytes().filter(|b| b.is_ascii_hexdigit()).count();
    s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') && hex == 32 && s.len() <= 36
}

enum Component {
    Container(ContainerRef),
    Monitor,
    Other,
}

fn container_component(c: &str, parent: &str, in_pod: bool) -> Component {
    let scope = c.strip_suffix(".scope");
    let forms: [(Option<&str>, &str, Runtime); 4] = [
        (scope, "cri-containerd-", Runtime::Containerd),
        (Some(c), "crio-", Runtime::CriO),
        (scope, "docker-", Runtime::Docker),
        (Some(c), "libpod-", Runtime::Podman),
    ];
    for (name, prefix, runtime) in forms {
        let Some(rest) = name.and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        // crio-<id>.scope (systemd) and crio-<id> (cgroupfs); likewise libpod.
        let rest = rest.strip_suffix(".scope").unwrap_or(rest);
        if rest.strip_prefix("conmon-").is_some_and(is_container_id) {
            return Component::Monitor;
        }
        if is_container_id(rest) {
            return Component::Container(ContainerRef {
                runtime,
                id: rest.to_string(),
            });
        }
    }
    // A bare id: containerd under a kubelet cgroupfs pod, or Docker's
    // cgroupfs driver (`/docker/<id>`).
    if is_container_id(c) {
        if in_pod {
            return Component::Container(ContainerRef {
                runtime: Runtime::Cri,
                id: c.to_string(),
            });
        }
        if parent == "docker" {
            return Component::Container(ContainerRef {
                runtime: Runtime::Docker,
                id: c.to_string(),
            });
        }
    }
    Component::Other
}

/// 64 lower-case hex digits.
pub fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The lines of `/proc/PID/cgroup` that can name an owner: the cgroup v2
/// path (`0::PATH`) and each v1 hierarchy's (`ID:CONTROLLERS:PATH`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcCgroup<'a> {
    pub v2: Option<&'a str>,
    pub v1: Vec<&'a str>,
}

pub fn parse_proc_cgroup(text: &str) -> ProcCgroup<'_> {
    let mut out = ProcCgroup::default();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            out.v2 = Some(path);
        } else {
            out.v1.push(path);
        }
    }
    out
}

impl ProcCgroup<'_> {
    /// The owner the v2 path names or, on a hybrid host where only the v1
    /// controllers carry the kubelet's cgroups, the first v1 path that
    /// names one.
    pub fn owner(&self) -> Option<CgroupOwner> {
        self.v2
            .and_then(parse_path)
            .or_else(|| self.v1.iter().find_map(|p| parse_path(p)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const UID: &str = "6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b";
    const UID_: &str = "6f1a2b3c_4d5e_4f60_8a9b_0c1d2e3f4a5b";

    fn pod(container: Option<(Runtime, &str)>) -> Option<CgroupOwner> {
        Some(CgroupOwner::Pod {
            uid: UID.into(),
            container: container.map(|(runtime, id)| ContainerRef {
                runtime,
                id: id.into(),
            }),
        })
    }

    fn plain(runtime: Runtime) -> Option<CgroupOwner> {
        Some(CgroupOwner::Container(ContainerRef {
            runtime,
            id: ID.into(),
        }))
    }

    #[test]
    fn kubelet_systemd_driver_every_qos() {
        for qos in ["besteffort", "burstable"] {
            let p = format!(
                "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{UID_}.slice/cri-containerd-{ID}.scope"
            );
            assert_eq!(parse_path(&p), pod(Some((Runtime::Containerd, ID))), "{p}");
        }
        // Guaranteed pods have no QoS slice.
        let p = format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope");
        assert_eq!(parse_path(&p), pod(Some((Runtime::Containerd, ID))));
        // The pod's own cgroup.
        let p =
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice");
        assert_eq!(parse_path(&p), pod(None));
        // kind and other kubelets in a container nest it one level deeper.
        let p = format!(
            "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(parse_path(&p), pod(Some((Runtime::Containerd, ID))));
    }

    #[test]
    fn kubelet_cgroupfs_driver() {
        let p = format!("/kubepods/burstable/pod{UID}/{ID}");
        assert_eq!(parse_path(&p), pod(Some((Runtime::Cri, ID))));
        let p = format!("/kubepods/pod{UID}/{ID}");
        assert_eq!(parse_path(&p), pod(Some((Runtime::Cri, ID))));
        let p = format!("/kubepods/besteffort/pod{UID}");
        assert_eq!(parse_path(&p), pod(None));
        // CRI-O with cgroupfs prefixes the id.
        let p = format!("/kubepods/burstable/pod{UID}/crio-{ID}");
        assert_eq!(parse_path(&p), pod(Some((Runtime::CriO, ID))));
    }

    #[test]
    fn static_pod_uid_is_a_hash() {
        let hash = "8a2b9f3c1d4e5f60718293a4b5c6d7e8";
        let p = format!("/kubepods/burstable/pod{hash}/{ID}");
        assert!(matches!(parse_path(&p), Some(CgroupOwner::Pod { uid, .. }) if uid == hash));
    }

    #[test]
    fn cri_o_and_its_monitor() {
        let p = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{ID}.scope");
        assert_eq!(parse_path(&p), pod(Some((Runtime::CriO, ID))));
        let p = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-conmon-{ID}.scope");
        assert_eq!(parse_path(&p), pod(None));
    }

    #[test]
    fn below_a_container_is_the_container() {
        let p = format!(
            "/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope/init.scope"
        );
        assert_eq!(parse_path(&p), pod(Some((Runtime::Containerd, ID))));
        let p = format!("/machine.slice/libpod-{ID}.scope/container");
        assert_eq!(parse_path(&p), plain(Runtime::Podman));
    }

    #[test]
    fn plain_containers() {
        assert_eq!(
            parse_path(&format!("/system.slice/docker-{ID}.scope")),
            plain(Runtime::Docker)
        );
        assert_eq!(parse_path(&format!("/docker/{ID}")), plain(Runtime::Docker));
        assert_eq!(
            parse_path(&format!("/machine.slice/libpod-{ID}.scope")),
            plain(Runtime::Podman)
        );
        assert_eq!(
            parse_path(&format!(
                "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"
            )),
            plain(Runtime::Podman)
        );
        assert_eq!(
            parse_path(&format!("/libpod_parent/libpod-{ID}")),
            plain(Runtime::Podman)
        );
        assert_eq!(
            parse_path(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn inside_a_cgroup_namespace() {
        // What an agent in its own cgroup namespace reads for another pod.
        let p = format!("/../../kubepods-besteffort-pod{UID_}.slice/cri-containerd-{ID}.scope");
        assert_eq!(parse_path(&p), pod(Some((Runtime::Containerd, ID))));
        let p = format!("/../../pod{UID}/{ID}");
        assert_eq!(parse_path(&p), pod(Some((Runtime::Cri, ID))));
    }

    #[test]
    fn not_a_container() {
        for p in [
            "/",
            "",
            "/init.scope",
            "/system.slice/containerd.service",
            "/system.slice/docker.service",
            "/user.slice/user-0.slice/session-3.scope",
            "/kubepods.slice",
            "/kubepods.slice/kubepods-burstable.slice",
            "/kubepods/burstable",
            // Too short to be an id, not hex, upper case.
            "/system.slice/docker-0123456789ab.scope",
            &format!("/system.slice/docker-{}.scope", ID.replace('a', "g")),
            &format!("/docker/{}", ID.to_uppercase()),
            // A bare id outside a pod and outside /docker.
            &format!("/system.slice/{ID}"),
            // pod<uid> without a kubepods ancestor.
            &format!("/system.slice/pod{UID}"),
            // A pod slice that is not the kubelet's.
            &format!("/other.slice/other-pod{UID_}.slice"),
        ] {
            assert_eq!(parse_path(p), None, "{p}");
        }
        assert!(!is_pod_uid("6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5")); // 31 hex
        assert!(!is_pod_uid("zz1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"));
    }

    #[test]
    fn proc_cgroup_v2_and_hybrid() {
        let v2 = format!("0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{ID}.scope\n");
        let pc = parse_proc_cgroup(&v2);
        assert!(pc.v1.is_empty());
        assert_eq!(pc.owner(), pod(Some((Runtime::Containerd, ID))));

        // Hybrid host, kubelet with the cgroupfs driver: the unified
        // hierarchy does not hold the pod, the v1 controllers do.
        let hybrid = format!(
            "12:pids:/kubepods/burstable/pod{UID}/{ID}\n\
             11:memory:/kubepods/burstable/pod{UID}/{ID}\n\
             1:name=systemd:/system.slice/containerd.service\n\
             0::/system.slice/containerd.service\n"
        );
        let pc = parse_proc_cgroup(&hybrid);
        assert_eq!(pc.v2, Some("/system.slice/containerd.service"));
        assert_eq!(pc.v1.len(), 3);
        assert_eq!(pc.owner(), pod(Some((Runtime::Cri, ID))));

        // A host process; a malformed line is skipped.
        let host = "0::/system.slice/sshd.service\ngarbage\n";
        assert_eq!(parse_proc_cgroup(host).owner(), None);
        assert_eq!(parse_proc_cgroup("").owner(), None);
    }
}
