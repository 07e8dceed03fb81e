//! The golden-file comparison the rendering tests share.

use std::path::PathBuf;

/// Compares `actual` with `tests/golden/NAME`; `UPDATE_GOLDEN=1` rewrites
/// the file instead. `test` names the test binary for the hint.
pub fn check(test: &str, name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b);
        panic!(
            "{name} differs from the golden file (first differing line: {:?}); \
             UPDATE_GOLDEN=1 cargo test --test {test} rewrites it\n--- actual ---\n{actual}",
            line.map(|l| l + 1)
        );
    }
}
