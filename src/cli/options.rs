//! The options every command shares ([`Common`](super::Common): `-i`, `-p`, `-l`, `-f`,
//! `--json`, `-v`, `-q`) mean one thing everywhere. Where one cannot apply it is refused with
//! the reason, never silently ignored: [`NOT_HERE`] says where, [`hide`] takes those out of
//! the command's help (an option that applies only with another, e.g. `graph --forks` with
//! `--live`, stays shown), and [`check`] refuses them on the command line.

use clap::ArgMatches;
use clap::parser::ValueSource;

use super::CliError;

/// A shared option that a command does not use.
pub struct NotHere {
    /// The command's path, e.g. `"render"`, `"backup now"`.
    pub command: &'static str,
    /// The option's id (its long name with `_`), e.g. `"forks"`.
    pub option: &'static str,
    /// The flag with which it does apply, if any.
    pub unless: Option<&'static str>,
    /// Why not, for the refusal.
    pub why: &'static str,
}

const fn not_here(command: &'static str, option: &'static str, why: &'static str) -> NotHere {
    NotHere {
        command,
        option,
        unless: None,
        why,
    }
}

const OFFLINE: &str = "it works offline, without connecting to hosts";
const BACKUP: &str = "backup commands work on the inventory's backup host alone";
const ONE_HOST: &str = "it works on the host it names";
const WHOLE_STACK: &str = "it draws the whole stack from the inventory";
const NO_JSON: &str = "it prints text only";

pub const NOT_HERE: &[NotHere] = &[
    not_here("render", "forks", OFFLINE),
    not_here("vars", "forks", OFFLINE),
    NotHere {
        command: "audit",
        option: "forks",
        unless: Some("live"),
        why: OFFLINE,
    },
    not_here(
        "graph",
        "json",
        "it draws Mermaid, dot or SVG (choose with --format)",
    ),
    not_here("graph", "limit", WHOLE_STACK),
    NotHere {
        command: "graph",
        option: "forks",
        unless: Some("live"),
        why: "it connects to hosts only with --live",
    },
    not_here("reseed", "limit", ONE_HOST),
    not_here("reseed", "forks", ONE_HOST),
    not_here("reseed", "json", NO_JSON),
    not_here("failover", "json", NO_JSON),
    not_here("backup now", "limit", BACKUP),
    not_here("backup now", "forks", BACKUP),
    not_here("backup list", "limit", BACKUP),
    not_here("backup list", "forks", BACKUP),
    not_here("restore", "limit", BACKUP),
    not_here("restore", "forks", BACKUP),
];

/// The subcommand at `path` (`["backup", "now"]`) of `cmd`, changed by `f`.
fn at(
    cmd: clap::Command,
    path: &[&str],
    f: &dyn Fn(clap::Command) -> clap::Command,
) -> clap::Command {
    match path.split_first() {
        None => f(cmd),
        Some((first, rest)) => cmd.mut_subcommand(*first, |sub| at(sub, rest, f)),
    }
}

/// `cmd` with every option that never applies to a command hidden from that command's help.
pub fn hide(mut cmd: clap::Command) -> clap::Command {
    for n in NOT_HERE.iter().filter(|n| n.unless.is_none()) {
        let path: Vec<&str> = n.command.split(' ').collect();
        cmd = at(cmd, &path, &|c| c.mut_arg(n.option, |a| a.hide(true)));
    }
    cmd
}

/// The command's path and its own matches.
fn leaf(matches: &ArgMatches) -> (String, &ArgMatches) {
    let mut path = Vec::new();
    let mut m = matches;
    while let Some((name, sub)) = m.subcommand() {
        path.push(name);
        m = sub;
    }
    (path.join(" "), m)
}

fn given(m: &ArgMatches, id: &str) -> bool {
    m.ids().any(|i| i.as_str() == id)
        && matches!(m.value_source(id), Some(ValueSource::CommandLine))
}

/// Refuse a shared option given to a command that does not use it.
pub fn check(matches: &ArgMatches) -> Result<(), CliError> {
    let (path, m) = leaf(matches);
    // `backups list` is `backup list`.
    let path = path.replacen("backups ", "backup ", 1);
    for n in NOT_HERE.iter().filter(|n| n.command == path) {
        if !given(m, n.option) || n.unless.is_some_and(|u| given(m, u)) {
            continue;
        }
        let flag = format!("--{}", n.option.replace('_', "-"));
        let hint = match n.unless {
            Some(u) => format!("leave out {flag}, or add --{u}"),
            None => format!("leave out {flag}"),
        };
        let when = n
            .unless
            .map(|u| format!(" without --{u}"))
            .unwrap_or_default();
        return Err(CliError::Usage {
            message: format!("`foobar {path}` does not take {flag}{when}: {}", n.why),
            hint,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every leaf command of the tree, by path.
    fn leaves(cmd: &clap::Command, prefix: &[String], out: &mut Vec<(Vec<String>, clap::Command)>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            if sub.has_subcommands() {
                leaves(sub, &path, out);
            } else {
                out.push((path, sub.clone()));
            }
        }
    }

    /// A value clap accepts for `arg`: its first possible value, a number, or a word.
    fn sample(arg: &clap::Arg) -> Option<String> {
        if !arg.get_num_args().is_some_and(|n| n.takes_values()) {
            return None;
        }
        if let Some(v) = arg.get_possible_values().first() {
            return Some(v.get_name().to_string());
        }
        Some(
            match arg.get_id().as_str() {
                "forks" | "max_lag" | "settle" | "serial" | "max_fail_percentage" => "3",
                "interval" => "1.5",
                _ => "x",
            }
            .to_string(),
        )
    }

    /// `foobar PATH <required arguments> extra...`.
    fn line(path: &[String], leaf: &clap::Command, extra: &[String]) -> Vec<String> {
        let mut args = vec!["foobar".to_string()];
        args.extend(path.iter().cloned());
        for a in leaf.get_arguments().filter(|a| a.is_required_set()) {
            if let Some(long) = a.get_long() {
                args.push(format!("--{long}"));
            }
            args.extend(sample(a));
        }
        args.extend(extra.iter().cloned());
        args
    }

    fn parse(cmd: &clap::Command, args: &[String]) -> Result<(), String> {
        let m = cmd
            .clone()
            .try_get_matches_from(args)
            .map_err(|e| e.render().to_string())?;
        check(&m).map_err(|e| e.to_string())
    }

    const SHARED: [&str; 7] = [
        "inventory",
        "playbook",
        "limit",
        "forks",
        "json",
        "verbose",
        "quiet",
    ];

    /// Each shared option a command's help shows is accepted by that command (with the flag it
    /// needs, if any); each it does not show is refused with the reason; `--check` is taken
    /// wherever `--dry-run` is.
    #[test]
    fn every_documented_option_is_accepted_and_every_other_refused() {
        let mut cmd = hide(<super::super::Cli as clap::CommandFactory>::command());
        cmd.build();
        let mut all = Vec::new();
        leaves(&cmd, &[], &mut all);
        let mut report = Vec::new();
        for (path, leaf) in &all {
            let name = path.join(" ");
            for arg in leaf.get_arguments() {
                let id = arg.get_id().as_str();
                let Some(long) = arg.get_long() else { continue };
                if !SHARED.contains(&id) && id != "dry_run" {
                    continue;
                }
                let rule = NOT_HERE
                    .iter()
                    .find(|n| n.command == name && n.option == id);
                let mut extra = vec![format!("--{long}")];
                extra.extend(sample(arg));
                if let Some(u) = rule.and_then(|r| r.unless) {
                    // Refused alone, accepted with its flag.
                    if parse(&cmd, &line(path, leaf, &extra)).is_ok() {
                        report.push(format!("{name} --{long} without --{u}: accepted"));
                    }
                    extra.push(format!("--{u}"));
                }
                let result = parse(&cmd, &line(path, leaf, &extra));
                match (arg.is_hide_set(), result) {
                    (false, Err(e)) => {
                        report.push(format!("{name} documents --{long} but refuses it: {e}"))
                    }
                    (true, Ok(())) => report.push(format!("{name} hides --{long} but accepts it")),
                    (true, Err(e)) if !e.contains("does not take") => {
                        report.push(format!("{name} --{long}: refused without the reason: {e}"))
                    }
                    _ => {}
                }
                if id == "dry_run" {
                    let check = line(path, leaf, &["--check".to_string()]);
                    if let Err(e) = parse(&cmd, &check) {
                        report.push(format!("{name} takes --dry-run but not --check: {e}"));
                    }
                }
            }
        }
        // The table names real commands and options.
        for n in NOT_HERE {
            let found = all.iter().any(|(p, leaf)| {
                p.join(" ") == n.command && leaf.get_arguments().any(|a| a.get_id() == n.option)
            });
            if !found {
                report.push(format!(
                    "NOT_HERE names {} --{}, which does not exist",
                    n.command, n.option
                ));
            }
        }
        assert!(report.is_empty(), "{}", report.join("\n"));
    }

    #[test]
    fn a_refusal_says_why_and_the_old_backup_spelling_is_the_same_command() {
        let cmd = hide(<super::super::Cli as clap::CommandFactory>::command());
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            parse(&cmd, &args(&["foobar", "render", "--out", "o", "-f", "3"])).unwrap_err(),
            "`foobar render` does not take --forks: it works offline, without connecting to hosts"
        );
        assert_eq!(
            parse(&cmd, &args(&["foobar", "backups", "list", "-l", "x"])).unwrap_err(),
            "`foobar backup list` does not take --limit: backup commands work on the inventory's backup host alone"
        );
        assert!(parse(&cmd, &args(&["foobar", "backups", "list", "--json"])).is_ok());
    }
}
