//! Plan: (DesiredState, ActualState) -> HostPlan. Pure: no I/O, same input, same output.
//!
//! Each desired path, package and service becomes a [`Change`] with an [`Action`]; handlers
//! are collected from changes that notify them (deduplicated, in declared order) plus any left
//! pending on the host by an interrupted run. A [`Plan`] is what `plan --out` saves and
//! `apply PLANFILE` runs: it carries digests and masked diffs, never a secret or a file body.
//!
//! The parts: `model` (the types), `diff` (the pure diff and file diffs), `saved` (a saved
//! plan checked against today's render), [`planfile`] (saved plans on disk).

mod diff;
mod model;
pub mod planfile;
mod saved;

pub use diff::*;
pub use model::*;
pub use saved::*;
