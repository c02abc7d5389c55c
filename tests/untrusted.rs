//! What an app tree, an inventory or a playbook can reach on the controller (the threat model
//! is docs/design/trust-model.md): each case is the exact input of a finding, run with the
//! built binary in a scratch project, with its whole diagnostic pinned as an insta snapshot
//! (the scratch directory shown as `[PROJECT]`). Nothing here contacts a host: the runs are
//! `render`, or `plan`/`apply` with a fake `ssh` first on PATH that records being called.

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use tempfile::TempDir;

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    /// stderr with the scratch directories replaced by placeholders, for a snapshot.
    fn diagnostic(&self, p: &Project) -> String {
        p.scrub(&self.stderr)
    }
}

/// A scratch project: files written from (path, text) pairs, `@DIR@` replaced by its path.
struct Project {
    dir: TempDir,
    /// Somewhere outside the project (a home directory, another user's files).
    outside: TempDir,
    fake_ssh: TempDir,
}

impl Project {
    fn new(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let p = Project {
            dir,
            outside: tempfile::tempdir().unwrap(),
            fake_ssh: tempfile::tempdir().unwrap(),
        };
        for (path, text) in files {
            p.write(path, text);
        }
        use std::os::unix::fs::PermissionsExt;
        let script = p.fake_ssh.path().join("ssh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"ssh $*\" >> '{}'\necho 'fake ssh: connection refused' >&2\nexit 255\n",
                p.fake_ssh.path().join("called").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn outside(&self) -> &Path {
        self.outside.path()
    }
    fn write(&self, path: &str, text: &str) -> PathBuf {
        let path = self.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text.replace("@DIR@", self.path().to_str().unwrap())).unwrap();
        path
    }
    fn scrub(&self, text: &str) -> String {
        let real = |p: &Path| p.canonicalize().unwrap().display().to_string();
        // `/proc/self` resolves to this run's own pid.
        let mut text = text.to_string();
        let mut from = 0;
        while let Some(at) = text[from..].find("/proc/").map(|a| from + a + 6) {
            let digits = text[at..].bytes().take_while(u8::is_ascii_digit).count();
            if digits > 0 {
                text.replace_range(at..at + digits, "[PID]");
            }
            from = at;
        }
        text.replace(&real(self.outside()), "[OUTSIDE]")
            .replace(&self.outside().display().to_string(), "[OUTSIDE]")
            .replace(&real(self.path()), "[PROJECT]")
            .replace(&self.path().display().to_string(), "[PROJECT]")
    }
    fn ssh_called(&self) -> bool {
        self.fake_ssh.path().join("called").exists()
    }
    /// `foobar <args>` in the project, with the fake ssh and the test secrets.
    fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.path(), args)
    }
    fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        let mut paths = vec![self.fake_ssh.path().to_path_buf()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let mut cmd = cargo_bin_cmd!("foobar");
        cmd.current_dir(cwd)
            .env("PATH", std::env::join_paths(paths).unwrap())
            .env("NO_COLOR", "1")
            .env("HOME", self.outside())
            .env_remove("FOOBAR_INVENTORY")
            .env_remove("FOOBAR_PLAYBOOK")
            .env("FOOBAR_TEST_PASSWORD", "S3cret-Environ-4d1f")
            .args(args)
            .timeout(std::time::Duration::from_secs(60));
        let output = cmd.output().unwrap();
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

const INVENTORY: &str =
    "hosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n";

const SYNC_PLAYBOOK: &str = "plays:\n  - name: app\n    hosts: web\n    sync:\n      - src: ../app\n        dest: /opt/app\n";

const RENDER: &[&str] = &[
    "render",
    "--out",
    "out",
    "-i",
    "inventories/site.yml",
    "-p",
    "playbooks/site.yml",
];

fn refused(p: &Project, run: &Run, snapshot: &str) {
    assert_eq!(run.code, Some(1), "{snapshot}: {run:?}");
    assert!(!p.ssh_called(), "{snapshot}: contacted a host");
    insta::assert_snapshot!(snapshot, run.diagnostic(p));
}

/// A link in a synced app tree (to a private key, to `/proc/self/environ`) used to be
/// followed: its target's body synced to every web host as 0644 and printed by `plan`. It is
/// refused, naming the link and its target, and nothing is written; so are a FIFO and a file
/// others may not read (it would be 0644 on the hosts).
#[test]
fn a_link_or_special_file_in_a_synced_tree_is_refused() {
    let p = Project::new(&[
        ("inventories/site.yml", INVENTORY),
        ("playbooks/site.yml", SYNC_PLAYBOOK),
        ("app/static/index.html", "<h1>hi</h1>\n"),
    ]);
    let key = p.outside().join("id_ed25519");
    std::fs::write(&key, "-----BEGIN OPENSSH PRIVATE KEY-----\n").unwrap();
    let link = p.path().join("app/static/k");
    std::os::unix::fs::symlink(&key, &link).unwrap();
    let run = p.run(RENDER);
    refused(&p, &run, "sync_link_to_a_key");
    assert!(!run.stderr.contains("PRIVATE KEY"));
    assert!(!p.path().join("out").exists());

    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("/proc/self/environ", &link).unwrap();
    let mut json = RENDER.to_vec();
    json.push("--json");
    let run = p.run(&json);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!run.stdout.contains("S3cret-Environ"), "{run:?}");
    assert!(
        run.stdout.contains("symbolic link to /proc/self/environ"),
        "{run:?}"
    );

    std::fs::remove_file(&link).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(&link)
        .status()
        .unwrap();
    assert!(status.success());
    refused(&p, &p.run(RENDER), "sync_fifo");

    std::fs::remove_file(&link).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(&link, "private\n").unwrap();
    std::fs::set_permissions(&link, std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(&p, &p.run(RENDER), "sync_private_mode");

    std::fs::set_permissions(&link, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = p.run(RENDER);
    assert_eq!(run.code, Some(0), "{run:?}");
}

const FILE_PLAYBOOK: &str = "plays:\n  - name: site\n    hosts: all\n    files:\n      - content: \"ssh-ed25519 AAAA planted\\n\"\n        dest: /.ssh/authorized_keys\n";

/// Host and group names became paths under `render --out` (`/root` wrote
/// `/root/.ssh/authorized_keys`, `../../x` climbed out, `""` wrote into DIR itself) and
/// printed raw (a newline, ESC). Each is refused at load, at its line, and nothing is written.
#[test]
fn host_and_group_names_are_words_not_paths() {
    let cases: &[(&str, &str)] = &[
        (
            "name_host_absolute",
            "hosts:\n  \"/root\":\n    address: 10.0.0.11\n",
        ),
        (
            "name_host_climbs",
            "hosts:\n  \"../../x\":\n    address: 10.0.0.11\n",
        ),
        (
            "name_host_empty",
            "hosts:\n  \"\":\n    address: 10.0.0.11\n",
        ),
        (
            "name_host_newline",
            "hosts:\n  \"web\\n01\":\n    address: 10.0.0.11\n",
        ),
        (
            "name_host_escape",
            "hosts:\n  \"web\\e[31m01\":\n    address: 10.0.0.11\n",
        ),
        (
            "name_host_dash",
            "hosts:\n  \"-oProxyCommand=x\":\n    address: 10.0.0.11\n",
        ),
        (
            "name_group_dots",
            "hosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  \"..\":\n    hosts: [web-01]\n",
        ),
    ];
    for (snapshot, inventory) in cases {
        let p = Project::new(&[
            ("inventories/site.yml", inventory),
            ("playbooks/site.yml", FILE_PLAYBOOK),
        ]);
        let run = p.run(RENDER);
        refused(&p, &run, snapshot);
        assert!(!p.path().join("out").exists(), "{snapshot}");
        assert!(!p.path().join("x").exists(), "{snapshot}");
    }
}

/// Every write under `render --out` is a new file, never through a link: a link planted in an
/// earlier render's tree (where a directory was) is refused, and its target stays empty.
#[test]
fn render_out_never_writes_through_a_link() {
    let p = Project::new(&[
        ("inventories/site.yml", INVENTORY),
        ("playbooks/site.yml", FILE_PLAYBOOK),
    ]);
    assert_eq!(p.run(RENDER).code, Some(0));
    let planted = p.path().join("out/web-01/.ssh");
    std::fs::remove_dir_all(&planted).unwrap();
    std::os::unix::fs::symlink(p.outside(), &planted).unwrap();
    let run = p.run(RENDER);
    assert_eq!(run.code, Some(1), "{run:?}");
    insta::assert_snapshot!("render_out_planted_link", run.diagnostic(&p));
    assert_eq!(std::fs::read_dir(p.outside()).unwrap().count(), 0);
}

/// `render --with-secrets` writes real values: never into a directory someone else owns (or
/// a link to one).
#[test]
fn with_secrets_refuses_an_out_directory_it_does_not_own() {
    let p = Project::new(&[
        ("inventories/site.yml", INVENTORY),
        ("playbooks/site.yml", FILE_PLAYBOOK),
    ]);
    let mut args = RENDER.to_vec();
    args.push("--with-secrets");
    std::os::unix::fs::symlink(p.outside(), p.path().join("out")).unwrap();
    let run = p.run(&args);
    assert_eq!(run.code, Some(1), "{run:?}");
    insta::assert_snapshot!("with_secrets_out_link", run.diagnostic(&p));
    std::fs::remove_file(p.path().join("out")).unwrap();
    // Someone else's directory: only root can make one for the test.
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::fs::create_dir(p.path().join("out")).unwrap();
        std::os::unix::fs::chown(p.path().join("out"), Some(65534), Some(65534)).unwrap();
        let run = p.run(&args);
        assert_eq!(run.code, Some(1), "{run:?}");
        insta::assert_snapshot!("with_secrets_out_not_owned", run.diagnostic(&p));
        std::fs::remove_dir(p.path().join("out")).unwrap();
    } else {
        eprintln!("not root: the case of another user's --out directory is not run");
    }
    let run = p.run(&args);
    assert_eq!(run.code, Some(0), "{run:?}");
}

fn template_playbook(template: &str) -> String {
    format!(
        "plays:\n  - name: site\n    hosts: web\n    files:\n      - template: {template}\n        dest: /etc/foobar/t.conf\n"
    )
}

/// A playbook read any file on the controller: `template: /proc/self/environ` rendered
/// foobar's environment. Every path it names is confined to the project after links are
/// resolved, and must be a regular file (or a directory for `templates_dir:` and `sync:`).
#[test]
fn a_playbook_reads_only_files_of_its_project() {
    let p = Project::new(&[
        ("inventories/site.yml", INVENTORY),
        ("templates/t.j2", "fine\n"),
    ]);
    std::fs::write(p.outside().join("secret.j2"), "outside\n").unwrap();
    std::os::unix::fs::symlink(
        p.outside().join("secret.j2"),
        p.path().join("templates/link.j2"),
    )
    .unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(p.path().join("templates/fifo.j2"))
        .status()
        .unwrap();
    assert!(fifo.success());
    let cases: &[(&str, String)] = &[
        (
            "playbook_template_environ",
            template_playbook("/proc/self/environ"),
        ),
        (
            "playbook_template_climbs",
            template_playbook("../../../../../../etc/passwd"),
        ),
        ("playbook_template_link_out", template_playbook("link.j2")),
        (
            "playbook_templates_dir_outside",
            format!(
                "templates_dir: {}\n{}",
                p.outside().display(),
                template_playbook("secret.j2")
            ),
        ),
        (
            "playbook_sync_outside",
            format!(
                "plays:\n  - name: app\n    hosts: web\n    sync:\n      - src: {}\n        dest: /opt/app\n",
                p.outside().display()
            ),
        ),
        ("playbook_template_fifo", template_playbook("fifo.j2")),
    ];
    for (snapshot, playbook) in cases {
        p.write("playbooks/site.yml", playbook);
        let run = p.run(RENDER);
        refused(&p, &run, snapshot);
        assert!(!run.stderr.contains("S3cret-Environ"), "{snapshot}");
        assert!(!p.path().join("out").exists(), "{snapshot}");
    }
    // Inside the project, through a link too.
    std::os::unix::fs::symlink("t.j2", p.path().join("templates/alias.j2")).unwrap();
    p.write("playbooks/site.yml", &template_playbook("alias.j2"));
    let run = p.run(RENDER);
    assert_eq!(run.code, Some(0), "{run:?}");
}

/// A world-writable `foobar.toml` two levels up silently chose the inventory and playbook.
/// Discovery stops at a repository's root, and a config anyone may write (or someone else
/// owns) is ignored with a warning; one used from above the working directory is named.
#[test]
fn foobar_toml_is_found_only_where_it_can_be_trusted() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new(&[
        (
            "foobar.toml",
            "inventory = \"inventories/site.yml\"\nplaybook = \"playbooks/site.yml\"\n",
        ),
        ("inventories/site.yml", INVENTORY),
        ("playbooks/site.yml", &template_playbook("t.j2")),
        ("templates/t.j2", "fine\n"),
        ("work/sub/.keep", ""),
    ]);
    let toml = p.path().join("foobar.toml");
    let sub = p.path().join("work/sub");
    let render = ["render", "--out", "o"];
    // Trusted, above: used, and said.
    let run = p.run_in(&sub, &render);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        p.scrub(&run.stderr).lines().next(),
        Some("note: using [PROJECT]/foobar.toml"),
        "{run:?}"
    );
    // In the working directory: said with -v only.
    let run = p.run(&["render", "--out", "o2"]);
    assert!(!run.stderr.contains("note: using"), "{run:?}");
    let run = p.run(&["render", "--out", "o3", "-v"]);
    assert!(run.stderr.contains("note: using"), "{run:?}");

    std::fs::set_permissions(&toml, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = p.run_in(&sub, &render);
    assert_eq!(run.code, Some(1), "{run:?}");
    insta::assert_snapshot!("config_world_writable", run.diagnostic(&p));
    std::fs::set_permissions(&toml, std::fs::Permissions::from_mode(0o644)).unwrap();

    // A repository's root ends the walk.
    std::fs::create_dir(p.path().join("work/.git")).unwrap();
    let run = p.run_in(&sub, &render);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(!run.stderr.contains("foobar.toml"), "{run:?}");
    std::fs::remove_dir(p.path().join("work/.git")).unwrap();

    // Someone else's: only root can make one for the test.
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&toml, Some(65534), Some(65534)).unwrap();
        let run = p.run_in(&sub, &render);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stderr.contains("belongs to uid 65534"), "{run:?}");
    }
}

/// A ladder of groups, `levels` deep, two groups per level, each with both groups of the
/// next level as children; one host at the bottom.
fn ladder(levels: usize) -> String {
    let mut inv = String::from(
        "hosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  web:\n    children: [l0a, l0b]\n",
    );
    for l in 0..levels {
        for side in ["a", "b"] {
            if l + 1 < levels {
                inv.push_str(&format!(
                    "  l{l}{side}:\n    children: [l{n}a, l{n}b]\n",
                    n = l + 1
                ));
            } else {
                inv.push_str(&format!("  l{l}{side}:\n    hosts: [web-01]\n"));
            }
        }
    }
    inv
}

/// A 2.7 KB inventory, a ladder of 40 levels, never finished loading (each path re-walked:
/// doubling per level). Each group is resolved once now; past 64 levels it is a typed error.
/// No time is asserted (the run must simply end), it is printed.
#[test]
fn nested_groups_resolve_in_linear_time_with_a_depth_limit() {
    let p = Project::new(&[
        ("inventories/site.yml", &ladder(40)),
        ("playbooks/site.yml", &template_playbook("t.j2")),
        ("templates/t.j2", "fine\n"),
    ]);
    let started = std::time::Instant::now();
    let run = p.run(RENDER);
    eprintln!("40-level ladder: render took {:?}", started.elapsed());
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(p.path().join("out/web-01/etc/foobar/t.conf").exists());

    p.write("inventories/site.yml", &ladder(70));
    let run = p.run(RENDER);
    refused(&p, &run, "groups_too_deep");
}

/// `connect_timeout: 18446744073709551615` made `plan` panic (exit 101, overflow in a
/// deadline); `command_timeout` near 2^64 did so for `apply --dry-run` on a local host; the
/// firewall's confirm timeout had the same arithmetic. Each is refused at load, at its line.
#[test]
fn huge_timeouts_are_refused_at_load() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "timeout_connect",
            "ssh:\n  connect_timeout: 18446744073709551615\nhosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n",
            &[
                "plan",
                "-i",
                "inventories/site.yml",
                "-p",
                "playbooks/site.yml",
            ],
        ),
        (
            "timeout_command",
            "ssh:\n  command_timeout: 18446744073709551000\nhosts:\n  web-01:\n    connection: local\ngroups:\n  web:\n    hosts: [web-01]\n",
            &[
                "apply",
                "--dry-run",
                "-i",
                "inventories/site.yml",
                "-p",
                "playbooks/site.yml",
            ],
        ),
        (
            "timeout_control_persist",
            "ssh:\n  control_persist: 18446744073709551615\nhosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n",
            &[
                "plan",
                "-i",
                "inventories/site.yml",
                "-p",
                "playbooks/site.yml",
            ],
        ),
        (
            "timeout_firewall_confirm",
            "vars:\n  firewall_confirm_timeout: 18446744073709551615\nhosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n",
            &[
                "plan",
                "-i",
                "inventories/site.yml",
                "-p",
                "playbooks/site.yml",
            ],
        ),
    ];
    let variables = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/variables.yml"),
    )
    .unwrap();
    for (snapshot, inventory, args) in cases {
        let p = Project::new(&[
            ("inventories/site.yml", inventory),
            ("playbooks/site.yml", &template_playbook("t.j2")),
            ("playbooks/variables.yml", &variables),
            ("templates/t.j2", "fine\n"),
        ]);
        let run = p.run(args);
        assert!(!run.stderr.contains("panicked"), "{snapshot}: {run:?}");
        refused(&p, &run, snapshot);
    }
}

const PLAN: &[&str] = &[
    "plan",
    "-i",
    "inventories/site.yml",
    "-p",
    "playbooks/site.yml",
];

fn with(args: &[&'static str], more: &[&'static str]) -> Vec<&'static str> {
    args.iter().chain(more).copied().collect()
}

/// A secret `{ file: /dev/zero }` read 2 GB before failing and a FIFO hung the run: a
/// secret's file is a regular file of at most 64 KiB.
#[test]
fn a_secret_file_is_a_small_regular_file() {
    let p = Project::new(&[
        ("playbooks/site.yml", &template_playbook("t.j2")),
        ("templates/t.j2", "x\n"),
    ]);
    std::fs::create_dir_all(p.path().join("inventories")).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(p.path().join("inventories/fifo"))
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(p.path().join("inventories/big"), vec![b'x'; 100_000]).unwrap();
    for (snapshot, file) in [
        ("secret_dev_zero", "/dev/zero"),
        ("secret_fifo", "fifo"),
        ("secret_too_big", "big"),
    ] {
        p.write(
            "inventories/site.yml",
            &format!("secrets:\n  app_db_password: {{ file: {file} }}\n{INVENTORY}"),
        );
        let started = std::time::Instant::now();
        let run = p.run(PLAN);
        eprintln!("{snapshot}: {:?}", started.elapsed());
        refused(&p, &run, snapshot);
    }
}

/// `-l ''`, `-l '!'` and `-l ','` selected every host; `-l '!*'` selected none and `apply`
/// exited 0. The first three are usage errors everywhere; an apply that selects no host is
/// an error (a plan says "nothing to do").
#[test]
fn an_empty_limit_is_a_usage_error_and_an_empty_apply_fails() {
    let p = Project::new(&[
        ("inventories/site.yml", INVENTORY),
        ("playbooks/site.yml", &template_playbook("t.j2")),
        ("templates/t.j2", "x\n"),
    ]);
    for (snapshot, limit) in [
        ("limit_empty", ""),
        ("limit_bang", "!"),
        ("limit_comma", ","),
    ] {
        let run = p.run(&with(PLAN, &["-l", limit]));
        refused(&p, &run, snapshot);
    }
    let run = p.run(&with(PLAN, &["-l", "!*"]));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("nothing to do"), "{run:?}");
    let run = p.run(&[
        "apply",
        "--yes",
        "-l",
        "!*",
        "-i",
        "inventories/site.yml",
        "-p",
        "playbooks/site.yml",
    ]);
    refused(&p, &run, "apply_selects_no_host");
}

/// A local project whose one file's body holds `body`.
fn local_project(body: &str) -> Project {
    Project::new(&[
        (
            "inventories/site.yml",
            "hosts:\n  web-01:\n    connection: local\ngroups:\n  web:\n    hosts: [web-01]\n",
        ),
        (
            "playbooks/site.yml",
            "plays:\n  - name: site\n    hosts: web\n    files:\n      - template: t.j2\n        dest: \"@DIR@/live/t.conf\"\n",
        ),
        ("templates/t.j2", body),
    ])
}

/// `plan > /dev/full` exited 0 with nothing written: an output that cannot be written fails
/// the command (a closed pipe still ends it quietly).
#[test]
fn a_failed_write_to_stdout_fails_the_command() {
    let p = local_project("hello\n");
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin!("foobar"));
    let output = cmd
        .current_dir(p.path())
        .env("NO_COLOR", "1")
        .env_remove("FOOBAR_INVENTORY")
        .env_remove("FOOBAR_PLAYBOOK")
        .args(PLAN)
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write to stdout: No space left on device"),
        "{stderr}"
    );
}

/// A `host_vars` file linked to a `.env` was followed, and its parse error framed the
/// target's first line (a password). It is refused, with no line of it shown.
#[test]
fn a_linked_var_file_is_refused() {
    let p = Project::new(&[
        ("inventories/site.yml", INVENTORY),
        ("playbooks/site.yml", &template_playbook("t.j2")),
        ("templates/t.j2", "x\n"),
        (".env", "DB_PASSWORD=S3cret-Dotenv-77aa\n"),
    ]);
    std::fs::create_dir_all(p.path().join("inventories/host_vars")).unwrap();
    std::os::unix::fs::symlink(
        "../../.env",
        p.path().join("inventories/host_vars/web-01.yml"),
    )
    .unwrap();
    let run = p.run(PLAN);
    assert!(!run.stderr.contains("S3cret-Dotenv"), "{run:?}");
    refused(&p, &run, "host_vars_link");
}

/// `dest: /` was taken for a file; YAML tags foobar does not know were ignored, `!!binary`
/// decoded silently and integers beyond 64 bits became floats. Each is refused at its line.
#[test]
fn a_root_dest_and_silent_yaml_readings_are_refused() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "dest_root",
            INVENTORY,
            "plays:\n  - name: site\n    hosts: web\n    files:\n      - content: x\n        dest: /\n",
        ),
        (
            "yaml_unknown_tag",
            "vars:\n  token: !vault abc\nhosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n",
            "plays: []\n",
        ),
        (
            "yaml_binary",
            "vars:\n  motd: !!binary aGVsbG8=\nhosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n",
            "plays: []\n",
        ),
        (
            "yaml_big_integer",
            "vars:\n  server_id: 123456789012345678901234567890\nhosts:\n  web-01:\n    address: 10.0.0.11\ngroups:\n  web:\n    hosts: [web-01]\n",
            "plays: []\n",
        ),
    ];
    for (snapshot, inventory, playbook) in cases {
        let p = Project::new(&[
            ("inventories/site.yml", inventory),
            ("playbooks/site.yml", playbook),
        ]);
        refused(&p, &p.run(PLAN), snapshot);
    }
}

/// `show PLANFILE` printed escape sequences from the file raw (and `plan` those from a
/// file's body): control characters are shown escaped.
#[test]
fn plans_print_control_characters_escaped() {
    let p = local_project("title \u{1b}]0;owned\u{7} clear \u{1b}[2J\rback\n");
    p.write("live/t.conf", "old\n");
    let run = p.run(&with(PLAN, &["--out", "saved.plan"]));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\r'),
        "{run:?}"
    );
    assert!(run.stdout.contains("\\u{1b}[2J"), "{run:?}");
    let run = p.run(&["show", "saved.plan"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\u{7}'),
        "{run:?}"
    );
    assert!(run.stdout.contains("\\u{1b}]0;owned\\u{7}"), "{run:?}");
}

/// MySQL replication without TLS (production's flavor) hands the replication password to a
/// man in the middle: refused before anything connects, with what to set; `render` (offline)
/// still works, and MariaDB or `replication_ssl: true` pass.
#[test]
fn mysql_replication_without_tls_is_refused_before_connecting() {
    let inventory = |vars: &str| {
        format!(
            "vars:\n  app_db_host_pattern: \"10.0.0.%\"\n  replication_host_pattern: \"10.0.0.%\"\n  flavor: {vars}\nsecrets:\n  replication_password: {{ env: FOOBAR_TEST_PASSWORD }}\n  app_db_password: {{ env: FOOBAR_TEST_PASSWORD }}\n  db_tls_ca: {{ env: FOOBAR_TEST_PASSWORD }}\n  db_tls_cert: {{ env: FOOBAR_TEST_PASSWORD }}\n  db_tls_key: {{ env: FOOBAR_TEST_PASSWORD }}\nhosts:\n  db-01:\n    address: 10.0.0.11\n    private_ip: 10.0.0.11\n    vars: {{ server_id: 1 }}\n  db-02:\n    address: 10.0.0.12\n    private_ip: 10.0.0.12\n    vars: {{ server_id: 2 }}\ngroups:\n  db_primary:\n    hosts: [db-01]\n  db_replica:\n    hosts: [db-02]\n"
        )
    };
    let playbook = "plays:\n  - name: database primary\n    hosts: db_primary\n    database: primary\n  - name: database replica\n    hosts: db_replica\n    database: replica\n";
    let variables = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("playbooks/variables.yml"),
    )
    .unwrap();
    let p = Project::new(&[
        ("inventories/site.yml", &inventory("mysql")),
        ("playbooks/site.yml", playbook),
        ("playbooks/variables.yml", &variables),
    ]);
    refused(&p, &p.run(PLAN), "replication_mysql_in_clear");
    let run = p.run(RENDER);
    assert_eq!(run.code, Some(0), "{run:?}");
    for flavor in ["mariadb", "mysql\n  replication_ssl: true"] {
        p.write("inventories/site.yml", &inventory(flavor));
        let run = p.run(PLAN);
        assert!(!run.stderr.contains("without TLS"), "{flavor}: {run:?}");
        assert!(
            p.ssh_called(),
            "{flavor}: it did not get as far as connecting: {run:?}"
        );
    }
}
