//! `foobar plan`: read what is live on each host and show what apply would change.

use std::path::PathBuf;

use clap::Args;

use super::planning::{PlanInput, make_plan};
use super::rotation::{balancer, mark_out_of_rotation};
use super::session::{Session, colour, finish_all, has_rolling_play, render_all};
use super::{CliError, Common};
use crate::error::ExitCategory;
use crate::plan::planfile;
use crate::report::{Progress, Reporter, human, json};

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: Common,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Save the plan (JSON, no secrets) for `foobar apply PLANFILE`.
    #[arg(long)]
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
    let reporter = Progress::new(common.verbose);
    let conn = session
        .connect(&session.hosts, common.forks, &reporter)
        .await;
    let primary = session.connect_primary(&conn.transports).await;
    let input = PlanInput {
        ctx: &ctx,
        desired: &desired,
        transports: &conn.transports,
        primary: primary.as_ref(),
        failed: conn.failed.clone(),
        forks: common.forks,
        lock: None,
    };
    let mut plan = make_plan(&session, input, &reporter).await;
    if has_rolling_play(&desired) {
        let b = balancer(&session, &conn.transports).await;
        mark_out_of_rotation(&mut plan, b.as_ref(), &desired).await;
    }
    finish_all(&conn.transports).await;
    reporter.finish();
    if let Some(path) = &out {
        planfile::write(path, &plan)?;
        crate::warn!(
            "plan saved to {}; apply it with `foobar apply {}`\n",
            path.display(),
            path.display()
        );
    }
    if common.json {
        crate::say!("{}", json::document(&plan));
    } else {
        crate::say!(
            "{}",
            human::plan(&plan, &human::Styles::new(colour()), show_unchanged)
        );
    }
    Ok(if !plan.failed.is_empty() {
        ExitCategory::HostFailed
    } else if detailed_exitcode && plan.has_changes() {
        ExitCategory::ChangesPresent
    } else {
        ExitCategory::Ok
    })
}
