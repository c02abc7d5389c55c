//! Saved plans: `plan --out FILE` writes one, `apply FILE` reads it back and checks that the
//! templates and inventory still render what it planned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{FORMAT_VERSION, Plan};
use crate::inventory::HostName;
use crate::render::DesiredState;

/// Why a saved plan cannot be read, written or applied.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot read plan {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write plan {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a foobar plan: {source}", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{} has plan format {found}, this foobar reads {FORMAT_VERSION}", path.display())]
    Version { path: PathBuf, found: u32 },
    #[error("the saved plan no longer matches the templates or inventory on {host}: {why}")]
    Stale {
        host: HostName,
        why: super::SavedPlanError,
    },
    #[error("the plan was made with {what} {}, this run uses {}", planned.display(), given.display())]
    OtherInput {
        what: &'static str,
        planned: PathBuf,
        given: PathBuf,
    },
    #[error("{what} {} changed since the plan was made", path.display())]
    InputChanged { what: &'static str, path: PathBuf },
    #[error("the plan changes {}, which this run does not select", names(hosts))]
    HostsNotSelected { hosts: Vec<HostName> },
    #[error("no plan saved to {}: no host could be planned", path.display())]
    NothingPlanned { path: PathBuf },
}

fn names(hosts: &[HostName]) -> String {
    hosts
        .iter()
        .map(HostName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a plan was made from: absolute paths of the inventory and playbook and digests of
/// their contents (the inventory's with its `group_vars/` and `host_vars/` files).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inputs {
    pub inventory: PathBuf,
    pub inventory_digest: String,
    pub playbook: PathBuf,
    pub playbook_digest: String,
    /// The working directory `plan` ran in.
    pub directory: PathBuf,
    /// `--limit` as given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limit: Vec<String>,
}

impl Inputs {
    pub fn of(inventory: &Path, playbook: &Path, limit: &[String]) -> Self {
        Self {
            inventory: absolute(inventory),
            inventory_digest: inventory_digest(inventory),
            playbook: absolute(playbook),
            playbook_digest: digest_files(&[playbook.to_path_buf()]),
            directory: std::env::current_dir().unwrap_or_default(),
            limit: limit.to_vec(),
        }
    }
}

/// `path` made absolute and, where it exists, canonical.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

fn inventory_digest(inventory: &Path) -> String {
    let dir = inventory.parent().unwrap_or(Path::new("."));
    let mut files = vec![inventory.to_path_buf()];
    for kind in ["group_vars", "host_vars"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(kind)) {
            let mut more: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            more.sort();
            files.extend(more);
        }
    }
    digest_files(&files)
}

fn digest_files(files: &[PathBuf]) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update(
            f.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        h.update([0]);
        h.update(std::fs::read(f).unwrap_or_default());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// A saved plan applies only with the inputs it was made from: the same inventory and
/// playbook files (a different path is refused, not silently dropped).
pub fn check_paths(plan: &Plan, inventory: &Path, playbook: &Path) -> Result<(), PlanFileError> {
    if let Some(recorded) = &plan.inputs {
        let now = Inputs::of(inventory, playbook, &[]);
        for (what, planned, given) in [
            ("inventory", &recorded.inventory, &now.inventory),
            ("playbook", &recorded.playbook, &now.playbook),
        ] {
            if planned != given {
                return Err(PlanFileError::OtherInput {
                    what,
                    planned: planned.clone(),
                    given: given.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Every host the plan changes is selected by this run (inventory and --limit).
pub fn check_hosts(plan: &Plan, selected: &[HostName]) -> Result<(), PlanFileError> {
    let missing: Vec<HostName> = plan
        .hosts
        .keys()
        .filter(|h| !selected.contains(h))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(PlanFileError::HostsNotSelected { hosts: missing });
    }
    Ok(())
}

/// After [`check_renders_same`]: the inventory and playbook files are byte for byte the ones
/// planned from (a change that renders the same can still change how hosts are reached).
pub fn check_unchanged(
    plan: &Plan,
    inventory: &Path,
    playbook: &Path,
) -> Result<(), PlanFileError> {
    let Some(recorded) = &plan.inputs else {
        return Ok(());
    };
    let now = Inputs::of(inventory, playbook, &[]);
    if now.inventory_digest != recorded.inventory_digest {
        return Err(PlanFileError::InputChanged {
            what: "inventory",
            path: recorded.inventory.clone(),
        });
    }
    if now.playbook_digest != recorded.playbook_digest {
        return Err(PlanFileError::InputChanged {
            what: "playbook",
            path: recorded.playbook.clone(),
        });
    }
    Ok(())
}

impl PlanFileError {
    pub fn hint(&self) -> String {
        match self {
            PlanFileError::Read { .. } | PlanFileError::Parse { .. } => {
                "save one with `foobar plan --out FILE`".into()
            }
            PlanFileError::Write { .. } => "check the directory exists and is writable".into(),
            PlanFileError::Version { .. } => {
                "make the plan again with this version of foobar".into()
            }
            PlanFileError::Stale { .. } | PlanFileError::InputChanged { .. } => {
                "run `foobar plan --out FILE` again and apply the new plan".into()
            }
            PlanFileError::OtherInput { what, .. } => format!(
                "apply it without -{}/--{what} (foobar then uses the plan's {what}), or make a new plan with this {what}",
                &what[..1]
            ),
            PlanFileError::HostsNotSelected { .. } => {
                "apply it without --limit, or make a new plan with this --limit".into()
            }
            PlanFileError::NothingPlanned { .. } => {
                "fix the hosts' connections (see the errors above), then plan again".into()
            }
        }
    }
}

pub fn read(path: &Path) -> Result<Plan, PlanFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let plan: Plan = serde_json::from_str(&text).map_err(|source| PlanFileError::Parse {
        path: path.to_owned(),
        source,
    })?;
    if plan.format_version != FORMAT_VERSION {
        return Err(PlanFileError::Version {
            path: path.to_owned(),
            found: plan.format_version,
        });
    }
    Ok(plan)
}

/// Write a plan readable by its owner only (mode 0600): it names hosts, paths and diffs.
/// A plan with no host to apply is refused.
pub fn write(path: &Path, plan: &Plan) -> Result<(), PlanFileError> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if plan.hosts.is_empty() {
        return Err(PlanFileError::NothingPlanned {
            path: path.to_owned(),
        });
    }
    let text = serde_json::to_string_pretty(plan).expect("a plan always serialises");
    let err = |source| PlanFileError::Write {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(err)?;
    // Through the run's Redactor, like everything printed.
    file.write_all(crate::secret::redact(&text).as_bytes())
        .map_err(err)
}

/// A saved plan applies only if the templates and inventory still render what it planned:
/// every field of every step and handler ([`super::check_saved`]).
pub fn check_renders_same(
    plan: &Plan,
    desired: &BTreeMap<HostName, DesiredState>,
) -> Result<(), PlanFileError> {
    for (host, hp) in &plan.hosts {
        let Some(want) = desired.get(host) else {
            continue;
        };
        super::check_saved(hp, want).map_err(|why| PlanFileError::Stale {
            host: host.clone(),
            why,
        })?;
    }
    Ok(())
}
