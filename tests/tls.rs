//! End-to-end: HTTPS at the load balancer on the local test hosts, with the lab's own CA and
//! certificate for www.foobar.com (`scripts/lab up` makes them in .lab/tls). Real HAProxy,
//! real curl and openssl as the clients, every address on 127.0.1.x.

mod common;

use std::process::Command;

use common::*;

fn tls_dir() -> std::path::PathBuf {
    repo().join(".lab/tls")
}

/// `curl ARGS` with the lab CA trusted and www.foobar.com resolving to lb-01; (stdout, ok).
fn curl(args: &[&str]) -> (String, bool) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(tls_dir().join("ca.crt"))
        .args([
            "--resolve",
            "www.foobar.com:443:127.0.1.1",
            "--resolve",
            "www.foobar.com:80:127.0.1.1",
        ])
        .args(args)
        .output()
        .expect("run curl");
    (
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        out.status.success(),
    )
}

/// `openssl s_client` offering only `version` (`-tls1`, `-tls1_1`, `-tls1_2`): did the
/// handshake succeed? The client's own floor is lowered (SECLEVEL=0) so that a refusal of
/// TLS 1.0/1.1 is the server's.
fn handshake(version: &str) -> (bool, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            "127.0.1.1:443",
            "-servername",
            "www.foobar.com",
            version,
        ])
        .args(["-cipher", "DEFAULT@SECLEVEL=0", "-CAfile"])
        .arg(tls_dir().join("ca.crt"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("Verify return code: 0 (ok)"),
        text,
    )
}

#[test]
fn https_at_the_load_balancer_redirects_and_refuses_old_tls() {
    let _guard = lab_lock();
    lab(&["reset"]);
    for f in ["ca.crt", "site.crt", "site.key"] {
        assert!(
            tls_dir().join(f).exists(),
            "scripts/lab up makes .lab/tls/{f}"
        );
    }
    let project = Project::new();
    let tls = tls_dir();
    project.edit(
        "inventories/lab.yml",
        "vars:\n",
        &format!(
            "vars:\n  https: true\n  tls_ca_file: {}\n",
            tls.join("ca.crt").display()
        ),
    );
    project.edit(
        "inventories/lab.yml",
        "secrets:\n",
        &format!(
            "secrets:\n  tls_certificate: {{ file: {} }}\n  tls_key: {{ file: {} }}\n",
            tls.join("site.crt").display(),
            tls.join("site.key").display()
        ),
    );

    let apply = project.foobar(&["apply", "--yes", "--diff"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    // The key file is secret material: never in a diff, mode 0600 on the host.
    assert!(!apply.all().contains("PRIVATE KEY"), "{apply:?}");
    assert!(
        apply.stdout.contains("/etc/haproxy/certs/site.pem"),
        "{apply:?}"
    );
    assert_eq!(
        ssh_ok("lb-01", "stat -c '%a %U' /etc/haproxy/certs/site.pem").trim(),
        "600 root"
    );
    let again = project.foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");

    // HTTPS answers 200 from both web hosts (HAProxy's checks bring a fresh backend up after
    // `rise` good checks: keep asking for a bounded time), with HSTS.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while seen.len() < 2 && std::time::Instant::now() < deadline {
        let (body, ok) = curl(&["https://www.foobar.com/"]);
        assert!(ok, "{body}");
        for w in ["web-01", "web-02"] {
            if body.contains(&format!("served by {w}")) {
                seen.insert(w);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(seen.len(), 2, "HTTPS reached {seen:?}");
    let (head, ok) = curl(&["-I", "https://www.foobar.com/"]);
    assert!(
        ok && head.starts_with("HTTP/2 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=63072000"),
        "{head}"
    );

    // Plain HTTP redirects to HTTPS.
    let (head, ok) = curl(&["-I", "http://www.foobar.com/notes"]);
    assert!(ok, "{head}");
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("location: https://www.foobar.com/notes"),
        "{head}"
    );

    // TLS 1.2 is accepted; 1.0 and 1.1 are refused by the server.
    let (ok, text) = handshake("-tls1_2");
    assert!(ok, "TLS 1.2 handshake failed:\n{text}");
    for old in ["-tls1", "-tls1_1"] {
        let (ok, text) = handshake(old);
        assert!(!ok, "{old} was accepted:\n{text}");
        assert!(
            text.contains("alert protocol version")
                || text.contains("unsupported protocol")
                || text.contains("wrong version number")
                || text.contains("no protocols available"),
            "{old}: refused for another reason:\n{text}"
        );
    }

    // verify: the redirect, HTTPS to both web hosts, the chain and its days to expiry.
    let verify = project.foobar(&["verify", "--json"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let doc: serde_json::Value = serde_json::from_str(&verify.stdout).unwrap();
    let checks = doc["hosts"]["lb-01"]["checks"].as_array().unwrap();
    let named = |n: &str| checks.iter().filter(|c| c["name"] == n).collect::<Vec<_>>();
    assert_eq!(named("http_redirect").len(), 1, "{checks:#?}");
    assert_eq!(named("https_through_lb").len(), 2, "{checks:#?}");
    let cert = named("tls_certificate");
    assert_eq!(cert.len(), 1, "{checks:#?}");
    let detail = cert[0].to_string();
    let days = detail
        .split("expires in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|d| d.parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no days to expiry in {detail}"));
    // scripts/lab makes a 397-day certificate and keeps it: anywhere in (0, 397].
    assert!((1..=397).contains(&days), "{days} days: {detail}");
}

/// `replication_ssl: true`: the database hosts get the lab CA and the database certificate
/// (.lab/tls/db.crt, naming 127.0.1.2 and .3), the servers use them, and the replica
/// replicates with MASTER_SSL=1, verifying the primary's certificate; `verify`'s heartbeat
/// row crosses that connection.
#[test]
fn replication_runs_over_tls() {
    let _guard = lab_lock();
    lab(&["reset"]);
    let tls = tls_dir();
    let project = Project::new();
    project.edit(
        "inventories/lab.yml",
        "vars:\n",
        "vars:\n  replication_ssl: true\n",
    );
    project.edit(
        "inventories/lab.yml",
        "secrets:\n",
        &format!(
            "secrets:\n  db_tls_ca: {{ file: {} }}\n  db_tls_cert: {{ file: {} }}\n  db_tls_key: {{ file: {} }}\n",
            tls.join("ca.crt").display(),
            tls.join("db.crt").display(),
            tls.join("db.key").display()
        ),
    );
    let apply = project.foobar(&["apply", "--yes", "--diff"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(!apply.all().contains("PRIVATE KEY"), "{apply:?}");
    assert_eq!(
        ssh_ok(
            "web-01",
            "stat -c '%a %U:%G' /etc/mysql/foobar-tls/server-key.pem"
        )
        .trim(),
        "640 root:mysql"
    );
    let status = ssh_ok("web-02", "mariadb -e 'SHOW REPLICA STATUS\\G'");
    for want in [
        "Master_SSL_Allowed: Yes",
        "Master_SSL_CA_File: /etc/mysql/foobar-tls/ca.pem",
        "Master_SSL_Verify_Server_Cert: Yes",
        "Slave_IO_Running: Yes",
        "Slave_SQL_Running: Yes",
    ] {
        assert!(status.contains(want), "{want} missing:\n{status}");
    }
    // The primary accepted TLS connections (the replica's IO thread refuses anything else).
    let accepts = ssh_ok(
        "web-01",
        "mariadb -N -B -e \"SHOW GLOBAL STATUS LIKE 'Ssl_finished_accepts'\"",
    );
    let n: u64 = accepts
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(n > 0, "no TLS handshake finished on the primary: {accepts}");
    let verify = project.foobar(&["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let again = project.foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "converged: {again:?}");
}
