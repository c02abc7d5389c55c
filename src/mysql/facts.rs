//! The facts query: one batch that runs unchanged on every supported server, and its parser.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::output::{ParseError, Record, ResultSet, batch_result_sets, clip};
use super::password::{PasswordCheck, check_password};
use super::sql::{PRELUDE, SqlError, quote_string};
use super::status::{ReplicaStatus, pick_default_channel};
use super::version::{Flavor, ServerVersion};
use crate::secret::Secret;

/// Bumped whenever the shape of [`facts_sql`]'s output changes.
const FORMAT: &str = "1";

/// The server variables the facts query reads. Missing ones (e.g. `gtid_mode` on MariaDB,
/// `gtid_strict_mode` on MySQL) are simply absent from `SHOW GLOBAL VARIABLES`.
const VARIABLES: &[&str] = &[
    "server_id",
    "server_uuid",
    "log_bin",
    "binlog_format",
    "read_only",
    "super_read_only",
    "gtid_mode",
    "enforce_gtid_consistency",
    "gtid_executed",
    "gtid_strict_mode",
    "gtid_domain_id",
    "gtid_current_pos",
    "gtid_slave_pos",
    "gtid_binlog_pos",
    "log_slave_updates",
    "log_replica_updates",
];

/// The privilege columns of `mysql.db` that `GRANT ALL ON db.*` sets, common to MySQL 5.7+
/// and MariaDB 10.5+.
const DB_PRIVILEGE_COLUMNS: &[&str] = &[
    "Select_priv",
    "Insert_priv",
    "Update_priv",
    "Delete_priv",
    "Create_priv",
    "Drop_priv",
    "References_priv",
    "Index_priv",
    "Alter_priv",
    "Create_tmp_table_priv",
    "Lock_tables_priv",
    "Create_view_priv",
    "Show_view_priv",
    "Create_routine_priv",
    "Alter_routine_priv",
    "Execute_priv",
    "Event_priv",
    "Trigger_priv",
];

/// [`DB_PRIVILEGE_COLUMNS`] as `GRANT` names them, in the same order.
const DB_PRIVILEGE_NAMES: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "REFERENCES",
    "INDEX",
    "ALTER",
    "CREATE TEMPORARY TABLES",
    "LOCK TABLES",
    "CREATE VIEW",
    "SHOW VIEW",
    "CREATE ROUTINE",
    "ALTER ROUTINE",
    "EXECUTE",
    "EVENT",
    "TRIGGER",
];

/// The server's own schemas: never dumped, dropped or seeded. Every other database is the
/// user's (and foobar's own `foobar_meta`), and replication touches it.
pub const SYSTEM_SCHEMAS: &[&str] = &["mysql", "information_schema", "performance_schema", "sys"];

/// The names the facts query asks about. None of them is secret.
#[derive(Debug, Clone, Copy)]
pub struct FactsSubject<'a> {
    pub replication_user: &'a str,
    pub app_user: &'a str,
    pub app_database: &'a str,
    /// The metrics exporter's account (`user`, `host`), when monitoring is configured: its
    /// global and schema privileges are read too.
    pub monitoring: Option<(&'a str, &'a str)>,
}

/// The facts batch, for the client's stdin (`mysql --batch`, with column names, no `--raw`).
///
/// It runs unchanged on MySQL 5.7/8.x and MariaDB 10.5+: variables come from
/// `SHOW GLOBAL VARIABLES WHERE ...` (no error for a variable the server lacks), accounts
/// from `mysql.user` (a view on MariaDB 10.4+), and the replica status from a prepared
/// `SHOW SLAVE STATUS` or `SHOW REPLICA STATUS`, chosen in SQL from `VERSION()` because MySQL
/// before 8.0.22 lacks the one and 8.4 the other. The last row is an end marker, so output
/// cut short is an error rather than missing facts.
///
/// Stored password hashes are never printed: see [`super::password`] for the digest printed
/// instead. The replica's stored source password's digest is read on MariaDB from the user
/// variable `@foobar_stored_source_check`, which [`crate::gather::database_probe`] computes
/// on the host from `master.info` (MariaDB's `secure_file_priv` usually forbids `LOAD_FILE`)
/// and sets unlogged; on MySQL it is computed here from `mysql.slave_master_info`.
pub fn facts_sql(subject: &FactsSubject<'_>) -> Result<String, SqlError> {
    // '' as well: anonymous accounts shadow named ones connecting from the same host.
    let mut users = format!(
        "{}, {}, ''",
        quote_string(subject.replication_user).map_err(|_| nul("the replication user name"))?,
        quote_string(subject.app_user).map_err(|_| nul("the app user name"))?
    );
    // The exporter's privileges as information_schema names them (`'user'@'host'`): MariaDB
    // reports `REPLICATION CLIENT` as `BINLOG MONITOR`, so compare names, not columns.
    let privileges_sql = match subject.monitoring {
        None => String::new(),
        Some((user, host)) => {
            let u = quote_string(user).map_err(|_| nul("the monitoring user name"))?;
            let h = quote_string(host).map_err(|_| nul("the monitoring host pattern"))?;
            users.push_str(&format!(", {u}"));
            let grantee = format!("CONCAT('''', {u}, '''@''', {h}, '''')");
            format!(
                "SELECT 'privilege' AS foobar_key, '*' AS scope, PRIVILEGE_TYPE AS privilege \
FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {grantee} UNION ALL \
SELECT 'privilege', TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = {grantee};\n"
            )
        }
    };
    let db = quote_string(subject.app_database).map_err(|_| nul("the app database name"))?;
    // mysql.db stores a name granted with its wildcards escaped (`app\_db`) or not.
    let db_escaped = quote_string(&subject.app_database.replace('_', "\\_").replace('%', "\\%"))
        .map_err(|_| nul("the app database name"))?;
    let app_user = quote_string(subject.app_user).map_err(|_| nul("the app user name"))?;
    let variables = VARIABLES
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let privileges = DB_PRIVILEGE_COLUMNS.join(", ");
    let system = SYSTEM_SCHEMAS
        .iter()
        .map(|v| format!("'{v}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Ok(format!(
        "{PRELUDE}\
SELECT 'format' AS foobar_key, '{FORMAT}' AS foobar_value UNION ALL SELECT 'version', VERSION();
SHOW GLOBAL VARIABLES WHERE Variable_name IN ({variables});
SELECT 'account' AS foobar_key, User AS user, Host AS host, plugin, Repl_slave_priv AS repl_slave_priv, \
CASE plugin \
WHEN 'mysql_native_password' THEN SHA2(authentication_string, 256) \
WHEN 'caching_sha2_password' THEN CONCAT(HEX(LEFT(authentication_string, 27)), ':', SHA2(SUBSTRING(authentication_string, 28), 256)) \
ELSE '' END AS auth_check \
FROM mysql.user WHERE User IN ({users}) ORDER BY User, Host;
SELECT 'database' AS foobar_key, SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {db};
SELECT 'schema' AS foobar_key, SCHEMA_NAME AS name FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ({system}) ORDER BY SCHEMA_NAME;
SET @foobar_source_password = IF(VERSION() LIKE '%MariaDB%', \
'SELECT ''source_password'' AS foobar_key, IFNULL(@foobar_stored_source_check, '''') AS foobar_value', \
'SELECT ''source_password'' AS foobar_key, IFNULL((SELECT SHA2(CONCAT(''*'', UPPER(SHA1(UNHEX(SHA1(User_password))))), 256) FROM mysql.slave_master_info WHERE Channel_name = '''' LIMIT 1), '''') AS foobar_value');
PREPARE foobar_source_password FROM @foobar_source_password;
EXECUTE foobar_source_password;
DEALLOCATE PREPARE foobar_source_password;
SET @foobar_auth_or = IF(VERSION() LIKE '%MariaDB%', \
CONCAT('SELECT ''auth_or'' AS foobar_key, User AS user, Host AS host, IFNULL(JSON_LENGTH(Priv, ''$.auth_or''), 0) AS foobar_value FROM mysql.global_priv WHERE User = ', QUOTE({app_user})), \
'SELECT ''auth_or'' AS foobar_key, '''' AS user, '''' AS host, 0 AS foobar_value FROM DUAL WHERE FALSE');
PREPARE foobar_auth_or FROM @foobar_auth_or;
EXECUTE foobar_auth_or;
DEALLOCATE PREPARE foobar_auth_or;
SELECT 'db_grant' AS foobar_key, User AS user, Host AS host, Db AS db, CONCAT({privileges}) AS privileges \
FROM mysql.db WHERE User = {app_user} AND Db IN ({db}, {db_escaped}) ORDER BY Host, Db;
{privileges_sql}SET @foobar_status = IF(VERSION() LIKE '%MariaDB%' OR INET_ATON(SUBSTRING_INDEX(VERSION(), '-', 1)) < INET_ATON('8.0.22'), 'SHOW SLAVE STATUS', 'SHOW REPLICA STATUS');
PREPARE foobar_status FROM @foobar_status;
EXECUTE foobar_status;
DEALLOCATE PREPARE foobar_status;
SELECT 'end' AS foobar_key, '{FORMAT}' AS foobar_value;
"
    ))
}

fn nul(what: &str) -> SqlError {
    SqlError::Nul { what: what.into() }
}

/// What the facts query found on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbFacts {
    pub version: ServerVersion,
    /// `VERSION()` as printed, e.g. `10.11.6-MariaDB-0+deb12u1-log`.
    pub version_string: String,
    pub server_id: u32,
    /// MySQL only.
    pub server_uuid: Option<String>,
    pub log_bin: bool,
    pub binlog_format: Option<String>,
    pub read_only: bool,
    /// MySQL only.
    pub super_read_only: Option<bool>,
    pub gtid: GtidFacts,
    /// `mysql.user` rows for the replication and app users, every host pattern, and anonymous
    /// accounts (user `''`).
    pub accounts: Vec<AccountFacts>,
    pub app_database_exists: bool,
    /// Every database but [`SYSTEM_SCHEMAS`], by name.
    pub databases: Vec<String>,
    /// `mysql.db` rows for the app user on the app database.
    pub app_grants: Vec<DbGrantFacts>,
    /// The monitoring account's privileges as (scope, privilege): scope `*` for global ones,
    /// else the schema, e.g. (`performance_schema`, `SELECT`).
    pub monitoring_privileges: Vec<(String, String)>,
    /// The default channel's replica status; `None` when replication is not configured.
    pub replica: Option<ReplicaStatus>,
    /// Every variable read, by name.
    pub variables: BTreeMap<String, String>,
}

/// GTID settings and positions, by flavour.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "flavor", rename_all = "lowercase")]
pub enum GtidFacts {
    MySql {
        /// `OFF`, `OFF_PERMISSIVE`, `ON_PERMISSIVE` or `ON`.
        mode: String,
        enforce_consistency: String,
        executed: String,
    },
    MariaDb {
        strict_mode: bool,
        domain_id: u32,
        current_pos: String,
        slave_pos: String,
        binlog_pos: String,
    },
}

/// One `mysql.user` row.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct AccountFacts {
    pub user: String,
    pub host: String,
    pub plugin: String,
    /// `Repl_slave_priv`: the account may replicate from this server.
    pub replication_slave: bool,
    /// A digest of the stored hash; see [`super::password`].
    #[serde(skip)]
    auth_check: String,
    /// MariaDB: how many authentication methods the account accepts besides the first
    /// (`IDENTIFIED VIA … OR …`): a rotation in progress keeps the previous password here.
    pub alternatives: u32,
}

impl std::fmt::Debug for AccountFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountFacts")
            .field("user", &self.user)
            .field("host", &self.host)
            .field("plugin", &self.plugin)
            .field("replication_slave", &self.replication_slave)
            .finish_non_exhaustive()
    }
}

impl AccountFacts {
    /// Whether the stored password is `password`.
    pub fn password_check(&self, password: &Secret) -> PasswordCheck {
        check_password(&self.plugin, &self.auth_check, password)
    }
}

/// One `mysql.db` row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbGrantFacts {
    pub user: String,
    pub host: String,
    pub db: String,
    /// The privileges set on the database, as `GRANT` spells them (`SELECT`, `CREATE
    /// TEMPORARY TABLES`, ...).
    pub privileges: Vec<&'static str>,
}

/// What the app account needs on its database, as `GRANT` spells them: its rows, and
/// `CREATE` for the `CREATE TABLE IF NOT EXISTS` it runs at start. Nothing that drops or
/// alters a table, defines code (routines, triggers, events, views) or locks tables.
pub const APP_PRIVILEGES: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE"];

impl DbFacts {
    /// The `mysql.user` row for `user`@`host` exactly.
    pub fn account(&self, user: &str, host: &str) -> Option<&AccountFacts> {
        self.accounts
            .iter()
            .find(|a| a.user == user && a.host == host)
    }

    /// Anonymous accounts (`''@'localhost'` and the like). A client connecting from a host
    /// they match more specifically than a named account's pattern is taken for them, and
    /// refused: `Access denied for user 'repl'@'localhost'`.
    pub fn anonymous_accounts(&self) -> impl Iterator<Item = &AccountFacts> {
        self.accounts.iter().filter(|a| a.user.is_empty())
    }

    /// The privileges `user`@`host` holds on the app database (every row: the name may be
    /// stored with its wildcards escaped or not).
    pub fn app_privileges(&self, user: &str, host: &str) -> BTreeSet<&'static str> {
        self.app_grants
            .iter()
            .filter(|g| g.user == user && g.host == host)
            .flat_map(|g| g.privileges.iter().copied())
            .collect()
    }

    /// Whether `user`@`host` holds exactly [`APP_PRIVILEGES`] on the app database.
    pub fn app_grant_exact(&self, user: &str, host: &str) -> bool {
        self.app_privileges(user, host) == APP_PRIVILEGES.iter().copied().collect()
    }

    /// `read_only`, and `super_read_only` where the server has it.
    pub fn fully_read_only(&self) -> bool {
        self.read_only && self.super_read_only.unwrap_or(true)
    }
}

/// Reads the output of [`facts_sql`].
pub fn parse_facts(text: &str) -> Result<DbFacts, ParseError> {
    let sets = batch_result_sets(text, |fields| {
        matches!(fields, ["foobar_key", ..] | ["Variable_name", "Value"])
            || fields[0].ends_with("_IO_State")
    })?;
    let mut version: Option<(ServerVersion, String)> = None;
    let mut format_seen = false;
    let mut ended = false;
    let mut variables: BTreeMap<String, (String, usize)> = BTreeMap::new();
    let mut accounts = Vec::new();
    let mut app_database_exists = false;
    let mut databases = Vec::new();
    let mut source_password = String::new();
    let mut auth_or: Vec<(String, String, u32)> = Vec::new();
    let mut app_grants = Vec::new();
    let mut monitoring_privileges = Vec::new();
    let mut status_rows: Vec<Record> = Vec::new();

    for set in sets {
        let ResultSet { columns, rows } = set;
        match columns[0].as_str() {
            "foobar_key" => {
                for row in rows {
                    let key = row.fields[0].value.clone();
                    let value = |name: &str| -> Result<String, ParseError> {
                        row.get(name).map(|f| f.value.clone()).ok_or_else(|| {
                            ParseError::at(
                                row.line,
                                format!("the `{key}` row has no `{name}` column"),
                            )
                        })
                    };
                    match key.as_str() {
                        "format" => {
                            let v = value("foobar_value")?;
                            if v != FORMAT {
                                return Err(ParseError::at(
                                    row.line,
                                    format!("facts format {v}, this foobar reads format {FORMAT}"),
                                ));
                            }
                            format_seen = true;
                        }
                        "version" => {
                            let v = value("foobar_value")?;
                            let parsed = ServerVersion::parse(&v)
                                .map_err(|e| ParseError::at(row.line, e.to_string()))?;
                            version = Some((parsed, v));
                        }
                        "account" => accounts.push(AccountFacts {
                            user: value("user")?,
                            host: value("host")?,
                            plugin: value("plugin")?,
                            replication_slave: value("repl_slave_priv")? == "Y",
                            auth_check: value("auth_check")?,
                            alternatives: 0,
                        }),
                        "auth_or" => {
                            let (user, host) = (value("user")?, value("host")?);
                            let n: u32 = value("foobar_value")?.parse().unwrap_or(0);
                            auth_or.push((user, host, n.saturating_sub(1)));
                        }
                        "database" => app_database_exists = true,
                        "schema" => databases.push(value("name")?),
                        "source_password" => source_password = value("foobar_value")?,
                        "db_grant" => {
                            let privileges = value("privileges")?;
                            app_grants.push(DbGrantFacts {
                                user: value("user")?,
                                host: value("host")?,
                                db: value("db")?,
                                privileges: privileges
                                    .chars()
                                    .zip(DB_PRIVILEGE_NAMES)
                                    .filter(|(flag, _)| *flag == 'Y')
                                    .map(|(_, name)| *name)
                                    .collect(),
                            });
                        }
                        "privilege" => {
                            monitoring_privileges.push((value("scope")?, value("privilege")?))
                        }
                        "end" => ended = true,
                        other => {
                            return Err(ParseError::at(
                                row.line,
                                format!("unknown fact `{}`", clip(other)),
                            ));
                        }
                    }
                }
            }
            "Variable_name" => {
                for row in rows {
                    variables.insert(
                        row.fields[0].value.clone(),
                        (row.fields[1].value.clone(), row.line),
                    );
                }
            }
            _ => status_rows.extend(rows),
        }
    }

    let incomplete = |what: &str| {
        ParseError::at(0, format!("the facts output {what}")).with_hint(
            "the batch stopped early: look at the client's stderr for the failing statement",
        )
    };
    if !format_seen {
        return Err(incomplete("has no format row"));
    }
    if !ended {
        return Err(incomplete("ends before its end marker"));
    }
    let Some((version, version_string)) = version else {
        return Err(incomplete("has no version row"));
    };

    let get = |name: &str| variables.get(name).map(|(v, _)| v.clone());
    let need = |name: &str| -> Result<(String, usize), ParseError> {
        variables
            .get(name)
            .cloned()
            .ok_or_else(|| ParseError::at(0, format!("the server reported no `{name}` variable")))
    };
    let flag = |name: &str| -> Result<Option<bool>, ParseError> {
        let Some((v, line)) = variables.get(name) else {
            return Ok(None);
        };
        parse_flag(v).map(Some).ok_or_else(|| {
            ParseError::at(
                *line,
                format!("{name} is `{}`, expected ON or OFF", clip(v)),
            )
        })
    };
    let (server_id, line) = need("server_id")?;
    let server_id = server_id.parse::<u32>().map_err(|_| {
        ParseError::at(
            line,
            format!("server_id is `{}`, expected a number", clip(&server_id)),
        )
    })?;
    need("log_bin")?;
    need("read_only")?;

    let gtid = match version.flavor {
        Flavor::MySql => GtidFacts::MySql {
            mode: get("gtid_mode").unwrap_or_else(|| "OFF".into()),
            enforce_consistency: get("enforce_gtid_consistency").unwrap_or_else(|| "OFF".into()),
            executed: get("gtid_executed").unwrap_or_default(),
        },
        Flavor::MariaDb => GtidFacts::MariaDb {
            strict_mode: flag("gtid_strict_mode")?.unwrap_or(false),
            domain_id: match variables.get("gtid_domain_id") {
                None => 0,
                Some((v, line)) => v.parse().map_err(|_| {
                    ParseError::at(*line, format!("gtid_domain_id is `{}`", clip(v)))
                })?,
            },
            current_pos: get("gtid_current_pos").unwrap_or_default(),
            slave_pos: get("gtid_slave_pos").unwrap_or_default(),
            binlog_pos: get("gtid_binlog_pos").unwrap_or_default(),
        },
    };

    for (user, host, n) in auth_or {
        if let Some(a) = accounts
            .iter_mut()
            .find(|a: &&mut AccountFacts| a.user == user && a.host == host)
        {
            a.alternatives = n;
        }
    }
    Ok(DbFacts {
        version,
        version_string,
        server_id,
        server_uuid: get("server_uuid").filter(|s| !s.is_empty()),
        log_bin: flag("log_bin")?.unwrap_or(false),
        binlog_format: get("binlog_format"),
        read_only: flag("read_only")?.unwrap_or(false),
        super_read_only: flag("super_read_only")?,
        gtid,
        accounts,
        app_database_exists,
        app_grants,
        monitoring_privileges,
        databases,
        replica: pick_default_channel(status_rows)?.map(|mut r| {
            r.stored_password_check = source_password;
            r
        }),
        variables: variables.into_iter().map(|(k, (v, _))| (k, v)).collect(),
    })
}

fn parse_flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_uppercase().as_str() {
        "ON" | "1" | "YES" | "TRUE" => Some(true),
        "OFF" | "0" | "NO" | "FALSE" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::fixtures::*;
    use crate::mysql::status::ThreadState;

    fn subject() -> FactsSubject<'static> {
        FactsSubject {
            replication_user: "repl",
            app_user: "shop",
            app_database: "shop",
            monitoring: None,
        }
    }

    #[test]
    fn facts_sql_quotes_names_and_lists_everything() {
        let sql = facts_sql(&FactsSubject {
            replication_user: "re'pl",
            app_user: "app",
            app_database: "app_db",
            monitoring: None,
        })
        .unwrap();
        assert!(sql.contains("WHERE User IN ('re''pl', 'app', '')"), "{sql}");
        assert!(sql.contains(r"Db IN ('app_db', 'app\\_db')"), "{sql}");
        assert!(sql.contains("'gtid_strict_mode'"));
        assert!(
            sql.trim_end()
                .ends_with("SELECT 'end' AS foobar_key, '1' AS foobar_value;")
        );
        assert!(
            !sql.contains("authentication_string AS"),
            "hashes are never selected as such"
        );
        let e = facts_sql(&FactsSubject {
            replication_user: "r\0",
            ..subject()
        })
        .unwrap_err();
        assert_eq!(
            e,
            SqlError::Nul {
                what: "the replication user name".into()
            }
        );
    }

    #[test]
    fn reads_the_monitoring_account_and_its_privileges() {
        let sql = facts_sql(&FactsSubject {
            monitoring: Some(("exp'orter", "localhost")),
            ..subject()
        })
        .unwrap();
        assert!(
            sql.contains("WHERE User IN ('repl', 'shop', '', 'exp''orter')"),
            "{sql}"
        );
        assert!(
            sql.contains("GRANTEE = CONCAT('''', 'exp''orter', '''@''', 'localhost', '''')"),
            "{sql}"
        );
        let f = parse_facts(FACTS_MONITORING).unwrap();
        assert_eq!(
            f.monitoring_privileges,
            [
                ("*", "PROCESS"),
                ("*", "BINLOG MONITOR"),
                ("*", "SLAVE MONITOR"),
                ("performance_schema", "SELECT")
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let a = f.account("exporter", "localhost").unwrap();
        assert_eq!(a.password_check(&Secret::new("x")), PasswordCheck::Matches);
    }

    #[test]
    fn reads_a_mariadb_primary() {
        let f = parse_facts(FACTS_PRIMARY).unwrap();
        assert_eq!(f.version.flavor, Flavor::MariaDb);
        assert_eq!(f.version_string, "10.11.19-MariaDB-0+deb12u1-log");
        assert_eq!(f.server_id, 1);
        assert!(f.log_bin);
        assert_eq!(f.binlog_format.as_deref(), Some("ROW"));
        assert!(!f.read_only);
        assert_eq!(f.super_read_only, None);
        assert!(matches!(
            f.gtid,
            GtidFacts::MariaDb {
                strict_mode: false,
                domain_id: 0,
                ..
            }
        ));
        assert!(f.app_database_exists);
        let repl = f.account("repl", "127.%").expect("repl account");
        assert!(repl.replication_slave);
        assert_eq!(repl.plugin, "mysql_native_password");
        assert_eq!(
            repl.password_check(&Secret::new("repl-secret")),
            PasswordCheck::Matches
        );
        assert_eq!(
            repl.password_check(&Secret::new("other")),
            PasswordCheck::Differs
        );
        assert!(f.app_grant_exact("shop", "127.%"));
        assert!(f.replica.is_none());
        assert!(!format!("{repl:?}").contains("auth_check"));
    }

    #[test]
    fn reads_a_mariadb_replica() {
        let f = parse_facts(REPLICA).unwrap();
        assert_eq!(f.server_id, 2);
        assert!(f.read_only);
        assert!(f.fully_read_only());
        let r = f.replica.expect("replica status");
        assert_eq!(r.source_host, "127.0.9.1");
        assert_eq!(r.io_running, ThreadState::Yes);
        assert_eq!(r.seconds_behind, Some(0));
    }

    #[test]
    fn reads_a_mysql_8_4_replica() {
        let f = parse_facts(FACTS_MYSQL84).unwrap();
        assert_eq!(f.version.to_string(), "MySQL 8.4.2");
        assert_eq!(f.super_read_only, Some(true));
        assert!(f.server_uuid.is_some());
        assert!(matches!(&f.gtid, GtidFacts::MySql { mode, .. } if mode == "ON"));
        let repl = f.account("repl", "10.0.1.%").expect("repl account");
        assert_eq!(repl.plugin, "caching_sha2_password");
        assert_eq!(
            repl.password_check(&Secret::new("foobar")),
            PasswordCheck::Matches
        );
        let r = f.replica.expect("replica status");
        assert_eq!(r.flavor, Flavor::MySql);
        assert_eq!(r.source_host, "10.0.1.10");
        // Escaped newlines inside the batch value come back.
        assert_eq!(
            r.gtid_executed.as_deref().map(|g| g.lines().count()),
            Some(2)
        );
    }

    #[test]
    fn truncated_output_is_an_error() {
        let cut: String = FACTS_PRIMARY
            .lines()
            .take_while(|l| !l.starts_with("end\t"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = parse_facts(&cut).unwrap_err();
        assert_eq!(e.to_string(), "the facts output ends before its end marker");
        assert!(e.hint.unwrap().contains("stderr"));
        assert!(
            parse_facts("")
                .unwrap_err()
                .to_string()
                .contains("no format row")
        );
    }

    #[test]
    fn wrong_client_flags_are_explained() {
        let skip_column_names: String = FACTS_PRIMARY
            .lines()
            .filter(|l| !l.starts_with("foobar_key\t") && !l.starts_with("Variable_name\t"))
            .map(|l| format!("{l}\n"))
            .collect();
        let e = parse_facts(&skip_column_names).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.hint.unwrap().contains("--skip-column-names"));
    }

    #[test]
    fn bad_values_name_their_line() {
        let text = FACTS_PRIMARY.replace("server_id\t1", "server_id\tone");
        let e = parse_facts(&text).unwrap_err();
        let line = FACTS_PRIMARY
            .lines()
            .position(|l| l == "server_id\t1")
            .unwrap()
            + 1;
        assert_eq!(e.line, line);
        assert_eq!(e.message, "server_id is `one`, expected a number");
        let text = FACTS_PRIMARY.replace("read_only\tOFF", "read_only\tperhaps");
        assert!(
            parse_facts(&text)
                .unwrap_err()
                .message
                .starts_with("read_only is `perhaps`")
        );
        let text = FACTS_PRIMARY.replace("format\t1", "format\t9");
        assert!(
            parse_facts(&text)
                .unwrap_err()
                .message
                .contains("facts format 9")
        );
        let text = FACTS_PRIMARY.replace("database\tshop", "surprise\tshop");
        assert!(
            parse_facts(&text)
                .unwrap_err()
                .message
                .contains("unknown fact `surprise`")
        );
    }
}
