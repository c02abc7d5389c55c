//! `foobar audit`: the stack's weaknesses, from the configuration and (with `--live`) the
//! hosts. Exit 0 when no finding is at or above `--fail-on`, 2 otherwise, 1 on error.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Args;

use super::{CliError, Common};
use crate::audit::{self, AuditInput, AuditReport, Finding, Severity};
use crate::error::ExitCategory;
use crate::inventory::{self, HostName, SecretSource, Secrets};
use crate::render::RenderContext;
use crate::secret::Secret;
use crate::transport::{self, RemoteCommand};

/// The secrets the inventory can give; a placeholder for each one it cannot. The audit needs
/// no secret's value (the certificate is read separately), so it runs without them.
fn secrets_or_placeholders(inv: &inventory::Inventory) -> Secrets {
    let mut out = Secrets::new();
    for (name, r) in &inv.secrets {
        let value = match &r.source {
            SecretSource::Env(var) => std::env::var(var).ok().filter(|v| !v.is_empty()),
            SecretSource::File(path) => std::fs::read_to_string(path).ok(),
        };
        out.insert(
            name.clone(),
            Secret::new(value.unwrap_or_else(|| format!("foobar-audit-placeholder-{name}"))),
        );
    }
    out
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub common: Common,
    /// Also read the hosts (listening sockets, read_only, anonymous accounts): one SSH
    /// round trip per host, read-only.
    #[arg(long)]
    pub live: bool,
    /// Exit 2 when a finding is at or above this severity.
    #[arg(long, value_enum, default_value_t = Severity::High)]
    pub fail_on: Severity,
}

pub async fn run(args: AuditArgs) -> Result<ExitCategory, CliError> {
    let AuditArgs {
        common,
        live,
        fail_on,
    } = args;
    let common = &common;
    let inv = inventory::load_stack_inventory(&common.inventory, &common.playbook)?;
    let playbook = inventory::load_playbook(&common.playbook, &inv)?;
    let text = std::fs::read_to_string(&common.inventory)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", common.inventory.display()))?;
    let selected = inv.limit(&common.limit)?;
    let hosts: Vec<HostName> = selected
        .into_iter()
        .filter(|h| playbook.plays.iter().any(|p| p.hosts.contains(h)))
        .collect();
    let secrets = secrets_or_placeholders(&inv);
    let ctx = RenderContext::new(&inv, &playbook, &secrets)?;
    let mut desired = BTreeMap::new();
    for h in &hosts {
        desired.insert(h.clone(), ctx.render_host(h)?);
    }
    let mut findings: Vec<Finding> = audit::audit_config(&AuditInput {
        inventory: &inv,
        inventory_text: &text,
        desired: &desired,
        certificate_days: audit::certificate_days(&inv),
    });

    if live {
        let timeout = Duration::from_secs(inv.ssh.command_timeout.min(60));
        use futures::StreamExt;
        // At most --forks hosts read at once, as every command that connects.
        let results: Vec<_> = futures::stream::iter(hosts.iter().map(|h| {
            let spec = inv.connection(h);
            let database = inv.topology.is_database(h);
            async move {
                let script = audit::live_script(database);
                let r = match transport::connect(&spec).await {
                    Ok(t) => {
                        let out = t
                            .run(&RemoteCommand::script(timeout), Some(script.as_bytes()))
                            .await;
                        t.finish().await;
                        out.map_err(|e| e.to_string())
                    }
                    Err(e) => Err(e.to_string()),
                };
                (h.clone(), r)
            }
        }))
        .buffered(common.forks.max(1))
        .collect()
        .await;
        let mut unreachable = false;
        let mut releases = std::collections::BTreeMap::new();
        for (h, r) in results {
            match r {
                Ok(o) => {
                    let text = o.stdout_text();
                    findings.extend(audit::audit_live(&inv, &h, &text));
                    releases.insert(h, audit::Release::parse(&text));
                }
                Err(e) => {
                    unreachable = true;
                    crate::warn!("error: {h}: {}\n", ctx.redactor.redact(&e));
                }
            }
        }
        findings.extend(audit::mixed_releases(&releases));
        if unreachable {
            return Err(CliError::Usage {
                message: "audit --live could not read every host".into(),
                hint: "check the hosts are up and `ssh` to them works, or run `foobar audit` without --live".into(),
            });
        }
    }

    let report = AuditReport::new(findings, live);
    if common.json {
        let text = serde_json::to_string_pretty(&report).map_err(anyhow::Error::from)?;
        crate::say!("{text}\n");
    } else {
        crate::say!("{}", human(&report));
    }
    Ok(if report.fails(fail_on) {
        ExitCategory::ChangesPresent
    } else {
        ExitCategory::Ok
    })
}

fn human(report: &AuditReport) -> String {
    let mut s = String::new();
    for f in &report.findings {
        s.push_str(&format!(
            "{:<8} {}: {}\n  where: {}\n  why:   {}\n  fix:   {}\n\n",
            f.severity.to_string().to_uppercase(),
            f.id,
            f.summary,
            f.location,
            f.why,
            f.fix
        ));
    }
    let n = &report.summary;
    s.push_str(&format!(
        "{} findings: {} critical, {} high, {} medium, {} low\n",
        n.findings, n.critical, n.high, n.medium, n.low
    ));
    s
}
