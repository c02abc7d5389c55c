//! Plan: (DesiredState, ActualState) -> HostPlan. Pure: no I/O, same input, same output.
//!
//! Each desired path, package and service becomes a [`Change`] with an [`Action`]; handlers
//! are collected from changes that notify them (deduplicated, in declared order) plus any left
//! pending on the host by an interrupted run. A [`Plan`] is what `plan --out` saves and
//! `apply PLANFILE` runs: it carries digests and masked diffs, never a secret or a file body.

use std::collections::BTreeMap;

pub mod planfile;

use serde::{Deserialize, Serialize};
use similar::TextDiff;

use crate::gather::{ActualState, PathFacts, PathType};
use crate::inventory::ServiceSpec;
use crate::inventory::{HandlerSpec, HostName, ServiceAction, ServiceState};
use crate::render::{DesiredEntry, DesiredState, EntryKind};
use crate::secret::Redactor;

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
            | Step::Absent { path } => path,
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
        use crate::shell::{HandlerCommand as H, handler_command};
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
    pub inputs: Option<planfile::Inputs>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.hosts.values().any(HostPlan::has_changes)
    }
}

fn octal(mode: u32) -> String {
    format!("{mode:04o}")
}

fn attribute_details(have: &PathFacts, mode: u32, owner: &str, group: &str) -> Vec<String> {
    let mut d = Vec::new();
    if have.mode != mode {
        d.push(format!("mode {} -> {}", octal(have.mode), octal(mode)));
    }
    if have.owner != owner || have.group != group {
        d.push(format!(
            "owner {}:{} -> {owner}:{group}",
            have.owner, have.group
        ));
    }
    d
}

/// The step an entry asks for, from the render alone (live-dependent flags cleared).
fn entry_step(e: &DesiredEntry) -> Step {
    match &e.kind {
        EntryKind::Directory { mode, owner, group } => Step::Directory {
            path: e.path.clone(),
            mode: *mode,
            owner: owner.clone(),
            group: group.clone(),
        },
        EntryKind::File {
            digest,
            mode,
            owner,
            group,
            validate,
            sensitive,
            ..
        } => Step::File {
            path: e.path.clone(),
            digest: digest.clone(),
            mode: *mode,
            owner: owner.clone(),
            group: group.clone(),
            validate: validate.clone(),
            sensitive: *sensitive,
            write: false,
        },
        EntryKind::Link { target } => Step::Link {
            path: e.path.clone(),
            target: target.clone(),
        },
        EntryKind::Absent => Step::Absent {
            path: e.path.clone(),
        },
    }
}

fn service_step(s: &ServiceSpec) -> Step {
    Step::Service {
        name: s.name.clone(),
        state: s.state,
        enabled: s.enabled,
        start: false,
        enable: false,
    }
}

/// Every step `want` defines, in plan order, as the render alone defines it.
pub fn desired_steps(want: &DesiredState) -> Vec<(usize, Step)> {
    let mut out = Vec::new();
    for play in &want.plays {
        for p in &play.packages {
            out.push((play.index, Step::Package { name: p.clone() }));
        }
        for e in &play.entries {
            out.push((play.index, entry_step(e)));
        }
        for s in &play.services {
            out.push((play.index, service_step(s)));
        }
    }
    out
}

/// Compare what a host should have with what it has.
pub fn diff(want: &DesiredState, have: &ActualState) -> HostPlan {
    let mut changes = Vec::new();
    for play in &want.plays {
        let p = play.index;
        for pkg in &play.packages {
            let installed = have.packages.get(pkg).copied().unwrap_or(false);
            let action = if installed {
                Action::Unchanged
            } else {
                Action::Install
            };
            changes.push(Change::new(
                p,
                Step::Package { name: pkg.clone() },
                action,
                vec![],
            ));
        }
        for e in &play.entries {
            let live = have.paths.get(&e.path);
            let mut step = entry_step(e);
            let (action, details, needs_diff): (_, Vec<String>, _) = match &e.kind {
                EntryKind::Directory { mode, owner, group } => match live {
                    Some(l) if l.kind == PathType::Directory => {
                        let d = attribute_details(l, *mode, owner, group);
                        let a = if d.is_empty() {
                            Action::Unchanged
                        } else {
                            Action::Update
                        };
                        (a, d, false)
                    }
                    Some(l) => (
                        Action::Update,
                        vec![format!("replaces a {:?}", l.kind).to_lowercase()],
                        false,
                    ),
                    None => (Action::Create, vec![], false),
                },
                EntryKind::File {
                    content,
                    digest,
                    mode,
                    owner,
                    group,
                    sensitive,
                    reads,
                    ..
                } => {
                    let (action, details, needs_diff, write) = match live {
                        None => (Action::Create, vec![], false, true),
                        Some(l) if l.kind != PathType::File => (
                            Action::Update,
                            vec![format!("replaces a {:?}", l.kind).to_lowercase()],
                            false,
                            true,
                        ),
                        Some(l) => {
                            let mut d = attribute_details(l, *mode, owner, group);
                            let content_differs = l.digest.as_deref() != Some(digest.as_str());
                            let mut needs_diff = false;
                            if content_differs {
                                let text = std::str::from_utf8(content).is_ok();
                                if *sensitive {
                                    d.insert(0, sensitive_note(reads));
                                } else if !text
                                    || content.len() as u64 > DIFF_LIMIT
                                    || l.size > DIFF_LIMIT
                                {
                                    d.insert(
                                        0,
                                        "binary or large, changed (compared by checksum)".into(),
                                    );
                                } else {
                                    needs_diff = true;
                                }
                            }
                            let a = if content_differs || !d.is_empty() {
                                Action::Update
                            } else {
                                Action::Unchanged
                            };
                            (a, d, needs_diff, content_differs)
                        }
                    };
                    if let Step::File { write: w, .. } = &mut step {
                        *w = write;
                    }
                    (action, details, needs_diff)
                }
                EntryKind::Link { target } => match live {
                    Some(l)
                        if l.kind == PathType::Link && l.link_target.as_deref() == Some(target) =>
                    {
                        (Action::Unchanged, vec![], false)
                    }
                    Some(l) => (
                        Action::Update,
                        vec![match &l.link_target {
                            Some(t) => format!("-> {t} becomes -> {target}"),
                            None => format!("replaces a {:?} with a link to {target}", l.kind)
                                .to_lowercase(),
                        }],
                        false,
                    ),
                    None => (Action::Create, vec![format!("-> {target}")], false),
                },
                EntryKind::Absent => match live {
                    Some(_) => (Action::Delete, vec![], false),
                    None => (Action::Unchanged, vec!["absent".into()], false),
                },
            };
            let mut c = Change::new(p, step, action, details);
            c.needs_diff = needs_diff;
            if action != Action::Unchanged {
                c.notify = e.notify.clone();
            }
            changes.push(c);
        }
        for s in &play.services {
            let live = have.services.get(&s.name);
            let active = live.is_some_and(|l| l.active);
            let enabled = live.is_some_and(|l| l.enabled);
            let start = s.state == ServiceState::Started && !active;
            let enable = s.enabled && !enabled;
            let action = if start {
                Action::Start
            } else if enable {
                Action::Enable
            } else {
                Action::Unchanged
            };
            let details = if start && enable {
                vec!["and enable".to_string()]
            } else {
                vec![]
            };
            let mut step = service_step(s);
            if let Step::Service {
                start: st,
                enable: en,
                ..
            } = &mut step
            {
                *st = start;
                *en = enable;
            }
            changes.push(Change::new(p, step, action, details));
        }
    }

    // Handlers: declared order within each play, each once, only if notified by a change or
    // left pending by an interrupted run.
    let mut handlers = Vec::new();
    for play in &want.plays {
        for h in &play.handlers {
            let notified = changes
                .iter()
                .any(|c| c.play == play.index && c.notify.contains(&h.name));
            let pending = have
                .pending_handlers
                .iter()
                .any(|(p, n)| *p == play.index && *n == h.name);
            if notified || pending {
                handlers.push(HandlerRef {
                    play: play.index,
                    name: h.name.clone(),
                    command: HandlerCommand::of(h),
                    pending: pending && !notified,
                });
            }
        }
    }

    HostPlan {
        facts_digest: have.digest.clone(),
        cas: have.cas.clone(),
        changes,
        handlers,
        locked_by: have.lock.clone(),
        remote_commands: 0,
        locked: false,
    }
}

/// How a saved plan differs from today's render.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SavedPlanError {
    #[error("{0} renders differently now")]
    Differs(String),
    #[error("{0} renders differently now: it is not in the saved plan")]
    New(String),
    #[error("{0} renders differently now: the saved plan has it, the playbook no longer does")]
    Gone(String),
    #[error("{0} renders differently now: it notifies other handlers")]
    Notifies(String),
    #[error("handler `{0}` renders differently now")]
    Handler(String),
    #[error("{0}: the saved plan's step does not match its own kind and target (edited by hand?)")]
    Inconsistent(String),
}

/// Whether a saved host plan still describes what `want` renders today: every field of every
/// step (packages, directories, files with digest, mode, owner, group, validate and
/// sensitivity, links, deletions, services) and of every handler, in both directions. Steps
/// decided on live facts alone (database, rotation) are left to the apply, which re-reads the
/// facts under the lock. The error names the first difference.
pub fn check_saved(saved: &HostPlan, want: &DesiredState) -> Result<(), SavedPlanError> {
    let today = desired_steps(want);
    let mut planned: Vec<(usize, Step)> = Vec::new();
    let mut notified: Vec<&Change> = Vec::new();
    for c in &saved.changes {
        if matches!(c.step, Step::Database { .. } | Step::Rotation { .. }) {
            continue;
        }
        if c.kind != c.step.kind() || c.target != c.step.target() {
            return Err(SavedPlanError::Inconsistent(c.target.clone()));
        }
        planned.push((c.play, c.step.desired()));
        if c.is_change() {
            notified.push(c);
        }
    }
    let key = |play: usize, step: &'_ Step| -> (usize, ChangeKind, String) {
        (play, step.kind(), step.target().to_string())
    };
    let planned_by_key: BTreeMap<_, &Step> = planned.iter().map(|(p, s)| (key(*p, s), s)).collect();
    let today_by_key: BTreeMap<_, &Step> = today.iter().map(|(p, s)| (key(*p, s), s)).collect();
    for (play, step) in &today {
        match planned_by_key.get(&key(*play, step)) {
            Some(p) if *p == step => {}
            Some(_) => return Err(SavedPlanError::Differs(step.target().to_string())),
            None => return Err(SavedPlanError::New(step.target().to_string())),
        }
    }
    for (play, step) in &planned {
        if !today_by_key.contains_key(&key(*play, step)) {
            return Err(SavedPlanError::Gone(step.target().to_string()));
        }
    }
    for c in notified {
        let now = want
            .plays
            .iter()
            .filter(|p| p.index == c.play)
            .flat_map(|p| p.entries.iter())
            .find(|e| e.path == c.target)
            .map(|e| e.notify.as_slice())
            .unwrap_or_default();
        let entry = matches!(
            c.kind,
            ChangeKind::File | ChangeKind::Link | ChangeKind::Directory
        );
        if entry && now != c.notify.as_slice() {
            return Err(SavedPlanError::Notifies(c.target.clone()));
        }
    }
    for h in &saved.handlers {
        let spec = want
            .plays
            .iter()
            .find(|p| p.index == h.play)
            .and_then(|p| p.handlers.iter().find(|s| s.name == h.name));
        match spec {
            Some(s) if HandlerCommand::of(s) == h.command => {}
            _ => return Err(SavedPlanError::Handler(h.name.clone())),
        }
    }
    Ok(())
}

/// What a plan says instead of a sensitive file's diff: which secrets it reads, never a byte
/// of its content.
pub fn sensitive_note(reads: &[String]) -> String {
    if reads.is_empty() {
        "content changed (sensitive: marked `sensitive: true`)".into()
    } else {
        let names: Vec<String> = reads.iter().map(|r| format!("`{r}`")).collect();
        format!("content changed (sensitive: reads {})", names.join(", "))
    }
}

/// A unified diff of a live file against its new content, with secrets masked.
pub fn unified_diff(path: &str, old: &[u8], new: &[u8], redactor: &Redactor) -> String {
    let old = redactor.redact(&String::from_utf8_lossy(old));
    let new = redactor.redact(&String::from_utf8_lossy(new));
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (live)"), &format!("{path} (planned)"))
        .to_string()
}

/// Fill in diffs for changes that need them, from fetched live bodies.
pub fn attach_diffs(
    plan: &mut HostPlan,
    want: &DesiredState,
    live: &BTreeMap<String, Vec<u8>>,
    redactor: &Redactor,
) {
    for c in plan.changes.iter_mut().filter(|c| c.needs_diff) {
        let Some(entry) = want.entries().find(|e| e.path == c.target) else {
            continue;
        };
        // A sensitive body is never diffed, whatever asked for it.
        let (
            EntryKind::File {
                content,
                sensitive: false,
                ..
            },
            Some(old),
        ) = (&entry.kind, live.get(&c.target))
        else {
            continue;
        };
        c.diff = Some(unified_diff(&c.target, old, content, redactor));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gather::ServiceFacts;
    use crate::inventory::{HandlerSpec, ServiceSpec, ServiceState};
    use crate::render::{DesiredEntry, DesiredPlay, sha256_hex};
    use std::sync::Arc;

    fn file(path: &str, body: &str, notify: &[&str]) -> DesiredEntry {
        DesiredEntry {
            path: path.into(),
            kind: EntryKind::File {
                content: Arc::from(body.as_bytes()),
                digest: sha256_hex(body.as_bytes()),
                mode: 0o644,
                owner: "root".into(),
                group: "root".into(),
                validate: None,
                sensitive: false,
                reads: vec![],
            },
            notify: notify.iter().map(|s| s.to_string()).collect(),
            origin: "t".into(),
        }
    }

    fn handler(name: &str) -> HandlerSpec {
        HandlerSpec {
            name: name.into(),
            service: None,
            run: Some("true".into()),
        }
    }

    fn state(entries: Vec<DesiredEntry>) -> DesiredState {
        DesiredState {
            host: HostName::new("h"),
            plays: vec![DesiredPlay {
                index: 0,
                name: "p".into(),
                packages: vec!["nginx".into()],
                entries,
                services: vec![ServiceSpec {
                    name: "nginx".into(),
                    enabled: true,
                    state: ServiceState::Started,
                }],
                handlers: vec![handler("reload"), handler("restart")],
                database: None,
                serial: None,
                after: Default::default(),
            }],
        }
    }

    fn live_file(body: &str, mode: u32) -> PathFacts {
        PathFacts {
            kind: PathType::File,
            mode,
            owner: "root".into(),
            group: "root".into(),
            size: body.len() as u64,
            digest: Some(sha256_hex(body.as_bytes())),
            link_target: None,
        }
    }

    #[test]
    fn bare_host_creates_everything_and_notifies_once() {
        let want = state(vec![
            file("/a", "1", &["reload"]),
            file("/b", "2", &["reload"]),
        ]);
        let plan = diff(&want, &ActualState::default());
        assert_eq!(plan.count(Action::Create), 2);
        assert_eq!(plan.count(Action::Install), 1);
        assert_eq!(plan.count(Action::Start), 1);
        assert_eq!(plan.handlers.len(), 1, "handler deduplicated");
        assert_eq!(plan.handlers[0].name, "reload");
    }

    #[test]
    fn converged_host_has_no_changes_and_runs_no_handler() {
        let want = state(vec![file("/a", "1", &["reload"])]);
        let mut have = ActualState::default();
        have.paths.insert("/a".into(), live_file("1", 0o644));
        have.packages.insert("nginx".into(), true);
        have.services.insert(
            "nginx".into(),
            ServiceFacts {
                active: true,
                enabled: true,
                exists: true,
            },
        );
        let plan = diff(&want, &have);
        assert!(!plan.has_changes(), "{plan:?}");
    }

    #[test]
    fn drift_and_mode_changes_are_updates() {
        let want = state(vec![file("/a", "new\n", &["restart"])]);
        let mut have = ActualState::default();
        have.paths.insert("/a".into(), live_file("old\n", 0o600));
        let plan = diff(&want, &have);
        let c = plan.changes.iter().find(|c| c.target == "/a").unwrap();
        assert_eq!(c.action, Action::Update);
        assert!(c.needs_diff);
        assert_eq!(c.details, vec!["mode 0600 -> 0644".to_string()]);
        assert_eq!(plan.handlers[0].name, "restart");
    }

    #[test]
    fn pending_handlers_from_an_interrupted_run_still_run() {
        let want = state(vec![]);
        let mut have = ActualState::default();
        have.pending_handlers.push((0, "restart".into()));
        let plan = diff(&want, &have);
        assert_eq!(plan.handlers.len(), 1);
        assert!(plan.handlers[0].pending);
    }

    #[test]
    fn handlers_run_in_declared_order() {
        let want = state(vec![
            file("/a", "1", &["restart"]),
            file("/b", "2", &["reload"]),
        ]);
        let plan = diff(&want, &ActualState::default());
        let names: Vec<_> = plan.handlers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["reload", "restart"]);
    }

    #[test]
    fn diffs_mask_secrets() {
        let s = crate::secret::Secret::new("hunter2");
        let r = Redactor::new([&s]);
        let d = unified_diff("/x", b"pw=old\n", b"pw=hunter2\n", &r);
        assert!(d.contains("+pw=********"), "{d}");
        assert!(!d.contains("hunter2"));
        assert!(d.starts_with("--- /x (live)\n+++ /x (planned)\n"));
    }
}
