//! The dispatcher: one arm per command, each in its own file over a shared
//! [`Session`](super::session::Session).

use super::{
    Cli, CliError, Command, apply, audit, backup, completions, failover, graph, init, man, plan,
    render, reseed, schema, show, vars, verify,
};
use crate::error::ExitCategory;

pub async fn run(cli: Cli) -> Result<ExitCategory, CliError> {
    match cli.command {
        Command::Completions(args) => completions::run(args),
        Command::Render(args) => render::run(args).await,
        Command::Plan(args) => plan::run(args).await,
        Command::Apply(args) => apply::run(args).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Graph(args) => graph::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Reseed(args) => reseed::run(args).await,
        Command::Failover(args) => failover::run(args).await,
        Command::Show(args) => show::run(args),
        Command::Vars(args) => vars::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Init(args) => init::run(args),
        Command::Man(args) => man::run(args),
        Command::Backup {
            action: backup::BackupAction::Now { common, host },
        } => backup::backup_now(common, host).await,
        Command::Backup {
            action: backup::BackupAction::List { common },
        } => backup::backups_list(common).await,
        Command::Restore(args) => backup::restore(args).await,
    }
}
