//! Device enrolment: the phone registers its device key with a pairing session.
//!
//! The request carries the device's public key, its name, model and OS, and two proofs over
//! one canonical message ([`enrolment_message`]):
//!
//! - `proof` = HMAC-SHA256 keyed with the session's [`PairingKey`] (from the QR secret or the
//!   short code): the phone saw the QR code (or the code) and binds *this* device key and
//!   *this* pairing session to it;
//! - `signature` = the device key's ECDSA signature: the phone holds the private key.
//!
//! The canonical message is UTF-8 lines joined by `\n` (no trailing newline); no value may
//! contain a control character, so the lines cannot be confused:
//!
//! ```text
//! keybridge-enrol-v1
//! pairing=id:6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b     (or pairing=code:K7QX4M)
//! server=https://keybridge.example.com
//! device_key=<base64url SEC1 point>
//! name=Ana's phone
//! model=Pixel 8
//! os=Android 15
//! ```

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::account::Account;
use crate::encoding::{ProtocolVersion, b64_array, display_safe};
use crate::keys::{IdentityKey, IdentityPublicKey, Signature};
use crate::pairing::{PairingKey, ServerUrl, ShortCode};
use crate::pin::TlsPin;

/// The longest device name, model or OS string, in characters.
pub const MAX_DEVICE_FIELD_CHARS: usize = 100;

/// Why an enrolment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolmentError {
    /// A device field is empty, too long or holds a control character.
    #[error(
        "the device {field} {given:?} cannot be used: it must be 1 to {MAX_DEVICE_FIELD_CHARS} characters without control characters"
    )]
    BadDeviceField {
        /// `name`, `model` or `os`.
        field: &'static str,
        /// The value given (shortened).
        given: String,
    },
    /// The request names another server than the one checking it.
    #[error(
        "this enrolment was made for the server {claimed:?}, not {expected:?}: scan the QR code shown by this server"
    )]
    WrongServer {
        /// The origin in the request.
        claimed: String,
        /// This server's origin.
        expected: String,
    },
    /// The HMAC proof does not match the session's secret.
    #[error(
        "the pairing proof does not match this pairing session: the QR code or code is wrong or was replaced; scan it again"
    )]
    BadProof,
    /// The device key's signature does not verify.
    #[error("the device key's signature on the enrolment does not verify: the request was altered")]
    BadSignature,
    /// The server's TLS key is not the one the phone expected.
    #[error(
        "the server's TLS pin {actual} is not the pin {expected} from the pairing code: this is not the server that showed the QR code; do not pair"
    )]
    PinMismatch {
        /// The pin the phone expected.
        expected: TlsPin,
        /// The pin the server confirmed (or presented).
        actual: TlsPin,
    },
}

impl EnrolmentError {
    /// A stable machine-readable code for the server's error body.
    pub fn code(&self) -> &'static str {
        match self {
            EnrolmentError::BadDeviceField { .. } => "invalid_device",
            EnrolmentError::WrongServer { .. } => "wrong_server",
            EnrolmentError::BadProof => "bad_pairing_proof",
            EnrolmentError::BadSignature => "bad_device_signature",
            EnrolmentError::PinMismatch { .. } => "tls_pin_mismatch",
        }
    }
}

/// A phone's description of itself, shown to admins and users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    name: String,
    model: String,
    os: String,
}

impl DeviceInfo {
    /// Checks the three fields (1 to 100 characters each, no control characters).
    pub fn new(name: &str, model: &str, os: &str) -> Result<DeviceInfo, EnrolmentError> {
        fn check(field: &'static str, value: &str) -> Result<String, EnrolmentError> {
            let count = value.chars().count();
            if count == 0
                || count > MAX_DEVICE_FIELD_CHARS
                || value.chars().any(char::is_control)
                || value.trim() != value
            {
                return Err(EnrolmentError::BadDeviceField {
                    field,
                    given: display_safe(value, 40),
                });
            }
            Ok(value.to_owned())
        }
        Ok(DeviceInfo {
            name: check("name", name)?,
            model: check("model", model)?,
            os: check("os", os)?,
        })
    }

    /// The name the user gave the phone.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The phone's model.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The phone's operating system and version.
    pub fn os(&self) -> &str {
        &self.os
    }
}

impl<'de> Deserialize<'de> for DeviceInfo {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            name: String,
            model: String,
            os: String,
        }
        let raw = Raw::deserialize(deserializer)?;
        DeviceInfo::new(&raw.name, &raw.model, &raw.os).map_err(serde::de::Error::custom)
    }
}

/// Which pairing session an enrolment is for: the QR code's id, or the typed short code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairingReference {
    /// The `id` of a QR pairing payload.
    Id(Uuid),
    /// A typed fallback code.
    Code(ShortCode),
}

impl PairingReference {
    pub(crate) fn canonical(&self) -> String {
        match self {
            PairingReference::Id(id) => format!("id:{}", id.hyphenated()),
            PairingReference::Code(code) => format!("code:{code}"),
        }
    }
}

/// The canonical message that the enrolment's HMAC proof and signature cover.
pub fn enrolment_message(
    pairing: &PairingReference,
    server_origin: &str,
    device_public_key: &IdentityPublicKey,
    device: &DeviceInfo,
) -> String {
    format!(
        "keybridge-enrol-v1\npairing={}\nserver={}\ndevice_key={}\nname={}\nmodel={}\nos={}",
        pairing.canonical(),
        server_origin,
        device_public_key.to_base64url(),
        device.name,
        device.model,
        device.os,
    )
}

pub(crate) fn proof_mac(key: &PairingKey, message: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(message.as_bytes());
    mac
}

/// `POST /device/v1/pair`: the phone's enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentRequest {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The pairing session.
    pub pairing: PairingReference,
    /// The origin of the server the phone is talking to.
    pub server: String,
    /// The new device key.
    pub device_public_key: IdentityPublicKey,
    /// Name, model and OS.
    pub device: DeviceInfo,
    /// HMAC-SHA256 of the canonical message keyed with the pairing key.
    #[serde(with = "b64_array")]
    pub proof: [u8; 32],
    /// The device key's signature of the canonical message.
    pub signature: Signature,
}

/// An enrolment whose proof and signature were checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEnrolment {
    /// The pairing session it used.
    pub pairing: PairingReference,
    /// The device key to store for the new device.
    pub device_public_key: IdentityPublicKey,
    /// Name, model and OS.
    pub device: DeviceInfo,
}

impl EnrolmentRequest {
    /// Builds the request on the phone. `pairing_key` comes from
    /// [`crate::PairingSecret::proof_key`] (QR) or [`ShortCode::proof_key`] (code).
    pub fn build(
        pairing: PairingReference,
        pairing_key: &PairingKey,
        server: &ServerUrl,
        device_key: &IdentityKey,
        device: DeviceInfo,
    ) -> EnrolmentRequest {
        let device_public_key = device_key.public_key();
        let server = server.origin();
        let message = enrolment_message(&pairing, &server, &device_public_key, &device);
        let proof = proof_mac(pairing_key, &message)
            .finalize()
            .into_bytes()
            .into();
        let signature = device_key.sign(message.as_bytes());
        EnrolmentRequest {
            v: ProtocolVersion,
            pairing,
            server,
            device_public_key,
            device,
            proof,
            signature,
        }
    }

    /// The canonical message of this request.
    pub fn message(&self) -> String {
        enrolment_message(
            &self.pairing,
            &self.server,
            &self.device_public_key,
            &self.device,
        )
    }

    /// A 6-digit code both ends derive from the enrolment, e.g. `"481 223"`.
    ///
    /// The phone shows it after pairing and the Device Manager page shows it beside "Phone
    /// paired"; if they differ, a device other than the user's own paired with a copy of the
    /// QR code, and the user can undo it there. Derivation: the first 4 bytes of
    /// `SHA-256("keybridge-enrol-confirm-v1\n" || canonical message)` as a big-endian integer,
    /// modulo 10⁶, zero-padded, split 3 + 3.
    pub fn confirmation_code(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"keybridge-enrol-confirm-v1\n")
            .chain_update(self.message().as_bytes())
            .finalize();
        let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
        let digits = format!("{number:06}");
        format!("{} {}", &digits[..3], &digits[3..])
    }

    /// Checks the request on the server, after it has found the live, unused session named by
    /// [`EnrolmentRequest::pairing`] and read its `pairing_key`. Order: server origin, HMAC
    /// proof (constant time), then the device signature.
    pub fn verify(
        &self,
        pairing_key: &PairingKey,
        this_server: &ServerUrl,
    ) -> Result<VerifiedEnrolment, EnrolmentError> {
        let expected = this_server.origin();
        if self.server != expected {
            return Err(EnrolmentError::WrongServer {
                claimed: display_safe(&self.server, 120),
                expected,
            });
        }
        let message = self.message();
        proof_mac(pairing_key, &message)
            .verify_slice(&self.proof)
            .map_err(|_| EnrolmentError::BadProof)?;
        if !self
            .device_public_key
            .verify(message.as_bytes(), &self.signature)
        {
            return Err(EnrolmentError::BadSignature);
        }
        Ok(VerifiedEnrolment {
            pairing: self.pairing.clone(),
            device_public_key: self.device_public_key,
            device: self.device.clone(),
        })
    }
}

/// The server's answer to a successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolmentResponse {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The new device's id: the `KB-Device-Id` of its signed requests.
    pub device_id: Uuid,
    /// The account the phone is now paired for.
    pub account: Account,
    /// The integration (keybridge's internal id of the Entra app registration).
    pub integration_id: String,
    /// The server's TLS pin, as the server knows it.
    pub tls_pin: TlsPin,
}

impl EnrolmentResponse {
    /// On the phone: the pin the server confirms must be the pin the phone trusted (from the
    /// QR code, or the pin of the certificate it saw when pairing by code).
    pub fn confirm_pin(&self, expected: &TlsPin) -> Result<(), EnrolmentError> {
        if self.tls_pin.matches(expected) {
            Ok(())
        } else {
            Err(EnrolmentError::PinMismatch {
                expected: *expected,
                actual: self.tls_pin,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairing::PairingSecret;
    use rand_core::OsRng;

    fn server() -> ServerUrl {
        ServerUrl::parse("https://keybridge.example.com/").expect("url")
    }

    fn device() -> DeviceInfo {
        DeviceInfo::new("Ana's phone", "Pixel 8", "Android 15").expect("valid")
    }

    fn request(secret: &PairingSecret, key: &IdentityKey) -> EnrolmentRequest {
        EnrolmentRequest::build(
            PairingReference::Id(Uuid::from_u128(5)),
            &secret.proof_key(),
            &server(),
            key,
            device(),
        )
    }

    #[test]
    fn enrolment_round_trips_and_verifies() {
        let secret = PairingSecret::generate(&mut OsRng);
        let key = IdentityKey::generate(&mut OsRng);
        let built = request(&secret, &key);
        let json = serde_json::to_string(&built).expect("serialises");
        let parsed: EnrolmentRequest = serde_json::from_str(&json).expect("parses");
        assert_eq!(parsed, built);
        let verified = parsed
            .verify(&secret.proof_key(), &server())
            .expect("valid");
        assert_eq!(verified.device_public_key, key.public_key());
        assert_eq!(verified.device.name(), "Ana's phone");
        assert_eq!(verified.pairing, PairingReference::Id(Uuid::from_u128(5)));
    }

    #[test]
    fn confirmation_code_is_six_digits_and_depends_on_the_device_key() {
        let secret = PairingSecret::generate(&mut OsRng);
        let first = request(&secret, &IdentityKey::generate(&mut OsRng));
        let code = first.confirmation_code();
        assert_eq!(code.len(), 7);
        assert!(code[..3].bytes().all(|b| b.is_ascii_digit()) && &code[3..4] == " ");
        assert_eq!(code, first.clone().confirmation_code(), "stable");
        // Another device key gives another code (a 10^-6 chance of a clash per pair; the
        // keys here are fixed so the test is deterministic).
        let one = request(
            &secret,
            &IdentityKey::from_secret_bytes(&[1; 32]).expect("key"),
        );
        let two = request(
            &secret,
            &IdentityKey::from_secret_bytes(&[2; 32]).expect("key"),
        );
        assert_ne!(one.confirmation_code(), two.confirmation_code());
    }

    #[test]
    fn code_enrolment_uses_the_code_key() {
        let code = ShortCode::parse("K7QX4M").expect("code");
        let key = IdentityKey::generate(&mut OsRng);
        let built = EnrolmentRequest::build(
            PairingReference::Code(code.clone()),
            &code.proof_key(),
            &server(),
            &key,
            device(),
        );
        let json = serde_json::to_value(&built).expect("serialises");
        assert_eq!(json["pairing"], serde_json::json!({"code": "K7QX4M"}));
        assert!(built.verify(&code.proof_key(), &server()).is_ok());
        let other = ShortCode::parse("K7QX4N").expect("code");
        assert_eq!(
            built.verify(&other.proof_key(), &server()),
            Err(EnrolmentError::BadProof)
        );
    }

    #[test]
    fn wrong_secret_is_a_bad_proof() {
        let key = IdentityKey::generate(&mut OsRng);
        let built = request(&PairingSecret::generate(&mut OsRng), &key);
        let other = PairingSecret::generate(&mut OsRng);
        let err = built
            .verify(&other.proof_key(), &server())
            .expect_err("wrong secret");
        assert_eq!(err, EnrolmentError::BadProof);
        assert_eq!(err.code(), "bad_pairing_proof");
    }

    #[test]
    fn swapped_device_key_fails_the_proof_and_forged_signature_fails() {
        let secret = PairingSecret::generate(&mut OsRng);
        let key = IdentityKey::generate(&mut OsRng);
        let attacker = IdentityKey::generate(&mut OsRng);
        // A relay that replaces the device key cannot recompute the proof without the secret.
        let mut swapped = request(&secret, &key);
        swapped.device_public_key = attacker.public_key();
        swapped.signature = attacker.sign(swapped.message().as_bytes());
        assert_eq!(
            swapped.verify(&secret.proof_key(), &server()),
            Err(EnrolmentError::BadProof)
        );
        // Someone with the secret but not the device key cannot sign for it.
        let mut forged = request(&secret, &key);
        forged.signature = attacker.sign(forged.message().as_bytes());
        assert_eq!(
            forged.verify(&secret.proof_key(), &server()),
            Err(EnrolmentError::BadSignature)
        );
        // Renaming the device after the fact breaks the proof.
        let mut renamed = request(&secret, &key);
        renamed.device = DeviceInfo::new("Mallory", "Pixel 8", "Android 15").expect("valid");
        assert_eq!(
            renamed.verify(&secret.proof_key(), &server()),
            Err(EnrolmentError::BadProof)
        );
    }

    #[test]
    fn another_server_is_refused() {
        let secret = PairingSecret::generate(&mut OsRng);
        let built = request(&secret, &IdentityKey::generate(&mut OsRng));
        let elsewhere = ServerUrl::parse("https://evil.example.net").expect("url");
        assert!(matches!(
            built.verify(&secret.proof_key(), &elsewhere),
            Err(EnrolmentError::WrongServer { .. })
        ));
    }

    #[test]
    fn device_fields_are_checked_also_when_parsing() {
        for (name, model, os) in [
            ("", "m", "o"),
            ("a\nb", "m", "o"),
            (" padded", "m", "o"),
            ("n", &"x".repeat(101) as &str, "o"),
        ] {
            assert!(matches!(
                DeviceInfo::new(name, model, os),
                Err(EnrolmentError::BadDeviceField { .. })
            ));
        }
        let bad = serde_json::from_str::<DeviceInfo>(r#"{"name":"a\nb","model":"m","os":"o"}"#);
        assert!(bad.is_err());
    }

    #[test]
    fn response_pin_confirmation() {
        let response = EnrolmentResponse {
            v: ProtocolVersion,
            device_id: Uuid::from_u128(1),
            account: Account {
                upn: "ana@contoso.com".into(),
                tenant_id: Uuid::from_u128(2),
                entra_user_id: Uuid::from_u128(3),
            },
            integration_id: "ContosoPasskeys".into(),
            tls_pin: TlsPin::from_bytes([1; 32]),
        };
        let json = serde_json::to_string(&response).expect("serialises");
        let back: EnrolmentResponse = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, response);
        assert_eq!(back.confirm_pin(&TlsPin::from_bytes([1; 32])), Ok(()));
        assert!(matches!(
            back.confirm_pin(&TlsPin::from_bytes([2; 32])),
            Err(EnrolmentError::PinMismatch { .. })
        ));
    }
}
