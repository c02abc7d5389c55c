//! Seeding a replica from the primary: one consistent dump streamed through foobar
//! ([`seed`], used by `apply` for a new replica), and `foobar reseed` ([`reseed`]: drop the
//! replica's databases, seed, then reconcile it as `apply` does).

use std::time::Duration;

use super::exec::{client_line, no_binlog, read_running, reconcile, run_sql};
use super::plan::{quoted_list, reseed_plan};
use super::{DatabaseConfig, DatabaseError};
use crate::inventory::DatabaseRole;
use crate::mysql::{self, DbFacts};
use crate::secret::Redactor;
use crate::transport::{RemoteCommand, Transport};

/// Stream one consistent dump of every non-system database of the primary (the app's and
/// foobar's own `foobar_meta` alike) into the replica: primary → foobar → replica through a
/// bounded in-memory pipe, never the whole dump at once.
pub(super) async fn seed(
    replica: &dyn Transport,
    primary: &dyn Transport,
    replica_facts: &DbFacts,
    primary_facts: &DbFacts,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, DatabaseError> {
    let databases = primary_facts.databases.clone();
    if let Some(odd) = databases.iter().find(|d| d.starts_with('-')) {
        return Err(DatabaseError::OptionLikeName {
            primary: primary.host().clone(),
            name: odd.clone(),
        });
    }
    let plan = mysql::seed_plan(&primary_facts.version, &replica_facts.version, &databases);
    if !plan.prepare.is_empty() {
        run_sql(
            replica,
            replica_facts,
            &plan.prepare,
            &[],
            timeout,
            redactor,
        )
        .await?;
    }
    let dump_command = RemoteCommand {
        command_line: crate::shell::command_line(&plan.dump_argv),
        timeout,
    };
    let load_command = RemoteCommand {
        command_line: client_line(&replica_facts.version, &plan.load_client_args),
        timeout,
    };
    // The pipe's capacity bounds what foobar holds of the dump at any time.
    let (mut into_pipe, mut from_pipe) = tokio::io::duplex(SEED_PIPE_BYTES);
    let dump = async move {
        // Dropping the writing end when the dump ends is the load's end of input.
        primary
            .run_streaming(&dump_command, None, &mut into_pipe)
            .await
    };
    let load = async move {
        let mut printed = Vec::new();
        let out = replica
            .run_streaming(&load_command, Some(&mut from_pipe), &mut printed)
            .await;
        out.map(|mut o| {
            o.stdout = printed;
            o
        })
    };
    let (dump, load) = tokio::join!(dump, load);
    // The load's verdict first: a load that stopped early also breaks the dump's pipe.
    let load = load?;
    if !load.success() {
        return Err(DatabaseError::Load {
            replica: replica.host().clone(),
            output: redactor.redact(&format!(
                "{} {}",
                load.stderr_text().trim(),
                load.stdout_text().trim()
            )),
        });
    }
    let dump = dump?;
    if !dump.success() {
        return Err(DatabaseError::Dump {
            databases: databases.join(", "),
            primary: primary.host().clone(),
            stderr: redactor.redact(dump.stderr_text().trim()),
        });
    }
    Ok(databases)
}

/// How much of a dump is in flight between the primary and the replica at most.
const SEED_PIPE_BYTES: usize = 256 * 1024;

/// Rebuild `replica` from `primary`: what [`reseed_plan`] shows, then the usual replica
/// reconciliation (point at the primary, start, read-only, accounts).
pub async fn reseed(
    replica: &dyn Transport,
    primary: &dyn Transport,
    cfg: &DatabaseConfig,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, DatabaseError> {
    let facts = read_running(replica, cfg, timeout).await?;
    let primary_facts = read_running(primary, cfg, timeout).await?;
    let plan = reseed_plan(&facts, &primary_facts)?;
    run_sql(
        replica,
        &facts,
        &plan.prepare,
        &no_binlog(),
        timeout,
        redactor,
    )
    .await?;
    let mut done = vec![format!(
        "dropped {} and the replication settings",
        if plan.drop.is_empty() {
            "nothing".to_string()
        } else {
            quoted_list(&plan.drop)
        }
    )];
    let facts = read_running(replica, cfg, timeout).await?;
    let seeded = seed(replica, primary, &facts, &primary_facts, timeout, redactor).await?;
    done.push(format!(
        "seeded {} from {}",
        quoted_list(&seeded),
        primary.host()
    ));
    done.extend(
        reconcile(
            DatabaseRole::Replica,
            replica,
            primary,
            cfg,
            timeout,
            redactor,
        )
        .await?,
    );
    Ok(done)
}
