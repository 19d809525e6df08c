//! `tls:` blocks: server certificates, optional client certificates (mTLS), and the
//! `rustls::ServerConfig` built from them.
//!
//! The check is pure (`file:line: field: problem`); reading the PEM files is the build step,
//! done once when a listener starts, and its errors name the file and say what is wrong with it.
//! The crypto provider is `ring` (no aws-lc), like the rest of the hub's TLS.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::config::{Document, Problem};

/// Server TLS for a listener (the API or an MLLP connector).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TlsConfig {
    /// The server's certificate, PEM; intermediate certificates may follow it in the same file.
    pub cert_path: String,
    /// The private key of `cert_path`, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_path: String,
    /// PEM file of the certificate authorities whose client certificates are accepted (mTLS).
    /// Unset: clients are not asked for a certificate.
    #[serde(default)]
    pub client_ca_path: Option<String>,
    /// Refuse a client without a certificate signed by `client_ca_path`. Defaults to true when
    /// `client_ca_path` is set; false makes the certificate optional (checked when offered).
    #[serde(default)]
    pub require_client_cert: Option<bool>,
    /// Lowest TLS version accepted: `"1.2"` or `"1.3"`.
    #[serde(default = "default_min_version")]
    pub min_version: String,
}

fn default_min_version() -> String {
    "1.2".into()
}

/// Why a TLS configuration could not be built. Each names the file and the reason.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{field}: {path}: cannot read: {error}")]
    Read {
        field: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{field}: {path}: {problem}")]
    Pem {
        field: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("{field}: {path}: {problem}")]
    Rejected {
        field: &'static str,
        path: PathBuf,
        problem: String,
    },
}

impl TlsConfig {
    /// Whether a client must present a certificate.
    pub fn requires_client_cert(&self) -> bool {
        self.client_ca_path.is_some() && self.require_client_cert.unwrap_or(true)
    }

    /// Pure checks, with fields under `prefix` (`tls`, `api.tls`).
    pub fn check(&self, doc: &Document, prefix: &str) -> Vec<Problem> {
        let mut problems = Vec::new();
        let at = |field: &str| format!("{prefix}.{field}");
        if self.cert_path.trim().is_empty() {
            problems.push(doc.problem(&at("cert_path"), "must name a PEM file"));
        }
        if self.key_path.trim().is_empty() {
            problems.push(doc.problem(&at("key_path"), "must name a PEM file"));
        }
        if self
            .client_ca_path
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            problems.push(doc.problem(&at("client_ca_path"), "must name a PEM file"));
        }
        if self.client_ca_path.is_none() && self.require_client_cert == Some(true) {
            problems.push(doc.problem(
                &at("require_client_cert"),
                "needs client_ca_path (the CAs whose client certificates are accepted)",
            ));
        }
        if !matches!(self.min_version.as_str(), "1.2" | "1.3") {
            problems.push(doc.problem(
                &at("min_version"),
                format!("expected \"1.2\" or \"1.3\", got \"{}\"", self.min_version),
            ));
        }
        problems
    }

    /// Reads the PEM files and builds the server configuration (ring provider).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let versions: &[&rustls::SupportedProtocolVersion] = if self.min_version == "1.3" {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let cert_path = Path::new(&self.cert_path);
        let key_path = Path::new(&self.key_path);
        let certs = read_certs("cert_path", cert_path)?;
        let key = read_key(key_path)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .map_err(|e| TlsError::Rejected {
                field: "min_version",
                path: PathBuf::from(&self.min_version),
                problem: e.to_string(),
            })?;
        let builder = match &self.client_ca_path {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let ca_path = Path::new(ca);
                let mut roots = rustls::RootCertStore::empty();
                for cert in read_certs("client_ca_path", ca_path)? {
                    roots.add(cert).map_err(|e| TlsError::Rejected {
                        field: "client_ca_path",
                        path: ca_path.to_path_buf(),
                        problem: format!("not a usable CA certificate: {e}"),
                    })?;
                }
                let verifier =
                    rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if self.requires_client_cert() {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().map_err(|e| TlsError::Rejected {
                    field: "client_ca_path",
                    path: ca_path.to_path_buf(),
                    problem: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(certs, key)
            .map_err(|e| TlsError::Rejected {
                field: "key_path",
                path: key_path.to_path_buf(),
                problem: format!("does not fit {}: {e}", cert_path.display()),
            })?;
        Ok(Arc::new(config))
    }
}

fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            field,
            path: path.to_path_buf(),
            problem: format!("not valid PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            field,
            path: path.to_path_buf(),
            problem: "holds no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("key_path", path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        field: "key_path",
        path: path.to_path_buf(),
        problem: match e {
            rustls::pki_types::pem::Error::NoItemsFound => "holds no PRIVATE KEY block".into(),
            e => format!("not a valid PEM private key: {e}"),
        },
    })
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        field,
        path: path.to_path_buf(),
        error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Document {
        Document::parse("c.yaml", "tls:\n  cert_path: a\n").unwrap()
    }

    fn config() -> TlsConfig {
        TlsConfig {
            cert_path: "server.pem".into(),
            key_path: "server.key".into(),
            client_ca_path: None,
            require_client_cert: None,
            min_version: "1.2".into(),
        }
    }

    #[test]
    fn client_certificates_are_required_once_a_client_ca_is_named() {
        let mut c = config();
        assert!(!c.requires_client_cert());
        c.client_ca_path = Some("ca.pem".into());
        assert!(c.requires_client_cert());
        c.require_client_cert = Some(false);
        assert!(!c.requires_client_cert());
    }

    #[test]
    fn check_names_each_bad_field_under_its_prefix() {
        let mut c = config();
        c.min_version = "1.1".into();
        c.require_client_cert = Some(true);
        c.key_path = " ".into();
        let fields: Vec<String> = c.check(&doc(), "tls").into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            ["tls.key_path", "tls.require_client_cert", "tls.min_version"]
        );
        assert!(config().check(&doc(), "tls").is_empty());
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let err = config().server_config().unwrap_err().to_string();
        assert!(err.starts_with("cert_path: server.pem: cannot read"), "{err}");
    }

    #[test]
    fn a_file_without_a_certificate_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "nothing here\n").unwrap();
        let mut c = config();
        c.cert_path = path.display().to_string();
        let err = c.server_config().unwrap_err().to_string();
        assert!(err.contains("empty.pem: holds no CERTIFICATE block"), "{err}");
    }
}
