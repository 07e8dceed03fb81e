//! Names of plain containers (no Kubernetes) from their runtime's state
//! directory, where the agent may read it:
//!
//! - Docker: `/var/lib/docker/containers/<id>/config.v2.json`, field `Name`
//!   (`"/web"`; mode 0600, owner root: readable by uid 0 without
//!   `CAP_DAC_OVERRIDE`);
//! - Podman (rootful): `/var/lib/containers/storage/overlay-containers/containers.json`,
//!   a list of `{"id", "names"}`.
//!
//! Files are read up to [`MAX_STATE_BYTES`]; anything unreadable or
//! malformed leaves the container unnamed (it is shown by its short id).

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use serde::Deserialize;

pub const DOCKER_CONTAINERS: &str = "var/lib/docker/containers";
pub const PODMAN_CONTAINERS: &str = "var/lib/containers/storage/overlay-containers/containers.json";

/// Largest state file read: Docker's config.v2.json is a few KB, Podman's
/// containers.json about 1 KB per container.
pub const MAX_STATE_BYTES: u64 = 4 << 20;

/// The name in a Docker `config.v2.json`, without Docker's leading `/`.
pub fn parse_docker_config(json: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(rename = "Name")]
        name: String,
    }
    let c: Config = serde_json::from_str(json).ok()?;
    let name = c.name.trim_start_matches('/');
    (!name.is_empty()).then(|| name.to_string())
}

/// id -> first name, from Podman's `containers.json`.
pub fn parse_podman_containers(json: &str) -> HashMap<String, String> {
    #[derive(Deserialize)]
    struct Entry {
        id: String,
        #[serde(default)]
        names: Vec<String>,
    }
    let entries: Vec<Entry> = serde_json::from_str(json).unwrap_or_default();
    entries
        .into_iter()
        .filter_map(|e| Some((e.id, e.names.into_iter().next()?)))
        .collect()
}

/// A Docker container's name, read under `host_root`.
pub fn docker_name(host_root: &Path, id: &str) -> Option<String> {
    let path = host_root
        .join(DOCKER_CONTAINERS)
        .join(id)
        .join("config.v2.json");
    parse_docker_config(&read_bounded(&path)?)
}

/// Every rootful Podman container's name, read under `host_root`.
pub fn podman_names(host_root: &Path) -> HashMap<String, String> {
    read_bounded(&host_root.join(PODMAN_CONTAINERS))
        .map(|s| parse_podman_containers(&s))
        .unwrap_or_default()
}

fn read_bounded(path: &Path) -> Option<String> {
    let mut s = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_STATE_BYTES)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config() {
        let json =
            r#"{"ID":"abc","Name":"/web","State":{"Running":true},"Config":{"Hostname":"x"}}"#;
        assert_eq!(parse_docker_config(json), Some("web".into()));
        assert_eq!(parse_docker_config(r#"{"Name":"/"}"#), None);
        assert_eq!(parse_docker_config(r#"{"ID":"abc"}"#), None);
        assert_eq!(parse_docker_config("not json"), None);
    }

    #[test]
    fn podman_containers() {
        let json = r#"[{"id":"aa","names":["db"],"image":"x"},{"id":"bb","names":[]},{"id":"cc","names":["q","r"]}]"#;
        let names = parse_podman_containers(json);
        assert_eq!(names.len(), 2);
        assert_eq!(names["aa"], "db");
        assert_eq!(names["cc"], "q");
        assert!(parse_podman_containers("{}").is_empty());
    }

    #[test]
    fn unreadable_state_names_nothing() {
        let root = Path::new("/nonexistent-host-root");
        assert_eq!(docker_name(root, "abc"), None);
        assert!(podman_names(root).is_empty());
    }
}
