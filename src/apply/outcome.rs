//! What happened on each host, typed: the [`Outcome`] of every step (a rollout's restore reads
//! the paths to put back from them, never from display text), each host's [`HostStatus`] and
//! [`HostReport`], and the run's [`Report`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::error::{ApplyError, Stage};
use crate::error::Diagnostic;
use crate::event::{Event, Reporter};
use crate::inventory::HostName;
use crate::plan::{Action, ChangeKind};
use crate::secret::Redactor;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Outcome {
    Packages {
        names: Vec<String>,
    },
    Directory {
        path: String,
    },
    /// Owner or mode fixed in place.
    Attributes {
        path: String,
    },
    /// A staged file passed its `validate` command.
    Validated {
        path: String,
    },
    /// A new body swapped in.
    File {
        path: String,
    },
    Link {
        path: String,
    },
    Deleted {
        path: String,
    },
    Service {
        name: String,
    },
    Handler {
        name: String,
    },
    /// A database step, as `apply::database` describes it ("database replication started").
    Database {
        what: String,
    },
    /// Taken out of or put back into the load balancer's rotation.
    Rotation {
        what: String,
    },
    /// A firewall change confirmed over a new connection.
    Firewall {
        what: String,
    },
    /// A dry run: what the step would do.
    Planned {
        action: Action,
        kind: ChangeKind,
        target: String,
    },
}

impl Outcome {
    /// The path or name the step was about.
    pub fn target(&self) -> String {
        match self {
            Outcome::Packages { names } => names.join(" "),
            Outcome::Directory { path }
            | Outcome::Attributes { path }
            | Outcome::Validated { path }
            | Outcome::File { path }
            | Outcome::Link { path }
            | Outcome::Deleted { path } => path.clone(),
            Outcome::Service { name } | Outcome::Handler { name } => name.clone(),
            Outcome::Database { what }
            | Outcome::Rotation { what }
            | Outcome::Firewall { what } => what.clone(),
            Outcome::Planned { target, .. } => target.clone(),
        }
    }

    /// A path this step replaced, created or removed: what a restore must put back.
    pub fn replaced_path(&self) -> Option<&str> {
        match self {
            Outcome::File { path } | Outcome::Link { path } | Outcome::Deleted { path } => {
                Some(path)
            }
            _ => None,
        }
    }
}

/// A step that did not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum Skipped {
    /// Ctrl-C came before the play started on this host.
    Interrupted { play: usize },
    /// A service handler whose service this run started: it already runs the new files.
    StartedService { handler: String, service: String },
    /// A rollout left the host out of the load balancer's rotation.
    LeftInMaintenance { balancer: String },
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skipped::Interrupted { play } => {
                write!(f, "play {play}: interrupted before it started")
            }
            Skipped::StartedService { handler, service } => {
                write!(f, "handler {handler}: {service} was started by this run")
            }
            Skipped::LeftInMaintenance { balancer } => {
                write!(f, "left in maintenance on {balancer}")
            }
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Packages { names } => write!(f, "package {}", names.join(" ")),
            Outcome::Directory { path } => write!(f, "directory {path}"),
            Outcome::Attributes { path } => write!(f, "attributes {path}"),
            Outcome::Validated { path } => write!(f, "validate {path}"),
            Outcome::File { path } => write!(f, "file {path}"),
            Outcome::Link { path } => write!(f, "link {path}"),
            Outcome::Deleted { path } => write!(f, "delete {path}"),
            Outcome::Service { name } => write!(f, "service {name}"),
            Outcome::Handler { name } => write!(f, "handler {name}"),
            Outcome::Database { what }
            | Outcome::Rotation { what }
            | Outcome::Firewall { what } => f.write_str(what),
            Outcome::Planned {
                action,
                kind,
                target,
            } => write!(f, "{} {} {target}", action.word(), kind.word()),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum HostStatus {
    Unchanged,
    Changed,
    WouldChange,
    Failed {
        stage: Stage,
        message: String,
        /// What to do next.
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
    RolledBack {
        handler: String,
        error: String,
        after_restore: String,
    },
    NotStarted {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    #[serde(flatten)]
    pub status: HostStatus,
    /// Every step that ran, in order (shown as `file /etc/haproxy/haproxy.cfg`,
    /// `handler reload haproxy`).
    pub done: Vec<Outcome>,
    pub skipped: Vec<Skipped>,
    pub remote_commands: u64,
    /// The host's last script released its lock itself.
    #[serde(skip)]
    pub unlocked: bool,
}

impl Default for HostReport {
    fn default() -> Self {
        Self::new()
    }
}

impl HostReport {
    pub fn new() -> Self {
        Self {
            status: HostStatus::Unchanged,
            done: vec![],
            skipped: vec![],
            remote_commands: 0,
            unlocked: false,
        }
    }
    pub fn failed(&self) -> bool {
        matches!(
            self.status,
            HostStatus::Failed { .. }
                | HostStatus::RolledBack { .. }
                | HostStatus::NotStarted { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub dry_run: bool,
    pub hosts: BTreeMap<HostName, HostReport>,
    pub interrupted: bool,
}

impl Report {
    pub fn failed_hosts(&self) -> Vec<&HostName> {
        self.hosts
            .iter()
            .filter(|(_, r)| r.failed())
            .map(|(h, _)| h)
            .collect()
    }
}

/// Fold one play's report into its host's: steps in order of completion, the first failure
/// kept as the status and any later one added to its message.
pub(super) fn merge(rep: &mut HostReport, frag: HostReport) {
    let failed = frag.failed();
    rep.done.extend(frag.done);
    rep.skipped.extend(frag.skipped);
    rep.unlocked |= frag.unlocked;
    if !failed {
        return;
    }
    if !rep.failed() {
        rep.status = frag.status;
        return;
    }
    let also = match frag.status {
        HostStatus::Failed { stage, message, .. } => format!("{stage}: {message}"),
        HostStatus::RolledBack { handler, error, .. } => {
            format!("handler {handler} failed, files restored: {error}")
        }
        HostStatus::NotStarted { reason } => reason,
        _ => return,
    };
    match &mut rep.status {
        HostStatus::Failed { message, .. } => {
            message.push_str(&format!("\nalso, in a play running beside it: {also}"))
        }
        HostStatus::RolledBack { after_restore, .. } => {
            after_restore.push_str(&format!("\nalso, in a play running beside it: {also}"))
        }
        _ => {}
    }
}

/// Mark a host failed and tell the reporter, in one place.
pub(super) fn fail(
    reporter: &dyn Reporter,
    host: &HostName,
    rep: &mut HostReport,
    error: ApplyError,
    redactor: &Redactor,
) {
    let message = redactor.redact(&error.to_string());
    reporter.event(Event::HostFailed {
        host: host.clone(),
        message: message.clone(),
    });
    rep.status = HostStatus::Failed {
        stage: error.stage(),
        message,
        hint: error.hint().map(|h| redactor.redact(&h)),
    };
}
