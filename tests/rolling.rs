//! Zero-downtime changes, measured: a load generator runs through lb-01 while foobar rolls
//! out an app change (restarting the app on every web host) one host at a time, while the same
//! change goes out all at once (`--serial 0`), and while haproxy.cfg changes. Failed requests
//! are counted, not guessed. Also: a host whose new version fails its health gate stops the
//! rollout, is rolled back and stays out of rotation while the other host serves.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

const BROKEN_APP: &str = r#"import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class Broken(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500)
        self.end_headers()
        self.wfile.write(b"broken on purpose\n")

host, port = os.environ["FOOBAR_APP_BIND"].rsplit(":", 1)
HTTPServer((host, int(port)), Broken).serve_forever()
"#;

/// Requests through lb-01 from two threads until stopped (at most 120 s): (total, failed).
struct Load {
    stop: Arc<AtomicBool>,
    total: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let total = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..2)
            .map(|_| {
                let (stop, total, failed) = (stop.clone(), total.clone(), failed.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                        total.fetch_add(1, Ordering::SeqCst);
                        match http("127.0.1.1:80", "GET", "/", "") {
                            Some((200, body)) if body.starts_with("served by") => {}
                            _ => {
                                failed.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        Self {
            stop,
            total,
            failed,
            threads,
        }
    }

    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("load thread");
        }
        (
            self.total.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

fn under_load(f: impl FnOnce() -> Run) -> (Run, u64, u64) {
    let load = Load::start();
    std::thread::sleep(Duration::from_millis(500));
    let run = f();
    std::thread::sleep(Duration::from_millis(500));
    let (total, failed) = load.finish();
    (run, total, failed)
}

/// `foobar verify` of `p` on the lab passes within 20 s.
fn assert_healthy_soon(p: &Project) {
    assert!(
        eventually(20, || (foobar_in(
            p.dir.path(),
            &["verify", "-i", "inventories/lab.yml"]
        )
        .code
            == 0)
            .then_some(()))
        .is_some()
    );
}

#[test]
fn rolling_apply_drops_no_request_and_a_failing_host_stops_the_rollout() {
    let _guard = lab_lock();
    lab(&["reset"]);
    let p = Project::new();
    let first = p.foobar(&["apply", "--yes"]);
    assert_eq!(first.code, 0, "{first:?}");
    assert_healthy_soon(&p);

    // The plan says how the rollout will go.
    p.edit(
        "inventories/lab.yml",
        "app_version: \"1\"",
        "app_version: \"2\"",
    );
    let plan = p.foobar(&["plan"]);
    assert!(
        plan.stdout.contains(
            "rollout: play `application servers` changes 1 at a time: web-01, then web-02"
        ),
        "{plan:?}"
    );

    // Rolling: every app restart happens out of rotation.
    let started = Instant::now();
    let (rolled, total, failed) = under_load(|| p.foobar(&["apply", "--yes"]));
    let took = started.elapsed().as_secs_f64();
    assert_eq!(rolled.code, 0, "{rolled:?}");
    // Not asserted (no test asserts wall-clock time): the figure docs/operations/rolling-changes.md quotes.
    eprintln!(
        "rolling apply of 2 web hosts (drain, apply, gate, ready): {took:.2} s, {:.2} s per host",
        took / 2.0
    );
    assert!(
        rolled
            .stdout
            .matches("health gate passed; back in rotation")
            .count()
            == 2,
        "{rolled:?}"
    );
    eprintln!("rolling restart of the app on 2 hosts: {failed} failed of {total} requests");
    assert_eq!(
        failed, 0,
        "requests failed during a rolling apply ({total} sent)"
    );
    assert!(total > 50, "the load generator barely ran: {total}");

    // The same change all at once, for comparison (not asserted: it depends on timing).
    p.edit(
        "inventories/lab.yml",
        "app_version: \"2\"",
        "app_version: \"3\"",
    );
    let (at_once, total_once, failed_once) =
        under_load(|| p.foobar(&["apply", "--yes", "--serial", "0"]));
    assert_eq!(at_once.code, 0, "{at_once:?}");
    eprintln!(
        "the same change all at once (--serial 0): {failed_once} failed of {total_once} requests"
    );

    // A haproxy.cfg change under load: a seamless reload drops nothing.
    p.edit(
        "templates/haproxy/haproxy.cfg.j2",
        "timeout client 50s",
        "timeout client 51s",
    );
    let (reloaded, total_lb, failed_lb) = under_load(|| p.foobar(&["apply", "--yes"]));
    assert_eq!(reloaded.code, 0, "{reloaded:?}");
    assert!(
        reloaded.stdout.contains("done handler reload haproxy"),
        "{reloaded:?}"
    );
    eprintln!("haproxy.cfg reload: {failed_lb} failed of {total_lb} requests");
    assert_eq!(
        failed_lb, 0,
        "requests failed during a HAProxy reload ({total_lb} sent)"
    );

    // A new app version that does not start: web-01 fails its gate, is rolled back and stays
    // out of rotation; web-02 is not touched and serves everything.
    let good = p.read("app/server.py");
    // It starts and stays up (the restart succeeds) but answers 500: only the gate sees it.
    p.write("app/server.py", BROKEN_APP);
    let before_web02 = ssh_ok("web-02", "sha256sum /opt/foobar/app/server.py");
    let before_web01 = ssh_ok("web-01", "sha256sum /opt/foobar/app/server.py");
    let (broken, total_b, failed_b) = under_load(|| p.foobar(&["apply", "--yes"]));
    assert_eq!(broken.code, 3, "{broken:?}");
    assert!(
        broken.stdout.contains("web-01: FAILED during health gate"),
        "{broken:?}"
    );
    assert!(
        broken.stdout.contains("left in maintenance on lb-01"),
        "{broken:?}"
    );
    assert!(
        broken
            .stdout
            .contains("web-02: not started: the rollout stopped after web-01 failed"),
        "{broken:?}"
    );
    assert_eq!(
        failed_b, 0,
        "requests failed while web-01 was broken ({total_b} sent)"
    );
    assert_eq!(
        ssh_ok("web-01", "sha256sum /opt/foobar/app/server.py"),
        before_web01,
        "web-01 not rolled back"
    );
    assert_eq!(
        ssh_ok("web-02", "sha256sum /opt/foobar/app/server.py"),
        before_web02,
        "web-02 was touched"
    );
    let verify = foobar_in(p.dir.path(), &["verify", "-i", "inventories/lab.yml"]);
    assert_eq!(verify.code, 3, "{verify:?}");
    assert!(verify.stdout.contains("FAIL backend_server"), "{verify:?}");
    assert!(verify.stdout.contains("web/web-01"), "{verify:?}");

    // Fixed: the next apply brings web-01 back into rotation.
    p.write("app/server.py", &good);
    let fixed = p.foobar(&["apply", "--yes"]);
    assert_eq!(fixed.code, 0, "{fixed:?}");
    assert_healthy_soon(&p);
}
