//! HTTPS through the load balancer: a real TLS handshake from where foobar runs (OpenSSL),
//! with SNI and host-name checking, the served chain verified against the system's trust
//! store or the inventory's `tls_ca_file`, and the days the served certificate has left.

use std::path::Path;
use std::pin::Pin;

use openssl::ssl::{SslConnector, SslMethod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{Answer, Client, HttpError};

/// What one HTTPS request saw.
#[derive(Debug)]
pub struct HttpsAnswer {
    pub answer: Answer,
    /// Days until the served leaf certificate expires (negative: expired).
    pub days_left: Option<i64>,
    pub protocol: String,
}

/// `GET /` over HTTPS to `addr` (ip:port) for `domain`. Errors name what failed, e.g. the
/// verification of the served chain.
pub async fn https_get(
    addr: &str,
    domain: &str,
    ca_file: Option<&Path>,
) -> Result<HttpsAnswer, HttpError> {
    let client = Client::VERIFY;
    let openssl = |e: openssl::error::ErrorStack| HttpError::OpenSsl(e.to_string());
    let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(openssl)?;
    if let Some(ca) = ca_file {
        builder.set_ca_file(ca).map_err(|e| HttpError::CaFile {
            path: ca.display().to_string(),
            detail: e.to_string(),
        })?;
    }
    let connector = builder.build();
    let ssl = connector
        .configure()
        .and_then(|c| c.into_ssl(domain))
        .map_err(openssl)?;
    let tcp = client.connect(addr).await?;
    let mut stream = tokio_openssl::SslStream::new(ssl, tcp).map_err(openssl)?;
    tokio::time::timeout(client.answer, Pin::new(&mut stream).connect())
        .await
        .map_err(|_| HttpError::HandshakeTimeout { addr: addr.into() })?
        .map_err(|e| {
            let verify = stream.ssl().verify_result();
            if verify.as_raw() != 0 {
                HttpError::Unverified {
                    addr: addr.into(),
                    detail: verify.error_string().into(),
                }
            } else {
                HttpError::Handshake {
                    addr: addr.into(),
                    detail: e.to_string(),
                }
            }
        })?;
    let days_left = stream
        .ssl()
        .peer_certificate()
        .and_then(|c| days_until(c.not_after()));
    let protocol = stream.ssl().version_str().to_string();
    stream
        .write_all(client.request(domain).as_bytes())
        .await
        .map_err(|source| HttpError::Io {
            addr: addr.into(),
            source: std::sync::Arc::new(source),
        })?;
    let mut buf = Vec::new();
    // A peer that closes without close_notify ends the read with an error after the data.
    let _ = tokio::time::timeout(client.answer, stream.read_to_end(&mut buf)).await;
    Ok(HttpsAnswer {
        answer: Answer::parse(addr, &buf),
        days_left,
        protocol,
    })
}

/// Days from now until `t` (negative when it is past).
pub fn days_until(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
    now.diff(t).ok().map(|d| i64::from(d.days))
}
