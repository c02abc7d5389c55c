//! `foobar verify`: replication first, then the load balancer, Nginx and the app.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;

use super::session::{Connections, Session, Support, colour, progress, render_all};
use super::{CliError, Common};
use crate::error::ExitCategory;
use crate::inventory::HostName;
use crate::render::DesiredState;
use crate::report::{Reporter, human, json};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Largest acceptable replication lag, in seconds.
    #[arg(long, default_value_t = 10)]
    pub max_lag: u64,
    /// Seconds to wait for HAProxy's health checks to bring UP servers whose hosts are
    /// healthy (just after an apply they need a few good checks in a row); 0: no wait.
    #[arg(long, default_value_t = 15, value_name = "SECONDS")]
    pub settle: u64,
    /// Run the checks again every interval, printing only changes of state with a
    /// timestamp (`--json`: one object per line) until interrupted; exit code of the last
    /// round. Rounds do not wait to settle.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between rounds of `--watch`.
    #[arg(
        long,
        default_value_t = 10.0,
        value_name = "SECONDS",
        requires = "watch"
    )]
    pub interval: f64,
}

/// What `verify` checks, for a loaded session and its open connections (also `graph --live`).
pub(super) fn verify_input<'a>(
    session: &'a Session,
    desired: &'a BTreeMap<HostName, DesiredState>,
    conn: &'a Connections,
    max_lag: u64,
    settle: Duration,
) -> crate::verify::VerifyInput<'a> {
    crate::verify::VerifyInput {
        inventory: &session.inventory,
        desired,
        transports: &conn.transports,
        unreachable: &conn.failed,
        database: session.database.as_deref(),
        max_lag,
        timeout: Duration::from_secs(session.inventory.ssh.command_timeout.min(120)),
        settle,
    }
}

pub async fn run(args: VerifyArgs) -> Result<ExitCategory, CliError> {
    let VerifyArgs {
        common,
        max_lag,
        settle,
        watch,
        interval,
    } = args;
    // Checked before anything connects.
    let interval = Duration::try_from_secs_f64(interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| CliError::Usage {
            message: format!("--interval {interval} is not a positive number of seconds"),
            hint: "e.g. --interval 5".into(),
        })?;
    let session = Session::load(&common)?;
    let ctx = session.render_context()?;
    let desired = render_all(&ctx, &session.hosts)?;
    let reporter = progress(&common);
    let conn = session
        .connect(&session.hosts, Support::default(), common.forks, &reporter)
        .await;
    let settle = Duration::from_secs(if watch { 0 } else { settle });
    let input = verify_input(&session, &desired, &conn, max_lag, settle);
    if watch {
        reporter.finish();
        let last = crate::verify::watch::watch(&input, interval, common.json).await;
        conn.finish().await;
        return Ok(if last.is_some_and(|h| h.healthy()) {
            ExitCategory::Ok
        } else {
            ExitCategory::HostFailed
        });
    }
    let mut health = crate::verify::verify(&input).await;
    super::backup::add_verify_checks(&session.inventory, &conn.transports, &mut health).await;
    conn.finish().await;
    reporter.finish();
    if common.json {
        crate::say!("{}", json::document(&json::VerifyDocument::new(&health)));
    } else {
        let order = |h: &HostName| {
            if session.inventory.topology.is_replica(h) {
                0
            } else if session.inventory.topology.is_primary(h) {
                1
            } else {
                2
            }
        };
        crate::say!(
            "{}",
            human::health(&health, &human::Styles::new(colour()), order)
        );
    }
    Ok(if health.healthy() {
        ExitCategory::Ok
    } else {
        ExitCategory::HostFailed
    })
}
