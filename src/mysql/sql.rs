//! SQL scripts with secret parts: one value, two renderings (real for stdin, masked for humans).

use std::fmt;

use crate::error::Diagnostic;
use crate::secret::{MASK, Secret};

/// Sent before every script: string literals are escaped for the default `sql_mode`, so a
/// server configured with `NO_BACKSLASH_ESCAPES` must not read `\\` as two characters; and
/// literals are UTF-8 whatever the client's locale is.
pub(crate) const PRELUDE: &str = "SET SESSION sql_mode = TRIM(BOTH ',' FROM REPLACE(CONCAT(',', @@SESSION.sql_mode, ','), ',NO_BACKSLASH_ESCAPES,', ','));\n\
                       SET NAMES utf8mb4;\n";

/// Sent after the prelude by a script that carries a secret (a password for `CHANGE MASTER …
/// MASTER_PASSWORD=`, which must be the plain password, or an account's hash): its statements
/// stay out of the general query log (`sql_log_off`; root over the socket has the privilege)
/// and out of the slow log (a session `long_query_time` of a year, the most either server
/// takes: MySQL has no session `slow_query_log`, MariaDB and MySQL both have this).
pub(crate) const UNLOGGED: &str =
    "SET SESSION sql_log_off = 1, SESSION long_query_time = 31536000;\n";

/// A list of SQL statements, some of whose parts are secrets.
///
/// [`Sql::to_stdin`] is the real script (prelude included) for the client's stdin;
/// [`Sql::masked`], `Display` and `Debug` show the same statements with every secret literal
/// replaced by `'********'`. Both walk the same parts, so they cannot disagree.
#[derive(Clone, Default)]
pub struct Sql {
    statements: Vec<Statement>,
}

#[derive(Clone)]
pub(crate) struct Statement {
    parts: Vec<Part>,
}

#[derive(Clone)]
enum Part {
    Text(String),
    /// Rendered as a quoted, escaped string literal. Checked for NUL when it was added.
    SecretLiteral(Secret),
}

impl Sql {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    /// How many statements the script has (the prelude not counted).
    pub fn len(&self) -> usize {
        self.statements.len()
    }

    /// The real script for the client's stdin: the prelude, then one statement per line,
    /// each ended by `;`. Contains secrets: never log it.
    pub fn to_stdin(&self) -> String {
        let mut out = String::from(PRELUDE);
        if self.secrets().next().is_some() {
            out.push_str(UNLOGGED);
        }
        for s in &self.statements {
            out.push_str(&s.render(true));
            out.push_str(";\n");
        }
        out
    }

    /// The statements as a human should see them, each ended by `;`, secrets masked.
    pub fn masked_statements(&self) -> Vec<String> {
        self.statements
            .iter()
            .map(|s| format!("{};", s.render(false)))
            .collect()
    }

    /// [`Sql::masked_statements`], one per line.
    pub fn masked(&self) -> String {
        let mut out = String::new();
        for s in self.masked_statements() {
            out.push_str(&s);
            out.push('\n');
        }
        out
    }

    /// The statements, one per line, each secret literal with the value it holds: for
    /// `foobar render`, whose secrets are placeholders (`'<secret:NAME>'`) or, with
    /// `--with-secrets`, written into a private tree. Never print it.
    pub fn with_values(&self) -> String {
        let mut out = String::new();
        for s in &self.statements {
            out.push_str(&s.render(true));
            out.push_str(";\n");
        }
        out
    }

    /// The secrets the script carries, e.g. to build a [`crate::secret::Redactor`] for the
    /// client's stderr.
    pub fn secrets(&self) -> impl Iterator<Item = &Secret> {
        self.statements.iter().flat_map(|s| {
            s.parts.iter().filter_map(|p| match p {
                Part::SecretLiteral(secret) => Some(secret),
                Part::Text(_) => None,
            })
        })
    }

    /// Appends another script's statements.
    pub fn extend(&mut self, other: Sql) {
        self.statements.extend(other.statements);
    }

    pub(crate) fn push(&mut self, statement: Statement) {
        self.statements.push(statement);
    }

    /// Appends a statement with no variable parts.
    pub(crate) fn push_text(&mut self, text: &str) {
        self.statements.push(Statement::new().text(text));
    }
}

impl fmt::Display for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.masked_statements()).finish()
    }
}

impl Statement {
    pub(crate) fn new() -> Self {
        Self { parts: Vec::new() }
    }

    /// Raw SQL text, written by this module (never user input).
    pub(crate) fn text(mut self, text: &str) -> Self {
        match self.parts.last_mut() {
            Some(Part::Text(t)) => t.push_str(text),
            _ => self.parts.push(Part::Text(text.to_string())),
        }
        self
    }

    /// A non-secret value as a quoted string literal.
    pub(crate) fn string(self, value: &str, what: &str) -> Result<Self, SqlError> {
        let quoted = quote_string(value).map_err(|e| e.describing(what))?;
        Ok(self.text(&quoted))
    }

    /// A schema name as a backquoted identifier.
    pub(crate) fn identifier(self, name: &str, what: &str) -> Result<Self, SqlError> {
        let quoted = quote_identifier(name).map_err(|e| e.describing(what))?;
        Ok(self.text(&quoted))
    }

    /// `'user'@'host'`.
    pub(crate) fn account(self, user: &str, host: &str) -> Result<Self, SqlError> {
        self.string(user, "a user name")?
            .text("@")
            .string(host, "a host pattern")
    }

    /// A secret as a quoted string literal; masked in human renderings.
    pub(crate) fn secret(mut self, value: &Secret, what: &str) -> Result<Self, SqlError> {
        if value.expose().contains('\0') {
            return Err(SqlError::Nul {
                what: what.to_string(),
            });
        }
        self.parts.push(Part::SecretLiteral(value.clone()));
        Ok(self)
    }

    fn render(&self, expose: bool) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::SecretLiteral(s) if expose => out.push_str(&escape_checked(s.expose())),
                Part::SecretLiteral(_) => {
                    out.push('\'');
                    out.push_str(MASK);
                    out.push('\'');
                }
            }
        }
        out
    }
}

/// Escapes for a single-quoted literal: `\` doubled, `'` doubled. Only call on checked input.
fn escape_checked(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `value` as a single-quoted SQL string literal: backslashes and quotes escaped, NUL refused.
/// Correct under the default `sql_mode`, which every script's prelude restores.
pub fn quote_string(value: &str) -> Result<String, SqlError> {
    if value.contains('\0') {
        return Err(SqlError::Nul {
            what: "a string".into(),
        });
    }
    Ok(escape_checked(value))
}

/// `name` as a backquoted identifier (backquotes doubled). Empty names, NUL and names ending
/// in a space (which the server refuses) are errors.
pub fn quote_identifier(name: &str) -> Result<String, SqlError> {
    if name.is_empty() {
        return Err(SqlError::Invalid {
            what: "a name".into(),
            reason: "it is empty",
        });
    }
    if name.contains('\0') {
        return Err(SqlError::Nul {
            what: "a name".into(),
        });
    }
    if name.ends_with(' ') {
        return Err(SqlError::Invalid {
            what: "a name".into(),
            reason: "it ends with a space",
        });
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

/// A value cannot be written into a statement. Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SqlError {
    #[error("{what} contains a NUL character, which cannot be sent in a SQL statement")]
    Nul { what: String },
    #[error("{what} cannot be used: {reason}")]
    Invalid { what: String, reason: &'static str },
    #[error("{what} is {len} characters long; {server} accepts at most {max}")]
    TooLong {
        what: String,
        len: usize,
        max: usize,
        server: String,
    },
}

impl SqlError {
    fn describing(self, what: &str) -> Self {
        match self {
            SqlError::Nul { .. } => SqlError::Nul { what: what.into() },
            SqlError::Invalid { reason, .. } => SqlError::Invalid {
                what: what.into(),
                reason,
            },
            e @ SqlError::TooLong { .. } => e,
        }
    }
}

impl Diagnostic for SqlError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            SqlError::Nul { .. } => {
                "remove the NUL byte from the value in the inventory or secret file".into()
            }
            SqlError::Invalid { .. } => "fix the value in the inventory".into(),
            SqlError::TooLong { .. } => "choose a shorter value".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_strings_and_identifiers() {
        assert_eq!(quote_string("plain").unwrap(), "'plain'");
        assert_eq!(quote_string(r"a\b'c").unwrap(), r"'a\\b''c'");
        assert_eq!(quote_string("").unwrap(), "''");
        assert_eq!(quote_string("new\nline").unwrap(), "'new\nline'");
        assert!(matches!(quote_string("a\0b"), Err(SqlError::Nul { .. })));
        assert_eq!(quote_identifier("shop").unwrap(), "`shop`");
        assert_eq!(quote_identifier("we`ird").unwrap(), "`we``ird`");
        assert!(quote_identifier("").is_err());
        assert!(quote_identifier("trailing ").is_err());
    }

    #[test]
    fn one_script_two_renderings() {
        let pw = Secret::new(r"s3'cr\et");
        let mut sql = Sql::new();
        sql.push_text("STOP REPLICA");
        sql.push(
            Statement::new()
                .text("CHANGE MASTER TO MASTER_USER=")
                .string("repl", "user")
                .unwrap()
                .text(", MASTER_PASSWORD=")
                .secret(&pw, "the password")
                .unwrap(),
        );
        let stdin = sql.to_stdin();
        assert!(stdin.starts_with(&format!("{PRELUDE}{UNLOGGED}")));
        assert!(stdin.ends_with(
            "STOP REPLICA;\nCHANGE MASTER TO MASTER_USER='repl', MASTER_PASSWORD='s3''cr\\\\et';\n"
        ));
        let masked = sql.masked();
        assert_eq!(
            masked,
            "STOP REPLICA;\nCHANGE MASTER TO MASTER_USER='repl', MASTER_PASSWORD='********';\n"
        );
        assert_eq!(sql.to_string(), masked);
        assert!(!format!("{sql:?}").contains("s3"));
        assert_eq!(sql.secrets().count(), 1);
        assert_eq!(sql.len(), 2);
    }

    #[test]
    fn only_scripts_with_secrets_leave_the_logs() {
        let mut plain = Sql::new();
        plain.push_text("START REPLICA");
        assert_eq!(plain.to_stdin(), format!("{PRELUDE}START REPLICA;\n"));
        assert!(!plain.masked().contains("sql_log_off"));
    }

    #[test]
    fn secrets_with_nul_are_refused_without_echoing_them() {
        let e = Statement::new()
            .secret(&Secret::new("ab\0cd"), "the replication password")
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "the replication password contains a NUL character, which cannot be sent in a SQL statement"
        );
        let e = Statement::new()
            .string("x\0", "the app user")
            .err()
            .unwrap();
        assert_eq!(
            e,
            SqlError::Nul {
                what: "the app user".into()
            }
        );
    }
}
