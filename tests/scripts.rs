//! The scripts foobar runs as root, checked as text and by running them.
//!
//! * Golden tests (insta, `tests/snapshots/scripts__*.snap`) of the apply script for a plan with
//!   every step type, an attribute-only fix, a rollout's restore, and the lock scripts. File
//!   bodies appear as size and digest (the script's display rendering).
//! * Hostile names: scripts built from plans whose paths, names and targets hold spaces, quotes,
//!   `$()`, backticks, newlines, `|`, `*` and leading `-` run under `sh` against a scratch
//!   directory, in a private mount namespace whose `/var` is a fresh tmpfs (so backups and the
//!   pending-handler record stay inside), with stub `systemctl` and `apt-get` that record their
//!   arguments (stubs are right here: what is tested is the script text). Each kind of injection
//!   is a named case: exactly the declared paths are written or restored, nothing else in
//!   the scratch directory changes, and no injected command runs.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use foobar::apply::script::{self, ScriptInput};
use foobar::gather::{ActualState, PathFacts, PathType, ServiceFacts};
use foobar::inventory::{HandlerSpec, HostName, ServiceAction, ServiceSpec, ServiceState};
use foobar::plan::{self, Action, HostPlan};
use foobar::remote::Reply;
use foobar::render::{DesiredEntry, DesiredPlay, DesiredState, EntryKind, sha256_hex};
use foobar::shell;

fn file(path: &str, body: &str, mode: u32, notify: &[&str]) -> DesiredEntry {
    DesiredEntry {
        path: path.into(),
        kind: EntryKind::File {
            content: Arc::from(body.as_bytes()),
            digest: sha256_hex(body.as_bytes()),
            mode,
            owner: "root".into(),
            group: "root".into(),
            validate: None,
            sensitive: false,
            reads: vec![],
        },
        notify: notify.iter().map(|s| s.to_string()).collect(),
        origin: "test".into(),
    }
}

fn with_validate(mut e: DesiredEntry, cmd: &str, sensitive: bool) -> DesiredEntry {
    if let EntryKind::File {
        validate,
        sensitive: s,
        ..
    } = &mut e.kind
    {
        *validate = Some(cmd.into());
        *s = sensitive;
    }
    e
}

fn directory(path: &str) -> DesiredEntry {
    DesiredEntry {
        path: path.into(),
        kind: EntryKind::Directory {
            mode: 0o755,
            owner: "root".into(),
            group: "root".into(),
        },
        notify: vec![],
        origin: "test".into(),
    }
}

fn link(path: &str, target: &str, notify: &[&str]) -> DesiredEntry {
    DesiredEntry {
        path: path.into(),
        kind: EntryKind::Link {
            target: target.into(),
        },
        notify: notify.iter().map(|s| s.to_string()).collect(),
        origin: "test".into(),
    }
}

fn absent(path: &str, notify: &[&str]) -> DesiredEntry {
    DesiredEntry {
        path: path.into(),
        kind: EntryKind::Absent,
        notify: notify.iter().map(|s| s.to_string()).collect(),
        origin: "test".into(),
    }
}

fn service_handler(name: &str, service: &str) -> HandlerSpec {
    HandlerSpec {
        name: name.into(),
        service: Some((service.into(), ServiceAction::Reload)),
        run: None,
    }
}

fn run_handler(name: &str, cmd: &str) -> HandlerSpec {
    HandlerSpec {
        name: name.into(),
        service: None,
        run: Some(cmd.into()),
    }
}

struct PlayParts {
    packages: Vec<&'static str>,
    entries: Vec<DesiredEntry>,
    services: Vec<&'static str>,
    handlers: Vec<HandlerSpec>,
}

fn desired(name: &str, parts: PlayParts) -> DesiredState {
    desired_with_services(
        name,
        parts.packages.iter().map(|p| p.to_string()).collect(),
        parts.entries,
        parts.services.iter().map(|s| s.to_string()).collect(),
        parts.handlers,
    )
}

fn desired_with_services(
    name: &str,
    packages: Vec<String>,
    entries: Vec<DesiredEntry>,
    services: Vec<String>,
    handlers: Vec<HandlerSpec>,
) -> DesiredState {
    DesiredState {
        host: HostName::new("h"),
        plays: vec![DesiredPlay {
            index: 0,
            name: name.into(),
            packages,
            entries,
            services: services
                .into_iter()
                .map(|name| ServiceSpec {
                    name,
                    enabled: true,
                    state: ServiceState::Started,
                })
                .collect(),
            handlers,
            database: None,
            serial: None,
            after: Default::default(),
        }],
    }
}

fn build(want: &DesiredState, hp: &HostPlan, run_id: &str) -> script::Built {
    let play = &want.plays[0];
    script::build(&ScriptInput {
        play,
        changes: hp.changes.iter().filter(|c| c.is_change()).collect(),
        handlers: hp.handlers.iter().collect(),
        run_id,
        unlock: true,
        keep_backups: 5,
        lock: None,
        alone: true,
        temp_salt: 0x0123_4567_89ab_cdef,
    })
    .expect("script builds")
}

fn live_file(body: &str, mode: u32) -> PathFacts {
    PathFacts {
        kind: PathType::File,
        mode,
        owner: "root".into(),
        group: "root".into(),
        size: body.len() as u64,
        digest: Some(sha256_hex(body.as_bytes())),
        link_target: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Golden tests.

#[test]
fn golden_apply_script_with_every_step_type() {
    let want = desired(
        "web servers",
        PlayParts {
            packages: vec!["nginx", "python3-pymysql"],
            entries: vec![
                directory("/opt/app"),
                file("/opt/app/app.py", "print('hi')\n", 0o644, &["restart app"]),
                with_validate(
                    file(
                        "/etc/app/app.env",
                        "DB_PASSWORD=s3cret\n",
                        0o640,
                        &["restart app"],
                    ),
                    "/usr/bin/check-env %s",
                    true,
                ),
                file(
                    "/etc/systemd/system/app.service",
                    "[Unit]\n",
                    0o644,
                    &["restart app"],
                ),
                file(
                    "/etc/nginx/sites-available/app",
                    "server {}\n",
                    0o644,
                    &["reload nginx"],
                ),
                link(
                    "/etc/nginx/sites-enabled/app",
                    "/etc/nginx/sites-available/app",
                    &["reload nginx"],
                ),
                absent("/etc/nginx/sites-enabled/default", &["reload nginx"]),
            ],
            services: vec!["nginx", "app"],
            handlers: vec![
                service_handler("reload nginx", "nginx"),
                run_handler("restart app", "systemctl restart app && sleep 1"),
            ],
        },
    );
    let mut have = ActualState::default();
    have.paths.insert(
        "/etc/nginx/sites-enabled/default".into(),
        live_file("x", 0o644),
    );
    have.services.insert(
        "app".into(),
        ServiceFacts {
            active: true,
            enabled: false,
            exists: true,
        },
    );
    let hp = plan::diff(&want, &have);
    let built = build(&want, &hp, "20260101T000000Z-0123456789abcdef");
    let text = built.script.to_string();
    assert!(!text.contains("s3cret"), "a body leaked into the display");
    insta::assert_snapshot!("apply_every_step_type", text);
    let steps: Vec<String> = built.steps.iter().map(|s| s.to_string()).collect();
    insta::assert_snapshot!("apply_every_step_type_steps", steps.join("\n"));
}

#[test]
fn golden_attribute_only_fix() {
    let want = desired(
        "attributes",
        PlayParts {
            packages: vec![],
            entries: vec![file("/etc/a.conf", "same\n", 0o600, &[])],
            services: vec![],
            handlers: vec![],
        },
    );
    let mut have = ActualState::default();
    have.paths
        .insert("/etc/a.conf".into(), live_file("same\n", 0o644));
    let hp = plan::diff(&want, &have);
    let built = build(&want, &hp, "r1");
    insta::assert_snapshot!("apply_attribute_only", built.script.to_string());
}

#[test]
fn golden_rolling_restore_and_lock_scripts() {
    let handlers = [
        plan::HandlerCommand::Service {
            name: "nginx".into(),
            action: ServiceAction::Reload,
        }
        .script(),
        plan::HandlerCommand::Run {
            command: "systemctl restart foobar-app".into(),
        }
        .script(),
    ];
    let restore = foobar::remote::backups::restore_script(
        "r1",
        &[
            "/etc/systemd/system/foobar-app.service".into(),
            "/opt/app/it's here.py".into(),
        ],
        &handlers,
    );
    insta::assert_snapshot!("rolling_restore", restore.to_string());
    insta::assert_snapshot!(
        "lock",
        foobar::remote::lock::lock_script(
            "alice@laptop pid 1 since 20260101T000000Z run r1",
            false
        )
    );
    insta::assert_snapshot!(
        "unlock",
        foobar::remote::lock::unlock_script("r1").to_string()
    );
}

/// The gather (facts, the lock holder, database facts, differing bodies), the check an apply
/// makes under the lock (a saved plan's and a same-run quick one), and a dry run's lock probe:
/// as text, so a change to what is sent to every host shows up here.
#[test]
fn golden_gather_and_lock_check_scripts() {
    let want = desired(
        "web servers",
        PlayParts {
            packages: vec!["nginx"],
            entries: vec![
                directory("/opt/app"),
                file("/opt/app/app.py", "print('hi')\n", 0o644, &[]),
                file("/etc/it's here.conf", "x\n", 0o600, &[]),
                link(
                    "/etc/nginx/sites-enabled/app",
                    "/etc/nginx/sites-available/app",
                    &[],
                ),
                absent("/etc/nginx/sites-enabled/default", &[]),
            ],
            services: vec!["nginx"],
            handlers: vec![],
        },
    );
    let probe = foobar::gather::DatabaseProbe { sql: "SELECT 1;\n" };
    insta::assert_snapshot!("gather", foobar::gather::gather_script(&want, Some(&probe)));
    insta::assert_snapshot!(
        "gather_bare",
        foobar::gather::gather_script(
            &desired(
                "empty",
                PlayParts {
                    packages: vec![],
                    entries: vec![],
                    services: vec![],
                    handlers: vec![],
                }
            ),
            None
        )
    );
    insta::assert_snapshot!(
        "quick_check",
        foobar::gather::quick_check_script(&want, &["/opt/app/app.py".into()]).to_string()
    );
    insta::assert_snapshot!("lock_probe", foobar::remote::lock::lock_probe_script(false));
}

/// The head of a host's first script: take the lock, then compare the facts (a saved plan's
/// digest; a same-run text, with `--break-lock`).
#[test]
fn golden_lock_check_heads() {
    let want = desired(
        "web servers",
        PlayParts {
            packages: vec![],
            entries: vec![file("/etc/a.conf", "a\n", 0o644, &[])],
            services: vec![],
            handlers: vec![],
        },
    );
    let hp = plan::diff(&want, &ActualState::default());
    let head = |check: script::LockCheck<'_>| {
        let built = script::build(&ScriptInput {
            play: &want.plays[0],
            changes: hp.changes.iter().filter(|c| c.is_change()).collect(),
            handlers: hp.handlers.iter().collect(),
            run_id: "r1",
            unlock: false,
            keep_backups: 5,
            lock: Some(check),
            alone: true,
            temp_salt: 0x0123_4567_89ab_cdef,
        })
        .expect("script builds");
        built.script.to_string()
    };
    insta::assert_snapshot!(
        "apply_locked_saved_plan",
        head(script::LockCheck {
            holder: "alice@laptop pid 1 since 20260101T000000Z run r1",
            break_lock: false,
            cas: "0123abcd",
            cas_text: None,
            facts: foobar::gather::facts_script(&want),
        })
    );
    insta::assert_snapshot!(
        "apply_locked_same_run_break_lock",
        head(script::LockCheck {
            holder: "alice@laptop pid 1 since 20260101T000000Z run r1",
            break_lock: true,
            cas: "0123abcd",
            cas_text: Some("#foobar:stat\nregular file\t644\n"),
            facts: foobar::gather::facts_script(&want),
        })
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile names, run under sh.

/// A scratch directory: `root/` holds the files plans manage, `cwd/` is where scripts run
/// (an injected `touch PWNED` would land there), `stubs/` the recording commands.
struct Scratch {
    _dir: tempfile::TempDir,
    base: PathBuf,
}

const STUB: &str = "#!/bin/sh\n{ printf '%s' \"${0##*/}\"; for a in \"$@\"; do printf '\\037%s' \"$a\"; done; printf '\\036'; } >> \"$STUB_LOG\"\nexit 0\n";

impl Scratch {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        for d in ["root", "cwd", "stubs"] {
            std::fs::create_dir(base.join(d)).unwrap();
        }
        for stub in ["systemctl", "apt-get"] {
            let p = base.join("stubs").join(stub);
            std::fs::write(&p, STUB).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        Self { _dir: dir, base }
    }

    fn root(&self) -> String {
        self.base.join("root").to_str().unwrap().to_string()
    }

    /// Every path under root/ and cwd/ with its content (or `dir`/`-> target`) and mode.
    fn tree(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.base.join("root"), self.base.join("cwd")];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                let mode = meta.permissions().mode() & 0o7777;
                let what = if meta.file_type().is_symlink() {
                    format!("-> {}", std::fs::read_link(&p).unwrap().display())
                } else if meta.is_dir() {
                    stack.push(p.clone());
                    format!("dir {mode:o}")
                } else {
                    format!(
                        "{mode:o} {}",
                        String::from_utf8_lossy(&std::fs::read(&p).unwrap())
                    )
                };
                out.insert(p, what);
            }
        }
        out
    }

    /// Run `script` as root in a private mount namespace with a fresh /var; returns the
    /// protocol replies and the stubs' calls (argv, program name first).
    fn run(&self, script: &str) -> (Vec<Reply>, Vec<Vec<String>>, String) {
        let log = self.base.join("stub.log");
        let out = std::process::Command::new("unshare")
            .args([
                "-m",
                "sh",
                "-c",
                "mount -t tmpfs tmpfs /var && PATH=\"$STUBS:$PATH\" exec sh -s",
            ])
            .env("STUBS", self.base.join("stubs"))
            .env("STUB_LOG", &log)
            .current_dir(self.base.join("cwd"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(script.as_bytes())?;
                child.wait_with_output()
            })
            .expect("unshare and sh run (tests run as root)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let replies = stdout
            .lines()
            .filter_map(foobar::remote::parse_reply)
            .collect();
        let calls = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .split('\u{1e}')
            .filter(|c| !c.is_empty())
            .map(|c| c.split('\u{1f}').map(String::from).collect())
            .collect();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (replies, calls, format!("{stdout}\n--- stderr\n{stderr}"))
    }
}

/// No file named PWNED anywhere in the scratch tree, and no injected command's trace.
fn assert_nothing_injected(s: &Scratch, after: &BTreeMap<PathBuf, String>) {
    for p in after.keys() {
        assert!(
            !p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("PWNED"),
            "an injected command ran: {}",
            p.display()
        );
    }
    assert!(!s.base.join("cwd/PWNED").exists());
}

/// The paths whose entry differs between two trees.
fn changed(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(*v))
        .map(|(p, _)| p.clone())
        .chain(before.keys().filter(|p| !after.contains_key(*p)).cloned())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Names that would run `touch PWNED…` if any of them reached the shell unquoted.
fn hostile_names() -> Vec<&'static str> {
    vec![
        "sp ace.conf",
        "it's \"quoted\".conf",
        "$(touch PWNED1)",
        "`touch PWNED2`",
        "a;touch PWNED3",
        "x\"; }; touch PWNED4; false && { :\"",
        "pipe|touch PWNED5",
        "star*",
        "-leading-dash",
        "new\nline",
        "${IFS}touch${IFS}PWNED6",
        "back\\slash",
    ]
}

#[test]
fn hostile_file_names_are_written_exactly_where_declared() {
    let s = Scratch::new();
    let root = s.root();
    // Finding 1: a parent directory named to close the quote of an error message.
    let mut entries = vec![directory(&format!("{root}/app"))];
    let mut declared = vec![PathBuf::from(format!("{root}/app"))];
    for (i, name) in hostile_names().iter().enumerate() {
        let dir = format!("{root}/app/{name}");
        let path = format!("{dir}/{name}");
        entries.push(file(&path, &format!("body {i}\n"), 0o640, &[]));
        declared.push(PathBuf::from(&dir));
        declared.push(PathBuf::from(&path));
    }
    let want = desired_with_services("hostile files", vec![], entries, vec![], vec![]);
    let hp = plan::diff(&want, &ActualState::default());
    let built = build(&want, &hp, "20260101T000000Z-00000000000000aa");
    let before = s.tree();
    let (replies, _, out) = s.run(&built.script.to_stdin().unwrap());
    assert!(replies.contains(&Reply::Done), "{out}");
    let after = s.tree();
    assert_nothing_injected(&s, &after);
    declared.sort();
    assert_eq!(changed(&before, &after), declared, "{out}");
    for (i, name) in hostile_names().iter().enumerate() {
        let p = format!("{root}/app/{name}/{name}");
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            format!("body {i}\n"),
            "{p:?}"
        );
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640, "{p:?}");
    }
    // No temp file is left behind.
    assert!(
        !after
            .keys()
            .any(|p| p.to_string_lossy().contains(".foobar-"))
    );
}

#[test]
fn rollback_restores_exactly_the_swapped_paths() {
    // Finding 2: a name with a newline and `|` made the rollback delete another directory;
    // a space made it restore `/etc/my` instead of `/etc/my file.conf`.
    let s = Scratch::new();
    let root = s.root();
    std::fs::create_dir_all(format!("{root}/etc")).unwrap();
    std::fs::create_dir_all(format!("{root}/victim/dir")).unwrap();
    std::fs::write(format!("{root}/victim/dir/keep"), "keep\n").unwrap();
    std::fs::write(format!("{root}/etc/my"), "not mine\n").unwrap();
    std::fs::write(format!("{root}/etc/my file.conf"), "old\n").unwrap();
    std::fs::set_permissions(
        format!("{root}/etc/my file.conf"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let newline_name = format!("{root}/etc/new\n{root}/victim/dir|-");
    // Its parent directories exist: what is checked is the file and the rollback.
    std::fs::create_dir_all(format!("{root}/etc/new\n{root}/victim")).unwrap();
    let entries = vec![
        file(
            &format!("{root}/etc/my file.conf"),
            "new\n",
            0o600,
            &["fail"],
        ),
        file(&newline_name, "created\n", 0o644, &["fail"]),
        link(
            &format!("{root}/etc/link $(touch PWNED7)"),
            &format!("{root}/etc/my file.conf"),
            &["fail"],
        ),
    ];
    let want = desired_with_services(
        "rollback",
        vec![],
        entries,
        vec![],
        vec![run_handler("fail", "false")],
    );
    let mut have = ActualState::default();
    have.paths.insert(
        format!("{root}/etc/my file.conf"),
        live_file("old\n", 0o600),
    );
    let hp = plan::diff(&want, &have);
    let built = build(&want, &hp, "20260101T000000Z-00000000000000bb");
    let before = s.tree();
    let (replies, _, out) = s.run(&built.script.to_stdin().unwrap());
    assert!(
        replies.iter().any(|r| matches!(r, Reply::Rollback { .. })),
        "{out}"
    );
    let after = s.tree();
    assert_nothing_injected(&s, &after);
    assert_eq!(changed(&before, &after), Vec::<PathBuf>::new(), "{out}");
}

#[test]
fn service_and_package_names_reach_their_programs_as_single_words() {
    // Finding 3: service names pasted raw into `systemctl`, `case`, `STARTED=`, handlers.
    // Finding 5: no `--` before data arguments.
    let s = Scratch::new();
    let evil_service = "nginx; touch PWNED8";
    let evil_handler_service = "-x$(touch PWNED9)";
    let evil_package = "--force-yes`touch PWNED10`";
    let want = desired_with_services(
        "services",
        vec![evil_package.into()],
        vec![file(
            &format!("{}/f", s.root()),
            "x\n",
            0o644,
            &["h1", "h2"],
        )],
        vec![evil_service.into()],
        vec![
            service_handler("h1", evil_handler_service),
            service_handler("h2", evil_service),
        ],
    );
    let hp = plan::diff(&want, &ActualState::default());
    let built = build(&want, &hp, "20260101T000000Z-00000000000000cc");
    let (replies, calls, out) = s.run(&built.script.to_stdin().unwrap());
    assert!(replies.contains(&Reply::Done), "{out}");
    assert_nothing_injected(&s, &s.tree());
    let expect = |argv: &[&str]| {
        assert!(
            calls
                .iter()
                .any(|c| c.iter().map(String::as_str).eq(argv.iter().copied())),
            "no call {argv:?} in {calls:?}"
        )
    };
    expect(&[
        "apt-get",
        "-o",
        "DPkg::Lock::Timeout=300",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
        "--",
        evil_package,
    ]);
    expect(&["systemctl", "enable", "--", evil_service]);
    expect(&["systemctl", "start", "--", evil_service]);
    expect(&["systemctl", "reload", "--", evil_handler_service]);
    // The service foobar started already runs the new configuration: its handler is skipped.
    let h2 = built
        .steps
        .iter()
        .position(|o| o.to_string() == "handler h2")
        .unwrap();
    assert!(replies.contains(&Reply::Skip(h2)), "{out}");
}

#[test]
fn symlinks_are_never_followed_and_temp_files_are_private() {
    // Finding 4: a planted symlink made root write a secret-bearing body into another file and
    // hand it to another owner; the temp file existed with the remote umask.
    let s = Scratch::new();
    let root = s.root();
    std::fs::write(format!("{root}/victim"), "victim\n").unwrap();
    std::fs::set_permissions(
        format!("{root}/victim"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink(format!("{root}/victim"), format!("{root}/attrs")).unwrap();
    std::os::unix::fs::symlink(format!("{root}/victim"), format!("{root}/body")).unwrap();
    // Attribute-only fix on a path that is a symlink: refused.
    let want = desired_with_services(
        "attributes",
        vec![],
        vec![file(&format!("{root}/attrs"), "victim\n", 0o644, &[])],
        vec![],
        vec![],
    );
    let mut have = ActualState::default();
    have.paths
        .insert(format!("{root}/attrs"), live_file("victim\n", 0o600));
    let hp = plan::diff(&want, &have);
    let built = build(&want, &hp, "20260101T000000Z-00000000000000dd");
    let before = s.tree();
    let (replies, _, out) = s.run(&built.script.to_stdin().unwrap());
    assert!(
        replies
            .iter()
            .any(|r| matches!(r, Reply::Err { stage, .. } if stage == "attributes")),
        "{out}"
    );
    assert_eq!(changed(&before, &s.tree()), Vec::<PathBuf>::new());

    // A new body over a symlink replaces the link itself, never the file it points to.
    let want = desired_with_services(
        "body",
        vec![],
        vec![with_validate(
            file(&format!("{root}/body"), "SECRET=1\n", 0o640, &[]),
            "test \"$(stat -c %a %s)\" = 640",
            true,
        )],
        vec![],
        vec![],
    );
    let mut have = ActualState::default();
    let mut l = live_file("", 0o777);
    l.kind = PathType::Link;
    have.paths.insert(format!("{root}/body"), l);
    let hp = plan::diff(&want, &have);
    assert_eq!(hp.changes[0].action, Action::Update);
    let built = build(&want, &hp, "20260101T000000Z-00000000000000ee");
    let (replies, _, out) = s.run(&built.script.to_stdin().unwrap());
    // The validator ran on the staged file (`%s`), already at its final mode.
    assert!(replies.contains(&Reply::Done), "{out}");
    let body = std::fs::symlink_metadata(format!("{root}/body")).unwrap();
    assert!(body.file_type().is_file(), "the link itself is replaced");
    assert_eq!(body.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        std::fs::read_to_string(format!("{root}/victim")).unwrap(),
        "victim\n"
    );
    let victim_mode = std::fs::metadata(format!("{root}/victim"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(victim_mode, 0o600);
}

/// A body reaches the disk byte for byte, whatever it holds, with exactly its mode and
/// owner (text bodies are written by the shell's own `printf` under a `umask`,
/// other bodies by `base64 -d`; `chown` and `chmod` run only when they must).
#[test]
fn bodies_reach_disk_byte_for_byte_with_their_mode_and_owner() {
    use std::os::unix::fs::MetadataExt;
    let s = Scratch::new();
    let root = s.root();
    // A set-group-ID directory: a new file in it gets the directory's group, so foobar must
    // chown it to root:root.
    std::fs::create_dir(format!("{root}/sgid")).unwrap();
    std::os::unix::fs::chown(format!("{root}/sgid"), Some(0), Some(4242)).unwrap();
    std::fs::set_permissions(
        format!("{root}/sgid"),
        std::fs::Permissions::from_mode(0o2755),
    )
    .unwrap();
    let mut long = String::new();
    while long.len() < 1 << 20 {
        long.push_str("line with 'quotes', \\backslashes\\, $(id) `id` %s %% \"dq\"\n");
    }
    let bodies: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "quotes.conf",
            b"a'b\"c\\d $HOME `id` $(id) %s %% %b\n".to_vec(),
            0o644,
        ),
        ("empty", Vec::new(), 0o640),
        ("newlines", b"\n\n\n".to_vec(), 0o600),
        ("no-final-newline", b"x = 1".to_vec(), 0o444),
        ("dash", b"-n\n".to_vec(), 0o644),
        ("control", b"\r\n\t\x01\x1b[31m\x7f end\r".to_vec(), 0o644),
        (
            "utf8",
            "\u{e9}\u{4e2d}\u{1f600}\n".as_bytes().to_vec(),
            0o644,
        ),
        (
            "heredoc",
            b"__FOOBAR_DATA__\nEOF\n__FOOBAR_PLAY_1__\n".to_vec(),
            0o644,
        ),
        ("binary", vec![0, 159, 146, 150, 255, 0, 10], 0o644),
        ("latin1", vec![b'c', b'a', b'f', 0xe9, b'\n'], 0o600),
        ("exec.sh", b"#!/bin/sh\necho hi\n".to_vec(), 0o755),
        ("setuid", b"x\n".to_vec(), 0o4750),
        ("sgid/in-sgid-dir", b"group\n".to_vec(), 0o640),
        ("new/dir/deep.conf", b"deep\n".to_vec(), 0o644),
        ("long", long.into_bytes(), 0o644),
    ];
    let entries: Vec<DesiredEntry> = bodies
        .iter()
        .map(|(name, bytes, mode)| {
            let mut e = file(&format!("{root}/{name}"), "", *mode, &[]);
            if let EntryKind::File {
                content, digest, ..
            } = &mut e.kind
            {
                *content = Arc::from(bytes.as_slice());
                *digest = sha256_hex(bytes);
            }
            e
        })
        .collect();
    let want = desired_with_services("bodies", vec![], entries, vec![], vec![]);
    let hp = plan::diff(&want, &ActualState::default());
    let built = build(&want, &hp, "20260101T000000Z-00000000000000ab");
    let text = built.script.to_stdin().unwrap();
    assert!(
        !built.script.to_string().contains("backslashes"),
        "a body leaked into the display"
    );
    let (replies, _, out) = s.run(&text);
    assert!(replies.contains(&Reply::Done), "{out}");
    for (name, bytes, mode) in &bodies {
        let path = format!("{root}/{name}");
        assert_eq!(&std::fs::read(&path).unwrap(), bytes, "{name}");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file(), "{name}");
        assert_eq!(meta.permissions().mode() & 0o7777, *mode, "{name}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{name}");
    }
    // No temp file is left behind, and the new parents are readable by others.
    let leftovers: Vec<_> = s
        .tree()
        .into_keys()
        .filter(|p| p.to_string_lossy().contains(".foobar-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let new_dir = std::fs::metadata(format!("{root}/new/dir")).unwrap();
    assert_eq!(new_dir.permissions().mode() & 0o7777, 0o755);
}

/// Plays side by side on one host back up into the same run's directory at the same time:
/// neither may fail because the other made a directory first (`cp --parents` alone does).
#[test]
fn plays_side_by_side_back_up_into_one_run_directory() {
    let s = Scratch::new();
    let root = s.root();
    let mut both = String::new();
    for round in 0..40 {
        let run_id = format!("20260101T000000Z-{round:016x}");
        let mut scripts = Vec::new();
        for play in ["a", "b"] {
            let dir = format!("{root}/r{round}/shared/{play}");
            std::fs::create_dir_all(&dir).unwrap();
            let path = format!("{dir}/f.conf");
            std::fs::write(&path, "old\n").unwrap();
            let want = desired_with_services(
                play,
                vec![],
                vec![file(&path, "new\n", 0o644, &[])],
                vec![],
                vec![],
            );
            let mut have = ActualState::default();
            have.paths.insert(path, live_file("old\n", 0o644));
            let hp = plan::diff(&want, &have);
            let built = script::build(&ScriptInput {
                play: &want.plays[0],
                changes: hp.changes.iter().filter(|c| c.is_change()).collect(),
                handlers: vec![],
                run_id: &run_id,
                unlock: false,
                keep_backups: 100,
                lock: None,
                alone: false,
                temp_salt: round,
            })
            .expect("script builds");
            scripts.push(built.script.to_stdin().unwrap());
        }
        both.push_str(&format!(
            "sh -s > a.out 2>&1 <<'__A__' &\n{}__A__\nsh -s > b.out 2>&1 <<'__B__' &\n{}__B__\nwait\ncat a.out b.out\n",
            scripts[0], scripts[1]
        ));
    }
    let (replies, _, out) = s.run(&both);
    let done = replies.iter().filter(|r| **r == Reply::Done).count();
    assert!(
        !replies.iter().any(|r| matches!(r, Reply::Err { .. })),
        "{out}"
    );
    assert_eq!(done, 80, "{out}");
}

#[test]
fn saved_plans_are_refused_on_any_difference_naming_it() {
    let base = || {
        desired(
            "p",
            PlayParts {
                packages: vec!["nginx"],
                entries: vec![
                    file("/etc/a", "1\n", 0o644, &["h"]),
                    absent("/etc/old", &[]),
                ],
                services: vec!["nginx"],
                handlers: vec![run_handler("h", "true")],
            },
        )
    };
    let saved = plan::diff(&base(), &ActualState::default());
    assert!(plan::check_saved(&saved, &base()).is_ok());
    type Edit = fn(&mut DesiredPlay);
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("package", |p| p.packages[0] = "haproxy".into(), "haproxy"),
        (
            "mode",
            |p| {
                if let EntryKind::File { mode, .. } = &mut p.entries[0].kind {
                    *mode = 0o600
                }
            },
            "/etc/a",
        ),
        (
            "owner",
            |p| {
                if let EntryKind::File { owner, .. } = &mut p.entries[0].kind {
                    *owner = "www-data".into()
                }
            },
            "/etc/a",
        ),
        (
            "validate",
            |p| {
                if let EntryKind::File { validate, .. } = &mut p.entries[0].kind {
                    *validate = Some("true %s".into())
                }
            },
            "/etc/a",
        ),
        ("delete", |p| p.entries.truncate(1), "/etc/old"),
        ("service", |p| p.services[0].enabled = false, "nginx"),
        (
            "handler",
            |p| p.handlers[0].run = Some("false".into()),
            "handler `h`",
        ),
        ("target", |p| p.entries[0].path = "/etc/b".into(), "/etc/b"),
    ];
    for (what, edit, named) in cases {
        let mut today = base();
        edit(&mut today.plays[0]);
        let err = plan::check_saved(&saved, &today)
            .expect_err(what)
            .to_string();
        assert!(
            err.contains(named) && err.contains("renders differently now"),
            "{what}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A host script: the lock, the compare-and-swap, every play in order, the stop between plays.

/// One host script of two plays (files `first` and `second` under root/, each notifying a
/// handler; `first_handler` is the first play's), with the lock and a facts check whose
/// digest is right or not. Returns the replies, the tree after and the output.
/// `raw`: compare the facts as text (a run that gathered them) rather than by digest (a
/// saved plan).
fn host_run(
    first_handler: &str,
    cas_right: bool,
    raw: bool,
) -> (Vec<Reply>, BTreeMap<PathBuf, String>, String) {
    let run_id = "20260101T000000Z-00000000000000cc";
    let s = Scratch::new();
    let root = s.root();
    let play = |name: &str, handler: &str| {
        let want = desired_with_services(
            name,
            vec![],
            vec![file(&format!("{root}/{name}"), "x\n", 0o644, &["h"])],
            vec![],
            vec![run_handler("h", handler)],
        );
        let hp = plan::diff(&want, &ActualState::default());
        script::build(&ScriptInput {
            play: &want.plays[0],
            changes: hp.changes.iter().filter(|c| c.is_change()).collect(),
            handlers: hp.handlers.iter().collect(),
            run_id,
            unlock: false,
            keep_backups: 5,
            lock: None,
            alone: true,
            temp_salt: 0x0123_4567_89ab_cdef,
        })
        .expect("script builds")
        .script
    };
    let plays = vec![
        (0, play("first", first_handler)),
        // The lock is held, with its holder, while the plays run.
        (1, play("second", "test -s /var/lib/foobar/lock/holder")),
    ];
    let mut facts = shell::Script::new();
    facts.code("echo facts\n");
    let cas = if cas_right {
        sha256_hex(b"facts\n")
    } else {
        sha256_hex(b"other\n")
    };
    let text = if cas_right { "facts\n" } else { "other\n" };
    let check = script::LockCheck {
        holder: &format!("me pid 1 since x run {run_id}"),
        break_lock: false,
        cas: &cas,
        cas_text: raw.then_some(text),
        facts,
    };
    let whole = script::host_script(&plays, Some(&check), run_id, true);
    let (replies, _, out) = s.run(&whole.to_stdin().unwrap());
    (replies, s.tree(), out)
}

/// The compare-and-swap of an apply in the run that gathered: the gather's own
/// facts, compared under the lock with no file hashed again when its change time vouches for
/// it. Nothing moved: the play runs. A file rewritten in place with its own size, or
/// chmodded away and back, since the gather: stale, nothing changes (stat would print the
/// same type, mode, owner and size; the change time moved). The host's time zone is not a
/// fact: a gather made under another one still matches.
#[test]
fn the_quick_check_sees_a_same_size_rewrite_or_a_chmod_and_back_since_the_gather() {
    let run_id = "20260101T000000Z-00000000000000dd";
    for between in [
        ":",
        "printf 'B\\n' > \"$K\"",
        "chmod 600 \"$K\" && chmod 644 \"$K\"",
    ] {
        let s = Scratch::new();
        let root = s.root();
        let (kept, changed) = (format!("{root}/kept"), format!("{root}/changed"));
        let want = desired_with_services(
            "p",
            vec![],
            vec![
                file(&kept, "A\n", 0o644, &[]),
                file(&changed, "new\n", 0o644, &["h"]),
            ],
            vec![],
            vec![run_handler("h", "true")],
        );
        for (path, body) in [(&kept, "A\n"), (&changed, "old\n")] {
            std::fs::write(path, body).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        // Older than the gather's clock by more than the coarsest filesystem granularity
        // (2 s): vouched for by change time.
        std::thread::sleep(std::time::Duration::from_millis(2100));
        // Gathered in another time zone than the check runs in: the facts do not depend on it.
        let (_, _, out) = s.run(&format!(
            "export TZ=JST-9\n{}",
            foobar::gather::gather_script(&want, None)
        ));
        let (_, have) = foobar::gather::parse_output("h", out.as_bytes()).expect("gather parses");
        let hp = plan::diff(&want, &have);
        let quick = hp.cas_quick.clone().expect("a quick check");
        assert!(quick.hashed.is_empty(), "{quick:?}");
        let built = script::build(&ScriptInput {
            play: &want.plays[0],
            changes: hp.changes.iter().filter(|c| c.is_change()).collect(),
            handlers: hp.handlers.iter().collect(),
            run_id,
            unlock: true,
            keep_backups: 5,
            lock: Some(script::LockCheck {
                holder: &format!("me pid 1 since x run {run_id}"),
                break_lock: false,
                cas: &hp.cas,
                cas_text: Some(&quick.text),
                facts: foobar::gather::quick_check_script(&want, &quick.hashed),
            }),
            alone: true,
            temp_salt: 0x0123_4567_89ab_cdef,
        })
        .expect("script builds");
        let (replies, _, out) = s.run(&format!(
            "K={}\n{between}\n{}",
            shell::sh_quote(&kept),
            built.script.to_stdin().unwrap()
        ));
        let after = std::fs::read_to_string(&changed).unwrap();
        if between == ":" {
            assert!(!replies.contains(&Reply::Stale), "{out}");
            assert_eq!(after, "new\n", "{out}");
        } else {
            assert_eq!(replies, vec![Reply::Stale], "{between}: {out}");
            assert_eq!(after, "old\n", "{between}: {out}");
        }
    }
}

/// The gather sends the bodies of files that differ, for the diff, byte for byte:
/// small ones by shell builtins (with or without a final newline, with backslashes, leading
/// blanks, a carriage return, bytes that are not UTF-8), large ones by `head`. A body holding
/// a NUL cannot pass through the shell: it is dropped (the plan fetches it on its own), as
/// is one past the inline total; the gather still succeeds whichever file comes last.
#[test]
fn the_gather_sends_differing_bodies_byte_for_byte() {
    let s = Scratch::new();
    let root = s.root();
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let live: Vec<(&str, Vec<u8>)> = vec![
        ("nl", b"a\\b\n  c\r\n".to_vec()),
        ("no-nl", b"x\n\ty \xff\xfe end".to_vec()),
        ("empty-lines", b"\n\n\n".to_vec()),
        ("one", b"z".to_vec()),
        ("big", big),
        ("nul", b"a\0b\n".to_vec()),
        // Past the inline total: not sent (the plan fetches it), and no failure either.
        ("huge", vec![b'h'; 70_000]),
    ];
    let mut entries = vec![];
    for (name, body) in &live {
        let path = format!("{root}/{name}");
        std::fs::write(&path, body).unwrap();
        entries.push(file(&path, "wanted\n", 0o644, &[]));
    }
    let want = desired_with_services("p", vec![], entries, vec![], vec![]);
    // Read-only, and bytes as they are (no lossy text): the gather runs here, under sh.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(foobar::gather::gather_script(&want, None))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (_, have) = foobar::gather::parse_output("h", &out.stdout).expect("gather parses");
    for (name, body) in &live {
        let got = have.bodies.get(&format!("{root}/{name}"));
        if *name == "nul" || *name == "huge" {
            assert!(got.is_none(), "{name}: {got:?}");
        } else {
            assert_eq!(got, Some(body), "{name}");
        }
    }
}

fn has(tree: &BTreeMap<PathBuf, String>, name: &str) -> bool {
    tree.keys().any(|p| p.ends_with(name))
}

#[test]
fn a_host_script_locks_compares_runs_its_plays_in_order_and_stops_between_them() {
    // Everything as planned: both plays, in order, each to its end, then the unlock.
    for raw in [false, true] {
        let (replies, _, out) = host_run("true", true, raw);
        assert!(replies.contains(&Reply::Unlocked), "{out}");
        // The host moved since the plan: nothing runs, nothing changes.
        let (replies, tree, out) = host_run("true", false, raw);
        assert_eq!(replies, vec![Reply::Stale], "{out}");
        assert!(!has(&tree, "first") && !has(&tree, "second"), "{out}");
    }
    let (replies, tree, out) = host_run("true", true, true);
    let marks: Vec<&Reply> = replies
        .iter()
        .filter(|r| matches!(r, Reply::Play(_) | Reply::Done | Reply::Unlocked))
        .collect();
    assert_eq!(
        marks,
        vec![
            &Reply::Play(0),
            &Reply::Done,
            &Reply::Play(1),
            &Reply::Done,
            &Reply::Unlocked
        ],
        "{out}"
    );
    assert!(
        !replies.iter().any(|r| matches!(r, Reply::Err { .. })),
        "{out}"
    );
    assert!(has(&tree, "first") && has(&tree, "second"), "{out}");

    // The host moved since the plan: nothing runs, nothing changes.
    let (replies, tree, out) = host_run("true", false, false);
    assert_eq!(replies, vec![Reply::Stale], "{out}");
    assert!(!has(&tree, "first") && !has(&tree, "second"), "{out}");

    // Interrupted (the stop file appears while the first play runs): it finishes, the
    // second never starts, the lock is released.
    let (replies, tree, out) = host_run(": > /var/lib/foobar/lock/stop", true, true);
    assert!(replies.contains(&Reply::Stopped), "{out}");
    assert!(!replies.contains(&Reply::Play(1)), "{out}");
    assert!(has(&tree, "first") && !has(&tree, "second"), "{out}");

    // The first play's shell dies: the host script ends there, lock kept for the next run
    // to name.
    let (replies, tree, out) = host_run("kill -9 $$", true, true);
    assert!(!replies.contains(&Reply::Play(1)), "{out}");
    assert!(!replies.contains(&Reply::Unlocked), "{out}");
    assert!(has(&tree, "first") && !has(&tree, "second"), "{out}");
}

#[test]
fn a_play_script_prints_on_success_exactly_what_a_dry_run_answers() {
    // A dry run answers a play script with `Built::on_success` instead of sending it: the
    // script run for real must print the same protocol lines, in the same order, for every
    // step type (the swaps print after the validations although numbered before them).
    let s = Scratch::new();
    let root = s.root();
    std::fs::create_dir_all(format!("{root}/etc")).unwrap();
    std::fs::write(format!("{root}/etc/old"), "old\n").unwrap();
    std::fs::write(format!("{root}/etc/mode"), "same\n").unwrap();
    std::fs::set_permissions(
        format!("{root}/etc/mode"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let entries = vec![
        directory(&format!("{root}/d")),
        with_validate(
            file(&format!("{root}/etc/a.conf"), "a\n", 0o644, &["h1", "h2"]),
            "test -s %s",
            false,
        ),
        file(&format!("{root}/etc/b.conf"), "b\n", 0o640, &[]),
        file(&format!("{root}/etc/mode"), "same\n", 0o644, &[]),
        link(&format!("{root}/etc/l"), &format!("{root}/etc/a.conf"), &[]),
        absent(&format!("{root}/etc/old"), &["h2"]),
    ];
    let want = desired_with_services(
        "every step",
        vec!["pkg".into()],
        entries,
        vec!["svc".into()],
        vec![service_handler("h1", "svc"), run_handler("h2", "true")],
    );
    let mut have = ActualState::default();
    have.paths
        .insert(format!("{root}/etc/old"), live_file("old\n", 0o644));
    have.paths
        .insert(format!("{root}/etc/mode"), live_file("same\n", 0o600));
    let hp = plan::diff(&want, &have);
    let built = build(&want, &hp, "20260101T000000Z-00000000000000ff");
    let (replies, _, out) = s.run(&built.script.to_stdin().unwrap());
    let answered: Vec<Reply> = built
        .on_success
        .lines()
        .filter_map(foobar::remote::parse_reply)
        .collect();
    assert!(replies.contains(&Reply::Done), "{out}");
    assert!(replies.iter().any(|r| matches!(r, Reply::Skip(_))), "{out}");
    assert_eq!(
        answered.len(),
        built.steps.len() + 1,
        "{}",
        built.on_success
    );
    assert_eq!(replies, answered, "{out}");
}

/// The lock is its holder file, created exclusively by the shell (`set -C`, a builtin):
/// of eight runs racing for a fresh host exactly one takes it, its holder is 0600, a
/// released lock leaves its directory, and taking it again starts no process (no `mkdir`).
#[test]
fn one_of_eight_racing_runs_takes_the_lock_and_taking_it_again_starts_no_process() {
    let s = Scratch::new();
    let mut race = String::new();
    for i in 0..8 {
        let lock =
            foobar::remote::lock::lock_script(&format!("me pid {i} since x run r{i}"), false);
        // A run that loses goes on past the lock (its gather follows): `survived`.
        race.push_str(&format!(
            "cat > /var/l{i} <<'__LOCK__'\n{lock}echo survived\n__LOCK__\n"
        ));
    }
    race.push_str(
        "for i in 0 1 2 3 4 5 6 7; do sh /var/l$i > /var/o$i & done; wait\n\
         echo \"won $(cat /var/o[0-7] | grep -c '^#foobar:locked$')\"\n\
         echo \"survived $(cat /var/o[0-7] | grep -c '^survived$')\"\n\
         echo \"mode $(stat -c %a /var/lib/foobar/lock/holder)\"\n\
         echo \"holder $(cat /var/lib/foobar/lock/holder)\"\n",
    );
    let (_, _, out) = s.run(&race);
    assert!(out.contains("won 1\n"), "{out}");
    assert!(out.contains("survived 8\n"), "{out}");
    assert!(out.contains("mode 600\n"), "{out}");
    let winner = out
        .lines()
        .find_map(|l| l.strip_prefix("holder me pid "))
        .and_then(|l| l.split(" run ").nth(1))
        .unwrap_or_else(|| panic!("no holder: {out}"))
        .to_string();

    // Released by its own run, then taken again with `mkdir` stubbed out (a call would be
    // recorded): the directory is still there, so none is made.
    let unlock = foobar::remote::lock::unlock_script(&winner)
        .to_stdin()
        .unwrap();
    let again = foobar::remote::lock::lock_script("me pid 9 since x run r9", false);
    let stub = s.base.join("stubs").join("mkdir");
    std::fs::write(&stub, STUB).unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_, calls, out) = s.run(&format!(
        "{{ PATH=${{PATH#*:}} sh -s <<'__LOCK__'\n{}__LOCK__\n}} >/dev/null\n{unlock}\
         [ -d /var/lib/foobar/lock ] && [ ! -e /var/lib/foobar/lock/holder ] && echo released\n\
         {again}cat /var/lib/foobar/lock/holder\n",
        foobar::remote::lock::lock_script(&format!("me pid 0 since x run {winner}"), false)
    ));
    assert!(
        out.contains("released\n#foobar:locked\nme pid 9 since x run r9\n"),
        "{out}"
    );
    assert!(calls.is_empty(), "{calls:?}");
}

/// The unlock and the pending-handler record use shell builtins where they can:
/// the unlock still removes only this run's lock, and a play still clears only its own
/// pending handlers, keeping another play's.
#[test]
fn unlock_removes_only_this_runs_lock_and_a_play_clears_only_its_own_pending_handlers() {
    let unlock = foobar::remote::lock::unlock_script("r1")
        .to_stdin()
        .unwrap();
    let s = Scratch::new();
    let (_, _, out) = s.run(&format!(
        "mkdir -p /var/lib/foobar/lock\n\
         printf '%s\\n' 'me pid 1 since x run r2' > /var/lib/foobar/lock/holder\n\
         {unlock}[ -e /var/lib/foobar/lock/holder ] && echo other-run-kept\n\
         printf 'me\\n pid 1 since x run r1\\n' > /var/lib/foobar/lock/holder\n\
         : > /var/lib/foobar/lock/stop\n\
         {unlock}[ -e /var/lib/foobar/lock/holder ] || [ -e /var/lib/foobar/lock/stop ] || echo own-removed\n"
    ));
    assert!(out.contains("other-run-kept"), "{out}");
    assert!(out.contains("own-removed"), "{out}");

    // A play with a handler, run with a pending record holding another play's line, then
    // with only its own: the other play's line stays; its own are cleared.
    let root = s.root();
    let want = desired_with_services(
        "p",
        vec![],
        vec![file(&format!("{root}/f"), "x\n", 0o644, &["h"])],
        vec![],
        vec![run_handler("h", "true")],
    );
    let hp = plan::diff(&want, &ActualState::default());
    // Alone on its host (no `flock`), and beside other plays (under the record's lock).
    for alone in [true, false] {
        let built = script::build(&ScriptInput {
            play: &want.plays[0],
            changes: hp.changes.iter().filter(|c| c.is_change()).collect(),
            handlers: hp.handlers.iter().collect(),
            run_id: "r1",
            unlock: false,
            keep_backups: 5,
            lock: None,
            alone,
            temp_salt: 0x0123_4567_89ab_cdef,
        })
        .expect("script builds")
        .script;
        assert_eq!(
            built.to_string().contains("with_pending add_pending"),
            !alone
        );
        let play = built.to_stdin().unwrap();
        let p = "/var/lib/foobar/pending-handlers";
        for (before, after) in [("0\\th\\n5\\tother\\n", "5\tother\n"), ("0\\th\\n", "")] {
            let (replies, _, out) = s.run(&format!(
                "mkdir -p /var/lib/foobar && printf '{before}' > {p}\n\
                 sh -s <<'__PLAY__'\n{play}__PLAY__\n\
                 printf 'PENDING<'; cat {p}; echo '>'\n"
            ));
            assert!(replies.contains(&Reply::Done), "{out}");
            assert!(
                out.contains(&format!("PENDING<{after}>")),
                "{alone} {before}: {out}"
            );
            std::fs::remove_file(format!("{root}/f")).unwrap();
        }
    }
}

/// A link's target is whatever its maker wrote: a newline in it must not start a line of the
/// gather's framing. Before, `stat` printed it raw (`QUOTING_STYLE=literal`), and a planted
/// link at a managed path could forge a `#foobar:sha256` line making a changed file look as
/// planned, so `plan` left it alone.
#[test]
fn a_link_target_cannot_forge_gather_lines() {
    let s = Scratch::new();
    let root = s.root();
    let conf = format!("{root}/conf");
    std::fs::write(&conf, "live\n").unwrap();
    let wanted = "want\n";
    let forged = format!(
        "x\n#foobar:sha256\n{}  {conf}\n#foobar:end",
        sha256_hex(wanted.as_bytes())
    );
    std::os::unix::fs::symlink(&forged, format!("{root}/l")).unwrap();
    let want = desired(
        "forge",
        PlayParts {
            packages: vec![],
            entries: vec![
                file(&conf, wanted, 0o644, &[]),
                link(&format!("{root}/l"), &conf, &[]),
            ],
            services: vec![],
            handlers: vec![],
        },
    );
    let (_, _, out) = s.run(&foobar::gather::gather_script(&want, None));
    let stdout = out.split("\n--- stderr\n").next().unwrap();
    let (_, state) = foobar::gather::parse_output("h", stdout.as_bytes()).expect(stdout);
    assert_eq!(
        state.paths[&conf].digest.as_deref(),
        Some(sha256_hex(b"live\n").as_str()),
        "{stdout}"
    );
    assert_eq!(
        state.paths[&format!("{root}/l")].link_target.as_deref(),
        Some(forged.as_str())
    );
    let hp = plan::diff(&want, &state);
    assert!(
        hp.changes.iter().any(|c| c.action == Action::Update),
        "{hp:?}"
    );
}
