//! Day 2 for the database tier, end to end on the local hosts with real MariaDB: a replica
//! replaced by a bare host, password rotation under load, reseeding a broken replica, and
//! failing the primary over. Faults are real: `scripts/lab replace` gives a bare host,
//! `scripts/lab kill` SIGKILLs a host's namespace init (every process of the host at once).

mod common;

use std::process::Command;
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
    let out = Command::new(env!("CARGO_BIN_EXE_foobar"))
        .args(args)
        .args(["-i", "inventories/lab.yml"])
        .current_dir(repo())
        .env("FOOBAR_REPLICATION_PASSWORD", replication)
        .env("FOOBAR_APP_DB_PASSWORD", app)
        .env("NO_COLOR", "1")
        .output()
        .expect("run foobar");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for s in [replication, app, REPLICATION_PASSWORD, APP_DB_PASSWORD] {
        assert!(!run.all().contains(s), "secret leaked by {args:?}: {run:?}");
    }
    run
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

/// Acceptance 5: the replication password changes; one apply under load changes the account
/// on the primary and re-points the replica with the new password, so a forced reconnect
/// (`STOP REPLICA; START REPLICA`) finds the IO thread running; no request fails.
#[test]
fn a_rotated_replication_password_survives_a_forced_reconnect() {
    let _guard = lab_lock();
    fresh_stack();
    const NEW_REPLICATION: &str = "Zq7-repl-ROTATED-e2e";

    let plan = foobar_with(&["plan"], NEW_REPLICATION, APP_DB_PASSWORD);
    assert!(
        plan.stdout
            .contains("user 'repl'@'127.%': set the password (it differs)"),
        "{plan:?}"
    );
    let load = Load::start();
    std::thread::sleep(Duration::from_millis(500));
    let apply = foobar_with(&["apply", "--yes"], NEW_REPLICATION, APP_DB_PASSWORD);
    std::thread::sleep(Duration::from_millis(500));
    let result = load.finish();
    assert_eq!(apply.code, 0, "{apply:?}");
    assert!(
        apply
            .stdout
            .contains("done database replication configured from web-01"),
        "one apply re-points the replica: {apply:?}"
    );
    eprintln!(
        "replication password rotation under load: {} of {} POSTs and {} of {} GETs failed",
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
    let verify = foobar_with(&["verify"], NEW_REPLICATION, APP_DB_PASSWORD);
    assert_eq!(verify.code, 0, "{verify:?}");
    let converged = foobar_with(
        &["plan", "--detailed-exitcode"],
        NEW_REPLICATION,
        APP_DB_PASSWORD,
    );
    assert_eq!(converged.code, 0, "{converged:?}");
}
