//! `foobar plan`: read what is live on each host and show what apply would change.

use std::path::PathBuf;

use clap::Args;

use super::planning::{PlanInput, make_plan};
use super::rotation::{balancer, mark_out_of_rotation};
use super::session::{Session, Support, colour, has_rolling_play, progress, render_all};
use super::{CliError, Common};
use crate::error::ExitCategory;
use crate::plan::planfile;
use crate::report::{Reporter, human, json};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan (JSON, no secrets) for `foobar apply PLANFILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// List unchanged files too.
    #[arg(long)]
    pub show_unchanged: bool,
}

pub async fn run(args: PlanArgs) -> Result<ExitCategory, CliError> {
    let PlanArgs {
        common,
        detailed_exitcode,
        out,
        show_unchanged,
    } = args;
    let session = Session::load(&common)?;
    let ctx = session.render_context()?;
    let desired = render_all(&ctx, &session.hosts)?;
    let reporter = progress(&common);
    let support = Support {
        primary: true,
        balancer: has_rolling_play(&desired),
    };
    let conn = session
        .connect(&session.hosts, support, common.forks, &reporter)
        .await;
    let primary = session.primary(&conn);
    let input = PlanInput {
        ctx: &ctx,
        desired: &desired,
        transports: &conn.transports,
        primary: primary.as_ref(),
        failed: conn.failed.clone(),
        forks: common.forks,
        hold: false,
    };
    let mut plan = make_plan(&session, input, &reporter).await;
    if has_rolling_play(&desired) {
        let b = balancer(&session, &conn);
        mark_out_of_rotation(&mut plan, b.as_ref(), &desired).await;
    }
    conn.finish().await;
    reporter.finish();
    // Said on every plan, after the hosts were read: the stack is open to the network.
    if let Some(w) = session.inventory.topology.firewall_off_warning()
        && !common.quiet
    {
        crate::warn!("warning: {w}\n");
    }
    plan.inputs = Some(planfile::Inputs::of(
        &common.inventory,
        &common.playbook,
        &common.limit,
    ));
    let mut unsaved = None;
    if let Some(path) = &out {
        match planfile::write(path, &plan) {
            Ok(()) if !common.quiet => crate::warn!(
                "plan saved to {}; apply it with `foobar apply {}`\n",
                path.display(),
                path.display()
            ),
            Ok(()) => {}
            Err(e @ planfile::PlanFileError::NothingPlanned { .. }) => unsaved = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    if common.json {
        crate::say!("{}", json::document(&json::PlanDocument::new(&plan)));
    } else {
        crate::say!(
            "{}",
            human::plan(&plan, &human::Styles::new(colour()), show_unchanged)
        );
    }
    if let Some(e) = unsaved {
        // After the plan's own output, which says why each host failed.
        let e = CliError::from(e);
        super::print_error(&e, false);
        return Ok(ExitCategory::HostFailed);
    }
    Ok(if !plan.failed.is_empty() {
        ExitCategory::HostFailed
    } else if detailed_exitcode && plan.has_changes() {
        ExitCategory::ChangesPresent
    } else {
        ExitCategory::Ok
    })
}
