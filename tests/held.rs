//! A held session over real SSH: an apply's gather keeps the host's shell waiting,
//! and the apply's script continues in it, one session for both. Pinned here against the
//! local test host web-01: the script runs in the same shell and only once, with its own exit
//! status; the gather cannot read what follows it; a stale or ended held shell is never used
//! (the script runs on a new session instead, still once).

mod common;

use std::time::Duration;

use common::{lab_lock, repo, ssh_ok};
use foobar::host::HostName;
use foobar::transport::{self, ConnectionSpec, RemoteCommand, Transport};

fn spec() -> ConnectionSpec {
    ConnectionSpec {
        host: HostName::new("web-01"),
        destination: "web-01".into(),
        user: None,
        port: None,
        identity_file: None,
        ssh_config: Some(repo().join(".lab/ssh_config")),
        known_hosts_file: None,
        strict_host_key_checking: true,
        connect_timeout: Duration::from_secs(10),
        control_persist: 0,
        become_root: false,
        local: false,
    }
}

fn text(out: &transport::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `pid=N` line a script printed.
fn pid(out: &transport::Output) -> String {
    text(out)
        .lines()
        .find_map(|l| l.strip_prefix("pid=").map(str::to_string))
        .unwrap_or_else(|| panic!("no pid in {:?}", text(out)))
}

#[test]
fn a_gather_and_the_script_after_it_share_one_shell_and_the_script_runs_once() {
    let _lab = lab_lock();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(held_session());
}

/// A held gather (bounded by the command's own timeout).
async fn hold(t: &dyn Transport, cmd: &RemoteCommand, script: &[u8]) -> transport::Output {
    t.run_and_hold(cmd, script, cmd.timeout)
        .await
        .expect("held gather")
}

/// A script through the transport (continuing a held session when there is one fit).
async fn run(t: &dyn Transport, cmd: &RemoteCommand, script: &[u8]) -> transport::Output {
    t.run(cmd, Some(script)).await.expect("script")
}

/// Whether the shell `pid` on web-01 ends within 5 s.
fn ends(pid: &str) -> bool {
    (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        ssh_ok(
            "web-01",
            &format!("[ -e /proc/{pid} ] && echo alive || echo gone"),
        ) == "gone\n"
    })
}

async fn held_session() {
    ssh_ok("web-01", "rm -f /tmp/held-runs");
    let t = transport::connect(&spec())
        .await
        .expect("connect to web-01");
    let t = t.as_ref();
    let cmd = RemoteCommand::script(Duration::from_secs(60));

    // The held script's stdin is /dev/null: `cat` reads none of what follows.
    let gathered = hold(t, &cmd, b"echo pid=$$\ncat\necho read-nothing\n").await;
    let shell = pid(&gathered);
    assert_eq!(text(&gathered), format!("pid={shell}\nread-nothing\n"));
    assert_eq!(gathered.code, Some(0));

    // The next script continues in the same shell (`$$` in its subshell is the shell's),
    // with its own exit status and output, and counts as a second command.
    let applied = run(
        t,
        &cmd,
        b"set -u\necho pid=$$\necho ran >> /tmp/held-runs\nexit 3\n",
    )
    .await;
    assert_eq!(text(&applied), format!("pid={shell}\n"));
    assert_eq!(applied.code, Some(3));
    assert_eq!(t.commands_run(), 2);
    assert_eq!(ssh_ok("web-01", "cat /tmp/held-runs"), "ran\n");

    // The held session is used once: the next script gets a new shell.
    assert_ne!(pid(&run(t, &cmd, b"echo pid=$$\n").await), shell);

    // Output that does not end with a newline (a body read with `head -c`) is held too, comes
    // back exactly, and the next script continues after it.
    let unended = hold(t, &cmd, b"printf 'pid=%s\\nno newline' $$\n").await;
    let shell = pid(&unended);
    assert_eq!(text(&unended), format!("pid={shell}\nno newline"));
    let applied = run(t, &cmd, b"echo pid=$$\n").await;
    assert_eq!(text(&applied), format!("pid={shell}\n"));

    // A held shell that ended before the script came (here: killed) is not used: the script
    // runs on a new session, and once.
    let killed = pid(&hold(t, &cmd, b"echo pid=$$\n").await);
    ssh_ok("web-01", &format!("kill -9 {killed}"));
    let applied = run(t, &cmd, b"echo pid=$$\necho ran >> /tmp/held-runs\n").await;
    assert_ne!(pid(&applied), killed);
    assert_eq!(applied.code, Some(0));
    assert_eq!(ssh_ok("web-01", "cat /tmp/held-runs"), "ran\nran\n");

    // A held session older than a tenth of its timeout (here 1 s of 10 s) is not used: the
    // remote `timeout` started with the gather, and a script gets its whole time. The held
    // shell is released (it reads EOF and exits).
    let short = RemoteCommand::script(Duration::from_secs(10));
    let stale = pid(&hold(t, &short, b"echo pid=$$\n").await);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_ne!(pid(&run(t, &short, b"echo pid=$$\n").await), stale);
    assert!(ends(&stale), "the stale held shell {stale} still runs");

    // A gather that ends its shell (exit) is an ordinary command: nothing is held.
    let ended = hold(t, &cmd, b"echo pid=$$\nexit 5\n").await;
    assert_eq!(ended.code, Some(5));
    assert_ne!(pid(&run(t, &cmd, b"echo pid=$$\n").await), pid(&ended));

    // `finish` releases a held session that nothing used.
    let unused = pid(&hold(t, &cmd, b"echo pid=$$\n").await);
    t.finish().await;
    assert!(
        ends(&unused),
        "the unused held shell {unused} still runs after finish"
    );
    ssh_ok("web-01", "rm -f /tmp/held-runs");
}
