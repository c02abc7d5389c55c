//! The database tier: read each server's facts, decide what replication and accounts need,
//! and carry it out — accounts on the primary, `CHANGE MASTER/REPLICATION SOURCE` on each
//! replica, seeding a new replica from the primary's data first.
//!
//! In: the inventory's database settings ([`config`] → [`DatabaseConfig`]) and each server's
//! facts. Out: plan changes ([`plan_changes`]), what `apply`/`reseed` did (lines), or a
//! [`DatabaseError`] with its hint. The parts: [`plan`] (pure decisions from facts: what plan
//! shows, which statements apply runs), [`exec`] (reading facts, running statements,
//! [`reconcile`]), [`seed`] (streaming the primary's data into a replica; `reseed`),
//! [`error`]. Decisions about SQL are the [`crate::mysql`] module's (pure). SQL always travels
//! on stdin and the client authenticates over the local unix socket, so no password is ever on
//! a command line. `plan` shows what the facts read at plan time imply; `apply` decides again
//! on facts read right before changing anything (a server the same play just started has no
//! facts at plan time).

pub mod error;
pub mod exec;
pub mod plan;
pub mod seed;

pub use error::DatabaseError;
pub use exec::{read_facts, read_running, reconcile};
pub use plan::{ReseedPlan, parse_probe, plan_changes, reseed_plan};
pub use seed::reseed;

use crate::inventory::{HostName, Inventory, InventoryError, Secrets};
use crate::mysql::{
    self, AccountDesired, FactsSubject, PrimaryDesired, ReplicaAction, ReplicaDesired,
};

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

    pub(crate) fn primary_desired(&self) -> PrimaryDesired {
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

/// MySQL replication without TLS is refused before anything connects: a MySQL 8 replica
/// (`caching_sha2_password`, `GET_SOURCE_PUBLIC_KEY=1`, no `SOURCE_SSL`) encrypts the
/// replication password to whatever RSA key the peer sends, so a man in the middle on the
/// private network reads it, and every row change then crosses in clear. MariaDB's
/// `mysql_native_password` never sends the password; its stream is still clear, which
/// `audit` reports.
pub fn refuse_replication_in_clear(inv: &Inventory) -> Result<(), InventoryError> {
    if inv.topology.database_primary.is_none() {
        return Ok(());
    }
    for replica in &inv.topology.database_replicas {
        let vars = inv.host_vars(replica);
        let mysql = vars.get("flavor").and_then(serde_json::Value::as_str) == Some("mysql");
        let tls = vars.get("replication_ssl") == Some(&serde_json::Value::Bool(true));
        if mysql && !tls {
            let group = &inv.groups[crate::inventory::topology::DATABASE_REPLICAS];
            return Err(InventoryError::Topology {
                location: group.location.clone(),
                message: format!(
                    "MySQL replication to {replica} would run without TLS: the replica sends the replication password encrypted to whatever key the peer presents (GET_SOURCE_PUBLIC_KEY), and every row change in clear"
                ),
                hint: format!(
                    "set `replication_ssl: true` under vars in {} with the secrets `db_tls_ca`, `db_tls_cert` and `db_tls_key` (a certificate naming every database host's private_ip); `foobar render` still works meanwhile",
                    inv.path.display()
                ),
            });
        }
    }
    Ok(())
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

/// The statements that point a replica at the primary, with the password the configuration
/// holds (`foobar render`'s placeholder `<secret:replication_password>`, or the real one with
/// `--with-secrets`), for a server of the version the inventory names (`flavor`, and `mysql_version` for MySQL, default 8.4): what
/// `foobar render` shows. `apply` picks the statements by the live server's version instead.
pub fn configured_replication_sql(
    cfg: &DatabaseConfig,
    vars: &crate::inventory::Vars,
) -> Result<String, DatabaseError> {
    let version = match cfg.flavor.as_str() {
        "mariadb" => "10.11.0-MariaDB".to_string(),
        _ => vars
            .get("mysql_version")
            .and_then(|v| v.as_str())
            .unwrap_or("8.4.0")
            .to_string(),
    };
    let version = mysql::ServerVersion::parse(&version)?;
    let action = ReplicaAction::Configure {
        reasons: vec![],
        stop_first: true,
    };
    let sql = action.sql(&version, &cfg.replica_desired())?;
    Ok(format!(
        "-- How a replica follows {} ({}:{}) on {version}; foobar runs these only when the\n-- live replication status differs.\n{}",
        cfg.primary,
        cfg.source_host,
        cfg.port,
        sql.with_values()
    ))
}
