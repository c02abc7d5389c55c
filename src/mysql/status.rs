//! `SHOW REPLICA STATUS` / `SHOW SLAVE STATUS`, in either vocabulary, from MariaDB or MySQL.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::output::{Field, ParseError, Record, clip, vertical_records};
use super::version::Flavor;
use crate::secret::MASK;

/// `Slave_IO_Running` / `Replica_IO_Running` / `..._SQL_Running`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ThreadState {
    Yes,
    No,
    Connecting,
    /// MariaDB only: the IO thread is starting.
    Preparing,
}

impl ThreadState {
    fn parse(value: &str) -> Option<Self> {
        Some(match value {
            "Yes" => ThreadState::Yes,
            "No" => ThreadState::No,
            "Connecting" => ThreadState::Connecting,
            "Preparing" => ThreadState::Preparing,
            _ => return None,
        })
    }
}

impl fmt::Display for ThreadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThreadState::Yes => "Yes",
            ThreadState::No => "No",
            ThreadState::Connecting => "Connecting",
            ThreadState::Preparing => "Preparing",
        })
    }
}

/// How the replica finds its place in the source's binary log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Positioning {
    /// Binary log file and offset (`Using_Gtid: No` / `Auto_Position: 0`).
    FilePosition,
    /// MariaDB `MASTER_USE_GTID=slave_pos`: what foobar configures.
    MariaDbSlavePos,
    /// MariaDB `MASTER_USE_GTID=current_pos`.
    MariaDbCurrentPos,
    /// MySQL `SOURCE_AUTO_POSITION=1`: what foobar configures.
    MySqlAutoPosition,
}

impl Positioning {
    /// What foobar configures on `flavor`.
    pub fn wanted(flavor: Flavor) -> Self {
        match flavor {
            Flavor::MariaDb => Positioning::MariaDbSlavePos,
            Flavor::MySql => Positioning::MySqlAutoPosition,
        }
    }
}

impl fmt::Display for Positioning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Positioning::FilePosition => "binary log file and position",
            Positioning::MariaDbSlavePos => "GTID (slave_pos)",
            Positioning::MariaDbCurrentPos => "GTID (current_pos)",
            Positioning::MySqlAutoPosition => "GTID auto-positioning",
        })
    }
}

/// One replication channel's status. Column names are normalised to the `source`/`replica`
/// vocabulary, lower-case (`Seconds_Behind_Master` → `seconds_behind_source`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaStatus {
    /// Which server printed it: MariaDB has `Using_Gtid`, MySQL `Auto_Position`.
    pub flavor: Flavor,
    /// `Channel_Name` (MySQL); empty for the default channel and on MariaDB.
    pub channel: String,
    pub io_state: String,
    pub source_host: String,
    pub source_port: u16,
    pub source_user: String,
    pub io_running: ThreadState,
    pub sql_running: ThreadState,
    /// `Slave_SQL_Running_State` / `Replica_SQL_Running_State`.
    pub sql_state: String,
    pub last_io_errno: u32,
    pub last_io_error: String,
    pub last_sql_errno: u32,
    pub last_sql_error: String,
    /// `None` when the server prints NULL: a thread is stopped or not connected.
    pub seconds_behind: Option<u64>,
    pub positioning: Positioning,
    /// MariaDB `Gtid_IO_Pos`; MySQL `Retrieved_Gtid_Set`.
    pub gtid_io_pos: Option<String>,
    /// MySQL `Executed_Gtid_Set`; MariaDB `Gtid_Slave_Pos` (10.x prints it here too).
    pub gtid_executed: Option<String>,
    pub source_server_id: Option<u32>,
    /// MySQL 8 `Get_Source_public_key` / `Get_master_public_key`.
    pub get_source_public_key: Option<bool>,
    /// Every column by normalised name, for display.
    pub fields: BTreeMap<String, String>,
    /// A digest of the source password the replica has stored (read by the facts query from
    /// MariaDB's `master.info` or MySQL's `mysql.slave_master_info`, hashed like a
    /// `mysql_native_password` account's: see [`super::password`]); empty when unknown.
    #[serde(skip)]
    pub stored_password_check: String,
}

impl ReplicaStatus {
    /// Whether the password the replica logs in with is `password`.
    pub fn stored_password(&self, password: &crate::secret::Secret) -> super::PasswordCheck {
        super::password::check_password(
            "mysql_native_password",
            &self.stored_password_check,
            password,
        )
    }
}

/// Reads `SHOW REPLICA STATUS\G` (or `SHOW SLAVE STATUS\G`) output. Empty output means
/// replication is not configured: `Ok(None)`. With several channels (MySQL multi-source) the
/// default channel is returned, or `None` if only named channels exist.
pub fn parse_replica_status(text: &str) -> Result<Option<ReplicaStatus>, ParseError> {
    let records = vertical_records(text)?;
    pick_default_channel(records)
}

pub(crate) fn pick_default_channel(
    records: Vec<Record>,
) -> Result<Option<ReplicaStatus>, ParseError> {
    let mut found = None;
    for record in records {
        let status = ReplicaStatus::from_record(&record)?;
        if status.channel.is_empty() {
            if found.is_some() {
                return Err(ParseError::at(
                    record.line,
                    "two rows for the default replication channel",
                ));
            }
            found = Some(status);
        }
    }
    Ok(found)
}

/// Masks the quoted value after `PASSWORD`, ` BY ` and ` AS ` (as in `IDENTIFIED BY '...'`,
/// `IDENTIFIED BY PASSWORD '*...'`, `IDENTIFIED WITH plugin AS '...'`, `MASTER_PASSWORD='...'`)
/// in statement text a server quotes in an error message. Errs towards masking too much.
pub(crate) fn scrub_credentials(text: &str) -> String {
    const KEYWORDS: [&str; 3] = ["PASSWORD", " BY ", " AS "];
    let upper = text.to_ascii_uppercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some((k, kw)) = KEYWORDS
        .iter()
        .filter_map(|kw| upper[from..].find(kw).map(|i| (from + i, *kw)))
        .min()
    {
        let mut j = k + kw.len();
        let skip = |j: &mut usize| {
            let start = *j;
            while *j < bytes.len() && matches!(bytes[*j], b' ' | b'=' | b'(') {
                *j += 1;
            }
            *j > start
        };
        // `PASSWORD` must be followed by a separator: `'caching_sha2_password'` is a name.
        let separated = skip(&mut j);
        if upper[j..].starts_with("PASSWORD") {
            j += "PASSWORD".len();
            skip(&mut j);
        }
        if (kw == "PASSWORD" && !separated) || bytes.get(j) != Some(&b'\'') {
            from = k + 1;
            continue;
        }
        let mut end = j + 1;
        loop {
            match bytes.get(end) {
                None => break,
                Some(b'\\') => end += 2,
                Some(b'\'') if bytes.get(end + 1) == Some(&b'\'') => end += 2,
                Some(b'\'') => break,
                Some(_) => end += 1,
            }
        }
        let end = end.min(bytes.len());
        out.push_str(&text[copied..=j]);
        out.push_str(MASK);
        copied = end;
        from = end.max(j + 1);
        if from >= text.len() {
            break;
        }
    }
    out.push_str(&text[copied..]);
    out
}

/// `Slave_IO_Running` → `replica_io_running`, `Master_Host` → `source_host`.
pub(crate) fn normalise_column(name: &str) -> String {
    name.to_ascii_lowercase()
        .replace("master", "source")
        .replace("slave", "replica")
}

impl ReplicaStatus {
    pub(crate) fn from_record(record: &Record) -> Result<Self, ParseError> {
        let mut fields: BTreeMap<String, Field> = BTreeMap::new();
        for f in &record.fields {
            let key = normalise_column(&f.name);
            // Applier errors quote the failing statement, which can be an account statement.
            let value = if key.starts_with("last_") && key.ends_with("_error") {
                scrub_credentials(&f.value)
            } else {
                f.value.clone()
            };
            fields.insert(
                key,
                Field {
                    name: f.name.clone(),
                    value,
                    line: f.line,
                },
            );
        }
        let line = record.line;
        let need = |key: &str| -> Result<&Field, ParseError> {
            fields.get(key).ok_or_else(|| {
                ParseError::at(
                    line,
                    format!("the replica status has no column like `{key}`"),
                )
                .with_hint("pass the full output of SHOW REPLICA STATUS or SHOW SLAVE STATUS")
            })
        };
        let text = |key: &str| -> Result<String, ParseError> { Ok(need(key)?.value.clone()) };
        let optional = |key: &str| -> Option<String> {
            fields
                .get(key)
                .map(|f| f.value.clone())
                .filter(|v| v != "NULL")
        };
        let number = |key: &str| -> Result<u64, ParseError> {
            let f = need(key)?;
            f.value.trim().parse::<u64>().map_err(|_| {
                ParseError::at(
                    f.line,
                    format!("{} is `{}`, expected a number", f.name, clip(&f.value)),
                )
            })
        };
        let thread = |key: &str| -> Result<ThreadState, ParseError> {
            let f = need(key)?;
            ThreadState::parse(f.value.trim()).ok_or_else(|| {
                ParseError::at(
                    f.line,
                    format!(
                        "{} is `{}`, expected Yes, No, Connecting or Preparing",
                        f.name,
                        clip(&f.value)
                    ),
                )
            })
        };

        let flavor = if fields.contains_key("using_gtid") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        };
        let positioning = match (optional("using_gtid"), optional("auto_position")) {
            (Some(u), _) => match u.as_str() {
                "Slave_Pos" => Positioning::MariaDbSlavePos,
                "Current_Pos" => Positioning::MariaDbCurrentPos,
                "No" => Positioning::FilePosition,
                other => {
                    let f = &fields["using_gtid"];
                    return Err(ParseError::at(
                        f.line,
                        format!(
                            "Using_Gtid is `{}`, expected No, Current_Pos or Slave_Pos",
                            clip(other)
                        ),
                    ));
                }
            },
            (None, Some(a)) if a.trim() == "1" => Positioning::MySqlAutoPosition,
            _ => Positioning::FilePosition,
        };
        let seconds_behind = match optional("seconds_behind_source") {
            None => {
                need("seconds_behind_source")?;
                None
            }
            Some(_) => Some(number("seconds_behind_source")?),
        };
        let port = number("source_port")?;
        let source_port = u16::try_from(port).map_err(|_| {
            let f = &fields["source_port"];
            ParseError::at(f.line, format!("{} is {port}, larger than a port", f.name))
        })?;
        let errno = |key: &str| -> Result<u32, ParseError> {
            let n = number(key)?;
            u32::try_from(n)
                .map_err(|_| ParseError::at(fields[key].line, format!("{key} is too large")))
        };

        Ok(Self {
            flavor,
            channel: optional("channel_name").unwrap_or_default(),
            io_state: text("replica_io_state")?,
            source_host: text("source_host")?,
            source_port,
            source_user: text("source_user")?,
            io_running: thread("replica_io_running")?,
            sql_running: thread("replica_sql_running")?,
            sql_state: optional("replica_sql_running_state").unwrap_or_default(),
            last_io_errno: errno("last_io_errno")?,
            last_io_error: text("last_io_error")?,
            last_sql_errno: errno("last_sql_errno")?,
            last_sql_error: text("last_sql_error")?,
            seconds_behind,
            positioning,
            gtid_io_pos: optional("gtid_io_pos")
                .or_else(|| optional("retrieved_gtid_set"))
                .filter(|s| !s.is_empty()),
            gtid_executed: optional("executed_gtid_set")
                .or_else(|| optional("gtid_replica_pos"))
                .filter(|s| !s.is_empty()),
            source_server_id: optional("source_server_id").and_then(|s| s.trim().parse().ok()),
            get_source_public_key: optional("get_source_public_key").map(|s| s.trim() == "1"),
            fields: fields.into_iter().map(|(k, f)| (k, f.value)).collect(),
            stored_password_check: String::new(),
        })
    }

    /// Both threads run.
    pub fn is_running(&self) -> bool {
        self.io_running == ThreadState::Yes && self.sql_running == ThreadState::Yes
    }

    /// A column by its normalised name (`seconds_behind_source`, `replica_sql_running_state`).
    pub fn field(&self, normalised_name: &str) -> Option<&str> {
        self.fields.get(normalised_name).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mysql::fixtures::*;

    fn parse(text: &str) -> ReplicaStatus {
        parse_replica_status(text).unwrap().expect("a status row")
    }

    #[test]
    fn mariadb_healthy_replica() {
        let s = parse(MARIADB_HEALTHY);
        assert_eq!(s.flavor, Flavor::MariaDb);
        assert_eq!(s.source_host, "127.0.9.1");
        assert_eq!(s.source_port, 3306);
        assert_eq!(s.source_user, "repl");
        assert_eq!(s.io_running, ThreadState::Yes);
        assert_eq!(s.sql_running, ThreadState::Yes);
        assert_eq!(s.io_state, "Waiting for master to send event");
        assert_eq!(s.seconds_behind, Some(0));
        assert_eq!(s.positioning, Positioning::MariaDbSlavePos);
        assert_eq!(s.last_io_errno, 0);
        assert_eq!(s.last_io_error, "");
        assert_eq!(s.source_server_id, Some(1));
        assert!(
            s.gtid_io_pos
                .as_deref()
                .is_some_and(|p| p.starts_with("0-1-"))
        );
        assert!(s.is_running());
        assert_eq!(s.channel, "");
        assert_eq!(
            s.field("replica_sql_running_state"),
            Some(s.sql_state.as_str())
        );
    }

    #[test]
    fn mariadb_io_thread_stopped() {
        let s = parse(MARIADB_IO_STOPPED);
        assert_eq!(s.io_running, ThreadState::No);
        assert_eq!(s.sql_running, ThreadState::Yes);
        assert_eq!(s.seconds_behind, None);
        assert_eq!(s.last_io_errno, 0);
        assert!(!s.is_running());
    }

    #[test]
    fn mariadb_io_error_1045() {
        let s = parse(MARIADB_IO_1045);
        assert_eq!(s.io_running, ThreadState::Connecting);
        assert_eq!(s.last_io_errno, 1045);
        assert!(
            s.last_io_error.contains("Access denied for user 'repl'"),
            "{}",
            s.last_io_error
        );
        assert!(
            s.last_io_error
                .starts_with("error connecting to master 'repl@127.0.9.1:3306'")
        );
        assert_eq!(s.seconds_behind, None);
    }

    #[test]
    fn mysql_8_0_healthy_replica() {
        let s = parse(MYSQL80_HEALTHY);
        assert_eq!(s.flavor, Flavor::MySql);
        assert_eq!(s.source_host, "10.0.1.10");
        assert_eq!(s.source_user, "repl");
        assert_eq!(s.io_running, ThreadState::Yes);
        assert_eq!(s.positioning, Positioning::MySqlAutoPosition);
        assert_eq!(s.get_source_public_key, Some(true));
        assert_eq!(s.seconds_behind, Some(0));
        // Executed_Gtid_Set spans two lines in \G output.
        assert_eq!(
            s.gtid_executed.as_deref().map(|g| g.lines().count()),
            Some(2)
        );
        assert_eq!(s.source_server_id, Some(1));
    }

    #[test]
    fn mysql_8_4_healthy_replica() {
        let s = parse(MYSQL84_HEALTHY);
        assert_eq!(s.flavor, Flavor::MySql);
        assert_eq!(s.io_state, "Waiting for source to send event");
        assert_eq!(s.positioning, Positioning::MySqlAutoPosition);
        assert_eq!(s.seconds_behind, Some(2));
        assert!(s.is_running());
    }

    #[test]
    fn mysql_5_7_slave_status() {
        let s = parse(MYSQL57_SLAVE);
        assert_eq!(s.flavor, Flavor::MySql);
        assert_eq!(s.source_host, "10.0.1.10");
        assert_eq!(s.source_port, 3306);
        assert_eq!(s.sql_running, ThreadState::No);
        assert_eq!(s.last_sql_errno, 1062);
        assert!(s.last_sql_error.contains("Duplicate entry"));
        assert_eq!(s.positioning, Positioning::MySqlAutoPosition);
        assert_eq!(s.get_source_public_key, None);
        assert_eq!(s.seconds_behind, None);
    }

    #[test]
    fn empty_output_means_not_configured() {
        assert_eq!(parse_replica_status("").unwrap(), None);
        assert_eq!(parse_replica_status("\n").unwrap(), None);
    }

    #[test]
    fn only_named_channels_is_not_the_default() {
        let text = MYSQL80_HEALTHY.replace("Channel_Name: ", "Channel_Name: analytics");
        assert_eq!(parse_replica_status(&text).unwrap(), None);
        let two = format!("{MYSQL80_HEALTHY}{}", text.replace(" 1. row ", " 2. row "));
        assert!(parse_replica_status(&two).unwrap().is_some());
    }

    #[test]
    fn bad_values_name_their_line() {
        let text = MARIADB_HEALTHY.replace("Slave_IO_Running: Yes", "Slave_IO_Running: Maybe");
        let e = parse_replica_status(&text).unwrap_err();
        let line = MARIADB_HEALTHY
            .lines()
            .position(|l| l.contains("Slave_IO_Running:"))
            .unwrap()
            + 1;
        assert_eq!(e.line, line);
        assert!(e.message.contains("Slave_IO_Running is `Maybe`"), "{e}");
        let text = MARIADB_HEALTHY.replace("Master_Port: 3306", "Master_Port: 99999");
        assert!(
            parse_replica_status(&text)
                .unwrap_err()
                .message
                .contains("larger than a port")
        );
        let cut: String = MARIADB_HEALTHY
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join("\n");
        let e = parse_replica_status(&cut).unwrap_err();
        assert!(e.message.contains("no column like"), "{e}");
    }

    #[test]
    fn applier_errors_do_not_carry_credentials() {
        let s = parse(MARIADB_SQL_1396);
        assert_eq!(s.last_sql_errno, 1396);
        assert!(!s.last_sql_error.contains("*C47E"), "{}", s.last_sql_error);
        // The statement is itself quoted, so its closing quote looks doubled: masked to the end.
        assert!(
            s.last_sql_error
                .ends_with("Query: 'ALTER USER 'shop'@'127.%' IDENTIFIED BY PASSWORD '********"),
            "{}",
            s.last_sql_error
        );
        assert!(!s.field("last_error").unwrap().contains("*C47E"));
        let cases = [
            (
                "ALTER USER 'a'@'%' IDENTIFIED BY 'pw'",
                "ALTER USER 'a'@'%' IDENTIFIED BY '********'",
            ),
            (
                "CREATE USER 'a'@'%' IDENTIFIED WITH mysql_native_password BY 'it''s' X",
                "CREATE USER 'a'@'%' IDENTIFIED WITH mysql_native_password BY '********' X",
            ),
            (
                "x IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$ab\\'c'",
                "x IDENTIFIED WITH 'caching_sha2_password' AS '********'",
            ),
            (
                "CHANGE MASTER TO MASTER_PASSWORD = 'pw', MASTER_USER='r'",
                "CHANGE MASTER TO MASTER_PASSWORD = '********', MASTER_USER='r'",
            ),
            (
                "Access denied for user 'repl'@'localhost' (using password: YES)",
                "Access denied for user 'repl'@'localhost' (using password: YES)",
            ),
            ("IDENTIFIED BY 'unterminated", "IDENTIFIED BY '********"),
            ("ends with PASSWORD", "ends with PASSWORD"),
            (
                "SET PASSWORD = PASSWORD('pw')",
                "SET PASSWORD = PASSWORD('********')",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scrub_credentials(input), want, "{input}");
        }
    }

    #[test]
    fn column_names_normalise_to_one_vocabulary() {
        assert_eq!(
            normalise_column("Seconds_Behind_Master"),
            "seconds_behind_source"
        );
        assert_eq!(normalise_column("Slave_IO_Running"), "replica_io_running");
        assert_eq!(
            normalise_column("Get_master_public_key"),
            "get_source_public_key"
        );
        assert_eq!(
            normalise_column("Replica_SQL_Running_State"),
            "replica_sql_running_state"
        );
    }
}
