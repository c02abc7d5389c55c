//! Shared helpers for the end-to-end tests: the local test hosts (`scripts/lab`), running the
//! real `foobar` binary, SSH into a host, and HTTP through the load balancer. Every address is
//! on loopback (127.0.1.x).
#![allow(dead_code)]

pub mod load;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

pub const REPLICATION_PASSWORD: &str = "Zq7-repl-SECRET-e2e";
pub const APP_DB_PASSWORD: &str = "Zq7-app-SECRET-e2e";
pub const MONITORING_DB_PASSWORD: &str = "Zq7-mon-SECRET-e2e";

/// The lab hosts are shared: end-to-end tests take turns.
static LAB: Mutex<()> = Mutex::new(());

/// The machine-wide lab lock file: held (flock) by a test binary from its first `lab_lock`
/// until it exits, so two test binaries (or two checkouts) never use the hosts at once.
/// `scripts/lab-lock CMD` takes the same lock for a command run by hand and sets
/// `FOOBAR_LAB_LOCKED=1`, which tells the tests it is already held.
pub const LAB_LOCK_FILE: &str = "/run/lock/foobar-lab.lock";

static LAB_FILE: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

pub fn lab_lock() -> MutexGuard<'static, ()> {
    let guard = LAB.lock().unwrap_or_else(|e| e.into_inner());
    if std::env::var_os("FOOBAR_LAB_LOCKED").is_none() {
        LAB_FILE.get_or_init(|| {
            std::fs::create_dir_all("/run/lock").expect("mkdir /run/lock");
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(LAB_LOCK_FILE)
                .expect("open the lab lock file");
            // Blocks while another test binary or `scripts/lab-lock` holds it.
            f.lock().expect("lock the lab");
            f
        });
    }
    guard
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// What a finished process printed and how it exited (-1: killed by a signal).
impl From<std::process::Output> for Run {
    fn from(out: std::process::Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Every output a test sees passes through here, so no test can miss a leaked secret:
/// the test secrets and any `other` secret the test set.
fn check_no_secret(run: &Run, what: &str, other: &[&str]) {
    for s in [
        REPLICATION_PASSWORD,
        APP_DB_PASSWORD,
        MONITORING_DB_PASSWORD,
    ]
    .iter()
    .chain(other)
    {
        assert!(
            !run.stdout.contains(s) && !run.stderr.contains(s),
            "secret leaked by {what}: {run:?}"
        );
    }
}

pub fn lab(args: &[&str]) {
    let out = Command::new(repo().join("scripts/lab"))
        .args(args)
        .output()
        .expect("run scripts/lab");
    assert!(
        out.status.success(),
        "scripts/lab {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn foobar_in(dir: &Path, args: &[&str]) -> Run {
    foobar_with_secrets(dir, args, REPLICATION_PASSWORD, APP_DB_PASSWORD)
}

/// `foobar ARGS` in `dir` with `replication` and `app` as the replication and application
/// database passwords; no output may show them or any test secret.
pub fn foobar_with_secrets(dir: &Path, args: &[&str], replication: &str, app: &str) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_foobar"))
        .args(args)
        .current_dir(dir)
        .env("FOOBAR_REPLICATION_PASSWORD", replication)
        .env("FOOBAR_APP_DB_PASSWORD", app)
        .env("FOOBAR_MYSQLD_EXPORTER_PASSWORD", MONITORING_DB_PASSWORD)
        .env("NO_COLOR", "1")
        .output()
        .expect("run foobar");
    let run = Run::from(out);
    check_no_secret(&run, &format!("foobar {args:?}"), &[replication, app]);
    run
}

/// `foobar ARGS -i inventories/lab.yml` from the repository root.
pub fn foobar(args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-i", "inventories/lab.yml"]);
    foobar_in(&repo(), &all)
}

/// `ssh` into a lab host (`.lab/ssh_config`).
pub fn ssh(host: &str, command: &str) -> Run {
    ssh_with(&repo().join(".lab/ssh_config"), &[], host, command)
}

pub fn ssh_ok(host: &str, command: &str) -> String {
    ssh_ok_with(&repo().join(".lab/ssh_config"), &[], host, command)
}

/// `ssh -F config OPTIONS host command`, for hosts with an ssh config of their own.
pub fn ssh_with(config: &Path, options: &[&str], host: &str, command: &str) -> Run {
    let out = Command::new("ssh")
        .arg("-F")
        .arg(config)
        .args(options)
        .arg(host)
        .arg(command)
        .output()
        .expect("run ssh");
    Run::from(out)
}

/// [`ssh_with`] that must exit 0; its stdout.
pub fn ssh_ok_with(config: &Path, options: &[&str], host: &str, command: &str) -> String {
    let r = ssh_with(config, options, host, command);
    assert_eq!(r.code, 0, "ssh {host} {command}: {r:?}");
    r.stdout
}

/// One HTTP/1.0 request; returns (status, body). `None` when the connection failed.
pub fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: www.foobar.com\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let status = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Retry `f` until it returns Some, for at most `secs` seconds.
pub fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A copy of the project (templates, app, playbook, lab inventory) in a temp dir, for tests
/// that change templates or the playbook to inject a fault.
pub struct Project {
    pub dir: tempfile::TempDir,
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let p = entry.expect("entry").path();
        let name = p.file_name().unwrap();
        if name == "__pycache__" {
            continue;
        }
        if p.is_dir() {
            copy_tree(&p, &to.join(name));
        } else {
            std::fs::copy(&p, to.join(name)).expect("copy");
        }
    }
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        copy_tree(&repo().join("templates"), &root.join("templates"));
        copy_tree(&repo().join("app"), &root.join("app"));
        copy_tree(&repo().join("playbooks"), &root.join("playbooks"));
        std::fs::create_dir_all(root.join("inventories")).unwrap();
        let inv = std::fs::read_to_string(repo().join("inventories/lab.yml"))
            .unwrap()
            .replace(
                "../.lab/ssh_config",
                repo().join(".lab/ssh_config").to_str().unwrap(),
            );
        std::fs::write(root.join("inventories/lab.yml"), inv).unwrap();
        Self { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).expect("read project file")
    }

    pub fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).expect("write project file");
    }

    /// Replace `from` (which must be present) with `to` in a project file.
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    /// `foobar ARGS -i inventories/lab.yml` run in the project.
    pub fn foobar(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-i", "inventories/lab.yml"]);
        foobar_in(self.dir.path(), &all)
    }
}
