//! Day 2 for the database tier, end to end on the local hosts with real MariaDB: a replica
//! replaced by a bare host, password rotation under load, reseeding a broken replica, and
//! failing the primary over. Faults are real: `scripts/lab replace` gives a bare host,
//! `scripts/lab kill` SIGKILLs a host's namespace init (every process of the host at once).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;

fn sql(host: &str, query: &str) -> String {
    ssh_ok(
        host,
        &format!("mariadb --batch --skip-column-names -e \"{query}\""),
    )
}

/// `foobar ARGS -i inventories/lab.yml` with the given secrets; no output may show them.
fn foobar_with(args: &[&str], replication: &str, app: &str) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["-i", "inventories/lab.yml"]);
    foobar_with_secrets(&repo(), &all, replication, app)
}

/// A stack built from bare hosts by one apply, verified healthy.
fn fresh_stack() {
    lab(&["reset"]);
    let apply = foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let verify = foobar(&["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
}

fn rows(host: &str) -> String {
    sql(host, "SELECT id, body FROM foobar.notes ORDER BY id")
}

/// Requests through lb-01 until stopped (bounded: at most `LOAD_LIMIT` requests and 120 s):
/// one thread POSTs notes, one GETs them. Counts failures of each.
struct Load {
    stop: Arc<AtomicBool>,
    counts: Arc<[AtomicU64; 4]>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

const LOAD_LIMIT: u64 = 5000;

struct LoadResult {
    posts: u64,
    failed_posts: u64,
    gets: u64,
    failed_gets: u64,
}

impl Load {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counts: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
        let threads = [true, false]
            .into_iter()
            .map(|writer| {
                let (stop, counts) = (stop.clone(), counts.clone());
                std::thread::spawn(move || {
                    let deadline = Instant::now() + Duration::from_secs(120);
                    let (total, failed) = if writer { (0, 1) } else { (2, 3) };
                    let mut n = 0u64;
                    while !stop.load(Ordering::SeqCst)
                        && Instant::now() < deadline
                        && n < LOAD_LIMIT
                    {
                        n += 1;
                        counts[total].fetch_add(1, Ordering::SeqCst);
                        let ok = if writer {
                            matches!(
                                http("127.0.1.1:80", "POST", "/notes", &format!("load {n}")),
                                Some((201, _))
                            )
                        } else {
                            matches!(http("127.0.1.1:80", "GET", "/notes", ""), Some((200, _)))
                        };
                        if !ok {
                            counts[failed].fetch_add(1, Ordering::SeqCst);
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                })
            })
            .collect();
        Self {
            stop,
            counts,
            threads,
        }
    }

    fn finish(self) -> LoadResult {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let c = |i: usize| self.counts[i].load(Ordering::SeqCst);
        LoadResult {
            posts: c(0),
            failed_posts: c(1),
            gets: c(2),
            failed_gets: c(3),
        }
    }
}

/// Acceptance 1: the replica's host is destroyed and comes back bare (same name and address).
/// One apply rebuilds and seeds it with every non-system database (foobar's own
/// `foobar_meta` included, so the heartbeat replicates), and verify is green three times.
/// Then acceptance 2: a replica stopped on an applier error is rebuilt by `foobar reseed`.
#[test]
fn a_replaced_replica_is_rebuilt_and_a_broken_one_reseeded() {
    let _guard = lab_lock();
    fresh_stack();
    let (status, body) = http("127.0.1.1:80", "POST", "/notes", "before the crash").expect("POST");
    assert_eq!(status, 201, "{body}");
    // verify wrote its heartbeat: foobar_meta exists on the primary.
    assert!(sql("web-01", "SHOW DATABASES").contains("foobar_meta"));

    lab(&["replace", "web-02"]);
    assert!(!ssh("web-02", "mariadb -e 'SELECT 1'").all().contains("\n1"));

    let plan = foobar(&["plan", "--limit", "web-02"]);
    assert!(
        plan.stdout.contains("the server is not running yet"),
        "{plan:?}"
    );
    let apply = foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("done database seeded `foobar`, `foobar_meta` from web-01"),
        "{apply:?}"
    );
    for i in 0..3 {
        let verify = foobar(&["verify"]);
        assert_eq!(verify.code, 0, "verify #{i} after the rebuild: {verify:?}");
        assert!(verify.stdout.contains("heartbeat"), "{verify:?}");
    }
    assert!(eventually(10, || (rows("web-02") == rows("web-01")).then_some(())).is_some());
    assert!(rows("web-02").contains("before the crash"));
    assert_eq!(
        sql("web-02", "SELECT COUNT(*) FROM foobar_meta.heartbeat").trim(),
        sql("web-01", "SELECT COUNT(*) FROM foobar_meta.heartbeat").trim()
    );
    let again = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{again:?}");

    // Acceptance 2 on the same stack: the replica's SQL thread stops on an error (a table
    // it lacks), plan names `foobar reseed`, and reseed brings it back.
    sql(
        "web-02",
        "SET SESSION sql_log_bin=0; DROP TABLE foobar_meta.heartbeat",
    );
    let broken = foobar(&["verify", "--max-lag", "2"]);
    assert_eq!(broken.code, 3, "{broken:?}");
    let stopped = eventually(10, || {
        let s = ssh_ok("web-02", "mariadb -e 'SHOW REPLICA STATUS\\G'");
        s.contains("Slave_SQL_Running: No").then_some(s)
    });
    assert!(stopped.is_some(), "the SQL thread did not stop");
    let plan = foobar(&["plan"]);
    assert!(
        plan.all().contains("foobar reseed web-02"),
        "plan names the command: {plan:?}"
    );
    let not_a_replica = foobar(&["reseed", "web-01", "--yes"]);
    assert_eq!(not_a_replica.code, 1, "{not_a_replica:?}");
    assert!(
        not_a_replica.stderr.contains("web-01 is not a replica"),
        "{not_a_replica:?}"
    );
    let dry = foobar(&["reseed", "web-02", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:?}");
    assert!(
        dry.stdout
            .contains("drop on web-02: `foobar`, `foobar_meta`"),
        "the plan names what is dropped: {dry:?}"
    );
    assert!(
        ssh_ok("web-02", "mariadb -e 'SHOW REPLICA STATUS\\G'").contains("Slave_SQL_Running: No"),
        "a dry run changes nothing"
    );
    let reseed = foobar(&["reseed", "web-02", "--yes"]);
    assert_eq!(reseed.code, 0, "{reseed:?}");
    let verify = foobar(&["verify"]);
    assert_eq!(verify.code, 0, "after the reseed: {verify:?}");
    assert!(eventually(10, || (rows("web-02") == rows("web-01")).then_some(())).is_some());
    let converged = foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(converged.code, 0, "{converged:?}");
}

/// Acceptance 5: the replication and app passwords change; one apply under load changes the
/// accounts on the primary (the app's keeping the previous password beside the new one),
/// re-points the replica with the new replication password and restarts the apps rolling,
/// so a forced reconnect (`STOP REPLICA; START REPLICA`) finds the IO thread running and no
/// request fails. The next apply retires the app's previous password.
#[test]
fn a_rotated_replication_password_survives_a_forced_reconnect() {
    let _guard = lab_lock();
    fresh_stack();
    const NEW_REPLICATION: &str = "Zq7-repl-ROTATED-e2e";
    const NEW_APP: &str = "Zq7-app-ROTATED-e2e";

    let plan = foobar_with(&["plan"], NEW_REPLICATION, NEW_APP);
    assert!(
        plan.stdout
            .contains("user 'repl'@'127.%': set the password (it differs)"),
        "{plan:?}"
    );
    let load = Load::start();
    std::thread::sleep(Duration::from_millis(500));
    let apply = foobar_with(&["apply", "--yes"], NEW_REPLICATION, NEW_APP);
    std::thread::sleep(Duration::from_millis(500));
    let result = load.finish();
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("done database replication configured from web-01"),
        "one apply re-points the replica: {apply:?}"
    );
    assert!(
        apply
            .stdout
            .contains("keeping the previous one until the next apply"),
        "{apply:?}"
    );
    eprintln!(
        "replication and app password rotation under load: {} of {} POSTs and {} of {} GETs failed",
        result.failed_posts, result.posts, result.failed_gets, result.gets
    );
    assert!(result.posts > 0 && result.gets > 0);
    assert_eq!(result.failed_posts + result.failed_gets, 0);

    // The forced reconnect logs in with the new password.
    sql("web-02", "STOP REPLICA; START REPLICA");
    let running = eventually(10, || {
        let s = ssh_ok("web-02", "mariadb -e 'SHOW REPLICA STATUS\\G'");
        (s.contains("Slave_IO_Running: Yes") && s.contains("Last_IO_Errno: 0")).then_some(())
    });
    assert!(running.is_some(), "the IO thread did not reconnect");
    let verify = foobar_with(&["verify"], NEW_REPLICATION, NEW_APP);
    assert_eq!(verify.code, 0, "{verify:?}");
    // The rotating apply retired the app's previous password once every app host had the
    // new one (the play after the rollout): it is refused at once, and nothing is left to do.
    let old_login = ssh(
        "web-01",
        &format!("mariadb -h 127.0.1.2 -u foobar -p{APP_DB_PASSWORD} -e 'SELECT 1'"),
    );
    assert_ne!(old_login.code, 0, "the previous app password still works");
    let converged = foobar_with(&["plan", "--detailed-exitcode"], NEW_REPLICATION, NEW_APP);
    assert_eq!(converged.code, 0, "{converged:?}");
}

/// POSTs through lb-01 from one thread until stopped (bounded in count and time), keeping
/// the body and time of every acknowledged one; GETs from another, counting failures.
struct Writes {
    stop: Arc<AtomicBool>,
    writer: std::thread::JoinHandle<(Vec<(Instant, String)>, u64)>,
    reader: std::thread::JoinHandle<(u64, u64)>,
}

impl Writes {
    fn start(tag: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let writer = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let (mut acked, mut attempts) = (Vec::new(), 0u64);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline && attempts < LOAD_LIMIT {
                attempts += 1;
                let body = format!("{tag} {attempts}");
                if let Some((201, _)) = http("127.0.1.1:80", "POST", "/notes", &body) {
                    acked.push((Instant::now(), body));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (acked, attempts)
        });
        let s = stop.clone();
        let reader = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let (mut n, mut failed) = (0u64, 0u64);
            while !s.load(Ordering::SeqCst) && Instant::now() < deadline && n < LOAD_LIMIT {
                n += 1;
                if !matches!(http("127.0.1.1:80", "GET", "/notes", ""), Some((200, _))) {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (n, failed)
        });
        Self {
            stop,
            writer,
            reader,
        }
    }

    /// (acknowledged writes with their times, attempted writes, reads, failed reads)
    fn finish(self) -> (Vec<(Instant, String)>, u64, u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        let (acked, attempts) = self.writer.join().expect("writer");
        let (reads, failed) = self.reader.join().expect("reader");
        (acked, attempts, reads, failed)
    }
}

/// Acknowledged writes missing on `host`.
fn lost_on(host: &str, acked: &[(Instant, String)]) -> usize {
    let have = sql(host, "SELECT body FROM foobar.notes");
    let have: std::collections::HashSet<&str> = have.lines().collect();
    acked
        .iter()
        .filter(|(_, b)| !have.contains(b.as_str()))
        .count()
}

/// Acceptance 3, 4 and 6: bad input changes nothing; the primary's host is killed under load
/// and `failover --to web-02` brings writes back; the old primary, booted again on its data
/// dir, is rejoined by apply; a planned switchover back loses nothing and fails no read.
#[test]
fn failover_unplanned_then_rejoin_then_planned_back() {
    let _guard = lab_lock();
    fresh_stack();
    let project = Project::new();
    let inventory_before = project.read("inventories/lab.yml");

    // Bad input: one clear error, exit 1, nothing changed.
    for (args, says) in [
        (
            vec!["failover", "--to", "lb-01", "--yes"],
            "lb-01 is not a replica",
        ),
        (
            vec!["failover", "--to", "web-01", "--yes"],
            "web-01 is not a replica",
        ),
        (
            vec!["failover", "--to", "web-09", "--yes"],
            "web-09 is not a host",
        ),
    ] {
        let r = project.foobar(&args);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains(says), "{r:?}");
    }
    ssh_ok(
        "web-02",
        "mkdir -p /var/lib/foobar/lock && echo 'alice@elsewhere pid 1 since 0 run other' > /var/lib/foobar/lock/holder",
    );
    let locked = project.foobar(&["failover", "--to", "web-02", "--yes"]);
    assert_eq!(locked.code, 1, "{locked:?}");
    assert!(
        locked.stderr.contains("locked by another run"),
        "{locked:?}"
    );
    ssh_ok("web-02", "rm -rf /var/lib/foobar/lock");
    assert_eq!(project.read("inventories/lab.yml"), inventory_before);
    assert!(
        ssh_ok("web-02", "mariadb -e 'SHOW REPLICA STATUS\\G'").contains("Slave_IO_Running: Yes")
    );

    // Unplanned: web-01 (the primary) dies with everything on it, mid-load.
    // Measured and printed; without semi-sync, 0 lost is not a guarantee.
    kill_primary_and_fail_over(&project, "semi_sync off");
    // plan on the edited inventory keeps web-02 the primary (web-01 is still down).
    let plan = project.foobar(&["plan", "--limit", "web-02,lb-01"]);
    assert!(!plan.stdout.contains("127.0.1.2:3306"), "{plan:?}");

    // web-01 boots again on its data dir: read-only (fenced), then rejoined by apply.
    lab(&["start", "web-01"]);
    let apply = project.foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let verify = eventually(20, || {
        let v = project.foobar(&["verify"]);
        (v.code == 0).then_some(v)
    });
    let verify = match verify {
        Some(v) => v,
        None => {
            // Its history diverged (it committed writes web-02 never received): the primary
            // refused it; plan names reseed, which rebuilds it.
            let plan = project.foobar(&["plan"]);
            assert!(plan.all().contains("foobar reseed web-01"), "{plan:?}");
            eprintln!("web-01 diverged: reseeded");
            let r = project.foobar(&["reseed", "web-01", "--yes"]);
            assert_eq!(r.code, 0, "{r:?}");
            let v = project.foobar(&["verify"]);
            assert_eq!(v.code, 0, "{v:?}");
            v
        }
    };
    assert!(
        verify.stdout.contains("replicating from 127.0.1.3:3306"),
        "{verify:?}"
    );

    // Planned switchover back to web-01, both up, under load.
    let load = Writes::start("planned");
    std::thread::sleep(Duration::from_secs(2));
    let switch = project.foobar(&["failover", "--to", "web-01", "--yes"]);
    std::thread::sleep(Duration::from_secs(2));
    let (acked, attempts, reads, failed_reads) = load.finish();
    assert_eq!(switch.code, 0, "{switch:?}");
    assert!(switch.stdout.contains("planned switchover"), "{switch:?}");
    let lost = eventually(10, || {
        let l = lost_on("web-01", &acked);
        (l == 0).then_some(l)
    })
    .unwrap_or_else(|| lost_on("web-01", &acked));
    eprintln!(
        "planned switchover: {lost} of {} acknowledged writes lost ({attempts} attempted); {failed_reads} of {reads} reads failed",
        acked.len()
    );
    assert_eq!(lost, 0);
    assert_eq!(failed_reads, 0);
    let verify = project.foobar(&["verify"]);
    assert_eq!(verify.code, 0, "{verify:?}");
    assert!(
        verify.stdout.contains("replicating from 127.0.1.2:3306"),
        "{verify:?}"
    );
    let converged = project.foobar(&["plan", "--detailed-exitcode"]);
    assert_eq!(converged.code, 0, "{converged:?}");
}

/// Under load, SIGKILL web-01's namespace (the primary) and run `failover --to web-02 --yes`.
/// Asserts a write is acknowledged again within 10 s of the command's start. Returns the
/// acknowledged writes missing on web-02 and how many were acknowledged.
fn kill_primary_and_fail_over(project: &Project, label: &'static str) -> (usize, usize) {
    let load = Writes::start(label);
    std::thread::sleep(Duration::from_secs(2));
    lab(&["kill", "web-01"]);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let failover = project.foobar(&["failover", "--to", "web-02", "--yes"]);
    let took = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (acked, attempts, reads, failed_reads) = load.finish();
    assert_eq!(failover.code, 0, "{failover:?}");
    assert!(
        failover.stdout.contains("unplanned failover"),
        "{failover:?}"
    );
    assert!(
        failover.stdout.contains("+    hosts: [web-02]"),
        "the inventory diff: {failover:?}"
    );
    let back = acked
        .iter()
        .find(|(t, _)| *t > started)
        .map(|(t, _)| t.duration_since(started));
    let lost = lost_on("web-02", &acked);
    eprintln!(
        "unplanned failover ({label}): command took {:.1} s; first acknowledged write {:?} after its start; {} of {} acknowledged writes lost ({} attempted); {} of {} reads failed",
        took.as_secs_f64(),
        back,
        lost,
        acked.len(),
        attempts,
        failed_reads,
        reads
    );
    let back = back.expect("no write succeeded after the failover");
    assert!(
        back < Duration::from_secs(10),
        "writes came back after {back:?}"
    );
    (lost, acked.len())
}

/// Acceptance 3 with `semi_sync: true`: no write the app was told succeeded is lost when the
/// primary's host is killed and a replica promoted.
#[test]
fn unplanned_failover_with_semi_sync_loses_no_acknowledged_write() {
    let _guard = lab_lock();
    fresh_stack();
    let project = Project::new();
    project.edit(
        "inventories/lab.yml",
        "  app_version: \"1\"\n",
        // The apps write to the primary's own address here: that path keeps its test.
        "  app_version: \"1\"\n  semi_sync: true\n  db_write_address: primary\n",
    );
    let apply = project.foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    let on = sql(
        "web-01",
        "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_status'",
    );
    let on = eventually(15, || {
        let s = sql(
            "web-01",
            "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'",
        );
        s.trim().ends_with('1').then_some(s)
    })
    .unwrap_or(on);
    assert!(
        on.trim().ends_with('1') || on.contains("ON"),
        "semi-sync is not on: {on}"
    );
    let (lost, acked) = kill_primary_and_fail_over(&project, "semi_sync on");
    assert!(acked > 0);
    assert_eq!(lost, 0, "acknowledged writes lost with semi-sync");
}

/// `db_write_address: load_balancer`: the apps write through the load balancer's
/// `db_write` frontend, so an unplanned failover moves the primary behind it and restarts no
/// app (the app's process on the surviving host is the same before and after); the figures
/// are printed beside the direct-address runs above.
#[test]
fn a_failover_behind_the_load_balancer_restarts_no_app() {
    let _guard = lab_lock();
    lab(&["reset"]);
    let project = Project::new();
    project.edit(
        "inventories/lab.yml",
        "  app_version: \"1\"\n",
        "  app_version: \"1\"\n  db_write_address: load_balancer\n  semi_sync: true\n",
    );
    let apply = project.foobar(&["apply", "--yes"]);
    assert_eq!(apply.code, 0, "{apply:?}");
    assert_eq!(project.foobar(&["verify"]).code, 0);
    let unit = ssh_ok("web-02", "cat /etc/systemd/system/foobar-app.service");
    assert!(
        unit.contains("FOOBAR_DB_WRITE_HOST=127.0.1.1\"\n"),
        "{unit}"
    );
    let pid = || {
        ssh_ok("web-02", "systemctl show -p MainPID foobar-app")
            .trim()
            .to_string()
    };
    let before = pid();
    let (lost, acked) = kill_primary_and_fail_over(&project, "writes through the load balancer");
    assert!(acked > 0);
    assert_eq!(lost, 0, "acknowledged writes lost");
    assert_eq!(
        pid(),
        before,
        "the app on web-02 was restarted by the failover"
    );
    let cfg = ssh_ok("lb-01", "cat /etc/haproxy/haproxy.cfg");
    assert!(
        cfg.contains("server 'web-02' '127.0.1.3:3306' check\n")
            && cfg.contains("server 'web-01' '127.0.1.2:3306' check disabled\n"),
        "{cfg}"
    );
    lab(&["reset"]);
}
