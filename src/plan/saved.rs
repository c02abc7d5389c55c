//! A saved plan against today's render: [`check_saved`] names the first difference.
//! In: a saved [`HostPlan`] and today's [`DesiredState`]. Out: `Ok` or [`SavedPlanError`].

use super::diff::desired_steps;
use super::model::{Change, ChangeKind, HandlerCommand, HostPlan, Step};
use std::collections::BTreeMap;

use crate::render::DesiredState;

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
/// decided on live facts alone (database, rotation, firewall) are left to the apply, which re-reads the
/// facts under the lock. The error names the first difference.
pub fn check_saved(saved: &HostPlan, want: &DesiredState) -> Result<(), SavedPlanError> {
    let today = desired_steps(want);
    let mut planned: Vec<(usize, Step)> = Vec::new();
    let mut notified: Vec<&Change> = Vec::new();
    for c in &saved.changes {
        if matches!(
            c.step,
            Step::Database { .. } | Step::Rotation { .. } | Step::Firewall { .. }
        ) {
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
