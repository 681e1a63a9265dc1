//! Authentication (assertion) ceremony verification
//! ([WebAuthn §7.2](https://www.w3.org/TR/webauthn-3/#sctn-verifying-assertion), with the
//! order and counter rule of `entra.md` §7).

use sha2::{Digest as _, Sha256};

use crate::authenticator_data::{AuthenticatorData, AuthenticatorDataError, AuthenticatorFlags};
use crate::client_data::{ClientDataError, CollectedClientData};
use crate::cose::{CredentialPublicKey, SignatureError};
use crate::relying_party::{RelyingParty, ceremony_check_error_into};

/// An authenticator's answer to `navigator.credentials.get()`, as bytes
/// ([`AuthenticatorAssertionResponse`](https://www.w3.org/TR/webauthn-3/#authenticatorassertionresponse)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionResponse {
    /// The credential id the client used (`rawId`, or `id` decoded).
    pub credential_id: Vec<u8>,
    /// `clientDataJSON`, the exact bytes.
    pub client_data_json: Vec<u8>,
    /// `authenticatorData`.
    pub authenticator_data: Vec<u8>,
    /// `signature`.
    pub signature: Vec<u8>,
    /// `userHandle`, when the authenticator returned one.
    pub user_handle: Option<Vec<u8>>,
}

/// What the relying party stored at registration (and updated at each sign-in).
#[derive(Debug, Clone, Copy)]
pub struct StoredCredential<'a> {
    /// The credential id.
    pub credential_id: &'a [u8],
    /// The credential public key.
    pub public_key: &'a CredentialPublicKey,
    /// The last signature counter seen.
    pub sign_count: u32,
    /// BE as it was at registration; it must not change ([WebAuthn §6.1.3](https://www.w3.org/TR/webauthn-3/#sctn-credential-backup)).
    pub backup_eligible: bool,
    /// The `user.id` the credential was registered for, when the relying party kept it. A
    /// `userHandle` in the response must then be this same user
    /// ([WebAuthn §7.2 step 6](https://www.w3.org/TR/webauthn-3/#sctn-verifying-assertion)).
    pub user_handle: Option<&'a [u8]>,
}

/// What the relying party expects of an assertion.
#[derive(Debug, Clone, Copy)]
pub struct AssertionExpectations<'a> {
    /// The relying party.
    pub relying_party: &'a RelyingParty,
    /// The challenge issued for this sign-in, raw bytes.
    pub challenge: &'a [u8],
    /// Whether UV must be set (Entra: always).
    pub require_user_verification: bool,
}

/// An assertion that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAssertion {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// The new signature counter, to store.
    pub sign_count: u32,
    /// The authenticator data flags (BS may have changed: store it).
    pub flags: AuthenticatorFlags,
    /// `userHandle`, when returned.
    pub user_handle: Option<Vec<u8>>,
    /// The parsed client data.
    pub client_data: CollectedClientData,
}

/// Why an assertion was refused. [`AssertionError::code`] gives a stable identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// The response names another credential than the stored one.
    #[error("the assertion was made with another credential than the one looked up")]
    CredentialMismatch,
    /// The response's `userHandle` is not the user the credential was registered for.
    #[error(
        "the assertion's userHandle is not the user this credential was registered for; sign in as the credential's owner"
    )]
    UserHandleMismatch,
    /// `clientDataJSON` does not parse.
    #[error(transparent)]
    ClientData(#[from] ClientDataError),
    /// `type` is not `webauthn.get`.
    #[error("clientDataJSON type is \"{0}\"; an assertion needs \"webauthn.get\"")]
    WrongCeremonyType(String),
    /// The challenge is not the one issued.
    #[error(
        "clientDataJSON challenge is not the challenge issued for this sign-in; start a new sign-in"
    )]
    ChallengeMismatch,
    /// The origin is not one of the relying party's.
    #[error("clientDataJSON origin \"{0}\" is not an allowed origin of this relying party")]
    OriginNotAllowed(String),
    /// `crossOrigin` is true and the relying party refuses that.
    #[error(
        "clientDataJSON says the ceremony ran in a cross-origin iframe, which this relying party refuses"
    )]
    CrossOriginRefused,
    /// `crossOrigin` is true, the relying party lists top origins, and `topOrigin` is absent.
    #[error(
        "clientDataJSON says the ceremony ran in a cross-origin iframe but names no topOrigin, which this relying party requires"
    )]
    TopOriginMissing,
    /// `topOrigin` is not one the relying party expects to be embedded in.
    #[error("clientDataJSON topOrigin \"{0}\" is not an allowed top-level origin")]
    TopOriginNotAllowed(String),
    /// authenticatorData does not parse.
    #[error("authenticatorData: {0}")]
    AuthenticatorData(#[from] AuthenticatorDataError),
    /// rpIdHash is not SHA-256 of the RP id.
    #[error("authenticator data rpIdHash is not SHA-256 of the RP id \"{0}\"")]
    RpIdHashMismatch(String),
    /// UP is not set.
    #[error("the authenticator did not report user presence (UP flag clear)")]
    UserNotPresent,
    /// UV is required and not set.
    #[error(
        "user verification is required but the authenticator did not verify the user (UV flag clear)"
    )]
    UserNotVerified,
    /// BS is set while BE is not.
    #[error("authenticator data has the backup state (BS) flag without backup eligibility (BE)")]
    BackupStateWithoutEligibility,
    /// BE differs from registration.
    #[error(
        "backup eligibility changed since registration (registered {registered}, now {asserted})"
    )]
    BackupEligibilityChanged {
        /// BE at registration.
        registered: bool,
        /// BE now.
        asserted: bool,
    },
    /// The signature does not verify with the stored key.
    #[error("assertion signature: {0}")]
    Signature(SignatureError),
    /// The counter did not increase: the authenticator may have been cloned.
    #[error(
        "signature counter {received} is not greater than the stored {stored}: the authenticator may be cloned"
    )]
    PossibleClone {
        /// Counter stored.
        stored: u32,
        /// Counter received.
        received: u32,
    },
}

impl AssertionError {
    /// A stable identifier for the failure.
    #[must_use]
    pub fn code(&self) -> &'static str {
        use AssertionError as E;
        match self {
            E::CredentialMismatch => "error_unknown_credential",
            E::UserHandleMismatch => "error_user_handle_mismatch",
            E::ClientData(_)
            | E::WrongCeremonyType(_)
            | E::OriginNotAllowed(_)
            | E::CrossOriginRefused
            | E::TopOriginMissing
            | E::TopOriginNotAllowed(_) => "error_invalid_client_data",
            E::ChallengeMismatch => "error_invalid_challenge",
            E::RpIdHashMismatch(_) => "error_invalid_rp_id",
            E::UserNotPresent | E::UserNotVerified => "error_user_verification_required",
            E::AuthenticatorData(_)
            | E::BackupStateWithoutEligibility
            | E::BackupEligibilityChanged { .. } => "error_invalid_request",
            E::Signature(_) => "error_invalid_signature",
            E::PossibleClone { .. } => "error_possible_clone",
        }
    }
}

ceremony_check_error_into!(AssertionError);

/// Verifies an assertion against the stored credential.
///
/// Finding the credential (by `rawId` or `userHandle`) and checking it belongs to the user is
/// the caller's step 1; this function checks the response names that same credential and, when
/// both the response and [`StoredCredential::user_handle`] carry one, that the `userHandle` is the
/// registered user (WebAuthn §7.2 step 6), then client data, authenticator data, the signature
/// and the counter (`entra.md` §7 steps 2–5).
///
/// # Errors
/// The first failed check, as an [`AssertionError`].
pub fn verify_assertion(
    response: &AssertionResponse,
    credential: &StoredCredential<'_>,
    expectations: &AssertionExpectations<'_>,
) -> Result<VerifiedAssertion, AssertionError> {
    if response.credential_id != credential.credential_id {
        return Err(AssertionError::CredentialMismatch);
    }
    // Without this, a credential of one user could finish a usernameless sign-in for another
    // whose handle the authenticator reports.
    if let (Some(returned), Some(registered)) = (&response.user_handle, credential.user_handle)
        && returned.as_slice() != registered
    {
        return Err(AssertionError::UserHandleMismatch);
    }
    let client_data = CollectedClientData::parse(&response.client_data_json)?;
    expectations.relying_party.check_client_data(
        &client_data,
        "webauthn.get",
        expectations.challenge,
    )?;

    let auth_data = AuthenticatorData::parse(&response.authenticator_data)?;
    expectations
        .relying_party
        .check_authenticator_data(&auth_data, expectations.require_user_verification)?;
    let flags = auth_data.flags;
    if flags.backup_eligible() != credential.backup_eligible {
        return Err(AssertionError::BackupEligibilityChanged {
            registered: credential.backup_eligible,
            asserted: flags.backup_eligible(),
        });
    }

    let client_data_hash = Sha256::digest(&response.client_data_json);
    let mut signed = Vec::with_capacity(response.authenticator_data.len() + 32);
    signed.extend_from_slice(&response.authenticator_data);
    signed.extend_from_slice(&client_data_hash);
    credential
        .public_key
        .verify(&signed, &response.signature)
        .map_err(AssertionError::Signature)?;

    // WebAuthn §6.1.1 and entra.md §7 step 5: a counter that is in use must grow.
    let received = auth_data.sign_count;
    if (received != 0 || credential.sign_count != 0) && received <= credential.sign_count {
        return Err(AssertionError::PossibleClone {
            stored: credential.sign_count,
            received,
        });
    }

    Ok(VerifiedAssertion {
        credential_id: response.credential_id.clone(),
        sign_count: received,
        flags,
        user_handle: response.user_handle.clone(),
        client_data,
    })
}
