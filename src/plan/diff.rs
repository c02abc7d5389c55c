//! The diff: (DesiredState, ActualState) -> HostPlan, pure, and the text diffs shown for
//! changed files. In: a host's desired state and its gathered facts (and, for diffs, the
//! live bodies fetched). Out: its [`HostPlan`], steps in plan order.

use super::model::{Action, Change, DIFF_LIMIT, HandlerCommand, HandlerRef, HostPlan, Step};
use std::collections::BTreeMap;

use similar::TextDiff;

use crate::gather::{ActualState, PathFacts, PathType};
use crate::inventory::ServiceSpec;
use crate::inventory::ServiceState;
use crate::render::{DesiredEntry, DesiredState, EntryKind};
use crate::secret::Redactor;

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

    if let Some(c) = firewall_change(want, have, &changes) {
        changes.push(c);
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
        cas_quick: have.cas_quick.clone(),
        changes,
        handlers,
        locked_by: have.lock.clone(),
        remote_commands: 0,
        locked: false,
    }
}

/// The firewall's drift: its ruleset file is what the render wants, but what is loaded is
/// not what was confirmed (flushed or edited by hand, or a host that booted without it), or
/// the confirmed ruleset (what the host loads at boot) is not that file. Its handler loads
/// the file again, with confirm-or-rollback. Nothing when the file itself changes (that
/// notifies the handler already) or while a change waits for its confirmation.
fn firewall_change(want: &DesiredState, have: &ActualState, changes: &[Change]) -> Option<Change> {
    let fw = want.firewall()?;
    let facts = have.firewall.as_ref()?;
    let file_changes = changes
        .iter()
        .any(|c| c.play == fw.play && c.target == fw.ruleset && c.is_change());
    if file_changes || facts.pending {
        return None;
    }
    let mut why = Vec::new();
    if facts.live.is_none() {
        why.push("not loaded: the host runs without foobar's ruleset".to_string());
    } else if facts.live != facts.confirmed {
        why.push(
            "the loaded ruleset is not the one confirmed (changed by hand, or never confirmed)"
                .to_string(),
        );
    }
    if fw.digest.is_some() && facts.ruleset.as_deref() != fw.digest {
        why.push("the host would boot with another ruleset: this one was never confirmed".into());
    }
    if why.is_empty() {
        return None;
    }
    let mut c = Change::new(
        fw.play,
        Step::Firewall {
            ruleset: fw.ruleset.to_string(),
        },
        Action::Update,
        why,
    );
    c.notify = vec![fw.handler.to_string()];
    Some(c)
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
    use crate::inventory::{HandlerSpec, HostName, ServiceSpec, ServiceState};
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

    /// A firewall play: the ruleset file, loaded by its handler through the loader.
    fn firewall_state() -> DesiredState {
        let mut want = state(vec![file("/etc/fw.nft", "rules\n", &["load firewall"])]);
        want.plays[0].handlers.push(HandlerSpec {
            name: "load firewall".into(),
            service: None,
            run: Some(format!(
                "{} /etc/fw.nft",
                crate::remote::layout::FIREWALL_LOADER
            )),
        });
        want
    }

    /// The host with the ruleset file in place and `facts` about what is loaded.
    fn firewall_host(facts: crate::gather::FirewallFacts) -> ActualState {
        let mut have = ActualState::default();
        have.paths
            .insert("/etc/fw.nft".into(), live_file("rules\n", 0o644));
        have.packages.insert("nginx".into(), true);
        have.services.insert(
            "nginx".into(),
            ServiceFacts {
                active: true,
                enabled: true,
                exists: true,
            },
        );
        have.firewall = Some(facts);
        have
    }

    #[test]
    fn a_firewall_not_loaded_as_confirmed_is_a_change_that_runs_its_handler() {
        let want = firewall_state();
        let confirmed = crate::gather::FirewallFacts {
            live: Some("aa".into()),
            confirmed: Some("aa".into()),
            ruleset: Some(sha256_hex(b"rules\n")),
            pending: false,
        };
        let plan = diff(&want, &firewall_host(confirmed.clone()));
        assert!(!plan.has_changes(), "converged: {plan:?}");

        for (facts, said) in [
            (
                crate::gather::FirewallFacts {
                    live: None,
                    ..confirmed.clone()
                },
                "not loaded",
            ),
            (
                crate::gather::FirewallFacts {
                    live: Some("bb".into()),
                    ..confirmed.clone()
                },
                "is not the one confirmed",
            ),
            (
                crate::gather::FirewallFacts {
                    ruleset: Some("old".into()),
                    ..confirmed.clone()
                },
                "would boot with another ruleset",
            ),
        ] {
            let plan = diff(&want, &firewall_host(facts));
            let c = plan
                .changes
                .iter()
                .find(|c| c.kind == crate::plan::model::ChangeKind::Firewall)
                .unwrap_or_else(|| panic!("{said}: {plan:?}"));
            assert_eq!(c.action, Action::Update);
            assert_eq!(c.target, "/etc/fw.nft");
            assert!(c.details.iter().any(|d| d.contains(said)), "{c:?}");
            assert_eq!(plan.handlers.len(), 1, "{plan:?}");
            assert_eq!(plan.handlers[0].name, "load firewall");
        }

        // A change waiting for its confirmation is left alone; a changed file already
        // notifies the handler, once.
        let pending = crate::gather::FirewallFacts {
            live: None,
            pending: true,
            ..confirmed.clone()
        };
        assert!(!diff(&want, &firewall_host(pending)).has_changes());
        let mut edited = firewall_host(crate::gather::FirewallFacts {
            live: None,
            ..confirmed
        });
        edited
            .paths
            .insert("/etc/fw.nft".into(), live_file("old\n", 0o644));
        let plan = diff(&want, &edited);
        assert!(
            !plan
                .changes
                .iter()
                .any(|c| c.kind == crate::plan::model::ChangeKind::Firewall),
            "{plan:?}"
        );
        assert_eq!(plan.handlers.len(), 1);
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
