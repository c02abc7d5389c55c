//! MySQL/MariaDB: flavour detection, facts, replication statements and status, health checks.
//!
//! Pure: nothing here runs a process or touches a file. What comes in is text the caller got
//! by running the `mysql`/`mariadb` client as root over the unix socket with SQL from this
//! module on stdin, using [`CLIENT_ARGS`] (`--batch` output *with* column names, no `--raw`),
//! plus the inventory's desired state. What goes out is typed facts, decisions, [`Sql`]
//! scripts (rendered for stdin with [`Sql::to_stdin`], or masked for humans with
//! [`Sql::masked`] — one value, so the two never disagree) and health [`Check`]s.
//!
//! ```text
//! facts_sql(names) --stdin--> client --stdout--> parse_facts() --> DbFacts { version, variables,
//!                                                                   accounts, replica: Option<ReplicaStatus> }
//! check_flavor(inventory flavor, &facts.version) --> Dialect | FlavorError
//! primary_changes(&PrimaryDesired, &DbFacts, force_password) --> PrimaryPlan { changes: [Change { summary, sql }], notes }
//! replica_changes(&ReplicaDesired, facts.replica.as_ref()) --> ReplicaAction --.sql(version, desired)--> Sql
//! read_only_changes(&DbFacts, on) --> Option<Change>;  seed_plan(..) --> SeedPlan { dump_argv, load_client_args, prepare }
//! evaluate_replica(..) / evaluate_cluster(..) --> Vec<Check>
//! ```
//!
//! Secrets (passwords) enter only as [`crate::secret::Secret`]s and leave only inside
//! [`Sql::to_stdin`]. MariaDB is sent the `mysql_native_password` hash, never the password,
//! because it writes `IDENTIFIED BY '<password>'` verbatim into its binary log. The facts
//! query never prints a stored hash, only a digest of it (see [`mysql_native_password_hash`]
//! and [`PasswordCheck`]).

mod changes;
mod facts;
#[cfg(test)]
pub(crate) mod fixtures;
mod gtid;
mod health;
mod output;
mod password;
mod sql;
mod status;
mod version;

pub use changes::{
    AccountDesired, Change, PrimaryDesired, PrimaryPlan, ReplicaAction, ReplicaDesired, SeedPlan,
    primary_changes, read_only_changes, replica_changes, reseed_prepare, seed_plan,
};
pub use facts::{
    AccountFacts, DbFacts, DbGrantFacts, FactsSubject, GtidFacts, SYSTEM_SCHEMAS, facts_sql,
    parse_facts,
};
pub use gtid::{GtidPosition, further_ahead};
pub use health::{Check, ClusterMember, evaluate_cluster, evaluate_replica};
pub use output::ParseError;
pub use password::{PasswordCheck, mysql_native_password_hash};
pub use sql::{Sql, SqlError, quote_identifier, quote_string};
pub use status::{Positioning, ReplicaStatus, ThreadState, parse_replica_status};
pub use version::{
    Dialect, DirectionError, Flavor, FlavorError, ServerVersion, VersionError, check_direction,
    check_flavor,
};

/// Client options for every script from this module: tab-separated output with a header
/// line per result set and escaped values, in UTF-8. Add the socket (`--socket=...`) and run
/// as root; no password is needed on the command line.
pub const CLIENT_ARGS: &[&str] = &["--batch", "--default-character-set=utf8mb4"];
