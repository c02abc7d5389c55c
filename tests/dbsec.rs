//! End-to-end: the database's accounts, logs and backups keep secrets and files where they
//! belong, on the local test hosts with real MariaDB (web-01 the primary, web-02 the replica
//! and backup host). One applied stack, in order:
//!
//! 1. `app.env` is 0600 root and the app runs as its own user: the web server's user cannot
//!    read the database password; the app account holds only what the app uses;
//! 2. a `plan` with the replica's general log on leaves nothing derived from the replication
//!    password in it;
//! 3. an anonymous account on the primary is dropped by the next `apply` (on the replica too);
//! 4. a table named with a backslash, a tab and a newline is backed up, and its checksums at
//!    backup and after the restore test match;
//! 5. a tampered archived binary log that tries `SELECT ... INTO OUTFILE` is refused by the
//!    restore's scratch server, and no file is written;
//! 6. after an `apply` that rotates the app password, the old one is refused at once.

mod common;

use std::time::Duration;

use common::*;

const ARCHIVE_PASSWORD: &str = "Zq7-arch-SECRET-dbsec";
const ROTATED_APP_PASSWORD: &str = "Zq7-app-ROTATED-dbsec";
const DIR: &str = "/var/backups/foobar-database";
const OUTFILE: &str = "/tmp/foobar-outfile-probe";

fn with_backups(p: &Project) {
    let inv = p.read("inventories/lab.yml");
    let mut text = inv.replacen(
        "secrets:\n",
        "secrets:\n  binlog_archive_password: { file: archive.pw }\n",
        1,
    );
    text.push_str(&format!(
        "\nbackups:\n  dir: {DIR}\n  schedule: hourly\n  max_age: 1h\n  retention: {{ count: 5, age: 1h }}\n  archive: {{ host_pattern: \"127.%\", max_lag: 10s }}\n"
    ));
    p.write("inventories/lab.yml", &text);
    p.write("inventories/archive.pw", ARCHIVE_PASSWORD);
}

fn run(p: &Project, args: &[&str]) -> Run {
    let r = p.foobar(args);
    assert!(!r.all().contains(ARCHIVE_PASSWORD), "leaked: {r:?}");
    r
}

fn sql(host: &str, statement: &str) -> String {
    ssh_ok(
        host,
        &format!("mariadb -N -B -e {}", shell_quote(statement)),
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// SHA-256 of the `mysql_native_password` hash: the digest the facts print for a password.
fn native_digest(password: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(
        foobar::mysql::mysql_native_password_hash(password).as_bytes(),
    ))
}

#[test]
fn database_secrets_logs_and_backups_stay_in_place() {
    let _guard = lab_lock();
    lab(&["reset"]);
    let p = Project::new();
    with_backups(&p);
    let apply = run(&p, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");

    // 1. The app's secrets and its user.
    for host in ["web-01", "web-02"] {
        assert_eq!(
            ssh_ok(host, "stat -c '%a %U %G' /etc/foobar/app.env").trim(),
            "600 root root",
            "{host}"
        );
        let user = ssh_ok(
            host,
            "for p in /proc/[0-9]*; do if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^/usr/bin/python3 .*server.py'; then stat -c %U $p; fi; done",
        );
        assert_eq!(user.trim(), "foobar-app", "{host}: the app's user");
        let read = ssh(
            host,
            "setpriv --reuid=www-data --regid=www-data --clear-groups cat /etc/foobar/app.env",
        );
        assert_ne!(read.code, 0, "{host}: www-data read app.env: {read:?}");
        assert!(!read.stdout.contains(APP_DB_PASSWORD), "{read:?}");
    }

    // The app account holds what the app uses on its database, nothing more.
    let grants = sql("web-01", "SHOW GRANTS FOR 'foobar'@'127.%'");
    assert!(
        grants.contains("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE ON `foobar`.*"),
        "{grants}"
    );
    assert!(!grants.contains("ALL PRIVILEGES"), "{grants}");

    // 2. The replica's general log after a plan.
    sql(
        "web-02",
        "SET GLOBAL general_log_file = '/tmp/foobar-general.log'; SET GLOBAL log_output = 'FILE'; SET GLOBAL general_log = 1",
    );
    let plan = run(&p, &["plan"]);
    assert!(plan.code == 0 || plan.code == 2, "{plan:?}");
    sql("web-02", "SET GLOBAL general_log = 0");
    let log = ssh_ok("web-02", "cat /tmp/foobar-general.log");
    assert!(
        log.contains("source_password"),
        "the facts query is in the log: {log}"
    );
    let hex = hex::encode(REPLICATION_PASSWORD);
    for leak in [
        REPLICATION_PASSWORD.to_string(),
        hex.clone(),
        hex.to_uppercase(),
        native_digest(REPLICATION_PASSWORD),
        foobar::mysql::mysql_native_password_hash(REPLICATION_PASSWORD),
    ] {
        assert!(!log.contains(&leak), "the general log holds {leak}:\n{log}");
    }

    // 3. Anonymous accounts.
    sql("web-01", "CREATE USER ''@'localhost'");
    assert_eq!(
        sql("web-02", "SELECT COUNT(*) FROM mysql.user WHERE User = ''").trim(),
        "1",
        "the anonymous account replicated"
    );
    let apply = run(&p, &["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    for host in ["web-01", "web-02"] {
        let n = ssh_ok(
            host,
            "mariadb -N -B -e \"SELECT COUNT(*) FROM mysql.user WHERE User = ''\"",
        );
        assert_eq!(n.trim(), "0", "{host} keeps an anonymous account");
    }

    // 4. An odd table name is backed up and its checksums match after the restore test.
    sql(
        "web-01",
        "CREATE TABLE foobar.`evil\\name\ttab\nline` (id INT PRIMARY KEY, v TEXT); INSERT INTO foobar.`evil\\name\ttab\nline` VALUES (1, 'a'), (2, 'b')",
    );
    assert!(
        sql("web-01", "SHOW TABLES FROM foobar").contains("evil\\\\name\\ttab\\nline"),
        "the table exists with its odd name"
    );
    assert!(
        eventually(20, || sql("web-02", "SHOW TABLES FROM foobar")
            .contains("evil")
            .then_some(()))
        .is_some(),
        "the table reached the replica"
    );
    let backup = run(&p, &["backup", "now"]);
    assert_eq!(backup.code, 0, "{backup:?}");
    let list = run(&p, &["backups", "list", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&list.stdout).expect("list JSON");
    let newest = doc["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["good"] == true)
        .max_by_key(|b| b["id"].as_str().unwrap().to_string())
        .cloned()
        .unwrap_or_else(|| panic!("no good backup: {doc}"));
    assert_eq!(newest["verified"]["ok"], true, "{newest}");
    let id = newest["id"].as_str().unwrap();
    let sums = ssh_ok(
        "web-02",
        &format!(
            "cat {DIR}/backups/{id}/checksums.tsv; echo ---; cat {DIR}/backups/{id}/restored-checksums.tsv"
        ),
    );
    let (at_backup, restored) = sums.split_once("---\n").unwrap();
    let evil = at_backup
        .lines()
        .find(|l| l.starts_with("foobar.evil"))
        .unwrap_or_else(|| panic!("no checksum of the odd table: {sums}"));
    assert_eq!(evil.split('\t').nth(1), Some("2"), "{evil}");
    assert!(!evil.contains("ERROR"), "{sums}");
    assert_eq!(at_backup, restored, "checksums at backup and after restore");

    // 5. A tampered binary log cannot write files through the restore.
    ssh("web-02", &format!("rm -f {OUTFILE}"));
    let marker = "X".repeat(80);
    let original = format!("INSERT INTO foobar.pad VALUES ('{marker}')");
    let evil_sql = format!("SELECT 'owned' INTO OUTFILE '{OUTFILE}'");
    let tampered = format!("{evil_sql:<width$}", width = original.len());
    sql(
        "web-01",
        &format!(
            "SET SESSION binlog_format = 'STATEMENT'; CREATE TABLE foobar.pad (v VARCHAR(200)); {original}"
        ),
    );
    let archived = eventually(30, || {
        let r = ssh(
            "web-02",
            &format!("grep -l -a {marker} {DIR}/binlogs/*.[0-9][0-9][0-9][0-9][0-9][0-9]"),
        );
        (r.code == 0).then(|| r.stdout.trim().to_string())
    })
    .expect("the marker statement reached the archive");
    ssh_ok(
        "web-02",
        &format!(
            "python3 -c {}",
            shell_quote(&format!(
                "import sys\nf = open({archived:?}, 'r+b')\nb = f.read()\ni = b.index({original:?}.encode())\nf.seek(i)\nf.write({tampered:?}.encode())\nf.close()\n"
            ))
        ),
    );
    std::thread::sleep(Duration::from_millis(1200));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let restore = run(&p, &["restore", "--to", &format!("@{now}")]);
    let leftover = ssh("web-02", &format!("ls -l {OUTFILE}"));
    // Whatever the restore's outcome, its scratch server goes.
    ssh(
        "web-02",
        &format!(
            "for s in {DIR}/scratch/*/mysqld.sock; do [ -S \"$s\" ] && mariadb-admin --socket=\"$s\" shutdown; done; true"
        ),
    );
    assert_ne!(
        leftover.code, 0,
        "the replayed binlog wrote {OUTFILE}: {leftover:?}"
    );
    assert_ne!(restore.code, 0, "{restore:?}");
    assert!(
        restore.all().contains("secure-file-priv"),
        "refused for secure_file_priv: {restore:?}"
    );

    // 6. A rotated app password: the old one is refused right after the apply.
    let rotate = foobar_with_secrets(
        p.dir.path(),
        &["apply", "--yes", "-i", "inventories/lab.yml"],
        REPLICATION_PASSWORD,
        ROTATED_APP_PASSWORD,
    );
    assert_eq!(rotate.code, 0, "{rotate:?}");
    let login = |password: &str| {
        ssh(
            "web-02",
            &format!(
                "MYSQL_PWD={} mariadb -h 127.0.1.2 -u foobar -N -B -e 'SELECT 1' foobar",
                shell_quote(password)
            ),
        )
    };
    let new = login(ROTATED_APP_PASSWORD);
    assert_eq!(new.code, 0, "the new password works: {new:?}");
    let old = login(APP_DB_PASSWORD);
    assert_ne!(old.code, 0, "the old password still works: {old:?}");
    assert!(old.stderr.contains("Access denied"), "{old:?}");
    // And the notes still come through the load balancer (the app has the new one).
    let (status, body) = http("127.0.1.1:80", "GET", "/notes", "").expect("GET /notes");
    assert_eq!(status, 200, "{body}");
}
