//! Secrets stay secret after a filter, and trust is never widened silently.
//!
//! Offline: `render` needs no secret and writes placeholders; `--with-secrets` writes a 0600
//! tree; an `{% include %}` of a secret, an endless loop, an oversized file and a secret in a
//! `dest` each fail with the template's name and line and without any form of the secret.
//! On the local test hosts: a distinctive secret passed through `upper`, `replace`,
//! `urlencode` and `~` reaches the host, but no form of it shows in `plan`, `plan --json`, a
//! saved plan, `FOOBAR_TRACE` or `apply`; a changed host key is refused naming the
//! known_hosts file and the fix; `accept-new` trusts a never-seen host once.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Project, Run, lab, lab_lock, repo, ssh, ssh_ok};

/// Distinctive, and full of characters each encoding changes: quote, backslash, space, `@`,
/// `/`, `%`.
const SECRET: &str = r#"Zq7-leak'Pw\x y@z/%q"#;

/// Every form the secret takes in the test's templates, and the forms foobar itself sends.
fn forms() -> Vec<String> {
    let mut v = vec![
        SECRET.to_string(),
        SECRET.to_uppercase(),
        SECRET.replace(' ', "%20"),
        // minijinja's `urlencode`
        "Zq7-leak%27Pw%5Cx%20y%40z/%25q".to_string(),
        // SQL literal as sent, and with `\'`
        SECRET.replace('\\', "\\\\").replace('\'', "''"),
        SECRET.replace('\\', "\\\\").replace('\'', "\\'"),
    ];
    // Distinctive fragments: whatever a filter does around them, these must not show.
    v.push("leak'Pw".into());
    v.push("LEAK'PW".into());
    v
}

fn assert_no_form(what: &str, text: &str) {
    for f in forms() {
        assert!(
            !text.contains(&f),
            "{what} shows the secret as {f:?}:\n{text}"
        );
    }
}

/// Runs foobar in `dir` with exactly the secrets given (the usual test secrets are not set).
fn foobar_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_foobar"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("FOOBAR_REPLICATION_PASSWORD")
        .env_remove("FOOBAR_APP_DB_PASSWORD")
        .env_remove("FOOBAR_MYSQLD_EXPORTER_PASSWORD")
        .env_remove("FOOBAR_TRACE")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run foobar");
    let run = Run::from(out);
    assert_no_form(&format!("foobar {args:?}"), &run.all());
    run
}

const SECRETS: &[(&str, &str)] = &[
    ("FOOBAR_APP_DB_PASSWORD", SECRET),
    ("FOOBAR_REPLICATION_PASSWORD", "Zq7-repl-other"),
    ("FOOBAR_MYSQLD_EXPORTER_PASSWORD", "Zq7-exporter-other"),
];

const LEAK_TEMPLATE: &str = r#"# every way a template may pass the secret on
U={{ app_db_password | upper }}
R={{ app_db_password | replace(" ", "%20") }}
E={{ app_db_password | urlencode }}
C={{ "mysql://app:" ~ app_db_password ~ "@db/x" }}
"#;

/// A project whose only play writes the leak template on web-01.
fn leak_project(template: &str, extra: &str) -> Project {
    let p = Project::new();
    p.write("templates/leak/leak.conf.j2", template);
    p.write(
        "playbooks/leak.yml",
        &format!(
            "plays:\n  - name: leak\n    hosts: web-01\n    files:\n      - template: leak/leak.conf.j2\n        dest: /etc/foobar-leak/leak.conf\n        mode: \"0600\"\n{extra}"
        ),
    );
    p
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.push(p.clone());
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn render_needs_no_secret_writes_placeholders_and_with_secrets_a_private_tree() {
    let p = leak_project(LEAK_TEMPLATE, "");
    let out = p.path("out");
    let args = [
        "render",
        "-i",
        "inventories/lab.yml",
        "-p",
        "playbooks/leak.yml",
        "--out",
        out.to_str().unwrap(),
    ];
    // No secret set at all.
    let run = foobar_env(p.dir.path(), &args, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    let text = std::fs::read_to_string(out.join("web-01/etc/foobar-leak/leak.conf")).unwrap();
    assert!(text.contains("U=<SECRET:APP_DB_PASSWORD>\n"), "{text}");
    assert!(text.contains("R=<secret:app_db_password>\n"), "{text}");
    assert!(
        text.contains("C=mysql://app:<secret:app_db_password>@db/x\n"),
        "{text}"
    );

    // The whole stack too, database tier included.
    let stack = p.path("stack");
    let run = foobar_env(
        p.dir.path(),
        &[
            "render",
            "-i",
            "inventories/lab.yml",
            "-p",
            "playbooks/site.yml",
            "--out",
            stack.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let env = std::fs::read_to_string(stack.join("web-01/etc/foobar/app.env")).unwrap();
    assert!(env.contains("=\"<secret:app_db_password>\"\n"), "{env}");
    assert!(stack.join("web-02/foobar/replication.sql").exists());

    // With the secrets set, still placeholders: no form of them in the tree.
    let run = foobar_env(p.dir.path(), &args, SECRETS);
    assert_eq!(run.code, 0, "{run:?}");
    let text = std::fs::read_to_string(out.join("web-01/etc/foobar-leak/leak.conf")).unwrap();
    assert_no_form("render output", &text);

    // --with-secrets: the real values, readable by the owner only.
    let private = p.path("private");
    let mut with = args.to_vec();
    with[6] = private.to_str().unwrap();
    with.push("--with-secrets");
    let run = foobar_env(p.dir.path(), &with, &[]);
    assert_eq!(run.code, 1, "the secrets must be set: {run:?}");
    let run = foobar_env(p.dir.path(), &with, SECRETS);
    assert_eq!(run.code, 0, "{run:?}");
    let text = std::fs::read_to_string(private.join("web-01/etc/foobar-leak/leak.conf")).unwrap();
    assert!(
        text.contains(&format!("U={}\n", SECRET.to_uppercase())),
        "{text}"
    );
    let mut all = vec![private.clone()];
    walk(&private, &mut all);
    for path in all {
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", path.display());
    }
}

#[test]
fn failing_templates_name_the_template_and_line_and_never_the_secret() {
    let render = |p: &Project| {
        let out = p.path("out");
        foobar_env(
            p.dir.path(),
            &[
                "render",
                "-i",
                "inventories/lab.yml",
                "-p",
                "playbooks/leak.yml",
                "--out",
                out.to_str().unwrap(),
                "--with-secrets",
            ],
            SECRETS,
        )
    };

    // minijinja's error quotes the name it could not include: the secret, upper-cased.
    for template in [
        "x\n{% include app_db_password %}\n",
        "x\n{% include app_db_password | upper %}\n",
        "x\n{% include 'a/' ~ app_db_password | urlencode %}\n",
    ] {
        let p = leak_project(template, "");
        let run = render(&p);
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains("leak/leak.conf.j2:2"),
            "names the template and line: {run:?}"
        );
    }

    // An endless loop runs out of fuel, in bounded time, naming the template and line.
    let p = leak_project(
        "a\n{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}\n",
        "",
    );
    let started = Instant::now();
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("template `leak/leak.conf.j2` ran out of fuel"),
        "{run:?}"
    );
    assert!(run.stderr.contains("leak/leak.conf.j2:2"), "{run:?}");
    assert!(run.stderr.contains("template_fuel"), "{run:?}");
    // Bounded, not a performance figure: a template that runs away is stopped by its fuel.
    assert!(started.elapsed() < Duration::from_secs(60));

    // A rendered file over the size cap.
    let p = leak_project("{{ 'x' * 2000 }}\n", "limits:\n  max_file_size: 1000\n");
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("is 2001 bytes, over the limit of 1000 bytes for a managed file"),
        "{run:?}"
    );
    assert!(run.stderr.contains("max_file_size"), "{run:?}");

    // A synced file over the cap, named.
    let p = leak_project("x\n", "limits:\n  max_file_size: 1000\n");
    p.write("big/blob.bin", &"y".repeat(1001));
    p.edit(
        "playbooks/leak.yml",
        "    files:\n",
        "    sync:\n      - { src: ../big, dest: /opt/big }\n    files:\n",
    );
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("blob.bin is 1001 bytes"), "{run:?}");

    // A secret where every plan would show it.
    let p = leak_project("x\n", "");
    p.edit(
        "playbooks/leak.yml",
        "dest: /etc/foobar-leak/leak.conf",
        "dest: \"/etc/{{ app_db_password | upper }}\"",
    );
    let run = render(&p);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("reads the secret `app_db_password`"),
        "{run:?}"
    );
}

/// On web-01: the secret reaches the host through every filter, and no output shows it.
#[test]
fn derived_secrets_never_show_in_plan_json_saved_plan_trace_or_apply() {
    let _guard = lab_lock();
    lab(&["up"]);
    // A second file reads no secret but is marked sensitive by the playbook.
    let p = leak_project(
        LEAK_TEMPLATE,
        "      - content: \"plain {{ domain }}\\n\"\n        dest: /etc/foobar-leak/marked.conf\n        sensitive: true\n",
    );
    ssh_ok(
        "web-01",
        "mkdir -p /etc/foobar-leak && echo 'U=old' > /etc/foobar-leak/leak.conf && echo old > /etc/foobar-leak/marked.conf",
    );
    let base = ["-i", "inventories/lab.yml", "-p", "playbooks/leak.yml"];
    fn with<'a>(extra: &[&'a str], base: &[&'a str]) -> Vec<&'a str> {
        let mut v = extra.to_vec();
        v.extend(base);
        v
    }
    let dir = p.dir.path();

    let plan = foobar_env(dir, &with(&["plan"], &base), SECRETS);
    assert_eq!(plan.code, 0, "{plan:?}");
    assert!(
        plan.stdout
            .contains("content changed (sensitive: reads `app_db_password`)"),
        "{plan:?}"
    );
    assert!(
        plan.stdout
            .contains("content changed (sensitive: marked `sensitive: true`)"),
        "{plan:?}"
    );
    assert!(!plan.stdout.contains("+++"), "no diff at all: {plan:?}");

    let json = foobar_env(dir, &with(&["plan", "--json"], &base), SECRETS);
    assert_eq!(json.code, 0, "{json:?}");
    assert!(json.stdout.contains("sensitive: reads"), "{json:?}");

    let saved = p.path("saved-plan.json");
    let run = foobar_env(
        dir,
        &with(&["plan", "--out", saved.to_str().unwrap()], &base),
        SECRETS,
    );
    assert_eq!(run.code, 0, "{run:?}");
    assert_no_form("the saved plan", &std::fs::read_to_string(&saved).unwrap());

    let mut traced = SECRETS.to_vec();
    traced.push(("FOOBAR_TRACE", "1"));
    let run = foobar_env(dir, &with(&["apply", "--yes", "--diff"], &base), &traced);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("web-01"), "trace lines: {run:?}");

    // The real values did reach the host, through every filter.
    let live = ssh_ok("web-01", "cat /etc/foobar-leak/leak.conf");
    assert!(
        live.contains(&format!("U={}\n", SECRET.to_uppercase())),
        "{live}"
    );
    assert!(
        live.contains("E=Zq7-leak%27Pw%5Cx%20y%40z/%25q\n"),
        "{live}"
    );

    let again = foobar_env(dir, &with(&["apply", "--yes", "--json"], &base), SECRETS);
    assert_eq!(again.code, 0, "{again:?}");
    ssh_ok("web-01", "rm -rf /etc/foobar-leak");
}

/// Copies of the lab's ssh_config and known_hosts (never the shared files themselves) and an
/// inventory using them with `strict_host_key_checking: <strict>`.
struct KeyLab {
    project: Project,
    known_hosts: std::path::PathBuf,
}

impl KeyLab {
    fn new(strict: &str, known_hosts: &str) -> Self {
        let project = Project::new();
        let known = project.path("ssh/known_hosts");
        project.write("ssh/known_hosts", known_hosts);
        let config = std::fs::read_to_string(repo().join(".lab/ssh_config")).unwrap();
        let shared = std::fs::canonicalize(repo().join(".lab/known_hosts")).unwrap();
        let config = config
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("UserKnownHostsFile") {
                    format!("  UserKnownHostsFile {}", known.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(!config.contains(shared.to_str().unwrap()));
        project.write("ssh/ssh_config", &config);
        let inv = project.read("inventories/lab.yml");
        let lab_config = repo().join(".lab/ssh_config");
        project.edit(
            "inventories/lab.yml",
            lab_config.to_str().unwrap(),
            project.path("ssh/ssh_config").to_str().unwrap(),
        );
        assert!(inv.contains("  strict_host_key_checking: true\n"));
        project.edit(
            "inventories/lab.yml",
            "  strict_host_key_checking: true\n",
            // No persisted master: each run checks the host key again.
            &format!("  strict_host_key_checking: {strict}\n  control_persist: 0\n"),
        );
        project.write(
            "playbooks/probe.yml",
            "plays:\n  - name: probe\n    hosts: [web-01, web-02]\n    files:\n      - { dest: /tmp/foobar-probe-absent, state: absent }\n",
        );
        Self {
            known_hosts: known,
            project,
        }
    }

    fn plan(&self) -> Run {
        foobar_env(
            self.project.dir.path(),
            &[
                "plan",
                "-i",
                "inventories/lab.yml",
                "-p",
                "playbooks/probe.yml",
            ],
            SECRETS,
        )
    }

    fn known(&self) -> String {
        std::fs::read_to_string(&self.known_hosts).unwrap()
    }
}

fn shared_known_hosts() -> String {
    std::fs::read_to_string(repo().join(".lab/known_hosts")).unwrap()
}

/// web-01's line keyed with lb-01's key: what a reinstalled host or a man in the middle
/// looks like to ssh.
fn with_changed_web01(known: &str) -> String {
    let key_of = |name: &str| {
        known
            .lines()
            .find(|l| l.split(',').next() == Some(name) || l.starts_with(&format!("{name} ")))
            .and_then(|l| l.split_whitespace().nth(2))
            .unwrap_or_else(|| panic!("no key for {name} in:\n{known}"))
            .to_string()
    };
    let other = key_of("lb-01");
    let mine = key_of("web-01");
    assert_ne!(other, mine);
    known.replacen(&mine, &other, 1)
}

#[test]
fn a_changed_host_key_is_refused_and_accept_new_trusts_a_new_host_once() {
    let _guard = lab_lock();
    lab(&["up"]);
    let shared_before = shared_known_hosts();

    // strict: web-01's key changed -> refused, naming the file and the fix; web-02 planned.
    let lab_keys = KeyLab::new("true", &with_changed_web01(&shared_before));
    let run = lab_keys.plan();
    assert_eq!(run.code, 3, "{run:?}");
    let file = lab_keys.known_hosts.display().to_string();
    assert!(
        run.stdout
            .contains("the host key of web-01 changed since it was recorded in"),
        "{run:?}"
    );
    assert!(run.stdout.contains(&file), "names {file}: {run:?}");
    assert!(
        run.stdout.contains(&format!("ssh-keygen -f '{file}' -R ")),
        "the fix: {run:?}"
    );
    assert!(
        run.stdout.contains("no changes") && run.stdout.contains("(1 could not be planned)"),
        "web-02 is planned: {run:?}"
    );

    // accept-new: a never-seen web-01 is accepted once and recorded.
    let without_web01: String = shared_before
        .lines()
        .filter(|l| !l.starts_with("web-01"))
        .map(|l| format!("{l}\n"))
        .collect();
    let accept = KeyLab::new("accept-new", &without_web01);
    let run = accept.plan();
    assert_eq!(run.code, 0, "{run:?}");
    // No word about the new key (the stack's firewall warning aside).
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with("warning:") && !l.contains("group `firewall`")),
        "{run:?}"
    );
    let recorded = accept.known();
    assert_eq!(
        recorded.lines().count(),
        without_web01.lines().count() + 1,
        "web-01's key is recorded:\n{recorded}"
    );
    let run = accept.plan();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(accept.known(), recorded, "known again: nothing added");
    // ...but once recorded, a changed key is refused even under accept-new.
    let last = recorded.lines().last().unwrap().to_string();
    let key = last.split_whitespace().nth(2).unwrap();
    let other = shared_before
        .lines()
        .find(|l| l.starts_with("lb-01"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap();
    std::fs::write(&accept.known_hosts, recorded.replace(key, other)).unwrap();
    let run = accept.plan();
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.contains("the host key of web-01 changed"),
        "{run:?}"
    );

    // `false` is read as accept-new, with a warning naming the inventory line.
    let legacy = KeyLab::new("false", &without_web01);
    let run = legacy.plan();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("inventories/lab.yml:")
            && run
                .stderr
                .contains("`strict_host_key_checking: false` is read as `accept-new`"),
        "{run:?}"
    );
    assert_eq!(
        legacy.known().lines().count(),
        without_web01.lines().count() + 1
    );

    assert_eq!(
        shared_known_hosts(),
        shared_before,
        "the shared known_hosts is never changed"
    );
    // The hosts themselves were only read.
    let probe = ssh("web-01", "test -e /tmp/foobar-probe-absent");
    assert_ne!(probe.code, 0);
}

fn sql(host: &str, query: &str) -> String {
    ssh_ok(
        host,
        &format!("mariadb --batch --skip-column-names -e \"{query}\""),
    )
}

/// The statements that must carry a secret (`CHANGE MASTER … MASTER_PASSWORD=`, an account's
/// hash) never reach MariaDB's general or slow query log, even with both logging everything.
#[test]
fn statements_with_secrets_stay_out_of_the_general_and_slow_logs() {
    use common::{APP_DB_PASSWORD, REPLICATION_PASSWORD, foobar};
    let _guard = lab_lock();
    lab(&["reset"]);
    let apply = foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");

    let log_everything = "SET GLOBAL general_log_file='/tmp/foobar-general.log', \
         slow_query_log_file='/tmp/foobar-slow.log', long_query_time=0, \
         general_log=ON, slow_query_log=ON";
    for h in ["web-01", "web-02"] {
        sql(h, log_everything);
    }
    // Make apply issue both kinds again: the app account on the primary (hash), the replica's
    // source (plain password).
    sql("web-01", "DROP USER 'foobar'@'127.%'");
    sql("web-02", "STOP REPLICA; RESET REPLICA ALL");
    let repair = foobar(&["apply", "--yes"]);
    assert_eq!(repair.code, 0, "{repair:?}");
    // Both were issued: the account is back, and the replica follows web-01 again (RESET
    // REPLICA ALL had removed its source).
    assert_eq!(
        sql(
            "web-01",
            "SELECT COUNT(*) FROM mysql.user WHERE User='foobar'"
        )
        .trim(),
        "1"
    );
    let status = ssh_ok("web-02", "mariadb -e 'SHOW REPLICA STATUS\\G'");
    assert!(status.contains("Master_Host: 127.0.1.2"), "{status}");
    for h in ["web-01", "web-02"] {
        sql(
            h,
            "SET GLOBAL general_log=OFF, slow_query_log=OFF, long_query_time=10",
        );
    }

    let hashes = [
        foobar::mysql::mysql_native_password_hash(APP_DB_PASSWORD),
        foobar::mysql::mysql_native_password_hash(REPLICATION_PASSWORD),
    ];
    for h in ["web-01", "web-02"] {
        let general = ssh_ok(h, "cat /tmp/foobar-general.log");
        let slow = ssh_ok(h, "cat /tmp/foobar-slow.log");
        // The logs were on: foobar's facts query (no secret) is in both.
        assert!(
            general.contains("foobar_key"),
            "{h} general log:\n{general}"
        );
        assert!(slow.contains("foobar_key"), "{h} slow log:\n{slow}");
        for (what, text) in [("general", &general), ("slow", &slow)] {
            for s in [REPLICATION_PASSWORD, APP_DB_PASSWORD] {
                assert!(!text.contains(s), "{h} {what} log holds {s}:\n{text}");
            }
            assert!(!text.contains("MASTER_PASSWORD"), "{h} {what} log:\n{text}");
            // On the primary, where foobar sent them, the account statements are not logged
            // either. (The replica's SQL thread applies them from the binary log, hash only,
            // and MariaDB logs what that thread runs: not foobar's session.)
            if h == "web-01" {
                for s in [&hashes[0], &hashes[1]] {
                    assert!(
                        !text.contains(s.as_str()),
                        "{h} {what} log holds {s}:\n{text}"
                    );
                }
                assert!(!text.contains("IDENTIFIED BY"), "{h} {what} log:\n{text}");
            }
        }
    }
}
