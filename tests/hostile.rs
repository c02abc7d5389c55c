//! Nothing from data ever runs as code, end to end on the local test hosts: a synced folder
//! whose file names hold spaces, quotes, `$(touch /tmp/PWNED)` and backticks is applied to
//! web-01, checked by hash, converges (the next plan has nothing to do), then a change to it is
//! rolled back by a failing handler: every file is as before, `/tmp/PWNED` never exists, and
//! nothing else under the managed directories changes. Backups are pruned to `keep_backups:`
//! runs, and the backup of a file holding a secret is 0600 while the file keeps its mode.

mod common;

use common::*;
use foobar::render::sha256_hex;
use foobar::shell::sh_quote;

const HOST: &str = "web-01";

const PLAYBOOK: &str = r#"
keep_backups: 2
plays:
  - name: hostile names
    hosts: web-01
    sync:
      - src: ../hostile
        dest: /opt/foobar-hostile
        notify: [check]
    files:
      - content: "v1 password={{ app_db_password }}\n"
        dest: /etc/foobar-hostile/secret.conf
        mode: "0640"
        notify: [check]
    handlers:
      - name: check
        run: if [ -f /tmp/hostile-fail ]; then echo "handler refused" >&2; exit 1; fi
"#;

/// Relative paths in the synced folder; their full paths on the host hold the payloads.
const NAMES: &[&str] = &[
    "a $(touch /tmp/PWNED) 'q' \"d\" ; x",
    "`touch /tmp/PWNED`.txt",
    "sp ace/it's \"quoted\" & | * ?.conf",
    "-leading-dash",
];

fn remote_sha(path: &str) -> String {
    let out = ssh_ok(HOST, &format!("sha256sum -- {}", sh_quote(path)));
    out.split_whitespace().next().unwrap_or("").to_string()
}

fn never_pwned() {
    assert_eq!(
        ssh(HOST, "test ! -e /tmp/PWNED && test ! -e /root/PWNED").code,
        0,
        "an injected command ran on {HOST}"
    );
    assert!(!std::path::Path::new("/tmp/PWNED").exists());
}

/// Every path under the managed directories with its mode and digest.
fn listing() -> String {
    ssh_ok(
        HOST,
        "find /opt/foobar-hostile /etc/foobar-hostile -printf '%p\\t%m\\t%y\\n' | sort; find /opt/foobar-hostile /etc/foobar-hostile -type f -print0 | sort -z | xargs -0 sha256sum --",
    )
}

#[test]
fn hostile_file_names_are_data_applied_verified_and_rolled_back() {
    let _guard = lab_lock();
    lab(&["up", "--no-install"]);
    ssh_ok(
        HOST,
        "rm -rf /opt/foobar-hostile /etc/foobar-hostile /var/backups/foobar /tmp/PWNED /root/PWNED /tmp/hostile-fail /var/lib/foobar/lock",
    );
    let p = Project::new();
    p.write("playbooks/hostile.yml", PLAYBOOK);
    for (i, name) in NAMES.iter().enumerate() {
        p.write(
            &format!("hostile/{name}"),
            &format!("version 1 of file {i}\n"),
        );
    }
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-p", "playbooks/hostile.yml", "--limit", HOST]);
        p.foobar(&all)
    };

    // Applied, and each file is on the host byte for byte.
    let applied = run(&["apply", "--yes"]);
    assert_eq!(applied.code, 0, "{applied:?}");
    never_pwned();
    for name in NAMES {
        let local = sha256_hex(&std::fs::read(p.path(&format!("hostile/{name}"))).unwrap());
        assert_eq!(
            remote_sha(&format!("/opt/foobar-hostile/{name}")),
            local,
            "{name}"
        );
    }
    // Gathered back correctly: nothing left to do.
    let again = run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");
    never_pwned();

    // A change, rolled back by a failing handler: every file as before, nothing else changed.
    let before = listing();
    for (i, name) in NAMES.iter().enumerate() {
        p.write(
            &format!("hostile/{name}"),
            &format!("version 2 of file {i}\n"),
        );
    }
    // A new file in an existing directory: created, then removed by the rollback. (Directories
    // a play creates are not rolled back.)
    p.write("hostile/new $(touch PWNED) `touch PWNED` ; x", "new\n");
    p.edit("playbooks/hostile.yml", "v1 password", "v2 password");
    ssh_ok(HOST, "touch /tmp/hostile-fail");
    let rolled = run(&["apply", "--yes"]);
    assert_eq!(rolled.code, 3, "{rolled:?}");
    assert!(
        rolled
            .stdout
            .contains("handler `check` failed, files rolled back"),
        "{rolled:?}"
    );
    never_pwned();
    assert_eq!(listing(), before, "the rollback left something changed");
    assert_eq!(
        ssh_ok(HOST, "stat -c %a /etc/foobar-hostile/secret.conf").trim(),
        "640"
    );

    // Then applied for real, twice more: backups are pruned to the last 2 runs, and the
    // secret-bearing file's backups are 0600.
    ssh_ok(HOST, "rm -f /tmp/hostile-fail");
    let fixed = run(&["apply", "--yes"]);
    assert_eq!(fixed.code, 0, "{fixed:?}");
    p.edit("playbooks/hostile.yml", "v2 password", "v3 password");
    let third = run(&["apply", "--yes"]);
    assert_eq!(third.code, 0, "{third:?}");
    never_pwned();
    let runs = ssh_ok(HOST, "ls /var/backups/foobar");
    assert_eq!(runs.lines().count(), 2, "backups kept: {runs}");
    let modes = ssh_ok(
        HOST,
        "find /var/backups/foobar -name secret.conf -exec stat -c %a {} +",
    );
    assert!(
        !modes.is_empty() && modes.lines().all(|m| m == "600"),
        "{modes}"
    );
    assert_eq!(
        ssh_ok(HOST, "stat -c %a /etc/foobar-hostile/secret.conf").trim(),
        "640"
    );
    ssh_ok(HOST, "rm -rf /opt/foobar-hostile /etc/foobar-hostile");
}
