//! Human-readable plans and reports.

use std::fmt::Write as _;

use console::Style;

use crate::apply::{HostStatus, Report};
use crate::plan::{Action, ChangeKind, Plan};

pub struct Styles {
    colour: bool,
    add: Style,
    del: Style,
    head: Style,
    bold: Style,
    dim: Style,
}

impl Styles {
    pub fn new(colour: bool) -> Self {
        let s = |st: Style| if colour { st } else { Style::new() };
        Self {
            colour,
            add: s(Style::new().green()),
            del: s(Style::new().red()),
            head: s(Style::new().cyan()),
            bold: s(Style::new().bold()),
            dim: s(Style::new().dim()),
        }
    }
}

/// `1 host`, `2 hosts`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn symbol(action: Action) -> char {
    match action {
        Action::Create | Action::Install | Action::Start | Action::Enable => '+',
        Action::Update => '~',
        Action::Delete => '-',
        Action::Unchanged => '=',
    }
}

/// `text` with every control character but newline and tab shown as an escape (`\u{1b}`):
/// what hosts and plan files hold is data, and an ESC or a carriage return from them must not
/// drive the terminal (rewrite lines, hide a change, set the title).
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The plan, one block per host, then the summary line. Control characters from the plan
/// (file bodies, paths, names: a saved plan file may come from anywhere) are escaped; the
/// colours are foobar's own, so a plan that holds any is printed without them.
pub fn plan(plan: &Plan, st: &Styles, show_unchanged: bool) -> String {
    let plain = plan_text(plan, &Styles::new(false), show_unchanged);
    if plain
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        escape_controls(&plain)
    } else if st.colour {
        plan_text(plan, st, show_unchanged)
    } else {
        plain
    }
}

fn plan_text(plan: &Plan, st: &Styles, show_unchanged: bool) -> String {
    let mut out = String::new();
    let (mut create, mut update, mut delete, mut other, mut unchanged) = (0, 0, 0, 0, 0);
    for (host, hp) in &plan.hosts {
        let _ = writeln!(out, "{}", st.bold.apply_to(format!("{host}:")));
        if let Some(l) = &hp.locked_by {
            let _ = writeln!(out, "  ! locked by {l}");
        }
        let mut quiet_unchanged = 0;
        for c in &hp.changes {
            match c.action {
                Action::Create => create += 1,
                Action::Update => update += 1,
                Action::Delete => delete += 1,
                Action::Unchanged => unchanged += 1,
                _ => other += 1,
            }
            if c.action == Action::Unchanged {
                let shown = show_unchanged
                    && matches!(c.kind, ChangeKind::File | ChangeKind::Link)
                    && !matches!(c.step, crate::plan::Step::Absent { .. });
                if !shown {
                    quiet_unchanged += 1;
                    continue;
                }
            }
            let kind = c.kind.word();
            let inline = c.kind != ChangeKind::Database;
            let line = format!(
                "  {} {} {kind} {}{}",
                symbol(c.action),
                c.action.word(),
                c.target,
                if c.details.is_empty() || !inline {
                    String::new()
                } else {
                    format!(" ({})", c.details.join("; "))
                }
            );
            let styled = match c.action {
                Action::Unchanged => st.dim.apply_to(line),
                Action::Delete => st.del.apply_to(line),
                Action::Update => st.head.apply_to(line),
                _ => st.add.apply_to(line),
            };
            let _ = writeln!(out, "{styled}");
            if !inline {
                for d in &c.details {
                    let _ = writeln!(out, "    {}", st.dim.apply_to(d));
                }
            }
            if let Some(d) = &c.diff {
                for l in d.lines() {
                    let styled = if l.starts_with("+++") || l.starts_with("---") {
                        st.bold.apply_to(l.to_string())
                    } else if l.starts_with('+') {
                        st.add.apply_to(l.to_string())
                    } else if l.starts_with('-') {
                        st.del.apply_to(l.to_string())
                    } else if l.starts_with("@@") {
                        st.head.apply_to(l.to_string())
                    } else {
                        st.dim.apply_to(l.to_string())
                    };
                    let _ = writeln!(out, "    {styled}");
                }
            }
        }
        if quiet_unchanged > 0 && hp.has_changes() {
            let _ = writeln!(
                out,
                "  {}",
                st.dim
                    .apply_to(format!("= {quiet_unchanged} more unchanged"))
            );
        }
        for h in &hp.handlers {
            let _ = writeln!(
                out,
                "  ! run handler `{}`{}",
                h.name,
                if h.pending {
                    " (left pending by an interrupted run)"
                } else {
                    ""
                }
            );
        }
        if !hp.has_changes() {
            if quiet_unchanged > 0 {
                let _ = writeln!(out, "  no changes ({quiet_unchanged} unchanged)");
            } else {
                let _ = writeln!(out, "  no changes");
            }
        }
    }
    for (host, why) in &plan.failed {
        let _ = writeln!(out, "{}", st.bold.apply_to(format!("{host}:")));
        let _ = writeln!(out, "  {}", st.del.apply_to(format!("cannot plan: {why}")));
    }
    for line in &plan.rollout {
        let _ = writeln!(out, "{}", st.head.apply_to(format!("rollout: {line}")));
    }
    let mut summary = format!(
        "{create} to create, {update} to update, {delete} to delete, {unchanged} unchanged"
    );
    if other > 0 {
        let _ = write!(summary, ", {other} packages/services to install or start");
    }
    let handlers: usize = plan.hosts.values().map(|h| h.handlers.len()).sum();
    if handlers > 0 {
        let _ = write!(summary, ", {} to run", count(handlers, "handler"));
    }
    let _ = write!(
        summary,
        " on {}",
        count(plan.hosts.len() + plan.failed.len(), "host")
    );
    if !plan.failed.is_empty() {
        let _ = write!(summary, " ({} could not be planned)", plan.failed.len());
    }
    if !plan.has_changes() && plan.failed.is_empty() {
        summary = format!("No changes. {summary}.");
    } else {
        summary.push('.');
    }
    let _ = writeln!(out, "{}", st.bold.apply_to(summary));
    out
}

/// A step of a dry run as the verb phrase after "would": `file /a` reads `write file /a`.
fn would(d: &crate::apply::Outcome) -> String {
    use crate::apply::Outcome as O;
    match d {
        O::Packages { names } => format!("install package {}", names.join(" ")),
        O::Directory { path } => format!("create or fix directory {path}"),
        O::Attributes { path } => format!("fix owner and mode of {path}"),
        O::Validated { path } => format!("validate {path}"),
        O::File { path } => format!("write file {path}"),
        O::Link { path } => format!("link {path}"),
        O::Deleted { path } => format!("delete {path}"),
        O::Service { name } => format!("enable or start service {name}"),
        O::Handler { name } => format!("run handler {name}"),
        other => other.to_string(),
    }
}

/// The apply report: per host what happened, then the summary.
pub fn report(r: &Report, st: &Styles) -> String {
    let mut out = String::new();
    for (host, h) in &r.hosts {
        let status = match &h.status {
            HostStatus::Unchanged => st.dim.apply_to("unchanged".to_string()),
            HostStatus::Changed => st.add.apply_to("changed".to_string()),
            HostStatus::WouldChange => st.head.apply_to("would change (dry run)".to_string()),
            HostStatus::Failed { stage, .. } => st.del.apply_to(format!("FAILED during {stage}")),
            HostStatus::RolledBack { handler, .. } => st.del.apply_to(format!(
                "FAILED: handler `{handler}` failed, files rolled back"
            )),
            HostStatus::NotStarted { reason } => st.del.apply_to(format!("not started: {reason}")),
        };
        let _ = writeln!(out, "{} {status}", st.bold.apply_to(format!("{host}:")));
        for d in &h.done {
            if r.dry_run {
                let _ = writeln!(out, "  would {}", would(d));
            } else {
                let _ = writeln!(out, "  done {d}");
            }
        }
        for s in &h.skipped {
            let _ = writeln!(out, "  skipped {s}");
        }
        match &h.status {
            HostStatus::Failed {
                message,
                stage,
                hint,
            } => {
                for l in message.lines() {
                    let _ = writeln!(out, "  | {l}");
                }
                if stage.nothing_replaced() {
                    let _ = writeln!(out, "  no live file on {host} was replaced by this step");
                }
                if let Some(hint) = hint {
                    let _ = writeln!(out, "  hint: {hint}");
                }
            }
            HostStatus::RolledBack {
                error,
                after_restore,
                ..
            } => {
                let _ = writeln!(out, "  handler error:");
                for l in error.lines() {
                    let _ = writeln!(out, "  | {l}");
                }
                let _ = writeln!(
                    out,
                    "  after restoring the previous files, the handler said:"
                );
                for l in after_restore.lines() {
                    let _ = writeln!(out, "  | {l}");
                }
            }
            _ => {}
        }
    }
    let changed = r
        .hosts
        .values()
        .filter(|h| matches!(h.status, HostStatus::Changed | HostStatus::WouldChange))
        .count();
    let failed = r.failed_hosts();
    let mut summary = if r.dry_run {
        format!(
            "Dry run: {} would change, {} unchanged",
            count(changed, "host"),
            r.hosts.len() - changed - failed.len()
        )
    } else {
        format!(
            "{} changed, {} unchanged",
            count(changed, "host"),
            r.hosts.len() - changed - failed.len()
        )
    };
    if !failed.is_empty() {
        let _ = write!(
            summary,
            ", {} failed: {}",
            failed.len(),
            failed
                .iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if r.interrupted {
        summary.push_str(" (interrupted: no new step was started after the signal)");
    }
    let _ = writeln!(out, "{}", st.bold.apply_to(format!("{summary}.")));
    out
}

/// The verify report: a table per host, replication first, a reason and hint on each failure.
pub fn health(
    h: &crate::verify::Health,
    st: &Styles,
    order: impl Fn(&crate::host::HostName) -> u8,
) -> String {
    let mut out = String::new();
    let mut hosts: Vec<_> = h.hosts.iter().collect();
    hosts.sort_by_key(|(name, _)| (order(name), (*name).clone()));
    let mut failed = Vec::new();
    for (host, hh) in hosts {
        let _ = writeln!(out, "{}", st.bold.apply_to(format!("{host}:")));
        for c in &hh.checks {
            let mark = if c.ok {
                st.add.apply_to("ok  ".to_string())
            } else {
                st.del.apply_to("FAIL".to_string())
            };
            let _ = writeln!(out, "  {mark} {:<18} {}", c.name, c.detail);
            if let (false, Some(hint)) = (c.ok, &c.hint) {
                let _ = writeln!(out, "       {:<18} hint: {hint}", "");
            }
        }
        if hh.checks.iter().any(|c| !c.ok) {
            let names: Vec<&str> = hh.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
            failed.push(format!("{host} ({})", names.join(", ")));
        }
    }
    if failed.is_empty() {
        let _ = writeln!(out, "{}", st.bold.apply_to("Healthy: every check passed."));
    } else {
        let _ = writeln!(
            out,
            "{}",
            st.bold
                .apply_to(format!("Unhealthy: {}.", failed.join("; ")))
        );
    }
    out
}

/// An error for stderr: `error: …`, then, when it is in a file, `  --> file:line:col` with a
/// code frame of that line (annotate-snippets), then `hint: …` when there is one.
pub fn error(
    message: &str,
    location: Option<&crate::error::Location>,
    hint: Option<&str>,
    colour: bool,
) -> String {
    let mut out = match location.and_then(|l| code_frame(message, l, colour)) {
        Some(framed) => format!("{framed}\n"),
        None => {
            let mut out = format!("error: {message}\n");
            if let Some(l) = location {
                let _ = writeln!(out, "  --> {l}");
            }
            out
        }
    };
    if let Some(h) = hint {
        let _ = writeln!(out, "hint: {h}");
    }
    out
}

/// `error: message`, `  --> file:line:col` and the line with a caret under the column,
/// rustc-style; `None` when the file or the line cannot be read (the caller prints the
/// location alone).
fn code_frame(message: &str, l: &crate::error::Location, colour: bool) -> Option<String> {
    use annotate_snippets::{AnnotationKind, Level, Renderer, Snippet};
    if l.line == 0 {
        return None;
    }
    let text = std::fs::read_to_string(&l.file).ok()?;
    let line = text.lines().nth(l.line as usize - 1)?;
    // The column counts characters from 1; the span is in bytes, at least one wide.
    let start = line
        .char_indices()
        .nth(l.column.saturating_sub(1) as usize)
        .map_or(line.len(), |(i, _)| i);
    let word = line[start..]
        .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '}' | ':'))
        .filter(|n| *n > 0)
        .unwrap_or_else(|| line[start..].chars().next().map_or(0, char::len_utf8));
    let path = l.file.display().to_string();
    let report = &[Level::ERROR.primary_title(message).element(
        Snippet::source(line)
            .line_start(l.line as usize)
            .path(&path)
            .annotation(AnnotationKind::Primary.span(start..start + word)),
    )];
    let renderer = if colour {
        Renderer::styled()
    } else {
        Renderer::plain()
    };
    let framed = renderer.render(report).to_string();
    // annotate-snippets computes the column itself; keep it only when it agrees with ours.
    framed
        .contains(&format!("{path}:{}:{}", l.line, l.column.max(1)))
        .then_some(framed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::inventory::HostName;
    use crate::inventory::ServiceAction;
    use crate::plan::{Change, HandlerCommand, HandlerRef, HostPlan, Step};

    fn one_host(changes: Vec<Change>, handlers: Vec<HandlerRef>) -> Plan {
        let mut hosts = BTreeMap::new();
        hosts.insert(
            HostName::new("web-01"),
            HostPlan {
                cas: String::new(),
                cas_quick: None,
                facts_digest: String::new(),
                changes,
                handlers,
                locked_by: None,
                remote_commands: 1,
                locked: false,
            },
        );
        Plan {
            format_version: 1,
            inventory: String::new(),
            playbook: String::new(),
            hosts,
            failed: BTreeMap::new(),
            rollout: vec![],
            inputs: None,
        }
    }

    fn file(target: &str, action: Action) -> Change {
        Change::new(
            0,
            Step::Package {
                name: target.into(),
            },
            action,
            vec![],
        )
    }

    #[test]
    fn a_host_without_changes_says_so_once_with_its_unchanged_count() {
        let plan = one_host(
            vec![file("/a", Action::Unchanged), file("/b", Action::Unchanged)],
            vec![],
        );
        let text = super::plan(&plan, &Styles::new(false), false);
        assert_eq!(
            text,
            "web-01:\n  no changes (2 unchanged)\nNo changes. 0 to create, 0 to update, 0 to delete, 2 unchanged on 1 host.\n"
        );
    }

    #[test]
    fn counts_are_singular_for_one() {
        let plan = one_host(
            vec![file("/a", Action::Create), file("/b", Action::Unchanged)],
            vec![HandlerRef {
                play: 0,
                name: "reload".into(),
                command: HandlerCommand::Service {
                    name: "nginx".into(),
                    action: ServiceAction::Reload,
                },
                pending: false,
            }],
        );
        let text = super::plan(&plan, &Styles::new(false), false);
        assert!(text.contains("  = 1 more unchanged\n"), "{text}");
        assert!(
            text.ends_with(
                "1 to create, 0 to update, 0 to delete, 1 unchanged, 1 handler to run on 1 host.\n"
            ),
            "{text}"
        );
        assert_eq!(count(2, "host"), "2 hosts");
    }

    #[test]
    fn a_dry_run_says_what_it_would_run() {
        let mut report = Report {
            format_version: 1,
            dry_run: true,
            hosts: BTreeMap::new(),
            interrupted: false,
        };
        let mut h = crate::apply::HostReport::new();
        h.status = HostStatus::WouldChange;
        h.done = vec![
            crate::apply::Outcome::Planned {
                action: Action::Create,
                kind: ChangeKind::File,
                target: "/a".into(),
            },
            crate::apply::Outcome::Handler {
                name: "say hello".into(),
            },
        ];
        report.hosts.insert(HostName::new("web-01"), h);
        let text = super::report(&report, &Styles::new(false));
        assert_eq!(
            text,
            "web-01: would change (dry run)\n  would create file /a\n  would run handler say hello\nDry run: 1 host would change, 0 unchanged.\n"
        );
    }

    #[test]
    fn a_dry_run_names_each_executed_step_with_what_it_would_do() {
        use crate::apply::Outcome;
        let mut report = Report {
            format_version: 1,
            dry_run: true,
            hosts: BTreeMap::new(),
            interrupted: false,
        };
        let mut h = crate::apply::HostReport::new();
        h.status = HostStatus::WouldChange;
        h.done = vec![
            Outcome::Packages {
                names: vec!["nginx".into()],
            },
            Outcome::Validated { path: "/a".into() },
            Outcome::File { path: "/a".into() },
            Outcome::Deleted { path: "/b".into() },
            Outcome::Service {
                name: "nginx".into(),
            },
            Outcome::Handler {
                name: "reload nginx".into(),
            },
        ];
        report.hosts.insert(HostName::new("web-01"), h);
        let text = super::report(&report, &Styles::new(false));
        assert_eq!(
            text,
            "web-01: would change (dry run)\n  would install package nginx\n  would validate /a\n  would write file /a\n  would delete /b\n  would enable or start service nginx\n  would run handler reload nginx\nDry run: 1 host would change, 0 unchanged.\n"
        );
    }
}
