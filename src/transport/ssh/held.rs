//! A held session: an apply's gather and its script in one SSH session.
//!
//! [`Transport::run_and_hold`](super::Transport::run_and_hold) sends the gather's script with
//! stdin from `/dev/null` and, after it, a line that prints a random end mark; once the mark
//! arrives, the gather's output is complete and the host's `sh -s` waits, reading its stdin
//! for more. The next `sh -s` script sent through [`Transport::run`](super::Transport::run)
//! goes there instead of opening a new session: it prints a start mark, then runs as one
//! brace group `{ … }` (parsed whole before any of it runs, so nothing in it can read the rest
//! of the input as its own; no subshell to fork: nothing runs after it, so its `exit`,
//! `set -u` and variables may end or change the held shell), then stdin is closed and the shell
//! ends with the script's status. So a changed host costs two round trips over one
//! session, where it took two sessions (a session is most of what a round trip costs).
//!
//! Holds: a script is only ever run once. If the start mark does not come back, the held
//! shell had ended (nothing of the script ran) and the script runs on a new session instead.
//! A held session older than [`MAX_HELD`] (or a tenth of the command timeout) is not used: the
//! remote `timeout` was started with the gather, and a script must get its whole time.
//! Released (stdin closed, the shell exits) when not used: at [`Transport::finish`], or on
//! drop.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openssh::{Child, ChildStdin, ChildStdout, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::OwnedSemaphorePermit;

use super::{LOCAL_GRACE, SshTransport};
use crate::transport::{Output, RemoteCommand, TransportError, within, wrap_command_line};

/// The longest a held session waits to be used (e.g. while a person answers the prompt).
pub const MAX_HELD: Duration = Duration::from_secs(30);

pub(super) struct Held {
    child: Child<Arc<Session>>,
    session: Arc<Session>,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: tokio::task::JoinHandle<io::Result<Vec<u8>>>,
    since: Instant,
    timeout: Duration,
    _channel: OwnedSemaphorePermit,
}

/// A line no script output can forge: a fixed word and 64 random bits.
fn mark(word: &str) -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the system's random number generator");
    format!("#foobar:{word} {}\n", hex::encode(b))
}

/// Where `needle` starts in `out`, if it does.
fn find(out: &[u8], needle: &[u8]) -> Option<usize> {
    out.windows(needle.len()).position(|w| w == needle)
}

impl SshTransport {
    /// See [`Transport::run_and_hold`](super::Transport::run_and_hold).
    pub(super) async fn hold(
        &self,
        command: &RemoteCommand,
        script: &[u8],
        limit: Duration,
    ) -> Result<Output, TransportError> {
        self.release().await;
        self.commands
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let line = wrap_command_line(command, self.spec.become_root);
        let permit = self
            .channels
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| super::finished(&self.spec, command))?;
        let started = Instant::now();
        let end = mark("held");
        let mut input = b"{\n".to_vec();
        input.extend_from_slice(script);
        // The mark follows a newline of its own: the script's output may not end with one (a
        // body read with `head -c`), and that newline is not part of the output.
        input.extend_from_slice(b"\n} </dev/null\nprintf '\\n%s' '");
        input.extend_from_slice(end.as_bytes());
        input.extend_from_slice(b"'\n");
        let needle = format!("\n{end}");
        let work = async {
            let (mut child, session) = self.spawn(command, &line, true).await?;
            let (Some(mut stdin), Some(mut stdout), Some(mut stderr)) = (
                child.stdin().take(),
                child.stdout().take(),
                child.stderr().take(),
            ) else {
                return Err(self.lost(command, "the channel has no pipes"));
            };
            let stderr_task = tokio::spawn(async move {
                let mut b = Vec::new();
                stderr.read_to_end(&mut b).await.map(|_| b)
            });
            let write = async {
                stdin.write_all(&input).await?;
                stdin.flush().await
            };
            let read = async {
                let mut out = Vec::new();
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = stdout.read(&mut buf).await?;
                    if n == 0 {
                        return Ok::<_, io::Error>((out, false));
                    }
                    // Only the new bytes (and the needle's length before them) can hold it.
                    let from = out.len().saturating_sub(needle.len());
                    out.extend_from_slice(&buf[..n]);
                    if let Some(at) = find(&out[from..], needle.as_bytes()) {
                        out.truncate(from + at);
                        return Ok((out, true));
                    }
                }
            };
            let (written, read) = tokio::join!(write, read);
            let (out, held) =
                read.map_err(|e| self.lost(command, format!("reading the command's output: {e}")))?;
            if held && written.is_ok() {
                *self.held.lock().await = Some(Held {
                    child,
                    session,
                    stdin,
                    stdout,
                    stderr: stderr_task,
                    since: Instant::now(),
                    timeout: command.timeout,
                    _channel: permit,
                });
                return Ok(Output {
                    stdout: out,
                    stderr: Vec::new(),
                    code: Some(0),
                });
            }
            // The script ended the shell (or could not be sent): an ordinary command's end.
            drop(stdin);
            let status = child.wait().await;
            let stderr = stderr_task
                .await
                .ok()
                .and_then(|r| r.ok())
                .unwrap_or_default();
            let code = self.exit_code(command, &session, status).await?;
            if let Err(e) = written
                && e.kind() != io::ErrorKind::BrokenPipe
            {
                return Err(self.lost(command, format!("writing the command's stdin: {e}")));
            }
            Ok(Output {
                stdout: out,
                stderr,
                code,
            })
        };
        let result = within(&self.spec.host, command, limit + LOCAL_GRACE, work).await;
        crate::transport::trace(&self.spec.host, command, Some(script), started, &result);
        result
    }

    /// Run `script` in the held session, if there is one fit for `command`: `None` when there
    /// is none or it had ended before the script started (run it anew then).
    pub(super) async fn continue_held(
        &self,
        command: &RemoteCommand,
        script: &[u8],
    ) -> Option<Result<Output, TransportError>> {
        let held = self.held.lock().await.take()?;
        let fresh = held.since.elapsed() < MAX_HELD.min(held.timeout / 10);
        if command.command_line != "sh -s" || command.timeout > held.timeout || !fresh {
            drop(held); // closes the channel: the held shell reads EOF and exits
            return None;
        }
        self.commands
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let begin = mark("continued");
        let mut input = format!("printf '%s' '{begin}'\n{{\n").into_bytes();
        input.extend_from_slice(script);
        input.extend_from_slice(b"\n}\n");
        let Held {
            child,
            session,
            stdin,
            mut stdout,
            stderr,
            _channel,
            ..
        } = held;
        let work = async {
            // The pipe is closed (dropped) once written: the held shell then reads EOF after
            // the script and exits with its status.
            let write = async move {
                let mut stdin = stdin;
                stdin.write_all(&input).await?;
                stdin.flush().await
            };
            let read = async {
                let mut out = Vec::new();
                stdout.read_to_end(&mut out).await.map(|_| out)
            };
            let (written, out) = tokio::join!(write, read);
            let status = child.wait().await;
            let out =
                out.map_err(|e| self.lost(command, format!("reading the command's output: {e}")))?;
            let Some(out) = out.strip_prefix(begin.as_bytes()).map(<[u8]>::to_vec) else {
                return Ok(None);
            };
            let stderr = stderr.await.ok().and_then(|r| r.ok()).unwrap_or_default();
            let code = self.exit_code(command, &session, status).await?;
            if let Err(e) = written
                && e.kind() != io::ErrorKind::BrokenPipe
            {
                return Err(self.lost(command, format!("writing the command's stdin: {e}")));
            }
            Ok(Some(Output {
                stdout: out,
                stderr,
                code,
            }))
        };
        let limit = command.timeout.saturating_add(LOCAL_GRACE);
        let result = match tokio::time::timeout(limit, work).await {
            // A script that never started is not a result: it runs anew.
            Ok(Ok(None)) => return None,
            Ok(Ok(Some(out))) => Ok(out),
            Ok(Err(e)) => Err(e),
            Err(_elapsed) => Err(TransportError::CommandTimedOut {
                host: self.spec.host.clone(),
                command: command.command_line.clone(),
                seconds: limit.as_secs(),
            }),
        };
        crate::transport::trace(&self.spec.host, command, Some(script), started, &result);
        Some(result)
    }

    /// Close the held session, if any: the held shell reads EOF and exits.
    pub(super) async fn release(&self) {
        let held = self.held.lock().await.take();
        if let Some(Held { child, stdin, .. }) = held {
            drop(stdin);
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_mark_is_found_after_output_with_or_without_a_final_newline() {
        let m = b"\n#foobar:held 00ff\n";
        assert_eq!(find(b"\n#foobar:held 00ff\n", m), Some(0));
        assert_eq!(find(b"a\n\n#foobar:held 00ff\n", m), Some(2));
        assert_eq!(find(b"body\n#foobar:held 00ff\n", m), Some(4));
        assert_eq!(find(b"\n#foobar:held 00f", m), None);
        assert_eq!(find(b"", m), None);
    }
}
