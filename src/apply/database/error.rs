//! What can go wrong in the database tier, typed, each with what to do next
//! ([`Diagnostic::hint`]). Text read from a server (its stderr) is redacted where the error is
//! made, so an error never carries a secret.

use crate::error::Diagnostic;
use crate::inventory::HostName;
use crate::mysql::{DirectionError, FlavorError, ParseError, SqlError, VersionError};
use crate::transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("{0}")]
    Version(#[from] VersionError),
    #[error("{0}")]
    Flavor(#[from] FlavorError),
    #[error("{0}")]
    Sql(#[from] SqlError),
    #[error("{0}")]
    Direction(#[from] DirectionError),
    #[error("cannot read the database facts: {0}")]
    Facts(#[from] ParseError),
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("reading database facts failed: {stderr}")]
    Probe { stderr: String },
    #[error("the database server on {0} is not running; check its service and log")]
    NotRunning(HostName),
    /// A replica foobar will not repair on its own.
    #[error(
        "replication needs an operator: {}; foobar will not paper over it: rebuild the replica from the primary with `foobar reseed {host}` (it shows what it drops first), then run apply",
        .problems.join("; ")
    )]
    NeedsOperator {
        host: HostName,
        problems: Vec<String>,
    },
    /// The client ran and the server refused a statement (`stderr` redacted, statements
    /// masked).
    #[error("the database refused:\n{stderr}\nstatements:\n{statements}")]
    Refused { stderr: String, statements: String },
    #[error(
        "cannot seed from {primary}: the database name `{name}` would be read as an option by the dump tool; rename it"
    )]
    OptionLikeName { primary: HostName, name: String },
    #[error("loading the dump into {replica} failed: {output}")]
    Load { replica: HostName, output: String },
    #[error("dumping {databases} on {primary} failed: {stderr}")]
    Dump {
        databases: String,
        primary: HostName,
        stderr: String,
    },
}

impl Diagnostic for DatabaseError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            DatabaseError::Version(e) => return e.hint(),
            DatabaseError::Flavor(e) => return e.hint(),
            DatabaseError::Sql(e) => return e.hint(),
            DatabaseError::Direction(e) => return e.hint(),
            DatabaseError::Facts(e) => e.hint().unwrap_or_else(|| {
                "run the database client as root on the host (`mariadb -e 'SELECT VERSION()'`) to see what it prints".into()
            }),
            DatabaseError::Transport(e) => e.hint().unwrap_or_else(|| {
                "check that the host is up and that `ssh` to it works with the inventory's settings".into()
            }),
            DatabaseError::Probe { .. } => {
                "check that the database client on the host runs as root over the unix socket (`mariadb -e 'SELECT 1'`)".into()
            }
            DatabaseError::NotRunning(host) => format!(
                "`systemctl status` and `journalctl -u` for the database service on {host} say why; `foobar apply` starts it"
            ),
            DatabaseError::NeedsOperator { host, .. } => format!(
                "run `foobar reseed {host} --dry-run` to see what a rebuild drops, then `foobar reseed {host}`"
            ),
            DatabaseError::Refused { .. } => {
                "the server's message above names the cause; fix it (or the inventory's database settings) and apply again; `foobar verify` shows the replication state".into()
            }
            DatabaseError::OptionLikeName { .. } => {
                "rename the database on the primary so its name does not start with `-`".into()
            }
            DatabaseError::Load { replica, .. } => format!(
                "{replica} does not replicate until a seed completes: check its space and the server's log (`journalctl -u`), then seed it again"
            ),
            DatabaseError::Dump { .. } => {
                "check the dump tool (mariadb-dump/mysqldump) and the space on the primary, then apply again".into()
            }
        })
    }
}
