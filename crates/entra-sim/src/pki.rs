//! The emulator's keys and certificates, created once in the data directory and reused on restart:
//! the test CA and the HTTPS server certificate it signs, the RSA key that signs access tokens
//! (published in the JWKS with a self-signed certificate, as Entra publishes `x5c`), and the app
//! registration's certificate credential (certificate + private key PEM for clients).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_RSA_SHA256,
};
use sha1::Digest as _;
use time::{Duration, OffsetDateTime};

use crate::error::StartError;

/// File names inside the data directory.
pub(crate) const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server-key.pem";
const SIGNING_CERT: &str = "token-signing.pem";
const SIGNING_KEY: &str = "token-signing-key.pem";
/// The app registration's certificate credential.
pub(crate) const CLIENT_CERT: &str = "client-cert.pem";
/// The private key of the app registration's certificate credential.
pub(crate) const CLIENT_KEY: &str = "client-key.pem";

/// Everything the servers need from the key material.
pub(crate) struct Pki {
    pub ca_pem_path: PathBuf,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub signing: SigningKey,
    pub client_cert_pem_path: PathBuf,
    pub client_key_pem_path: PathBuf,
    /// DER of the app's certificate credential (registered on the app at seeding).
    pub client_cert_der: Vec<u8>,
}

/// The RSA key that signs access tokens, with what the JWKS publishes about it.
pub(crate) struct SigningKey {
    pub encoding: jsonwebtoken::EncodingKey,
    pub decoding: jsonwebtoken::DecodingKey,
    /// `kid` and `x5t`: base64url SHA-1 of the certificate, as Entra names its keys.
    pub kid: String,
    pub modulus_b64url: String,
    pub exponent_b64url: String,
    pub cert_b64: String,
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
}

fn write_private(path: &Path, contents: &str) -> Result<(), StartError> {
    use std::io::Write as _;
    // Created owner-only: writing first and restricting afterwards left the key readable by
    // every local user in between.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut file| file.write_all(contents.as_bytes()))
        .map_err(|source| StartError::DataDir {
            path: path.to_path_buf(),
            source,
        })?;
    // A file that already existed keeps its mode on open: restrict it too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| StartError::DataDir {
                path: path.to_path_buf(),
                source,
            },
        )?;
    }
    Ok(())
}

fn write_public(path: &Path, contents: &str) -> Result<(), StartError> {
    std::fs::write(path, contents).map_err(|source| StartError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

fn read(path: &Path) -> Result<String, StartError> {
    std::fs::read_to_string(path).map_err(|source| StartError::DataDir {
        path: path.to_path_buf(),
        source,
    })
}

fn rcgen_err(what: &'static str) -> impl Fn(rcgen::Error) -> StartError {
    move |source| StartError::Certificate {
        what,
        detail: source.to_string(),
    }
}

/// Whether a PEM certificate on disk is still valid for at least a day.
fn still_valid(cert_pem: &str) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()) else {
        return false;
    };
    let Ok(cert) = pem.parse_x509() else {
        return false;
    };
    let tomorrow = OffsetDateTime::now_utc() + Duration::days(1);
    cert.validity().not_after.to_datetime() > tomorrow
}

fn pem_to_der(pem: &str, what: &'static str) -> Result<Vec<u8>, StartError> {
    let (_, parsed) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| StartError::Certificate {
            what,
            detail: e.to_string(),
        })?;
    Ok(parsed.contents)
}

/// Loads the key material from `dir`, creating what is missing or expired.
pub(crate) fn load_or_create(dir: &Path) -> Result<Pki, StartError> {
    let ca_cert_path = dir.join(CA_CERT);
    let ca_key_path = dir.join(CA_KEY);
    let (ca_cert_pem, ca_key_pem) =
        if ca_cert_path.exists() && ca_key_path.exists() && still_valid(&read(&ca_cert_path)?) {
            (read(&ca_cert_path)?, read(&ca_key_path)?)
        } else {
            let key = KeyPair::generate().map_err(rcgen_err("CA key"))?;
            let mut params = CertificateParams::default();
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, "keybridge entra-sim test CA");
            name.push(DnType::OrganizationName, "keybridge entra-sim");
            params.distinguished_name = name;
            params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            validity(&mut params, 3650);
            let cert = params.self_signed(&key).map_err(rcgen_err("CA"))?;
            let pair = (cert.pem(), key.serialize_pem());
            write_public(&ca_cert_path, &pair.0)?;
            write_private(&ca_key_path, &pair.1)?;
            // A new CA invalidates the server certificate signed by the old one.
            let _ = std::fs::remove_file(dir.join(SERVER_CERT));
            pair
        };

    let server_cert_path = dir.join(SERVER_CERT);
    let server_key_path = dir.join(SERVER_KEY);
    let (server_cert_pem, server_key_pem) = if server_cert_path.exists()
        && server_key_path.exists()
        && still_valid(&read(&server_cert_path)?)
    {
        (read(&server_cert_path)?, read(&server_key_path)?)
    } else {
        let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(rcgen_err("CA key"))?;
        let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, &ca_key).map_err(rcgen_err("CA"))?;
        let key = KeyPair::generate().map_err(rcgen_err("server key"))?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(rcgen_err("server certificate"))?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "localhost");
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, 365);
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(rcgen_err("server certificate"))?;
        let pair = (cert.pem(), key.serialize_pem());
        write_public(&server_cert_path, &pair.0)?;
        write_private(&server_key_path, &pair.1)?;
        pair
    };

    let signing_cert_path = dir.join(SIGNING_CERT);
    let signing_key_path = dir.join(SIGNING_KEY);
    let (signing_cert_pem, signing_key_pem) = if signing_cert_path.exists()
        && signing_key_path.exists()
        && still_valid(&read(&signing_cert_path)?)
    {
        (read(&signing_cert_path)?, read(&signing_key_path)?)
    } else {
        let pair = self_signed_rsa("accounts.accesscontrol.windows.net", 730)?;
        write_public(&signing_cert_path, &pair.0)?;
        write_private(&signing_key_path, &pair.1)?;
        pair
    };
    let signing = signing_key(&signing_cert_pem, &signing_key_pem)?;

    let client_cert_path = dir.join(CLIENT_CERT);
    let client_key_path = dir.join(CLIENT_KEY);
    if !(client_cert_path.exists()
        && client_key_path.exists()
        && still_valid(&read(&client_cert_path)?))
    {
        let pair = self_signed_rsa("keybridge entra-sim app credential", 365)?;
        write_public(&client_cert_path, &pair.0)?;
        write_private(&client_key_path, &pair.1)?;
    }
    let client_cert_der = pem_to_der(&read(&client_cert_path)?, "client certificate")?;

    Ok(Pki {
        ca_pem_path: ca_cert_path,
        server_cert_pem,
        server_key_pem,
        signing,
        client_cert_pem_path: client_cert_path,
        client_key_pem_path: client_key_path,
        client_cert_der,
    })
}

/// A self-signed RSA-2048 certificate (the kind an admin uploads to an app registration).
fn self_signed_rsa(common_name: &str, days: i64) -> Result<(String, String), StartError> {
    let key = KeyPair::generate_for(&PKCS_RSA_SHA256).map_err(rcgen_err("RSA key"))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    validity(&mut params, days);
    let cert = params
        .self_signed(&key)
        .map_err(rcgen_err("RSA certificate"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn signing_key(cert_pem: &str, key_pem: &str) -> Result<SigningKey, StartError> {
    let der = pem_to_der(cert_pem, "token signing certificate")?;
    let (modulus, exponent) = rsa_components(&der).ok_or(StartError::Certificate {
        what: "token signing certificate",
        detail: "not an RSA certificate".to_owned(),
    })?;
    let encoding = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.as_bytes()).map_err(|e| {
        StartError::Certificate {
            what: "token signing key",
            detail: e.to_string(),
        }
    })?;
    let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(&modulus, &exponent);
    Ok(SigningKey {
        encoding,
        decoding,
        kid: thumbprint_sha1_b64url(&der),
        modulus_b64url: URL_SAFE_NO_PAD.encode(&modulus),
        exponent_b64url: URL_SAFE_NO_PAD.encode(&exponent),
        cert_b64: STANDARD.encode(&der),
    })
}

/// The RSA modulus and public exponent (big-endian, no leading zero) of a certificate.
pub(crate) fn rsa_components(cert_der: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    match cert.public_key().parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => Some((
            strip_leading_zeros(rsa.modulus),
            strip_leading_zeros(rsa.exponent),
        )),
        _ => None,
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// base64url(SHA-1(DER)), the JOSE `x5t`.
pub(crate) fn thumbprint_sha1_b64url(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(der))
}

/// base64url(SHA-256(DER)), the JOSE `x5t#S256`.
pub(crate) fn thumbprint_sha256_b64url(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}
