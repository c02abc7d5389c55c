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

/// The error on stderr (`error:`, `  -->` with a code frame, `hint:`), or as a JSON document
/// on stdout.
pub fn print_error(e: &CliError, json: bool) {
    let hint = e.hint().filter(|h| !h.trim().is_empty());
    if json {
        let location = e.location().map(ToString::to_string);
        let doc = crate::report::json::ErrorDocument::new(e.to_string(), location, hint);
        print!("{}", crate::report::json::document(&doc));
    } else {
        let colour = std::env::var_os("NO_COLOR").is_none()
            && std::io::IsTerminal::is_terminal(&std::io::stderr());
        eprint!(
            "{}",
            crate::report::human::error(&e.to_string(), e.location(), hint.as_deref(), colour)
        );
    }
}
