//! A replica's side: how it should follow its primary ([`ReplicaDesired`]), what its live
//! replication status says to do ([`replica_changes`] → [`ReplicaAction`]) and the
//! statements for it.

use serde::Serialize;

use crate::mysql::output::one_line;
use crate::mysql::password::PasswordCheck;
use crate::mysql::sql::{Sql, SqlError, Statement};
use crate::mysql::status::{Positioning, ReplicaStatus, ThreadState};
use crate::mysql::version::{Dialect, ServerVersion};
use crate::secret::Secret;

/// How a replica should follow its primary.
#[derive(Debug, Clone)]
pub struct ReplicaDesired {
    pub source_host: String,
    pub source_port: u16,
    pub user: String,
    pub password: Secret,
    /// Replicate over TLS, verifying the source's certificate against this CA file (a path
    /// on the replica): `MASTER_SSL=1` / `SOURCE_SSL=1`. `None`: plain, said explicitly,
    /// since replicas differ in their default (MariaDB 11.4 and later require TLS with a
    /// verified certificate unless told otherwise, and fail against a source without TLS).
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
    if desired.ssl_ca.is_none()
        && live.fields.get("source_ssl_allowed").map(String::as_str) == Some("Yes")
    {
        reasons.push(
            "replication requires TLS (the server's default) but `replication_ssl` is off: want SSL=0"
                .into(),
        );
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

pub(super) fn stop(dialect: Dialect) -> &'static str {
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
        None => s.text(&format!(", {k}_SSL=0, {k}_SSL_VERIFY_SERVER_CERT=0")),
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

fn show(value: &str) -> String {
    if value.is_empty() {
        "empty".into()
    } else {
        value.to_string()
    }
}
