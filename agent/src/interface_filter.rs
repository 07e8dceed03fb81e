//! `--interface-filter`: interface names and simple globs (`ppp*`,
//! `wlan?`). A leaf: the collector selects with it, detection derives the
//! home networks from the interfaces it names.

/// Which interfaces to watch: exact names and simple globs (`*`, `?`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceFilter {
    patterns: Vec<String>,
}

impl InterfaceFilter {
    /// Parses a comma-separated list. Names follow the kernel's rules
    /// (1 to 15 bytes, no '/', ':' or white space).
    pub fn parse(s: &str) -> Result<InterfaceFilter, String> {
        let mut patterns = Vec::new();
        for part in s.split(',') {
            let p = part.trim();
            if p.is_empty() {
                return Err(format!("interface filter '{s}' has an empty entry"));
            }
            if p.len() > 15 {
                return Err(format!("interface name '{p}' is longer than 15 bytes"));
            }
            if p.chars()
                .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
            {
                return Err(format!(
                    "interface name '{p}' has a character not allowed in names"
                ));
            }
            if !patterns.iter().any(|q| q == p) {
                patterns.push(p.to_string());
            }
        }
        Ok(InterfaceFilter { patterns })
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `name` matches any entry.
    pub fn matches(&self, name: &str) -> bool {
        self.patterns
            .iter()
            .any(|p| glob_match(p.as_bytes(), name.as_bytes()))
    }

    /// Entries without glob characters: these must exist at start.
    pub fn exact_names(&self) -> impl Iterator<Item = &str> {
        self.patterns
            .iter()
            .map(String::as_str)
            .filter(|p| !p.contains(['*', '?']))
    }
}

/// Glob match with `*` (any run) and `?` (one byte), iterative with one
/// backtrack point, so it is linear-ish and cannot blow up on hostile input.
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == s[i]) {
            p += 1;
            i += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, i));
            p += 1;
        } else if let Some((sp, si)) = star {
            p = sp + 1;
            i = si + 1;
            star = Some((sp, si + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}
