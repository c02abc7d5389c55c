//! What can go wrong on a host after it was gathered, typed: the [`Stage`] it went wrong in and
//! an [`ApplyError`] that says what happened and, through [`Diagnostic::hint`], what to do
//! next. The report carries both (`HostStatus::Failed { stage, message, hint }`), so every host
//! failure shows its hint, as load errors do.

use std::fmt;

use serde::Serialize;

use crate::error::Diagnostic;
use crate::inventory::HostName;
use crate::transport::TransportError;

/// Where on a host a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Lock,
    Package,
    Directory,
    Attributes,
    /// Writing a new body to its temp file.
    Stage,
    Validate,
    Backup,
    Swap,
    Link,
    Delete,
    Enable,
    Start,
    /// Sending the play's script, or its end (a timeout, an early exit).
    Play,
    Database,
    Drain,
    Rotation,
    HealthGate,
    /// Confirming a firewall change over a new connection (confirm-or-rollback).
    Firewall,
}

impl Stage {
    pub fn word(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Lock => "lock",
            Stage::Package => "package",
            Stage::Directory => "directory",
            Stage::Attributes => "attributes",
            Stage::Stage => "stage",
            Stage::Validate => "validate",
            Stage::Backup => "backup",
            Stage::Swap => "swap",
            Stage::Link => "link",
            Stage::Delete => "delete",
            Stage::Enable => "enable",
            Stage::Start => "start",
            Stage::Play => "play",
            Stage::Database => "database",
            Stage::Drain => "drain",
            Stage::Rotation => "rotation",
            Stage::HealthGate => "health gate",
            Stage::Firewall => "firewall",
        }
    }

    /// The stage an apply script's `ERR` line names (the script's own keywords).
    pub fn from_script(word: &str) -> Stage {
        match word {
            "package" => Stage::Package,
            "directory" => Stage::Directory,
            "attributes" => Stage::Attributes,
            "stage" => Stage::Stage,
            "validate" => Stage::Validate,
            "backup" => Stage::Backup,
            "swap" => Stage::Swap,
            "link" => Stage::Link,
            "delete" => Stage::Delete,
            "enable" => Stage::Enable,
            "start" => Stage::Start,
            _ => Stage::Play,
        }
    }

    /// Nothing live was replaced when a run stops here.
    pub fn nothing_replaced(self) -> bool {
        matches!(
            self,
            Stage::Lock
                | Stage::Package
                | Stage::Directory
                | Stage::Attributes
                | Stage::Stage
                | Stage::Validate
        )
    }

    /// What to do next, for a failure in this stage.
    pub fn hint(self) -> &'static str {
        match self {
            Stage::Connect => {
                "check that the host is up and that `ssh` to it works with the inventory's settings"
            }
            Stage::Lock => {
                "wait for the other run to finish; if it died, run again with --break-lock"
            }
            Stage::Package => {
                "check the package name and the host's apt sources (`apt-get update` on the host if its lists are old)"
            }
            Stage::Directory | Stage::Attributes => {
                "check that the owner and group exist on the host; a symbolic link where a directory or file is declared is never followed: remove it"
            }
            Stage::Stage => {
                "check that the destination's directory is writable and has space, and that the owner and group exist on the host"
            }
            Stage::Validate => {
                "the new file was not installed; fix the template or content so its `validate` command accepts it"
            }
            Stage::Backup | Stage::Swap | Stage::Link | Stage::Delete => {
                "the files this play had replaced were restored; check the destination's directory and the space in /var/backups/foobar"
            }
            Stage::Enable | Stage::Start => {
                "the files this play had replaced were restored; `systemctl status` and `journalctl -u` on the host say why the service did not start"
            }
            Stage::Play => {
                "run again with FOOBAR_TRACE=1 to see each remote command; raise `command_timeout` under `ssh:` if the play needs longer"
            }
            Stage::Database => {
                "`foobar verify` shows the replication state; see docs/operations/database.md"
            }
            Stage::Drain | Stage::Rotation => {
                "check HAProxy's runtime API (`stats socket` in haproxy.cfg) and that the backend's servers are named as the hosts"
            }
            Stage::HealthGate => {
                "the host runs its previous files and stays out of rotation; fix the cause, then apply again to bring it back"
            }
            Stage::Firewall => {
                "the host restored its previous ruleset by itself; fix `admin_networks` (foobar must be able to reach port 22 through the new rules), then apply again"
            }
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

impl Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.word())
    }
}

/// A host's failure after it was gathered.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{}", crate::apply::lock::lock_message(.holder))]
    Locked { holder: String },
    #[error("plan is stale: the host changed since the plan was made; run `foobar plan` again")]
    Stale,
    #[error("reading the host under its lock failed: {0}")]
    Gather(#[from] crate::gather::GatherError),
    #[error("{0}")]
    Transport(#[from] TransportError),
    #[error("the play's script cannot be built: {0}")]
    Build(#[from] super::script::ScriptError),
    #[error("{stage} {target} failed:\n{output}")]
    Script {
        stage: Stage,
        target: String,
        output: String,
    },
    #[error(
        "timed out after {seconds} s (the remote `timeout` stopped the apply script); raise `command_timeout` under `ssh:` if that is expected"
    )]
    TimedOut { seconds: u64 },
    #[error("the apply script stopped early (exit {code:?}): {stderr}")]
    StoppedEarly { code: Option<i32>, stderr: String },
    #[error("{0}")]
    Database(#[from] crate::apply::database::DatabaseError),
    #[error("not configured: the primary {0} did not finish its database step in this run")]
    PrimaryNotReady(HostName),
    #[error("{source}")]
    Rollout {
        stage: Stage,
        #[source]
        source: RolloutError,
    },
    #[error("{source}; {restored}; left in maintenance on {balancer} (out of rotation)")]
    HealthGate {
        source: RolloutError,
        restored: String,
        /// The load balancers it is out of rotation on.
        balancer: String,
    },
}

impl ApplyError {
    pub fn stage(&self) -> Stage {
        match self {
            ApplyError::Locked { .. } | ApplyError::Stale | ApplyError::Gather(_) => Stage::Lock,
            ApplyError::Transport(_)
            | ApplyError::Build(_)
            | ApplyError::TimedOut { .. }
            | ApplyError::StoppedEarly { .. } => Stage::Play,
            ApplyError::Script { stage, .. } | ApplyError::Rollout { stage, .. } => *stage,
            ApplyError::Database(_) | ApplyError::PrimaryNotReady(_) => Stage::Database,
            ApplyError::HealthGate { .. } => Stage::HealthGate,
        }
    }
}

impl Diagnostic for ApplyError {
    fn hint(&self) -> Option<String> {
        match self {
            // The message says what to do (wait, or --break-lock).
            ApplyError::Locked { .. } => None,
            ApplyError::Stale => {
                Some("the host was left as it is; run `foobar plan` again and review it".into())
            }
            ApplyError::Transport(e) => e.hint().or_else(|| Some(Stage::Play.hint().into())),
            ApplyError::Build(_) => Some(
                "make the plan again (`foobar plan --out FILE`) and apply the new plan".into(),
            ),
            ApplyError::Rollout { source, stage } => {
                Some(source.hint().unwrap_or_else(|| stage.hint().to_string()))
            }
            ApplyError::Database(e) => {
                Some(e.hint().unwrap_or_else(|| Stage::Database.hint().to_string()))
            }
            ApplyError::PrimaryNotReady(_) => Some(
                "fix the primary's failure shown above; the replica is configured on the next apply"
                    .into(),
            ),
            other => Some(other.stage().hint().to_string()),
        }
    }
}

/// What went wrong while taking a host out of the load balancer's rotation, checking it, or
/// putting it back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RolloutError {
    #[error("HAProxy's runtime API on {balancer} did not answer: {detail}")]
    RuntimeApi { balancer: HostName, detail: String },
    #[error("HAProxy refused `{command}`: {answer}")]
    Refused { command: String, answer: String },
    #[error("backend {backend} has no servers on {balancer}: {answer}")]
    NoServers {
        backend: String,
        balancer: HostName,
        answer: String,
    },
    #[error("{server} is not a server of backend {backend} on {balancer}")]
    NotAServer {
        server: HostName,
        backend: String,
        balancer: HostName,
    },
    #[error("HAProxy did not report {server} UP within {seconds} s; left in maintenance")]
    NotUp { server: HostName, seconds: u64 },
    #[error("no address to check {0} directly")]
    NoAddress(HostName),
    #[error(
        "HAProxy on {balancer} did not answer on its runtime API within {seconds} s after its change; the load balancers after it were left as they were"
    )]
    NotServing { balancer: HostName, seconds: u64 },
    #[error("{server} failed its health check for {seconds} s: {}", .last.as_ref().map(|e| e.to_string()).unwrap_or_default())]
    Unhealthy {
        server: HostName,
        seconds: u64,
        /// The last request's failure (None: the deadline passed before the first answer).
        last: Option<crate::http::HttpError>,
    },
}

impl Diagnostic for RolloutError {
    fn hint(&self) -> Option<String> {
        Some(
            match self {
                RolloutError::RuntimeApi { .. } => {
                    "check that HAProxy runs on the load balancer and its `stats socket` is the one the inventory names"
                }
                RolloutError::Refused { .. }
                | RolloutError::NoServers { .. }
                | RolloutError::NotAServer { .. } => {
                    "the servers of HAProxy's backend must be named as the inventory's hosts; check templates/haproxy"
                }
                RolloutError::NotUp { .. } | RolloutError::Unhealthy { .. } => {
                    "the host runs its previous files and stays out of rotation; check the app's logs on it, fix the cause, then apply again"
                }
                RolloutError::NotServing { .. } => {
                    "check HAProxy on that load balancer (`systemctl status haproxy`, `haproxy -c -f /etc/haproxy/haproxy.cfg`); its peer keeps the floating address meanwhile; fix it and apply again"
                }
                RolloutError::NoAddress(_) => {
                    "give the host an address the load balancer reaches (`private_ip` or `address`) in the inventory"
                }
            }
            .to_string(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::outcome::{HostReport, HostStatus, fail};
    use crate::secret::Redactor;

    fn failed(error: ApplyError) -> HostReport {
        let mut rep = HostReport::new();
        fail(
            &crate::event::Silent,
            &HostName::new("web-01"),
            &mut rep,
            error,
            &Redactor::new([]),
        );
        rep
    }

    #[test]
    fn every_host_failure_carries_its_stage_and_hint() {
        let cases = [
            (
                ApplyError::Transport(TransportError::CommandTimedOut {
                    host: HostName::new("web-01"),
                    command: "sh -s".into(),
                    seconds: 5,
                }),
                Stage::Play,
                "command_timeout",
            ),
            (
                ApplyError::Database(crate::apply::database::DatabaseError::NeedsOperator {
                    host: HostName::new("web-03"),
                    problems: vec!["the replica's data diverged from the primary's".into()],
                }),
                Stage::Database,
                "foobar reseed web-03",
            ),
            (
                ApplyError::Rollout {
                    stage: Stage::Drain,
                    source: RolloutError::RuntimeApi {
                        balancer: HostName::new("lb-01"),
                        detail: "connection refused".into(),
                    },
                },
                Stage::Drain,
                "stats socket",
            ),
            (
                ApplyError::Script {
                    stage: Stage::from_script("validate"),
                    target: "/etc/haproxy/haproxy.cfg".into(),
                    output: "bad".into(),
                },
                Stage::Validate,
                "was not installed",
            ),
        ];
        for (error, stage, hint_has) in cases {
            let rep = failed(error);
            let HostStatus::Failed {
                stage: got,
                hint: Some(hint),
                ..
            } = &rep.status
            else {
                panic!("no hint: {:?}", rep.status);
            };
            assert_eq!(*got, stage);
            assert!(hint.contains(hint_has), "{hint}");
            let report = crate::apply::Report {
                format_version: 1,
                dry_run: false,
                hosts: [(HostName::new("web-01"), rep.clone())].into(),
                interrupted: false,
            };
            let human =
                crate::report::human::report(&report, &crate::report::human::Styles::new(false));
            assert!(human.contains(&format!("  hint: {hint}")), "{human}");
            let json = serde_json::to_value(&report).unwrap();
            assert_eq!(json["hosts"]["web-01"]["stage"], stage.word());
            assert_eq!(json["hosts"]["web-01"]["hint"], hint.as_str());
        }
    }
}
