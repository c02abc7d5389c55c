//! One play on one host: its script (built by [`super::script`], run in one round trip, its
//! output read line by line through [`crate::crate::remote::parse_reply`]), then its database step.

use super::error::{ApplyError, Stage};
use super::outcome::{HostReport, HostStatus, Outcome, Skipped, fail};
use super::schedule::{DbSync, Run, SignalOnDrop};
use super::{Target, database, script};
use crate::event::Event;
use crate::inventory::HostName;
use crate::plan::Action;
use crate::remote::Reply;
use crate::shell;
use crate::transport::{Effect, RemoteCommand};

impl Run<'_, '_> {
    #[allow(clippy::too_many_arguments)]
    /// One play on one host: its script, then its database step.
    pub(super) async fn run_play(
        &self,
        host: &HostName,
        play_index: usize,
        target: &Target<'_>,
        unlock: bool,
        alone: bool,
        sync: DbSync<'_>,
        rep: &mut HostReport,
    ) {
        let (plan, options, reporter, redactor) =
            (self.plan, self.options, self.reporter, self.redactor);
        let mut signal = SignalOnDrop(sync.signal);
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
        // Returning a host to rotation is the rollout's job (`roll_host`), not the script's.
        let changes: Vec<_> = changes
            .into_iter()
            .filter(|c| !matches!(c.step, crate::plan::Step::Rotation { .. }))
            .collect();
        let (db_changes, changes): (Vec<_>, Vec<_>) = changes
            .into_iter()
            .partition(|c| matches!(c.step, crate::plan::Step::Database { .. }));
        if !changes.is_empty() || !handlers.is_empty() {
            self.run_play_script(host, play, changes, handlers, target, unlock, alone, rep)
                .await;
            if rep.failed() {
                return;
            }
        }
        if let (false, Some(role), Some(cfg)) =
            (db_changes.is_empty(), play.database, &target.database)
        {
            if let Some((primary_host, mut rx)) = sync.wait {
                let finished = rx.wait_for(|v| v.is_some()).await.map(|v| *v == Some(true));
                if !matches!(finished, Ok(true)) {
                    fail(
                        reporter,
                        host,
                        rep,
                        ApplyError::PrimaryNotReady(primary_host),
                        redactor,
                    );
                    return;
                }
            }
            if options.dry_run {
                // What a database step does depends on the live server (see `apply`'s module
                // doc): a dry run says what it would reconcile and lets its replicas go on.
                signal.send(true);
                for c in &db_changes {
                    let step = Outcome::Planned {
                        action: c.action,
                        kind: c.kind,
                        target: c.target.clone(),
                    };
                    reporter.event(Event::StepDone {
                        host: host.clone(),
                        step: step.to_string(),
                    });
                    rep.done.push(step);
                }
                return;
            }
            let primary = target.primary.as_ref().unwrap_or(&target.transport);
            let result = database::reconcile(
                role,
                target.transport.as_ref(),
                primary.as_ref(),
                cfg,
                options.timeout,
                redactor,
            )
            .await;
            signal.send(result.is_ok());
            match result {
                Ok(done) => {
                    for d in done {
                        reporter.event(Event::StepDone {
                            host: host.clone(),
                            step: d.clone(),
                        });
                        rep.done.push(Outcome::Database { what: d });
                    }
                }
                Err(e) => fail(reporter, host, rep, ApplyError::Database(e), redactor),
            }
        }
    }

    /// The play's files, packages, services and handlers: one remote script.
    #[allow(clippy::too_many_arguments)]
    async fn run_play_script(
        &self,
        host: &HostName,
        play: &crate::render::DesiredPlay,
        changes: Vec<&crate::plan::Change>,
        handlers: Vec<&crate::plan::HandlerRef>,
        target: &Target<'_>,
        unlock: bool,
        alone: bool,
        rep: &mut HostReport,
    ) {
        let (options, reporter, redactor) = (self.options, self.reporter, self.redactor);
        // The host's last script releases the lock itself, saving a round trip, unless more
        // work follows it (database steps, a rollout's health gate).
        let unlock = unlock && play.database.is_none() && play.serial.is_none();
        let holder = options.lock_holder();
        let lock =
            (self.lock_in_script.get(host) == Some(&play.index)).then(|| script::LockCheck {
                holder: &holder,
                break_lock: options.break_lock,
                cas: &self.plan.hosts[host].cas,
                cas_text: self.plan.hosts[host]
                    .cas_quick
                    .as_ref()
                    .map(|q| q.text.as_str()),
                facts: check_facts(target.desired, &self.plan.hosts[host]),
            });
        let input = script::ScriptInput {
            play,
            changes,
            handlers,
            run_id: &options.run_id,
            unlock,
            keep_backups: options.keep_backups,
            lock,
            alone,
            temp_salt: temp_salt(),
        };
        let built = match script::build(&input)
            .and_then(|b| Ok((b.script.to_stdin()?, b.steps, b.on_success)))
        {
            Ok(b) => b,
            Err(e) => {
                fail(reporter, host, rep, e.into(), redactor);
                return;
            }
        };
        let (text, steps, on_success) = built;
        let result = target
            .transport
            .run_with(
                &RemoteCommand::script(options.timeout),
                Some(text.as_bytes()),
                &Effect::Changes { on_success },
            )
            .await;
        let out = match result {
            Ok(o) => o,
            Err(e) => {
                fail(reporter, host, rep, e.into(), redactor);
                return;
            }
        };
        let stdout = out.stdout_text();
        let done_marker = self.read_replies(
            host,
            &steps,
            &input.handlers,
            stdout.lines().filter_map(crate::remote::parse_reply),
            unlock,
            rep,
        );
        if !done_marker && !rep.failed() {
            let error = ended_early(&out, options.timeout);
            fail(reporter, host, rep, error, redactor);
        }
    }

    /// All of `plays` (a host's plays of a phase, in order, none with database steps) in one
    /// remote command: [`script::host_script`]. Events and outcomes are those of the plays
    /// run one by one. If the run is interrupted meanwhile, the host is told to start no
    /// further play ([`script::stop_script`], a second command); the running play finishes.
    pub(super) async fn run_host_script(
        &self,
        host: &HostName,
        plays: &[usize],
        target: &Target<'_>,
        unlock: bool,
        rep: &mut HostReport,
    ) {
        let (options, reporter, redactor) = (self.options, self.reporter, self.redactor);
        let hp = &self.plan.hosts[host];
        let mut parts = Vec::new();
        let mut scripts = Vec::new();
        let mut printed = Vec::new();
        for &p in plays {
            let Some(play) = self.play_of(host, p) else {
                continue;
            };
            reporter.event(Event::PlayStarted {
                host: host.clone(),
                play: play.name.clone(),
            });
            let changes: Vec<_> = hp
                .changes
                .iter()
                .filter(|c| c.play == p && c.action != Action::Unchanged)
                .filter(|c| !matches!(c.step, crate::plan::Step::Rotation { .. }))
                .collect();
            let handlers: Vec<_> = hp.handlers.iter().filter(|h| h.play == p).collect();
            if changes.is_empty() && handlers.is_empty() {
                continue;
            }
            let input = script::ScriptInput {
                play,
                changes,
                handlers,
                run_id: &options.run_id,
                unlock: false,
                keep_backups: options.keep_backups,
                lock: None,
                alone: true,
                temp_salt: temp_salt(),
            };
            match script::build(&input) {
                Ok(b) => {
                    scripts.push((p, b.script));
                    printed.push((p, b.on_success));
                    parts.push((p, b.steps, input.handlers));
                }
                Err(e) => {
                    fail(reporter, host, rep, e.into(), redactor);
                    return;
                }
            }
        }
        let Some(&(first, _)) = scripts.first() else {
            return;
        };
        let holder = options.lock_holder();
        let lock = (self.lock_in_script.get(host) == Some(&first)).then(|| script::LockCheck {
            holder: &holder,
            break_lock: options.break_lock,
            cas: &hp.cas,
            cas_text: hp.cas_quick.as_ref().map(|q| q.text.as_str()),
            facts: check_facts(target.desired, hp),
        });
        let whole = script::host_script(&scripts, lock.as_ref(), &options.run_id, unlock);
        let text = match whole.to_stdin() {
            Ok(t) => t,
            Err(e) => {
                fail(
                    reporter,
                    host,
                    rep,
                    script::ScriptError::from(e).into(),
                    redactor,
                );
                return;
            }
        };
        let command = RemoteCommand::script(options.timeout);
        let printed: Vec<(usize, &str)> = printed.iter().map(|(p, o)| (*p, o.as_str())).collect();
        let effect = Effect::Changes {
            on_success: script::host_script_on_success(&printed, unlock),
        };
        let run = target
            .transport
            .run_with(&command, Some(text.as_bytes()), &effect);
        let stop = async {
            while !self.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            if let Ok(t) = script::stop_script(&options.run_id).to_stdin() {
                let _ = target
                    .transport
                    .run_with(
                        &RemoteCommand::script(std::time::Duration::from_secs(30)),
                        Some(t.as_bytes()),
                        &Effect::Changes {
                            on_success: String::new(),
                        },
                    )
                    .await;
            }
            std::future::pending::<()>().await;
        };
        let out = tokio::select! {
            out = run => out,
            _ = stop => unreachable!("waits forever once the stop is sent"),
        };
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                fail(reporter, host, rep, e.into(), redactor);
                return;
            }
        };
        // Split the output at each `PLAY n`; what comes before is the lock's.
        let stdout = out.stdout_text();
        let mut segments: std::collections::BTreeMap<usize, Vec<Reply>> = Default::default();
        let (mut head, mut current) = (Vec::new(), None);
        let (mut stopped, mut unlocked) = (false, false);
        for reply in stdout.lines().filter_map(crate::remote::parse_reply) {
            match reply {
                Reply::Play(n) => {
                    current = Some(n);
                    segments.entry(n).or_default();
                }
                Reply::Stopped => stopped = true,
                Reply::Unlocked => unlocked = true,
                r => match current {
                    Some(n) => segments.entry(n).or_default().push(r),
                    None => head.push(r),
                },
            }
        }
        self.read_replies(host, &[], &[], head.into_iter(), false, rep);
        for (p, steps, handlers) in &parts {
            if rep.failed() {
                return;
            }
            let Some(replies) = segments.remove(p) else {
                if stopped {
                    rep.skipped.push(Skipped::Interrupted { play: *p });
                    continue;
                }
                // Neither run nor stopped: the script ended before it (see below).
                break;
            };
            let done = self.read_replies(host, steps, handlers, replies.into_iter(), false, rep);
            if !done && !rep.failed() {
                let error = ended_early(&out, options.timeout);
                fail(reporter, host, rep, error, redactor);
                return;
            }
        }
        if !rep.failed() && !stopped && !unlocked && unlock {
            let error = ApplyError::StoppedEarly {
                code: out.code,
                stderr: out.stderr_text().trim().to_string(),
            };
            fail(reporter, host, rep, error, redactor);
        }
        rep.unlocked |= stopped || unlocked;
    }

    /// Read one play script's replies into `rep`; true if it reached its end.
    fn read_replies(
        &self,
        host: &HostName,
        steps: &[Outcome],
        handlers: &[&crate::plan::HandlerRef],
        replies: impl Iterator<Item = Reply>,
        unlock: bool,
        rep: &mut HostReport,
    ) -> bool {
        let (reporter, redactor) = (self.reporter, self.redactor);
        let mut done_marker = false;
        let name_of = |n: usize| {
            steps
                .get(n)
                .map(|o| o.to_string())
                .unwrap_or_else(|| format!("step {n}"))
        };
        for reply in replies {
            match reply {
                Reply::Ok(n) => {
                    let Some(what) = steps.get(n) else { continue };
                    reporter.event(Event::StepDone {
                        host: host.clone(),
                        step: what.to_string(),
                    });
                    rep.done.push(what.clone());
                }
                Reply::Skip(n) => {
                    // Only a service handler is skipped: its service was started by this run.
                    let Some(Outcome::Handler { name }) = steps.get(n) else {
                        continue;
                    };
                    let service = handlers
                        .iter()
                        .find(|h| &h.name == name)
                        .and_then(|h| match &h.command {
                            crate::plan::HandlerCommand::Service { name, .. } => Some(name),
                            _ => None,
                        });
                    if let Some(service) = service {
                        rep.skipped.push(Skipped::StartedService {
                            handler: name.clone(),
                            service: service.clone(),
                        });
                    }
                }
                Reply::Err {
                    step,
                    stage,
                    output,
                } => {
                    let error = ApplyError::Script {
                        stage: Stage::from_script(&stage),
                        target: steps.get(step).map(Outcome::target).unwrap_or_default(),
                        output,
                    };
                    fail(reporter, host, rep, error, redactor);
                }
                Reply::Rollback {
                    step,
                    first,
                    second,
                } => {
                    let handler = match steps.get(step) {
                        Some(Outcome::Handler { name }) => name.clone(),
                        _ => name_of(step),
                    };
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
                Reply::Locked(holder) => {
                    // Another run holds the lock: nothing here changed, and it is not ours.
                    rep.unlocked = true;
                    fail(reporter, host, rep, ApplyError::Locked { holder }, redactor);
                }
                Reply::Stale => {
                    // The script released the lock itself.
                    rep.unlocked = true;
                    fail(reporter, host, rep, ApplyError::Stale, redactor);
                }
                // A host script's own lines are read by `run_host_script`.
                Reply::Play(_) | Reply::Stopped | Reply::Unlocked => {}
                Reply::Done => {
                    done_marker = true;
                    rep.unlocked = unlock;
                }
            }
        }
        done_marker
    }
}

/// A script that ended before its `DONE`: killed by its `timeout` (exit 124), or stopped.
fn ended_early(out: &crate::transport::Output, timeout: std::time::Duration) -> ApplyError {
    if out.code == Some(124) {
        ApplyError::TimedOut {
            seconds: timeout.as_secs(),
        }
    } else {
        ApplyError::StoppedEarly {
            code: out.code,
            stderr: out.stderr_text().trim().to_string(),
        }
    }
}

/// 64 random bits for a script's temp file names ([`script::ScriptInput::temp_salt`]).
fn temp_salt() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the system's random number generator");
    u64::from_le_bytes(b)
}

/// The facts a host's first script compares under the lock: the quick check when this run
/// gathered them, else the whole facts script (a saved plan, compared by digest).
fn check_facts(desired: &crate::render::DesiredState, hp: &crate::plan::HostPlan) -> shell::Script {
    match &hp.cas_quick {
        Some(q) => crate::gather::quick_check_script(desired, &q.hashed),
        None => crate::gather::facts_script(desired),
    }
}
