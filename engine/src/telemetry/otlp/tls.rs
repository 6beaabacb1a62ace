//! TLS to the collector: the certificate files the `OTEL_EXPORTER_OTLP_*`
//! TLS variables name, read and checked once, and turned into the client
//! configuration of either transport (rustls with ring for OTLP/HTTP,
//! tonic's rustls configuration for OTLP/gRPC).
//!
//! The collector is verified against the CA file when one is given, else
//! against the system's trust store. A client certificate and key (mTLS)
//! go together: one without the other is an error. Every error names the
//! variable and the file.

use std::path::Path;
use std::sync::Arc;

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::config::{FileSetting, TlsFiles};

/// Why the TLS variables cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{variable}={path}: cannot read the file: {source}", variable = file.variable, path = file.path.display())]
    Read {
        /// The variable and its file.
        file: FileSetting,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid PEM.
    #[error("{variable}={path}: invalid PEM: {source}", variable = file.variable, path = file.path.display())]
    Pem {
        /// The variable and its file.
        file: FileSetting,
        /// The parser's error.
        source: pem::Error,
    },
    /// A certificate file holds no certificate.
    #[error("{variable}={path}: no PEM certificate (BEGIN CERTIFICATE) found", variable = file.variable, path = file.path.display())]
    NoCertificate {
        /// The variable and its file.
        file: FileSetting,
    },
    /// The key file holds no private key.
    #[error("{variable}={path}: no PEM private key (PKCS#8, PKCS#1 or SEC1) found", variable = file.variable, path = file.path.display())]
    NoKey {
        /// The variable and its file.
        file: FileSetting,
    },
    /// A CA certificate that rustls cannot use as a trust anchor.
    #[error("{variable}={path}: not a usable CA certificate: {source}", variable = file.variable, path = file.path.display())]
    BadCa {
        /// The variable and its file.
        file: FileSetting,
        /// rustls's error.
        source: rustls::Error,
    },
    /// A client certificate without its key, or a key without its certificate.
    #[error(
        "{set} is set but {missing} is not: mTLS needs both the client certificate and its key"
    )]
    HalfPair {
        /// The variable that is set.
        set: String,
        /// The variable that is missing.
        missing: String,
    },
    /// rustls rejected the client pair (unsupported key, key not matching).
    #[error("{cert_var}={cert} and {key_var}={key} are not a usable client certificate and key: {source}",
        cert_var = cert.variable, cert = cert.path.display(), key_var = key.variable, key = key.path.display())]
    Pair {
        /// The certificate variable and file.
        cert: Box<FileSetting>,
        /// The key variable and file.
        key: Box<FileSetting>,
        /// rustls's error.
        source: rustls::Error,
    },
    /// No CA file and no system trust store to verify the collector with.
    #[error(
        "no CA certificates in the system trust store to verify the collector with; set OTEL_EXPORTER_OTLP_CERTIFICATE to the collector's CA"
    )]
    NoSystemRoots,
}

/// The client's certificate chain and key (mTLS), as PEM and as parsed.
#[derive(Debug)]
struct ClientIdentity {
    cert_file: FileSetting,
    key_file: FileSetting,
    cert_pem: Vec<u8>,
    key_pem: Vec<u8>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl ClientIdentity {
    /// Finish `builder` with this certificate and key.
    fn authenticate(
        &self,
        builder: rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>,
    ) -> Result<ClientConfig, Error> {
        builder
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|source| Error::Pair {
                cert: Box::new(self.cert_file.clone()),
                key: Box::new(self.key_file.clone()),
                source,
            })
    }
}

/// The checked TLS settings of one signal.
#[derive(Debug)]
pub struct Tls {
    /// The CA file's PEM and its certificates; `None`: the system's roots.
    ca: Option<(Vec<u8>, Vec<CertificateDer<'static>>)>,
    identity: Option<ClientIdentity>,
}

impl Tls {
    /// Read and check the files `files` names.
    ///
    /// # Errors
    /// A file is unreadable, not PEM, holds no certificate or key, the CA is
    /// not usable, only half of the client pair is set, or the pair does not
    /// match.
    pub fn load(files: &TlsFiles) -> Result<Tls, Error> {
        let ca = match &files.ca {
            Some(file) => {
                let pem = read(file)?;
                let certs = certificates(file, &pem)?;
                let mut roots = RootCertStore::empty();
                for cert in &certs {
                    roots.add(cert.clone()).map_err(|source| Error::BadCa {
                        file: file.clone(),
                        source,
                    })?;
                }
                Some((pem, certs))
            }
            None => None,
        };
        let identity = match (&files.client_certificate, &files.client_key) {
            (None, None) => None,
            (Some(set), None) => {
                return Err(Error::HalfPair {
                    missing: set.variable.replace("CLIENT_CERTIFICATE", "CLIENT_KEY"),
                    set: set.variable.clone(),
                });
            }
            (None, Some(set)) => {
                return Err(Error::HalfPair {
                    missing: set.variable.replace("CLIENT_KEY", "CLIENT_CERTIFICATE"),
                    set: set.variable.clone(),
                });
            }
            (Some(cert), Some(key)) => {
                let cert_pem = read(cert)?;
                let key_pem = read(key)?;
                let chain = certificates(cert, &cert_pem)?;
                let parsed =
                    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| match source {
                        pem::Error::NoItemsFound => Error::NoKey { file: key.clone() },
                        source => Error::Pem {
                            file: key.clone(),
                            source,
                        },
                    })?;
                let identity = ClientIdentity {
                    cert_file: cert.clone(),
                    key_file: key.clone(),
                    cert_pem,
                    key_pem,
                    chain,
                    key: parsed,
                };
                // rustls checks the key and that it matches the certificate.
                identity.authenticate(builder().with_root_certificates(RootCertStore::empty()))?;
                Some(identity)
            }
        };
        Ok(Tls { ca, identity })
    }

    /// The rustls client configuration of the OTLP/HTTP transport: the CA
    /// file's roots (else the system's) and the client pair when set; no
    /// ALPN (the HTTP connector sets it).
    ///
    /// # Errors
    /// No CA file is set and the system has no trusted roots.
    pub fn rustls(&self) -> Result<ClientConfig, Error> {
        let mut roots = RootCertStore::empty();
        match &self.ca {
            Some((_, certs)) => {
                // Checked by `load`.
                roots.add_parsable_certificates(certs.iter().cloned());
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(native.certs);
                if roots.is_empty() {
                    return Err(Error::NoSystemRoots);
                }
            }
        }
        let builder = builder().with_root_certificates(roots);
        match &self.identity {
            Some(identity) => identity.authenticate(builder),
            None => Ok(builder.with_no_client_auth()),
        }
    }

    /// tonic's client configuration of the OTLP/gRPC transport: the CA file
    /// (else the system's roots) and the client pair when set.
    pub fn tonic(&self) -> ClientTlsConfig {
        let config = match &self.ca {
            Some((pem, _)) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        match &self.identity {
            Some(identity) => {
                config.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem))
            }
            None => config,
        }
    }
}

/// A rustls client builder on ring, TLS 1.3 and 1.2.
fn builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.3 and 1.2")
}

fn read(file: &FileSetting) -> Result<Vec<u8>, Error> {
    std::fs::read(Path::new(&file.path)).map_err(|source| Error::Read {
        file: file.clone(),
        source,
    })
}

fn certificates(file: &FileSetting, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            file: file.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate { file: file.clone() });
    }
    Ok(certs)
}
