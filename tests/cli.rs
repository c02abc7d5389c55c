//! The command line's behaviour on bad input: every problem foobar can find before it connects
//! ends the run with exit code 1 and three lines on stderr,
//!
//! ```text
//! error: <message>
//!   --> <file>:<line>:<column>
//! hint: <hint>
//! ```
//!
//! and nothing is contacted. The fixtures live in tests/fixtures/bad/: `inventories/good.yml`
//! and `playbooks/good.yml` are valid, every other file there is one of them with one mistake.
//! Their hosts point at 127.0.9.9 port 1, and each run gets a fake `ssh` first on PATH that
//! records being called, so a run that got as far as connecting is caught two ways (the record,
//! and exit code 3 instead of 1). `plan` is used because it loads everything before connecting.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use tempfile::TempDir;

const REPLICATION_PASSWORD: &str = "S3cret-Repl-7f3a";
const APP_DB_PASSWORD: &str = "S3cret-App-91bc";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad")
}

/// A directory holding a fake `ssh` that records every call in `ssh-called`.
struct FakeSsh {
    dir: TempDir,
}

impl FakeSsh {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("ssh");
        std::fs::write(
            &script,
            format!(
                r#"#!/bin/sh
echo "ssh $*" >> '{record}'
msg="ssh: connect to host 127.0.9.9 port 1: Connection refused (fake ssh from tests/cli.rs)"
while [ $# -gt 0 ]; do [ "$1" = -E ] && [ $# -gt 1 ] && echo "$msg" > "$2"; shift; done
echo "$msg" >&2
exit 255
"#,
                record = dir.path().join("ssh-called").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        FakeSsh { dir }
    }

    fn path_var(&self) -> std::ffi::OsString {
        let mut paths = vec![self.dir.path().to_path_buf()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        std::env::join_paths(paths).unwrap()
    }

    /// The ssh command lines foobar ran, if any.
    fn calls(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("ssh-called")).ok()
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    ssh_calls: Option<String>,
}

/// `foobar <args>` in tests/fixtures/bad with both secrets set (unless unset) and a fake ssh.
fn foobar(args: &[&str], unset: &[&str]) -> Run {
    let ssh = FakeSsh::new();
    let mut cmd = cargo_bin_cmd!("foobar");
    cmd.current_dir(fixtures())
        .env("PATH", ssh.path_var())
        .env("NO_COLOR", "1")
        .env("FOOBAR_REPLICATION_PASSWORD", REPLICATION_PASSWORD)
        .env("FOOBAR_APP_DB_PASSWORD", APP_DB_PASSWORD)
        .env("FOOBAR_MYSQLD_EXPORTER_PASSWORD", "Zq7-mon-SECRET-e2e")
        .args(args)
        .timeout(std::time::Duration::from_secs(60));
    for var in unset {
        cmd.env_remove(var);
    }
    let output = cmd.output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        ssh_calls: ssh.calls(),
    }
}

/// What one line of the diagnostic must be.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// Exactly this text (after the `error: `, `  --> ` or `hint: ` prefix).
    Is(&'static str),
    /// Not printed at all.
    Absent,
}

struct Case {
    name: &'static str,
    inventory: &'static str,
    playbook: &'static str,
    extra: &'static [&'static str],
    unset: &'static [&'static str],
    error: Want,
    location: Want,
    hint: Want,
}

const GOOD_INV: &str = "inventories/good.yml";
const GOOD_PB: &str = "playbooks/good.yml";

const fn inv(
    name: &'static str,
    inventory: &'static str,
    error: Want,
    location: Want,
    hint: Want,
) -> Case {
    Case {
        name,
        inventory,
        playbook: GOOD_PB,
        extra: &[],
        unset: &[],
        error,
        location,
        hint,
    }
}

const fn pb(
    name: &'static str,
    playbook: &'static str,
    error: Want,
    location: Want,
    hint: Want,
) -> Case {
    Case {
        name,
        inventory: GOOD_INV,
        playbook,
        extra: &[],
        unset: &[],
        error,
        location,
        hint,
    }
}

use Want::{Absent, Is};

/// Diagnostics that are right today, pinned exactly.
const CASES: &[Case] = &[
    inv(
        "unknown key in a host",
        "inventories/unknown_key.yml",
        Is(
            "unknown field `adress`, expected one of address, private_ip, user, port, identity_file, become, connection, vars",
        ),
        Is("inventories/unknown_key.yml:23:5"),
        Is("did you mean `address`?"),
    ),
    inv(
        "wrong type",
        "inventories/wrong_type.yml",
        Is("invalid u16"),
        Is("inventories/wrong_type.yml:24:11"),
        Is("the value at `hosts.web-02.port` does not have the expected type"),
    ),
    inv(
        "group names an unknown host",
        "inventories/group_unknown_host.yml",
        Is("group `web` names unknown host `web-03`"),
        Is("inventories/group_unknown_host.yml:31:29"),
        Is("did you mean `web-02`? hosts are declared under `hosts:`"),
    ),
    inv(
        "cycle in nested groups",
        "inventories/group_cycle.yml",
        Is("groups nest in a cycle: all_db -> databases -> all_db"),
        Is("inventories/group_cycle.yml:39:5"),
        Is("a group may not contain itself, directly or through its children"),
    ),
    inv(
        "two hosts in db_primary",
        "inventories/two_primaries.yml",
        Is("group db_primary has 2 hosts (web-01, web-02); replication has exactly one primary"),
        Is("inventories/two_primaries.yml:33:5"),
        Is("keep one host in db_primary and move the others to db_replica"),
    ),
    inv(
        "db_replica without db_primary",
        "inventories/replica_without_primary.yml",
        Is("db_replica has web-02 but there is no primary to follow"),
        Is("inventories/replica_without_primary.yml:33:5"),
        Is("add the primary's host to a group named db_primary"),
    ),
    inv(
        "duplicate private_ip",
        "inventories/duplicate_private_ip.yml",
        Is("private_ip 10.9.0.11 is used by both web-01 and web-02"),
        Is("inventories/duplicate_private_ip.yml:25:17"),
        Is("each host needs its own private_ip"),
    ),
    pb(
        "missing template",
        "playbooks/missing_template.yml",
        Is("template `nope.conf.j2` not found (looked for playbooks/../templates/nope.conf.j2)"),
        Is("playbooks/missing_template.yml:6:19"),
        Is(
            "templates are read from playbooks/../templates; set `templates_dir:` in the playbook to change it",
        ),
    ),
    pb(
        "undefined variable in a template",
        "playbooks/undefined_var.yml",
        Is("undefined variable 'app_port'"),
        Is("playbooks/../templates/undefined_var.conf.j2:3:9"),
        Is(
            "define it under `vars:` in the inventory: for all hosts, for a group web-01 belongs to, or for web-01 itself (while rendering for host web-01)",
        ),
    ),
    pb(
        "template syntax error",
        "playbooks/template_syntax.yml",
        Is("template syntax error: unexpected `}`, expected end of variable block"),
        Is("playbooks/../templates/syntax_error.conf.j2:3:22"),
        Is(
            "see https://docs.rs/minijinja for the template syntax (while rendering for host (all hosts))",
        ),
    ),
    Case {
        name: "secret env var not set",
        inventory: GOOD_INV,
        playbook: GOOD_PB,
        extra: &[],
        unset: &["FOOBAR_APP_DB_PASSWORD"],
        error: Is(
            "secret `app_db_password` cannot be read: environment variable FOOBAR_APP_DB_PASSWORD is not set",
        ),
        location: Is("inventories/good.yml:14:20"),
        hint: Is("export FOOBAR_APP_DB_PASSWORD=... before running foobar"),
    },
    pb(
        "non-absolute dest",
        "playbooks/relative_dest.yml",
        Is("dest `etc/foobar/site.conf` is not an absolute path"),
        Is("playbooks/relative_dest.yml:7:15"),
        Is("write it from the root, e.g. `/etc/foobar/site.conf`"),
    ),
    Case {
        name: "--limit matches no host",
        inventory: GOOD_INV,
        playbook: GOOD_PB,
        extra: &["--limit", "web-99"],
        unset: &[],
        error: Is("--limit web-99 matches no host"),
        // A command-line argument: there is no file position to show.
        location: Absent,
        hint: Is("did you mean `web`?"),
    },
    pb(
        "notify names an unknown handler",
        "playbooks/unknown_handler.yml",
        Is("`notify` names unknown handler `restart ap`"),
        Is("playbooks/unknown_handler.yml:8:18"),
        Is("did you mean `restart app`?"),
    ),
    pb(
        "after names no earlier play",
        "playbooks/unknown_after.yml",
        Is("play `extra` waits for `sites` (`after:`), which is no earlier play"),
        Is("playbooks/unknown_after.yml:10:13"),
        Is("did you mean `site`?"),
    ),
    inv(
        "YAML syntax error",
        "inventories/yaml_syntax.yml",
        Is("illegal placement of ':' indicator"),
        Is("inventories/yaml_syntax.yml:32:13"),
        Is(
            "YAML syntax error: check for an unclosed `[`, `{` or quote, or bad indentation, just before this point",
        ),
    ),
    inv(
        "duplicate host key",
        "inventories/duplicate_host.yml",
        Is("duplicate key `web-01`"),
        Is("inventories/duplicate_host.yml:28:3"),
        Is("each key may appear once in a mapping; merge or rename the entries"),
    ),
    // The location is the second host's entry: vars keep no positions of their own.
    inv(
        "duplicate server_id",
        "inventories/duplicate_server_id.yml",
        Is("server_id 1 is used by both web-01 and web-02"),
        Is("inventories/duplicate_server_id.yml:23:5"),
        Is("each host needs its own server_id"),
    ),
    pb(
        "dest climbs out with ..",
        "playbooks/dotdot_dest.yml",
        Is("dest `/etc/foobar/../../tmp/site.conf` is not normalized (`..` component)"),
        Is("playbooks/dotdot_dest.yml:7:15"),
        Is(
            "write paths on hosts absolute and normalized, e.g. `/etc/app/app.conf`, without `..`, `//` or control characters",
        ),
    ),
    pb(
        "service name is a shell command",
        "playbooks/hostile_service.yml",
        Is(
            "service `nginx; id > ~/PWNED` is not a systemd unit name (letters, digits and `:-_.\\@`, not starting with `-`)",
        ),
        Is("playbooks/hostile_service.yml:6:15"),
        Is("name a systemd unit as systemctl takes it, e.g. `nginx` or `foobar-app.service`"),
    ),
    // A value made by a template is checked once rendered, at its play.
    pb(
        "handler service renders to a shell command",
        "playbooks/hostile_rendered_service.yml",
        Is(
            "service `foobar-app; id > ~/PWNED` is not a systemd unit name (letters, digits and `:-_.\\@`, not starting with `-`)",
        ),
        Is("playbooks/hostile_rendered_service.yml:3:5"),
        Is("name a systemd unit as systemctl takes it, e.g. `nginx`"),
    ),
    pb(
        "play names an unknown group",
        "playbooks/unknown_group.yml",
        Is("play `site` targets `webservers`, which is no group or host of the inventory"),
        Is("playbooks/unknown_group.yml:4:12"),
        Is("did you mean `web`?"),
    ),
];

fn check(want: Want, got: Option<&str>, what: &str) -> Result<(), String> {
    match (want, got) {
        (Is(w), Some(g)) if w == g => Ok(()),
        (Absent, None) => Ok(()),
        (want, got) => Err(format!("{what}: want {want:?}, got {got:?}")),
    }
}

/// Every way `case` went wrong, or none.
fn failures(case: &Case) -> Vec<String> {
    let mut args = vec!["plan", "-i", case.inventory, "-p", case.playbook];
    args.extend(case.extra);
    let run = foobar(&args, case.unset);
    let mut problems = Vec::new();
    if run.code != Some(1) {
        problems.push(format!("exit code {:?}, want 1", run.code));
    }
    if let Some(calls) = &run.ssh_calls {
        problems.push(format!("it connected:\n{calls}"));
    }
    if !run.stdout.is_empty() {
        problems.push(format!("stdout is not empty:\n{}", run.stdout));
    }
    for secret in [REPLICATION_PASSWORD, APP_DB_PASSWORD] {
        if run.stdout.contains(secret) || run.stderr.contains(secret) {
            problems.push(format!("the output shows the secret {secret:?}"));
        }
    }
    // error, then optionally the location, then optionally the hint, and nothing else.
    let mut lines = run.stderr.lines().peekable();
    let error = lines.next().and_then(|l| l.strip_prefix("error: "));
    let location = lines.next_if(|l| l.starts_with("  --> ")).map(|l| &l[6..]);
    let hint = lines.next_if(|l| l.starts_with("hint: ")).map(|l| &l[6..]);
    let rest: Vec<&str> = lines.collect();
    for r in [
        check(case.error, error, "error"),
        check(case.location, location, "location"),
        check(case.hint, hint, "hint"),
    ] {
        if let Err(e) = r {
            problems.push(e);
        }
    }
    if !rest.is_empty() {
        problems.push(format!("unexpected lines after the diagnostic: {rest:?}"));
    }
    if !problems.is_empty() {
        problems.insert(0, format!("stderr was:\n{}", run.stderr));
    }
    problems
}

fn run_table(cases: &[Case]) {
    let mut report = String::new();
    for case in cases {
        let problems = failures(case);
        if !problems.is_empty() {
            report.push_str(&format!("\n=== {}\n{}\n", case.name, problems.join("\n")));
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn bad_input_fails_before_connecting_with_location_and_hint() {
    run_table(CASES);
}

/// The harness's control: the valid fixtures do get as far as connecting, and that is noticed.
#[test]
fn good_fixtures_reach_the_connect_stage() {
    let run = foobar(&["plan", "-i", GOOD_INV, "-p", GOOD_PB], &[]);
    assert_eq!(
        run.code,
        Some(3),
        "stdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    let calls = run.ssh_calls.expect("the fake ssh was not called");
    assert!(calls.contains("127.0.9.9"), "{calls}");
    assert!(
        run.stdout.contains("cannot connect to web-01 (127.0.9.9)"),
        "{}",
        run.stdout
    );
}

#[test]
fn plan_help_exits_zero() {
    let run = foobar(&["plan", "--help"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("Usage: foobar plan"), "{}", run.stdout);
    assert!(run.stdout.contains("--detailed-exitcode"), "{}", run.stdout);
    assert!(run.ssh_calls.is_none());
}

#[test]
fn render_output_contains_no_secret() {
    let out = tempfile::tempdir().unwrap();
    let out_arg = out.path().to_str().unwrap();
    let run = foobar(
        &["render", "-i", GOOD_INV, "-p", GOOD_PB, "--out", out_arg],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.ssh_calls.is_none(), "render must not connect");
    let mut files = Vec::new();
    let mut stack = vec![out.path().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(out.path()).unwrap().display().to_string())
        .collect();
    assert_eq!(
        names,
        ["web-01/etc/foobar/site.conf", "web-02/etc/foobar/site.conf"]
    );
    for (what, text) in files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read_to_string(f).unwrap()))
        .chain([
            ("stdout".to_string(), run.stdout.clone()),
            ("stderr".to_string(), run.stderr.clone()),
        ])
    {
        for secret in [REPLICATION_PASSWORD, APP_DB_PASSWORD] {
            assert!(
                !text.contains(secret),
                "{what} shows the secret {secret:?}:\n{text}"
            );
        }
    }
    // The template does use the secret: it is there, as its placeholder.
    let site = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        site.contains("password <secret:app_db_password>\n"),
        "{site}"
    );
}

/// Backup commands refuse bad input with one error and exit 1 before contacting any host:
/// no `backups:` section, a target that is neither time nor GTID, the live primary as the
/// restore's destination without `--over-live-primary`, a scratch directory over live data.
#[test]
fn backup_commands_refuse_bad_input_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    let good = fixtures().join("inventories/good.yml");
    let with_backups = dir.path().join("backups.yml");
    let text = std::fs::read_to_string(&good).unwrap().replacen(
        "secrets:\n",
        "secrets:\n  binlog_archive_password: { env: FOOBAR_REPLICATION_PASSWORD }\n",
        1,
    ) + "\nbackups: {}\n";
    std::fs::write(&with_backups, text).unwrap();
    let good = good.to_str().unwrap();
    let backups = with_backups.to_str().unwrap();
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["backup", "now", "-i", good],
            "has no `backups:` section: no backups are configured",
            "add `backups: {}`",
        ),
        (
            &["backups", "list", "-i", good],
            "has no `backups:` section",
            "then run `foobar apply`",
        ),
        (
            &["restore", "--to", "0-1-5", "-i", good],
            "has no `backups:` section",
            "binlog_archive_password",
        ),
        (
            &["restore", "--to", "last tuesday", "-i", backups],
            "`last tuesday` is neither a time nor a GTID",
            "or a GTID such as `0-1-42`",
        ),
        (
            &[
                "restore", "--to", "0-1-5", "--into", "web-01", "-i", backups,
            ],
            "web-01 is the live primary",
            "--over-live-primary",
        ),
        (
            &[
                "restore",
                "--to",
                "0-1-5",
                "--dir",
                "/var/lib/mysql/x",
                "-i",
                backups,
            ],
            "--dir /var/lib/mysql/x is (inside) /var/lib/mysql",
            "name a new directory",
        ),
        (
            &["backup", "now", "--host", "web-01", "-i", backups],
            "web-01 does not take backups: backups.host is web-02",
            "or leave out --host",
        ),
    ];
    for (args, error, hint) in cases {
        let run = foobar(args, &[]);
        let what = format!(
            "foobar {args:?}\nstdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        assert_eq!(run.code, Some(1), "{what}");
        assert!(run.stderr.contains(error), "{what}");
        assert!(
            run.stderr.contains("hint: ") && run.stderr.contains(hint),
            "{what}"
        );
        assert_eq!(run.stderr.matches("error:").count(), 1, "{what}");
        assert!(run.ssh_calls.is_none(), "contacted a host: {what}");
    }
}
