//! Saved plans: `plan --out FILE` writes one, `apply FILE` reads it back and checks that the
//! templates and inventory still render what it planned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
            PlanFileError::Stale { .. } => {
                "run `foobar plan --out FILE` again and apply the new plan".into()
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

pub fn write(path: &Path, plan: &Plan) -> Result<(), PlanFileError> {
    let text = serde_json::to_string_pretty(plan).expect("a plan always serialises");
    // Through the run's Redactor, like everything printed.
    std::fs::write(path, crate::secret::redact(&text)).map_err(|source| PlanFileError::Write {
        path: path.to_owned(),
        source,
    })
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
