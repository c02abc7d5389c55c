//! HTTPS through the load balancer: a real TLS handshake from where foobar runs (OpenSSL),
//! with SNI and host-name checking, the served chain verified against the system's trust
//! store or the inventory's `tls_ca_file`, and the days the served certificate has left.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use openssl::ssl::{SslConnector, SslMethod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one HTTPS request saw.
#[derive(Debug)]
pub struct HttpsAnswer {
    pub status: String,
    pub body: String,
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
) -> Result<HttpsAnswer, String> {
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| format!("OpenSSL: {e}"))?;
    if let Some(ca) = ca_file {
        builder
            .set_ca_file(ca)
            .map_err(|e| format!("cannot load the CA file {}: {e}", ca.display()))?;
    }
    let connector = builder.build();
    let ssl = connector
        .configure()
        .and_then(|c| c.into_ssl(domain))
        .map_err(|e| format!("OpenSSL: {e}"))?;
    let tcp = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("connecting to {addr} timed out"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let mut stream =
        tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| format!("OpenSSL: {e}"))?;
    tokio::time::timeout(Duration::from_secs(5), Pin::new(&mut stream).connect())
        .await
        .map_err(|_| format!("TLS handshake with {addr} timed out"))?
        .map_err(|e| {
            let verify = stream.ssl().verify_result();
            if verify.as_raw() != 0 {
                format!(
                    "the certificate served by {addr} does not verify: {}",
                    verify.error_string()
                )
            } else {
                format!("TLS handshake with {addr} failed: {e}")
            }
        })?;
    let days_left = stream
        .ssl()
        .peer_certificate()
        .and_then(|c| days_until(c.not_after()));
    let protocol = stream.ssl().version_str().to_string();
    let req = format!("GET / HTTP/1.0\r\nHost: {domain}\r\nUser-Agent: foobar-verify\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    // A peer that closes without close_notify ends the read with an error after the data.
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).unwrap_or("?").to_string();
    Ok(HttpsAnswer {
        status,
        body: text,
        days_left,
        protocol,
    })
}

/// Days from now until `t` (negative when it is past).
pub fn days_until(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let now = openssl::asn1::Asn1Time::days_from_now(0).ok()?;
    now.diff(t).ok().map(|d| i64::from(d.days))
}

/// A plain-HTTP `GET /`: the status and the `Location` header, to check the redirect.
pub async fn http_status(addr: &str, domain: &str) -> Result<(String, Option<String>), String> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let req = format!("GET / HTTP/1.0\r\nHost: {domain}\r\nUser-Agent: foobar-verify\r\n\r\n");
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .map_err(|_| format!("{addr} did not answer within 5 s"))?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).unwrap_or("?").to_string();
    let location = text
        .lines()
        .take_while(|l| !l.is_empty() && *l != "\r")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        });
    Ok((status, location))
}
