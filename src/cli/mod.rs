//! The command line: clap structs -> resolved options -> the pipeline. The only place that
//! picks human or JSON output and maps outcomes to exit codes.
//!
//! One file per command (`render.rs`, `plan.rs`, `apply.rs`, `verify.rs`, ...), each holding
//! its clap arguments and its `run`; `run.rs` dispatches with one arm per command. They share
//! [`session`] (load, render, connect, finish), [`planning`] (gather + diff) and [`rotation`]
//! (the load balancer for rolling plays).

mod apply;
mod audit;
mod backup;
mod completions;
mod config;
mod dbtier;
mod error;
mod failover;
mod graph;
mod init;
mod log;
mod man;
mod options;
mod plan;
mod planning;
mod render;
mod reseed;
mod rotation;
mod run;
mod schema;
mod session;
mod show;
mod vars;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use error::{CliError, print_error};
pub use run::run;

#[derive(Debug, Parser)]
#[command(
    name = "foobar",
    version,
    about = "An infrastructure-as-code engine (inventory, playbook, templates; plan, apply, verify \
             over SSH) and the web stack it ships (HAProxy, Nginx + app, MySQL/MariaDB replicas)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The playbook a command reads when none is named (its `variables.yml` is the stack's contract).
pub const DEFAULT_PLAYBOOK: &str = "playbooks/site.yml";
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Inventory file [default: `inventory` in foobar.toml, else inventories/production.yml].
    #[arg(
        short,
        long,
        env = "FOOBAR_INVENTORY",
        default_value = "inventories/production.yml",
        hide_default_value = true,
        global = true
    )]
    pub inventory: PathBuf,
    /// Playbook file [default: `playbook` in foobar.toml, else playbooks/site.yml].
    #[arg(
        short,
        long,
        env = "FOOBAR_PLAYBOOK",
        default_value = DEFAULT_PLAYBOOK,
        hide_default_value = true,
        global = true
    )]
    pub playbook: PathBuf,
    /// Only these hosts or groups, as in Ansible: comma-separated or repeated, `*` globs,
    /// `all`, `!pattern` to exclude, `&pattern` to intersect (e.g. `web,!web-02`).
    #[arg(short, long, global = true, allow_hyphen_values = true)]
    pub limit: Vec<String>,
    /// How many hosts to work on at once.
    #[arg(short, long, default_value_t = 20, global = true)]
    pub forks: usize,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// More on stderr: -v a line per step even when it is not a terminal, and foobar's log
    /// at info level; -vv debug level (including FOOBAR_TRACE's per-command lines).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Nothing on stderr but errors and warnings (no progress).
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render every managed file offline (no SSH) into DIR/<host>/<path>, secrets as placeholders.
    Render(render::RenderArgs),
    /// Read what is live on each host and show what apply would change. Touches nothing.
    Plan(plan::PlanArgs),
    /// Make the hosts match the playbook.
    Apply(apply::ApplyArgs),
    /// Check that the stack works: replication first, then load balancer, Nginx, the app.
    Verify(verify::VerifyArgs),
    /// Draw the stack from the inventory: load balancer(s), web hosts with Nginx and the app,
    /// the database primary and replicas with replication arrows, the monitoring host.
    Graph(graph::GraphArgs),
    /// Report the stack's weaknesses (single points of failure, no TLS, no firewall, ...),
    /// each with where, why and the fix. Exit 0: nothing at or above --fail-on; 2: some; 1: error.
    Audit(audit::AuditArgs),
    /// Rebuild one database replica from the primary: stop replication, drop its
    /// non-system databases, seed them from one consistent dump, point it at the primary.
    Reseed(reseed::ReseedArgs),
    /// Promote a database replica to primary (planned or unplanned), then point the other
    /// replicas and the app at it.
    Failover(failover::FailoverArgs),
    /// Print a plan saved by `plan --out`, as `plan` prints it (or `--json`).
    Show(show::ShowArgs),
    /// Print the manual page (roff): `foobar man > foobar.1`.
    Man(man::ManArgs),
    /// Backups on the backup host (`backups:` in the inventory): take one now, list them.
    #[command(alias = "backups")]
    Backup {
        #[command(subcommand)]
        action: backup::BackupAction,
    },
    /// Restore the newest backup before a time or GTID and replay the archived binary logs up
    /// to it, into a scratch directory on the backup host.
    Restore(backup::RestoreArgs),
    /// Print shell completions.
    Completions(completions::CompletionsArgs),
    /// Every variable a host sees, its value and where it came from.
    ///
    /// The layers, lowest first: the stack's default (variables.yml beside the playbook), the
    /// inventory's vars, each group's, the host's. Secrets are named, never read.
    Vars(vars::VarsArgs),
    /// The JSON Schema of an inventory for the stack (for editors).
    Schema(schema::SchemaArgs),
    /// Write a minimal inventory for real hosts, with generated secrets, ready for `plan`.
    Init(init::InitArgs),
}

/// The command line's definition as foobar parses, documents and completes it: the derived
/// [`Cli`] with the shared options a command does not take hidden from its help (see
/// [`options`]).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    options::hide(Cli::command())
}

static EXPLICIT_INPUTS: std::sync::OnceLock<(bool, bool)> = std::sync::OnceLock::new();

/// Whether `--inventory` and `--playbook` were given (flag or environment) rather than left
/// to foobar.toml or the default: a saved plan's recorded inputs replace only defaults.
pub fn explicit_inputs() -> (bool, bool) {
    EXPLICIT_INPUTS.get().copied().unwrap_or((true, true))
}

/// Parse the command line. `Err(code)`: clap printed help or the version (0) or a usage error
/// (1: exit code 2 means "changes present" in foobar). `Ok((cli, json))`: `json` is whether
/// the command's errors go to stdout as JSON.
pub fn parse() -> Result<(Cli, bool), i32> {
    use clap::FromArgMatches;
    let json_requested = std::env::args_os().any(|a| a == "--json");
    let mut command = command();
    let cwd = std::env::current_dir().ok();
    let (found, passed_over) = match &cwd {
        Some(d) => config::find(d),
        None => (None, vec![]),
    };
    for w in &passed_over {
        crate::warn!("{w}\n");
    }
    // Said always when it is not the working directory's own (another tree's inventory and
    // playbook are then used), and with -v.
    let outside = found.as_ref().is_some_and(|f| {
        cwd.as_ref()
            .and_then(|d| d.canonicalize().ok())
            .is_none_or(|d| f.parent() != Some(d.as_path()))
    });
    let verbose_asked = std::env::args_os().skip(1).any(|a| {
        a == "--verbose"
            || a.to_str()
                .is_some_and(|s| s.starts_with("-v") && s[1..].bytes().all(|b| b == b'v'))
    });
    if let Some(path) = &found
        && (outside || verbose_asked)
    {
        crate::warn!("note: using {}\n", path.display());
    }
    if let Some(path) = found {
        match config::load(&path) {
            Ok(c) => command = config::apply_defaults(command, &c),
            Err(e) => {
                let e = CliError::Usage {
                    message: e.to_string(),
                    hint: crate::error::Diagnostic::hint(&e).unwrap_or_default(),
                };
                print_error(&e, json_requested);
                return Err(1);
            }
        }
    }
    let parsed = command
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    match parsed {
        Ok((cli, matches)) => {
            // The command's own matches (`backup now`'s, not `backup`'s).
            let mut sub = matches.subcommand().map(|(_, m)| m);
            while let Some(deeper) = sub.and_then(|m| m.subcommand()).map(|(_, m)| m) {
                sub = Some(deeper);
            }
            let flag = |id: &str| {
                sub.and_then(|m| m.try_get_one::<bool>(id).ok().flatten().copied())
                    .unwrap_or(false)
            };
            let verbose = sub
                .and_then(|m| m.try_get_one::<u8>("verbose").ok().flatten().copied())
                .unwrap_or(0);
            log::init(verbose, flag("quiet"));
            let given = |id: &str| {
                sub.filter(|m| m.ids().any(|i| i.as_str() == id))
                    .and_then(|m| m.value_source(id))
                    .is_some_and(|s| {
                        matches!(
                            s,
                            clap::parser::ValueSource::CommandLine
                                | clap::parser::ValueSource::EnvVariable
                        )
                    })
            };
            let _ = EXPLICIT_INPUTS.set((given("inventory"), given("playbook")));
            if let Err(e) = options::check(&matches) {
                print_error(&e, flag("json"));
                return Err(1);
            }
            Ok((cli, flag("json")))
        }
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return Err(0);
            }
            if json_requested {
                let text = e.render().to_string();
                let message = text.lines().next().unwrap_or("");
                let hint = text
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("tip: "))
                    .unwrap_or("see `foobar --help`");
                let doc = crate::report::json::ErrorDocument::new(
                    message.trim_start_matches("error: ").to_string(),
                    None,
                    Some(hint.to_string()),
                );
                crate::say!("{}", crate::report::json::document(&doc));
            } else {
                let _ = e.print();
            }
            Err(1)
        }
    }
}
