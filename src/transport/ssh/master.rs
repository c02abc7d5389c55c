//! The master connection's lifecycle: its options from the inventory, starting it (with a
//! plain reason when that fails), and persisting it across runs.
//!
//! In: a [`ConnectionSpec`] and the control directory. Out: an openssh [`Session`] (new or
//! resumed), or [`TransportError::HostUnreachable`]; records `<key>.ctl` naming a detached
//! master's socket, and sweeps stale ones.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use sha2::{Digest, Sha256};

use super::ORPHAN_IDLE_SECS;
use super::diagnose::{
    connect_failure_reason, host_key_reason, probe_failure_reason, proxy_failed,
};
use crate::transport::{ConnectionSpec, TransportError};

/// `ServerAliveInterval`: notice a dead peer within ~45 s (3 missed probes).
const SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Bound on resuming a recorded master (connect + alive check on a local socket).
const RESUME_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Leftover socket directories without a socket are swept after this long.
const STALE_AFTER: Duration = Duration::from_secs(600);
/// The prefix the openssh crate gives each master's directory inside the control directory.
const MASTER_DIR_PREFIX: &str = ".ssh-connection";

/// Options for `ssh -M`, from the inventory.
pub(super) fn session_builder(spec: &ConnectionSpec, control_dir: &Path) -> SessionBuilder {
    let mut b = SessionBuilder::default();
    if let Some(config) = &spec.ssh_config {
        b.config_file(config);
    }
    if let Some(user) = &spec.user {
        b.user(user.clone());
    }
    if let Some(port) = spec.port {
        b.port(port);
    }
    if let Some(key) = &spec.identity_file {
        b.keyfile(key); // also sets IdentitiesOnly=yes
    }
    // Never `KnownHosts::Accept` (`StrictHostKeyChecking=no`): it lets a changed key through.
    b.known_hosts_check(if spec.strict_host_key_checking {
        KnownHosts::Strict
    } else {
        KnownHosts::Add
    });
    if let Some(known_hosts) = &spec.known_hosts_file {
        b.user_known_hosts_file(known_hosts);
    }
    b.connect_timeout(spec.connect_timeout.max(Duration::from_secs(1)));
    b.server_alive_interval(SERVER_ALIVE_INTERVAL);
    b.control_directory(control_dir);
    let idle = if spec.control_persist > 0 {
        spec.control_persist as usize
    } else {
        ORPHAN_IDLE_SECS
    };
    b.control_persist(ControlPersist::IdleFor(
        std::num::NonZeroUsize::new(idle).unwrap_or(std::num::NonZeroUsize::MIN),
    ));
    b
}

/// Start a master. `ConnectTimeout` bounds the TCP connect and the banner exchange; the
/// outer bound also covers a server that stalls during key exchange or authentication.
pub(super) async fn open_master(
    spec: &ConnectionSpec,
    builder: &SessionBuilder,
) -> Result<Session, TransportError> {
    let unreachable = |reason: String| TransportError::HostUnreachable {
        host: spec.host.clone(),
        destination: spec.destination.clone(),
        reason,
    };
    // Checked at load too; here for every other way a spec is made. A leading `-` is read as
    // an option (`-oProxyCommand=...`), and a URI or `user@` is taken apart by the ssh
    // library, whose host part could then be one.
    if !spec.local
        && let Err(why) = crate::inventory::rules::check_destination(&spec.destination)
    {
        return Err(unreachable(format!(
            "the destination `{}` {why}",
            spec.destination.escape_debug()
        )));
    }
    if let Some(user) = &spec.user
        && let Err(why) = crate::inventory::rules::check_ssh_user(user)
    {
        return Err(unreachable(format!(
            "the user `{}` {why}",
            user.escape_debug()
        )));
    }
    let limit = spec
        .connect_timeout
        .max(Duration::from_secs(1))
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(10));
    match tokio::time::timeout(limit, builder.connect_mux(&spec.destination)).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err(e)) => {
            let mut reason = connect_failure_reason(&e);
            if proxy_failed(&reason) {
                // The ProxyJump/ProxyCommand's own ssh said why (`Could not resolve hostname
                // …`, `Connection refused`) on a stderr the master does not keep; ask once
                // more with stderr captured, keeping every line.
                if let Some(why) = probe_failure_reason(spec, limit).await {
                    reason = why;
                }
            }
            if reason.is_empty() || reason.contains("Host key verification failed") {
                // `LogLevel QUIET/FATAL` in the ssh config (vagrant ssh-config writes FATAL)
                // silences most reasons, e.g. `Connection refused`; ask ssh once more, louder.
                // A failed host key check is asked again too, for the file and line at fault.
                if let Some(louder) = probe_failure_reason(spec, limit).await {
                    reason = louder;
                } else if reason.is_empty() {
                    reason = "ssh failed without saying why (a `LogLevel` of QUIET or FATAL in the ssh config hides the reason)".to_string();
                }
            }
            Err(unreachable(
                host_key_reason(&reason, spec).unwrap_or(reason),
            ))
        }
        Err(_) => Err(unreachable(format!(
            "ssh did not finish connecting within {} s",
            limit.as_secs()
        ))),
    }
}

/// Which persisted master a spec may reuse: a hash of everything that selects the remote
/// account and how its identity is checked.
pub(super) fn persist_key(spec: &ConnectionSpec) -> String {
    fn field(h: &mut Sha256, name: &str, value: Option<&[u8]>) {
        h.update(name.as_bytes());
        match value {
            None => h.update([0u8]),
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
        }
    }
    fn path(p: &Option<PathBuf>) -> Option<Vec<u8>> {
        p.as_ref().map(|p| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.clone())
                .into_os_string()
                .into_vec()
        })
    }
    let mut h = Sha256::new();
    h.update(b"foobar-ssh-master-v1");
    field(&mut h, "destination", Some(spec.destination.as_bytes()));
    field(&mut h, "user", spec.user.as_deref().map(str::as_bytes));
    let port = spec.port.map(|p| p.to_string());
    field(&mut h, "port", port.as_deref().map(str::as_bytes));
    field(
        &mut h,
        "identity_file",
        path(&spec.identity_file).as_deref(),
    );
    field(&mut h, "ssh_config", path(&spec.ssh_config).as_deref());
    field(
        &mut h,
        "known_hosts_file",
        path(&spec.known_hosts_file).as_deref(),
    );
    let strict: &[u8] = if spec.strict_host_key_checking {
        b"yes"
    } else {
        b"accept-new"
    };
    field(&mut h, "strict_host_key_checking", Some(strict));
    hex::encode(h.finalize())
}

/// Record a detached master's control socket, atomically (write, then rename).
pub(super) fn write_record(record: &Path, ctl: &Path) -> io::Result<()> {
    let tmp = record.with_extension(format!("tmp-{}", std::process::id()));
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(ctl.as_os_str().as_bytes())?;
        std::fs::rename(&tmp, record)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The socket a record points to, when it is a master socket in our control directory.
fn read_record(record: &Path, control_dir: &Path) -> Option<PathBuf> {
    let bytes = std::fs::read(record).ok()?;
    let ctl = PathBuf::from(OsString::from_vec(bytes));
    is_master_socket_path(&ctl, control_dir).then_some(ctl)
}

/// `<control_dir>/.ssh-connectionXXXXXX/master`, nothing else.
fn is_master_socket_path(ctl: &Path, control_dir: &Path) -> bool {
    let Some(master_dir) = ctl.parent() else {
        return false;
    };
    ctl.file_name() == Some("master".as_ref())
        && master_dir.parent() == Some(control_dir)
        && master_dir
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(MASTER_DIR_PREFIX.as_bytes()))
}

/// Resume the master recorded in `record` if its socket answers an alive check; otherwise
/// forget the record (and the dead master's directory).
pub(super) async fn resume(record: &Path, control_dir: &Path) -> Option<Session> {
    if !record.exists() {
        return None;
    }
    if let Some(ctl) = read_record(record, control_dir) {
        if ctl.exists() {
            let session = Session::resume_mux(ctl.clone().into_boxed_path(), None);
            if let Ok(Ok(())) = tokio::time::timeout(RESUME_CHECK_TIMEOUT, session.check()).await {
                return Some(session);
            }
        }
        if let Some(dir) = ctl.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    let _ = std::fs::remove_file(record);
    None
}

/// Once per process: remove records whose socket is gone, and master directories left
/// without a socket (a persisted master that exited, a killed foobar) for a while.
pub(super) fn sweep_stale_once(control_dir: &Path) {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::Relaxed) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(control_dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        let name = entry.file_name();
        if meta.is_dir() && name.as_bytes().starts_with(MASTER_DIR_PREFIX.as_bytes()) {
            let old = meta
                .modified()
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > STALE_AFTER);
            if old && !path.join("master").exists() {
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if meta.is_file() && path.extension() == Some("ctl".as_ref()) {
            match read_record(&path, control_dir) {
                Some(ctl) if ctl.exists() => {}
                _ => {
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::host::HostName;
    use crate::transport::ssh::tests::spec;

    #[test]
    fn persist_key_is_stable_hex_sha256() {
        let k = persist_key(&spec());
        assert_eq!(k.len(), 64);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(k, persist_key(&spec()));
    }

    #[test]
    fn persist_key_depends_on_what_selects_the_connection() {
        let base = persist_key(&spec());
        type Change = Box<dyn Fn(&mut ConnectionSpec)>;
        let variants: Vec<Change> = vec![
            Box::new(|s| s.destination = "127.0.1.3".into()),
            Box::new(|s| s.user = None),
            Box::new(|s| s.user = Some("root".into())),
            Box::new(|s| s.port = Some(2222)),
            Box::new(|s| s.port = None),
            Box::new(|s| s.identity_file = Some("/keys/other".into())),
            Box::new(|s| s.ssh_config = Some("/lab/ssh_config".into())),
            Box::new(|s| s.known_hosts_file = Some("/lab/known_hosts".into())),
            Box::new(|s| s.strict_host_key_checking = false),
        ];
        let mut seen = std::collections::HashSet::from([base.clone()]);
        for change in variants {
            let mut s = spec();
            change(&mut s);
            assert!(seen.insert(persist_key(&s)), "collision for {s:?}");
        }
        // Fields that do not select the connection share the master.
        let mut s = spec();
        s.host = HostName::new("alias");
        s.become_root = true;
        s.control_persist = 600;
        s.connect_timeout = Duration::from_secs(3);
        assert_eq!(persist_key(&s), base);
    }

    #[test]
    fn persist_key_fields_do_not_run_together() {
        let mut a = spec();
        a.user = Some("ab".into());
        a.destination = "c".into();
        let mut b = spec();
        b.user = Some("a".into());
        b.destination = "bc".into();
        assert_ne!(persist_key(&a), persist_key(&b));
    }

    #[test]
    fn records_round_trip_and_only_point_into_the_control_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let ctl = tmp.path().join(".ssh-connectionAbC123").join("master");
        let record = tmp.path().join("k.ctl");
        write_record(&record, &ctl).unwrap();
        let meta = std::fs::metadata(&record).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(read_record(&record, tmp.path()), Some(ctl));

        write_record(&record, Path::new("/somewhere/else/master")).unwrap();
        assert_eq!(read_record(&record, tmp.path()), None);
        let outside = tmp.path().join("x").join("master");
        write_record(&record, &outside).unwrap();
        assert_eq!(read_record(&record, tmp.path()), None);
    }

    #[tokio::test]
    async fn a_stale_record_is_forgotten() {
        let tmp = tempfile::tempdir().unwrap();
        let master_dir = tmp.path().join(".ssh-connectionDead01");
        std::fs::create_dir(&master_dir).unwrap();
        std::fs::write(master_dir.join("log"), "").unwrap();
        let record = tmp.path().join("k.ctl");
        write_record(&record, &master_dir.join("master")).unwrap();
        assert!(resume(&record, tmp.path()).await.is_none());
        assert!(!record.exists());
        assert!(!master_dir.exists());
    }
}
