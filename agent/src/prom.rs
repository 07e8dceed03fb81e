//! The Prometheus text exposition format 0.0.4: the one writer of
//! families (HELP, TYPE) and samples, escaping every label value. A leaf:
//! the page's sections (metrics.rs, and the detection, socket, sink and
//! HTTP server parts) all write through it.

use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one metric family: HELP and TYPE, then its samples.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl<'a> Family<'a> {
    pub fn new(out: &'a mut String, name: &'a str, kind: &str, help: &str) -> Self {
        header(out, name, kind, help);
        Family { out, name }
    }

    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Value) -> &mut Self {
        self.sample_suffixed("", labels, value)
    }

    /// A sample of the family's name plus `suffix` (`_bucket`, `_sum`,
    /// `_count` of a histogram).
    pub fn sample_suffixed(
        &mut self,
        suffix: &str,
        labels: &[(&str, &str)],
        value: impl Value,
    ) -> &mut Self {
        self.out.push_str(self.name);
        self.out.push_str(suffix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        value.write(self.out);
        self.out.push('\n');
        self
    }
}

pub trait Value {
    fn write(&self, out: &mut String);
}

impl Value for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for usize {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for u32 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write(&self, out: &mut String) {
        if self.is_finite() {
            let _ = write!(out, "{self}");
        } else if self.is_nan() {
            out.push_str("NaN");
        } else {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        }
    }
}

fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A family's HELP and TYPE lines, for a writer that adds samples with
/// [`sample`].
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line, label values escaped.
pub fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl Value) {
    Family { out, name }.sample(labels, value);
}

/// A family with one sample and no labels.
pub fn one(out: &mut String, name: &str, kind: &str, help: &str, value: impl Value) {
    Family::new(out, name, kind, help).sample(&[], value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_label_values() {
        let mut s = String::new();
        escape_label(&mut s, "a\"b\\c\nd");
        assert_eq!(s, "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn float_formatting() {
        let mut s = String::new();
        2.5f64.write(&mut s);
        s.push(' ');
        f64::INFINITY.write(&mut s);
        s.push(' ');
        0.0f64.write(&mut s);
        assert_eq!(s, "2.5 +Inf 0");
    }

    #[test]
    fn header_sample_and_suffixes() {
        let mut s = String::new();
        header(&mut s, "a_total", "counter", "A.");
        sample(&mut s, "a_total", &[("k", "v\"")], 3u64);
        Family::new(&mut s, "h", "histogram", "H.").sample_suffixed("_count", &[], 2u64);
        assert_eq!(
            s,
            "# HELP a_total A.\n# TYPE a_total counter\na_total{k=\"v\\\"\"} 3\n\
             # HELP h H.\n# TYPE h histogram\nh_count 2\n"
        );
    }
}
