//! End-to-end: two load balancers behind a floating address (keepalived, VRRP) on the
//! networked test hosts (`scripts/lab up --net-hosts`): every host in a network namespace of
//! its own on one bridge in a namespace of the lab's own, addresses in 198.51.100.0/24.
//! Nothing here sends a packet from the machine's namespace to the lab network: ssh goes
//! through a ProxyCommand into each host's namespace, and the load generator's threads enter
//! the lab's client namespace (setns) before they connect.
//!
//! One lab bring-up is shared by the cases of this binary (they run in turn, under the lab
//! lock). Figures (failed requests, how long the address took to move) are printed, never
//! asserted on.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::*;

const VIP: &str = "198.51.100.10";
const VIP_PASSWORD: &str = "Vq7-vrrp";
const LBS: [&str; 2] = ["nlb-01", "nlb-02"];
const INVENTORY: &str = "inventories/lab-net.yml";

fn net_config() -> std::path::PathBuf {
    repo().join(".lab/net/ssh_config")
}

/// The lab's namespaces: `name -> pid` of a process in it (bridge, client and the hosts).
fn net_pids() -> std::collections::BTreeMap<String, String> {
    std::fs::read_to_string(repo().join(".lab/net/pids"))
        .expect(".lab/net/pids (scripts/lab up --net-hosts)")
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

/// The project copy every case runs foobar in (its templates may be edited by a case).
struct Lab {
    project: Project,
}

/// Fresh, bare networked hosts, once per test binary; each case holds the lab lock.
fn net_lab() -> (std::sync::MutexGuard<'static, ()>, &'static Mutex<Lab>) {
    let guard = lab_lock();
    static LAB: OnceLock<Mutex<Lab>> = OnceLock::new();
    let lab = LAB.get_or_init(|| {
        lab(&["down", "--net-hosts"]);
        lab(&["up", "--net-hosts"]);
        let project = Project::new();
        let inv = std::fs::read_to_string(repo().join(INVENTORY))
            .unwrap()
            .replace("../.lab/net/ssh_config", net_config().to_str().unwrap());
        project.write(INVENTORY, &inv);
        Mutex::new(Lab { project })
    });
    (guard, lab)
}

impl Lab {
    fn foobar(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-i", INVENTORY]);
        let out = Command::new(env!("CARGO_BIN_EXE_foobar"))
            .args(&all)
            .current_dir(self.project.dir.path())
            .env("FOOBAR_REPLICATION_PASSWORD", REPLICATION_PASSWORD)
            .env("FOOBAR_APP_DB_PASSWORD", APP_DB_PASSWORD)
            .env("FOOBAR_MYSQLD_EXPORTER_PASSWORD", MONITORING_DB_PASSWORD)
            .env("FOOBAR_VIP_PASSWORD", VIP_PASSWORD)
            .env("NO_COLOR", "1")
            .output()
            .expect("run foobar");
        let run = Run::from(out);
        for s in [
            VIP_PASSWORD,
            REPLICATION_PASSWORD,
            APP_DB_PASSWORD,
            MONITORING_DB_PASSWORD,
        ] {
            assert!(
                !run.all().contains(s),
                "secret leaked by foobar {args:?}: {run:?}"
            );
        }
        run
    }
}

fn ssh_net(host: &str, command: &str) -> Run {
    ssh_with(&net_config(), &["-o", "BatchMode=yes"], host, command)
}

/// Which load balancers have the floating address on their eth0 (unreachable ones do not).
fn holders() -> Vec<&'static str> {
    LBS.iter()
        .copied()
        .filter(|h| {
            let r = ssh_net(h, "ip -o -4 addr show dev eth0");
            r.code == 0 && r.stdout.contains(&format!(" {VIP}/"))
        })
        .collect()
}

/// Wait until exactly one load balancer holds the address (bounded); which one.
fn one_holder(secs: u64) -> &'static str {
    eventually(secs, || match holders()[..] {
        [h] => Some(h),
        _ => None,
    })
    .unwrap_or_else(|| panic!("no single holder of {VIP} after {secs} s: {:?}", holders()))
}

/// Enter the lab's client network namespace (this thread only).
fn enter_client_namespace() {
    let pid = &net_pids()["client"];
    let f = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("client netns");
    // SAFETY: setns on a valid namespace fd; it changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into the client namespace");
}

/// One request through the floating address; Ok when it answered 2xx.
fn request(post: bool, n: u64) -> bool {
    let addr = format!("{VIP}:80").parse().unwrap();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    let body = format!("note {n}");
    let req = if post {
        format!(
            "POST /notes HTTP/1.0\r\nHost: www.foobar.com\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    } else {
        "GET / HTTP/1.0\r\nHost: www.foobar.com\r\n\r\n".to_string()
    };
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = String::new();
    if s.read_to_string(&mut resp).is_err() {
        return false;
    }
    resp.split_whitespace()
        .nth(1)
        .is_some_and(|c| c.starts_with('2'))
}

/// A bounded request load (GETs and POSTs) through the floating address, from the client
/// namespace: `THREADS` threads, each a request every 50 ms.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Vec<(Duration, bool)>>>,
    start: Instant,
}

const THREADS: u64 = 4;

impl Load {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let threads = (0..THREADS)
            .map(|t| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    enter_client_namespace();
                    let mut out = Vec::new();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let at = start.elapsed();
                        let ok = request((n + t) % 2 == 1, n);
                        out.push((at, ok));
                        n += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    out
                })
            })
            .collect();
        Load {
            stop,
            threads,
            start,
        }
    }

    fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<(Duration, bool)> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("load thread"))
            .collect();
        all.sort_by_key(|(at, _)| *at);
        let _ = self.start;
        Report { samples: all }
    }
}

struct Report {
    samples: Vec<(Duration, bool)>,
}

impl Report {
    fn failed(&self) -> usize {
        self.samples.iter().filter(|(_, ok)| !ok).count()
    }

    /// From the first failed request to the first success after the last failed one.
    fn outage(&self) -> Option<(f64, f64)> {
        let first = self.samples.iter().position(|(_, ok)| !ok)?;
        let last = self.samples.iter().rposition(|(_, ok)| !ok)?;
        let back = self.samples[last..]
            .iter()
            .find(|(_, ok)| *ok)
            .map(|(at, _)| *at)
            .unwrap_or(self.samples[last].0);
        Some((self.samples[first].0.as_secs_f64(), back.as_secs_f64()))
    }

    /// Failed requests started after `t` (e.g. after the takeover).
    fn failed_after(&self, t: f64) -> usize {
        self.samples
            .iter()
            .filter(|(at, ok)| !ok && at.as_secs_f64() > t)
            .count()
    }

    fn summary(&self) -> String {
        let (from, to) = self.outage().unwrap_or((0.0, 0.0));
        format!(
            "{} requests, {} failed, failing for {:.2} s (from {:.2} s to {:.2} s into the load)",
            self.samples.len(),
            self.failed(),
            to - from,
            from,
            to
        )
    }
}

/// Figures for bench/vip.json, written by the case that measures them.
fn record(key: &str, value: serde_json::Value) {
    let path = std::env::temp_dir().join("foobar-vip-figures.json");
    let mut doc: serde_json::Map<String, serde_json::Value> = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    doc.insert(key.into(), value);
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    eprintln!("vip: {key} = {}", doc[key]);
}

/// Prometheus on the monitoring host (nlb-01), asked from inside that host: `expr`'s first
/// value, and the names of the alerts firing.
fn prometheus_value(expr: &str) -> Option<f64> {
    let r = ssh_net(
        "nlb-01",
        &format!(
            "curl -sf --get --data-urlencode 'query={expr}' http://198.51.100.11:9090/api/v1/query"
        ),
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn firing_alerts() -> Vec<String> {
    let r = ssh_net("nlb-01", "curl -sf http://198.51.100.11:9090/api/v1/alerts");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
    v["data"]["alerts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["state"] == "firing")
                .filter_map(|x| x["labels"]["alertname"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_machine_namespace_has_no_way_into_the_lab_network() {
    let (_g, _lab) = net_lab();
    // The same probe in the client namespace must see the lab network: the probe can fail.
    let probe = |pid: Option<&str>| -> (String, String) {
        let run = |args: &[&str]| {
            let mut c = match pid {
                Some(p) => {
                    let mut c = Command::new("nsenter");
                    c.args(["-t", p, "-n", "ip"]);
                    c
                }
                None => Command::new("ip"),
            };
            let out = c.args(args).output().expect("ip");
            assert!(out.status.success(), "ip {args:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        (
            run(&["-o", "-4", "addr", "show"]) + &run(&["-o", "link", "show"]),
            run(&["-4", "route", "show", "table", "all"]) + &run(&["-4", "neigh", "show"]),
        )
    };
    let lab_net = "198.51.100.";
    let pids = net_pids();
    let (client_links, client_routes) = probe(Some(&pids["client"]));
    assert!(client_links.contains(lab_net) && client_routes.contains(lab_net));
    let (links, routes) = probe(None);
    assert!(
        !links.contains(lab_net),
        "machine interface in the lab network:\n{links}"
    );
    assert!(
        !links.contains("v-nlb") && !links.contains("br0"),
        "{links}"
    );
    // The machine's default route (if any) leads to its own uplink, where TEST-NET-2 is routed
    // nowhere; no route names the lab network.
    assert!(
        !routes.contains(lab_net),
        "machine route into the lab network:\n{routes}"
    );
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    for (name, pid) in &pids {
        let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
        assert_ne!(ns, own, "{name} shares the machine's network namespace");
        if name != "bridge" && name != "client" {
            let r = ssh_net(name, "ip -4 route show default; echo routes-end");
            assert_eq!(
                r.stdout.trim(),
                "routes-end",
                "{name} has a default route: {r:?}"
            );
        }
    }
    // The bridge's namespace holds only the bridge and its ports.
    let out = Command::new("nsenter")
        .args([
            "-t",
            &pids["bridge"],
            "-n",
            "ip",
            "-o",
            "-4",
            "addr",
            "show",
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(lab_net));
}

#[test]
fn a_load_balancer_pair_keeps_one_floating_address_through_faults() {
    let (_g, lab) = net_lab();
    let lab = lab.lock().unwrap_or_else(|e| e.into_inner());

    // Bare hosts -> one apply -> verify green -> no change left.
    let apply = lab.foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "first apply: {apply:?}");
    let holder = one_holder(20);
    let verify = lab.foobar(&["verify"]);
    assert_eq!(verify.code, 0, "verify after the first apply: {verify:?}");
    for c in [
        "vip_holder",
        "vrrp_state",
        "haproxy_answers",
        "http_through_vip",
    ] {
        assert!(verify.stdout.contains(c), "{c} missing: {verify:?}");
    }
    let plan = lab.foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "plan after the apply: {plan:?}");
    // Prometheus sees the pair: one holder among two reporting load balancers.
    let seen = eventually(40, || {
        (prometheus_value("sum(foobar_vrrp_master)") == Some(1.0)
            && prometheus_value("count(foobar_vrrp_master)") == Some(2.0))
        .then_some(())
    });
    assert!(
        seen.is_some(),
        "Prometheus does not see one holder of two: sum {:?}, count {:?}",
        prometheus_value("sum(foobar_vrrp_master)"),
        prometheus_value("count(foobar_vrrp_master)")
    );

    // SIGKILL the holder's namespace under load: the peer takes over.
    let peer = LBS.iter().copied().find(|h| *h != holder).unwrap();
    let load = Load::start();
    std::thread::sleep(Duration::from_secs(2));
    let killed_at = load.start.elapsed().as_secs_f64();
    common::lab(&["net", "kill", holder]);
    let moved = eventually(20, || (holders() == [peer]).then_some(()));
    let moved_at = load.start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(3));
    let report = load.stop();
    assert!(
        moved.is_some(),
        "{peer} did not take {VIP} over: {:?}",
        holders()
    );
    let (_, back) = report.outage().unwrap_or((killed_at, killed_at));
    eprintln!(
        "vip: kill {holder} at {killed_at:.2} s: {}; {peer} seen holding by {moved_at:.2} s",
        report.summary()
    );
    record(
        "kill_holder",
        serde_json::json!({
            "killed": holder, "took_over": peer,
            "requests": report.samples.len(), "failed": report.failed(),
            "failed_seconds": report.outage().map(|(a, b)| b - a).unwrap_or(0.0),
            "failed_after_takeover": report.failed_after(back),
        }),
    );
    assert_eq!(report.failed_after(back), 0, "failures after the takeover");

    // The killed host comes back bare; one apply rejoins it as backup, no request failing.
    common::lab(&["net", "replace", holder]);
    let load = Load::start();
    let apply = lab.foobar(&["apply", "--yes"]);
    std::thread::sleep(Duration::from_secs(4));
    let report = load.stop();
    assert_eq!(apply.code, 0, "rejoining apply: {apply:?}");
    eprintln!("vip: {holder} rejoins bare: {}", report.summary());
    record(
        "rejoin",
        serde_json::json!({"requests": report.samples.len(), "failed": report.failed()}),
    );
    assert_eq!(
        report.failed(),
        0,
        "requests failed while {holder} rejoined"
    );
    assert_eq!(
        holders(),
        [peer],
        "nopreempt: the rejoined host stays backup"
    );
    let verify = lab.foobar(&["verify"]);
    assert_eq!(verify.code, 0, "verify after the rejoin: {verify:?}");
    assert!(
        verify
            .stdout
            .contains("keepalived is BACKUP and does not hold it"),
        "{verify:?}"
    );

    // HAProxy stops on the holder: the track script gives the address up.
    let load = Load::start();
    std::thread::sleep(Duration::from_secs(1));
    let stopped_at = load.start.elapsed().as_secs_f64();
    let r = ssh_net(peer, "systemctl stop haproxy >/dev/null 2>&1; echo stopped");
    assert!(r.stdout.contains("stopped"), "{r:?}");
    let moved = eventually(20, || (holders() == [holder]).then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    assert!(
        moved.is_some(),
        "{VIP} stayed on {peer} without HAProxy: {:?}",
        holders()
    );
    eprintln!(
        "vip: HAProxy stopped on {peer} at {stopped_at:.2} s: {}",
        report.summary()
    );
    record(
        "haproxy_stopped",
        serde_json::json!({"requests": report.samples.len(), "failed": report.failed(),
            "failed_seconds": report.outage().map(|(a, b)| b - a).unwrap_or(0.0)}),
    );
    let apply = lab.foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "apply restarting HAProxy: {apply:?}");
    let holder = one_holder(20);

    // A change of the HAProxy configuration on both load balancers: no request fails.
    lab.project.edit(
        "templates/haproxy/haproxy.cfg.j2",
        "    timeout server 50s\n",
        "    timeout server 51s\n",
    );
    let load = Load::start();
    std::thread::sleep(Duration::from_secs(1));
    let apply = lab.foobar(&["apply", "--yes"]);
    std::thread::sleep(Duration::from_secs(3));
    let report = load.stop();
    assert_eq!(apply.code, 0, "HAProxy change: {apply:?}");
    assert!(apply.stdout.contains("nlb-01") && apply.stdout.contains("nlb-02"));
    // One at a time, the holder last: its new file is the later one, and each was serving
    // again before the next changed.
    assert_eq!(
        apply
            .stdout
            .matches("HAProxy serves again; the next load balancer may change")
            .count(),
        2,
        "{apply:?}"
    );
    let changed_at = |h: &str| -> f64 {
        let r = ssh_net(h, "stat -c %.9Y /etc/haproxy/haproxy.cfg");
        r.stdout
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{h}: {r:?}"))
    };
    let peer = LBS.iter().copied().find(|h| *h != holder).unwrap();
    assert!(
        changed_at(peer) < changed_at(holder),
        "the holder {holder} changed before its peer {peer}"
    );
    eprintln!(
        "vip: HAProxy configuration change on both: {}",
        report.summary()
    );
    record(
        "haproxy_change",
        serde_json::json!({"requests": report.samples.len(), "failed": report.failed()}),
    );
    assert_eq!(
        report.failed(),
        0,
        "requests failed during the HAProxy change"
    );
    assert_eq!(holders(), [holder]);

    // A rolling change of the web hosts (the app restarts): each is drained on both load
    // balancers, since the address may sit on either; no request fails.
    lab.project.edit(
        "inventories/lab-net.yml",
        "  app_version: \"1\"\n",
        "  app_version: \"2\"\n",
    );
    let load = Load::start();
    std::thread::sleep(Duration::from_secs(1));
    let apply = lab.foobar(&["apply", "--yes"]);
    std::thread::sleep(Duration::from_secs(2));
    let report = load.stop();
    assert_eq!(apply.code, 0, "rolling app change: {apply:?}");
    assert_eq!(
        apply
            .stdout
            .matches("drained and put in maintenance on nlb-01, nlb-02")
            .count(),
        2,
        "each web host drained on both: {apply:?}"
    );
    eprintln!("vip: rolling app change: {}", report.summary());
    record(
        "rolling_web_change",
        serde_json::json!({"requests": report.samples.len(), "failed": report.failed()}),
    );
    assert_eq!(
        report.failed(),
        0,
        "requests failed during the rolling change"
    );

    // Split brain: VRRP between the two dropped (nftables, in each host's own namespace):
    // both take the address, and verify names both.
    let block = "[ \"$(readlink /proc/self/ns/net)\" != \"$(cat /etc/foobar-lab-machine-netns)\" ] && \
        nft add table inet foobar_test && \
        nft add chain inet foobar_test input '{ type filter hook input priority 0; }' && \
        nft add rule inet foobar_test input ip protocol vrrp drop && echo blocked";
    for h in LBS {
        let r = ssh_net(h, block);
        assert!(r.stdout.contains("blocked"), "{h}: {r:?}");
    }
    let both = eventually(20, || (holders().len() == 2).then_some(()));
    let verify = lab.foobar(&["verify"]);
    let alerted = eventually(30, || {
        firing_alerts()
            .iter()
            .any(|a| a == "FloatingAddressTwoHolders")
            .then_some(())
    });
    for h in LBS {
        let r = ssh_net(h, "nft delete table inet foobar_test && echo unblocked");
        assert!(r.stdout.contains("unblocked"), "{h}: {r:?}");
    }
    assert!(
        both.is_some(),
        "VRRP blocked but not two holders: {:?}",
        holders()
    );
    assert_ne!(verify.code, 0, "verify passed with two holders: {verify:?}");
    assert!(
        alerted.is_some(),
        "no FloatingAddressTwoHolders alert with two holders: {:?}",
        firing_alerts()
    );
    assert!(
        verify
            .stdout
            .contains(&format!("{VIP} is held by nlb-01 and nlb-02 at once")),
        "{verify:?}"
    );
    one_holder(20);
    let verify = lab.foobar(&["verify"]);
    assert_eq!(verify.code, 0, "verify once VRRP flows again: {verify:?}");
}
