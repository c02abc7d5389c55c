//! `foobar man`: the manual page (roff), generated from the clap definition, on stdout:
//! `foobar man > foobar.1 && man ./foobar.1`.

use clap::Args;

use super::CliError;
use crate::error::ExitCategory;

#[derive(Debug, Args)]
pub struct ManArgs {}

pub fn run(_args: ManArgs) -> Result<ExitCategory, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(super::command())
        .render(&mut out)
        .map_err(anyhow::Error::from)?;
    crate::say!("{}", String::from_utf8_lossy(&out));
    Ok(ExitCategory::Ok)
}
