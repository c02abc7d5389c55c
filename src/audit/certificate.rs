//! The days left on the inventory's TLS certificate, read where foobar runs (audit without
//! `--live`; verify reports the certificate the load balancer actually serves).

use crate::inventory::{Inventory, SecretSource};

/// Why the inventory's certificate could not be read or dated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("not a PEM certificate")]
    NotPem,
    #[error("{0}")]
    OpenSsl(String),
    #[error("environment variable {0} is not set")]
    EnvironmentUnset(String),
    #[error("{path}: {detail}")]
    Read { path: String, detail: String },
}

/// Days from now until the certificate (PEM, the first one in the text) expires.
pub fn certificate_days_left(pem: &[u8]) -> Result<i64, CertificateError> {
    let openssl = |e: openssl::error::ErrorStack| CertificateError::OpenSsl(e.to_string());
    let cert = openssl::x509::X509::from_pem(pem).map_err(|_| CertificateError::NotPem)?;
    let now = openssl::asn1::Asn1Time::days_from_now(0).map_err(openssl)?;
    let diff = now.diff(cert.not_after()).map_err(openssl)?;
    Ok(i64::from(diff.days))
}

/// Read the inventory's `tls_certificate` secret (file or environment) and compute its days
/// left; `None` when the inventory has no such secret.
pub fn certificate_days(inv: &Inventory) -> Option<Result<i64, CertificateError>> {
    let r = inv.secrets.get("tls_certificate")?;
    let pem = match &r.source {
        SecretSource::Env(var) => std::env::var(var)
            .map(String::into_bytes)
            .map_err(|_| CertificateError::EnvironmentUnset(var.clone())),
        SecretSource::File(path) => std::fs::read(path).map_err(|e| CertificateError::Read {
            path: path.display().to_string(),
            detail: e.to_string(),
        }),
    };
    Some(pem.and_then(|p| certificate_days_left(&p)))
}
