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
mod error;
mod graph;
mod plan;
mod planning;
mod render;
mod rotation;
mod run;
mod session;
mod verify;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use error::CliError;
pub use run::run;

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
    /// Take a backup now on the backup host (`backups:` in the inventory).
    Backup {
        #[command(subcommand)]
        action: backup::BackupAction,
    },
    /// The backups on the backup host.
    Backups {
        #[command(subcommand)]
        action: backup::BackupsAction,
    },
    /// Restore the newest backup before a time or GTID and replay the archived binary logs up
    /// to it, into a scratch directory on the backup host.
    Restore(backup::RestoreArgs),
    /// Print shell completions.
    Completions(completions::CompletionsArgs),
}
