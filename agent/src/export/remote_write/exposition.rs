//! Prometheus text exposition (format 0.0.4) back into [`Sample`]s: what
//! remote_write pushes is exactly what `/metrics` shows, read from the same
//! rendering rather than from a second list of metrics.
//!
//! Only what a text writer emits is accepted: `# ` comment lines, and
//! `name{label="value",...} value` without a timestamp, label values
//! escaped as `\\`, `\"` and `\n`.

use super::sample::Sample;

/// Every sample of `text`, stamped `timestamp_ms`.
///
/// # Errors
/// A line that is not a comment or a sample; the message quotes it.
pub fn parse(text: &str, timestamp_ms: i64) -> Result<Vec<Sample>, String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let s = parse_line(line, timestamp_ms)
            .ok_or_else(|| format!("not a Prometheus text sample: {line:?}"))?;
        out.push(s);
    }
    Ok(out)
}

fn parse_line(line: &str, timestamp_ms: i64) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let eq = rest.find("=\"")?;
            let key = &rest[..eq];
            let mut value = String::new();
            let mut chars = rest[eq + 2..].char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break eq + 2 + i + 1,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            rest = &rest[end..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    let value = match rest.strip_prefix(' ')? {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_labels_escapes_and_values() {
        let text = "# HELP a_total A.\n# TYPE a_total counter\n\
                    a_total 3\n\
                    b{x=\"1\",y=\"q\\\"uo,te}\\\\n\\n\"} 0.25\n\
                    c{} NaN\nd -Inf\n";
        let s = parse(text, 7).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(
            (s[0].name.as_str(), s[0].value, s[0].timestamp_ms),
            ("a_total", 3.0, 7)
        );
        assert_eq!(
            s[1].labels,
            vec![
                ("x".to_string(), "1".to_string()),
                ("y".to_string(), "q\"uo,te}\\n\n".to_string())
            ]
        );
        assert!(s[2].value.is_nan() && s[2].labels.is_empty());
        assert_eq!(s[3].value, f64::NEG_INFINITY);
        assert!(parse("x{a=\"1\" 2\n", 0).is_err());
        assert!(parse("x\n", 0).is_err());
        assert!(parse("x 1e\n", 0).is_err());
    }
}
