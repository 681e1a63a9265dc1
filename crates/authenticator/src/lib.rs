//! keybridge's phone: a device-bound FIDO2 authenticator.
//!
//! This crate creates passkeys and signs with them, as `keybridge device` does on a user's
//! phone. It takes WebAuthn JSON options (Graph's `webauthnCredentialCreationOptions` or any
//! relying party's `publicKey` options) and returns the `PublicKeyCredential` JSON a browser
//! would, so that Microsoft Graph's `POST fido2Methods` and any WebAuthn server accept it.
//!
//! - **Device-bound.** Every credential is ES256 (P-256), resident, and never leaves the
//!   device: the backup flags BE and BS are never set, and no API or command exports a private
//!   key (key types have no `Serialize`, no getter, and a redacted `Debug`).
//! - **Flags.** UP always; UV when the user was verified (the CLI: the PIN unlocked the store);
//!   AT on creation; ED when extension outputs are present.
//! - **Credential ids** are 32 random bytes; the store maps them to keys (no key is wrapped
//!   into the id).
//! - **AAGUID** [`AAGUID_STRING`] = `f6773e06-415d-4c83-ba1c-c91297b3d387`, keybridge's own,
//!   fixed for every keybridge device. It is in the authenticator data and in the batch
//!   certificate's extension `1.3.6.1.4.1.45724.1.1.4`. It is kept with `none` attestation too.
//! - **Attestation.** `packed` with `x5c` = [batch certificate] signed by the batch key (made by
//!   `keybridge attestation init`, see [`pki`]); `packed` self attestation; `none` when the
//!   relying party asks for none (or does not ask) or the caller prefers it.
//! - **Extensions.** `credProtect` (level stored and answered), `hmac-secret` (a per-credential
//!   secret made and `true` answered at creation; not evaluated at sign-in, which CTAP allows),
//!   `prf` (answered `enabled` from the same secret), `credProps`. Others are ignored.
//! - **Signature counter** per credential, starting at 0, +1 per assertion, made durable
//!   before the assertion is released (so it never goes back, even after a crash).
//! - **Origin check** as a browser does: https (http only for localhost), rp id = the origin's
//!   host or a parent domain, or a related origin the [`OriginPolicy`] lists.
//!
//! It must not trust the server blindly (the device decides what it signs), and it shares no
//! CBOR or authenticator-data code with the relying-party verifier (`keybridge-webauthn`):
//! the two meet only as bytes, so one side's bug cannot hide the other's.
//!
//! Main types: [`Authenticator`] (make_credential / get_assertion), [`CreationOptions`] and
//! [`RequestOptions`] (JSON in), [`RegistrationResponse`] and [`AssertionResponse`] (JSON out),
//! the [`CredentialStore`] trait with [`FileStore`] (encrypted directory) and [`MemoryStore`],
//! the [`UserPresence`] trait, [`pki`] for attestation roots, batch certificates and FIDO
//! metadata, and [`server_client`] for pairing with a keybridge server and its inbox over a
//! TLS connection pinned to the server's key ([`ServerPairing`] keeps the pairing in the store).
//!
//! ```
//! use keybridge_authenticator::{
//!     Approval, Authenticator, CreationOptions, MakeCredentialSettings, MemoryStore,
//!     RequestOptions, AttestationPreference, ApprovalRequest, Declined,
//! };
//! let approve = |_: &ApprovalRequest<'_>| -> Result<Approval, Declined> {
//!     Ok(Approval { user_verified: true })
//! };
//! let mut phone = Authenticator::new(MemoryStore::new(), approve);
//! let options = CreationOptions::from_json(r#"{"publicKey":{
//!     "rp":{"id":"example.com","name":"Example"},
//!     "user":{"id":"AQID","name":"ana@example.com","displayName":"Ana"},
//!     "challenge":"c2lnbi11cA","pubKeyCredParams":[{"type":"public-key","alg":-7}]}}"#)?;
//! let settings = MakeCredentialSettings { attestation: AttestationPreference::SelfAttestation, tenant: None };
//! let created = phone.make_credential(&options, "https://example.com", &settings)?;
//! let request = RequestOptions::from_json(r#"{"challenge":"c2lnbi1pbg","rpId":"example.com"}"#)?;
//! let assertion = phone.get_assertion(&request, "https://example.com", None)?;
//! assert_eq!(assertion.credential_id, created.credential_id);
//! assert_eq!(assertion.sign_count, 1);
//! # Ok::<(), keybridge_authenticator::AuthenticatorError>(())
//! ```

mod authenticator;
mod encoding;
mod error;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
mod keys;
mod options;
mod origin;
pub mod pki;
mod presence;
pub mod server_client;
mod store;

pub use authenticator::{
    AccountSelector, AssertionResponse, AttestationFormat, AttestationPreference, Authenticator,
    CREDENTIAL_ID_LEN, MakeCredentialSettings, RegistrationResponse, flags,
};
pub use encoding::{b64url, decode_lenient};
pub use error::{AttestationError, AuthenticatorError, StoreError};
pub use keys::{AttestationKey, COSE_ALG_ES256, CredentialKey, PublicKey};
pub use options::{
    AttestationConveyance, CreationExtensions, CreationOptions, RequestOptions,
    UserVerificationRequirement,
};
pub use origin::{CheckedOrigin, MICROSOFT_RELATED_ORIGINS, MICROSOFT_RP_ID, OriginPolicy};
pub use presence::{Approval, ApprovalRequest, Ceremony, Declined, PinUnlocked, UserPresence};
pub use store::{
    Account, AccountSummary, AttestationIdentity, AttestationSource, CredProtect, CredentialStore,
    FileStore, HmacSecret, KdfParams, LOCK_FILE_NAME, MAX_ANSWERED_REQUESTS, MIN_PIN_LEN,
    MemoryStore, STORE_FILE_NAME, ServerPairing, StoredCredential, WorkstationPairing,
    write_atomically,
};

/// keybridge's AAGUID, the same on every keybridge device.
pub const AAGUID: [u8; 16] = [
    0xf6, 0x77, 0x3e, 0x06, 0x41, 0x5d, 0x4c, 0x83, 0xba, 0x1c, 0xc9, 0x12, 0x97, 0xb3, 0xd3, 0x87,
];

/// [`AAGUID`] as a lower-case GUID string.
pub const AAGUID_STRING: &str = "f6773e06-415d-4c83-ba1c-c91297b3d387";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aaguid_constants_agree() {
        let parsed = uuid::Uuid::parse_str(AAGUID_STRING).expect("a GUID");
        assert_eq!(parsed.as_bytes(), &AAGUID);
        assert_eq!(parsed.get_version_num(), 4);
    }
}
