//! `foobar man`: the manual pages (roff), generated from the clap definition. `foobar man`
//! prints foobar(1): every command's synopsis, description and options under COMMANDS, the
//! exit codes of every command from [`crate::error::EXIT_CODES`], and SEE ALSO naming each
//! command's own page; `foobar man plan` prints foobar-plan(1) (its options, its exit codes,
//! examples); `foobar man --dir DIR` writes all of them.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::error::ExitCategory;

#[derive(Debug, Args)]
pub struct ManArgs {
    /// A command (`plan`, `backup now`): print its own page, foobar-plan(1).
    pub command: Vec<String>,
    /// Write every page (foobar.1 and one per command) into DIR instead of printing.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub dir: Option<PathBuf>,
}

pub fn run(args: ManArgs) -> Result<ExitCategory, CliError> {
    let io = |e: std::io::Error| CliError::Other(anyhow::Error::from(e));
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::write(dir.join("foobar.1"), page().map_err(io)?).map_err(io)?;
        let mut n = 1;
        for (path, _) in commands() {
            let file = dir.join(format!("foobar-{}.1", path.join("-")));
            std::fs::write(
                &file,
                command_page(&path).map_err(io)?.expect("a listed command"),
            )
            .map_err(io)?;
            n += 1;
        }
        crate::say!("wrote {n} pages into {}\n", dir.display());
        return Ok(ExitCategory::Ok);
    }
    if args.command.is_empty() {
        crate::say!("{}", page().map_err(io)?);
        return Ok(ExitCategory::Ok);
    }
    match command_page(&args.command).map_err(io)? {
        Some(p) => {
            crate::say!("{p}");
            Ok(ExitCategory::Ok)
        }
        None => Err(CliError::Usage {
            message: format!("`{}` is not a foobar command", args.command.join(" ")),
            hint: format!(
                "the commands: {}",
                commands()
                    .iter()
                    .map(|(p, _)| p.join(" "))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// Examples for a command's page: (what, command line).
fn examples(path: &str) -> &'static [(&'static str, &'static str)] {
    match path {
        "plan" => &[
            (
                "Show what apply would change, reading every host once",
                "foobar plan",
            ),
            (
                "Save the plan you reviewed, for apply",
                "foobar plan --out plan.json",
            ),
            (
                "Exit 2 when there are changes (for CI)",
                "foobar plan --detailed-exitcode",
            ),
        ],
        "apply" => &[
            ("Apply a reviewed plan exactly", "foobar apply plan.json"),
            (
                "Plan and apply without asking, web hosts only",
                "foobar apply --yes --limit web",
            ),
            (
                "Walk the plan without changing anything",
                "foobar apply --dry-run",
            ),
        ],
        "verify" => &[
            (
                "Check replication, services, backends and HTTP",
                "foobar verify",
            ),
            (
                "Check every 5 seconds until stopped",
                "foobar verify --watch",
            ),
        ],
        "render" => &[(
            "Every managed file, secrets masked, into a directory",
            "foobar render --out rendered",
        )],
        "audit" => &[
            (
                "The stack's weaknesses and the fix for each",
                "foobar audit",
            ),
            (
                "Also read the hosts (listening sockets, firewall, accounts)",
                "foobar audit --live",
            ),
        ],
        "failover" => &[
            (
                "Show the switchover without doing it",
                "foobar failover --to web-02 --dry-run",
            ),
            ("Promote web-02", "foobar failover --to web-02"),
        ],
        "reseed" => &[(
            "Rebuild a broken replica from the primary",
            "foobar reseed web-02",
        )],
        "init" => &[(
            "An inventory for three hosts, with generated secrets",
            "foobar init mysite --lb lb-01=10.0.0.10 --web web-01=10.0.0.11,web-02=10.0.0.12",
        )],
        "vars" => &[(
            "Every value web-01 gets and where it came from",
            "foobar vars web-01",
        )],
        "graph" => &[(
            "The stack as an SVG, live state in colour",
            "foobar graph --live --format svg > stack.svg",
        )],
        _ => &[],
    }
}

/// Every command's path (`["backup", "now"]`) and its clap definition, as `--help` lists them.
fn commands() -> Vec<(Vec<String>, clap::Command)> {
    let mut cmd = super::command().disable_help_subcommand(true);
    cmd.build();
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
        let mut subs: Vec<&clap::Command> =
            cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
        subs.sort_by_key(|s| s.get_display_order());
        for sub in subs {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            if sub.has_subcommands() {
                walk(sub, &path, out);
            } else {
                out.push((path, sub.clone()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&cmd, &[], &mut out);
    out
}

/// `foobar plan`, as the synopsis shows it.
fn joined_bin(words: &[String]) -> &'static str {
    Box::leak(format!("foobar {}", words.join(" ")).into_boxed_str())
}

/// foobar-COMMAND(1), or `None` for no such command.
pub fn command_page(path: &[String]) -> std::io::Result<Option<String>> {
    let words: Vec<String> = path
        .iter()
        .flat_map(|p| p.split_whitespace())
        .map(String::from)
        .collect();
    let Some((_, sub)) = commands().into_iter().find(|(p, _)| *p == words) else {
        return Ok(None);
    };
    let joined = words.join(" ");
    let title = format!("foobar-{}", words.join("-"));
    let title: &'static str = Box::leak(title.into_boxed_str());
    let man = clap_mangen::Man::new(sub.clone().name(title).bin_name(joined_bin(&words)));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    let escape = |s: &str| s.replace('\\', "\\e").replace('-', "\\-");
    out.extend_from_slice(b".SH \"EXIT STATUS\"\n");
    let codes = crate::error::EXIT_CODES
        .iter()
        .find(|(c, _)| *c == joined)
        .map(|(_, codes)| *codes)
        .unwrap_or(&[]);
    for (code, meaning) in codes {
        out.extend_from_slice(
            format!(".TP\n{code}\n{}\n", escape(&meaning.replace('`', ""))).as_bytes(),
        );
    }
    out.extend_from_slice(format!(".TP\n1\n{}\n", escape(crate::error::EXIT_ERROR)).as_bytes());
    let ex = examples(&joined);
    if !ex.is_empty() {
        out.extend_from_slice(b".SH EXAMPLES\n");
        for (what, line) in ex {
            out.extend_from_slice(
                format!(
                    ".PP\n{}:\n.PP\n.RS\n.B {}\n.RE\n",
                    escape(what),
                    escape(line)
                )
                .as_bytes(),
            );
        }
    }
    out.extend_from_slice(b".SH \"SEE ALSO\"\n.BR foobar (1)\n");
    Ok(Some(String::from_utf8_lossy(&out).into_owned()))
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
    out.extend_from_slice(b".SH \"SEE ALSO\"\nEach command's own page, written by\n.B foobar man \\-\\-dir DIR\n(or printed by\n.BR \"foobar man COMMAND\" ):\n");
    let pages: Vec<String> = commands()
        .iter()
        .map(|(p, _)| format!(".BR foobar\\-{} (1)", p.join("\\-")))
        .collect();
    out.extend_from_slice(pages.join(",\n").as_bytes());
    out.push(b'\n');
    man.render_version_section(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}
