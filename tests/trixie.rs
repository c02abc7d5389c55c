//! Debian 13 hosts, end to end: the whole stack on Debian 13 from bare hosts (MariaDB 11.8,
//! HAProxy 3.0, Nginx 1.26), a mixed fleet where a Debian 12 primary (MariaDB 10.11)
//! replicates to a Debian 13 replica, and the direction foobar refuses (a replica older than
//! its primary). `scripts/lab` builds the Debian 13 root filesystem once (mmdebstrap from
//! Debian's packages) and caches it; every host is put back on Debian 12 when a test ends.

mod common;

use std::process::Command;

use common::*;

/// Puts every stack host back on Debian 12, bare, however the test ends: the other tests
/// expect the machine's release.
struct BackToBookworm;

impl Drop for BackToBookworm {
    fn drop(&mut self) {
        let ok = Command::new(repo().join("scripts/lab"))
            .arg("up")
            .status()
            .is_ok_and(|s| s.success());
        if !ok && !std::thread::panicking() {
            panic!("scripts/lab up could not put the hosts back on Debian 12");
        }
    }
}

/// The stack hosts, bare, on the releases of `spec` (`trixie`, `web-02=trixie`).
fn bare_hosts(spec: &str) -> BackToBookworm {
    lab(&["reset", "--release", spec]);
    BackToBookworm
}

fn codename(host: &str) -> String {
    ssh_ok(host, ". /etc/os-release && echo \"$VERSION_CODENAME\"")
        .trim()
        .to_string()
}

fn server_version(host: &str) -> String {
    ssh_ok(host, "mariadb -N -B -e 'SELECT VERSION()'")
        .trim()
        .to_string()
}

fn apply_verify_and_plan_nothing() {
    let apply = foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let verify = foobar(&["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let plan = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "a second plan wants changes: {plan:?}");
}

#[test]
fn a_debian_13_stack_from_bare_hosts_applies_verifies_and_then_plans_no_change() {
    let _lab = lab_lock();
    let _back = bare_hosts("trixie");
    for host in ["lb-01", "web-01", "web-02"] {
        assert_eq!(codename(host), "trixie", "{host}");
    }
    apply_verify_and_plan_nothing();
    let version = server_version("web-02");
    assert!(version.starts_with("11.8."), "{version}");
    // The stack's own files, read by the Debian 13 programs that consume them.
    let haproxy = ssh_ok("lb-01", "haproxy -v | head -1");
    assert!(haproxy.contains("version 3.0"), "{haproxy}");
    ssh_ok("lb-01", "haproxy -c -f /etc/haproxy/haproxy.cfg");
    let nginx = ssh("web-01", "nginx -v && nginx -t -c /etc/nginx/nginx.conf");
    assert_eq!(nginx.code, 0, "{nginx:?}");
    assert!(nginx.stderr.contains("nginx/1.26"), "{nginx:?}");
    let replica = ssh_ok(
        "web-02",
        "mariadb -e 'SHOW REPLICA STATUS\\G' | grep -E 'Slave_(IO|SQL)_Running:'",
    );
    assert_eq!(replica.matches(": Yes").count(), 2, "{replica}");
}

#[test]
fn a_debian_12_primary_replicates_to_a_debian_13_replica() {
    let _lab = lab_lock();
    let _back = bare_hosts("web-02=trixie");
    assert_eq!(codename("web-01"), "bookworm");
    assert_eq!(codename("web-02"), "trixie");
    apply_verify_and_plan_nothing();
    let (primary, replica) = (server_version("web-01"), server_version("web-02"));
    assert!(primary.starts_with("10.11."), "{primary}");
    assert!(replica.starts_with("11.8."), "{replica}");
    // A write on the primary reaches the newer replica.
    ssh_ok(
        "web-01",
        "mariadb -e \"CREATE TABLE foobar.upgrade_probe (body VARCHAR(40) PRIMARY KEY); \
         INSERT INTO foobar.upgrade_probe VALUES ('from bookworm')\"",
    );
    let seen = eventually(20, || {
        let rows = ssh_ok(
            "web-02",
            "mariadb -N -B -e \"SELECT COUNT(*) FROM foobar.upgrade_probe WHERE body = 'from bookworm'\" 2>/dev/null || true",
        );
        (rows.trim() == "1").then_some(())
    });
    assert!(
        seen.is_some(),
        "the write did not reach the Debian 13 replica"
    );
    // The fleet is mid-upgrade: audit says so, naming each host's release.
    let audit = foobar(&["audit", "--live"]);
    assert!(
        audit.stdout.contains("mixed_releases")
            && audit
                .stdout
                .contains("lb-01, web-01 on bookworm; web-02 on trixie"),
        "{audit:?}"
    );
}

#[test]
fn a_replica_older_than_its_primary_is_refused_with_both_versions() {
    let _lab = lab_lock();
    let _back = bare_hosts("web-01=trixie");
    let apply = foobar(&["apply", "--yes"]);
    assert_ne!(apply.code, 0, "{apply:?}");
    let all = apply.all();
    assert!(
        all.contains("MariaDB 10.11.") && all.contains("cannot replicate from MariaDB 11.8."),
        "{apply:?}"
    );
    assert!(all.contains("replicas before the primary"), "{apply:?}");
    // Nothing was pointed at the newer primary.
    let status = ssh_ok("web-02", "mariadb -N -B -e 'SHOW REPLICA STATUS'");
    assert_eq!(status.trim(), "", "{status}");
}
