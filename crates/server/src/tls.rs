//! The server's TLS certificate: the configured one, or a self-made one kept in
//! `data_dir/tls/`, and its pin.
//!
//! The self-made set is a small CA (`ca.pem`, `ca-key.pem`) and a server certificate signed by
//! it (`server.pem`, `server-key.pem`) for `localhost`, `127.0.0.1`, `::1` and the host of
//! `server.public_url`. Browsers and test clients trust `ca.pem`; phones and workstations
//! instead check the **TLS pin**: `sha256/` + base64 of the SHA-256 of the server key's
//! SubjectPublicKeyInfo (the form of RFC 7469). The server key is kept when the certificate is
//! re-issued (expiry near, public host changed), so the pin survives restarts and renewals.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use sha2::{Digest, Sha256};

/// Why the certificate could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Only one of `server.tls_cert` and `server.tls_key` is set.
    #[error(
        "server.tls_cert and server.tls_key must be set together (or neither, for a self-made certificate)"
    )]
    HalfConfigured,
    /// The configured certificate cannot be read.
    #[error("the certificate {path} cannot be used: {reason}")]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Making the self-signed set failed.
    #[error("creating the self-made TLS certificate failed: {0}")]
    Generate(String),
}

/// The certificate the server presents, ready for rustls.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// Certificate chain, PEM (leaf first).
    pub cert_chain_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
    /// `sha256/<base64>` of the leaf's SubjectPublicKeyInfo.
    pub pin: String,
    /// The self-made CA to trust (PEM file), when the certificate is self-made.
    pub ca_file: Option<PathBuf>,
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server-key.pem";

/// Re-issue a self-made certificate this many days before it expires.
const RENEW_BEFORE_DAYS: i64 = 30;

impl TlsMaterial {
    /// The configured certificate (both paths set), else the self-made one in `tls_dir`.
    pub fn load(
        tls_cert: Option<&Path>,
        tls_key: Option<&Path>,
        tls_dir: &Path,
        public_host: Option<&str>,
    ) -> Result<TlsMaterial, TlsError> {
        match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => TlsMaterial::configured(cert, key),
            (None, None) => TlsMaterial::self_made(tls_dir, public_host),
            _ => Err(TlsError::HalfConfigured),
        }
    }

    fn configured(cert: &Path, key: &Path) -> Result<TlsMaterial, TlsError> {
        let cert_chain_pem = read(cert)?;
        let key_pem = read(key)?;
        let pin = pin_of_pem(&cert_chain_pem).map_err(|reason| TlsError::BadCertificate {
            path: cert.to_path_buf(),
            reason,
        })?;
        Ok(TlsMaterial {
            cert_chain_pem,
            key_pem,
            pin,
            ca_file: None,
        })
    }

    fn self_made(dir: &Path, public_host: Option<&str>) -> Result<TlsMaterial, TlsError> {
        fs::create_dir_all(dir).map_err(io("cannot create", dir))?;
        let mut hosts = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if let Some(host) = public_host {
            let host = host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let ca_cert_path = dir.join(CA_CERT);
        let ca_key_path = dir.join(CA_KEY);
        let (ca_cert_pem, ca_key_pem) = if ca_cert_path.exists()
            && ca_key_path.exists()
            && days_left(&read(&ca_cert_path)?).is_some_and(|d| d > RENEW_BEFORE_DAYS)
        {
            (read(&ca_cert_path)?, read(&ca_key_path)?)
        } else {
            let key = KeyPair::generate().map_err(generate)?;
            let mut params = CertificateParams::default();
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, "keybridge server CA");
            name.push(DnType::OrganizationName, "keybridge");
            params.distinguished_name = name;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            validity(&mut params, 3650);
            let cert = params.self_signed(&key).map_err(generate)?;
            let pair = (cert.pem(), key.serialize_pem());
            write(&ca_cert_path, &pair.0, 0o644)?;
            write(&ca_key_path, &pair.1, 0o600)?;
            // A new CA means the old server certificate no longer chains to it.
            let _ = fs::remove_file(dir.join(SERVER_CERT));
            pair
        };

        let server_cert_path = dir.join(SERVER_CERT);
        let server_key_path = dir.join(SERVER_KEY);
        let server_key_pem = if server_key_path.exists() {
            read(&server_key_path)?
        } else {
            let key = KeyPair::generate().map_err(generate)?;
            let pem = key.serialize_pem();
            write(&server_key_path, &pem, 0o600)?;
            let _ = fs::remove_file(&server_cert_path);
            pem
        };
        let reusable = server_cert_path.exists() && {
            let pem = read(&server_cert_path)?;
            days_left(&pem).is_some_and(|d| d > RENEW_BEFORE_DAYS) && covers_hosts(&pem, &hosts)
        };
        let server_cert_pem = if reusable {
            read(&server_cert_path)?
        } else {
            let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(generate)?;
            let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, &ca_key).map_err(generate)?;
            let key = KeyPair::from_pem(&server_key_pem).map_err(generate)?;
            let mut params = CertificateParams::new(hosts.clone()).map_err(generate)?;
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, hosts.last().map_or("localhost", |h| h));
            params.distinguished_name = name;
            params.is_ca = IsCa::ExplicitNoCa;
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.use_authority_key_identifier_extension = true;
            validity(&mut params, 397);
            let cert = params.signed_by(&key, &issuer).map_err(generate)?;
            let pem = cert.pem();
            write(&server_cert_path, &pem, 0o644)?;
            pem
        };
        let pin = pin_of_pem(&server_cert_pem).map_err(TlsError::Generate)?;
        Ok(TlsMaterial {
            cert_chain_pem: format!("{server_cert_pem}{ca_cert_pem}"),
            key_pem: server_key_pem,
            pin,
            ca_file: Some(ca_cert_path),
        })
    }
}

/// `sha256/<base64>` of the SubjectPublicKeyInfo of the first certificate in `pem_text`.
pub fn pin_of_pem(pem_text: &str) -> Result<String, String> {
    let blocks = pem::parse_many(pem_text).map_err(|e| format!("not PEM: {e}"))?;
    let first = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or_else(|| "no -----BEGIN CERTIFICATE----- block".to_owned())?;
    pin_of_der(first.contents())
}

/// `sha256/<base64>` of the SubjectPublicKeyInfo of a DER certificate.
pub fn pin_of_der(der: &[u8]) -> Result<String, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    Ok(format!(
        "sha256/{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki))
    ))
}

fn days_left(pem_text: &str) -> Option<i64> {
    let block = pem::parse(pem_text).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(block.contents()).ok()?;
    let not_after = cert.validity().not_after.timestamp();
    Some((not_after - time::OffsetDateTime::now_utc().unix_timestamp()) / 86_400)
}

fn covers_hosts(pem_text: &str, hosts: &[String]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok(block) = pem::parse(pem_text) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(block.contents()) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    hosts.iter().all(|h| names.iter().any(|n| n == h))
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

fn generate(error: rcgen::Error) -> TlsError {
    TlsError::Generate(error.to_string())
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> TlsError {
    let path = path.to_path_buf();
    move |source| TlsError::Io {
        action,
        path,
        source,
    }
}

fn read(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(io("cannot read", path))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io("cannot write", path))?;
    file.write_all(text.as_bytes())
        .map_err(io("cannot write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_made_certificate_is_reused_with_the_same_pin() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first =
            TlsMaterial::load(None, None, dir.path(), Some("kb.example.com")).expect("made");
        let second =
            TlsMaterial::load(None, None, dir.path(), Some("kb.example.com")).expect("reused");
        assert_eq!(first.pin, second.pin);
        assert_eq!(first.cert_chain_pem, second.cert_chain_pem);
        // A new public host re-issues the certificate but keeps the key, hence the pin.
        let third = TlsMaterial::load(None, None, dir.path(), Some("other.example.com"))
            .expect("re-issued");
        assert_ne!(first.cert_chain_pem, third.cert_chain_pem);
        assert_eq!(first.pin, third.pin);
    }

    #[test]
    fn pin_is_sha256_of_the_spki() {
        // Independent computation: the SPKI DER as rcgen exports the public key.
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        let spki = pem::parse(key.public_key_pem()).expect("SPKI PEM");
        assert_eq!(spki.tag(), "PUBLIC KEY");
        let expected = format!(
            "sha256/{}",
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(spki.contents()))
        );
        assert_eq!(pin_of_pem(&cert.pem()).expect("pin"), expected);
    }

    #[test]
    fn half_configured_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let error = TlsMaterial::load(Some(Path::new("/x.pem")), None, dir.path(), None)
            .expect_err("refused");
        assert!(matches!(error, TlsError::HalfConfigured));
    }
}
