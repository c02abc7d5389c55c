//! Why a verify check failed, typed: each [`VerifyFailure`] says what is wrong (its `Display`,
//! the check's detail) and what to do next (its [`Diagnostic::hint`]), so no failing check is
//! ever without a hint.
//!
//! In: what a check saw (a transport or HTTP error, a script's output, HAProxy's state). Out:
//! a failing [`Check`] via [`VerifyFailure::check`].

use crate::error::Diagnostic;
use crate::http::HttpError;
use crate::inventory::HostName;
use crate::mysql::Check;
use crate::transport::TransportError;

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    /// foobar could not connect to the host (the reason as the connection step said it).
    #[error("{reason}")]
    Unreachable { host: HostName, reason: String },
    /// The host's check script could not be run, or its connection failed while it ran.
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("the check script failed: {stderr}")]
    CheckScript { stderr: String },
    #[error("the database server is not running")]
    DatabaseStopped,
    #[error(transparent)]
    DatabaseProbe(crate::apply::database::DatabaseError),
    #[error("{service} is {state}")]
    ServiceInactive {
        host: HostName,
        service: String,
        state: String,
    },
    #[error("nginx -t fails: {output}")]
    NginxConfig { output: String },
    /// foobar's nftables table is not loaded: the host runs without its firewall.
    #[error("foobar's ruleset is not loaded (no table inet foobar): the host has no firewall")]
    FirewallNotLoaded { host: HostName },
    /// What is loaded is not what was confirmed.
    #[error("the loaded ruleset is not the one confirmed (changed by hand since)")]
    FirewallDrift { host: HostName },
    /// A loaded change still waits for foobar's confirmation.
    #[error("a firewall change waits for its confirmation; unconfirmed, the host rolls it back")]
    FirewallPending { host: HostName },
    /// HAProxy does not report a backend server UP.
    #[error("{backend}/{server} is {state} (operational state {op}, admin state {admin})")]
    BackendDown {
        backend: String,
        server: String,
        state: &'static str,
        op: String,
        admin: String,
    },
    #[error("no server state from the runtime API: {output}")]
    NoServerState { output: String },
    /// `listen db_write` should send writes to exactly one server, the primary.
    #[error("database writes go to {} server(s) behind db_write: {}", .up.len(), if .up.is_empty() { "none is up".to_string() } else { .up.join(", ") })]
    DbWrite { up: Vec<String> },
    #[error("could not write the heartbeat on {primary}: {stderr}")]
    HeartbeatNotWritten { primary: HostName, stderr: String },
    /// The primary could not be asked to write the heartbeat.
    #[error("{source}")]
    PrimaryUnreachable {
        #[source]
        source: TransportError,
    },
    #[error("a row written on {primary} did not arrive within {seconds} s")]
    HeartbeatLate { primary: HostName, seconds: u64 },
    /// Requests through the load balancer never reached this web host. `scheme` is `http` or
    /// `https`; `error` the first request error seen, if any.
    #[error("GET {scheme}://{domain}/ via {addr} never reached {web}{}", error.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NeverReached {
        scheme: &'static str,
        domain: String,
        addr: String,
        web: HostName,
        error: Option<String>,
    },
    #[error("GET http://{domain}/ via {addr} answers {status}{}", location.as_ref().map(|l| format!(" to {l}")).unwrap_or_default())]
    NoRedirect {
        domain: String,
        addr: String,
        status: String,
        location: Option<String>,
    },
    /// The plain-HTTP request to the load balancer failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the certificate served on {addr} has expired ({days_ago} days ago)")]
    CertificateExpired { addr: String, days_ago: i64 },
    #[error("no verified TLS connection to {addr}: {error}")]
    NoVerifiedTls { addr: String, error: String },
}

impl Diagnostic for VerifyFailure {
    fn hint(&self) -> Option<String> {
        Some(match self {
            VerifyFailure::Unreachable { host, .. } => crate::transport::unreachable_hint(host),
            VerifyFailure::Transport(e) => e
                .hint()
                .unwrap_or_else(|| "check the host is up and `ssh` to it works".into()),
            VerifyFailure::CheckScript { .. } => {
                "run `foobar plan` to see what is wrong on the host".into()
            }
            VerifyFailure::DatabaseStopped => {
                "start it with `foobar apply`, or read its log".into()
            }
            VerifyFailure::DatabaseProbe(e) => e
                .hint()
                .unwrap_or_else(|| "run `foobar plan` on this host".into()),
            VerifyFailure::ServiceInactive { host, .. } => {
                format!("`foobar apply --limit {host}` starts it; if it fails, read its log")
            }
            VerifyFailure::FirewallNotLoaded { host } | VerifyFailure::FirewallDrift { host } => {
                format!("`foobar apply -p playbooks/firewall.yml --limit {host}` loads the confirmed ruleset again (confirm-or-rollback); `foobar plan` shows it as `update firewall`")
            }
            VerifyFailure::FirewallPending { host } => format!(
                "an apply is confirming it; if none runs, `foobar apply -p playbooks/firewall.yml --limit {host}` loads and confirms it"
            ),
            VerifyFailure::NginxConfig { .. } => {
                "fix the site template, then `foobar apply`".into()
            }
            VerifyFailure::BackendDown { server, .. } => format!(
                "HAProxy's health check to {server} fails: check Nginx and the app on it (`foobar plan --limit {server}`)"
            ),
            VerifyFailure::DbWrite { up } if up.is_empty() => {
                "the primary is down or not in db_write: check it (`foobar verify` on the database checks), then `foobar apply` or `foobar failover --to HOST`".into()
            }
            VerifyFailure::DbWrite { .. } => {
                "more than one server takes writes: `foobar apply` writes db_write from the inventory's primary (every other server disabled)".into()
            }
            VerifyFailure::NoServerState { .. } => {
                "is HAProxy running with the admin socket the template sets (`haproxy_admin_socket`)?".into()
            }
            VerifyFailure::HeartbeatNotWritten { .. } => {
                "is the primary writable (read_only OFF)?".into()
            }
            VerifyFailure::PrimaryUnreachable { source } => match source.hint() {
                Some(h) => format!("check the primary is reachable: {h}"),
                None => "check the primary is reachable".into(),
            },
            VerifyFailure::HeartbeatLate { .. } => {
                "replication is not applying changes: see the io_thread/sql_thread checks and the replica's error log".into()
            }
            VerifyFailure::NeverReached { web, .. } => format!(
                "see the backend_server check for {web}; `foobar verify --limit {web}` checks the host itself"
            ),
            VerifyFailure::NoRedirect { .. } => {
                "plain HTTP should redirect to HTTPS: `foobar apply` renders the redirect into haproxy.cfg".into()
            }
            VerifyFailure::Http(e) => match e.hint() {
                Some(h) => format!("is HAProxy running? `foobar apply --limit` the load balancer; {h}"),
                None => "is HAProxy running? `foobar apply --limit` the load balancer".into(),
            },
            VerifyFailure::CertificateExpired { .. } => {
                "renew it and `foobar apply`: the certificate comes from the secrets tls_certificate and tls_key".into()
            }
            VerifyFailure::NoVerifiedTls { .. } => {
                "check the certificate is for this domain and signed by a CA foobar trusts (`tls_ca_file` under vars for a private CA)".into()
            }
        })
    }
}

impl VerifyFailure {
    /// The failing check `name`, with this failure as its detail and its hint.
    pub fn check(self, name: &'static str) -> Check {
        let hint = self.hint().unwrap_or_default();
        Check::fail(name, self.to_string(), hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web01() -> HostName {
        HostName::new("web-01")
    }

    #[test]
    fn every_failure_has_a_hint() {
        let failures = vec![
            VerifyFailure::Unreachable {
                host: web01(),
                reason: "connect to host 127.0.1.2 port 22: Connection refused".into(),
            },
            VerifyFailure::Transport(TransportError::ConnectionLost {
                host: web01(),
                command: "sh -s".into(),
                reason: "the ssh master connection went away".into(),
            }),
            VerifyFailure::CheckScript { stderr: "x".into() },
            VerifyFailure::DatabaseStopped,
            VerifyFailure::DatabaseProbe(crate::apply::database::DatabaseError::Probe {
                stderr: "bad".into(),
            }),
            VerifyFailure::NginxConfig { output: "x".into() },
            VerifyFailure::NoServerState { output: "".into() },
            VerifyFailure::HeartbeatNotWritten {
                primary: web01(),
                stderr: "x".into(),
            },
            VerifyFailure::HeartbeatLate {
                primary: web01(),
                seconds: 5,
            },
            VerifyFailure::Http(HttpError::NoAnswer {
                addr: "127.0.1.1:80".into(),
            }),
            VerifyFailure::CertificateExpired {
                addr: "a".into(),
                days_ago: 2,
            },
            VerifyFailure::NoVerifiedTls {
                addr: "a".into(),
                error: "e".into(),
            },
        ];
        for f in failures {
            let c = f.check("x");
            assert!(!c.ok);
            assert!(c.hint.as_deref().is_some_and(|h| !h.is_empty()), "{c:?}");
        }
    }

    #[test]
    fn an_unreachable_host_gets_the_transport_hint_naming_it() {
        let c = VerifyFailure::Unreachable {
            host: web01(),
            reason: "cannot connect to web-01 (127.0.1.2): Connection refused".into(),
        }
        .check("reachable");
        assert_eq!(c.name, "reachable");
        assert_eq!(
            c.detail,
            "cannot connect to web-01 (127.0.1.2): Connection refused"
        );
        let hint = c.hint.unwrap();
        assert!(hint.starts_with("check that web-01 is up"), "{hint}");
        assert!(hint.contains("ssh"), "{hint}");
    }

    #[test]
    fn a_timed_out_check_script_says_to_raise_command_timeout() {
        let c = VerifyFailure::from(TransportError::CommandTimedOut {
            host: web01(),
            command: "sh -s".into(),
            seconds: 40,
        })
        .check("reachable");
        assert!(
            c.detail.contains("did not finish within 40 s"),
            "{}",
            c.detail
        );
        assert!(c.hint.unwrap().contains("command_timeout"));
    }

    #[test]
    fn a_backend_down_names_the_server_to_look_at() {
        let c = VerifyFailure::BackendDown {
            backend: "web".into(),
            server: "web-02".into(),
            state: "DOWN",
            op: "0".into(),
            admin: "0".into(),
        }
        .check("backend_server");
        assert_eq!(
            c.detail,
            "web/web-02 is DOWN (operational state 0, admin state 0)"
        );
        assert!(c.hint.unwrap().contains("`foobar plan --limit web-02`"));
    }

    #[test]
    fn broken_replication_points_at_the_replica_threads() {
        let c = VerifyFailure::HeartbeatLate {
            primary: HostName::new("db-01"),
            seconds: 5,
        }
        .check("heartbeat");
        assert_eq!(c.detail, "a row written on db-01 did not arrive within 5 s");
        assert!(c.hint.unwrap().contains("io_thread/sql_thread"));
        let c = VerifyFailure::PrimaryUnreachable {
            source: TransportError::CommandTimedOut {
                host: HostName::new("db-01"),
                command: "mariadb --batch".into(),
                seconds: 40,
            },
        }
        .check("heartbeat");
        let hint = c.hint.unwrap();
        assert!(hint.starts_with("check the primary is reachable"), "{hint}");
        assert!(hint.contains("command_timeout"), "{hint}");
    }

    #[test]
    fn http_failures_keep_their_detail_and_say_where_to_look() {
        let c = VerifyFailure::NeverReached {
            scheme: "http",
            domain: "shop.test".into(),
            addr: "127.0.1.1:80".into(),
            web: web01(),
            error: Some("boom".into()),
        }
        .check("http_through_lb");
        assert_eq!(
            c.detail,
            "GET http://shop.test/ via 127.0.1.1:80 never reached web-01 (boom)"
        );
        assert!(c.hint.unwrap().contains("backend_server check for web-01"));
        let c = VerifyFailure::from(HttpError::ConnectTimeout {
            addr: "127.0.1.1:80".into(),
        })
        .check("http_redirect");
        let hint = c.hint.unwrap();
        assert!(hint.contains("is HAProxy running?"), "{hint}");
        assert!(hint.contains("listening on 127.0.1.1:80"), "{hint}");
    }
}
