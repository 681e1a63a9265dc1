//! # keybridge-device-protocol
//!
//! The wire protocol between keybridge's server and the devices that talk to it: phones
//! (`keybridge device`, `/device/v1`) and, with the same signed-request scheme, workstations
//! (`keybridge workstation`, `/workstation/v1`). Both ends build on this one definition of
//! the messages and of the security mechanisms; `docs/device-protocol.md` describes the flows,
//! the endpoints and the threat model.
//!
//! This crate is pure: no HTTP client or server, no database, no clock of its own (callers pass
//! `now`), no global state. It holds message types (serde), canonical encodings, and the
//! checks both sides run. It must not decide policy that belongs to the server (rate limits,
//! session lifetimes) or to the phone's user.
//!
//! Main parts:
//! - [`pairing`]: [`PairingPayload`] (the QR code, `keybridge:pair?v=1&...`), [`ShortCode`]
//!   (the 6-character fallback), [`ServerUrl`], [`PairingSecret`] / [`PairingKey`];
//! - [`enrolment`]: [`EnrolmentRequest`] (device key + HMAC proof of the pairing secret +
//!   device-key signature), [`EnrolmentResponse`], [`DeviceInfo`];
//! - [`signed_request`]: [`SignedHeaders`] (`KB-Device-Id`, `KB-Timestamp`, `KB-Nonce`,
//!   `KB-Signature`), [`canonical_request`], [`RequestVerifier`], the [`ReplayCache`] trait
//!   and [`MemoryReplayCache`];
//! - [`inbox`]: [`InboxItem`] / [`InboxRequest`] ([`ProvisionPasskey`], [`ApproveSignIn`]),
//!   [`RequestAnswer`] / [`Answer`], [`SignInBinding`], and the phone's checks
//!   [`check_provision_request`] and [`check_sign_in_request`];
//! - [`pin`]: [`TlsPin`], SHA-256 of the server certificate's SubjectPublicKeyInfo;
//! - [`workstation`]: the workstation's install-token exchange ([`WorkstationEnrolment`]), its
//!   pairing code ([`WorkstationPairingPayload`]) and the phone's proof ([`PairWorkstation`]),
//!   and the sign-in status it waits for ([`SignInStatus`]);
//! - [`keys`]: [`IdentityKey`] / [`IdentityPublicKey`] / [`Signature`] (P-256 ECDSA).
//!
//! ```
//! use keybridge_device_protocol::{
//!     DeviceInfo, EnrolmentRequest, IdentityKey, MemoryReplayCache, PairingPayload,
//!     PairingReference, RequestTarget, RequestVerifier, SignedHeaders, SignerKind,
//! };
//! use rand_core::OsRng;
//! use time::macros::datetime;
//!
//! let now = datetime!(2026-11-25 14:00:00 UTC);
//! // The phone scans the QR code ...
//! let qr = "keybridge:pair?v=1&u=https%3A%2F%2Fkb.example.com\
//!           &id=6f1c2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b\
//!           &s=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc\
//!           &p=CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk&exp=1795615260";
//! let payload = PairingPayload::parse(qr, now)?;
//! // ... makes its device key and enrols.
//! let device_key = IdentityKey::generate(&mut OsRng);
//! let enrolment = EnrolmentRequest::build(
//!     PairingReference::Id(payload.pairing_id),
//!     &payload.secret.proof_key(),
//!     &payload.server_url,
//!     &device_key,
//!     DeviceInfo::new("Ana's phone", "Pixel 8", "Android 15")?,
//! );
//! // The server checks it with the key it kept for the session.
//! let verified = enrolment.verify(&payload.secret.proof_key(), &payload.server_url)?;
//! assert_eq!(verified.device_public_key, device_key.public_key());
//!
//! // Later the phone signs each request; the server verifies it.
//! let device_id = uuid::Uuid::from_u128(7);
//! let target = RequestTarget { method: "GET", path_and_query: "/device/v1/inbox?wait=30", body: b"" };
//! let headers = SignedHeaders::sign(SignerKind::Device, device_id, &device_key, &target, now, &mut OsRng)?;
//! let checked = RequestVerifier::default().verify_signature(&headers, &device_key.public_key(), &target, now)?;
//! # let _ = (checked, MemoryReplayCache::new());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod account;
pub mod encoding;
pub mod enrolment;
pub mod inbox;
pub mod keys;
pub mod pairing;
pub mod pin;
pub mod signed_request;
pub mod workstation;

pub use account::Account;
pub use encoding::{ProtocolVersion, display_safe, terminal_safe};
pub use enrolment::{
    DeviceInfo, EnrolmentError, EnrolmentRequest, EnrolmentResponse, MAX_DEVICE_FIELD_CHARS,
    PairingReference, VerifiedEnrolment, enrolment_message,
};
pub use inbox::{
    Answer, AnswerError, ApproveSignIn, BindingError, ENTRA_RP_ID, InboxItem, InboxPage,
    InboxRequest, MAX_BINDING_AGE, MAX_BINDING_SKEW, ProvisionPasskey, RefusalReason,
    RequestAnswer, RequestCheckError, SignInBinding, SignInStart, check_provision_request,
    check_sign_in_request,
};
pub use keys::{IdentityKey, IdentityPublicKey, KeyError, Signature};
pub use pairing::{
    PAIRING_URI_PREFIX, PairingError, PairingKey, PairingPayload, PairingSecret,
    SHORT_CODE_ALPHABET, SHORT_CODE_LENGTH, ServerUrl, ShortCode,
};
pub use pin::{PinError, TlsPin};
pub use signed_request::{
    AuthenticatedSigner, DEFAULT_MAX_SKEW, DEVICE_ID_HEADER, Freshness, MemoryReplayCache,
    NONCE_HEADER, Nonce, NonceEntry, ReplayCache, ReplayCacheError, RequestAuthError,
    RequestTarget, RequestVerifier, SIGNATURE_HEADER, SignatureVerified, SignedHeaders, SignerKind,
    TIMESTAMP_HEADER, WORKSTATION_ID_HEADER, body_digest, canonical_request,
};
pub use workstation::{
    AccountProof, MAX_COMPUTER_NAME_CHARS, PairWorkstation, PairedWorkstation, RecoveryPinEscrow,
    RecoveryPinUse, SignInAccepted, SignInOutcome, SignInStatus, WORKSTATION_PAIRING_PREFIX,
    WorkstationAccount, WorkstationEnrolled, WorkstationEnrolment, WorkstationError,
    WorkstationOfPhone, WorkstationPairingPayload, WorkstationPairingSession,
    WorkstationPairingStart, WorkstationState, WorkstationsOfPhone, check_computer_name,
    workstation_enrolment_message, workstation_pairing_message,
};
