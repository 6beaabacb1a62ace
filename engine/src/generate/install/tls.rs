//! The webhook's serving certificate: cert-manager objects (a self-signed
//! root, a CA Issuer, and a rotated serving Certificate whose CA the
//! cainjector writes into the webhook configurations), or a CA and serving
//! certificate made here and kept in a directory, so that reruns write the
//! same bytes (see [`Material::load_or_create`]).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde_json::{Value, json};

use super::{Cond, Ctx, Error, Manifest, files, names};

/// The CA's validity.
pub const CA_DAYS: i64 = 3650;
/// The serving certificate's validity (rotate by deleting it from the CA directory).
pub const SERVING_DAYS: i64 = 1825;

/// The DNS names the API server may use for the webhook Service.
pub fn dns_names(namespace: &str) -> Vec<String> {
    let service = names::WEBHOOK;
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// Self-signed PEM material.
#[derive(Debug, Clone)]
pub struct Material {
    /// The CA certificate (the webhook configurations' caBundle).
    pub ca_cert: String,
    /// The serving certificate.
    pub cert: String,
    /// The serving key.
    pub key: String,
}

impl Material {
    /// Read the CA (`ca.crt`, `ca.key`) and the serving pair for `namespace`
    /// (`tollgate-webhook.<namespace>.svc.crt`/`.key`) from `dir`, creating
    /// what is missing: the CA once, a serving certificate per namespace.
    /// Keys are written readable by the owner only.
    ///
    /// # Errors
    /// Unreadable or unwritable files, or a CA key that does not parse.
    pub fn load_or_create(dir: &Path, namespace: &str) -> Result<Self, Error> {
        let io = |path: &Path, e: std::io::Error| Error::CaDir {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let ca_cert_path = dir.join("ca.crt");
        let ca_key_path = dir.join("ca.key");
        let ca_key = match read_optional(&ca_key_path)? {
            Some(pem) => KeyPair::from_pem(&pem).map_err(|e| Error::CaDir {
                path: ca_key_path.display().to_string(),
                message: format!("not a PEM private key: {e}"),
            })?,
            None if ca_cert_path.exists() => {
                return Err(Error::CaDir {
                    path: ca_cert_path.display().to_string(),
                    message: "ca.crt exists without ca.key; restore ca.key or remove ca.crt to make a new CA".into(),
                });
            }
            None => {
                let key = KeyPair::generate()?;
                let cert = ca_params()?.self_signed(&key)?;
                write_file(&ca_cert_path, &cert.pem(), false)?;
                write_file(&ca_key_path, &key.serialize_pem(), true)?;
                key
            }
        };
        let ca_cert = read_optional(&ca_cert_path)?.ok_or_else(|| Error::CaDir {
            path: ca_cert_path.display().to_string(),
            message: "ca.key exists without ca.crt; remove ca.key to make a new CA".into(),
        })?;
        let base = format!("{}.{namespace}.svc", names::WEBHOOK);
        let cert_path = dir.join(format!("{base}.crt"));
        let key_path = dir.join(format!("{base}.key"));
        let (cert, key) = match (read_optional(&cert_path)?, read_optional(&key_path)?) {
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                let key = KeyPair::generate()?;
                let issuer = Issuer::new(ca_params()?, ca_key);
                let cert = serving_params(namespace)?.signed_by(&key, &issuer)?;
                write_file(&cert_path, &cert.pem(), false)?;
                write_file(&key_path, &key.serialize_pem(), true)?;
                (cert.pem(), key.serialize_pem())
            }
        };
        Ok(Material { ca_cert, cert, key })
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::CaDir {
            path: path.display().to_string(),
            message: e.to_string(),
        }),
    }
}

fn write_file(path: &PathBuf, text: &str, secret: bool) -> Result<(), Error> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::CaDir {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    // An hour of slack for clocks behind ours.
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// The CA's parameters; the same every time, so that a stored CA key can sign
/// new serving certificates (the issuer's name must match the CA's subject).
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "tollgate-webhook-ca");
    name.push(DnType::OrganizationName, "tollgate");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, CA_DAYS);
    Ok(params)
}

fn serving_params(namespace: &str) -> Result<CertificateParams, rcgen::Error> {
    let dns = dns_names(namespace);
    let mut params = CertificateParams::new(dns.clone())?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, dns[2].clone());
    params.distinguished_name = name;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, SERVING_DAYS);
    Ok(params)
}

fn b64(text: &str) -> Value {
    json!(base64::engine::general_purpose::STANDARD.encode(text))
}

/// The caBundle of the webhook configurations, for self-signed TLS.
pub fn ca_bundle(ctx: &Ctx<'_>) -> Value {
    ctx.value(
        "{{ .Values.tls.selfSigned.caCert | b64enc | quote }}",
        || match &ctx.settings.tls {
            super::Tls::SelfSigned(m) => b64(&m.ca_cert),
            super::Tls::CertManager => Value::Null,
        },
    )
}

/// The cainjector annotation of the webhook configurations, for cert-manager.
pub fn inject_annotation(ctx: &Ctx<'_>) -> Value {
    json!({"cert-manager.io/inject-ca-from": format!("{}/{}", ctx.namespace(), names::WEBHOOK)})
}

/// cert-manager objects, or the Secret with the self-signed material.
pub fn manifests(ctx: &Ctx<'_>) -> Vec<Manifest> {
    let ca = "tollgate-ca";
    let cert_manager = |object: Value| Manifest {
        file: files::TLS,
        when: Some(Cond::TlsCertManager),
        object,
    };
    let issuer = |name: &str, spec: Value| {
        json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Issuer",
            "metadata": ctx.metadata(name, "tls"),
            "spec": spec,
        })
    };
    let namespace = ctx.namespace();
    let mut all = vec![
        cert_manager(issuer("tollgate-selfsigned", json!({"selfSigned": {}}))),
        cert_manager(json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": ctx.metadata(ca, "tls"),
            "spec": {
                "isCA": true,
                "commonName": "tollgate-webhook-ca",
                "secretName": ca,
                "duration": format!("{}h", CA_DAYS * 24),
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": "tollgate-selfsigned"},
            },
        })),
        cert_manager(issuer(ca, json!({"ca": {"secretName": ca}}))),
        cert_manager(json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            "metadata": ctx.metadata(names::WEBHOOK, "tls"),
            "spec": {
                "secretName": names::TLS_SECRET,
                "dnsNames": dns_names(&namespace),
                "duration": "2160h",
                "renewBefore": "360h",
                "usages": ["server auth", "digital signature"],
                "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
                "issuerRef": {"group": "cert-manager.io", "kind": "Issuer", "name": ca},
            },
        })),
    ];
    let material = match &ctx.settings.tls {
        super::Tls::SelfSigned(m) => Some(m),
        super::Tls::CertManager => None,
    };
    if ctx.chart || material.is_some() {
        let field = |expression: &str, pick: fn(&Material) -> &str| {
            ctx.value(expression, || {
                material.map_or(Value::Null, |m| b64(pick(m)))
            })
        };
        all.push(Manifest {
            file: files::TLS,
            when: Some(Cond::TlsSelfSigned),
            object: json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": ctx.metadata(names::TLS_SECRET, "tls"),
                "type": "kubernetes.io/tls",
                "data": {
                    "ca.crt": field("{{ .Values.tls.selfSigned.caCert | b64enc | quote }}", |m| &m.ca_cert),
                    "tls.crt": field("{{ .Values.tls.selfSigned.cert | b64enc | quote }}", |m| &m.cert),
                    "tls.key": field("{{ .Values.tls.selfSigned.key | b64enc | quote }}", |m| &m.key),
                },
            }),
        });
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_directory_is_created_once_and_reused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Material::load_or_create(dir.path(), "tollgate").expect("created");
        let again = Material::load_or_create(dir.path(), "tollgate").expect("reused");
        assert_eq!(
            (&first.ca_cert, &first.cert, &first.key),
            (&again.ca_cert, &again.cert, &again.key)
        );
        let other = Material::load_or_create(dir.path(), "elsewhere").expect("new namespace");
        assert_eq!(other.ca_cert, first.ca_cert, "one CA for every namespace");
        assert_ne!(
            other.cert, first.cert,
            "a serving certificate per namespace"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("ca.key"))
                .expect("ca.key")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the CA key is private to its owner");
        }
    }

    #[test]
    fn a_corrupt_ca_key_is_reported_with_its_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("ca.key"), "not a key").expect("write");
        let message = Material::load_or_create(dir.path(), "tollgate")
            .expect_err("bad key")
            .to_string();
        assert!(
            message.contains("ca.key") && message.contains("not a PEM private key"),
            "{message}"
        );
    }
}
