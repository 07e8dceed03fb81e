//! Fuzzing of the user-space parsers, bounded so it runs in `cargo test`:
//! flag values (`parse_duration`, the whole argv through argh), interface
//! filters and their glob matcher, HTTP request heads and targets
//! (framing, parsing, routing), the `--metrics-auth-file` format and the
//! `--blocklist`/`--allowlist` files.
//!
//! Each target first replays its committed seed corpus,
//! `tests/corpus/<target>/*` (add a file there for every bug found), then
//! runs proptest: random inputs and mutations of the corpus entries,
//! checked against properties (no panic, results within the documented
//! bounds, agreement with a reference or a round trip).
//!
//! Why proptest and not cargo-fuzz: cargo-fuzz needs a nightly toolchain
//! (`-Zsanitizer`) and libFuzzer runs open-ended; this project builds on
//! stable, and its test command must be bounded. proptest runs on stable,
//! shrinks failures to a minimal input, and records them under
//! `proptest-regressions/`. `PROPTEST_CASES=100000 cargo test --test
//! fuzz_parsers` runs a longer pass (the default is a few hundred cases
//! per target, about a second in all).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use argh::FromArgs;
use netprobe::config::{glob_match, parse_duration, Args, InterfaceFilter};
use netprobe::http::auth::{base64, Credentials};
use netprobe::http::head::{cannot_be_request, parse_head, path_of, HeadScanner, MAX_HEADERS};
use netprobe::http::{needs_auth, respond, route};
use netprobe::snapshot::Published;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per target unless `PROPTEST_CASES` says otherwise.
fn config(cases: u32) -> Config {
    let mut c = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c
}

/// The seed corpus of a target, sorted by file name.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} is missing: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "seed corpus {} is empty", dir.display());
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn corpus_strings(target: &str) -> Vec<String> {
    corpus(target)
        .into_iter()
        .map(|b| String::from_utf8(b).expect("corpus entries of this target are UTF-8"))
        .collect()
}

/// One mutation: overwrite, insert, delete or duplicate a run of bytes.
#[derive(Clone, Debug)]
enum Edit {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Edit::Insert(i, v)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), 1usize..8, 1usize..64).prop_map(|(i, n, k)| Edit::Repeat(i, n, k)),
    ]
}

fn apply(mut v: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            Edit::Set(i, b) if !v.is_empty() => {
                let i = i % v.len();
                v[i] = *b;
            }
            Edit::Set(..) => v.push(0),
            Edit::Insert(i, bytes) => {
                let i = at(*i, v.len());
                v.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = at(*i, v.len());
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Edit::Repeat(i, n, k) => {
                let i = at(*i, v.len());
                let end = (i + n).min(v.len());
                let run = v[i..end].to_vec();
                for _ in 0..*k {
                    v.splice(end..end, run.iter().copied());
                }
            }
        }
    }
    v
}

/// Corpus entries with a few random edits, or random bytes.
fn bytes_from(target: &str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(target);
    prop_oneof![
        3 => (prop::sample::select(seeds), prop::collection::vec(edit(), 0..6)).prop_map(|(s, e)| apply(s, &e)),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ]
}

fn text_from(target: &str) -> impl Strategy<Value = String> {
    bytes_from(target).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

// ---------------------------------------------------------------------------
// parse_duration

fn check_duration(s: &str) {
    match parse_duration(s) {
        Ok(d) => {
            assert!(d <= Duration::from_secs(7 * 86400), "{s:?} -> {d:?}");
            let t = s.trim();
            let unit = ["ms", "s", "m", "h"]
                .iter()
                .find(|u| t.ends_with(*u))
                .expect("accepted without a unit");
            let num = &t[..t.len() - unit.len()];
            assert!(
                !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
                "{s:?}"
            );
        }
        Err(e) => assert!(!e.is_empty()),
    }
}

#[test]
fn duration_corpus() {
    for s in corpus_strings("duration") {
        check_duration(&s);
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn duration_never_panics_and_stays_bounded(s in prop_oneof![text_from("duration"), "[ 0-9.]{0,8}(ms|s|m|h|sec|x|)[ ]?"]) {
        check_duration(&s);
    }

    #[test]
    fn duration_of_whole_units_is_exact(n in 0u64..10_000, unit in prop::sample::select(vec![("ms", 1u64), ("s", 1000), ("m", 60_000), ("h", 3_600_000)])) {
        let want = Duration::from_millis(n * unit.1);
        let got = parse_duration(&format!("{n}{}", unit.0));
        if want <= Duration::from_secs(7 * 86400) {
            prop_assert_eq!(got, Ok(want));
        } else {
            prop_assert!(got.is_err());
        }
    }
}

// ---------------------------------------------------------------------------
// argv

const FLAGS: &[&str] = &[
    "--metrics-port",
    "--listen-address",
    "--collect-interval",
    "--interface-filter",
    "--xdp-mode",
    "--max-flows",
    "--top-flows",
    "--max-interfaces",
    "--flow-admit-rate",
    "--flow-admit-burst",
    "--flow-idle-timeout",
    "--ringbuf-size",
    "--http-workers",
    "--http-max-connections",
    "--http-timeout",
    "--http-max-request-bytes",
    "--metrics-auth-file",
    "--log-level",
    "--version",
    "--help",
];
const VALUES: &[&str] = &[
    "0",
    "1",
    "2",
    "8081",
    "65535",
    "70000",
    "-1",
    "16",
    "4096",
    "4097",
    "65536",
    "262144",
    "5000",
    "1024",
    "10000",
    "10001",
    "100ms",
    "50ms",
    "5s",
    "1h",
    "2h",
    "5",
    "auto",
    "native",
    "generic",
    "off",
    "turbo",
    "0.0.0.0",
    "::",
    "not-an-ip",
    "eth0",
    "ppp*,wlan?",
    "a/b",
    "debug",
    "loud",
    "",
    " ",
    "=",
];

fn check_args(argv: &[String]) {
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    match Args::from_args(&["netprobe-agent"], &refs) {
        Ok(a) => {
            assert!((16..=16 << 20).contains(&a.max_flows), "{argv:?}");
            assert!(a.top_flows <= 10_000);
            assert!((1..=4096).contains(&a.max_interfaces));
            assert!(a.flow_admit_burst >= 1);
            assert!(a.ringbuf_size >= 4096 && a.ringbuf_size.is_power_of_two());
            assert!((1..=64).contains(&a.http_workers));
            assert!((1..=4096).contains(&a.http_max_connections));
            assert!((1024..=1 << 20).contains(&a.http_max_request_bytes));
            assert!(
                a.http_timeout >= Duration::from_millis(100)
                    && a.http_timeout <= Duration::from_secs(300)
            );
            assert!(
                a.collect_interval >= Duration::from_millis(100)
                    && a.collect_interval <= Duration::from_secs(3600)
            );
            assert!(a.flow_idle_timeout <= Duration::from_secs(7 * 86400));
            // The filter in force parses or is refused, never panics.
            let _ = a.interface_filter();
        }
        Err(e) => assert!(!e.output.is_empty()),
    }
}

#[test]
fn argv_corpus() {
    for s in corpus_strings("argv") {
        let argv: Vec<String> = if s.is_empty() {
            Vec::new()
        } else {
            s.split('\n').map(String::from).collect()
        };
        check_args(&argv);
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FLAGS).prop_map(String::from),
        4 => prop::sample::select(VALUES).prop_map(String::from),
        1 => "\\PC{0,12}",
        1 => (prop::sample::select(FLAGS), prop::sample::select(VALUES)).prop_map(|(f, v)| format!("{f}={v}")),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn argv_never_panics_and_values_stay_in_range(argv in prop::collection::vec(token(), 0..12)) {
        check_args(&argv);
    }
}

// ---------------------------------------------------------------------------
// Interface filters and globs

fn check_filter(s: &str) {
    let Ok(f) = InterfaceFilter::parse(s) else {
        return;
    };
    assert!(!f.patterns().is_empty());
    for (i, p) in f.patterns().iter().enumerate() {
        assert!((1..=15).contains(&p.len()), "{s:?}: {p:?}");
        assert!(
            !p.chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control()),
            "{s:?}: {p:?}"
        );
        assert!(!f.patterns()[..i].contains(p), "{s:?}: duplicate {p:?}");
        assert!(f.matches(p), "{s:?}: {p:?} does not match itself");
    }
    for name in f.exact_names() {
        assert!(!name.contains(['*', '?']));
    }
    // Round trip: the patterns, joined, parse to the same filter.
    assert_eq!(
        InterfaceFilter::parse(&f.patterns().join(",")).as_ref(),
        Ok(&f)
    );
}

/// Reference glob: plain recursion, fine for the short inputs it gets.
fn glob_reference(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob_reference(&p[1..], s) || (!s.is_empty() && glob_reference(p, &s[1..]))
        }
        (Some(b'?'), Some(_)) => glob_reference(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => glob_reference(&p[1..], &s[1..]),
        _ => false,
    }
}

#[test]
fn filter_and_glob_corpus() {
    for s in corpus_strings("interface_filter") {
        check_filter(&s);
    }
    for s in corpus_strings("glob") {
        let (p, name) = s.split_once('\n').unwrap_or((&s, ""));
        let got = glob_match(p.as_bytes(), name.as_bytes());
        if p.len() + name.len() < 40 {
            assert_eq!(
                got,
                glob_reference(p.as_bytes(), name.as_bytes()),
                "{p:?} {name:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn filters_never_panic_and_round_trip(s in prop_oneof![text_from("interface_filter"), "[a-z0-9*?,. /:\t-]{0,40}"]) {
        check_filter(&s);
    }

    #[test]
    fn glob_agrees_with_the_reference(p in "[ab*?]{0,8}", s in "[ab]{0,10}") {
        prop_assert_eq!(glob_match(p.as_bytes(), s.as_bytes()), glob_reference(p.as_bytes(), s.as_bytes()));
    }

    #[test]
    fn glob_is_fast_on_hostile_input(p in "[a*?]{0,64}", n in 0usize..4096) {
        let s = vec![b'a'; n];
        let t = Instant::now();
        let _ = glob_match(p.as_bytes(), &s);
        prop_assert!(t.elapsed() < Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------
// HTTP request heads and targets

fn check_head(buf: &[u8], chunk_sizes: &[usize]) {
    // Framing: fed in any chunks, the scanner finds the same end as at once.
    let whole = HeadScanner::default().find_end(buf);
    let mut scan = HeadScanner::default();
    let mut fed = Vec::new();
    let mut found = None;
    let mut sizes = chunk_sizes.iter().cycle();
    while fed.len() < buf.len() && found.is_none() {
        let n = (*sizes.next().unwrap_or(&1))
            .max(1)
            .min(buf.len() - fed.len());
        fed.extend_from_slice(&buf[fed.len()..fed.len() + n]);
        found = scan.find_end(&fed);
    }
    assert_eq!(found, whole, "{:?}", String::from_utf8_lossy(buf));
    if let Some(end) = whole {
        assert!(end <= buf.len() && end >= 2 && buf[end - 1] == b'\n');
    }

    let head = &buf[..whole.unwrap_or(buf.len())];
    let parsed = parse_head(head);
    if cannot_be_request(head) {
        assert!(
            parsed.is_err(),
            "rejected early but parses: {:?}",
            String::from_utf8_lossy(head)
        );
    }
    match parsed {
        Ok(h) => {
            let m = h.method.as_str();
            assert!(!m.is_empty() && m.len() <= 32);
            assert!(!h.target.is_empty() && h.target.bytes().all(|b| (0x21..0x7f).contains(&b)));
            assert!(
                h.version == tiny_http::HTTPVersion(1, 0)
                    || h.version == tiny_http::HTTPVersion(1, 1)
            );
            assert!(h.headers.len() <= MAX_HEADERS);
            let path = h.path();
            assert!(path.starts_with('/') || path == "*", "{path:?}");
            let _ = h.has_body();
            let _ = h.keep_alive();
            check_target(m, &h.target);
        }
        Err(e) => assert!([400, 431, 505].contains(&e.status())),
    }
}

fn check_target(method: &str, target: &str) {
    let path = path_of(target);
    let published = Published::default();
    let reply = respond(method, path, &published, Duration::from_secs(15));
    let bare = path.split(['?', '#']).next().unwrap();
    let known = ["/", "/metrics", "/status", "/healthz"].contains(&bare);
    let allowed = method == "GET" || method == "HEAD";
    let want: &[u16] = match (known, allowed) {
        (false, _) => &[404],
        (true, false) => &[405],
        // An empty Published: /healthz says "starting" (503).
        (true, true) if bare == "/healthz" => &[503],
        (true, true) => &[200],
    };
    assert!(
        want.contains(&reply.status),
        "{method} {target:?} -> {}",
        reply.status
    );
    assert_eq!(route(method, path).is_ok(), known && allowed);
    assert_eq!(needs_auth(path), bare != "/healthz");
}

#[test]
fn http_corpus() {
    for h in corpus("http_head") {
        check_head(&h, &[1]);
        check_head(&h, &[7, 3]);
    }
    for t in corpus_strings("http_target") {
        for m in ["GET", "HEAD", "POST", "BREW"] {
            check_target(m, &t);
        }
    }
}

/// A head that must parse: random method, path, version and fields.
fn valid_head() -> impl Strategy<Value = (String, String, bool, Vec<(String, String)>)> {
    (
        "[A-Z][A-Z!#$%&'*+.^_`|~0-9-]{0,15}",
        "/[!-~]{0,60}",
        any::<bool>(),
        prop::collection::vec(("[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}", "[ -~]{0,40}"), 0..12),
    )
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn heads_never_panic(buf in bytes_from("http_head"), chunks in prop::collection::vec(1usize..64, 1..4)) {
        check_head(&buf, &chunks);
    }

    #[test]
    fn valid_heads_parse_exactly((method, target, v11, fields) in valid_head(), chunks in prop::collection::vec(1usize..32, 1..4)) {
        let mut raw = format!("{method} {target} HTTP/1.{}\r\n", u8::from(v11));
        for (n, v) in &fields {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        check_head(raw.as_bytes(), &chunks);
        prop_assert_eq!(HeadScanner::default().find_end(raw.as_bytes()), Some(raw.len()));
        let h = parse_head(raw.as_bytes()).unwrap();
        prop_assert_eq!(h.method.as_str(), method.as_str());
        prop_assert_eq!(&h.target, &target);
        prop_assert_eq!(h.headers.len(), fields.len());
        for (got, (n, v)) in h.headers.iter().zip(&fields) {
            prop_assert_eq!(got.field.as_str().as_str(), n.as_str());
            prop_assert_eq!(got.value.as_str(), v.trim());
        }
    }

    #[test]
    fn targets_route_consistently(method in "[A-Z]{1,8}", target in prop_oneof![text_from("http_target"), "[/a-z?#%.]{0,24}"]) {
        check_target(&method, &target);
    }
}

// ---------------------------------------------------------------------------
// --metrics-auth-file

const MARK: &str = "Zq9-hunter2-Xw";

fn check_auth(text: &str) {
    match Credentials::parse(text) {
        Ok(c) => {
            assert!(!format!("{c:?}").contains(MARK));
            // The line it was read from is accepted back; a changed one is not.
            let line = text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                .unwrap()
                .trim_matches([' ', '\t']);
            let header = match line.split_once([' ', '\t']) {
                Some((s, rest)) if s.eq_ignore_ascii_case("bearer") => {
                    format!("Bearer {}", rest.trim_matches([' ', '\t']))
                }
                _ => format!(
                    "Basic {}",
                    String::from_utf8(base64(line.as_bytes())).unwrap()
                ),
            };
            assert!(c.check(Some(&header)), "{text:?}");
            assert!(!c.check(Some(&format!("{header}x"))));
            assert!(!c.check(None));
        }
        Err(e) => assert!(!e.contains(MARK), "the error quotes the secret: {e}"),
    }
}

#[test]
fn auth_corpus() {
    for t in corpus_strings("auth_file") {
        check_auth(&t);
        check_auth(&t.replace("hunter2", MARK));
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn auth_files_never_panic_or_leak(
        text in prop_oneof![
            text_from("auth_file"),
            ("(# [a-z ]{0,10}\n)?", "(Bearer |bearer\t|[a-z]{0,6}:|:|)", "[ -~]{0,12}", "(\r?\n)?")
                .prop_map(|(c, s, x, e)| format!("{c}{s}{MARK}{x}{e}")),
        ]
    ) {
        check_auth(&text);
    }
}

// ---------------------------------------------------------------------------
// blocklist and allowlist files

fn check_list(text: &str) {
    match netprobe::lists::parse(text) {
        Ok(list) => {
            let unique: std::collections::HashSet<_> = list.iter().collect();
            assert_eq!(unique.len(), list.len(), "duplicates kept: {text:?}");
            for c in &list {
                let max = if c.addr.is_ipv4() { 32 } else { 128 };
                assert!(c.prefix <= max, "{c} from {text:?}");
                // Host bits are cleared: the printed form parses back to itself.
                assert_eq!(
                    netprobe::lists::Cidr::parse(&c.to_string()),
                    Ok(*c),
                    "{text:?}"
                );
                assert!(c.contains(c.addr), "{c} does not contain its own address");
                assert!(netprobe::lists::contains(&list, c.addr));
            }
        }
        Err(e) => assert!(e.starts_with("line "), "error does not name the line: {e}"),
    }
}

#[test]
fn list_file_corpus() {
    for s in corpus_strings("list_file") {
        check_list(&s);
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn list_file_never_panics(s in prop_oneof![
        text_from("list_file"),
        "([0-9a-f:./# ]{0,40}\n){0,6}",
        "(([0-9]{1,3}\\.){3}[0-9]{1,3}(/[0-9]{1,3})?[ ]?(#.*)?\n){0,8}",
    ]) {
        check_list(&s);
    }

    #[test]
    fn list_file_cidrs_cover_their_members(a in any::<u32>(), p in 0u8..=32, host in any::<u32>()) {
        let c = netprobe::lists::Cidr::parse(&format!("{}/{p}", std::net::Ipv4Addr::from(a))).unwrap();
        let m = if p == 0 { 0 } else { u32::MAX << (32 - u32::from(p)) };
        let member = std::net::IpAddr::from(std::net::Ipv4Addr::from((a & m) | (host & !m)));
        prop_assert!(c.contains(member));
    }
}
