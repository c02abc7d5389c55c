//! A transport that changes nothing: `apply --dry-run` runs the real executor over it.
//!
//! In: the host's real transport and, per command, its declared [`Effect`]. Out: for a read,
//! the host's real answer (the command is sent); for a change, the output its builder says it
//! prints on success (nothing is sent); for a command with no declaration (plain
//! [`Transport::run`], presumed to change the host), [`TransportError::DryRunUnknown`] and
//! nothing sent. Holds: no command that is not declared read-only ever reaches the host.
//! [`Transport::commands_run`] is the inner transport's count (what was really sent);
//! [`DryRun::changes_answered`] counts the changes answered without sending them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Effect, Output, RemoteCommand, Transport, TransportError};
use crate::host::HostName;

pub struct DryRun {
    inner: Arc<dyn Transport>,
    answered: AtomicU64,
}

impl DryRun {
    pub fn new(inner: Arc<dyn Transport>) -> Self {
        Self {
            inner,
            answered: AtomicU64::new(0),
        }
    }

    /// Changing commands answered with their success output instead of being sent.
    pub fn changes_answered(&self) -> u64 {
        self.answered.load(Ordering::SeqCst)
    }

    fn unknown(&self, command: &RemoteCommand) -> TransportError {
        TransportError::DryRunUnknown {
            host: self.inner.host().clone(),
            command: command.command_line.clone(),
        }
    }
}

#[async_trait::async_trait]
impl Transport for DryRun {
    fn host(&self) -> &HostName {
        self.inner.host()
    }

    async fn run(
        &self,
        command: &RemoteCommand,
        _stdin: Option<&[u8]>,
    ) -> Result<Output, TransportError> {
        Err(self.unknown(command))
    }

    async fn run_with(
        &self,
        command: &RemoteCommand,
        stdin: Option<&[u8]>,
        effect: &Effect,
    ) -> Result<Output, TransportError> {
        match effect {
            Effect::Reads => self.inner.run_with(command, stdin, effect).await,
            Effect::Changes { on_success } => {
                self.answered.fetch_add(1, Ordering::SeqCst);
                Ok(Output {
                    stdout: on_success.clone().into_bytes(),
                    stderr: vec![],
                    code: Some(0),
                })
            }
        }
    }

    async fn run_streaming(
        &self,
        command: &RemoteCommand,
        _source: Option<&mut (dyn tokio::io::AsyncRead + Send + Unpin)>,
        _sink: &mut (dyn tokio::io::AsyncWrite + Send + Unpin),
    ) -> Result<Output, TransportError> {
        Err(self.unknown(command))
    }

    fn commands_run(&self) -> u64 {
        self.inner.commands_run()
    }

    async fn finish(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Counts what reaches it and echoes stdin back.
    struct Echo(HostName, AtomicU64);

    #[async_trait::async_trait]
    impl Transport for Echo {
        fn host(&self) -> &HostName {
            &self.0
        }
        async fn run(
            &self,
            _command: &RemoteCommand,
            stdin: Option<&[u8]>,
        ) -> Result<Output, TransportError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(Output {
                stdout: stdin.unwrap_or_default().to_vec(),
                stderr: vec![],
                code: Some(0),
            })
        }
        fn commands_run(&self) -> u64 {
            self.1.load(Ordering::SeqCst)
        }
    }

    #[tokio::test]
    async fn a_dry_run_sends_reads_and_answers_changes_itself() {
        let inner = Arc::new(Echo(HostName::new("h"), AtomicU64::new(0)));
        let dry = DryRun::new(inner.clone());
        let cmd = RemoteCommand::script(Duration::from_secs(5));
        let read = dry
            .run_with(&cmd, Some(b"facts"), &Effect::Reads)
            .await
            .unwrap();
        assert_eq!(read.stdout, b"facts");
        let change = Effect::Changes {
            on_success: "OK\t0\nDONE\n".into(),
        };
        let changed = dry.run_with(&cmd, Some(b"rm -rf"), &change).await.unwrap();
        assert_eq!(changed.stdout_text(), "OK\t0\nDONE\n");
        let refused = dry.run(&cmd, Some(b"undeclared")).await.unwrap_err();
        assert!(matches!(refused, TransportError::DryRunUnknown { .. }));
        // The refusal says what to do instead, naming the host.
        use crate::error::Diagnostic;
        let hint = refused.hint().expect("a hint");
        assert!(hint.contains("foobar plan --limit"), "{hint}");
        assert_eq!(inner.commands_run(), 1, "only the read reached the host");
        assert_eq!(dry.commands_run(), 1);
        assert_eq!(dry.changes_answered(), 1);
    }
}
