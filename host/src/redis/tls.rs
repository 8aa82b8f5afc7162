//! TLS for Redis: the PEM files of [`TlsFiles`] read into the client's
//! certificates, each failure naming its file; and telling a certificate
//! that does not verify (which no retry fixes) from a server that is away.

use std::path::Path;

use redis::{ClientTlsConfig, TlsCertificates};

use super::{RedisError, TlsFiles};

/// Reads `files`; `None` when none is named (the system's roots serve).
pub(crate) fn certificates(files: &TlsFiles) -> Result<Option<TlsCertificates>, RedisError> {
    install_provider();
    if files.is_empty() {
        return Ok(None);
    }
    let client_tls = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read(cert, "CERTIFICATE")?,
            client_key: read(key, "PRIVATE KEY")?,
        }),
        (None, None) => None,
        (Some(cert), None) => return Err(alone(cert, "a client certificate needs its key")),
        (None, Some(key)) => return Err(alone(key, "a client key needs its certificate")),
    };
    let root_cert = files
        .ca
        .as_deref()
        .map(|ca| read(ca, "CERTIFICATE"))
        .transpose()?;
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// rustls's `ring` provider, chosen once for the process: the only one
/// this build has, installed explicitly so that another crate enabling a
/// second provider cannot leave rustls unable to pick.
fn install_provider() {
    // An error means a provider is installed already, which serves.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The file at `path`, which must hold a PEM block of `kind` (`PRIVATE
/// KEY` matches `RSA PRIVATE KEY` and `EC PRIVATE KEY` too).
fn read(path: &Path, kind: &str) -> Result<Vec<u8>, RedisError> {
    let bytes = std::fs::read(path).map_err(|e| RedisError::TlsFile {
        file: path.to_owned(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let holds = text
        .lines()
        .any(|l| l.starts_with("-----BEGIN ") && l.contains(kind));
    if !holds {
        return Err(RedisError::TlsFile {
            file: path.to_owned(),
            reason: format!("no `-----BEGIN ... {kind}-----` block: expected a PEM file"),
        });
    }
    Ok(bytes)
}

fn alone(path: &Path, reason: &str) -> RedisError {
    RedisError::TlsFile {
        file: path.to_owned(),
        reason: format!("{reason}: give both `tls_cert` and `tls_key`"),
    }
}

/// Why a TLS handshake failed because of a certificate, if it did: the
/// server's did not verify, or ours was refused. `None` for every other
/// error, such as a refused connection.
pub(crate) fn certificate_problem(error: &redis::RedisError) -> Option<String> {
    // The client keeps the I/O error behind an `Arc<dyn Error>`, which is
    // what its `source()` hands out: look through that wrapper too.
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        let inner: &(dyn std::error::Error + 'static) = match e.downcast_ref::<Shared>() {
            Some(shared) => shared.as_ref(),
            None => e,
        };
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && let Some(wrapped) = io.get_ref()
            && let Some(tls) = wrapped.downcast_ref::<rustls::Error>()
        {
            return certificate_error(tls);
        }
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return certificate_error(tls);
        }
        source = e.source();
    }
    None
}

fn certificate_error(error: &rustls::Error) -> Option<String> {
    match error {
        rustls::Error::InvalidCertificate(_)
        | rustls::Error::NoCertificatesPresented
        | rustls::Error::AlertReceived(_) => Some(error.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named() {
        let files = TlsFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        let err = certificates(&files).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }

    #[test]
    fn a_certificate_without_its_key_is_refused() {
        let dir = std::env::temp_dir().join(format!("inv-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("c.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let files = TlsFiles {
            cert: Some(cert.clone()),
            ..TlsFiles::default()
        };
        let err = certificates(&files).unwrap_err().to_string();
        assert!(err.contains("c.pem") && err.contains("tls_key"), "{err}");
        let not_pem = dir.join("n.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let files = TlsFiles {
            ca: Some(not_pem),
            ..TlsFiles::default()
        };
        let err = certificates(&files).unwrap_err().to_string();
        assert!(err.contains("n.pem") && err.contains("PEM"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
