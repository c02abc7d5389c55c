//! SSH transport over openssh native multiplexing.
//!
//! One `ssh` master process per host (`ssh -M -f -N`, started by the `openssh` crate) carries
//! every command as a channel: each [`Transport::run`] opens a new session on the master's
//! control socket (OpenSSH's mux protocol, spoken natively, no `ssh` process per command) and
//! passes our pipes to it, so a command costs one channel round trip, not a TCP + key exchange.
//!
//! Control sockets live in a short, private directory, `/tmp/foobar-ssh-<uid>` (0700, owned by
//! us; anything else there is refused and a fresh private directory is used instead), so their
//! paths stay far below the 108-byte limit of `sun_path`.
//!
//! With `control_persist > 0` the master outlives foobar like Ansible's ControlPersist: it is
//! started with `ControlPersist=<n>s`, [`Transport::finish`] detaches it and records its socket
//! in `<control dir>/<key>.ctl` (key: hash of everything that selects the connection), and the
//! next run resumes it after an alive check. With `control_persist == 0` `finish` closes the
//! master; if foobar dies before that (Ctrl-C, SIGKILL), the master still exits by itself
//! after [`ORPHAN_IDLE_SECS`] without a channel, and a master that went away while foobar was
//! idle is reconnected transparently before the next command starts.
//!
//! Exit statuses with native mux: the master reports the remote exit value on the control
//! socket separately from its own failures, so a remote command that exits 255 is reported as
//! 255 (unlike plain `ssh`, or openssh's process-mux, where 255 also means "ssh failed"). The
//! crate turns the remote exit value 127 into `Error::Remote(NotFound)`; we turn it back into
//! code 127, keeping the output (the shell's "not found" message). A session that ends without
//! an exit value (remote killed by a signal, or the master gone) is told apart by an alive
//! check on the master: alive → `code: None`, gone → [`TransportError::ConnectionLost`].

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use openssh::{ControlPersist, Error as SshError, KnownHosts, Session, SessionBuilder, Stdio};
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use super::local::feed_stream;
use super::{ConnectionSpec, Output, RemoteCommand, Transport, TransportError, wrap_command_line};
use crate::host::HostName;

/// Channels open at once on one master. sshd's default `MaxSessions` is 10; keep a margin.
pub const MAX_CHANNELS: usize = 8;
/// Extra time the local tokio timeout allows on top of the command's own remote `timeout`.
const LOCAL_GRACE: Duration = Duration::from_secs(10);
/// `ServerAliveInterval`: notice a dead peer within ~45 s (3 missed probes).
const SERVER_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// Idle lifetime of a non-persistent master, so one orphaned by a killed foobar goes away.
pub const ORPHAN_IDLE_SECS: usize = 60;
/// Bound on resuming a recorded master (connect + alive check on a local socket).
const RESUME_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Leftover socket directories without a socket are swept after this long.
const STALE_AFTER: Duration = Duration::from_secs(600);
/// The prefix the openssh crate gives each master's directory inside the control directory.
const MASTER_DIR_PREFIX: &str = ".ssh-connection";

pub struct SshTransport {
    spec: ConnectionSpec,
    builder: SessionBuilder,
    /// The master's session. `None` once [`Transport::finish`] ran. Commands clone the `Arc`
    /// (while holding a channel permit) so the lock is never held across an await.
    session: Mutex<Option<Arc<Session>>>,
    /// Serialises reconnects after the master went away.
    reconnect: tokio::sync::Mutex<()>,
    channels: Semaphore,
    commands: AtomicU64,
    /// Where to record the master at `finish` to persist it; `None` closes it.
    record: Option<PathBuf>,
}

impl std::fmt::Debug for SshTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshTransport")
            .field("host", &self.spec.host)
            .field("destination", &self.spec.destination)
            .field("record", &self.record)
            .finish_non_exhaustive()
    }
}

impl SshTransport {
    /// Reach `spec`'s host: resume a persisted master when one is recorded and alive, else
    /// start a new master (bounded by `connect_timeout`).
    pub async fn connect(spec: &ConnectionSpec) -> Result<SshTransport, TransportError> {
        let control_dir = control_dir().map_err(|e| TransportError::HostUnreachable {
            host: spec.host.clone(),
            destination: spec.destination.clone(),
            reason: format!("cannot prepare a directory for ssh control sockets: {e}"),
        })?;
        let record = (spec.control_persist > 0 && control_dir.shared)
            .then(|| control_dir.path.join(format!("{}.ctl", persist_key(spec))));
        let builder = session_builder(spec, &control_dir.path);

        let mut resumed = None;
        if let Some(record) = &record {
            sweep_stale_once(&control_dir.path);
            resumed = resume(record, &control_dir.path).await;
        }
        let session = match resumed {
            Some(session) => session,
            None => open_master(spec, &builder).await?,
        };
        Ok(SshTransport {
            spec: spec.clone(),
            builder,
            session: Mutex::new(Some(Arc::new(session))),
            reconnect: tokio::sync::Mutex::new(()),
            channels: Semaphore::new(MAX_CHANNELS),
            commands: AtomicU64::new(0),
            record,
        })
    }

    /// The control socket of the current master, e.g. for diagnostics.
    pub fn control_socket(&self) -> Option<PathBuf> {
        self.current()
            .map(|session| session.control_socket().to_path_buf())
    }

    fn current(&self) -> Option<Arc<Session>> {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn lost(&self, command: &RemoteCommand, reason: impl Into<String>) -> TransportError {
        TransportError::ConnectionLost {
            host: self.spec.host.clone(),
            command: command.command_line.clone(),
            reason: reason.into(),
        }
    }

    /// The master behind `failed` refused a new channel. If it is really gone (not just busy),
    /// start a new one, once for all commands that noticed. Returns the session to retry with.
    async fn replace_dead_master(
        &self,
        command: &RemoteCommand,
        failed: &Arc<Session>,
    ) -> Result<Arc<Session>, TransportError> {
        let _one_at_a_time = self.reconnect.lock().await;
        let current = self.current();
        let Some(current) = current else {
            return Err(finished(&self.spec, command));
        };
        if !Arc::ptr_eq(&current, failed) {
            return Ok(current); // another command already reconnected
        }
        if current.check().await.is_ok() {
            return Ok(current);
        }
        let fresh = Arc::new(open_master(&self.spec, &self.builder).await?);
        let mut slot = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            return Err(finished(&self.spec, command));
        }
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    async fn execute(
        &self,
        command: &RemoteCommand,
        line: &str,
        stdin: Option<&mut (dyn tokio::io::AsyncRead + Send + Unpin)>,
        sink: Option<&mut (dyn tokio::io::AsyncWrite + Send + Unpin)>,
    ) -> Result<Output, TransportError> {
        let mut session = self
            .current()
            .ok_or_else(|| finished(&self.spec, command))?;
        let mut retried = false;
        let mut child = loop {
            let spawned = Session::to_raw_command(session.clone(), line)
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .await;
            match spawned {
                Ok(child) => break child,
                // The control socket is gone or refuses connections: nothing ran yet, so it
                // is safe to start a new master and try once more.
                Err(SshError::Disconnected) if !retried => {
                    retried = true;
                    session = self
                        .replace_dead_master(command, &session)
                        .await
                        .map_err(|e| match e {
                            TransportError::HostUnreachable { reason, .. } => self.lost(
                                command,
                                format!("the master connection went away and reconnecting failed: {reason}"),
                            ),
                            other => other,
                        })?;
                }
                Err(e) => return Err(self.lost(command, error_chain(&e))),
            }
        };

        let writer = child.stdin().take();
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        let write = async {
            match (writer, stdin) {
                (Some(w), Some(source)) => feed_stream(w, source).await,
                _ => Ok(()),
            }
        };
        let out = async {
            match (sink, stdout) {
                (Some(sink), Some(mut o)) => {
                    tokio::io::copy(&mut o, sink).await.map(|_| Vec::new())
                }
                (_, o) => read_all(o).await,
            }
        };
        // Write stdin while draining stdout and stderr: no pipe can fill up and stall.
        let (written, out, err) = tokio::join!(write, out, read_all(stderr));
        // Output first, then the exit status (the crate's own `wait_with_output` order: the
        // status arrives once the channel is closed, after the master wrote all the data).
        let status = child.wait().await;
        let (stdout, stderr) = match (out, err) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                return Err(self.lost(command, format!("reading the command's output: {e}")));
            }
        };
        let code = match status {
            Ok(status) => status.code(),
            // Native mux reports the remote exit value 127 as an error; it is a plain exit
            // code (`timeout`/the shell: command not found) and the output says why.
            Err(SshError::Remote(e)) if e.kind() == io::ErrorKind::NotFound => Some(127),
            // No exit value: the remote process died of a signal, or the master went away.
            Err(SshError::RemoteProcessTerminated) => {
                if session.check().await.is_ok() {
                    None
                } else {
                    return Err(self.lost(command, "the ssh master connection went away"));
                }
            }
            Err(e) => return Err(self.lost(command, error_chain(&e))),
        };
        if let Err(e) = written {
            return Err(self.lost(command, format!("writing the command's stdin: {e}")));
        }
        Ok(Output {
            stdout,
            stderr,
            code,
        })
    }
}

fn finished(spec: &ConnectionSpec, command: &RemoteCommand) -> TransportError {
    TransportError::ConnectionLost {
        host: spec.host.clone(),
        command: command.command_line.clone(),
        reason: "the transport was already finished".to_string(),
    }
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(reader: Option<R>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut r) = reader {
        r.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}

#[async_trait::async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &HostName {
        &self.spec.host
    }

    async fn run(
        &self,
        command: &RemoteCommand,
        stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        // Exactly the caller's line, bounded and escalated; secrets never go here.
        let line = wrap_command_line(command, self.spec.become_root);
        if line.contains('\0') {
            return Err(self.lost(command, "the command line contains a NUL byte"));
        }
        // Waiting for a free channel does not count against the command's time bound.
        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| finished(&self.spec, command))?;
        let limit = command.timeout + LOCAL_GRACE;
        let started = std::time::Instant::now();
        let mut data = stdin;
        let source = data
            .as_mut()
            .map(|d| d as &mut (dyn tokio::io::AsyncRead + Send + Unpin));
        let result = tokio::time::timeout(limit, self.execute(command, &line, source, None)).await;
        let result = match result {
            Ok(result) => result,
            // Dropping the child closes our end of the channel; the remote process is bounded
            // by its own `timeout`.
            Err(_elapsed) => Err(TransportError::CommandTimedOut {
                host: self.spec.host.clone(),
                command: command.command_line.clone(),
                seconds: limit.as_secs(),
            }),
        };
        super::trace(&self.spec.host, command, stdin, started, &result);
        result
    }

    async fn run_streaming(
        &self,
        command: &RemoteCommand,
        source: Option<&mut (dyn tokio::io::AsyncRead + Send + Unpin)>,
        sink: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    ) -> Result<Output, TransportError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let line = wrap_command_line(command, self.spec.become_root);
        if line.contains('\0') {
            return Err(self.lost(command, "the command line contains a NUL byte"));
        }
        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| finished(&self.spec, command))?;
        let limit = command.timeout + LOCAL_GRACE;
        let started = std::time::Instant::now();
        let result = tokio::time::timeout(limit, self.execute(command, &line, source, Some(sink)))
            .await
            .unwrap_or_else(|_elapsed| {
                Err(TransportError::CommandTimedOut {
                    host: self.spec.host.clone(),
                    command: command.command_line.clone(),
                    seconds: limit.as_secs(),
                })
            });
        super::trace(&self.spec.host, command, None, started, &result);
        result
    }

    fn commands_run(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    async fn finish(&self) {
        // Wait until no command holds a channel (and so a clone of the session).
        let Ok(_all) = self.channels.acquire_many(MAX_CHANNELS as u32).await else {
            return;
        };
        let taken = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(session) = taken else { return };
        let Some(session) = Arc::into_inner(session) else {
            return; // unreachable: all permits are ours; dropping closes or leaves it as is
        };
        match &self.record {
            Some(record) => {
                let (ctl, _log) = session.detach();
                // Best effort: without a record the next run connects afresh and this master
                // exits once idle for `control_persist` seconds.
                let _ = write_record(record, &ctl);
            }
            None => {
                let _ = session.close().await;
            }
        }
    }
}

/// Options for `ssh -M`, from the inventory.
fn session_builder(spec: &ConnectionSpec, control_dir: &Path) -> SessionBuilder {
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
async fn open_master(
    spec: &ConnectionSpec,
    builder: &SessionBuilder,
) -> Result<Session, TransportError> {
    let unreachable = |reason: String| TransportError::HostUnreachable {
        host: spec.host.clone(),
        destination: spec.destination.clone(),
        reason,
    };
    if spec.destination.starts_with('-') {
        // ssh would read it as an option (`-oProxyCommand=...`).
        return Err(unreachable(
            "the destination must not start with `-`".to_string(),
        ));
    }
    let limit = spec.connect_timeout.max(Duration::from_secs(1)) * 2 + Duration::from_secs(10);
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

/// The master's log when the proxy (ProxyJump, ProxyCommand) went away before the server
/// said hello: the proxy's own reason is elsewhere.
fn proxy_failed(reason: &str) -> bool {
    reason.contains("kex_exchange_identification: Connection closed")
        || reason.contains("Connection closed by UNKNOWN port")
}

/// OpenSSH's own words for a failed connection (`Connection refused`, `Permission denied
/// (publickey).`, host key mismatches...), from the master's log.
fn connect_failure_reason(e: &SshError) -> String {
    match e {
        // An OS error: `ssh` itself could not be started.
        SshError::Connect(io) if io.raw_os_error().is_some() => {
            format!("cannot run the local `ssh` command: {io}")
        }
        // Empty when the ssh config silences the log.
        SshError::Connect(io) => clean_ssh_log(&io.to_string()),
        SshError::Master(io) => format!("cannot create the ssh control socket directory: {io}"),
        other => error_chain(other),
    }
}

/// Run `ssh ... true` with the same options as the master and `LogLevel=ERROR`, only to learn
/// why connecting fails; `None` if it says nothing (or, by chance, succeeds now).
async fn probe_failure_reason(spec: &ConnectionSpec, limit: Duration) -> Option<String> {
    let mut ssh = tokio::process::Command::new("ssh");
    ssh.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o"])
        .arg(if spec.strict_host_key_checking {
            "StrictHostKeyChecking=yes"
        } else {
            "StrictHostKeyChecking=accept-new"
        })
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            spec.connect_timeout.as_secs().max(1)
        ));
    if let Some(config) = &spec.ssh_config {
        ssh.arg("-F").arg(config);
    }
    if let Some(user) = &spec.user {
        ssh.arg("-l").arg(user);
    }
    if let Some(port) = spec.port {
        ssh.arg("-p").arg(port.to_string());
    }
    if let Some(key) = &spec.identity_file {
        ssh.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(key);
    }
    if let Some(known_hosts) = &spec.known_hosts_file {
        let mut option = OsString::from("UserKnownHostsFile=");
        option.push(known_hosts);
        ssh.arg("-o").arg(option);
    }
    ssh.arg("--").arg(&spec.destination).arg("true");
    let output = tokio::time::timeout(limit, ssh.output()).await.ok()?.ok()?;
    if output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stderr);
    let reason = clean_ssh_log(text.trim_start_matches("ssh: "));
    (!reason.is_empty()).then_some(reason)
}

/// A failed host key check, said plainly with the file at fault and the fix; `None` for any
/// other failure. `log` is ssh's log, joined by [`clean_ssh_log`].
pub(crate) fn host_key_reason(log: &str, spec: &ConnectionSpec) -> Option<String> {
    let lines: Vec<&str> = log.split("; ").map(str::trim).collect();
    // "Offending ED25519 key in /path/known_hosts:2"
    let offending = lines
        .iter()
        .filter(|l| l.starts_with("Offending "))
        .find_map(|l| {
            l.split_once(" key in ")
                .map(|(_, rest)| rest.trim().to_string())
        });
    let configured = spec
        .known_hosts_file
        .as_ref()
        .map(|p| p.display().to_string());
    let changed = log.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || log.contains("has changed and you have requested strict checking");
    if changed {
        let at = offending.or(configured.clone());
        let file = at
            .as_deref()
            .map(|a| a.rsplit_once(':').map_or(a, |(f, _)| f).to_string())
            .unwrap_or_else(|| "~/.ssh/known_hosts".to_string());
        let fingerprint = lines
            .iter()
            .position(|l| l.starts_with("The fingerprint for the"))
            .and_then(|i| lines.get(i + 1))
            .filter(|l| l.starts_with("SHA256:"))
            .map(|f| format!(" It now presents {}.", f.trim_end_matches('.')))
            .unwrap_or_default();
        return Some(format!(
            "the host key of {} changed since it was recorded in {}: refused (a reinstalled host, or a man in the middle).{fingerprint} \
             Check the new key's fingerprint on the host itself (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`), \
             then remove the old key with `ssh-keygen -f '{file}' -R '{}'` and run again",
            spec.host,
            at.as_deref().unwrap_or(&file),
            spec.destination,
        ));
    }
    if log.contains("host key is known for") && log.contains("requested strict checking") {
        let file = configured.unwrap_or_else(|| {
            "the known_hosts file of your ssh config (UserKnownHostsFile)".to_string()
        });
        return Some(format!(
            "no host key is known for {} in {file} and `strict_host_key_checking` is true: refused. \
             Add its key after checking the fingerprint (`ssh-keyscan {} >> {file}`), \
             or set `strict_host_key_checking: accept-new` to trust it on first contact",
            spec.host, spec.destination,
        ));
    }
    None
}

/// ssh's log lines, trimmed, without the noise of accepting a new host key, one line.
pub(crate) fn clean_ssh_log(log: &str) -> String {
    log.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added "))
        .collect::<Vec<_>>()
        .join("; ")
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Which persisted master a spec may reuse: a hash of everything that selects the remote
/// account and how its identity is checked.
pub(crate) fn persist_key(spec: &ConnectionSpec) -> String {
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
fn write_record(record: &Path, ctl: &Path) -> io::Result<()> {
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
async fn resume(record: &Path, control_dir: &Path) -> Option<Session> {
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
fn sweep_stale_once(control_dir: &Path) {
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

/// The directory holding the control sockets.
#[derive(Debug)]
struct ControlDir {
    path: PathBuf,
    /// The well-known `/tmp/foobar-ssh-<uid>`, shared across runs; otherwise a private
    /// fallback for this process only (no persistence).
    shared: bool,
}

fn control_dir() -> io::Result<&'static ControlDir> {
    static DIR: OnceLock<ControlDir> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir);
    }
    let uid = current_uid()?;
    let shared = PathBuf::from(format!("/tmp/foobar-ssh-{uid}"));
    let dir = match ensure_private_dir(&shared, uid) {
        Ok(()) => ControlDir {
            path: shared,
            shared: true,
        },
        Err(_) => ControlDir {
            path: fresh_private_dir(uid)?,
            shared: false,
        },
    };
    // Another task may have won the race; theirs is as good (ours may be an unused empty
    // fallback directory).
    if let Err(unused) = DIR.set(dir)
        && !unused.shared
    {
        let _ = std::fs::remove_dir(&unused.path);
    }
    Ok(DIR.get().expect("set above"))
}

/// The effective uid: owner of `/proc/self` on Linux, else of a file we just created.
fn current_uid() -> io::Result<u32> {
    if let Ok(meta) = std::fs::metadata("/proc/self") {
        return Ok(meta.uid());
    }
    let probe =
        std::env::temp_dir().join(format!(".foobar-uid-{}-{}", std::process::id(), nanos()));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)?;
    let uid = file.metadata()?.uid();
    let _ = std::fs::remove_file(&probe);
    Ok(uid)
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Create `path` (mode 0700) or accept it if it already is a real directory owned by `uid`
/// with no group/other access.
fn ensure_private_dir(path: &Path, uid: u32) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    // Never follow a symlink planted in /tmp.
    let meta = std::fs::symlink_metadata(path)?;
    match private_dir_problem(meta.is_dir(), meta.uid(), meta.permissions().mode(), uid) {
        None => Ok(()),
        Some(problem) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{}: {problem}", path.display()),
        )),
    }
}

/// Why a directory with these properties must not hold our control sockets, if it must not.
pub(crate) fn private_dir_problem(is_dir: bool, owner: u32, mode: u32, uid: u32) -> Option<String> {
    if !is_dir {
        Some("not a directory".to_string())
    } else if owner != uid {
        Some(format!("owned by uid {owner}, not {uid}"))
    } else if mode & 0o077 != 0 {
        Some(format!("mode {:o} gives access to others", mode & 0o7777))
    } else {
        None
    }
}

/// A new private directory for this process only: `/tmp/foobar-ssh-<uid>-<pid>-<n>`.
fn fresh_private_dir(uid: u32) -> io::Result<PathBuf> {
    let mut last = None;
    for attempt in 0..16u32 {
        let path = PathBuf::from(format!(
            "/tmp/foobar-ssh-{uid}-{}-{:x}",
            std::process::id(),
            (nanos() as u32) ^ attempt.rotate_left(16)
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot create a private directory")))
}

#[cfg(test)]
mod tests {

    /// What OpenSSH 9.2 logs (at `LogLevel=ERROR`) for a key that changed, joined by
    /// `clean_ssh_log`.
    #[test]
    fn a_changed_host_key_is_said_plainly_with_the_fix() {
        let log = clean_ssh_log(
            "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             @    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
             @@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n\
             IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
             Someone could be eavesdropping on you right now (man-in-the-middle attack)!\n\
             It is also possible that a host key has just been changed.\n\
             The fingerprint for the ED25519 key sent by the remote host is\n\
             SHA256:abcDEF123.\n\
             Please contact your system administrator.\n\
             Add correct host key in /tmp/k/known_hosts to get rid of this message.\n\
             Offending ED25519 key in /tmp/k/known_hosts:2\n\
             \x20 remove with:\n\
             \x20 ssh-keygen -f \"/tmp/k/known_hosts\" -R \"web-01\"\n\
             Host key for web-01 has changed and you have requested strict checking.\n\
             Host key verification failed.\n",
        );
        let spec = spec();
        let why = host_key_reason(&log, &spec).expect("recognised");
        assert!(
            why.starts_with("the host key of web-01 changed since it was recorded in /tmp/k/known_hosts:2: refused"),
            "{why}"
        );
        assert!(why.contains("It now presents SHA256:abcDEF123."), "{why}");
        assert!(
            why.contains(&format!(
                "`ssh-keygen -f '/tmp/k/known_hosts' -R '{}'`",
                spec.destination
            )),
            "{why}"
        );
        assert!(host_key_reason("Connection refused", &spec).is_none());
        let unknown = host_key_reason(
            "No ED25519 host key is known for web-01 and you have requested strict checking.; Host key verification failed.",
            &spec,
        )
        .expect("recognised");
        assert!(unknown.contains("accept-new"), "{unknown}");
    }

    use super::*;

    fn spec() -> ConnectionSpec {
        ConnectionSpec {
            host: HostName::new("web-01"),
            destination: "127.0.1.2".to_string(),
            user: Some("deploy".to_string()),
            port: Some(22),
            identity_file: Some(PathBuf::from("/keys/id_ed25519")),
            ssh_config: None,
            known_hosts_file: None,
            strict_host_key_checking: true,
            connect_timeout: Duration::from_secs(10),
            control_persist: 60,
            become_root: false,
            local: false,
        }
    }

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
    fn private_dir_rules() {
        assert_eq!(private_dir_problem(true, 1000, 0o40700, 1000), None);
        assert_eq!(private_dir_problem(true, 1000, 0o40500, 1000), None);
        assert!(private_dir_problem(false, 1000, 0o100600, 1000).is_some());
        assert!(private_dir_problem(true, 0, 0o40700, 1000).is_some());
        assert!(private_dir_problem(true, 1000, 0o40710, 1000).is_some());
        assert!(private_dir_problem(true, 1000, 0o40701, 1000).is_some());
        assert!(private_dir_problem(true, 1000, 0o41777, 1000).is_some());
    }

    #[test]
    fn ensure_private_dir_creates_accepts_and_refuses() {
        let tmp = tempfile::tempdir().unwrap();
        let uid = current_uid().unwrap();
        let dir = tmp.path().join("ctl");
        ensure_private_dir(&dir, uid).unwrap();
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        ensure_private_dir(&dir, uid).unwrap(); // already there, fine

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(ensure_private_dir(&dir, uid).is_err());

        assert!(ensure_private_dir(&dir, uid.wrapping_add(1)).is_err());

        let target = tmp.path().join("target");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&target)
            .unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(ensure_private_dir(&link, uid).is_err());
    }

    #[test]
    fn control_dir_is_short_and_private() {
        let dir = control_dir().unwrap();
        let uid = current_uid().unwrap();
        let meta = std::fs::symlink_metadata(&dir.path).unwrap();
        assert_eq!(
            private_dir_problem(meta.is_dir(), meta.uid(), meta.mode(), uid),
            None
        );
        // `<dir>/.ssh-connectionXXXXXX/master` plus ssh's temporary `.XXXXXXXXXXXXXXXX`.
        let longest = dir.path.as_os_str().len() + "/.ssh-connectionXXXXXX/master".len() + 17;
        assert!(longest < 100, "{longest}");
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

    #[test]
    fn ssh_log_is_kept_verbatim_minus_host_key_noise() {
        assert_eq!(
            clean_ssh_log(
                "Warning: Permanently added '127.0.1.2' (ED25519) to the list of known hosts.\r\ndeploy@127.0.1.2: Permission denied (publickey).\r\n"
            ),
            "deploy@127.0.1.2: Permission denied (publickey)."
        );
        assert_eq!(
            clean_ssh_log("connect to host 127.0.1.99 port 22: Connection refused\n"),
            "connect to host 127.0.1.99 port 22: Connection refused"
        );
        assert_eq!(clean_ssh_log("  \n"), "");
    }

    #[tokio::test]
    async fn an_unreachable_host_is_reported_with_ssh_s_reason() {
        if which_ssh().is_none() {
            return;
        }
        let mut s = spec();
        s.destination = "127.0.9.77".into(); // loopback, nothing listens on port 1
        s.port = Some(1);
        s.identity_file = None;
        s.user = None;
        s.control_persist = 0;
        s.connect_timeout = Duration::from_secs(3);
        let err = SshTransport::connect(&s).await.unwrap_err();
        match err {
            TransportError::HostUnreachable { reason, .. } => {
                assert!(reason.contains("Connection refused"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_destination_that_looks_like_an_option_is_refused() {
        let mut s = spec();
        s.destination = "-oProxyCommand=touch /tmp/pwned".into();
        s.control_persist = 0;
        match SshTransport::connect(&s).await.unwrap_err() {
            TransportError::HostUnreachable { reason, .. } => {
                assert!(reason.contains("must not start with `-`"), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn which_ssh() -> Option<PathBuf> {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| Path::new(d).join("ssh"))
            .find(|p| p.exists())
    }
}
