//! The preamble every command shares: load the inventory and playbook, render, connect, and
//! close the connections at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Arc;

use futures::StreamExt;

use super::{CliError, Common};
use crate::apply::database::{self, DatabaseConfig};
use crate::inventory::{self, HostName, Inventory, Playbook, Secrets};
use crate::render::{DesiredState, RenderContext};
use crate::report::{Event, Progress, Reporter};
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
    /// Hosts outside the selection the run needs to read (the database primary, the load
    /// balancer), connected in the same batch; a failed one is simply absent.
    pub support: BTreeMap<HostName, Arc<dyn Transport>>,
}

impl Connections {
    /// A host's transport, selected or support. A host that failed to connect has none: it
    /// is never connected again in the same run.
    pub fn get(&self, host: &HostName) -> Option<&Arc<dyn Transport>> {
        self.transports.get(host).or_else(|| self.support.get(host))
    }

    /// Close every connection (the SSH masters exit).
    pub async fn finish(&self) {
        finish_all(&self.transports).await;
        finish_all(&self.support).await;
    }
}

/// Which hosts outside the selection a command may need.
#[derive(Debug, Clone, Copy, Default)]
pub struct Support {
    /// The database primary, when a selected host is in a database play.
    pub primary: bool,
    /// The load balancer, for rolling plays.
    pub balancer: bool,
}

impl Session {
    /// For the commands that reach hosts: [`Session::load_with`] the real secrets, and
    /// refused when the database tier would replicate MySQL in clear.
    pub fn load(common: &Common) -> Result<Self, CliError> {
        let session = Self::load_with(common, true)?;
        if session.database.is_some() {
            database::refuse_replication_in_clear(&session.inventory)?;
        }
        Ok(session)
    }

    /// `real_secrets: false` (`render` without `--with-secrets`): every secret is its
    /// placeholder `<secret:NAME>` and none needs to be set.
    pub fn load_with(common: &Common, real_secrets: bool) -> Result<Self, CliError> {
        let inventory = inventory::load_stack_inventory(&common.inventory, &common.playbook)?;
        for w in &inventory.warnings {
            crate::warn!("{w}\n");
        }
        // Past the inventory, one pass finds every problem it can: the playbook, each
        // --limit pattern and each secret are checked independently.
        let playbook = inventory::load_playbook(&common.playbook, &inventory);
        inventory::check_limit(&common.limit)?;
        let mut errors: Vec<CliError> = Vec::new();
        let mut selected = BTreeSet::new();
        for pattern in common.limit.iter().flat_map(|p| p.split(',')) {
            match inventory.limit(&[pattern.to_string()]) {
                Ok(_) => {}
                Err(e) => errors.push(e.into()),
            }
        }
        if errors.is_empty() {
            selected = inventory.limit(&common.limit)?;
        }
        let secrets = if real_secrets {
            inventory::resolve_all_secrets(&inventory)
                .map_err(|e| errors.extend(e.into_iter().map(CliError::from)))
        } else {
            Ok(inventory
                .secrets
                .keys()
                .map(|name| {
                    let placeholder = crate::secret::placeholder(name);
                    (name.clone(), crate::secret::Secret::new(placeholder))
                })
                .collect())
        };
        let playbook = playbook.map_err(|e| errors.insert(0, e.into()));
        if let Some(e) = CliError::collect(errors) {
            return Err(e);
        }
        let (Ok(playbook), Ok(secrets)) = (playbook, secrets) else {
            unreachable!("every error was collected above");
        };
        for w in &playbook.warnings {
            crate::warn!("{w}\n");
        }
        let hosts: Vec<HostName> = selected
            .into_iter()
            .filter(|h| playbook.plays.iter().any(|p| p.hosts.contains(h)))
            .collect();
        if hosts.is_empty() {
            // Each pattern matches something (else it was an error above), but together, or
            // with the plays' targets, nothing is left: a run that does nothing, said so.
            let why = if common.limit.is_empty() {
                format!("no play of {} targets a host", playbook.path.display())
            } else {
                format!(
                    "--limit {} selects no host that a play of {} targets",
                    common.limit.join(","),
                    playbook.path.display()
                )
            };
            crate::warn!("warning: {why}: nothing to do\n");
        }
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

    /// Open a transport per host, and per support host not among them, all in one parallel
    /// batch: an unreachable run costs one `connect_timeout`. Failures are per host, not
    /// fatal; a support host's failure is not a host failure (the run goes on without it).
    pub async fn connect(
        &self,
        hosts: &[HostName],
        support: Support,
        forks: usize,
        reporter: &dyn Reporter,
    ) -> Connections {
        let inventory = &self.inventory;
        let extra = self.support_hosts(hosts, support);
        let all: Vec<(&HostName, bool)> = hosts
            .iter()
            .map(|h| (h, false))
            .chain(extra.iter().map(|h| (h, true)))
            .collect();
        reporter.event(Event::Started { hosts: hosts.len() });
        let results: Vec<_> = futures::stream::iter(all)
            .map(|(h, is_support)| async move {
                let spec = inventory.connection(h);
                if !is_support {
                    reporter.event(Event::HostStarted {
                        host: h.clone(),
                        what: format!(
                            "connecting to {} (timeout {} s)",
                            spec.destination,
                            spec.connect_timeout.as_secs()
                        ),
                    });
                }
                let started = std::time::Instant::now();
                let r = transport::connect(&spec).await;
                match &r {
                    Ok(_) => tracing::info!(
                        "{h}: connected to {} in {} ms{}",
                        spec.destination,
                        started.elapsed().as_millis(),
                        if is_support {
                            " (needed by the selected hosts)"
                        } else {
                            ""
                        }
                    ),
                    Err(e) => tracing::info!("{h}: cannot connect: {e}"),
                }
                (h.clone(), is_support, r)
            })
            .buffer_unordered(forks.max(1))
            .collect()
            .await;
        let mut conn = Connections {
            transports: BTreeMap::new(),
            failed: BTreeMap::new(),
            support: BTreeMap::new(),
        };
        for (h, is_support, r) in results {
            match (r, is_support) {
                (Ok(t), false) => {
                    conn.transports.insert(h, Arc::from(t));
                }
                (Ok(t), true) => {
                    conn.support.insert(h, Arc::from(t));
                }
                (Err(e), false) => {
                    reporter.event(Event::HostFailed {
                        host: h.clone(),
                        message: e.to_string(),
                    });
                    conn.failed.insert(h, e.to_string());
                }
                (Err(_), true) => {}
            }
        }
        conn
    }

    /// The support hosts `hosts` need that are not among them.
    fn support_hosts(&self, hosts: &[HostName], support: Support) -> Vec<HostName> {
        let mut out = Vec::new();
        if support.primary
            && let Some(cfg) = &self.database
            && !hosts.contains(&cfg.primary)
            && self
                .playbook
                .plays
                .iter()
                .any(|p| p.database.is_some() && p.hosts.iter().any(|h| hosts.contains(h)))
        {
            out.push(cfg.primary.clone());
        }
        // Every load balancer: a rollout drains a host on each of them.
        if support.balancer
            && self
                .playbook
                .plays
                .iter()
                .any(|p| p.serial.is_some() && p.hosts.iter().any(|h| hosts.contains(h)))
        {
            for lb in &self.inventory.topology.load_balancers {
                if !hosts.contains(lb) && !out.contains(lb) {
                    out.push(lb.clone());
                }
            }
        }
        out
    }

    /// The database primary's transport, when a selected host is in a database play: a
    /// replica is planned and seeded against it even when `--limit` leaves the primary out.
    pub fn primary(&self, conn: &Connections) -> Option<Arc<dyn Transport>> {
        let cfg = self.database.as_ref()?;
        conn.get(&cfg.primary).cloned()
    }
}

/// Render every host; every host's error is reported, the same one (message and location)
/// once.
pub fn render_all(
    ctx: &RenderContext<'_>,
    hosts: &[HostName],
) -> Result<BTreeMap<HostName, DesiredState>, CliError> {
    let mut out = BTreeMap::new();
    let mut errors: Vec<crate::render::RenderError> = Vec::new();
    for h in hosts {
        match ctx.render_host(h) {
            Ok(d) => {
                out.insert(h.clone(), d);
            }
            Err(e) => {
                use crate::error::Diagnostic;
                let seen = errors
                    .iter()
                    .any(|x| x.to_string() == e.to_string() && x.location() == e.location());
                if !seen {
                    errors.push(e);
                }
            }
        }
    }
    match CliError::collect(errors.into_iter().map(CliError::from).collect()) {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Close every connection (the SSH masters exit).
async fn finish_all(transports: &BTreeMap<HostName, Arc<dyn Transport>>) {
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

/// Progress on stderr as `-q`/`-v` ask.
pub fn progress(common: &Common) -> Progress {
    if common.quiet {
        Progress::quiet()
    } else {
        Progress::new(common.verbose)
    }
}
