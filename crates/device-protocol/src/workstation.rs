//! The workstation's side of the protocol (`/workstation/v1`, `docs/workstation.md`): the
//! install-token exchange, the workstation pairing code the phone scans, the phone's proof when
//! it pairs a workstation, and the sign-in status the workstation waits for.
//!
//! Trust: the workstation's public key reaches the phone in the QR code the workstation shows
//! (the server only relays the pairing), so a sign-in binding the phone later checks was made
//! by that computer. With the typed short code the phone learns the key from the server and
//! says so.

use hmac::Mac as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::encoding::{ProtocolVersion, b64_array, display_safe, from_b64url_exact};
use crate::enrolment::{PairingReference, proof_mac};
use crate::inbox::RefusalReason;
use crate::keys::{IdentityKey, IdentityPublicKey, Signature};
use crate::pairing::{PairingError, PairingKey, PairingSecret, ServerUrl, ShortCode};

/// The URI scheme and path of a workstation pairing code.
pub const WORKSTATION_PAIRING_PREFIX: &str = "keybridge:workstation?";

/// The longest computer name a workstation may report.
pub const MAX_COMPUTER_NAME_CHARS: usize = 63;

/// Why a workstation message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkstationError {
    /// The computer name is empty, too long or holds control characters.
    #[error(
        "the computer name {given:?} cannot be used: 1 to {MAX_COMPUTER_NAME_CHARS} characters, no control characters, no surrounding spaces"
    )]
    BadComputerName {
        /// The name given (shortened).
        given: String,
    },
    /// The install token is empty or holds characters a token never has.
    #[error("the install token in keybridge.json is malformed: download the desktop client again")]
    BadInstallToken,
    /// The enrolment's signature does not verify with the key it carries.
    #[error("the workstation's signature does not match its key: the request was altered")]
    BadSignature,
    /// The enrolment was made for another server.
    #[error("the enrolment was made for the server {claimed:?}, not this one ({actual})")]
    WrongServer {
        /// The origin in the request (shortened).
        claimed: String,
        /// This server's origin.
        actual: String,
    },
}

impl WorkstationError {
    /// A stable machine-readable code for the error envelope.
    pub fn code(&self) -> &'static str {
        match self {
            WorkstationError::BadComputerName { .. } => "invalid_computer_name",
            WorkstationError::BadInstallToken => "invalid_install_token",
            WorkstationError::BadSignature => "bad_workstation_signature",
            WorkstationError::WrongServer { .. } => "wrong_server",
        }
    }
}

/// Checks a computer name: 1–63 characters, no control characters, no surrounding spaces.
pub fn check_computer_name(name: &str) -> Result<(), WorkstationError> {
    let count = name.chars().count();
    if count == 0
        || count > MAX_COMPUTER_NAME_CHARS
        || name.trim() != name
        || name
            .chars()
            .any(|c| c.is_control() || crate::encoding::is_bidi_control(c))
    {
        return Err(WorkstationError::BadComputerName {
            given: display_safe(name, 80),
        });
    }
    Ok(())
}

/// The canonical message a workstation signs when it exchanges its install token.
pub fn workstation_enrolment_message(
    server_origin: &str,
    computer_name: &str,
    public_key: &IdentityPublicKey,
) -> String {
    format!(
        "keybridge-workstation-enrol-v1\nserver={server_origin}\nname={computer_name}\nworkstation_key={}",
        public_key.to_base64url()
    )
}

/// `POST /workstation/v1/enrol`: the install token exchanged for a workstation registration.
/// The signature proves the workstation holds the key it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationEnrolment {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The install token from `keybridge.json` (`kbi_…`).
    pub install_token: String,
    /// The origin of the server the workstation is talking to.
    pub server: String,
    /// The computer's name, shown on the phone and in the console.
    pub computer_name: String,
    /// The workstation's new public key.
    pub public_key: IdentityPublicKey,
    /// The workstation key's signature of [`workstation_enrolment_message`].
    pub signature: Signature,
}

impl WorkstationEnrolment {
    /// Builds the request on the workstation.
    pub fn build(
        install_token: &str,
        server: &ServerUrl,
        computer_name: &str,
        key: &IdentityKey,
    ) -> Result<WorkstationEnrolment, WorkstationError> {
        check_computer_name(computer_name)?;
        check_install_token(install_token)?;
        let public_key = key.public_key();
        let message = workstation_enrolment_message(&server.origin(), computer_name, &public_key);
        Ok(WorkstationEnrolment {
            v: ProtocolVersion,
            install_token: install_token.to_owned(),
            server: server.origin(),
            computer_name: computer_name.to_owned(),
            public_key,
            signature: key.sign(message.as_bytes()),
        })
    }

    /// On the server: the fields are well formed, the request names this server, and the
    /// signature is the registered key's. The install token is checked by the caller.
    pub fn verify(&self, this_server: &ServerUrl) -> Result<(), WorkstationError> {
        check_computer_name(&self.computer_name)?;
        check_install_token(&self.install_token)?;
        if self.server != this_server.origin() {
            return Err(WorkstationError::WrongServer {
                claimed: display_safe(&self.server, 100),
                actual: this_server.origin(),
            });
        }
        let message =
            workstation_enrolment_message(&self.server, &self.computer_name, &self.public_key);
        if self.public_key.verify(message.as_bytes(), &self.signature) {
            Ok(())
        } else {
            Err(WorkstationError::BadSignature)
        }
    }
}

fn check_install_token(token: &str) -> Result<(), WorkstationError> {
    if token.is_empty() || token.len() > 200 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WorkstationError::BadInstallToken);
    }
    Ok(())
}

/// `201` answer to [`WorkstationEnrolment`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationEnrolled {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The Workstation ID (`KB-Workstation-Id` from now on).
    pub workstation_id: Uuid,
    /// The integration the workstation joined (its internal id).
    pub integration_id: String,
    /// The integration's Entra tenant.
    pub tenant_id: Uuid,
}

/// `POST /workstation/v1/pairing`: the workstation opens a pairing session. It keeps the
/// secret for its QR code and sends only the key derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationPairingStart {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// [`PairingSecret::proof_key`] of the secret in the QR code.
    #[serde(with = "b64_array")]
    pub proof_key: [u8; 32],
}

/// `201` answer to [`WorkstationPairingStart`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationPairingSession {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The session (in the QR code).
    pub pairing_id: Uuid,
    /// The code to type instead of scanning.
    pub short_code: ShortCode,
    /// When both stop working.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// What the workstation's QR code carries:
/// `keybridge:workstation?v=1&u=<server>&id=<session>&s=<secret>&w=<workstation id>&k=<key>&exp=<unix>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkstationPairingPayload {
    /// The server both are registered with.
    pub server_url: ServerUrl,
    /// The pairing session.
    pub pairing_id: Uuid,
    /// The one-time secret (the server only has its key).
    pub secret: PairingSecret,
    /// The workstation's id.
    pub workstation_id: Uuid,
    /// The workstation's public key: the phone checks sign-in bindings with it.
    pub workstation_key: IdentityPublicKey,
    /// When the session expires.
    pub expires_at: OffsetDateTime,
}

impl WorkstationPairingPayload {
    /// The text for the QR code.
    pub fn encode(&self) -> String {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("v", "1")
            .append_pair("u", self.server_url.as_str())
            .append_pair("id", &self.pairing_id.hyphenated().to_string())
            .append_pair("s", &self.secret.to_base64url())
            .append_pair("w", &self.workstation_id.hyphenated().to_string())
            .append_pair("k", &self.workstation_key.to_base64url())
            .append_pair("exp", &self.expires_at.unix_timestamp().to_string())
            .finish();
        format!("{WORKSTATION_PAIRING_PREFIX}{query}")
    }

    /// Reads a scanned code; refuses it when it has expired at `now`.
    pub fn parse(
        text: &str,
        now: OffsetDateTime,
    ) -> Result<WorkstationPairingPayload, PairingError> {
        let query = text
            .trim()
            .strip_prefix(WORKSTATION_PAIRING_PREFIX)
            .ok_or(PairingError::NotAPairingPayload)?;
        let mut fields: [(&'static str, Option<String>); 7] = [
            ("v", None),
            ("u", None),
            ("id", None),
            ("s", None),
            ("w", None),
            ("k", None),
            ("exp", None),
        ];
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = fields
                .iter_mut()
                .find(|(name, _)| *name == key.as_ref())
                .ok_or_else(|| PairingError::UnknownField {
                    field: display_safe(&key, 20),
                })?;
            if slot.1.replace(value.into_owned()).is_some() {
                return Err(PairingError::DuplicateField {
                    field: key.into_owned(),
                });
            }
        }
        let [v, u, id, s, w, k, exp] = fields.map(|(name, value)| (name, value));
        let take = |(name, value): (&'static str, Option<String>)| {
            value.ok_or(PairingError::MissingField { field: name })
        };
        let version = take(v)?;
        if version != "1" {
            return Err(PairingError::UnsupportedVersion {
                found: display_safe(&version, 10),
            });
        }
        let malformed = |field: &'static str, reason: &str| PairingError::MalformedField {
            field,
            reason: reason.to_owned(),
        };
        let server_url = ServerUrl::parse(&take(u)?)?;
        let pairing_id =
            Uuid::try_parse(&take(id)?).map_err(|_| malformed("id", "expected a UUID"))?;
        let secret = from_b64url_exact::<32>(&take(s)?)
            .map(PairingSecret::from_bytes)
            .ok_or_else(|| malformed("s", "expected 32 bytes as unpadded base64url"))?;
        let workstation_id =
            Uuid::try_parse(&take(w)?).map_err(|_| malformed("w", "expected a UUID"))?;
        let workstation_key = IdentityPublicKey::parse(&take(k)?)
            .map_err(|_| malformed("k", "expected a P-256 public key"))?;
        let expiry = take(exp)?;
        let expires_at = expiry
            .parse::<i64>()
            .ok()
            .filter(|_| expiry.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|seconds| OffsetDateTime::from_unix_timestamp(seconds).ok())
            .ok_or_else(|| malformed("exp", "expected Unix seconds"))?;
        if expires_at <= now {
            return Err(PairingError::Expired {
                expired_at: expires_at,
                now,
            });
        }
        Ok(WorkstationPairingPayload {
            server_url,
            pairing_id,
            secret,
            workstation_id,
            workstation_key,
            expires_at,
        })
    }
}

/// The canonical message of the phone's proof when it pairs a workstation.
pub fn workstation_pairing_message(pairing: &PairingReference, device_id: Uuid) -> String {
    format!(
        "keybridge-workstation-pair-v1\npairing={}\ndevice_id={}",
        pairing.canonical(),
        device_id.hyphenated()
    )
}

/// `POST /device/v1/workstations`: the phone pairs the workstation whose code it scanned (or
/// typed). The proof (HMAC with the pairing key) shows it saw the code; the request's own
/// signature shows which phone pairing (account) sends it. A phone holding several accounts on
/// the server adds one [`AccountProof`] per further account, signed with that account's device
/// key, so that the workstation can sign in any of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairWorkstation {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The session: the QR code's id or the typed code.
    pub pairing: PairingReference,
    /// HMAC-SHA256 of [`workstation_pairing_message`] keyed with the pairing key.
    #[serde(with = "b64_array")]
    pub proof: [u8; 32],
    /// The phone's further accounts on this server.
    #[serde(default)]
    pub accounts: Vec<AccountProof>,
}

/// A further account of the same phone: its device id and its device key's signature of
/// [`workstation_pairing_message`] for that device id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountProof {
    /// The account's device id (`KB-Device-Id` of that pairing).
    pub device_id: Uuid,
    /// That pairing's device-key signature.
    pub signature: Signature,
}

impl AccountProof {
    /// Made on the phone with the further account's device key.
    pub fn sign(
        pairing: &PairingReference,
        device_id: Uuid,
        device_key: &IdentityKey,
    ) -> AccountProof {
        let message = workstation_pairing_message(pairing, device_id);
        AccountProof {
            device_id,
            signature: device_key.sign(message.as_bytes()),
        }
    }

    /// On the server, with the key registered for `device_id`.
    pub fn verify(&self, pairing: &PairingReference, device_key: &IdentityPublicKey) -> bool {
        let message = workstation_pairing_message(pairing, self.device_id);
        device_key.verify(message.as_bytes(), &self.signature)
    }
}

impl PairWorkstation {
    /// Builds the request on the phone (no further accounts; push onto `accounts` to add).
    pub fn build(pairing: PairingReference, key: &PairingKey, device_id: Uuid) -> PairWorkstation {
        let message = workstation_pairing_message(&pairing, device_id);
        let proof: [u8; 32] = proof_mac(key, &message).finalize().into_bytes().into();
        PairWorkstation {
            v: ProtocolVersion,
            pairing,
            proof,
            accounts: Vec::new(),
        }
    }

    /// On the server: whether the proof is right for `key` and the signing phone, compared in
    /// constant time.
    pub fn verify(&self, key: &PairingKey, device_id: Uuid) -> bool {
        let message = workstation_pairing_message(&self.pairing, device_id);
        let expected: [u8; 32] = proof_mac(key, &message).finalize().into_bytes().into();
        bool::from(expected.ct_eq(&self.proof))
    }
}

/// `201` answer to [`PairWorkstation`]: the workstation now paired with this phone account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairedWorkstation {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The workstation's id.
    pub workstation_id: Uuid,
    /// Its public key (the phone compares it with the QR code's).
    pub workstation_key: IdentityPublicKey,
    /// Its name.
    pub computer_name: String,
}

/// `202` answer to `POST /workstation/v1/sign-in`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInAccepted {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The request now in the phone's inbox.
    pub request_id: Uuid,
    /// When the phone's approval stops being accepted.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// Where a sign-in approval stands (`GET /workstation/v1/sign-in/{id}?wait=N`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignInOutcome {
    /// The phone has not answered yet.
    Pending,
    /// The phone approved: its assertion for Entra.
    Approved {
        /// The assertion JSON.
        assertion: Value,
    },
    /// The phone (or its user) said no.
    Denied {
        /// Why.
        reason: RefusalReason,
        /// The phone's words, for the user at the workstation.
        message: String,
    },
    /// Nobody answered in time.
    Expired,
}

/// The body of `GET /workstation/v1/sign-in/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignInStatus {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The request.
    pub request_id: Uuid,
    /// Its outcome so far.
    #[serde(flatten)]
    pub outcome: SignInOutcome,
}

/// One account the workstation's paired phone holds (`GET /workstation/v1/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationAccount {
    /// The account's UPN.
    pub upn: String,
    /// The phone's name.
    pub phone_name: String,
}

/// `GET /workstation/v1/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationState {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The workstation's id.
    pub workstation_id: Uuid,
    /// Its name.
    pub computer_name: String,
    /// `active` or `revoked`.
    pub status: String,
    /// The accounts the paired phone holds in this integration (empty when not paired); the
    /// first is the account that paired.
    pub accounts: Vec<WorkstationAccount>,
}

/// `POST /device/v1/workstations/{id}/recovery-pin`: the phone escrows a new recovery PIN for
/// its account on that workstation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPinEscrow {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The PIN (digits).
    pub pin: String,
}

/// `POST /workstation/v1/recovery`: a user signs in with the recovery PIN when the phone is not
/// at hand. A PIN works once; the phone then escrows a new one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryPinUse {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The account.
    pub upn: String,
    /// The PIN typed at the workstation.
    pub pin: String,
}

/// One workstation in `GET /device/v1/workstations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationOfPhone {
    /// The workstation's id.
    pub workstation_id: Uuid,
    /// Its name.
    pub computer_name: String,
    /// Whether a recovery PIN for this account is escrowed; `false` after it was used.
    pub recovery_pin_escrowed: bool,
}

/// `GET /device/v1/workstations`: the workstations paired with the signing phone account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkstationsOfPhone {
    /// Protocol version (1).
    pub v: ProtocolVersion,
    /// The workstations.
    pub workstations: Vec<WorkstationOfPhone>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-25 14:00:00 UTC);

    fn server() -> ServerUrl {
        ServerUrl::parse("https://kb.example.com").expect("URL")
    }

    #[test]
    fn enrolment_verifies_and_refuses_alterations() {
        let key = IdentityKey::generate(&mut OsRng);
        let request =
            WorkstationEnrolment::build("kbi_token", &server(), "DESKTOP-7", &key).expect("build");
        request.verify(&server()).expect("verifies");
        let json = serde_json::to_string(&request).expect("JSON");
        let back: WorkstationEnrolment = serde_json::from_str(&json).expect("parses");
        back.verify(&server()).expect("still verifies");

        let renamed = WorkstationEnrolment {
            computer_name: "OTHER-PC".into(),
            ..request.clone()
        };
        assert_eq!(
            renamed.verify(&server()),
            Err(WorkstationError::BadSignature)
        );
        let other_key = WorkstationEnrolment {
            public_key: IdentityKey::generate(&mut OsRng).public_key(),
            ..request.clone()
        };
        assert_eq!(
            other_key.verify(&server()),
            Err(WorkstationError::BadSignature)
        );
        let elsewhere = ServerUrl::parse("https://other.example.com").expect("URL");
        assert!(matches!(
            request.verify(&elsewhere),
            Err(WorkstationError::WrongServer { .. })
        ));
        for bad in ["", " PC", "PC\n", "PC\u{202E}", &"x".repeat(64)] {
            assert!(
                matches!(
                    WorkstationEnrolment::build("kbi_token", &server(), bad, &key),
                    Err(WorkstationError::BadComputerName { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            WorkstationEnrolment::build("kbi token", &server(), "PC", &key),
            Err(WorkstationError::BadInstallToken)
        );
    }

    fn payload() -> WorkstationPairingPayload {
        WorkstationPairingPayload {
            server_url: server(),
            pairing_id: Uuid::from_u128(1),
            secret: PairingSecret::from_bytes([7; 32]),
            workstation_id: Uuid::from_u128(2),
            workstation_key: IdentityKey::generate(&mut OsRng).public_key(),
            expires_at: NOW + time::Duration::seconds(60),
        }
    }

    #[test]
    fn pairing_payload_round_trips_and_is_strict() {
        let payload = payload();
        let text = payload.encode();
        assert!(text.starts_with(WORKSTATION_PAIRING_PREFIX), "{text}");
        assert_eq!(
            WorkstationPairingPayload::parse(&text, NOW),
            Ok(payload.clone())
        );
        assert!(matches!(
            WorkstationPairingPayload::parse(&text, NOW + time::Duration::seconds(61)),
            Err(PairingError::Expired { .. })
        ));
        assert_eq!(
            WorkstationPairingPayload::parse(&format!("{text}&x=1"), NOW),
            Err(PairingError::UnknownField { field: "x".into() })
        );
        assert_eq!(
            WorkstationPairingPayload::parse(&format!("{text}&w=1"), NOW),
            Err(PairingError::DuplicateField { field: "w".into() })
        );
        assert_eq!(
            WorkstationPairingPayload::parse(&text.replace("v=1", "v=2"), NOW),
            Err(PairingError::UnsupportedVersion { found: "2".into() })
        );
        let without_key: String = text
            .split('&')
            .filter(|part| !part.starts_with("k="))
            .collect::<Vec<_>>()
            .join("&");
        assert_eq!(
            WorkstationPairingPayload::parse(&without_key, NOW),
            Err(PairingError::MissingField { field: "k" })
        );
        assert_eq!(
            WorkstationPairingPayload::parse("keybridge:pair?v=1", NOW),
            Err(PairingError::NotAPairingPayload)
        );
    }

    #[test]
    fn pairing_proof_binds_the_session_and_the_phone() {
        let secret = PairingSecret::from_bytes([9; 32]);
        let reference = PairingReference::Id(Uuid::from_u128(5));
        let device = Uuid::from_u128(6);
        let request = PairWorkstation::build(reference.clone(), &secret.proof_key(), device);
        assert!(request.verify(&secret.proof_key(), device));
        assert!(!request.verify(&secret.proof_key(), Uuid::from_u128(7)));
        assert!(!request.verify(&PairingSecret::from_bytes([8; 32]).proof_key(), device));
        let moved = PairWorkstation {
            pairing: PairingReference::Id(Uuid::from_u128(8)),
            ..request.clone()
        };
        assert!(!moved.verify(&secret.proof_key(), device));

        let second_key = IdentityKey::generate(&mut OsRng);
        let proof = AccountProof::sign(&reference, Uuid::from_u128(9), &second_key);
        assert!(proof.verify(&reference, &second_key.public_key()));
        assert!(!proof.verify(
            &PairingReference::Id(Uuid::from_u128(8)),
            &second_key.public_key()
        ));
        let moved_proof = AccountProof {
            device_id: Uuid::from_u128(10),
            ..proof
        };
        assert!(!moved_proof.verify(&reference, &second_key.public_key()));
    }

    #[test]
    fn sign_in_status_json() {
        let status = SignInStatus {
            v: ProtocolVersion,
            request_id: Uuid::from_u128(3),
            outcome: SignInOutcome::Denied {
                reason: RefusalReason::UserDeclined,
                message: "Not me".into(),
            },
        };
        let json = serde_json::to_value(&status).expect("JSON");
        assert_eq!(json["status"], "denied");
        assert_eq!(json["reason"], "user_declined");
        let back: SignInStatus = serde_json::from_value(json).expect("parses");
        assert_eq!(back, status);
        let pending: SignInStatus = serde_json::from_str(
            r#"{"v":1,"request_id":"00000000-0000-0000-0000-000000000003","status":"pending"}"#,
        )
        .expect("parses");
        assert_eq!(pending.outcome, SignInOutcome::Pending);
    }
}
