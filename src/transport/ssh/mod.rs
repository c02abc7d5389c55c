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
//!
//! In: a [`ConnectionSpec`]. Out: an [`SshTransport`] whose commands return [`Output`] or a
//! [`TransportError`]. Here: the transport and its channels; `master.rs` starts, resumes and
//! persists the master; `held.rs` keeps an apply's gather session open for the host's script
//! ([`Transport::run_and_hold`]); `diagnose.rs` turns a failed connect into a plain reason;
//! `control_dir.rs` owns the private socket directory.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openssh::{Child, Error as SshError, Session, SessionBuilder, Stdio};
use tokio::sync::Semaphore;

use super::pipes::{Sink, Source, pump};
use super::{
    ConnectionSpec, Output, RemoteCommand, Transport, TransportError, within, wrap_command_line,
};
use crate::host::HostName;

mod control_dir;
mod diagnose;
mod held;
mod master;

use control_dir::control_dir;
use diagnose::error_chain;
use master::{open_master, persist_key, resume, session_builder, sweep_stale_once, write_record};

/// Channels open at once on one master. sshd's default `MaxSessions` is 10; keep a margin.
pub const MAX_CHANNELS: usize = 8;
/// Extra time the local tokio timeout allows on top of the command's own remote `timeout`.
const LOCAL_GRACE: Duration = Duration::from_secs(10);
/// Idle lifetime of a non-persistent master, so one orphaned by a killed foobar goes away.
pub const ORPHAN_IDLE_SECS: usize = 60;

pub struct SshTransport {
    spec: ConnectionSpec,
    builder: SessionBuilder,
    /// The master's session. `None` once [`Transport::finish`] ran. Commands clone the `Arc`
    /// (while holding a channel permit) so the lock is never held across an await.
    session: Mutex<Option<Arc<Session>>>,
    /// Serialises reconnects after the master went away.
    reconnect: tokio::sync::Mutex<()>,
    channels: Arc<Semaphore>,
    commands: AtomicU64,
    /// A gather's shell kept waiting for the apply's script ([`held`]).
    held: tokio::sync::Mutex<Option<held::Held>>,
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
            channels: Arc::new(Semaphore::new(MAX_CHANNELS)),
            commands: AtomicU64::new(0),
            held: tokio::sync::Mutex::new(None),
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
        TransportError::lost(&self.spec.host, command, reason)
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

    /// One command on a channel of the master: counted, its line checked, a channel permit
    /// taken (waiting for one does not count against the time bound), then bounded and
    /// traced (`traced_stdin`: the stdin bytes, when they are at hand, for the trace label).
    async fn run_on_channel(
        &self,
        command: &RemoteCommand,
        source: Option<Source<'_>>,
        sink: Option<Sink<'_>>,
        traced_stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        // Exactly the caller's line, bounded and escalated; secrets never go here.
        let line = wrap_command_line(command, self.spec.become_root);
        if line.contains('\0') {
            return Err(self.lost(command, "the command line contains a NUL byte"));
        }
        let _permit = self
            .channels
            .acquire()
            .await
            .map_err(|_| finished(&self.spec, command))?;
        let limit = command.timeout.saturating_add(LOCAL_GRACE);
        let started = std::time::Instant::now();
        let result = within(
            &self.spec.host,
            command,
            limit,
            self.execute(command, &line, source, sink),
        )
        .await;
        super::trace(&self.spec.host, command, traced_stdin, started, &result);
        result
    }

    async fn execute(
        &self,
        command: &RemoteCommand,
        line: &str,
        stdin: Option<Source<'_>>,
        sink: Option<Sink<'_>>,
    ) -> Result<Output, TransportError> {
        let (mut child, session) = self.spawn(command, line, stdin.is_some()).await?;
        // Write stdin while draining stdout and stderr: no pipe can fill up and stall.
        let pumped = pump(
            child.stdin().take(),
            child.stdout().take(),
            child.stderr().take(),
            stdin,
            sink,
        )
        .await;
        // Output first, then the exit status (the crate's own `wait_with_output` order: the
        // status arrives once the channel is closed, after the master wrote all the data).
        let status = child.wait().await;
        let (stdout, stderr) = match (pumped.stdout, pumped.stderr) {
            (Ok(o), Ok(e)) => (o, e),
            (Err(e), _) | (_, Err(e)) => {
                return Err(self.lost(command, format!("reading the command's output: {e}")));
            }
        };
        let code = self.exit_code(command, &session, status).await?;
        if let Err(e) = pumped.written {
            return Err(self.lost(command, format!("writing the command's stdin: {e}")));
        }
        Ok(Output {
            stdout,
            stderr,
            code,
        })
    }

    /// Open a channel running `line` (stdout and stderr piped; stdin piped or null).
    async fn spawn(
        &self,
        command: &RemoteCommand,
        line: &str,
        stdin: bool,
    ) -> Result<(Child<Arc<Session>>, Arc<Session>), TransportError> {
        let mut session = self
            .current()
            .ok_or_else(|| finished(&self.spec, command))?;
        let mut retried = false;
        loop {
            let spawned = Session::to_raw_command(session.clone(), line)
                .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .await;
            match spawned {
                Ok(child) => return Ok((child, session)),
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
        }
    }

    /// The remote exit code from a channel's end, or why there is none.
    async fn exit_code(
        &self,
        command: &RemoteCommand,
        session: &Session,
        status: Result<std::process::ExitStatus, SshError>,
    ) -> Result<Option<i32>, TransportError> {
        match status {
            Ok(status) => Ok(status.code()),
            // Native mux reports the remote exit value 127 as an error; it is a plain exit
            // code (`timeout`/the shell: command not found) and the output says why.
            Err(SshError::Remote(e)) if e.kind() == io::ErrorKind::NotFound => Ok(Some(127)),
            // No exit value: the remote process died of a signal, or the master went away.
            Err(SshError::RemoteProcessTerminated) => {
                if session.check().await.is_ok() {
                    Ok(None)
                } else {
                    Err(self.lost(command, "the ssh master connection went away"))
                }
            }
            Err(e) => Err(self.lost(command, error_chain(&e))),
        }
    }
}

fn finished(spec: &ConnectionSpec, command: &RemoteCommand) -> TransportError {
    TransportError::lost(&spec.host, command, "the transport was already finished")
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
        if let Some(script) = stdin
            && let Some(result) = self.continue_held(command, script).await
        {
            return result;
        }
        let mut data = stdin;
        let source = data.as_mut().map(|d| d as Source<'_>);
        self.run_on_channel(command, source, None, stdin).await
    }

    async fn run_and_hold(
        &self,
        command: &RemoteCommand,
        stdin: &[u8],
        limit: Duration,
    ) -> Result<Output, TransportError> {
        self.hold(command, stdin, limit).await
    }

    async fn run_streaming(
        &self,
        command: &RemoteCommand,
        source: Option<Source<'_>>,
        sink: Sink<'_>,
    ) -> Result<Output, TransportError> {
        self.run_on_channel(command, source, Some(sink), None).await
    }

    fn commands_run(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    async fn finish(&self) {
        self.release().await;
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    pub(super) fn spec() -> ConnectionSpec {
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
        // The URI form too: the ssh library strips `ssh://` and hands ssh the rest.
        for (destination, why) in [
            ("-oProxyCommand=touch /tmp/pwned", "starts with `-`"),
            ("ssh://-oProxyCommand=touch /tmp/pwned", "is a URI"),
            ("root@-oProxyCommand=x", "holds a user"),
        ] {
            let mut s = spec();
            s.destination = destination.into();
            s.control_persist = 0;
            match SshTransport::connect(&s).await.unwrap_err() {
                TransportError::HostUnreachable { reason, .. } => {
                    assert!(reason.contains(why), "{destination}: {reason}")
                }
                other => panic!("unexpected {other:?}"),
            }
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
