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
use crate::inventory::HostName;
use crate::render::{DesiredState, EntryKind};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub play: usize,
    pub kind: ChangeKind,
    /// A path, a package or a service name.
    pub target: String,
    pub action: Action,
    /// Attribute changes and notes: "mode 0644 -> 0600", "binary, changed".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// Unified diff, secrets masked. Filled in once live bodies have been fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// SHA-256 of the desired content, so `apply PLANFILE` can check it still renders the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_digest: Option<String>,
    /// The body changes (not only owner or mode).
    #[serde(default)]
    pub content_changed: bool,
    /// Content changes and needs the live body for a diff.
    #[serde(skip)]
    pub needs_diff: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
}

impl Change {
    /// A change with no content, diff or notifications (packages, services, database steps).
    pub fn new(
        play: usize,
        kind: ChangeKind,
        target: String,
        action: Action,
        details: Vec<String>,
    ) -> Self {
        Self {
            play,
            kind,
            target,
            action,
            details,
            diff: None,
            desired_digest: None,
            content_changed: false,
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
    /// Left pending on the host by an earlier run that did not finish.
    #[serde(default)]
    pub pending: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostPlan {
    pub facts_digest: String,
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
                ChangeKind::Package,
                pkg.clone(),
                action,
                vec![],
            ));
        }
        for e in &play.entries {
            let live = have.paths.get(&e.path);
            let (kind, action, details, digest, needs_diff): (_, _, Vec<String>, _, _) = match &e
                .kind
            {
                EntryKind::Directory { mode, owner, group } => match live {
                    Some(l) if l.kind == PathType::Directory => {
                        let d = attribute_details(l, *mode, owner, group);
                        let a = if d.is_empty() {
                            Action::Unchanged
                        } else {
                            Action::Update
                        };
                        (ChangeKind::Directory, a, d, None, false)
                    }
                    Some(l) => (
                        ChangeKind::Directory,
                        Action::Update,
                        vec![format!("replaces a {:?}", l.kind).to_lowercase()],
                        None,
                        false,
                    ),
                    None => (ChangeKind::Directory, Action::Create, vec![], None, false),
                },
                EntryKind::File {
                    content,
                    digest,
                    mode,
                    owner,
                    group,
                    sensitive,
                    ..
                } => {
                    let want_digest = Some(digest.clone());
                    match live {
                        None => (ChangeKind::File, Action::Create, vec![], want_digest, false),
                        Some(l) if l.kind != PathType::File => (
                            ChangeKind::File,
                            Action::Update,
                            vec![format!("replaces a {:?}", l.kind).to_lowercase()],
                            want_digest,
                            false,
                        ),
                        Some(l) => {
                            let mut d = attribute_details(l, *mode, owner, group);
                            let content_differs = l.digest.as_deref() != Some(digest.as_str());
                            let mut needs_diff = false;
                            if content_differs {
                                let text = std::str::from_utf8(content).is_ok();
                                if *sensitive {
                                    d.insert(0, "content changed (hidden: holds a secret)".into());
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
                            (ChangeKind::File, a, d, want_digest, needs_diff)
                        }
                    }
                }
                EntryKind::Link { target } => match live {
                    Some(l)
                        if l.kind == PathType::Link && l.link_target.as_deref() == Some(target) =>
                    {
                        (ChangeKind::Link, Action::Unchanged, vec![], None, false)
                    }
                    Some(l) => (
                        ChangeKind::Link,
                        Action::Update,
                        vec![match &l.link_target {
                            Some(t) => format!("-> {t} becomes -> {target}"),
                            None => format!("replaces a {:?} with a link to {target}", l.kind)
                                .to_lowercase(),
                        }],
                        None,
                        false,
                    ),
                    None => (
                        ChangeKind::Link,
                        Action::Create,
                        vec![format!("-> {target}")],
                        None,
                        false,
                    ),
                },
                EntryKind::Absent => match live {
                    Some(_) => (ChangeKind::File, Action::Delete, vec![], None, false),
                    None => (
                        ChangeKind::File,
                        Action::Unchanged,
                        vec!["absent".into()],
                        None,
                        false,
                    ),
                },
            };
            let content_changed = matches!(e.kind, EntryKind::File { .. })
                && (action == Action::Create
                    || needs_diff
                    || details
                        .iter()
                        .any(|d| d.contains("changed") || d.starts_with("replaces")));
            changes.push(Change {
                play: p,
                kind,
                target: e.path.clone(),
                action,
                content_changed,
                details,
                diff: None,
                desired_digest: digest,
                needs_diff,
                notify: if action == Action::Unchanged {
                    vec![]
                } else {
                    e.notify.clone()
                },
            });
        }
        for s in &play.services {
            let live = have.services.get(&s.name);
            let active = live.is_some_and(|l| l.active);
            let enabled = live.is_some_and(|l| l.enabled);
            use crate::inventory::ServiceState;
            let (action, details) = match (s.state, active, s.enabled, enabled) {
                (ServiceState::Started, false, true, false) => {
                    (Action::Start, vec!["and enable".to_string()])
                }
                (ServiceState::Started, false, _, _) => (Action::Start, vec![]),
                (_, _, true, false) => (Action::Enable, vec![]),
                _ => (Action::Unchanged, vec![]),
            };
            changes.push(Change::new(
                p,
                ChangeKind::Service,
                s.name.clone(),
                action,
                details,
            ));
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
                    pending: pending && !notified,
                });
            }
        }
    }

    HostPlan {
        facts_digest: have.digest.clone(),
        changes,
        handlers,
        locked_by: have.lock.clone(),
        remote_commands: 0,
        locked: false,
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
        let (EntryKind::File { content, .. }, Some(old)) = (&entry.kind, live.get(&c.target))
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
