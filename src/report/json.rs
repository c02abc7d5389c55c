//! JSON documents on stdout: serde types only, so the shape is the type. Every document carries
//! `format_version`.

use serde::Serialize;

use crate::apply::Report;
use crate::plan::{FORMAT_VERSION, Plan};

/// `apply --json`: the plan that was applied and what happened (`report` is null when there
/// was nothing to do).
#[derive(Debug, Serialize)]
pub struct ApplyDocument<'a> {
    pub format_version: u32,
    pub plan: &'a Plan,
    pub report: Option<&'a Report>,
}

impl<'a> ApplyDocument<'a> {
    pub fn new(plan: &'a Plan, report: Option<&'a Report>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            plan,
            report,
        }
    }
}

/// Pretty JSON with a trailing newline, for stdout.
pub fn document<T: Serialize>(value: &T) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("report types always serialise");
    text.push('\n');
    text
}

/// Any command's `--json` output when it ends with an error (exit code 1).
#[derive(Debug, Serialize)]
pub struct ErrorDocument {
    pub format_version: u32,
    pub error: ErrorBody,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub message: String,
    /// `file:line:column`, when the error is in a file.
    pub location: Option<String>,
    pub hint: Option<String>,
}

impl ErrorDocument {
    pub fn new(message: String, location: Option<String>, hint: Option<String>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            error: ErrorBody {
                message,
                location,
                hint,
            },
        }
    }
}
