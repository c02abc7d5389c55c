//! What to change, decided from facts, and the statements that change it. In: the desired
//! state and a server's [`DbFacts`]/[`ReplicaStatus`]; out: [`Change`]s and [`Sql`]. The
//! parts: [`primary`] (accounts, the database, read-only), [`replica`] (following the
//! primary), [`seed`] (copying the primary's data into a replica).

mod primary;
mod replica;
mod seed;

pub use primary::{
    AccountDesired, PrimaryDesired, PrimaryPlan, primary_changes, read_only_changes,
};
pub use replica::{ReplicaAction, ReplicaDesired, replica_changes};
pub use seed::{SeedPlan, reseed_prepare, seed_plan};

use crate::mysql::sql::Sql;

/// One change: a line for the plan and the statements that make it.
#[derive(Debug, Clone)]
pub struct Change {
    pub summary: String,
    pub sql: Sql,
}

#[cfg(test)]
mod tests {
    use super::primary::*;
    use super::replica::*;
    use super::seed::*;

    use crate::mysql::facts::parse_facts;
    use crate::mysql::fixtures::*;
    use crate::mysql::password::mysql_native_password_hash;
    use crate::mysql::sql::SqlError;
    use crate::mysql::status::ReplicaStatus;
    use crate::mysql::status::parse_replica_status;
    use crate::mysql::version::ServerVersion;
    use crate::secret::Secret;

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
             MASTER_PASSWORD='********', MASTER_SSL=0, MASTER_SSL_VERIFY_SERVER_CERT=0, \
             MASTER_USE_GTID=slave_pos;\nSTART REPLICA;\n"
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
             SOURCE_USER='repl', SOURCE_PASSWORD='********', SOURCE_SSL=0, \
             SOURCE_SSL_VERIFY_SERVER_CERT=0, SOURCE_AUTO_POSITION=1, \
             GET_SOURCE_PUBLIC_KEY=1;\nSTART REPLICA;\n"
        );
        assert_eq!(
            render("8.0.22-0ubuntu0.20.04.3"),
            "STOP SLAVE;\nCHANGE MASTER TO MASTER_HOST='10.0.1.10', MASTER_PORT=3306, \
             MASTER_USER='repl', MASTER_PASSWORD='********', MASTER_SSL=0, \
             MASTER_SSL_VERIFY_SERVER_CERT=0, MASTER_AUTO_POSITION=1, GET_MASTER_PUBLIC_KEY=1;\nSTART SLAVE;\n"
        );
        assert_eq!(
            render("5.7.44-log"),
            "STOP SLAVE;\nCHANGE MASTER TO MASTER_HOST='10.0.1.10', MASTER_PORT=3306, \
             MASTER_USER='repl', MASTER_PASSWORD='********', MASTER_SSL=0, \
             MASTER_SSL_VERIFY_SERVER_CERT=0, MASTER_AUTO_POSITION=1;\nSTART SLAVE;\n"
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
        // Without SLAVE MONITOR (MariaDB's REPLICATION CLIENT alone), the grant is sent again.
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
                "drop the anonymous account(s) ''@'localhost', ''@'vm'",
                "create database `shop`",
                "user 'repl'@'127.%': create; grant REPLICATION SLAVE",
                "user 'shop'@'127.%': create; grant SELECT, INSERT, UPDATE, DELETE, CREATE on `shop`",
            ]
        );
        let sql = plan.sql();
        let repl_hash = mysql_native_password_hash("repl-secret");
        assert_eq!(
            sql.masked(),
            "DROP USER IF EXISTS ''@'localhost';\n\
             DROP USER IF EXISTS ''@'vm';\n\
             CREATE DATABASE IF NOT EXISTS `shop` CHARACTER SET utf8mb4;\n\
             CREATE USER IF NOT EXISTS 'repl'@'127.%' IDENTIFIED BY PASSWORD '********';\n\
             GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.%';\n\
             CREATE USER IF NOT EXISTS 'shop'@'127.%' IDENTIFIED BY PASSWORD '********';\n\
             GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `shop`.* TO 'shop'@'127.%';\n"
        );
        let stdin = sql.to_stdin();
        assert!(stdin.contains(&format!("IDENTIFIED BY PASSWORD '{repl_hash}'")));
        assert!(
            !stdin.contains("repl-secret"),
            "MariaDB never sees the plain password"
        );
        assert!(plan.notes.is_empty());
    }

    /// An app account with `GRANT ALL` (what earlier versions gave) keeps only what the app
    /// uses: granted, everything on the database revoked, granted again.
    #[test]
    fn the_app_account_loses_privileges_it_does_not_use() {
        let text = FACTS_PRIMARY.replace("YYYYYNNNNNNNNNNNNN", "YYYYYYYYYYYYYYYYYY");
        assert_ne!(text, FACTS_PRIMARY, "the fixture's grant row moved");
        let facts = parse_facts(&text).unwrap();
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
                "user 'shop'@'127.%': grant SELECT, INSERT, UPDATE, DELETE, CREATE on `shop` only (revoking ALTER, ALTER ROUTINE, CREATE ROUTINE, CREATE TEMPORARY TABLES, CREATE VIEW, DROP, EVENT, EXECUTE, INDEX, LOCK TABLES, REFERENCES, SHOW VIEW, TRIGGER)"
            ]
        );
        assert_eq!(
            plan.sql().masked(),
            "CREATE USER IF NOT EXISTS 'shop'@'127.%' IDENTIFIED BY PASSWORD '********';\n\
             GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `shop`.* TO 'shop'@'127.%';\n\
             REVOKE ALL PRIVILEGES ON `shop`.* FROM 'shop'@'127.%';\n\
             GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `shop`.* TO 'shop'@'127.%';\n"
        );
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
             GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `shop`.* TO 'shop'@'10.0.1.%';\n"
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
