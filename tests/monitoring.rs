//! Monitoring end to end on the local hosts, on one applied stack: Prometheus on lb-01 answers
//! and sees every target up; `verify --watch` reports Nginx stopping and coming back; a
//! stopped IO thread on web-02 fires the replication alert and turns the replication edge of
//! `graph --live` red; a broken rules template is rejected by promtool before the swap.
//!
//! The lab inventory scrapes and evaluates every 2 s (`prometheus_scrape_interval`,
//! `prometheus_evaluation_interval`) with `alert_for: 0s`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

const PROMETHEUS: &str = "127.0.1.1:9090";
const SCRAPE_INTERVAL: Duration = Duration::from_secs(2);

fn api(path: &str) -> Option<serde_json::Value> {
    let (status, body) = http(PROMETHEUS, "GET", path, "")?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// (job, host, health) of every active target.
fn targets() -> Vec<(String, String, String)> {
    let Some(v) = api("/api/v1/targets") else {
        return vec![];
    };
    v["data"]["activeTargets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            (
                t["labels"]["job"].as_str().unwrap_or("").to_string(),
                t["labels"]["host"].as_str().unwrap_or("").to_string(),
                t["health"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn firing(alert: &str, host: &str) -> bool {
    api("/api/v1/alerts").is_some_and(|v| {
        v["data"]["alerts"].as_array().is_some_and(|a| {
            a.iter().any(|x| {
                x["labels"]["alertname"] == alert
                    && x["labels"]["host"] == host
                    && x["state"] == "firing"
            })
        })
    })
}

/// `foobar verify --watch` as a child process, its stdout lines arriving on a channel.
struct Watch {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn start(interval: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_foobar"))
            .args(["verify", "--watch", "--interval", interval])
            .args(["-i", "inventories/lab.yml"])
            .current_dir(repo())
            .env("FOOBAR_REPLICATION_PASSWORD", REPLICATION_PASSWORD)
            .env("FOOBAR_APP_DB_PASSWORD", APP_DB_PASSWORD)
            .env("FOOBAR_MYSQLD_EXPORTER_PASSWORD", MONITORING_DB_PASSWORD)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start foobar verify --watch");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        Self {
            child,
            lines: rx,
            seen: vec![],
        }
    }

    /// The first line (from now) that satisfies `f`, within `limit`.
    fn wait_for(&mut self, limit: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if f(&line) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// SIGTERM by PID; the exit code.
    fn stop(mut self) -> (i32, Vec<String>) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        let code = loop {
            if let Some(s) = self.child.try_wait().expect("wait") {
                break s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("verify --watch did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        (code, self.seen)
    }
}

#[test]
fn prometheus_sees_the_stack_alerts_fire_and_watch_and_graph_follow() {
    let _guard = lab_lock();
    lab(&["reset"]);
    let apply = foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");

    // 1. Every target up: Prometheus itself, node exporter on 3 hosts, HAProxy, 2 databases.
    let started = Instant::now();
    let all_up = eventually(60, || {
        let t = targets();
        (t.len() == 7 && t.iter().all(|(_, _, h)| h == "up")).then_some(t)
    });
    assert!(all_up.is_some(), "not every target up: {:?}", targets());
    println!(
        "every target up {:.1} s after apply: {:?}",
        started.elapsed().as_secs_f64(),
        all_up.unwrap()
    );
    let exporter_cnf = ssh_ok(
        "web-01",
        "stat -c '%a %U' /etc/prometheus/mysqld-exporter.cnf",
    );
    assert_eq!(exporter_cnf, "600 prometheus\n");
    let ps = ssh_ok("web-01", "ps -eo args");
    assert!(!ps.contains(MONITORING_DB_PASSWORD), "{ps}");
    // A second apply changes nothing: the exporter's account and grants are reconciled.
    let again = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");

    // 2. verify --watch: a line when web-01's Nginx stops, another when it is back.
    // Acceptance: each change is printed within two intervals.
    let interval = Duration::from_secs(3);
    let mut watch = Watch::start("3");
    assert!(
        watch
            .wait_for(Duration::from_secs(60), |l| l.contains("watching"))
            .is_some(),
        "watch never started: {:?}",
        watch.seen
    );
    ssh_ok("web-01", "systemctl stop nginx");
    let t = Instant::now();
    let down = watch.wait_for(2 * interval, |l| {
        l.contains("web-01  FAIL service  nginx is")
    });
    assert!(
        down.is_some(),
        "no line for nginx stopping: {:?}",
        watch.seen
    );
    println!(
        "watch saw nginx stop after {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        down.unwrap()
    );
    ssh_ok("web-01", "systemctl start nginx");
    let t = Instant::now();
    let up = watch.wait_for(2 * interval, |l| {
        l.contains("web-01  ok   service  nginx is active")
    });
    assert!(up.is_some(), "no line for nginx back: {:?}", watch.seen);
    println!(
        "watch saw nginx back after {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        up.unwrap()
    );
    // Let HAProxy see web-01 up again, so the last round is healthy.
    watch.wait_for(Duration::from_secs(15), |l| {
        l.contains("lb-01  ok   backend_server")
    });
    std::thread::sleep(2 * interval + Duration::from_secs(1));
    let (code, seen) = watch.stop();
    for l in &seen {
        assert!(!l.contains(MONITORING_DB_PASSWORD) && !l.contains(APP_DB_PASSWORD));
    }
    let timestamped = seen
        .iter()
        .filter(|l| !l.starts_with("stderr:"))
        .all(|l| l.len() > 20 && l.as_bytes()[4] == b'-' && &l[19..20] == "Z");
    assert!(
        timestamped,
        "every line starts with a UTC timestamp: {seen:?}"
    );
    assert_eq!(code, 0, "exit code of the last (healthy) round: {seen:?}");

    // 3. web-02's IO thread stops: the alert fires within 2 scrape intervals (plus the
    // evaluation that follows the scrape).
    ssh_ok("web-02", "mariadb -e 'STOP REPLICA IO_THREAD'");
    let t = Instant::now();
    let fired = eventually((2 * SCRAPE_INTERVAL + SCRAPE_INTERVAL).as_secs(), || {
        firing("ReplicationIOThreadStopped", "web-02").then_some(())
    });
    let took = t.elapsed();
    assert!(
        fired.is_some(),
        "ReplicationIOThreadStopped did not fire for web-02: {:?}",
        api("/api/v1/alerts")
    );
    println!(
        "ReplicationIOThreadStopped firing {:.1} s after STOP REPLICA IO_THREAD (scrape and evaluation every {} s)",
        took.as_secs_f64(),
        SCRAPE_INTERVAL.as_secs()
    );

    // 4. graph --live: the replication edge to web-02 is red, the others are not.
    let g = foobar(&["graph", "--live", "--format", "dot"]);
    assert_eq!(g.code, 3, "{g:?}");
    let edge = g
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("web_01_db -> web_02_db"))
        .unwrap_or_else(|| panic!("no replication edge: {g:?}"));
    assert!(
        edge.contains("color=\"#c62828\"") && edge.contains("io_thread"),
        "{edge}"
    );
    let http = g
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("lb_01_haproxy -> web_02_nginx"))
        .unwrap();
    assert!(http.contains("color=\"#2e7d32\""), "{http}");

    // 5. A broken rules template: promtool rejects it before the swap; the live rules stay.
    let live_before = ssh_ok("lb-01", "sha256sum /etc/prometheus/foobar-alerts.yml");
    let p = Project::new();
    p.edit(
        "templates/monitoring/foobar-alerts.yml.j2",
        "expr: up == 0",
        "expr: up ==",
    );
    let broken = p.foobar(&["apply", "--yes", "--limit", "lb-01"]);
    assert_eq!(broken.code, 3, "{broken:?}");
    assert!(
        broken
            .stdout
            .contains("validate /etc/prometheus/foobar-alerts.yml failed")
            && broken.stdout.contains("could not parse expression")
            && broken.stdout.contains("no live file on lb-01 was replaced"),
        "promtool's own output is shown: {broken:?}"
    );
    assert_eq!(
        ssh_ok("lb-01", "sha256sum /etc/prometheus/foobar-alerts.yml"),
        live_before
    );
    assert!(api("/api/v1/rules").is_some(), "Prometheus still answers");
}
