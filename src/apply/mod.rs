//! Apply: run a [`Plan`]'s changes, host by host, play by play.
//!
//! In: the plan, each host's desired state, an open transport per host. Out: a [`Report`]
//! with what happened on every host. Holds: nothing runs that the plan does not list; before
//! changing a host, foobar takes the host's lock and re-reads its facts, and refuses the host
//! if they moved since the plan ("plan is stale"). Plays run in playbook order with a barrier
//! between them; hosts within a play run in parallel up to `forks`; one host failing never
//! stops its siblings, but a failed host takes no further plays. `dry_run` walks the same
//! steps and reports what would happen without sending a single mutating command.

pub mod database;
pub mod rolling;
pub mod script;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::gather;
use crate::inventory::HostName;
use crate::plan::{Action, HostPlan, Plan};
use crate::render::DesiredState;
use crate::report::{Event, Reporter};
use crate::transport::{RemoteCommand, Transport};

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
    /// Each host's last play with work, where its script may release the lock.
    pub last_play: BTreeMap<HostName, usize>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum HostStatus {
    Unchanged,
    Changed,
    WouldChange,
    Failed {
        stage: String,
        message: String,
    },
    RolledBack {
        handler: String,
        error: String,
        after_restore: String,
    },
    NotStarted {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    #[serde(flatten)]
    pub status: HostStatus,
    /// Every step that ran, in order: `file /etc/haproxy/haproxy.cfg`, `handler reload haproxy`.
    pub done: Vec<String>,
    pub skipped: Vec<String>,
    pub remote_commands: u64,
    /// The host's last script released its lock itself.
    #[serde(skip)]
    pub unlocked: bool,
}

impl Default for HostReport {
    fn default() -> Self {
        Self::new()
    }
}

impl HostReport {
    pub fn new() -> Self {
        Self {
            status: HostStatus::Unchanged,
            done: vec![],
            skipped: vec![],
            remote_commands: 0,
            unlocked: false,
        }
    }
    pub fn failed(&self) -> bool {
        matches!(
            self.status,
            HostStatus::Failed { .. }
                | HostStatus::RolledBack { .. }
                | HostStatus::NotStarted { .. }
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub dry_run: bool,
    pub hosts: BTreeMap<HostName, HostReport>,
    pub interrupted: bool,
}

impl Report {
    pub fn failed_hosts(&self) -> Vec<&HostName> {
        self.hosts
            .iter()
            .filter(|(_, r)| r.failed())
            .map(|(h, _)| h)
            .collect()
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

fn lock_message(holder: &str) -> String {
    // A holder on this machine whose process is gone left the lock behind when it died.
    let me = crate::apply::machine_name();
    let dead = holder
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0] == "pid")
        .and_then(|w| w[1].parse::<u32>().ok())
        .filter(|_| holder.contains(&format!("@{me} ")))
        .is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists());
    if dead {
        format!(
            "locked by a run that is no longer alive ({holder}); run again with --break-lock to take the lock over"
        )
    } else {
        format!(
            "locked by another run ({holder}); wait for it to finish, or if it died, run again with --break-lock"
        )
    }
}

pub fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn decode_err(line: &str) -> (String, String, String) {
    let mut parts = line.splitn(4, '\t');
    parts.next();
    let stage = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let output = String::from_utf8_lossy(&script::base64_decode(parts.next().unwrap_or("")))
        .trim()
        .to_string();
    (stage, target, output)
}

/// Execute `plan` on `targets`. Hosts not in the plan or without changes are left alone.
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
    let mut reports: BTreeMap<HostName, HostReport> = BTreeMap::new();
    let changing: Vec<&HostName> = plan
        .hosts
        .iter()
        .filter(|(h, p)| p.has_changes() && targets.contains_key(*h))
        .map(|(h, _)| h)
        .collect();
    for h in plan.hosts.keys() {
        reports.insert(h.clone(), HostReport::new());
    }

    // Lock and re-check facts, all hosts in parallel.
    if !options.dry_run {
        let results: Vec<(HostName, Result<(), String>, u64)> =
            futures::stream::iter(changing.iter())
                .map(|host| async move {
                    let t = &targets[*host];
                    let hp = &plan.hosts[*host];
                    let before = t.transport.commands_run();
                    let r = lock_and_check(t, hp, options).await;
                    (
                        HostName::clone(host),
                        r,
                        t.transport.commands_run() - before,
                    )
                })
                .buffer_unordered(options.forks.max(1))
                .collect()
                .await;
        for (host, r, n) in results {
            let rep = reports.get_mut(&host).expect("host in plan");
            rep.remote_commands += n;
            if let Err(message) = r {
                fail(reporter, &host, rep, "lock", message);
            }
        }
    }

    let play_indexes: BTreeSet<usize> = targets
        .values()
        .flat_map(|t| t.desired.plays.iter().map(|p| p.index))
        .collect();
    // Hosts that could not even be planned (unreachable) count as failed.
    let total = (changing.len() + plan.failed.len()).max(1);
    let mut interrupted = false;
    for play_index in play_indexes {
        if cancelled.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let runnable: Vec<&HostName> = changing
            .iter()
            .copied()
            .filter(|h| !reports[*h].failed())
            .filter(|h| {
                let hp = &plan.hosts[*h];
                hp.changes
                    .iter()
                    .any(|c| c.play == play_index && c.action != Action::Unchanged)
                    || hp.handlers.iter().any(|x| x.play == play_index)
            })
            .collect();
        let failed_so_far = reports.values().filter(|r| r.failed()).count() + plan.failed.len();
        let mut runnable = runnable;
        if let Some(max) = options.max_fail_percentage
            && failed_so_far * 100 > total * max as usize
        {
            for h in runnable.drain(..) {
                reports.get_mut(h).expect("host").status = HostStatus::NotStarted {
                    reason: format!("--max-fail-percentage {max} exceeded"),
                };
            }
        }
        let serial = options.serial.or_else(|| {
            targets
                .values()
                .flat_map(|t| t.desired.plays.iter())
                .find(|p| p.index == play_index)
                .and_then(|p| p.serial)
        });
        let mut rolling = match (balancer, serial) {
            (Some(b), Some(n)) if n > 0 && !options.dry_run => Some((b, n as usize)),
            _ => None,
        };
        // No HAProxy answering yet (a first apply, before the load balancer play): no host
        // takes traffic through it, so there is nothing to drain.
        if let Some((b, _)) = rolling
            && b.server_state_all().await.is_err()
        {
            rolling = None;
        }
        let (members, others): (Vec<&HostName>, Vec<&HostName>) = match rolling {
            Some((b, _)) => runnable.into_iter().partition(|h| b.servers.contains(h)),
            None => (vec![], runnable),
        };
        let mut results: Vec<(HostName, HostReport)> = futures::stream::iter(others)
            .map(|host| {
                let prior = reports.get(host).cloned().unwrap_or_else(HostReport::new);
                async move {
                    let mut rep = prior;
                    if cancelled.load(Ordering::SeqCst) {
                        rep.skipped
                            .push(format!("play {play_index}: interrupted before it started"));
                        return (host.clone(), rep);
                    }
                    run_play(
                        host,
                        play_index,
                        plan,
                        &targets[host],
                        options,
                        reporter,
                        redactor,
                        &mut rep,
                    )
                    .await;
                    (host.clone(), rep)
                }
            })
            .buffer_unordered(options.forks.max(1))
            .collect()
            .await;
        if let Some((b, n)) = rolling {
            let mut stopped: Option<String> = None;
            for batch in members.chunks(n) {
                if let Some(why) = &stopped {
                    for h in batch {
                        let mut rep = reports.get(*h).cloned().unwrap_or_else(HostReport::new);
                        rep.status = HostStatus::NotStarted {
                            reason: why.clone(),
                        };
                        results.push(((*h).clone(), rep));
                    }
                    continue;
                }
                if cancelled.load(Ordering::SeqCst) {
                    stopped = Some("interrupted before its turn in the rollout".into());
                    for h in batch {
                        let mut rep = reports.get(*h).cloned().unwrap_or_else(HostReport::new);
                        rep.skipped
                            .push(format!("play {play_index}: interrupted before it started"));
                        results.push(((*h).clone(), rep));
                    }
                    continue;
                }
                let done: Vec<(HostName, HostReport)> =
                    futures::future::join_all(batch.iter().map(|h| {
                        let prior = reports.get(*h).cloned().unwrap_or_else(HostReport::new);
                        roll_host(
                            h,
                            play_index,
                            plan,
                            &targets[*h],
                            options,
                            b,
                            reporter,
                            redactor,
                            prior,
                        )
                    }))
                    .await;
                if let Some((h, _)) = done.iter().find(|(_, r)| r.failed()) {
                    stopped = Some(format!("the rollout stopped after {h} failed"));
                }
                results.extend(done);
            }
        }
        for (h, r) in results {
            reports.insert(h, r);
        }
    }

    // Release locks of hosts whose last script did not (failures, interruptions).
    if !options.dry_run {
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

async fn lock_and_check(
    t: &Target<'_>,
    hp: &HostPlan,
    options: &ApplyOptions,
) -> Result<(), String> {
    let mut s = script::lock_script(
        &format!("{} run {}", options.holder, options.run_id),
        options.break_lock,
    );
    s.push_str(&gather::gather_script(t.desired, None));
    let out = t
        .transport
        .run(&RemoteCommand::script(options.timeout), Some(s.as_bytes()))
        .await
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!(
            "reading the host's state failed: {}",
            out.stderr_text().trim()
        ));
    }
    let text = out.stdout_text();
    let locked = text.starts_with("#foobar:locked\n");
    let body = text.strip_prefix("#foobar:locked\n").unwrap_or(&text);
    let state = gather::parse_gather_output(t.transport.host().as_str(), body)
        .map_err(|e| e.to_string())?;
    if !locked {
        return Err(lock_message(
            state.lock.as_deref().unwrap_or("unknown holder"),
        ));
    }
    if state.digest != hp.facts_digest {
        unlock(t.transport.as_ref(), &options.run_id).await;
        return Err(
            "plan is stale: the host changed since the plan was made; run `foobar plan` again"
                .into(),
        );
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn run_play(
    host: &HostName,
    play_index: usize,
    plan: &Plan,
    target: &Target<'_>,
    options: &ApplyOptions,
    reporter: &dyn Reporter,
    redactor: &crate::secret::Redactor,
    rep: &mut HostReport,
) {
    let hp = &plan.hosts[host];
    let Some(play) = target.desired.plays.iter().find(|p| p.index == play_index) else {
        return;
    };
    let changes: Vec<_> = hp
        .changes
        .iter()
        .filter(|c| c.play == play_index && c.action != Action::Unchanged)
        .collect();
    let handlers: Vec<_> = hp
        .handlers
        .iter()
        .filter(|h| h.play == play_index)
        .collect();
    reporter.event(Event::PlayStarted {
        host: host.clone(),
        play: play.name.clone(),
    });
    if options.dry_run {
        for c in &changes {
            rep.done
                .push(format!("{:?} {} {}", c.action, kind_word(c.kind), c.target).to_lowercase());
        }
        for h in &handlers {
            rep.done.push(format!("handler {}", h.name));
        }
        return;
    }
    // Returning a host to rotation is the rollout's job (`roll_host`), not the script's.
    let changes: Vec<_> = changes
        .into_iter()
        .filter(|c| c.kind != crate::plan::ChangeKind::Rotation)
        .collect();
    let (db_changes, changes): (Vec<_>, Vec<_>) = changes
        .into_iter()
        .partition(|c| c.kind == crate::plan::ChangeKind::Database);
    if !changes.is_empty() || !handlers.is_empty() {
        run_play_script(
            host, play, changes, handlers, target, options, reporter, redactor, rep,
        )
        .await;
        if rep.failed() {
            return;
        }
    }
    if let (false, Some(role), Some(cfg)) = (db_changes.is_empty(), play.database, &target.database)
    {
        let primary = target.primary.as_ref().unwrap_or(&target.transport);
        let before = target.transport.commands_run() + primary.commands_run();
        let result = database::reconcile(
            role,
            target.transport.as_ref(),
            primary.as_ref(),
            cfg,
            options.timeout,
            redactor,
        )
        .await;
        rep.remote_commands += target.transport.commands_run() + primary.commands_run() - before;
        match result {
            Ok(done) => {
                for d in done {
                    reporter.event(Event::StepDone {
                        host: host.clone(),
                        step: d.clone(),
                    });
                    rep.done.push(d);
                }
            }
            Err(message) => fail(reporter, host, rep, "database", redactor.redact(&message)),
        }
    }
}

/// The play's files, packages, services and handlers: one remote script.
#[allow(clippy::too_many_arguments)]
async fn run_play_script(
    host: &HostName,
    play: &crate::render::DesiredPlay,
    changes: Vec<&crate::plan::Change>,
    handlers: Vec<&crate::plan::HandlerRef>,
    target: &Target<'_>,
    options: &ApplyOptions,
    reporter: &dyn Reporter,
    redactor: &crate::secret::Redactor,
    rep: &mut HostReport,
) {
    // The host's last script releases the lock itself, saving a round trip, unless more
    // work follows it (database steps, a rollout's health gate).
    let last_play = options.last_play.get(host).copied();
    let unlock = last_play == Some(play.index) && play.database.is_none() && play.serial.is_none();
    let input = script::ScriptInput {
        play,
        changes,
        handlers,
        run_id: &options.run_id,
        backup_dir: &format!("/var/backups/foobar/{}", options.run_id),
        unlock,
    };
    let text = script::build(&input);
    let before = target.transport.commands_run();
    let result = target
        .transport
        .run(
            &RemoteCommand::script(options.timeout),
            Some(text.as_bytes()),
        )
        .await;
    rep.remote_commands += target.transport.commands_run() - before;
    let out = match result {
        Ok(o) => o,
        Err(e) => {
            let message = redactor.redact(&e.to_string());
            fail(reporter, host, rep, play.name.clone(), message);
            return;
        }
    };
    let stdout = out.stdout_text();
    let mut done_marker = false;
    for line in stdout.lines() {
        let kind = line.split('\t').next().unwrap_or("");
        match kind {
            "OK" => {
                let mut p = line.splitn(3, '\t');
                p.next();
                let what = format!("{} {}", p.next().unwrap_or(""), p.next().unwrap_or(""));
                reporter.event(Event::StepDone {
                    host: host.clone(),
                    step: what.clone(),
                });
                rep.done.push(what);
            }
            "SKIP" => {
                let parts: Vec<&str> = line.split('\t').collect();
                rep.skipped.push(format!(
                    "{} {}: {}",
                    parts.get(1).unwrap_or(&""),
                    parts.get(2).unwrap_or(&""),
                    parts.get(3).unwrap_or(&"")
                ));
            }
            "ERR" => {
                let (stage, target_path, output) = decode_err(line);
                let message = redactor.redact(&format!("{stage} {target_path} failed:\n{output}"));
                reporter.event(Event::HostFailed {
                    host: host.clone(),
                    message: message.clone(),
                });
                rep.status = HostStatus::Failed { stage, message };
            }
            "ROLLBACK" => {
                let parts: Vec<&str> = line.split('\t').collect();
                let first =
                    String::from_utf8_lossy(&script::base64_decode(parts.get(3).unwrap_or(&"")))
                        .trim()
                        .to_string();
                let second =
                    String::from_utf8_lossy(&script::base64_decode(parts.get(4).unwrap_or(&"")))
                        .trim()
                        .to_string();
                let handler = parts.get(2).unwrap_or(&"").to_string();
                reporter.event(Event::HostFailed {
                    host: host.clone(),
                    message: format!("handler {handler} failed; previous files restored"),
                });
                rep.status = HostStatus::RolledBack {
                    handler,
                    error: redactor.redact(&first),
                    after_restore: redactor.redact(&second),
                };
            }
            "DONE" => {
                done_marker = true;
                rep.unlocked = unlock;
            }
            _ => {}
        }
    }
    if !done_marker && !rep.failed() && out.code == Some(124) {
        let message = format!(
            "timed out after {} s (the remote `timeout` stopped the apply script); raise `command_timeout` under `ssh:` if that is expected",
            options.timeout.as_secs()
        );
        fail(reporter, host, rep, play.name.clone(), message);
    } else if !done_marker && !rep.failed() {
        let message = redactor.redact(&format!(
            "the apply script stopped early (exit {:?}): {}",
            out.code,
            out.stderr_text().trim()
        ));
        fail(reporter, host, rep, play.name.clone(), message);
    }
}

/// One host of a rollout: out of rotation, apply, health gate, back in rotation; or restore
/// and stay out.
#[allow(clippy::too_many_arguments)]
async fn roll_host(
    host: &HostName,
    play_index: usize,
    plan: &Plan,
    target: &Target<'_>,
    options: &ApplyOptions,
    b: &rolling::Balancer,
    reporter: &dyn Reporter,
    redactor: &crate::secret::Redactor,
    prior: HostReport,
) -> (HostName, HostReport) {
    let mut rep = prior;
    if let Err(e) = b.take_out(host).await {
        fail(reporter, host, &mut rep, "drain", e);
        return (host.clone(), rep);
    }
    rep.done
        .push(format!("drained and put in maintenance on {}", b.host));
    let first_step = rep.done.len();
    run_play(
        host, play_index, plan, target, options, reporter, redactor, &mut rep,
    )
    .await;
    if rep.failed() {
        // Nothing new went live (validation) or the script restored it (handler): the previous
        // version may serve again.
        if b.health_gate(host).await.is_ok() && b.put_back(host).await.is_ok() {
            rep.done.push(format!(
                "back in rotation on {} with the previous version",
                b.host
            ));
        } else {
            rep.skipped
                .push(format!("left in maintenance on {}", b.host));
        }
        return (host.clone(), rep);
    }
    match b.health_gate(host).await {
        Ok(()) => match b.put_back(host).await {
            Ok(()) => rep.done.push(format!(
                "health gate passed; back in rotation: {} reports it UP",
                b.host
            )),
            Err(e) => fail(reporter, host, &mut rep, "rotation", e),
        },
        Err(e) => {
            let paths: Vec<String> = rep.done[first_step..]
                .iter()
                .filter_map(|d| {
                    d.strip_prefix("file ")
                        .or_else(|| d.strip_prefix("link "))
                        .or_else(|| d.strip_prefix("delete "))
                        .map(String::from)
                })
                .collect();
            let play = target.desired.plays.iter().find(|p| p.index == play_index);
            let handlers: Vec<String> = play
                .map(|p| {
                    p.handlers
                        .iter()
                        .filter(|h| rep.done[first_step..].contains(&format!("handler {}", h.name)))
                        .map(|h| h.command())
                        .collect()
                })
                .unwrap_or_default();
            let script = rolling::restore_script(&options.run_id, &paths, &handlers);
            let restored = target
                .transport
                .run(
                    &RemoteCommand::script(options.timeout),
                    Some(script.as_bytes()),
                )
                .await;
            let how = match restored {
                Ok(o) if o.success() => format!(
                    "restored {} files and re-ran the play's handlers",
                    paths.len()
                ),
                Ok(o) => format!("restoring the files failed: {}", o.stderr_text().trim()),
                Err(e) => format!("restoring the files failed: {e}"),
            };
            let message = format!(
                "{e}; {how}; left in maintenance on {} (out of rotation)",
                b.host
            );
            fail(
                reporter,
                host,
                &mut rep,
                "health gate",
                redactor.redact(&message),
            );
        }
    }
    (host.clone(), rep)
}

/// Release the host's lock if this run holds it. Best effort: a lock left behind names its
/// holder, and `--break-lock` takes it over.
async fn unlock(transport: &dyn Transport, run_id: &str) {
    let s = script::unlock_script(run_id);
    let _ = transport
        .run(
            &RemoteCommand::script(Duration::from_secs(30)),
            Some(s.as_bytes()),
        )
        .await;
}

/// Mark a host failed and tell the reporter, in one place.
fn fail(
    reporter: &dyn Reporter,
    host: &HostName,
    rep: &mut HostReport,
    stage: impl Into<String>,
    message: String,
) {
    reporter.event(Event::HostFailed {
        host: host.clone(),
        message: message.clone(),
    });
    rep.status = HostStatus::Failed {
        stage: stage.into(),
        message,
    };
}

fn kind_word(k: crate::plan::ChangeKind) -> &'static str {
    use crate::plan::ChangeKind::*;
    match k {
        Package => "package",
        Directory => "directory",
        File => "file",
        Link => "link",
        Service => "service",
        Database => "database",
        Rotation => "rotation",
    }
}
