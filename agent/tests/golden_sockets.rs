//! The socket layer's rendering against golden files: a fixed
//! `SocketSnapshot` must render to exactly `tests/golden/sockets.prom` (its
//! part of /metrics) and `tests/golden/sockets_status.json` (the `sockets`
//! field of /status). `UPDATE_GOLDEN=1 cargo test --test golden_sockets`
//! rewrites them after an intended change; review the diff.

use netprobe::sockets::model::{
    ConnEntry, ConnTable, Histogram, Learned, Owners, SocketCounters, DURATION_BUCKETS,
    SRTT_BUCKETS,
};
use netprobe::sockets::{render_metrics, Direction, OwnerSource, SocketSnapshot};

mod exposition;
mod golden_file;

fn conn(local_port: u16, bytes: u64, duration: f64) -> ConnEntry {
    ConnEntry {
        family: "ipv4",
        local: "198.18.0.1".into(),
        local_port,
        remote: "198.18.0.2".into(),
        remote_port: 443,
        direction: Direction::Active,
        state: "established",
        pid: Some(4242),
        comm: Some("curl".into()),
        owner_source: OwnerSource::Connect,
        cgroup_id: Some(9876),
        netns: 4026531840,
        duration_seconds: duration,
        since_agent_start: false,
        bytes_sent: bytes,
        bytes_received: bytes * 3,
        srtt_seconds: Some(0.0125),
        retransmits: 2,
        error: None,
    }
}

fn snapshot() -> SocketSnapshot {
    let mut duration = Histogram::new(&DURATION_BUCKETS);
    for d in [0.0005, 0.2, 42.0, 7200.0] {
        duration.observe(d);
    }
    let mut srtt = Histogram::new(&SRTT_BUCKETS);
    for r in [0.00005, 0.0125, 0.3] {
        srtt.observe(r);
    }
    let mut failure = conn(50000, 0, 3.25);
    failure.state = "syn_sent";
    failure.srtt_seconds = None;
    failure.retransmits = 1;
    failure.error = Some("ETIMEDOUT".into());
    let mut accepted = conn(8080, 700, 2.5);
    accepted.direction = Direction::Passive;
    accepted.owner_source = OwnerSource::Accept;
    accepted.comm = Some("nginx".into());
    accepted.pid = Some(31337);
    let mut queued = conn(8080, 0, 0.5);
    queued.direction = Direction::Passive;
    queued.owner_source = OwnerSource::Listener;
    queued.comm = Some("nginx".into());
    queued.pid = Some(31330);
    queued.remote_port = 50001;
    let mut unknown = conn(9000, 1, 30.0);
    unknown.direction = Direction::Unknown;
    unknown.since_agent_start = true;
    unknown.owner_source = OwnerSource::Unknown;
    unknown.pid = None;
    unknown.comm = None;
    unknown.cgroup_id = None;
    let mut seeded = conn(22, 10, 120.5);
    seeded.direction = Direction::Unknown;
    seeded.since_agent_start = true;
    seeded.pid = Some(812);
    seeded.comm = Some("sshd".into());
    seeded.owner_source = OwnerSource::Learned;
    seeded.family = "ipv6";
    seeded.local = "2001:db8::1".into();
    seeded.remote = "2001:db8::2".into();
    SocketSnapshot {
        loaded: true,
        disabled_reason: None,
        netns: "self",
        netns_inode: Some(4026531840),
        live_stats: true,
        last_error: None,
        counters: SocketCounters {
            opened_active: 120,
            opened_passive: 80,
            failed: 7,
            closed_normal: 180,
            closed_aborted: 5,
            closed_abandoned: 1,
            established: 7,
            resets_sent: 9,
            resets_received: 11,
            retransmitted_segments: 369,
            connect_aborted: 2,
            untracked: 0,
            events_lost: 3,
            storage_failed: 0,
            accepts_unseen: 0,
        },
        owners: Owners {
            accepted: "accept",
            accept_probe: "fexit",
            socket_storage: true,
            learned: Learned {
                listeners: 3,
                connections: 1,
                not_found: 1,
                duration_seconds: 0.0125,
                incomplete: None,
            },
        },
        connections: ConnTable {
            entries: 7,
            capacity: 16384,
            longest_lived: vec![
                seeded.clone(),
                unknown,
                conn(40001, 5000, 10.0),
                accepted.clone(),
                queued,
            ],
            busiest: vec![conn(40001, 5000, 10.0), accepted, seeded],
            recent_failures: vec![failure],
        },
        events_total: 210,
        duration,
        srtt,
    }
}

fn check(name: &str, actual: &str) {
    golden_file::check("golden_sockets", name, actual);
}

#[test]
fn socket_metrics_match_golden() {
    let mut out = String::new();
    render_metrics(&snapshot(), &mut out);
    check("sockets.prom", &out);
}

#[test]
fn socket_status_matches_golden() {
    check(
        "sockets_status.json",
        &(serde_json::to_string_pretty(&snapshot()).unwrap() + "\n"),
    );
}

#[test]
fn disabled_layer() {
    let mut out = String::new();
    render_metrics(&SocketSnapshot::disabled("the kernel has no BTF"), &mut out);
    assert!(out.contains("netprobe_socket_probes_loaded 0\n"));
    assert!(!out.contains("netprobe_tcp_"));
    let json = serde_json::to_value(SocketSnapshot::disabled("the kernel has no BTF")).unwrap();
    assert_eq!(json["loaded"], false);
    assert_eq!(json["disabled_reason"], "the kernel has no BTF");
}

#[test]
fn no_address_port_or_process_in_labels() {
    let mut m = String::new();
    render_metrics(&snapshot(), &mut m);
    let labels: String = m
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| Some(&l[l.find('{')?..=l.rfind('}')?]))
        .collect();
    assert!(!labels.is_empty());
    for bad in ["198.18", "2001:db8", "443", "40001", "curl", "4242"] {
        assert!(!labels.contains(bad), "{bad} leaked into /metrics labels");
    }
}

/// The socket layer's part parses as exposition on its own (promtool and
/// the strict parser); its labels take fixed values that need no escaping
/// (its renderer does not escape).
#[test]
fn socket_metrics_are_valid_exposition() {
    let mut page = String::new();
    render_metrics(&snapshot(), &mut page);
    let samples = exposition::validate(&page);
    assert!(samples
        .iter()
        .any(|s| s.name == "netprobe_tcp_srtt_seconds_bucket"));
    for s in &samples {
        for (k, v) in &s.labels {
            assert!(
                ["direction", "reason", "le"].contains(&k.as_str()),
                "label {k} is new: make sure its values cannot need escaping"
            );
            assert!(
                v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.+".contains(&b)),
                "{k}={v:?}"
            );
        }
    }
}
