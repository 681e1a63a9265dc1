//! COSE public keys of WebAuthn credentials, read from CBOR by this crate
//! ([RFC 9052 §7](https://www.rfc-editor.org/rfc/rfc9052#section-7),
//! [RFC 9053 §7.1](https://www.rfc-editor.org/rfc/rfc9053#section-7.1) for EC2,
//! [RFC 8230 §4](https://www.rfc-editor.org/rfc/rfc8230#section-4) for RSA,
//! [WebAuthn §6.5.1.1](https://www.w3.org/TR/webauthn-3/#sctn-encoded-credPubKey-examples)).
//!
//! Only the two algorithms Entra accepts are supported: ES256 (EC2 on P-256) and RS256
//! (RSASSA-PKCS1-v1_5 with SHA-256). Any other algorithm is refused with
//! [`CoseKeyError::UnsupportedAlgorithm`], naming it.

use ciborium::Value;
use p256::ecdsa::signature::Verifier as _;

use crate::cbor::{self, CborError};

/// COSE key common parameter `kty`.
const LABEL_KTY: i64 = 1;
/// COSE key common parameter `alg`.
const LABEL_ALG: i64 = 3;
/// EC2 `crv`; RSA `n` has the same label.
const LABEL_CRV_OR_N: i64 = -1;
/// EC2 `x`; RSA `e` has the same label.
const LABEL_X_OR_E: i64 = -2;
/// EC2 `y`.
const LABEL_Y: i64 = -3;
const KTY_EC2: i64 = 2;
const KTY_RSA: i64 = 3;
const CRV_P256: i64 = 1;

/// A COSE signature algorithm this crate verifies
/// ([IANA COSE Algorithms](https://www.iana.org/assignments/cose/cose.xhtml#algorithms)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoseAlgorithm {
    /// ECDSA with SHA-256 on P-256, COSE `-7`.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, COSE `-257`.
    Rs256,
}

impl CoseAlgorithm {
    /// The COSE algorithm identifier.
    #[must_use]
    pub fn id(self) -> i64 {
        match self {
            CoseAlgorithm::Es256 => -7,
            CoseAlgorithm::Rs256 => -257,
        }
    }

    /// The algorithm for a COSE identifier, if this crate supports it.
    #[must_use]
    pub fn from_id(id: i64) -> Option<Self> {
        match id {
            -7 => Some(CoseAlgorithm::Es256),
            -257 => Some(CoseAlgorithm::Rs256),
            _ => None,
        }
    }
}

/// Why a COSE public key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoseKeyError {
    /// The key is not well-formed CBOR.
    #[error("credential public key: {0}")]
    Cbor(#[from] CborError),
    /// The key is CBOR but not a map.
    #[error("credential public key is not a CBOR map")]
    NotAMap,
    /// A required parameter is missing.
    #[error("credential public key lacks its {0} parameter")]
    MissingParameter(&'static str),
    /// A parameter has the wrong CBOR type or size.
    #[error("credential public key parameter {0} has the wrong type or length")]
    InvalidParameter(&'static str),
    /// The algorithm is one this verifier does not support.
    #[error(
        "credential public key algorithm {0} is not supported; only ES256 (-7) and RS256 (-257) are accepted"
    )]
    UnsupportedAlgorithm(i64),
    /// The key type does not fit the algorithm.
    #[error("credential public key type {kty} does not fit algorithm {alg}")]
    KeyTypeMismatch {
        /// The `kty` found.
        kty: i64,
        /// The `alg` found.
        alg: i64,
    },
    /// An EC2 key on a curve other than P-256.
    #[error("credential public key curve {0} is not supported; ES256 needs P-256 (1)")]
    UnsupportedCurve(i64),
    /// The EC2 coordinates are not a point on P-256.
    #[error("credential public key coordinates are not a point on P-256")]
    InvalidPoint,
    /// The RSA modulus or exponent is unusable.
    #[error(
        "credential public key RSA modulus or exponent is unusable (modulus must be 2048 to 8192 bits)"
    )]
    InvalidRsaKey,
}

/// Why a signature did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature bytes are not in the algorithm's encoding (DER for ECDSA).
    #[error("the signature is not a well-formed {0} signature")]
    Malformed(&'static str),
    /// The signature does not verify under the key.
    #[error("the signature does not verify with the credential public key")]
    Invalid,
}

/// The key material of a [`CredentialPublicKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyMaterial {
    /// An EC2 key on P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// An RSA key: big-endian modulus and exponent.
    Rsa {
        /// Modulus `n`, big-endian.
        n: Vec<u8>,
        /// Public exponent `e`, big-endian.
        e: Vec<u8>,
    },
}

/// A credential public key, parsed from its COSE_Key CBOR, with those exact bytes kept
/// (relying parties store the bytes and rebuild the key with [`CredentialPublicKey::from_cose`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialPublicKey {
    algorithm: CoseAlgorithm,
    material: PublicKeyMaterial,
    cose_bytes: Vec<u8>,
}

impl CredentialPublicKey {
    /// Parses a COSE_Key that spans exactly `bytes`.
    ///
    /// # Errors
    /// [`CoseKeyError`] naming the missing, malformed or unsupported parameter.
    pub fn from_cose(bytes: &[u8]) -> Result<Self, CoseKeyError> {
        let value = cbor::decode_exact(bytes)?;
        Self::from_value(&value, bytes.to_vec())
    }

    /// Builds the key from an already decoded COSE_Key and its encoded bytes.
    pub(crate) fn from_value(value: &Value, cose_bytes: Vec<u8>) -> Result<Self, CoseKeyError> {
        let Value::Map(entries) = value else {
            return Err(CoseKeyError::NotAMap);
        };
        let int_param = |label: i64, name: &'static str| -> Result<i64, CoseKeyError> {
            let found = cbor::lookup(entries, &Value::from(label))?
                .ok_or(CoseKeyError::MissingParameter(name))?;
            cbor::as_i64(found).ok_or(CoseKeyError::InvalidParameter(name))
        };
        let bytes_param = |label: i64, name: &'static str| -> Result<&[u8], CoseKeyError> {
            match cbor::lookup(entries, &Value::from(label))? {
                Some(Value::Bytes(bytes)) => Ok(bytes),
                Some(_) => Err(CoseKeyError::InvalidParameter(name)),
                None => Err(CoseKeyError::MissingParameter(name)),
            }
        };
        let kty = int_param(LABEL_KTY, "kty (1)")?;
        let alg = int_param(LABEL_ALG, "alg (3)")?;
        let algorithm =
            CoseAlgorithm::from_id(alg).ok_or(CoseKeyError::UnsupportedAlgorithm(alg))?;
        let material = match algorithm {
            CoseAlgorithm::Es256 => {
                if kty != KTY_EC2 {
                    return Err(CoseKeyError::KeyTypeMismatch { kty, alg });
                }
                let crv = int_param(LABEL_CRV_OR_N, "crv (-1)")?;
                if crv != CRV_P256 {
                    return Err(CoseKeyError::UnsupportedCurve(crv));
                }
                let x = bytes_param(LABEL_X_OR_E, "x (-2)")?;
                let y = bytes_param(LABEL_Y, "y (-3)")?;
                if x.len() != 32 {
                    return Err(CoseKeyError::InvalidParameter("x (-2)"));
                }
                if y.len() != 32 {
                    return Err(CoseKeyError::InvalidParameter("y (-3)"));
                }
                // SEC1 uncompressed point: 0x04 ‖ x ‖ y.
                let mut point = [0u8; 65];
                point[0] = 0x04;
                point[1..33].copy_from_slice(x);
                point[33..].copy_from_slice(y);
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point)
                    .map_err(|_| CoseKeyError::InvalidPoint)?;
                PublicKeyMaterial::P256(key)
            }
            CoseAlgorithm::Rs256 => {
                if kty != KTY_RSA {
                    return Err(CoseKeyError::KeyTypeMismatch { kty, alg });
                }
                let n = bytes_param(LABEL_CRV_OR_N, "n (-1)")?;
                let e = bytes_param(LABEL_X_OR_E, "e (-2)")?;
                let modulus_bits = significant_bits(n);
                if !(2048..=8192).contains(&modulus_bits) || significant_bits(e) == 0 {
                    return Err(CoseKeyError::InvalidRsaKey);
                }
                PublicKeyMaterial::Rsa {
                    n: n.to_vec(),
                    e: e.to_vec(),
                }
            }
        };
        Ok(CredentialPublicKey {
            algorithm,
            material,
            cose_bytes,
        })
    }

    /// The key's algorithm.
    #[must_use]
    pub fn algorithm(&self) -> CoseAlgorithm {
        self.algorithm
    }

    /// The key material.
    #[must_use]
    pub fn material(&self) -> &PublicKeyMaterial {
        &self.material
    }

    /// The COSE_Key bytes exactly as the authenticator sent them.
    #[must_use]
    pub fn cose_bytes(&self) -> &[u8] {
        &self.cose_bytes
    }

    /// Verifies `signature` over `message` with this key: DER-encoded ECDSA for ES256,
    /// RSASSA-PKCS1-v1_5 for RS256 ([WebAuthn §6.5.5](https://www.w3.org/TR/webauthn-3/#sctn-signature-attestation-types)).
    ///
    /// # Errors
    /// [`SignatureError`] when the signature is malformed or does not verify.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        match &self.material {
            PublicKeyMaterial::P256(key) => {
                let signature = p256::ecdsa::Signature::from_der(signature)
                    .map_err(|_| SignatureError::Malformed("DER ECDSA"))?;
                key.verify(message, &signature)
                    .map_err(|_| SignatureError::Invalid)
            }
            PublicKeyMaterial::Rsa { n, e } => {
                let components = aws_lc_rs::signature::RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                };
                components
                    .verify(
                        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                        message,
                        signature,
                    )
                    .map_err(|_| SignatureError::Invalid)
            }
        }
    }
}

/// Number of significant bits in a big-endian unsigned integer.
fn significant_bits(bytes: &[u8]) -> usize {
    let mut rest = bytes;
    while let [0, tail @ ..] = rest {
        rest = tail;
    }
    match rest.first() {
        Some(first) => rest.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::ser::into_writer(value, &mut out).unwrap();
        out
    }

    fn ec2_key(alg: i64, crv: i64) -> Value {
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let point = signing.verifying_key().to_encoded_point(false);
        Value::Map(vec![
            (Value::from(1), Value::from(2)),
            (Value::from(3), Value::from(alg)),
            (Value::from(-1), Value::from(crv)),
            (Value::from(-2), Value::Bytes(point.x().unwrap().to_vec())),
            (Value::from(-3), Value::Bytes(point.y().unwrap().to_vec())),
        ])
    }

    #[test]
    fn es256_key_parses_and_verifies_a_der_signature() {
        use p256::ecdsa::signature::Signer as _;
        let bytes = encode(&ec2_key(-7, 1));
        let key = CredentialPublicKey::from_cose(&bytes).unwrap();
        assert_eq!(key.algorithm(), CoseAlgorithm::Es256);
        assert_eq!(key.cose_bytes(), bytes);
        let signing = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let signature: p256::ecdsa::Signature = signing.sign(b"message");
        key.verify(b"message", signature.to_der().as_bytes())
            .unwrap();
        assert_eq!(
            key.verify(b"other", signature.to_der().as_bytes()),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            key.verify(b"message", &signature.to_bytes()),
            Err(SignatureError::Malformed("DER ECDSA"))
        );
    }

    #[test]
    fn unsupported_and_inconsistent_keys_are_refused() {
        let eddsa = encode(&ec2_key(-8, 1));
        assert_eq!(
            CredentialPublicKey::from_cose(&eddsa),
            Err(CoseKeyError::UnsupportedAlgorithm(-8))
        );
        let p384 = encode(&ec2_key(-7, 2));
        assert_eq!(
            CredentialPublicKey::from_cose(&p384),
            Err(CoseKeyError::UnsupportedCurve(2))
        );
        let mut wrong_kty = ec2_key(-257, 1);
        if let Value::Map(entries) = &mut wrong_kty {
            entries.retain(|(k, _)| *k != Value::from(-3));
        }
        assert_eq!(
            CredentialPublicKey::from_cose(&encode(&wrong_kty)),
            Err(CoseKeyError::KeyTypeMismatch { kty: 2, alg: -257 })
        );
        let mut off_curve = ec2_key(-7, 1);
        if let Value::Map(entries) = &mut off_curve {
            entries[4].1 = Value::Bytes(vec![1; 32]);
        }
        assert_eq!(
            CredentialPublicKey::from_cose(&encode(&off_curve)),
            Err(CoseKeyError::InvalidPoint)
        );
        assert_eq!(
            CredentialPublicKey::from_cose(&encode(&Value::from(3))),
            Err(CoseKeyError::NotAMap)
        );
    }

    #[test]
    fn short_rsa_moduli_are_refused() {
        let key = Value::Map(vec![
            (Value::from(1), Value::from(3)),
            (Value::from(3), Value::from(-257)),
            (Value::from(-1), Value::Bytes(vec![0xff; 128])),
            (Value::from(-2), Value::Bytes(vec![1, 0, 1])),
        ]);
        assert_eq!(
            CredentialPublicKey::from_cose(&encode(&key)),
            Err(CoseKeyError::InvalidRsaKey)
        );
        assert_eq!(significant_bits(&[0, 0, 1, 0]), 9);
    }
}
