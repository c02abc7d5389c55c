//! Secrets: values that may be written into managed files but must never be shown.
//!
//! A [`Secret`] prints as `<secret>` in `Debug` and `Display` and cannot be serialised. Every
//! piece of text that reaches a human or a machine-readable document (diffs, plans, JSON,
//! errors, remote stderr) passes through a [`Redactor`] built from all resolved secrets.

use std::fmt;

pub const MASK: &str = "********";

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The real value. Call sites are few and deliberate: rendering files and SQL sent on stdin.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<secret>")
    }
}

/// Replaces every known secret value in a text with [`MASK`].
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is masked whole.
    values: Vec<String>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.values.len())
    }
}

impl Redactor {
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        // Also the forms a secret takes once escaped for a SQL string literal, so a rendered
        // statement or a server's error quoting it is masked too.
        let mut values: Vec<String> = secrets
            .into_iter()
            .filter(|s| !s.0.is_empty())
            .flat_map(|s| {
                let sql = s.0.replace('\\', "\\\\").replace('\'', "\\'");
                let doubled = s.0.replace('\'', "''");
                [s.0.clone(), sql, doubled]
            })
            .collect();
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Self { values }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), MASK);
            }
        }
        out
    }

    pub fn contains_secret(&self, text: &[u8]) -> bool {
        self.values
            .iter()
            .any(|v| text.windows(v.len()).any(|w| w == v.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<secret> <secret>");
    }

    #[test]
    fn redactor_masks_longest_first() {
        let a = Secret::new("abc");
        let b = Secret::new("abcdef");
        let r = Redactor::new([&a, &b]);
        assert_eq!(r.redact("x abcdef y abc"), "x ******** y ********");
        assert!(r.contains_secret(b"..abc.."));
        assert!(!r.contains_secret(b"..ab.."));
    }

    #[test]
    fn redactor_masks_sql_escaped_forms() {
        let s = Secret::new("a'b\\c");
        let r = Redactor::new([&s]);
        assert_eq!(r.redact("PASSWORD='a\\'b\\\\c'"), "PASSWORD='********'");
    }
}
