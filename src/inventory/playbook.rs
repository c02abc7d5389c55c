//! The playbook: ordered plays, each naming hosts and what must be true on them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::load::read;
use super::rules;
use super::yaml::{location_of, parse};
use super::{HostName, Inventory, InventoryError, relative_to};
use crate::error::{Location, did_you_mean};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseRole {
    Primary,
    Replica,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceState {
    Started,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceAction {
    Reload,
    Restart,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    template: Option<Spanned<String>>,
    content: Option<String>,
    dest: Spanned<String>,
    #[serde(default)]
    state: Option<FileState>,
    owner: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
    validate: Option<String>,
    link: Option<Spanned<String>>,
    #[serde(default)]
    notify: Vec<Spanned<String>>,
    #[serde(default)]
    sensitive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSync {
    src: Spanned<String>,
    dest: Spanned<String>,
    owner: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    #[serde(default)]
    notify: Vec<Spanned<String>>,
    #[serde(default)]
    sensitive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDirectory {
    path: Spanned<String>,
    owner: Option<Spanned<String>>,
    group: Option<Spanned<String>>,
    mode: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "started")]
    state: ServiceState,
}

fn yes() -> bool {
    true
}
fn started() -> ServiceState {
    ServiceState::Started
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandler {
    name: Spanned<String>,
    service: Option<Spanned<String>>,
    action: Option<ServiceAction>,
    run: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlay {
    name: String,
    /// Spanned outside the untagged enum: serde buffers untagged content and loses positions.
    hosts: Spanned<OneOrMany>,
    serial: Option<u32>,
    database: Option<DatabaseRole>,
    /// A template rendered per host; the play skips hosts where it renders false or empty.
    when: Option<String>,
    /// Earlier plays this one waits for on each host; absent: all of them.
    after: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    packages: Vec<Spanned<String>>,
    #[serde(default)]
    directories: Vec<RawDirectory>,
    #[serde(default)]
    files: Vec<Spanned<RawFile>>,
    #[serde(default)]
    sync: Vec<Spanned<RawSync>>,
    #[serde(default)]
    services: Vec<RawService>,
    #[serde(default)]
    handlers: Vec<RawHandler>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    templates_dir: Option<String>,
    /// Runs whose backups each host keeps in /var/backups/foobar (default 5).
    keep_backups: Option<Spanned<u32>>,
    #[serde(default)]
    limits: Limits,
    plays: Vec<Spanned<RawPlay>>,
}

/// A managed file. `template` (a path under the templates dir) or `content` gives the body.
#[derive(Debug, Clone)]
pub struct FileSpec {
    pub template: Option<String>,
    pub content: Option<String>,
    /// May contain `{{ variables }}`; absolute once rendered.
    pub dest: String,
    pub state: FileState,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    /// A command run against the new file before it replaces the live one; `%s` is the
    /// new file's path.
    pub validate: Option<String>,
    /// A symlink pointing at `dest` (e.g. sites-enabled).
    pub link: Option<String>,
    pub notify: Vec<String>,
    /// Never shown in a diff and backed up 0600, whatever it reads (`sensitive: true`).
    pub sensitive: bool,
    pub location: Location,
}

/// A directory that must exist with this owner and mode.
#[derive(Debug, Clone)]
pub struct DirectorySpec {
    pub path: String,
    pub owner: String,
    pub group: String,
    pub mode: u32,
    pub location: Location,
}

/// A local directory mirrored to `dest` on the host, file by file.
#[derive(Debug, Clone)]
pub struct SyncSpec {
    pub src: PathBuf,
    pub dest: String,
    pub owner: String,
    pub group: String,
    pub notify: Vec<String>,
    /// Every file of the tree is sensitive (`sensitive: true`).
    pub sensitive: bool,
    pub location: Location,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    pub enabled: bool,
    pub state: ServiceState,
}

/// Something run once per host after the play's changes, if a change notified it.
#[derive(Debug, Clone, Serialize)]
pub struct HandlerSpec {
    pub name: String,
    /// `systemctl <action> <service>`; foobar skips it when it started the service itself in
    /// the same run (the service already runs the new configuration).
    pub service: Option<(String, ServiceAction)>,
    pub run: Option<String>,
}

impl HandlerSpec {
    pub fn command(&self) -> String {
        match (&self.service, &self.run) {
            (Some((svc, ServiceAction::Reload)), _) => format!("systemctl reload {svc}"),
            (Some((svc, ServiceAction::Restart)), _) => format!("systemctl restart {svc}"),
            (None, Some(cmd)) => cmd.clone(),
            (None, None) => "true".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Play {
    pub index: usize,
    pub name: String,
    pub targets: Vec<String>,
    pub hosts: Vec<HostName>,
    pub serial: Option<u32>,
    pub database: Option<DatabaseRole>,
    /// Rendered per host (e.g. `"{{ https | default(false) }}"`): the play skips a host where
    /// it renders to an empty string, `false`, `no`, `0` or `none` (any case).
    pub when: Option<String>,
    /// The earlier plays (indexes) that must finish on a host before this play starts there,
    /// closed over their own `after`: every earlier play unless the playbook says `after:`.
    pub after: BTreeSet<usize>,
    pub packages: Vec<String>,
    pub directories: Vec<DirectorySpec>,
    pub files: Vec<FileSpec>,
    pub sync: Vec<SyncSpec>,
    pub services: Vec<ServiceSpec>,
    pub handlers: Vec<HandlerSpec>,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    pub path: PathBuf,
    pub templates_dir: PathBuf,
    /// Runs whose backups each host keeps in /var/backups/foobar (`keep_backups:`).
    pub keep_backups: u32,
    pub plays: Vec<Play>,
    pub limits: Limits,
}

/// Bounds on what rendering may cost (`limits:` in the playbook).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest managed file, templated or synced, in bytes (default 64 MiB).
    #[serde(default = "default_max_file_size")]
    pub max_file_size: u64,
    /// Work one template render may do, in minijinja fuel (about one unit per instruction
    /// and per 64 bytes created), so an endless loop fails instead of hanging.
    #[serde(default = "default_template_fuel")]
    pub template_fuel: u64,
}

fn default_max_file_size() -> u64 {
    64 * 1024 * 1024
}

fn default_template_fuel() -> u64 {
    5_000_000
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_file_size: default_max_file_size(),
            template_fuel: default_template_fuel(),
        }
    }
}

const SERVICE_HINT: &str =
    "name a systemd unit as systemctl takes it, e.g. `nginx` or `foobar-app.service`";

fn playbook_error(location: Location, message: String, hint: Option<String>) -> InventoryError {
    InventoryError::Playbook {
        location,
        message,
        hint,
    }
}

/// Paths must be absolute; one that starts with a `{{ variable }}` is checked after rendering.
fn absolute(path: &Path, s: &Spanned<String>, what: &str) -> Result<String, InventoryError> {
    if s.value.starts_with('/') || s.value.starts_with("{{") {
        if !s.value.contains("{{")
            && let Err(why) = rules::check_path(&s.value)
        {
            return Err(playbook_error(
                location_of(path, &s.referenced),
                format!("{what} `{}` {why}", s.value.escape_debug()),
                Some("write paths on hosts absolute and normalized, e.g. `/etc/app/app.conf`, without `..`, `//` or control characters".into()),
            ));
        }
        Ok(s.value.clone())
    } else {
        Err(playbook_error(
            location_of(path, &s.referenced),
            format!("{what} `{}` is not an absolute path", s.value),
            Some(format!(
                "write it from the root, e.g. `/{}`",
                s.value.trim_start_matches("./")
            )),
        ))
    }
}

/// A value checked by `rule` unless it is a template (checked once rendered).
fn checked(
    path: &Path,
    s: &Spanned<String>,
    what: &str,
    rule: fn(&str) -> Result<(), rules::RuleViolation>,
    hint: &str,
) -> Result<String, InventoryError> {
    if !s.value.contains("{{")
        && let Err(why) = rule(&s.value)
    {
        return Err(playbook_error(
            location_of(path, &s.referenced),
            format!("{what} `{}` {why}", s.value.escape_debug()),
            Some(hint.to_string()),
        ));
    }
    Ok(s.value.clone())
}

fn account(path: &Path, s: Option<&Spanned<String>>, what: &str) -> Result<String, InventoryError> {
    match s {
        Some(s) => checked(
            path,
            s,
            what,
            rules::check_account,
            "name an existing user or group, e.g. `root` or `www-data`",
        ),
        None => Ok("root".into()),
    }
}

fn parse_mode(
    path: &Path,
    mode: Option<&Spanned<String>>,
    default: u32,
) -> Result<u32, InventoryError> {
    let Some(m) = mode else {
        return Ok(default);
    };
    u32::from_str_radix(m.value.trim_start_matches("0o"), 8)
        .ok()
        .filter(|v| *v <= 0o7777)
        .ok_or_else(|| {
            playbook_error(
                location_of(path, &m.referenced),
                format!("mode `{}` is not an octal file mode", m.value),
                Some("write it as a quoted octal string, e.g. \"0644\"".into()),
            )
        })
}

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

    let mut plays: Vec<Play> = Vec::new();
    for (index, sp) in raw.plays.into_iter().enumerate() {
        let play_location = at(&sp.referenced);
        let rp = sp.value;
        let after = resolve_after(path, &rp.name, rp.after.as_deref(), &plays)?;
        let hosts_at = rp.hosts.referenced;
        let targets: Vec<Spanned<String>> = match rp.hosts.value {
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
                        rp.name, t.value
                    ),
                    Some(hint),
                ));
            }
            hosts.extend(matched);
        }

        let mut handlers = Vec::new();
        for h in rp.handlers {
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
                (None, None, Some(cmd)) => HandlerSpec {
                    name: h.name.value.clone(),
                    service: None,
                    run: Some(cmd),
                },
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
        let handler_names: Vec<String> = handlers.iter().map(|h| h.name.clone()).collect();
        let check_notify = |notify: &[Spanned<String>]| -> Result<Vec<String>, InventoryError> {
            notify
                .iter()
                .map(|n| {
                    if handler_names.contains(&n.value) {
                        Ok(n.value.clone())
                    } else {
                        let hint = match did_you_mean(
                            &n.value,
                            handler_names.iter().map(String::as_str),
                        ) {
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
        };

        let mut files = Vec::new();
        for f in rp.files {
            let location = at(&f.referenced);
            let rf = f.value;
            let dest = absolute(path, &rf.dest, "dest")?;
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
            files.push(FileSpec {
                template: rf.template.map(|t| t.value),
                content: rf.content,
                dest,
                state,
                owner: account(path, rf.owner.as_ref(), "owner")?,
                group: account(path, rf.group.as_ref(), "group")?,
                mode,
                validate: rf.validate,
                link,
                notify: check_notify(&rf.notify)?,
                sensitive: rf.sensitive,
                location,
            });
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
            let location = at(&s.referenced);
            let rs = s.value;
            let src = relative_to(path, &rs.src.value);
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
            sync.push(SyncSpec {
                src,
                dest: absolute(path, &rs.dest, "dest")?,
                owner: account(path, rs.owner.as_ref(), "owner")?,
                group: account(path, rs.group.as_ref(), "group")?,
                notify: check_notify(&rs.notify)?,
                sensitive: rs.sensitive,
                location,
            });
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
            targets: targets.into_iter().map(|t| t.value).collect(),
            hosts: hosts.into_iter().collect(),
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
        None => crate::shell::DEFAULT_KEEP_BACKUPS,
    };
    Ok(Playbook {
        path: path.to_path_buf(),
        templates_dir,
        keep_backups,
        plays,
        limits: raw.limits,
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
