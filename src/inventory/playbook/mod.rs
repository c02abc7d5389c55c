//! The playbook: ordered plays, each naming hosts and what must be true on them.
//!
//! In: the playbook file (YAML) and the loaded [`Inventory`](super::Inventory). Out: a
//! [`Playbook`] whose plays name their hosts, files, directories, synced trees, packages,
//! services and handlers, every literal checked by [`super::rules`] (values that are
//! templates are checked once rendered), or the first [`InventoryError`](super::InventoryError)
//! at its file:line with a hint.
//!
//! Its parts: `raw` (the YAML shape serde reads), `fields` (checks on one value as written),
//! `load` ([`load_playbook`]: the plays resolved against the inventory); this file holds the
//! checked types everything after loading reads.

mod fields;
mod load;
mod raw;

pub use load::load_playbook;

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::HostName;
use crate::error::Location;

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
    /// The project's root (canonical): every file the playbook names is inside it
    /// ([`crate::inventory::project`]).
    pub project: PathBuf,
    /// Runs whose backups each host keeps in /var/backups/foobar (`keep_backups:`).
    pub keep_backups: u32,
    pub plays: Vec<Play>,
    pub limits: Limits,
    /// Said on stderr before anything connects: plays that target only empty groups of the
    /// inventory's own (skipped, as Ansible does).
    pub warnings: Vec<String>,
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
