//! Planning: gather every selected host over its transport and diff it against what the
//! playbook renders for it; plus the database tier's steps and the rollout order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::session::Session;
use crate::apply::database;
use crate::gather;
use crate::inventory::HostName;
use crate::plan::{self, Plan};
use crate::render::{DesiredState, RenderContext};
use crate::report::{Event, Reporter};
use crate::transport::Transport;

/// What planning needs besides the session: the rendered state, open transports and the
/// hosts that already failed.
pub struct PlanInput<'a> {
    pub ctx: &'a RenderContext<'a>,
    pub desired: &'a BTreeMap<HostName, DesiredState>,
    pub transports: &'a BTreeMap<HostName, Arc<dyn Transport>>,
    pub primary: Option<&'a Arc<dyn Transport>>,
    pub failed: BTreeMap<HostName, String>,
    pub forks: usize,
    /// Keep each host's shell waiting after its gather for the apply's script (an apply that
    /// will run right after this plan, not a dry run).
    pub hold: bool,
}

/// Gather every host and diff it against its desired state.
pub async fn make_plan(loaded: &Session, input: PlanInput<'_>, reporter: &dyn Reporter) -> Plan {
    let PlanInput {
        ctx,
        desired,
        transports,
        primary,
        mut failed,
        forks,
        hold,
    } = input;
    let timeout = Duration::from_secs(loaded.inventory.ssh.command_timeout.min(120));
    let facts_sql = loaded.database.as_ref().map(|c| c.facts_sql());
    let facts_sql = facts_sql.as_deref();
    let results: Vec<_> = futures::stream::iter(transports.iter())
        .map(|(h, t)| async move {
            let want = &desired[h];
            reporter.event(Event::HostStarted {
                host: h.clone(),
                what: "reading live state".into(),
            });
            let before = t.commands_run();
            let r = async {
                let probe = want
                    .plays
                    .iter()
                    .any(|p| p.database.is_some())
                    .then_some(())
                    .and(facts_sql)
                    .map(|sql| gather::DatabaseProbe { sql });
                let mut have = if hold {
                    let session = Duration::from_secs(loaded.inventory.ssh.command_timeout);
                    gather::gather_and_hold(t.as_ref(), want, probe.as_ref(), timeout, session)
                        .await?
                } else {
                    gather::gather(t.as_ref(), want, probe.as_ref(), timeout).await?
                };
                let mut hp = plan::diff(want, &have);
                // Bodies for the diff came with the gather when they were small; a second
                // round trip reads only the rest. An apply does not lock here: its script
                // on the host takes the lock and compares the facts (`hp.cas`) itself.
                let need: Vec<&str> = hp
                    .changes
                    .iter()
                    .filter(|c| c.needs_diff && !have.bodies.contains_key(&c.target))
                    .map(|c| c.target.as_str())
                    .collect();
                let mut bodies = std::mem::take(&mut have.bodies);
                if !need.is_empty() {
                    bodies.extend(gather::fetch_contents(t.as_ref(), &need, timeout).await?);
                }
                if hp.changes.iter().any(|c| c.needs_diff) {
                    plan::attach_diffs(&mut hp, want, &bodies, &ctx.redactor);
                }
                Ok::<_, gather::GatherError>(Ok((hp, have.database)))
            }
            .await;
            let n = t.commands_run() - before;
            reporter.event(Event::HostGathered {
                host: h.clone(),
                commands: n,
            });
            (
                h.clone(),
                r.map(|r| {
                    r.map(|(mut hp, db)| {
                        hp.remote_commands = n;
                        (hp, db)
                    })
                }),
            )
        })
        .buffer_unordered(forks.max(1))
        .collect()
        .await;
    let mut hosts = BTreeMap::new();
    let mut db_facts = BTreeMap::new();
    for (h, r) in results {
        match r {
            Ok(Err(why)) => {
                failed.insert(h, why);
            }
            Ok(Ok((hp, db))) => {
                if let Some(text) = db {
                    db_facts.insert(h.clone(), database::parse_probe(&text));
                }
                hosts.insert(h, hp);
            }
            Err(e) => {
                failed.insert(h, ctx.redactor.redact(&e.to_string()));
            }
        }
    }
    if let Some(cfg) = &loaded.database {
        // A replica's plan depends on its primary's facts (seeding): read them if --limit
        // left the primary out.
        if !db_facts.contains_key(&cfg.primary)
            && let Some(t) = primary
        {
            let want = &desired_for_probe(&cfg.primary);
            let probe = gather::DatabaseProbe {
                sql: facts_sql.unwrap_or_default(),
            };
            if let Ok(have) = gather::gather(t.as_ref(), want, Some(&probe), timeout).await
                && let Some(text) = have.database
            {
                db_facts.insert(cfg.primary.clone(), database::parse_probe(&text));
            }
        }
        let primary_facts = db_facts
            .get(&cfg.primary)
            .and_then(|r| r.as_ref().ok())
            .and_then(|f| f.as_ref());
        for (h, hp) in hosts.iter_mut() {
            for play in desired[h].plays.iter() {
                let Some(role) = play.database else { continue };
                let facts = match db_facts.get(h) {
                    Some(Ok(f)) => f.as_ref(),
                    Some(Err(e)) => {
                        failed.insert(h.clone(), ctx.redactor.redact(&e.to_string()));
                        continue;
                    }
                    None => None,
                };
                match database::plan_changes(h, role, play.index, cfg, facts, primary_facts) {
                    Ok(changes) => hp.changes.extend(changes),
                    Err(e) => {
                        failed.insert(h.clone(), ctx.redactor.redact(&e.to_string()));
                    }
                }
            }
        }
        hosts.retain(|h, _| !failed.contains_key(h));
    }
    Plan {
        format_version: plan::FORMAT_VERSION,
        inventory: loaded.inventory.path.display().to_string(),
        playbook: loaded.playbook.path.display().to_string(),
        rollout: rollout(loaded, desired, &hosts),
        hosts,
        failed,
        inputs: None,
    }
}

/// The rollout order of plays with `serial:` over the load balancers' `web` hosts.
fn rollout(
    loaded: &Session,
    desired: &BTreeMap<HostName, DesiredState>,
    hosts: &BTreeMap<HostName, plan::HostPlan>,
) -> Vec<String> {
    let inv = &loaded.inventory;
    if inv.topology.load_balancers.is_empty() {
        return vec![];
    }
    let lb = inv
        .topology
        .load_balancers
        .iter()
        .map(|h| h.as_str())
        .collect::<Vec<_>>()
        .join(" and ");
    let web = &inv.topology.web_servers;
    let mut out = Vec::new();
    for play in &loaded.playbook.plays {
        let Some(n) = play.serial.filter(|n| *n > 0) else {
            continue;
        };
        let order: Vec<&str> = web
            .iter()
            .filter(|h| {
                desired
                    .get(*h)
                    .is_some_and(|d| d.plays.iter().any(|p| p.index == play.index))
            })
            .filter(|h| {
                hosts.get(*h).is_some_and(|hp| {
                    hp.changes
                        .iter()
                        .any(|c| c.play == play.index && c.is_change())
                        || hp.handlers.iter().any(|x| x.play == play.index)
                })
            })
            .map(|h| h.as_str())
            .collect();
        if !order.is_empty() {
            out.push(format!(
                "play `{}` changes {} at a time: {} — each drained on {lb}, checked directly, then put back (`--serial 0`: all at once)",
                play.name,
                n,
                order.join(", then ")
            ));
        }
    }
    out
}

/// An empty desired state: gathering it reads only the lock, pending handlers and, with a
/// probe, the database facts.
fn desired_for_probe(host: &HostName) -> DesiredState {
    DesiredState {
        host: host.clone(),
        plays: vec![],
    }
}
