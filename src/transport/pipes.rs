//! A child process's three pipes, shared by the local and the SSH transport.
//!
//! In: the child's stdin writer and stdout/stderr readers (a local `sh -c`, or an SSH channel),
//! an optional input stream and an optional output sink. Out: [`Pumped`], what was written
//! and read. stdin is fed while stdout and stderr are drained, so no pipe can fill up and
//! stall the other side, whatever the sizes.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Where a command's stdin comes from.
pub(crate) type Source<'a> = &'a mut (dyn AsyncRead + Send + Unpin);
/// Where a streamed command's stdout goes.
pub(crate) type Sink<'a> = &'a mut (dyn AsyncWrite + Send + Unpin);

/// What [`pump`] did on each pipe. `stdout` is empty when it went to a sink.
pub(crate) struct Pumped {
    pub written: io::Result<()>,
    pub stdout: io::Result<Vec<u8>>,
    pub stderr: io::Result<Vec<u8>>,
}

/// Feed `source` into `writer` (then close it), while reading `stdout` (into `sink` when
/// given, else into memory) and `stderr` (into memory), all at once.
pub(crate) async fn pump<W, O, E>(
    writer: Option<W>,
    stdout: Option<O>,
    stderr: Option<E>,
    source: Option<Source<'_>>,
    sink: Option<Sink<'_>>,
) -> Pumped
where
    W: AsyncWrite + Unpin,
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let write = async {
        match (writer, source) {
            (Some(w), Some(source)) => feed_stream(w, source).await,
            _ => Ok(()),
        }
    };
    let out = async {
        match (sink, stdout) {
            (Some(sink), Some(mut o)) => tokio::io::copy(&mut o, sink).await.map(|_| Vec::new()),
            (_, o) => read_all(o).await,
        }
    };
    let (written, stdout, stderr) = tokio::join!(write, out, read_all(stderr));
    Pumped {
        written,
        stdout,
        stderr,
    }
}

/// Copy `source` into a child's stdin as the child reads it, then close it so the child sees
/// EOF. A child that exits (or closes its stdin) without reading everything is not an error:
/// its exit status tells what happened.
pub(crate) async fn feed_stream<W>(mut writer: W, source: Source<'_>) -> io::Result<()>
where
    W: AsyncWrite + Unpin,
{
    let result = async {
        tokio::io::copy(source, &mut writer).await?;
        writer.shutdown().await
    }
    .await;
    drop(writer);
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

async fn read_all<R: AsyncRead + Unpin>(reader: Option<R>) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    if let Some(mut r) = reader {
        r.read_to_end(&mut buf).await?;
    }
    Ok(buf)
}
