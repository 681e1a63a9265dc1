//! # keybridge-webauthn
//!
//! keybridge's own WebAuthn relying-party verifier. It checks registrations
//! ([WebAuthn §7.1](https://www.w3.org/TR/webauthn-3/#sctn-registering-a-new-credential)) with the
//! attestation formats `none` and `packed` (self and x5c) and ES256 or RS256 credential keys,
//! checks assertions ([§7.2](https://www.w3.org/TR/webauthn-3/#sctn-verifying-assertion))
//! including the signature-counter rule, verifies FIDO MDS3 metadata BLOBs, and applies AAGUID
//! and attestation policy. entra-sim uses it for FIDO2 registration and sign-in; the server
//! uses it for the admin passkey login.
//!
//! The RP id, the allowed origins and every policy are parameters ([`RelyingParty`],
//! [`RegistrationExpectations`], [`AssertionExpectations`]); [`RelyingParty::entra`] is a
//! preset with Entra's values.
//!
//! ## What it must not do
//! It shares no CBOR or authenticator-data code with `keybridge-authenticator` (the phone):
//! authenticator data is parsed byte by byte here, CBOR is read as `ciborium::Value`, and
//! COSE keys are interpreted by this crate, so a bug on one side cannot hide the same bug on
//! the other. It does no I/O and keeps no state: challenge issuance, replay, credential
//! storage and duplicate detection belong to the caller.
//!
//! ## Main types
//! - [`verify_registration`] with [`RegistrationResponse`] and [`RegistrationExpectations`] →
//!   [`VerifiedRegistration`] or [`RegistrationError`].
//! - [`verify_assertion`] with [`AssertionResponse`], [`StoredCredential`] and
//!   [`AssertionExpectations`] → [`VerifiedAssertion`] or [`AssertionError`].
//! - [`PublicKeyCredentialJson`]: the lenient JSON input of both ceremonies.
//! - [`mds::MetadataBlob`]: a verified FIDO MDS3 BLOB; [`policy`]: AAGUID restrictions and
//!   attestation enforcement against metadata.
//! - Spec-shaped building blocks: [`CollectedClientData`], [`AuthenticatorData`],
//!   [`AuthenticatorFlags`], [`AttestedCredentialData`], [`AttestationObject`],
//!   [`AttestationStatement`], [`CredentialPublicKey`].
//!
//! ## Example
//! ```no_run
//! use keybridge_webauthn::{
//!     PublicKeyCredentialJson, RegistrationExpectations, RelyingParty, verify_registration,
//! };
//!
//! # fn example(posted_json: &[u8], issued_challenge: &[u8], mds_roots: &[Vec<u8>])
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let relying_party = RelyingParty::entra();
//! let response = PublicKeyCredentialJson::from_json(posted_json)?.to_registration()?;
//! let expectations = RegistrationExpectations {
//!     trust_anchors: mds_roots,
//!     ..RegistrationExpectations::new(&relying_party, issued_challenge, time::OffsetDateTime::now_utc())
//! };
//! match verify_registration(&response, &expectations) {
//!     Ok(registration) => println!("registered {} ({})", registration.aaguid, registration.fmt),
//!     Err(error) => println!("{}: {error}", error.code()),
//! }
//! # Ok(())
//! # }
//! ```

pub mod aaguid;
pub mod assertion;
pub mod attestation;
pub mod authenticator_data;
pub mod base64url;
mod cbor;
pub mod certificate;
pub mod client_data;
pub mod cose;
pub mod json;
pub mod mds;
pub mod policy;
pub mod registration;
pub mod relying_party;

pub use aaguid::Aaguid;
pub use assertion::{
    AssertionError, AssertionExpectations, AssertionResponse, StoredCredential, VerifiedAssertion,
    verify_assertion,
};
pub use attestation::{AttestationObject, AttestationStatement, PackedStatement};
pub use authenticator_data::{AttestedCredentialData, AuthenticatorData, AuthenticatorFlags};
pub use cbor::CborError;
pub use client_data::CollectedClientData;
pub use cose::{CoseAlgorithm, CredentialPublicKey, PublicKeyMaterial};
pub use json::PublicKeyCredentialJson;
pub use registration::{
    AttestationChain, AttestationType, ChainTrust, RegistrationError, RegistrationExpectations,
    RegistrationResponse, UnsupportedFormats, VerifiedRegistration, verify_registration,
};
pub use relying_party::{CrossOriginPolicy, RelyingParty};
