//! The errors that end a command with exit code 1.

use crate::error::{Diagnostic, Location};
use crate::inventory::InventoryError;
use crate::plan::planfile::PlanFileError;
use crate::render::RenderError;

/// Everything that ends a command with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error("{message}")]
    Usage { message: String, hint: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    pub fn location(&self) -> Option<&Location> {
        match self {
            CliError::Inventory(e) => e.location(),
            CliError::Render(e) => e.location(),
            _ => None,
        }
    }
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::Inventory(e) => e.hint(),
            CliError::Render(e) => e.hint(),
            CliError::PlanFile(e) => Some(e.hint()),
            CliError::Usage { hint, .. } => Some(hint.clone()),
            CliError::Other(_) => None,
        }
    }
}
