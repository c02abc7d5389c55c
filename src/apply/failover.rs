//! Promoting a replica to primary (`foobar failover`), in the order that loses nothing that
//! can be kept.
//!
//! Planned (the old primary answers): the old primary is made read-only, its last GTID read,
//! the chosen replica waits (`MASTER_GTID_WAIT`) until it has applied exactly that, then it
//! stops replicating, forgets its source and takes writes; the old primary follows it as a
//! replica from its own last position. No acknowledged write is lost.
//!
//! Unplanned (the old primary is unreachable): the chosen replica applies everything it had
//! received, is compared with the other reachable replicas (refused unless forced when one
//! holds more), then promoted. What the lost primary committed and no replica received is
//! lost; the report says how far the chosen replica was. When the old primary comes back it
//! starts read-only (the server configuration says so on every database host) and `apply`
//! rejoins it (see `database::reconcile`).
//!
//! Re-pointing the other replicas and the app's write host is not done here: the caller
//! edits the inventory and runs the usual apply, which does both (replicas whose source
//! differs are re-pointed; the app units render the new write host and restart rolling).

use std::time::Duration;

use crate::apply::database::exec::{client_line, read_facts, read_running, run_sql};
use crate::apply::database::plan::rejoin_sql;
use crate::apply::database::{DatabaseConfig, DatabaseError};
use crate::error::Diagnostic;
use crate::inventory::HostName;
use crate::mysql::{self, DbFacts, GtidFacts, GtidPosition, ReplicaDesired, Sql};
use crate::secret::Redactor;
use crate::transport::{RemoteCommand, Transport, TransportError};

/// How long the chosen replica may take to catch up before the switch is abandoned.
pub const CATCH_UP_SECONDS: u64 = 30;

/// Why a failover stopped, and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error("{0}")]
    Database(#[from] DatabaseError),
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("cannot read the GTID position `{0}`")]
    Position(String),
    #[error("failover is implemented for MariaDB's GTIDs only (MySQL: not yet)")]
    MySqlGtid,
    #[error("{host} refused: {stderr}")]
    Refused { host: HostName, stderr: String },
    #[error(
        "{host} did not reach {position} within {CATCH_UP_SECONDS} s (MASTER_GTID_WAIT returned {answer})"
    )]
    NotCaughtUp {
        host: HostName,
        position: GtidPosition,
        answer: String,
    },
    /// The planned switchover stopped before anything was switched.
    #[error("{source}; nothing was switched, {old} takes writes again")]
    Abandoned {
        source: Box<FailoverError>,
        old: HostName,
    },
    #[error(
        "refusing to promote {target}: {} (promote that one instead, or pass --force to accept losing those transactions)",
        .ahead.iter().map(|(h, n)| format!("{h} holds {n} transaction(s) more")).collect::<Vec<_>>().join(", ")
    )]
    Behind {
        target: HostName,
        ahead: Vec<(String, u64)>,
    },
}

impl Diagnostic for FailoverError {
    fn hint(&self) -> Option<String> {
        match self {
            FailoverError::Database(e) => e.hint(),
            FailoverError::Transport(e) => e.hint(),
            FailoverError::Position(_) | FailoverError::Refused { .. } => Some(
                "`foobar verify` shows both servers' replication state; fix what it names, then run failover again".into(),
            ),
            FailoverError::MySqlGtid => Some(
                "promote the MySQL replica by hand (STOP REPLICA; RESET REPLICA ALL; read_only OFF), then edit the inventory and apply".into(),
            ),
            FailoverError::NotCaughtUp { host, .. } => Some(format!(
                "{host} is too far behind or not replicating: check `foobar verify`, let it catch up, then run failover again"
            )),
            FailoverError::Abandoned { source, .. } => source.hint(),
            FailoverError::Behind { .. } => Some(
                "promote the replica that holds the most, or pass --force to accept the loss".into(),
            ),
        }
    }
}

fn binlog_pos(facts: &DbFacts) -> Result<GtidPosition, FailoverError> {
    match &facts.gtid {
        GtidFacts::MariaDb { binlog_pos, .. } => GtidPosition::parse(binlog_pos)
            .ok_or_else(|| FailoverError::Position(binlog_pos.clone())),
        GtidFacts::MySql { .. } => Err(FailoverError::MySqlGtid),
    }
}

/// What the replica has received and applied from its (old) source.
pub fn received_and_applied(facts: &DbFacts) -> (GtidPosition, GtidPosition) {
    let applied = match &facts.gtid {
        GtidFacts::MariaDb { slave_pos, .. } => GtidPosition::parse(slave_pos).unwrap_or_default(),
        GtidFacts::MySql { .. } => GtidPosition::default(),
    };
    let received = facts
        .replica
        .as_ref()
        .and_then(|r| r.gtid_io_pos.as_deref())
        .and_then(GtidPosition::parse)
        .unwrap_or_else(|| applied.clone());
    (received, applied)
}

/// Run `sql` and return the value of the last line printed (a one-column answer).
async fn scalar(
    t: &dyn Transport,
    facts: &DbFacts,
    sql: &str,
    timeout: Duration,
) -> Result<String, FailoverError> {
    let cmd = RemoteCommand {
        command_line: client_line(&facts.version, &["--skip-column-names".into()]),
        timeout,
    };
    let out = t.run(&cmd, Some(sql.as_bytes())).await?;
    if !out.success() {
        return Err(FailoverError::Refused {
            host: t.host().clone(),
            stderr: out.stderr_text().trim().to_string(),
        });
    }
    Ok(out
        .stdout_text()
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Wait until `t` has applied `pos` (bounded).
async fn wait_for(
    t: &dyn Transport,
    facts: &DbFacts,
    pos: &GtidPosition,
    timeout: Duration,
) -> Result<(), FailoverError> {
    if pos.domains.is_empty() {
        return Ok(());
    }
    // The position is digits, dashes and commas only (parsed above): safe in a literal.
    let answer = scalar(
        t,
        facts,
        &format!("SELECT MASTER_GTID_WAIT('{pos}', {CATCH_UP_SECONDS});\n"),
        timeout,
    )
    .await?;
    if answer == "0" {
        Ok(())
    } else {
        Err(FailoverError::NotCaughtUp {
            host: t.host().clone(),
            position: pos.clone(),
            answer,
        })
    }
}

/// Stop replicating, forget the source, take writes.
fn promote_sql(facts: &DbFacts) -> Sql {
    let mut sql = Sql::new();
    sql.push_text("STOP REPLICA");
    sql.push_text("RESET REPLICA ALL");
    if let Some(c) = mysql::read_only_changes(facts, false) {
        sql.extend(c.sql);
    }
    sql
}

/// The lines a plan shows before a failover.
pub fn plan_lines(
    old: &HostName,
    target: &HostName,
    old_facts: Option<&DbFacts>,
    target_facts: &DbFacts,
) -> Vec<String> {
    let mut out = Vec::new();
    match old_facts {
        Some(_) => {
            out.push(format!("planned switchover: {old} answers"));
            out.push(format!(
                "  ~ {old}: SET GLOBAL read_only = ON (no new write is accepted there)"
            ));
            out.push(format!("  ~ {target}: wait until it has applied {old}'s last transaction (MASTER_GTID_WAIT, at most {CATCH_UP_SECONDS} s)"));
        }
        None => {
            let (received, applied) = received_and_applied(target_facts);
            out.push(format!("unplanned failover: {old} does not answer"));
            out.push(format!(
                "  {target} received up to {received}, applied up to {applied} ({} to apply); what {old} committed after {received} is lost unless {old} comes back",
                applied.behind(&received)
            ));
        }
    }
    out.push(format!(
        "  ~ {target}: STOP REPLICA; RESET REPLICA ALL; SET GLOBAL read_only = OFF (the new primary)"
    ));
    if let Some(e) =
        old_facts.and_then(|o| mysql::check_direction(&target_facts.version, &o.version).err())
    {
        out.push(format!(
            "  ! {old}: stays read-only and does not replicate ({e}); replace it by a host on the newer release and `foobar apply` seeds it"
        ));
    } else if old_facts.is_some() {
        out.push(format!(
            "  ~ {old}: resume after its own last transaction as a replica of {target} (read-only, fenced)"
        ));
    } else {
        out.push(format!(
            "  ~ {old}: fenced when it comes back (every server starts read-only); `foobar apply` then rejoins it as a replica"
        ));
    }
    out
}

/// A planned switchover: `old` answers. Returns what was done.
pub async fn switchover(
    old: &dyn Transport,
    target: &dyn Transport,
    cfg: &DatabaseConfig,
    target_address: &str,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, FailoverError> {
    let old_facts = read_running(old, cfg, timeout).await?;
    let target_facts = read_running(target, cfg, timeout).await?;
    let mut done = Vec::new();
    if let Some(c) = mysql::read_only_changes(&old_facts, true) {
        run_sql(old, &old_facts, &c.sql, &[], timeout, redactor).await?;
    }
    done.push(format!("{}: read_only ON", old.host()));
    let old_facts = read_running(old, cfg, timeout).await?;
    let last = binlog_pos(&old_facts)?;
    if let Err(e) = wait_for(target, &target_facts, &last, timeout).await {
        // Give the old primary its writes back: nothing was switched.
        if let Some(c) = mysql::read_only_changes(&old_facts, false) {
            let _ = run_sql(old, &old_facts, &c.sql, &[], timeout, redactor).await;
        }
        return Err(FailoverError::Abandoned {
            source: Box::new(e),
            old: old.host().clone(),
        });
    }
    done.push(format!(
        "{}: applied {}'s last transaction {last}",
        target.host(),
        old.host()
    ));
    run_sql(
        target,
        &target_facts,
        &promote_sql(&target_facts),
        &[],
        timeout,
        redactor,
    )
    .await?;
    done.push(format!(
        "{}: promoted (replication reset, read_only OFF)",
        target.host()
    ));
    if let Err(e) = mysql::check_direction(&target_facts.version, &old_facts.version) {
        done.push(format!(
            "{}: read-only, not replicating ({e}); replace it by a host on the newer release",
            old.host()
        ));
        return Ok(done);
    }
    let desired = ReplicaDesired {
        source_host: target_address.to_string(),
        ..cfg.replica_desired()
    };
    let sql = rejoin_sql(&old_facts.version, &desired, vec![])?;
    run_sql(old, &old_facts, &sql, &[], timeout, redactor).await?;
    done.push(format!(
        "{}: replicating from {} after its own last transaction {last}",
        old.host(),
        target.host()
    ));
    Ok(done)
}

/// An unplanned failover: the old primary is gone. `others` are the other reachable
/// replicas. Refuses (unless `force`) when one of them holds more than `target`.
pub async fn promote_unplanned(
    target: &dyn Transport,
    others: &[&dyn Transport],
    cfg: &DatabaseConfig,
    force: bool,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, FailoverError> {
    let facts = read_running(target, cfg, timeout).await?;
    let (received, applied) = received_and_applied(&facts);
    let mut others_pos = Vec::new();
    for o in others {
        if let Ok(Some(f)) = read_facts(*o, cfg, timeout).await {
            others_pos.push((o.host().to_string(), received_and_applied(&f).0));
        }
    }
    let ahead = mysql::further_ahead(&received, &others_pos);
    if !ahead.is_empty() && !force {
        return Err(FailoverError::Behind {
            target: target.host().clone(),
            ahead: ahead.iter().map(|(h, n)| (h.to_string(), *n)).collect(),
        });
    }
    let mut done = Vec::new();
    wait_for(target, &facts, &received, timeout).await?;
    done.push(format!(
        "{}: applied everything it had received ({received}; {} were still to apply)",
        target.host(),
        applied.behind(&received)
    ));
    run_sql(target, &facts, &promote_sql(&facts), &[], timeout, redactor).await?;
    done.push(format!(
        "{}: promoted (replication reset, read_only OFF)",
        target.host()
    ));
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::fixtures::{FACTS_PRIMARY, REPLICA};

    fn host(name: &str) -> HostName {
        HostName::new(name)
    }

    #[test]
    fn a_former_primary_older_than_the_new_one_is_left_read_only_not_rejoined() {
        let old = mysql::parse_facts(FACTS_PRIMARY).unwrap();
        let mut target = mysql::parse_facts(REPLICA).unwrap();
        let same = plan_lines(&host("web-01"), &host("web-02"), Some(&old), &target).join("\n");
        assert!(
            same.contains("~ web-01: resume after its own last transaction as a replica of web-02"),
            "{same}"
        );
        target.version = mysql::ServerVersion::parse("11.8.3-MariaDB-deb13").unwrap();
        let newer = plan_lines(&host("web-01"), &host("web-02"), Some(&old), &target).join("\n");
        assert!(
            !newer.contains("resume after its own last transaction"),
            "{newer}"
        );
        assert!(
            newer.contains("! web-01: stays read-only and does not replicate (MariaDB 10.11.")
                && newer.contains("cannot replicate from MariaDB 11.8.3"),
            "{newer}"
        );
    }
}
