//! The backup checks `foobar verify` adds to the backup host's: the newest backup's age and
//! restore test ([`crate::backup::backup_checks`]), and the binary log archive caught up with
//! the primary's position. In: the inventory and the open connections; out: [`Check`]s in
//! the [`Health`] report, each failure with its hint.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{connect, list};
use crate::backup;
use crate::error::Diagnostic;
use crate::inventory::{Backups, HostName, Inventory};
use crate::mysql::Check;
use crate::transport::Transport;
use crate::verify::{Health, HostHealth};

/// `verify`'s backup checks, added to the backup host's checks: the newest backup's age and
/// restore test, and the binary log archive caught up with the primary.
pub async fn add_verify_checks(
    inv: &Inventory,
    transports: &BTreeMap<HostName, Arc<dyn Transport>>,
    health: &mut Health,
) {
    let Some(b) = &inv.backups else { return };
    let Some(t) = transports.get(&b.host) else {
        return;
    };
    let mut checks = match list(inv, b, t.as_ref()).await {
        Ok(records) => backup::backup_checks(b, &records, jiff::Timestamp::now().as_second()),
        Err(e) => vec![Check::fail(
            "backup_age",
            e.to_string(),
            "run `foobar apply`",
        )],
    };
    checks.push(archive_check(inv, b, transports, t.as_ref()).await);
    health
        .hosts
        .entry(b.host.clone())
        .or_insert_with(|| HostHealth { checks: vec![] })
        .checks
        .extend(checks);
}

async fn archive_check(
    inv: &Inventory,
    b: &Backups,
    transports: &BTreeMap<HostName, Arc<dyn Transport>>,
    t: &dyn Transport,
) -> Check {
    const NAME: &str = "binlog_archive";
    let Some(primary) = inv.groups.get("db_primary").and_then(|g| g.hosts.first()) else {
        return Check::fail(
            NAME,
            "no db_primary in the inventory",
            "add the primary to db_primary",
        );
    };
    let own;
    let p: &dyn Transport = match transports.get(primary) {
        Some(p) => p.as_ref(),
        None => match connect(inv, primary).await {
            Ok(c) => {
                own = c;
                own.as_ref()
            }
            Err(e) => {
                return Check::fail(
                    NAME,
                    format!("cannot reach {primary}: {e}"),
                    "check the primary",
                );
            }
        },
    };
    let tmo = Duration::from_secs(30);
    let status_script = backup::primary_status_script();
    // The archive follows within milliseconds when it runs: wait up to max_lag (at most 15 s)
    // for it to reach the primary's position.
    let wait = b.archive_max_lag.min(Duration::from_secs(15));
    let deadline = Instant::now() + wait;
    loop {
        let status = match backup::run_script(p, &status_script, tmo).await {
            Ok(s) => s,
            Err((_, e)) => {
                return Check::fail(
                    NAME,
                    format!("cannot read the primary's binary log position: {e}"),
                    "check the primary's server",
                );
            }
        };
        let archived = backup::run_script(t, &backup::archive_stat_script(b), tmo)
            .await
            .unwrap_or_default();
        let (file, pos, size) = match backup::archive_lag(&status, &archived) {
            Ok(x) => x,
            Err(e) => {
                return Check::fail(NAME, e.to_string(), e.hint().unwrap_or_default());
            }
        };
        if size.is_some_and(|s| s >= pos) {
            return Check::pass(
                NAME,
                format!(
                    "{}: {file} archived up to the primary's position {pos}",
                    b.host
                ),
            );
        }
        if Instant::now() >= deadline {
            let have = match size {
                Some(s) => format!("{s} of {pos} bytes of {file}"),
                None => format!("nothing of {file} (the primary is at {pos})"),
            };
            return Check::fail(
                NAME,
                format!(
                    "the archive on {} has {have} after {} s",
                    b.host,
                    wait.as_secs()
                ),
                format!(
                    "check `systemctl status foobar-binlog-archive` on {} (`foobar apply` starts it) and the archive account on {primary}",
                    b.host
                ),
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
