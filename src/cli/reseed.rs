//! `foobar reseed HOST`: rebuild one replica from the primary. Shown first as a plan naming
//! what is dropped; `--dry-run` stops there, `--yes` goes on without asking.

use super::dbtier::{self, Tier, sayln, warnln};
use super::{CliError, Common};
use crate::apply::database;
use crate::error::{Diagnostic, ExitCategory};

#[derive(Debug, clap::Args)]
pub struct ReseedArgs {
    #[command(flatten)]
    pub common: Common,
    /// The replica to rebuild.
    pub host: String,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Show the plan and change nothing (`--check`, as in Ansible).
    #[arg(long, visible_alias = "check")]
    pub dry_run: bool,
}

pub async fn run(args: ReseedArgs) -> Result<ExitCategory, CliError> {
    let ReseedArgs {
        common,
        host,
        yes,
        dry_run,
    } = args;
    let host = host.as_str();
    let tier: Tier = dbtier::load(&common, "reseed")?;
    let replica = tier.host(host)?;
    if replica == tier.cfg.primary || !tier.replicas().contains(&replica) {
        return Err(CliError::Usage {
            message: format!(
                "{replica} is not a replica (group db_replica in {}); only a replica is reseeded",
                tier.inventory.path.display()
            ),
            hint: "nothing was changed; name a host of group db_replica".into(),
        });
    }
    let primary = tier.cfg.primary.clone();
    let replica_t = tier.connect(&replica).await?;
    let primary_t = tier.connect(&primary).await?;
    tier.lock(replica_t.as_ref()).await?;
    let result = async {
        let facts = tier.running_facts(replica_t.as_ref(), format!("the database server on {replica} is not running; run `foobar apply` to start it")).await?;
        let primary_facts = tier.running_facts(primary_t.as_ref(), format!("the database server on the primary {primary} is not running")).await?;
        let plan = database::reseed_plan(&facts, &primary_facts).map_err(|e| dbtier::failed_before_change(&e))?;
        sayln!("{replica}:");
        for line in plan.lines(&replica, &primary) {
            sayln!("  {line}");
        }
        if dry_run {
            warnln!("dry run: nothing was changed");
            return Ok(ExitCategory::Ok);
        }
        if !yes && !dbtier::confirm(&format!("Reseed {replica}, dropping what is listed?"))? {
            warnln!("not confirmed: nothing was changed");
            return Ok(ExitCategory::Error);
        }
        match database::reseed(
            replica_t.as_ref(),
            primary_t.as_ref(),
            &tier.cfg,
            tier.timeout,
            &tier.redactor,
        )
        .await
        {
            Ok(done) => {
                for d in done {
                    sayln!("  done {d}");
                }
                sayln!("{replica}: reseeded from {primary}; check it with `foobar verify`");
                Ok(ExitCategory::Ok)
            }
            Err(e) => {
                let hint = e.hint().map(|h| format!("{h}; ")).unwrap_or_default();
                warnln!(
                    "error: reseeding {replica} failed: {}\nhint: {hint}fix the cause and run `foobar reseed {replica}` again",
                    tier.redactor.redact(&e.to_string())
                );
                Ok(ExitCategory::HostFailed)
            }
        }
    }
    .await;
    tier.unlock(replica_t.as_ref()).await;
    replica_t.finish().await;
    primary_t.finish().await;
    result
}
