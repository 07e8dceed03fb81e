//! The exporter's messages decoded by an independent parser
//! (netflow_parser) as the oracle: templates, sequence numbers, MTU, and
//! delta counts that add up to the flow table's.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::*;

const BOOT_TO_UNIX: i64 = 1_700_000_000_000_000_000;
const S: u64 = 1_000_000_000;

/// One decoded message: its header and data records (IE name -> value).
#[derive(Debug)]
struct Decoded {
    length: u64,
    sequence: u64,
    export_time: u64,
    domain: u64,
    templates: usize,
    records: Vec<HashMap<String, Value>>,
}

/// Decodes messages in order with one parser (it keeps the templates).
fn decode(parser: &mut netflow_parser::NetflowParser, msgs: &[Vec<u8>]) -> Vec<Decoded> {
    let mut out = Vec::new();
    for m in msgs {
        let r = parser.parse_bytes(m);
        assert!(r.error.is_none(), "oracle error: {:?}", r.error);
        let v = serde_json::to_value(&r.packets).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1, "one packet per message");
        let p = &v[0]["IPFix"];
        let h = &p["header"];
        let mut d = Decoded {
            length: h["length"].as_u64().unwrap(),
            sequence: h["sequence_number"].as_u64().unwrap(),
            export_time: h["export_time"].as_u64().unwrap(),
            domain: h["observation_domain_id"].as_u64().unwrap(),
            templates: 0,
            records: Vec::new(),
        };
        for set in p["flowsets"].as_array().unwrap() {
            let body = &set["body"];
            // A set holding one template decodes as the singular form.
            for kind in ["Templates", "OptionsTemplates"] {
                d.templates += body[kind].as_array().map_or(0, |a| a.len());
            }
            for kind in ["Template", "OptionsTemplate"] {
                d.templates += usize::from(body[kind].is_object());
            }
            for kind in ["Data", "OptionsData"] {
                let Some(recs) = body[kind]["fields"].as_array() else {
                    continue;
                };
                for rec in recs {
                    let mut fields = HashMap::new();
                    for pair in rec.as_array().unwrap() {
                        let name = pair[0]["IANA"].as_str().unwrap().to_string();
                        fields.insert(name, pair[1].clone());
                    }
                    d.records.push(fields);
                }
            }
            assert!(
                body.get("NoTemplate").is_none(),
                "data without template: {body}"
            );
        }
        out.push(d);
    }
    out
}

fn num(r: &HashMap<String, Value>, k: &str) -> u64 {
    let v = &r[k];
    v["DataNumber"]
        .as_u64()
        .or_else(|| {
            v["Duration"]["secs"]
                .as_u64()
                .map(|s| s * 1000 + v["Duration"]["nanos"].as_u64().unwrap() / 1_000_000)
        })
        .unwrap_or_else(|| panic!("{k}: {v}"))
}

fn addr(r: &HashMap<String, Value>, k: &str) -> IpAddr {
    let v = &r[k];
    v["Ip4Addr"]
        .as_str()
        .or(v["Ip6Addr"].as_str())
        .unwrap()
        .parse()
        .unwrap()
}

fn key(src: &str, dst: &str, sport: u16, dport: u16, proto: u8) -> FlowKey {
    FlowKey {
        ifindex: 3,
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        src_port: sport,
        dst_port: dport,
        proto,
    }
}

fn entry(
    k: FlowKey,
    rx: (u64, u64),
    tx: (u64, u64),
    first: u64,
    last: u64,
    flags: u8,
) -> FlowEntry {
    FlowEntry {
        key: k,
        counters: FlowCounters {
            rx_packets: rx.0,
            rx_bytes: rx.1,
            tx_packets: tx.0,
            tx_bytes: tx.1,
            first_seen_ns: first,
            last_seen_ns: last,
            tcp_flags: flags,
        },
    }
}

fn table(at: u64, flows: Vec<FlowEntry>) -> FlowTable {
    FlowTable {
        read_at_boot_ns: at,
        boot_to_unix_ns: BOOT_TO_UNIX,
        flows,
        unattributed: Vec::new(),
    }
}

fn wall(boot_ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos((boot_ns as i64 + BOOT_TO_UNIX) as u64)
}

/// Per (src, dst, sport, dport, proto, direction): summed packets, bytes.
type Sums = HashMap<(IpAddr, IpAddr, u64, u64, u64, u64), (u64, u64)>;

fn sums(decoded: &[Decoded]) -> Sums {
    let mut s = Sums::new();
    for d in decoded {
        for r in &d.records {
            if !r.contains_key("OctetDeltaCount") {
                continue;
            }
            let (sa, da) = if r.contains_key("SourceIpv4address") {
                (
                    addr(r, "SourceIpv4address"),
                    addr(r, "DestinationIpv4address"),
                )
            } else {
                (
                    addr(r, "SourceIpv6address"),
                    addr(r, "DestinationIpv6address"),
                )
            };
            let proto = match &r["ProtocolIdentifier"]["ProtocolType"] {
                Value::String(p) if p == "Tcp" => 6,
                Value::String(p) if p == "Udp" => 17,
                Value::String(p) if p == "Icmp" => 1,
                Value::String(p) if p == "Ipv6Icmp" => 58,
                other => panic!("protocol {other}"),
            };
            let k = (
                sa,
                da,
                num(r, "SourceTransportPort"),
                num(r, "DestinationTransportPort"),
                proto,
                num(r, "FlowDirection"),
            );
            let e = s.entry(k).or_default();
            e.0 += num(r, "PacketDeltaCount");
            e.1 += num(r, "OctetDeltaCount");
        }
    }
    s
}

#[test]
fn messages_carry_templates_sequence_numbers_and_fit_the_mtu() {
    let cfg = IpfixConfig {
        mtu: 700,
        domain_id: 42,
        ..IpfixConfig::default()
    };
    let mut x = IpfixExporter::new(&cfg, Some(Duration::from_secs(60)));
    // 60 idle flows of each family: all due at once.
    let mut flows = Vec::new();
    for i in 0..60u16 {
        flows.push(entry(
            key("198.18.0.1", "198.18.1.1", 1000 + i, 53, 17),
            (1, 80),
            (0, 0),
            S,
            S,
            0,
        ));
        flows.push(entry(
            key("2001:db8::1", "2001:db8::2", 2000 + i, 443, 6),
            (0, 0),
            (2, 200),
            S,
            S,
            0x12,
        ));
    }
    let t = table(100 * S, flows);
    let msgs = x.observe(&t, wall(100 * S));
    assert!(msgs.len() > 10, "{} messages", msgs.len());
    let mut p = netflow_parser::NetflowParser::default();
    let d = decode(&mut p, &msgs);
    let mut seq = 0;
    for (m, d) in msgs.iter().zip(&d) {
        assert!(
            m.len() <= cfg.mtu - IP_TRANSPORT_OVERHEAD,
            "{} bytes",
            m.len()
        );
        assert_eq!(d.length as usize, m.len());
        assert_eq!(d.sequence, seq, "records before this message");
        assert_eq!(d.domain, 42);
        assert_eq!(d.export_time, 1_700_000_100);
        seq += d.records.len() as u64;
    }
    assert_eq!(d[0].templates, 4, "templates lead the first message");
    assert!(d[1..].iter().all(|d| d.templates == 0));
    assert_eq!(seq, 120);
    assert_eq!(x.sequence() as u64, 120);
    let s = sums(&d);
    assert_eq!(s.len(), 120);
    let v6 = s[&(
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
        2007,
        443,
        6,
        1,
    )];
    assert_eq!(v6, (2, 200));
    // Fields of one record, read back by the oracle.
    let r = d
        .iter()
        .flat_map(|d| &d.records)
        .find(|r| r.contains_key("SourceIpv6address"))
        .unwrap();
    assert_eq!(num(r, "TcpControlBits"), 0x12);
    assert_eq!(
        (num(r, "IngressInterface"), num(r, "EgressInterface")),
        (0, 3)
    );
    assert_eq!(num(r, "FlowEndReason"), EndReason::IdleTimeout as u64);
    assert_eq!(num(r, "FlowStartMilliseconds"), 1_700_000_001_000);
    assert_eq!(num(r, "FlowEndMilliseconds"), 1_700_000_001_000);
}

#[test]
fn deltas_over_a_flows_life_add_up_to_the_table_counts() {
    let cfg = IpfixConfig::default(); // active 60 s, idle 15 s
    let mut x = IpfixExporter::new(&cfg, Some(Duration::from_secs(60)));
    let mut p = netflow_parser::NetflowParser::default();
    let long = key("198.18.0.1", "198.18.0.2", 40000, 5201, 6);
    let back = key("198.18.0.2", "198.18.0.1", 5201, 40000, 6);
    let both = key("2001:db8::1", "2001:db8::2", 7, 7, 17);
    let mut d = Vec::new();
    let (mut rx, mut tx) = ((0, 0), (0, 0));
    // A 5-minute TCP flow read every 5 s, growing each read; its reverse
    // direction sent on the same interface; a UDP entry with rx and tx.
    for i in 1..=60u64 {
        let now = i * 5 * S;
        rx = (rx.0 + i, rx.1 + 1500 * i);
        tx = (tx.0 + 2, tx.1 + 66 * 2);
        let flags = if i == 60 { 0x13 } else { 0x12 };
        let flows = vec![
            entry(long, rx, (0, 0), 3 * S, now - S, flags),
            entry(back, (0, 0), tx, 3 * S, now - S, flags),
            entry(both, (i, 100 * i), (2 * i, 50 * i), 4 * S, now - 2 * S, 0),
        ];
        d.extend(decode(&mut p, &x.observe(&table(now, flows), wall(now))));
    }
    // Active timeout: each flow reported about once a minute meanwhile.
    let s = sums(&d);
    let (lp, lb) = s[&(long.src, long.dst, 40000, 5201, 6, 0)];
    assert!(
        lp > 0 && lp < rx.0,
        "reported periodically, not yet all: {lp}"
    );
    let reports = d
        .iter()
        .flat_map(|d| &d.records)
        .filter(|r| num(r, "SourceTransportPort") == 40000)
        .count();
    assert!(
        (4..=6).contains(&reports),
        "{reports} active-timeout reports over 5 min"
    );
    let _ = lb;
    // FIN seen and quiet for one read: end of flow. The UDP entry goes idle.
    let mut now = 61 * 5 * S;
    let last = vec![
        entry(long, rx, (0, 0), 3 * S, 60 * 5 * S - S, 0x13),
        entry(back, (0, 0), tx, 3 * S, 60 * 5 * S - S, 0x13),
        entry(both, (60, 6000), (120, 3000), 4 * S, 60 * 5 * S - 2 * S, 0),
    ];
    d.extend(decode(
        &mut p,
        &x.observe(&table(now, last.clone()), wall(now)),
    ));
    now += 20 * S;
    d.extend(decode(&mut p, &x.observe(&table(now, last), wall(now))));
    let s = sums(&d);
    assert_eq!(s[&(long.src, long.dst, 40000, 5201, 6, 0)], rx);
    assert_eq!(s[&(back.src, back.dst, 5201, 40000, 6, 1)], tx);
    assert_eq!(
        s[&(both.src, both.dst, 7, 7, 17, 0)],
        (60, 6000),
        "rx: ingress record"
    );
    assert_eq!(
        s[&(both.src, both.dst, 7, 7, 17, 1)],
        (120, 3000),
        "tx: egress record"
    );
    let reasons: Vec<u64> = d
        .iter()
        .flat_map(|d| &d.records)
        .filter(|r| r.contains_key("FlowEndReason"))
        .map(|r| num(r, "FlowEndReason"))
        .collect();
    assert!(reasons.contains(&(EndReason::EndOfFlow as u64)));
    assert!(reasons.contains(&(EndReason::ActiveTimeout as u64)));
    // The UDP entry's last counts went out with an active-timeout report,
    // so its idle expiry had nothing left to send: counted, no record.
    assert_eq!(x.stats.cuts[&EndReason::IdleTimeout], 1);
    assert_eq!(x.stats.cuts[&EndReason::EndOfFlow], 2);
    // Nothing more to report: no message at all.
    now += 5 * S;
    let t = table(
        now,
        vec![entry(both, (60, 6000), (120, 3000), 4 * S, 298 * S, 0)],
    );
    assert!(x.observe(&t, wall(now)).is_empty());
}

#[test]
fn entries_recreated_evicted_or_open_at_shutdown_lose_no_counted_packet() {
    let cfg = IpfixConfig::default();
    let mut x = IpfixExporter::new(&cfg, Some(Duration::from_secs(60)));
    let mut p = netflow_parser::NetflowParser::default();
    let a = key("198.18.0.1", "198.18.0.9", 1, 2, 17);
    let b = key("198.18.0.3", "198.18.0.9", 3, 4, 17);
    let c = key("2001:db8::3", "2001:db8::9", 0x8000, 0, 58); // echo request
    let mut d = Vec::new();
    let mut obs = |x: &mut IpfixExporter, at: u64, f: Vec<FlowEntry>| {
        decode(&mut p, &x.observe(&table(at, f), wall(at)))
    };
    d.extend(obs(
        &mut x,
        5 * S,
        vec![
            entry(a, (10, 1000), (0, 0), S, 4 * S, 0),
            entry(b, (7, 700), (0, 0), S, 4 * S, 0),
        ],
    ));
    // a was evicted and created again between reads (new first_seen);
    // b left the table for good.
    d.extend(obs(
        &mut x,
        10 * S,
        vec![
            entry(a, (3, 300), (0, 0), 8 * S, 9 * S, 0),
            entry(c, (0, 0), (4, 400), 8 * S, 9 * S, 0),
        ],
    ));
    let t = table(
        12 * S,
        vec![
            entry(a, (5, 500), (0, 0), 8 * S, 11 * S, 0),
            entry(c, (0, 0), (6, 600), 8 * S, 11 * S, 0),
        ],
    );
    d.extend(decode(&mut p, &x.finish(&t, wall(12 * S))));
    let s = sums(&d);
    assert_eq!(s[&(a.src, a.dst, 1, 2, 17, 0)], (15, 1500));
    assert_eq!(s[&(b.src, b.dst, 3, 4, 17, 0)], (7, 700));
    // ICMPv6: ports 0, type/code in icmpTypeCodeIPv6.
    assert_eq!(s[&(c.src, c.dst, 0, 0, 58, 1)], (6, 600));
    let icmp = d
        .iter()
        .flat_map(|d| &d.records)
        .find(|r| r.contains_key("IcmpTypeCodeIpv6") && num(r, "IcmpTypeCodeIpv6") != 0)
        .unwrap();
    assert_eq!(num(icmp, "IcmpTypeCodeIpv6"), 0x8000);
    assert_eq!(x.stats.cuts[&EndReason::LackOfResources], 2);
    assert_eq!(x.stats.cuts[&EndReason::ForcedEnd], 2);
}

#[test]
fn baseline_skips_what_a_previous_run_exported() {
    let cfg = IpfixConfig {
        baseline_existing_flows: true,
        ..IpfixConfig::default()
    };
    let mut x = IpfixExporter::new(&cfg, Some(Duration::from_secs(60)));
    let mut p = netflow_parser::NetflowParser::default();
    let a = key("198.18.0.1", "198.18.0.2", 1, 2, 17);
    let mut d = decode(
        &mut p,
        &x.observe(
            &table(10 * S, vec![entry(a, (100, 9000), (0, 0), S, 9 * S, 0)]),
            wall(10 * S),
        ),
    );
    d.extend(decode(
        &mut p,
        &x.finish(
            &table(15 * S, vec![entry(a, (103, 9300), (0, 0), S, 14 * S, 0)]),
            wall(15 * S),
        ),
    ));
    assert_eq!(sums(&d)[&(a.src, a.dst, 1, 2, 17, 0)], (3, 300));
}

#[test]
fn templates_refresh_on_the_interval_and_options_report_unattributed_packets() {
    let cfg = IpfixConfig::default();
    let mut x = IpfixExporter::new(&cfg, Some(Duration::from_secs(60)));
    let mut p = netflow_parser::NetflowParser::default();
    let mut t = table(10 * S, Vec::new());
    t.unattributed = vec![
        Unattributed {
            ifindex: 3,
            direction: Direction::Ingress,
            packets: 1234,
            bytes: None,
        },
        Unattributed {
            ifindex: 3,
            direction: Direction::Egress,
            packets: 5,
            bytes: Some(500),
        },
    ];
    let d = decode(&mut p, &x.observe(&t, wall(10 * S)));
    assert_eq!(d[0].templates, 4);
    let opts: Vec<_> = d[0].records.iter().collect();
    assert_eq!(opts.len(), 2);
    assert_eq!(num(opts[0], "IgnoredPacketTotalCount"), 1234);
    assert_eq!(num(opts[0], "IngressInterface"), 3);
    assert!(!opts[0].contains_key("IgnoredOctetTotalCount"));
    assert_eq!(num(opts[1], "IgnoredOctetTotalCount"), 500);
    assert_eq!(num(opts[1], "EgressInterface"), 3);
    assert_eq!(num(opts[1], "ObservationDomainId"), 1);
    // Unchanged counts, before the refresh: nothing to send.
    t.read_at_boot_ns = 30 * S;
    assert!(x.observe(&t, wall(30 * S)).is_empty());
    // A minute after the templates: templates again, with the options.
    t.read_at_boot_ns = 71 * S;
    let d = decode(&mut p, &x.observe(&t, wall(71 * S)));
    assert_eq!((d[0].templates, d[0].records.len()), (4, 2));
    assert_eq!(x.stats.templates, 8);
    // TCP: templates once per session.
    let mut x = IpfixExporter::new(&cfg, None);
    assert!(!x.observe(&t, wall(71 * S)).is_empty());
    t.unattributed[0].packets += 1;
    let d = decode(&mut p, &x.observe(&t, wall(200 * S)));
    assert_eq!(d[0].templates, 0);
    x.new_session();
    let d = decode(&mut p, &x.observe(&t, wall(201 * S)));
    assert_eq!((d[0].templates, d[0].sequence), (4, 0));
}

#[test]
fn the_sink_sends_over_udp_and_tcp_and_reconnects_with_a_new_session() {
    let a = key("198.18.0.1", "198.18.0.2", 1, 2, 17);
    let t1 = table(30 * S, vec![entry(a, (1, 100), (0, 0), S, 2 * S, 0)]);

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let cfg = IpfixConfig {
        collector: Collector::parse(&udp.local_addr().unwrap().to_string()).unwrap(),
        ..IpfixConfig::default()
    };
    let mut sink = IpfixSink::new(&cfg).unwrap();
    sink.export(&t1, wall(30 * S));
    let mut buf = [0u8; 2048];
    let n = udp.recv(&mut buf).unwrap();
    let d = decode(
        &mut netflow_parser::NetflowParser::default(),
        &[buf[..n].to_vec()],
    );
    assert_eq!(d[0].records.len(), 1);
    assert_eq!((sink.stats().messages, sink.stats().send_errors), (1, 0));

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = IpfixConfig {
        collector: Collector::parse(&format!("tcp://{}", l.local_addr().unwrap())).unwrap(),
        ..IpfixConfig::default()
    };
    let mut sink = IpfixSink::new(&cfg).unwrap();
    sink.export(&t1, wall(30 * S));
    let (mut conn, _) = l.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hdr = [0u8; 4];
    conn.read_exact(&mut hdr).unwrap();
    let len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
    let mut rest = vec![0u8; len - 4];
    conn.read_exact(&mut rest).unwrap();
    assert_eq!(u16::from_be_bytes([hdr[0], hdr[1]]), 10);
    // The collector goes away; sends fail until a new connection.
    drop(conn);
    drop(l);
    for i in 0..3 {
        let b = key("198.18.0.5", "198.18.0.6", 1, 2 + i as u16, 17);
        let t = table((40 + i) * S, vec![entry(b, (1, 100), (0, 0), S, 2 * S, 0)]);
        sink.export(&t, wall((40 + i) * S));
    }
    let s = sink.stats();
    assert!(s.send_errors >= 1, "{s:?}");
    assert!(s.records_dropped >= 1, "{s:?}");
    let m = sink.metrics();
    assert!(m
        .iter()
        .any(|m| m.name == "netprobe_ipfix_flows_expired_total"));
}
