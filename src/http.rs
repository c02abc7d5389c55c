//! A plain HTTP/1.0 `GET /` over TCP, bounded in time: how `verify` and the rollout's health
//! gate see a web server or a load balancer. Its own module because both stages ask the same
//! question; the TLS variant in `verify::tls` reuses the connection and request parts.
//! Every failure is an [`HttpError`] naming the address and, through [`Diagnostic`], what to
//! check next.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Diagnostic;

/// Who asks and how long it waits.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// The `User-Agent`, so a server's log tells foobar's checks apart.
    pub agent: &'static str,
    pub connect: Duration,
    pub answer: Duration,
}

impl Client {
    /// `foobar verify`: patient, it runs once.
    pub const VERIFY: Client = Client {
        agent: "foobar-verify",
        connect: Duration::from_secs(3),
        answer: Duration::from_secs(5),
    };
    /// The rollout's health gate: it retries until its own deadline, so each try is short.
    pub const GATE: Client = Client {
        agent: "foobar-gate",
        connect: Duration::from_secs(2),
        answer: Duration::from_secs(3),
    };

    /// A TCP connection to `addr` (ip:port), within `connect`.
    pub async fn connect(&self, addr: &str) -> Result<TcpStream, HttpError> {
        tokio::time::timeout(self.connect, TcpStream::connect(addr))
            .await
            .map_err(|_| HttpError::ConnectTimeout { addr: addr.into() })?
            .map_err(|source| HttpError::Connect {
                addr: addr.into(),
                source: Arc::new(source),
            })
    }

    /// The request, byte for byte.
    pub fn request(&self, domain: &str) -> String {
        format!(
            "GET / HTTP/1.0\r\nHost: {domain}\r\nUser-Agent: {}\r\n\r\n",
            self.agent
        )
    }

    /// `GET /` for `domain` at `addr`: whatever the server answered, any status.
    pub async fn get(&self, addr: &str, domain: &str) -> Result<Answer, HttpError> {
        let mut stream = self.connect(addr).await?;
        let io = |source| HttpError::Io {
            addr: addr.into(),
            source: Arc::new(source),
        };
        stream
            .write_all(self.request(domain).as_bytes())
            .await
            .map_err(io)?;
        let mut buf = Vec::new();
        tokio::time::timeout(self.answer, stream.read_to_end(&mut buf))
            .await
            .map_err(|_| HttpError::AnswerTimeout {
                addr: addr.into(),
                seconds: self.answer.as_secs(),
            })?
            .map_err(io)?;
        Ok(Answer::parse(addr, &buf))
    }

    /// `GET /` that must answer 200.
    pub async fn get_ok(&self, addr: &str, domain: &str) -> Result<Answer, HttpError> {
        self.get(addr, domain).await?.ok()
    }
}

/// What a server sent back.
#[derive(Debug, Clone)]
pub struct Answer {
    pub addr: String,
    /// The status code as sent (`200`, `301`), or None when the answer was not HTTP.
    pub status: Option<String>,
    /// The whole answer, headers and body, as text.
    pub text: String,
}

impl Answer {
    pub fn parse(addr: &str, bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let status = text.split_whitespace().nth(1).map(String::from);
        Self {
            addr: addr.into(),
            status,
            text,
        }
    }

    /// The status, `?` when there was none.
    pub fn status(&self) -> &str {
        self.status.as_deref().unwrap_or("?")
    }

    /// Itself if the status is 200.
    pub fn ok(self) -> Result<Self, HttpError> {
        match self.status.as_deref() {
            Some("200") => Ok(self),
            Some(status) => Err(HttpError::Status {
                addr: self.addr,
                status: status.into(),
            }),
            None => Err(HttpError::NoAnswer { addr: self.addr }),
        }
    }

    /// The `Location` header, if any.
    pub fn location(&self) -> Option<String> {
        self.text
            .lines()
            .take_while(|l| !l.is_empty() && *l != "\r")
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_string())
            })
    }
}

/// Clone (io errors behind an `Arc`) so a rollout error can carry the last one.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error("connecting to {addr} timed out")]
    ConnectTimeout { addr: String },
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("{source}")]
    Io {
        addr: String,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("{addr} did not answer within {seconds} s")]
    AnswerTimeout { addr: String, seconds: u64 },
    #[error("{addr} answered {status}")]
    Status { addr: String, status: String },
    #[error("{addr} sent no HTTP answer")]
    NoAnswer { addr: String },
    #[error("OpenSSL: {0}")]
    OpenSsl(String),
    #[error("cannot load the CA file {path}: {detail}")]
    CaFile { path: String, detail: String },
    #[error("TLS handshake with {addr} timed out")]
    HandshakeTimeout { addr: String },
    #[error("the certificate served by {addr} does not verify: {detail}")]
    Unverified { addr: String, detail: String },
    #[error("TLS handshake with {addr} failed: {detail}")]
    Handshake { addr: String, detail: String },
}

impl Diagnostic for HttpError {
    fn hint(&self) -> Option<String> {
        Some(match self {
            HttpError::ConnectTimeout { addr } | HttpError::Connect { addr, .. } => format!(
                "is the server listening on {addr}, and does nothing between foobar and it drop the connection?"
            ),
            HttpError::Io { addr, .. }
            | HttpError::AnswerTimeout { addr, .. }
            | HttpError::NoAnswer { addr } => {
                format!("the server on {addr} accepted but did not answer HTTP: check its logs")
            }
            HttpError::Status { addr, status } => format!(
                "{addr} answered {status}: check the web server's and the app's logs on the host behind it"
            ),
            HttpError::OpenSsl(_) => return None,
            HttpError::CaFile { .. } => {
                "`tls_ca_file` in the inventory must name a readable PEM file".into()
            }
            HttpError::HandshakeTimeout { addr } | HttpError::Handshake { addr, .. } => {
                format!("is HAProxy on {addr} serving TLS (`https: true` applied)?")
            }
            HttpError::Unverified { .. } => {
                "the served chain must verify for the domain: check `tls_certificate` and `tls_ca_file`".into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_location_and_errors_come_from_the_answer() {
        let a = Answer::parse(
            "127.0.0.1:80",
            b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://example.test/\r\n\r\n",
        );
        assert_eq!(a.status(), "301");
        assert_eq!(a.location().as_deref(), Some("https://example.test/"));
        assert_eq!(a.ok().unwrap_err().to_string(), "127.0.0.1:80 answered 301");
        let empty = Answer::parse("127.0.0.1:80", b"");
        assert_eq!(empty.status(), "?");
        assert_eq!(
            empty.ok().unwrap_err().to_string(),
            "127.0.0.1:80 sent no HTTP answer"
        );
        assert!(
            Answer::parse("a:1", b"HTTP/1.0 200 OK\r\n\r\nserved by web-01")
                .ok()
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error_with_a_hint() {
        // Bind then drop: the port is free and nothing listens on it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let e = Client::GATE.get(&addr, "localhost").await.unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }), "{e}");
        assert!(e.hint().unwrap().contains(&addr));
    }
}
