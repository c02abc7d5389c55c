//! The primary's side: the accounts and database it holds ([`primary_changes`]) and whether
//! it takes writes ([`read_only_changes`], for replicas too).

use super::Change;
use crate::mysql::facts::{APP_PRIVILEGES, DbFacts};
use crate::mysql::password::{PasswordCheck, mysql_native_password_hash};
use crate::mysql::sql::{Sql, SqlError, Statement};
use crate::mysql::version::{Flavor, ServerVersion};
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
    /// Granted [`APP_PRIVILEGES`] on `app_database`, nothing more.
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
    // An anonymous account (`''@'localhost'`) is picked before a named one for a client from
    // the same host: with it the app or the replica may log in as nobody, or be refused. The
    // drop replicates, so replicas lose it too (`IF EXISTS`: one that never had it goes on).
    let anonymous: Vec<_> = facts.anonymous_accounts().collect();
    if !anonymous.is_empty() {
        let mut sql = Sql::new();
        let mut names = Vec::new();
        for a in &anonymous {
            sql.push(
                Statement::new()
                    .text("DROP USER IF EXISTS ")
                    .account(&a.user, &a.host)?,
            );
            names.push(format!("''@'{}'", a.host));
        }
        plan.changes.push(Change {
            summary: format!("drop the anonymous account(s) {}", names.join(", ")),
            sql,
        });
    }
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
    let app_privileges = APP_PRIVILEGES.join(", ");
    let held = facts.app_privileges(&desired.app.user, &desired.app.host);
    let extra: Vec<&str> = held
        .iter()
        .copied()
        .filter(|p| !APP_PRIVILEGES.contains(p))
        .collect();
    let before = plan.changes.len();
    account_change(
        version,
        facts,
        &desired.app,
        "the app password",
        force_password,
        !facts.app_grant_exact(&desired.app.user, &desired.app.host),
        &if extra.is_empty() {
            format!("{app_privileges} on `{database}`")
        } else {
            format!(
                "{app_privileges} on `{database}` only (revoking {})",
                extra.join(", ")
            )
        },
        |a| {
            Statement::new()
                .text(&format!("GRANT {app_privileges} ON "))
                .identifier(database, "the app database name")?
                .text(".* TO ")
                .account(&a.user, &a.host)
        },
        true,
        &mut plan,
    )?;
    // More than the app uses (`GRANT ALL` before): revoke everything on the database after
    // the grant above (so a grant exists to revoke, on a replica too), then grant again.
    if !extra.is_empty() && plan.changes.len() > before {
        let account = |s: Statement| s.account(&desired.app.user, &desired.app.host);
        let revoke = account(
            Statement::new()
                .text("REVOKE ALL PRIVILEGES ON ")
                .identifier(database, "the app database name")?
                .text(".* FROM "),
        )?;
        let grant = account(
            Statement::new()
                .text(&format!("GRANT {app_privileges} ON "))
                .identifier(database, "the app database name")?
                .text(".* TO "),
        )?;
        if let Some(c) = plan.changes.last_mut() {
            c.sql.push(revoke);
            c.sql.push(grant);
        }
    }
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
