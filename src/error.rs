//! Where things went wrong and how the process exits.
//!
//! Every stage has its own `thiserror` enum; they all know how to name a [`Location`] (a file,
//! line and column) and a hint. [`ExitCategory`] is the one place that maps outcomes to exit
//! codes: 0 ok, 1 error, 2 something to review (`plan --detailed-exitcode`: changes; `audit`:
//! findings), 3 a host failed. [`EXIT_CODES`] says it per command, for the manual page and the
//! reference.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

/// A position in a user's file, 1-based. `line == 0` means "the file as a whole".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: PathBuf,
    pub line: u32,
    pub column: u32,
}

impl Location {
    pub fn new(file: impl Into<PathBuf>, line: u32, column: u32) -> Self {
        Self {
            file: file.into(),
            line,
            column,
        }
    }

    pub fn file_only(file: impl Into<PathBuf>) -> Self {
        Self::new(file, 0, 0)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else if self.column == 0 {
            write!(f, "{}:{}", self.file.display(), self.line)
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}

/// How the process ends. The numeric values are part of foobar's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCategory {
    Ok = 0,
    Error = 1,
    /// Something to review, nothing failed: `plan --detailed-exitcode` found changes, `audit`
    /// found weaknesses at or above `--fail-on`.
    ChangesPresent = 2,
    HostFailed = 3,
}

impl ExitCategory {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// What exit code 1 means for every command.
pub const EXIT_ERROR: &str = "an error the command could not go on from: bad input or a usage error (clap's own 2 is remapped; both found before anything connects), a refused saved plan, a declined confirmation, a host that had to be read and could not be (`audit --live`, the backup commands)";

/// Every command's exit codes besides 1 ([`EXIT_ERROR`]): `(command, [(code, meaning)])`. The
/// one table: `foobar man` prints it (EXIT STATUS) and docs/reference/README.md carries
/// [`exit_codes_markdown`] (a test compares both, and runs commands against it).
pub const EXIT_CODES: &[(&str, &[(i32, &str)])] = &[
    ("render", &[(0, "the files were written")]),
    ("vars", &[(0, "printed")]),
    ("schema", &[(0, "printed")]),
    ("init", &[(0, "the inventory and its secrets were written")]),
    (
        "plan",
        &[
            (0, "no changes, or changes without `--detailed-exitcode`"),
            (2, "changes, with `--detailed-exitcode`"),
            (
                3,
                "a host could not be planned (also `--out` with no plannable host: nothing is saved)",
            ),
        ],
    ),
    (
        "apply",
        &[
            (
                0,
                "every host applied, or had nothing to do (`--dry-run`: walked)",
            ),
            (3, "a host failed"),
        ],
    ),
    (
        "verify",
        &[
            (0, "every check passed"),
            (3, "a check failed (`--watch`: in the last round)"),
        ],
    ),
    (
        "graph",
        &[(0, "drawn"), (3, "with `--live`, something is red")],
    ),
    (
        "audit",
        &[
            (0, "no finding at or above `--fail-on`"),
            (2, "findings at or above `--fail-on`"),
        ],
    ),
    (
        "reseed",
        &[
            (0, "reseeded (`--dry-run`: shown)"),
            (3, "the reseed failed on the host"),
        ],
    ),
    (
        "failover",
        &[
            (0, "promoted and every host re-pointed (`--dry-run`: shown)"),
            (3, "a host failed in the apply that follows the promotion"),
        ],
    ),
    ("show", &[(0, "printed")]),
    (
        "backup now",
        &[
            (0, "a backup was taken and passed its restore test"),
            (3, "the new backup did not pass its restore test"),
        ],
    ),
    ("backup list", &[(0, "listed")]),
    (
        "restore",
        &[(
            0,
            "restored into the scratch directory (`--dry-run`: shown)",
        )],
    ),
    ("man", &[(0, "printed")]),
    ("completions", &[(0, "printed")]),
];

/// [`EXIT_CODES`] as the reference's Markdown table.
pub fn exit_codes_markdown() -> String {
    let mut out = String::from("| command | 0 | 1 | 2 | 3 |\n|---|---|---|---|---|\n");
    for (command, codes) in EXIT_CODES {
        let cell = |code: i32| {
            if code == 1 {
                return "error".to_string();
            }
            codes
                .iter()
                .find(|(c, _)| *c == code)
                .map(|(_, m)| m.to_string())
                .unwrap_or_else(|| "—".into())
        };
        out.push_str(&format!(
            "| `{command}` | {} | {} | {} | {} |\n",
            cell(0),
            cell(1),
            cell(2),
            cell(3)
        ));
    }
    out.push_str(&format!(
        "\n1 (\"error\") on every command: {EXIT_ERROR}.\n"
    ));
    out
}

/// [`EXIT_CODES`] as a roff section for the manual page.
pub fn exit_codes_roff() -> String {
    let escape = |s: &str| s.replace('\\', "\\e").replace('-', "\\-");
    let mut out = String::from(".SH \"EXIT STATUS\"\n");
    out.push_str(&format!(
        ".TP\n1\nOn every command: {}.\n",
        escape(EXIT_ERROR)
    ));
    for (command, codes) in EXIT_CODES {
        out.push_str(&format!(".TP\n.B foobar {}\n", escape(command)));
        let lines: Vec<String> = codes
            .iter()
            .map(|(c, m)| format!("{c}: {}", escape(&m.replace('`', ""))))
            .collect();
        out.push_str(&lines.join("\n.br\n"));
        out.push('\n');
    }
    out
}

/// Implemented by every stage error so the edge can print `--> location` and `hint:` lines.
pub trait Diagnostic {
    fn location(&self) -> Option<&Location> {
        None
    }
    fn hint(&self) -> Option<String> {
        None
    }
}

/// The closest candidate to `wanted`, for "did you mean" hints.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(wanted, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_display_omits_unknown_parts() {
        assert_eq!(Location::new("a.yml", 3, 7).to_string(), "a.yml:3:7");
        assert_eq!(Location::new("a.yml", 3, 0).to_string(), "a.yml:3");
        assert_eq!(Location::file_only("a.yml").to_string(), "a.yml");
    }

    #[test]
    fn did_you_mean_finds_close_names() {
        assert_eq!(
            did_you_mean("adress", ["address", "port", "user"]),
            Some("address")
        );
        assert_eq!(did_you_mean("zzz", ["address", "port"]), None);
    }
}
