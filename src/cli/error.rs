//! The errors that end a command with exit code 1.

use crate::error::{Diagnostic, Location};
use crate::inventory::InventoryError;
use crate::plan::planfile::PlanFileError;
use crate::render::RenderError;

/// Everything that ends a command with exit code 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Inventory(InventoryError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    PlanFile(#[from] PlanFileError),
    #[error("{message}")]
    Usage { message: String, hint: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
    /// Several problems found in one pass (at least two), in the order found.
    #[error("{} errors", .0.len())]
    Many(Vec<CliError>),
}

impl From<InventoryError> for CliError {
    fn from(e: InventoryError) -> Self {
        match e {
            InventoryError::Several(all) => {
                CliError::Many(all.into_iter().map(CliError::from).collect())
            }
            e => CliError::Inventory(e),
        }
    }
}

/// At most this many errors of one pass are printed; the rest are counted.
pub const MAX_ERRORS: usize = 10;

impl From<Vec<InventoryError>> for CliError {
    fn from(errors: Vec<InventoryError>) -> Self {
        CliError::collect(errors.into_iter().map(CliError::from).collect())
            .unwrap_or_else(|| CliError::Other(anyhow::anyhow!("no error")))
    }
}

impl CliError {
    /// One error, or several found in the same pass; `None` for none.
    pub fn collect(mut errors: Vec<CliError>) -> Option<CliError> {
        match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(CliError::Many(errors)),
        }
    }

    /// The errors one by one.
    pub fn each(&self) -> Vec<&CliError> {
        match self {
            CliError::Many(all) => all.iter().flat_map(|e| e.each()).collect(),
            e => vec![e],
        }
    }
}

impl CliError {
    pub fn location(&self) -> Option<&Location> {
        match self {
            CliError::Inventory(e) => e.location(),
            CliError::Render(e) => e.location(),
            CliError::Many(all) => all.first().and_then(CliError::location),
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
            CliError::Many(all) => all.first().and_then(CliError::hint),
        }
    }
}

/// The error on stderr (`error:`, `  -->` with a code frame, `hint:`; several found in one
/// pass one after the other, up to [`MAX_ERRORS`]), or as a JSON document on stdout (`error`
/// is the first; `errors` lists them all when there are several).
pub fn print_error(e: &CliError, json: bool) {
    let all = e.each();
    if json {
        let body = |e: &CliError| crate::report::json::ErrorBody {
            message: e.to_string(),
            location: e.location().map(ToString::to_string),
            hint: e.hint().filter(|h| !h.trim().is_empty()),
        };
        let mut doc = crate::report::json::ErrorDocument::new(
            all[0].to_string(),
            all[0].location().map(ToString::to_string),
            all[0].hint().filter(|h| !h.trim().is_empty()),
        );
        if all.len() > 1 {
            doc.errors = all.iter().map(|e| body(e)).collect();
        }
        crate::say!("{}", crate::report::json::document(&doc));
        return;
    }
    let colour = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut out = String::new();
    for (i, e) in all.iter().take(MAX_ERRORS).enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let hint = e.hint().filter(|h| !h.trim().is_empty());
        out.push_str(&crate::report::human::error(
            &e.to_string(),
            e.location(),
            hint.as_deref(),
            colour,
        ));
    }
    if all.len() > 1 {
        out.push_str(&format!(
            "\n{} errors{}; fix them and run again\n",
            all.len(),
            if all.len() > MAX_ERRORS {
                format!(" (the first {MAX_ERRORS} shown)")
            } else {
                String::new()
            }
        ));
    }
    crate::warn!("{out}");
}
