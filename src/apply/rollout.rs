//! A rollout of one play behind the load balancer: its backends `batch` at a time, each
//! drained, changed, checked directly and put back; a host that fails its health gate has its
//! files restored ([`crate::remote::backups::restore_script`]) and stays out of rotation. A
//! pair of load balancers in the play changes one at a time, the floating address's holder
//! last, each serving again before the next starts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::error::{ApplyError, Stage};
use super::outcome::{HostReport, HostStatus, Outcome, Skipped, fail};
use super::rolling;
use super::schedule::{DbSync, Run};
use crate::inventory::HostName;
use crate::transport::{Effect, RemoteCommand};

impl Run<'_, '_> {
    /// A rollout of one play: the balancer's backends `batch` at a time, each drained, changed,
    /// checked and put back; other hosts of the play change in parallel.
    pub(super) async fn rollout(
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
        // The load balancers themselves, when the play changes two or more of them behind a
        // floating address: one at a time, never both at once.
        let (balancers, others): (Vec<&HostName>, Vec<&HostName>) =
            if b.vip.is_some() && others.iter().filter(|h| b.node(h).is_some()).count() > 1 {
                others.into_iter().partition(|h| b.node(h).is_some())
            } else {
                (Vec::new(), others)
            };
        let mut results: Vec<(HostName, HostReport)> = futures::stream::iter(others)
            .map(|host| {
                let prior = reports.get(host).cloned().unwrap_or_else(HostReport::new);
                async move {
                    let mut rep = prior;
                    if self.cancelled.load(Ordering::SeqCst) {
                        rep.skipped.push(Skipped::Interrupted { play: play_index });
                        return (host.clone(), rep);
                    }
                    self.run_play(
                        host,
                        play_index,
                        &self.targets[host],
                        false,
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
        for h in b.holder_last(balancers).await {
            let mut rep = reports.get(h).cloned().unwrap_or_else(HostReport::new);
            if let Some(why) = &stopped {
                rep.status = HostStatus::NotStarted {
                    reason: why.clone(),
                };
                results.push((h.clone(), rep));
                continue;
            }
            if self.cancelled.load(Ordering::SeqCst) {
                rep.skipped.push(Skipped::Interrupted { play: play_index });
                results.push((h.clone(), rep));
                continue;
            }
            self.run_play(
                h,
                play_index,
                &self.targets[h],
                false,
                false,
                DbSync::default(),
                &mut rep,
            )
            .await;
            if !rep.failed() {
                match b.serving(h).await {
                    Ok(()) => rep.done.push(Outcome::Rotation {
                        what: "HAProxy serves again; the next load balancer may change".into(),
                    }),
                    Err(e) => {
                        let error = ApplyError::Rollout {
                            stage: Stage::HealthGate,
                            source: e,
                        };
                        fail(self.reporter, h, &mut rep, error, self.redactor);
                    }
                }
            }
            if rep.failed() {
                stopped = Some(format!("the rollout stopped after {h} failed"));
            }
            results.push((h.clone(), rep));
        }
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
                    rep.skipped.push(Skipped::Interrupted { play: play_index });
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

impl Run<'_, '_> {
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
            let error = ApplyError::Rollout {
                stage: Stage::Drain,
                source: e,
            };
            fail(reporter, host, &mut rep, error, redactor);
            return (host.clone(), rep);
        }
        rep.done.push(Outcome::Rotation {
            what: format!("drained and put in maintenance on {}", b.names()),
        });
        let first_step = rep.done.len();
        self.run_play(
            host,
            play_index,
            target,
            false,
            false,
            DbSync::default(),
            &mut rep,
        )
        .await;
        if rep.failed() {
            // Nothing new went live (validation) or the script restored it (handler): the previous
            // version may serve again.
            if b.health_gate(host).await.is_ok() && b.put_back(host).await.is_ok() {
                rep.done.push(Outcome::Rotation {
                    what: format!(
                        "back in rotation on {} with the previous version",
                        b.names()
                    ),
                });
            } else {
                rep.skipped.push(Skipped::LeftInMaintenance {
                    balancer: b.names(),
                });
            }
            return (host.clone(), rep);
        }
        match b.health_gate(host).await {
            Ok(()) => match b.put_back(host).await {
                Ok(()) => rep.done.push(Outcome::Rotation {
                    what: format!(
                        "health gate passed; back in rotation: {} {} it UP",
                        b.names(),
                        if b.nodes.len() == 1 {
                            "reports"
                        } else {
                            "report"
                        }
                    ),
                }),
                Err(e) => {
                    let error = ApplyError::Rollout {
                        stage: Stage::Rotation,
                        source: e,
                    };
                    fail(reporter, host, &mut rep, error, redactor)
                }
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
                let script =
                    crate::remote::backups::restore_script(&options.run_id, &paths, &handlers)
                        .to_stdin()
                        .unwrap_or_default();
                let restored = target
                    .transport
                    .run_with(
                        &RemoteCommand::script(options.timeout),
                        Some(script.as_bytes()),
                        &Effect::Changes {
                            on_success: String::new(),
                        },
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
                let error = ApplyError::HealthGate {
                    source: e,
                    restored: how,
                    balancer: b.names(),
                };
                fail(reporter, host, &mut rep, error, redactor);
            }
        }
        (host.clone(), rep)
    }
}
