//! Checks on a rendered host: a [`DesiredState`] (or its plays) in, `Ok` or the first
//! [`RenderError`] out. What a template or variable produced follows the same rules
//! ([`crate::inventory::rules`]) as the playbook's literals did at load, and no path on a
//! host comes from two places.

use std::collections::BTreeMap;
use std::path::Path;

use super::desired::{DesiredPlay, DesiredState, EntryKind};
use super::error::RenderError;
use crate::error::Location;
use crate::inventory::{HostName, Playbook};

/// Every value of a rendered host that reaches a host's scripts follows [`crate::inventory::rules`]:
/// what a template or variable produced is checked as the playbook's literals were at load.
pub(super) fn check_rendered(state: &DesiredState, playbook: &Playbook) -> Result<(), RenderError> {
    use crate::inventory::rules;
    let invalid = |play: &DesiredPlay, message: String, hint: &str| {
        let location = playbook
            .plays
            .iter()
            .find(|p| p.index == play.index)
            .map(|p| p.location.clone())
            .unwrap_or_else(|| Location::file_only(&playbook.path));
        RenderError::Invalid {
            location,
            host: state.host.clone(),
            message,
            hint: hint.to_string(),
        }
    };
    for play in &state.plays {
        for e in &play.entries {
            rules::check_path(&e.path).map_err(|why| {
                invalid(
                    play,
                    format!("path `{}` ({}) {why}", e.path.escape_debug(), e.origin),
                    "paths on hosts must be absolute and normalized, without `..`, `//` or control characters",
                )
            })?;
            let accounts = match &e.kind {
                EntryKind::File { owner, group, .. }
                | EntryKind::Directory { owner, group, .. } => {
                    vec![owner, group]
                }
                EntryKind::Link { target } => {
                    rules::check_path(target).map_err(|why| {
                        invalid(
                            play,
                            format!("link target `{}` {why}", target.escape_debug()),
                            "link to an absolute, normalized path",
                        )
                    })?;
                    vec![]
                }
                EntryKind::Absent => vec![],
            };
            for a in accounts {
                rules::check_account(a).map_err(|why| {
                    invalid(
                        play,
                        format!("owner or group `{}` of {} {why}", a.escape_debug(), e.path),
                        "name an existing user or group, e.g. `root` or `www-data`",
                    )
                })?;
            }
        }
        for p in &play.packages {
            rules::check_package(p).map_err(|why| {
                invalid(
                    play,
                    format!("package `{}` {why}", p.escape_debug()),
                    "name a Debian package as apt knows it",
                )
            })?;
        }
        let handler_services = play
            .handlers
            .iter()
            .filter_map(|h| h.service.as_ref().map(|s| &s.0));
        for name in play
            .services
            .iter()
            .map(|s| &s.name)
            .chain(handler_services)
        {
            rules::check_service(name).map_err(|why| {
                invalid(
                    play,
                    format!("service `{}` {why}", name.escape_debug()),
                    "name a systemd unit as systemctl takes it, e.g. `nginx`",
                )
            })?;
        }
    }
    Ok(())
}

pub(super) fn check_duplicate_paths(
    host: &HostName,
    plays: &[DesiredPlay],
    playbook: &Path,
) -> Result<(), RenderError> {
    let mut seen: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for play in plays {
        for e in &play.entries {
            if matches!(e.kind, EntryKind::Directory { .. }) {
                continue;
            }
            if let Some((other_play, other_origin)) = seen.get(e.path.as_str()) {
                return Err(RenderError::Invalid {
                    location: Location::file_only(playbook),
                    host: host.clone(),
                    message: format!(
                        "{} is managed twice on {host}: by play `{other_play}` ({other_origin}) and by play `{}` ({})",
                        e.path, play.name, e.origin
                    ),
                    hint: "each path on a host may come from one place only".into(),
                });
            }
            seen.insert(&e.path, (&play.name, &e.origin));
        }
    }
    Ok(())
}
