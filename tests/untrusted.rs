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
