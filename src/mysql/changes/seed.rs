//! Copying the primary's data into a replica: the dump, the load and the preparation
//! statements ([`seed_plan`]), and what a reseed drops first ([`reseed_prepare`]).

use super::replica::stop;
use crate::mysql::sql::{Sql, SqlError, Statement};
use crate::mysql::version::{Dialect, Flavor, ServerVersion};

/// Seeding a replica from its primary's data, in three steps:
///
/// 1. on the replica, [`SeedPlan::prepare`]: stop replication; on MySQL also lift
///    `super_read_only` and clear the GTID history so the dump's `GTID_PURGED` applies;
/// 2. run [`SeedPlan::dump_argv`] on the primary (as root over the socket: no secret on the
///    command line) and pipe its stdout into the replica's client, started with
///    [`SeedPlan::load_client_args`] added (MariaDB: keep the load out of the replica's own
///    binary log, where it would mint local GTIDs; mysqldump's output does that itself);
/// 3. on the replica, gather facts again and run what [`super::replica::replica_changes`] and
///    [`super::primary::read_only_changes`] decide, as on any run: the dump already set the GTID position
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
