//! The command line's behaviour on bad input: every problem foobar can find before it connects
//! ends the run with exit code 1 and a diagnostic on stderr,
//!
//! ```text
//! error: <message>
//!   --> <file>:<line>:<column>
//!    |
//! 24 |     the line
//!    |     ^^^^ (a code frame, when the error has a line)
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

// The library's shape comparison, shared (its `example` is for the unit tests).
#[allow(dead_code)]
#[path = "../src/report/json_shape.rs"]
mod json_shape;

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

#[derive(Debug)]
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
        Is("expected a TCP port, a whole number from 1 to 65535"),
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
        // The `children:` entry that closes the cycle.
        Is("inventories/group_cycle.yml:37:40"),
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
        "misspelt variable in a template",
        "playbooks/misspelt_var.yml",
        Is("undefined variable 'domian'"),
        Is("playbooks/../templates/misspelt_var.conf.j2:1:6"),
        Is(
            "did you mean `domain`? Otherwise define it under `vars:` in the inventory: for all hosts, for a group web-01 belongs to, or for web-01 itself (while rendering for host web-01)",
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
    // Vars keep no positions of their own: the value is found in the second host's block.
    inv(
        "duplicate server_id",
        "inventories/duplicate_server_id.yml",
        Is("server_id 1 is used by both web-01 and web-02"),
        Is("inventories/duplicate_server_id.yml:27:18"),
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
    inv(
        "server_id is a word",
        "inventories/server_id_word.yml",
        Is("server_id of web-02 is \"two\", not a positive number"),
        // The value's line, not the host's first key.
        Is("inventories/server_id_word.yml:27:18"),
        Is("server_id is a whole number from 1 to 4294967295, unique per database host"),
    ),
    inv(
        "a tab indents a key",
        "inventories/tab.yml",
        Is("a tab character: YAML indents with spaces only"),
        // The tab itself, not the end of the line before.
        Is("inventories/tab.yml:24:1"),
        Is("replace the tab with spaces"),
    ),
    inv(
        "a group among its own children",
        "inventories/self_cycle.yml",
        Is("groups nest in a cycle: web -> web"),
        Is("inventories/self_cycle.yml:32:16"),
        Is("a group may not contain itself, directly or through its children"),
    ),
    inv(
        "hosts of a group is not a list",
        "inventories/hosts_not_a_list.yml",
        Is("expected a list at `groups.db_primary.hosts`"),
        Is("inventories/hosts_not_a_list.yml:33:12"),
        Is(
            "write a list, `[a, b]` or one `- item` per line; a single item is a list of one: `[a]`",
        ),
    ),
    inv(
        "a value outside its choices",
        "inventories/unknown_variant.yml",
        Is("`hosts.web-02.connection` is `sshh`, which is not one of `ssh`, `local`"),
        Is("inventories/unknown_variant.yml:25:17"),
        Is("did you mean `ssh`?"),
    ),
    inv(
        "an alias with no anchor",
        "inventories/unknown_alias.yml",
        Is("`*replicas` refers to no anchor: nothing before it is marked `&replicas`"),
        Is("inventories/unknown_alias.yml:35:12"),
        Is("mark the value to reuse with `&replicas` before this line, or write the value here"),
    ),
    inv(
        "an alias bomb",
        "inventories/alias_bomb.yml",
        Is(
            "this YAML expands beyond foobar's budget (too many nodes, aliases or levels): aliases (`*name`) that repeat anchors which repeat others grow exponentially",
        ),
        Is("inventories/alias_bomb.yml:15:27"),
        Is(
            "write the values out, or reuse fewer levels of anchors; an inventory needs no more than a few thousand values",
        ),
    ),
    inv(
        "an empty inventory",
        "inventories/empty.yml",
        Is("inventories/empty.yml holds no YAML document: it is empty or only comments"),
        Is("inventories/empty.yml"),
        Is("see docs/reference/inventory.md and docs/reference/playbook.md for what goes in it"),
    ),
    pb(
        "a play's packages is not a list",
        "playbooks/packages_not_a_list.yml",
        // The play by its name, not `plays[1]`.
        Is("expected a list at `packages` of play `tools`"),
        Is("playbooks/packages_not_a_list.yml:10:15"),
        Is(
            "write a list, `[a, b]` or one `- item` per line; a single item is a list of one: `[a]`",
        ),
    ),
    pb(
        "misspelt filter",
        "playbooks/unknown_filter.yml",
        Is("unknown filter `uppper`"),
        Is("playbooks/../templates/unknown_filter.conf.j2:1:25"),
        Is("did you mean `upper`? (while rendering for host web-01)"),
    ),
    pb(
        "a group the inventory does not have, looked up in a template",
        "playbooks/unknown_group_lookup.yml",
        Is("`groups` has no `webservers`"),
        Is("playbooks/../templates/unknown_group_lookup.conf.j2:1:12"),
        Is(
            "check the name looked up in `groups` (a group of the inventory) (while rendering for host web-01)",
        ),
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
    // rustc's layout: `-->` indented by the width of the frame's line numbers.
    let location = lines
        .next_if(|l| l.trim_start().starts_with("--> "))
        .map(|l| &l.trim_start()[4..]);
    // A location with a line number is followed by a code frame of that line.
    let mut frame = Vec::new();
    while let Some(l) = lines.next_if(|l| is_frame_line(l)) {
        frame.push(l);
    }
    if location.is_some_and(|l| l.matches(':').count() >= 2) && frame.len() < 3 {
        problems.push(format!("no code frame under the location: {frame:?}"));
    }
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

/// `   |`, `24 |     port: abc`, `   |           ^`: annotate-snippets' frame lines.
fn is_frame_line(l: &str) -> bool {
    let t = l.trim_start();
    t.starts_with('|')
        || t.split_once(" |")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
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
    // No host in group `firewall`: said on stderr, before any connection.
    assert!(
        run.stderr
            .contains("warning: no host is in group `firewall`: Prometheus, the exporters"),
        "{}",
        run.stderr
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
            } else if !path.ends_with(".foobar-render") {
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

// ---------------------------------------------------------------------------------------
// The automation contract: exit codes, JSON errors, saved plans, --limit
// patterns, group_vars/host_vars, fail-fast connecting.

/// `foobar <args>` in `dir`, real `ssh`, no secrets needed by the fixtures used here.
fn foobar_in(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = cargo_bin_cmd!("foobar");
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FOOBAR_INVENTORY")
        .env_remove("FOOBAR_PLAYBOOK")
        .env("FOOBAR_REPLICATION_PASSWORD", REPLICATION_PASSWORD)
        .env("FOOBAR_APP_DB_PASSWORD", APP_DB_PASSWORD)
        .args(args)
        .timeout(std::time::Duration::from_secs(60));
    let output = cmd.output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        ssh_calls: None,
    }
}

#[test]
fn usage_errors_exit_1_help_and_version_exit_0() {
    let typo = foobar(&["plan", "--detailed-exitcod"], &[]);
    assert_eq!(typo.code, Some(1), "{}", typo.stderr);
    assert!(
        typo.stderr
            .contains("a similar argument exists: '--detailed-exitcode'"),
        "{}",
        typo.stderr
    );
    assert_eq!(foobar(&["--version"], &[]).code, Some(0));
    assert_eq!(foobar(&["apply", "--help"], &[]).code, Some(0));
    assert_eq!(foobar(&[], &[]).code, Some(1));
}

#[test]
fn json_errors_are_a_document_on_stdout() {
    let run = foobar(
        &[
            "plan", "-i", GOOD_INV, "-p", GOOD_PB, "--json", "-l", "web-99",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    insta::assert_snapshot!("json_error_limit", run.stdout);
    let located = foobar(
        &[
            "plan",
            "-i",
            "inventories/wrong_type.yml",
            "-p",
            GOOD_PB,
            "--json",
        ],
        &[],
    );
    assert_eq!(located.code, Some(1));
    insta::assert_snapshot!("json_error_located", located.stdout);
    let usage = foobar(&["plan", "--json", "--detailed-exitcod"], &[]);
    assert_eq!(usage.code, Some(1));
    insta::assert_snapshot!("json_error_usage", usage.stdout);
}

/// The whole diagnostic, code frame included, exactly.
#[test]
fn errors_show_a_code_frame() {
    let run = foobar(
        &["plan", "-i", "inventories/unknown_key.yml", "-p", GOOD_PB],
        &[],
    );
    assert_eq!(run.code, Some(1));
    insta::assert_snapshot!("code_frame_unknown_key", run.stderr);
    let run = foobar(
        &["plan", "-i", GOOD_INV, "-p", "playbooks/undefined_var.yml"],
        &[],
    );
    assert_eq!(run.code, Some(1));
    insta::assert_snapshot!("code_frame_template", run.stderr);
}

/// One run reports every problem it can find in one pass: the playbook, each --limit
/// pattern, each secret.
#[test]
fn every_error_of_one_pass_is_reported() {
    let args = [
        "plan",
        "-i",
        GOOD_INV,
        "-p",
        "playbooks/unknown_handler.yml",
        "-l",
        "web-99,!wbe-01",
    ];
    let unset = ["FOOBAR_REPLICATION_PASSWORD", "FOOBAR_APP_DB_PASSWORD"];
    let run = foobar(&args, &unset);
    assert_eq!(run.code, Some(1));
    assert!(run.ssh_calls.is_none());
    insta::assert_snapshot!("five_errors_at_once", run.stderr);
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let run = foobar(&json_args, &unset);
    assert_eq!(run.code, Some(1));
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(doc["errors"].as_array().unwrap().len(), 5, "{doc}");
    assert_eq!(doc["error"], doc["errors"][0], "{doc}");
}

/// Which hosts a `--limit` selects, seen through `render --json` (no connection).
const LIMITS: &[(&str, &[&str])] = &[
    ("all", &["web-01", "web-02"]),
    ("*", &["web-01", "web-02"]),
    ("all,!web-02", &["web-01"]),
    ("!web-01", &["web-02"]),
    ("web,&db_replica", &["web-02"]),
    ("&databases,!db_primary", &["web-02"]),
    ("web-01,web-02,!databases", &[]),
];

#[test]
fn limit_patterns_select_as_in_ansible() {
    let mut report = String::new();
    for (limit, want) in LIMITS {
        let out = tempfile::tempdir().unwrap();
        let run = foobar(
            &[
                "render",
                "-i",
                GOOD_INV,
                "-p",
                GOOD_PB,
                "--json",
                "--out",
                out.path().to_str().unwrap(),
                "--limit",
                limit,
            ],
            &[],
        );
        let doc: serde_json::Value = match serde_json::from_str(&run.stdout) {
            Ok(d) => d,
            Err(e) => {
                report.push_str(&format!("\n{limit}: {e}: {} {}", run.stdout, run.stderr));
                continue;
            }
        };
        let got: Vec<&str> = doc["hosts"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        if got != *want {
            report.push_str(&format!("\n--limit {limit}: want {want:?}, got {got:?}"));
        }
    }
    assert!(report.is_empty(), "{report}");
}

#[test]
fn limit_exclusion_of_an_unknown_name_says_did_you_mean() {
    let run = foobar(
        &[
            "plan",
            "-i",
            GOOD_INV,
            "-p",
            GOOD_PB,
            "--limit",
            "all,!web-3",
        ],
        &[],
    );
    assert_eq!(run.code, Some(1));
    insta::assert_snapshot!("limit_unknown_exclusion", run.stderr);
}

/// A project directory for tests that need files of their own.
struct Project {
    dir: TempDir,
}

impl Project {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text.replace("@DIR@", dir.path().to_str().unwrap())).unwrap();
        }
        Project { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn run(&self, args: &[&str]) -> Run {
        foobar_in(self.path(), args)
    }
}

const VARS_INVENTORY: &str = "\
vars:
  greeting: inline-global
  colour: inline-global
hosts:
  web-01:
    connection: local
    vars:
      size: inline-host
  web-02:
    connection: local
groups:
  web:
    hosts: [web-01, web-02]
    vars:
      colour: inline-group
";
const VARS_PLAYBOOK: &str = "\
plays:
  - name: site
    hosts: all
    files:
      - template: vars.j2
        dest: /etc/foobar/vars.conf
";

#[test]
fn group_vars_and_host_vars_files_beside_the_inventory() {
    let p = Project::new(&[
        ("inventories/site.yml", VARS_INVENTORY),
        ("inventories/group_vars/all.yml", "greeting: file-all\n"),
        (
            "inventories/group_vars/web.yml",
            "colour: file-web\nsize: file-web\n",
        ),
        ("inventories/host_vars/web-02.yml", "size: file-host\n"),
        ("playbooks/site.yml", VARS_PLAYBOOK),
        (
            "templates/vars.j2",
            "{{ greeting }} {{ colour }} {{ size }}\n",
        ),
    ]);
    let run = p.run(&[
        "render",
        "--json",
        "--out",
        "out",
        "-i",
        "inventories/site.yml",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let content = |h: &str| doc["hosts"][h][0]["content"].as_str().unwrap().to_string();
    // A file adds to (and wins over) the inline vars of its level; levels keep their order.
    assert_eq!(content("web-01"), "file-all file-web inline-host\n");
    assert_eq!(content("web-02"), "file-all file-web file-host\n");
}

/// One bad variables file beside the VARS project: the error names that file.
const BAD_VAR_FILES: &[(&str, &str, &str)] = &[
    (
        "group_vars_unknown_group",
        "inventories/group_vars/webs.yml",
        "colour: x\n",
    ),
    (
        "host_vars_duplicate_key",
        "inventories/host_vars/web-01.yml",
        "size: 1\nsize: 2\n",
    ),
];

#[test]
fn var_files_errors_name_their_own_file() {
    for (snapshot, path, text) in BAD_VAR_FILES {
        let p = Project::new(&[
            ("inventories/site.yml", VARS_INVENTORY),
            (path, text),
            ("playbooks/site.yml", VARS_PLAYBOOK),
            ("templates/vars.j2", "{{ colour }}\n"),
        ]);
        let run = p.run(&["plan", "-i", "inventories/site.yml"]);
        assert_eq!(run.code, Some(1), "{snapshot}");
        insta::assert_snapshot!(*snapshot, run.stderr);
    }
}

#[test]
fn inventory_from_env_and_foobar_toml() {
    let p = Project::new(&[
        ("deploy/inv.yml", VARS_INVENTORY),
        ("deploy/book.yml", VARS_PLAYBOOK),
        ("templates/vars.j2", "{{ colour }}\n"),
        (
            "foobar.toml",
            "inventory = \"deploy/inv.yml\"\nplaybook = \"deploy/book.yml\"\n",
        ),
        ("sub/dir/.keep", ""),
    ]);
    // deploy/book.yml reads templates from deploy/../templates.
    let run = foobar_in(
        &p.path().join("sub/dir"),
        &["render", "--json", "--out", "o"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("\"web-02\""), "{}", run.stdout);

    let mut cmd = cargo_bin_cmd!("foobar");
    let out = cmd
        .current_dir(p.path())
        .env("FOOBAR_INVENTORY", "nope.yml")
        .args(["render", "--out", "o"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read nope.yml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A project whose one play writes under its own directory, on two `connection: local`
/// hosts: `plan` really gathers (locally) and changes nothing.
fn local_project() -> Project {
    Project::new(&[
        (
            "inventories/site.yml",
            "hosts:\n  web-01:\n    connection: local\n  web-02:\n    connection: local\ngroups:\n  web:\n    hosts: [web-01, web-02]\n",
        ),
        (
            "inventories/other.yml",
            "hosts:\n  web-01:\n    connection: local\n",
        ),
        (
            "playbooks/site.yml",
            "plays:\n  - name: site\n    hosts: web\n    files:\n      - template: a.j2\n        dest: \"@DIR@/live/{{ inventory_hostname }}.conf\"\n",
        ),
        ("templates/a.j2", "hello {{ inventory_hostname }}\n"),
    ])
}

/// `apply` on the local hosts of a [`local_project`]: `connection: local` hosts share this
/// machine's one host lock, so two at once (tests run in parallel, and other checkouts on
/// the machine) would refuse each other. One at a time here, and again while another run
/// holds it.
fn local_apply(p: &Project, args: &[&str]) -> Run {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..40 {
        let run = p.run(args);
        if !(run.stdout.contains("locked by another run")
            || run.stderr.contains("locked by another run"))
        {
            return run;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    p.run(args)
}

#[test]
fn saved_plans_are_self_contained() {
    use std::os::unix::fs::PermissionsExt;
    let p = local_project();
    let inv = ["-i", "inventories/site.yml"];
    let planned = p.run(&["plan", inv[0], inv[1], "--out", "saved.json"]);
    assert_eq!(planned.code, Some(0), "{planned:?}");
    let mode = std::fs::metadata(p.path().join("saved.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // show: the plan as `plan` prints it, and as JSON with its summary.
    let show = p.run(&["show", "saved.json"]);
    assert_eq!(show.code, Some(0), "{show:?}");
    assert!(
        show.stdout.contains("+ create file ") && show.stdout.contains("on 2 hosts."),
        "{}",
        show.stdout
    );
    let show_json = p.run(&["show", "saved.json", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&show_json.stdout).unwrap();
    assert_eq!(doc["summary"]["create"], 2, "{doc}");
    assert_eq!(doc["summary"]["hosts"], 2, "{doc}");

    let dir = p.path().display().to_string();
    let plain = |r: &Run| r.stderr.replace(&dir, "DIR");
    // Another inventory, given explicitly: refused, naming both.
    let other = p.run(&[
        "apply",
        "saved.json",
        "--yes",
        "-i",
        "inventories/other.yml",
    ]);
    assert_eq!(other.code, Some(1), "{other:?}");
    insta::assert_snapshot!("saved_plan_other_inventory", plain(&other));
    // A --limit that leaves out a host the plan changes: refused.
    let limited = p.run(&["apply", "saved.json", "--yes", "-i", inv[1], "-l", "web-01"]);
    assert_eq!(limited.code, Some(1), "{limited:?}");
    insta::assert_snapshot!("saved_plan_host_not_selected", plain(&limited));
    // From another directory, without -i: the plan's own inventory is used (the refusal
    // names its hosts, so it was read), not the default path.
    let elsewhere = foobar_in(
        std::env::temp_dir().as_path(),
        &[
            "apply",
            p.path().join("saved.json").to_str().unwrap(),
            "--yes",
            "-l",
            "web-02",
        ],
    );
    assert_eq!(elsewhere.code, Some(1), "{elsewhere:?}");
    assert!(
        elsewhere
            .stderr
            .contains("the plan changes web-01, which this run does not select"),
        "{elsewhere:?}"
    );
    // The inventory changed since (even in a way that renders the same): refused.
    let inv_path = p.path().join("inventories/site.yml");
    let text = std::fs::read_to_string(&inv_path).unwrap();
    std::fs::write(&inv_path, format!("# edited\n{text}")).unwrap();
    let changed = p.run(&["apply", "saved.json", "--yes"]);
    assert_eq!(changed.code, Some(1), "{changed:?}");
    insta::assert_snapshot!("saved_plan_inventory_changed", plain(&changed));
    // Nothing was applied by any of these.
    assert!(!p.path().join("live").exists());
}

#[test]
fn a_plan_with_no_plannable_host_is_not_saved() {
    let out = tempfile::tempdir().unwrap();
    let saved = out.path().join("saved.json");
    let run = foobar(
        &[
            "plan",
            "-i",
            GOOD_INV,
            "-p",
            GOOD_PB,
            "--out",
            saved.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(!saved.exists());
    assert!(
        run.stderr.contains("error: no plan saved to ")
            && run.stderr.contains(": no host could be planned"),
        "{}",
        run.stderr
    );
}

/// Hosts whose port accepts TCP connections but never answers (a listener that never
/// accepts, on 127.0.0.1): every connection attempt costs the full connect_timeout.
#[test]
fn unreachable_hosts_cost_one_connect_timeout() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let inventory = format!(
        "ssh:\n  user: nobody\n  port: {port}\n  strict_host_key_checking: accept-new\n  connect_timeout: 2\n  control_persist: 0\nhosts:\n  lb-01:\n    address: 127.0.0.1\n  web-01:\n    address: 127.0.0.1\n    private_ip: 127.0.0.2\n  web-02:\n    address: 127.0.0.1\n    private_ip: 127.0.0.3\ngroups:\n  loadbalancer:\n    hosts: [lb-01]\n  web:\n    hosts: [web-01, web-02]\n"
    );
    let p = Project::new(&[
        ("inventories/site.yml", &inventory),
        (
            "playbooks/site.yml",
            "plays:\n  - name: site\n    hosts: web\n    serial: 1\n    files:\n      - template: a.j2\n        dest: /etc/foobar/a.conf\n",
        ),
        ("templates/a.j2", "x\n"),
    ]);
    // --limit web leaves the load balancer out: the rolling play still needs it, and it is
    // connected in the same batch, not after.
    let started = std::time::Instant::now();
    let run = p.run(&["plan", "-i", "inventories/site.yml", "--limit", "web"]);
    let took = started.elapsed();
    drop(listener);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stdout
            .contains("web-01:\n  cannot plan: cannot connect to web-01"),
        "{}",
        run.stdout
    );
    assert!(
        took < std::time::Duration::from_millis(3000),
        "took {took:?} with connect_timeout 2 s"
    );
}

/// A host verify cannot reach (a loopback address where nothing listens on port 1): the
/// failed `reachable` check carries the transport error's hint, in the human report and in
/// the JSON document.
#[test]
fn a_failing_verify_shows_a_hint_in_human_and_json_output() {
    let inventory = "ssh:\n  user: nobody\n  port: 1\n  strict_host_key_checking: accept-new\n  connect_timeout: 2\n  control_persist: 0\nhosts:\n  web-01:\n    address: 127.0.1.250\ngroups:\n  web:\n    hosts: [web-01]\n";
    let p = Project::new(&[
        ("inventories/site.yml", inventory),
        (
            "playbooks/site.yml",
            "plays:\n  - name: site\n    hosts: web\n    files:\n      - template: a.j2\n        dest: /etc/foobar/a.conf\n",
        ),
        ("templates/a.j2", "x\n"),
    ]);
    let human = p.run(&["verify", "-i", "inventories/site.yml"]);
    assert_eq!(human.code, Some(3), "{human:?}");
    assert!(
        human.stdout.contains("cannot connect to web-01"),
        "{human:?}"
    );
    assert!(
        human
            .stdout
            .contains("hint: check that web-01 is up and that `ssh` to it works"),
        "{human:?}"
    );
    let json = p.run(&["verify", "-i", "inventories/site.yml", "--json"]);
    assert_eq!(json.code, Some(3), "{json:?}");
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).expect("one JSON document");
    let check = &doc["hosts"]["web-01"]["checks"][0];
    assert_eq!(check["name"], "reachable", "{doc}");
    assert_eq!(check["ok"], false, "{doc}");
    assert!(
        check["hint"]
            .as_str()
            .is_some_and(|h| h.starts_with("check that web-01 is up")),
        "{doc}"
    );
}

/// The examples in docs/json.md, by the word after ```json.
fn documented_examples() -> std::collections::BTreeMap<String, serde_json::Value> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json.md"))
        .unwrap();
    let mut out = std::collections::BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(name) = line.strip_prefix("```json ") {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            let value = serde_json::from_str(&body.join("\n"))
                .unwrap_or_else(|e| panic!("docs/json.md example `{name}`: {e}"));
            out.insert(name.to_string(), value);
        }
    }
    out
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every documented example has the shape the command prints, at every level: run on local
/// hosts for plan, show, apply, render, audit and an error. The example plan without its
/// `summary` is a saved plan `show` accepts.
#[test]
fn json_documents_match_docs_json_md() {
    let docs = documented_examples();
    for name in ["error", "plan", "apply", "verify", "render", "audit"] {
        assert!(
            docs.contains_key(name),
            "docs/json.md has no `{name}` example"
        );
    }
    let p = local_project();
    let inv = "inventories/site.yml";
    let real = [
        (
            "plan",
            p.run(&["plan", "--json", "-i", inv, "--out", "s.json"]),
        ),
        ("plan", p.run(&["show", "s.json", "--json"])),
        (
            "render",
            p.run(&["render", "--json", "--out", "o", "-i", inv]),
        ),
        ("error", p.run(&["plan", "--json", "-i", inv, "-l", "nope"])),
        (
            "apply",
            local_apply(&p, &["apply", "--json", "--yes", "-i", inv]),
        ),
        (
            "audit",
            foobar(&["audit", "--json", "-i", GOOD_INV, "-p", GOOD_PB], &[]),
        ),
    ];
    let mut report = Vec::new();
    for (name, run) in real {
        let got: serde_json::Value =
            serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{name}: {e}: {run:?}"));
        for d in json_shape::shape_differences(&docs[name], &got) {
            report.push(format!("{name}: {d}"));
        }
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    // verify needs the stack: its example is held to the types' field names here and by the
    // e2e tests' JSON runs.
    assert_eq!(
        keys(&docs["verify"]["summary"]),
        ["checks", "failed_checks", "healthy_hosts", "hosts"]
    );
    // A saved plan is the plan document without `summary`: the example is one.
    let mut saved = docs["plan"].clone();
    saved.as_object_mut().unwrap().remove("summary");
    std::fs::write(p.path().join("documented.json"), saved.to_string()).unwrap();
    let show = p.run(&["show", "documented.json"]);
    assert_eq!(show.code, Some(0), "{show:?}");
    assert!(
        show.stdout
            .contains("+ create file /srv/deploy/live/a.conf"),
        "{show:?}"
    );
}

/// One page: every command's synopsis and options, no `foobar-plan(1)` pages that nothing
/// makes, and the exit codes of every command.
#[test]
fn man_page_lists_every_command() {
    let run = foobar(&["man"], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with(".ie") || run.stdout.starts_with(".TH"),
        "{}",
        &run.stdout[..80.min(run.stdout.len())]
    );
    let exit = &run.stdout[run
        .stdout
        .find(".SH \"EXIT STATUS\"")
        .expect("no EXIT STATUS")..];
    for path in command_paths() {
        let name = path.join(" ");
        assert!(
            run.stdout.contains(&format!(".SS \"foobar {name}\"")),
            "{name} missing from the man page"
        );
        assert!(
            exit.contains(&format!(".B foobar {name}\n")),
            "{name} missing from EXIT STATUS"
        );
    }
    // Every page it names exists: `man --dir` writes them, `man COMMAND` prints each.
    let dir = tempfile::tempdir().unwrap();
    let written = foobar(&["man", "--dir", dir.path().to_str().unwrap()], &[]);
    assert_eq!(written.code, Some(0), "{written:?}");
    let see_also = &run.stdout[run.stdout.find(".SH \"SEE ALSO\"").expect("no SEE ALSO")..];
    for path in command_paths() {
        let page = format!("foobar-{}", path.join("-"));
        assert!(
            see_also.contains(&format!(".BR {} (1)", page.replace('-', "\\-"))),
            "{page}(1) not in SEE ALSO"
        );
        let file = std::fs::read_to_string(dir.path().join(format!("{page}.1")))
            .unwrap_or_else(|_| panic!("{page}.1 not written"));
        assert!(
            file.contains(".SH OPTIONS") && file.contains(".SH \"EXIT STATUS\""),
            "{page}"
        );
        let mut args = vec!["man"];
        args.extend(path.iter().map(String::as_str));
        let printed = foobar(&args, &[]);
        assert_eq!(printed.stdout, file, "foobar man {}", path.join(" "));
    }
    let plan = std::fs::read_to_string(dir.path().join("foobar-plan.1")).unwrap();
    assert!(
        plan.contains(".SH EXAMPLES") && plan.contains("foobar plan \\-\\-detailed\\-exitcode"),
        "{plan}"
    );
    assert!(
        plan.contains(".TP\n2\nchanges, with \\-\\-detailed\\-exitcode"),
        "{plan}"
    );
    let bad = foobar(&["man", "plna"], &[]);
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(
        bad.stderr.contains("`plna` is not a foobar command"),
        "{bad:?}"
    );
}

/// Every command has a row in the exit-code table, and what commands return is in it: run
/// here on a project of local hosts for each code a command can give without real hosts.
#[test]
fn exit_codes_are_the_documented_ones() {
    let table: std::collections::BTreeMap<&str, Vec<i32>> = foobar::error::EXIT_CODES
        .iter()
        .map(|(c, codes)| (*c, codes.iter().map(|(n, _)| *n).collect()))
        .collect();
    for path in command_paths() {
        assert!(
            table.contains_key(path.join(" ").as_str()),
            "{} has no row in EXIT_CODES",
            path.join(" ")
        );
    }
    let p = local_project();
    let inv = "inventories/site.yml";
    let runs: &[(&str, &[&str], i32)] = &[
        ("render", &["render", "-i", inv, "--out", "o"], 0),
        ("plan", &["plan", "-i", inv], 0),
        ("plan", &["plan", "-i", inv, "--detailed-exitcode"], 2),
        ("plan", &["plan", "-i", inv, "--out", "saved.json"], 0),
        ("show", &["show", "saved.json"], 0),
        ("apply", &["apply", "-i", inv, "--dry-run"], 0),
        ("graph", &["graph", "-i", inv], 0),
        ("plan", &["plan", "-i", inv, "--no-such-flag"], 1),
        (
            "render",
            &["render", "-i", inv, "--out", "o", "--forks", "2"],
            1,
        ),
        ("man", &["man"], 0),
        ("completions", &["completions", "bash"], 0),
    ];
    for (command, args, want) in runs {
        let run = if *command == "apply" {
            local_apply(&p, args)
        } else {
            p.run(args)
        };
        assert_eq!(run.code, Some(*want), "foobar {args:?}: {run:?}");
        assert!(
            *want == 1 || table[command].contains(want),
            "foobar {args:?} exits {want}, which EXIT_CODES does not list for {command}"
        );
    }
    // audit's findings: 2, as documented, and 0 with them below --fail-on.
    let audit = foobar(
        &["audit", "-i", GOOD_INV, "-p", GOOD_PB, "--fail-on", "low"],
        &[],
    );
    assert_eq!(audit.code, Some(2), "{audit:?}");
    assert!(table["audit"].contains(&2));
    let audit = foobar(
        &[
            "audit",
            "-i",
            GOOD_INV,
            "-p",
            GOOD_PB,
            "--fail-on",
            "critical",
        ],
        &[],
    );
    assert_eq!(audit.code, Some(0), "{audit:?}");
}

/// A ProxyJump that fails: OpenSSH's own reason from the jump (here `Connection refused` on a
/// loopback port where nothing listens) reaches the user, not only the master's
/// `kex_exchange_identification: Connection closed`.
#[test]
fn a_failed_proxy_jump_shows_openssh_s_own_reason() {
    let p = Project::new(&[
        (
            "inventories/ssh_config",
            "Host target\n  HostName 127.0.0.1\n  User nobody\n  ProxyJump nobody@127.0.0.1:1\n",
        ),
        (
            "inventories/site.yml",
            "ssh:\n  ssh_config: ssh_config\n  connect_timeout: 2\n  control_persist: 0\n  strict_host_key_checking: accept-new\nhosts:\n  target: {}\n",
        ),
        (
            "playbooks/site.yml",
            "plays:\n  - name: s\n    hosts: all\n    files:\n      - template: t.j2\n        dest: /etc/foobar/t.conf\n",
        ),
        ("templates/t.j2", "x\n"),
    ]);
    let run = p.run(&["plan", "-i", "inventories/site.yml", "-q"]);
    assert_eq!(run.code, Some(3), "{run:?}");
    assert!(
        run.stderr.is_empty(),
        "-q prints no progress: {}",
        run.stderr
    );
    assert!(
        run.stdout
            .contains("connect to host 127.0.0.1 port 1: Connection refused"),
        "{}",
        run.stdout
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

/// An inventory of one host whose `hosts.web-01` entry ends with `extra` lines (indented four
/// spaces) and whose `ssh:` section holds `ssh` lines (indented two).
fn login_inventory(ssh: &str, host: &str) -> String {
    format!(
        "ssh:\n  connect_timeout: 2\n{ssh}hosts:\n  web-01:\n{host}    private_ip: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n"
    )
}

const LOGIN_PLAYBOOK: &str = "plays:\n  - name: site\n    hosts: web\n    files:\n      - template: t.j2\n        dest: /etc/foobar/t.conf\n";

/// How ssh reaches a host, refused at load (file:line, code frame, hint) before anything
/// connects: each with its whole diagnostic. `ssh://-oProxyCommand=...` used to pass the
/// leading-dash check and reach ssh as an option.
const BAD_LOGINS: &[(&str, &str, &str)] = &[
    (
        "login_address_uri_option",
        "",
        "    address: \"ssh://-oProxyCommand=touch PWNED\"\n",
    ),
    (
        "login_address_uri",
        "",
        "    address: ssh://deploy@10.0.0.11:2222\n",
    ),
    (
        "login_address_option",
        "",
        "    address: \"-oProxyCommand=touch PWNED\"\n",
    ),
    ("login_address_user", "", "    address: root@10.0.0.11\n"),
    ("login_address_port", "", "    address: 10.0.0.11:2222\n"),
    ("login_address_short_ipv4", "", "    address: 10.0.11\n"),
    (
        "login_address_shell",
        "",
        "    address: \"web-01;touch PWNED\"\n",
    ),
    (
        "login_user_option",
        "",
        "    address: 10.0.0.11\n    user: \"-oProxyCommand=touch PWNED\"\n",
    ),
    (
        "login_user_at",
        "",
        "    address: 10.0.0.11\n    user: root@evil\n",
    ),
    (
        "login_ssh_user_blank",
        "  user: \"deploy x\"\n",
        "    address: 10.0.0.11\n",
    ),
    (
        "login_port_zero",
        "",
        "    address: 10.0.0.11\n    port: 0\n",
    ),
    (
        "login_port_too_big",
        "",
        "    address: 10.0.0.11\n    port: 70000\n",
    ),
    (
        "login_ssh_port_word",
        "  port: ssh\n",
        "    address: 10.0.0.11\n",
    ),
];

#[test]
fn ssh_destinations_users_and_ports_are_refused_at_load() {
    for (snapshot, ssh, host) in BAD_LOGINS {
        let p = Project::new(&[
            ("inventories/site.yml", &login_inventory(ssh, host)),
            ("playbooks/site.yml", LOGIN_PLAYBOOK),
            ("templates/t.j2", "x\n"),
        ]);
        let fake = FakeSsh::new();
        let mut cmd = cargo_bin_cmd!("foobar");
        let output = cmd
            .current_dir(p.path())
            .env("PATH", fake.path_var())
            .env("NO_COLOR", "1")
            .args([
                "plan",
                "-i",
                "inventories/site.yml",
                "-p",
                "playbooks/site.yml",
            ])
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(output.status.code(), Some(1), "{snapshot}: {stderr}");
        assert!(output.stdout.is_empty(), "{snapshot}");
        assert_eq!(fake.calls(), None, "{snapshot}: it connected");
        assert!(!p.path().join("PWNED").exists(), "{snapshot}");
        insta::assert_snapshot!(*snapshot, stderr);
    }
    // Without `address:`, ssh connects to the host's name (the ssh_config maps it).
    let p = Project::new(&[
        ("ssh_config", "Host web-01\n  HostName 127.0.0.1\n"),
        (
            "inventories/site.yml",
            "ssh:\n  ssh_config: ../ssh_config\nhosts:\n  \"ssh://-oProxyCommand=touch PWNED\":\n    private_ip: 10.0.0.11\n",
        ),
        (
            "playbooks/site.yml",
            &LOGIN_PLAYBOOK.replace("hosts: web", "hosts: all"),
        ),
        ("templates/t.j2", "x\n"),
    ]);
    let run = p.run(&[
        "plan",
        "-i",
        "inventories/site.yml",
        "-p",
        "playbooks/site.yml",
    ]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!p.path().join("PWNED").exists());
    insta::assert_snapshot!("login_host_name_uri", run.stderr);
}

/// The destinations foobar takes: hostnames, IPv4 and IPv6 literals (a zone too), any port
/// from 1 to 65535, user names such as `ec2-user`.
#[test]
fn hostnames_and_ip_literals_are_destinations() {
    let inventory = "ssh:\n  user: ec2-user\n  port: 65535\nhosts:\n  a:\n    address: db-01.example.com\n  b:\n    address: 10.0.0.12\n  c:\n    address: \"2001:db8::13\"\n    port: 1\n  d:\n    address: \"fe80::1%eth0\"\n    user: Admin.x\n  e:\n    address: \"::1\"\ngroups:\n  web:\n    hosts: [a, b, c, d, e]\n";
    let p = Project::new(&[
        ("inventories/site.yml", inventory),
        ("playbooks/site.yml", LOGIN_PLAYBOOK),
        ("templates/t.j2", "x\n"),
    ]);
    let run = p.run(&[
        "render",
        "--out",
        "out",
        "-i",
        "inventories/site.yml",
        "-p",
        "playbooks/site.yml",
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!run.stderr.contains("warning"), "{run:?}");
}

/// `accept-new` with an ssh_config whose `UserKnownHostsFile` is /dev/null (as `vagrant
/// ssh-config` writes it) records no key: every key is trusted, every time. Said, with the
/// way to keep them; not said once foobar's own known_hosts file is set, or under `true`.
#[test]
fn accept_new_without_a_known_hosts_file_is_a_warning() {
    let ssh_config = "Host web-01\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  IdentityFile /tmp/key\n";
    let inventory = |ssh: &str| {
        format!(
            "ssh:\n  ssh_config: ../ssh_config\n{ssh}hosts:\n  web-01:\n    private_ip: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n"
        )
    };
    let render = |ssh: &str| {
        let p = Project::new(&[
            ("ssh_config", ssh_config),
            ("inventories/site.yml", &inventory(ssh)),
            ("playbooks/site.yml", LOGIN_PLAYBOOK),
            ("templates/t.j2", "x\n"),
        ]);
        let run = p.run(&[
            "render",
            "--out",
            "out",
            "-i",
            "inventories/site.yml",
            "-p",
            "playbooks/site.yml",
        ]);
        assert_eq!(run.code, Some(0), "{run:?}");
        run.stderr
    };
    insta::assert_snapshot!(
        "accept_new_with_dev_null_known_hosts",
        render("  strict_host_key_checking: accept-new\n")
    );
    // `false` is accept-new too: both warnings.
    let read_as = render("  strict_host_key_checking: false\n");
    assert!(read_as.contains("is read as `accept-new`"), "{read_as}");
    assert!(
        read_as.contains("every host's key is trusted, every time"),
        "{read_as}"
    );
    for quiet in [
        "  strict_host_key_checking: accept-new\n  known_hosts_file: known_hosts\n",
        "  strict_host_key_checking: true\n",
        "",
    ] {
        let stderr = render(quiet);
        assert!(!stderr.contains("warning"), "{quiet}: {stderr}");
    }
    insta::assert_snapshot!(
        "accept_new_with_known_hosts_file_dev_null",
        render("  strict_host_key_checking: accept-new\n  known_hosts_file: /dev/null\n")
    );
}

/// Every command path of the clap tree (`["plan"]`, `["backup", "now"]`, ...), from the
/// library's own definition, so a new command is covered without editing a list.
fn command_paths() -> Vec<Vec<String>> {
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_string());
            if sub.has_subcommands() {
                walk(sub, &path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&foobar::cli::Cli::command(), &[], &mut out);
    out
}

/// The leaf command at `path`.
fn command_at(path: &[String]) -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = foobar::cli::Cli::command();
    cmd.build();
    for name in path {
        cmd = cmd.find_subcommand(name).unwrap().clone();
    }
    cmd
}

/// `foobar <args>` in `dir` with stdout a pipe whose reader is already gone, so that every
/// write to it fails as under `| head -c1` once head has left (deterministically: no race
/// with how much the pipe buffers).
fn foobar_closed_stdout(dir: &Path, args: &[String]) -> std::process::Output {
    use std::io::Read;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_foobar"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FOOBAR_INVENTORY")
        .env_remove("FOOBAR_PLAYBOOK")
        .env("FOOBAR_REPLICATION_PASSWORD", REPLICATION_PASSWORD)
        .env("FOOBAR_APP_DB_PASSWORD", APP_DB_PASSWORD)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("foobar {} did not end within 60 s", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: Vec::new(),
        stderr: reading.join().unwrap(),
    }
}

/// Every command, its `--help` and `--version`, end quietly when stdout is closed early
/// (`foobar completions bash | head -c1`, `plan | head`): no panic, no exit 101. Commands that
/// need hosts this project does not have fail with their usual codes; that is not the point.
#[test]
fn every_command_ends_quietly_on_a_closed_stdout() {
    let p = local_project();
    let planned = p.run(&["plan", "-i", "inventories/site.yml", "--out", "saved.json"]);
    assert_eq!(planned.code, Some(0), "{planned:?}");
    // What each command needs to get past its usage check; every leaf must be listed.
    let extra = |path: &[String]| -> Option<&'static [&'static str]> {
        Some(match path.join(" ").as_str() {
            "render" => &["--out", "rendered"],
            "plan" | "verify" | "audit" => &[],
            "graph" => &["--format", "dot"],
            "apply" => &["--dry-run"],
            "show" => &["saved.json"],
            "reseed" => &["web-02", "--dry-run"],
            "failover" => &["--to", "web-02", "--dry-run"],
            "restore" => &["--to", "0-1-5", "--dry-run"],
            "backup now" | "backup list" | "man" | "vars" | "schema" => &[],
            "init" => &[
                "initialized",
                "--lb",
                "lb-01=10.0.0.10",
                "--web",
                "web-01=10.0.0.11",
            ],
            "completions" => &["bash"],
            _ => return None,
        })
    };
    let mut runs: Vec<Vec<String>> = vec![vec!["--help".into()], vec!["--version".into()]];
    for path in command_paths() {
        let extra =
            extra(&path).unwrap_or_else(|| panic!("add `{}` to this test's table", path.join(" ")));
        let mut help = path.clone();
        help.push("--help".into());
        runs.push(help);
        let mut args = path.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        if command_at(&path)
            .get_arguments()
            .any(|a| a.get_id() == "inventory")
        {
            args.extend(["-i".into(), "inventories/site.yml".into()]);
        }
        runs.push(args);
    }
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        runs.push(vec!["completions".into(), shell.into()]);
    }
    let mut report = String::new();
    for args in &runs {
        let out = foobar_closed_stdout(p.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(101)
            || out.status.code().is_none()
            || stderr.contains("panicked")
        {
            report.push_str(&format!(
                "\nfoobar {}: {:?}\n{stderr}",
                args.join(" "),
                out.status
            ));
        }
    }
    assert!(report.is_empty(), "{report}");
}

/// A secret shorter than foobar's minimum is refused at load, naming the secret, why and how
/// to make one: masked by substring, `web` would star `web-01` in every line printed.
#[test]
fn a_short_secret_is_refused_with_the_reason() {
    let ssh = FakeSsh::new();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("app.pw");
    std::fs::write(&pw, "a\n").unwrap();
    let inventory = dir.path().join("inv.yml");
    let text = std::fs::read_to_string(fixtures().join(GOOD_INV))
        .unwrap()
        .replace(
            "app_db_password: { env: FOOBAR_APP_DB_PASSWORD }",
            "app_db_password: { file: app.pw }",
        );
    std::fs::write(&inventory, text).unwrap();
    let out = cargo_bin_cmd!("foobar")
        .current_dir(fixtures())
        .env("PATH", ssh.path_var())
        .env("NO_COLOR", "1")
        .env("FOOBAR_REPLICATION_PASSWORD", "web")
        .args(["plan", "-p", GOOD_PB, "-i", inventory.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(dir.path().to_str().unwrap(), "DIR");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(ssh.calls().is_none(), "it connected");
    insta::assert_snapshot!("short_secrets", stderr);
}

/// Semantic checks of the inventory report every problem of one pass: a duplicate
/// private_ip, two primaries and a duplicate server_id, in one run.
#[test]
fn every_inventory_problem_of_one_pass_is_reported() {
    let run = foobar(
        &["plan", "-i", "inventories/many_problems.yml", "-p", GOOD_PB],
        &[],
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.ssh_calls.is_none());
    insta::assert_snapshot!("many_inventory_problems", run.stderr);
}

/// What is not wrong but likely a slip is said: a host listed twice in a group, a --limit
/// whose patterns each match but together select no host of the plays.
#[test]
fn a_host_listed_twice_and_a_limit_that_selects_nothing_warn() {
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    let twice = foobar(
        &[
            "render",
            "-i",
            "inventories/listed_twice.yml",
            "-p",
            GOOD_PB,
            "--out",
            out,
        ],
        &[],
    );
    assert_eq!(twice.code, Some(0), "{twice:?}");
    assert!(
        twice.stderr.contains(
            "warning: inventories/listed_twice.yml:31:29: group `web` lists `web-01` twice under `hosts:`; was another name meant?"
        ),
        "{}",
        twice.stderr
    );
    let nothing = foobar(
        &[
            "render",
            "-i",
            GOOD_INV,
            "-p",
            GOOD_PB,
            "--out",
            out,
            "-l",
            "web-01,!web",
        ],
        &[],
    );
    assert_eq!(nothing.code, Some(0), "{nothing:?}");
    assert!(
        nothing.stderr.contains(
            "warning: --limit web-01,!web selects no host that a play of playbooks/good.yml targets: nothing to do"
        ),
        "{}",
        nothing.stderr
    );
}

/// docs/json.md's `vars` example is what the command prints for the fixture, exactly.
#[test]
fn the_vars_document_is_the_one_docs_json_md_shows() {
    let run = foobar(
        &["vars", "web-01", "--json", "-i", GOOD_INV, "-p", GOOD_PB],
        &[],
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let got: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(documented_examples()["vars"], got);
}
