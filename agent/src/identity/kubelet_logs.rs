//! Pod and container names from the kubelet's log layout, which every node
//! has and which needs no API access:
//!
//! - `/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log`: one
//!   directory per pod, named with its namespace, name and uid;
//! - `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`: one
//!   symlink per container into the pod's directory, named with the
//!   container's name and runtime id.
//!
//! Namespaces, pod names (DNS subdomains) and container names (DNS labels)
//! cannot hold `_`, so the names split without ambiguity. Reading is
//! separate from parsing; the parsers are tested on literal names.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

use super::cgroup_path::is_container_id;

pub const PODS_DIR: &str = "var/log/pods";
pub const CONTAINERS_DIR: &str = "var/log/containers";

/// A pod's name as its log directory gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodName {
    pub namespace: String,
    pub pod: String,
}

/// A container's name as its log symlink gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerName {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// From the symlink's target (`/var/log/pods/<ns>_<pod>_<uid>/...`),
    /// when it could be read.
    pub pod_uid: Option<String>,
}

/// What the kubelet's log layout names: pods by uid, containers by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KubeletNames {
    pub pods: HashMap<String, PodName>,
    pub containers: HashMap<String, ContainerName>,
    /// Entries that did not parse.
    pub skipped: usize,
    /// A directory held more than the bound; the rest was left unread.
    pub truncated: bool,
}

/// `<namespace>_<pod>_<uid>` -> (namespace, pod, uid).
pub fn parse_pod_dir(name: &str) -> Option<(&str, &str, &str)> {
    let mut it = name.split('_');
    let (ns, pod, uid) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || ns.is_empty() || pod.is_empty() || uid.is_empty() {
        return None;
    }
    Some((ns, pod, uid))
}

/// `<pod>_<namespace>_<container>-<id>.log` -> (pod, namespace, container,
/// id).
pub fn parse_container_link(name: &str) -> Option<(&str, &str, &str, &str)> {
    let stem = name.strip_suffix(".log")?;
    let (rest, id) = stem.rsplit_once('-')?;
    if !is_container_id(id) {
        return None;
    }
    let mut it = rest.split('_');
    let (pod, ns, container) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || pod.is_empty() || ns.is_empty() || container.is_empty() {
        return None;
    }
    Some((pod, ns, container, id))
}

/// The pod uid in a container log symlink's target.
pub fn uid_from_link_target(target: &str) -> Option<&str> {
    let rest = target.split("/pods/").nth(1)?;
    parse_pod_dir(rest.split('/').next()?).map(|(_, _, uid)| uid)
}

/// Reads both directories under `host_root`, at most `max_entries` names
/// from each. A directory that does not exist (a host without a kubelet)
/// gives no names and no error.
///
/// # Errors
/// A directory exists but cannot be read.
pub fn read(host_root: &Path, max_entries: usize) -> io::Result<KubeletNames> {
    let mut out = KubeletNames::default();
    for name in dir_names(&host_root.join(PODS_DIR), max_entries, &mut out.truncated)? {
        match parse_pod_dir(&name) {
            Some((namespace, pod, uid)) => {
                out.pods.insert(
                    uid.to_string(),
                    PodName {
                        namespace: namespace.into(),
                        pod: pod.into(),
                    },
                );
            }
            None => out.skipped += 1,
        }
    }
    let links = host_root.join(CONTAINERS_DIR);
    for name in dir_names(&links, max_entries, &mut out.truncated)? {
        let Some((pod, namespace, container, id)) = parse_container_link(&name) else {
            out.skipped += 1;
            continue;
        };
        // The target is an absolute host path; only its text is used, so
        // it need not resolve under the host root.
        let target = fs::read_link(links.join(&name)).ok();
        let pod_uid = target
            .as_deref()
            .and_then(|t| t.to_str())
            .and_then(uid_from_link_target)
            .map(str::to_string);
        out.containers.insert(
            id.to_string(),
            ContainerName {
                namespace: namespace.into(),
                pod: pod.into(),
                container: container.into(),
                pod_uid,
            },
        );
    }
    Ok(out)
}

/// Names in `dir`, at most `max` (then `truncated` is set).
fn dir_names(dir: &Path, max: usize, truncated: &mut bool) -> io::Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
    };
    let mut names = Vec::new();
    for e in entries.flatten() {
        if names.len() == max {
            *truncated = true;
            break;
        }
        if let Some(n) = e.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pod_dirs() {
        assert_eq!(
            parse_pod_dir(
                "kube-system_coredns-5d78c9869d-abcde_6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"
            ),
            Some((
                "kube-system",
                "coredns-5d78c9869d-abcde",
                "6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b"
            ))
        );
        for bad in ["", "a_b", "a_b_c_d", "_b_c", "a__c", "a_b_"] {
            assert_eq!(parse_pod_dir(bad), None, "{bad}");
        }
    }

    #[test]
    fn container_links() {
        let name = format!("web-7d9f_shop_nginx-{ID}.log");
        assert_eq!(
            parse_container_link(&name),
            Some(("web-7d9f", "shop", "nginx", ID))
        );
        // Container names may hold dashes: the id is after the last one.
        let name = format!("web-7d9f_shop_istio-proxy-{ID}.log");
        assert_eq!(
            parse_container_link(&name),
            Some(("web-7d9f", "shop", "istio-proxy", ID))
        );
        for bad in [
            format!("web_shop_nginx-{ID}"),             // no .log
            format!("web_shop_nginx-{}.log", &ID[1..]), // short id
            format!("web_shop-{ID}.log"),               // two parts
            format!("web_shop_x_y-{ID}.log"),           // four parts
            format!("_shop_nginx-{ID}.log"),
        ] {
            assert_eq!(parse_container_link(&bad), None, "{bad}");
        }
    }

    #[test]
    fn link_targets() {
        assert_eq!(
            uid_from_link_target(
                "/var/log/pods/shop_web-7d9f_6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b/nginx/0.log"
            ),
            Some("6f1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b")
        );
        assert_eq!(uid_from_link_target("/elsewhere/x.log"), None);
    }

    #[test]
    fn missing_directories_give_nothing() {
        let names = read(Path::new("/nonexistent-host-root"), 16).unwrap();
        assert_eq!(names, KubeletNames::default());
    }
}
