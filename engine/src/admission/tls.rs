//! TLS for the webhook: a rustls server configuration (ring, TLS 1.3 and 1.2
//! only, ALPN `h2` then `http/1.1`) from a PEM certificate chain and key, and
//! [`watch`], which reloads it when the files change (cert-manager rotates
//! them in place) without dropping a connection: new handshakes get the new
//! certificate, established connections keep theirs.
//!
//! A pair that does not load (a half-written file, a key that does not match
//! the certificate) is logged and the previous configuration kept; it is
//! retried when the files change again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::State;
use super::watch::{Stamp, next_change};

/// Why the certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{path}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("{path}: invalid PEM", path = path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        source: pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{path}: no PEM certificate (BEGIN CERTIFICATE) found", path = path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key.
    #[error("{path}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found", path = path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls rejected the pair (unsupported key, key not matching the certificate).
    #[error("{cert} and {key} are not a usable certificate and key", cert = cert.display(), key = key.display())]
    Pair {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls's error.
        source: rustls::Error,
    },
}

/// Where the certificate chain and key are.
#[derive(Debug, Clone)]
pub struct Files {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

impl Files {
    fn paths(&self) -> [PathBuf; 2] {
        [self.cert.clone(), self.key.clone()]
    }

    /// The files' current stamp.
    pub fn stamp(&self) -> Stamp {
        Stamp::of(&self.paths())
    }
}

/// Build the server configuration from `files`.
///
/// # Errors
/// A file is unreadable or not PEM, holds no certificate or key, or the key
/// does not match the certificate.
pub fn load(files: &Files) -> Result<Arc<ServerConfig>, Error> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            path: files.cert.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            path: files.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| match source {
        pem::Error::NoItemsFound => Error::NoKey {
            path: files.key.clone(),
        },
        source => Error::Pem {
            path: files.key.clone(),
            source,
        },
    })?;
    let pair = |source| Error::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(pair)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(pair)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Poll `files` every `interval` and reload `tls` when they change. `loaded`
/// is the stamp taken before the configuration in use was read. Never returns.
pub async fn watch(
    files: Files,
    tls: RustlsConfig,
    state: State,
    interval: Duration,
    mut loaded: Stamp,
) {
    let mut failed: Option<Stamp> = None;
    loop {
        let now = next_change(interval, &loaded, failed.as_ref(), || files.stamp()).await;
        match load(&files) {
            Ok(config) => {
                tls.reload_from_config(config);
                state.metrics().tls_reload(true);
                tracing::info!(cert = %files.cert.display(), "certificate reloaded");
                loaded = now;
                failed = None;
            }
            Err(e) => {
                state.metrics().tls_reload(false);
                tracing::warn!(
                    "certificate not reloaded, keeping the current one: {}",
                    super::error::chain(&e)
                );
                failed = Some(now);
            }
        }
    }
}
