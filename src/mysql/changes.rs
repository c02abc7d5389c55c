//! What to change, decided from facts, and the statements that change it.

use serde::Serialize;

use super::facts::DbFacts;
use super::password::{PasswordCheck, mysql_native_password_hash};
use super::sql::{Sql, SqlError, Statement};
use super::status::{Positioning, ReplicaStatus, ThreadState};
use super::version::{Dialect, Flavor, ServerVersion};
use crate::secret::Secret;

/// An account foobar manages: `'user'@'host'` with a password.
#[derive(Debug, Clone)]
pub struct AccountDesired {
    pub user: String,
    /// A host pattern, e.g. `127.%` or `10.0.1.%`.
    pub host: String,
    pub password: Secret,
}

/// What the primary should hold.
#[derive(Debug, Clone)]
pub struct PrimaryDesired {
    /// Granted `REPLICATION SLAVE ON *.*`.
    pub replication: AccountDesired,
    /// Granted `ALL PRIVILEGES` on `app_database`.
    pub app: AccountDesired,
    pub app_database: String,
    /// The metrics exporter's account, when monitoring is configured: granted what
    /// mysqld_exporter's documentation asks for (`PROCESS, REPLICATION CLIENT` and `SELECT`
    /// on `performance_schema`), plus `SLAVE MONITOR` on MariaDB, where `REPLICATION CLIENT`
    /// no longer covers `SHOW SLAVE STATUS` (10.5.9+).
    pub monitoring: Option<AccountDesired>,
}

/// The global privileges the exporter needs, as `GRANT` spells them and as
/// information_schema reports them.
fn monitoring_privileges(flavor: Flavor) -> (&'static str, &'static [&'static str]) {
    match flavor {
        Flavor::MariaDb => (
            "PROCESS, REPLICATION CLIENT, SLAVE MONITOR",
            &["PROCESS", "BINLOG MONITOR", "SLAVE MONITOR"],
        ),
        Flavor::MySql => (
            "PROCESS, REPLICATION CLIENT",
            &["PROCESS", "REPLICATION CLIENT"],
        ),
    }
}

/// One change: a line for the plan and the statements that make it.
#[derive(Debug, Clone)]
pub struct Change {
    pub summary: String,
    pub sql: Sql,
}

/// What [`primary_changes`] decided.
#[derive(Debug, Clone, Default)]
pub struct PrimaryPlan {
    pub changes: Vec<Change>,
    /// Things foobar could not check and did not change, for the plan to show.
    pub notes: Vec<String>,
}

impl PrimaryPlan {
    /// Every change's statements, in order, as one script.
    pub fn sql(&self) -> Sql {
        let mut sql = Sql::new();
        for c in &self.changes {
            sql.extend(c.sql.clone());
        }
        sql
    }
}

/// Decides what to run on the primary so the app database, the app account and the
/// replication account exist as desired.
///
/// Each account's statements begin with `CREATE USER IF NOT EXISTS`, even when the account
/// exists here: account statements replicate, and a replica seeded with only the app
/// database lacks the account, so a bare `ALTER USER` or `GRANT` would stop its SQL thread.
///
/// Passwords are compared through the stored hash (`mysql_native_password` and
/// `caching_sha2_password`). For any other plugin the password cannot be compared: it is
/// re-set only when `force_password` is true, otherwise the plan carries a note. An account
/// on the wrong plugin (e.g. `mysql_native_password` on MySQL 8) is re-created on the right
/// one.
pub fn primary_changes(
    desired: &PrimaryDesired,
    facts: &DbFacts,
    force_password: bool,
) -> Result<PrimaryPlan, SqlError> {
    let version = &facts.version;
    let mut plan = PrimaryPlan::default();
    if !facts.app_database_exists {
        let mut sql = Sql::new();
        sql.push(
            Statement::new()
                .text("CREATE DATABASE IF NOT EXISTS ")
                .identifier(&desired.app_database, "the app database name")?
                .text(" CHARACTER SET utf8mb4"),
        );
        plan.changes.push(Change {
            summary: format!("create database `{}`", desired.app_database),
            sql,
        });
    }
    let grant_replication = |s: Statement| s.text("GRANT REPLICATION SLAVE ON *.* TO ");
    account_change(
        version,
        facts,
        &desired.replication,
        "the replication password",
        force_password,
        !facts
            .account(&desired.replication.user, &desired.replication.host)
            .is_some_and(|a| a.replication_slave),
        "REPLICATION SLAVE",
        |a| grant_replication(Statement::new()).account(&a.user, &a.host),
        false,
        &mut plan,
    )?;
    let database = &desired.app_database;
    account_change(
        version,
        facts,
        &desired.app,
        "the app password",
        force_password,
        !facts.app_grant_complete(&desired.app.user, &desired.app.host),
        &format!("ALL PRIVILEGES on `{database}`"),
        |a| {
            Statement::new()
                .text("GRANT ALL PRIVILEGES ON ")
                .identifier(database, "the app database name")?
                .text(".* TO ")
                .account(&a.user, &a.host)
        },
        true,
        &mut plan,
    )?;
    if let Some(monitoring) = &desired.monitoring {
        let (grant, reported) = monitoring_privileges(version.flavor);
        let has = |scope: &str, privilege: &str| {
            facts
                .monitoring_privileges
                .iter()
                .any(|(s, p)| s == scope && p == privilege)
        };
        let global_missing = !reported.iter().all(|p| has("*", p));
        let schema_missing = !has("performance_schema", "SELECT");
        let before = plan.changes.len();
        account_change(
            version,
            facts,
            monitoring,
            "the monitoring password",
            force_password,
            global_missing || schema_missing,
            &format!("{grant} and SELECT on performance_schema"),
            |a| {
                Statement::new()
                    .text(&format!("GRANT {grant} ON *.* TO "))
                    .account(&a.user, &a.host)
            },
            false,
            &mut plan,
        )?;
        if (global_missing || schema_missing) && plan.changes.len() > before {
            let schema = Statement::new()
                .text("GRANT SELECT ON performance_schema.* TO ")
                .account(&monitoring.user, &monitoring.host)?;
            if let Some(c) = plan.changes.last_mut() {
                c.sql.push(schema);
            }
        }
    }
    Ok(plan)
}

#[allow(clippy::too_many_arguments)]
fn account_change(
    version: &ServerVersion,
    facts: &DbFacts,
    desired: &AccountDesired,
    password_name: &str,
    force_password: bool,
    grant_missing: bool,
    grant_name: &str,
    grant: impl Fn(&AccountDesired) -> Result<Statement, SqlError>,
    keep_previous: bool,
    plan: &mut PrimaryPlan,
) -> Result<(), SqlError> {
    // MariaDB accepts several passwords per account (`IDENTIFIED VIA … OR …`): a changed app
    // password is added in front of the previous one, so apps still running with the old
    // one keep connecting until their rolling restart; the next apply retires it.
    let keep_previous = keep_previous && version.flavor == Flavor::MariaDb;
    let mut two_passwords = false;
    let who = format!("'{}'@'{}'", desired.user, desired.host);
    let plugin = version.auth_plugin();
    let mut what: Vec<String> = Vec::new();
    let mut alter = false;
    match facts.account(&desired.user, &desired.host) {
        None => what.push("create".into()),
        Some(live) if live.plugin != plugin => {
            what.push(format!(
                "switch from {} to {plugin} and set the password",
                live.plugin
            ));
            alter = true;
        }
        Some(live) => match live.password_check(&desired.password) {
            PasswordCheck::Matches if live.alternatives == 0 => {}
            PasswordCheck::Differs if keep_previous => {
                what.push(
                    "set the password (it differs), keeping the previous one until the next apply (apps restart with the new one first)"
                        .into(),
                );
                two_passwords = true;
            }
            PasswordCheck::Differs => {
                what.push("set the password (it differs)".into());
                alter = true;
            }
            PasswordCheck::Matches => {
                what.push("retire the previous password (kept through the last rotation)".into());
                alter = true;
            }
            PasswordCheck::Unknown { reason } if force_password => {
                what.push(format!("set the password (forced; {reason})"));
                alter = true;
            }
            PasswordCheck::Unknown { reason } => plan.notes.push(format!(
                "user {who}: password not checked ({reason}); it is re-set only when forced"
            )),
        },
    }
    if grant_missing {
        what.push(format!("grant {grant_name}"));
    }
    if what.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new();
    sql.push(identified(
        Statement::new().text("CREATE USER IF NOT EXISTS "),
        version,
        desired,
        password_name,
    )?);
    if alter {
        sql.push(identified(
            Statement::new().text("ALTER USER "),
            version,
            desired,
            password_name,
        )?);
    }
    if two_passwords {
        // The previous hash is copied on the server: foobar never reads it.
        let hash = Secret::new(mysql_native_password_hash(desired.password.expose()));
        sql.push(
            Statement::new()
                .text("SET @foobar_previous = (SELECT authentication_string FROM mysql.user WHERE User = ")
                .string(&desired.user, "the user name")?
                .text(" AND Host = ")
                .string(&desired.host, "the host pattern")?
                .text(")"),
        );
        // Already done (on a replica, the primary's change may have arrived first): keep
        // it, or the previous password would be lost.
        sql.push(
            Statement::new()
                .text("SET @foobar_alter = IF(@foobar_previous = ")
                .secret(&hash, password_name)?
                .text(", 'DO 0', CONCAT('ALTER USER ', QUOTE(")
                .string(&desired.user, "the user name")?
                .text("), '@', QUOTE(")
                .string(&desired.host, "the host pattern")?
                .text("), ' IDENTIFIED VIA mysql_native_password USING ', QUOTE(")
                .secret(&hash, password_name)?
                .text("), ' OR mysql_native_password USING ', QUOTE(@foobar_previous)))"),
        );
        sql.push_text("PREPARE foobar_alter FROM @foobar_alter");
        sql.push_text("EXECUTE foobar_alter");
        sql.push_text("DEALLOCATE PREPARE foobar_alter");
    }
    if grant_missing {
        sql.push(grant(desired)?);
    }
    plan.changes.push(Change {
        summary: format!("user {who}: {}", what.join("; ")),
        sql,
    });
    Ok(())
}

/// `<prefix>'user'@'host' IDENTIFIED ...`. MariaDB gets the `mysql_native_password` hash
/// (`IDENTIFIED BY PASSWORD '*...'`) because it writes `IDENTIFIED BY '<plain>'` into the
/// binary log verbatim; MySQL rewrites the statement to a hash before logging it.
fn identified(
    prefix: Statement,
    version: &ServerVersion,
    desired: &AccountDesired,
    password_name: &str,
) -> Result<Statement, SqlError> {
    let s = prefix.account(&desired.user, &desired.host)?;
    match version.flavor {
        Flavor::MariaDb => {
            // Checked for NUL before hashing, so the error names the password.
            Statement::new().secret(&desired.password, password_name)?;
            let hash = Secret::new(mysql_native_password_hash(desired.password.expose()));
            s.text(" IDENTIFIED BY PASSWORD ")
                .secret(&hash, password_name)
        }
        Flavor::MySql => s
            .text(" IDENTIFIED WITH ")
            .text(version.auth_plugin())
            .text(" BY ")
            .secret(&desired.password, password_name),
    }
}

/// How a replica should follow its primary.
#[derive(Debug, Clone)]
pub struct ReplicaDesired {
    pub source_host: String,
    pub source_port: u16,
    pub user: String,
    pub password: Secret,
    /// Replicate over TLS, verifying the source's certificate against this CA file (a path
    /// on the replica): `MASTER_SSL=1` / `SOURCE_SSL=1`. `None`: as the server defaults.
    pub ssl_ca: Option<String>,
}

/// What [`replica_changes`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ReplicaAction {
    Unchanged,
    /// Configured as desired, but a thread is stopped without an error that needs a person.
    Start {
        reasons: Vec<String>,
    },
    /// Point the replica at its source (again): `STOP`, `CHANGE ... TO`, `START`.
    /// `stop_first` is false when replication was never configured.
    Configure {
        reasons: Vec<String>,
        stop_first: bool,
    },
    /// Configured as desired but broken in a way foobar will not paper over (an applier
    /// error, the source's binary logs purged): the replica needs reseeding or a person.
    NeedsOperator {
        problems: Vec<String>,
    },
}

/// IO errors that re-configuring fixes: access denied (a stale password), and
/// `caching_sha2_password` refusing to send a password without TLS or the source's key.
const CREDENTIAL_ERRORS: &[u32] = &[1045, 2061];
/// The source no longer has the binary logs the replica needs.
const SOURCE_LOG_GONE: u32 = 1236;

/// Decides what to do on a replica given its live status (`None`: not configured).
pub fn replica_changes(desired: &ReplicaDesired, live: Option<&ReplicaStatus>) -> ReplicaAction {
    let Some(live) = live else {
        return ReplicaAction::Configure {
            reasons: vec!["replication is not configured".into()],
            stop_first: false,
        };
    };
    let mut reasons = Vec::new();
    if !live.source_host.eq_ignore_ascii_case(&desired.source_host) {
        reasons.push(format!(
            "source host is {}, want {}",
            show(&live.source_host),
            desired.source_host
        ));
    }
    if live.source_port != desired.source_port {
        reasons.push(format!(
            "source port is {}, want {}",
            live.source_port, desired.source_port
        ));
    }
    if live.source_user != desired.user {
        reasons.push(format!(
            "replication user is {}, want {}",
            show(&live.source_user),
            desired.user
        ));
    }
    let wanted = Positioning::wanted(live.flavor);
    if live.positioning != wanted {
        reasons.push(format!(
            "positioning is {}, want {wanted}",
            live.positioning
        ));
    }
    if live.get_source_public_key == Some(false) {
        reasons.push("GET_SOURCE_PUBLIC_KEY is off, want on".into());
    }
    if desired.ssl_ca.is_some()
        && live.fields.get("source_ssl_allowed").map(String::as_str) != Some("Yes")
    {
        reasons.push("replication is not over TLS, want SSL=1".into());
    }
    if CREDENTIAL_ERRORS.contains(&live.last_io_errno) {
        reasons.push(format!(
            "IO thread has error {}: {}; re-setting the replication password",
            live.last_io_errno,
            one_line(&live.last_io_error)
        ));
    }
    if !CREDENTIAL_ERRORS.contains(&live.last_io_errno)
        && live.stored_password(&desired.password) == PasswordCheck::Differs
    {
        // The running IO thread logged in before a rotation; it would fail at its next
        // reconnect. Re-pointing now makes the next login use the new password.
        reasons.push(
            "the stored replication password is not the inventory's (rotated): re-pointing with the new one"
                .into(),
        );
    }
    if !reasons.is_empty() {
        return ReplicaAction::Configure {
            reasons,
            stop_first: true,
        };
    }

    let mut problems = Vec::new();
    if live.sql_running != ThreadState::Yes && live.last_sql_errno != 0 {
        problems.push(format!(
            "SQL thread stopped with error {}: {}",
            live.last_sql_errno,
            one_line(&live.last_sql_error)
        ));
    }
    if live.last_io_errno == SOURCE_LOG_GONE {
        problems.push(format!(
            "IO thread stopped with error {}: {}",
            live.last_io_errno,
            one_line(&live.last_io_error)
        ));
    }
    if !problems.is_empty() {
        return ReplicaAction::NeedsOperator { problems };
    }

    let mut reasons = Vec::new();
    if live.io_running == ThreadState::No {
        reasons.push("IO thread is not running".into());
    }
    if live.sql_running == ThreadState::No {
        reasons.push("SQL thread is not running".into());
    }
    if reasons.is_empty() {
        ReplicaAction::Unchanged
    } else {
        ReplicaAction::Start { reasons }
    }
}

impl ReplicaAction {
    /// The statements that carry out this action on a server of `version`.
    pub fn sql(&self, version: &ServerVersion, desired: &ReplicaDesired) -> Result<Sql, SqlError> {
        let dialect = version.dialect();
        let mut sql = Sql::new();
        match self {
            ReplicaAction::Unchanged | ReplicaAction::NeedsOperator { .. } => {}
            ReplicaAction::Start { .. } => sql.push_text(start(dialect)),
            ReplicaAction::Configure { stop_first, .. } => {
                if *stop_first {
                    sql.push_text(stop(dialect));
                }
                sql.push(change_source(version, desired)?);
                sql.push_text(start(dialect));
            }
        }
        Ok(sql)
    }
}

fn stop(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySqlLegacy => "STOP SLAVE",
        Dialect::MySqlModern | Dialect::MariaDb => "STOP REPLICA",
    }
}

fn start(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::MySqlLegacy => "START SLAVE",
        Dialect::MySqlModern | Dialect::MariaDb => "START REPLICA",
    }
}

/// The longest `SOURCE_PASSWORD` / `MASTER_PASSWORD` each server takes. Checked here
/// because MariaDB's error message for a longer one quotes the password's first characters,
/// which a redactor looking for the whole password would not catch.
const MYSQL_MAX_SOURCE_PASSWORD: usize = 32;
const MARIADB_MAX_MASTER_PASSWORD: usize = 96;

fn change_source(version: &ServerVersion, desired: &ReplicaDesired) -> Result<Statement, SqlError> {
    let dialect = version.dialect();
    let max = match dialect {
        Dialect::MariaDb => MARIADB_MAX_MASTER_PASSWORD,
        Dialect::MySqlModern | Dialect::MySqlLegacy => MYSQL_MAX_SOURCE_PASSWORD,
    };
    let len = desired.password.expose().chars().count();
    if len > max {
        return Err(SqlError::TooLong {
            what: "the replication password".into(),
            len,
            max,
            server: format!(
                "{version}'s {}",
                if dialect == Dialect::MySqlModern {
                    "CHANGE REPLICATION SOURCE"
                } else {
                    "CHANGE MASTER"
                }
            ),
        });
    }
    let (head, k) = match dialect {
        Dialect::MySqlModern => ("CHANGE REPLICATION SOURCE TO ", "SOURCE"),
        Dialect::MySqlLegacy | Dialect::MariaDb => ("CHANGE MASTER TO ", "MASTER"),
    };
    let s = Statement::new()
        .text(head)
        .text(&format!("{k}_HOST="))
        .string(&desired.source_host, "the source host")?
        .text(&format!(", {k}_PORT={}, {k}_USER=", desired.source_port))
        .string(&desired.user, "the replication user")?
        .text(&format!(", {k}_PASSWORD="))
        .secret(&desired.password, "the replication password")?;
    let s = match &desired.ssl_ca {
        Some(ca) => s
            .text(&format!(", {k}_SSL=1, {k}_SSL_CA="))
            .string(ca, "the replication CA file")?
            .text(&format!(", {k}_SSL_VERIFY_SERVER_CERT=1")),
        None => s,
    };
    Ok(match dialect {
        Dialect::MariaDb => s.text(", MASTER_USE_GTID=slave_pos"),
        Dialect::MySqlModern => s.text(", SOURCE_AUTO_POSITION=1, GET_SOURCE_PUBLIC_KEY=1"),
        Dialect::MySqlLegacy if version.major >= 8 => {
            s.text(", MASTER_AUTO_POSITION=1, GET_MASTER_PUBLIC_KEY=1")
        }
        Dialect::MySqlLegacy => s.text(", MASTER_AUTO_POSITION=1"),
    })
}

/// `SET GLOBAL read_only` (and `super_read_only` on MySQL, which stops root writing too)
/// when the server is not as wanted. Replicas want `on`, the primary `off`.
/// Not persistent: the server's configuration file must say the same.
pub fn read_only_changes(facts: &DbFacts, on: bool) -> Option<Change> {
    let mysql = facts.version.flavor == Flavor::MySql;
    let current = if mysql && on {
        facts.fully_read_only()
    } else {
        facts.read_only
    };
    if current == on {
        return None;
    }
    let mut sql = Sql::new();
    match (mysql, on) {
        (false, true) => sql.push_text("SET GLOBAL read_only = ON"),
        (false, false) => sql.push_text("SET GLOBAL read_only = OFF"),
        (true, true) => {
            sql.push_text("SET GLOBAL read_only = ON");
            sql.push_text("SET GLOBAL super_read_only = ON");
        }
        (true, false) => {
            sql.push_text("SET GLOBAL super_read_only = OFF");
            sql.push_text("SET GLOBAL read_only = OFF");
        }
    }
    Some(Change {
        summary: format!("set read_only {}", if on { "ON" } else { "OFF" }),
        sql,
    })
}

/// Seeding a replica from its primary's data, in three steps:
///
/// 1. on the replica, [`SeedPlan::prepare`]: stop replication; on MySQL also lift
///    `super_read_only` and clear the GTID history so the dump's `GTID_PURGED` applies;
/// 2. run [`SeedPlan::dump_argv`] on the primary (as root over the socket: no secret on the
///    command line) and pipe its stdout into the replica's client, started with
///    [`SeedPlan::load_client_args`] added (MariaDB: keep the load out of the replica's own
///    binary log, where it would mint local GTIDs; mysqldump's output does that itself);
/// 3. on the replica, gather facts again and run what [`replica_changes`] and
///    [`read_only_changes`] decide, as on any run: the dump already set the GTID position
///    (`gtid_slave_pos` on MariaDB, `GTID_PURGED` on MySQL).
#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub dump_argv: Vec<String>,
    pub load_client_args: Vec<String>,
    pub prepare: Sql,
}

/// The seeding steps for `databases` (every non-system database of the primary, in one
/// consistent dump: `--single-transaction` over all of them). `primary` decides the dump tool's options,
/// `replica` the preparation statements.
pub fn seed_plan(
    primary: &ServerVersion,
    replica: &ServerVersion,
    databases: &[String],
) -> SeedPlan {
    let mut argv: Vec<String> = match primary.flavor {
        // --master-data=1 --gtid: the dump sets MASTER_USE_GTID=slave_pos and gtid_slave_pos.
        Flavor::MariaDb => [
            "mariadb-dump",
            "--single-transaction",
            "--master-data=1",
            "--gtid",
        ]
        .map(String::from)
        .to_vec(),
        // GTID_PURGED carries the position; the coordinates stay a comment (=2) because
        // CHANGE ... SOURCE_LOG_FILE is refused while auto-positioning is on.
        Flavor::MySql => {
            let source_data = if primary.at_least(8, 0, 26) {
                "--source-data=2"
            } else {
                "--master-data=2"
            };
            [
                "mysqldump",
                "--single-transaction",
                source_data,
                "--set-gtid-purged=ON",
            ]
            .map(String::from)
            .to_vec()
        }
    };
    argv.extend(
        [
            "--routines",
            "--triggers",
            "--events",
            "--add-drop-database",
            "--databases",
        ]
        .map(String::from),
    );
    argv.extend(databases.iter().cloned());

    let dialect = replica.dialect();
    let mut prepare = Sql::new();
    prepare.push_text(stop(dialect));
    if replica.flavor == Flavor::MySql {
        prepare.push_text("SET GLOBAL super_read_only = OFF");
        prepare.push_text(if replica.at_least(8, 4, 0) {
            "RESET BINARY LOGS AND GTIDS"
        } else {
            "RESET MASTER"
        });
    }
    let load_client_args = match replica.flavor {
        Flavor::MariaDb => vec!["--init-command=SET SESSION sql_log_bin=0".to_string()],
        Flavor::MySql => Vec::new(),
    };
    SeedPlan {
        dump_argv: argv,
        load_client_args,
        prepare,
    }
}

/// Before reseeding a replica: forget its replication configuration, drop `databases` (its
/// every non-system database) and its own GTID history, all kept out of its binary log
/// (callers run it with `sql_log_bin=0`). The seed that follows brings the primary's data
/// and GTID position.
pub fn reseed_prepare(replica: &ServerVersion, databases: &[String]) -> Result<Sql, SqlError> {
    let dialect = replica.dialect();
    let mut sql = Sql::new();
    sql.push_text(stop(dialect));
    sql.push_text(match dialect {
        Dialect::MySqlLegacy => "RESET SLAVE ALL",
        Dialect::MySqlModern | Dialect::MariaDb => "RESET REPLICA ALL",
    });
    if replica.flavor == Flavor::MySql {
        sql.push_text("SET GLOBAL super_read_only = OFF");
    }
    for d in databases {
        sql.push(
            Statement::new()
                .text("DROP DATABASE IF EXISTS ")
                .identifier(d, "a database name")?,
        );
    }
    sql.push_text(
        if replica.flavor == Flavor::MySql && replica.at_least(8, 4, 0) {
            "RESET BINARY LOGS AND GTIDS"
        } else {
            "RESET MASTER"
        },
    );
    if replica.flavor == Flavor::MariaDb {
        sql.push_text("SET GLOBAL gtid_slave_pos = ''");
    }
    Ok(sql)
}

fn show(value: &str) -> String {
    if value.is_empty() {
        "empty".into()
    } else {
        value.to_string()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::facts::parse_facts;
    use crate::mysql::fixtures::*;
    use crate::mysql::status::parse_replica_status;

    fn status(text: &str) -> ReplicaStatus {
        parse_replica_status(text).unwrap().unwrap()
    }

    fn v(s: &str) -> ServerVersion {
        ServerVersion::parse(s).unwrap()
    }

    fn mariadb_desired() -> ReplicaDesired {
        ReplicaDesired {
            source_host: "127.0.9.1".into(),
            source_port: 3306,
            user: "repl".into(),
            password: Secret::new("repl-secret"),
            ssl_ca: None,
        }
    }

    fn mysql_desired() -> ReplicaDesired {
        ReplicaDesired {
            source_host: "10.0.1.10".into(),
            source_port: 3306,
            ..mariadb_desired()
        }
    }

    #[test]
    fn healthy_replica_is_unchanged() {
        assert_eq!(
            replica_changes(&mariadb_desired(), Some(&status(MARIADB_HEALTHY))),
            ReplicaAction::Unchanged
        );
        assert_eq!(
            replica_changes(&mysql_desired(), Some(&status(MYSQL84_HEALTHY))),
            ReplicaAction::Unchanged
        );
    }

    #[test]
    fn unconfigured_replica_is_configured_without_stop() {
        let action = replica_changes(&mariadb_desired(), None);
        assert_eq!(
            action,
            ReplicaAction::Configure {
                reasons: vec!["replication is not configured".into()],
                stop_first: false
            }
        );
        let sql = action
            .sql(&v("10.11.6-MariaDB"), &mariadb_desired())
            .unwrap();
        assert_eq!(
            sql.masked(),
            "CHANGE MASTER TO MASTER_HOST='127.0.9.1', MASTER_PORT=3306, MASTER_USER='repl', \
             MASTER_PASSWORD='********', MASTER_USE_GTID=slave_pos;\nSTART REPLICA;\n"
        );
        assert!(sql.to_stdin().contains("MASTER_PASSWORD='repl-secret'"));
    }

    #[test]
    fn a_moved_source_is_reconfigured() {
        let desired = ReplicaDesired {
            source_host: "127.0.1.2".into(),
            source_port: 3307,
            ..mariadb_desired()
        };
        let action = replica_changes(&desired, Some(&status(MARIADB_HEALTHY)));
        assert_eq!(
            action,
            ReplicaAction::Configure {
                reasons: vec![
                    "source host is 127.0.9.1, want 127.0.1.2".into(),
                    "source port is 3306, want 3307".into()
                ],
                stop_first: true
            }
        );
        let sql = action.sql(&v("10.11.6-MariaDB"), &desired).unwrap();
        assert_eq!(sql.masked_statements()[0], "STOP REPLICA;");
    }

    #[test]
    fn access_denied_reconfigures_to_reset_the_password() {
        let action = replica_changes(&mariadb_desired(), Some(&status(MARIADB_IO_1045)));
        let ReplicaAction::Configure {
            reasons,
            stop_first: true,
        } = action
        else {
            panic!("{action:?}");
        };
        assert_eq!(reasons.len(), 1);
        assert!(
            reasons[0].starts_with("IO thread has error 1045: error connecting to master"),
            "{}",
            reasons[0]
        );
        assert!(reasons[0].ends_with("re-setting the replication password"));
    }

    #[test]
    fn a_rotated_password_re_points_the_running_replica() {
        use sha2::{Digest, Sha256};
        let digest =
            |pw: &str| hex::encode(Sha256::digest(mysql_native_password_hash(pw).as_bytes()));
        let mut live = status(MARIADB_HEALTHY);
        // Unknown (not readable): left alone, as before.
        assert_eq!(
            replica_changes(&mariadb_desired(), Some(&live)),
            ReplicaAction::Unchanged
        );
        live.stored_password_check = digest("repl-secret");
        assert_eq!(
            replica_changes(&mariadb_desired(), Some(&live)),
            ReplicaAction::Unchanged
        );
        live.stored_password_check = digest("the-old-one");
        let action = replica_changes(&mariadb_desired(), Some(&live));
        let ReplicaAction::Configure {
            reasons,
            stop_first: true,
        } = &action
        else {
            panic!("{action:?}");
        };
        assert_eq!(
            reasons,
            &[
                "the stored replication password is not the inventory's (rotated): re-pointing with the new one"
            ]
        );
        assert!(
            action
                .sql(&v("10.11.6-MariaDB"), &mariadb_desired())
                .unwrap()
                .to_stdin()
                .contains("MASTER_PASSWORD='repl-secret'")
        );
    }

    #[test]
    fn stopped_threads_are_started() {
        let action = replica_changes(&mariadb_desired(), Some(&status(MARIADB_IO_STOPPED)));
        assert_eq!(
            action,
            ReplicaAction::Start {
                reasons: vec!["IO thread is not running".into()]
            }
        );
        assert_eq!(
            action
                .sql(&v("10.11.6-MariaDB"), &mariadb_desired())
                .unwrap()
                .masked(),
            "START REPLICA;\n"
        );
        assert_eq!(
            action
                .sql(&v("5.7.44-log"), &mariadb_desired())
                .unwrap()
                .masked(),
            "START SLAVE;\n"
        );
    }

    #[test]
    fn applier_errors_need_an_operator() {
        let action = replica_changes(&mysql_desired(), Some(&status(MYSQL57_SLAVE)));
        let ReplicaAction::NeedsOperator { problems } = &action else {
            panic!("{action:?}");
        };
        assert!(
            problems[0].starts_with("SQL thread stopped with error 1062: "),
            "{problems:?}"
        );
        assert!(
            action
                .sql(&v("5.7.44"), &mysql_desired())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn wrong_positioning_or_user_is_reconfigured() {
        let text = MARIADB_HEALTHY.replace("Using_Gtid: Slave_Pos", "Using_Gtid: No");
        let desired = ReplicaDesired {
            user: "replicator".into(),
            ..mariadb_desired()
        };
        let ReplicaAction::Configure { reasons, .. } =
            replica_changes(&desired, Some(&status(&text)))
        else {
            panic!()
        };
        assert_eq!(
            reasons,
            vec![
                "replication user is repl, want replicator".to_string(),
                "positioning is binary log file and position, want GTID (slave_pos)".to_string()
            ]
        );
    }

    #[test]
    fn change_source_in_each_dialect() {
        let d = mysql_desired();
        let render = |version: &str| {
            ReplicaAction::Configure {
                reasons: vec![],
                stop_first: true,
            }
            .sql(&v(version), &d)
            .unwrap()
            .masked()
        };
        assert_eq!(
            render("8.4.2"),
            "STOP REPLICA;\nCHANGE REPLICATION SOURCE TO SOURCE_HOST='10.0.1.10', SOURCE_PORT=3306, \
             SOURCE_USER='repl', SOURCE_PASSWORD='********', SOURCE_AUTO_POSITION=1, \
             GET_SOURCE_PUBLIC_KEY=1;\nSTART REPLICA;\n"
        );
        assert_eq!(
            render("8.0.22-0ubuntu0.20.04.3"),
            "STOP SLAVE;\nCHANGE MASTER TO MASTER_HOST='10.0.1.10', MASTER_PORT=3306, \
             MASTER_USER='repl', MASTER_PASSWORD='********', MASTER_AUTO_POSITION=1, \
             GET_MASTER_PUBLIC_KEY=1;\nSTART SLAVE;\n"
        );
        assert_eq!(
            render("5.7.44-log"),
            "STOP SLAVE;\nCHANGE MASTER TO MASTER_HOST='10.0.1.10', MASTER_PORT=3306, \
             MASTER_USER='repl', MASTER_PASSWORD='********', MASTER_AUTO_POSITION=1;\nSTART SLAVE;\n"
        );
    }

    #[test]
    fn replication_over_tls() {
        let d = ReplicaDesired {
            ssl_ca: Some("/etc/mysql/foobar-tls/ca.pem".into()),
            ..mariadb_desired()
        };
        // A healthy replica without TLS is reconfigured...
        let action = replica_changes(&d, Some(&status(MARIADB_HEALTHY)));
        assert!(
            matches!(&action, ReplicaAction::Configure { reasons, .. } if reasons == &["replication is not over TLS, want SSL=1"]),
            "{action:?}"
        );
        // ...with the TLS options in CHANGE MASTER / CHANGE REPLICATION SOURCE.
        let stdin = action.sql(&v("10.11.6-MariaDB"), &d).unwrap().to_stdin();
        assert!(
            stdin.contains(", MASTER_SSL=1, MASTER_SSL_CA='/etc/mysql/foobar-tls/ca.pem', MASTER_SSL_VERIFY_SERVER_CERT=1, MASTER_USE_GTID=slave_pos"),
            "{stdin}"
        );
        let stdin = action.sql(&v("8.4.0"), &d).unwrap().to_stdin();
        assert!(stdin.contains(", SOURCE_SSL=1, SOURCE_SSL_CA='/etc/mysql/foobar-tls/ca.pem', SOURCE_SSL_VERIFY_SERVER_CERT=1"), "{stdin}");
        // Without ssl_ca nothing about TLS is said or wanted.
        let plain = replica_changes(&mariadb_desired(), Some(&status(MARIADB_HEALTHY)));
        assert_eq!(plain, ReplicaAction::Unchanged);
        let stdin = plain.sql(&v("10.11.6-MariaDB"), &mariadb_desired());
        assert!(stdin.map(|s| !s.to_stdin().contains("SSL")).unwrap_or(true));
    }

    #[test]
    fn passwords_are_escaped_and_limited() {
        let d = ReplicaDesired {
            password: Secret::new(r"it's\here"),
            ..mysql_desired()
        };
        let action = replica_changes(&d, None);
        let stdin = action.sql(&v("8.0.36"), &d).unwrap().to_stdin();
        assert!(stdin.contains(r"SOURCE_PASSWORD='it''s\\here'"), "{stdin}");
        let long = ReplicaDesired {
            password: Secret::new("x".repeat(33)),
            ..mysql_desired()
        };
        let e = action.sql(&v("8.0.36"), &long).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the replication password is 33 characters long; MySQL 8.0.36's CHANGE REPLICATION SOURCE accepts at most 32"
        );
        // MariaDB takes longer ones, up to 96.
        assert!(action.sql(&v("10.11.6-MariaDB"), &long).is_ok());
        let longer = ReplicaDesired {
            password: Secret::new("x".repeat(97)),
            ..mysql_desired()
        };
        assert_eq!(
            action
                .sql(&v("10.11.6-MariaDB"), &longer)
                .unwrap_err()
                .to_string(),
            "the replication password is 97 characters long; MariaDB 10.11.6's CHANGE MASTER accepts at most 96"
        );
        let nul = ReplicaDesired {
            password: Secret::new("a\0b"),
            ..mariadb_desired()
        };
        assert!(matches!(
            action.sql(&v("10.11.6-MariaDB"), &nul),
            Err(SqlError::Nul { .. })
        ));
    }

    fn primary_desired(repl_pw: &str, app_pw: &str) -> PrimaryDesired {
        PrimaryDesired {
            replication: AccountDesired {
                user: "repl".into(),
                host: "127.%".into(),
                password: Secret::new(repl_pw),
            },
            app: AccountDesired {
                user: "shop".into(),
                host: "127.%".into(),
                password: Secret::new(app_pw),
            },
            app_database: "shop".into(),
            monitoring: None,
        }
    }

    #[test]
    fn the_monitoring_account_gets_minimal_grants_by_flavor() {
        let facts = parse_facts(FACTS_EMPTY).unwrap();
        let desired = PrimaryDesired {
            monitoring: Some(AccountDesired {
                user: "exporter".into(),
                host: "localhost".into(),
                password: Secret::new("mon-secret"),
            }),
            ..primary_desired("repl-secret", "shop-secret")
        };
        let plan = primary_changes(&desired, &facts, false).unwrap();
        let last = plan.changes.last().unwrap();
        assert_eq!(
            last.summary,
            "user 'exporter'@'localhost': create; grant PROCESS, REPLICATION CLIENT, SLAVE MONITOR and SELECT on performance_schema"
        );
        let sql = last.sql.masked();
        assert!(
            sql.contains(
                "GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'exporter'@'localhost';"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("GRANT SELECT ON performance_schema.* TO 'exporter'@'localhost';"),
            "{sql}"
        );
        assert!(
            !last.sql.to_stdin().contains("mon-secret"),
            "MariaDB gets the hash"
        );
        // Every privilege present (as information_schema names them): no grant.
        let mut granted = facts.clone();
        granted.monitoring_privileges = ["PROCESS", "BINLOG MONITOR", "SLAVE MONITOR"]
            .iter()
            .map(|p| ("*".to_string(), p.to_string()))
            .chain([("performance_schema".into(), "SELECT".into())])
            .collect();
        let plan = primary_changes(&desired, &granted, false).unwrap();
        assert!(
            plan.changes
                .iter()
                .all(|c| !c.summary.contains("grant PROCESS")),
            "{:?}",
            plan.changes.iter().map(|c| &c.summary).collect::<Vec<_>>()
        );
        // A real MariaDB 10.11 that holds the account as desired (password `x`): unchanged.
        let live = parse_facts(FACTS_MONITORING).unwrap();
        let x = PrimaryDesired {
            monitoring: Some(AccountDesired {
                password: Secret::new("x"),
                ..desired.monitoring.clone().unwrap()
            }),
            ..desired.clone()
        };
        let plan = primary_changes(&x, &live, false).unwrap();
        assert!(
            plan.changes.iter().all(|c| !c.summary.contains("exporter")),
            "{:?}",
            plan.changes.iter().map(|c| &c.summary).collect::<Vec<_>>()
        );
        // Without SLAVE MONITOR (MariaDB's REPLICATION CLIENT alone), the grant is re-issued.
        let mut partial = live.clone();
        partial
            .monitoring_privileges
            .retain(|(_, p)| p != "SLAVE MONITOR");
        let plan = primary_changes(&x, &partial, false).unwrap();
        assert_eq!(
            plan.changes.last().unwrap().summary,
            "user 'exporter'@'localhost': grant PROCESS, REPLICATION CLIENT, SLAVE MONITOR and SELECT on performance_schema"
        );
    }

    #[test]
    fn fresh_mariadb_primary_gets_everything() {
        let facts = parse_facts(FACTS_EMPTY).unwrap();
        let plan = primary_changes(
            &primary_desired("repl-secret", "shop-secret"),
            &facts,
            false,
        )
        .unwrap();
        let summaries: Vec<&str> = plan.changes.iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "create database `shop`",
                "user 'repl'@'127.%': create; grant REPLICATION SLAVE",
                "user 'shop'@'127.%': create; grant ALL PRIVILEGES on `shop`",
            ]
        );
        let sql = plan.sql();
        let repl_hash = mysql_native_password_hash("repl-secret");
        assert_eq!(
            sql.masked(),
            "CREATE DATABASE IF NOT EXISTS `shop` CHARACTER SET utf8mb4;\n\
             CREATE USER IF NOT EXISTS 'repl'@'127.%' IDENTIFIED BY PASSWORD '********';\n\
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.%';\n\
             CREATE USER IF NOT EXISTS 'shop'@'127.%' IDENTIFIED BY PASSWORD '********';\n\
             GRANT ALL PRIVILEGES ON `shop`.* TO 'shop'@'127.%';\n"
        );
        let stdin = sql.to_stdin();
        assert!(stdin.contains(&format!("IDENTIFIED BY PASSWORD '{repl_hash}'")));
        assert!(
            !stdin.contains("repl-secret"),
            "MariaDB never sees the plain password"
        );
        assert!(plan.notes.is_empty());
    }

    #[test]
    fn converged_mariadb_primary_has_no_changes() {
        let facts = parse_facts(FACTS_PRIMARY).unwrap();
        let plan = primary_changes(
            &primary_desired("repl-secret", "shop-secret"),
            &facts,
            false,
        )
        .unwrap();
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
        assert!(plan.sql().is_empty());
    }

    #[test]
    fn a_changed_password_is_reset_after_create_if_not_exists() {
        let facts = parse_facts(FACTS_PRIMARY).unwrap();
        let plan =
            primary_changes(&primary_desired("new-secret", "shop-secret"), &facts, false).unwrap();
        assert_eq!(plan.changes.len(), 1);
        assert_eq!(
            plan.changes[0].summary,
            "user 'repl'@'127.%': set the password (it differs)"
        );
        assert_eq!(
            plan.changes[0].sql.masked(),
            "CREATE USER IF NOT EXISTS 'repl'@'127.%' IDENTIFIED BY PASSWORD '********';\n\
             ALTER USER 'repl'@'127.%' IDENTIFIED BY PASSWORD '********';\n"
        );
    }

    #[test]
    fn a_rotated_app_password_keeps_the_previous_one_until_the_next_apply() {
        let facts = parse_facts(FACTS_PRIMARY).unwrap();
        let plan =
            primary_changes(&primary_desired("repl-secret", "shop-new"), &facts, false).unwrap();
        assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
        assert_eq!(
            plan.changes[0].summary,
            "user 'shop'@'127.%': set the password (it differs), keeping the previous one until the next apply (apps restart with the new one first)"
        );
        let masked = plan.changes[0].sql.masked();
        assert!(
            masked.contains(
                "SET @foobar_alter = IF(@foobar_previous = '********', 'DO 0', CONCAT('ALTER USER ', QUOTE('shop'), '@', QUOTE('127.%'), ' IDENTIFIED VIA mysql_native_password USING ', QUOTE('********'), ' OR mysql_native_password USING ', QUOTE(@foobar_previous)));"
            ),
            "{masked}"
        );
        assert!(!masked.contains("ALTER USER 'shop'"), "{masked}");
        let stdin = plan.changes[0].sql.to_stdin();
        assert!(stdin.contains(&mysql_native_password_hash("shop-new")));
        assert!(!stdin.contains("shop-new"));
        // Next apply: the new password is the first; the previous one is retired.
        let mut facts = facts;
        for a in facts.accounts.iter_mut().filter(|a| a.user == "shop") {
            a.alternatives = 1;
        }
        let plan = primary_changes(
            &primary_desired("repl-secret", "shop-secret"),
            &facts,
            false,
        )
        .unwrap();
        assert_eq!(
            plan.changes[0].summary,
            "user 'shop'@'127.%': retire the previous password (kept through the last rotation)"
        );
        assert!(
            plan.changes[0]
                .sql
                .masked()
                .contains("ALTER USER 'shop'@'127.%' IDENTIFIED BY PASSWORD '********';")
        );
    }

    #[test]
    fn mysql_accounts_use_caching_sha2() {
        let facts = parse_facts(FACTS_MYSQL84).unwrap();
        let mut desired = primary_desired("foobar", "shop-secret");
        desired.replication.host = "10.0.1.%".into();
        desired.app.host = "10.0.1.%".into();
        let plan = primary_changes(&desired, &facts, false).unwrap();
        // repl matches (caching_sha2 digest verified); the app user is missing.
        assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
        assert_eq!(
            plan.changes[0].sql.masked(),
            "CREATE USER IF NOT EXISTS 'shop'@'10.0.1.%' IDENTIFIED WITH caching_sha2_password BY '********';\n\
             GRANT ALL PRIVILEGES ON `shop`.* TO 'shop'@'10.0.1.%';\n"
        );
        assert!(plan.sql().to_stdin().contains("BY 'shop-secret'"));
    }

    #[test]
    fn unverifiable_passwords_are_noted_or_forced() {
        let text = FACTS_PRIMARY.replace(
            "account\trepl\t127.%\tmysql_native_password",
            "account\trepl\t127.%\ted25519",
        );
        let facts = parse_facts(&text).unwrap();
        let desired = primary_desired("repl-secret", "shop-secret");
        let plan = primary_changes(&desired, &facts, false).unwrap();
        // ed25519 is not the plugin foobar wants on MariaDB: switching it re-sets the password.
        assert_eq!(
            plan.changes[0].summary,
            "user 'repl'@'127.%': switch from ed25519 to mysql_native_password and set the password"
        );
        let facts = parse_facts(&strip_auth_check(FACTS_PRIMARY)).unwrap();
        let plan = primary_changes(&desired, &facts, false).unwrap();
        assert!(plan.changes.is_empty());
        assert_eq!(
            plan.notes,
            [
                "user 'repl'@'127.%': password not checked (the server reported no hash); it is re-set only when forced"
            ]
        );
        let plan = primary_changes(&desired, &facts, true).unwrap();
        assert_eq!(
            plan.changes[0].summary,
            "user 'repl'@'127.%': set the password (forced; the server reported no hash)"
        );
    }

    /// Empties the repl account's auth check column.
    fn strip_auth_check(text: &str) -> String {
        text.lines()
            .map(|l| {
                if l.starts_with("account\trepl\t") {
                    let mut f: Vec<&str> = l.split('\t').collect();
                    *f.last_mut().unwrap() = "";
                    f.join("\t")
                } else {
                    l.to_string()
                }
            })
            .map(|l| l + "\n")
            .collect()
    }

    #[test]
    fn read_only_follows_the_role() {
        let primary = parse_facts(FACTS_PRIMARY).unwrap();
        assert!(read_only_changes(&primary, false).is_none());
        let c = read_only_changes(&primary, true).unwrap();
        assert_eq!(c.summary, "set read_only ON");
        assert_eq!(c.sql.masked(), "SET GLOBAL read_only = ON;\n");
        let mysql = parse_facts(FACTS_MYSQL84).unwrap();
        assert!(read_only_changes(&mysql, true).is_none());
        let c = read_only_changes(&mysql, false).unwrap();
        assert_eq!(
            c.sql.masked(),
            "SET GLOBAL super_read_only = OFF;\nSET GLOBAL read_only = OFF;\n"
        );
        let text = FACTS_MYSQL84.replace("super_read_only\tON", "super_read_only\tOFF");
        let c = read_only_changes(&parse_facts(&text).unwrap(), true).unwrap();
        assert_eq!(
            c.sql.masked(),
            "SET GLOBAL read_only = ON;\nSET GLOBAL super_read_only = ON;\n"
        );
    }

    #[test]
    fn reseeding_drops_every_given_database_and_the_history() {
        let dbs = ["foobar".to_string(), "foobar_meta".to_string()];
        assert_eq!(
            reseed_prepare(&v("10.11.6-MariaDB"), &dbs)
                .unwrap()
                .masked(),
            "STOP REPLICA;\nRESET REPLICA ALL;\nDROP DATABASE IF EXISTS `foobar`;\n\
             DROP DATABASE IF EXISTS `foobar_meta`;\nRESET MASTER;\nSET GLOBAL gtid_slave_pos = '';\n"
        );
        assert_eq!(
            reseed_prepare(&v("8.4.2"), &dbs[..1]).unwrap().masked(),
            "STOP REPLICA;\nRESET REPLICA ALL;\nSET GLOBAL super_read_only = OFF;\n\
             DROP DATABASE IF EXISTS `foobar`;\nRESET BINARY LOGS AND GTIDS;\n"
        );
    }

    #[test]
    fn seed_plans_per_flavor() {
        let p = seed_plan(
            &v("10.11.6-MariaDB"),
            &v("10.11.6-MariaDB"),
            &["foobar_meta".to_string(), "shop".to_string()],
        );
        assert_eq!(
            p.dump_argv.join(" "),
            "mariadb-dump --single-transaction --master-data=1 --gtid --routines --triggers --events --add-drop-database --databases foobar_meta shop"
        );
        assert_eq!(p.prepare.masked(), "STOP REPLICA;\n");
        assert_eq!(
            p.load_client_args,
            ["--init-command=SET SESSION sql_log_bin=0"]
        );
        let p = seed_plan(&v("8.4.2"), &v("8.4.2"), &["shop".to_string()]);
        assert_eq!(
            p.dump_argv.join(" "),
            "mysqldump --single-transaction --source-data=2 --set-gtid-purged=ON --routines --triggers --events --add-drop-database --databases shop"
        );
        assert_eq!(
            p.prepare.masked(),
            "STOP REPLICA;\nSET GLOBAL super_read_only = OFF;\nRESET BINARY LOGS AND GTIDS;\n"
        );
        let p = seed_plan(&v("8.0.22"), &v("5.7.44-log"), &["shop".to_string()]);
        assert!(p.dump_argv.contains(&"--master-data=2".to_string()));
        assert_eq!(
            p.prepare.masked(),
            "STOP SLAVE;\nSET GLOBAL super_read_only = OFF;\nRESET MASTER;\n"
        );
    }
}
