//! The load balancer as verify sees it: HAProxy's `show servers state` read into checks, the
//! address clients reach it on, and the wait for its health checks to catch up.

use std::time::Duration;

use super::{VerifyFailure, VerifyInput};
use crate::inventory::{HostName, Inventory};
use crate::mysql::Check;
use crate::remote::section::{self, Section};
use crate::transport::{Output, RemoteCommand, TransportError};

/// The load balancers' frontend for database writes (`listen db_write` in the template).
const DB_WRITE: &str = "db_write";

/// HAProxy `show servers state`: every server operational (2) and not in maintenance; in
/// `db_write`, exactly one (the primary) and the others in maintenance.
pub fn haproxy_checks(text: &str) -> Vec<Check> {
    let mut checks = Vec::new();
    // `listen db_write`: the primary UP, every other database server in maintenance.
    let mut db_write: Vec<(&str, bool, bool)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 || line.starts_with('#') || f[0].parse::<u32>().is_err() {
            continue;
        }
        let (backend, server, op, admin) = (f[1], f[3], f[5], f[6]);
        if backend == DB_WRITE {
            db_write.push((server, op == "2" && admin == "0", admin != "0"));
            continue;
        }
        if op == "2" && admin == "0" {
            checks.push(Check::pass(
                "backend_server",
                format!("{backend}/{server} is UP"),
            ));
        } else {
            let state = match op {
                "0" => "DOWN",
                "1" => "starting",
                "3" => "stopping",
                _ => "not UP",
            };
            checks.push(
                VerifyFailure::BackendDown {
                    backend: backend.to_string(),
                    server: server.to_string(),
                    state,
                    op: op.to_string(),
                    admin: admin.to_string(),
                }
                .check("backend_server"),
            );
        }
    }
    if !db_write.is_empty() {
        let up: Vec<&str> = db_write.iter().filter(|s| s.1).map(|s| s.0).collect();
        let standby = db_write.iter().filter(|s| s.2).count();
        if up.len() == 1 && standby == db_write.len() - 1 {
            checks.push(Check::pass(
                "db_write",
                format!(
                    "database writes go to {} ({standby} other server(s) standing by)",
                    up[0]
                ),
            ));
        } else {
            checks.push(
                VerifyFailure::DbWrite {
                    up: up.iter().map(|s| s.to_string()).collect(),
                }
                .check("db_write"),
            );
        }
    }
    if checks.is_empty() {
        checks.push(
            VerifyFailure::NoServerState {
                output: text.trim().to_string(),
            }
            .check("backend_server"),
        );
    }
    checks
}

/// Where clients reach the load balancer: its bind address, else the host's address.
pub(super) fn lb_address(inv: &Inventory, lb: &HostName) -> String {
    let vars = inv.host_vars(lb);
    let bind = vars
        .get("haproxy_bind")
        .and_then(|v| v.as_str())
        .unwrap_or("*:80");
    let (host, port) = bind.rsplit_once(':').unwrap_or((bind, "80"));
    let h = &inv.hosts[lb];
    let host = if host.is_empty() || host == "*" || host == "0.0.0.0" || host == "::" {
        h.address
            .clone()
            .or_else(|| h.private_ip.clone())
            .unwrap_or_else(|| lb.to_string())
    } else {
        host.to_string()
    };
    format!("{host}:{port}")
}

/// Servers HAProxy does not report UP (and that are not in maintenance) whose own hosts
/// report every declared service active: HAProxy's checks may simply not have caught up yet.
pub(super) fn catching_up(
    haproxy: &str,
    results: &[(HostName, Result<Output, TransportError>)],
) -> bool {
    let services_ok = |host: &str| {
        results.iter().any(|(h, out)| {
            h.as_str() == host
                && out.as_ref().is_ok_and(|o| {
                    let sec = section::split(&o.stdout_text());
                    sec.get(&Section::Services).is_some_and(|t| {
                        t.lines()
                            .all(|l| l.split('\t').nth(1).is_none_or(|s| s == "active"))
                    })
                })
        })
    };
    haproxy.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        f.len() >= 7
            && !line.starts_with('#')
            && f[0].parse::<u32>().is_ok()
            && f[5] != "2"
            && f[6] == "0"
            && services_ok(f[3])
    })
}

/// Re-read each load balancer's state, every second up to `settle`, while one of its servers
/// is still catching up.
pub(super) async fn settle_balancers(
    input: &VerifyInput<'_>,
    mut results: Vec<(HostName, Result<Output, TransportError>)>,
    lbs: &[HostName],
    script_of: &dyn Fn(&HostName) -> String,
) -> Vec<(HostName, Result<Output, TransportError>)> {
    let deadline = tokio::time::Instant::now() + input.settle;
    for lb in lbs {
        let Some(t) = input.transports.get(lb) else {
            continue;
        };
        loop {
            let pending = results.iter().any(|(h, out)| {
                h == lb
                    && out.as_ref().is_ok_and(|o| {
                        section::split(&o.stdout_text())
                            .get(&Section::Haproxy)
                            .is_some_and(|text| catching_up(text, &results))
                    })
            });
            if !pending || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let again = t
                .run(
                    &RemoteCommand::script(input.timeout),
                    Some(script_of(lb).as_bytes()),
                )
                .await;
            if let Some(slot) = results.iter_mut().find(|(h, _)| h == lb) {
                slot.1 = again;
            }
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show servers state` as the lab's HAProxy answered it on lb-01 (recorded through
    /// scripts/lab-lock with web-01 stopped): web-01 DOWN, web-02 UP.
    const RECORDED: &str = include_str!("../../tests/fixtures/haproxy/show-servers-state.txt");

    fn output(stdout: &str) -> Result<Output, TransportError> {
        Ok(Output {
            stdout: stdout.as_bytes().to_vec(),
            stderr: vec![],
            code: Some(0),
        })
    }

    #[test]
    fn recorded_servers_state_reads_one_check_per_server() {
        let checks = haproxy_checks(RECORDED);
        assert_eq!(checks.len(), 2, "{checks:?}");
        assert!(!checks[0].ok);
        assert_eq!(
            checks[0].detail,
            "web/web-01 is DOWN (operational state 0, admin state 0)"
        );
        assert!(
            checks[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("--limit web-01")
        );
        assert!(checks[1].ok);
        assert_eq!(checks[1].detail, "web/web-02 is UP");
    }

    #[test]
    fn no_server_lines_is_one_failed_check_quoting_the_answer() {
        let checks = haproxy_checks("Unknown command\n");
        assert_eq!(checks.len(), 1);
        assert!(!checks[0].ok);
        assert!(checks[0].detail.contains("Unknown command"));
    }

    #[test]
    fn a_down_server_whose_services_run_is_catching_up() {
        let web01 = HostName::new("web-01");
        let running = [(web01.clone(), output("#foobar:services\nnginx\tactive\n"))];
        assert!(catching_up(RECORDED, &running));
        let failed = [(web01, output("#foobar:services\nnginx\tfailed\n"))];
        assert!(!catching_up(RECORDED, &failed));
        // Every server UP: nothing to wait for.
        let up = RECORDED.replace(" 127.0.1.2 0 0 ", " 127.0.1.2 2 0 ");
        assert!(!catching_up(&up, &running));
    }

    #[test]
    fn db_write_wants_the_primary_up_and_the_others_in_maintenance() {
        let state = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state\n\
                     3 db_write 1 web-01 127.0.1.2 2 0\n3 db_write 2 web-02 127.0.1.3 0 5\n";
        let checks = haproxy_checks(state);
        assert_eq!(checks.len(), 1, "{checks:?}");
        assert!(checks[0].ok, "{checks:?}");
        assert_eq!(
            checks[0].detail,
            "database writes go to web-01 (1 other server(s) standing by)"
        );
        let both = "3 db_write 1 web-01 127.0.1.2 2 0\n3 db_write 2 web-02 127.0.1.3 2 0\n";
        let checks = haproxy_checks(both);
        assert!(!checks[0].ok);
        assert_eq!(
            checks[0].detail,
            "database writes go to 2 server(s) behind db_write: web-01, web-02"
        );
        let none = "3 db_write 1 web-01 127.0.1.2 0 0\n3 db_write 2 web-02 127.0.1.3 0 5\n";
        assert!(haproxy_checks(none)[0].detail.contains("none is up"));
    }
}
