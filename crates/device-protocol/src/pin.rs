//! The server's TLS pin: SHA-256 of its certificate's SubjectPublicKeyInfo.
//!
//! The pin names the server's *key*, not its certificate, so it survives certificate renewal
//! with the same key. Its text form in this protocol is unpadded base64url of the 32 bytes
//! (43 characters); [`TlsPin::parse`] also reads the RFC 7469 form `sha256/<base64>` (standard
//! alphabet, padded) that `keybridge serve` logs and writes in `keybridge.json`.
//!
//! How the phone uses it with rustls: a custom `rustls::client::danger::ServerCertVerifier`
//! whose `verify_server_cert` computes [`TlsPin::of_certificate_der`] of the end-entity
//! certificate and accepts the connection only when [`TlsPin::matches`] the pin from the
//! pairing payload (name and chain are not checked: the pin is the trust anchor), while
//! `verify_tls12_signature` / `verify_tls13_signature` delegate to the crypto provider's
//! `verify_tls1x_signature` so the handshake still proves possession of the pinned key.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::encoding::{b64url, display_safe, from_b64url_exact};

/// Why a pin could not be read or computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    /// The text is not a SHA-256 pin.
    #[error(
        "the TLS pin {given:?} is malformed: expected 43 characters of unpadded base64url (SHA-256 of the server certificate's SubjectPublicKeyInfo), or `sha256/` + base64"
    )]
    Malformed {
        /// The text given (shortened).
        given: String,
    },
    /// The bytes are not a DER X.509 certificate.
    #[error("cannot compute a TLS pin: the certificate is not valid DER X.509 ({reason})")]
    BadCertificate {
        /// The parser's complaint.
        reason: String,
    },
}

/// SHA-256 of a server certificate's SubjectPublicKeyInfo.
#[derive(Clone, Copy, Eq)]
pub struct TlsPin([u8; 32]);

impl TlsPin {
    /// The pin of raw SubjectPublicKeyInfo DER bytes.
    pub fn of_spki_der(spki: &[u8]) -> TlsPin {
        TlsPin(Sha256::digest(spki).into())
    }

    /// The pin of a DER X.509 certificate (its SubjectPublicKeyInfo, exactly as encoded in it).
    pub fn of_certificate_der(certificate: &[u8]) -> Result<TlsPin, PinError> {
        let (rest, parsed) = x509_parser::parse_x509_certificate(certificate).map_err(|error| {
            PinError::BadCertificate {
                reason: error.to_string(),
            }
        })?;
        if !rest.is_empty() {
            return Err(PinError::BadCertificate {
                reason: format!("{} bytes after the certificate", rest.len()),
            });
        }
        Ok(TlsPin::of_spki_der(parsed.public_key().raw))
    }

    /// The pin from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> TlsPin {
        TlsPin(bytes)
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads the base64url form or the RFC 7469 `sha256/<base64>` form.
    pub fn parse(text: &str) -> Result<TlsPin, PinError> {
        let bad = || PinError::Malformed {
            given: display_safe(text, 80),
        };
        if let Some(rfc7469) = text.strip_prefix("sha256/") {
            let bytes = STANDARD.decode(rfc7469).map_err(|_| bad())?;
            return bytes.try_into().map(TlsPin).map_err(|_| bad());
        }
        from_b64url_exact::<32>(text).map(TlsPin).ok_or_else(bad)
    }

    /// The protocol's text form: unpadded base64url.
    pub fn to_base64url(&self) -> String {
        b64url(&self.0)
    }

    /// The RFC 7469 form `sha256/<base64>`, as `keybridge serve` prints it.
    pub fn to_rfc7469(&self) -> String {
        format!("sha256/{}", STANDARD.encode(self.0))
    }

    /// Constant-time comparison.
    pub fn matches(&self, other: &TlsPin) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// Whether the DER certificate carries the pinned key (constant-time comparison).
    pub fn matches_certificate(&self, certificate: &[u8]) -> Result<bool, PinError> {
        Ok(self.matches(&TlsPin::of_certificate_der(certificate)?))
    }
}

impl PartialEq for TlsPin {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other)
    }
}

impl fmt::Debug for TlsPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TlsPin({})", self.to_base64url())
    }
}

impl fmt::Display for TlsPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl Serialize for TlsPin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for TlsPin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TlsPin::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate() -> (Vec<u8>, Vec<u8>) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("certificate");
        (
            cert.der().to_vec(),
            rcgen::PublicKeyData::subject_public_key_info(&key),
        )
    }

    #[test]
    fn pin_is_sha256_of_the_certificates_spki() {
        let (der, spki) = certificate();
        let pin = TlsPin::of_certificate_der(&der).expect("pin");
        let expected: [u8; 32] = Sha256::digest(&spki).into();
        assert_eq!(pin.as_bytes(), &expected);
        assert_eq!(pin.matches_certificate(&der), Ok(true));
        let (other, _) = certificate();
        assert_eq!(pin.matches_certificate(&other), Ok(false));
    }

    #[test]
    fn both_text_forms_parse_to_the_same_pin() {
        let pin = TlsPin::from_bytes([0xfb; 32]);
        assert_eq!(pin.to_base64url(), "-_v7".repeat(10) + "-_s");
        assert_eq!(TlsPin::parse(&pin.to_base64url()), Ok(pin));
        assert_eq!(
            pin.to_rfc7469(),
            format!("sha256/{}", "+/v7".repeat(10) + "+/s=")
        );
        assert_eq!(TlsPin::parse(&pin.to_rfc7469()), Ok(pin));
    }

    #[test]
    fn malformed_pins_are_refused() {
        for text in [
            "",
            "abc",
            "sha256/abc",
            &"A".repeat(44),
            "sha1/AAAA",
            &"+".repeat(43),
        ] {
            assert!(
                matches!(TlsPin::parse(text), Err(PinError::Malformed { .. })),
                "{text:?} must be refused"
            );
        }
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(matches!(
            TlsPin::of_certificate_der(b"not a certificate"),
            Err(PinError::BadCertificate { .. })
        ));
        let (mut der, _) = certificate();
        der.push(0);
        assert!(matches!(
            TlsPin::of_certificate_der(&der),
            Err(PinError::BadCertificate { .. })
        ));
    }
}
