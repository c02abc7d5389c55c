//! Carrying the database tier's decisions out on a host: read its facts, run statements
//! through its client (on stdin, over the unix socket: no password on a command line), and
//! [`reconcile`] one server with what [`super::plan`] decides on facts read right before.

use std::time::Duration;

use super::plan::{
    Statements, needs_seed, parse_probe, primary_statements, quoted_list, replica_action,
    replica_local_statements, replica_statements,
};
use super::{DatabaseConfig, DatabaseError};
use crate::gather::database_probe;
use crate::inventory::DatabaseRole;
use crate::mysql::{self, DbFacts, ServerVersion, Sql};
use crate::secret::Redactor;
use crate::shell::command_line;
use crate::transport::{RemoteCommand, Transport};

/// The server's facts, `None` when no server runs.
pub async fn read_facts(
    t: &dyn Transport,
    cfg: &DatabaseConfig,
    timeout: Duration,
) -> Result<Option<DbFacts>, DatabaseError> {
    let script = database_probe(&cfg.facts_sql());
    let out = t
        .run(&RemoteCommand::script(timeout), Some(script.as_bytes()))
        .await?;
    if !out.success() {
        return Err(DatabaseError::Probe {
            stderr: out.stderr_text().trim().to_string(),
        });
    }
    parse_probe(&out.stdout_text())
}

/// The facts of a server that must be running: its not running is an error naming the host.
pub async fn read_running(
    t: &dyn Transport,
    cfg: &DatabaseConfig,
    timeout: Duration,
) -> Result<DbFacts, DatabaseError> {
    read_facts(t, cfg, timeout)
        .await?
        .ok_or_else(|| DatabaseError::NotRunning(t.host().clone()))
}

/// The server's client with foobar's options and `extra_args`, as one quoted command line.
pub(crate) fn client_line(version: &ServerVersion, extra_args: &[String]) -> String {
    let mut line = vec![version.flavor.client_binary().to_string()];
    line.extend(mysql::CLIENT_ARGS.iter().map(|s| s.to_string()));
    line.extend(extra_args.iter().cloned());
    command_line(&line)
}

/// Keeps a session's statements out of the server's binary log.
pub(crate) fn no_binlog() -> [String; 1] {
    ["--init-command=SET SESSION sql_log_bin=0".to_string()]
}

/// Run SQL through the host's client, on stdin.
pub(crate) async fn run_sql(
    t: &dyn Transport,
    facts: &DbFacts,
    sql: &Sql,
    extra_args: &[String],
    timeout: Duration,
    redactor: &Redactor,
) -> Result<(), DatabaseError> {
    let cmd = RemoteCommand {
        command_line: client_line(&facts.version, extra_args),
        timeout,
    };
    let out = t.run(&cmd, Some(sql.to_stdin().as_bytes())).await?;
    if out.success() {
        Ok(())
    } else {
        Err(DatabaseError::Refused {
            stderr: redactor.redact(out.stderr_text().trim()),
            statements: redactor.redact(&sql.masked()),
        })
    }
}

/// Run `statements` (nothing when empty): the names of what was done.
async fn run_statements(
    t: &dyn Transport,
    facts: &DbFacts,
    statements: Statements,
    extra_args: &[String],
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, DatabaseError> {
    if statements.sql.is_empty() {
        return Ok(Vec::new());
    }
    run_sql(t, facts, &statements.sql, extra_args, timeout, redactor).await?;
    Ok(statements.names)
}

/// Make one database host match: what was done, or why it failed.
pub async fn reconcile(
    role: DatabaseRole,
    host: &dyn Transport,
    primary: &dyn Transport,
    cfg: &DatabaseConfig,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, DatabaseError> {
    let mut done = Vec::new();
    let facts = read_running(host, cfg, timeout).await?;
    mysql::check_flavor(&cfg.flavor, &facts.version)?;
    match role {
        DatabaseRole::Primary => {
            let statements = primary_statements(cfg, &facts)?;
            let names = run_statements(host, &facts, statements, &[], timeout, redactor).await?;
            done.extend(names.into_iter().map(|n| format!("database {n}")));
        }
        DatabaseRole::Replica => {
            let mut facts = facts;
            // Decided before the primary is read: a replica that needs an operator is left
            // alone whatever the primary holds.
            let action = replica_action(cfg, host.host(), &facts)?;
            let primary_facts = read_running(primary, cfg, timeout).await?;
            mysql::check_direction(&primary_facts.version, &facts.version)?;
            if needs_seed(&action, &facts, Some(&primary_facts)) {
                let databases =
                    super::seed::seed(host, primary, &facts, &primary_facts, timeout, redactor)
                        .await?;
                done.push(format!(
                    "database seeded {} from {}",
                    quoted_list(&databases),
                    primary.host()
                ));
                facts = read_running(host, cfg, timeout).await?;
            }
            let statements = replica_statements(cfg, &facts, primary.host())?;
            let names = run_statements(host, &facts, statements, &[], timeout, redactor).await?;
            done.extend(names.into_iter().map(|n| format!("database {n}")));
            let local = replica_local_statements(cfg, &facts)?;
            let names =
                run_statements(host, &facts, local, &no_binlog(), timeout, redactor).await?;
            done.extend(
                names
                    .into_iter()
                    .map(|n| format!("database {n} (on the replica)")),
            );
        }
    }
    Ok(done)
}
