//! Health checks for `foobar verify`: one replica's status, and the cluster as a whole.

use std::collections::BTreeMap;

use serde::Serialize;

use super::facts::{DbFacts, GtidFacts};
use super::output::one_line;
use super::status::{ReplicaStatus, ThreadState};
use super::version::Flavor;

/// One verdict: what was checked, whether it passed, what was seen, what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
    pub hint: Option<String>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            ok: true,
            detail: detail.into(),
            hint: None,
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            name,
            ok: false,
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }
}

/// Checks one replica: `source`, `io_thread`, `sql_thread`, `io_error`, `sql_error`, `lag`,
/// `read_only`. `status` is `None` when replication is not configured; then only `source`
/// (failing) and `read_only` are reported. `read_only` is the replica's live setting (for
/// MySQL pass [`DbFacts::fully_read_only`], which includes `super_read_only`).
pub fn evaluate_replica(
    status: Option<&ReplicaStatus>,
    expected_source_host: &str,
    expected_port: u16,
    max_lag_seconds: u64,
    read_only: bool,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let Some(s) = status else {
        checks.push(Check::fail(
            "source",
            "replication is not configured",
            "run `foobar apply` to point the replica at its primary",
        ));
        checks.push(read_only_check(read_only));
        return checks;
    };
    let want = format!("{expected_source_host}:{expected_port}");
    let have = format!("{}:{}", s.source_host, s.source_port);
    checks.push(
        if s.source_host.eq_ignore_ascii_case(expected_source_host)
            && s.source_port == expected_port
        {
            Check::pass("source", format!("replicating from {have}"))
        } else {
            Check::fail(
                "source",
                format!("replicating from {have}, expected {want}"),
                "run `foobar apply` to re-point the replica",
            )
        },
    );
    checks.push(thread_check(
        "io_thread",
        "IO",
        s.io_running,
        &s.io_state,
        s.last_io_errno,
    ));
    checks.push(thread_check(
        "sql_thread",
        "SQL",
        s.sql_running,
        &s.sql_state,
        s.last_sql_errno,
    ));
    checks.push(if s.last_io_errno == 0 {
        Check::pass("io_error", "no IO error")
    } else {
        Check::fail(
            "io_error",
            format!("error {}: {}", s.last_io_errno, one_line(&s.last_io_error)),
            io_error_hint(s.last_io_errno),
        )
    });
    checks.push(if s.last_sql_errno == 0 {
        Check::pass("sql_error", "no SQL error")
    } else {
        Check::fail(
            "sql_error",
            format!(
                "error {}: {}",
                s.last_sql_errno,
                one_line(&s.last_sql_error)
            ),
            sql_error_hint(s.last_sql_errno),
        )
    });
    checks.push(match s.seconds_behind {
        Some(lag) if lag <= max_lag_seconds => Check::pass(
            "lag",
            format!("{lag}s behind the source (limit {max_lag_seconds}s)"),
        ),
        Some(lag) => Check::fail(
            "lag",
            format!("{lag}s behind the source, more than {max_lag_seconds}s"),
            "the replica is applying slower than the primary writes: check its load, disk and \
             long-running transactions on the primary",
        ),
        None => Check::fail(
            "lag",
            "lag unknown: the replica is not connected or not applying",
            "fix the thread checks above; lag is reported once both threads run",
        ),
    });
    checks.push(read_only_check(read_only));
    checks
}

fn thread_check(
    name: &'static str,
    which: &str,
    state: ThreadState,
    detail: &str,
    errno: u32,
) -> Check {
    let detail = if detail.is_empty() {
        format!("{which} thread: {state}")
    } else {
        format!("{which} thread: {state} ({detail})")
    };
    match state {
        ThreadState::Yes => Check::pass(name, detail),
        ThreadState::Connecting | ThreadState::Preparing if errno == 0 => Check::fail(
            name,
            detail,
            "the replica is still connecting to the source; verify again in a few seconds",
        ),
        ThreadState::Connecting | ThreadState::Preparing => Check::fail(
            name,
            detail,
            "the replica cannot reach or log in to the source: see io_error",
        ),
        ThreadState::No if errno != 0 => Check::fail(
            name,
            detail,
            format!(
                "the thread stopped on an error: see {}",
                if which == "IO" {
                    "io_error"
                } else {
                    "sql_error"
                }
            ),
        ),
        ThreadState::No => Check::fail(
            name,
            detail,
            "replication is stopped: run `foobar apply` to start it",
        ),
    }
}

fn io_error_hint(errno: u32) -> String {
    match errno {
        1045 => "the source refused the replication user's password or host: `foobar apply` re-sets \
                 the password on both sides; if it persists, check that the user's host pattern \
                 covers the replica's address and that no anonymous account (''@'localhost') \
                 shadows it"
            .into(),
        2061 => "caching_sha2_password needs TLS or the source's public key: `foobar apply` sets \
                 GET_SOURCE_PUBLIC_KEY=1"
            .into(),
        2003 | 2005 => "the replica cannot reach the source: check the source's address, that the \
                        server listens on it (bind-address) and the firewall"
            .into(),
        1236 => "the source no longer has the binary logs the replica needs (purged), or GTID \
                 histories diverged: reseed the replica from the primary"
            .into(),
        1593 => "the source and replica have the same server_id or server_uuid: give each server its own".into(),
        _ => "see the error message; `SHOW REPLICA STATUS` on the replica has the details".into(),
    }
}

fn sql_error_hint(errno: u32) -> String {
    match errno {
        1062 | 1032 => {
            "the replica's data has drifted from the primary (a row exists or is missing): \
                       reseed the replica; do not skip transactions"
                .into()
        }
        1146 | 1049 => "a table or database the primary changed does not exist on the replica: \
                       reseed the replica"
            .into(),
        _ => "the replica could not apply a change from the primary: see the error message; \
              reseeding the replica resolves data drift"
            .into(),
    }
}

fn read_only_check(read_only: bool) -> Check {
    if read_only {
        Check::pass("read_only", "the replica is read-only")
    } else {
        Check::fail(
            "read_only",
            "the replica accepts writes",
            "set read_only (and super_read_only on MySQL) in the replica's configuration and \
             run `foobar apply`",
        )
    }
}

/// One server in [`evaluate_cluster`], named as the inventory names it.
#[derive(Debug, Clone, Copy)]
pub struct ClusterMember<'a> {
    pub host: &'a str,
    pub facts: &'a DbFacts,
}

/// Checks across servers: `server_id` (and `server_uuid` on MySQL) unique and non-zero,
/// no `anonymous_accounts`, `binary_log` on the primary, `gtid_mode` ON everywhere on MySQL, `flavor` the same
/// everywhere, `version` no replica older than the primary, `primary_writable`.
pub fn evaluate_cluster(primary: ClusterMember<'_>, replicas: &[ClusterMember<'_>]) -> Vec<Check> {
    let mut checks = Vec::new();
    let all: Vec<ClusterMember<'_>> = std::iter::once(primary)
        .chain(replicas.iter().copied())
        .collect();

    let mut by_id: BTreeMap<u32, Vec<&str>> = BTreeMap::new();
    for m in &all {
        by_id.entry(m.facts.server_id).or_default().push(m.host);
    }
    let clashes: Vec<String> = by_id
        .iter()
        .filter(|(id, hosts)| **id == 0 || hosts.len() > 1)
        .map(|(id, hosts)| format!("server_id {id} on {}", hosts.join(", ")))
        .collect();
    checks.push(if clashes.is_empty() {
        Check::pass(
            "server_id",
            format!("unique: {}", summary(&all, |f| f.server_id.to_string())),
        )
    } else {
        Check::fail(
            "server_id",
            clashes.join("; "),
            "give every server its own non-zero server_id in its configuration and restart it",
        )
    });

    let mut by_uuid: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for m in &all {
        if let Some(u) = &m.facts.server_uuid {
            by_uuid.entry(u.as_str()).or_default().push(m.host);
        }
    }
    let uuid_clashes: Vec<String> = by_uuid
        .iter()
        .filter(|(_, hosts)| hosts.len() > 1)
        .map(|(uuid, hosts)| format!("server_uuid {uuid} on {}", hosts.join(", ")))
        .collect();
    if !uuid_clashes.is_empty() {
        checks.push(Check::fail(
            "server_uuid",
            uuid_clashes.join("; "),
            "the servers were cloned: stop each clone, delete auto.cnf from its data directory and start it",
        ));
    }

    let anonymous: Vec<String> = all
        .iter()
        .flat_map(|m| {
            m.facts
                .anonymous_accounts()
                .map(move |a| format!("''@'{}' on {}", a.host, m.host))
        })
        .collect();
    checks.push(if anonymous.is_empty() {
        Check::pass("anonymous_accounts", "no anonymous accounts")
    } else {
        Check::fail(
            "anonymous_accounts",
            anonymous.join(", "),
            "anonymous accounts shadow named ones connecting from the same host (the replica \
             gets `Access denied for user 'repl'@'localhost'`): drop them, as \
             mariadb-secure-installation / mysql_secure_installation do",
        )
    });

    checks.push(if primary.facts.log_bin {
        Check::pass(
            "binary_log",
            format!("{} writes a binary log", primary.host),
        )
    } else {
        Check::fail(
            "binary_log",
            format!(
                "{} has log_bin OFF: replicas have nothing to read",
                primary.host
            ),
            "enable log_bin in the primary's configuration and restart it",
        )
    });

    let no_gtid: Vec<String> = all
        .iter()
        .filter_map(|m| match &m.facts.gtid {
            GtidFacts::MySql { mode, .. } if mode != "ON" => {
                Some(format!("{} has gtid_mode {mode}", m.host))
            }
            _ => None,
        })
        .collect();
    if all.iter().any(|m| m.facts.version.flavor == Flavor::MySql) {
        checks.push(if no_gtid.is_empty() {
            Check::pass("gtid_mode", "gtid_mode ON everywhere")
        } else {
            Check::fail(
                "gtid_mode",
                no_gtid.join("; "),
                "set gtid_mode=ON and enforce_gtid_consistency=ON in every server's configuration: \
                 foobar replicates with GTID auto-positioning",
            )
        });
    }

    let other_flavor: Vec<String> = replicas
        .iter()
        .filter(|m| m.facts.version.flavor != primary.facts.version.flavor)
        .map(|m| format!("{} runs {}", m.host, m.facts.version))
        .collect();
    checks.push(if other_flavor.is_empty() {
        Check::pass(
            "flavor",
            format!("every server runs {}", primary.facts.version.flavor),
        )
    } else {
        Check::fail(
            "flavor",
            format!(
                "the primary runs {}, but {}",
                primary.facts.version,
                other_flavor.join(", ")
            ),
            "replicate MySQL to MySQL and MariaDB to MariaDB",
        )
    });

    let p = &primary.facts.version;
    let older: Vec<String> = replicas
        .iter()
        .filter(|m| {
            let r = &m.facts.version;
            r.flavor == p.flavor && (r.major, r.minor) < (p.major, p.minor)
        })
        .map(|m| format!("{} runs {}", m.host, m.facts.version))
        .collect();
    checks.push(if older.is_empty() {
        Check::pass("version", summary(&all, |f| f.version.to_string()))
    } else {
        Check::fail(
            "version",
            format!("the primary runs {p}, but {}", older.join(", ")),
            "a replica must run the same or a newer release series than its primary: upgrade the replicas first",
        )
    });

    checks.push(if primary.facts.read_only {
        Check::fail(
            "primary_writable",
            format!("{} is read-only", primary.host),
            "turn read_only off on the primary (`foobar apply` does) and in its configuration",
        )
    } else {
        Check::pass(
            "primary_writable",
            format!("{} accepts writes", primary.host),
        )
    });
    checks
}

fn summary(all: &[ClusterMember<'_>], f: impl Fn(&DbFacts) -> String) -> String {
    all.iter()
        .map(|m| format!("{} {}", m.host, f(m.facts)))
        .collect::<Vec<_>>()
        .join(", ")
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

    fn failing(checks: &[Check]) -> Vec<&'static str> {
        checks.iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn healthy_replica_passes_everything() {
        let checks = evaluate_replica(Some(&status(MARIADB_HEALTHY)), "127.0.9.1", 3306, 30, true);
        let names: Vec<_> = checks.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "source",
                "io_thread",
                "sql_thread",
                "io_error",
                "sql_error",
                "lag",
                "read_only"
            ]
        );
        assert!(failing(&checks).is_empty(), "{checks:#?}");
        assert_eq!(checks[0].detail, "replicating from 127.0.9.1:3306");
        assert_eq!(checks[5].detail, "0s behind the source (limit 30s)");
    }

    #[test]
    fn access_denied_is_explained() {
        let checks = evaluate_replica(Some(&status(MARIADB_IO_1045)), "127.0.9.1", 3306, 30, true);
        assert_eq!(failing(&checks), ["io_thread", "io_error", "lag"]);
        let io = checks.iter().find(|c| c.name == "io_error").unwrap();
        assert!(
            io.detail
                .starts_with("error 1045: error connecting to master"),
            "{}",
            io.detail
        );
        assert!(io.hint.as_deref().unwrap().contains("re-sets the password"));
        let thread = checks.iter().find(|c| c.name == "io_thread").unwrap();
        assert!(thread.detail.starts_with("IO thread: Connecting"));
    }

    #[test]
    fn stopped_io_thread_and_wrong_source() {
        let checks = evaluate_replica(
            Some(&status(MARIADB_IO_STOPPED)),
            "127.0.1.2",
            3306,
            30,
            false,
        );
        assert_eq!(
            failing(&checks),
            ["source", "io_thread", "lag", "read_only"]
        );
        assert_eq!(
            checks[0].detail,
            "replicating from 127.0.9.1:3306, expected 127.0.1.2:3306"
        );
        assert!(checks[1].hint.as_deref().unwrap().contains("foobar apply"));
    }

    #[test]
    fn applier_error_and_lag() {
        let checks = evaluate_replica(Some(&status(MYSQL57_SLAVE)), "10.0.1.10", 3306, 30, true);
        assert_eq!(failing(&checks), ["sql_thread", "sql_error", "lag"]);
        let sql = checks.iter().find(|c| c.name == "sql_error").unwrap();
        assert!(sql.hint.as_deref().unwrap().contains("reseed"));
        let mut lagging = status(MARIADB_HEALTHY);
        lagging.seconds_behind = Some(120);
        let checks = evaluate_replica(Some(&lagging), "127.0.9.1", 3306, 30, true);
        assert_eq!(failing(&checks), ["lag"]);
        assert_eq!(checks[5].detail, "120s behind the source, more than 30s");
    }

    #[test]
    fn unconfigured_replica() {
        let checks = evaluate_replica(None, "127.0.9.1", 3306, 30, true);
        assert_eq!(checks.len(), 2);
        assert_eq!(failing(&checks), ["source"]);
        assert_eq!(checks[0].detail, "replication is not configured");
    }

    #[test]
    fn healthy_mariadb_cluster() {
        let p = parse_facts(FACTS_PRIMARY).unwrap();
        let r = parse_facts(REPLICA).unwrap();
        let checks = evaluate_cluster(
            ClusterMember {
                host: "db-1",
                facts: &p,
            },
            &[ClusterMember {
                host: "db-2",
                facts: &r,
            }],
        );
        assert!(failing(&checks).is_empty(), "{checks:#?}");
        assert_eq!(checks[0].detail, "unique: db-1 1, db-2 2");
        assert!(
            !checks.iter().any(|c| c.name == "gtid_mode"),
            "MariaDB has no gtid_mode"
        );
    }

    #[test]
    fn cluster_problems_are_named() {
        let p = parse_facts(&FACTS_PRIMARY.replace("log_bin\tON", "log_bin\tOFF")).unwrap();
        let r = parse_facts(&REPLICA.replace("server_id\t2", "server_id\t1")).unwrap();
        let m = parse_facts(&FACTS_MYSQL84.replace("gtid_mode\tON", "gtid_mode\tOFF_PERMISSIVE"))
            .unwrap();
        let checks = evaluate_cluster(
            ClusterMember {
                host: "db-1",
                facts: &p,
            },
            &[
                ClusterMember {
                    host: "db-2",
                    facts: &r,
                },
                ClusterMember {
                    host: "db-3",
                    facts: &m,
                },
            ],
        );
        assert_eq!(
            failing(&checks),
            ["server_id", "binary_log", "gtid_mode", "flavor"]
        );
        assert_eq!(checks[0].detail, "server_id 1 on db-1, db-2");
        assert_eq!(
            checks
                .iter()
                .find(|c| c.name == "gtid_mode")
                .unwrap()
                .detail,
            "db-3 has gtid_mode OFF_PERMISSIVE"
        );
    }

    #[test]
    fn older_replicas_and_cloned_uuids() {
        let p = parse_facts(FACTS_MYSQL84).unwrap();
        let mut r = parse_facts(FACTS_MYSQL84).unwrap();
        r.server_id = 3;
        r.version.minor = 0;
        let mut primary = p.clone();
        primary.read_only = false;
        primary.super_read_only = Some(false);
        primary.server_id = 1;
        let checks = evaluate_cluster(
            ClusterMember {
                host: "db-1",
                facts: &primary,
            },
            &[ClusterMember {
                host: "db-2",
                facts: &r,
            }],
        );
        assert_eq!(failing(&checks), ["server_uuid", "version"]);
        assert_eq!(
            checks.iter().find(|c| c.name == "version").unwrap().detail,
            "the primary runs MySQL 8.4.2, but db-2 runs MySQL 8.0.2"
        );
        let checks = evaluate_cluster(
            ClusterMember {
                host: "db-1",
                facts: &p,
            },
            &[],
        );
        assert_eq!(failing(&checks), ["primary_writable"]);
    }
}
