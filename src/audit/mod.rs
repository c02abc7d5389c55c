//! Audit: the stack's structural weaknesses, read from the inventory and playbook (and, with
//! `--live`, from the hosts), each as a [`Finding`] with a severity, where it is, why it matters
//! and the concrete fix.
//!
//! In: the [`Inventory`], the inventory file's text (for line numbers), and every host's rendered
//! [`DesiredState`] (rendered with placeholder values for secrets that cannot be read: the
//! audit needs no secret but the TLS certificate). Out: findings, sorted most severe first.
//! Pure but for reading the certificate file; the live part only parses what
//! [`live_script`] printed on a host.
//!
//! What "configured" means for each check (the settings live in the inventory):
//! - a second load balancer: two or more hosts in group `loadbalancer`;
//! - a failover path for the primary: at least one host in `db_replica` and the variable
//!   `db_failover` set (`manual`: `foobar failover` promotes a replica; `automatic`);
//! - TLS at the load balancer: `https: true` with secrets `tls_certificate` and `tls_key`;
//! - a firewall: the host is in group `firewall` (targeted by playbooks/firewall.yml) and
//!   `admin_networks` is a non-empty list;
//! - replication over TLS: `replication_ssl: true` (with secrets `db_tls_ca`, `db_tls_cert`,
//!   `db_tls_key`);
//! - monitoring: a non-empty group `monitoring`;
//! - backups: a `backups:` section in the inventory (`Inventory::backups`).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::inventory::{HostName, Inventory};
use crate::remote::section::{self, Line, Section};
use crate::render::{DesiredState, EntryKind};
use crate::shell::Script;

mod certificate;
mod releases;
pub use certificate::{CertificateError, certificate_days, certificate_days_left};
pub use releases::{Release, mixed_releases};

/// Audit JSON documents carry this version; see docs/operations/audit.md.
pub const FORMAT_VERSION: u32 = 1;

/// How bad a finding is. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier, e.g. `single_load_balancer`.
    pub id: &'static str,
    pub severity: Severity,
    /// `file:line`, `file`, or `host <name>` (with the path on the host where it applies).
    #[serde(rename = "where")]
    pub location: String,
    /// One line: what is wrong.
    pub summary: String,
    pub why: String,
    pub fix: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub format_version: u32,
    pub live: bool,
    pub findings: Vec<Finding>,
    pub summary: AuditSummary,
}

/// The findings counted, in all and by severity: every JSON document's `summary`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct AuditSummary {
    pub findings: usize,
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

impl AuditReport {
    pub fn new(mut findings: Vec<Finding>, live: bool) -> Self {
        findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.id.cmp(b.id))
                .then_with(|| a.location.cmp(&b.location))
        });
        findings.dedup();
        let count = |sev| findings.iter().filter(|f| f.severity == sev).count();
        let summary = AuditSummary {
            findings: findings.len(),
            critical: count(Severity::Critical),
            high: count(Severity::High),
            medium: count(Severity::Medium),
            low: count(Severity::Low),
        };
        Self {
            format_version: FORMAT_VERSION,
            live,
            findings,
            summary,
        }
    }

    /// True when some finding is at or above `threshold`.
    pub fn fails(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }
}

/// Everything the configuration checks read.
pub struct AuditInput<'a> {
    pub inventory: &'a Inventory,
    /// The inventory file's text.
    pub inventory_text: &'a str,
    pub desired: &'a BTreeMap<HostName, DesiredState>,
    /// Days until the certificate expires, when `https` is on and the certificate could be
    /// read (negative: expired); the error text when it could not.
    pub certificate_days: Option<Result<i64, CertificateError>>,
}

/// `file:line` of the first line whose trimmed text starts with `needle`, else `file`.
fn locate(inv: &Inventory, text: &str, needle: &str) -> String {
    let file = inv.path.display();
    match text
        .lines()
        .position(|l| l.trim_start().starts_with(needle))
    {
        Some(i) => format!("{file}:{}", i + 1),
        None => file.to_string(),
    }
}

/// Whether an inventory switch (`https:`, ...) is on: exactly what the templates and `verify`
/// treat as on, a YAML boolean true. `graph` draws by the same rule.
pub fn truthy(v: Option<&serde_json::Value>) -> bool {
    matches!(v, Some(serde_json::Value::Bool(true)))
}

/// An address that means "every interface".
pub fn is_wildcard(addr: &str) -> bool {
    let host = match addr.rsplit_once(':') {
        // `0.0.0.0:80`, `*:80`, `[::]:80`; a bare `::` has colons but no port
        Some((h, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && addr != "::" => h,
        _ => addr,
    };
    matches!(
        host.trim(),
        "" | "*" | "0.0.0.0" | "::" | "[::]" | "0:0:0:0:0:0:0:0"
    )
}

fn file_text(entry: &crate::render::DesiredEntry) -> Option<String> {
    match &entry.kind {
        EntryKind::File { content, .. } => Some(String::from_utf8_lossy(content).into_owned()),
        _ => None,
    }
}

/// `key = value` (my.cnf) or `Environment=KEY=value` (systemd) values in a rendered file.
/// `s` without the double quotes the escaping filters put around a word (`"0.0.0.0"`).
fn unquote(s: &str) -> &str {
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s)
}

fn setting<'t>(text: &'t str, key: &str) -> Option<(usize, &'t str)> {
    text.lines().enumerate().find_map(|(i, l)| {
        let l = l.trim();
        let l = l.strip_prefix("Environment=").map(unquote).unwrap_or(l);
        let (k, v) = l.split_once('=')?;
        (k.trim() == key || k.trim().replace('-', "_") == key.replace('-', "_"))
            .then_some((i + 1, unquote(v.trim())))
    })
}

/// The configuration checks: everything that can be seen without connecting.
pub fn audit_config(input: &AuditInput<'_>) -> Vec<Finding> {
    let inv = input.inventory;
    let text = input.inventory_text;
    let mut out = Vec::new();
    let file = inv.path.display().to_string();

    // --- single points of failure
    let lbs = &inv.topology.load_balancers;
    if lbs.len() == 1 {
        out.push(Finding {
            id: "single_load_balancer",
            severity: Severity::Medium,
            location: locate(inv, text, "loadbalancer:"),
            summary: format!("{} is the only load balancer", lbs[0]),
            why: "if it goes down, no request reaches the web servers (a single point of failure)".into(),
            fix: "add a second machine to group `loadbalancer` and share a floating address between the two with VRRP (keepalived); this needs a second machine, configuration alone cannot fix it".into(),
        });
    }
    // Two load balancers without a floating address still leave users one address to reach:
    // the pair is only closed when `vip:` moves that address between them.
    if lbs.len() >= 2 && !lbs.iter().all(|h| inv.host_vars(h).contains_key("vip")) {
        out.push(Finding {
            id: "single_load_balancer",
            severity: Severity::Medium,
            location: locate(inv, text, "loadbalancer:"),
            summary: format!(
                "{} load balancers but no floating address: users reach one of them",
                lbs.len()
            ),
            why: "when the host users' DNS points at goes down, no request reaches the web servers, though its peer is up".into(),
            fix: "add `vip:` under vars (address, prefix, interface, router_id) and the secret `vip_password`, then `foobar apply`: keepalived moves the address to the peer that serves (see docs/operations/load-balancer-pair.md)".into(),
        });
    }
    let primaries: Vec<&HostName> = inv.topology.database_primary.iter().collect();
    let replicas = &inv.topology.database_replicas;
    let failover = inv
        .vars
        .get("db_failover")
        .and_then(|v| v.as_str())
        .is_some_and(|s| matches!(s, "manual" | "automatic"));
    if primaries.len() == 1 && (replicas.is_empty() || !failover) {
        out.push(Finding {
            id: "single_primary",
            severity: Severity::Medium,
            location: locate(inv, text, "db_primary:"),
            summary: format!("{} is the only database primary and no failover path is configured", primaries[0]),
            why: "if it fails, no writes are possible until someone promotes a replica by hand".into(),
            fix: if replicas.is_empty() {
                "add a replica to group `db_replica` and set `db_failover: manual` under vars (`foobar failover` promotes it)".into()
            } else {
                format!("set `db_failover: manual` under vars: `foobar failover` promotes {} when the primary is lost", replicas[0])
            },
        });
    }

    // --- TLS at the load balancer
    let https = lbs.iter().all(|lb| truthy(inv.host_vars(lb).get("https")));
    if !lbs.is_empty() && !https {
        out.push(Finding {
            id: "no_tls",
            severity: Severity::High,
            location: locate(inv, text, "haproxy_bind:"),
            summary: "the public frontend serves plain HTTP only".into(),
            why: "passwords, cookies and pages cross the internet unencrypted and can be read or changed on the way".into(),
            fix: "set `https: true` under vars and add secrets `tls_certificate` and `tls_key` (`file:` or `env:`); with Let's Encrypt: `certbot certonly --webroot -d <domain>` and point them at /etc/letsencrypt/live/<domain>/fullchain.pem and privkey.pem".into(),
        });
    }
    if https && !lbs.is_empty() {
        let at = inv
            .secrets
            .get("tls_certificate")
            .map(|s| s.location.to_string())
            .unwrap_or_else(|| file.clone());
        match &input.certificate_days {
            None => out.push(Finding {
                id: "tls_certificate_missing",
                severity: Severity::High,
                location: at,
                summary: "`https: true` but no secret `tls_certificate`/`tls_key`".into(),
                why: "HAProxy cannot serve HTTPS without a certificate and its key".into(),
                fix: "add secrets `tls_certificate` and `tls_key` (file: or env:) to the inventory".into(),
            }),
            Some(Err(e)) => out.push(Finding {
                id: "tls_certificate_unreadable",
                severity: Severity::Medium,
                location: at,
                summary: format!("the certificate cannot be checked: {e}"),
                why: "its expiry date is unknown".into(),
                fix: "make the certificate readable where foobar runs, or run `foobar audit --live` (verify reports the days the served certificate has left)".into(),
            }),
            Some(Ok(days)) if *days < 30 => out.push(Finding {
                id: "tls_certificate_expiring",
                severity: if *days < 0 { Severity::Critical } else { Severity::High },
                location: at,
                summary: if *days < 0 {
                    format!("the certificate expired {} days ago", -days)
                } else {
                    format!("the certificate expires in {days} days")
                },
                why: "browsers refuse an expired certificate: the site becomes unreachable".into(),
                fix: "renew it (`certbot renew`, or a new certificate from your CA) and run `foobar apply`".into(),
            }),
            Some(Ok(_)) => {}
        }
    }

    // --- services listening everywhere, replicas writable
    for (host, desired) in input.desired {
        for entry in desired.entries() {
            let Some(body) = file_text(entry) else {
                continue;
            };
            let is_db_conf =
                entry.origin.starts_with("mysql/") && entry.origin.ends_with(".cnf.j2");
            if is_db_conf {
                match setting(&body, "bind-address") {
                    Some((line, v)) if is_wildcard(v) => out.push(Finding {
                        id: "listens_everywhere",
                        severity: Severity::High,
                        location: format!("host {host}: {}:{line}", entry.path),
                        summary: format!("MySQL listens on every interface (bind-address = {v})"),
                        why: "the database is reachable from every network the host is on, the internet included".into(),
                        fix: format!("bind it to the private address: `bind-address = {{{{ private_ip }}}}` in templates/{}", entry.origin),
                    }),
                    Some(_) => {}
                    None => out.push(Finding {
                        id: "listens_everywhere",
                        severity: Severity::Medium,
                        location: format!("host {host}: {}", entry.path),
                        summary: "MySQL's listening address is left to the distribution's default".into(),
                        why: "some distributions and images bind MySQL to every interface".into(),
                        fix: format!("set `bind-address = {{{{ private_ip }}}}` in templates/{}", entry.origin),
                    }),
                }
                let replica = inv.topology.is_replica(host);
                let read_only = setting(&body, "read_only").is_some_and(|(_, v)| {
                    matches!(v.to_ascii_lowercase().as_str(), "on" | "1" | "true")
                });
                if replica && !read_only {
                    out.push(Finding {
                        id: "replica_not_read_only",
                        severity: Severity::High,
                        location: format!("host {host}: {}", entry.path),
                        summary: "the replica accepts writes (no read_only)".into(),
                        why: "a write on the replica silently diverges it from the primary and breaks replication later".into(),
                        fix: format!("add `read_only = ON` (MySQL: and `super_read_only = ON`) to templates/{}", entry.origin),
                    });
                }
            }
            if let Some((line, v)) = setting(&body, "FOOBAR_APP_BIND")
                && is_wildcard(v)
            {
                out.push(Finding {
                    id: "listens_everywhere",
                    severity: Severity::Medium,
                    location: format!("host {host}: {}:{line}", entry.path),
                    summary: format!("the app server listens on every interface ({v})"),
                    why: "it is reachable around Nginx, without its limits and logs".into(),
                    fix: format!(
                        "bind it to `{{{{ private_ip }}}}:{{{{ app_port }}}}` in templates/{}",
                        entry.origin
                    ),
                });
            }
        }
    }

    // --- firewall
    let admin = inv
        .vars
        .get("admin_networks")
        .and_then(|v| v.as_array())
        .is_some_and(|a| !a.is_empty());
    if let Some(w) = inv.topology.firewall_off_warning() {
        let (summary, fix) = w.split_once("\nhint: ").unwrap_or((w.as_str(), ""));
        out.push(Finding {
            id: "firewall_off",
            severity: Severity::High,
            location: "inventory".into(),
            summary: summary.to_string(),
            why: "no host runs foobar's firewall, so nothing limits who reaches the stack's ports"
                .into(),
            fix: fix.to_string(),
        });
    }
    for host in input.desired.keys() {
        if !inv.topology.is_firewalled(host) || !admin {
            out.push(Finding {
                id: "no_firewall",
                severity: Severity::High,
                location: format!("host {host}"),
                summary: "no firewall".into(),
                why: "every port a service opens, by mistake or by default, is reachable from everywhere".into(),
                fix: format!("put {host} in group `firewall`, list the operators' networks in `admin_networks:` under vars, and run `foobar apply -p playbooks/firewall.yml` (confirm-or-rollback: a rule that cuts foobar off is undone by the host)"),
            });
        }
    }

    // --- replication
    if !primaries.is_empty() && !replicas.is_empty() && !truthy(inv.vars.get("replication_ssl")) {
        out.push(Finding {
            id: "replication_without_ssl",
            severity: Severity::Medium,
            location: locate(inv, text, "replication_user:"),
            summary: "replication between the database hosts is not encrypted".into(),
            why: "every row written, and the replication password, crosses the network in clear".into(),
            fix: "set `replication_ssl: true` under vars with secrets `db_tls_ca`, `db_tls_cert`, `db_tls_key` (a certificate naming every database host's private_ip): foobar installs them, configures the servers and replicates with MASTER_SSL=1, verifying the primary's certificate".into(),
        });
    }

    // --- monitoring and backups
    if inv.topology.monitoring.is_empty() {
        out.push(Finding {
            id: "no_monitoring",
            severity: Severity::Medium,
            location: locate(inv, text, "groups:"),
            summary: "nothing monitors the stack".into(),
            why: "failures and slowdowns go unnoticed until users report them".into(),
            fix: "add a group `monitoring` (a host running Prometheus, scraping the node, HAProxy and MySQL exporters) to the inventory".into(),
        });
    }
    if inv.backups.is_none() && !primaries.is_empty() {
        out.push(Finding {
            id: "no_backups",
            severity: Severity::High,
            location: file,
            summary: "no database backups are configured".into(),
            why: "replication copies mistakes (a DROP, a bad migration) to the replica at once: only a backup brings the data back".into(),
            fix: "add a `backups:` section to the inventory (host, dir, schedule, retention; `backups: {}` takes the defaults), declare the secret `binlog_archive_password`, run `foobar apply`, then `foobar backup now`; `foobar verify` then watches the backups and the binlog archive".into(),
        });
    }
    out
}

/// The read-only script `--live` runs on every host (one round trip, like plan's gather):
/// listening TCP sockets, and on database hosts `read_only` and the anonymous accounts.
pub fn live_script(database: bool) -> String {
    let mut s = Script::new();
    s.code("export LC_ALL=C\n")
        .code(Section::Listen.echo())
        .code("\nss -Hltn 2>/dev/null | awk '{print $4}'\n")
        .code(Section::Firewall.echo())
        .code("\nnft list tables 2>/dev/null || true\n")
        .code(Section::Os.echo())
        .code("\ngrep -E '^(VERSION_CODENAME|PRETTY_NAME)=' /etc/os-release 2>/dev/null || true\n");
    if database {
        s.code(Section::Database.echo()).code(
            "\nc=mysql; command -v mariadb >/dev/null && c=mariadb; \"$c\" -N -B -e \"SELECT 'read_only', @@global.read_only; SELECT 'anonymous', COUNT(*) FROM mysql.user WHERE user = ''; SELECT 'version', VERSION()\" 2>&1 || true\n",
        );
    }
    s.code(Section::End.echo()).code("\n");
    s.to_stdin().expect("foobar's own text")
}

/// Findings from what [`live_script`] printed on `host`.
pub fn audit_live(inv: &Inventory, host: &HostName, output: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let vars = inv.host_vars(host);
    let port_of = |name: &str| {
        vars.get(name).and_then(|v| {
            v.as_u64()
                .map(|n| n.to_string())
                .or_else(|| v.as_str().map(String::from))
        })
    };
    let mysql_port = port_of("mysql_port").unwrap_or_else(|| "3306".into());
    let app_port = port_of("app_port").unwrap_or_else(|| "8000".into());
    let mut tables = String::new();
    let mut firewall_read = false;
    for line in section::lines(output) {
        let (section, line) = match line {
            Line::Start(s) => {
                firewall_read |= s == Section::Firewall;
                continue;
            }
            Line::Unknown(_) | Line::Body(None, _) => continue,
            Line::Body(Some(section), line) => (section, line),
        };
        match section {
            Section::Firewall => {
                tables.push_str(line);
                tables.push('\n');
            }
            Section::Listen => {
                let Some((addr, port)) = line.trim().rsplit_once(':') else {
                    continue;
                };
                if !is_wildcard(addr) {
                    continue;
                }
                let what = if port == mysql_port {
                    "MySQL"
                } else if port == app_port {
                    "the app server"
                } else {
                    continue;
                };
                out.push(Finding {
                    id: "listens_everywhere",
                    severity: if what == "MySQL" { Severity::High } else { Severity::Medium },
                    location: format!("host {host}"),
                    summary: format!("{what} listens on every interface ({})", line.trim()),
                    why: "it is reachable from every network the host is on".into(),
                    fix: "bind it to the host's private address and run `foobar apply`; if the file foobar manages says so already, an older config on the host wins: look for another bind-address".into(),
                });
            }
            Section::Database => {
                let f: Vec<&str> = line.split('\t').collect();
                match f.as_slice() {
                    ["read_only", "0"] if inv.topology.is_replica(host) => out.push(Finding {
                        id: "replica_not_read_only",
                        severity: Severity::High,
                        location: format!("host {host}"),
                        summary: "the replica is writable right now (@@read_only = 0)".into(),
                        why: "a write on the replica silently diverges it from the primary".into(),
                        fix: "`foobar apply` (the replica's config sets read_only = ON) and restart the database".into(),
                    }),
                    ["anonymous", n] if *n != "0" => out.push(Finding {
                        id: "anonymous_accounts",
                        severity: Severity::High,
                        location: format!("host {host}"),
                        summary: format!("{n} anonymous database account(s)"),
                        why: "anyone who reaches the server logs in without a name or password".into(),
                        fix: "DROP USER ''@'localhost', ''@'<hostname>' (what mysql_secure_installation does)".into(),
                    }),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let firewalled = firewall_read && inv.topology.is_firewalled(host);
    if firewalled && !tables.lines().any(|l| l.trim() == "table inet foobar") {
        out.push(Finding {
            id: "firewall_not_loaded",
            severity: Severity::High,
            location: format!("host {host}"),
            summary: "the host is in group `firewall` but foobar's ruleset is not loaded".into(),
            why: "the configuration says there is a firewall; the host has none (never applied, or flushed)".into(),
            // `plan` sees the drift too (`update firewall`), so this apply loads it again.
            fix: format!(
                "`foobar apply -i {} -p playbooks/firewall.yml --limit {host}` loads the confirmed ruleset again, with confirm-or-rollback",
                inv.path.display()
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_live_script_frames_each_part() {
        assert_eq!(
            super::live_script(true),
            "export LC_ALL=C\necho '#foobar:listen'\nss -Hltn 2>/dev/null | awk '{print $4}'\n\
             echo '#foobar:firewall'\nnft list tables 2>/dev/null || true\n\
             echo '#foobar:os'\ngrep -E '^(VERSION_CODENAME|PRETTY_NAME)=' /etc/os-release 2>/dev/null || true\n\
             echo '#foobar:database'\n\
             c=mysql; command -v mariadb >/dev/null && c=mariadb; \"$c\" -N -B -e \"SELECT 'read_only', @@global.read_only; SELECT 'anonymous', COUNT(*) FROM mysql.user WHERE user = ''; SELECT 'version', VERSION()\" 2>&1 || true\n\
             echo '#foobar:end'\n"
        );
    }

    use super::*;

    #[test]
    fn wildcards() {
        for w in [
            "0.0.0.0",
            "*",
            "::",
            "*:80",
            "0.0.0.0:3306",
            "[::]:3306",
            ":80",
        ] {
            assert!(is_wildcard(w), "{w}");
        }
        for p in ["10.0.0.11", "127.0.1.2:3306", "10.0.0.10:80", "[::1]:80"] {
            assert!(!is_wildcard(p), "{p}");
        }
    }

    #[test]
    fn settings_in_cnf_and_units() {
        let cnf = "[mysqld]\nserver-id = 1\nbind-address = 0.0.0.0\nread_only = ON\n";
        assert_eq!(setting(cnf, "bind-address"), Some((3, "0.0.0.0")));
        assert_eq!(setting(cnf, "read_only"), Some((4, "ON")));
        let unit = "[Service]\nEnvironment=FOOBAR_APP_BIND=*:8000\n";
        assert_eq!(setting(unit, "FOOBAR_APP_BIND"), Some((2, "*:8000")));
        let quoted = "[mysqld]\nbind-address = \"0.0.0.0\"\n[Service]\nEnvironment=\"FOOBAR_APP_BIND=*:8000\"\n";
        assert_eq!(setting(quoted, "bind-address"), Some((2, "0.0.0.0")));
        assert_eq!(setting(quoted, "FOOBAR_APP_BIND"), Some((4, "*:8000")));
    }

    #[test]
    fn severity_orders_and_threshold() {
        assert!(Severity::Critical > Severity::High && Severity::Medium > Severity::Low);
        let f = |s| Finding {
            id: "x",
            severity: s,
            location: String::new(),
            summary: String::new(),
            why: String::new(),
            fix: String::new(),
        };
        let r = AuditReport::new(vec![f(Severity::Medium)], false);
        assert!(!r.fails(Severity::High));
        assert!(r.fails(Severity::Medium));
    }

    /// What `live_script` prints, as `ss` and `mysql` print it, read back into findings.
    #[test]
    fn live_output_becomes_findings() {
        let text = "hosts:\n  web-01:\n    address: 10.0.0.11\n    private_ip: 10.0.0.11\n    vars: { server_id: 1 }\n  web-02:\n    address: 10.0.0.12\n    private_ip: 10.0.0.12\n    vars: { server_id: 2 }\ngroups:\n  db_primary:\n    hosts: [web-01]\n  db_replica:\n    hosts: [web-02]\n  firewall:\n    hosts: [web-02]\n";
        let dir = std::env::temp_dir().join(format!("foobar-audit-live-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inv.yml");
        std::fs::write(&path, text).unwrap();
        let inv = crate::inventory::load_inventory(&path).unwrap_or_else(|e| panic!("{e}"));
        let host = HostName::new("web-02");
        let out = "#foobar:listen\n0.0.0.0:3306\n10.0.0.12:80\n[::]:8000\n0.0.0.0:22\n#foobar:firewall\n#foobar:database\nread_only\t0\nanonymous\t2\n#foobar:end\n";
        let f = audit_live(&inv, &host, out);
        let ids: Vec<(&str, Severity)> = f.iter().map(|x| (x.id, x.severity)).collect();
        assert_eq!(
            ids,
            [
                ("listens_everywhere", Severity::High),
                ("listens_everywhere", Severity::Medium),
                ("replica_not_read_only", Severity::High),
                ("anonymous_accounts", Severity::High),
                ("firewall_not_loaded", Severity::High),
            ]
        );
        assert!(f[3].summary.starts_with("2 anonymous"));
        // The fix is a command that runs as it is: this inventory, the firewall's playbook,
        // this host (tests/firewall.rs runs it on a flushed host).
        assert_eq!(
            f[4].fix.split('`').nth(1),
            Some(
                format!(
                    "foobar apply -i {} -p playbooks/firewall.yml --limit web-02",
                    path.display()
                )
                .as_str()
            )
        );
        // A healthy host: nothing.
        let ok = "#foobar:listen\n10.0.0.12:3306\n#foobar:firewall\ntable inet foobar\n#foobar:database\nread_only\t1\nanonymous\t0\n";
        assert!(audit_live(&inv, &host, ok).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn certificate_garbage_is_an_error() {
        assert!(certificate_days_left(b"not a cert").is_err());
    }
}
