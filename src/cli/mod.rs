//! The command line: clap structs -> resolved options -> the pipeline. The only place that
//! picks human or JSON output and maps outcomes to exit codes.

mod run;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use run::{CliError, run};

#[derive(Debug, Parser)]
#[command(
    name = "foobar",
    version,
    about = "Provision www.foobar.com: HAProxy, Nginx, the app and MySQL replication, over SSH."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Inventory file.
    #[arg(
        short,
        long,
        default_value = "inventories/production.yml",
        global = true
    )]
    pub inventory: PathBuf,
    /// Playbook file.
    #[arg(short, long, default_value = "playbooks/site.yml", global = true)]
    pub playbook: PathBuf,
    /// Only these hosts or groups (comma-separated or repeated; `*` globs allowed).
    #[arg(short, long, global = true)]
    pub limit: Vec<String>,
    /// How many hosts to work on at once.
    #[arg(short, long, default_value_t = 20, global = true)]
    pub forks: usize,
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print a line per step on stderr even when it is not a terminal.
    #[arg(short, long, global = true)]
    pub verbose: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render every managed file offline (no SSH) into DIR/<host>/<path>, secrets masked.
    Render {
        #[command(flatten)]
        common: Common,
        #[arg(long)]
        out: PathBuf,
    },
    /// Read what is live on each host and show what apply would change. Touches nothing.
    Plan {
        #[command(flatten)]
        common: Common,
        /// Exit 2 when there are changes, 0 when there are none.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Save the plan (JSON, no secrets) for `foobar apply PLANFILE`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// List unchanged files too.
        #[arg(long)]
        show_unchanged: bool,
    },
    /// Make the hosts match the playbook.
    Apply {
        #[command(flatten)]
        common: Common,
        /// A plan saved by `foobar plan --out`: apply exactly that, or refuse if stale.
        planfile: Option<PathBuf>,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        yes: bool,
        /// Walk every step without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Show diffs of the changes being made.
        #[arg(long)]
        diff: bool,
        /// Take over a host lock left by a run that died.
        #[arg(long)]
        break_lock: bool,
        /// Stop starting hosts once more than this percentage of hosts failed.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        max_fail_percentage: Option<u8>,
        /// Hosts behind the load balancer changed at a time (drained first, checked, put
        /// back); overrides each play's `serial:`. 0 changes them all at once.
        #[arg(long)]
        serial: Option<u32>,
    },
    /// Check that the stack works: replication first, then load balancer, Nginx, the app.
    Verify {
        #[command(flatten)]
        common: Common,
        /// Largest acceptable replication lag, in seconds.
        #[arg(long, default_value_t = 10)]
        max_lag: u64,
        /// Seconds to wait for HAProxy's health checks to bring UP servers whose hosts are
        /// healthy (just after an apply they need a few good checks in a row); 0: no wait.
        #[arg(long, default_value_t = 15, value_name = "SECONDS")]
        settle: u64,
    },
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
}
