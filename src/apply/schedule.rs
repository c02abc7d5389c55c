//! Scheduling: which plays run when, on which hosts. Every host runs its own pipeline of
//! plays (playbook order unless `after:` says otherwise); a database replica waits for its
//! primary's database step in the same run; a rollout (`serial:` while the load balancer
//! answers) is a barrier between the plays before and after it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures::StreamExt;

use super::outcome::{HostReport, HostStatus, Skipped, merge};
use super::{ApplyOptions, Target, rolling};
use crate::event::Reporter;
use crate::inventory::{DatabaseRole, HostName};
use crate::plan::{Action, Plan};

/// A stretch of the run: plays that pipeline freely per host, or one rollout.
pub(super) enum Phase<'b> {
    Pipelined(BTreeSet<usize>),
    Rollout {
        play: usize,
        batch: usize,
        balancer: &'b rolling::Balancer,
    },
}

/// Split the run's plays at rollouts. Whether a `serial:` play rolls is decided once, here:
/// only while the load balancer answers (on a first apply nothing takes traffic through it).
pub(super) async fn phases<'b>(
    run: &Run<'_, '_>,
    changing: &[&HostName],
    balancer: Option<&'b rolling::Balancer>,
) -> Vec<Phase<'b>> {
    let plays: BTreeSet<usize> = changing
        .iter()
        .flat_map(|h| run.plays_with_work(h, None))
        .collect();
    let serial_of = |index: usize| {
        run.options.serial.or_else(|| {
            run.targets
                .values()
                .flat_map(|t| t.desired.plays.iter())
                .find(|p| p.index == index)
                .and_then(|p| p.serial)
        })
    };
    let mut rollouts: BTreeMap<usize, usize> = BTreeMap::new();
    if let Some(b) = balancer
        && !run.options.dry_run
    {
        for &p in &plays {
            let only = BTreeSet::from([p]);
            let with_work: Vec<&HostName> = changing
                .iter()
                .copied()
                .filter(|h| !run.plays_with_work(h, Some(&only)).is_empty())
                .collect();
            // A rollout only where it changes something behind or of the load balancers: a
            // backend, or two load balancers of a pair. Otherwise the play runs pipelined, in
            // the hosts' own scripts.
            let rolls = with_work.iter().any(|h| b.servers.contains(h))
                || (b.vip.is_some()
                    && with_work.iter().filter(|h| b.node(h).is_some()).count() > 1);
            if let Some(n) = serial_of(p).filter(|n| *n > 0)
                && rolls
            {
                rollouts.insert(p, n as usize);
            }
        }
        if !rollouts.is_empty() && b.server_state_all().await.is_err() {
            rollouts.clear();
        }
    }
    let mut out = Vec::new();
    let mut current = BTreeSet::new();
    for p in plays {
        match (rollouts.get(&p), balancer) {
            (Some(&batch), Some(balancer)) => {
                if !current.is_empty() {
                    out.push(Phase::Pipelined(std::mem::take(&mut current)));
                }
                out.push(Phase::Rollout {
                    play: p,
                    batch,
                    balancer,
                });
            }
            _ => {
                current.insert(p);
            }
        }
    }
    if !current.is_empty() {
        out.push(Phase::Pipelined(current));
    }
    out
}

/// A database primary's step finished in this run: `Some(true)` done, `Some(false)` failed
/// or never reached.
pub(super) type PrimarySignal = tokio::sync::watch::Sender<Option<bool>>;

/// Sends "failed" for a primary whose play ends without reaching its database step.
pub(super) struct SignalOnDrop<'s>(pub(super) Option<&'s PrimarySignal>);

impl SignalOnDrop<'_> {
    pub(super) fn send(&mut self, ok: bool) {
        if let Some(s) = self.0.take() {
            s.send_replace(Some(ok));
        }
    }
}

impl Drop for SignalOnDrop<'_> {
    fn drop(&mut self) {
        self.send(false);
    }
}

/// What a play needs from the other hosts' pipelines.
#[derive(Default)]
pub(super) struct DbSync<'s> {
    /// This host is a primary other hosts wait for.
    pub(super) signal: Option<&'s PrimarySignal>,
    /// This host is a replica whose primary is being changed in the same run.
    pub(super) wait: Option<(HostName, tokio::sync::watch::Receiver<Option<bool>>)>,
}

/// One apply run's shared, read-only context.
pub(super) struct Run<'r, 'a> {
    pub(super) plan: &'r Plan,
    pub(super) targets: &'r BTreeMap<HostName, Target<'a>>,
    pub(super) options: &'r ApplyOptions,
    pub(super) reporter: &'r dyn Reporter,
    pub(super) redactor: &'r crate::secret::Redactor,
    pub(super) cancelled: &'r AtomicBool,
    /// Hosts failed so far, and hosts in the run, for `--max-fail-percentage`.
    pub(super) failed: AtomicUsize,
    pub(super) total: usize,
    /// Hosts whose first script takes the lock and compares the facts itself, and the play
    /// whose script that is (see [`Run::lock_in_script`]).
    pub(super) lock_in_script: BTreeMap<HostName, usize>,
    /// Each host's last play with work in this run: only its script may release the lock
    /// (a rollout or another phase may follow the last play of a phase).
    pub(super) last_play: BTreeMap<HostName, usize>,
}

impl<'r, 'a> Run<'r, 'a> {
    /// The plays with something to do on `host` (changes or handlers), within `only`.
    pub(super) fn plays_with_work(
        &self,
        host: &HostName,
        only: Option<&BTreeSet<usize>>,
    ) -> Vec<usize> {
        let hp = &self.plan.hosts[host];
        let plays: BTreeSet<usize> = hp
            .changes
            .iter()
            .filter(|c| c.action != Action::Unchanged)
            .map(|c| c.play)
            .chain(hp.handlers.iter().map(|x| x.play))
            .filter(|p| only.is_none_or(|o| o.contains(p)))
            .collect();
        plays.into_iter().collect()
    }

    /// The play whose script can take `host`'s lock and compare its facts, saving the round
    /// trip of a separate lock-and-re-read: the host's work starts in a pipelined phase with
    /// exactly one play ready first (no `after: []` sibling could start beside it), and that
    /// play has a script (files, packages, services or handlers, not only database steps).
    /// `None`: the host is locked and re-read before the run, as a saved plan without the
    /// facts' raw digest, a rollout (drained before it changes) or a database-only play needs.
    pub(super) fn lock_play(&self, host: &HostName, phases: &[Phase<'_>]) -> Option<usize> {
        let hp = &self.plan.hosts[host];
        if self.options.dry_run || hp.locked || hp.cas.is_empty() {
            return None;
        }
        let first = phases.iter().find_map(|ph| match ph {
            Phase::Pipelined(set) => {
                let mine = self.plays_with_work(host, Some(set));
                (!mine.is_empty()).then_some(Some(mine))
            }
            Phase::Rollout { play, .. } => self
                .plays_with_work(host, None)
                .contains(play)
                .then_some(None),
        })??;
        let ready: Vec<usize> = first
            .iter()
            .copied()
            .filter(|&p| {
                self.play_of(host, p)
                    .is_some_and(|play| play.after.iter().all(|d| !first.contains(d)))
            })
            .collect();
        let [p] = ready[..] else { return None };
        let scripted = hp.handlers.iter().any(|h| h.play == p)
            || hp.changes.iter().any(|c| {
                c.play == p
                    && c.action != Action::Unchanged
                    && !matches!(
                        c.step,
                        crate::plan::Step::Database { .. } | crate::plan::Step::Rotation { .. }
                    )
            });
        scripted.then_some(p)
    }

    /// `plays` (one phase's plays of `host`, in order) can run as one host script: none has
    /// database steps (they run from here, between scripts, and may wait for another host),
    /// and each comes after all the ones before it (no `after:` lets two run at once).
    fn one_script(&self, host: &HostName, plays: &[usize]) -> bool {
        plays.len() > 1
            && plays.iter().enumerate().all(|(i, p)| {
                self.play_of(host, *p).is_some_and(|play| {
                    play.database.is_none() && plays[..i].iter().all(|d| play.after.contains(d))
                })
            })
    }

    pub(super) fn over_max_fail(&self) -> Option<String> {
        let max = self.options.max_fail_percentage?;
        let total = self.total.max(1);
        (self.failed.load(Ordering::SeqCst) * 100 > total * max as usize)
            .then(|| format!("--max-fail-percentage {max} exceeded"))
    }

    pub(super) fn play_of(
        &self,
        host: &HostName,
        index: usize,
    ) -> Option<&'a crate::render::DesiredPlay> {
        let t: &'r Target<'a> = self.targets.get(host)?;
        t.desired.plays.iter().find(|p| p.index == index)
    }

    /// Every changing host runs its plays of `plays` as a pipeline; up to `forks` hosts at
    /// once, database primaries first (a replica may wait for its primary, which must
    /// therefore never wait for a free fork behind it).
    pub(super) async fn pipelined(
        &self,
        plays: &BTreeSet<usize>,
        changing: &[&HostName],
        reports: &mut BTreeMap<HostName, HostReport>,
    ) {
        let is_primary_here = |h: &HostName| {
            self.plays_with_work(h, Some(plays)).iter().any(|&p| {
                self.play_of(h, p).and_then(|p| p.database) == Some(DatabaseRole::Primary)
                    && self.plan.hosts[h].changes.iter().any(|c| {
                        c.play == p && matches!(c.step, crate::plan::Step::Database { .. })
                    })
            })
        };
        let mut hosts: Vec<&HostName> = changing
            .iter()
            .copied()
            .filter(|h| !reports[*h].failed())
            .filter(|h| !self.plays_with_work(h, Some(plays)).is_empty())
            .collect();
        hosts.sort_by_key(|h| !is_primary_here(h));
        let signals: BTreeMap<HostName, PrimarySignal> = hosts
            .iter()
            .filter(|h| is_primary_here(h))
            .map(|h| ((*h).clone(), tokio::sync::watch::channel(None).0))
            .collect();
        let signals = &signals;
        let results: Vec<(HostName, HostReport)> = futures::stream::iter(hosts)
            .map(|host| {
                let prior = reports.get(host).cloned().unwrap_or_else(HostReport::new);
                async move {
                    let rep = self.pipeline(host, plays, prior, signals).await;
                    (host.clone(), rep)
                }
            })
            .buffer_unordered(self.options.forks.max(1))
            .collect()
            .await;
        reports.extend(results);
    }

    /// One host's plays of this phase, each as soon as the plays it comes `after` are done.
    async fn pipeline(
        &self,
        host: &HostName,
        phase: &BTreeSet<usize>,
        prior: HostReport,
        signals: &BTreeMap<HostName, PrimarySignal>,
    ) -> HostReport {
        let mut rep = prior;
        let mine = self.plays_with_work(host, Some(phase));
        let target = &self.targets[host];
        let mut started: BTreeSet<usize> = BTreeSet::new();
        let mut done: BTreeSet<usize> = BTreeSet::new();
        let mut running = futures::stream::FuturesUnordered::new();
        // The lock may go with the last script only when every other play comes before it.
        let last = mine.last().copied();
        let sequential_tail = last.is_some_and(|l| {
            let after = self
                .play_of(host, l)
                .map(|p| p.after.clone())
                .unwrap_or_default();
            mine.iter().all(|p| *p == l || after.contains(p))
        }) && last.as_ref() == self.last_play.get(host);
        // One remote command for all of them, when nothing needs foobar between them.
        if self.one_script(host, &mine)
            && !rep.failed()
            && !self.cancelled.load(Ordering::SeqCst)
            && self.over_max_fail().is_none()
        {
            let mut frag = HostReport::new();
            self.run_host_script(host, &mine, target, sequential_tail, &mut frag)
                .await;
            let was_failed = rep.failed();
            merge(&mut rep, frag);
            if rep.failed() && !was_failed {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
            return rep;
        }
        loop {
            if !rep.failed() {
                for &p in &mine {
                    if started.contains(&p) {
                        continue;
                    }
                    let Some(play) = self.play_of(host, p) else {
                        started.insert(p);
                        done.insert(p);
                        continue;
                    };
                    if !play
                        .after
                        .iter()
                        .all(|d| !mine.contains(d) || done.contains(d))
                    {
                        continue;
                    }
                    if self.cancelled.load(Ordering::SeqCst) {
                        started.insert(p);
                        rep.skipped.push(Skipped::Interrupted { play: p });
                        continue;
                    }
                    if let Some(reason) = self.over_max_fail() {
                        rep.status = HostStatus::NotStarted { reason };
                        self.failed.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    started.insert(p);
                    let sync = DbSync {
                        signal: signals
                            .get(host)
                            .filter(|_| play.database == Some(DatabaseRole::Primary)),
                        wait: match (&play.database, &target.primary) {
                            (Some(DatabaseRole::Replica), Some(pt)) => signals
                                .get(pt.host())
                                .filter(|_| pt.host() != host)
                                .map(|s| (pt.host().clone(), s.subscribe())),
                            _ => None,
                        },
                    };
                    let unlock = sequential_tail && Some(p) == last;
                    // The only play of this phase on the host: no other runs beside it.
                    let alone = mine.len() == 1;
                    running.push(async move {
                        let mut frag = HostReport::new();
                        self.run_play(host, p, target, unlock, alone, sync, &mut frag)
                            .await;
                        (p, frag)
                    });
                }
            }
            let Some((p, frag)) = running.next().await else {
                break;
            };
            done.insert(p);
            let was_failed = rep.failed();
            merge(&mut rep, frag);
            if rep.failed() && !was_failed {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        rep
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Report, apply};
    use super::*;
    use crate::event::Event;
    use crate::gather;
    use crate::plan::{Change, HostPlan};
    use crate::render::DesiredPlay;
    use crate::render::DesiredState;
    use crate::transport::{Output, TransportError};
    use crate::transport::{RemoteCommand, Transport};
    use std::sync::Arc;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::time::Instant;

    /// (host, script label, start, end) of every play script, on the test's clock: the
    /// tests run with it paused (`start_paused`), so a `slow` play's 300 ms pass at once,
    /// exactly, whenever every task waits; the order of events is what they check.
    type Log = Vec<(String, String, Instant, Instant)>;

    /// A host that answers every script at once, or after 300 ms for a play named `slow…`,
    /// and records when each play's script ran.
    struct FakeHost {
        host: HostName,
        log: Arc<Mutex<Log>>,
        commands: std::sync::atomic::AtomicU64,
        /// (host, first line) of every command that reached the host.
        sent: Arc<Mutex<Vec<(String, String)>>>,
    }

    /// Every event, as text (events are not comparable), in the order sent.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl Reporter for Recorder {
        fn event(&self, e: Event) {
            self.0.lock().unwrap().push(e);
        }
    }

    impl Recorder {
        /// `host`'s events in order: hosts run side by side, so only each host's own
        /// sequence is fixed.
        fn of(&self, host: &str) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .filter(|e| match e {
                    Event::PlayStarted { host: h, .. }
                    | Event::StepDone { host: h, .. }
                    | Event::HostFailed { host: h, .. }
                    | Event::HostStarted { host: h, .. }
                    | Event::HostGathered { host: h, .. } => h.as_str() == host,
                    Event::Started { .. } => false,
                })
                .map(|e| format!("{e:?}"))
                .collect()
        }
    }

    #[async_trait::async_trait]
    impl Transport for FakeHost {
        fn host(&self) -> &HostName {
            &self.host
        }
        async fn run(
            &self,
            _command: &RemoteCommand,
            stdin: Option<&[u8]>,
        ) -> Result<Output, TransportError> {
            self.commands.fetch_add(1, Ordering::SeqCst);
            let text = String::from_utf8_lossy(stdin.unwrap_or_default()).into_owned();
            let label = text.lines().next().unwrap_or("").to_string();
            self.sent
                .lock()
                .unwrap()
                .push((self.host.to_string(), label.clone()));
            // A host script runs its plays one after the other, each announced by its index.
            let plays: Vec<String> = if label == "# host script" {
                text.lines()
                    .filter(|l| l.starts_with("# play "))
                    .map(String::from)
                    .collect()
            } else {
                vec![label.clone()]
            };
            let mut stdout = String::new();
            for label in &plays {
                let start = Instant::now();
                // `slow` plays take 300 ms; `slow@b` only on host b.
                let slow = label
                    .split_whitespace()
                    .any(|w| w == "slow" || w.strip_prefix("slow@") == Some(self.host.as_str()));
                if label.starts_with("# play ") && slow {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                if label.starts_with("# play ") {
                    self.log.lock().unwrap().push((
                        self.host.to_string(),
                        label.clone(),
                        start,
                        Instant::now(),
                    ));
                }
                // The lock is free and the host is as planned (an empty gather).
                if label.starts_with("# lock") {
                    stdout.push_str(&format!(
                        "{}#foobar:end\n",
                        crate::remote::lock::LOCKED_MARK
                    ));
                } else {
                    if text.starts_with("# host script") {
                        let index = label.split_whitespace().nth(2).unwrap_or("0");
                        stdout.push_str(&format!("PLAY\t{index}\n"));
                    }
                    stdout.push_str("OK\t0\nDONE\n");
                }
            }
            if label == "# host script" {
                stdout.push_str("UNLOCKED\n");
            }
            Ok(Output {
                stdout: stdout.into_bytes(),
                stderr: vec![],
                code: Some(0),
            })
        }
        fn commands_run(&self) -> u64 {
            self.commands.load(Ordering::SeqCst)
        }
    }

    fn play(index: usize, name: &str, after: &[usize]) -> DesiredPlay {
        DesiredPlay {
            index,
            name: name.into(),
            packages: vec![],
            entries: vec![],
            services: vec![],
            handlers: vec![],
            database: None,
            serial: None,
            after: after.iter().copied().collect(),
        }
    }

    /// Apply plays (name, after) on hosts; each play installs one package on each host.
    async fn run(hosts: &[&str], plays: &[(&str, &[usize])], cancelled: bool) -> (Report, Log) {
        let r = run_recorded(hosts, plays, cancelled, false).await;
        (r.report, r.log)
    }

    struct Recorded {
        report: Report,
        log: Log,
        events: Recorder,
        sent: Vec<(String, String)>,
    }

    async fn run_recorded(
        hosts: &[&str],
        plays: &[(&str, &[usize])],
        cancelled: bool,
        dry_run: bool,
    ) -> Recorded {
        let log = Arc::new(Mutex::new(vec![]));
        let sent = Arc::new(Mutex::new(vec![]));
        let desired: BTreeMap<HostName, DesiredState> = hosts
            .iter()
            .map(|h| {
                let plays = plays
                    .iter()
                    .enumerate()
                    .map(|(i, (name, after))| play(i, name, after))
                    .collect();
                (
                    HostName::new(*h),
                    DesiredState {
                        host: HostName::new(*h),
                        plays,
                    },
                )
            })
            .collect();
        let plan = Plan {
            format_version: crate::plan::FORMAT_VERSION,
            inventory: String::new(),
            playbook: String::new(),
            inputs: None,
            hosts: hosts
                .iter()
                .map(|h| {
                    let changes = (0..plays.len())
                        .map(|i| {
                            Change::new(
                                i,
                                crate::plan::Step::Package {
                                    name: format!("pkg{i}"),
                                },
                                Action::Install,
                                vec![],
                            )
                        })
                        .collect();
                    (
                        HostName::new(*h),
                        HostPlan {
                            facts_digest: gather::parse_gather_output(h, "#foobar:end\n")
                                .unwrap()
                                .digest,
                            cas: String::new(),
                            cas_quick: None,
                            changes,
                            handlers: vec![],
                            locked_by: None,
                            remote_commands: 0,
                            locked: false,
                        },
                    )
                })
                .collect(),
            failed: BTreeMap::new(),
            rollout: vec![],
        };
        let targets: BTreeMap<HostName, Target<'_>> = desired
            .iter()
            .map(|(h, d)| {
                let transport: Arc<dyn Transport> = Arc::new(FakeHost {
                    host: h.clone(),
                    log: log.clone(),
                    commands: Default::default(),
                    sent: sent.clone(),
                });
                (
                    h.clone(),
                    Target {
                        transport,
                        desired: d,
                        database: None,
                        primary: None,
                    },
                )
            })
            .collect();
        let options = ApplyOptions {
            dry_run,
            forks: 10,
            timeout: Duration::from_secs(10),
            break_lock: false,
            run_id: "t".into(),
            holder: "test".into(),
            max_fail_percentage: None,
            serial: None,
            keep_backups: 5,
        };
        let events = Recorder::default();
        let report = apply(
            &plan,
            &targets,
            &options,
            None,
            &events,
            &crate::secret::Redactor::new([]),
            &AtomicBool::new(cancelled),
        )
        .await;
        let log = log.lock().unwrap().clone();
        let sent = sent.lock().unwrap().clone();
        Recorded {
            report,
            log,
            events,
            sent,
        }
    }

    fn span<'l>(log: &'l Log, host: &str, play: &str) -> &'l (String, String, Instant, Instant) {
        log.iter()
            .find(|(h, l, _, _)| h == host && l.ends_with(play))
            .unwrap_or_else(|| panic!("{play} did not run on {host}: {log:?}"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_runs_its_plays_in_order_by_default() {
        let (report, log) = run(&["a"], &[("slow db", &[]), ("app", &[0])], false).await;
        assert_eq!(
            report.hosts[&HostName::new("a")].status,
            HostStatus::Changed
        );
        assert!(report.failed_hosts().is_empty(), "{report:?}");
        let (db, app) = (span(&log, "a", "slow db"), span(&log, "a", "app"));
        assert!(app.2 >= db.3, "app started before db finished");
        // Both plays went in one script, after the lock and re-read (the plan has no raw
        // facts digest for the script to compare).
        assert_eq!(report.hosts[&HostName::new("a")].remote_commands, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_play_with_after_empty_runs_beside_earlier_plays() {
        let (report, log) = run(&["a"], &[("slow db", &[]), ("slow app", &[])], false).await;
        assert!(report.failed_hosts().is_empty(), "{report:?}");
        let (db, app) = (span(&log, "a", "slow db"), span(&log, "a", "slow app"));
        assert!(app.2 < db.3 && db.2 < app.3, "the plays did not overlap");
        assert_eq!(
            report.hosts[&HostName::new("a")].status,
            HostStatus::Changed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_do_not_wait_for_each_other_between_plays() {
        // Host b's first play is slow; host a's second play does not wait for it.
        let (report, log) = run(&["a", "b"], &[("slow@b first", &[]), ("next", &[0])], false).await;
        assert!(report.failed_hosts().is_empty(), "{report:?}");
        let (a_next, b_first) = (span(&log, "a", "next"), span(&log, "b", "slow@b first"));
        assert!(a_next.3 < b_first.3, "host a waited for host b: {log:?}");
        let b_next = span(&log, "b", "next");
        assert!(b_next.2 >= b_first.3);
    }

    #[tokio::test(start_paused = true)]
    async fn no_play_starts_after_an_interrupt() {
        let (report, log) = run(&["a"], &[("db", &[]), ("app", &[0])], true).await;
        assert!(log.is_empty(), "{log:?}");
        assert!(report.interrupted);
        assert_eq!(
            report.hosts[&HostName::new("a")].status,
            HostStatus::Unchanged
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dry_run_reports_the_same_events_and_sends_only_reads() {
        // Plays in one host script (`after` the one before), and plays side by side (their
        // steps interleave as fast as the host answers; here it answers both at once, as a
        // dry run does: a real host's timing is the one thing a dry run cannot repeat).
        let shapes: [&[(&str, &[usize])]; 2] = [
            &[("db", &[]), ("app", &[0]), ("web", &[0, 1])],
            &[("db", &[]), ("app", &[]), ("web", &[0, 1])],
        ];
        for plays in shapes {
            let real = run_recorded(&["a", "b"], plays, false, false).await;
            let dry = run_recorded(&["a", "b"], plays, false, true).await;
            assert!(dry.report.dry_run && dry.report.failed_hosts().is_empty());
            for host in ["a", "b"] {
                let h = HostName::new(host);
                assert_eq!(dry.events.of(host), real.events.of(host), "{plays:?}");
                assert_eq!(real.events.of(host).len(), 2 * plays.len(), "{plays:?}");
                assert_eq!(dry.report.hosts[&h].done, real.report.hosts[&h].done);
                assert_eq!(dry.report.hosts[&h].status, HostStatus::WouldChange);
                assert_eq!(real.report.hosts[&h].status, HostStatus::Changed);
                // Only the lock probe (a read) reached the host, and it counts.
                let sent: Vec<&str> = dry
                    .sent
                    .iter()
                    .filter(|(s, _)| s == host)
                    .map(|(_, l)| l.as_str())
                    .collect();
                assert_eq!(sent, ["# lock probe"], "{plays:?}");
                assert_eq!(dry.report.hosts[&h].remote_commands, 1);
                let real_sent = real.sent.iter().filter(|(s, _)| s == host).count();
                assert!(real_sent >= 2, "the real run changed the host: {real_sent}");
            }
            assert!(
                dry.log.is_empty(),
                "a play script reached a host: {:?}",
                dry.log
            );
        }
    }
}
