//! HTTPS through the load balancer: a real TLS handshake from where foobar runs (OpenSSL),
//! with SNI and host-name checking, the served chain verified against the system's trust
//! store or the inventory's `tls_ca_file`, and the days the served certificate has left.

use std::path::Path;
use std::pin::Pin;

use openssl::ssl::{SslConnector, SslMethod};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::{Answer, Client, HttpError};
use std::collections::BTreeMap;

use super::VerifyFailure;
use crate::inventory::HostName;
use crate::mysql::Check;

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

/// With `https: true`: plain HTTP redirects to HTTPS, HTTPS on port 443 of the same address
/// reaches every web host, and the served certificate verifies and has days left.
pub(super) async fn verify_https(
    http_addr: &str,
    domain: &str,
    ca: Option<&std::path::Path>,
    web: &[HostName],
) -> Vec<Check> {
    let mut checks = Vec::new();
    let host = http_addr.rsplit_once(':').map_or(http_addr, |(h, _)| h);
    let addr = format!("{host}:443");
    match crate::http::Client::VERIFY
        .get(http_addr, domain)
        .await
        .map(|a| (a.status().to_string(), a.location()))
    {
        Ok((status, Some(loc))) if status.starts_with('3') && loc.starts_with("https://") => {
            checks.push(Check::pass(
                "http_redirect",
                format!("GET http://{domain}/ via {http_addr} answers {status} to {loc}"),
            ));
        }
        Ok((status, location)) => checks.push(
            VerifyFailure::NoRedirect {
                domain: domain.to_string(),
                addr: http_addr.to_string(),
                status,
                location,
            }
            .check("http_redirect"),
        ),
        Err(e) => checks.push(VerifyFailure::Http(e).check("http_redirect")),
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut certificate: Option<(Option<i64>, String)> = None;
    for _ in 0..(2 * web.len().max(1) + 2) {
        match https_get(&addr, domain, ca).await {
            Ok(a) => {
                certificate.get_or_insert((a.days_left, a.protocol.clone()));
                if let Err(e) = a.answer.clone().ok() {
                    errors.push(e);
                    continue;
                }
                for w in web {
                    if a.answer.text.contains(&format!("served by {w}")) {
                        *seen.entry(w.to_string()).or_default() += 1;
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    match certificate {
        Some((Some(days), protocol)) if days >= 0 => checks.push(Check::pass(
            "tls_certificate",
            format!(
                "the certificate served on {addr} verifies for {domain} ({protocol}) and expires in {days} days{}",
                if days < 30 { ": renew it now" } else { "" }
            ),
        )),
        Some((days, _)) => checks.push(
            VerifyFailure::CertificateExpired {
                addr: addr.clone(),
                days_ago: days.map(|d| -d).unwrap_or(0),
            }
            .check("tls_certificate"),
        ),
        None => checks.push(
            VerifyFailure::NoVerifiedTls {
                addr: addr.clone(),
                error: errors.first().map(|e| e.to_string()).unwrap_or_default(),
            }
            .check("tls_certificate"),
        ),
    }
    for w in web {
        match seen.get(w.as_str()) {
            Some(n) => checks.push(Check::pass(
                "https_through_lb",
                format!("GET https://{domain}/ via {addr} reached {w} ({n} times)"),
            )),
            None => checks.push(
                VerifyFailure::NeverReached {
                    scheme: "https",
                    domain: domain.to_string(),
                    addr: addr.clone(),
                    web: w.clone(),
                    error: errors.first().map(|e| e.to_string()),
                }
                .check("https_through_lb"),
            ),
        }
    }
    checks
}
