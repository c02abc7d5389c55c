//! End-to-end: the real `foobar` binary against the local test hosts (`scripts/lab`): real
//! sshd, HAProxy, Nginx, MariaDB and the demo app in namespaces on 127.0.1.x.
//!
//! The tests share three hosts, so they take turns (`lab_lock`) and each starts from the
//! state it needs. They need root and the lab's packages: `.ci/run` provides both.

mod common;

use common::*;

fn haproxy_master_pid() -> String {
    ssh_ok("lb-01", "cat /run/haproxy.pid").trim().to_string()
}

#[test]
fn plan_apply_converge_then_drift_is_seen_and_repaired() {
    let _guard = lab_lock();
    lab(&["reset"]);

    // Bare hosts: everything is to be created.
    let plan = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("update file /etc/haproxy/haproxy.cfg"),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .contains("create file /etc/nginx/sites-available/foobar"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("install package python3-pymysql"),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .contains("+++ /etc/haproxy/haproxy.cfg (planned)"),
        "{plan:?}"
    );

    // Planning touched nothing.
    let live = ssh_ok("lb-01", "cat /etc/haproxy/haproxy.cfg");
    assert!(!live.contains("Managed by foobar"));

    let apply = foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(apply.stdout.contains("3 hosts changed"), "{apply:?}");
    let live = ssh_ok("lb-01", "cat /etc/haproxy/haproxy.cfg");
    assert!(live.contains("server web-01 127.0.1.2:80 check"), "{live}");
    // The package step really installed a package inside one host only.
    ssh_ok("web-02", "python3 -c 'import pymysql'");

    // Converged: nothing to do, and a second apply runs no handler.
    let again = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("No changes."), "{again:?}");
    let pid = haproxy_master_pid();
    let second = foobar(&["apply", "--yes"]);
    assert_eq!(second.code, 0, "{second:?}");
    assert!(second.stdout.contains("No changes."), "{second:?}");
    assert!(!second.stdout.contains("handler"), "{second:?}");
    assert_eq!(
        haproxy_master_pid(),
        pid,
        "HAProxy was restarted by a no-change apply"
    );

    // Drift: a hand edit shows as a diff, and apply puts it back and reloads HAProxy.
    ssh_ok("lb-01", "echo '# hand edit' >> /etc/haproxy/haproxy.cfg");
    let drift = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "{drift:?}");
    assert!(drift.stdout.contains("-# hand edit"), "{drift:?}");
    assert!(
        drift.stdout.contains("run handler `reload haproxy`"),
        "{drift:?}"
    );
    let repair = foobar(&["apply", "--yes", "--limit", "loadbalancer"]);
    assert_eq!(repair.code, 0, "{repair:?}");
    assert!(
        repair.stdout.contains("done handler reload haproxy"),
        "{repair:?}"
    );
    assert!(!ssh_ok("lb-01", "cat /etc/haproxy/haproxy.cfg").contains("hand edit"));
    assert_eq!(foobar(&["plan", "--detailed-exitcode"]).code, 0);
}
