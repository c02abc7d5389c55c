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
pub mod outcome;
pub mod rolling;
pub mod script;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

use crate::gather;
use crate::inventory::{DatabaseRole, HostName};
use crate::plan::{Action, HostPlan, Plan};
use crate::render::DesiredState;
use crate::report::{Event, Reporter};
use crate::shell;
use crate::transport::{RemoteCommand, Transport};
pub use outcome::Outcome;

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
    /// Runs whose backups each host keeps in `/var/backups/foobar` (`keep_backups:`).
    pub keep_backups: u32,
}

impl ApplyOptions {
    pub fn lock_holder(&self) -> String {
        lock_holder(&self.holder, &self.run_id)
    }
}

/// What a lock records: who, and which run (the run id lets the run release it).
pub fn lock_holder(holder: &str, run_id: &str) -> String {
    format!("{holder} run {run_id}")
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
    /// Every step that ran, in order (shown as `file /etc/haproxy/haproxy.cfg`,
    /// `handler reload haproxy`).
    pub done: Vec<Outcome>,
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

pub fn lock_message(holder: &str) -> String {
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

/// A new run's id: the UTC time (so backups sort by age) and 64 random bits (so nobody can
/// predict a run's names or forge its lock), e.g. `20260101T120000Z-1f2e3d4c5b6a7980`.
pub fn new_run_id() -> String {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the system's random number generator");
    format!(
        "{}-{}",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
        hex::encode(random)
    )
}

pub fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Execute `plan` on `targets`. Hosts not in the plan or without changes are left alone.
///
/// Scheduling: every host runs its own pipeline of plays, in playbook order unless a play's
/// `after:` lets it start beside earlier ones; hosts do not wait for each other between plays.
/// Two things do cross hosts: a database replica's replication step waits for its primary's
/// database step in this run, and a rollout (a `serial:` play while the load balancer answers)
/// is a barrier: it starts once every earlier play finished on every host, and later plays
/// wait for it, so nothing else changes while hosts leave and rejoin the pool.
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
    // Hosts that could not even be planned (unreachable) count as failed.
    let run = Run {
        plan,
        targets,
        options,
        reporter,
        redactor,
        cancelled,
        failed: AtomicUsize::new(plan.failed.len()),
        total: changing.len() + plan.failed.len(),
    };
    for h in plan.hosts.keys() {
        reports.insert(h.clone(), HostReport::new());
    }
    let commands_before: BTreeMap<&HostName, u64> = targets
        .iter()
        .map(|(h, t)| (h, t.transport.commands_run()))
        .collect();

    // Lock and re-check facts, all hosts in parallel, unless the plan was made under the lock.
    // (Only hosts with changes are locked: locking in the plan's first gather would cost an
    // unlock round trip on every host with nothing to do, the common case of a converged fleet.)
    if !options.dry_run {
        let results: Vec<(HostName, Result<(), String>)> = futures::stream::iter(changing.iter())
            .filter(|h| std::future::ready(!plan.hosts[**h].locked))
            .map(|host| async move {
                let r = lock_and_check(&targets[*host], &plan.hosts[*host], options).await;
                (HostName::clone(host), r)
            })
            .buffer_unordered(options.forks.max(1))
            .collect()
            .await;
        for (host, r) in results {
            if let Err(message) = r {
                let rep = reports.get_mut(&host).expect("host in plan");
                fail(reporter, &host, rep, "lock", message);
                run.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    let mut interrupted = false;
    for phase in phases(&run, &changing, balancer).await {
        if cancelled.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        match phase {
            Phase::Pipelined(plays) => run.pipelined(&plays, &changing, &mut reports).await,
            Phase::Rollout {
                play,
                batch,
                balancer,
            } => {
                run.rollout(play, batch, balancer, &changing, &mut reports)
                    .await
            }
        }
    }

    for (h, r) in reports.iter_mut() {
        if let Some(t) = targets.get(h) {
            r.remote_commands = t.transport.commands_run() - commands_before[h];
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

/// A stretch of the run: plays that pipeline freely per host, or one rollout.
enum Phase<'b> {
    Pipelined(BTreeSet<usize>),
    Rollout {
        play: usize,
        batch: usize,
        balancer: &'b rolling::Balancer,
    },
}

/// Split the run's plays at rollouts. Whether a `serial:` play rolls is decided once, here:
/// only while the load balancer answers (on a first apply nothing takes traffic through it).
async fn phases<'b>(
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
            if let Some(n) = serial_of(p).filter(|n| *n > 0) {
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
type PrimarySignal = tokio::sync::watch::Sender<Option<bool>>;

/// Sends "failed" for a primary whose play ends without reaching its database step.
struct SignalOnDrop<'s>(Option<&'s PrimarySignal>);

impl SignalOnDrop<'_> {
    fn send(&mut self, ok: bool) {
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
struct DbSync<'s> {
    /// This host is a primary other hosts wait for.
    signal: Option<&'s PrimarySignal>,
    /// This host is a replica whose primary is being changed in the same run.
    wait: Option<(HostName, tokio::sync::watch::Receiver<Option<bool>>)>,
}

/// One apply run's shared, read-only context.
struct Run<'r, 'a> {
    plan: &'r Plan,
    targets: &'r BTreeMap<HostName, Target<'a>>,
    options: &'r ApplyOptions,
    reporter: &'r dyn Reporter,
    redactor: &'r crate::secret::Redactor,
    cancelled: &'r AtomicBool,
    /// Hosts failed so far, and hosts in the run, for `--max-fail-percentage`.
    failed: AtomicUsize,
    total: usize,
}

impl<'r, 'a> Run<'r, 'a> {
    /// The plays with something to do on `host` (changes or handlers), within `only`.
    fn plays_with_work(&self, host: &HostName, only: Option<&BTreeSet<usize>>) -> Vec<usize> {
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

    fn over_max_fail(&self) -> Option<String> {
        let max = self.options.max_fail_percentage?;
        let total = self.total.max(1);
        (self.failed.load(Ordering::SeqCst) * 100 > total * max as usize)
            .then(|| format!("--max-fail-percentage {max} exceeded"))
    }

    fn play_of(&self, host: &HostName, index: usize) -> Option<&'a crate::render::DesiredPlay> {
        let t: &'r Target<'a> = self.targets.get(host)?;
        t.desired.plays.iter().find(|p| p.index == index)
    }

    /// Every changing host runs its plays of `plays` as a pipeline; up to `forks` hosts at
    /// once, database primaries first (a replica may wait for its primary, which must
    /// therefore never wait for a free fork behind it).
    async fn pipelined(
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
        });
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
                        rep.skipped
                            .push(format!("play {p}: interrupted before it started"));
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
                    running.push(async move {
                        let mut frag = HostReport::new();
                        self.run_play(host, p, target, unlock, sync, &mut frag)
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

    /// A rollout of one play: the balancer's backends `batch` at a time, each drained, changed,
    /// checked and put back; other hosts of the play change in parallel.
    async fn rollout(
        &self,
        play_index: usize,
        batch: usize,
        b: &rolling::Balancer,
        changing: &[&HostName],
        reports: &mut BTreeMap<HostName, HostReport>,
    ) {
        let only = BTreeSet::from([play_index]);
        let runnable: Vec<&HostName> = changing
            .iter()
            .copied()
            .filter(|h| !reports[*h].failed())
            .filter(|h| !self.plays_with_work(h, Some(&only)).is_empty())
            .collect();
        if let Some(reason) = self.over_max_fail() {
            for h in runnable {
                reports.get_mut(h).expect("host").status = HostStatus::NotStarted {
                    reason: reason.clone(),
                };
            }
            return;
        }
        let (members, others): (Vec<&HostName>, Vec<&HostName>) =
            runnable.into_iter().partition(|h| b.servers.contains(h));
        let mut results: Vec<(HostName, HostReport)> = futures::stream::iter(others)
            .map(|host| {
                let prior = reports.get(host).cloned().unwrap_or_else(HostReport::new);
                async move {
                    let mut rep = prior;
                    if self.cancelled.load(Ordering::SeqCst) {
                        rep.skipped
                            .push(format!("play {play_index}: interrupted before it started"));
                        return (host.clone(), rep);
                    }
                    self.run_play(
                        host,
                        play_index,
                        &self.targets[host],
                        false,
                        DbSync::default(),
                        &mut rep,
                    )
                    .await;
                    (host.clone(), rep)
                }
            })
            .buffer_unordered(self.options.forks.max(1))
            .collect()
            .await;
        let mut stopped: Option<String> = None;
        for group in members.chunks(batch) {
            if let Some(why) = &stopped {
                for h in group {
                    let mut rep = reports.get(*h).cloned().unwrap_or_else(HostReport::new);
                    rep.status = HostStatus::NotStarted {
                        reason: why.clone(),
                    };
                    results.push(((*h).clone(), rep));
                }
                continue;
            }
            if self.cancelled.load(Ordering::SeqCst) {
                stopped = Some("interrupted before its turn in the rollout".into());
                for h in group {
                    let mut rep = reports.get(*h).cloned().unwrap_or_else(HostReport::new);
                    rep.skipped
                        .push(format!("play {play_index}: interrupted before it started"));
                    results.push(((*h).clone(), rep));
                }
                continue;
            }
            let done: Vec<(HostName, HostReport)> =
                futures::future::join_all(group.iter().map(|h| {
                    let prior = reports.get(*h).cloned().unwrap_or_else(HostReport::new);
                    self.roll_host(h, play_index, b, prior)
                }))
                .await;
            if let Some((h, _)) = done.iter().find(|(_, r)| r.failed()) {
                stopped = Some(format!("the rollout stopped after {h} failed"));
            }
            results.extend(done);
        }
        for (h, r) in &results {
            if r.failed() && !reports[h].failed() {
                self.failed.fetch_add(1, Ordering::SeqCst);
            }
        }
        reports.extend(results);
    }
}

/// Fold one play's report into its host's: steps in order of completion, the first failure
/// kept as the status and any later one added to its message.
fn merge(rep: &mut HostReport, frag: HostReport) {
    let failed = frag.failed();
    rep.done.extend(frag.done);
    rep.skipped.extend(frag.skipped);
    rep.unlocked |= frag.unlocked;
    if !failed {
        return;
    }
    if !rep.failed() {
        rep.status = frag.status;
        return;
    }
    let also = match frag.status {
        HostStatus::Failed { stage, message } => format!("{stage}: {message}"),
        HostStatus::RolledBack { handler, error, .. } => {
            format!("handler {handler} failed, files restored: {error}")
        }
        HostStatus::NotStarted { reason } => reason,
        _ => return,
    };
    match &mut rep.status {
        HostStatus::Failed { message, .. } => {
            message.push_str(&format!("\nalso, in a play running beside it: {also}"))
        }
        HostStatus::RolledBack { after_restore, .. } => {
            after_restore.push_str(&format!("\nalso, in a play running beside it: {also}"))
        }
        _ => {}
    }
}

async fn lock_and_check(
    t: &Target<'_>,
    hp: &HostPlan,
    options: &ApplyOptions,
) -> Result<(), String> {
    let lock = script::lock_script(&options.lock_holder(), options.break_lock);
    let (locked, state) = gather::gather_locked(
        t.transport.as_ref(),
        t.desired,
        None,
        options.timeout,
        &lock,
    )
    .await
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

impl Run<'_, '_> {
    #[allow(clippy::too_many_arguments)]
    /// One play on one host: its script, then its database step.
    async fn run_play(
        &self,
        host: &HostName,
        play_index: usize,
        target: &Target<'_>,
        unlock: bool,
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
        if options.dry_run {
            for c in &changes {
                rep.done.push(Outcome::Planned {
                    action: c.action,
                    kind: c.kind,
                    target: c.target.clone(),
                });
            }
            for h in &handlers {
                rep.done.push(Outcome::Handler {
                    name: h.name.clone(),
                });
            }
            return;
        }
        // Returning a host to rotation is the rollout's job (`roll_host`), not the script's.
        let changes: Vec<_> = changes
            .into_iter()
            .filter(|c| !matches!(c.step, crate::plan::Step::Rotation { .. }))
            .collect();
        let (db_changes, changes): (Vec<_>, Vec<_>) = changes
            .into_iter()
            .partition(|c| matches!(c.step, crate::plan::Step::Database { .. }));
        if !changes.is_empty() || !handlers.is_empty() {
            self.run_play_script(host, play, changes, handlers, target, unlock, rep)
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
                    let message = format!(
                        "not configured: the primary {primary_host} did not finish its database step in this run"
                    );
                    fail(reporter, host, rep, "database", message);
                    return;
                }
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
                Err(message) => fail(reporter, host, rep, "database", redactor.redact(&message)),
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
        rep: &mut HostReport,
    ) {
        let (options, reporter, redactor) = (self.options, self.reporter, self.redactor);
        // The host's last script releases the lock itself, saving a round trip, unless more
        // work follows it (database steps, a rollout's health gate).
        let unlock = unlock && play.database.is_none() && play.serial.is_none();
        let input = script::ScriptInput {
            play,
            changes,
            handlers,
            run_id: &options.run_id,
            unlock,
            keep_backups: options.keep_backups,
        };
        let built = match script::build(&input).and_then(|b| Ok((b.script.to_stdin()?, b.steps))) {
            Ok(b) => b,
            Err(e) => {
                fail(reporter, host, rep, play.name.clone(), e.to_string());
                return;
            }
        };
        let (text, steps) = built;
        let result = target
            .transport
            .run(
                &RemoteCommand::script(options.timeout),
                Some(text.as_bytes()),
            )
            .await;
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
        let name_of = |n: usize| {
            steps
                .get(n)
                .map(|o| o.to_string())
                .unwrap_or_else(|| format!("step {n}"))
        };
        for reply in stdout.lines().filter_map(shell::parse_reply) {
            match reply {
                shell::Reply::Ok(n) => {
                    let Some(what) = steps.get(n) else { continue };
                    reporter.event(Event::StepDone {
                        host: host.clone(),
                        step: what.to_string(),
                    });
                    rep.done.push(what.clone());
                }
                shell::Reply::Skip(n) => {
                    // Only a service handler is skipped: its service was started by this run.
                    let why = match steps.get(n) {
                        Some(Outcome::Handler { name }) => input
                            .handlers
                            .iter()
                            .find(|h| &h.name == name)
                            .and_then(|h| match &h.command {
                                crate::plan::HandlerCommand::Service { name, .. } => {
                                    Some(format!("{name} was started by this run"))
                                }
                                _ => None,
                            })
                            .unwrap_or_default(),
                        _ => String::new(),
                    };
                    rep.skipped.push(format!("{}: {why}", name_of(n)));
                }
                shell::Reply::Err {
                    step,
                    stage,
                    output,
                } => {
                    let message = redactor.redact(&format!(
                        "{stage} {} failed:\n{output}",
                        steps.get(step).map(Outcome::target).unwrap_or_default()
                    ));
                    reporter.event(Event::HostFailed {
                        host: host.clone(),
                        message: message.clone(),
                    });
                    rep.status = HostStatus::Failed { stage, message };
                }
                shell::Reply::Rollback {
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
                shell::Reply::Done => {
                    done_marker = true;
                    rep.unlocked = unlock;
                }
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
    async fn roll_host(
        &self,
        host: &HostName,
        play_index: usize,
        b: &rolling::Balancer,
        prior: HostReport,
    ) -> (HostName, HostReport) {
        let (options, reporter, redactor) = (self.options, self.reporter, self.redactor);
        let target = &self.targets[host];
        let mut rep = prior;
        if let Err(e) = b.take_out(host).await {
            fail(reporter, host, &mut rep, "drain", e);
            return (host.clone(), rep);
        }
        rep.done.push(Outcome::Rotation {
            what: format!("drained and put in maintenance on {}", b.host),
        });
        let first_step = rep.done.len();
        self.run_play(host, play_index, target, false, DbSync::default(), &mut rep)
            .await;
        if rep.failed() {
            // Nothing new went live (validation) or the script restored it (handler): the previous
            // version may serve again.
            if b.health_gate(host).await.is_ok() && b.put_back(host).await.is_ok() {
                rep.done.push(Outcome::Rotation {
                    what: format!("back in rotation on {} with the previous version", b.host),
                });
            } else {
                rep.skipped
                    .push(format!("left in maintenance on {}", b.host));
            }
            return (host.clone(), rep);
        }
        match b.health_gate(host).await {
            Ok(()) => match b.put_back(host).await {
                Ok(()) => rep.done.push(Outcome::Rotation {
                    what: format!(
                        "health gate passed; back in rotation: {} reports it UP",
                        b.host
                    ),
                }),
                Err(e) => fail(reporter, host, &mut rep, "rotation", e),
            },
            Err(e) => {
                let ran = &rep.done[first_step..];
                let paths: Vec<String> = ran
                    .iter()
                    .filter_map(|o| o.replaced_path().map(String::from))
                    .collect();
                // The play's handlers that ran, from the plan's typed commands.
                let handlers: Vec<crate::shell::Script> = self.plan.hosts[host]
                    .handlers
                    .iter()
                    .filter(|h| h.play == play_index)
                    .filter(|h| {
                        ran.iter()
                            .any(|o| matches!(o, Outcome::Handler { name } if *name == h.name))
                    })
                    .map(|h| h.command.script())
                    .collect();
                let script = shell::restore_script(&options.run_id, &paths, &handlers)
                    .to_stdin()
                    .unwrap_or_default();
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
}

/// Release the host's lock if this run holds it. Best effort: a lock left behind names its
/// holder, and `--break-lock` takes it over.
pub async fn unlock(transport: &dyn Transport, run_id: &str) {
    let Ok(s) = script::unlock_script(run_id).to_stdin() else {
        return;
    };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Change, HostPlan};
    use crate::render::DesiredPlay;
    use crate::transport::{Output, TransportError};
    use std::sync::Mutex;
    use std::time::Instant;

    /// (host, script label, start, end) of every play script.
    type Log = Vec<(String, String, Instant, Instant)>;

    /// A host that answers every script at once, or after 300 ms for a play named `slow…`,
    /// and records when each play's script ran.
    struct FakeHost {
        host: HostName,
        log: Arc<Mutex<Log>>,
        commands: std::sync::atomic::AtomicU64,
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
            let stdout = if label == "# lock" {
                format!("{}#foobar:end\n", gather::LOCKED_MARK)
            } else {
                "OK\t0\nDONE\n".to_string()
            };
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
        let log = Arc::new(Mutex::new(vec![]));
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
            dry_run: false,
            forks: 10,
            timeout: Duration::from_secs(10),
            break_lock: false,
            run_id: "t".into(),
            holder: "test".into(),
            max_fail_percentage: None,
            serial: None,
            keep_backups: 5,
        };
        let report = apply(
            &plan,
            &targets,
            &options,
            None,
            &crate::report::Silent,
            &crate::secret::Redactor::new([]),
            &AtomicBool::new(cancelled),
        )
        .await;
        let log = log.lock().unwrap().clone();
        (report, log)
    }

    fn span<'l>(log: &'l Log, host: &str, play: &str) -> &'l (String, String, Instant, Instant) {
        log.iter()
            .find(|(h, l, _, _)| h == host && l.ends_with(play))
            .unwrap_or_else(|| panic!("{play} did not run on {host}: {log:?}"))
    }

    #[test]
    fn run_ids_are_a_utc_timestamp_and_64_random_bits() {
        let id = new_run_id();
        let (stamp, random) = id.split_once('-').expect("stamp-random");
        assert_eq!(stamp.len(), 16, "{stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T',
            "{stamp}"
        );
        assert_eq!(random.len(), 16, "{random}");
        assert!(random.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(new_run_id(), id, "two runs share an id");
    }

    #[tokio::test]
    async fn a_host_runs_its_plays_in_order_by_default() {
        let (report, log) = run(&["a"], &[("slow db", &[]), ("app", &[0])], false).await;
        assert_eq!(
            report.hosts[&HostName::new("a")].status,
            HostStatus::Changed
        );
        assert!(report.failed_hosts().is_empty(), "{report:?}");
        let (db, app) = (span(&log, "a", "slow db"), span(&log, "a", "app"));
        assert!(app.2 >= db.3, "app started before db finished");
    }

    #[tokio::test]
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

    #[tokio::test]
    async fn hosts_do_not_wait_for_each_other_between_plays() {
        // Host b's first play is slow; host a's second play does not wait for it.
        let (report, log) = run(&["a", "b"], &[("slow@b first", &[]), ("next", &[0])], false).await;
        assert!(report.failed_hosts().is_empty(), "{report:?}");
        let (a_next, b_first) = (span(&log, "a", "next"), span(&log, "b", "slow@b first"));
        assert!(a_next.3 < b_first.3, "host a waited for host b: {log:?}");
        let b_next = span(&log, "b", "next");
        assert!(b_next.2 >= b_first.3);
    }

    #[tokio::test]
    async fn no_play_starts_after_an_interrupt() {
        let (report, log) = run(&["a"], &[("db", &[]), ("app", &[0])], true).await;
        assert!(log.is_empty(), "{log:?}");
        assert!(report.interrupted);
        assert_eq!(
            report.hosts[&HostName::new("a")].status,
            HostStatus::Unchanged
        );
    }
}
