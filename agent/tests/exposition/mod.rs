//! Checks a /metrics page two ways: `promtool check metrics` (Prometheus'
//! own parser; build/deps.sh installs it) and a strict parser of the text
//! format 0.0.4 written here, which also gives back every label value
//! unescaped, so a test can compare them with what went in.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// One sample line: metric name, labels in order (values unescaped), value.
#[derive(Debug)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
}

/// `page` must pass `promtool check metrics` (parse errors and lint
/// problems alike) and the strict parser; returns its samples. Fails, with
/// what to do, when promtool is not installed: a check that cannot run
/// must not pass.
pub fn validate(page: &str) -> Vec<Sample> {
    promtool(page);
    parse(page).unwrap_or_else(|e| panic!("{e}\n--- page ---\n{page}"))
}

fn promtool(page: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool: {e}: this test needs `promtool check metrics` \
             (Debian: apt-get install prometheus; build/deps.sh installs it)"
        ),
    };
    // promtool may stop reading at the first error: a broken pipe is
    // then its verdict, read below.
    let _ = child.stdin.take().unwrap().write_all(page.as_bytes());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the page ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn number(s: &str) -> bool {
    matches!(s, "+Inf" | "-Inf" | "NaN") || s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// The strict parser: HELP and TYPE before a family's samples, each
/// family once, sample names of the family in hand (a histogram's
/// `_bucket`, `_sum`, `_count`), label names valid and not repeated,
/// label values with only the three escapes the format has (`\\`, `\"`,
/// `\n`), one space, a number, nothing after it.
pub fn parse(page: &str) -> Result<Vec<Sample>, String> {
    if !page.ends_with('\n') {
        return Err("the page does not end with a newline".into());
    }
    let mut samples = Vec::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for (n, line) in page.lines().enumerate() {
        let at = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (word, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let text = parts.next().unwrap_or("");
            if !metric_name(name) {
                return Err(at("bad metric name in a comment"));
            }
            match word {
                "HELP" => {
                    if types.contains_key(name) {
                        return Err(at("HELP after the family's TYPE, or a family twice"));
                    }
                    if text.is_empty() {
                        return Err(at("empty HELP"));
                    }
                }
                "TYPE" => {
                    if !matches!(text, "counter" | "gauge" | "histogram") {
                        return Err(at("unknown TYPE"));
                    }
                    if types.insert(name.into(), text.into()).is_some() {
                        return Err(at("a family twice"));
                    }
                    current = Some((name.into(), text.into()));
                }
                _ => return Err(at("a comment that is neither HELP nor TYPE")),
            }
            continue;
        }
        let (name, labels, value) = sample(line).map_err(|e| at(&e))?;
        let Some((family, kind)) = &current else {
            return Err(at("a sample before any TYPE"));
        };
        let belongs = name == *family
            || (kind == "histogram"
                && ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(family.as_str())));
        if !belongs {
            return Err(at(&format!("a sample outside its family {family}")));
        }
        if !number(&value) {
            return Err(at("the value is not a number"));
        }
        samples.push(Sample { name, labels });
    }
    Ok(samples)
}

type Parsed = (String, Vec<(String, String)>, String);

fn sample(line: &str) -> Result<Parsed, String> {
    let end = line.find(['{', ' ']).ok_or("no space before the value")?;
    let name = &line[..end];
    if !metric_name(name) {
        return Err("bad metric name".into());
    }
    let mut rest = &line[end..];
    let mut labels: Vec<(String, String)> = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"").ok_or("a label without =\"")?;
            let lname = &rest[..eq];
            if !label_name(lname) {
                return Err(format!("bad label name {lname:?}"));
            }
            if labels.iter().any(|(k, _)| k == lname) {
                return Err(format!("label {lname} twice"));
            }
            rest = &rest[eq + 2..];
            let mut value = String::new();
            let mut chars = rest.char_indices();
            let close = loop {
                match chars.next().ok_or("an unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("a dangling backslash")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("invalid escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((lname.into(), value));
            rest = &rest[close + 1..];
            if let Some(r) = rest.strip_prefix(',') {
                rest = r;
            } else if !rest.starts_with('}') {
                return Err("no , or } after a label value".into());
            }
        }
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or("no single space before the value")?;
    if value.is_empty() || value.contains(' ') {
        return Err("not exactly one value".into());
    }
    Ok((name.into(), labels, value.into()))
}

#[test]
fn the_strict_parser_refuses_what_it_should() {
    let ok = "# HELP a x\n# TYPE a gauge\na{b=\"q\\\"\\\\\\n\",c=\"}{=,\"} 1\n";
    let s = parse(ok).unwrap();
    assert_eq!(s[0].labels[0].1, "q\"\\\n");
    assert_eq!(s[0].labels[1].1, "}{=,");
    for bad in [
        "# HELP a x\n# TYPE a gauge\na{b=\"q\"\"} 1\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"q\\x\"} 1\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"q\n\"} 1\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"q\\\"} 1\n",
        "# HELP a x\n# TYPE a gauge\nb 1\n",
        "# HELP a x\n# TYPE a gauge\na 1 2 3\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"1\",b=\"2\"} 1\n",
        "# HELP a x\n# TYPE a gauge\na 1",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}
