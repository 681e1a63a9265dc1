//! App credentials: a client secret, or an X.509 certificate with its RSA private key.
//!
//! [`CertificateCredential::from_pem`] takes what admins actually paste: certificate and key
//! in one text in either order (or two texts joined), PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8
//! (`PRIVATE KEY`) keys, Windows line ends, a chain after the leaf. It refuses encrypted and
//! non-RSA keys with a message saying how to fix them, checks that the key belongs to the
//! certificate and that the certificate is within its validity, and reports certificates that
//! expire within 30 days as a [`CertificateWarning`].
//!
//! Secrets never appear in `Debug` output or logs.

use std::fmt;

use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{Duration as TimeDuration, OffsetDateTime};

/// How far ahead of expiry a certificate is reported as expiring soon.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";

const DECRYPT_ADVICE: &str = "decrypt it with `openssl pkey -in encrypted-key.pem -out key.pem` \
     (OpenSSL asks for the passphrase) and provide key.pem instead";
const RSA_ADVICE: &str = "Entra client assertions are signed with RSA: create an RSA certificate, \
     e.g. `openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 365 -subj /CN=keybridge`, \
     and upload cert.pem under App registrations > Certificates & secrets";

/// Why a credential cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// The client secret is empty.
    #[error(
        "the client secret is empty: paste the secret's Value from App registrations > Certificates & secrets"
    )]
    EmptySecret,
    /// The text holds no PEM block at all.
    #[error(
        "no PEM block (-----BEGIN ...-----) was found: provide the certificate and private key in PEM form \
         (a .pfx/.p12 file converts with `openssl pkcs12 -in file.pfx -nodes -out both.pem`)"
    )]
    NoPem,
    /// A PEM block is damaged.
    #[error("the PEM text is damaged: {0}")]
    InvalidPem(String),
    /// No certificate block.
    #[error("no certificate (-----BEGIN CERTIFICATE-----) was found next to the private key")]
    NoCertificate,
    /// No private key block.
    #[error(
        "no private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----) was found{0}"
    )]
    NoPrivateKey(&'static str),
    /// More than one private key.
    #[error("{0} private keys were found: provide exactly one, the key of the certificate")]
    SeveralPrivateKeys(usize),
    /// The key is encrypted.
    #[error("the private key is encrypted with a passphrase ({kind}); keybridge needs it unencrypted: {advice}", advice = DECRYPT_ADVICE)]
    EncryptedKey {
        /// Which encrypted form was seen.
        kind: &'static str,
    },
    /// The key (or certificate) is not RSA.
    #[error("the {what} is {algorithm}, not RSA; {advice}", advice = RSA_ADVICE)]
    NotRsa {
        /// "private key" or "certificate".
        what: &'static str,
        /// The algorithm found.
        algorithm: String,
    },
    /// The key does not parse or is refused (e.g. shorter than 2048 bits).
    #[error("the RSA private key is unusable ({0}); it must be an RSA key of 2048 bits or more")]
    InvalidKey(String),
    /// The certificate does not parse.
    #[error("the certificate cannot be read: {0}")]
    InvalidCertificate(String),
    /// No certificate in the text belongs to the key.
    #[error(
        "the private key does not belong to the certificate{0}: provide the key that was created with \
         this certificate"
    )]
    KeyDoesNotMatch(String),
    /// The certificate's validity starts in the future.
    #[error(
        "the certificate is not valid before {not_before}: check this server's clock or use a current certificate"
    )]
    NotYetValid {
        /// Start of validity.
        not_before: OffsetDateTime,
    },
    /// The certificate has expired.
    #[error(
        "the certificate expired on {not_after}: create a new certificate, upload it to the app registration \
         and update the integration"
    )]
    Expired {
        /// End of validity.
        not_after: OffsetDateTime,
    },
    /// The client assertion could not be signed.
    #[error("could not sign the client assertion: {0}")]
    Signing(String),
}

/// A client secret's value. `Debug` shows only that one is set.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

impl ClientSecret {
    /// Wraps a secret value (surrounding whitespace, e.g. from copy and paste, is removed).
    pub fn new(value: impl Into<String>) -> Result<Self, CredentialError> {
        let value = value.into();
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(CredentialError::EmptySecret);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// How the app proves its identity to the token endpoint.
#[derive(Debug, Clone)]
pub enum ClientCredential {
    /// OAuth client secret.
    Secret(ClientSecret),
    /// Certificate + private key: a signed JWT client assertion.
    Certificate(Box<CertificateCredential>),
}

impl ClientCredential {
    /// A client-secret credential.
    pub fn secret(value: impl Into<String>) -> Result<Self, CredentialError> {
        Ok(Self::Secret(ClientSecret::new(value)?))
    }

    /// A certificate credential from PEM text holding certificate and key (either order).
    pub fn certificate_pem(pem: &str) -> Result<Self, CredentialError> {
        Ok(Self::Certificate(Box::new(
            CertificateCredential::from_pem(pem)?,
        )))
    }
}

/// The signature algorithm of the client assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlgorithm {
    /// RSASSA-PSS with SHA-256 and an `x5t#S256` header (current Microsoft docs).
    #[default]
    Ps256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 and an `x5t` (SHA-1) header (older docs, still accepted).
    Rs256,
}

/// A certificate that expires soon: show it to the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateWarning {
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Whole days left.
    pub days_left: i64,
}

impl fmt::Display for CertificateWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the app's certificate expires on {} ({} days left): upload a new certificate to the app \
             registration and update the integration before then",
            self.not_after.date(),
            self.days_left
        )
    }
}

/// A certificate with its matching RSA private key. `Debug` never shows the key.
#[derive(Clone)]
pub struct CertificateCredential {
    certificate_der: Vec<u8>,
    /// PKCS#1 `RSAPrivateKey` DER, the form the JWT signer takes.
    key_pkcs1_der: Vec<u8>,
    subject: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("subject", &self.subject)
            .field("not_after", &self.not_after)
            .field("x5t#S256", &self.thumbprint_sha256())
            .field("private_key", &"<redacted>")
            .finish()
    }
}

impl CertificateCredential {
    /// Reads certificate and private key from PEM text (either order; two files may simply be
    /// joined) and checks them against the current time.
    pub fn from_pem(pem_text: &str) -> Result<Self, CredentialError> {
        Self::from_pem_at(pem_text, OffsetDateTime::now_utc())
    }

    /// Reads a certificate and a private key given as two texts (either may hold either).
    pub fn from_pem_parts(first: &str, second: &str) -> Result<Self, CredentialError> {
        Self::from_pem(&format!("{first}\n{second}"))
    }

    /// [`Self::from_pem`] with the validity checked at `now`.
    pub fn from_pem_at(pem_text: &str, now: OffsetDateTime) -> Result<Self, CredentialError> {
        let blocks = pem::parse_many(pem_text.as_bytes())
            .map_err(|e| CredentialError::InvalidPem(e.to_string()))?;
        if blocks.is_empty() {
            return Err(CredentialError::NoPem);
        }
        let mut certificates = Vec::new();
        // Every key is kept as PKCS#1 `RSAPrivateKey` DER.
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut saw_public_key = false;
        for block in &blocks {
            match block.tag() {
                "CERTIFICATE" | "X509 CERTIFICATE" => certificates.push(block.contents().to_vec()),
                "RSA PRIVATE KEY" => {
                    let encrypted = block
                        .headers()
                        .get("Proc-Type")
                        .is_some_and(|v| v.contains("ENCRYPTED"));
                    if encrypted {
                        return Err(CredentialError::EncryptedKey {
                            kind: "PEM Proc-Type: 4,ENCRYPTED",
                        });
                    }
                    keys.push(block.contents().to_vec());
                }
                "PRIVATE KEY" => keys.push(pkcs8_to_pkcs1(block.contents())?),
                "ENCRYPTED PRIVATE KEY" => {
                    return Err(CredentialError::EncryptedKey {
                        kind: "PKCS#8 ENCRYPTED PRIVATE KEY",
                    });
                }
                "EC PRIVATE KEY" => {
                    return Err(CredentialError::NotRsa {
                        what: "private key",
                        algorithm: "an EC key".to_owned(),
                    });
                }
                "PUBLIC KEY" | "RSA PUBLIC KEY" => saw_public_key = true,
                _ => {}
            }
        }
        let key_der = match keys.len() {
            0 if saw_public_key => {
                return Err(CredentialError::NoPrivateKey(
                    " (only a public key: the private key is the file created together with the certificate)",
                ));
            }
            0 => return Err(CredentialError::NoPrivateKey("")),
            1 => keys.remove(0),
            n => return Err(CredentialError::SeveralPrivateKeys(n)),
        };
        if certificates.is_empty() {
            return Err(CredentialError::NoCertificate);
        }
        let key_pair = RsaKeyPair::from_der(&key_der)
            .map_err(|e| CredentialError::InvalidKey(e.to_string()))?;
        let mut subjects = Vec::new();
        for certificate_der in certificates {
            let (subject, not_before, not_after, spki) = read_certificate(&certificate_der)?;
            if key_matches(&key_pair, &spki) {
                let credential = Self {
                    certificate_der,
                    key_pkcs1_der: key_der,
                    subject,
                    not_before,
                    not_after,
                };
                credential.check_validity(now)?;
                return Ok(credential);
            }
            subjects.push(subject);
        }
        Err(CredentialError::KeyDoesNotMatch(format!(
            " ({})",
            subjects.join("; ")
        )))
    }

    /// Errors when the certificate is not valid at `now`.
    pub fn check_validity(&self, now: OffsetDateTime) -> Result<(), CredentialError> {
        if now < self.not_before {
            return Err(CredentialError::NotYetValid {
                not_before: self.not_before,
            });
        }
        if now > self.not_after {
            return Err(CredentialError::Expired {
                not_after: self.not_after,
            });
        }
        Ok(())
    }

    /// A warning when the certificate expires within [`EXPIRY_WARNING_DAYS`] of `now`.
    pub fn expiry_warning(&self, now: OffsetDateTime) -> Option<CertificateWarning> {
        let left = self.not_after - now;
        (left < TimeDuration::days(EXPIRY_WARNING_DAYS)).then(|| CertificateWarning {
            not_after: self.not_after,
            days_left: left.whole_days(),
        })
    }

    /// The certificate's subject, e.g. `CN=keybridge`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Start of validity.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The certificate in DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// `x5t`: base64url SHA-1 thumbprint of the certificate.
    pub fn thumbprint_sha1(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
                &self.certificate_der,
            )
            .as_ref(),
        )
    }

    /// `x5t#S256`: base64url SHA-256 thumbprint of the certificate.
    pub fn thumbprint_sha256(&self) -> String {
        URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.certificate_der).as_ref(),
        )
    }

    /// The signed client assertion (entra.md §1.3) for `audience` (the token endpoint URL).
    pub fn client_assertion(
        &self,
        client_id: &str,
        audience: &str,
        algorithm: AssertionAlgorithm,
        now: OffsetDateTime,
    ) -> Result<String, CredentialError> {
        #[derive(serde::Serialize)]
        struct Claims<'a> {
            aud: &'a str,
            iss: &'a str,
            sub: &'a str,
            jti: String,
            nbf: i64,
            iat: i64,
            exp: i64,
        }
        let mut header = match algorithm {
            AssertionAlgorithm::Ps256 => jsonwebtoken::Header::new(jsonwebtoken::Algorithm::PS256),
            AssertionAlgorithm::Rs256 => jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        };
        match algorithm {
            AssertionAlgorithm::Ps256 => header.x5t_s256 = Some(self.thumbprint_sha256()),
            AssertionAlgorithm::Rs256 => header.x5t = Some(self.thumbprint_sha1()),
        }
        let issued = now.unix_timestamp();
        let claims = Claims {
            aud: audience,
            iss: client_id,
            sub: client_id,
            jti: uuid::Uuid::new_v4().to_string(),
            nbf: issued,
            iat: issued,
            // Short-lived, as the docs ask (at most 10 minutes after nbf).
            exp: issued + 600,
        };
        let key = jsonwebtoken::EncodingKey::from_rsa_der(&self.key_pkcs1_der);
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| CredentialError::Signing(e.to_string()))
    }
}

/// Subject, validity and the SubjectPublicKeyInfo's key bits of an RSA certificate.
fn read_certificate(
    der: &[u8],
) -> Result<(String, OffsetDateTime, OffsetDateTime, Vec<u8>), CredentialError> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CredentialError::InvalidCertificate(e.to_string()))?;
    let algorithm = certificate.public_key().algorithm.algorithm.to_id_string();
    if algorithm != OID_RSA_ENCRYPTION {
        return Err(CredentialError::NotRsa {
            what: "certificate",
            algorithm: algorithm_name(&algorithm),
        });
    }
    let validity = certificate.validity();
    Ok((
        certificate.subject().to_string(),
        validity.not_before.to_datetime(),
        validity.not_after.to_datetime(),
        certificate.public_key().subject_public_key.data.to_vec(),
    ))
}

/// Proves that the key belongs to the certificate: a signature made with the key verifies
/// under the certificate's public key.
fn key_matches(key_pair: &RsaKeyPair, certificate_rsa_public_key: &[u8]) -> bool {
    if key_pair.public_key().as_ref() == certificate_rsa_public_key {
        return true;
    }
    let message = b"keybridge key/certificate match check";
    let mut signature_bytes = vec![0; key_pair.public_modulus_len()];
    let rng = aws_lc_rs::rand::SystemRandom::new();
    if key_pair
        .sign(
            &signature::RSA_PKCS1_SHA256,
            &rng,
            message,
            &mut signature_bytes,
        )
        .is_err()
    {
        return false;
    }
    UnparsedPublicKey::new(
        &signature::RSA_PKCS1_2048_8192_SHA256,
        certificate_rsa_public_key,
    )
    .verify(message, &signature_bytes)
    .is_ok()
}

/// Unwraps the PKCS#1 `RSAPrivateKey` from a PKCS#8 `PrivateKeyInfo`, refusing other algorithms.
fn pkcs8_to_pkcs1(der: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let damaged =
        |what: &str| CredentialError::InvalidKey(format!("PKCS#8 structure damaged: {what}"));
    let (_, info) = x509_parser::der_parser::parse_der(der).map_err(|_| damaged("not DER"))?;
    let fields = info.as_sequence().map_err(|_| damaged("not a SEQUENCE"))?;
    let algorithm = fields
        .get(1)
        .and_then(|a| a.as_sequence().ok())
        .and_then(|a| a.first())
        .and_then(|oid| oid.as_oid().ok())
        .map(|oid| oid.to_id_string())
        .ok_or_else(|| damaged("no algorithm identifier"))?;
    if algorithm != OID_RSA_ENCRYPTION {
        return Err(CredentialError::NotRsa {
            what: "private key",
            algorithm: algorithm_name(&algorithm),
        });
    }
    let key = fields
        .get(2)
        .and_then(|k| k.as_slice().ok())
        .ok_or_else(|| damaged("no private key octets"))?;
    Ok(key.to_vec())
}

fn algorithm_name(oid: &str) -> String {
    match oid {
        OID_EC_PUBLIC_KEY => "an EC key".to_owned(),
        OID_ED25519 => "an Ed25519 key".to_owned(),
        OID_RSASSA_PSS => "an RSASSA-PSS-only key (use a plain rsaEncryption key)".to_owned(),
        other => format!("an unsupported key type (OID {other})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    const RSA_PKCS8: &str = include_str!("testdata/rsa-pkcs8.pem");
    const RSA_PKCS1: &str = include_str!("testdata/rsa-pkcs1.pem");
    const RSA_PKCS8_ENCRYPTED: &str = include_str!("testdata/rsa-pkcs8-encrypted.pem");
    const RSA_PKCS1_ENCRYPTED: &str = include_str!("testdata/rsa-pkcs1-encrypted.pem");
    const OTHER_RSA_PKCS8: &str = include_str!("testdata/other-rsa-pkcs8.pem");
    const EC_PKCS8: &str = include_str!("testdata/ec-pkcs8.pem");
    const EC_SEC1: &str = include_str!("testdata/ec-sec1.pem");

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    /// A certificate for `key_pem` valid from `from` to `to` days relative to now.
    fn certificate(key_pem: &str, from_days: i64, to_days: i64) -> String {
        let key =
            KeyPair::from_pem_and_sign_algo(key_pem, &rcgen::PKCS_RSA_SHA256).expect("test key");
        let mut params = CertificateParams::new(vec!["keybridge.test".to_owned()]).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "keybridge test app");
        params.not_before = now() + TimeDuration::days(from_days);
        params.not_after = now() + TimeDuration::days(to_days);
        params.self_signed(&key).expect("self-signed").pem()
    }

    #[test]
    fn certificate_and_key_in_either_order_and_both_key_forms() {
        let cert = certificate(RSA_PKCS8, -1, 365);
        for text in [
            format!("{cert}{RSA_PKCS8}"),
            format!("{RSA_PKCS8}\n{cert}"),
            format!("{cert}{RSA_PKCS1}"),
            format!("{RSA_PKCS1}{cert}"),
            format!("{cert}{RSA_PKCS1}").replace('\n', "\r\n"),
        ] {
            let credential = CertificateCredential::from_pem(&text).expect("usable credential");
            assert!(credential.subject().contains("keybridge test app"));
        }
        let parts = CertificateCredential::from_pem_parts(RSA_PKCS1, &cert).expect("two texts");
        assert!(parts.expiry_warning(now()).is_none());
    }

    #[test]
    fn the_leaf_is_found_in_a_chain() {
        let leaf = certificate(RSA_PKCS8, -1, 365);
        let other = certificate(OTHER_RSA_PKCS8, -1, 365);
        let credential =
            CertificateCredential::from_pem(&format!("{other}{leaf}{RSA_PKCS8}")).expect("leaf");
        let (_, leaf_der) = x509_parser::pem::parse_x509_pem(leaf.as_bytes()).expect("pem");
        assert_eq!(credential.certificate_der(), leaf_der.contents.as_slice());
    }

    #[test]
    fn encrypted_keys_are_refused_with_the_openssl_command() {
        let cert = certificate(RSA_PKCS8, -1, 365);
        for key in [RSA_PKCS8_ENCRYPTED, RSA_PKCS1_ENCRYPTED] {
            let error =
                CertificateCredential::from_pem(&format!("{cert}{key}")).expect_err("encrypted");
            assert!(
                matches!(error, CredentialError::EncryptedKey { .. }),
                "{error:?}"
            );
            let text = error.to_string();
            assert!(
                text.contains("encrypted") && text.contains("openssl pkey"),
                "{text}"
            );
        }
    }

    #[test]
    fn ec_keys_are_refused_saying_rsa_is_needed() {
        let cert = certificate(RSA_PKCS8, -1, 365);
        for key in [EC_PKCS8, EC_SEC1] {
            let error = CertificateCredential::from_pem(&format!("{cert}{key}")).expect_err("EC");
            assert!(
                matches!(
                    error,
                    CredentialError::NotRsa {
                        what: "private key",
                        ..
                    }
                ),
                "{error:?}"
            );
            assert!(error.to_string().contains("an EC key"), "{error}");
        }
        let ec_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec key");
        let ec_cert = CertificateParams::new(vec!["x".to_owned()])
            .expect("params")
            .self_signed(&ec_key)
            .expect("cert")
            .pem();
        let error =
            CertificateCredential::from_pem(&format!("{ec_cert}{RSA_PKCS8}")).expect_err("EC cert");
        assert!(
            matches!(
                error,
                CredentialError::NotRsa {
                    what: "certificate",
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let cert = certificate(OTHER_RSA_PKCS8, -1, 365);
        let error =
            CertificateCredential::from_pem(&format!("{cert}{RSA_PKCS1}")).expect_err("mismatch");
        assert!(
            matches!(error, CredentialError::KeyDoesNotMatch(_)),
            "{error:?}"
        );
        assert!(error.to_string().contains("keybridge test app"), "{error}");
    }

    #[test]
    fn missing_parts_are_named() {
        let cert = certificate(RSA_PKCS8, -1, 365);
        assert_eq!(
            CertificateCredential::from_pem(&cert).unwrap_err(),
            CredentialError::NoPrivateKey("")
        );
        assert_eq!(
            CertificateCredential::from_pem(RSA_PKCS8).unwrap_err(),
            CredentialError::NoCertificate
        );
        assert_eq!(
            CertificateCredential::from_pem("hello").unwrap_err(),
            CredentialError::NoPem
        );
        assert_eq!(
            CertificateCredential::from_pem(&format!("{cert}{RSA_PKCS8}{OTHER_RSA_PKCS8}"))
                .unwrap_err(),
            CredentialError::SeveralPrivateKeys(2)
        );
        let damaged = RSA_PKCS8.replace("MII", "!!!");
        assert!(matches!(
            CertificateCredential::from_pem(&format!("{cert}{damaged}")).unwrap_err(),
            CredentialError::InvalidPem(_)
        ));
    }

    #[test]
    fn validity_is_checked_and_near_expiry_warned() {
        let expired = certificate(RSA_PKCS8, -400, -1);
        let error =
            CertificateCredential::from_pem(&format!("{expired}{RSA_PKCS8}")).expect_err("expired");
        assert!(
            matches!(error, CredentialError::Expired { .. }),
            "{error:?}"
        );
        let future = certificate(RSA_PKCS8, 2, 400);
        let error =
            CertificateCredential::from_pem(&format!("{future}{RSA_PKCS8}")).expect_err("future");
        assert!(
            matches!(error, CredentialError::NotYetValid { .. }),
            "{error:?}"
        );
        let soon = certificate(RSA_PKCS8, -300, 10);
        let credential =
            CertificateCredential::from_pem(&format!("{soon}{RSA_PKCS8}")).expect("still valid");
        let warning = credential
            .expiry_warning(now())
            .expect("expires within 30 days");
        assert!((9..=10).contains(&warning.days_left), "{warning:?}");
        assert!(warning.to_string().contains("upload a new certificate"));
    }

    #[test]
    fn secrets_are_redacted() {
        let secret = ClientCredential::secret("  s3cr3t-value~  ").expect("secret");
        let shown = format!("{secret:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        let ClientCredential::Secret(inner) = &secret else {
            panic!("secret")
        };
        assert_eq!(inner.expose(), "s3cr3t-value~");
        assert_eq!(
            ClientSecret::new(" \n").unwrap_err(),
            CredentialError::EmptySecret
        );
        let cert = certificate(RSA_PKCS8, -1, 365);
        let credential =
            ClientCredential::certificate_pem(&format!("{cert}{RSA_PKCS1}")).expect("cert");
        let shown = format!("{credential:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("MII"),
            "{shown}"
        );
    }

    fn decode_part(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("json")
    }

    #[test]
    fn ps256_assertion_has_the_documented_header_and_claims_and_verifies() {
        let cert = certificate(RSA_PKCS8, -1, 365);
        let credential =
            CertificateCredential::from_pem(&format!("{cert}{RSA_PKCS1}")).expect("cert");
        let audience = "https://login.microsoftonline.com/tenant-guid/oauth2/v2.0/token";
        let issued = now();
        let jwt = credential
            .client_assertion("client-guid", audience, AssertionAlgorithm::Ps256, issued)
            .expect("assertion");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["typ"], "JWT");
        let (_, der) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).expect("pem");
        let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der.contents);
        assert_eq!(header["x5t#S256"], URL_SAFE_NO_PAD.encode(sha256.as_ref()));
        assert!(header.get("x5t").is_none());
        let claims = decode_part(parts[1]);
        assert_eq!(claims["aud"], audience);
        assert_eq!(claims["iss"], "client-guid");
        assert_eq!(claims["sub"], "client-guid");
        assert!(uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).is_ok());
        assert_eq!(claims["nbf"], issued.unix_timestamp());
        assert_eq!(claims["iat"], issued.unix_timestamp());
        let lifetime = claims["exp"].as_i64().expect("exp") - issued.unix_timestamp();
        assert!((60..=600).contains(&lifetime), "{lifetime}");
        // Verify the PSS signature with the certificate's key, independently of the JWT library.
        let (_, parsed) = x509_parser::parse_x509_certificate(&der.contents).expect("cert");
        let public_key = parsed.public_key().subject_public_key.data.to_vec();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&signature::RSA_PSS_2048_8192_SHA256, &public_key)
            .verify(signed.as_bytes(), &signature)
            .expect("PS256 signature verifies");
    }

    #[test]
    fn rs256_assertion_uses_x5t() {
        let cert = certificate(RSA_PKCS8, -1, 365);
        let credential =
            CertificateCredential::from_pem(&format!("{cert}{RSA_PKCS8}")).expect("cert");
        let jwt = credential
            .client_assertion(
                "c",
                "https://x/t/oauth2/v2.0/token",
                AssertionAlgorithm::Rs256,
                now(),
            )
            .expect("assertion");
        let parts: Vec<&str> = jwt.split('.').collect();
        let header = decode_part(parts[0]);
        assert_eq!(header["alg"], "RS256");
        let (_, der) = x509_parser::pem::parse_x509_pem(cert.as_bytes()).expect("pem");
        let sha1 =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &der.contents);
        assert_eq!(header["x5t"], URL_SAFE_NO_PAD.encode(sha1.as_ref()));
        assert!(header.get("x5t#S256").is_none());
        let (_, parsed) = x509_parser::parse_x509_certificate(&der.contents).expect("cert");
        let public_key = parsed.public_key().subject_public_key.data.to_vec();
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("signature");
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public_key)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("RS256 signature verifies");
    }
}
