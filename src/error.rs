//! Where things went wrong and how the process exits.
//!
//! Every stage has its own `thiserror` enum; they all know how to name a [`Location`] (a file,
//! line and column) and a hint. [`ExitCategory`] is the one place that maps outcomes to exit
//! codes: 0 ok, 1 error, 2 changes present (`plan --detailed-exitcode`), 3 a host failed.

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
    ChangesPresent = 2,
    HostFailed = 3,
}

impl ExitCategory {
    pub fn code(self) -> i32 {
        self as i32
    }
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
