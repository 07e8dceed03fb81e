//! docs/flags.md is generated from `netprobe-agent --help`, so the page
//! cannot drift from the flags: this test renders the help as a table and
//! fails when the page differs. To regenerate after changing a flag:
//! `NETPROBE_BLESS=1 cargo test --test flags_doc`.

use std::path::PathBuf;

use argh::FromArgs;
use netprobe::config::Args;

const HEADER: &str = "\
# Flags

Every flag of `netprobe-agent`, as `netprobe-agent --help` prints it: the
default and the accepted range are in each description. This page is
generated from the help by `agent/tests/flags_doc.rs`, which fails when
they differ (`NETPROBE_BLESS=1 cargo test --test flags_doc` rewrites it).

Flags take their value as the next argument (`--collect-interval 1s`, not
`--collect-interval=1s`). Durations need a unit: `500ms`, `5s`, `1m`, `1h`.
Unknown flags, bad values and named interfaces that do not exist exit with
status 2 and a message naming the culprit; runtime failures (probes
refused, port in use) exit with status 1. A missing, unreadable, empty or
malformed file given to a flag (`--metrics-auth-file`, `--blocklist`,
`--allowlist`) is a command-line error (exit 2): the message names the file
and the line, never the file's content.

| flag | meaning |
|---|---|
";

/// The help's options as (flag, description) pairs: argh prints a flag at
/// two spaces of indent, its description after it or on the lines below,
/// every continuation line at the description column.
const DESC_COLUMN: usize = 20;

fn options(help: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let body = help
        .split_once("\nOptions:\n")
        .expect("--help has an Options: section")
        .1;
    for line in body.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with("  --") {
            // A name too long for its column stands alone on its line.
            let (flag, desc) = match line.as_bytes().get(DESC_COLUMN - 1) {
                Some(b' ') => line.split_at(DESC_COLUMN),
                _ => (line, ""),
            };
            out.push((flag.trim().to_string(), desc.trim().to_string()));
        } else {
            let last = out.last_mut().expect("a description line follows a flag");
            if !last.1.is_empty() {
                last.1.push(' ');
            }
            last.1.push_str(line.trim());
        }
    }
    out
}

fn render(help: &str) -> String {
    let mut page = HEADER.to_string();
    for (flag, desc) in options(help) {
        let flags = flag
            .split(", ")
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        page.push_str(&format!("| {flags} | {} |\n", desc.replace('|', "\\|")));
    }
    page
}

#[test]
fn docs_flags_page_is_the_help() {
    let help = match Args::from_args(&["netprobe-agent"], &["--help"]) {
        Err(early) if early.status.is_ok() => early.output,
        _ => panic!("--help did not print the help"),
    };
    let want = render(&help);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/flags.md");
    if std::env::var_os("NETPROBE_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "docs/flags.md differs from `netprobe-agent --help`; regenerate it with \
         NETPROBE_BLESS=1 cargo test --test flags_doc"
    );
}

#[test]
fn every_flag_is_a_row() {
    let help = match Args::from_args(&["netprobe-agent"], &["--help"]) {
        Err(early) => early.output,
        Ok(_) => panic!("--help parsed as a run"),
    };
    let opts = options(&help);
    // The usage line names every flag; each must have its row.
    let usage: Vec<&str> = help
        .lines()
        .next()
        .unwrap()
        .split(['[', ']', ' '])
        .filter(|w| w.starts_with("--"))
        .collect();
    assert!(usage.len() > 40, "usage line: {usage:?}");
    for f in usage {
        assert!(
            opts.iter().any(|(o, d)| o == f && !d.is_empty()),
            "{f} has no described row"
        );
    }
}
