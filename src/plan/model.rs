//! What a plan is made of: each [`Step`] typed with everything `apply` needs, the [`Change`]
//! that explains it, handler references, and the [`HostPlan`] and [`Plan`] that hold them
//! (what `plan --out` saves). In: nothing (types and their display words). Out: the types.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::inventory::{HandlerSpec, HostName, ServiceAction, ServiceState};

pub const FORMAT_VERSION: u32 = 1;
/// Files larger than this, or not UTF-8, are compared by checksum only.
pub const DIFF_LIMIT: u64 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    Install,
    Start,
    Enable,
    Unchanged,
}

impl Action {
    pub fn word(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Install => "install",
            Action::Start => "start",
            Action::Enable => "enable",
            Action::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Package,
    Directory,
    File,
    Link,
    Service,
    Database,
    /// A load balancer server to bring back into rotation.
    Rotation,
    /// A firewall ruleset to load again (what is loaded is not what was confirmed).
    Firewall,
}

impl ChangeKind {
    pub fn word(self) -> &'static str {
        match self {
            ChangeKind::Package => "package",
            ChangeKind::Directory => "directory",
            ChangeKind::File => "file",
            ChangeKind::Link => "link",
            ChangeKind::Service => "service",
            ChangeKind::Database => "database",
            ChangeKind::Rotation => "rotation",
            ChangeKind::Firewall => "firewall",
        }
    }
}

/// What a step does, with everything it needs: the typed payload `apply` executes. Built
/// from the desired state (and, for the flags saying what must happen, the live facts);
/// never read back from display text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Step {
    Package {
        name: String,
    },
    Directory {
        path: String,
        mode: u32,
        owner: String,
        group: String,
    },
    File {
        path: String,
        /// SHA-256 of the desired body: apply writes only a body with this digest.
        digest: String,
        mode: u32,
        owner: String,
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        validate: Option<String>,
        /// The body holds a secret: never shown; its backup is 0600.
        #[serde(default)]
        sensitive: bool,
        /// The body is written (not only owner or mode fixed in place).
        #[serde(default)]
        write: bool,
    },
    Link {
        path: String,
        target: String,
    },
    Absent {
        path: String,
    },
    Service {
        name: String,
        state: ServiceState,
        enabled: bool,
        /// `systemctl start` is needed.
        #[serde(default)]
        start: bool,
        /// `systemctl enable` is needed.
        #[serde(default)]
        enable: bool,
    },
    /// Database steps are decided again on live facts under the lock (`apply::database`).
    Database {
        name: String,
    },
    /// A load balancer server to bring back into rotation.
    Rotation {
        name: String,
    },
    /// The firewall's ruleset file to load again through its handler (confirm-or-rollback):
    /// what is loaded, or what the host loads at boot, is not the confirmed ruleset. Decided
    /// on live facts alone; the step itself runs nothing, its handler does.
    Firewall {
        ruleset: String,
    },
}

impl Step {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Step::Package { .. } => ChangeKind::Package,
            Step::Directory { .. } => ChangeKind::Directory,
            Step::File { .. } | Step::Absent { .. } => ChangeKind::File,
            Step::Link { .. } => ChangeKind::Link,
            Step::Service { .. } => ChangeKind::Service,
            Step::Database { .. } => ChangeKind::Database,
            Step::Rotation { .. } => ChangeKind::Rotation,
            Step::Firewall { .. } => ChangeKind::Firewall,
        }
    }

    /// The path, package, service or name the step is about.
    pub fn target(&self) -> &str {
        match self {
            Step::Package { name }
            | Step::Service { name, .. }
            | Step::Database { name }
            | Step::Rotation { name } => name,
            Step::Directory { path, .. }
            | Step::File { path, .. }
            | Step::Link { path, .. }
            | Step::Absent { path }
            | Step::Firewall { ruleset: path } => path,
        }
    }

    /// The step as the render alone defines it: the flags that depend on the live host
    /// (write, start, enable) cleared. Two renders agree on a step iff these are equal.
    pub fn desired(&self) -> Step {
        let mut s = self.clone();
        match &mut s {
            Step::File { write, .. } => *write = false,
            Step::Service { start, enable, .. } => {
                *start = false;
                *enable = false;
            }
            _ => {}
        }
        s
    }
}

/// One step of a host's plan: what (`step`, typed) and how it is explained (`details`,
/// `diff`). `kind` and `target` repeat the step's for readers of the JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub play: usize,
    pub kind: ChangeKind,
    /// A path, a package or a service name.
    pub target: String,
    pub action: Action,
    pub step: Step,
    /// Attribute changes and notes, for humans only: "mode 0644 -> 0600", "binary, changed".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Unified diff, secrets masked. Filled in once live bodies have been fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Content changes and needs the live body for a diff.
    #[serde(skip)]
    pub needs_diff: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}

impl Change {
    /// A change with no diff or notifications.
    pub fn new(play: usize, step: Step, action: Action, details: Vec<String>) -> Self {
        Self {
            play,
            kind: step.kind(),
            target: step.target().to_string(),
            action,
            step,
            details,
            diff: None,
            needs_diff: false,
            notify: vec![],
        }
    }

    pub fn is_change(&self) -> bool {
        self.action != Action::Unchanged
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlerRef {
    pub play: usize,
    pub name: String,
    /// What it runs, as the playbook declares it.
    pub command: HandlerCommand,
    /// Left pending on the host by an earlier run that did not finish.
    #[serde(default)]
    pub pending: bool,
}

/// A handler's command, typed: a service action or the author's own command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HandlerCommand {
    Service { name: String, action: ServiceAction },
    Run { command: String },
}

impl HandlerCommand {
    pub fn of(spec: &HandlerSpec) -> Self {
        match (&spec.service, &spec.run) {
            (Some((name, action)), _) => HandlerCommand::Service {
                name: name.clone(),
                action: *action,
            },
            (None, Some(cmd)) => HandlerCommand::Run {
                command: cmd.clone(),
            },
            (None, None) => HandlerCommand::Run {
                command: "true".into(),
            },
        }
    }

    /// As script text: service names quoted, a `run:` command as written.
    pub fn script(&self) -> crate::shell::Script {
        use crate::remote::handlers::{HandlerCommand as H, handler_command};
        match self {
            HandlerCommand::Service { name, action } => handler_command(&H::Service {
                action: match action {
                    ServiceAction::Reload => "reload",
                    ServiceAction::Restart => "restart",
                },
                name,
            }),
            HandlerCommand::Run { command } => handler_command(&H::Run(command)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostPlan {
    pub facts_digest: String,
    /// SHA-256 of the raw facts the plan was made from ([`crate::gather::ActualState::cas`]):
    /// the apply script compares it on the host, under the lock, before changing anything.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cas: String,
    /// The check an apply of the run that gathered makes instead of `cas`
    /// ([`crate::gather::ActualState::cas_quick`]). Never saved.
    #[serde(skip)]
    pub cas_quick: Option<std::sync::Arc<crate::gather::QuickFacts>>,
    pub changes: Vec<Change>,
    pub handlers: Vec<HandlerRef>,
    /// Who holds the host's lock, when someone does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_by: Option<String>,
    /// Remote commands this host needed to make the plan.
    #[serde(default)]
    pub remote_commands: u64,
    /// This run holds the host's lock and read the plan's facts under it (an apply without a
    /// saved plan): the apply need not lock and re-read it again. Never saved.
    #[serde(skip)]
    pub locked: bool,
}

impl HostPlan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(Change::is_change) || !self.handlers.is_empty()
    }
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub inventory: String,
    pub playbook: String,
    pub hosts: BTreeMap<HostName, HostPlan>,
    /// Hosts that could not be planned, with the reason.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<HostName, String>,
    /// How rolling plays will go: which hosts, in which order, drained where.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollout: Vec<String>,
    /// What the plan was made from, so a saved plan applies only with the same inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<super::planfile::Inputs>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.hosts.values().any(HostPlan::has_changes)
    }
}
