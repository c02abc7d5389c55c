//! Render: Inventory + Playbook + secrets -> one [`DesiredState`] per host.
//!
//! Templates are minijinja with strict undefined variables, no auto-escaping, and Ansible's
//! whitespace rules (`trim_blocks` and `lstrip_blocks` on, trailing newline kept), so a block
//! tag on its own line leaves no blank line behind. Strings in the playbook (`dest`,
//! `packages`, `owner`, service names) are templates too. Everything that is the same for all
//! hosts (template parsing, synced directories read from disk, `hostvars`) is done once in
//! [`RenderContext::new`]; per host only the variables differ.
//!
//! Secrets are tainting: every render sees its variables through a `Scope` that records
//! which secrets it read, so a file is sensitive when its rendering read a secret, whatever
//! filters the value went through (`upper`, `replace`, `urlencode`, `~`). A sensitive file's
//! body is never shown; a render that fails after reading a secret is reported from a second
//! render with placeholders (the error may quote the value); and strings outside file bodies
//! (`dest`, owners, packages, services) may not read secrets at all. Every render runs on a
//! fuel budget (`limits.template_fuel`) and every file is bounded (`limits.max_file_size`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value};
use sha2::{Digest, Sha256};

use crate::error::{Diagnostic, Location};
use crate::inventory::{
    DatabaseRole, FileState, HandlerSpec, HostName, Inventory, Playbook, Secrets, ServiceSpec, Vars,
};
use crate::secret::Redactor;

/// What one path on a host should be.
#[derive(Debug, Clone)]
pub enum EntryKind {
    File {
        content: Arc<[u8]>,
        digest: String,
        mode: u32,
        owner: String,
        group: String,
        validate: Option<String>,
        /// The content holds a secret: never shown, backed up with mode 0600.
        sensitive: bool,
        /// The secrets its rendering read, by name (empty for a file marked `sensitive:
        /// true` that reads none).
        reads: Vec<String>,
    },
    Directory {
        mode: u32,
        owner: String,
        group: String,
    },
    Link {
        target: String,
    },
    Absent,
}

#[derive(Debug, Clone)]
pub struct DesiredEntry {
    pub path: String,
    pub kind: EntryKind,
    pub notify: Vec<String>,
    /// Where it came from, for messages: a template name or a synced source file.
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct DesiredPlay {
    pub index: usize,
    pub name: String,
    pub packages: Vec<String>,
    pub entries: Vec<DesiredEntry>,
    pub services: Vec<ServiceSpec>,
    pub handlers: Vec<HandlerSpec>,
    pub database: Option<DatabaseRole>,
    /// Hosts of the load balancer's backend changed this many at a time (`serial:`).
    pub serial: Option<u32>,
    /// Earlier plays that must finish on this host before this one starts there.
    pub after: std::collections::BTreeSet<usize>,
}

/// Everything foobar wants on one host, in play order.
#[derive(Debug, Clone)]
pub struct DesiredState {
    pub host: HostName,
    pub plays: Vec<DesiredPlay>,
}

impl DesiredState {
    pub fn entries(&self) -> impl Iterator<Item = &DesiredEntry> {
        self.plays.iter().flat_map(|p| p.entries.iter())
    }
    pub fn packages(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .plays
            .iter()
            .flat_map(|p| p.packages.iter().map(String::as_str))
            .collect();
        v.sort();
        v.dedup();
        v
    }
    pub fn services(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self
            .plays
            .iter()
            .flat_map(|p| p.services.iter().map(|s| s.name.as_str()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{message}")]
    Template {
        location: Location,
        host: HostName,
        message: String,
        hint: Option<String>,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{message}")]
    Invalid {
        location: Location,
        host: HostName,
        message: String,
        hint: String,
    },
    #[error("{path} is {size} bytes, over the limit of {limit} bytes for a managed file")]
    TooLarge {
        path: String,
        size: u64,
        limit: u64,
        location: Location,
    },
}

impl Diagnostic for RenderError {
    fn location(&self) -> Option<&Location> {
        match self {
            RenderError::Template { location, .. }
            | RenderError::Invalid { location, .. }
            | RenderError::TooLarge { location, .. } => Some(location),
            RenderError::Read { .. } => None,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            RenderError::Template { hint, host, .. } => Some(match hint {
                Some(h) => format!("{h} (while rendering for host {host})"),
                None => format!("while rendering for host {host}"),
            }),
            RenderError::Invalid { hint, .. } => Some(hint.clone()),
            RenderError::TooLarge { .. } => Some(
                "leave the file out, or raise `limits: { max_file_size: BYTES }` in the playbook"
                    .into(),
            ),
            RenderError::Read { .. } => Some("check the file exists and is readable".into()),
        }
    }
}

/// Why `render --out` will not write a rendered path.
#[derive(Debug, thiserror::Error)]
pub enum OutPathError {
    #[error("{path} on {host} {why}: refusing to write it under {out}")]
    Invalid {
        path: String,
        host: HostName,
        why: crate::inventory::rules::RuleViolation,
        out: String,
    },
    #[error("{path} on {host} leaves {host_dir}")]
    Escapes {
        path: String,
        host: HostName,
        host_dir: String,
    },
}

/// Where `render --out DIR` writes `path` of `host`: always inside `DIR/host`. A path that
/// is not absolute and normalized (`/../../tmp/x`) is refused, never followed out of DIR.
pub fn out_path(out: &Path, host: &HostName, path: &str) -> Result<PathBuf, OutPathError> {
    crate::inventory::rules::check_path(path).map_err(|why| OutPathError::Invalid {
        path: path.into(),
        host: host.clone(),
        why,
        out: out.display().to_string(),
    })?;
    let host_dir = out.join(host.as_str());
    let mut dest = host_dir.clone();
    for part in Path::new(path).components() {
        match part {
            std::path::Component::Normal(p) => dest.push(p),
            std::path::Component::RootDir => {}
            _ => {
                return Err(OutPathError::Escapes {
                    path: path.into(),
                    host: host.clone(),
                    host_dir: host_dir.display().to_string(),
                });
            }
        }
    }
    Ok(dest)
}

/// Every value of a rendered host that reaches a host's scripts follows [`crate::inventory::rules`]:
/// what a template or variable produced is checked as the playbook's literals were at load.
fn check_rendered(state: &DesiredState, playbook: &Playbook) -> Result<(), RenderError> {
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

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The variables of one host, with the secrets kept apart.
#[derive(Debug)]
struct HostScope {
    vars: BTreeMap<String, Value>,
    /// (real value, placeholder) by name.
    secrets: BTreeMap<String, (Value, Value)>,
}

/// What one render sees as its variables: every lookup of a secret is recorded, so the
/// render's taint is known whatever the template did with the value afterwards.
#[derive(Debug)]
struct Scope {
    host: Arc<HostScope>,
    placeholders: bool,
    read: Mutex<BTreeSet<String>>,
}

impl Scope {
    fn new(host: &Arc<HostScope>, placeholders: bool) -> Arc<Self> {
        Arc::new(Self {
            host: host.clone(),
            placeholders,
            read: Mutex::new(BTreeSet::new()),
        })
    }

    fn read(&self) -> Vec<String> {
        self.read
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

impl Object for Scope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if let Some((real, placeholder)) = self.host.secrets.get(name) {
            self.read
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name.to_string());
            return Some(if self.placeholders {
                placeholder.clone()
            } else {
                real.clone()
            });
        }
        self.host.vars.get(name).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self
            .host
            .vars
            .keys()
            .chain(self.host.secrets.keys())
            .map(|k| Value::from(k.as_str()))
            .collect();
        Enumerator::Values(keys)
    }
}

/// A synced directory, read once: (relative path, content, digest, executable).
type SyncTree = Vec<(String, Arc<[u8]>, String, bool)>;

/// The work shared by every host of one run.
pub struct RenderContext<'a> {
    env: Environment<'static>,
    sources: BTreeMap<String, String>,
    pub inventory: &'a Inventory,
    pub playbook: &'a Playbook,
    secrets: &'a Secrets,
    pub redactor: Redactor,
    hostvars: Value,
    groups: Value,
    sync_trees: BTreeMap<PathBuf, SyncTree>,
}

fn sql_string(value: String) -> String {
    value.replace('\\', "\\\\").replace('\'', "\\'")
}

fn read_tree(root: &Path, limit: u64, location: &Location) -> Result<SyncTree, RenderError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| RenderError::Read {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| RenderError::Read {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let name = entry.file_name();
            // A name a host path cannot carry faithfully is refused, never mangled.
            let Some(name) = name.to_str().filter(|n| !n.chars().any(char::is_control)) else {
                return Err(RenderError::Invalid {
                    location: Location::file_only(&path),
                    host: HostName::new("(all hosts)"),
                    message: format!(
                        "{} cannot be synced: its name is not UTF-8 or holds a control character",
                        path.display()
                    ),
                    hint: "rename the file (spaces and quotes are fine; newlines and invalid UTF-8 are not)".into(),
                });
            };
            if name.starts_with('.') || name == "__pycache__" {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|source| RenderError::Read {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                if meta.len() > limit {
                    return Err(RenderError::TooLarge {
                        path: path.display().to_string(),
                        size: meta.len(),
                        limit,
                        location: location.clone(),
                    });
                }
                let content: Arc<[u8]> = std::fs::read(&path)
                    .map_err(|source| RenderError::Read {
                        path: path.clone(),
                        source,
                    })?
                    .into();
                use std::os::unix::fs::PermissionsExt;
                let exec = meta.permissions().mode() & 0o111 != 0;
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                let digest = sha256_hex(&content);
                out.push((rel, content, digest, exec));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl<'a> RenderContext<'a> {
    pub fn new(
        inventory: &'a Inventory,
        playbook: &'a Playbook,
        secrets: &'a Secrets,
    ) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .keep_trailing_newline(true)
                .build()
                .expect("static syntax config"),
        );
        env.add_filter("sql_string", sql_string);
        // A file's fingerprint in another (a certificate's in the server config that loads it),
        // so that a new certificate changes the config and its handler restarts the server.
        env.add_filter("sha256", |value: String| sha256_hex(value.as_bytes()));
        env.set_fuel(Some(playbook.limits.template_fuel));
        env.add_filter("shell_quote", |v: String| crate::gather::sh_quote(&v));
        env.add_filter("mysql_native_password_hash", |v: String| {
            crate::mysql::mysql_native_password_hash(&v)
        });

        let mut names: Vec<String> = playbook
            .plays
            .iter()
            .flat_map(|p| p.files.iter().filter_map(|f| f.template.clone()))
            .collect();
        names.sort();
        names.dedup();
        let mut sources = BTreeMap::new();
        for name in names {
            let path = playbook.templates_dir.join(&name);
            let source = std::fs::read_to_string(&path)
                .map_err(|source| RenderError::Read { path, source })?;
            sources.insert(name, source);
        }
        for (name, source) in &sources {
            if let Err(e) = env.add_template_owned(name.clone(), source.clone()) {
                return Err(template_error(
                    &playbook.templates_dir,
                    &sources,
                    e,
                    &HostName::new("(all hosts)"),
                    playbook.limits.template_fuel,
                ));
            }
        }

        let mut hostvars = BTreeMap::new();
        for host in inventory.hosts.keys() {
            hostvars.insert(host.0.clone(), inventory.host_vars(host));
        }
        let groups: BTreeMap<&str, Vec<&str>> = inventory
            .groups
            .iter()
            .map(|(n, g)| (n.as_str(), g.hosts.iter().map(|h| h.as_str()).collect()))
            .collect();

        let mut sync_trees = BTreeMap::new();
        for play in &playbook.plays {
            for s in &play.sync {
                if !sync_trees.contains_key(&s.src) {
                    let tree = read_tree(&s.src, playbook.limits.max_file_size, &s.location)?;
                    sync_trees.insert(s.src.clone(), tree);
                }
            }
        }

        Ok(Self {
            env,
            sources,
            inventory,
            playbook,
            secrets,
            redactor: Redactor::new(secrets.values()),
            hostvars: Value::from(minijinja::value::Serde(&hostvars)),
            groups: Value::from(minijinja::value::Serde(&groups)),
            sync_trees,
        })
    }

    /// The variables a template sees on `host`: its variables, foobar's, and the secrets.
    fn host_scope(&self, host: &HostName, extra: &Vars) -> Arc<HostScope> {
        let mut vars: BTreeMap<String, Value> = self
            .inventory
            .host_vars(host)
            .into_iter()
            .map(|(k, v)| (k, Value::from(minijinja::value::Serde(&v))))
            .collect();
        for (k, v) in extra {
            vars.insert(k.clone(), Value::from(minijinja::value::Serde(v)));
        }
        vars.insert("groups".into(), self.groups.clone());
        vars.insert("hostvars".into(), self.hostvars.clone());
        if let Some(b) = &self.inventory.backups {
            vars.insert("backups".into(), Value::from(minijinja::value::Serde(b)));
        }
        let secrets = self
            .secrets
            .iter()
            .map(|(name, secret)| {
                vars.remove(name);
                (
                    name.clone(),
                    (
                        Value::from(secret.expose()),
                        Value::from(crate::secret::placeholder(name)),
                    ),
                )
            })
            .collect();
        Arc::new(HostScope { vars, secrets })
    }

    /// Renders `text` (a template's source or a playbook string), recording the secrets it
    /// reads. A failure after reading a secret is reported from a render with placeholders,
    /// since minijinja's message may quote the value.
    fn render_tracked(
        &self,
        scope: &Arc<HostScope>,
        render: impl Fn(Value) -> Result<String, minijinja::Error>,
    ) -> Result<(String, Vec<String>), minijinja::Error> {
        let tracked = Scope::new(scope, false);
        match render(Value::from_dyn_object(tracked.clone())) {
            Ok(text) => Ok((text, tracked.read())),
            Err(e) if tracked.read().is_empty() => Err(e),
            Err(e) => {
                let kind = e.kind();
                match render(Value::from_dyn_object(Scope::new(scope, true))) {
                    Err(shown) => Err(shown),
                    // Only the real value fails: say where, not what minijinja said.
                    Ok(_) => Err(minijinja::Error::new(
                        kind,
                        "the failing value derives from a secret and is not shown",
                    )),
                }
            }
        }
    }

    /// A playbook string (`dest`, owner, package, service): may not read a secret, since it
    /// is shown in every plan.
    fn render_string(
        &self,
        host: &HostName,
        scope: &Arc<HostScope>,
        text: &str,
        location: &Location,
    ) -> Result<String, RenderError> {
        let (out, reads) = self.render_text(host, scope, text, location)?;
        if let Some(name) = reads.first() {
            return Err(RenderError::Invalid {
                location: location.clone(),
                host: host.clone(),
                message: format!(
                    "`{text}` reads the secret `{name}`, but paths, owners, packages and service names are shown in every plan"
                ),
                hint: "use secrets only in file contents (templates or `content:`)".into(),
            });
        }
        Ok(out)
    }

    /// Inline `content:` or a playbook string, with the secrets it read.
    fn render_text(
        &self,
        host: &HostName,
        scope: &Arc<HostScope>,
        text: &str,
        location: &Location,
    ) -> Result<(String, Vec<String>), RenderError> {
        if !text.contains("{{") && !text.contains("{%") {
            return Ok((text.to_string(), vec![]));
        }
        self.render_tracked(scope, |ctx| self.env.render_str(text, ctx))
            .map_err(|e| RenderError::Template {
                location: match e.line() {
                    Some(line) if e.kind() == ErrorKind::OutOfFuel => {
                        Location::new(&location.file, location.line + line as u32 - 1, 0)
                    }
                    _ => location.clone(),
                },
                host: host.clone(),
                message: describe(&e, Some(text)),
                hint: hint_for(&e, host, self.playbook.limits.template_fuel),
            })
    }

    fn absolute_path(
        &self,
        host: &HostName,
        ctx: &Arc<HostScope>,
        text: &str,
        location: &Location,
    ) -> Result<String, RenderError> {
        let path = self.render_string(host, ctx, text, location)?;
        if !path.starts_with('/') {
            return Err(RenderError::Invalid {
                location: location.clone(),
                host: host.clone(),
                message: format!("path `{text}` renders to `{path}`, which is not absolute"),
                hint: "paths on hosts must start with /".into(),
            });
        }
        Ok(path)
    }

    /// A template's output and the secrets its rendering read.
    fn render_template(
        &self,
        host: &HostName,
        name: &str,
        scope: &Arc<HostScope>,
    ) -> Result<(String, Vec<String>), RenderError> {
        let template = self.env.get_template(name).map_err(|e| {
            template_error(
                &self.playbook.templates_dir,
                &self.sources,
                e,
                host,
                self.playbook.limits.template_fuel,
            )
        })?;
        self.render_tracked(scope, |ctx| template.render(ctx))
            .map_err(|e| {
                let mut err = template_error(
                    &self.playbook.templates_dir,
                    &self.sources,
                    e,
                    host,
                    self.playbook.limits.template_fuel,
                );
                suggest_variable(
                    &mut err,
                    scope
                        .vars
                        .keys()
                        .chain(scope.secrets.keys())
                        .map(String::as_str),
                );
                err
            })
    }

    /// Render everything the playbook wants on one host.
    pub fn render_host(&self, host: &HostName) -> Result<DesiredState, RenderError> {
        let ctx = self.host_scope(host, &Vars::new());
        let limit = self.playbook.limits.max_file_size;
        let mut plays = Vec::new();
        for play in self
            .playbook
            .plays
            .iter()
            .filter(|p| p.hosts.contains(host))
        {
            let at = &play.location;
            if let Some(when) = &play.when {
                let v = self.render_string(host, &ctx, when, at)?;
                let v = v.trim().to_ascii_lowercase();
                if matches!(v.as_str(), "" | "false" | "no" | "0" | "none" | "off") {
                    continue;
                }
            }
            let mut entries = Vec::new();
            for d in &play.directories {
                entries.push(DesiredEntry {
                    path: self.absolute_path(host, &ctx, &d.path, &d.location)?,
                    kind: EntryKind::Directory {
                        mode: d.mode,
                        owner: self.render_string(host, &ctx, &d.owner, &d.location)?,
                        group: self.render_string(host, &ctx, &d.group, &d.location)?,
                    },
                    notify: vec![],
                    origin: "directories".into(),
                });
            }
            for f in &play.files {
                let dest = self.absolute_path(host, &ctx, &f.dest, &f.location)?;
                if f.state == FileState::Absent {
                    entries.push(DesiredEntry {
                        path: dest,
                        kind: EntryKind::Absent,
                        notify: f.notify.clone(),
                        origin: "state: absent".into(),
                    });
                    continue;
                }
                let ((text, reads), origin) = match (&f.template, &f.content) {
                    (Some(t), _) => (self.render_template(host, t, &ctx)?, t.clone()),
                    (None, Some(c)) => (
                        self.render_text(host, &ctx, c, &f.location)?,
                        "content".to_string(),
                    ),
                    (None, None) => unreachable!("checked when the playbook was loaded"),
                };
                if text.len() as u64 > limit {
                    return Err(RenderError::TooLarge {
                        path: format!("{dest} (rendered from {origin} for {host})"),
                        size: text.len() as u64,
                        limit,
                        location: f.location.clone(),
                    });
                }
                let content: Arc<[u8]> = text.into_bytes().into();
                entries.push(DesiredEntry {
                    path: dest.clone(),
                    kind: EntryKind::File {
                        digest: sha256_hex(&content),
                        // Taint, not text matching; the text check stays as a backstop for
                        // a value that reached the output without a lookup being seen.
                        sensitive: f.sensitive
                            || !reads.is_empty()
                            || self.redactor.contains_secret(&content),
                        reads,
                        content,
                        mode: f.mode,
                        owner: self.render_string(host, &ctx, &f.owner, &f.location)?,
                        group: self.render_string(host, &ctx, &f.group, &f.location)?,
                        validate: f.validate.clone(),
                    },
                    notify: f.notify.clone(),
                    origin: origin.clone(),
                });
                if let Some(link) = &f.link {
                    entries.push(DesiredEntry {
                        path: self.absolute_path(host, &ctx, link, &f.location)?,
                        kind: EntryKind::Link { target: dest },
                        notify: f.notify.clone(),
                        origin,
                    });
                }
            }
            for s in &play.sync {
                let dest = self.absolute_path(host, &ctx, &s.dest, &s.location)?;
                let owner = self.render_string(host, &ctx, &s.owner, &s.location)?;
                let group = self.render_string(host, &ctx, &s.group, &s.location)?;
                let mut dirs: Vec<String> = vec![dest.clone()];
                for (rel, _, _, _) in &self.sync_trees[&s.src] {
                    let mut p = Path::new(rel).parent();
                    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                        dirs.push(format!("{dest}/{}", d.display()));
                        p = d.parent();
                    }
                }
                dirs.sort();
                dirs.dedup();
                for d in dirs {
                    entries.push(DesiredEntry {
                        path: d,
                        kind: EntryKind::Directory {
                            mode: 0o755,
                            owner: owner.clone(),
                            group: group.clone(),
                        },
                        notify: vec![],
                        origin: s.src.display().to_string(),
                    });
                }
                for (rel, content, digest, exec) in &self.sync_trees[&s.src] {
                    entries.push(DesiredEntry {
                        path: format!("{dest}/{rel}"),
                        kind: EntryKind::File {
                            content: content.clone(),
                            digest: digest.clone(),
                            mode: if *exec { 0o755 } else { 0o644 },
                            owner: owner.clone(),
                            group: group.clone(),
                            validate: None,
                            sensitive: s.sensitive,
                            reads: vec![],
                        },
                        notify: s.notify.clone(),
                        origin: s.src.join(rel).display().to_string(),
                    });
                }
            }
            let mut packages = Vec::new();
            for p in &play.packages {
                packages.push(self.render_string(host, &ctx, p, at)?);
            }
            let mut services = Vec::new();
            for s in &play.services {
                services.push(ServiceSpec {
                    name: self.render_string(host, &ctx, &s.name, at)?,
                    ..s.clone()
                });
            }
            let mut handlers = Vec::new();
            for h in &play.handlers {
                let mut h = h.clone();
                if let Some((svc, action)) = &h.service {
                    h.service = Some((self.render_string(host, &ctx, svc, at)?, *action));
                }
                handlers.push(h);
            }
            plays.push(DesiredPlay {
                index: play.index,
                name: play.name.clone(),
                packages,
                entries,
                services,
                handlers,
                database: play.database,
                serial: play.serial,
                after: play.after.clone(),
            });
        }
        check_duplicate_paths(host, &plays, &self.playbook.path)?;
        let state = DesiredState {
            host: host.clone(),
            plays,
        };
        check_rendered(&state, self.playbook)?;
        Ok(state)
    }
}

fn check_duplicate_paths(
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

/// Byte offset -> (line, column), both 1-based.
fn line_column(source: &str, offset: usize) -> (u32, u32) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line as u32, column as u32)
}

fn describe(e: &minijinja::Error, source: Option<&str>) -> String {
    let snippet = e
        .range()
        .zip(source)
        .and_then(|(r, s)| s.get(r))
        .map(str::trim);
    match (e.kind(), snippet) {
        (ErrorKind::UndefinedError, Some(s)) => format!("undefined variable '{s}'"),
        (ErrorKind::UndefinedError, None) => "undefined variable".to_string(),
        (ErrorKind::OutOfFuel, _) => match e.name() {
            Some(name) => format!("template `{name}` ran out of fuel"),
            None => "rendering ran out of fuel".to_string(),
        },
        (ErrorKind::SyntaxError, _) => format!(
            "template syntax error: {}",
            e.detail().unwrap_or("invalid syntax")
        ),
        _ => match e.detail() {
            Some(d) => format!("{}: {d}", e.kind()),
            None => e.kind().to_string(),
        },
    }
}

fn hint_for(e: &minijinja::Error, host: &HostName, fuel: u64) -> Option<String> {
    match e.kind() {
        ErrorKind::OutOfFuel => Some(format!(
            "the template did more than {fuel} steps of work (an endless or very long loop?); \
             if it is meant to, raise `limits: {{ template_fuel: N }}` in the playbook"
        )),
        ErrorKind::UndefinedError => Some(format!(
            "define it under `vars:` in the inventory: for all hosts, for a group {host} belongs to, or for {host} itself"
        )),
        ErrorKind::SyntaxError => {
            Some("see https://docs.rs/minijinja for the template syntax".to_string())
        }
        _ => None,
    }
}

/// An undefined variable close to one the host has (`app_prot` for `app_port`): say so
/// first in the hint.
fn suggest_variable<'a>(err: &mut RenderError, names: impl Iterator<Item = &'a str>) {
    let RenderError::Template { message, hint, .. } = err else {
        return;
    };
    let Some(name) = message
        .strip_prefix("undefined variable '")
        .and_then(|m| m.strip_suffix('\''))
    else {
        return;
    };
    if let Some(close) = crate::error::did_you_mean(name, names) {
        *hint = Some(match hint.take() {
            Some(h) => format!("did you mean `{close}`? Otherwise {h}"),
            None => format!("did you mean `{close}`?"),
        });
    }
}

fn template_error(
    templates_dir: &Path,
    sources: &BTreeMap<String, String>,
    e: minijinja::Error,
    host: &HostName,
    fuel: u64,
) -> RenderError {
    let name = e.name().unwrap_or("?").to_string();
    let source = sources.get(&name).map(String::as_str);
    let (line, column) = match (e.range(), source) {
        (Some(r), Some(s)) => line_column(s, r.start),
        _ => (e.line().unwrap_or(0) as u32, 0),
    };
    RenderError::Template {
        location: Location::new(templates_dir.join(&name), line, column),
        host: host.clone(),
        message: describe(&e, source),
        hint: hint_for(&e, host, fuel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_is_one_based() {
        let s = "ab\ncd {{ x }}\n";
        assert_eq!(line_column(s, 0), (1, 1));
        assert_eq!(line_column(s, 6), (2, 4));
    }

    #[test]
    fn synced_names_that_cannot_be_carried_are_refused_with_their_path() {
        use std::os::unix::ffi::OsStrExt;
        for bad in [&b"new\nline"[..], b"not utf8 \xff"] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("fine 'name' $(x)"), "ok").unwrap();
            let name = std::ffi::OsStr::from_bytes(bad);
            std::fs::write(dir.path().join(name), "x").unwrap();
            let err =
                read_tree(dir.path(), u64::MAX, &Location::file_only("site.yml")).unwrap_err();
            let RenderError::Invalid {
                location, message, ..
            } = &err
            else {
                panic!("{err}");
            };
            assert_eq!(location.file, dir.path().join(name));
            assert!(message.contains("cannot be synced"), "{message}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fine 'name' $(x)"), "ok").unwrap();
        let tree = read_tree(dir.path(), u64::MAX, &Location::file_only("site.yml")).unwrap();
        assert_eq!(tree[0].0, "fine 'name' $(x)");
    }

    #[test]
    fn render_out_never_leaves_its_directory() {
        let out = Path::new("/tmp/out");
        let h = HostName::new("web-01");
        assert_eq!(
            out_path(out, &h, "/etc/a b.conf").unwrap(),
            Path::new("/tmp/out/web-01/etc/a b.conf")
        );
        for bad in ["/../../../tmp/x", "/etc/../x", "relative", "/etc/a\nb"] {
            assert!(out_path(out, &h, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sql_string_escapes_quotes_and_backslashes() {
        assert_eq!(sql_string("a'b\\c".into()), "a\\'b\\\\c");
    }
}
