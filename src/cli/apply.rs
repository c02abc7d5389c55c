//! `foobar apply [PLANFILE]`: make the hosts match the playbook (or exactly a saved plan).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;

use super::planning::{PlanInput, make_plan};
use super::rotation::{balancer, mark_out_of_rotation};
use super::session::{Session, Support, colour, has_rolling_play, progress, render_all};
use super::{CliError, Common};
use crate::apply::{self, ApplyOptions, Target};
use crate::error::ExitCategory;
use crate::inventory::HostName;
use crate::plan::{Plan, planfile};
use crate::report::{Reporter, human, json};
use crate::transport::Transport;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub common: Common,
    /// A plan saved by `foobar plan --out`: apply exactly that, or refuse if stale.
    pub planfile: Option<PathBuf>,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    /// Walk every step without changing anything (`--check`, as in Ansible).
    #[arg(long, visible_alias = "check")]
    pub dry_run: bool,
    /// Show diffs of the changes being made.
    #[arg(long)]
    pub diff: bool,
    /// Take over a host lock left by a run that died.
    #[arg(long)]
    pub break_lock: bool,
    /// Stop starting hosts once more than this percentage of hosts failed.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_fail_percentage: Option<u8>,
    /// Hosts behind the load balancer changed at a time (drained first, checked, put
    /// back); overrides each play's `serial:`. 0 changes them all at once.
    #[arg(long)]
    pub serial: Option<u32>,
}

pub async fn run(args: ApplyArgs) -> Result<ExitCategory, CliError> {
    let ApplyArgs {
        common,
        planfile,
        yes,
        dry_run,
        diff,
        break_lock,
        max_fail_percentage,
        serial,
    } = args;
    let mut common = common;
    let saved: Option<Plan> = match &planfile {
        Some(p) => Some(planfile::read(p)?),
        None => None,
    };
    // A saved plan brings its inputs: they stand in for defaults, and a different file given
    // explicitly is refused below.
    if let Some(inputs) = saved.as_ref().and_then(|s| s.inputs.as_ref()) {
        let (inventory_given, playbook_given) = super::explicit_inputs();
        if !inventory_given {
            common.inventory = inputs.inventory.clone();
        }
        if !playbook_given {
            common.playbook = inputs.playbook.clone();
        }
    }
    if let Some(s) = &saved {
        planfile::check_paths(s, &common.inventory, &common.playbook)?;
    }
    let session = Session::load(&common)?;
    if let Some(s) = &saved {
        planfile::check_hosts(s, &session.hosts)?;
    }
    if session.hosts.is_empty() {
        // `plan` says "nothing to do" and succeeds; an apply that changes no host (`-l '!*'`)
        // is a mistake to stop on, not a success to report.
        return Err(CliError::Usage {
            message: if common.limit.is_empty() {
                format!(
                    "no play of {} targets a host: nothing to apply",
                    session.playbook.path.display()
                )
            } else {
                format!(
                    "--limit {} selects no host a play targets: nothing to apply",
                    common.limit.join(",")
                )
            },
            hint: "check --limit and the plays' `hosts:`; `foobar plan` shows what each host would get".into(),
        });
    }
    let ctx = session.render_context()?;
    let cancelled = watch_signals();
    let hosts: Vec<HostName> = match &saved {
        Some(s) => session
            .hosts
            .iter()
            .filter(|h| s.hosts.contains_key(*h))
            .cloned()
            .collect(),
        None => session.hosts.clone(),
    };
    let desired = render_all(&ctx, &hosts)?;
    let reporter = progress(&common);
    let support = Support {
        primary: true,
        balancer: serial != Some(0) && has_rolling_play(&desired),
    };
    let conn = session
        .connect(&hosts, support, common.forks, &reporter)
        .await;
    let transports = &conn.transports;
    let primary = session.primary(&conn);
    let run_id = apply::new_run_id();
    let holder = apply::lock::holder(&run_id);
    let plan = match saved {
        Some(mut s) => {
            planfile::check_renders_same(&s, &desired)?;
            planfile::check_unchanged(&s, &common.inventory, &common.playbook)?;
            s.hosts.retain(|h, _| transports.contains_key(h));
            s.failed.extend(conn.failed.clone());
            s
        }
        None => {
            let input = PlanInput {
                ctx: &ctx,
                desired: &desired,
                transports,
                primary: primary.as_ref(),
                failed: conn.failed.clone(),
                forks: common.forks,
                hold: !dry_run,
            };
            make_plan(&session, input, &reporter).await
        }
    };
    // Hosts this run locked while planning, to release if it goes no further.
    let locked: Vec<Arc<dyn Transport>> = plan
        .hosts
        .iter()
        .filter(|(_, hp)| hp.locked)
        .filter_map(|(h, _)| transports.get(h).cloned())
        .collect();
    let balancer = if serial == Some(0) || !has_rolling_play(&desired) {
        None
    } else {
        balancer(&session, &conn)
    };
    let mut plan = plan;
    if planfile.is_none() {
        mark_out_of_rotation(&mut plan, balancer.as_ref(), &desired).await;
    }
    reporter.finish();
    let styles = human::Styles::new(colour());
    if !common.json && (diff || planfile.is_none()) {
        crate::say!("{}", human::plan(&plan, &styles, false));
    }
    if !plan.has_changes() {
        conn.finish().await;
        if common.json {
            crate::say!("{}", json::document(&json::ApplyDocument::new(&plan, None)));
        }
        return Ok(if plan.failed.is_empty() {
            ExitCategory::Ok
        } else {
            ExitCategory::HostFailed
        });
    }
    let go = yes || dry_run || {
        let answer = super::dbtier::confirm("Apply these changes?");
        if !matches!(answer, Ok(true)) {
            for t in &locked {
                apply::unlock(t.as_ref(), &run_id).await;
            }
            conn.finish().await;
        }
        answer?
    };
    if !go {
        crate::warn!("nothing applied\n");
        return Ok(ExitCategory::Error);
    }
    let targets: BTreeMap<HostName, Target<'_>> = transports
        .iter()
        .filter(|(h, _)| plan.hosts.contains_key(*h))
        .map(|(h, t)| {
            (
                h.clone(),
                Target {
                    transport: t.clone(),
                    desired: &desired[h],
                    database: session.database.clone(),
                    primary: primary.clone(),
                },
            )
        })
        .collect();
    let options = ApplyOptions {
        dry_run,
        forks: common.forks,
        timeout: Duration::from_secs(session.inventory.ssh.command_timeout),
        break_lock,
        run_id,
        holder,
        max_fail_percentage,
        serial,
        keep_backups: session.playbook.keep_backups,
    };
    let mut report = apply::apply(
        &plan,
        &targets,
        &options,
        balancer.as_ref(),
        &reporter,
        &ctx.redactor,
        &cancelled,
    )
    .await;
    reporter.finish();
    conn.finish().await;
    // Confirm-or-rollback, over new connections now that the apply's are closed (a dry run
    // changed no firewall: there is nothing to confirm).
    if !dry_run {
        apply::firewall::confirm_changed(&session.inventory, &desired, &mut report).await;
    }
    for (h, why) in &plan.failed {
        report.hosts.insert(
            h.clone(),
            apply::HostReport {
                status: apply::HostStatus::Failed {
                    stage: apply::Stage::Connect,
                    message: why.clone(),
                    // The reason (unreachable, locked, unreadable) is in the message.
                    hint: None,
                },
                ..apply::HostReport::new()
            },
        );
    }
    if common.json {
        crate::say!(
            "{}",
            json::document(&json::ApplyDocument::new(&plan, Some(&report)))
        );
    } else {
        crate::say!("{}", human::report(&report, &styles));
    }
    Ok(if report.failed_hosts().is_empty() && !report.interrupted {
        ExitCategory::Ok
    } else {
        ExitCategory::HostFailed
    })
}

/// Ctrl-C or SIGTERM: start no new step; running ones finish.
fn watch_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        crate::warn!("foobar: interrupted; letting running steps finish, starting no new ones\n");
        f.store(true, Ordering::SeqCst);
    });
    flag
}
