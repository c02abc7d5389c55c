//! `foobar backup now`, `foobar backup list`, `foobar restore`, and the backup checks
//! `foobar verify` adds. Every check of the user's input runs before anything connects: a bad
//! target, a restore over the live primary without its flag, or an inventory without
//! `backups:` ends with one error and exit 1, nothing touched. The checks `verify` adds are
//! in [`checks`].

mod checks;

pub use checks::add_verify_checks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::{CliError, Common};
use crate::backup::{self, BackupRecord, RestorePlan, RestoreTarget};
use crate::error::{Diagnostic, ExitCategory};
use crate::inventory::{self, Backups, HostName, Inventory};
use crate::transport::{self, Transport};

/// `foobar backup now | list` (`backups list`, the older spelling, still works).
#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// Take a backup now: the run the timer starts (same script, same lock), then its
    /// restore test and retention.
    Now {
        #[command(flatten)]
        common: Common,
        /// The host that takes it; must be the inventory's backup host.
        #[arg(long)]
        host: Option<String>,
    },
    /// Every backup on the backup host: time, size, GTID position, duration, verified.
    List {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub common: Common,
    /// Restore up to here: a UTC time (`2026-11-29 20:30:00`, RFC 3339, `@UNIX`) or a GTID
    /// (`0-1-42`, inclusive).
    #[arg(long)]
    pub to: String,
    /// The host to restore on (default: the backup host, into a scratch directory).
    #[arg(long)]
    pub into: Option<String>,
    /// Scratch directory on the backup host (default: <backups.dir>/scratch/restore-<time>).
    #[arg(long, conflicts_with = "into")]
    pub dir: Option<String>,
    /// Show the plan and change nothing (`--check`, as in Ansible).
    #[arg(long, visible_alias = "check")]
    pub dry_run: bool,
    /// Needed to name the live primary with --into.
    #[arg(long)]
    pub over_live_primary: bool,
}

fn usage(message: impl Into<String>, hint: impl Into<String>) -> CliError {
    CliError::Usage {
        message: message.into(),
        hint: hint.into(),
    }
}

/// A backup error for the user, with its own hint.
fn failed(e: &backup::BackupError) -> CliError {
    usage(e.to_string(), e.hint().unwrap_or_default())
}

fn configured(inv: &Inventory) -> Result<&Backups, CliError> {
    inv.backups.as_ref().ok_or_else(|| {
        usage(
            format!("{} has no `backups:` section: no backups are configured", inv.path.display()),
            "add `backups: {}` (defaults: the first replica, daily, /var/backups/foobar-database) and the secret `binlog_archive_password`, then run `foobar apply`",
        )
    })
}

async fn connect(inv: &Inventory, host: &HostName) -> Result<Arc<dyn Transport>, CliError> {
    transport::connect(&inv.connection(host))
        .await
        .map(Arc::from)
        .map_err(|e| {
            let hint = e.hint().unwrap_or_default();
            usage(e.to_string(), hint)
        })
}

fn timeout(inv: &Inventory) -> Duration {
    Duration::from_secs(inv.ssh.command_timeout)
}

async fn list(
    inv: &Inventory,
    b: &Backups,
    t: &dyn Transport,
) -> Result<Vec<BackupRecord>, CliError> {
    let text = backup::run_script(t, &backup::listing_script(b), timeout(inv))
        .await
        .map_err(|(_, out)| {
            usage(
                format!("cannot list backups on {}: {out}", b.host),
                "check that the host is up and `foobar apply` has run",
            )
        })?;
    backup::parse_listing(&b.host, &text).map_err(|e| failed(&e))
}

/// `backup now --json`: the backup taken (null if none was recorded).
fn now_document(host: &HostName, seconds: f64, backup: Option<&BackupRecord>) -> serde_json::Value {
    serde_json::json!({
        "format_version": backup::FORMAT_VERSION,
        "host": host,
        "seconds": seconds,
        "backup": backup,
        "summary": {
            "verified": backup.and_then(|b| b.verified.as_ref()).is_some_and(|v| v.ok),
        },
    })
}

/// `backup list --json`: every backup directory, newest last, and their counts.
fn list_document(host: &HostName, dir: &str, records: &[BackupRecord]) -> serde_json::Value {
    serde_json::json!({
        "format_version": backup::FORMAT_VERSION,
        "host": host,
        "dir": dir,
        "backups": records,
        "summary": {
            "backups": records.len(),
            "good": records.iter().filter(|r| r.good).count(),
            "verified": records
                .iter()
                .filter(|r| r.verified.as_ref().is_some_and(|v| v.ok))
                .count(),
        },
    })
}

/// `restore --json`: the plan, and with `done` (seconds, the scratch server's socket) what
/// was restored; `--dry-run` has `restored: false` and no `done` fields.
fn restore_document(plan: &RestorePlan, done: Option<(f64, &str)>) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "format_version": backup::FORMAT_VERSION,
        "plan": plan,
        "restored": done.is_some(),
        "summary": { "restored": done.is_some() },
    });
    if let Some((seconds, socket)) = done {
        doc["restore_seconds"] = seconds.into();
        doc["socket"] = socket.into();
    }
    doc
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    crate::say!(
        "{}\n",
        serde_json::to_string_pretty(value).map_err(anyhow::Error::from)?
    );
    Ok(())
}

fn table(records: &[BackupRecord]) -> String {
    let mut out = format!(
        "{:<18} {:<20} {:>10} {:<14} {:>8}  {}\n",
        "BACKUP", "FINISHED (UTC)", "SIZE", "GTID", "SECONDS", "VERIFIED"
    );
    for r in records {
        match &r.meta {
            Some(m) => {
                let verified = match &r.verified {
                    Some(v) if v.ok => format!("yes ({} tables)", v.tables),
                    Some(_) => "FAILED".to_string(),
                    None => "no".to_string(),
                };
                out.push_str(&format!(
                    "{:<18} {:<20} {:>10} {:<14} {:>8}  {}\n",
                    r.id,
                    backup::utc(m.finished),
                    backup::human_size(m.size_bytes),
                    m.gtid,
                    m.seconds,
                    verified
                ));
            }
            None => out.push_str(&format!(
                "{:<18} {:<20} {:>10} {:<14} {:>8}  {}\n",
                r.id,
                "-",
                "-",
                "-",
                "-",
                "incomplete: not a good backup (running, or its run died)"
            )),
        }
    }
    out
}

pub async fn backup_now(common: Common, host: Option<String>) -> Result<ExitCategory, CliError> {
    let inv = inventory::load_stack_inventory(&common.inventory, &common.playbook)?;
    let b = configured(&inv)?;
    if let Some(h) = &host
        && h != b.host.as_str()
    {
        return Err(usage(
            format!("{h} does not take backups: backups.host is {}", b.host),
            format!(
                "set `backups: {{ host: {h} }}` and run `foobar apply` to move them, or leave out --host"
            ),
        ));
    }
    let t = connect(&inv, &b.host).await?;
    let started = Instant::now();
    crate::warn!("backup on {}: {}\n", b.host, backup::BACKUP_COMMAND);
    let script = backup::backup_now_script();
    let result = backup::run_script(t.as_ref(), &script, timeout(&inv)).await;
    let records = match result {
        Ok(_) => list(&inv, b, t.as_ref()).await?,
        Err((Some(backup::BUSY_EXIT), _)) => {
            t.finish().await;
            return Err(usage(
                format!("a backup is already running on {}", b.host),
                "wait for it to finish (`foobar backup list` shows it as incomplete meanwhile)",
            ));
        }
        Err((Some(64), _)) => {
            t.finish().await;
            return Err(usage(
                format!("the backup scripts are not installed on {}", b.host),
                "run `foobar apply` first",
            ));
        }
        Err((_, out)) => {
            t.finish().await;
            let tail: Vec<&str> = out.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(usage(
                format!("the backup on {} failed:\n{}", b.host, tail.join("\n")),
                "the whole log is backup.log in the backup's directory; no good backup was recorded by this run",
            ));
        }
    };
    t.finish().await;
    let newest = records
        .iter()
        .filter(|r| r.good)
        .max_by_key(|r| r.meta.as_ref().map(|m| m.finished));
    if common.json {
        print_json(&now_document(
            &b.host,
            started.elapsed().as_secs_f64(),
            newest,
        ))?;
    } else if let Some(r) = newest {
        crate::say!("{}", table(std::slice::from_ref(r)));
    }
    Ok(match newest.and_then(|r| r.verified.as_ref()) {
        Some(v) if v.ok => ExitCategory::Ok,
        _ => {
            crate::warn!("the new backup did not pass its restore test\n");
            ExitCategory::HostFailed
        }
    })
}

pub async fn backups_list(common: Common) -> Result<ExitCategory, CliError> {
    let inv = inventory::load_stack_inventory(&common.inventory, &common.playbook)?;
    let b = configured(&inv)?;
    let t = connect(&inv, &b.host).await?;
    let records = list(&inv, b, t.as_ref()).await;
    t.finish().await;
    let records = records?;
    if common.json {
        print_json(&list_document(&b.host, &b.dir, &records))?;
    } else if records.is_empty() {
        crate::warn!("no backups on {} in {}/backups\n", b.host, b.dir);
    } else {
        crate::say!("{}", table(&records));
    }
    Ok(ExitCategory::Ok)
}

pub async fn restore(args: RestoreArgs) -> Result<ExitCategory, CliError> {
    let inv = inventory::load_stack_inventory(&args.common.inventory, &args.common.playbook)?;
    let b = configured(&inv)?;
    let target = RestoreTarget::parse(&args.to).map_err(|e| failed(&e))?;
    let primary = inv
        .groups
        .get("db_primary")
        .and_then(|g| g.hosts.first())
        .cloned();
    if let Some(into) = &args.into {
        let host = HostName::new(into.clone());
        if !inv.hosts.contains_key(&host) {
            return Err(usage(
                format!("--into {into}: no such host in the inventory"),
                "name an inventory host, or leave out --into to restore into a scratch directory",
            ));
        }
        if Some(&host) == primary.as_ref() && !args.over_live_primary {
            return Err(usage(
                format!(
                    "{into} is the live primary: restoring over it replaces the data every client sees"
                ),
                "restore into a scratch directory (leave out --into), or pass --over-live-primary to see the plan",
            ));
        }
        if Some(&host) == primary.as_ref() {
            return Err(usage(
                format!(
                    "restoring over the live primary {into} is not automated: foobar restores into a scratch directory and leaves the switch to you"
                ),
                "plan: 1) `foobar restore --to ...` (scratch, on the backup host) and check it; 2) stop writes (drain the app in HAProxy); 3) dump the scratch server and load it into the primary, or copy its datadir in place with the server stopped",
            ));
        }
        if host != b.host {
            return Err(usage(
                format!(
                    "--into {into}: backups live on {}; restoring onto another host is not supported",
                    b.host
                ),
                format!(
                    "restore on {} (leave out --into, or --dir DIR for the scratch directory)",
                    b.host
                ),
            ));
        }
    }
    let scratch = match &args.dir {
        Some(d) => {
            backup::check_scratch_dir(d).map_err(|e| failed(&e))?;
            d.trim_end_matches('/').to_string()
        }
        None => format!(
            "{}/scratch/restore-{}",
            b.dir,
            jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
        ),
    };

    let t = connect(&inv, &b.host).await?;
    let records = list(&inv, b, t.as_ref()).await;
    let records = match records {
        Ok(r) => r,
        Err(e) => {
            t.finish().await;
            return Err(e);
        }
    };
    let chosen = match backup::choose(&records, &target) {
        Ok(c) => c,
        Err(e) => {
            t.finish().await;
            return Err(failed(&e));
        }
    };
    let meta = chosen.meta.as_ref().expect("chosen backups are good");
    let plan = RestorePlan {
        host: b.host.clone(),
        backup: chosen.id.clone(),
        backup_gtid: meta.gtid.clone(),
        backup_finished: backup::utc(meta.finished),
        target: target.describe(),
        scratch: scratch.clone(),
    };
    for line in plan.lines() {
        crate::warn!("plan: {line}\n");
    }
    if args.dry_run {
        t.finish().await;
        if args.common.json {
            print_json(&restore_document(&plan, None))?;
        }
        crate::warn!("dry run: nothing restored\n");
        return Ok(ExitCategory::Ok);
    }
    let started = Instant::now();
    let result = backup::run_script(t.as_ref(), &plan.script(b, &target), timeout(&inv)).await;
    let seconds = started.elapsed().as_secs_f64();
    t.finish().await;
    let out = result.map_err(|(_, out)| {
        usage(
            format!("the restore on {} failed: {out}", b.host),
            format!(
                "the scratch server's log is {scratch}/error.log; the live server was not touched"
            ),
        )
    })?;
    let socket = out
        .lines()
        .filter_map(|l| l.strip_prefix("restored\t"))
        .next_back()
        .and_then(|l| l.split('\t').nth(1))
        .unwrap_or_default()
        .to_string();
    if args.common.json {
        print_json(&restore_document(&plan, Some((seconds, &socket))))?;
    } else {
        crate::say!(
            "restored {} + binary logs up to {} into {} on {} in {:.1} s\n",
            plan.backup,
            plan.target,
            scratch,
            b.host,
            seconds
        );
        crate::say!("  query it:  ssh {} mariadb --socket={socket}\n", b.host);
        crate::say!(
            "  stop it:   ssh {} mariadb-admin --socket={socket} shutdown\n",
            b.host
        );
    }
    Ok(ExitCategory::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::json::documented::{example, shape_differences};

    const LISTING: &str = "#backup 20261129T200000Z\n#meta\n{\"id\": \"20261129T200000Z\", \"host\": \"web-02\", \"tool\": \"mariadb-backup\", \"started\": 1795982400, \"finished\": 1795982405, \"seconds\": 5, \"size_bytes\": 1048576, \"gtid\": \"0-1-10\", \"binlog_file\": \"mysql-bin.000002\", \"binlog_position\": 900}\n#verified\n{\"ok\": true, \"tables\": 2, \"checked_at\": 1795982410, \"seconds\": 4, \"detail\": \"2 tables: equal\"}\n";

    /// The backup commands' documents have the shape docs/json.md shows (their real output
    /// needs a backup host: the e2e tests run them).
    #[test]
    fn backup_documents_match_docs_json_md() {
        let host = HostName::new("web-02");
        let records = backup::parse_listing(&host, LISTING).unwrap();
        let plan = RestorePlan {
            host: host.clone(),
            backup: "20261129T200000Z".into(),
            backup_gtid: "0-1-10".into(),
            backup_finished: "2026-11-29 20:00:05".into(),
            target: "0-1-15".into(),
            scratch: "/var/backups/foobar-database/scratch/restore-20261130T090000Z".into(),
        };
        let mut report = Vec::new();
        for (name, got) in [
            ("backup-now", now_document(&host, 6.2, records.first())),
            (
                "backup-list",
                list_document(&host, "/var/backups/foobar-database", &records),
            ),
            (
                "restore",
                restore_document(&plan, Some((3.5, "/run/x/mysqld.sock"))),
            ),
        ] {
            for d in shape_differences(&example(name), &got) {
                report.push(format!("{name}: {d}"));
            }
        }
        assert!(report.is_empty(), "{}", report.join("\n"));
    }
}
