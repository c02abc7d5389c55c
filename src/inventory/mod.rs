//! Inventory and playbook: YAML in, a validated [`Inventory`] and [`Playbook`] out.
//!
//! Everything a run needs to know before it connects is checked here: unknown keys, wrong
//! types, groups naming unknown hosts, cycles, duplicate addresses, database topology, missing
//! templates, and (in [`resolve_secrets`]) secrets that cannot be read. Each problem is one
//! [`InventoryError`] naming file:line:column and a hint.
//!
//! Variable precedence, lowest first: the stack's defaults ([`schema`], when the playbook
//! has a `variables.yml` beside it) < inventory `vars` < group `vars` (outer groups before the
//! groups nested in them, then by name) < host `vars` < facts foobar sets (`inventory_hostname`,
//! `private_ip`, `group_names`, `groups`, `hostvars`).
//!
//! Its parts: `load` (the inventory file's shape and checks; `load_checks` for logins and
//! names, `load_groups` for `children:` and `roles:`), `var_files` (`group_vars/` and
//! `host_vars/`), `backups` (the `backups:` section), [`topology`] (who plays which part),
//! `playbook` (the playbook: its shape, checks and loading), [`rules`] (what a value on a
//! host must look like), `yaml` (parsing and its errors), [`failover_edit`] (the inventory
//! rewritten after a failover); this file holds the loaded types, `--limit`, variables,
//! connections and secrets.

mod backups;
pub mod failover_edit;
mod load;
mod load_checks;
mod load_groups;
mod playbook;
pub mod project;
pub mod rules;
pub mod schema;
pub mod topology;
mod var_files;
mod yaml;

pub use backups::{ARCHIVE_PASSWORD_SECRET, BACKUP_HOST_GROUP, BACKUP_SOURCE_GROUP, Backups};
pub use load::{load_inventory, load_stack_inventory};
pub use playbook::{
    DatabaseRole, DirectorySpec, FileSpec, FileState, HandlerSpec, Limits, Play, Playbook,
    ServiceAction, ServiceSpec, ServiceState, SyncSpec, load_playbook,
};
pub use schema::Schema;
pub use topology::Topology;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use crate::host::HostName;

use crate::error::{Diagnostic, Location};
use crate::secret::Secret;

pub type Vars = BTreeMap<String, serde_json::Value>;

/// How ssh logs into a host: set under `ssh:` for every host, and under a host to override it.
#[derive(Debug, Clone, Default)]
pub struct Login {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    /// Commands run through sudo (`become:`); unset anywhere: no.
    pub become_root: Option<bool>,
}

impl Login {
    /// Each setting of `self`, else that of `defaults`.
    pub fn or(&self, defaults: &Login) -> Login {
        Login {
            user: self.user.clone().or_else(|| defaults.user.clone()),
            port: self.port.or(defaults.port),
            identity_file: self
                .identity_file
                .clone()
                .or_else(|| defaults.identity_file.clone()),
            become_root: self.become_root.or(defaults.become_root),
        }
    }
}

/// Connection settings shared by all hosts unless a host overrides them.
#[derive(Debug, Clone)]
pub struct SshDefaults {
    /// Every host's login, where the host does not set its own.
    pub login: Login,
    pub ssh_config: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    /// `true`: OpenSSH's `StrictHostKeyChecking=yes`; `false`: `accept-new` (a host never
    /// seen is trusted once and recorded). Never `no`: a changed key is always refused.
    pub strict_host_key_checking: bool,
    pub connect_timeout: u64,
    pub command_timeout: u64,
    pub control_persist: u64,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: HostName,
    /// What ssh connects to: an address, or the name itself when `ssh_config` maps it.
    pub address: Option<String>,
    pub private_ip: Option<String>,
    /// Its own login settings; [`Inventory::connection`] fills the rest from `ssh:`.
    pub login: Login,
    pub local: bool,
    pub vars: Vars,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// Every host in the group, its nested groups' included, in inventory order.
    pub hosts: Vec<HostName>,
    pub children: Vec<String>,
    pub vars: Vars,
    /// 0 for a group no other group contains; deeper groups' vars win.
    pub depth: usize,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SecretRef {
    pub name: String,
    pub source: SecretSource,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub path: PathBuf,
    pub ssh: SshDefaults,
    pub vars: Vars,
    pub secrets: BTreeMap<String, SecretRef>,
    pub hosts: BTreeMap<HostName, Host>,
    pub groups: BTreeMap<String, Group>,
    /// Said on stderr before anything connects, each naming its file and line.
    pub warnings: Vec<String>,
    /// Who is load balancer, web server, database primary and replica: from `groups`, once.
    pub topology: Topology,
    /// The `backups:` section, when the inventory has one.
    pub backups: Option<Backups>,
    /// The stack's contract, when the playbook has one beside it: its defaults are the
    /// lowest layer of [`Inventory::host_vars`].
    pub schema: Option<std::sync::Arc<Schema>>,
    /// `roles:`: role -> (the group it is read from, where the mapping is written).
    pub roles: BTreeMap<String, (String, Location)>,
}

/// `--limit` patterns that name something: not empty (`-l ''`), no empty part (`-l ','`), no
/// `!` or `&` alone (`-l '!'`); each of those used to select every host.
pub fn check_limit(patterns: &[String]) -> Result<(), InventoryError> {
    for given in patterns {
        if given.trim().is_empty() {
            return Err(InventoryError::LimitEmpty {
                given: given.clone(),
                why: "is empty",
            });
        }
        for raw in given.split(',').map(str::trim) {
            let pattern = raw.strip_prefix(['!', '&']).unwrap_or(raw).trim();
            if pattern.is_empty() {
                return Err(InventoryError::LimitEmpty {
                    given: given.clone(),
                    why: if raw.is_empty() {
                        "holds an empty pattern (two commas, or one at an end)"
                    } else {
                        "holds a `!` or `&` with no pattern after it"
                    },
                });
            }
        }
    }
    Ok(())
}

/// Secret values by name, resolved at run time.
pub type Secrets = BTreeMap<String, Secret>;

#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
        hint: String,
    },
    /// A file foobar will not read: a link, a FIFO, a device (`host_vars/x.yml` linked to a
    /// `.env` used to frame the target's first line, a password, in the parse error).
    #[error("{message}")]
    UnsafeFile {
        location: Location,
        message: String,
        hint: String,
    },
    #[error("{message}")]
    Yaml {
        location: Location,
        message: String,
        key_path: String,
        hint: Option<String>,
    },
    #[error("group `{group}` names unknown host `{host}`")]
    UnknownHost {
        location: Location,
        group: String,
        host: String,
        hint: String,
    },
    #[error("group `{group}` names unknown group `{child}` under children")]
    UnknownGroup {
        location: Location,
        group: String,
        child: String,
        hint: String,
    },
    #[error("groups nest in a cycle: {cycle}")]
    GroupCycle { location: Location, cycle: String },
    #[error("groups nest more than {limit} deep: {chain}")]
    GroupTooDeep {
        location: Location,
        chain: String,
        limit: usize,
    },
    #[error("`{name}` is both a host and a group")]
    NameClash { location: Location, name: String },
    #[error("{what} {value} is used by both {first} and {second}")]
    Duplicate {
        location: Location,
        what: &'static str,
        value: String,
        first: String,
        second: String,
    },
    #[error("host `{host}` has no address")]
    NoAddress { location: Location, host: String },
    /// How ssh reaches a host (`address`, `user`, a host's name used as the destination)
    /// breaks its rule.
    #[error("{message}")]
    BadName {
        location: Location,
        /// `host name `/root` ...`: what is named, the name and the rule it breaks.
        message: String,
        hint: String,
    },
    #[error("{message}")]
    BadLogin {
        location: Location,
        /// `address `ssh://x` is a URI; ...`: the key, the value and the rule it breaks.
        message: String,
        hint: String,
    },
    #[error("{message}")]
    Topology {
        location: Location,
        message: String,
        hint: String,
    },
    #[error("secret `{name}` cannot be read: {reason}")]
    MissingSecret {
        location: Location,
        name: String,
        reason: String,
        hint: String,
    },
    #[error(
        "secret `{name}` is {length} character{} long; a secret needs at least {} (foobar masks a secret wherever its value appears in what it prints, and a short one appears inside ordinary words)",
        if *.length == 1 { "" } else { "s" },
        crate::secret::MIN_SECRET_LENGTH
    )]
    ShortSecret {
        location: Location,
        name: String,
        length: usize,
        hint: String,
    },
    /// A secret's value holds what no file can carry (its value is never shown).
    #[error("secret `{name}` {reason}")]
    BadSecret {
        location: Location,
        name: String,
        reason: String,
        hint: String,
    },
    #[error("{message}")]
    Playbook {
        location: Location,
        message: String,
        hint: Option<String>,
    },
    #[error("--limit {pattern} matches no host")]
    LimitMatchesNothing { pattern: String, hint: String },
    /// `-l ''`, `-l '!'`, `-l ','`: a pattern with nothing in it, which used to select
    /// every host.
    #[error("--limit {given:?} {why}")]
    LimitEmpty { given: String, why: &'static str },
    /// Several problems found in one pass (at least two), in the order found.
    #[error("{} problems", .0.len())]
    Several(Vec<InventoryError>),
}

impl InventoryError {
    /// One error, or several found in the same pass; `None` for none.
    pub fn collect(mut errors: Vec<InventoryError>) -> Option<InventoryError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(InventoryError::Several(errors)),
        }
    }
}

impl Diagnostic for InventoryError {
    fn location(&self) -> Option<&Location> {
        use InventoryError::*;
        match self {
            Read { .. } | LimitMatchesNothing { .. } | LimitEmpty { .. } => None,
            Yaml { location, .. }
            | UnsafeFile { location, .. }
            | UnknownHost { location, .. }
            | UnknownGroup { location, .. }
            | GroupCycle { location, .. }
            | GroupTooDeep { location, .. }
            | NameClash { location, .. }
            | Duplicate { location, .. }
            | NoAddress { location, .. }
            | BadLogin { location, .. }
            | BadName { location, .. }
            | Topology { location, .. }
            | MissingSecret { location, .. }
            | ShortSecret { location, .. }
            | BadSecret { location, .. }
            | Playbook { location, .. } => Some(location),
            Several(all) => all.first().and_then(Diagnostic::location),
        }
    }

    fn hint(&self) -> Option<String> {
        use InventoryError::*;
        match self {
            Read { hint, .. } => Some(hint.clone()),
            Yaml { hint, .. } | Playbook { hint, .. } => hint.clone(),
            UnknownHost { hint, .. }
            | UnknownGroup { hint, .. }
            | Topology { hint, .. }
            | MissingSecret { hint, .. }
            | BadLogin { hint, .. }
            | BadName { hint, .. }
            | UnsafeFile { hint, .. }
            | ShortSecret { hint, .. }
            | BadSecret { hint, .. }
            | LimitMatchesNothing { hint, .. } => Some(hint.clone()),
            LimitEmpty { .. } => Some("name hosts or groups, e.g. `-l web-01`, `-l 'web,!web-02'` or `-l all`; leave --limit out to select every host".into()),
            GroupCycle { .. } => Some("a group may not contain itself, directly or through its children".into()),
            GroupTooDeep { .. } => Some("flatten the nesting: list hosts, or fewer levels of `children:`".into()),
            NameClash { .. } => Some("rename the group or the host: --limit and play targets must be unambiguous".into()),
            Duplicate { what, .. } => Some(format!("each host needs its own {what}")),
            NoAddress { .. } => Some("set `address:`, or set `ssh_config:` under `ssh:` so ssh can resolve the host's name".into()),
            Several(all) => all.first().and_then(Diagnostic::hint),
        }
    }
}

impl Inventory {
    /// Groups that contain `host`, outermost first, then by name: the order their vars apply.
    pub fn groups_of(&self, host: &HostName) -> Vec<&Group> {
        let mut groups: Vec<&Group> = self
            .groups
            .values()
            .filter(|g| g.hosts.contains(host))
            .collect();
        groups.sort_by(|a, b| a.depth.cmp(&b.depth).then_with(|| a.name.cmp(&b.name)));
        groups
    }

    pub fn in_group(&self, host: &HostName, group: &str) -> bool {
        self.groups
            .get(group)
            .is_some_and(|g| g.hosts.contains(host))
    }

    /// The variables a host sees, by precedence (global < groups < host < facts).
    pub fn host_vars(&self, host: &HostName) -> Vars {
        let mut vars = self.vars.clone();
        for group in self.groups_of(host) {
            vars.extend(group.vars.clone());
        }
        let h = &self.hosts[host];
        vars.extend(h.vars.clone());
        if let Some(schema) = &self.schema {
            for (k, v) in schema.defaults_for(&vars) {
                vars.entry(k).or_insert(v);
            }
        }
        vars.insert("inventory_hostname".into(), host.0.clone().into());
        if let Some(ip) = &h.private_ip {
            vars.insert("private_ip".into(), ip.clone().into());
        }
        let names: Vec<serde_json::Value> = self
            .groups_of(host)
            .iter()
            .map(|g| g.name.clone().into())
            .collect();
        vars.insert("group_names".into(), names.into());
        vars
    }

    /// Resolve `--limit` patterns to hosts, as Ansible does: comma-separated host or group
    /// names and `*`/`?` globs (`all` is every host); `!pattern` excludes, `&pattern`
    /// intersects. Unions come first, then intersections, then exclusions; with only
    /// exclusions or intersections, they apply to every host. Each pattern must match a host.
    pub fn limit(&self, patterns: &[String]) -> Result<BTreeSet<HostName>, InventoryError> {
        let mut union: Option<BTreeSet<HostName>> = None;
        let mut intersect = Vec::new();
        let mut exclude = Vec::new();
        check_limit(patterns)?;
        for raw in patterns.iter().flat_map(|p| p.split(',')).map(str::trim) {
            let (kind, pattern) = match raw.chars().next() {
                Some('!') => ('!', raw[1..].trim()),
                Some('&') => ('&', raw[1..].trim()),
                _ => (' ', raw),
            };
            if pattern.is_empty() {
                continue;
            }
            let matched = self.match_pattern(pattern);
            if matched.is_empty() {
                return Err(self.limit_error(raw, pattern));
            }
            match kind {
                '!' => exclude.push(matched),
                '&' => intersect.push(matched),
                _ => union.get_or_insert_with(BTreeSet::new).extend(matched),
            }
        }
        let mut out = union.unwrap_or_else(|| self.hosts.keys().cloned().collect());
        for set in intersect {
            out.retain(|h| set.contains(h));
        }
        for set in exclude {
            out.retain(|h| !set.contains(h));
        }
        Ok(out)
    }

    fn limit_error(&self, raw: &str, pattern: &str) -> InventoryError {
        let names = self
            .hosts
            .keys()
            .map(|h| h.as_str())
            .chain(self.groups.keys().map(String::as_str))
            .chain(["all"]);
        let hint = match crate::error::did_you_mean(pattern, names) {
            Some(c) => format!("did you mean `{}{c}`?", &raw[..raw.len() - pattern.len()]),
            None => format!(
                "hosts: {}; groups: all, {}",
                self.hosts
                    .keys()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                self.groups.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        };
        InventoryError::LimitMatchesNothing {
            pattern: raw.to_string(),
            hint,
        }
    }

    /// Hosts named by one pattern: a host name, a group name (`all`: every host, unless the
    /// inventory defines a group of that name), or a glob over either.
    pub fn match_pattern(&self, pattern: &str) -> BTreeSet<HostName> {
        if pattern == "all" && !self.groups.contains_key("all") {
            return self.hosts.keys().cloned().collect();
        }
        let glob = glob::Pattern::new(pattern).ok();
        let matches = |name: &str| match &glob {
            Some(g) => g.matches(name),
            None => name == pattern,
        };
        let mut out = BTreeSet::new();
        for name in self.hosts.keys() {
            if matches(name.as_str()) {
                out.insert(name.clone());
            }
        }
        for (name, group) in &self.groups {
            if matches(name) {
                out.extend(group.hosts.iter().cloned());
            }
        }
        out
    }

    /// The connection settings for one host.
    pub fn connection(&self, host: &HostName) -> crate::transport::ConnectionSpec {
        let h = &self.hosts[host];
        let destination = match (&h.address, &self.ssh.ssh_config) {
            (Some(a), _) => a.clone(),
            (None, _) => host.0.clone(),
        };
        let login = h.login.or(&self.ssh.login);
        crate::transport::ConnectionSpec {
            host: host.clone(),
            destination,
            user: login.user,
            port: login.port,
            identity_file: login.identity_file,
            ssh_config: self.ssh.ssh_config.clone(),
            known_hosts_file: self.ssh.known_hosts_file.clone(),
            strict_host_key_checking: self.ssh.strict_host_key_checking,
            connect_timeout: std::time::Duration::from_secs(self.ssh.connect_timeout),
            control_persist: self.ssh.control_persist,
            become_root: login.become_root.unwrap_or(false),
            local: h.local,
        }
    }
}

/// Read every secret the inventory references. Runs before anything connects.
pub fn resolve_secrets(inventory: &Inventory) -> Result<Secrets, InventoryError> {
    resolve_all_secrets(inventory).map_err(|mut errors| errors.remove(0))
}

/// Every secret, or every one that cannot be read (so one run reports them all).
pub fn resolve_all_secrets(inventory: &Inventory) -> Result<Secrets, Vec<InventoryError>> {
    let mut out = Secrets::new();
    let mut errors = Vec::new();
    for (name, r) in &inventory.secrets {
        match resolve_secret(name, r) {
            Ok(v) => {
                out.insert(name.clone(), v);
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        // From here on, nothing printed can carry them (see `crate::say!`).
        crate::secret::register(out.values());
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The largest secret file foobar reads: far above any password, key or certificate bundle.
const MAX_SECRET_FILE: u64 = 64 * 1024;

fn resolve_secret(name: &str, r: &SecretRef) -> Result<Secret, InventoryError> {
    let name = name.to_string();
    let value = match &r.source {
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(v) if !v.is_empty() => v,
            Ok(_) => {
                return Err(InventoryError::MissingSecret {
                    location: r.location.clone(),
                    name: name.clone(),
                    reason: format!("environment variable {var} is empty"),
                    hint: format!("export {var}=... before running foobar"),
                });
            }
            Err(_) => {
                return Err(InventoryError::MissingSecret {
                    location: r.location.clone(),
                    name: name.clone(),
                    reason: format!("environment variable {var} is not set"),
                    hint: format!("export {var}=... before running foobar"),
                });
            }
        },
        // A regular file (a link to one too) of at most 64 KiB: `/dev/zero` read 2 GB
        // before failing, and a FIFO hung the run.
        SecretSource::File(path) => {
            match crate::confined::read_regular_through_links(path, MAX_SECRET_FILE) {
                Ok(v) => v.trim_end_matches(['\n', '\r']).to_string(),
                Err(e) => {
                    return Err(InventoryError::MissingSecret {
                        location: r.location.clone(),
                        name: name.clone(),
                        reason: e.to_string(),
                        hint: "create the file (mode 0600) or point `file:` at it, a regular file of at most 64 KiB; paths are relative to the inventory file".into(),
                    });
                }
            }
        }
    };
    let length = value.chars().count();
    if length < crate::secret::MIN_SECRET_LENGTH {
        let hint = match &r.source {
            SecretSource::Env(var) => {
                format!("generate a longer one, e.g. `export {var}=\"$(openssl rand -hex 16)\"`")
            }
            SecretSource::File(path) => format!(
                "generate a longer one, e.g. `(umask 077; openssl rand -hex 16 > '{}')`",
                path.display()
            ),
        };
        return Err(InventoryError::ShortSecret {
            location: r.location.clone(),
            name,
            length,
            hint,
        });
    }
    if value.contains('\0') {
        return Err(InventoryError::BadSecret {
            location: r.location.clone(),
            name,
            reason:
                "holds a NUL byte, which no file foobar writes can carry (the value is not shown)"
                    .into(),
            hint: match &r.source {
                SecretSource::Env(var) => format!("set {var} to a value without NUL"),
                SecretSource::File(path) => format!("remove the NUL byte from {}", path.display()),
            },
        });
    }
    Ok(Secret::new(value))
}

/// Resolve `path` relative to the directory of `base_file`.
pub(crate) fn relative_to(base_file: &Path, path: &str) -> PathBuf {
    let p = if let Some(rest) = path.strip_prefix("~/") {
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(rest))
            .unwrap_or_else(|| PathBuf::from(path))
    } else {
        PathBuf::from(path)
    };
    if p.is_absolute() {
        p
    } else {
        base_file.parent().unwrap_or(Path::new(".")).join(p)
    }
}
