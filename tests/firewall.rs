//! End-to-end: the firewall play on fw-01, the lab's firewall test host (`scripts/lab up
//! --fw-host`), which has a network namespace of its own: nothing here filters the machine.
//! Every connection is made inside that namespace (nsenter -n, by the PID of its sshd), from
//! addresses on its loopback: 127.0.9.2 is the operator (admin_networks), 127.0.9.3 the load
//! balancer of inventories/lab-firewall.yml.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const FW_HOST: &str = "fw-01";

fn fw_pid() -> String {
    let state = std::env::var("FOOBAR_LAB_DIR").unwrap_or_else(|_| "/foobar-lab".into());
    std::fs::read_to_string(format!("{state}/fw/fw-01/pid"))
        .expect("fw-01's pid (scripts/lab up --fw-host)")
        .trim()
        .to_string()
}

fn fw_ssh_config() -> std::path::PathBuf {
    repo().join(".lab/fw/ssh_config")
}

/// `foobar plan --detailed-exitcode` of the firewall playbook in `dir`.
fn firewall_plan(dir: &std::path::Path) -> Run {
    foobar_in(
        dir,
        &[
            "plan",
            "--detailed-exitcode",
            "-p",
            "playbooks/firewall.yml",
            "-i",
            "inventories/lab-firewall.yml",
        ],
    )
}

fn fw_ssh_ok(command: &str) -> String {
    ssh_ok_with(&fw_ssh_config(), &["-o", "BatchMode=yes"], FW_HOST, command)
}

/// A TCP server on 127.0.9.1:`port` inside fw-01's namespace answering "open".
struct Listener(Child);

impl Listener {
    fn start(pid: &str, port: u16) -> Self {
        let child = Command::new("nsenter")
            .args(["-t", pid, "-n", "socat"])
            .arg(format!("TCP-LISTEN:{port},bind=127.0.9.1,reuseaddr,fork"))
            .arg("SYSTEM:echo open")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        Listener(child)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connect to 127.0.9.1:`port` from `from` inside fw-01's namespace: did "open" come back?
fn reaches(pid: &str, from: &str, port: u16) -> bool {
    let out = Command::new("nsenter")
        .args(["-t", pid, "-n", "socat", "-T", "2", "-"])
        .arg(format!(
            "TCP:127.0.9.1:{port},bind={from},connect-timeout=2"
        ))
        .stdin(Stdio::null())
        .output()
        .expect("run socat");
    String::from_utf8_lossy(&out.stdout).contains("open")
}

fn project() -> Project {
    let p = Project::new();
    let inv = std::fs::read_to_string(repo().join("inventories/lab-firewall.yml"))
        .unwrap()
        .replace("../.lab/fw/ssh_config", fw_ssh_config().to_str().unwrap())
        .replace(
            "firewall_confirm_timeout: 30",
            "firewall_confirm_timeout: 8",
        );
    p.write("inventories/lab-firewall.yml", &inv);
    p
}

fn apply(p: &Project) -> Run {
    foobar_in(
        p.dir.path(),
        &[
            "apply",
            "--yes",
            "-p",
            "playbooks/firewall.yml",
            "-i",
            "inventories/lab-firewall.yml",
        ],
    )
}

#[test]
fn firewall_rules_apply_and_a_lockout_rolls_back() {
    let _guard = lab_lock();
    // Fresh stack hosts too: the guard check below logs into web-01.
    lab(&["reset", "--fw-host"]);
    let pid = fw_pid();
    // The host really has a network namespace of its own.
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let fw = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_ne!(
        own, fw,
        "fw-01 must not share the machine's network namespace"
    );
    // Start from no ruleset and no firewall state (a previous run may have left some).
    fw_ssh_ok(
        "nft flush ruleset; rm -rf /var/lib/foobar/firewall /run/foobar-firewall /etc/foobar/firewall.nft*",
    );

    // A host of the shared namespace refuses to load a ruleset, whatever asks it to.
    let p = project();
    let guard = ssh(
        "web-01",
        "cat /etc/foobar-lab-machine-netns && readlink /proc/self/ns/net",
    );
    let lines: Vec<&str> = guard.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{guard:?}");
    assert_eq!(
        lines[0], lines[1],
        "web-01 records the machine's namespace: {guard:?}"
    );
    fw_ssh_ok("test \"$(cat /etc/foobar-lab-machine-netns)\" != \"$(readlink /proc/self/ns/net)\"");

    // 1. The role's ruleset, confirmed over a new connection.
    let first = apply(&p);
    assert_eq!(first.code, 0, "{first:?}");
    let json = firewall_plan(p.dir.path());
    assert_eq!(json.code, 0, "converged: {json:?}");
    let live = fw_ssh_ok("nft list ruleset");
    assert!(live.contains("table inet foobar"), "{live}");
    assert!(live.contains("127.0.9.2"), "{live}");
    assert_eq!(
        fw_ssh_ok("/usr/local/sbin/foobar-firewall-load --status").trim(),
        "none",
        "the timer was stopped by the confirmation"
    );

    // Open ports answer, closed ones do not.
    let _web = Listener::start(&pid, 80);
    let _db = Listener::start(&pid, 3306);
    let _other = Listener::start(&pid, 8080);
    let lb = "127.0.9.3";
    let admin = "127.0.9.2";
    assert!(
        eventually(5, || reaches(&pid, lb, 80).then_some(())).is_some(),
        "port 80 from the load balancer must answer"
    );
    assert!(
        !reaches(&pid, admin, 80),
        "port 80 only from the load balancers"
    );
    // MySQL from the database hosts, the app hosts and the load balancers (the apps' writes
    // go through them); from nowhere else.
    assert!(
        eventually(5, || reaches(&pid, lb, 3306).then_some(())).is_some(),
        "3306 from the load balancer (the apps' write path) must answer"
    );
    assert!(
        !reaches(&pid, admin, 3306),
        "3306 only from database, app and load-balancer hosts"
    );
    assert!(!reaches(&pid, lb, 8080), "everything else is dropped");
    // 3306 from the host's own private address (an app or database host) answers.
    assert!(reaches(&pid, "127.0.9.1", 3306));

    // 2. nft -c rejects a broken template before anything changes.
    let broken = project();
    broken.edit(
        "templates/nftables/firewall.nft.j2",
        "    chain forward {",
        "    this is not nftables\n    chain forward {",
    );
    broken.edit(
        "inventories/lab-firewall.yml",
        "admin_networks: [127.0.9.2/32]",
        "admin_networks: [127.0.9.2/32, 127.0.9.4/32]",
    );
    let before = fw_ssh_ok("nft list ruleset; sha256sum /etc/foobar/firewall.nft");
    let bad = apply(&broken);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(bad.all().contains("validate"), "{bad:?}");
    assert_eq!(
        fw_ssh_ok("nft list ruleset; sha256sum /etc/foobar/firewall.nft"),
        before
    );

    // 3. A ruleset that shuts foobar out: the host restores the previous one by itself.
    let lockout = project();
    lockout.edit(
        "inventories/lab-firewall.yml",
        "admin_networks: [127.0.9.2/32]",
        "admin_networks: [192.0.2.0/24]",
    );
    let t0 = Instant::now();
    let out = apply(&lockout);
    let took = t0.elapsed();
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.all()
            .contains("firewall change rolled back: foobar could not reconnect"),
        "{out:?}"
    );
    // Bounded: the 8 s timer, foobar's 5 s connect timeout and its margin.
    assert!(took < Duration::from_secs(90), "{took:?}");
    let live = fw_ssh_ok("nft list ruleset");
    assert!(
        live.contains("127.0.9.2"),
        "the previous ruleset is back: {live}"
    );
    assert!(!live.contains("192.0.2.0/24"), "{live}");
    assert_eq!(
        fw_ssh_ok("/usr/local/sbin/foobar-firewall-load --status").trim(),
        "rolled-back"
    );
    // The boot's ruleset is still the last confirmed one: a rolled-back change never
    // becomes it.
    let boot = fw_ssh_ok("cat /var/lib/foobar/firewall/confirmed.nft");
    assert!(
        boot.contains("127.0.9.2") && !boot.contains("192.0.2.0/24"),
        "{boot}"
    );
    // The rejected file was moved aside: the next plan shows the change again.
    let plan = firewall_plan(lockout.dir.path());
    assert_eq!(plan.code, 2, "{plan:?}");
    // And the good ruleset applies again.
    let again = apply(&p);
    assert_eq!(again.code, 0, "{again:?}");
    fw_ssh_ok("nft flush ruleset");
}

/// Offline: the production inventory with every host in group `firewall` renders one ruleset
/// per role, and `nft -c` (run in a throwaway network namespace: -c never loads anything, and
/// the namespace makes sure of it) accepts each; a broken one is rejected.
#[test]
fn every_roles_ruleset_passes_nft_check() {
    let p = Project::new();
    std::fs::copy(
        repo().join("inventories/production.yml"),
        p.path("inventories/production.yml"),
    )
    .unwrap();
    p.edit(
        "inventories/production.yml",
        "vars:\n",
        "vars:\n  admin_networks: [198.51.100.0/24, 203.0.113.200]\n",
    );
    p.edit(
        "inventories/production.yml",
        "groups:\n",
        "groups:\n  firewall:\n    children: [loadbalancer, web]\n",
    );
    let out = p.path("out");
    let r = foobar_in(
        p.dir.path(),
        &[
            "render",
            "-i",
            "inventories/production.yml",
            "-p",
            "playbooks/firewall.yml",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let check = |file: &std::path::Path| {
        Command::new("unshare")
            .args(["--net", "nft", "-c", "-f"])
            .arg(file)
            .output()
            .expect("run unshare nft")
    };
    let ruleset =
        |h: &str| std::fs::read_to_string(out.join(h).join("etc/foobar/firewall.nft")).unwrap();
    let lb = ruleset("lb-01");
    assert!(lb.contains("tcp dport { 80, 443 } accept"), "{lb}");
    assert!(!lb.contains("3306"), "{lb}");
    let web = ruleset("web-01");
    assert!(
        web.contains("ip saddr { 10.0.0.10 } tcp dport 80 accept"),
        "{web}"
    );
    assert!(
        web.contains("ip saddr { 10.0.0.11, 10.0.0.12, 10.0.0.10 } tcp dport 3306 accept"),
        "{web}"
    );
    assert!(
        lb.contains("ip saddr { 10.0.0.11, 10.0.0.12 } tcp dport 3307 accept"),
        "{lb}"
    );
    assert!(!web.contains("443"), "{web}");
    // The monitoring host (lb-01 in production.yml) scrapes every host's exporters.
    for f in [&lb, &web] {
        assert!(
            f.contains("ip saddr { 10.0.0.10 } tcp dport { 8405, 9104, 8080, 9100, 9090 } accept"),
            "{f}"
        );
    }
    for f in [&lb, &web] {
        assert!(
            f.contains("ip saddr { 198.51.100.0/24, 203.0.113.200 } tcp dport 22 accept"),
            "{f}"
        );
        assert!(f.contains("policy drop;"), "{f}");
    }
    for h in ["lb-01", "web-01", "web-02"] {
        let file = out.join(h).join("etc/foobar/firewall.nft");
        let o = check(&file);
        assert!(
            o.status.success(),
            "nft -c rejects {h}'s ruleset: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let broken = out.join("broken.nft");
    std::fs::write(&broken, lb.replace("policy drop;", "policy maybe;")).unwrap();
    assert!(
        !check(&broken).status.success(),
        "nft -c must reject a broken ruleset"
    );
}

/// `foobar ARGS -p playbooks/firewall.yml -i inventories/lab-firewall.yml` in `p`.
fn firewall(p: &Project, args: &[&str]) -> Run {
    let mut all = args.to_vec();
    all.extend([
        "-p",
        "playbooks/firewall.yml",
        "-i",
        "inventories/lab-firewall.yml",
    ]);
    foobar_in(p.dir.path(), &all)
}

/// The confirmed ruleset survives a crash and a boot, and a ruleset flushed by hand is seen:
/// `plan` shows the drift, `verify` fails, `audit --live` names it and its fix; the fix (one
/// apply) loads it again through confirm-or-rollback, and both are green again.
#[test]
fn the_firewall_survives_a_reboot_and_a_flushed_one_is_seen_and_restored() {
    let _guard = lab_lock();
    // Fresh hosts: they accept this checkout's lab key.
    lab(&["reset", "--fw-host"]);
    // From nothing: no ruleset, no firewall state, no boot unit (a previous run may have
    // left some).
    fw_ssh_ok(
        "nft flush ruleset; rm -rf /var/lib/foobar/firewall /run/foobar-firewall /etc/foobar/firewall.nft* \
         /etc/systemd/system/foobar-firewall.service /etc/systemd/system/sysinit.target.wants/foobar-firewall.service",
    );
    let p = project();
    let first = apply(&p);
    assert_eq!(first.code, 0, "{first:?}");
    // Enabled at boot by the same apply, with the ruleset it confirmed.
    assert_eq!(
        fw_ssh_ok("readlink /etc/systemd/system/sysinit.target.wants/foobar-firewall.service")
            .trim(),
        "/etc/systemd/system/foobar-firewall.service"
    );
    fw_ssh_ok("cmp /etc/foobar/firewall.nft /var/lib/foobar/firewall/confirmed.nft");
    let loaded = fw_ssh_ok("nft list table inet foobar");
    assert!(loaded.contains("127.0.9.2"), "{loaded}");

    // 1. A power cut, then a boot: the confirmed ruleset is loaded with no apply.
    lab(&["kill", FW_HOST]);
    lab(&["start", FW_HOST]);
    assert_eq!(fw_ssh_ok("nft list table inet foobar"), loaded);
    let plan = firewall(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "converged after the boot: {plan:?}");
    let verify = firewall(&p, &["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        verify.stdout.contains("the confirmed ruleset is loaded"),
        "{verify:?}"
    );

    // 2. Flushed by hand: plan shows the drift, verify fails, audit names it.
    fw_ssh_ok("nft flush ruleset");
    let plan = firewall(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(
        plan.stdout
            .contains("update firewall /etc/foobar/firewall.nft (not loaded"),
        "{plan:?}"
    );
    assert!(
        plan.stdout.contains("run handler `load firewall`"),
        "{plan:?}"
    );
    let verify = firewall(&p, &["verify"]);
    assert_eq!(verify.code, 3, "{verify:?}");
    assert!(
        verify.all().contains("foobar's ruleset is not loaded"),
        "{verify:?}"
    );
    let audit = firewall(&p, &["audit", "--live", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&audit.stdout)
        .unwrap_or_else(|e| panic!("audit JSON: {e}: {audit:?}"));
    let finding = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "firewall_not_loaded")
        .unwrap_or_else(|| panic!("no firewall_not_loaded: {doc}"))
        .clone();
    // 3. The audit's fix, as it says it (the command between its first backticks), restores
    // it: one apply.
    let fix = finding["fix"].as_str().unwrap();
    let command: Vec<&str> = fix
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {fix}"))
        .split_whitespace()
        .collect();
    assert_eq!(command[..2], ["foobar", "apply"], "{fix}");
    let mut args = command[1..].to_vec();
    args.push("--yes");
    let fixed = foobar_in(p.dir.path(), &args);
    assert_eq!(fixed.code, 0, "{fix}: {fixed:?}");
    assert!(
        fixed
            .all()
            .contains("firewall confirmed over a new connection"),
        "through confirm-or-rollback: {fixed:?}"
    );
    assert_eq!(fw_ssh_ok("nft list table inet foobar"), loaded);
    let plan = firewall(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{plan:?}");
    let verify = firewall(&p, &["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    let audit = firewall(&p, &["audit", "--live", "--json"]);
    assert!(!audit.stdout.contains("firewall_not_loaded"), "{audit:?}");

    // 4. Edited by hand (a rule added): drift too; a plain apply restores it.
    fw_ssh_ok("nft add rule inet foobar input tcp dport 8080 accept");
    let plan = firewall(&p, &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stdout.contains("is not the one confirmed"), "{plan:?}");
    assert_eq!(firewall(&p, &["verify"]).code, 3);
    let again = apply(&p);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(fw_ssh_ok("nft list table inet foobar"), loaded);
    assert_eq!(firewall(&p, &["plan", "--detailed-exitcode"]).code, 0);
    fw_ssh_ok("nft flush ruleset");
}
