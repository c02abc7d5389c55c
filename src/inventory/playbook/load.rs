//! Loading a playbook: the file and the loaded inventory in, a [`Playbook`] out whose plays
//! target existing hosts, name existing templates and sync sources, write absolute paths,
//! notify declared handlers and wait (`after:`) only for earlier plays.

use std::collections::BTreeSet;
use std::path::Path;

use serde_saphyr::Spanned;

use super::fields::{SERVICE_HINT, absolute, account, checked, parse_mode, playbook_error};
use super::raw::{OneOrMany, RawFile, RawHandler, RawPlaybook, RawSync};
use super::{
    DirectorySpec, FileSpec, FileState, HandlerSpec, Play, Playbook, ServiceSpec, SyncSpec,
};
use crate::error::did_you_mean;
use crate::inventory::load::read;
use crate::inventory::project::{Confinement, Expect, confine};
use crate::inventory::rules;
use crate::inventory::yaml::{key_in_block, location_of, parse};
use crate::inventory::{HostName, Inventory, InventoryError, relative_to};

/// A play's `after:` names, as the set of earlier plays it follows on a host (closed over
/// theirs). Without `after:`, a play follows every earlier play, as in the playbook's order.
fn resolve_after(
    path: &Path,
    play: &str,
    after: Option<&[Spanned<String>]>,
    earlier: &[Play],
) -> Result<BTreeSet<usize>, InventoryError> {
    let Some(names) = after else {
        return Ok((0..earlier.len()).collect());
    };
    let mut set = BTreeSet::new();
    for n in names {
        let matching: Vec<&Play> = earlier.iter().filter(|p| p.name == n.value).collect();
        if matching.is_empty() {
            let hint = match did_you_mean(&n.value, earlier.iter().map(|p| p.name.as_str())) {
                Some(c) => format!("did you mean `{c}`?"),
                None if earlier.is_empty() => {
                    "the first play has nothing to wait for; remove `after:`".to_string()
                }
                None => format!(
                    "plays before it: {}",
                    earlier
                        .iter()
                        .map(|p| format!("`{}`", p.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(playbook_error(
                location_of(path, &n.referenced),
                format!(
                    "play `{play}` waits for `{}` (`after:`), which is no earlier play",
                    n.value
                ),
                Some(hint),
            ));
        }
        for p in matching {
            set.insert(p.index);
            set.extend(p.after.iter().copied());
        }
    }
    Ok(set)
}

/// Load a playbook and check it against the inventory: targets exist, templates exist,
/// paths are absolute, notified handlers are declared.
pub fn load_playbook(path: &Path, inventory: &Inventory) -> Result<Playbook, InventoryError> {
    let text = read(path)?;
    let raw: RawPlaybook = parse(path, &text)?;
    let at = |l: &serde_saphyr::Location| location_of(path, l);
    let templates_dir = match &raw.templates_dir {
        Some(d) => relative_to(path, d),
        None => relative_to(path, "../templates"),
    };
    let project = crate::inventory::project::root_for(path);
    if templates_dir.exists()
        && let Err(why) = confine(&project, &templates_dir, Expect::Directory)
    {
        let location = key_in_block(
            &text,
            &crate::error::Location::new(path, 1, 1),
            "templates_dir",
        )
        .unwrap_or_else(|| crate::error::Location::file_only(path));
        return Err(playbook_error(
            location,
            format!("templates_dir {} {why}", templates_dir.display()),
            Some(outside_hint(&project)),
        ));
    }

    let mut plays: Vec<Play> = Vec::new();
    let mut warnings = Vec::new();
    for (index, sp) in raw.plays.into_iter().enumerate() {
        let play_location = at(&sp.referenced);
        let rp = sp.value;
        let after = resolve_after(path, &rp.name, rp.after.as_deref(), &plays)?;
        let hosts_at = location_of(path, &rp.hosts.referenced);
        let (targets, hosts) = play_hosts(path, inventory, &rp.name, rp.hosts)?;
        // Groups foobar adds empty (an optional role left out, backups off) are that part
        // being off; an empty group the inventory itself declares is worth a word.
        let declared_empty: Vec<&String> = targets
            .iter()
            .filter(|t| {
                inventory
                    .groups
                    .get(*t)
                    .is_some_and(|g| g.hosts.is_empty() && g.location.line > 0)
            })
            .collect();
        if hosts.is_empty() && !declared_empty.is_empty() && declared_empty.len() == targets.len() {
            warnings.push(format!(
                "{hosts_at}: warning: play `{}` targets {}, which has no host in {}: skipped",
                rp.name,
                declared_empty
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                inventory.path.display()
            ));
        }
        let handlers = load_handlers(path, rp.handlers)?;
        let handler_names: Vec<String> = handlers.iter().map(|h| h.name.clone()).collect();
        let mut files = Vec::new();
        for f in rp.files {
            files.push(load_file(
                path,
                &project,
                &templates_dir,
                f,
                &handler_names,
            )?);
        }

        let mut directories = Vec::new();
        for d in rp.directories {
            directories.push(DirectorySpec {
                path: absolute(path, &d.path, "path")?,
                owner: account(path, d.owner.as_ref(), "owner")?,
                group: account(path, d.group.as_ref(), "group")?,
                mode: parse_mode(path, d.mode.as_ref(), 0o755)?,
                location: at(&d.path.referenced),
            });
        }

        let mut sync = Vec::new();
        for s in rp.sync {
            sync.push(load_sync(path, &project, s, &handler_names)?);
        }

        let mut packages = Vec::new();
        for p in &rp.packages {
            packages.push(checked(
                path,
                p,
                "package",
                rules::check_package,
                "name a Debian package as apt knows it, e.g. `nginx` or `python3-pymysql`",
            )?);
        }
        let mut services = Vec::new();
        for s in rp.services {
            services.push(ServiceSpec {
                name: checked(path, &s.name, "service", rules::check_service, SERVICE_HINT)?,
                enabled: s.enabled,
                state: s.state,
            });
        }
        plays.push(Play {
            index,
            name: rp.name,
            targets,
            hosts,
            serial: rp.serial,
            database: rp.database,
            when: rp.when,
            after,
            packages,
            directories,
            files,
            sync,
            services,
            handlers,
            location: play_location,
        });
    }
    let keep_backups = match raw.keep_backups {
        Some(k) if k.value == 0 => {
            return Err(playbook_error(
                at(&k.referenced),
                "`keep_backups: 0` would delete the backups a rollback needs".into(),
                Some("keep at least 1 run's backups (default 5)".into()),
            ));
        }
        Some(k) => k.value,
        None => crate::remote::backups::DEFAULT_KEEP_BACKUPS,
    };
    Ok(Playbook {
        path: path.to_path_buf(),
        templates_dir,
        project,
        keep_backups,
        plays,
        limits: raw.limits,
        warnings,
    })
}

/// A play's `hosts:` as written, and the hosts of the inventory they name. Each target must
/// be a group or host of the inventory (a declared group may be empty).
fn play_hosts(
    path: &Path,
    inventory: &Inventory,
    play: &str,
    raw: Spanned<OneOrMany>,
) -> Result<(Vec<String>, Vec<HostName>), InventoryError> {
    let at = |l: &serde_saphyr::Location| location_of(path, l);
    let hosts_at = raw.referenced;
    let targets: Vec<Spanned<String>> = match raw.value {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }
    .into_iter()
    .map(|t| Spanned::new(t, hosts_at, hosts_at))
    .collect();
    let mut hosts = BTreeSet::new();
    for t in &targets {
        let matched = inventory.match_pattern(&t.value);
        // A declared group may be empty (e.g. `backup_host` without `backups:`).
        if matched.is_empty() && !inventory.groups.contains_key(&t.value) {
            let names = inventory
                .groups
                .keys()
                .map(String::as_str)
                .chain(inventory.hosts.keys().map(|h| h.as_str()));
            let hint = match did_you_mean(&t.value, names) {
                Some(c) => format!("did you mean `{c}`?"),
                None => format!(
                    "groups in {}: {}",
                    inventory.path.display(),
                    std::iter::once("all")
                        .chain(inventory.groups.keys().map(String::as_str))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            return Err(playbook_error(
                at(&t.referenced),
                format!(
                    "play `{}` targets `{}`, which is no group or host of the inventory",
                    play, t.value
                ),
                Some(hint),
            ));
        }
        hosts.extend(matched);
    }
    Ok((
        targets.into_iter().map(|t| t.value).collect(),
        hosts.into_iter().collect(),
    ))
}

/// A play's `handlers:`: each a service with an action, or a command.
fn load_handlers(path: &Path, raw: Vec<RawHandler>) -> Result<Vec<HandlerSpec>, InventoryError> {
    let at = |l: &serde_saphyr::Location| location_of(path, l);
    let mut handlers = Vec::new();
    for h in raw {
        checked(
            path,
            &h.name,
            "handler name",
            rules::check_name,
            "write the name on one line",
        )?;
        let spec = match (h.service, h.action, h.run) {
            (Some(s), Some(a), None) => HandlerSpec {
                name: h.name.value.clone(),
                service: Some((
                    checked(path, &s, "service", rules::check_service, SERVICE_HINT)?,
                    a,
                )),
                run: None,
            },
            (None, None, Some(cmd)) => {
                // Sent to the host as written: a `{{` would reach the shell literally, after
                // the files were swapped.
                if cmd.value.contains("{{") || cmd.value.contains("{%") {
                    return Err(playbook_error(
                        at(&cmd.referenced),
                        format!(
                            "handler `{}`'s `run:` holds template syntax, but `run:` is not a template: the host's shell would get `{}` as written",
                            h.name.value,
                            cmd.value.trim()
                        ),
                        Some("write the command out; a value it needs belongs in a file the play renders from a template, which the command reads".into()),
                    ));
                }
                HandlerSpec {
                    name: h.name.value.clone(),
                    service: None,
                    run: Some(cmd.value),
                }
            }
            _ => {
                return Err(playbook_error(
                    at(&h.name.referenced),
                    format!(
                        "handler `{}` needs either `service:` with `action:` (reload or restart), or `run:`",
                        h.name.value
                    ),
                    Some("e.g. `service: nginx` and `action: reload`".into()),
                ));
            }
        };
        handlers.push(spec);
    }
    Ok(handlers)
}

/// A `notify:` list, each name a handler of the play.
fn check_notify(
    path: &Path,
    handler_names: &[String],
    notify: &[Spanned<String>],
) -> Result<Vec<String>, InventoryError> {
    let at = |l: &serde_saphyr::Location| location_of(path, l);
    notify
        .iter()
        .map(|n| {
            if handler_names.contains(&n.value) {
                Ok(n.value.clone())
            } else {
                let hint = match did_you_mean(&n.value, handler_names.iter().map(String::as_str)) {
                    Some(c) => format!("did you mean `{c}`?"),
                    None => format!(
                        "declare it under this play's `handlers:` (declared: {})",
                        if handler_names.is_empty() {
                            "none".to_string()
                        } else {
                            handler_names.join(", ")
                        }
                    ),
                };
                Err(playbook_error(
                    at(&n.referenced),
                    format!("`notify` names unknown handler `{}`", n.value),
                    Some(hint),
                ))
            }
        })
        .collect()
}

/// What to do about a path outside the project.
fn outside_hint(project: &Path) -> String {
    format!(
        "a playbook reads files of its project only, {} (the directory of foobar.toml, else the one above the playbook's): copy the file into it, or put a foobar.toml at the root of the tree it belongs to",
        project.display()
    )
}

/// One entry of a play's `files:`.
fn load_file(
    path: &Path,
    project: &Path,
    templates_dir: &Path,
    f: Spanned<RawFile>,
    handler_names: &[String],
) -> Result<FileSpec, InventoryError> {
    let at = |l: &serde_saphyr::Location| location_of(path, l);
    let location = at(&f.referenced);
    let rf = f.value;
    let dest = absolute(path, &rf.dest, "dest")?;
    if dest == "/" {
        return Err(playbook_error(
            at(&rf.dest.referenced),
            "file `dest: /` is the root directory, which no file can replace".into(),
            Some("name the file's own path, e.g. `/etc/app/app.conf`".into()),
        ));
    }
    let state = rf.state.unwrap_or(FileState::Present);
    if state == FileState::Present && rf.template.is_none() == rf.content.is_none() {
        return Err(playbook_error(
            at(&rf.dest.referenced),
            format!(
                "file `{}` needs exactly one of `template:` or `content:`",
                rf.dest.value
            ),
            Some("use `state: absent` to remove a file".into()),
        ));
    }
    if let Some(t) = &rf.template {
        let full = templates_dir.join(&t.value);
        match confine(project, &full, Expect::File) {
            Ok(_) | Err(Confinement::Missing) => {}
            Err(why) => {
                return Err(playbook_error(
                    at(&t.referenced),
                    format!("template `{}` {why}", t.value),
                    Some(outside_hint(project)),
                ));
            }
        }
        if !full.is_file() {
            return Err(playbook_error(
                at(&t.referenced),
                format!(
                    "template `{}` not found (looked for {})",
                    t.value,
                    full.display()
                ),
                Some(format!(
                    "templates are read from {}; set `templates_dir:` in the playbook to change it",
                    templates_dir.display()
                )),
            ));
        }
    }
    let mode = parse_mode(path, rf.mode.as_ref(), 0o644)?;
    let link = match &rf.link {
        Some(l) => Some(absolute(path, l, "link")?),
        None => None,
    };
    Ok(FileSpec {
        template: rf.template.map(|t| t.value),
        content: rf.content,
        dest,
        state,
        owner: account(path, rf.owner.as_ref(), "owner")?,
        group: account(path, rf.group.as_ref(), "group")?,
        mode,
        validate: rf.validate,
        link,
        notify: check_notify(path, handler_names, &rf.notify)?,
        sensitive: rf.sensitive,
        location,
    })
}

/// One entry of a play's `sync:`.
fn load_sync(
    path: &Path,
    project: &Path,
    s: Spanned<RawSync>,
    handler_names: &[String],
) -> Result<SyncSpec, InventoryError> {
    let at = |l: &serde_saphyr::Location| location_of(path, l);
    let location = at(&s.referenced);
    let rs = s.value;
    let src = relative_to(path, &rs.src.value);
    match confine(project, &src, Expect::Directory) {
        Ok(_) | Err(Confinement::Missing) => {}
        Err(why) => {
            return Err(playbook_error(
                at(&rs.src.referenced),
                format!("sync source `{}` {why}", rs.src.value),
                Some(outside_hint(project)),
            ));
        }
    }
    if !src.is_dir() {
        return Err(playbook_error(
            at(&rs.src.referenced),
            format!(
                "sync source `{}` is not a directory (looked for {})",
                rs.src.value,
                src.display()
            ),
            Some("paths under `sync: src:` are relative to the playbook file".into()),
        ));
    }
    Ok(SyncSpec {
        src,
        dest: absolute(path, &rs.dest, "dest")?,
        owner: account(path, rs.owner.as_ref(), "owner")?,
        group: account(path, rs.group.as_ref(), "group")?,
        notify: check_notify(path, handler_names, &rs.notify)?,
        sensitive: rs.sensitive,
        location,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(plays: &str) -> Result<Playbook, InventoryError> {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad");
        let inventory =
            crate::inventory::load_inventory(&fixtures.join("inventories/good.yml")).unwrap();
        std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
        let pb = dir.path().join("playbooks/pb.yml");
        std::fs::write(&pb, format!("plays:\n{plays}")).unwrap();
        load_playbook(&pb, &inventory)
    }

    fn play(name: &str, after: &str) -> String {
        format!("  - name: {name}\n    hosts: web\n{after}")
    }

    #[test]
    fn plays_follow_every_earlier_play_unless_after_says_otherwise() {
        let pb = load(
            &[
                play("a", ""),
                play("b", "    after: []\n"),
                play("c", "    after: [b]\n"),
                play("d", ""),
            ]
            .concat(),
        )
        .unwrap();
        let after: Vec<Vec<usize>> = pb
            .plays
            .iter()
            .map(|p| p.after.iter().copied().collect())
            .collect();
        assert_eq!(after, vec![vec![], vec![], vec![1], vec![0, 1, 2]]);
    }

    #[test]
    fn after_is_closed_over_the_plays_it_names() {
        let pb =
            load(&[play("a", ""), play("b", ""), play("c", "    after: [b]\n")].concat()).unwrap();
        // c follows b, and b follows a: c never runs beside a.
        assert_eq!(pb.plays[2].after, BTreeSet::from([0, 1]));
    }

    #[test]
    fn after_may_only_name_earlier_plays() {
        let err = load(&[play("a", "    after: [b]\n"), play("b", "")].concat()).unwrap_err();
        assert!(err.to_string().contains("`b`"), "{err}");
    }
}
