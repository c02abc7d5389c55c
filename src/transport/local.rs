//! Run commands on this machine, for hosts with `connection: local`.
//!
//! The command line is run by `sh -c`, wrapped exactly like the SSH transport does it
//! ([`wrap_command_line`]): bounded by `timeout` and, with `become`, `sudo -n`.

use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::process::Command;

use super::pipes::{Sink, Source, pump};
use super::{
    ConnectionSpec, Output, RemoteCommand, Transport, TransportError, within, wrap_command_line,
};
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
            .run_within(command, stdin, command.timeout.saturating_add(LOCAL_GRACE))
            .await;
        super::trace(&self.spec.host, command, stdin, started, &result);
        result
    }

    async fn run_streaming(
        &self,
        command: &RemoteCommand,
        source: Option<Source<'_>>,
        sink: Sink<'_>,
    ) -> Result<Output, TransportError> {
        self.run_child(
            command,
            source,
            Some(sink),
            command.timeout.saturating_add(LOCAL_GRACE),
        )
        .await
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
        let mut data = stdin;
        let source = data.as_mut().map(|d| d as Source<'_>);
        self.run_child(command, source, None, limit).await
    }

    /// Run the wrapped command line under `sh -c`, feeding `source` and collecting stdout
    /// (or copying it into `sink`), killed when `limit` passes.
    async fn run_child(
        &self,
        command: &RemoteCommand,
        source: Option<Source<'_>>,
        sink: Option<Sink<'_>>,
        limit: Duration,
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
            // Dropping the child (on timeout) kills it; tokio reaps it in the background.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.local_error(command, e))?;
        let work = async {
            let pumped = pump(
                child.stdin.take(),
                child.stdout.take(),
                child.stderr.take(),
                source,
                sink,
            )
            .await;
            let status = child.wait().await?;
            pumped.written?;
            Ok::<_, std::io::Error>(Output {
                stdout: pumped.stdout?,
                stderr: pumped.stderr?,
                code: status.code(),
            })
        };
        within(&self.spec.host, command, limit, async {
            work.await.map_err(|e| self.local_error(command, e))
        })
        .await
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
