//! Faults, injected for real on the local test hosts: a template the validator rejects, a
//! handler that fails after the swap, a run that dies before its handler, a stale saved plan,
//! two applies at once, a lock left by a dead run, Ctrl-C mid-apply, unreachable hosts,
//! refused logins and a command that outlives its timeout. Each asserts the host's files, the
//! service's health and the exit code.
//!
//! One test per promise. They share one applied stack (set up by the first test that runs)
//! and each starts by putting the project and lb-01 back to a known, converged state, so one
//! failing test does not hide the others.

mod common;

use common::*;

/// Plays appended to the project's playbook: a probe file on lb-01 whose handler can be made
/// to fail, die, or dawdle by a flag file in the host's private /tmp.
const FAULT_PLAYS: &str = r#"
  - name: fault probe
    hosts: lb-01
    files:
      - content: "{{ fault_version }}\n"
        dest: /etc/foobar-fault/probe.conf
        mode: "0640"
        notify: [probe handler]
    sync:
      - src: ../fault-files
        dest: /opt/foobar-fault
    handlers:
      - name: probe handler
        run: >-
          if [ -f /tmp/fault-fail ]; then echo "handler refused" >&2; exit 1; fi;
          if [ -f /tmp/fault-die ]; then rm -f /tmp/fault-die; kill -9 $$; fi;
          if [ -f /tmp/fault-slow ]; then touch /tmp/fault-slow-started; sleep 6; fi;
          touch /tmp/fault-handler-ran

  - name: fault after
    hosts: lb-01
    files:
      - content: "{{ fault_version }}\n"
        dest: /etc/foobar-fault/after.conf
"#;

fn probe() -> String {
    ssh_ok("lb-01", "cat /etc/foobar-fault/probe.conf")
}

fn lb_serves() -> bool {
    eventually(10, || {
        http("127.0.1.1:80", "GET", "/", "").filter(|(s, _)| *s == 200)
    })
    .is_some()
}

fn no_temp_files(host: &str) {
    let left = ssh_ok(host, "find /etc /opt -name '.foobar-*'");
    assert!(left.trim().is_empty(), "temp files left on {host}: {left}");
}

/// The shared stack: the lab project with the fault plays, and the versions it is at.
struct Fixture {
    p: Project,
    /// The pristine playbook, inventory and haproxy template (fault plays included), with
    /// `fault_version: "1"` and `app_version: "1"`.
    site: String,
    inventory: String,
    haproxy: String,
    /// The large binary file synced to lb-01.
    tool: Vec<u8>,
    fault: std::cell::RefCell<String>,
    fault_n: std::cell::Cell<u32>,
    app_n: std::cell::Cell<u32>,
}

static FIXTURE: std::sync::Mutex<Option<Fixture>> = std::sync::Mutex::new(None);

fn fixture() -> std::sync::MutexGuard<'static, Option<Fixture>> {
    FIXTURE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The shared stack, created on first use (bare hosts, first apply), then reset to a known,
/// converged state: pristine project files at the current versions, no fault flag on lb-01.
fn ready(slot: &mut Option<Fixture>) -> &Fixture {
    let f = slot.get_or_insert_with(|| {
        lab(&["reset"]);
        let p = Project::new();
        let site = format!("{}{FAULT_PLAYS}", p.read("playbooks/site.yml"));
        let inventory =
            p.read("inventories/lab.yml")
                .replacen("vars:\n", "vars:\n  fault_version: \"1\"\n", 1);
        let haproxy = p.read("templates/haproxy/haproxy.cfg.j2");
        // A binary file over 1 MiB, executable, in a directory the host does not have yet.
        let tool: Vec<u8> = (0..1_300_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        Fixture {
            p,
            site,
            inventory,
            haproxy,
            tool,
            fault: std::cell::RefCell::new("1".into()),
            fault_n: std::cell::Cell::new(1),
            app_n: std::cell::Cell::new(1),
        }
    });
    f.reset();
    f
}

impl Fixture {
    fn reset(&self) {
        let p = &self.p;
        p.write("playbooks/site.yml", &self.site);
        p.write("templates/haproxy/haproxy.cfg.j2", &self.haproxy);
        let inventory = self
            .inventory
            .replacen(
                "fault_version: \"1\"",
                &format!("fault_version: \"{}\"", self.fault.borrow()),
                1,
            )
            .replacen(
                "app_version: \"1\"",
                &format!("app_version: \"{}\"", self.app_n.get()),
                1,
            );
        p.write("inventories/lab.yml", &inventory);
        p.write("fault-files/small.txt", "small\n");
        std::fs::create_dir_all(p.path("fault-files/bin/deep")).unwrap();
        std::fs::write(p.path("fault-files/bin/deep/tool"), &self.tool).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            p.path("fault-files/bin/deep/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        ssh_ok(
            "lb-01",
            "rm -f /tmp/fault-fail /tmp/fault-die /tmp/fault-slow /tmp/fault-slow-started",
        );
        let converge = p.foobar(&["apply", "--yes", "--break-lock"]);
        assert_eq!(
            converge.code, 0,
            "the shared stack did not converge: {converge:?}"
        );
    }

    /// The probe file's expected content now.
    fn fault_line(&self) -> String {
        format!("{}\n", self.fault.borrow())
    }

    /// Change `fault_version` in the inventory to `to`.
    fn set_fault(&self, to: &str) {
        let from = self.fault.replace(to.to_string());
        self.p.edit(
            "inventories/lab.yml",
            &format!("fault_version: \"{from}\""),
            &format!("fault_version: \"{to}\""),
        );
    }

    /// A new `fault_version`; returns the probe file's expected content.
    fn bump_fault(&self) -> String {
        self.fault_n.set(self.fault_n.get() + 1);
        self.set_fault(&self.fault_n.get().to_string());
        self.fault_line()
    }

    /// A new `app_version` (restarts the app on the web hosts); returns it.
    fn bump_app(&self) -> u32 {
        let from = self.app_n.get();
        self.app_n.set(from + 1);
        self.p.edit(
            "inventories/lab.yml",
            &format!("app_version: \"{from}\""),
            &format!("app_version: \"{}\"", from + 1),
        );
        from + 1
    }
}

#[test]
fn large_binary_files_are_compared_by_checksum_and_modes_set_exactly() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    let big = f.tool.clone();
    assert_eq!(probe(), f.fault_line());
    assert_eq!(
        ssh_ok(
            "lb-01",
            "stat -c %a /opt/foobar-fault/bin/deep/tool /opt/foobar-fault/bin/deep /etc/foobar-fault/probe.conf"
        ),
        "755\n755\n640\n"
    );
    let digest = sha256(&big);
    assert!(ssh_ok("lb-01", "sha256sum /opt/foobar-fault/bin/deep/tool").starts_with(&digest));

    // A large binary file is compared by checksum and shown as such.
    let mut changed = big.clone();
    changed[1000] ^= 0xff;
    std::fs::write(p.path("fault-files/bin/deep/tool"), &changed).unwrap();
    let plan = p.foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout.contains("update file /opt/foobar-fault/bin/deep/tool (binary or large, changed (compared by checksum))"),
        "{plan:?}"
    );
    assert_eq!(p.foobar(&["apply", "--yes"]).code, 0);
}

#[test]
fn a_file_the_validator_rejects_never_replaces_the_live_one() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 1. The validator rejects the new haproxy.cfg: the live file is untouched, HAProxy keeps
    //    serving, the other hosts carry on, and the validator's own words are shown.
    let live_cfg = ssh_ok("lb-01", "sha256sum /etc/haproxy/haproxy.cfg");
    p.edit(
        "templates/haproxy/haproxy.cfg.j2",
        "    balance roundrobin\n",
        "    balance roundrobin\n    bogus_directive on\n",
    );
    let app = f.bump_app();
    let bad = p.foobar(&["apply", "--yes"]);
    assert_eq!(bad.code, 3, "{bad:?}");
    assert!(
        bad.stdout
            .contains("validate /etc/haproxy/haproxy.cfg failed"),
        "{bad:?}"
    );
    assert!(
        bad.stdout.contains("bogus_directive"),
        "the validator's output is missing: {bad:?}"
    );
    assert!(
        bad.stdout.contains("no live file on lb-01 was replaced"),
        "{bad:?}"
    );
    assert_eq!(
        ssh_ok("lb-01", "sha256sum /etc/haproxy/haproxy.cfg"),
        live_cfg
    );
    assert!(
        lb_serves(),
        "HAProxy stopped serving after a rejected config"
    );
    assert!(
        ssh_ok("web-01", "cat /etc/systemd/system/foobar-app.service")
            .contains(&format!("FOOBAR_APP_VERSION={app}"))
    );
    no_temp_files("lb-01");
    p.edit(
        "templates/haproxy/haproxy.cfg.j2",
        "    bogus_directive on\n",
        "",
    );
    assert_eq!(p.foobar(&["apply", "--yes"]).code, 0);
}

#[test]
fn a_failing_handler_restores_the_files_and_reports_both_errors() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 2. A handler fails after the swap: the previous file comes back, the handler runs again,
    //    both errors are reported.
    ssh_ok("lb-01", "touch /tmp/fault-fail");
    let old = f.fault_line();
    let new = f.bump_fault();
    let rolled = p.foobar(&["apply", "--yes"]);
    assert_eq!(rolled.code, 3, "{rolled:?}");
    assert!(
        rolled
            .stdout
            .contains("handler `probe handler` failed, files rolled back"),
        "{rolled:?}"
    );
    assert_eq!(
        rolled.stdout.matches("handler refused").count(),
        2,
        "{rolled:?}"
    );
    assert_eq!(probe(), old);
    ssh_ok("lb-01", "rm -f /tmp/fault-fail");
    assert_eq!(p.foobar(&["apply", "--yes"]).code, 0);
    assert_eq!(probe(), new);
    // Backups: one root-only directory per run, each file with its original's mode.
    for mode in ssh_ok("lb-01", "stat -c %a /var/backups/foobar/*").lines() {
        assert_eq!(mode, "700");
    }
    let backups = ssh_ok(
        "lb-01",
        "find /var/backups/foobar -name probe.conf -exec stat -c %a {} +",
    );
    assert!(
        !backups.is_empty() && backups.lines().all(|m| m == "640"),
        "{backups}"
    );
}

#[test]
fn a_handler_left_pending_by_a_dead_run_runs_next_time() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 3. The run dies after the swap, before its handler: the next run still runs it.
    ssh_ok(
        "lb-01",
        "rm -f /tmp/fault-handler-ran; touch /tmp/fault-die",
    );
    let new = f.bump_fault();
    let died = p.foobar(&["apply", "--yes"]);
    assert_eq!(died.code, 3, "{died:?}");
    assert_eq!(probe(), new);
    let pending = p.foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(pending.code, 2, "{pending:?}");
    assert!(
        pending
            .stdout
            .contains("run handler `probe handler` (left pending by an interrupted run)"),
        "{pending:?}"
    );
    assert_eq!(p.foobar(&["apply", "--yes"]).code, 0);
    ssh_ok("lb-01", "test -f /tmp/fault-handler-ran");
    assert_eq!(p.foobar(&["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn a_saved_plan_is_applied_exactly_or_refused_when_stale() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 4. A saved plan is applied exactly, or refused when the host or the templates moved.
    let v = f.bump_fault();
    let saved = p.path("plan.json");
    let planned = p.foobar(&["plan", "--out", saved.to_str().unwrap()]);
    assert_eq!(planned.code, 0, "{planned:?}");
    let plan_text = std::fs::read_to_string(&saved).unwrap();
    assert!(!plan_text.contains(REPLICATION_PASSWORD) && !plan_text.contains(APP_DB_PASSWORD));
    ssh_ok("lb-01", "echo hand > /etc/foobar-fault/probe.conf");
    let stale = p.foobar(&["apply", saved.to_str().unwrap(), "--yes"]);
    assert_eq!(stale.code, 3, "{stale:?}");
    assert!(stale.stdout.contains("plan is stale"), "{stale:?}");
    assert_eq!(probe(), "hand\n");
    let planned = p.foobar(&["plan", "--out", saved.to_str().unwrap()]);
    assert_eq!(planned.code, 0);
    f.set_fault(&format!("{}b", v.trim()));
    let moved = p.foobar(&["apply", saved.to_str().unwrap(), "--yes"]);
    assert_eq!(moved.code, 1, "{moved:?}");
    assert!(
        moved.stderr.contains("renders differently now"),
        "{moved:?}"
    );
    f.set_fault(v.trim());
    let exact = p.foobar(&["apply", saved.to_str().unwrap(), "--yes"]);
    assert_eq!(exact.code, 0, "{exact:?}");
    assert_eq!(probe(), v);
}

#[test]
fn two_applies_never_work_on_one_host_at_once() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 5. Two applies at once: the second is refused on the locked host and says by whom.
    ssh_ok(
        "lb-01",
        "rm -f /tmp/fault-slow-started; touch /tmp/fault-slow",
    );
    f.bump_fault();
    let project_dir = p.dir.path().to_path_buf();
    let first = std::thread::spawn(move || {
        foobar_in(
            &project_dir,
            &["apply", "--yes", "-i", "inventories/lab.yml"],
        )
    });
    assert!(
        eventually(20, || (ssh("lb-01", "test -f /tmp/fault-slow-started")
            .code
            == 0)
            .then_some(()))
        .is_some()
    );
    let second = p.foobar(&["apply", "--yes", "--limit", "lb-01"]);
    assert_eq!(second.code, 3, "{second:?}");
    assert!(
        second.stdout.contains("locked by another run"),
        "{second:?}"
    );
    assert!(
        second.stdout.contains(" pid "),
        "the holder is not named: {second:?}"
    );
    let first = first.join().unwrap();
    assert_eq!(first.code, 0, "{first:?}");
    ssh_ok("lb-01", "rm -f /tmp/fault-slow /tmp/fault-slow-started");
}

#[test]
fn a_dead_runs_lock_is_taken_only_with_break_lock() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 6. A lock left by a dead run is detected, and only --break-lock takes it.
    let machine = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    ssh_ok(
        "lb-01",
        &format!(
            "mkdir -p /var/lib/foobar/lock && echo 'root@{} pid 4194000 since 20260101T000000Z run dead' > /var/lib/foobar/lock/holder",
            machine.trim()
        ),
    );
    let old = f.fault_line();
    let new = f.bump_fault();
    let locked = p.foobar(&["apply", "--yes"]);
    assert_eq!(locked.code, 3, "{locked:?}");
    assert!(locked.stdout.contains("no longer alive"), "{locked:?}");
    assert!(locked.stdout.contains("--break-lock"), "{locked:?}");
    assert_eq!(probe(), old);
    let broken = p.foobar(&["apply", "--yes", "--break-lock"]);
    assert_eq!(broken.code, 0, "{broken:?}");
    assert_eq!(probe(), new);
}

#[test]
fn ctrl_c_finishes_the_running_step_and_starts_no_new_one() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 7. Ctrl-C mid-apply: the running step finishes, no new play starts, the report says so,
    //    and no half-written file exists.
    ssh_ok(
        "lb-01",
        "rm -f /tmp/fault-slow-started; touch /tmp/fault-slow",
    );
    let old = f.fault_line();
    let new = f.bump_fault();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_foobar"))
        .args(["apply", "--yes", "-i", "inventories/lab.yml"])
        .current_dir(p.dir.path())
        .env("FOOBAR_REPLICATION_PASSWORD", REPLICATION_PASSWORD)
        .env("FOOBAR_APP_DB_PASSWORD", APP_DB_PASSWORD)
        .env("FOOBAR_MYSQLD_EXPORTER_PASSWORD", "Zq7-mon-SECRET-e2e")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn foobar");
    assert!(
        eventually(20, || (ssh("lb-01", "test -f /tmp/fault-slow-started")
            .code
            == 0)
            .then_some(()))
        .is_some()
    );
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert_eq!(probe(), new, "the running play finished");
    ssh_ok("lb-01", "test -f /tmp/fault-handler-ran");
    assert_eq!(
        ssh_ok("lb-01", "cat /etc/foobar-fault/after.conf"),
        old,
        "a new play started after Ctrl-C: {stdout}"
    );
    no_temp_files("lb-01");
    ssh_ok("lb-01", "rm -f /tmp/fault-slow /tmp/fault-slow-started");
    assert_eq!(p.foobar(&["apply", "--yes"]).code, 0);
}

#[test]
fn a_command_past_its_timeout_fails_its_host_only() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 8. A command that outlives its timeout: that host fails with the reason, the remote
    //    command does not linger, the other hosts carry on.
    ssh_ok("lb-01", "touch /tmp/fault-slow");
    p.edit(
        "inventories/lab.yml",
        "  connect_timeout: 5\n",
        "  connect_timeout: 5\n  command_timeout: 2\n",
    );
    f.bump_fault();
    let app = f.bump_app();
    // All at once: a rollout would (rightly) stop at the first host that fails.
    let slow = p.foobar(&["apply", "--yes", "--serial", "0"]);
    assert_eq!(slow.code, 3, "{slow:?}");
    assert!(slow.stdout.contains("timed out after 2 s"), "{slow:?}");
    assert!(
        ssh_ok("web-02", "cat /etc/systemd/system/foobar-app.service")
            .contains(&format!("FOOBAR_APP_VERSION={app}"))
    );
    std::thread::sleep(std::time::Duration::from_secs(8));
    assert!(
        !ssh_ok("lb-01", "ps -eo args").contains("sleep 6"),
        "the remote command outlived its timeout"
    );
    ssh_ok("lb-01", "rm -f /tmp/fault-slow");
    p.edit("inventories/lab.yml", "  command_timeout: 2\n", "");
    assert_eq!(p.foobar(&["apply", "--yes"]).code, 0);
}

#[test]
fn unreachable_hosts_and_refused_logins_are_named_and_the_rest_applied() {
    let _guard = lab_lock();
    let mut slot = fixture();
    let f = ready(&mut slot);
    let p = &f.p;
    // 9. Unreachable host and refused login: each named with OpenSSH's reason, the rest applied.
    p.edit(
        "inventories/lab.yml",
        "  web-02:\n    private_ip: 127.0.1.3\n",
        "  web-02:\n    address: 127.0.1.99\n    private_ip: 127.0.1.3\n",
    );
    p.edit(
        "inventories/lab.yml",
        "  web-01:\n    private_ip: 127.0.1.2\n",
        "  web-01:\n    user: nosuchuser\n    private_ip: 127.0.1.2\n",
    );
    let old = f.fault_line();
    let new = f.bump_fault();
    let capped = p.foobar(&["apply", "--yes", "--max-fail-percentage", "50"]);
    assert_eq!(capped.code, 3, "{capped:?}");
    assert!(
        capped
            .stdout
            .contains("not started: --max-fail-percentage 50 exceeded"),
        "{capped:?}"
    );
    assert_eq!(
        probe(),
        old,
        "a host was started past the failure threshold"
    );
    let down = p.foobar(&["apply", "--yes"]);
    assert_eq!(down.code, 3, "{down:?}");
    assert!(down.stdout.contains("Connection refused"), "{down:?}");
    assert!(down.stdout.contains("Permission denied"), "{down:?}");
    assert!(down.stdout.contains("failed: web-01, web-02"), "{down:?}");
    assert_eq!(probe(), new, "lb-01 was not applied");
    assert!(lb_serves());
}

fn sha256(data: &[u8]) -> String {
    foobar::render::sha256_hex(data)
}
