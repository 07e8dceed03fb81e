//! Builds the [`PodIndex`] from what a refresh found (the cgroup walk, the
//! kubelet's and runtimes' names, the links, the namespace ids of the
//! pods' processes), and keeps each pod's place under `--max-pods` from
//! one refresh to the next. Pure: tested on literal data.

use std::collections::{HashMap, HashSet};

use super::cgroup_path::{CgroupOwner, ContainerRef};
use super::cgroup_walk::Walk;
use super::kubelet_logs::KubeletNames;
use super::model::{
    ContainerInfo, InterfaceInfo, PodIndex, PodInfo, Slot, UnmappedInterface,
    NO_POD_IN_PEER_NAMESPACE, PEER_IN_HOST_NAMESPACE,
};
use super::netlink::Link;

/// Link kinds that join two namespaces, listed as unmapped when their
/// peer is not a pod's.
const PAIR_KINDS: [&str; 2] = ["veth", "netkit"];

/// What a refresh found, as [`build`] takes it.
pub struct Found<'a> {
    pub walk: &'a Walk,
    pub kubelet: &'a KubeletNames,
    /// Plain containers' names by id (Docker, Podman state).
    pub runtime_names: &'a HashMap<String, String>,
    pub links: &'a [Link],
    /// Pod key ([`pod_key`]) -> the id the host gives its network
    /// namespace.
    pub nsids: &'a HashMap<String, i32>,
}

/// A pod's uid, or a plain container's id.
pub fn pod_key(owner: &CgroupOwner) -> &str {
    match owner {
        CgroupOwner::Pod { uid, .. } => uid,
        CgroupOwner::Container(c) => &c.id,
    }
}

/// Each pod's processes, pod by pod, as the walk listed them (the pod's
/// own cgroup first, then its containers'): where to ask for its network
/// namespace.
pub fn pids_by_pod(walk: &Walk) -> Vec<(String, Vec<u32>)> {
    let mut out: Vec<(String, Vec<u32>)> = Vec::new();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for c in &walk.owned {
        let key = pod_key(&c.owner);
        let i = *at.entry(key).or_insert_with(|| {
            out.push((key.to_string(), Vec::new()));
            out.len() - 1
        });
        out[i].1.extend(&c.pids);
    }
    out
}

/// Which pods are counted by name and which under `_other`: a pod keeps
/// its place for as long as it lives (no series move between a pod and
/// `_other`); new pods take free places oldest first, in the order given.
#[derive(Clone, Debug, Default)]
pub struct Slots {
    named: HashMap<String, bool>,
}

impl Slots {
    /// Returns the keys counted under `_other`.
    pub fn assign(&mut self, keys_oldest_first: &[&str], max_pods: usize) -> HashSet<String> {
        let live: HashSet<&str> = keys_oldest_first.iter().copied().collect();
        self.named.retain(|k, _| live.contains(k.as_str()));
        let mut named = self.named.values().filter(|&&n| n).count();
        for &k in keys_oldest_first {
            if !self.named.contains_key(k) {
                let fits = named < max_pods;
                named += usize::from(fits);
                self.named.insert(k.to_string(), fits);
            }
        }
        self.named
            .iter()
            .filter(|(_, &n)| !n)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

struct Draft {
    key: String,
    kubernetes: bool,
    /// Lowest cgroup id seen (creation order), `None` on cgroup v1.
    first_id: Option<u64>,
    first_path: String,
    pod_ids: Vec<u64>,
    pod_pids: Vec<u32>,
    containers: Vec<(ContainerRef, Vec<u64>, Vec<u32>)>,
}

fn drafts(walk: &Walk) -> Vec<Draft> {
    let mut out: Vec<Draft> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for c in &walk.owned {
        let key = pod_key(&c.owner).to_string();
        let i = *at.entry(key.clone()).or_insert_with(|| {
            out.push(Draft {
                key,
                kubernetes: matches!(c.owner, CgroupOwner::Pod { .. }),
                first_id: None,
                first_path: c.path.clone(),
                pod_ids: Vec::new(),
                pod_pids: Vec::new(),
                containers: Vec::new(),
            });
            out.len() - 1
        });
        let d = &mut out[i];
        d.first_id = match (d.first_id, c.id) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if c.path < d.first_path {
            d.first_path = c.path.clone();
        }
        let ids = c.id.into_iter();
        match c.owner.container() {
            None => {
                d.pod_ids.extend(ids);
                d.pod_pids.extend(&c.pids);
            }
            Some(r) => match d.containers.iter_mut().find(|(cr, ..)| cr == r) {
                Some((_, cids, pids)) => {
                    cids.extend(ids);
                    pids.extend(&c.pids);
                }
                None => d
                    .containers
                    .push((r.clone(), ids.collect(), c.pids.clone())),
            },
        }
    }
    out.sort_by(|a, b| {
        (a.first_id.unwrap_or(u64::MAX), &a.first_path)
            .cmp(&(b.first_id.unwrap_or(u64::MAX), &b.first_path))
    });
    out
}

/// Builds the index; `slots` carries each pod's place over from the last
/// refresh.
pub fn build(found: &Found<'_>, slots: &mut Slots, max_pods: usize) -> PodIndex {
    let drafts = drafts(found.walk);
    let keys: Vec<&str> = drafts.iter().map(|d| d.key.as_str()).collect();
    let overflow = slots.assign(&keys, max_pods);

    let mut pods: Vec<(PodInfo, Draft)> = drafts
        .into_iter()
        .map(|d| (pod_info(&d, found, overflow.contains(&d.key)), d))
        .collect();
    pods.sort_by(|(a, _), (b, _)| {
        (a.overflow, &a.namespace, &a.pod, &a.uid).cmp(&(b.overflow, &b.namespace, &b.pod, &b.uid))
    });

    let mut index = PodIndex {
        known_cgroups: found.walk.ids.clone(),
        ..PodIndex::default()
    };
    let mut by_nsid: HashMap<i32, usize> = HashMap::new();
    for (p, (_, d)) in pods.iter().enumerate() {
        let mut put = |ids: &[u64], pids: &[u32], slot: Slot| {
            index.by_cgroup.extend(ids.iter().map(|&id| (id, slot)));
            index.by_pid.extend(pids.iter().map(|&pid| (pid, slot)));
        };
        put(&d.pod_ids, &d.pod_pids, (p, None));
        for (c, (_, ids, pids)) in d.containers.iter().enumerate() {
            put(ids, pids, (p, Some(c)));
        }
        if let Some(&nsid) = found.nsids.get(&d.key) {
            by_nsid.entry(nsid).or_insert(p);
        }
    }
    let mut pods: Vec<PodInfo> = pods.into_iter().map(|(p, _)| p).collect();
    for l in found.links {
        let reason = match l.link_netnsid {
            Some(nsid) => match by_nsid.get(&nsid) {
                Some(&p) => {
                    pods[p].interfaces.push(InterfaceInfo {
                        name: l.name.clone(),
                        ifindex: l.ifindex,
                        kind: l.kind.clone(),
                    });
                    index.by_ifindex.insert(l.ifindex, p);
                    continue;
                }
                None => NO_POD_IN_PEER_NAMESPACE,
            },
            None if l.kind.as_deref().is_some_and(|k| PAIR_KINDS.contains(&k)) => {
                PEER_IN_HOST_NAMESPACE
            }
            None => continue,
        };
        index.unmapped_interfaces.push(UnmappedInterface {
            name: l.name.clone(),
            ifindex: l.ifindex,
            kind: l.kind.clone(),
            reason,
        });
    }
    for p in &mut pods {
        p.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    }
    index
        .unmapped_interfaces
        .sort_by(|a, b| a.name.cmp(&b.name));
    index.pods = pods;
    index
}

fn pod_info(d: &Draft, found: &Found<'_>, overflow: bool) -> PodInfo {
    let k = found.kubelet;
    let containers: Vec<ContainerInfo> = d
        .containers
        .iter()
        .map(|(r, ids, _)| ContainerInfo {
            id: r.id.clone(),
            name: k
                .containers
                .get(&r.id)
                .map(|c| c.container.clone())
                .or_else(|| found.runtime_names.get(&r.id).cloned()),
            runtime: r.runtime.name(),
            cgroup_ids: ids.clone(),
        })
        .collect();
    let (namespace, pod, source) = if d.kubernetes {
        // The pod's log directory; else a container's log symlink.
        let named = k
            .pods
            .get(&d.key)
            .map(|p| (p.namespace.clone(), p.pod.clone()))
            .or_else(|| {
                d.containers.iter().find_map(|(r, ..)| {
                    let c = k.containers.get(&r.id)?;
                    Some((c.namespace.clone(), c.pod.clone()))
                })
            });
        let (ns, pod) = named.unwrap_or_else(|| (String::new(), d.key.clone()));
        (ns, pod, "kubernetes")
    } else {
        let c = &containers[0];
        let name = c.name.clone().unwrap_or_else(|| d.key[..12].to_string());
        (String::new(), name, c.runtime)
    };
    PodInfo {
        namespace,
        pod,
        uid: d.key.clone(),
        source,
        containers,
        interfaces: Vec::new(),
        overflow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::cgroup_path::Runtime;
    use crate::identity::cgroup_walk::OwnedCgroup;
    use crate::identity::kubelet_logs::{ContainerName, PodName};
    use crate::identity::model::{Lookup, OTHER};

    const UID_A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const UID_B: &str = "bbbbbbbb-0000-4000-8000-000000000002";

    fn cid(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn owned(path: &str, id: u64, owner: CgroupOwner, pids: &[u32]) -> OwnedCgroup {
        OwnedCgroup {
            path: path.into(),
            id: Some(id),
            owner,
            pids: pids.to_vec(),
        }
    }

    fn in_pod(uid: &str, c: Option<char>) -> CgroupOwner {
        CgroupOwner::Pod {
            uid: uid.into(),
            container: c.map(|c| ContainerRef {
                runtime: Runtime::Containerd,
                id: cid(c),
            }),
        }
    }

    fn link(ifindex: u32, name: &str, kind: &str, nsid: Option<i32>) -> Link {
        Link {
            ifindex,
            name: name.into(),
            kind: Some(kind.into()),
            link_netnsid: nsid,
        }
    }

    /// What [`Found`] borrows, owned.
    type Node = (
        Walk,
        KubeletNames,
        HashMap<String, String>,
        Vec<Link>,
        HashMap<String, i32>,
    );

    /// Two pods (B created first), a plain Docker container, a host cgroup.
    fn node() -> Node {
        let docker = CgroupOwner::Container(ContainerRef {
            runtime: Runtime::Docker,
            id: cid('d'),
        });
        let walk = Walk {
            owned: vec![
                owned("/kubepods/podA", 200, in_pod(UID_A, None), &[]),
                owned("/kubepods/podA/a1", 201, in_pod(UID_A, Some('1')), &[1001]),
                owned(
                    "/kubepods/podA/a1/sub",
                    205,
                    in_pod(UID_A, Some('1')),
                    &[1005],
                ),
                owned("/kubepods/podA/a2", 202, in_pod(UID_A, Some('2')), &[1002]),
                owned("/kubepods/podB", 100, in_pod(UID_B, None), &[]),
                owned(
                    "/kubepods/podB/b3",
                    101,
                    in_pod(UID_B, Some('3')),
                    &[2001, 2002],
                ),
                owned("/system.slice/docker-d.scope", 300, docker, &[3001]),
            ],
            ids: [1, 2, 100, 101, 200, 201, 202, 205, 300, 400].into(),
            ..Walk::default()
        };
        let mut kubelet = KubeletNames::default();
        kubelet.pods.insert(
            UID_A.into(),
            PodName {
                namespace: "shop".into(),
                pod: "web".into(),
            },
        );
        // Pod B has no log directory left: its container's symlink names it.
        kubelet.containers.insert(
            cid('3'),
            ContainerName {
                namespace: "db".into(),
                pod: "pg-0".into(),
                container: "postgres".into(),
                pod_uid: Some(UID_B.into()),
            },
        );
        kubelet.containers.insert(
            cid('1'),
            ContainerName {
                namespace: "shop".into(),
                pod: "web".into(),
                container: "nginx".into(),
                pod_uid: Some(UID_A.into()),
            },
        );
        let runtime_names = HashMap::from([(cid('d'), "proxy".to_string())]);
        let links = vec![
            link(1, "lo", "loopback", None),
            link(10, "caliA", "veth", Some(0)),
            link(11, "caliB", "veth", Some(1)),
            link(12, "veth-docker", "veth", Some(2)),
            link(13, "veth-stray", "veth", Some(7)),
            link(14, "vpair0", "veth", None),
            link(15, "br0", "bridge", None),
        ];
        let nsids = HashMap::from([
            (UID_A.to_string(), 0),
            (UID_B.to_string(), 1),
            (cid('d'), 2),
        ]);
        (walk, kubelet, runtime_names, links, nsids)
    }

    fn build_node(slots: &mut Slots, max_pods: usize) -> PodIndex {
        let (walk, kubelet, runtime_names, links, nsids) = node();
        let found = Found {
            walk: &walk,
            kubelet: &kubelet,
            runtime_names: &runtime_names,
            links: &links,
            nsids: &nsids,
        };
        build(&found, slots, max_pods)
    }

    #[test]
    fn resolves_pods_containers_and_interfaces() {
        let ix = build_node(&mut Slots::default(), 256);
        let names: Vec<_> = ix.pods.iter().map(|p| p.labels()).collect();
        assert_eq!(names, [("", "proxy"), ("db", "pg-0"), ("shop", "web")]);

        let web = ix.by_uid(UID_A).unwrap();
        assert_eq!(web.source, "kubernetes");
        assert_eq!(web.containers.len(), 2);
        assert_eq!(web.containers[0].name.as_deref(), Some("nginx"));
        assert_eq!(web.containers[0].cgroup_ids, [201, 205]);
        assert_eq!(web.containers[0].runtime, "containerd");
        assert_eq!(web.containers[1].name, None, "no log symlink: unnamed");
        assert_eq!(web.interfaces.len(), 1);
        assert_eq!(web.interfaces[0].name, "caliA");

        let proxy = ix.by_uid(&cid('d')).unwrap();
        assert_eq!((proxy.source, proxy.namespace.as_str()), ("docker", ""));
        assert_eq!(proxy.interfaces[0].name, "veth-docker");

        // Lookups.
        assert!(
            matches!(ix.by_cgroup(205), Lookup::Pod(p, Some(c)) if p.pod == "web" && c.id == cid('1'))
        );
        assert!(matches!(ix.by_cgroup(200), Lookup::Pod(p, None) if p.pod == "web"));
        assert!(matches!(ix.by_cgroup(101), Lookup::Pod(p, Some(_)) if p.pod == "pg-0"));
        assert_eq!(ix.by_cgroup(400), Lookup::NotAPod, "a host cgroup");
        assert_eq!(ix.by_cgroup(0), Lookup::NotAPod);
        assert_eq!(ix.by_cgroup(999), Lookup::Unknown, "created since the walk");
        assert!(matches!(ix.by_pid(2002), Lookup::Pod(p, _) if p.pod == "pg-0"));
        assert!(matches!(ix.by_pid(3001), Lookup::Pod(p, _) if p.pod == "proxy"));
        assert_eq!(ix.by_pid(4242), Lookup::Unknown);
        assert_eq!(ix.by_ifindex(11).map(|p| p.pod.as_str()), Some("pg-0"));
        assert_eq!(ix.by_ifindex(15), None);

        // Unmapped pair ends stay plain interfaces, with the reason.
        let unmapped: Vec<_> = ix
            .unmapped_interfaces
            .iter()
            .map(|u| (u.name.as_str(), u.reason))
            .collect();
        assert_eq!(
            unmapped,
            [
                ("veth-stray", NO_POD_IN_PEER_NAMESPACE),
                ("vpair0", PEER_IN_HOST_NAMESPACE)
            ]
        );
    }

    #[test]
    fn pods_past_the_cap_go_to_other_oldest_first_and_keep_their_place() {
        let mut slots = Slots::default();
        // B (ids from 100) is older than A (200), then the container (300).
        let ix = build_node(&mut slots, 1);
        let labels: Vec<_> = ix.pods.iter().map(|p| p.labels()).collect();
        assert_eq!(labels, [("db", "pg-0"), (OTHER, OTHER), (OTHER, OTHER)]);
        assert_eq!(ix.overflow(), 2);
        // Overflow pods still resolve (their traffic counts under _other).
        assert!(matches!(ix.by_cgroup(201), Lookup::Pod(p, _) if p.overflow));

        // Raising the cap later does not move live pods out of _other...
        let ix = build_node(&mut slots, 3);
        assert_eq!(ix.overflow(), 2);
        // ...but a place freed by a pod that went is taken by a new one.
        let mut slots = Slots::default();
        assert!(slots.assign(&["x", "y"], 1).contains("y"));
        assert!(slots.assign(&["z", "y"], 1).contains("y"), "y stays");
        let over = slots.assign(&["y", "z", "w"], 1);
        assert!(!over.contains("z") && over.contains("w"));
    }

    #[test]
    fn pids_by_pod_for_namespace_questions() {
        let (walk, ..) = node();
        let p = pids_by_pod(&walk);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], (UID_A.to_string(), vec![1001, 1005, 1002]));
        assert_eq!(p[1], (UID_B.to_string(), vec![2001, 2002]));
    }

    #[test]
    fn unnamed_pods_and_containers() {
        let walk = Walk {
            owned: vec![
                owned("/kubepods/podA/a1", 1, in_pod(UID_A, Some('1')), &[]),
                owned(
                    "/system.slice/docker-e.scope",
                    2,
                    CgroupOwner::Container(ContainerRef {
                        runtime: Runtime::Docker,
                        id: cid('e'),
                    }),
                    &[],
                ),
            ],
            ..Walk::default()
        };
        let found = Found {
            walk: &walk,
            kubelet: &KubeletNames::default(),
            runtime_names: &HashMap::new(),
            links: &[],
            nsids: &HashMap::new(),
        };
        let ix = build(&found, &mut Slots::default(), 10);
        let labels: Vec<_> = ix.pods.iter().map(|p| p.labels()).collect();
        assert_eq!(labels, [("", UID_A), ("", "eeeeeeeeeeee")]);
    }
}
