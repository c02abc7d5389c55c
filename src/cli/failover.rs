//! `foobar failover --to HOST`: promote a database replica to primary, planned (the old
//! primary answers: nothing acknowledged is lost) or unplanned (it does not). Then the
//! inventory is edited to say so (shown as a diff) and the usual apply re-points the other
//! replicas and the app's write host, rolling behind HAProxy.
//!
//! Bad input changes nothing and exits 1: a host that is not a replica, an unreachable one,
//! a server that is not running, a lock held by another run.

use std::path::Path;

use super::dbtier::{self, Tier, sayln, warnln};
use super::{CliError, Common};
use crate::apply::{database, failover};
use crate::error::Diagnostic;
use crate::error::ExitCategory;
use crate::inventory::{HostName, failover_edit, topology};

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    #[command(flatten)]
    pub common: Common,
    /// The replica to promote.
    #[arg(long = "to", value_name = "HOST")]
    pub to: String,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Show the plan and change nothing (`--check`, as in Ansible).
    #[arg(long, visible_alias = "check")]
    pub dry_run: bool,
    /// Promote even when another replica holds more transactions (they are lost).
    #[arg(long)]
    pub force: bool,
}

pub async fn run(args: FailoverArgs) -> Result<ExitCategory, CliError> {
    let FailoverArgs {
        common,
        to,
        yes,
        dry_run,
        force,
    } = args;
    let tier: Tier = dbtier::load(&common, "failover")?;
    let target = tier.host(&to)?;
    let old = tier.cfg.primary.clone();
    if target == old || !tier.replicas().contains(&target) {
        return Err(CliError::Usage {
            message: format!(
                "{target} is not a replica (group db_replica in {}); only a replica can be promoted",
                tier.inventory.path.display()
            ),
            hint: format!(
                "nothing was changed; the primary is {old}; name one of: {}",
                tier.replica_list()
            ),
        });
    }
    let target_address = tier.inventory.hosts[&target]
        .private_ip
        .clone()
        .ok_or_else(|| CliError::Usage {
            message: format!("{target} has no private_ip"),
            hint: format!(
                "set private_ip for {target} in {}",
                tier.inventory.path.display()
            ),
        })?;
    let target_t = tier.connect(&target).await?;
    // The old primary may be gone: that is what an unplanned failover is for.
    let old_t = match tier.connect(&old).await {
        Ok(t) => Some(t),
        Err(e) => {
            warnln!("{old} does not answer ({e}): unplanned failover");
            None
        }
    };
    let mut others = Vec::new();
    for r in tier.replicas().into_iter().filter(|r| *r != target) {
        if let Ok(t) = tier.connect(&r).await {
            others.push(t);
        }
    }
    tier.lock(target_t.as_ref()).await?;
    let mut locked = vec![target_t.clone()];
    let outcome = async {
        if let Some(o) = &old_t {
            tier.lock(o.as_ref()).await?;
            locked.push(o.clone());
        }
        let target_facts = tier.running_facts(target_t.as_ref(), format!("the database server on {target} is not running; start it with `foobar apply --limit {target}` first")).await?;
        if target_facts.replica.is_none() {
            return Err(dbtier::unchanged(format!("{target} is not replicating from anything; it cannot be promoted in place of {old}")));
        }
        let old_facts = match &old_t {
            Some(o) => database::read_facts(o.as_ref(), &tier.cfg, tier.timeout)
                .await
                .ok()
                .flatten(),
            None => None,
        };
        for o in &others {
            if let Ok(Some(f)) = database::read_facts(o.as_ref(), &tier.cfg, tier.timeout).await
                && let Err(e) = crate::mysql::check_direction(&target_facts.version, &f.version)
            {
                return Err(CliError::Usage {
                    message: format!("{} could not follow {target}: {e}", o.host()),
                    hint: format!(
                        "nothing was changed; {}",
                        e.hint().unwrap_or_default()
                    ),
                });
            }
        }
        let old_left_out = old_facts
            .as_ref()
            .is_some_and(|f| crate::mysql::check_direction(&target_facts.version, &f.version).is_err());
        sayln!("failover {old} -> {target}:");
        for line in failover::plan_lines(&old, &target, old_facts.as_ref(), &target_facts) {
            sayln!("  {line}");
        }
        sayln!("  ~ the inventory: {target} in db_primary, {old} in db_replica (shown as a diff)");
        let through_lb = tier.inventory.host_vars(&target).get("db_write_address").and_then(|v| v.as_str()) == Some("load_balancer");
        if through_lb {
            sayln!("  ~ the load balancers' db_write: {target} in, {old} out (the apps keep their configuration)");
            sayln!("  ~ then apply: the other replicas follow {target}");
        } else {
            sayln!("  ~ then apply: the other replicas follow {target}; the app writes to {target} (rolling restart behind HAProxy)");
        }
        if dry_run {
            warnln!("dry run: nothing was changed");
            return Ok(None);
        }
        if !yes && !dbtier::confirm(&format!("Promote {target}?"))? {
            warnln!("not confirmed: nothing was changed");
            return Ok(None);
        }
        let done = match (&old_t, &old_facts) {
            (Some(o), Some(_)) => {
                failover::switchover(
                    o.as_ref(),
                    target_t.as_ref(),
                    &tier.cfg,
                    &target_address,
                    tier.timeout,
                    &tier.redactor,
                )
                .await
            }
            _ => {
                let others: Vec<&dyn crate::transport::Transport> =
                    others.iter().map(|t| t.as_ref()).collect();
                failover::promote_unplanned(
                    target_t.as_ref(),
                    &others,
                    &tier.cfg,
                    force,
                    tier.timeout,
                    &tier.redactor,
                )
                .await
            }
        }
        .map_err(|e| CliError::Usage {
            message: format!("failover to {target} failed: {}", tier.redactor.redact(&e.to_string())),
            hint: format!(
                "{old} is still the primary in the inventory; {}",
                e.hint().unwrap_or_else(|| "see the message for what to fix".into())
            ),
        })?;
        for d in &done {
            sayln!("  done {d}");
        }
        for d in move_write_path(&tier, &old, &target).await? {
            sayln!("  done {d}");
        }
        Ok(Some((old_facts.is_some(), old_left_out)))
    }
    .await;
    for t in &locked {
        tier.unlock(t.as_ref()).await;
    }
    let (planned, old_left_out) = match outcome? {
        None => return Ok(ExitCategory::Ok),
        Some(p) => p,
    };
    let rejoin_old = planned && !old_left_out;
    edit_inventory(&tier, &old, &target)?;
    // Everything that follows the primary, by the usual apply on the edited inventory.
    let mut limit: Vec<String> = tier
        .inventory
        .hosts
        .keys()
        .filter(|h| rejoin_old || **h != old)
        .map(|h| h.to_string())
        .collect();
    if !common.limit.is_empty() {
        limit.retain(|h| common.limit.contains(h));
    }
    let apply = super::apply::ApplyArgs {
        common: Common { limit, ..common },
        planfile: None,
        yes: true,
        dry_run: false,
        diff: false,
        break_lock: false,
        max_fail_percentage: None,
        serial: None,
    };
    let code = super::apply::run(apply).await?;
    if old_left_out {
        sayln!(
            "{old} is out: read-only and not replicating; replace it by a host on the newer release and `foobar apply` seeds it from {target}"
        );
    } else if !planned {
        sayln!(
            "{old} is out: when it comes back it starts read-only, and `foobar apply` rejoins it as a replica of {target}"
        );
    }
    Ok(code)
}

/// With `db_write_address: load_balancer`, the apps write through `listen db_write` on the
/// load balancers: point it at the new primary on each of them (the runtime API, now; the
/// apply after the failover writes the same into haproxy.cfg), and close the sessions still
/// open to the old one. No app is touched.
async fn move_write_path(
    tier: &Tier,
    old: &HostName,
    target: &HostName,
) -> Result<Vec<String>, CliError> {
    let inv = &tier.inventory;
    let through_lb = |h: &HostName| {
        inv.host_vars(h)
            .get("db_write_address")
            .and_then(|v| v.as_str())
            == Some("load_balancer")
    };
    let balancers: Vec<HostName> = inv
        .groups
        .get("loadbalancer")
        .map(|g| g.hosts.clone())
        .unwrap_or_default();
    let mut done = Vec::new();
    for lb in balancers.iter().filter(|h| through_lb(h)) {
        let socket = inv
            .host_vars(lb)
            .get("haproxy_admin_socket")
            .and_then(|v| v.as_str())
            .unwrap_or("/run/haproxy/admin.sock")
            .to_string();
        let commands = format!(
            "enable server db_write/{target}; disable server db_write/{old}; shutdown sessions server db_write/{old}"
        );
        let script = crate::remote::haproxy::haproxy_runtime(&socket, &commands)
            .to_stdin()
            .map_err(|e| CliError::Other(anyhow::anyhow!("{e}")))?;
        let failed = |why: String| CliError::Usage {
            message: format!(
                "{target} is the primary, but {lb}'s write path could not be moved to it: {why}"
            ),
            hint: format!(
                "run `foobar apply` (it writes the new primary into {lb}'s haproxy.cfg); until then the apps' writes still go to {old}"
            ),
        };
        let t = tier.connect(lb).await?;
        let out = t
            .run(
                &crate::transport::RemoteCommand::script(tier.timeout),
                Some(format!("{script}\n").as_bytes()),
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        t.finish().await;
        let answer = out.stdout_text();
        if !out.success() || !answer.trim().is_empty() {
            return Err(failed(format!(
                "{}{}",
                answer.trim(),
                out.stderr_text().trim()
            )));
        }
        done.push(format!("{lb}: database writes go to {target}"));
    }
    Ok(done)
}

/// Swap the primary in the inventory file, print the diff.
fn edit_inventory(
    tier: &Tier,
    old: &crate::inventory::HostName,
    new: &crate::inventory::HostName,
) -> Result<(), CliError> {
    let path: &Path = &tier.inventory.path;
    let text = std::fs::read_to_string(path).map_err(anyhow::Error::from)?;
    let line = |g: &str| {
        tier.inventory
            .groups
            .get(g)
            .map_or(0, |g| g.location.line as usize)
    };
    let edited = failover_edit::swap_primary(
        &text,
        path,
        line(topology::DATABASE_PRIMARY),
        line(topology::DATABASE_REPLICAS),
        old.as_str(),
        new.as_str(),
    )
    .map_err(|e| CliError::Usage {
        message: format!(
            "{new} is the primary now, but the inventory still says {old}: {}",
            e.message
        ),
        hint: format!(
            "edit {} (db_primary: [{new}], db_replica: [{old}, ...]) before the next plan or apply, which would otherwise point everything back at {old}",
            e.location
        ),
    })?;
    let diff = similar::TextDiff::from_lines(&text, &edited);
    crate::say!(
        "{}",
        diff.unified_diff().context_radius(2).header(
            &path.display().to_string(),
            &format!("{} (edited)", path.display())
        )
    );
    failover_edit::replace_file(path, &edited).map_err(anyhow::Error::from)?;
    Ok(())
}
