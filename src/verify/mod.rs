//! Verify: does the stack work? Replication first, then the load balancer, Nginx, the
//! services and HTTP through the load balancer.
//!
//! In: the inventory, the playbook's desired state per host, an open transport per host.
//! Out: [`Health`], a list of [`Check`]s per host; healthy when every check passed. Each host
//! is read in one remote command; the replication data path is proven by a heartbeat row
//! written on the primary and read back on every replica within the lag limit. Nothing is
//! changed but that heartbeat row (in its own database, `foobar_meta`).

pub mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::apply::database::{self, DatabaseConfig};
use crate::inventory::{DatabaseRole, HostName, Inventory};
use crate::mysql::{self, Check, ClusterMember, DbFacts};
use crate::remote::section::{self, Section};
use crate::render::DesiredState;
use crate::shell::{Script, sh_quote};
use crate::transport::{RemoteCommand, Transport};

mod failure;
mod haproxy;
mod replication;
pub mod tls;
pub mod vip;

pub use haproxy::haproxy_checks;
use haproxy::{lb_address, settle_balancers};
use replication::heartbeat;
use tls::verify_https;

pub use failure::VerifyFailure;

#[derive(Debug, Clone, Serialize)]
pub struct HostHealth {
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Health {
    pub format_version: u32,
    pub hosts: BTreeMap<HostName, HostHealth>,
}

impl Health {
    pub fn healthy(&self) -> bool {
        self.hosts.values().all(|h| h.checks.iter().all(|c| c.ok))
    }
}

pub struct VerifyInput<'a> {
    pub inventory: &'a Inventory,
    pub desired: &'a BTreeMap<HostName, DesiredState>,
    pub transports: &'a BTreeMap<HostName, Arc<dyn Transport>>,
    pub unreachable: &'a BTreeMap<HostName, String>,
    pub database: Option<&'a DatabaseConfig>,
    pub max_lag: u64,
    pub timeout: Duration,
    /// How long to wait for HAProxy's checks to bring up servers whose hosts look healthy
    /// (right after an apply, a server needs `rise` good checks in a row).
    pub settle: Duration,
}

fn role(desired: &DesiredState) -> Option<DatabaseRole> {
    desired.plays.iter().find_map(|p| p.database)
}

/// One script per host: declared services active, `nginx -t` where Nginx runs, HAProxy's
/// server states where it runs, database facts on database hosts.
fn host_script(
    desired: &DesiredState,
    haproxy_socket: Option<&str>,
    facts_sql: Option<&str>,
) -> String {
    let mut s = Script::new();
    s.code("export LC_ALL=C\n");
    let services = desired.services();
    if !services.is_empty() {
        s.code(Section::Services.echo()).code("\n");
        for svc in &services {
            s.code("printf '%s\\t%s\\n' ")
                .word(svc)
                .code(" \"$(systemctl is-active ")
                .word(svc)
                .code(" 2>/dev/null)\"\n");
        }
    }
    if services.contains(&"nginx") {
        s.code(Section::Nginx.echo())
            .code("\nnginx -t -q 2>&1; echo \"exit $?\"\n");
    }
    if let Some(sock) = haproxy_socket {
        s.code(Section::Haproxy.echo())
            .code("\n")
            .append(&crate::remote::haproxy::haproxy_runtime(
                sock,
                "show servers state",
            ))
            .code(" 2>&1\n");
    }
    if desired.firewall().is_some() {
        s.append(&crate::gather::firewall_facts());
    }
    if let Some(sql) = facts_sql {
        s.code(Section::Database.echo())
            .code("\n")
            .append(&crate::gather::database_probe_script(sql));
    }
    s.code(Section::End.echo()).code("\n");
    // Every value is a word: only a NUL could fail, and load refuses those.
    s.to_stdin()
        .unwrap_or_else(|e| format!("echo {} >&2; exit 1\n", sh_quote(&e.to_string())))
}

/// The firewall: foobar's table is loaded, as it was when its ruleset was confirmed.
fn firewall_check(host: &HostName, f: &crate::gather::FirewallFacts) -> Check {
    let failure = if f.live.is_none() {
        VerifyFailure::FirewallNotLoaded { host: host.clone() }
    } else if f.pending {
        VerifyFailure::FirewallPending { host: host.clone() }
    } else if f.live != f.confirmed {
        VerifyFailure::FirewallDrift { host: host.clone() }
    } else {
        return Check::pass("firewall", "the confirmed ruleset is loaded");
    };
    failure.check("firewall")
}

/// The floating address's checks: one probe per reachable load balancer, judged together.
async fn verify_vip(
    input: &VerifyInput<'_>,
    cfg: &vip::VipConfig,
    lbs: &[HostName],
    web: &[HostName],
) -> BTreeMap<HostName, Vec<Check>> {
    let tries = 2 * web.len().max(1) + 2;
    let Ok(script) = vip::probe_script(cfg, tries).to_stdin() else {
        return BTreeMap::new();
    };
    let runs = futures::future::join_all(
        lbs.iter()
            .filter_map(|h| Some((h, input.transports.get(h)?)))
            .map(|(h, t)| {
                let script = script.clone();
                async move {
                    let out = t
                        .run(
                            &RemoteCommand::script(input.timeout),
                            Some(script.as_bytes()),
                        )
                        .await;
                    (h.clone(), out)
                }
            }),
    )
    .await;
    let mut probes = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for (h, out) in runs {
        match out {
            Ok(o) if o.success() => {
                probes.insert(h, vip::parse(&o.stdout_text()));
            }
            Ok(o) => {
                failed.insert(
                    h,
                    vec![
                        VerifyFailure::CheckScript {
                            stderr: o.stderr_text().trim().to_string(),
                        }
                        .check("vip_probe"),
                    ],
                );
            }
            Err(e) => {
                failed.insert(h, vec![VerifyFailure::Transport(e).check("vip_probe")]);
            }
        }
    }
    let mut out = vip::evaluate(cfg, &probes, web);
    out.extend(failed);
    out
}

/// Run every check.
pub async fn verify(input: &VerifyInput<'_>) -> Health {
    let inv = input.inventory;
    let facts_sql = input.database.map(|c| c.facts_sql());
    let lbs: Vec<HostName> = inv.topology.load_balancers.clone();
    let script_of = |h: &HostName| {
        let desired = &input.desired[h];
        let socket = lbs.contains(h).then(|| {
            inv.host_vars(h)
                .get("haproxy_admin_socket")
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_else(|| "/run/haproxy/admin.sock".into())
        });
        let sql = role(desired).and(facts_sql.as_deref());
        host_script(desired, socket.as_deref(), sql)
    };
    let results = futures::future::join_all(input.transports.iter().map(|(h, t)| {
        let script = script_of(h);
        async move {
            let out = t
                .run(
                    &RemoteCommand::script(input.timeout),
                    Some(script.as_bytes()),
                )
                .await;
            (h.clone(), out)
        }
    }))
    .await;
    let results = settle_balancers(input, results, &lbs, &script_of).await;

    let mut hosts: BTreeMap<HostName, HostHealth> = BTreeMap::new();
    let mut facts: BTreeMap<HostName, DbFacts> = BTreeMap::new();
    for (h, why) in input.unreachable {
        hosts.insert(
            h.clone(),
            HostHealth {
                checks: vec![
                    VerifyFailure::Unreachable {
                        host: h.clone(),
                        reason: why.clone(),
                    }
                    .check("reachable"),
                ],
            },
        );
    }
    for (h, out) in results {
        let mut checks = Vec::new();
        let out = match out {
            Ok(o) if o.success() => o,
            Ok(o) => {
                checks.push(
                    VerifyFailure::CheckScript {
                        stderr: o.stderr_text().trim().to_string(),
                    }
                    .check("reachable"),
                );
                hosts.insert(h, HostHealth { checks });
                continue;
            }
            Err(e) => {
                checks.push(VerifyFailure::Transport(e).check("reachable"));
                hosts.insert(h, HostHealth { checks });
                continue;
            }
        };
        let sec = section::split(&out.stdout_text());
        if let Some(text) = sec.get(&Section::Database) {
            match database::parse_probe(text) {
                Ok(Some(f)) => {
                    facts.insert(h.clone(), f);
                }
                Ok(None) => checks.push(VerifyFailure::DatabaseStopped.check("database")),
                Err(e) => checks.push(VerifyFailure::DatabaseProbe(e).check("database")),
            }
        }
        if let Some(text) = sec.get(&Section::Services) {
            for line in text.lines() {
                let (svc, state) = line.split_once('\t').unwrap_or((line, ""));
                if state == "active" {
                    checks.push(Check::pass("service", format!("{svc} is active")));
                } else {
                    checks.push(
                        VerifyFailure::ServiceInactive {
                            host: h.clone(),
                            service: svc.to_string(),
                            state: if state.is_empty() { "unknown" } else { state }.to_string(),
                        }
                        .check("service"),
                    );
                }
            }
        }
        if let Some(text) = sec.get(&Section::Nginx) {
            if text.trim_end().ends_with("exit 0") {
                checks.push(Check::pass("nginx_config", "nginx -t passes"));
            } else {
                checks.push(
                    VerifyFailure::NginxConfig {
                        output: text.trim().to_string(),
                    }
                    .check("nginx_config"),
                );
            }
        }
        if let Some(text) = sec.get(&Section::Haproxy) {
            checks.extend(haproxy_checks(text));
        }
        if let Some(text) = sec.get(&Section::FirewallState) {
            checks.push(firewall_check(
                &h,
                &crate::gather::parse_firewall_facts(text),
            ));
        }
        hosts.insert(h, HostHealth { checks });
    }

    // Replication: per replica status, cluster-wide checks, and the heartbeat data path.
    if let Some(cfg) = input.database {
        let replicas: Vec<HostName> = input
            .desired
            .iter()
            .filter(|(_, d)| role(d) == Some(DatabaseRole::Replica))
            .map(|(h, _)| h.clone())
            .collect();
        for r in &replicas {
            if let Some(f) = facts.get(r) {
                let ro = if f.version.flavor == mysql::Flavor::MySql {
                    f.fully_read_only()
                } else {
                    f.read_only
                };
                let mut c = mysql::evaluate_replica(
                    f.replica.as_ref(),
                    &cfg.source_host,
                    cfg.port,
                    input.max_lag,
                    ro,
                );
                let entry = hosts
                    .entry(r.clone())
                    .or_insert(HostHealth { checks: vec![] });
                c.append(&mut entry.checks);
                entry.checks = c;
            }
        }
        if let Some(pf) = facts.get(&cfg.primary) {
            let members: Vec<ClusterMember<'_>> = replicas
                .iter()
                .filter_map(|r| {
                    facts.get(r).map(|f| ClusterMember {
                        host: r.as_str(),
                        facts: f,
                    })
                })
                .collect();
            let cluster = mysql::evaluate_cluster(
                ClusterMember {
                    host: cfg.primary.as_str(),
                    facts: pf,
                },
                &members,
            );
            let entry = hosts
                .entry(cfg.primary.clone())
                .or_insert(HostHealth { checks: vec![] });
            let mut c = cluster;
            c.append(&mut entry.checks);
            entry.checks = c;
            if let Some(pt) = input.transports.get(&cfg.primary) {
                let rs: Vec<(HostName, Arc<dyn Transport>, &DbFacts)> = replicas
                    .iter()
                    .filter_map(|r| {
                        Some((r.clone(), input.transports.get(r)?.clone(), facts.get(r)?))
                    })
                    .collect();
                for (h, c) in heartbeat(pt.as_ref(), pf, &rs, input.max_lag, input.timeout).await {
                    hosts
                        .entry(h)
                        .or_insert(HostHealth { checks: vec![] })
                        .checks
                        .insert(0, c);
                }
            }
        }
    }

    // HTTP through each load balancer reaches every web host; with a floating address, through
    // that address, asked from the load balancers themselves (see `vip`).
    let web: Vec<HostName> = inv.topology.web_servers.clone();
    let floating = vip::config(inv);
    if let Some(cfg) = &floating {
        for (h, checks) in verify_vip(input, cfg, &lbs, &web).await {
            hosts
                .entry(h)
                .or_insert(HostHealth { checks: vec![] })
                .checks
                .extend(checks);
        }
    }
    for lb in lbs
        .iter()
        .filter(|l| floating.is_none() && input.transports.contains_key(*l))
    {
        let addr = lb_address(inv, lb);
        let domain = inv
            .host_vars(lb)
            .get("domain")
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_else(|| "localhost".into());
        let vars = inv.host_vars(lb);
        if vars
            .get("https")
            .is_some_and(|v| v == &serde_json::Value::Bool(true))
        {
            let ca = vars
                .get("tls_ca_file")
                .and_then(|v| v.as_str())
                .map(|p| crate::inventory::relative_to(&inv.path, p));
            let checks = verify_https(&addr, &domain, ca.as_deref(), &web).await;
            hosts
                .entry(lb.clone())
                .or_insert(HostHealth { checks: vec![] })
                .checks
                .extend(checks);
            continue;
        }
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut errors = Vec::new();
        for _ in 0..(2 * web.len().max(1) + 2) {
            match crate::http::Client::VERIFY.get_ok(&addr, &domain).await {
                Ok(answer) => {
                    for w in &web {
                        if answer.text.contains(&format!("served by {w}")) {
                            *seen.entry(w.to_string()).or_default() += 1;
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let entry = hosts
            .entry(lb.clone())
            .or_insert(HostHealth { checks: vec![] });
        for w in &web {
            match seen.get(w.as_str()) {
                Some(n) => entry.checks.push(Check::pass(
                    "http_through_lb",
                    format!("GET http://{domain}/ via {addr} reached {w} ({n} times)"),
                )),
                None => entry.checks.push(
                    VerifyFailure::NeverReached {
                        scheme: "http",
                        domain: domain.clone(),
                        addr: addr.clone(),
                        web: w.clone(),
                        error: errors.first().map(|e| e.to_string()),
                    }
                    .check("http_through_lb"),
                ),
            }
        }
    }

    Health {
        format_version: crate::plan::FORMAT_VERSION,
        hosts,
    }
}

#[cfg(test)]
mod tests {
    use crate::inventory::{ServiceSpec, ServiceState};
    use crate::render::DesiredPlay;

    use super::*;

    /// The script as it was written before it was built with `Script`: the same bytes.
    #[test]
    fn the_host_script_reads_each_part_in_its_section() {
        let desired = DesiredState {
            host: HostName::new("web-01"),
            plays: vec![DesiredPlay {
                index: 0,
                name: "web".into(),
                packages: vec![],
                entries: vec![],
                services: ["nginx", "it's"]
                    .iter()
                    .map(|n| ServiceSpec {
                        name: n.to_string(),
                        enabled: true,
                        state: ServiceState::Started,
                    })
                    .collect(),
                handlers: vec![],
                database: None,
                serial: None,
                after: Default::default(),
            }],
        };
        let mut want = String::from("export LC_ALL=C\necho '#foobar:services'\n");
        for q in ["\"it's\"", "nginx"] {
            want.push_str(&format!(
                "printf '%s\\t%s\\n' {q} \"$(systemctl is-active {q} 2>/dev/null)\"\n"
            ));
        }
        want.push_str("echo '#foobar:nginx'\nnginx -t -q 2>&1; echo \"exit $?\"\n");
        want.push_str("echo '#foobar:haproxy'\n");
        want.push_str(
            &crate::remote::haproxy::haproxy_runtime("/run/h.sock", "show servers state")
                .to_string(),
        );
        want.push_str(" 2>&1\necho '#foobar:database'\n");
        want.push_str(&crate::gather::database_probe("SELECT 1;"));
        want.push_str("echo '#foobar:end'\n");
        assert_eq!(
            host_script(&desired, Some("/run/h.sock"), Some("SELECT 1;")),
            want
        );
    }
}
