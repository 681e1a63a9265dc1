//! P-256 identity keys of phones and workstations, and their ECDSA signatures.
//!
//! A phone creates one [`IdentityKey`] when it pairs (its *device key*); a workstation creates
//! one when it exchanges its install token. The server only ever sees the
//! [`IdentityPublicKey`]. Signatures are ECDSA P-256 with SHA-256, written as the 64-byte
//! `r || s` form (as in JWS ES256), deterministic (RFC 6979) when made by this crate.

use std::fmt;

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::encoding::{b64url, display_safe, from_b64url, from_b64url_exact};

/// Why a key or signature could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The public key is not unpadded base64url of an uncompressed SEC1 P-256 point.
    #[error(
        "the public key {given:?} is not a P-256 point: expected unpadded base64url of the 65-byte uncompressed SEC1 encoding (0x04 || x || y)"
    )]
    BadPublicKey {
        /// The text given (shortened).
        given: String,
    },
    /// The signature is not unpadded base64url of 64 bytes `r || s` with both in range.
    #[error(
        "the signature {given:?} is not an ECDSA P-256 signature: expected unpadded base64url of 64 bytes (r || s)"
    )]
    BadSignature {
        /// The text given (shortened).
        given: String,
    },
    /// The secret scalar is not a valid P-256 private key.
    #[error(
        "the private key is not a valid P-256 scalar (32 bytes, not zero, below the group order)"
    )]
    BadPrivateKey,
}

/// A private P-256 identity key (a phone's device key or a workstation's key).
///
/// It has no `Serialize` and a redacted `Debug`; the phone's key store keeps the scalar with
/// [`IdentityKey::to_secret_bytes`] and [`IdentityKey::from_secret_bytes`].
#[derive(Clone)]
pub struct IdentityKey(SigningKey);

impl IdentityKey {
    /// A new random key.
    pub fn generate(rng: &mut impl CryptoRngCore) -> IdentityKey {
        IdentityKey(SigningKey::random(rng))
    }

    /// The key from its 32-byte big-endian secret scalar (as kept by a key store).
    pub fn from_secret_bytes(bytes: &[u8]) -> Result<IdentityKey, KeyError> {
        SigningKey::from_slice(bytes)
            .map(IdentityKey)
            .map_err(|_| KeyError::BadPrivateKey)
    }

    /// The 32-byte secret scalar, for the owner's encrypted key store only: never send it. It is
    /// wiped from memory when the returned value is dropped.
    pub fn to_secret_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes().into())
    }

    /// The public half, to register with the server.
    pub fn public_key(&self) -> IdentityPublicKey {
        IdentityPublicKey(*self.0.verifying_key())
    }

    /// Signs `message` (ECDSA P-256, SHA-256, RFC 6979 nonce).
    pub fn sign(&self, message: &[u8]) -> Signature {
        let signature: p256::ecdsa::Signature = self.0.sign(message);
        Signature(signature)
    }
}

impl From<SigningKey> for IdentityKey {
    fn from(key: SigningKey) -> Self {
        IdentityKey(key)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityKey")
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

/// The public half of an [`IdentityKey`]. Text form (JSON, database): unpadded base64url of
/// the 65-byte uncompressed SEC1 point.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityPublicKey(VerifyingKey);

impl IdentityPublicKey {
    /// Reads the text form.
    pub fn parse(text: &str) -> Result<IdentityPublicKey, KeyError> {
        let bad = || KeyError::BadPublicKey {
            given: display_safe(text, 100),
        };
        let bytes = from_b64url(text).ok_or_else(bad)?;
        // Only the uncompressed form: one encoding per key keeps the text form canonical.
        if bytes.len() != 65 || bytes[0] != 0x04 {
            return Err(bad());
        }
        VerifyingKey::from_sec1_bytes(&bytes)
            .map(IdentityPublicKey)
            .map_err(|_| bad())
    }

    /// The 65-byte uncompressed SEC1 point.
    pub fn to_sec1_bytes(&self) -> Vec<u8> {
        self.0.to_encoded_point(false).as_bytes().to_vec()
    }

    /// The text form.
    pub fn to_base64url(&self) -> String {
        b64url(self.0.to_encoded_point(false).as_bytes())
    }

    /// Whether `signature` is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        self.0.verify(message, &signature.0).is_ok()
    }
}

impl From<VerifyingKey> for IdentityPublicKey {
    fn from(key: VerifyingKey) -> Self {
        IdentityPublicKey(key)
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityPublicKey({})", self.to_base64url())
    }
}

impl fmt::Display for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl Serialize for IdentityPublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for IdentityPublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        IdentityPublicKey::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// An ECDSA P-256 signature; text form: unpadded base64url of `r || s` (64 bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(p256::ecdsa::Signature);

impl Signature {
    /// Reads the text form.
    pub fn parse(text: &str) -> Result<Signature, KeyError> {
        let bad = || KeyError::BadSignature {
            given: display_safe(text, 100),
        };
        let bytes: [u8; 64] = from_b64url_exact(text).ok_or_else(bad)?;
        p256::ecdsa::Signature::from_slice(&bytes)
            .map(Signature)
            .map_err(|_| bad())
    }

    /// The 64 bytes `r || s`.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0.to_bytes().into()
    }

    /// The text form.
    pub fn to_base64url(&self) -> String {
        b64url(&self.to_bytes())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_base64url())
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64url())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Signature::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn public_key_text_round_trip() {
        let key = IdentityKey::generate(&mut OsRng);
        let public = key.public_key();
        let text = public.to_base64url();
        assert_eq!(text.len(), 87, "65 bytes in unpadded base64url");
        assert_eq!(IdentityPublicKey::parse(&text), Ok(public));
        let json = serde_json::to_string(&public).expect("serialises");
        let back: IdentityPublicKey = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, public);
    }

    #[test]
    fn public_key_refuses_compressed_short_and_off_curve() {
        let key = IdentityKey::generate(&mut OsRng);
        let compressed = key.public_key().0.to_encoded_point(true);
        assert!(matches!(
            IdentityPublicKey::parse(&b64url(compressed.as_bytes())),
            Err(KeyError::BadPublicKey { .. })
        ));
        assert!(matches!(
            IdentityPublicKey::parse("AAAA"),
            Err(KeyError::BadPublicKey { .. })
        ));
        let mut off_curve = key.public_key().to_sec1_bytes();
        off_curve[64] ^= 1;
        assert!(matches!(
            IdentityPublicKey::parse(&b64url(&off_curve)),
            Err(KeyError::BadPublicKey { .. })
        ));
    }

    #[test]
    fn signature_round_trip_verify_and_tamper() {
        let key = IdentityKey::generate(&mut OsRng);
        let signature = key.sign(b"message");
        assert_eq!(signature, key.sign(b"message"), "RFC 6979 is deterministic");
        let parsed = Signature::parse(&signature.to_base64url()).expect("parses");
        assert!(key.public_key().verify(b"message", &parsed));
        assert!(!key.public_key().verify(b"messagf", &parsed));
        let other = IdentityKey::generate(&mut OsRng);
        assert!(!other.public_key().verify(b"message", &parsed));
    }

    #[test]
    fn signature_refuses_wrong_length_and_zero() {
        assert!(matches!(
            Signature::parse(&b64url(&[1u8; 63])),
            Err(KeyError::BadSignature { .. })
        ));
        assert!(matches!(
            Signature::parse(&b64url(&[0u8; 64])),
            Err(KeyError::BadSignature { .. })
        ));
    }

    #[test]
    fn secret_bytes_round_trip_and_zero_is_refused() {
        let key = IdentityKey::generate(&mut OsRng);
        // Zeroizing: the copy handed to the key store is wiped when dropped.
        let secret: Zeroizing<[u8; 32]> = key.to_secret_bytes();
        let again = IdentityKey::from_secret_bytes(&secret[..]).expect("valid");
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(
            IdentityKey::from_secret_bytes(&[0u8; 32]).map(|k| k.public_key()),
            Err(KeyError::BadPrivateKey)
        );
        assert!(!format!("{key:?}").contains(&b64url(&secret[..])));
    }
}
