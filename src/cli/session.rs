//! The preamble every command shares: load the inventory and playbook, render, connect, and
//! close the connections at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;

use futures::StreamExt;

use super::{CliError, Common};
use crate::apply::database::{self, DatabaseConfig};
use crate::inventory::{self, HostName, Inventory, Playbook, Secrets};
use crate::render::{DesiredState, RenderContext};
use crate::report::{Event, Reporter};
use crate::transport::{self, Transport};

/// A loaded inventory and playbook, and the hosts this run works on.
pub struct Session {
    pub inventory: Inventory,
    pub playbook: Playbook,
    pub secrets: Secrets,
    /// Hosts selected by --limit that some play targets, in name order.
    pub hosts: Vec<HostName>,
    /// The database tier, when a play has `database:`.
    pub database: Option<Arc<DatabaseConfig>>,
}

/// Open transports, by host, and the hosts that could not be reached, with the reason.
pub struct Connections {
    pub transports: BTreeMap<HostName, Arc<dyn Transport>>,
    pub failed: BTreeMap<HostName, String>,
}

impl Session {
    pub fn load(common: &Common) -> Result<Self, CliError> {
        Self::load_with(common, true)
    }

    /// `real_secrets: false` (`render` without `--with-secrets`): every secret is its
    /// placeholder `<secret:NAME>` and none needs to be set.
    pub fn load_with(common: &Common, real_secrets: bool) -> Result<Self, CliError> {
        let inventory = inventory::load_inventory(&common.inventory)?;
        for w in &inventory.warnings {
            crate::warn!("{w}\n");
        }
        let playbook = inventory::load_playbook(&common.playbook, &inventory)?;
        let selected = inventory.limit(&common.limit)?;
        let secrets = if real_secrets {
            inventory::resolve_secrets(&inventory)?
        } else {
            inventory
                .secrets
                .keys()
                .map(|name| {
                    let placeholder = crate::secret::placeholder(name);
                    (name.clone(), crate::secret::Secret::new(placeholder))
                })
                .collect()
        };
        let hosts = selected
            .into_iter()
            .filter(|h| playbook.plays.iter().any(|p| p.hosts.contains(h)))
            .collect();
        let database = if playbook.plays.iter().any(|p| p.database.is_some()) {
            database::config(&inventory, &secrets)?.map(Arc::new)
        } else {
            None
        };
        Ok(Self {
            inventory,
            playbook,
            secrets,
            hosts,
            database,
        })
    }

    pub fn render_context(&self) -> Result<RenderContext<'_>, CliError> {
        Ok(RenderContext::new(
            &self.inventory,
            &self.playbook,
            &self.secrets,
        )?)
    }

    /// Open a transport per host, in parallel. Failures are per host, not fatal.
    pub async fn connect(
        &self,
        hosts: &[HostName],
        forks: usize,
        reporter: &dyn Reporter,
    ) -> Connections {
        let inventory = &self.inventory;
        let results: Vec<_> = futures::stream::iter(hosts.iter())
            .map(|h| async move {
                reporter.event(Event::HostStarted {
                    host: h.clone(),
                    what: "connecting",
                });
                let spec = inventory.connection(h);
                (h.clone(), transport::connect(&spec).await)
            })
            .buffer_unordered(forks.max(1))
            .collect()
            .await;
        let mut transports = BTreeMap::new();
        let mut failed = BTreeMap::new();
        for (h, r) in results {
            match r {
                Ok(t) => {
                    transports.insert(h, Arc::from(t));
                }
                Err(e) => {
                    reporter.event(Event::HostFailed {
                        host: h.clone(),
                        message: e.to_string(),
                    });
                    failed.insert(h, e.to_string());
                }
            }
        }
        Connections { transports, failed }
    }

    /// The database primary's transport, when a selected host is in a database play: a
    /// replica is planned and seeded against it even when `--limit` leaves the primary out.
    pub async fn connect_primary(
        &self,
        transports: &BTreeMap<HostName, Arc<dyn Transport>>,
    ) -> Option<Arc<dyn Transport>> {
        let cfg = self.database.as_ref()?;
        if let Some(t) = transports.get(&cfg.primary) {
            return Some(t.clone());
        }
        let wanted = self
            .playbook
            .plays
            .iter()
            .any(|p| p.database.is_some() && p.hosts.iter().any(|h| self.hosts.contains(h)));
        if !wanted {
            return None;
        }
        let spec = self.inventory.connection(&cfg.primary);
        transport::connect(&spec).await.ok().map(Arc::from)
    }
}

pub fn render_all(
    ctx: &RenderContext<'_>,
    hosts: &[HostName],
) -> Result<BTreeMap<HostName, DesiredState>, CliError> {
    let mut out = BTreeMap::new();
    for h in hosts {
        out.insert(h.clone(), ctx.render_host(h)?);
    }
    Ok(out)
}

/// Close every connection (the SSH masters exit).
pub async fn finish_all(transports: &BTreeMap<HostName, Arc<dyn Transport>>) {
    futures::future::join_all(transports.values().map(|t| t.finish())).await;
}

/// Colour on stdout: a terminal, and `NO_COLOR` unset.
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Any play rolls its hosts through the load balancer (`serial:`).
pub fn has_rolling_play(desired: &BTreeMap<HostName, DesiredState>) -> bool {
    desired
        .values()
        .any(|d| d.plays.iter().any(|p| p.serial.is_some()))
}
