//! `foobar completions SHELL`: shell completions from the clap definition.

use clap::Args;

use super::CliError;
use crate::error::ExitCategory;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: clap_complete::Shell,
}

pub fn run(args: CompletionsArgs) -> Result<ExitCategory, CliError> {
    // Into memory first: clap_complete panics when its writer fails (a closed pipe, as in
    // `foobar completions bash | head`); `say!` ends quietly instead.
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut super::command(), "foobar", &mut out);
    crate::say!("{}", String::from_utf8_lossy(&out));
    Ok(ExitCategory::Ok)
}
