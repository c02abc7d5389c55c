//! Run commands on this machine, for hosts with `connection: local`.
//!
//! The command line is run by `sh -c`, wrapped exactly like the SSH transport does it
//! ([`wrap_command_line`]): bounded by `timeout` and, with `become`, `sudo -n`.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{ConnectionSpec, Output, RemoteCommand, Transport, TransportError, wrap_command_line};
use crate::host::HostName;

/// Extra time the local tokio timeout allows on top of the command's own `timeout`, so the
/// in-command bound (`timeout --kill-after=5`) normally fires first.
const LOCAL_GRACE: Duration = Duration::from_secs(10);

pub struct LocalTransport {
    spec: ConnectionSpec,
    commands: AtomicU64,
}

impl LocalTransport {
    pub fn new(spec: ConnectionSpec) -> Self {
        Self {
            spec,
            commands: AtomicU64::new(0),
        }
    }

    fn local_error(&self, command: &RemoteCommand, source: std::io::Error) -> TransportError {
        TransportError::Local {
            host: self.spec.host.clone(),
            command: command.command_line.clone(),
            source,
        }
    }
}

/// Write all of `data` to a child's stdin, then close it so the child sees EOF. A child that
/// exits (or closes its stdin) without reading everything is not an error: its exit status
/// tells what happened.
pub(crate) async fn feed_stdin<W>(mut writer: W, data: &[u8]) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let result = async {
        writer.write_all(data).await?;
        writer.shutdown().await
    }
    .await;
    drop(writer);
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// [`feed_stdin`] for a stream: copy `source` into a child's stdin as the child reads it,
/// then close it.
pub(crate) async fn feed_stream<W>(
    mut writer: W,
    source: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
) -> std::io::Result<()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let result = async {
        tokio::io::copy(source, &mut writer).await?;
        writer.shutdown().await
    }
    .await;
    drop(writer);
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

#[async_trait::async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &HostName {
        &self.spec.host
    }

    async fn run(
        &self,
        command: &RemoteCommand,
        stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError> {
        let started = std::time::Instant::now();
        let result = self
            .run_within(command, stdin, command.timeout + LOCAL_GRACE)
            .await;
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
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(if source.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.local_error(command, e))?;
        let writer = child.stdin.take();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let work = async {
            let write = async {
                match (writer, source) {
                    (Some(w), Some(s)) => feed_stream(w, s).await,
                    _ => Ok(()),
                }
            };
            let read = async {
                match stdout.as_mut() {
                    Some(o) => tokio::io::copy(o, sink).await.map(|_| ()),
                    None => Ok(()),
                }
            };
            let errors = async {
                let mut buf = Vec::new();
                if let Some(e) = stderr.as_mut() {
                    tokio::io::AsyncReadExt::read_to_end(e, &mut buf).await?;
                }
                Ok::<_, std::io::Error>(buf)
            };
            let (written, read, errors) = tokio::join!(write, read, errors);
            let status = child.wait().await?;
            written?;
            read?;
            Ok::<_, std::io::Error>(Output {
                stdout: Vec::new(),
                stderr: errors?,
                code: status.code(),
            })
        };
        match tokio::time::timeout(command.timeout + LOCAL_GRACE, work).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(self.local_error(command, e)),
            Err(_elapsed) => Err(TransportError::CommandTimedOut {
                host: self.spec.host.clone(),
                command: command.command_line.clone(),
                seconds: (command.timeout + LOCAL_GRACE).as_secs(),
            }),
        }
    }

    fn commands_run(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }
}

impl LocalTransport {
    /// [`Transport::run`] with an explicit local time bound.
    async fn run_within(
        &self,
        command: &RemoteCommand,
        stdin: Option<&[u8]>,
        limit: Duration,
    ) -> Result<Output, TransportError> {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let line = wrap_command_line(command, self.spec.become_root);

        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&line)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Dropping the child (on timeout) kills it; tokio reaps it in the background.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.local_error(command, e))?;

        let writer = child.stdin.take();
        let work = async move {
            // Feed stdin while collecting the output: neither side can fill a pipe and block
            // the other, whatever the sizes.
            let write = async {
                match (writer, stdin) {
                    (Some(w), Some(data)) => feed_stdin(w, data).await,
                    _ => Ok(()),
                }
            };
            let (written, output) = tokio::join!(write, child.wait_with_output());
            let output = output?;
            written?;
            Ok::<_, std::io::Error>(output)
        };

        match tokio::time::timeout(limit, work).await {
            Ok(Ok(out)) => Ok(Output {
                stdout: out.stdout,
                stderr: out.stderr,
                code: out.status.code(),
            }),
            Ok(Err(e)) => Err(self.local_error(command, e)),
            Err(_elapsed) => Err(TransportError::CommandTimedOut {
                host: self.spec.host.clone(),
                command: command.command_line.clone(),
                seconds: limit.as_secs(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ConnectionSpec {
        ConnectionSpec {
            host: HostName::new("localhost"),
            destination: "localhost".to_string(),
            user: None,
            port: None,
            identity_file: None,
            ssh_config: None,
            known_hosts_file: None,
            strict_host_key_checking: true,
            connect_timeout: Duration::from_secs(10),
            control_persist: 0,
            become_root: false,
            local: true,
        }
    }

    fn cmd(line: &str, secs: u64) -> RemoteCommand {
        RemoteCommand {
            command_line: line.to_string(),
            timeout: Duration::from_secs(secs),
        }
    }

    #[tokio::test]
    async fn runs_a_command_and_reports_output_and_code() {
        let t = LocalTransport::new(spec());
        let out = t
            .run(&cmd("sh -c 'echo out; echo err >&2; exit 3'", 10), None)
            .await
            .unwrap();
        assert_eq!(out.stdout_text(), "out\n");
        assert_eq!(out.stderr_text(), "err\n");
        assert_eq!(out.code, Some(3));
        let out = t.run(&cmd("sh -c 'exit 255'", 10), None).await.unwrap();
        assert_eq!(out.code, Some(255));
        assert_eq!(t.commands_run(), 2);
    }

    #[tokio::test]
    async fn script_on_stdin() {
        let t = LocalTransport::new(spec());
        let c = RemoteCommand::script(Duration::from_secs(10));
        let out = t.run(&c, Some(b"x=41\necho $((x + 1))\n")).await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout_text(), "42\n");
    }

    #[tokio::test]
    async fn large_stdin_and_stdout_both_ways_do_not_deadlock() {
        let t = LocalTransport::new(spec());
        let data = vec![b'x'; 50 * 1024 * 1024];
        let out = t.run(&cmd("cat", 60), Some(&data)).await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout.len(), data.len());
        let out = t.run(&cmd("sh -c 'wc -c'", 60), Some(&data)).await.unwrap();
        assert_eq!(out.stdout_text().trim(), (50 * 1024 * 1024).to_string());
    }

    #[tokio::test]
    async fn a_command_that_ignores_stdin_is_not_an_error() {
        let t = LocalTransport::new(spec());
        let data = vec![b'x'; 4 * 1024 * 1024];
        let out = t.run(&cmd("true", 10), Some(&data)).await.unwrap();
        assert_eq!(out.code, Some(0));
    }

    #[tokio::test]
    async fn missing_command_exits_127_with_its_message() {
        let t = LocalTransport::new(spec());
        let out = t
            .run(&cmd("foobar-no-such-command", 10), None)
            .await
            .unwrap();
        assert_eq!(out.code, Some(127));
        assert!(!out.stderr.is_empty());
    }

    #[tokio::test]
    async fn the_remote_side_timeout_fires_first() {
        let t = LocalTransport::new(spec());
        let started = std::time::Instant::now();
        let out = t.run(&cmd("sleep 30", 1), None).await.unwrap();
        assert_eq!(out.code, Some(124));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn the_local_bound_kills_and_reports_a_timeout() {
        let t = LocalTransport::new(spec());
        let started = std::time::Instant::now();
        let err = t
            .run_within(&cmd("sleep 5", 5), None, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        match err {
            TransportError::CommandTimedOut {
                seconds, command, ..
            } => {
                assert_eq!(seconds, 0);
                assert_eq!(command, "sleep 5");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
