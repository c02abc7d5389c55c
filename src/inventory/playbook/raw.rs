//! The playbook file's YAML shape, as serde reads it: unknown keys are refused, and values
//! whose position a later error names are [`Spanned`]. Nothing here is checked yet: YAML in,
//! raw structs out, for [`super::load`] to validate.

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{DatabaseRole, FileState, Limits, ServiceAction, ServiceState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) template: Option<Spanned<String>>,
    pub(super) content: Option<String>,
    pub(super) dest: Spanned<String>,
    #[serde(default)]
    pub(super) state: Option<FileState>,
    pub(super) owner: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<String>>,
    pub(super) validate: Option<String>,
    pub(super) link: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) notify: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) sensitive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    pub(super) src: Spanned<String>,
    pub(super) dest: Spanned<String>,
    pub(super) owner: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) notify: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) sensitive: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    pub(super) path: Spanned<String>,
    pub(super) owner: Option<Spanned<String>>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) mode: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) name: Spanned<String>,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default = "started")]
    pub(super) state: ServiceState,
}

fn yes() -> bool {
    true
}
fn started() -> ServiceState {
    ServiceState::Started
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHandler {
    pub(super) name: Spanned<String>,
    pub(super) service: Option<Spanned<String>>,
    pub(super) action: Option<ServiceAction>,
    pub(super) run: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlay {
    pub(super) name: String,
    /// Spanned outside the untagged enum: serde buffers untagged content and loses positions.
    pub(super) hosts: Spanned<OneOrMany>,
    pub(super) serial: Option<u32>,
    pub(super) database: Option<DatabaseRole>,
    /// A template rendered per host; the play skips hosts where it renders false or empty.
    pub(super) when: Option<String>,
    /// Earlier plays this one waits for on each host; absent: all of them.
    pub(super) after: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) packages: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) directories: Vec<RawDirectory>,
    #[serde(default)]
    pub(super) files: Vec<Spanned<RawFile>>,
    #[serde(default)]
    pub(super) sync: Vec<Spanned<RawSync>>,
    #[serde(default)]
    pub(super) services: Vec<RawService>,
    #[serde(default)]
    pub(super) handlers: Vec<RawHandler>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlaybook {
    pub(super) templates_dir: Option<String>,
    /// Runs whose backups each host keeps in /var/backups/foobar (default 5).
    pub(super) keep_backups: Option<Spanned<u32>>,
    #[serde(default)]
    pub(super) limits: Limits,
    pub(super) plays: Vec<Spanned<RawPlay>>,
}
