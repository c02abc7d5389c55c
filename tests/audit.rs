//! `foobar audit` on the shipped production inventory and on copies of it with the fixes
//! applied: the findings (JSON, documented in docs/operations/audit.md), their fixes, and the exit
//! codes (0 nothing at or above --fail-on, 2 something, 1 error). Offline: no host is
//! contacted (the production addresses are documentation ranges; a fake `ssh` first on PATH
//! would record a call, and none is made without --live).

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::cargo_bin_cmd;
use tempfile::TempDir;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A copy of the project (templates, playbooks, app, inventories) to edit.
fn project() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["templates", "playbooks", "app", "inventories"] {
        let out = Command::new("cp")
            .arg("-r")
            .arg(repo().join(d))
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    dir
}

/// `foobar audit ARGS` in `dir` without any secret in the environment.
fn audit(dir: &Path, args: &[&str]) -> Run {
    let out = cargo_bin_cmd!("foobar")
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("FOOBAR_REPLICATION_PASSWORD")
        .env_remove("FOOBAR_APP_DB_PASSWORD")
        .arg("audit")
        .args(args)
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn findings(run: &Run) -> Vec<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("audit JSON: {e}\n{}\n{}", run.stdout, run.stderr));
    assert_eq!(doc["format_version"], 1);
    doc["findings"].as_array().unwrap().clone()
}

fn ids(f: &[serde_json::Value]) -> Vec<String> {
    f.iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

fn find<'a>(f: &'a [serde_json::Value], id: &str) -> Vec<&'a serde_json::Value> {
    f.iter().filter(|x| x["id"] == id).collect()
}

/// A certificate for www.foobar.com valid for `days` days, and its key, in `dir`.
fn certificate(dir: &Path, days: u32) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join("site.crt"), dir.join("site.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=www.foobar.com",
        ])
        .arg("-days")
        .arg(days.to_string())
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

/// production.yml with every fix foobar can make enabled (TLS with a certificate of `days`
/// days, failover path, replication over TLS, a firewall with admin networks, monitoring).
fn secured_production(dir: &Path, days: u32) {
    let (crt, key) = certificate(dir, days);
    let path = dir.join("inventories/production.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replacen(
            "vars:\n",
            "vars:\n  https: true\n  db_failover: manual\n  replication_ssl: true\n  admin_networks: [192.0.2.0/24]\n",
            1,
        )
        .replacen(
            "secrets:\n",
            &format!(
                "secrets:\n  binlog_archive_password: {{ env: FOOBAR_BINLOG_ARCHIVE_PASSWORD }}\n  tls_certificate: {{ file: {c} }}\n  tls_key: {{ file: {k} }}\n  db_tls_ca: {{ file: {c} }}\n  db_tls_cert: {{ file: {c} }}\n  db_tls_key: {{ file: {k} }}\n",
                c = crt.display(),
                k = key.display()
            ),
            1,
        )
        .replacen(
            "groups:\n",
            "groups:\n  firewall:\n    hosts: [lb-01, web-01, web-02]\n",
            1,
        )
        + "\nbackups: {}\n";
    std::fs::write(&path, text).unwrap();
}

#[test]
fn production_inventory_shows_the_seeds_weaknesses_with_fixes() {
    let dir = project();
    let run = audit(dir.path(), &["--json"]);
    assert_eq!(run.code, 2, "{}\n{}", run.stdout, run.stderr);
    let f = findings(&run);
    let ids = ids(&f);
    // The design's "Infrastructure issues": two single points of failure, no firewall and no
    // HTTPS. (Its fourth, no monitoring, the shipped inventory now fixes: group `monitoring`
    // with Prometheus; a copy without it is checked below.)
    for id in [
        "single_load_balancer",
        "single_primary",
        "no_tls",
        "no_firewall",
        "firewall_off",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} missing: {ids:?}");
    }
    assert!(!ids.contains(&"no_monitoring".to_string()), "{ids:?}");
    assert_eq!(find(&f, "no_firewall").len(), 3, "one per host: {f:#?}");
    let off = find(&f, "firewall_off");
    assert_eq!(off.len(), 1, "once for the inventory: {f:#?}");
    assert_eq!(off[0]["severity"], "high");
    assert!(
        off[0]["summary"].as_str().unwrap().contains("Prometheus"),
        "{}",
        off[0]
    );
    for x in &f {
        for key in ["severity", "where", "summary", "why", "fix"] {
            assert!(
                x[key].as_str().is_some_and(|s| !s.is_empty()),
                "{key} empty in {x}"
            );
        }
    }
    let lb = find(&f, "single_load_balancer")[0];
    let text = std::fs::read_to_string(dir.path().join("inventories/production.yml")).unwrap();
    let line = text.lines().position(|l| l == "  loadbalancer:").unwrap() + 1;
    let lb_where = format!("inventories/production.yml:{line}");
    assert_eq!(lb["where"], lb_where.as_str(), "{lb}");
    assert!(
        lb["fix"].as_str().unwrap().contains("second machine"),
        "{lb}"
    );
    let tls = find(&f, "no_tls")[0];
    assert_eq!(tls["severity"], "high");
    assert!(
        tls["fix"].as_str().unwrap().contains("https: true"),
        "{tls}"
    );
    assert!(tls["fix"].as_str().unwrap().contains("certbot"), "{tls}");
    let primary = find(&f, "single_primary")[0];
    assert!(
        primary["fix"].as_str().unwrap().contains("db_failover"),
        "{primary}"
    );
    assert!(
        find(&f, "no_firewall")[0]["fix"]
            .as_str()
            .unwrap()
            .contains("admin_networks")
    );
    // Without the `monitoring` group the audit says so, and its fix names the group.
    let inv = dir.path().join("inventories/production.yml");
    let text = std::fs::read_to_string(&inv).unwrap();
    let without = text.replace("  monitoring:\n    hosts: [lb-01]\n", "");
    assert_ne!(
        without, text,
        "production.yml's monitoring group moved: update this test"
    );
    std::fs::write(dir.path().join("inventories/unmonitored.yml"), without).unwrap();
    // (site.yml's Prometheus play needs the group: a playbook without it.)
    std::fs::write(
        dir.path().join("playbooks/no-monitoring.yml"),
        "plays:\n  - name: load balancer\n    hosts: loadbalancer\n    files:\n      - template: haproxy/haproxy.cfg.j2\n        dest: /etc/haproxy/haproxy.cfg\n",
    )
    .unwrap();
    let unmonitored = findings(&audit(
        dir.path(),
        &[
            "--json",
            "-i",
            "inventories/unmonitored.yml",
            "-p",
            "playbooks/no-monitoring.yml",
        ],
    ));
    let m = find(&unmonitored, "no_monitoring");
    assert_eq!(m.len(), 1, "{unmonitored:#?}");
    assert!(m[0]["fix"].as_str().unwrap().contains("group `monitoring`"));
    // MySQL and the app already bind the private address in the shipped templates.
    assert!(!ids.contains(&"listens_everywhere".to_string()), "{ids:?}");
    assert!(
        !ids.contains(&"replica_not_read_only".to_string()),
        "{ids:?}"
    );
    // Most severe first.
    let sev: Vec<&str> = f.iter().map(|x| x["severity"].as_str().unwrap()).collect();
    let rank = |s: &str| {
        ["low", "medium", "high", "critical"]
            .iter()
            .position(|x| *x == s)
            .unwrap()
    };
    assert!(sev.windows(2).all(|w| rank(w[0]) >= rank(w[1])), "{sev:?}");

    // Human output: the same findings, with where/why/fix lines.
    let human = audit(dir.path(), &[]);
    assert_eq!(human.code, 2);
    assert!(
        human
            .stdout
            .contains("HIGH     no_tls: the public frontend serves plain HTTP only"),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains(&format!("  where: {lb_where}\n")),
        "{}",
        human.stdout
    );
    assert!(human.stdout.contains("  fix:   "), "{}", human.stdout);
}

#[test]
fn fail_on_sets_the_exit_code() {
    let dir = project();
    // The worst finding on the shipped inventory is high.
    assert_eq!(audit(dir.path(), &["--fail-on", "critical"]).code, 0);
    assert_eq!(audit(dir.path(), &["--fail-on", "high"]).code, 2);
    assert_eq!(audit(dir.path(), &["--fail-on", "low"]).code, 2);
    // An error is 1, with the usual diagnostic.
    let bad = audit(dir.path(), &["-i", "inventories/missing.yml"]);
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("error: cannot read inventories/missing.yml"),
        "{}",
        bad.stderr
    );
    let bad = audit(dir.path(), &["--fail-on", "severe"]);
    // A usage error exits 1 (2 means "changes/findings present").
    assert_eq!(
        bad.code, 1,
        "clap rejects an unknown severity: {}",
        bad.stderr
    );
}

#[test]
fn with_the_fixes_enabled_only_the_single_load_balancer_remains() {
    let dir = project();
    secured_production(dir.path(), 365);
    let run = audit(dir.path(), &["--json"]);
    let f = findings(&run);
    let mut ids = ids(&f);
    ids.sort();
    assert_eq!(ids, ["single_load_balancer"], "{f:#?}");
    let lb = find(&f, "single_load_balancer")[0];
    assert_eq!(lb["severity"], "medium");
    // Medium is below the default --fail-on high.
    let code = audit(dir.path(), &["--fail-on", "critical"]).code;
    assert_eq!(code, 0);
}

#[test]
fn a_certificate_expiring_within_30_days_is_reported() {
    let dir = project();
    secured_production(dir.path(), 10);
    let run = audit(dir.path(), &["--json"]);
    assert_eq!(run.code, 2);
    let f = findings(&run);
    let exp = find(&f, "tls_certificate_expiring");
    assert_eq!(exp.len(), 1, "{f:#?}");
    assert_eq!(exp[0]["severity"], "high");
    let summary = exp[0]["summary"].as_str().unwrap();
    assert!(
        summary == "the certificate expires in 9 days"
            || summary == "the certificate expires in 10 days",
        "{summary}"
    );
    assert!(
        exp[0]["where"]
            .as_str()
            .unwrap()
            .starts_with("inventories/production.yml:")
    );
    // The certificate's contents never appear.
    assert!(!run.stdout.contains("BEGIN"), "{}", run.stdout);
}

#[test]
fn a_load_balancer_pair_closes_the_single_load_balancer_only_with_a_floating_address() {
    let dir = project();
    let args = ["--json", "-i", "inventories/lab-net.yml"];
    let pair = findings(&audit(dir.path(), &args));
    assert!(find(&pair, "single_load_balancer").is_empty(), "{pair:#?}");
    // The same two hosts without `vip:`: users still reach one address.
    let inv = dir.path().join("inventories/lab-net.yml");
    let text = std::fs::read_to_string(&inv).unwrap();
    let start = text.find("  vip:\n").expect("lab-net.yml has vip:");
    let end = start + text[start..].find("  prometheus_scrape_interval").unwrap();
    std::fs::write(&inv, format!("{}{}", &text[..start], &text[end..])).unwrap();
    let no_vip = findings(&audit(dir.path(), &args));
    let lb = find(&no_vip, "single_load_balancer");
    assert_eq!(lb.len(), 1, "{no_vip:#?}");
    let summary = lb[0]["summary"].as_str().unwrap();
    assert!(summary.contains("no floating address"), "{summary}");
    assert!(lb[0]["fix"].as_str().unwrap().contains("vip:"), "{}", lb[0]);
}
