//! [`TlsCerts`]: a throwaway certificate authority, a server certificate
//! for `127.0.0.1` and `localhost`, and a client certificate, made with
//! the `openssl` command for one test; and a second authority that signed
//! none of them, to show a certificate that does not verify.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fresh_dir;

/// The PEM files of a test's TLS setup.
pub struct TlsCerts {
    /// The folder holding them.
    pub dir: PathBuf,
    /// The authority that signed the server's and the client's.
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub server_cert: PathBuf,
    /// The server's key.
    pub server_key: PathBuf,
    /// The client's certificate.
    pub client_cert: PathBuf,
    /// The client's key (PKCS#8).
    pub client_key: PathBuf,
    /// An authority that signed nothing here.
    pub other_ca: PathBuf,
}

impl TlsCerts {
    /// Makes them in a fresh folder named after `name`.
    pub fn make(name: &str) -> Self {
        let dir = fresh_dir(&format!("tls-{name}"));
        let certs = Self {
            ca: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.crt"),
            dir,
        };
        let ca_key = certs.dir.join("ca.key");
        authority(&certs.dir, &ca_key, &certs.ca, "invalidator test CA");
        authority(
            &certs.dir,
            &certs.dir.join("other-ca.key"),
            &certs.other_ca,
            "some other CA",
        );
        let san = "subjectAltName=IP:127.0.0.1,DNS:localhost";
        signed(
            &certs,
            &ca_key,
            &certs.server_key,
            &certs.server_cert,
            "localhost",
            san,
        );
        signed(
            &certs,
            &ca_key,
            &certs.client_key,
            &certs.client_cert,
            "invalidator test client",
            "extendedKeyUsage=clientAuth",
        );
        certs
    }

    /// The `redis-server` arguments of a TLS-only server on `port` that
    /// requires a client certificate.
    pub fn server_args(&self, port: u16) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&self.server_cert),
            "--tls-key-file".into(),
            path(&self.server_key),
            "--tls-ca-cert-file".into(),
            path(&self.ca),
            "--tls-auth-clients".into(),
            "yes".into(),
        ]
    }

    /// The client's certificates, as the `redis` crate takes them.
    pub fn client(&self) -> redis::TlsCertificates {
        let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read(&self.client_cert),
                client_key: read(&self.client_key),
            }),
            root_cert: Some(read(&self.ca)),
        }
    }

    /// The `serve`/`apply` flags naming the client's files.
    pub fn flags(&self) -> Vec<String> {
        vec![
            "--redis-tls-ca".into(),
            self.ca.display().to_string(),
            "--redis-tls-cert".into(),
            self.client_cert.display().to_string(),
            "--redis-tls-key".into(),
            self.client_key.display().to_string(),
        ]
    }
}

/// Runs `openssl ARGS` in `dir`, failing the test with its output.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `openssl`: {e}. Install it (Debian: `apt-get install openssl`, which `.ci/run` does)")
        });
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn p(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// A self-signed authority with an EC key (quick to make).
fn authority(dir: &Path, key: &Path, cert: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            p(key),
            "-out",
            p(cert),
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ],
    );
}

/// A certificate for `name` signed by the test authority, with extension
/// `ext`, its key in PKCS#8.
fn signed(certs: &TlsCerts, ca_key: &Path, key: &Path, cert: &Path, name: &str, ext: &str) {
    let csr = cert.with_extension("csr");
    let ext_file = cert.with_extension("ext");
    std::fs::write(&ext_file, format!("{ext}\n")).expect("writing the extension file");
    openssl(
        &certs.dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            p(key),
            "-out",
            p(&csr),
            "-subj",
            &format!("/CN={name}"),
        ],
    );
    openssl(
        &certs.dir,
        &[
            "x509",
            "-req",
            "-in",
            p(&csr),
            "-CA",
            p(&certs.ca),
            "-CAkey",
            p(ca_key),
            "-CAcreateserial",
            "-out",
            p(cert),
            "-days",
            "2",
            "-extfile",
            p(&ext_file),
        ],
    );
}
