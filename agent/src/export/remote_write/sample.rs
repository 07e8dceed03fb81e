//! The remote_write input: one sample of one series, and the external
//! labels (`--remote-write-label NAME=VALUE`) every pushed series gets.

/// One sample of one series, as `/metrics` shows it at one collection.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Metric name (`netprobe_interface_rx_packets_total`).
    pub name: String,
    /// The series' labels, in any order, without `__name__`.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Collection time, Unix milliseconds.
    pub timestamp_ms: i64,
}

/// Labels added to every pushed series (`site`, `gateway`, ...). A label the
/// series already has wins, as with Prometheus' `external_labels`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExternalLabels(Vec<(String, String)>);

impl ExternalLabels {
    /// Parses `NAME=VALUE` pairs (one per `--remote-write-label`).
    ///
    /// # Errors
    /// A pair without `=`, a name that is not a Prometheus label name
    /// (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`), an empty value, or
    /// a name given twice. The message names the pair.
    pub fn parse<S: AsRef<str>>(pairs: &[S]) -> Result<ExternalLabels, String> {
        let mut out: Vec<(String, String)> = Vec::new();
        for p in pairs {
            let p = p.as_ref();
            let (name, value) = p
                .split_once('=')
                .ok_or_else(|| format!("--remote-write-label {p:?}: expected NAME=VALUE"))?;
            if !is_label_name(name) || name.starts_with("__") {
                return Err(format!(
                    "--remote-write-label {p:?}: {name:?} is not a label name \
                     ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
                ));
            }
            if value.is_empty() {
                return Err(format!("--remote-write-label {p:?}: empty value"));
            }
            if out.iter().any(|(n, _)| n == name) {
                return Err(format!("--remote-write-label {name:?} given twice"));
            }
            out.push((name.to_string(), value.to_string()));
        }
        out.sort();
        Ok(ExternalLabels(out))
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// The full, sorted label set of a sample as remote_write sends it:
    /// `__name__`, the sample's labels, then the external labels it lacks.
    pub fn label_set<'a>(&'a self, s: &'a Sample) -> Vec<(&'a str, &'a str)> {
        let mut set: Vec<(&str, &str)> = Vec::with_capacity(1 + s.labels.len() + self.0.len());
        set.push(("__name__", &s.name));
        set.extend(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for (k, v) in &self.0 {
            if !s.labels.iter().any(|(n, _)| n == k) {
                set.push((k, v));
            }
        }
        set.sort_unstable_by(|a, b| a.0.cmp(b.0));
        set
    }
}

/// A Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(labels: &[(&str, &str)]) -> Sample {
        Sample {
            name: "m_total".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 1.0,
            timestamp_ms: 0,
        }
    }

    #[test]
    fn parses_and_sorts_external_labels() {
        let e = ExternalLabels::parse(&["site=lab", "gateway=gw-1"]).unwrap();
        assert_eq!(
            e.pairs(),
            &[
                ("gateway".to_string(), "gw-1".to_string()),
                ("site".to_string(), "lab".to_string())
            ]
        );
    }

    #[test]
    fn rejects_bad_external_labels_naming_them() {
        for (bad, why) in [
            ("site", "NAME=VALUE"),
            ("1site=a", "not a label name"),
            ("__name__=x", "not a label name"),
            ("si-te=a", "not a label name"),
            ("site=", "empty value"),
        ] {
            let e = ExternalLabels::parse(&[bad]).unwrap_err();
            assert!(
                e.contains(why) && e.contains("--remote-write-label"),
                "{bad}: {e}"
            );
        }
        let e = ExternalLabels::parse(&["a=1", "a=2"]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn label_set_is_sorted_and_the_series_label_wins() {
        let e = ExternalLabels::parse(&["site=lab", "interface=ext"]).unwrap();
        let s = sample(&[("interface", "eth0"), ("hook", "xdp")]);
        assert_eq!(
            e.label_set(&s),
            vec![
                ("__name__", "m_total"),
                ("hook", "xdp"),
                ("interface", "eth0"),
                ("site", "lab")
            ]
        );
    }
}
