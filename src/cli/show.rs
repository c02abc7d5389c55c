//! `foobar show PLANFILE`: a saved plan, printed as `plan` prints it (or as JSON). Reads
//! only the file: no inventory, no connection.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use super::session::colour;
use crate::error::ExitCategory;
use crate::plan::planfile;
use crate::report::{human, json};

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A plan saved by `foobar plan --out`.
    pub planfile: PathBuf,
    /// Print the plan as JSON (the document `plan --json` prints).
    #[arg(long)]
    pub json: bool,
    /// List unchanged files too.
    #[arg(long)]
    pub show_unchanged: bool,
}

pub fn run(args: ShowArgs) -> Result<ExitCategory, CliError> {
    let plan = planfile::read(&args.planfile)?;
    if args.json {
        crate::say!("{}", json::document(&json::PlanDocument::new(&plan)));
    } else {
        if let Some(inputs) = &plan.inputs {
            crate::say!(
                "{}",
                human::escape_controls(&format!(
                    "Plan from {} and {} (made in {}).\n",
                    inputs.inventory.display(),
                    inputs.playbook.display(),
                    inputs.directory.display()
                ))
            );
        }
        crate::say!(
            "{}",
            human::plan(&plan, &human::Styles::new(colour()), args.show_unchanged)
        );
    }
    Ok(ExitCategory::Ok)
}
