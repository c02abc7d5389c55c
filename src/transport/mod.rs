//! How foobar reaches a host: a [`Transport`] runs one shell command line with optional stdin
//! and returns its output.
//!
//! Command lines are built by foobar from constants and never carry secrets: anything sensitive
//! (file bodies, SQL with passwords) travels on stdin. Every command is bounded twice: remotely
//! by `timeout`, so a hung command does not outlive foobar, and locally by a tokio timeout.
//! Each transport counts the commands it ran, so tests can pin the number of round trips.
//!
//! In: a [`ConnectionSpec`]. Out: a [`Transport`]: [`local`] (`sh -c`) or [`ssh`] (one master
//! per host); both move a child's pipes with `pipes.rs` and bound it with `within`.

pub mod dry;
pub mod local;
pub(crate) mod pipes;
pub mod ssh;

use std::path::PathBuf;
use std::time::Duration;

use crate::host::HostName;

/// What a command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Output {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `None` when the remote process was killed by a signal.
    pub code: Option<i32>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A command to run on a host: a shell command line (no secrets), stdin, and a time bound.
#[derive(Debug, Clone)]
pub struct RemoteCommand {
    /// Run by the remote login shell, e.g. `sh -s`. Wrapped in `timeout` and, with `become`,
    /// `sudo -n` by the transport.
    pub command_line: String,
    pub timeout: Duration,
}

impl RemoteCommand {
    /// The usual shape: a shell script fed on stdin to `sh -s`.
    pub fn script(timeout: Duration) -> Self {
        Self {
            command_line: "sh -s".to_string(),
            timeout,
        }
    }
}

/// What a command does to its host, as its caller declares it ([`Transport::run_with`]); a
/// [`dry::DryRun`] transport sends only reads. A command sent through plain
/// [`Transport::run`] is presumed to change the host, with an output nobody can foretell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Only reads the host: a dry run sends it.
    Reads,
    /// Changes the host; `on_success` is exactly what it prints on stdout (exit 0) when every
    /// step succeeds, computed by whoever built it: a dry run answers with that instead.
    Changes { on_success: String },
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {host} ({destination}): {reason}")]
    HostUnreachable {
        host: HostName,
        destination: String,
        reason: String,
    },
    #[error("command on {host} did not finish within {seconds} s: {command}")]
    CommandTimedOut {
        host: HostName,
        command: String,
        seconds: u64,
    },
    #[error("connection to {host} failed while running `{command}`: {reason}")]
    ConnectionLost {
        host: HostName,
        command: String,
        reason: String,
    },
    #[error("a dry run cannot tell what `{command}` would print on {host}, so it was not sent")]
    DryRunUnknown { host: HostName, command: String },
    #[error("cannot run `{command}` locally for {host}: {source}")]
    Local {
        host: HostName,
        command: String,
        #[source]
        source: std::io::Error,
    },
}

impl TransportError {
    /// [`TransportError::ConnectionLost`] while running `command` on `host`.
    pub(crate) fn lost(
        host: &HostName,
        command: &RemoteCommand,
        reason: impl Into<String>,
    ) -> Self {
        TransportError::ConnectionLost {
            host: host.clone(),
            command: command.command_line.clone(),
            reason: reason.into(),
        }
    }
}

/// What to do when `host` cannot be reached.
pub fn unreachable_hint(host: &HostName) -> String {
    format!(
        "check that {host} is up and that `ssh` to it works with the inventory's settings (address, port, user, identity_file, ssh_config)"
    )
}

/// Run `work` (one command on `host`) within `limit`, else [`TransportError::CommandTimedOut`].
/// Giving up drops `work`: a local child is killed, an SSH channel closed (the remote process
/// is bounded by its own `timeout`).
pub(crate) async fn within(
    host: &HostName,
    command: &RemoteCommand,
    limit: Duration,
    work: impl std::future::Future<Output = Result<Output, TransportError>>,
) -> Result<Output, TransportError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_elapsed| {
            Err(TransportError::CommandTimedOut {
                host: host.clone(),
                command: command.command_line.clone(),
                seconds: limit.as_secs(),
            })
        })
}

impl crate::error::Diagnostic for TransportError {
    fn hint(&self) -> Option<String> {
        match self {
            TransportError::HostUnreachable { host, .. } => Some(unreachable_hint(host)),
            TransportError::CommandTimedOut { .. } => Some(
                "the host may be overloaded or the command hung; raise `command_timeout` under `ssh:` in the inventory if it is expected to take longer".to_string(),
            ),
            TransportError::DryRunUnknown { host, .. } => Some(format!(
                "this step cannot be previewed; `foobar plan --limit {host}` shows what would change, and please report the step as a foobar bug"
            )),
            _ => None,
        }
    }
}

/// How to reach one host, resolved from the inventory.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    pub host: HostName,
    /// Passed to ssh as the destination: the address, or the host's name when `ssh_config`
    /// maps it.
    pub destination: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_file: Option<PathBuf>,
    pub ssh_config: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    pub strict_host_key_checking: bool,
    pub connect_timeout: Duration,
    /// Seconds an idle master connection stays alive after foobar exits, so the next run
    /// reuses it. 0 closes it at exit.
    pub control_persist: u64,
    pub become_root: bool,
    pub local: bool,
}

#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    fn host(&self) -> &HostName;
    async fn run(
        &self,
        command: &RemoteCommand,
        stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError>;
    /// [`Transport::run`] with what the command does to the host declared, so a
    /// [`dry::DryRun`] transport knows whether to send it. Other transports just run it.
    async fn run_with(
        &self,
        command: &RemoteCommand,
        stdin: Option<&[u8]>,
        effect: &Effect,
    ) -> Result<Output, TransportError> {
        let _ = effect;
        self.run(command, stdin).await
    }
    /// Like [`Transport::run`], but stdin is read from `source` as the command consumes it
    /// and stdout is copied into `sink` as it arrives, so neither is ever held whole (a
    /// database dump streamed from one host into another). The returned [`Output`] has an
    /// empty `stdout`. The default buffers both: for transports that only ever move small
    /// data (test fakes).
    async fn run_streaming(
        &self,
        command: &RemoteCommand,
        source: Option<&mut (dyn tokio::io::AsyncRead + Send + Unpin)>,
        sink: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    ) -> Result<Output, TransportError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut input = Vec::new();
        if let Some(source) = source {
            source.read_to_end(&mut input).await.map_err(|e| {
                TransportError::lost(
                    self.host(),
                    command,
                    format!("reading the command's input: {e}"),
                )
            })?;
        }
        let mut out = self
            .run(command, (!input.is_empty()).then_some(&input[..]))
            .await?;
        let stdout = std::mem::take(&mut out.stdout);
        sink.write_all(&stdout).await.map_err(|e| {
            TransportError::lost(
                self.host(),
                command,
                format!("passing the command's output on: {e}"),
            )
        })?;
        Ok(out)
    }
    /// A read-only script (`sh -s`), like [`Transport::run`], after which the host's shell
    /// is kept waiting for more: the next `sh -s` script sent through [`Transport::run`]
    /// continues in it, one round trip without opening a new session (an apply's gather,
    /// then its script). The script runs with stdin from `/dev/null`, so nothing in it
    /// can read what follows. `command.timeout` bounds the whole session (the script and
    /// what continues it: the apply's own bound); `limit` bounds this script. A transport
    /// that cannot keep a session just runs the script within `limit` (the default). Counts
    /// as one command; the continuation counts as another.
    async fn run_and_hold(
        &self,
        command: &RemoteCommand,
        stdin: &[u8],
        limit: Duration,
    ) -> Result<Output, TransportError> {
        let bounded = RemoteCommand {
            command_line: command.command_line.clone(),
            timeout: limit,
        };
        self.run_with(&bounded, Some(stdin), &Effect::Reads).await
    }
    /// How many commands this transport has run since it was opened.
    fn commands_run(&self) -> u64;
    /// Release the connection: keep a persistent master for the next run, or close it.
    async fn finish(&self) {}
}

/// The command line actually sent: bounded by `timeout` on the remote side, then `sudo -n`
/// when the host needs privilege escalation.
pub fn wrap_command_line(command: &RemoteCommand, become_root: bool) -> String {
    let secs = command.timeout.as_secs().max(1);
    let bounded = format!("timeout --kill-after=5 {secs} {}", command.command_line);
    if become_root {
        format!("sudo -n {bounded}")
    } else {
        bounded
    }
}

/// The `tracing` target of the per-command profile lines.
pub const TRACE_TARGET: &str = "foobar::trace";

/// `FOOBAR_TRACE=1` (or `-vv`): one line per remote command on stderr (host, start and duration in ms
/// since the process started, bytes in and out, and the script's first `#` comment as its
/// label: a first line starting with `# `), for profiling a run. Never prints command lines' arguments or stdin contents.
pub(crate) fn trace(
    host: &HostName,
    command: &RemoteCommand,
    stdin: Option<&[u8]>,
    started: std::time::Instant,
    result: &Result<Output, TransportError>,
) {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    if !tracing::enabled!(target: TRACE_TARGET, tracing::Level::DEBUG) {
        return;
    }
    let epoch = *EPOCH.get_or_init(|| started);
    // Only foobar's own scripts (`sh -s`) are asked for a label: other stdin is data.
    let label = stdin
        .filter(|_| command.command_line == "sh -s")
        .and_then(|b| {
            // Only a first-line comment: foobar's scripts start with one, data never does.
            b.split(|c| *c == b'\n')
                .next()
                .filter(|l| l.starts_with(b"# "))
                .map(|l| String::from_utf8_lossy(&l[2..l.len().min(60)]).into_owned())
        })
        .unwrap_or_else(|| {
            command
                .command_line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string()
        });
    let (code, out) = match result {
        Ok(o) => (
            o.code
                .map_or_else(|| "signal".to_string(), |c| c.to_string()),
            o.stdout.len(),
        ),
        Err(_) => ("error".to_string(), 0),
    };
    tracing::debug!(
        target: TRACE_TARGET,
        "trace {host} start={}ms took={}ms in={}B out={out}B exit={code} {label}",
        started.saturating_duration_since(epoch).as_millis(),
        started.elapsed().as_millis(),
        stdin.map_or(0, |b| b.len()),
    );
}

/// Open a transport for a host: local or SSH.
pub async fn connect(spec: &ConnectionSpec) -> Result<Box<dyn Transport>, TransportError> {
    if spec.local {
        Ok(Box::new(local::LocalTransport::new(spec.clone())))
    } else {
        Ok(Box::new(ssh::SshTransport::connect(spec).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_are_bounded_and_escalated() {
        let c = RemoteCommand::script(Duration::from_secs(30));
        assert_eq!(
            wrap_command_line(&c, false),
            "timeout --kill-after=5 30 sh -s"
        );
        assert_eq!(
            wrap_command_line(&c, true),
            "sudo -n timeout --kill-after=5 30 sh -s"
        );
    }
}
