//! The replication data path: a heartbeat row written on the primary and read back on every
//! replica within the lag limit.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::VerifyFailure;
use crate::inventory::HostName;
use crate::mysql::{Check, DbFacts};
use crate::transport::{RemoteCommand, Transport};

pub(super) async fn heartbeat(
    primary: &dyn Transport,
    primary_facts: &DbFacts,
    replicas: &[(HostName, Arc<dyn Transport>, &DbFacts)],
    max_lag: u64,
    timeout: Duration,
) -> BTreeMap<HostName, Check> {
    let mut out = BTreeMap::new();
    let token = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    );
    let client = primary_facts.version.flavor.client_binary();
    let write = format!(
        "CREATE DATABASE IF NOT EXISTS foobar_meta;\nCREATE TABLE IF NOT EXISTS foobar_meta.heartbeat (id INT PRIMARY KEY, token VARCHAR(64) NOT NULL, written_at TIMESTAMP(6) NOT NULL);\nREPLACE INTO foobar_meta.heartbeat VALUES (1, '{token}', NOW(6));\n"
    );
    let cmd = RemoteCommand {
        command_line: format!("{client} --batch"),
        timeout,
    };
    match primary.run(&cmd, Some(write.as_bytes())).await {
        Ok(o) if o.success() => {}
        Ok(o) => {
            for (h, _, _) in replicas {
                out.insert(
                    h.clone(),
                    VerifyFailure::HeartbeatNotWritten {
                        primary: primary.host().clone(),
                        stderr: o.stderr_text().trim().to_string(),
                    }
                    .check("heartbeat"),
                );
            }
            return out;
        }
        Err(e) => {
            let check = VerifyFailure::PrimaryUnreachable { source: e }.check("heartbeat");
            for (h, _, _) in replicas {
                out.insert(h.clone(), check.clone());
            }
            return out;
        }
    }
    let started = Instant::now();
    let limit = Duration::from_secs(max_lag.max(1));
    for (host, t, facts) in replicas {
        let read = "SELECT token FROM foobar_meta.heartbeat WHERE id = 1;\n";
        let cmd = RemoteCommand {
            command_line: format!(
                "{} --batch --skip-column-names",
                facts.version.flavor.client_binary()
            ),
            timeout,
        };
        let check = loop {
            let seen = t
                .run(&cmd, Some(read.as_bytes()))
                .await
                .ok()
                .filter(|o| o.success())
                .map(|o| o.stdout_text());
            if seen.as_deref().map(str::trim) == Some(token.as_str()) {
                break Check::pass(
                    "heartbeat",
                    format!(
                        "a row written on {} was read here after {:.1} s",
                        primary.host(),
                        started.elapsed().as_secs_f64()
                    ),
                );
            }
            if started.elapsed() > limit {
                break VerifyFailure::HeartbeatLate {
                    primary: primary.host().clone(),
                    seconds: limit.as_secs(),
                }
                .check("heartbeat");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        out.insert(host.clone(), check);
    }
    out
}
