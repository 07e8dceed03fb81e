//! Rendering against golden files: a fixed snapshot must render to exactly
//! `tests/golden/metrics.prom` and `tests/golden/status.json`.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites them after an
//! intended change; review the diff.

use netprobe::abi::{Counter, PacketStats};
use netprobe::snapshot::{
    ChangeCounters, CollectionInfo, EventCounters, FlowEntry, FlowTable, HookInfo, InterfaceChange,
    InterfaceSnapshot, MapFill, Rates, Snapshot,
};

mod exposition;
mod golden_file;

fn stats(seed: u64) -> PacketStats {
    let mut s = PacketStats {
        total: Counter {
            packets: 100 * seed,
            bytes: 64_000 * seed,
        },
        ..Default::default()
    };
    s.l3[0][0] = Counter {
        packets: 60 * seed,
        bytes: 50_000 * seed,
    };
    s.l3[0][1] = Counter {
        packets: 20 * seed,
        bytes: 8_000 * seed,
    };
    s.l3[1][3] = Counter {
        packets: 10 * seed,
        bytes: 1_000 * seed,
    };
    s.non_ip = Counter {
        packets: 10 * seed,
        bytes: 5_000 * seed,
    };
    s.tcp_flags = [3 * seed, 2 * seed, seed, 0];
    s.skip[4] = 10 * seed;
    s.skip[11] = seed;
    s.flow_miss[0] = 7;
    s.flows_created = 4 * seed;
    s
}

fn snapshot() -> Snapshot {
    let hook = |h: &'static str, mode: &'static str, id| HookInfo {
        hook: h,
        mode,
        method: "bpf_link",
        program_id: id,
        attached: true,
        problem: None,
    };
    let eth0 = InterfaceSnapshot {
        name: "eth0".into(),
        ifindex: 2,
        hooks: vec![
            hook("xdp", "native", 11),
            hook("tc_ingress", "tcx", 12),
            hook("tc_egress", "tcx", 13),
        ],
        rx_source: "xdp",
        rx: Counter {
            packets: 100,
            bytes: 64_000,
        },
        tx: Counter {
            packets: 300,
            bytes: 192_000,
        },
        rates: Rates {
            rx_packets: 20.0,
            tx_packets: 60.0,
            rx_bytes: 12_800.0,
            tx_bytes: 38_400.5,
        },
        per_hook: vec![
            ("xdp", stats(1)),
            ("tc_ingress", stats(1)),
            ("tc_egress", stats(3)),
        ],
    };
    let wan = InterfaceSnapshot {
        name: "wan\"0".into(),
        ifindex: 3,
        hooks: vec![
            hook("tc_ingress", "clsact", 12),
            // Found detached by a check: exported as 0, with the reason.
            HookInfo {
                attached: false,
                problem: Some("no clsact filter at priority 20048 handle 0x4e50".into()),
                ..hook("tc_egress", "clsact", 13)
            },
        ],
        rx_source: "tc_ingress",
        rx: Counter {
            packets: 200,
            bytes: 128_000,
        },
        tx: Counter::default(),
        rates: Rates::default(),
        per_hook: vec![
            ("tc_ingress", stats(2)),
            ("tc_egress", PacketStats::default()),
        ],
    };
    Snapshot {
        version: "0.0.0-golden",
        revision: "0123456789ab",
        arch: "x86_64",
        process: netprobe::process::ProcessStats {
            cpu_seconds: 1.25,
            resident_memory_bytes: 5_931_008,
            virtual_memory_bytes: 20_971_520,
            open_fds: 23,
            max_fds: 1024,
            start_time_seconds: 1_699_999_999.5,
        },
        kernel_release: "6.1.0-27-amd64".into(),
        started_at: 1_700_000_000.0,
        uptime_seconds: 42.5,
        collection: CollectionInfo {
            interval_seconds: 5.0,
            last_collection: 1_700_000_042.5,
            duration_seconds: 0.000_75,
            collections_total: 9,
            errors_total: 1,
            last_error: None,
        },
        interfaces: vec![eth0, wan],
        maps: vec![
            MapFill {
                name: "packet_stats",
                entries: 5,
                capacity: 192,
            },
            MapFill {
                name: "flow_stats",
                entries: 2,
                capacity: 65536,
            },
        ],
        flow_table: FlowTable {
            entries: 2,
            capacity: 65536,
            top: vec![FlowEntry {
                interface: "eth0".into(),
                family: "ipv6",
                protocol: "tcp".into(),
                src: "2001:db8::1".into(),
                src_port: 443,
                dst: "2001:db8::2".into(),
                dst_port: 50000,
                rx_packets: 10,
                rx_bytes: 1000,
                tx_packets: 12,
                tx_bytes: 15000,
                age_seconds: 3.5,
                idle_seconds: 0.25,
            }],
        },
        events: EventCounters {
            received_total: 3,
            flow_admission_limited_total: 3,
        },
        interface_changes: vec![
            InterfaceChange {
                at: 1_700_000_001.0,
                interface: "eth0".into(),
                ifindex: 2,
                change: "attached",
                error: None,
            },
            InterfaceChange {
                at: 1_700_000_002.0,
                interface: "wwan0".into(),
                ifindex: 7,
                change: "refused",
                error: Some("attaching tc_ingress to wwan0 failed".into()),
            },
        ],
        interface_changes_total: ChangeCounters {
            attached: 1,
            vanished: 0,
            refused: 1,
        },
        sockets: None,
        export: Some(export_status()),
        security: Default::default(),
    }
}

fn check(name: &str, actual: &str) {
    golden_file::check("golden", name, actual);
}

#[test]
fn metrics_match_golden() {
    check("metrics.prom", &netprobe::metrics::render(&snapshot()));
}

#[test]
fn status_matches_golden() {
    check(
        "status.json",
        &(serde_json::to_string_pretty(&snapshot()).unwrap() + "\n"),
    );
}

#[test]
fn no_address_or_port_in_metric_labels() {
    let m = netprobe::metrics::render(&snapshot());
    let labels: String = m
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| Some(&l[l.find('{')?..=l.rfind('}')?]))
        .collect();
    assert!(!labels.is_empty());
    for bad in ["2001:db8", "443", "50000"] {
        assert!(!labels.contains(bad), "{bad} leaked into /metrics labels");
    }
}

/// The sinks as they stand after a while: one receiver that sent and then
/// failed to reach its receiver, and IPFIX with a send error.
fn export_status() -> netprobe::snapshot::ExportStatus {
    use netprobe::export::{ipfix, remote_write};
    use netprobe::snapshot::{ExportStatus, IpfixStatus, RemoteWriteStatus};
    let rw = remote_write::Stats {
        sent: 12_000,
        retried: 600,
        dropped_spool_full: 40,
        requests_accepted: 30,
        requests_retried: 3,
        last_success_unix: 1_700_000_000.5,
        last_push_seconds: 0.004,
        push_seconds_total: 0.25,
        ..Default::default()
    };
    let spool = remote_write::SpoolGauges {
        bytes: 2048,
        max_bytes: 8 << 20,
        samples: 400,
        disk_bytes: 0,
        oldest_age_seconds: 10.0,
    };
    let ipfix = ipfix::Stats {
        flow_records: 90,
        options_records: 4,
        messages: 11,
        bytes: 7000,
        templates: 8,
        send_errors: 1,
        records_dropped: 2,
        tracked_flows: 6,
        ..Default::default()
    };
    let mut metrics = rw.metrics("0", spool);
    metrics.extend(ipfix.metrics());
    ExportStatus {
        remote_write: vec![RemoteWriteStatus {
            receiver: "0".into(),
            endpoint: "http://127.0.0.1:9090".into(),
            last_success: rw.last_success_unix,
            samples_sent: rw.sent,
            spool_bytes: spool.bytes,
            spool_samples: spool.samples,
            samples_dropped: rw.dropped_spool_full,
        }],
        ipfix: Some(IpfixStatus {
            collector: "udp://127.0.0.1:4739".into(),
            flow_records: ipfix.flow_records,
            messages: ipfix.messages,
            records_dropped: ipfix.records_dropped,
            send_errors: ipfix.send_errors,
        }),
        metrics,
    }
}

/// Label values a hostile or unlucky system can produce: interface names
/// are any bytes but `/`, NUL and whitespace (`ip link set dev eth0 name
/// 'a"b'` works), read lossily as UTF-8; the kernel release is whatever
/// a custom build calls itself.
fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        "quote\"in",
        "back\\slash",
        "new\nline",
        "\\n",
        "\\\"",
        "ends with a backslash\\",
        "\"",
        "}",
        "{",
        "=",
        "a\",b=\"c",
        "}{=,\"x\"=\"y\"}",
        "# HELP not a comment",
        "tab\tand\rcarriage return",
        "\u{1}\u{7f} controls",
        "ünïcödé ☃ 𝄞 \u{202e}rtl\u{200d}",
        "\u{fffd}\u{fffd} (non-UTF-8 bytes, read lossily)",
        " ",
    ]
    .map(String::from)
    .to_vec();
    v.push("\"\\\n}{=,é".repeat(2000));
    v
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Issue 23: hostile values through every label whose value is not a
/// fixed name (interface, hook, mode, map, and build_info's version,
/// revision, kernel and arch): the page must parse (promtool and the
/// strict parser) and give each value back exactly. Every other label
/// takes its values from fixed tables, checked to need no escaping; a new
/// label name fails the test until it is added here.
#[test]
fn hostile_label_values_keep_the_page_valid() {
    let hostile = hostile();
    let n = hostile.len();
    let mut s = snapshot();
    let template = s.interfaces[0].clone();
    s.interfaces = (0..n)
        .map(|i| {
            let mut itf = template.clone();
            itf.name = hostile[i].clone();
            for (j, h) in itf.hooks.iter_mut().enumerate() {
                h.hook = leak(&hostile[(i + j + 1) % n]);
                h.mode = leak(&hostile[(i + j + 2) % n]);
            }
            for (j, (h, _)) in itf.per_hook.iter_mut().enumerate() {
                *h = leak(&hostile[(i + j + 3) % n]);
            }
            itf
        })
        .collect();
    s.maps = hostile
        .iter()
        .map(|h| netprobe::snapshot::MapFill {
            name: leak(h),
            entries: 1,
            capacity: 2,
        })
        .collect();
    s.version = leak(&hostile[0]);
    s.revision = leak(&hostile[1]);
    s.kernel_release = hostile[2].clone();
    s.arch = leak(&hostile[n - 1]);
    let page = netprobe::metrics::render(&s);

    let samples = exposition::validate(&page);
    let mut seen: std::collections::BTreeMap<&str, std::collections::BTreeSet<&str>> =
        Default::default();
    for smp in &samples {
        for (k, v) in &smp.labels {
            seen.entry(k.as_str()).or_default().insert(v.as_str());
        }
    }
    let all: std::collections::BTreeSet<&str> = hostile.iter().map(String::as_str).collect();
    for label in ["interface", "hook", "mode", "map"] {
        assert_eq!(seen.remove(label).as_ref(), Some(&all), "label {label}");
    }
    let info: Vec<&Vec<(String, String)>> = samples
        .iter()
        .filter(|x| x.name == "netprobe_build_info")
        .map(|x| &x.labels)
        .collect();
    let expected = [
        ("version", &hostile[0]),
        ("revision", &hostile[1]),
        ("kernel", &hostile[2]),
        ("arch", &hostile[n - 1]),
    ]
    .map(|(k, v)| (k.to_string(), v.clone()));
    assert_eq!(info, [&expected.to_vec()]);
    for label in ["version", "revision", "kernel", "arch"] {
        seen.remove(label);
    }
    let fixed = [
        "family", "protocol", "flag", "reason", "change", "kind", "rule", "action", "receiver",
        "result",
    ];
    for (label, values) in &seen {
        assert!(
            fixed.contains(label),
            "label {label} is new: add its values to this test (hostile if they come from outside)"
        );
        for v in values {
            assert!(
                !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "label {label}: fixed value {v:?} needs escaping or is empty"
            );
        }
    }
}

#[test]
fn golden_page_is_valid_exposition() {
    let samples = exposition::validate(&netprobe::metrics::render(&snapshot()));
    assert!(samples.iter().any(|s| s.name == "netprobe_build_info"));
}
