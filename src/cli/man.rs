//! `foobar man`: the manual page (roff), generated from the clap definition, on stdout:
//! `foobar man > foobar.1 && man ./foobar.1`. One page: every command's synopsis,
//! description and options under COMMANDS (no `foobar-plan(1)` pages that nothing makes),
//! then the exit codes of every command from [`crate::error::EXIT_CODES`].

use clap::Args;

use super::CliError;
use crate::error::ExitCategory;

#[derive(Debug, Args)]
pub struct ManArgs {}

pub fn run(_args: ManArgs) -> Result<ExitCategory, CliError> {
    crate::say!("{}", page().map_err(anyhow::Error::from)?);
    Ok(ExitCategory::Ok)
}

/// The leaf commands under `cmd`, depth first.
fn leaves(cmd: &clap::Command, out: &mut Vec<clap::Command>) {
    // As `--help` lists them (a changed subcommand moves to the end of the list).
    let mut subs: Vec<&clap::Command> =
        cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    subs.sort_by_key(|s| s.get_display_order());
    for sub in subs {
        if sub.has_subcommands() {
            leaves(sub, out);
        } else {
            out.push(sub.clone());
        }
    }
}

/// The whole page.
pub fn page() -> std::io::Result<String> {
    let mut cmd = super::command().disable_help_subcommand(true);
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    out.extend_from_slice(b".SH COMMANDS\n");
    let mut all = Vec::new();
    leaves(&cmd, &mut all);
    for sub in all {
        let name = sub
            .get_bin_name()
            .unwrap_or(sub.get_name())
            .replace('-', "\\-");
        out.extend_from_slice(format!(".SS \"{name}\"\n").as_bytes());
        let man = clap_mangen::Man::new(sub);
        // Each section without its own heading: they are parts of this command's.
        for render in [
            clap_mangen::Man::render_synopsis_section,
            clap_mangen::Man::render_description_section,
            clap_mangen::Man::render_options_section,
        ] {
            let mut part = Vec::new();
            render(&man, &mut part)?;
            let text = String::from_utf8_lossy(&part);
            for line in text.lines().filter(|l| !l.starts_with(".SH ")) {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            }
            out.extend_from_slice(b".PP\n");
        }
    }
    out.extend_from_slice(crate::error::exit_codes_roff().as_bytes());
    man.render_version_section(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
