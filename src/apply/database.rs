//! The database tier: read each server's facts, decide what replication and accounts need,
//! and carry it out — accounts on the primary, `CHANGE MASTER/REPLICATION SOURCE` on each
//! replica, seeding a new replica from the primary's data first.
//!
//! Decisions are the [`crate::mysql`] module's (pure); this file only moves SQL and text
//! between hosts. SQL always travels on stdin and the client authenticates over the local
//! unix socket, so no password is ever on a command line. `plan` shows what the facts read
//! at plan time imply; `apply` decides again on facts read right before changing anything
//! (a server the same play just started has no facts at plan time).

use std::time::Duration;

use crate::gather::{database_probe, sh_quote};
use crate::inventory::{DatabaseRole, HostName, Inventory, InventoryError, Secrets};
use crate::mysql::{
    self, AccountDesired, DbFacts, FactsSubject, PrimaryDesired, ReplicaAction, ReplicaDesired, Sql,
};
use crate::plan::{Action, Change, Step};
use crate::secret::Redactor;
use crate::transport::{RemoteCommand, Transport};

/// What the inventory says the database tier should be.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub primary: HostName,
    pub flavor: String,
    pub source_host: String,
    pub port: u16,
    pub replication: AccountDesired,
    pub app: AccountDesired,
    pub app_database: String,
    /// The metrics exporter's account, when the inventory declares the secret
    /// `mysqld_exporter_password` (user `mysqld_exporter_user`, default `exporter`, at
    /// `mysqld_exporter_host_pattern`, default `localhost`: it connects over the socket).
    pub monitoring: Option<AccountDesired>,
    /// With `replication_ssl: true`: the CA file replicas verify the primary against
    /// (installed by the `database certificates` play).
    pub replication_ssl_ca: Option<String>,
}

/// Where the `database certificates` play puts the CA, with `replication_ssl: true`.
pub const REPLICATION_CA_FILE: &str = "/etc/mysql/foobar-tls/ca.pem";

impl DatabaseConfig {
    pub fn subject(&self) -> FactsSubject<'_> {
        FactsSubject {
            replication_user: &self.replication.user,
            app_user: &self.app.user,
            app_database: &self.app_database,
            monitoring: self
                .monitoring
                .as_ref()
                .map(|m| (m.user.as_str(), m.host.as_str())),
        }
    }

    pub fn facts_sql(&self) -> String {
        mysql::facts_sql(&self.subject()).expect("names were checked when the config was built")
    }

    fn primary_desired(&self) -> PrimaryDesired {
        PrimaryDesired {
            replication: self.replication.clone(),
            app: self.app.clone(),
            app_database: self.app_database.clone(),
            monitoring: self.monitoring.clone(),
        }
    }

    pub fn replica_desired(&self) -> ReplicaDesired {
        ReplicaDesired {
            source_host: self.source_host.clone(),
            source_port: self.port,
            user: self.replication.user.clone(),
            password: self.replication.password.clone(),
            ssl_ca: self.replication_ssl_ca.clone(),
        }
    }
}

/// Build the config from the primary's variables and the secrets. `None` when the inventory
/// has no `db_primary` group.
pub fn config(
    inv: &Inventory,
    secrets: &Secrets,
) -> Result<Option<DatabaseConfig>, InventoryError> {
    let Some(primary) = &inv.topology.database_primary else {
        return Ok(None);
    };
    let group = &inv.groups[crate::inventory::topology::DATABASE_PRIMARY];
    let vars = inv.host_vars(primary);
    let missing = |name: &str| InventoryError::Topology {
        location: group.location.clone(),
        message: format!("the database tier needs `{name}`, which is not set for {primary}"),
        hint: format!("define `{name}` under `vars:` in {}", inv.path.display()),
    };
    let text = |name: &str| -> Result<String, InventoryError> {
        match vars.get(name) {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(v) if v.is_number() => Ok(v.to_string()),
            _ => Err(missing(name)),
        }
    };
    let secret = |name: &str| {
        secrets
            .get(name)
            .cloned()
            .ok_or_else(|| InventoryError::Topology {
                location: group.location.clone(),
                message: format!("the database tier needs the secret `{name}`"),
                hint: format!(
                    "add `{name}: {{ env: SOME_VARIABLE }}` under `secrets:` in {}",
                    inv.path.display()
                ),
            })
    };
    let port: u16 = text("mysql_port")
        .unwrap_or_else(|_| "3306".into())
        .parse()
        .map_err(|_| missing("mysql_port"))?;
    let source_host = inv.hosts[primary]
        .private_ip
        .clone()
        .ok_or_else(|| missing("private_ip"))?;
    let config = DatabaseConfig {
        primary: primary.clone(),
        flavor: text("flavor")?,
        source_host,
        port,
        replication: AccountDesired {
            user: text("replication_user")?,
            host: text("replication_host_pattern")?,
            password: secret("replication_password")?,
        },
        app: AccountDesired {
            user: text("app_db_user")?,
            host: text("app_db_host_pattern")?,
            password: secret("app_db_password")?,
        },
        app_database: text("app_db_name")?,
        monitoring: secrets
            .get("mysqld_exporter_password")
            .map(|password| AccountDesired {
                user: text("mysqld_exporter_user").unwrap_or_else(|_| "exporter".into()),
                host: text("mysqld_exporter_host_pattern").unwrap_or_else(|_| "localhost".into()),
                password: password.clone(),
            }),
        replication_ssl_ca: (vars.get("replication_ssl") == Some(&serde_json::Value::Bool(true)))
            .then(|| REPLICATION_CA_FILE.to_string()),
    };
    mysql::facts_sql(&config.subject()).map_err(|e| InventoryError::Topology {
        location: group.location.clone(),
        message: format!("database names are not usable: {e}"),
        hint: "user and database names may not contain NUL bytes".into(),
    })?;
    Ok(Some(config))
}

/// The statements that point a replica at the primary, masked, for a server of the version
/// the inventory names (`flavor`, and `mysql_version` for MySQL, default 8.4): what
/// `foobar render` shows. `apply` picks the statements by the live server's version instead.
pub fn configured_replication_sql(
    cfg: &DatabaseConfig,
    vars: &crate::inventory::Vars,
) -> Result<String, String> {
    let version = match cfg.flavor.as_str() {
        "mariadb" => "10.11.0-MariaDB".to_string(),
        _ => vars
            .get("mysql_version")
            .and_then(|v| v.as_str())
            .unwrap_or("8.4.0")
            .to_string(),
    };
    let version = mysql::ServerVersion::parse(&version).map_err(|e| e.to_string())?;
    let action = ReplicaAction::Configure {
        reasons: vec![],
        stop_first: true,
    };
    let sql = action
        .sql(&version, &cfg.replica_desired())
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "-- How a replica follows {} ({}:{}) on {version}; foobar runs these only when the\n-- live replication status differs.\n{}",
        cfg.primary,
        cfg.source_host,
        cfg.port,
        sql.masked()
    ))
}

/// Facts from the gather output's database section: `Ok(None)` when no server runs.
pub fn parse_probe(text: &str) -> Result<Option<DbFacts>, String> {
    if text.trim_start().starts_with("#down") {
        return Ok(None);
    }
    mysql::parse_facts(text)
        .map(Some)
        .map_err(|e| format!("cannot read the database facts: {e}"))
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
fn needs_operator(problems: &[String], host: &HostName) -> String {
    format!(
        "replication needs an operator: {}; foobar will not paper over it: rebuild the replica from the primary with `foobar reseed {host}` (it shows what it drops first), then run apply",
        problems.join("; ")
    )
}

/// What the plan shows for one database host, from facts read at plan time.
pub fn plan_changes(
    host: &HostName,
    role: DatabaseRole,
    play: usize,
    cfg: &DatabaseConfig,
    facts: Option<&DbFacts>,
    primary_facts: Option<&DbFacts>,
) -> Result<Vec<Change>, String> {
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
    mysql::check_flavor(&cfg.flavor, &facts.version).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    match role {
        DatabaseRole::Primary => {
            let p = mysql::primary_changes(&cfg.primary_desired(), facts, false)
                .map_err(|e| e.to_string())?;
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
                    if needs_seed(&action, facts, primary_facts, cfg) {
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
            if !needs_seed(&action, facts, primary_facts, cfg) {
                let p = mysql::primary_changes(&cfg.primary_desired(), facts, false)
                    .map_err(|e| e.to_string())?;
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
) -> Result<Sql, String> {
    if !adopts_own_history(action, facts) {
        return action
            .sql(&facts.version, desired)
            .map_err(|e| e.to_string());
    }
    let ReplicaAction::Configure { reasons, .. } = action else {
        unreachable!("adopts_own_history is only true for Configure")
    };
    let mut sql = Sql::new();
    sql.push_text("STOP REPLICA");
    sql.push_text("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos");
    sql.extend(
        ReplicaAction::Configure {
            reasons: reasons.clone(),
            stop_first: false,
        }
        .sql(&facts.version, desired)
        .map_err(|e| e.to_string())?,
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
fn needs_seed(
    action: &ReplicaAction,
    facts: &DbFacts,
    primary: Option<&DbFacts>,
    _cfg: &DatabaseConfig,
) -> bool {
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

pub async fn read_facts(
    t: &dyn Transport,
    cfg: &DatabaseConfig,
    timeout: Duration,
) -> Result<Option<DbFacts>, String> {
    let script = database_probe(&cfg.facts_sql());
    let out = t
        .run(&RemoteCommand::script(timeout), Some(script.as_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!(
            "reading database facts failed: {}",
            out.stderr_text().trim()
        ));
    }
    parse_probe(&out.stdout_text())
}

fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run SQL through the host's client, on stdin.
pub(crate) async fn run_sql(
    t: &dyn Transport,
    facts: &DbFacts,
    sql: &Sql,
    extra_args: &[String],
    timeout: Duration,
    redactor: &Redactor,
) -> Result<(), String> {
    let mut line = vec![facts.version.flavor.client_binary().to_string()];
    line.extend(mysql::CLIENT_ARGS.iter().map(|s| s.to_string()));
    line.extend(extra_args.iter().cloned());
    let cmd = RemoteCommand {
        command_line: shell_line(&line),
        timeout,
    };
    let out = t
        .run(&cmd, Some(sql.to_stdin().as_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    if out.success() {
        Ok(())
    } else {
        Err(redactor.redact(&format!(
            "the database refused:\n{}\nstatements:\n{}",
            out.stderr_text().trim(),
            sql.masked()
        )))
    }
}

/// Make one database host match: what was done, or why it failed.
pub async fn reconcile(
    role: DatabaseRole,
    host: &dyn Transport,
    primary: &dyn Transport,
    cfg: &DatabaseConfig,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, String> {
    let mut done = Vec::new();
    let not_running = |h: &HostName| {
        format!("the database server on {h} is not running; check its service and log")
    };
    let facts = read_facts(host, cfg, timeout)
        .await?
        .ok_or_else(|| not_running(host.host()))?;
    mysql::check_flavor(&cfg.flavor, &facts.version).map_err(|e| e.to_string())?;
    match role {
        DatabaseRole::Primary => {
            let plan = mysql::primary_changes(&cfg.primary_desired(), &facts, false)
                .map_err(|e| e.to_string())?;
            let mut sql = plan.sql();
            let mut names: Vec<String> = plan.changes.iter().map(|c| c.summary.clone()).collect();
            if let Some(c) = mysql::read_only_changes(&facts, false) {
                sql.extend(c.sql);
                names.push(c.summary);
            }
            if !sql.is_empty() {
                run_sql(host, &facts, &sql, &[], timeout, redactor).await?;
                done.extend(names.into_iter().map(|n| format!("database {n}")));
            }
        }
        DatabaseRole::Replica => {
            let desired = cfg.replica_desired();
            let mut facts = facts;
            let action = mysql::replica_changes(&desired, facts.replica.as_ref());
            if let ReplicaAction::NeedsOperator { problems } = &action {
                return Err(needs_operator(problems, host.host()));
            }
            let primary_facts = read_facts(primary, cfg, timeout)
                .await?
                .ok_or_else(|| not_running(primary.host()))?;
            if needs_seed(&action, &facts, Some(&primary_facts), cfg) {
                let databases =
                    seed(host, primary, &facts, &primary_facts, timeout, redactor).await?;
                done.push(format!(
                    "database seeded {} from {}",
                    quoted_list(&databases),
                    primary.host()
                ));
                facts = read_facts(host, cfg, timeout)
                    .await?
                    .ok_or_else(|| not_running(host.host()))?;
            }
            let action = mysql::replica_changes(&desired, facts.replica.as_ref());
            let mut sql = replica_sql(&action, &facts, &desired)?;
            let mut names = Vec::new();
            match &action {
                ReplicaAction::Configure { .. } => {
                    names.push(format!("replication configured from {}", primary.host()))
                }
                ReplicaAction::Start { .. } => names.push("replication started".to_string()),
                _ => {}
            }
            if let Some(c) = mysql::read_only_changes(&facts, true) {
                sql.extend(c.sql);
                names.push(c.summary);
            }
            if !sql.is_empty() {
                run_sql(host, &facts, &sql, &[], timeout, redactor).await?;
                done.extend(names.into_iter().map(|n| format!("database {n}")));
            }
            // The app reads from the replica: it needs the accounts, kept out of its own
            // binary log (they are not writes to replicate, and GTID strict mode forbids
            // local transactions a later failover would trip over).
            let accounts = mysql::primary_changes(&cfg.primary_desired(), &facts, false)
                .map_err(|e| e.to_string())?;
            let local: Vec<_> = accounts
                .changes
                .iter()
                .filter(|c| replica_local(&c.summary))
                .collect();
            if !local.is_empty() {
                let mut sql = Sql::new();
                for c in &local {
                    sql.extend(c.sql.clone());
                }
                let no_binlog = ["--init-command=SET SESSION sql_log_bin=0".to_string()];
                run_sql(host, &facts, &sql, &no_binlog, timeout, redactor).await?;
                done.extend(
                    local
                        .iter()
                        .map(|c| format!("database {} (on the replica)", c.summary)),
                );
            }
        }
    }
    Ok(done)
}

/// Stream one consistent dump of every non-system database of the primary (the app's and
/// foobar's own `foobar_meta` alike) into the replica: primary → foobar → replica through a
/// bounded in-memory pipe, never the whole dump at once.
async fn seed(
    replica: &dyn Transport,
    primary: &dyn Transport,
    replica_facts: &DbFacts,
    primary_facts: &DbFacts,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, String> {
    let databases = primary_facts.databases.clone();
    if let Some(odd) = databases.iter().find(|d| d.starts_with('-')) {
        return Err(format!(
            "cannot seed from {}: the database name `{odd}` would be read as an option by the dump tool; rename it",
            primary.host()
        ));
    }
    let plan = mysql::seed_plan(&primary_facts.version, &replica_facts.version, &databases);
    if !plan.prepare.is_empty() {
        run_sql(
            replica,
            replica_facts,
            &plan.prepare,
            &[],
            timeout,
            redactor,
        )
        .await?;
    }
    let mut line = vec![replica_facts.version.flavor.client_binary().to_string()];
    line.extend(mysql::CLIENT_ARGS.iter().map(|s| s.to_string()));
    line.extend(plan.load_client_args.iter().cloned());
    let dump_command = RemoteCommand {
        command_line: shell_line(&plan.dump_argv),
        timeout,
    };
    let load_command = RemoteCommand {
        command_line: shell_line(&line),
        timeout,
    };
    // The pipe's capacity bounds what foobar holds of the dump at any time.
    let (mut into_pipe, mut from_pipe) = tokio::io::duplex(SEED_PIPE_BYTES);
    let dump = async move {
        // Dropping the writing end when the dump ends is the load's end of input.
        primary
            .run_streaming(&dump_command, None, &mut into_pipe)
            .await
    };
    let load = async move {
        let mut printed = Vec::new();
        let out = replica
            .run_streaming(&load_command, Some(&mut from_pipe), &mut printed)
            .await;
        out.map(|mut o| {
            o.stdout = printed;
            o
        })
    };
    let (dump, load) = tokio::join!(dump, load);
    // The load's verdict first: a load that stopped early also breaks the dump's pipe.
    let load = load.map_err(|e| e.to_string())?;
    if !load.success() {
        return Err(redactor.redact(&format!(
            "loading the dump into {} failed: {} {}",
            replica.host(),
            load.stderr_text().trim(),
            load.stdout_text().trim()
        )));
    }
    let dump = dump.map_err(|e| e.to_string())?;
    if !dump.success() {
        return Err(redactor.redact(&format!(
            "dumping {} on {} failed: {}",
            databases.join(", "),
            primary.host(),
            dump.stderr_text().trim()
        )));
    }
    Ok(databases)
}

/// How much of a dump is in flight between the primary and the replica at most.
const SEED_PIPE_BYTES: usize = 256 * 1024;

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
pub fn reseed_plan(replica: &DbFacts, primary: &DbFacts) -> Result<ReseedPlan, String> {
    Ok(ReseedPlan {
        drop: replica.databases.clone(),
        seed: primary.databases.clone(),
        prepare: mysql::reseed_prepare(&replica.version, &replica.databases)
            .map_err(|e| e.to_string())?,
    })
}

/// Rebuild `replica` from `primary`: what [`reseed_plan`] shows, then the usual replica
/// reconciliation (point at the primary, start, read-only, accounts).
pub async fn reseed(
    replica: &dyn Transport,
    primary: &dyn Transport,
    cfg: &DatabaseConfig,
    timeout: Duration,
    redactor: &Redactor,
) -> Result<Vec<String>, String> {
    let not_running = |h: &HostName| {
        format!("the database server on {h} is not running; check its service and log")
    };
    let facts = read_facts(replica, cfg, timeout)
        .await?
        .ok_or_else(|| not_running(replica.host()))?;
    let primary_facts = read_facts(primary, cfg, timeout)
        .await?
        .ok_or_else(|| not_running(primary.host()))?;
    let plan = reseed_plan(&facts, &primary_facts)?;
    let no_binlog = ["--init-command=SET SESSION sql_log_bin=0".to_string()];
    run_sql(
        replica,
        &facts,
        &plan.prepare,
        &no_binlog,
        timeout,
        redactor,
    )
    .await?;
    let mut done = vec![format!(
        "dropped {} and the replication settings",
        if plan.drop.is_empty() {
            "nothing".to_string()
        } else {
            quoted_list(&plan.drop)
        }
    )];
    let facts = read_facts(replica, cfg, timeout)
        .await?
        .ok_or_else(|| not_running(replica.host()))?;
    let seeded = seed(replica, primary, &facts, &primary_facts, timeout, redactor).await?;
    done.push(format!(
        "seeded {} from {}",
        quoted_list(&seeded),
        primary.host()
    ));
    done.extend(
        reconcile(
            DatabaseRole::Replica,
            replica,
            primary,
            cfg,
            timeout,
            redactor,
        )
        .await?,
    );
    Ok(done)
}
