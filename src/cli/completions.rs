//! `foobar completions SHELL`: shell completions from the clap definition.

use clap::{Args, CommandFactory};

use super::{Cli, CliError};
use crate::error::ExitCategory;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

pub fn run(args: CompletionsArgs) -> Result<ExitCategory, CliError> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "foobar",
        &mut std::io::stdout(),
    );
    Ok(ExitCategory::Ok)
}
