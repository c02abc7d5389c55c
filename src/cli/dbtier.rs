//! Shared by the database tier's day-2 commands (`reseed`, `failover`): the inventory's
//! database settings, one connection per host, the host lock every foobar run takes, and
//! confirmation. Bad input and a lock held by another run are errors (exit 1) before
//! anything changes.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::Duration;

use super::{CliError, Common};
use crate::apply::{self, database};
use crate::error::Diagnostic;
use crate::inventory::{self, HostName, Inventory, Secrets};
use crate::mysql::DbFacts;
use crate::remote::layout::HOLDER;
use crate::remote::lock::LOCKED_MARK;
use crate::secret::Redactor;
use crate::transport::{self, RemoteCommand, Transport};

/// `println!` and `eprintln!` through the redacting choke point (`say!`/`warn!`).
macro_rules! sayln {
    ($($arg:tt)*) => { $crate::say!("{}\n", format!($($arg)*)) };
}
macro_rules! warnln {
    ($($arg:tt)*) => { $crate::warn!("{}\n", format!($($arg)*)) };
}
pub(super) use {sayln, warnln};

pub(super) struct Tier {
    pub inventory: Inventory,
    pub cfg: database::DatabaseConfig,
    pub redactor: Redactor,
    pub timeout: Duration,
    pub run_id: String,
    pub holder: String,
}

pub(super) fn load(common: &Common, what: &str) -> Result<Tier, CliError> {
    let inventory = inventory::load_stack_inventory(&common.inventory, &common.playbook)?;
    let secrets: Secrets = inventory::resolve_secrets(&inventory)?;
    database::refuse_replication_in_clear(&inventory)?;
    let Some(cfg) = database::config(&inventory, &secrets)? else {
        return Err(CliError::Usage {
            message: format!(
                "{what} needs a database tier, and {} has no `db_primary` group",
                inventory.path.display()
            ),
            hint: "add groups db_primary (one host) and db_replica to the inventory".into(),
        });
    };
    let run_id = apply::new_run_id();
    let holder = apply::lock::holder(&run_id);
    let timeout = Duration::from_secs(inventory.ssh.command_timeout.max(60));
    Ok(Tier {
        redactor: Redactor::new(secrets.values()),
        inventory,
        cfg,
        timeout,
        run_id,
        holder,
    })
}

impl Tier {
    /// The inventory's host by name, or a usage error naming the inventory.
    pub fn host(&self, name: &str) -> Result<HostName, CliError> {
        let host = HostName::new(name);
        if self.inventory.hosts.contains_key(&host) {
            Ok(host)
        } else {
            Err(CliError::Usage {
                message: format!("{name} is not a host of {}", self.inventory.path.display()),
                hint: format!("pick one of the replicas: {}", self.replica_list()),
            })
        }
    }

    /// The hosts of group `db_replica`, in inventory order.
    pub fn replicas(&self) -> Vec<HostName> {
        self.inventory.topology.database_replicas.clone()
    }

    /// The replicas for a hint: `web-02, web-03`.
    pub fn replica_list(&self) -> String {
        self.replicas()
            .iter()
            .map(|h| h.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The facts of `t`'s server, read before anything changes: `not_running` is the message
    /// when no server runs there. Every failure says that nothing was changed.
    pub async fn running_facts(
        &self,
        t: &dyn Transport,
        not_running: String,
    ) -> Result<DbFacts, CliError> {
        database::read_facts(t, &self.cfg, self.timeout)
            .await
            .map_err(|e| failed_before_change(&e))?
            .ok_or_else(|| unchanged(not_running))
    }

    pub async fn connect(&self, host: &HostName) -> Result<Arc<dyn Transport>, CliError> {
        let spec = self.inventory.connection(host);
        transport::connect(&spec)
            .await
            .map(Arc::from)
            .map_err(|e| CliError::Usage {
                message: e.to_string(),
                hint: format!(
                    "nothing was changed; check that {host} is up and reachable over ssh, then run again"
                ),
            })
    }

    /// Take `t`'s host lock (the one `apply` takes), or fail naming who holds it.
    pub async fn lock(&self, t: &dyn Transport) -> Result<(), CliError> {
        let script = format!(
            "{}[ -f {HOLDER} ] && cat {HOLDER}\n",
            crate::remote::lock::lock_script(
                &apply::lock_holder(&self.holder, &self.run_id),
                false
            )
        );
        let out = t
            .run(
                &RemoteCommand::script(self.timeout),
                Some(script.as_bytes()),
            )
            .await
            .map_err(|e| CliError::Usage {
                message: e.to_string(),
                hint: "nothing was changed".into(),
            })?;
        let text = out.stdout_text();
        if text.starts_with(LOCKED_MARK) {
            return Ok(());
        }
        Err(CliError::Usage {
            message: format!(
                "{}: {}",
                t.host(),
                apply::lock_message(text.trim().lines().next().unwrap_or("unknown holder"))
            ),
            hint: "nothing was changed; run again once the other run is done".into(),
        })
    }

    pub async fn unlock(&self, t: &dyn Transport) {
        apply::unlock(t, &self.run_id).await;
    }
}

/// A usage error found before anything changed.
pub(super) fn unchanged(message: String) -> CliError {
    CliError::Usage {
        message,
        hint: "nothing was changed".into(),
    }
}

/// A typed error found before anything changed, with its hint.
pub(super) fn failed_before_change(e: &(impl std::fmt::Display + Diagnostic)) -> CliError {
    CliError::Usage {
        message: e.to_string(),
        hint: match e.hint() {
            Some(h) => format!("nothing was changed; {h}"),
            None => "nothing was changed".into(),
        },
    }
}

/// Ask on a terminal; refuse without one (the caller passes `--yes` instead). The one prompt
/// of `apply`, `reseed` and `failover`.
pub(super) fn confirm(question: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage {
            message: "refusing to go on without confirmation: stdin is not a terminal".into(),
            hint: "review the plan above, then run again with --yes".into(),
        });
    }
    crate::warn!("{question} Only 'yes' is accepted: ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(anyhow::Error::from)?;
    Ok(line.trim() == "yes")
}
