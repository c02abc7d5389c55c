//! End-to-end: the real `foobar` binary against the local test hosts (`scripts/lab`): real
//! sshd, HAProxy, Nginx, MariaDB and the demo app in namespaces on 127.0.1.x.
//!
//! The tests share three hosts, so they take turns (`lab_lock`) and each starts from the
//! state it needs. They need root and the lab's packages: `.ci/run` provides both.

mod common;

use common::*;

/// Every path under the machine's own /opt and /srv (not a test host's view) with its type,
/// size and modification time, sorted.
fn machine_opt_srv() -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.push(format!(
                "{} {:?} {} {mtime}",
                path.display(),
                meta.file_type(),
                meta.len()
            ));
            if meta.is_dir() {
                walk(&path, out);
            }
        }
    }
    let mut out = Vec::new();
    for root in ["/opt", "/srv"] {
        walk(std::path::Path::new(root), &mut out);
    }
    out.sort();
    out
}

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

    let machine_before = machine_opt_srv();
    let apply = foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(apply.stdout.contains("3 hosts changed"), "{apply:?}");
    // The hosts write /opt/foobar/app; none of it lands on the machine itself.
    assert_eq!(
        machine_opt_srv(),
        machine_before,
        "an apply on the test hosts changed the machine's own /opt or /srv"
    );
    ssh_ok("web-01", "test -f /opt/foobar/app/server.py");
    let live = ssh_ok("lb-01", "cat /etc/haproxy/haproxy.cfg");
    assert!(
        live.contains("server 'web-01' '127.0.1.2:80' check"),
        "{live}"
    );
    // The package step really installed a package inside one host only.
    ssh_ok("web-02", "python3 -c 'import pymysql'");

    // Every lock this run took is released, by the last script or a final unlock.
    for h in ["lb-01", "web-01", "web-02"] {
        ssh_ok(h, "test ! -e /var/lib/foobar/lock/holder");
    }

    // Converged: nothing to do, and a second apply runs no handler.
    let again = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(again.stdout.contains("No changes."), "{again:?}");
    // A no-change plan reads each host in one remote command, whatever the number of files
    // (counted by the transport): a regression to a command per file fails here.
    let json = foobar(&["plan", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("plan JSON");
    for h in ["lb-01", "web-01", "web-02"] {
        assert_eq!(
            doc["hosts"][h]["remote_commands"], 1,
            "remote commands for a no-change plan of {h}: {}",
            json.stdout
        );
    }
    // So does a no-change apply: only hosts with changes are locked (and re-read) after it.
    let json = foobar(&["apply", "--yes", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("apply JSON");
    for h in ["lb-01", "web-01", "web-02"] {
        assert_eq!(
            doc["plan"]["hosts"][h]["remote_commands"], 1,
            "{}",
            json.stdout
        );
        ssh_ok(h, "test ! -e /var/lib/foobar/lock/holder");
    }
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

    // A dry run is the real executor over a transport that sends only reads: it says what the
    // apply would do, step by step, and leaves the host byte-identical (the drift is still
    // planned afterwards); its one remote command is the read-only lock probe and re-read.
    let host_state = || {
        ssh_ok(
            "lb-01",
            "sha256sum /etc/haproxy/haproxy.cfg; find /etc/haproxy /var/lib/foobar /var/backups/foobar -exec stat -c '%n %s %y %a' {} + 2>/dev/null | sort; true",
        )
    };
    let (before, pid) = (host_state(), haproxy_master_pid());
    let dry = foobar(&["apply", "--dry-run", "--limit", "loadbalancer"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    for line in [
        "lb-01: would change (dry run)",
        "  would write file /etc/haproxy/haproxy.cfg",
        "  would run handler reload haproxy",
        "Dry run: 1 host would change",
    ] {
        assert!(dry.stdout.contains(line), "{line:?} in {dry:?}");
    }
    let json = foobar(&["apply", "--dry-run", "--json", "--limit", "loadbalancer"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("apply JSON");
    assert_eq!(doc["report"]["dry_run"], true, "{}", json.stdout);
    assert_eq!(
        doc["report"]["hosts"]["lb-01"]["remote_commands"], 1,
        "a dry run sent more than its read: {}",
        json.stdout
    );
    assert_eq!(host_state(), before, "a dry run changed lb-01");
    assert_eq!(haproxy_master_pid(), pid);
    let still = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(still.code, 2, "{still:?}");
    assert!(still.stdout.contains("-# hand edit"), "{still:?}");

    let repair = foobar(&["apply", "--yes", "--limit", "loadbalancer"]);
    assert_eq!(repair.code, 0, "{repair:?}");
    assert!(
        repair.stdout.contains("done handler reload haproxy"),
        "{repair:?}"
    );
    assert!(!ssh_ok("lb-01", "cat /etc/haproxy/haproxy.cfg").contains("hand edit"));
    assert_eq!(foobar(&["plan", "--detailed-exitcode"]).code, 0);

    // An apply with one change costs two remote commands on that host: the gather, which
    // also brings the body for the diff; one script that takes the lock, compares the facts
    // with the plan's, changes the file, runs the handler and unlocks.
    ssh_ok("lb-01", "echo '# hand edit' >> /etc/haproxy/haproxy.cfg");
    let json = foobar(&["apply", "--yes", "--json", "--limit", "loadbalancer"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("apply JSON");
    assert!(
        json.stdout.contains("-# hand edit"),
        "the diff's body did not come with the gather: {}",
        json.stdout
    );
    assert_eq!(
        doc["plan"]["hosts"]["lb-01"]["remote_commands"], 1,
        "{}",
        json.stdout
    );
    assert_eq!(
        doc["report"]["hosts"]["lb-01"]["remote_commands"], 1,
        "{}",
        json.stdout
    );
    ssh_ok("lb-01", "test ! -e /var/lib/foobar/lock/holder");
}

fn sql(host: &str, query: &str) -> String {
    ssh_ok(
        host,
        &format!("mariadb --batch --skip-column-names -e \"{query}\""),
    )
}

/// Every process's command line on the database hosts, sampled while `f` runs.
fn process_lists_during<T>(f: impl FnOnce() -> T) -> (T, String) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let sampler = std::thread::spawn(move || {
        let mut seen = String::new();
        while !flag.load(std::sync::atomic::Ordering::SeqCst) {
            for h in ["web-01", "web-02"] {
                seen.push_str(&ssh(h, "ps -eo args").stdout);
            }
        }
        seen
    });
    let out = f();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    (out, sampler.join().expect("sampler"))
}

#[test]
fn replication_is_reconciled_verified_broken_and_repaired() {
    let _guard = lab_lock();
    lab(&["reset"]);

    // From bare hosts, one apply builds the primary, seeds and starts the replica; no
    // password ever shows in a process list on either database host.
    let (apply, processes) = process_lists_during(|| foobar(&["apply", "--yes"]));
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("done database replication configured from web-01"),
        "{apply:?}"
    );
    assert!(!processes.contains(REPLICATION_PASSWORD) && !processes.contains(APP_DB_PASSWORD));
    assert!(
        processes.contains("mariadb"),
        "the sampler saw no database client at all"
    );

    let verify = foobar(&["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        verify.stdout.contains("replicating from 127.0.1.2:3306"),
        "{verify:?}"
    );
    assert!(verify.stdout.contains("0s behind the source"), "{verify:?}");
    let json = foobar(&["verify", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("verify JSON");
    assert!(
        doc["hosts"]["web-02"]["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );

    // Converged: replication is reported unchanged and nothing is issued.
    let again = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
    let second = foobar(&["apply", "--yes"]);
    assert!(
        !second.stdout.contains("START REPLICA") && !second.stdout.contains("done database"),
        "{second:?}"
    );

    // A note written through the load balancer lands on the primary and is read on the replica.
    let (status, body) = http("127.0.1.1:80", "POST", "/notes", "hello from e2e").expect("POST");
    assert_eq!(status, 201, "{body}");
    let posted: serde_json::Value = serde_json::from_str(&body).expect("POST answer");
    let writer = posted["host"]
        .as_str()
        .expect("host that wrote")
        .to_string();
    assert_eq!(
        sql("web-01", "SELECT body FROM foobar.notes").trim(),
        "hello from e2e"
    );
    let replicated = eventually(10, || {
        (sql("web-02", "SELECT body FROM foobar.notes").trim() == "hello from e2e").then_some(())
    });
    assert!(
        replicated.is_some(),
        "the note never reached web-02's replica"
    );
    let from_replica = eventually(10, || {
        (0..4)
            .filter_map(|_| http("127.0.1.1:80", "GET", "/notes", ""))
            .find(|(s, b)| *s == 200 && b.contains("hello from e2e") && b.contains(&writer))
    });
    assert!(from_replica.is_some(), "GET /notes never returned the note");

    // A stopped IO thread: verify names web-02 and the thread; apply starts it again.
    sql("web-02", "STOP REPLICA IO_THREAD");
    let broken = foobar(&["verify", "--max-lag", "2"]);
    assert_eq!(broken.code, 3, "{broken:?}");
    assert!(broken.stdout.contains("FAIL io_thread"), "{broken:?}");
    assert!(broken.stdout.contains("Unhealthy: web-02 ("), "{broken:?}");
    let repair = foobar(&["apply", "--yes"]);
    assert!(
        repair.stdout.contains("done database replication started"),
        "{repair:?}"
    );
    assert_eq!(foobar(&["verify"]).code, 0);

    // A wrong replication password: verify shows the IO error; apply re-points the replica.
    sql(
        "web-02",
        "STOP REPLICA; CHANGE MASTER TO MASTER_PASSWORD='wrong'; START REPLICA",
    );
    let wrong = eventually(15, || {
        let v = foobar(&["verify", "--max-lag", "2"]);
        (v.code == 3 && v.stdout.contains("FAIL io_error") && v.stdout.contains("1045"))
            .then_some(v)
    });
    assert!(
        wrong.is_some(),
        "verify never reported the access-denied IO error"
    );
    let repair = foobar(&["apply", "--yes"]);
    assert!(
        repair
            .stdout
            .contains("done database replication configured from web-01"),
        "{repair:?}"
    );
    assert!(eventually(10, || (foobar(&["verify"]).code == 0).then_some(())).is_some());

    // A new replica for a primary that already holds rows is seeded and ends up equal.
    sql(
        "web-01",
        "INSERT INTO foobar.notes (body, written_by) VALUES ('before the replica', 'e2e')",
    );
    ssh_ok(
        "web-02",
        "mariadb -e 'STOP REPLICA; RESET REPLICA ALL; SET SESSION sql_log_bin=0; DROP DATABASE foobar; RESET MASTER; SET GLOBAL gtid_slave_pos=\"\"'",
    );
    let plan = foobar(&["plan", "--limit", "web-02"]);
    assert!(
        plan.stdout
            .contains("seed `foobar`, `foobar_meta` from web-01 first"),
        "{plan:?}"
    );
    let seed = foobar(&["apply", "--yes", "--limit", "web-02"]);
    assert_eq!(seed.code, 0, "{seed:?}");
    assert!(
        seed.stdout
            .contains("done database seeded `foobar`, `foobar_meta` from web-01"),
        "{seed:?}"
    );
    let rows = |h: &str| sql(h, "SELECT id, body FROM foobar.notes ORDER BY id");
    assert!(eventually(10, || (rows("web-02") == rows("web-01")).then_some(())).is_some());
    assert_eq!(foobar(&["verify"]).code, 0);
}

/// `inventories/vagrant.yml`, pointed at the local hosts: the same `ssh_config` format that
/// `vagrant ssh-config` writes, a non-root user, and `become` through `sudo -n`, for real.
#[test]
fn vagrant_inventory_works_as_a_sudo_user() {
    let _guard = lab_lock();
    lab(&["reset"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let text =
        std::fs::read_to_string(repo().join("inventories/vagrant.yml")).expect("vagrant.yml");
    let text = text
        .replace(
            "../.vagrant/ssh_config",
            repo().join(".lab/ssh_config.deploy").to_str().unwrap(),
        )
        .replace(
            "../.vagrant/known_hosts",
            repo().join(".lab/known_hosts").to_str().unwrap(),
        )
        .replace("192.168.56.%", "127.%")
        .replace("192.168.56.1", "127.0.1.")
        // Lab hosts share 127.0.0.1 (one network namespace): each web host's stub_status
        // listens on its own address instead.
        .replace("  nginx_status_address: 127.0.0.1\n", "")
        .replace(
            "      server_id: 1\n",
            "      server_id: 1\n      nginx_status_address: 127.0.1.2\n",
        )
        .replace(
            "      server_id: 2\n",
            "      server_id: 2\n      nginx_status_address: 127.0.1.3\n",
        );
    let inventory = dir.path().join("vagrant.yml");
    std::fs::write(&inventory, text).expect("write inventory");
    let inv = inventory.to_str().unwrap();
    let playbook = repo().join("playbooks/site.yml");
    let pb = playbook.to_str().unwrap();

    assert_eq!(ssh_ok("web-01", "id -un").trim(), "root");
    let deploy = std::process::Command::new("ssh")
        .args([
            "-F",
            repo().join(".lab/ssh_config.deploy").to_str().unwrap(),
            "web-01",
            "id -un",
        ])
        .output()
        .expect("ssh as deploy");
    assert_eq!(String::from_utf8_lossy(&deploy.stdout).trim(), "deploy");

    let apply = foobar_in(&repo(), &["apply", "--yes", "-i", inv, "-p", pb]);
    assert_eq!(apply.code, 0, "{apply:?}");
    // Files written through sudo are root's, as declared.
    assert_eq!(
        ssh_ok("lb-01", "stat -c %U:%G /etc/haproxy/haproxy.cfg").trim(),
        "root:root"
    );
    assert_eq!(
        ssh_ok("web-02", "stat -c %U:%G:%a /etc/foobar/app.env").trim(),
        "root:root:600"
    );
    let plan = foobar_in(
        &repo(),
        &["plan", "--detailed-exitcode", "-i", inv, "-p", pb],
    );
    assert_eq!(plan.code, 0, "{plan:?}");
    let verify = foobar_in(&repo(), &["verify", "-i", inv, "-p", pb]);
    assert_eq!(verify.code, 0, "{verify:?}");
}

/// `scripts/lab down` stops every process it started and leaves no mount behind.
#[test]
fn lab_down_leaves_no_process_or_mount() {
    let _guard = lab_lock();
    lab(&["up"]);
    // A daemon started over SSH inside a host must go down with it.
    ssh(
        "web-01",
        "systemctl is-active -q mariadb || systemctl start mariadb",
    );
    let state = std::env::var("FOOBAR_LAB_DIR").unwrap_or_else(|_| "/foobar-lab".into());
    lab(&["down", "--stack-only"]);
    // Benchmark hosts (`up --sshd-only`, under <state>/bench/) and the networked hosts (`up
    // --net-hosts`, under <state>/net/) are other sets: not ours.
    let bench = format!("{state}/bench/");
    let net = format!("{state}/net/");
    let ours =
        |line: &&str| line.contains(&state) && !line.contains(&bench) && !line.contains(&net);
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    assert!(
        !mounts.lines().any(|l| ours(&l)),
        "mounts left behind:\n{mounts}"
    );
    let ps = std::process::Command::new("ps")
        .args(["-eo", "pid,args"])
        .output()
        .expect("ps");
    let ps = String::from_utf8_lossy(&ps.stdout);
    for line in ps.lines() {
        assert!(
            !ours(&line) && !line.contains("127.0.1.2"),
            "process left behind: {line}"
        );
    }
    assert!(
        std::net::TcpStream::connect("127.0.1.2:22").is_err(),
        "sshd still listens"
    );
}
