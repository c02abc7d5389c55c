//! What a step did on a host, typed: the report records these, and a rollout's restore reads
//! the paths to put back from them (never from display text).

use std::fmt;

use serde::Serialize;

use crate::plan::{Action, ChangeKind};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Outcome {
    Packages {
        names: Vec<String>,
    },
    Directory {
        path: String,
    },
    /// Owner or mode fixed in place.
    Attributes {
        path: String,
    },
    /// A staged file passed its `validate` command.
    Validated {
        path: String,
    },
    /// A new body swapped in.
    File {
        path: String,
    },
    Link {
        path: String,
    },
    Deleted {
        path: String,
    },
    Service {
        name: String,
    },
    Handler {
        name: String,
    },
    /// A database step, as `apply::database` describes it ("database replication started").
    Database {
        what: String,
    },
    /// Taken out of or put back into the load balancer's rotation.
    Rotation {
        what: String,
    },
    /// A dry run: what the step would do.
    Planned {
        action: Action,
        kind: ChangeKind,
        target: String,
    },
}

impl Outcome {
    /// The path or name the step was about.
    pub fn target(&self) -> String {
        match self {
            Outcome::Packages { names } => names.join(" "),
            Outcome::Directory { path }
            | Outcome::Attributes { path }
            | Outcome::Validated { path }
            | Outcome::File { path }
            | Outcome::Link { path }
            | Outcome::Deleted { path } => path.clone(),
            Outcome::Service { name } | Outcome::Handler { name } => name.clone(),
            Outcome::Database { what } | Outcome::Rotation { what } => what.clone(),
            Outcome::Planned { target, .. } => target.clone(),
        }
    }

    /// A path this step replaced, created or removed: what a restore must put back.
    pub fn replaced_path(&self) -> Option<&str> {
        match self {
            Outcome::File { path } | Outcome::Link { path } | Outcome::Deleted { path } => {
                Some(path)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Packages { names } => write!(f, "package {}", names.join(" ")),
            Outcome::Directory { path } => write!(f, "directory {path}"),
            Outcome::Attributes { path } => write!(f, "attributes {path}"),
            Outcome::Validated { path } => write!(f, "validate {path}"),
            Outcome::File { path } => write!(f, "file {path}"),
            Outcome::Link { path } => write!(f, "link {path}"),
            Outcome::Deleted { path } => write!(f, "delete {path}"),
            Outcome::Service { name } => write!(f, "service {name}"),
            Outcome::Handler { name } => write!(f, "handler {name}"),
            Outcome::Database { what } | Outcome::Rotation { what } => f.write_str(what),
            Outcome::Planned {
                action,
                kind,
                target,
            } => write!(f, "{} {} {target}", action.word(), kind.word()),
        }
    }
}
