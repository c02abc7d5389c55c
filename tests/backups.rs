//! End-to-end: backups proven by restoring them, on the local test hosts with real MariaDB.
//! One applied stack (the lab inventory plus a `backups:` section: web-02, the replica, takes
//! them and archives web-01's binary logs) is reused by every step, in order:
//!
//! 1. notes through the load balancer, `backup now`, more notes, `DROP TABLE notes` on the
//!    primary; `restore --to <just before the drop>` into scratch brings back every note
//!    written before the drop and none after (recovery point and restore time printed);
//! 2. verify: green; red with the archive's unit stopped, green after `apply`; red when the
//!    newest backup is older than `max_age`, green after `backup now`;
//! 3. a backup run killed midway leaves no good backup, the next run succeeds, and retention
//!    (count 2, age 1 s) removes the oldest good backup and the dead run's directory only;
//! 4. bad input: one error, exit 1, nothing touched.

mod common;

use std::time::{Duration, Instant};

use common::*;

const ARCHIVE_PASSWORD: &str = "Zq7-arch-SECRET-e2e";
const DIR: &str = "/var/backups/foobar-database";

fn with_backups(p: &Project, max_age: &str) {
    let inv = p.read("inventories/lab.yml");
    let base = inv.split("\nbackups:").next().unwrap().to_string();
    let mut text = base.replacen(
        "secrets:\n",
        "secrets:\n  binlog_archive_password: { file: archive.pw }\n",
        1,
    );
    if inv.contains("binlog_archive_password") {
        text = base;
    }
    text.push_str(&format!(
        "\nbackups:\n  dir: {DIR}\n  schedule: hourly\n  max_age: {max_age}\n  retention: {{ count: 2, age: 1s }}\n  archive: {{ host_pattern: \"127.%\", max_lag: 10s }}\n"
    ));
    p.write("inventories/lab.yml", &text);
    p.write("inventories/archive.pw", ARCHIVE_PASSWORD);
}

fn run(p: &Project, args: &[&str]) -> Run {
    let r = p.foobar(args);
    assert!(
        !r.all().contains(ARCHIVE_PASSWORD),
        "the archive password leaked: {r:?}"
    );
    r
}

fn list(p: &Project) -> Vec<serde_json::Value> {
    let r = run(p, &["backups", "list", "--json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("list JSON");
    doc["backups"].as_array().unwrap().clone()
}

fn good_ids(backups: &[serde_json::Value]) -> Vec<String> {
    backups
        .iter()
        .filter(|b| b["good"] == true)
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect()
}

fn post_note(body: &str) {
    let (status, text) = http("127.0.1.1:80", "POST", "/notes", body).expect("POST /notes");
    assert_eq!(status, 201, "POST {body}: {text}");
}

fn check<'a>(verify: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    verify["hosts"]["web-02"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {verify}"))
}

fn verify(p: &Project) -> (i32, serde_json::Value) {
    let r = run(p, &["verify", "--json", "--settle", "20"]);
    let doc = serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("verify JSON: {r:?}"));
    (r.code, doc)
}

fn notes_in(socket: &str) -> Vec<String> {
    ssh_ok(
        "web-02",
        &format!("mariadb --socket={socket} -N -B -e 'SELECT body FROM foobar.notes ORDER BY id'"),
    )
    .lines()
    .map(str::to_string)
    .collect()
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn backups_restore_to_a_point_in_time_and_verify_watches_them() {
    let _guard = lab_lock();
    lab(&["reset"]);
    let p = Project::new();
    with_backups(&p, "1h");

    let apply = run(&p, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    // The archive's password is in a 0600 file, never on a command line.
    assert_eq!(
        ssh_ok("web-02", "stat -c %a /etc/foobar/binlog-archive.cnf").trim(),
        "600"
    );
    let ps = ssh_ok("web-02", "ps -eo args");
    assert!(ps.contains("--read-from-remote-server"), "{ps}");
    assert!(!ps.contains(ARCHIVE_PASSWORD), "{ps}");
    let grants = ssh_ok(
        "web-01",
        "mariadb -N -e \"SHOW GRANTS FOR 'binlog_archive'@'127.%'\"",
    );
    assert!(
        grants.contains("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.*")
            || grants.contains("GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.*"),
        "{grants}"
    );

    // 1. Point-in-time restore after a DROP TABLE.
    let mut before_drop = Vec::new();
    for i in 0..5 {
        let body = format!("before-backup-{i}");
        post_note(&body);
        before_drop.push(body);
    }
    let backup = run(&p, &["backup", "now"]);
    assert_eq!(backup.code, 0, "{backup:?}");
    let backups = list(&p);
    assert_eq!(good_ids(&backups).len(), 1, "{backups:?}");
    assert_eq!(backups[0]["verified"]["ok"], true, "{backups:?}");
    assert!(
        backups[0]["gtid"].as_str().unwrap().starts_with("0-1-"),
        "{backups:?}"
    );
    for i in 0..5 {
        let body = format!("after-backup-{i}");
        post_note(&body);
        before_drop.push(body);
    }
    let last_write = unix_now();
    // Binary log timestamps are whole seconds: the target second holds no write and the drop
    // falls in a later one.
    std::thread::sleep(Duration::from_millis(1200));
    let target = unix_now().floor() as i64;
    std::thread::sleep(Duration::from_millis(1200));
    ssh_ok("web-01", "mariadb -e 'DROP TABLE foobar.notes'");
    let _ = http("127.0.1.1:80", "POST", "/notes", "after-drop");

    let started = Instant::now();
    let restore = run(&p, &["restore", "--to", &format!("@{target}"), "--json"]);
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(restore.code, 0, "{restore:?}");
    let doc: serde_json::Value = serde_json::from_str(&restore.stdout).expect("restore JSON");
    let socket = doc["socket"].as_str().unwrap().to_string();
    let restored = notes_in(&socket);
    ssh_ok(
        "web-02",
        &format!("mariadb-admin --socket={socket} shutdown"),
    );
    let lost: Vec<&String> = before_drop
        .iter()
        .filter(|n| !restored.contains(n))
        .collect();
    assert!(
        lost.is_empty(),
        "notes lost: {lost:?}; restored {restored:?}"
    );
    assert_eq!(restored, before_drop, "exactly the notes before the drop");
    // The live primary was not touched by the restore.
    let live = ssh(
        "web-01",
        "mariadb -N -e 'SELECT COUNT(*) FROM foobar.notes'",
    );
    assert!(!live.stdout.contains("10"), "{live:?}");
    println!(
        "MEASURED recovery point: {} of {} notes lost (0 s of writes; last write {:.1} s before the target second ended, drop after it); restore time {:.1} s (foobar's own figure {:.1} s)",
        lost.len(),
        before_drop.len(),
        (target + 1) as f64 - last_write,
        wall,
        doc["restore_seconds"].as_f64().unwrap()
    );

    // 2. verify watches the archive and the backups' age.
    let (code, doc) = verify(&p);
    assert_eq!(code, 0, "{doc}");
    for c in ["backup_age", "backup_restore_test", "binlog_archive"] {
        assert_eq!(check(&doc, c)["ok"], true, "{c}: {doc}");
    }
    ssh_ok("web-02", "systemctl stop foobar-binlog-archive");
    post_note("while-the-archive-is-stopped");
    let (code, doc) = verify(&p);
    assert_eq!(code, 3, "{doc}");
    assert_eq!(check(&doc, "binlog_archive")["ok"], false, "{doc}");
    let apply = run(&p, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let (code, doc) = verify(&p);
    assert_eq!(code, 0, "{doc}");

    with_backups(&p, "1s");
    std::thread::sleep(Duration::from_millis(1500));
    let (code, doc) = verify(&p);
    assert_eq!(code, 3, "{doc}");
    assert_eq!(check(&doc, "backup_age")["ok"], false, "{doc}");
    with_backups(&p, "1h");

    // 3. A run killed midway, the next run, retention.
    let good_before = good_ids(&list(&p));
    let killed = ssh_ok(
        "web-02",
        &format!(
            "setsid bash -c 'echo $$ > /tmp/backup.pid; exec {}' >/dev/null 2>&1 < /dev/null &
             for i in $(seq 1 600); do
               for d in {DIR}/backups/*/; do
                 if [ -d \"$d/data\" ] && [ ! -e \"$d/backup.json\" ]; then kill -KILL -- -$(cat /tmp/backup.pid); basename \"$d\"; exit 0; fi
               done
               sleep 0.05
             done; exit 1",
            foobar::backup::BACKUP_COMMAND
        ),
    )
    .trim()
    .to_string();
    let after_kill = list(&p);
    let dead = after_kill
        .iter()
        .find(|b| b["id"] == killed.as_str())
        .unwrap_or_else(|| panic!("{killed} not listed: {after_kill:?}"));
    assert_eq!(dead["good"], false, "{after_kill:?}");
    assert_eq!(
        good_ids(&after_kill),
        good_before,
        "the killed run left a good backup"
    );

    let second = run(&p, &["backup", "now"]);
    assert_eq!(second.code, 0, "{second:?}");
    let third = run(&p, &["backup", "now"]);
    assert_eq!(third.code, 0, "{third:?}");
    let now = list(&p);
    let ids = good_ids(&now);
    assert_eq!(ids.len(), 2, "retention keeps 2: {now:?}");
    assert!(
        !ids.contains(&good_before[0]),
        "the oldest was removed: {now:?}"
    );
    assert!(
        !now.iter().any(|b| b["id"] == killed.as_str()),
        "the dead run's directory was removed: {now:?}"
    );
    // The replica applies again after the killed run paused it.
    let (code, doc) = verify(&p);
    assert_eq!(code, 0, "{doc}");
    // The archive still holds the primary's current binary log.
    let current = ssh_ok("web-01", "mariadb -N -e 'SHOW MASTER STATUS' | cut -f1");
    ssh_ok(
        "web-02",
        &format!("test -s {DIR}/binlogs/{}", current.trim()),
    );

    // 4. Bad input: one error, exit 1, nothing touched.
    let scratch_before = ssh_ok("web-02", &format!("ls -1 {DIR}/scratch"));
    let early = run(&p, &["restore", "--to", "@1000000000"]);
    assert_eq!(early.code, 1, "{early:?}");
    assert!(
        early.stderr.contains("no good backup was finished before"),
        "{early:?}"
    );
    assert_eq!(early.stderr.matches("error:").count(), 1, "{early:?}");
    let primary = run(&p, &["restore", "--to", "@2000000000", "--into", "web-01"]);
    assert_eq!(primary.code, 1, "{primary:?}");
    assert!(primary.stderr.contains("live primary"), "{primary:?}");
    assert_eq!(
        ssh_ok("web-02", &format!("ls -1 {DIR}/scratch")),
        scratch_before,
        "a refused restore touched the scratch directory"
    );
    let none = foobar(&["backups", "list"]);
    assert_eq!(none.code, 1, "{none:?}");
    assert!(none.stderr.contains("no `backups:` section"), "{none:?}");
    assert_eq!(none.stderr.matches("error:").count(), 1, "{none:?}");
}
