//! JSON documents on stdout: serde types only, so the shape is the type. Every document carries
//! `format_version`.

use serde::Serialize;

use std::collections::BTreeMap;

use crate::apply::{HostStatus, Report};
use crate::inventory::HostName;
use crate::plan::{Action, FORMAT_VERSION, Plan};
use crate::verify::Health;

/// Counts over a plan's changes, as the human summary line shows them.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct PlanSummary {
    /// Hosts planned plus hosts that could not be planned.
    pub hosts: usize,
    pub hosts_with_changes: usize,
    pub failed: usize,
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    /// Packages to install, services to start or enable, servers to bring back.
    pub other: usize,
    pub unchanged: usize,
    pub handlers: usize,
}

impl PlanSummary {
    pub fn of(plan: &Plan) -> Self {
        let mut s = Self {
            hosts: plan.hosts.len() + plan.failed.len(),
            failed: plan.failed.len(),
            ..Self::default()
        };
        for hp in plan.hosts.values() {
            s.hosts_with_changes += usize::from(hp.has_changes());
            s.handlers += hp.handlers.len();
            for c in &hp.changes {
                match c.action {
                    Action::Create => s.create += 1,
                    Action::Update => s.update += 1,
                    Action::Delete => s.delete += 1,
                    Action::Unchanged => s.unchanged += 1,
                    _ => s.other += 1,
                }
            }
        }
        s
    }
}

/// `plan --json` and `show --json`: the plan (the same fields a saved plan file has) and its
/// summary.
#[derive(Debug, Serialize)]
pub struct PlanDocument<'a> {
    #[serde(flatten)]
    pub plan: &'a Plan,
    pub summary: PlanSummary,
}

impl<'a> PlanDocument<'a> {
    pub fn new(plan: &'a Plan) -> Self {
        Self {
            plan,
            summary: PlanSummary::of(plan),
        }
    }
}

/// Counts over an apply's outcome per host.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ApplySummary {
    pub hosts: usize,
    /// Changed, or would change in a dry run.
    pub changed: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub dry_run: bool,
    pub interrupted: bool,
}

impl ApplySummary {
    pub fn of(plan: &Plan, report: Option<&Report>) -> Self {
        let Some(r) = report else {
            return Self {
                hosts: plan.hosts.len() + plan.failed.len(),
                unchanged: plan.hosts.len(),
                failed: plan.failed.len(),
                ..Self::default()
            };
        };
        let changed = r
            .hosts
            .values()
            .filter(|h| matches!(h.status, HostStatus::Changed | HostStatus::WouldChange))
            .count();
        let failed = r.failed_hosts().len();
        Self {
            hosts: r.hosts.len(),
            changed,
            unchanged: r.hosts.len() - changed - failed,
            failed,
            dry_run: r.dry_run,
            interrupted: r.interrupted,
        }
    }
}

/// `apply --json`: the plan that was applied and what happened (`report` is null when there
/// was nothing to do).
#[derive(Debug, Serialize)]
pub struct ApplyDocument<'a> {
    pub format_version: u32,
    pub plan: &'a Plan,
    pub report: Option<&'a Report>,
    pub summary: ApplySummary,
}

impl<'a> ApplyDocument<'a> {
    pub fn new(plan: &'a Plan, report: Option<&'a Report>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            plan,
            report,
            summary: ApplySummary::of(plan, report),
        }
    }
}

/// Counts over verify's checks.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct VerifySummary {
    pub hosts: usize,
    pub healthy_hosts: usize,
    pub checks: usize,
    pub failed_checks: usize,
}

/// `verify --json`: every host's checks and the summary.
#[derive(Debug, Serialize)]
pub struct VerifyDocument<'a> {
    #[serde(flatten)]
    pub health: &'a Health,
    pub summary: VerifySummary,
}

impl<'a> VerifyDocument<'a> {
    pub fn new(health: &'a Health) -> Self {
        let mut s = VerifySummary {
            hosts: health.hosts.len(),
            ..VerifySummary::default()
        };
        for h in health.hosts.values() {
            s.checks += h.checks.len();
            let failed = h.checks.iter().filter(|c| !c.ok).count();
            s.failed_checks += failed;
            s.healthy_hosts += usize::from(failed == 0);
        }
        Self { health, summary: s }
    }
}

/// One rendered file, secrets masked.
#[derive(Debug, Serialize)]
pub struct RenderedFile {
    pub path: String,
    /// Where `--out` wrote it.
    pub written_to: String,
    pub content: String,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct RenderSummary {
    pub hosts: usize,
    pub files: usize,
}

/// `render --json`: the rendered tree, per host, and the summary.
#[derive(Debug, Serialize)]
pub struct RenderDocument {
    pub format_version: u32,
    pub hosts: BTreeMap<HostName, Vec<RenderedFile>>,
    pub summary: RenderSummary,
}

impl RenderDocument {
    pub fn new(hosts: BTreeMap<HostName, Vec<RenderedFile>>) -> Self {
        let summary = RenderSummary {
            hosts: hosts.len(),
            files: hosts.values().map(Vec::len).sum(),
        };
        Self {
            format_version: FORMAT_VERSION,
            hosts,
            summary,
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
    /// Every error of the pass, the first included, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorBody>,
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
            errors: vec![],
        }
    }
}

/// The examples of docs/json.md and a comparison of shapes, for tests that hold documents
/// to what the page shows (tests/cli.rs includes the same file).
#[cfg(test)]
#[path = "json_shape.rs"]
pub(crate) mod documented;
