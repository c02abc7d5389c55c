//! `foobar schema`: the JSON Schema of an inventory for the stack beside the playbook, for
//! editors (`# yaml-language-server: $schema=inventory.schema.json`).

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::error::ExitCategory;
use crate::inventory::Schema;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The playbook whose stack's variables.yml describes the inventory.
    #[arg(short, long, env = "FOOBAR_PLAYBOOK", default_value = super::DEFAULT_PLAYBOOK)]
    pub playbook: PathBuf,
    /// Print JSON (the only format; accepted for scripts that always pass it).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: SchemaArgs) -> Result<ExitCategory, CliError> {
    let Some(schema) = Schema::beside(&args.playbook)? else {
        return Err(CliError::Usage {
            message: format!(
                "{} has no {} beside it: its stack declares no variables",
                args.playbook.display(),
                crate::inventory::schema::FILE_NAME
            ),
            hint: "name the stack's playbook with -p (playbooks/site.yml)".into(),
        });
    };
    let doc = serde_json::to_string_pretty(&schema.json_schema()).expect("JSON of a schema");
    crate::say!("{doc}\n");
    Ok(ExitCategory::Ok)
}
