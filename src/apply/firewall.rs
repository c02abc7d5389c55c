//! Confirm-or-rollback for firewall changes, after an apply.
//!
//! The firewall play installs `foobar-firewall-load` and its handler loads the new ruleset with
//! it: the host saves the live ruleset and starts a timer (a `setsid` background `sleep N`,
//! PID in /run/foobar-firewall/timer.pid) that restores it after N seconds
//! (`firewall_confirm_timeout`, default 30). Here foobar, after the apply and with every
//! connection of the apply closed, opens a NEW SSH connection to each host that manages a
//! firewall and confirms (stops the timer). The new connection is the proof: an established
//! connection survives any ruleset (conntrack), a new one only if the rules let foobar in. If
//! it cannot connect, the host restores the previous ruleset by itself; foobar waits for the
//! timer, connects again, reads the outcome and reports "firewall change rolled back: foobar
//! could not reconnect" (the host counts as failed: exit 3).
//!
//! The confirmation also makes the new ruleset the boot's: the loader copies it to
//! /var/lib/foobar/firewall/confirmed.nft, which foobar-firewall.service loads at boot, and
//! records the digest of the loaded table, which `plan` compares with what is live (a
//! flushed or edited ruleset is a change that runs this handler again). A rolled-back change,
//! or one still unconfirmed when the host goes down, never becomes the boot's.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use crate::error::Diagnostic;
use crate::inventory::{HostName, Inventory};
use crate::render::DesiredState;
use crate::transport::{self, RemoteCommand, TransportError};

/// Where the firewall play installs the loader; a host whose desired state has it manages a
/// firewall.
pub const LOADER: &str = crate::remote::layout::FIREWALL_LOADER;

pub const ROLLED_BACK: &str = "firewall change rolled back: foobar could not reconnect";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A pending change was confirmed over a new connection.
    Confirmed,
    /// Nothing was pending (no ruleset change in this run).
    NothingPending,
    /// foobar could not reconnect (why, from the first attempt); the host restored the
    /// previous ruleset by itself.
    RolledBack(String),
    /// foobar could not reconnect and could not learn what the host did.
    Unknown(String),
}

/// Why one confirmation attempt over a new connection did not get an answer from the loader.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// No new connection (what a ruleset that locks foobar out looks like), or it broke.
    #[error("{0}")]
    Transport(#[from] TransportError),
    /// The loader ran and refused (its stderr).
    #[error("{0}")]
    Loader(String),
}

impl Diagnostic for FirewallError {
    fn hint(&self) -> Option<String> {
        match self {
            FirewallError::Transport(e) => e.hint(),
            FirewallError::Loader(_) => Some(format!(
                "run `{LOADER} --status` on the host to see whether a change is pending"
            )),
        }
    }
}

pub fn manages_firewall(desired: &DesiredState) -> bool {
    desired.entries().any(|e| e.path == LOADER)
}

async fn run_fresh(
    inv: &Inventory,
    host: &HostName,
    arg: &str,
    timeout: Duration,
) -> Result<String, FirewallError> {
    // A new SSH master, never a persisted one resumed (ControlPersist): a new TCP connection
    // through the new rules.
    let mut spec = inv.connection(host);
    spec.control_persist = 0;
    let t = transport::connect(&spec).await?;
    let script = format!("{LOADER} {arg}\n");
    let out = t
        .run(&RemoteCommand::script(timeout), Some(script.as_bytes()))
        .await;
    t.finish().await;
    let out = out?;
    if !out.success() {
        return Err(FirewallError::Loader(out.stderr_text().trim().to_string()));
    }
    Ok(out.stdout_text().trim().to_string())
}

/// The seconds the host waits for a confirmation (`firewall_confirm_timeout`, default 30).
pub fn confirm_timeout(inv: &Inventory, host: &HostName) -> u64 {
    inv.host_vars(host)
        .get("firewall_confirm_timeout")
        .and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(30)
}

/// Confirm a pending firewall change on `host` over a new connection, or find out that the
/// host rolled it back.
pub async fn confirm(inv: &Inventory, host: &HostName) -> Outcome {
    let started = Instant::now();
    let wait = Duration::from_secs(confirm_timeout(inv, host));
    let command_timeout = Duration::from_secs(30);
    let first = match run_fresh(inv, host, "--confirm", command_timeout).await {
        Ok(s) if s == "confirmed" => return Outcome::Confirmed,
        Ok(s) if s == "rolled-back" => {
            return Outcome::RolledBack("the host's timer ran out before foobar confirmed".into());
        }
        Ok(_) => return Outcome::NothingPending,
        Err(e) => e.to_string(),
    };
    // Locked out (or the host is gone): the host's timer restores the previous rules.
    // The wait is bounded at load (`firewall_confirm_timeout`, at most an hour); saturate anyway.
    let deadline = started
        .checked_add(wait.saturating_add(Duration::from_secs(5)))
        .unwrap_or(started + Duration::from_secs(24 * 3600));
    tokio::time::sleep_until(deadline.into()).await;
    let mut last = String::new();
    for _ in 0..3 {
        match run_fresh(inv, host, "--status", command_timeout).await {
            Ok(s) if s == "rolled-back" => return Outcome::RolledBack(first),
            Ok(s) => {
                return Outcome::Unknown(format!(
                    "foobar could not reconnect to confirm, and the host says `{s}`"
                ));
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    Outcome::Unknown(format!(
        "foobar could not reconnect to confirm, nor after the host's {} s timer: {last}",
        wait.as_secs()
    ))
}

/// After an apply: every host whose firewall handler ran this time is confirmed over a new SSH
/// connection; a host that rolled back (or whose outcome is unknown) counts as failed.
pub async fn confirm_changed(
    inventory: &Inventory,
    desired: &BTreeMap<HostName, DesiredState>,
    report: &mut super::Report,
) {
    let hosts: Vec<HostName> = report
        .hosts
        .iter()
        .filter(|(h, r)| {
            desired.get(*h).is_some_and(manages_firewall)
                && r.done.iter().any(
                    |d| matches!(d, super::Outcome::Handler { name } if name.contains("firewall")),
                )
        })
        .map(|(h, _)| h.clone())
        .collect();
    let outcomes = futures::future::join_all(
        hosts
            .iter()
            .map(|h| async move { (h.clone(), confirm(inventory, h).await) }),
    )
    .await;
    for (h, outcome) in outcomes {
        let Some(r) = report.hosts.get_mut(&h) else {
            continue;
        };
        let failed = |message: String| super::HostStatus::Failed {
            stage: super::Stage::Firewall,
            message,
            hint: Some(super::Stage::Firewall.hint().to_string()),
        };
        match outcome {
            Outcome::Confirmed => r.done.push(super::Outcome::Firewall {
                what: "firewall confirmed over a new connection".into(),
            }),
            Outcome::NothingPending => {}
            // OpenSSH's words, never a secret (none goes into a connection), on one line.
            Outcome::RolledBack(why) => {
                let why = why.lines().map(str::trim).collect::<Vec<_>>().join(" ");
                r.status = failed(format!("{ROLLED_BACK} ({why})"));
            }
            Outcome::Unknown(why) => r.status = failed(why),
        }
    }
}
