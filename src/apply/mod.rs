//! Apply: run a [`Plan`]'s steps, host by host, play by play.
//!
//! In: the plan, each host's desired state, an open transport per host. Out: a [`Report`]
//! with what happened on every host. Holds: nothing runs that the plan does not list; before
//! changing a host, foobar takes the host's lock and re-reads its facts, and refuses the host
//! if they moved since the plan ("plan is stale"). One host failing never stops its siblings,
//! but a failed host takes no further plays.
//!
//! `dry_run` is the same executor over [`DryRun`] transports (every target's, and its
//! database primary's): every remote command declares whether it only reads or changes the
//! host ([`crate::transport::Effect`]); reads are sent, and a change is answered with the
//! output its builder computed for success (a play's `OK`/`SKIP`/`DONE` lines,
//! [`script::Built::on_success`]) and never sent. So a dry run emits the same events in the
//! same order as an apply in which every step succeeds. What it does instead, and why:
//! - the lock is not taken: [`crate::remote::lock::lock_probe_script`] reads whether it is free and the
//!   facts are re-read under the same check, so a locked or stale host fails as it would;
//! - a database step depends on the live server (what replication says, what a seed
//!   finds), so it is not run: it is reported as planned (`would ...`) and its replicas go on;
//! - a rollout's drain, health gate and return depend on live traffic: a dry run passes no
//!   balancer, so a `serial:` play runs as a pipelined play, without rotation lines;
//! - a handler or validator is reported as succeeding: only running it would tell.
//!
//! The parts: [`lock`] (every part of the host lock, and run ids), `schedule` (which plays run
//! when, on which hosts), `play` (one play on one host), `rollout` (a play behind the load
//! balancer), [`script`] (the play's remote script), [`rolling`] (the HAProxy side of a
//! rollout), [`database`] (database steps), [`outcome`] (what happened, typed).

pub mod database;
pub mod error;
pub mod failover;
pub mod firewall;
mod host_script;
pub mod lock;
pub mod outcome;
mod play;
pub mod rolling;
mod rollout;
mod schedule;
pub mod script;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;

use crate::event::Reporter;
use crate::inventory::HostName;
use crate::plan::Plan;
use crate::render::DesiredState;
use crate::transport::Transport;
use crate::transport::dry::DryRun;
pub use error::{ApplyError, RolloutError, Stage};
use lock::lock_and_check;
pub use lock::{lock_holder, lock_message, machine_name, new_run_id, unlock};
use outcome::fail;
pub use outcome::{HostReport, HostStatus, Outcome, Report};
use schedule::{Phase, Run, phases};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub dry_run: bool,
    pub forks: usize,
    pub timeout: Duration,
    pub break_lock: bool,
    pub run_id: String,
    /// Who we are, for the lock: `user@machine pid N`.
    pub holder: String,
    /// Stop starting new hosts once this share of hosts failed (0-100).
    pub max_fail_percentage: Option<u8>,
    /// `--serial N`: overrides each play's `serial:`; 0 changes every host at once.
    pub serial: Option<u32>,
    /// Runs whose backups each host keeps in `/var/backups/foobar` (`keep_backups:`).
    pub keep_backups: u32,
}

impl ApplyOptions {
    pub fn lock_holder(&self) -> String {
        lock_holder(&self.holder, &self.run_id)
    }
}

pub struct Target<'a> {
    pub transport: Arc<dyn Transport>,
    pub desired: &'a DesiredState,
    /// The database tier's settings, for hosts in a `database:` play.
    pub database: Option<Arc<database::DatabaseConfig>>,
    /// The database primary's transport: a replica is seeded from it and checked against it.
    pub primary: Option<Arc<dyn Transport>>,
}

/// Execute `plan` on `targets`. Hosts not in the plan or without changes are left alone.
///
/// Scheduling: every host runs its own pipeline of plays, in playbook order unless a play's
/// `after:` lets it start beside earlier ones; hosts do not wait for each other between plays.
/// Two things do cross hosts: a database replica's replication step waits for its primary's
/// database step in this run, and a rollout (a `serial:` play while the load balancer answers)
/// is a barrier: it starts once every earlier play finished on every host, and later plays
/// wait for it, so nothing else changes while hosts leave and rejoin the pool.
///
/// With `dry_run`, the same code runs over [`DryRun`] transports (see the module doc).
#[allow(clippy::too_many_arguments)]
pub async fn apply(
    plan: &Plan,
    targets: &BTreeMap<HostName, Target<'_>>,
    options: &ApplyOptions,
    balancer: Option<&rolling::Balancer>,
    reporter: &dyn Reporter,
    redactor: &crate::secret::Redactor,
    cancelled: &AtomicBool,
) -> Report {
    // A dry run: the same code over transports that send only reads, and no balancer (see
    // the module doc).
    let dry_targets: BTreeMap<HostName, Target<'_>>;
    let (targets, balancer) = if options.dry_run {
        let dry =
            |t: &Arc<dyn Transport>| -> Arc<dyn Transport> { Arc::new(DryRun::new(t.clone())) };
        dry_targets = targets
            .iter()
            .map(|(h, t)| {
                let target = Target {
                    transport: dry(&t.transport),
                    desired: t.desired,
                    database: t.database.clone(),
                    primary: t.primary.as_ref().map(dry),
                };
                (h.clone(), target)
            })
            .collect();
        (&dry_targets, None)
    } else {
        (targets, balancer)
    };
    let mut reports: BTreeMap<HostName, HostReport> = BTreeMap::new();
    let changing: Vec<&HostName> = plan
        .hosts
        .iter()
        .filter(|(h, p)| p.has_changes() && targets.contains_key(*h))
        .map(|(h, _)| h)
        .collect();
    // Hosts that could not even be planned (unreachable) count as failed.
    let run = Run {
        plan,
        targets,
        options,
        reporter,
        redactor,
        cancelled,
        failed: AtomicUsize::new(plan.failed.len()),
        total: changing.len() + plan.failed.len(),
        lock_in_script: BTreeMap::new(),
        last_play: BTreeMap::new(),
    };
    for h in plan.hosts.keys() {
        reports.insert(h.clone(), HostReport::new());
    }
    let commands_before: BTreeMap<&HostName, u64> = targets
        .iter()
        .map(|(h, t)| (h, t.transport.commands_run()))
        .collect();

    let phases = phases(&run, &changing, balancer).await;
    // A host's first script takes its lock and compares its facts itself where it can;
    // the others are locked and re-read here, all in parallel, unless the plan was made
    // under the lock.
    let mut run = run;
    run.lock_in_script = changing
        .iter()
        .filter_map(|h| run.lock_play(h, &phases).map(|p| (HostName::clone(h), p)))
        .collect();
    run.last_play = changing
        .iter()
        .filter_map(|h| {
            let last = run.plays_with_work(h, None).last().copied();
            last.map(|p| (HostName::clone(h), p))
        })
        .collect();
    let run = run;
    {
        let lock_in_script = &run.lock_in_script;
        let results: Vec<(HostName, Result<(), ApplyError>)> =
            futures::stream::iter(changing.iter())
                .filter(|h| {
                    std::future::ready(!plan.hosts[**h].locked && !lock_in_script.contains_key(**h))
                })
                .map(|host| async move {
                    let r = lock_and_check(&targets[*host], &plan.hosts[*host], options).await;
                    (HostName::clone(host), r)
                })
                .buffer_unordered(options.forks.max(1))
                .collect()
                .await;
        for (host, r) in results {
            if let Err(message) = r {
                let rep = reports.get_mut(&host).expect("host in plan");
                fail(reporter, &host, rep, message, redactor);
                run.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    let mut interrupted = false;
    for phase in phases {
        if cancelled.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        match phase {
            Phase::Pipelined(plays) => run.pipelined(&plays, &changing, &mut reports).await,
            Phase::Rollout {
                play,
                batch,
                balancer,
            } => {
                run.rollout(play, batch, balancer, &changing, &mut reports)
                    .await
            }
        }
    }

    for (h, r) in reports.iter_mut() {
        if let Some(t) = targets.get(h) {
            r.remote_commands = t.transport.commands_run() - commands_before[h];
        }
    }
    // Release locks of hosts whose last script did not (failures, interruptions).
    {
        let to_unlock: Vec<&HostName> = changing
            .iter()
            .copied()
            .filter(|h| !reports.get(*h).is_some_and(|r| r.unlocked))
            .collect();
        let _: Vec<()> = futures::stream::iter(to_unlock)
            .map(|host| async move {
                unlock(targets[host].transport.as_ref(), &options.run_id).await;
            })
            .buffer_unordered(options.forks.max(1))
            .collect()
            .await;
    }
    for (h, r) in reports.iter_mut() {
        if r.status == HostStatus::Unchanged && changing.contains(&h) && !r.done.is_empty() {
            r.status = if options.dry_run {
                HostStatus::WouldChange
            } else {
                HostStatus::Changed
            };
        }
    }
    Report {
        format_version: crate::plan::FORMAT_VERSION,
        dry_run: options.dry_run,
        hosts: reports,
        interrupted: interrupted || cancelled.load(Ordering::SeqCst),
    }
}
