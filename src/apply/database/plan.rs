//! The database tier's decisions, pure: from the facts read on each server (and the
//! primary's, for a replica), which changes `plan` shows and which statements `apply` and
//! `reseed` run. Nothing here runs a command; [`super::exec`] carries the statements out.

use super::{DatabaseConfig, DatabaseError};
use crate::inventory::{DatabaseRole, HostName};
use crate::mysql::{self, DbFacts, ReplicaAction, Sql};
use crate::plan::{Action, Change, Step};

/// Facts from the gather output's database section: `Ok(None)` when no server runs.
pub fn parse_probe(text: &str) -> Result<Option<DbFacts>, DatabaseError> {
    if text.trim_start().starts_with("#down") {
        return Ok(None);
    }
    Ok(Some(mysql::parse_facts(text)?))
}

/// `` `a`, `b` `` for a plan line.
pub(crate) fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn change(play: usize, target: String, action: Action, details: Vec<String>) -> Change {
    Change::new(play, Step::Database { name: target }, action, details)
}

fn sql_details(sql: &Sql) -> Vec<String> {
    sql.masked_statements()
}

/// The error for a replica foobar will not repair on its own, naming the command that does.
fn needs_operator(problems: &[String], host: &HostName) -> DatabaseError {
    DatabaseError::NeedsOperator {
        host: host.clone(),
        problems: problems.to_vec(),
    }
}

/// What the plan shows for one database host, from facts read at plan time.
pub fn plan_changes(
    host: &HostName,
    role: DatabaseRole,
    play: usize,
    cfg: &DatabaseConfig,
    facts: Option<&DbFacts>,
    primary_facts: Option<&DbFacts>,
) -> Result<Vec<Change>, DatabaseError> {
    let Some(facts) = facts else {
        return Ok(vec![change(
            play,
            match role {
                DatabaseRole::Primary => "accounts and database on the primary".into(),
                DatabaseRole::Replica => format!("replication from {}", cfg.primary),
            },
            Action::Create,
            vec![
                "the server is not running yet; decided on its facts once this play started it"
                    .into(),
            ],
        )]);
    };
    mysql::check_flavor(&cfg.flavor, &facts.version)?;
    let mut out = Vec::new();
    match role {
        DatabaseRole::Primary => {
            let p = mysql::primary_changes(&cfg.primary_desired(), facts, false)?;
            for c in &p.changes {
                out.push(change(
                    play,
                    c.summary.clone(),
                    Action::Update,
                    sql_details(&c.sql),
                ));
            }
            if let Some(c) = mysql::read_only_changes(facts, false) {
                out.push(change(
                    play,
                    c.summary.clone(),
                    Action::Update,
                    sql_details(&c.sql),
                ));
            }
            if out.is_empty() {
                out.push(change(
                    play,
                    "accounts and database on the primary".into(),
                    Action::Unchanged,
                    p.notes.clone(),
                ));
            }
        }
        DatabaseRole::Replica => {
            if let Some(source) = primary_facts {
                mysql::check_direction(&source.version, &facts.version)?;
            }
            let desired = cfg.replica_desired();
            let action = mysql::replica_changes(&desired, facts.replica.as_ref());
            let target = format!(
                "replication from {} ({}:{})",
                cfg.primary, cfg.source_host, cfg.port
            );
            match &action {
                ReplicaAction::Unchanged => {
                    out.push(change(play, target, Action::Unchanged, vec![]))
                }
                ReplicaAction::NeedsOperator { problems } => {
                    return Err(needs_operator(problems, host));
                }
                ReplicaAction::Start { reasons } | ReplicaAction::Configure { reasons, .. } => {
                    let mut details = reasons.clone();
                    if needs_seed(&action, facts, primary_facts) {
                        let names = primary_facts
                            .map(|p| p.databases.clone())
                            .unwrap_or_default();
                        details.push(format!(
                            "seed {} from {} first (one consistent dump of every non-system database, streamed through foobar)",
                            quoted_list(&names),
                            cfg.primary
                        ));
                    }
                    if adopts_own_history(&action, facts) {
                        details.push("this server wrote transactions of its own (a former primary): it resumes after its own last one; if the primary's history lacks them (diverged), the primary refuses it and plan names `foobar reseed`".into());
                    }
                    let sql = replica_sql(&action, facts, &desired)?;
                    details.extend(sql_details(&sql));
                    out.push(change(play, target, Action::Update, details));
                }
            }
            if let Some(c) = mysql::read_only_changes(facts, true) {
                out.push(change(
                    play,
                    c.summary.clone(),
                    Action::Update,
                    sql_details(&c.sql),
                ));
            }
            // Unless seeding brings them, the replica needs the accounts too: the app reads
            // from it. A seeded replica starts after the primary's CREATE USER events.
            if !needs_seed(&action, facts, primary_facts) {
                let p = mysql::primary_changes(&cfg.primary_desired(), facts, false)?;
                for c in p.changes.iter().filter(|c| replica_local(&c.summary)) {
                    out.push(change(
                        play,
                        format!("{} (on the replica, not logged)", c.summary),
                        Action::Update,
                        sql_details(&c.sql),
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// A MariaDB server whose own binary log is ahead of its replication position wrote
/// transactions of its own: a former primary rejoining. Pointing it at the new primary with
/// `MASTER_USE_GTID=slave_pos` would replay history from its stale replication position, so it
/// first takes its own last position as where to resume. Whether that position is part of
/// the new primary's history is checked by the primary itself (strict mode: error 1236
/// otherwise, never a replication from a diverged position).
fn adopts_own_history(action: &ReplicaAction, facts: &DbFacts) -> bool {
    let mysql::GtidFacts::MariaDb {
        slave_pos,
        binlog_pos,
        ..
    } = &facts.gtid
    else {
        return false;
    };
    matches!(action, ReplicaAction::Configure { .. })
        && match (
            mysql::GtidPosition::parse(slave_pos),
            mysql::GtidPosition::parse(binlog_pos),
        ) {
            (Some(slave), Some(binlog)) => slave.behind(&binlog) > 0,
            _ => false,
        }
}

/// The replica's statements, with a former primary's resume position first.
fn replica_sql(
    action: &ReplicaAction,
    facts: &DbFacts,
    desired: &mysql::ReplicaDesired,
) -> Result<Sql, DatabaseError> {
    if !adopts_own_history(action, facts) {
        return Ok(action.sql(&facts.version, desired)?);
    }
    let ReplicaAction::Configure { reasons, .. } = action else {
        unreachable!("adopts_own_history is only true for Configure")
    };
    rejoin_sql(&facts.version, desired, reasons.clone())
}

/// A server that wrote transactions of its own (a former primary) following `desired`: it
/// resumes after its own last transaction.
pub(crate) fn rejoin_sql(
    version: &mysql::ServerVersion,
    desired: &mysql::ReplicaDesired,
    reasons: Vec<String>,
) -> Result<Sql, DatabaseError> {
    let mut sql = Sql::new();
    sql.push_text("STOP REPLICA");
    sql.push_text("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos");
    sql.extend(
        ReplicaAction::Configure {
            reasons,
            stop_first: false,
        }
        .sql(version, desired)?,
    );
    Ok(sql)
}

/// Which of the primary's account changes a replica makes locally (unlogged): not the
/// database (replicated), and never retiring a previous password — that comes from the
/// primary, after the apps restarted; done here it would run in the same apply as the
/// rotation (the replica sees the primary's change arrive) and lock out apps not yet
/// restarted.
fn replica_local(summary: &str) -> bool {
    !summary.starts_with("create database") && !summary.contains("retire the previous password")
}

/// A replica never configured, whose primary already holds the app database it lacks.
pub fn needs_seed(action: &ReplicaAction, facts: &DbFacts, primary: Option<&DbFacts>) -> bool {
    matches!(
        action,
        ReplicaAction::Configure {
            stop_first: false,
            ..
        }
    ) && facts.replica.is_none()
        && !facts.app_database_exists
        && primary.is_some_and(|p| p.app_database_exists)
}

/// Statements `apply` runs on one server, and the names it reports for them.
#[derive(Debug, Default)]
pub struct Statements {
    pub sql: Sql,
    pub names: Vec<String>,
}

impl Statements {
    fn push(&mut self, change: mysql::Change) {
        self.sql.extend(change.sql);
        self.names.push(change.summary);
    }
}

/// What `apply` runs on the primary, on facts read right before: accounts, the database,
/// writes allowed.
pub fn primary_statements(
    cfg: &DatabaseConfig,
    facts: &DbFacts,
) -> Result<Statements, DatabaseError> {
    let mut out = Statements::default();
    for c in mysql::primary_changes(&cfg.primary_desired(), facts, false)?.changes {
        out.push(c);
    }
    if let Some(c) = mysql::read_only_changes(facts, false) {
        out.push(c);
    }
    Ok(out)
}

/// What a replica needs, on facts read right before `apply` changes it; one that needs an
/// operator is an error.
pub fn replica_action(
    cfg: &DatabaseConfig,
    host: &HostName,
    facts: &DbFacts,
) -> Result<ReplicaAction, DatabaseError> {
    match mysql::replica_changes(&cfg.replica_desired(), facts.replica.as_ref()) {
        ReplicaAction::NeedsOperator { problems } => Err(needs_operator(&problems, host)),
        action => Ok(action),
    }
}

/// What `apply` runs on a replica (after any seeding), logged: follow the primary, start,
/// read-only.
pub fn replica_statements(
    cfg: &DatabaseConfig,
    facts: &DbFacts,
    primary: &HostName,
) -> Result<Statements, DatabaseError> {
    let desired = cfg.replica_desired();
    let action = mysql::replica_changes(&desired, facts.replica.as_ref());
    let mut out = Statements {
        sql: replica_sql(&action, facts, &desired)?,
        names: Vec::new(),
    };
    match &action {
        ReplicaAction::Configure { .. } => out
            .names
            .push(format!("replication configured from {primary}")),
        ReplicaAction::Start { .. } => out.names.push("replication started".to_string()),
        _ => {}
    }
    if let Some(c) = mysql::read_only_changes(facts, true) {
        out.push(c);
    }
    Ok(out)
}

/// The app's accounts on a replica (the app reads from it), made locally and kept out of its
/// binary log: they are not writes to replicate, and GTID strict mode forbids local
/// transactions a later failover would trip over.
pub fn replica_local_statements(
    cfg: &DatabaseConfig,
    facts: &DbFacts,
) -> Result<Statements, DatabaseError> {
    let mut out = Statements::default();
    for c in mysql::primary_changes(&cfg.primary_desired(), facts, false)?.changes {
        if replica_local(&c.summary) {
            out.push(c);
        }
    }
    Ok(out)
}

/// What `foobar reseed` will do to a replica, read from both servers' facts: shown before
/// anything changes.
#[derive(Debug, Clone)]
pub struct ReseedPlan {
    /// The replica's non-system databases, dropped first (kept out of its binary log).
    pub drop: Vec<String>,
    /// The primary's non-system databases, copied in one consistent dump.
    pub seed: Vec<String>,
    /// Stop replication, forget it, drop, clear the replica's own GTID history.
    pub prepare: Sql,
}

impl ReseedPlan {
    /// The plan as lines for a human.
    pub fn lines(&self, replica: &HostName, primary: &HostName) -> Vec<String> {
        let mut out = vec![format!(
            "~ reseed {replica} from {primary} (replication stops until it is done)"
        )];
        out.push(if self.drop.is_empty() {
            format!("  - drop: nothing (no non-system database on {replica})")
        } else {
            format!(
                "  - drop on {replica}: {} (every row in them is lost on {replica}; not logged, not replicated)",
                quoted_list(&self.drop)
            )
        });
        out.extend(
            self.prepare
                .masked_statements()
                .iter()
                .map(|s| format!("      {s}")),
        );
        out.push(format!(
            "  + seed from {primary}: {} (one consistent dump with its GTID position, streamed through foobar)",
            quoted_list(&self.seed)
        ));
        out.push(format!(
            "  + point {replica} at {primary}, start replication, read_only ON, the app's accounts"
        ));
        out
    }
}

/// Decide a reseed from facts read now.
pub fn reseed_plan(replica: &DbFacts, primary: &DbFacts) -> Result<ReseedPlan, DatabaseError> {
    Ok(ReseedPlan {
        drop: replica.databases.clone(),
        seed: primary.databases.clone(),
        prepare: mysql::reseed_prepare(&replica.version, &replica.databases)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::AccountDesired;
    use crate::secret::Secret;

    const FRESH: &str = include_str!("../../../tests/fixtures/mysql/facts-mariadb-10.11-fresh.txt");
    const PRIMARY: &str =
        include_str!("../../../tests/fixtures/mysql/facts-mariadb-10.11-primary.txt");
    const REPLICA: &str =
        include_str!("../../../tests/fixtures/mysql/facts-mariadb-10.11-replica.txt");

    /// The tier the fixtures were recorded with: the primary at 127.0.9.1.
    fn cfg() -> DatabaseConfig {
        let account = |user: &str, password: &str| AccountDesired {
            user: user.into(),
            host: "127.%".into(),
            password: Secret::new(password),
        };
        DatabaseConfig {
            primary: HostName::new("db-01"),
            flavor: "mariadb".into(),
            source_host: "127.0.9.1".into(),
            port: 3306,
            replication: account("repl", "repl-secret"),
            app: account("shop", "shop-secret"),
            app_database: "shop".into(),
            monitoring: None,
            replication_ssl_ca: None,
        }
    }

    /// Facts from a recorded probe; `databases` (the non-system ones) as the server held.
    fn facts(text: &str) -> DbFacts {
        let mut f = parse_probe(text).unwrap().unwrap();
        if f.app_database_exists && f.databases.is_empty() {
            f.databases = vec!["shop".into()];
        }
        f
    }

    fn replica_plan(replica: &DbFacts, primary: &DbFacts) -> Vec<Change> {
        let host = HostName::new("db-02");
        plan_changes(
            &host,
            DatabaseRole::Replica,
            3,
            &cfg(),
            Some(replica),
            Some(primary),
        )
        .unwrap()
    }

    fn summary(changes: &[Change]) -> Vec<(String, Action)> {
        changes
            .iter()
            .map(|c| {
                let Step::Database { name } = &c.step else {
                    panic!("not a database step: {c:?}")
                };
                (name.clone(), c.action)
            })
            .collect()
    }

    #[test]
    fn a_server_not_running_yet_is_decided_once_it_runs() {
        assert!(parse_probe("#down\n").unwrap().is_none());
        let host = HostName::new("db-02");
        let changes = plan_changes(&host, DatabaseRole::Replica, 3, &cfg(), None, None).unwrap();
        assert_eq!(
            summary(&changes),
            [("replication from db-01".to_string(), Action::Create)]
        );
        assert!(changes[0].details[0].contains("not running yet"));
    }

    #[test]
    fn a_fresh_replica_is_seeded_then_follows_the_primary_read_only() {
        let (replica, primary) = (facts(FRESH), facts(PRIMARY));
        let changes = replica_plan(&replica, &primary);
        assert_eq!(
            summary(&changes),
            [
                (
                    "replication from db-01 (127.0.9.1:3306)".to_string(),
                    Action::Update
                ),
                ("set read_only ON".to_string(), Action::Update),
            ],
            "seeding brings the accounts: none are made on the replica"
        );
        let details = changes[0].details.join("\n");
        assert!(
            details.contains("seed `shop` from db-01 first"),
            "{details}"
        );
        assert!(details.contains("CHANGE MASTER TO"), "{details}");
        assert!(details.contains("MASTER_USE_GTID=slave_pos"), "{details}");
        assert!(details.contains("START REPLICA"), "{details}");
        assert!(!details.contains("repl-secret"), "{details}");
        // apply decides the same on the same facts: seed first.
        let action = replica_action(&cfg(), &HostName::new("db-02"), &replica).unwrap();
        assert!(needs_seed(&action, &replica, Some(&primary)));
        // A primary without the app database yet: nothing to seed.
        assert!(!needs_seed(&action, &replica, Some(&facts(FRESH))));
    }

    #[test]
    fn a_replica_already_following_the_primary_is_left_alone() {
        let (replica, primary) = (facts(REPLICA), facts(PRIMARY));
        let changes = replica_plan(&replica, &primary);
        assert_eq!(
            changes[0],
            change(
                3,
                "replication from db-01 (127.0.9.1:3306)".into(),
                Action::Unchanged,
                vec![]
            )
        );
        let statements = replica_statements(&cfg(), &replica, &HostName::new("db-01")).unwrap();
        assert!(statements.sql.is_empty(), "{}", statements.sql.masked());
        assert!(statements.names.is_empty());
        let action = replica_action(&cfg(), &HostName::new("db-02"), &replica).unwrap();
        assert!(!needs_seed(&action, &replica, Some(&primary)));
    }

    #[test]
    fn a_diverged_replica_needs_an_operator_and_names_reseed() {
        let mut replica = facts(REPLICA);
        let status = replica.replica.as_mut().unwrap();
        status.io_running = crate::mysql::ThreadState::No;
        status.last_io_errno = 1236;
        status.last_io_error =
            "Got fatal error 1236 from master: the slave's position\nis not in the master's binlog"
                .into();
        let host = HostName::new("db-02");
        let err = plan_changes(
            &host,
            DatabaseRole::Replica,
            3,
            &cfg(),
            Some(&replica),
            Some(&facts(PRIMARY)),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("replication needs an operator: IO thread stopped with error 1236: Got fatal error 1236 from master: the slave's position is not in the master's binlog;"), "{message}");
        assert!(message.contains("`foobar reseed db-02`"), "{message}");
        use crate::error::Diagnostic;
        assert!(
            err.hint()
                .unwrap()
                .contains("foobar reseed db-02 --dry-run")
        );
        assert!(matches!(
            replica_action(&cfg(), &host, &replica),
            Err(DatabaseError::NeedsOperator { .. })
        ));
    }

    #[test]
    fn a_former_primary_rejoins_after_its_own_last_transaction() {
        // The old primary after a failover: it wrote 0-1-16 itself, replicated up to 0-1-10.
        let old = facts(&PRIMARY.replace("gtid_slave_pos\t\n", "gtid_slave_pos\t0-1-10\n"));
        let mut cfg = cfg();
        cfg.primary = HostName::new("db-02");
        let changes = plan_changes(
            &HostName::new("db-01"),
            DatabaseRole::Replica,
            3,
            &cfg,
            Some(&old),
            Some(&facts(REPLICA)),
        )
        .unwrap();
        let details = changes[0].details.join("\n");
        assert!(details.contains("a former primary"), "{details}");
        let statements = replica_statements(&cfg, &old, &HostName::new("db-02")).unwrap();
        let masked = statements.sql.masked();
        assert!(
            masked.starts_with(
                "STOP REPLICA;\nSET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos;\n"
            ),
            "{masked}"
        );
        assert!(masked.contains("MASTER_USE_GTID=slave_pos"), "{masked}");
        assert!(masked.ends_with("SET GLOBAL read_only = ON;\n"), "{masked}");
        assert_eq!(
            statements.names,
            ["replication configured from db-02", "set read_only ON"]
        );
        // Its data is the primary's: never seeded over.
        let action = replica_action(&cfg, &HostName::new("db-01"), &old).unwrap();
        assert!(!needs_seed(&action, &old, Some(&facts(REPLICA))));
    }

    #[test]
    fn a_fresh_primary_gets_its_accounts_and_database_and_takes_writes() {
        let statements = primary_statements(&cfg(), &facts(FRESH)).unwrap();
        assert_eq!(
            statements.names,
            [
                "drop the anonymous account(s) ''@'localhost', ''@'vm'",
                "create database `shop`",
                "user 'repl'@'127.%': create; grant REPLICATION SLAVE",
                "user 'shop'@'127.%': create; grant SELECT, INSERT, UPDATE, DELETE, CREATE on `shop`",
            ]
            .map(String::from),
            "{}",
            statements.sql.masked()
        );
        assert!(!statements.sql.masked().contains("shop-secret"));
        // Converged: nothing to run, and the plan says so.
        assert!(
            primary_statements(&cfg(), &facts(PRIMARY))
                .unwrap()
                .sql
                .is_empty()
        );
        let host = HostName::new("db-01");
        let changes = plan_changes(
            &host,
            DatabaseRole::Primary,
            2,
            &cfg(),
            Some(&facts(PRIMARY)),
            None,
        )
        .unwrap();
        assert_eq!(
            summary(&changes),
            [(
                "accounts and database on the primary".to_string(),
                Action::Unchanged
            )]
        );
    }

    #[test]
    fn a_rotated_password_is_retired_by_the_primary_never_on_a_replica() {
        // The apply after a rotation: the accounts still hold the previous password too.
        let kept = |text: &str| {
            let mut f = facts(text);
            for a in f.accounts.iter_mut().filter(|a| a.user == "shop") {
                a.alternatives = 1;
            }
            f
        };
        let retire =
            "user 'shop'@'127.%': retire the previous password (kept through the last rotation)";
        let primary = primary_statements(&cfg(), &kept(PRIMARY)).unwrap();
        assert_eq!(primary.names, [retire]);
        let local = replica_local_statements(&cfg(), &kept(REPLICA)).unwrap();
        assert!(
            !local.names.iter().any(|n| n == retire),
            "{:?}",
            local.names
        );
        let changes = replica_plan(&kept(REPLICA), &facts(PRIMARY));
        assert!(
            !summary(&changes)
                .iter()
                .any(|(name, _)| name.contains("retire")),
            "{changes:?}"
        );
    }

    #[test]
    fn a_reseed_drops_the_replicas_databases_and_seeds_the_primarys() {
        let plan = reseed_plan(&facts(REPLICA), &facts(PRIMARY)).unwrap();
        assert_eq!(plan.drop, ["shop"]);
        assert_eq!(plan.seed, ["shop"]);
        let lines = plan.lines(&HostName::new("db-02"), &HostName::new("db-01"));
        assert_eq!(
            lines[0],
            "~ reseed db-02 from db-01 (replication stops until it is done)"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("DROP DATABASE IF EXISTS `shop`"))
        );
    }
}
