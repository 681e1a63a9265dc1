//! Private keys that never leave the device.
//!
//! [`CredentialKey`] (one per passkey) and [`AttestationKey`] (the batch key) wrap a P-256
//! signing key. Neither implements `Serialize`, `Clone` or a getter for the secret scalar; their
//! `Debug` is redacted. Only the key store reads the scalar (crate-private) to encrypt it at rest.

use std::fmt;

use coset::{CborSerializable as _, CoseKeyBuilder, iana};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::error::AuthenticatorError;

/// COSE algorithm identifier of ES256 (ECDSA P-256 with SHA-256), the only one keybridge signs with.
pub const COSE_ALG_ES256: i64 = -7;

/// The P-256 private key of one passkey. Cannot be exported.
pub struct CredentialKey(SigningKey);

/// The batch attestation private key shared by an organisation's devices. Cannot be exported.
pub struct AttestationKey(SigningKey);

macro_rules! secret_key_common {
    ($name:ident) => {
        impl $name {
            /// A fresh random key from the operating system's generator.
            pub fn generate() -> Self {
                Self(SigningKey::random(&mut OsRng))
            }

            /// The public half.
            pub fn public_key(&self) -> PublicKey {
                PublicKey(*self.0.verifying_key())
            }

            /// DER ECDSA signature over `message` (SHA-256 inside, as ES256 requires).
            pub(crate) fn sign_der(&self, message: &[u8]) -> Vec<u8> {
                let signature: Signature = self.0.sign(message);
                signature.to_der().as_bytes().to_vec()
            }

            /// The secret scalar, for the key store's encryption only.
            pub(crate) fn secret_scalar(&self) -> Zeroizing<[u8; 32]> {
                Zeroizing::new(self.0.to_bytes().into())
            }

            /// Rebuilds a key from a scalar read back from the key store.
            pub(crate) fn from_secret_scalar(scalar: &[u8]) -> Option<Self> {
                SigningKey::from_slice(scalar).ok().map(Self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name))
                    .field(&"<redacted>")
                    .finish()
            }
        }
    };
}

secret_key_common!(CredentialKey);
secret_key_common!(AttestationKey);

impl CredentialKey {
    /// Raw r‖s signature (64 bytes), as JWS ES256 wants; used for nothing else.
    #[cfg(test)]
    pub(crate) fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        let signature: Signature = self.0.sign(message);
        signature.to_bytes().into()
    }
}

impl AttestationKey {
    /// Reads a PKCS#8 PEM private key (what `keybridge attestation init` writes as `batch-key.pem`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, AuthenticatorError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|error| AuthenticatorError::Crypto {
                reason: format!("the batch key is not a PKCS#8 P-256 private key ({error})"),
            })
    }

    /// PKCS#8 DER for rcgen, only while certificates are being issued (never written out by
    /// the device).
    pub(crate) fn pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, AuthenticatorError> {
        self.0
            .to_pkcs8_der()
            .map(|document| Zeroizing::new(document.as_bytes().to_vec()))
            .map_err(|error| AuthenticatorError::Crypto {
                reason: format!("could not encode the key as PKCS#8 ({error})"),
            })
    }

    /// PKCS#8 PEM, used only by `keybridge attestation init` to hand the batch key to the
    /// organisation's devices.
    pub(crate) fn pkcs8_pem(&self) -> Result<Zeroizing<String>, AuthenticatorError> {
        use p256::pkcs8::LineEnding;
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| Zeroizing::new(pem.as_str().to_owned()))
            .map_err(|error| AuthenticatorError::Crypto {
                reason: format!("could not encode the key as PKCS#8 PEM ({error})"),
            })
    }

    /// JWS ES256 signature (raw r‖s, 64 bytes) over `message`.
    pub(crate) fn sign_jws(&self, message: &[u8]) -> [u8; 64] {
        let signature: Signature = self.0.sign(message);
        signature.to_bytes().into()
    }
}

/// A P-256 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The uncompressed point's x and y coordinates (32 bytes each).
    pub fn coordinates(&self) -> ([u8; 32], [u8; 32]) {
        let point = self.0.to_encoded_point(false);
        let mut x = [0u8; 32];
        let mut y = [0u8; 32];
        // An uncompressed encoded point of a valid key always carries both coordinates.
        if let (Some(px), Some(py)) = (point.x(), point.y()) {
            x.copy_from_slice(px);
            y.copy_from_slice(py);
        }
        (x, y)
    }

    /// The COSE_Key encoding used in attested credential data:
    /// `{1: 2, 3: -7, -1: 1, -2: x, -3: y}` (77 bytes).
    pub fn to_cose_key(&self) -> Result<Vec<u8>, AuthenticatorError> {
        let (x, y) = self.coordinates();
        CoseKeyBuilder::new_ec2_pub_key(iana::EllipticCurve::P_256, x.to_vec(), y.to_vec())
            .algorithm(iana::Algorithm::ES256)
            .build()
            .to_vec()
            .map_err(|error| AuthenticatorError::Encoding {
                reason: format!("could not encode the COSE key ({error})"),
            })
    }

    /// The underlying verifying key (for tests and certificate issuance).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (x, _) = self.coordinates();
        write!(f, "PublicKey(P-256, x={})", crate::encoding::b64url(&x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier as _;

    #[test]
    fn debug_never_shows_the_secret() {
        let key = CredentialKey::generate();
        let scalar = key.secret_scalar();
        let shown = format!("{key:?}");
        assert_eq!(shown, "CredentialKey(\"<redacted>\")");
        assert!(!shown.contains(&crate::encoding::b64url(scalar.as_ref())));
        assert_eq!(
            format!("{:?}", AttestationKey::generate()),
            "AttestationKey(\"<redacted>\")"
        );
    }

    #[test]
    fn scalar_round_trip_keeps_the_key() {
        let key = CredentialKey::generate();
        let again =
            CredentialKey::from_secret_scalar(key.secret_scalar().as_ref()).expect("valid scalar");
        assert_eq!(key.public_key(), again.public_key());
        assert!(
            CredentialKey::from_secret_scalar(&[0u8; 32]).is_none(),
            "zero is not a valid scalar"
        );
    }

    #[test]
    fn cose_key_has_the_spec_layout() {
        let key = CredentialKey::generate();
        let (x, y) = key.public_key().coordinates();
        let cose = key.public_key().to_cose_key().expect("encodes");
        assert_eq!(cose.len(), 77);
        // a5 (map of 5) 01 02 (kty EC2) 03 26 (alg -7) 20 01 (crv P-256) 21 58 20 x 22 58 20 y
        assert_eq!(
            &cose[..10],
            &[0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]
        );
        assert_eq!(&cose[10..42], &x);
        assert_eq!(&cose[42..45], &[0x22, 0x58, 0x20]);
        assert_eq!(&cose[45..], &y);
    }

    #[test]
    fn der_signature_verifies() {
        let key = CredentialKey::generate();
        let der = key.sign_der(b"message");
        let signature = Signature::from_der(&der).expect("DER");
        key.public_key()
            .verifying_key()
            .verify(b"message", &signature)
            .expect("verifies");
        let raw = key.sign_raw(b"message");
        let signature = Signature::from_slice(&raw).expect("raw");
        key.public_key()
            .verifying_key()
            .verify(b"message", &signature)
            .expect("verifies");
    }
}
